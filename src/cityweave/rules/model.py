"""Rules as data: triggers, conditions and actions, validated against the device vocabulary.

A :class:`RuleSpec` is what a resident's automation, a built-in safety rule and a dry run share.
Every part is a Pydantic model in a discriminated union on the field ``type``, so a stored rule
is plain JSON and reads back as the same objects. Validation is strict at the edge:

* capability names must exist (:mod:`cityweave.devices.capabilities`; aliases such as ``pm25``
  are accepted and stored under the canonical name ``pm2_5``);
* a value must have the capability's type and lie in its range (``temperature gt 500`` can never
  be true and is refused, as is ``smoke gt 3``: order comparisons need numbers);
* commands need writable capabilities, device types must exist (:mod:`cityweave.devices.types`);
* times are ``HH:MM``, time zones IANA names, webhooks https (or http to localhost).

:func:`parse_rule` (and :func:`parse`) turn Pydantic's errors into :class:`cityweave.errors.Invalid`
with RFC 6901 pointers into the submitted document (the union tags Pydantic puts into error
locations are removed), so an API answers ``/trigger/value`` rather than ``/trigger/threshold/value``.

Names and messages are bilingual: ``name`` is ``{"zh-CN": ..., "en": ...}`` and notifications
carry an i18n key with parameters, never a finished sentence.
"""

from __future__ import annotations

import enum
import ipaddress
import math
import re
from collections.abc import Iterable, Sequence
from datetime import time
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from cityweave.devices import capabilities as caps
from cityweave.devices.capabilities import Capability, ValueType
from cityweave.devices.types import DEVICE_TYPES
from cityweave.errors import FieldError, Invalid
from cityweave.schema import InputModel

# --------------------------------------------------------------------------- vocabulary


class Mode(enum.StrEnum):
    """Household mode (``rules/modes.py`` stores it)."""

    HOME = "home"
    AWAY = "away"
    ARMED = "armed"
    SLEEP = "sleep"


class Op(enum.StrEnum):
    GT = "gt"
    GE = "ge"
    LT = "lt"
    LE = "le"
    EQ = "eq"
    NE = "ne"


ORDER_OPS = frozenset({Op.GT, Op.GE, Op.LT, Op.LE})

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

Audience = Literal["family", "grid_worker", "property_staff", "community_staff"]
Severity = Literal["critical", "major", "minor", "warning", "info"]

# Named escalation chains a rule may refer to: (audience, seconds to acknowledge) in order. The
# alarm service turns them into ``alarms.EscalationStep`` rows; "none" means no escalation.
ESCALATION_CHAINS: dict[str, tuple[tuple[str, int], ...]] = {
    "none": (),
    # elderly living alone: family first, then the grid worker, then the community's duty staff
    "care": (("family", 300), ("grid_worker", 600), ("community_staff", 900)),
    # fire, gas, water: the family and property staff at once, the community if nobody answers
    "safety": (("family", 120), ("property_staff", 120), ("community_staff", 600)),
    "family": (("family", 600),),
    "property": (("property_staff", 1800),),
}

_KEY = r"^[a-z0-9][a-z0-9_.-]{0,63}$"
_DEVICE_ID = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,39}$"
_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")

Value = bool | int | float | str | dict[str, float | int]
DeviceId = Annotated[str, Field(pattern=_DEVICE_ID, max_length=40)]
Key = Annotated[str, Field(pattern=_KEY, max_length=64)]


def parse_hhmm(text: str) -> time:
    match = _HHMM.match(text)
    if match is None:
        raise ValueError("time must be HH:MM between 00:00 and 23:59")
    return time(int(match.group(1)), int(match.group(2)))


def _check_hhmm(text: str) -> str:
    parse_hhmm(text)
    return text


HHMM = Annotated[str, Field(examples=["07:30"]), AfterValidator(_check_hhmm)]


def _capability(name: str, *, readable: bool = False, writable: bool = False) -> Capability:
    cap = caps.find(name)
    if cap is None:
        raise ValueError(f"unknown capability {name!r}")
    if readable and not cap.readable:
        raise ValueError(f"{cap.name} cannot be read, only written")
    if writable and not cap.writable:
        raise ValueError(f"{cap.name} is read-only and cannot be commanded")
    return cap


