"""Live events as Server-Sent Events: ``GET /api/v1/events`` (text/event-stream).

The caller authenticates like on every route (bearer token or API key) and sees only events at
places inside their read scope (``notifications.hub``). Each event is::

    id: <number>
    event: <type>
    data: {"id": .., "type": .., "place_path": .., "at": .., "data": {..}}

A ``resync`` event (no id) says events were lost (slow reader, or a ``Last-Event-ID`` the ring no
longer reaches): reload the page's state. ``: ping`` comments keep idle connections open. The
token is checked again every ``events_reauth_seconds``: a revoked or expired token ends the
stream (reconnect with a fresh one and ``Last-Event-ID``).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from cityweave.accounts.service import principal_for_token
from cityweave.api.deps import CtxDep, api_key_scheme, get_principal, oauth2_scheme
from cityweave.api.problems import Problem
from cityweave.authz.policy import Principal
from cityweave.context import AppContext
from cityweave.errors import AuthenticationFailed
from cityweave.notifications.hub import LiveEvent, NotificationHub, Subscription

log = logging.getLogger("cityweave.api.events")

router = APIRouter(prefix="/api/v1", tags=["events"],
                   responses={401: {"model": Problem}, 422: {"model": Problem}})

RETRY_MS = 3000
EVENT_STREAM = "text/event-stream"
HEADERS = {
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",  # nginx: pass each event on at once
    "Connection": "keep-alive",
}


def format_event(event: LiveEvent) -> str:
    data = json.dumps(event.as_json() if event.id else {"type": event.type, "data": event.data},
                      ensure_ascii=False, separators=(",", ":"))
    head = f"id: {event.id}\n" if event.id else ""
    return f"{head}event: {event.type}\ndata: {data}\n\n"


class EventStreamResponse(StreamingResponse):
    """A streaming response that runs ``on_close`` however the stream ends (client gone included)."""

    def __init__(self, content: AsyncIterator[str], on_close: Callable[[], None]) -> None:
        super().__init__(content, media_type=EVENT_STREAM, headers=HEADERS)
        self._on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._on_close()


def _still_valid(ctx: AppContext, token: str) -> bool:
    try:
        with ctx.db.session() as session:
            principal_for_token(ctx, session, token, source_ip=None)
        return True
    except AuthenticationFailed:
        return False
    except Exception:  # the database is busy or away: do not end the stream for that
        log.warning("could not re-check a stream's token", exc_info=True)
        return True


async def _stream(sub: Subscription, ctx: AppContext, token: str) -> AsyncIterator[str]:
    heartbeat = ctx.settings.events_heartbeat_seconds
    reauth_every = ctx.settings.events_reauth_seconds
    next_check = time.monotonic() + reauth_every
    yield f"retry: {RETRY_MS}\n: connected\n\n"
    while not sub.closed:
        event = await sub.get(timeout=heartbeat)
        if time.monotonic() >= next_check:
            next_check = time.monotonic() + reauth_every
            if not await run_in_threadpool(_still_valid, ctx, token):
                yield 'event: end\ndata: {"reason":"token_invalid"}\n\n'
                return
        if event is None:
            if sub.closed:
                return
            yield ": ping\n\n"
            continue
        yield format_event(event)


@router.get(
    "/events",
    summary="Live events (Server-Sent Events)",
    response_class=StreamingResponse,
    responses={200: {"content": {EVENT_STREAM: {"schema": {"type": "string"}}},
                     "description": "An endless text/event-stream."}},
)
async def events(
    request: Request,
    ctx: CtxDep,
    principal: Annotated[Principal, Depends(get_principal)],
    bearer: Annotated[str | None, Depends(oauth2_scheme)],
    api_key: Annotated[str | None, Depends(api_key_scheme)],
    types: Annotated[str | None, Query(max_length=200, pattern=r"^[a-z_]{1,40}(,[a-z_]{1,40})*$",
                                       description="comma-separated event types, e.g. alarm,device_state")] = None,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID", max_length=40,
                                                description="resume after this event id")] = None,
) -> StreamingResponse:
    hub: NotificationHub = request.app.state.notification_hub
    wanted = types.split(",") if types else None
    sub = hub.subscribe(principal, types=wanted, last_event_id=last_event_id)
    token = bearer or api_key or ""
    return EventStreamResponse(_stream(sub, ctx, token), on_close=sub.close)

