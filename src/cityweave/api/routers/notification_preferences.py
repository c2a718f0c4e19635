"""The caller's own notification preferences: which channels each severity goes to, and a webhook.

``GET /api/v1/users/me/notification-preferences`` shows the choice in force per severity (own or
default), ``PUT`` replaces it (severities not named keep the default), ``DELETE`` goes back to the
defaults. Only for the signed-in person themself, whatever their role: there is no path to anybody
else's preferences, and API keys and service accounts (integrations, not people) are refused.
The rules (critical keeps SMS or voice; the webhook SSRF guard) live in
``cityweave.notifications.preferences``; every change is audited, the webhook URL without its
path and query (where receivers put their secrets). Refusals are worded in the caller's
language (the account's, else Accept-Language; catalogue ``notify.preferences.*``,
``notify.webhook_url.*``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Body, Request, status
from pydantic import BaseModel, Field

from cityweave.accounts.models import User
from cityweave.api.deps import CallDep
from cityweave.api.problems import Problem
from cityweave.context import Call
from cityweave.errors import Forbidden
from cityweave.i18n import DEFAULT_LOCALE, negotiate, translate
from cityweave.notifications import preferences as prefs
from cityweave.notifications.models import NotificationPreference
from cityweave.schema import InputModel
from cityweave.security.masking import mask_url

router = APIRouter(
    prefix="/api/v1/users/me/notification-preferences",
    tags=["notifications"],
    responses={401: {"model": Problem}, 403: {"model": Problem}, 422: {"model": Problem}},
)

# The same values as preferences.SEVERITY_RANK and preferences.CHANNELS (a test holds them equal);
# spelled out so that OpenAPI lists them.
SeverityName = Literal["critical", "major", "minor", "warning", "info"]
ChannelName = Literal["live", "webhook", "sms", "voice"]


class PreferencesIn(InputModel):
    channels: dict[SeverityName, Annotated[list[ChannelName], Field(max_length=4)]] = Field(
        default_factory=dict,
        description="severity → channels; severities not named keep the default. Critical must keep "
                    "sms or voice.")
    webhook_url: Annotated[str, Field(min_length=1, max_length=500)] | None = Field(
        default=None, description="http(s) URL on a public address, needed for the webhook channel")


class SeverityChoice(BaseModel):
    severity: str
    channels: list[str]
    default: list[str]
    is_default: bool = Field(description="true: no own choice for this severity, the default applies")


class PreferencesOut(BaseModel):
    user_id: str
    severities: list[SeverityChoice]
    webhook_url: str | None
    updated_at: datetime | None
    available_channels: list[str]
    available_severities: list[str]
    critical_requires_one_of: list[str]


def _locale(request: Request, call: Call) -> str:
    """The account's language when the person chose one, else the browser's (zh-CN is every
    account's default, so it cannot tell a choice from none: then Accept-Language decides)."""
    chosen = call.principal.locale if call.principal.locale != DEFAULT_LOCALE else None
    return negotiate(request.headers.get("accept-language"), chosen)


def _self(call: Call, locale: str) -> str:
    """The caller's user id, if the caller is a person signed in (not an integration)."""
    principal = call.principal
    if principal.via in ("api_key", "system"):
        raise Forbidden(translate("notify.preferences.person_only", locale))
    user = call.session.get(User, principal.user_id)
    if user is None or user.is_service_account:
        raise Forbidden(translate("notify.preferences.no_service_accounts", locale))
    return principal.user_id


def _out(user_id: str, row: NotificationPreference | None) -> PreferencesOut:
    return PreferencesOut(
        user_id=user_id,
        severities=[SeverityChoice(**choice) for choice in prefs.effective_choices(row)],
        webhook_url=row.webhook_url if row is not None else None,
        updated_at=row.updated_at if row is not None else None,
        available_channels=list(prefs.CHANNELS),
        available_severities=list(prefs.SEVERITIES),
        critical_requires_one_of=list(prefs.CRITICAL_FLOOR),
    )


@router.get("", response_model=PreferencesOut)
def get_preferences(call: CallDep, request: Request) -> PreferencesOut:
    user_id = _self(call, _locale(request, call))
    return _out(user_id, call.session.get(NotificationPreference, user_id))


@router.put("", response_model=PreferencesOut)
def put_preferences(call: CallDep, body: Annotated[PreferencesIn, Body(openapi_examples={"sms": {"value": {
        "channels": {"critical": ["sms", "voice", "live"], "major": ["sms", "webhook", "live"], "info": []},
        "webhook_url": "https://hooks.example.com/cityweave"}}})], request: Request) -> PreferencesOut:
    locale = _locale(request, call)
    user_id = _self(call, locale)
    row = prefs.set_preferences(
        call.session, user_id, channels=dict(body.channels), webhook_url=body.webhook_url, now=call.now(),
        allow_private=call.ctx.settings.notify_webhook_allow_private, locale=locale)
    call.audit("notification_preferences.update", "user", user_id, details={
        "channels": row.channels, "webhook_url": mask_url(row.webhook_url)})
    return _out(user_id, row)


@router.delete("", status_code=status.HTTP_204_NO_CONTENT)
def delete_preferences(call: CallDep, request: Request) -> None:
    user_id = _self(call, _locale(request, call))
    if prefs.reset_preferences(call.session, user_id):
        call.audit("notification_preferences.reset", "user", user_id)