def _known_readable(name: str) -> str:
    return _capability(name, readable=True).name


def _known_writable(name: str) -> str:
    return _capability(name, writable=True).name


def _device_type(name: str) -> str:
    if name not in DEVICE_TYPES:
        raise ValueError(f"unknown device type {name!r}")
    return name


ReadCapability = Annotated[str, Field(max_length=64), AfterValidator(_known_readable)]
WriteCapability = Annotated[str, Field(max_length=64), AfterValidator(_known_writable)]
DeviceTypeName = Annotated[str, Field(max_length=64), AfterValidator(_device_type)]


def check_value(cap: Capability, value: Any, *, member: str | None = None) -> Any:
    """The value coerced to the capability's type, or ValueError saying why it cannot be one."""
    if member is not None:
        spec = next((f for f in cap.fields if f.name == member), None)
        if spec is None:
            raise ValueError(f"{cap.name} has no member {member!r}; members: {[f.name for f in cap.fields]}")
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise ValueError(f"{cap.name}.{member}: expected a number")
        if spec.minimum is not None and value < spec.minimum or spec.maximum is not None and value > spec.maximum:
            raise ValueError(f"{cap.name}.{member}={value:g} outside [{spec.minimum}, {spec.maximum}]")
        return value
    checked = caps.validate(cap, value)
    if not checked.ok:
        raise ValueError(checked.detail)
    return checked.value


def _numeric(cap: Capability, member: str | None) -> bool:
    return member is not None or cap.value_type in (ValueType.INT, ValueType.FLOAT)


def _bounds(cap: Capability, member: str | None) -> tuple[float | None, float | None]:
    if member is not None:
        spec = next(f for f in cap.fields if f.name == member)
        return spec.minimum, spec.maximum
    return cap.minimum, cap.maximum


def _comparison(cap: Capability, op: Op, value: Any, member: str | None) -> Any:
    """Validate ``<capability>[.member] <op> <value>``: right type, in range, satisfiable."""
    if cap.value_type is ValueType.OBJECT and member is None:
        raise ValueError(f"{cap.name} is an object; name one of its members in 'field' "
                         f"({[f.name for f in cap.fields]})")
    if member is not None and cap.value_type is not ValueType.OBJECT:
        raise ValueError(f"{cap.name} has no members; leave 'field' out")
    if op in ORDER_OPS and not _numeric(cap, member):
        raise ValueError(f"{op} needs a number; {cap.name} is {cap.value_type} (use eq or ne)")
    clean = check_value(cap, value, member=member)
    if op in ORDER_OPS:
        lo, hi = _bounds(cap, member)
        if (op is Op.GT and hi is not None and clean >= hi) or (op is Op.LT and lo is not None and clean <= lo):
            raise ValueError(f"{cap.name} {op} {clean:g} can never be true (range [{lo}, {hi}])")
    return clean


def compare(op: Op | str, actual: Any, expected: Any) -> bool:
    """``actual <op> expected``; False (never an exception) when the two cannot be compared."""
    op = Op(op)
    if op is Op.EQ:
        return bool(actual == expected)
    if op is Op.NE:
        return bool(actual != expected)
    if isinstance(actual, bool) or isinstance(expected, bool):
        return False
    if not isinstance(actual, int | float) or not isinstance(expected, int | float):
        return False
    if op is Op.GT:
        return actual > expected
    if op is Op.GE:
        return actual >= expected
    if op is Op.LT:
        return actual < expected
    return actual <= expected


class Names(InputModel):
    """A bilingual display name: ``{"zh-CN": ..., "en": ...}``. One of the two is enough (a family
    naming its own scene writes one language); the other is then the same text."""

    model_config = ConfigDict(extra="forbid", serialize_by_alias=True, validate_by_name=True,
                              validate_by_alias=True)

    zh_cn: str | None = Field(default=None, alias="zh-CN", min_length=1, max_length=100)
    en: str | None = Field(default=None, min_length=1, max_length=100)

    @field_validator("zh_cn", "en")
    @classmethod
    def _not_blank(cls, text: str | None) -> str | None:
        if text is None:
            return None
        text = text.strip()
        if not text:
            raise ValueError("may not be blank")
        return text

    @model_validator(mode="after")
    def _one_at_least(self) -> Any:
        if self.zh_cn is None and self.en is None:
            raise _at("zh-CN", "give a name in zh-CN, en or both")
        if self.zh_cn is None:
            self.zh_cn = self.en
        if self.en is None:
            self.en = self.zh_cn
        return self

    def get(self, locale: str) -> str:
        return str(self.zh_cn if locale.lower().startswith("zh") else self.en)


class _Compared(InputModel):
    """Shared validation of (capability, op, value[, field]) in triggers and conditions."""

    capability: ReadCapability
    field: str | None = Field(default=None, max_length=32,
                              description="Member of an object capability (blood_pressure.systolic).")
    op: Op
    value: Value

    @model_validator(mode="after")
    def _value_fits(self) -> Any:
        cap = caps.get(self.capability)
        try:
            self.value = _comparison(cap, self.op, self.value, self.field)
        except ValueError as exc:
            raise _at("value", str(exc)) from None
        return self


def _at(field: str, message: str) -> ValueError:
    """A ValueError whose message names the field; :func:`pointer` moves it into the location."""
    return ValueError(f"@{field}: {message}")


# --------------------------------------------------------------------------- triggers


class ThresholdTrigger(_Compared):
    """A reading crosses a threshold (fires on the transition from false to true)."""

    type: Literal["threshold"] = "threshold"
    endpoint: str | None = Field(default=None, max_length=100)
    device_id: DeviceId | None = Field(default=None, description="None: any device of the household.")


class StateTrigger(InputModel):
    """A state changes to ``to`` (optionally only when it was ``from``)."""

    model_config = ConfigDict(extra="forbid", validate_by_name=True, validate_by_alias=True,
                              serialize_by_alias=True)

    type: Literal["state"] = "state"
    capability: ReadCapability
    to: Value
    from_: Value | None = Field(default=None, alias="from")
    endpoint: str | None = Field(default=None, max_length=100)
    device_id: DeviceId | None = None

    @model_validator(mode="after")
    def _values_fit(self) -> Any:
        cap = caps.get(self.capability)
        if cap.value_type is ValueType.OBJECT:
            raise _at("capability", f"{cap.name} is not a state; use a threshold on one of its members")
        try:
            self.to = check_value(cap, self.to)
        except ValueError as exc:
            raise _at("to", str(exc)) from None
        if self.from_ is not None:
            try:
                self.from_ = check_value(cap, self.from_)
            except ValueError as exc:
                raise _at("from", str(exc)) from None
            if self.from_ == self.to:
                raise _at("from", "'from' and 'to' are the same state")
        return self


class DurationTrigger(_Compared):
    """A comparison holds continuously for ``seconds`` ("gas above X for 10 s")."""

    type: Literal["duration"] = "duration"
    seconds: int = Field(ge=1, le=7 * 86400)
    endpoint: str | None = Field(default=None, max_length=100)
    device_id: DeviceId | None = None


class AbsenceTrigger(InputModel):
    """None of ``capabilities`` reported activity for ``hours`` (welfare check)."""

    type: Literal["absence"] = "absence"
    capabilities: list[ReadCapability] = Field(min_length=1, max_length=20)
    hours: float = Field(gt=0, le=30 * 24)
    daytime_only: bool = Field(default=False, description="Count only 07:00-22:00 towards the hours.")

    @field_validator("capabilities")
    @classmethod
    def _unique(cls, names: list[str]) -> list[str]:
        return list(dict.fromkeys(names))


class RepeatTrigger(InputModel):
    """``count`` readings (equal to ``value`` if given) within ``within_seconds``."""

    type: Literal["repeat"] = "repeat"
    capability: ReadCapability
    value: Value | None = None
    count: int = Field(ge=2, le=10000)
    within_seconds: int = Field(ge=1, le=7 * 86400)
    device_id: DeviceId | None = None

    @model_validator(mode="after")
    def _value_fits(self) -> Any:
        if self.value is not None:
            try:
                self.value = check_value(caps.get(self.capability), self.value)
            except ValueError as exc:
                raise _at("value", str(exc)) from None
        return self


def _timezone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}") from None
    return name


class ScheduleTrigger(InputModel):
    """At ``at`` local time on ``days``."""

    type: Literal["schedule"] = "schedule"
    at: HHMM
    days: list[Weekday] = Field(default_factory=lambda: list(WEEKDAYS), min_length=1, max_length=7)
    timezone: Annotated[str, Field(max_length=64), AfterValidator(_timezone)] = "Asia/Shanghai"

    @field_validator("days")
    @classmethod
    def _ordered(cls, days: list[str]) -> list[str]:
        return [d for d in WEEKDAYS if d in set(days)]


class AvailabilityTrigger(InputModel):
    """A device (of the types, or having the capabilities) has been offline for ``offline_hours``."""

    type: Literal["availability"] = "availability"
    device_types: list[DeviceTypeName] = Field(default_factory=list, max_length=40)
    capabilities: list[ReadCapability] = Field(default_factory=list, max_length=40)
    offline_hours: float = Field(gt=0, le=30 * 24)

    @model_validator(mode="after")
    def _something(self) -> Any:
        if not self.device_types and not self.capabilities:
            raise _at("device_types", "name device_types or capabilities")
        return self


class BatteryLowTrigger(InputModel):
    """A device reports a battery below ``below_percent`` (or ``battery_low`` true)."""

    type: Literal["battery_low"] = "battery_low"
    below_percent: float = Field(gt=0, le=100)
    device_types: list[DeviceTypeName] = Field(default_factory=list, max_length=40,
                                               description="Empty: every device of the household.")


Trigger = Annotated[
    ThresholdTrigger | StateTrigger | DurationTrigger | AbsenceTrigger | RepeatTrigger
    | ScheduleTrigger | AvailabilityTrigger | BatteryLowTrigger,
    Field(discriminator="type"),
]

# --------------------------------------------------------------------------- conditions


class TimeWindowCondition(InputModel):
    """Local time within [start, end); ``22:00``-``06:00`` wraps over midnight."""

    type: Literal["time_window"] = "time_window"
    start: HHMM
    end: HHMM
    timezone: Annotated[str, Field(max_length=64), AfterValidator(_timezone)] = "Asia/Shanghai"

    @model_validator(mode="after")
    def _not_empty(self) -> Any:
        if self.start == self.end:
            raise _at("end", "start and end are equal: the window would be empty")
        return self

    def contains(self, local: time) -> bool:
        start, end = parse_hhmm(self.start), parse_hhmm(self.end)
        moment = local.replace(second=0, microsecond=0, tzinfo=None)
        if start < end:
            return start <= moment < end
        return moment >= start or moment < end


class ModeCondition(InputModel):
    model_config = ConfigDict(extra="forbid", validate_by_name=True, validate_by_alias=True,
                              serialize_by_alias=True)

    type: Literal["mode"] = "mode"
    in_: list[Mode] = Field(alias="in", min_length=1, max_length=4)

    @field_validator("in_")
    @classmethod
    def _unique(cls, modes: list[Mode]) -> list[Mode]:
        return list(dict.fromkeys(modes))


class DeviceStateCondition(_Compared):
    """Another device's latest state (``device_id``), or any device with the capability."""

    type: Literal["device_state"] = "device_state"
    device_id: DeviceId | None = None
    endpoint: str | None = Field(default=None, max_length=100)


Condition = Annotated[TimeWindowCondition | ModeCondition | DeviceStateCondition,
                      Field(discriminator="type")]

# --------------------------------------------------------------------------- actions


class DeviceSelector(InputModel):
    """Devices of the household by type and/or capability (every match is commanded); ``names``
    narrows to devices whose name contains any of the words (``["玄关", "hall"]``)."""

    device_type: DeviceTypeName | None = None
    capability: WriteCapability | None = None
    names: list[Annotated[str, Field(min_length=1, max_length=40)]] = Field(default_factory=list, max_length=10)

    @model_validator(mode="after")
    def _something(self) -> Any:
        if self.device_type is None and self.capability is None:
            raise _at("device_type", "name device_type or capability")
        return self


def _target_tag(value: Any) -> str:
    return "device_id" if isinstance(value, str) else "selector"


Target = Annotated[
    Annotated[DeviceId, Tag("device_id")] | Annotated[DeviceSelector, Tag("selector")],
    Discriminator(_target_tag),
]


class CommandAction(InputModel):
    type: Literal["command"] = "command"
    target: Target
    capability: WriteCapability
    value: Value
    endpoint: str | None = Field(default=None, max_length=100)

    @model_validator(mode="after")
    def _value_fits(self) -> Any:
        try:
            self.value = check_value(caps.get(self.capability), self.value)
        except ValueError as exc:
            raise _at("value", str(exc)) from None
        return self


class SceneAction(InputModel):
    type: Literal["scene"] = "scene"
    scene_id: Key


class RaiseAlarmAction(InputModel):
    type: Literal["raise_alarm"] = "raise_alarm"
    kind: Key
    severity: Severity
    escalation: str = Field(default="none", description=f"One of {sorted(ESCALATION_CHAINS)}.")
    title: Names | None = None

    @field_validator("escalation")
    @classmethod
    def _known_chain(cls, name: str) -> str:
        if name not in ESCALATION_CHAINS:
            raise ValueError(f"unknown escalation chain {name!r}; known: {sorted(ESCALATION_CHAINS)}")
        return name


class ClearAlarmAction(InputModel):
    type: Literal["clear_alarm"] = "clear_alarm"
    kind: Key


class Message(InputModel):
    """An i18n catalogue key and its parameters; the text is rendered per recipient's language."""

    key: Annotated[str, Field(pattern=r"^[a-z0-9_]+(\.[a-z0-9_]+)*$", max_length=100)]
    params: dict[Annotated[str, Field(pattern=r"^[a-z_][a-z0-9_]*$", max_length=40)],
                 Annotated[str, Field(max_length=200)] | int | float | bool] = Field(
        default_factory=dict, max_length=20)


class NotifyAction(InputModel):
    type: Literal["notify"] = "notify"
    audience: Audience
    message: Message


class WorkOrderAction(InputModel):
    type: Literal["work_order"] = "work_order"
    category: Key


def _webhook_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return url
    if parts.scheme == "http" and parts.hostname:
        host = parts.hostname
        if host == "localhost":
            return url
        try:
            if ipaddress.ip_address(host).is_loopback:
                return url
        except ValueError:
            pass
    raise ValueError("webhooks must use https (plain http only to localhost)")


class WebhookAction(InputModel):
    type: Literal["webhook"] = "webhook"
    url: Annotated[str, Field(max_length=500), AfterValidator(_webhook_url)]
    secret_ref: Key | None = Field(default=None, description="Name of a stored secret used to sign "
                                   "the body (HMAC-SHA256); never the secret itself.")


class SetModeAction(InputModel):
    type: Literal["set_mode"] = "set_mode"
    mode: Mode


Action = Annotated[
    CommandAction | SceneAction | RaiseAlarmAction | ClearAlarmAction | NotifyAction
    | WorkOrderAction | WebhookAction | SetModeAction,
    Field(discriminator="type"),
]

# Actions a scene may hold: what happens at once in the home (no alarms, no nested scenes).
SCENE_ACTION_TYPES = frozenset({"command", "set_mode"})

# --------------------------------------------------------------------------- the rule


class RuleSpec(InputModel):
    model_config = ConfigDict(extra="forbid", serialize_by_alias=True)

    key: Key
    name: Names
    trigger: Trigger
    conditions: list[Condition] = Field(default_factory=list, max_length=10)
    actions: list[Action] = Field(min_length=1, max_length=20)
    enabled: bool = True
    cooldown_seconds: int = Field(default=0, ge=0, le=7 * 86400)

    def watched_capabilities(self) -> frozenset[str]:
        """Capabilities whose readings may wake this rule (the engine's index)."""
        return watched_capabilities(self.trigger)

    def commanded_capabilities(self) -> frozenset[str]:
        return frozenset(a.capability for a in self.actions if isinstance(a, CommandAction))


def watched_capabilities(trigger: Any) -> frozenset[str]:
    if isinstance(trigger, ThresholdTrigger | StateTrigger | DurationTrigger | RepeatTrigger):
        return frozenset({trigger.capability})
    if isinstance(trigger, AbsenceTrigger):
        return frozenset(trigger.capabilities)
    if isinstance(trigger, BatteryLowTrigger):
        return frozenset({"battery", "battery_low", "battery_level"} & set(caps.CAPABILITIES))
    if isinstance(trigger, AvailabilityTrigger):
        return frozenset(trigger.capabilities)
    return frozenset()


class SceneSpec(InputModel):
    """What a scene is made of: a name and the actions it runs, in order."""

    model_config = ConfigDict(extra="forbid", serialize_by_alias=True)

    name: Names
    actions: list[Action] = Field(min_length=1, max_length=50)

    @model_validator(mode="after")
    def _scene_actions(self) -> Any:
        for index, action in enumerate(self.actions):
            if action.type not in SCENE_ACTION_TYPES:
                raise _at(f"actions/{index}/type",
                          f"a scene may hold {sorted(SCENE_ACTION_TYPES)}, not {action.type}")
        return self


# --------------------------------------------------------------------------- errors as pointers

# Where discriminated unions sit: the location element after these is a union tag, not a field.
_UNION_FIELDS = frozenset({"trigger", "target"})
_UNION_LISTS = frozenset({"conditions", "actions"})


def pointer(loc: Sequence[Any], message: str = "") -> tuple[str, str]:
    """(RFC 6901 pointer, message) for a Pydantic error location inside a rule or scene.

    Removes the union tags Pydantic inserts and moves a field named by :func:`_at` into the path.
    """
    parts: list[str] = []
    skip = False
    for index, element in enumerate(loc):
        if skip:
            skip = False
            continue
        parts.append(str(element))
        before = loc[index - 1] if index else None
        if element in _UNION_FIELDS or (isinstance(element, int) and before in _UNION_LISTS):
            following = loc[index + 1] if index + 1 < len(loc) else None
            if isinstance(following, str):
                skip = True
    text = message
    for prefix in ("Value error, ", "Assertion failed, "):
        text = text.removeprefix(prefix)
    if text.startswith("@") and ": " in text:
        field, text = text[1:].split(": ", 1)
        parts.extend(field.split("/"))
    escaped = (p.replace("~", "~0").replace("/", "~1") for p in parts)
    return "/" + "/".join(escaped) if parts else "", text


def errors_from(exc: ValidationError, prefix: str = "", loc_prefix: tuple[Any, ...] = ()) -> list[FieldError]:
    found: list[FieldError] = []
    for err in exc.errors(include_url=False):
        where, text = pointer(loc_prefix + tuple(err.get("loc", ())), err.get("msg", "invalid"))
        # kept for translation at the HTTP edge; our validators' text without its "@field: " part
        ctx = {k: v for k, v in (err.get("ctx") or {}).items() if k != "error"}
        found.append(FieldError(prefix + where, text, error={"type": err.get("type"), "msg": text, "ctx": ctx}))
    return found


M = TypeVar("M", bound=BaseModel)


def parse(model: type[M], data: Any, *, prefix: str = "") -> M:
    """``model`` validated from JSON-like ``data``; :class:`Invalid` with pointers otherwise."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise Invalid(errors_from(exc, prefix)) from None


def parse_rule(data: Any, *, prefix: str = "") -> RuleSpec:
    return parse(RuleSpec, data, prefix=prefix)


_ACTIONS: TypeAdapter[list[Any]] = TypeAdapter(list[Action])


def parse_actions(data: Iterable[Any], *, prefix: str = "") -> list[Any]:
    """A list of actions (a scene's, a rule's) validated; pointers are ``{prefix}/actions/<i>/...``."""
    try:
        return _ACTIONS.validate_python(list(data))
    except ValidationError as exc:
        raise Invalid(errors_from(exc, prefix, ("actions",))) from None
