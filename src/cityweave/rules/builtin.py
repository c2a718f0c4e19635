"""The built-in safety and care rules: on for every household, adjustable per household.

Each :class:`Builtin` is a named set of :class:`~cityweave.rules.engine.EngineRule` built from
parameters; ``household_rule_settings`` holds a household's deviations (``enabled``, ``params``),
no row means the defaults. Thresholds and why they were chosen:

* **fire**: ``smoke`` true → critical alarm (``fire``), sirens of the household on, family and
  property staff notified. The alarm stays open when the smoke is gone: people resolve it.
* **gas**: combustible gas flag, ``gas_ppm`` ≥ 5,000 ppm (10 % of methane's lower explosive limit
  of 5 % vol), ``gas_lel`` ≥ 10 %LEL (household detectors alarm between 3 and 25 %LEL, GB 15322.2),
  CO flag, ``co_ppm`` ≥ 100 ppm (EN 50291 / GB 15322.2-class CO alarms sound within minutes above
  100 ppm) → critical alarm (``gas``), gas valves closed. When every reading of that detector is
  back to normal the alarm is *cleared* (the valve stays closed: people reopen it).
* **water**: ``water_leak`` → major alarm, water valves closed; the alarm stays until resolved
  (the floor is still wet).
* **electricity**: ``power_w`` above the rated load (2,500 W: a 10 A socket at 220-250 V) for
  30 s → major alarm, optional cut-off of that plug (off by default: a freezer must not be cut
  by surprise); above 1,500 W for 15 min between 00:00 and 05:00 → warning (abnormal consumption
  at night). Both clear when the load drops.
* **intrusion**: a door or window opening (``contact`` false) or motion while the household is
  *armed* → major alarm, sirens on; a doorbell while *away* or *armed* → family notified.
* **elderly** (households with a member care-tagged ``elderly_alone``): emergency button
  (``emergency_call``) or a confirmed fall (``fall``, ``fall_state`` = fall) → critical alarm
  with the escalation chain family → grid worker → community duty staff; no activity (motion,
  presence, doors, water, switching, appliance power changes) for 4 daytime hours (07:00-22:00)
  → welfare-check alarm (family, then grid worker).
* **vital_signs** (every household that has such a monitor): heart rate < 45 or > 120 bpm,
  systolic ≥ 180 or < 90 mmHg, diastolic ≥ 110 mmHg, SpO2 < 92 % → major alarm to the family.
* **environment**: above the GB/T 18883-2022 indoor air quality values for 30 min: PM2.5
  50 µg/m³ (24 h mean), CO2 0.10 % = 1,000 ppm (24 h mean), formaldehyde 0.08 mg/m³ (1 h mean)
  → info alarm (a suggestion), optionally an air purifier / fresh-air unit switched on; clears
  when the air is good again.
* **device_health**: a safety device (smoke, gas, CO, leak) offline for 12 h, or its battery
  below 15 % (or ``battery_low``) → minor maintenance alarm to property staff; clears when it is
  back online or the battery was replaced.

Who may change what (``authz/policy.py``, ``Resource.RULE_SETTING``): residents of the household
and property staff (and community / platform admins) adjust the parameters marked ``adjustable``
within their bounds, and switch off the rules that allow it. **fire, gas and the elderly
emergency/fall rule can never be switched off** through the API, by anybody: a household without
such devices loses nothing by them, and one with them must not lose them by a click.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from cityweave.errors import FieldError, Invalid
from cityweave.rules import model as m
from cityweave.rules.engine import SELF, DeviceInfo, EngineRule, HouseholdInfo

SAFETY_CAPABILITIES = frozenset({"smoke", "gas", "carbon_monoxide", "water_leak", "gas_ppm", "gas_lel", "co_ppm"})
ACTIVITY_CAPABILITIES = ["motion", "occupancy", "presence", "contact", "water_m3", "on_off", "power_w", "lock",
                         "doorbell", "button_event"]


@dataclass(frozen=True)
class Param:
    name: str
    default: Any
    minimum: float | None = None
    maximum: float | None = None
    unit: str | None = None
    adjustable: bool = True  # residents and property staff may change it (within the bounds)
    description: str = ""

    def check(self, value: Any) -> Any:
        if isinstance(self.default, bool):
            if not isinstance(value, bool):
                raise ValueError("expected true or false")  # noqa: TRY004 - becomes a 422 message
            return value
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise ValueError("expected a number")  # noqa: TRY004 - becomes a 422 message
        if self.minimum is not None and value < self.minimum or self.maximum is not None and value > self.maximum:
            raise ValueError(f"must be between {self.minimum:g} and {self.maximum:g}")
        return int(value) if isinstance(self.default, int) and float(value).is_integer() else float(value)


@dataclass(frozen=True)
class Builtin:
    key: str
    name: dict[str, str]
    params: tuple[Param, ...]
    build: Callable[[Mapping[str, Any]], list[EngineRule]]
    may_disable: bool = True
    applies_to: str = "every household"

    def defaults(self) -> dict[str, Any]:
        return {p.name: p.default for p in self.params}

    def effective(self, overrides: Mapping[str, Any] | None) -> dict[str, Any]:
        known = {p.name for p in self.params}
        return {**self.defaults(), **{k: v for k, v in (overrides or {}).items() if k in known}}


# -- building blocks -----------------------------------------------------------------------------------
def _names(zh: str, en: str) -> dict[str, str]:
    return {"zh-CN": zh, "en": en}


def _spec(key: str, name: dict[str, str], trigger: dict[str, Any], actions: list[dict[str, Any]],
          conditions: list[dict[str, Any]] | None = None) -> m.RuleSpec:
    return m.RuleSpec.model_validate({"key": key, "name": name, "trigger": trigger, "actions": actions,
                                      "conditions": conditions or []})


def _alarm(kind: str, severity: str, escalation: str = "none") -> dict[str, Any]:
    return {"type": "raise_alarm", "kind": kind, "severity": severity, "escalation": escalation}


def _notify(audience: str, key: str) -> dict[str, Any]:
    return {"type": "notify", "audience": audience, "message": {"key": key}}


def _command(capability: str, value: Any, *, selector: dict[str, Any] | None = None,
             target: str | None = None) -> dict[str, Any]:
    return {"type": "command", "target": target or selector or {"capability": capability},
            "capability": capability, "value": value}


def _is_safety_device(device: DeviceInfo) -> bool:
    return any(device.has(c) for c in SAFETY_CAPABILITIES)


def _elderly(home: HouseholdInfo) -> bool:
    return home.elderly_alone


_GAS_HINTS = ("gas", "燃气", "煤气", "天然气")
_PURIFIER_HINTS = ("purifier", "净化")
_VENTILATION_HINTS = ("fresh", "新风", "ventilat", "exhaust", "排气", "换气")


def _gas_valve(device: DeviceInfo, _action: m.CommandAction) -> bool:
    hint = device.hint()
    return any(h in hint for h in _GAS_HINTS)


def _water_valve(device: DeviceInfo, action: m.CommandAction) -> bool:
    return not _gas_valve(device, action)


def _hinted(hints: tuple[str, ...]) -> Callable[[DeviceInfo, m.CommandAction], bool]:
    def check(device: DeviceInfo, _action: m.CommandAction) -> bool:
        hint = device.hint()
        return any(h in hint for h in hints)
    return check


def _rule(spec: m.RuleSpec, group: str, setting: str, title: dict[str, str], **kw: Any) -> EngineRule:
    return EngineRule(spec=spec, group=group, setting=setting, title=title, builtin=True, **kw)


# -- the rules -------------------------------------------------------------------------------------------
def _fire(p: Mapping[str, Any]) -> list[EngineRule]:
    title = _names("火警：烟雾报警", "Fire: smoke detected")
    actions = [_alarm("fire", "critical", "safety"), _notify("family", "rules.fire"),
               _notify("property_staff", "rules.fire")]
    if p["siren"]:
        actions.append(_command("siren", True))
    spec = _spec("builtin.fire.smoke", title, {"type": "threshold", "capability": "smoke", "op": "eq", "value": True},
                 actions)
    return [_rule(spec, "fire", "fire", title)]


def _gas(p: Mapping[str, Any]) -> list[EngineRule]:
    title = _names("燃气或一氧化碳泄漏", "Gas or carbon monoxide leak")
    actions: list[dict[str, Any]] = [_alarm("gas", "critical", "safety"), _notify("family", "rules.gas")]
    if p["close_valve"]:
        actions.append(_command("valve_open", False, selector={"capability": "valve_open"}))
    triggers = {
        "flag": {"type": "threshold", "capability": "gas", "op": "eq", "value": True},
        "ppm": {"type": "threshold", "capability": "gas_ppm", "op": "ge", "value": p["gas_ppm_max"]},
        "lel": {"type": "threshold", "capability": "gas_lel", "op": "ge", "value": p["gas_lel_max"]},
        "co": {"type": "threshold", "capability": "carbon_monoxide", "op": "eq", "value": True},
        "co_ppm": {"type": "threshold", "capability": "co_ppm", "op": "ge", "value": p["co_ppm_max"]},
    }
    return [_rule(_spec(f"builtin.gas.{name}", title, trigger, actions), "gas", "gas", title, clears=True,
                  target_filter=_gas_valve) for name, trigger in triggers.items()]


def _water(p: Mapping[str, Any]) -> list[EngineRule]:
    title = _names("漏水", "Water leak")
    actions: list[dict[str, Any]] = [_alarm("water_leak", "major", "family"), _notify("family", "rules.water_leak")]
    if p["close_valve"]:
        actions.append(_command("valve_open", False, selector={"capability": "valve_open"}))
    spec = _spec("builtin.water.leak", title,
                 {"type": "threshold", "capability": "water_leak", "op": "eq", "value": True}, actions)
    return [_rule(spec, "water_leak", "water", title, target_filter=_water_valve)]


def _electricity(p: Mapping[str, Any]) -> list[EngineRule]:
    overload = _names("用电过载", "Electrical overload")
    actions: list[dict[str, Any]] = [_alarm("electricity", "major", "family")]
    if p["cut_off"]:
        actions.append(_command("on_off", False, target=SELF))
    rules = [_rule(_spec("builtin.electricity.overload", overload,
                         {"type": "duration", "capability": "power_w", "op": "gt", "value": p["max_w"],
                          "seconds": p["overload_seconds"]}, actions),
                   "electricity", "electricity", overload, clears=True)]
    night = _names("夜间用电异常", "Abnormal consumption at night")
    rules.append(_rule(_spec("builtin.electricity.night", night,
                             {"type": "duration", "capability": "power_w", "op": "gt", "value": p["night_w"],
                              "seconds": p["night_seconds"]},
                             [_alarm("electricity_night", "warning")],
                             [{"type": "time_window", "start": p["night_start"], "end": p["night_end"]}]),
                       "electricity_night", "electricity", night, clears=True))
    return rules


def _intrusion(p: Mapping[str, Any]) -> list[EngineRule]:
    title = _names("布防期间有人闯入", "Intrusion while armed")
    armed = [{"type": "mode", "in": ["armed"]}]
    actions: list[dict[str, Any]] = [_alarm("intrusion", "major", "family"), _notify("family", "rules.intrusion")]
    if p["siren"]:
        actions.append(_command("siren", True))
    rules = [
        _rule(_spec("builtin.intrusion.contact", title, {"type": "state", "capability": "contact", "to": False},
                    actions, armed), "intrusion", "intrusion", title),
        _rule(_spec("builtin.intrusion.motion", title,
                    {"type": "threshold", "capability": "motion", "op": "eq", "value": True}, actions, armed),
              "intrusion", "intrusion", title),
    ]
    bell = _names("家中无人时有人按门铃", "Doorbell while nobody is home")
    rules.append(_rule(_spec("builtin.intrusion.doorbell", bell,
                             {"type": "threshold", "capability": "doorbell", "op": "eq", "value": True},
                             [_notify("family", "rules.doorbell_away")], [{"type": "mode", "in": ["away", "armed"]}]),
                       "doorbell", "intrusion", bell))
    return rules


def _elderly_rules(p: Mapping[str, Any]) -> list[EngineRule]:
    call = _names("独居老人紧急呼叫", "Emergency call (elderly living alone)")
    fall = _names("独居老人跌倒", "Fall (elderly living alone)")
    idle = _names("独居老人长时间无活动", "No activity (elderly living alone)")
    rules = [
        _rule(_spec("builtin.elderly.emergency", call,
                    {"type": "threshold", "capability": "emergency_call", "op": "eq", "value": True},
                    [_alarm("emergency_call", "critical", "care"), _notify("family", "rules.emergency_call")]),
              "emergency", "elderly", call, applies=_elderly),
        _rule(_spec("builtin.elderly.fall", fall, {"type": "threshold", "capability": "fall", "op": "eq", "value": True},
                    [_alarm("fall", "critical", "care"), _notify("family", "rules.fall")]),
              "fall", "elderly", fall, applies=_elderly),
        _rule(_spec("builtin.elderly.fall_state", fall,
                    {"type": "threshold", "capability": "fall_state", "op": "eq", "value": "fall"},
                    [_alarm("fall", "critical", "care"), _notify("family", "rules.fall")]),
              "fall", "elderly", fall, applies=_elderly),
    ]
    inactivity = _spec("builtin.elderly.inactivity", idle,
                       {"type": "absence", "capabilities": ACTIVITY_CAPABILITIES, "hours": p["inactive_hours"],
                        "daytime_only": True},
                       [_alarm("inactivity", "major", "family"), _notify("family", "rules.inactivity")])
    # family first, then the grid worker (alarms.escalation.WELFARE_CHAIN)
    welfare = inactivity.model_copy(update={"actions": [
        inactivity.actions[0].model_copy(update={"escalation": "welfare"}), *inactivity.actions[1:]]})
    rules.append(_rule(welfare, "inactivity", "elderly", idle, applies=_elderly))
    return rules


def _vitals(p: Mapping[str, Any]) -> list[EngineRule]:
    title = _names("生命体征异常", "Vital signs out of range")
    alarm = [_alarm("vital_signs", "major", "family"), _notify("family", "rules.vital_signs")]
    triggers = {
        "hr_low": {"capability": "heart_rate", "op": "lt", "value": p["heart_rate_min"]},
        "hr_high": {"capability": "heart_rate", "op": "gt", "value": p["heart_rate_max"]},
        "sys_high": {"capability": "blood_pressure", "field": "systolic", "op": "ge", "value": p["systolic_max"]},
        "sys_low": {"capability": "blood_pressure", "field": "systolic", "op": "lt", "value": p["systolic_min"]},
        "dia_high": {"capability": "blood_pressure", "field": "diastolic", "op": "ge", "value": p["diastolic_max"]},
        "spo2_low": {"capability": "spo2", "op": "lt", "value": p["spo2_min"]},
    }
    return [_rule(_spec(f"builtin.vital_signs.{name}", title, {"type": "threshold", **trigger}, alarm),
                  "vital_signs", "vital_signs", title) for name, trigger in triggers.items()]


def _environment(p: Mapping[str, Any]) -> list[EngineRule]:
    rules = []
    for capability, limit, zh, en, hints in (
        ("pm2_5", p["pm2_5_max"], "PM2.5 超标", "PM2.5 above the guideline", _PURIFIER_HINTS),
        ("co2", p["co2_max"], "二氧化碳超标，建议通风", "CO2 above the guideline: ventilate", _VENTILATION_HINTS),
        ("formaldehyde", p["formaldehyde_max"], "甲醛超标", "Formaldehyde above the guideline",
         _PURIFIER_HINTS + _VENTILATION_HINTS),
    ):
        title = _names(zh, en)
        actions: list[dict[str, Any]] = [_alarm("environment", "info")]
        if p["automate"]:
            actions.append(_command("on_off", True))
        spec = _spec(f"builtin.environment.{capability}", title,
                     {"type": "duration", "capability": capability, "op": "gt", "value": limit,
                      "seconds": p["seconds"]}, actions)
        rules.append(_rule(spec, f"environment_{capability}", "environment", title, clears=True,
                           target_filter=_hinted(hints)))
    return rules


def _device_health(p: Mapping[str, Any]) -> list[EngineRule]:
    offline = _names("安全设备离线", "Safety device offline")
    battery = _names("安全设备电量低", "Safety device battery low")
    return [
        _rule(_spec("builtin.device_health.offline", offline,
                    {"type": "availability", "capabilities": sorted(SAFETY_CAPABILITIES),
                     "offline_hours": p["offline_hours"]},
                    [_alarm("device_health", "minor", "property")]),
              "device_offline", "device_health", offline, clears=True, watch_filter=_is_safety_device),
        _rule(_spec("builtin.device_health.battery", battery,
                    {"type": "battery_low", "below_percent": p["battery_percent"]},
                    [_alarm("device_health", "minor", "property")]),
              "device_battery", "device_health", battery, clears=True, watch_filter=_is_safety_device),
    ]


BUILTINS: dict[str, Builtin] = {b.key: b for b in (
    Builtin("fire", _names("火灾", "Fire"), (
        Param("siren", True, description="sound the household's sirens"),), _fire, may_disable=False),
    Builtin("gas", _names("燃气与一氧化碳", "Gas and carbon monoxide"), (
        Param("gas_ppm_max", 5000, 500, 10000, "ppm", description="combustible gas, 10 % LEL of methane"),
        Param("gas_lel_max", 10, 3, 25, "%LEL", description="GB 15322.2: household detectors 3-25 %LEL"),
        Param("co_ppm_max", 100, 30, 300, "ppm", description="carbon monoxide"),
        Param("close_valve", True, adjustable=False, description="close the gas valve"),
    ), _gas, may_disable=False),
    Builtin("water", _names("漏水", "Water leak"), (
        Param("close_valve", True, description="close the water valve"),), _water),
    Builtin("electricity", _names("用电安全", "Electrical safety"), (
        Param("max_w", 2500, 100, 10000, "W", description="rated load of a socket"),
        Param("overload_seconds", 30, 5, 600, "s"),
        Param("cut_off", False, description="switch the overloaded plug off"),
        Param("night_w", 1500, 100, 10000, "W"),
        Param("night_seconds", 900, 60, 7200, "s"),
        Param("night_start", "00:00", adjustable=False),
        Param("night_end", "05:00", adjustable=False),
    ), _electricity),
    Builtin("intrusion", _names("防盗", "Intrusion"), (
        Param("siren", True, description="sound the household's sirens"),), _intrusion),
    Builtin("elderly", _names("独居老人关怀", "Elderly living alone"), (
        Param("inactive_hours", 4, 1, 12, "h", description="daytime hours without any activity"),
    ), _elderly_rules, may_disable=False, applies_to="households with a member tagged elderly_alone"),
    Builtin("vital_signs", _names("生命体征", "Vital signs"), (
        Param("heart_rate_min", 45, 30, 60, "bpm"), Param("heart_rate_max", 120, 90, 180, "bpm"),
        Param("systolic_max", 180, 140, 220, "mmHg"), Param("systolic_min", 90, 70, 110, "mmHg"),
        Param("diastolic_max", 110, 90, 130, "mmHg"), Param("spo2_min", 92, 85, 95, "%"),
    ), _vitals),
    Builtin("environment", _names("室内环境", "Indoor air"), (
        Param("pm2_5_max", 50, 25, 150, "µg/m³", description="GB/T 18883-2022, 24 h mean"),
        Param("co2_max", 1000, 800, 5000, "ppm", description="GB/T 18883-2022: 0.10 %, 24 h mean"),
        Param("formaldehyde_max", 0.08, 0.03, 0.3, "mg/m³", description="GB/T 18883-2022, 1 h mean"),
        Param("seconds", 1800, 300, 14400, "s", description="how long above before suggesting"),
        Param("automate", False, description="switch a purifier or fresh-air unit on"),
    ), _environment),
    Builtin("device_health", _names("设备健康", "Device health"), (
        Param("offline_hours", 12, 1, 72, "h"), Param("battery_percent", 15, 5, 40, "%"),
    ), _device_health),
)}


def _param_check(builtin: Builtin, name: str, value: Any) -> Any:
    param = next(p for p in builtin.params if p.name == name)
    if isinstance(param.default, str):
        return param.default
    return param.check(value)


class BuiltinRules:
    """The engine's view of the built-ins: the default rules, and variants per parameters (cached)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._variants: dict[tuple[str, tuple[tuple[str, Any], ...]], dict[str, EngineRule]] = {}

    def defaults(self) -> list[EngineRule]:
        return [rule for b in BUILTINS.values() for rule in b.build(b.defaults())]

    def variant(self, rule: EngineRule, overrides: Mapping[str, Any]) -> EngineRule:
        builtin = BUILTINS.get(rule.setting or "")
        if builtin is None:
            return rule
        params = builtin.effective(overrides)
        key = (builtin.key, tuple(sorted(params.items())))
        with self._lock:
            rules = self._variants.get(key)
            if rules is None:
                try:
                    rules = {r.key: r for r in builtin.build(params)}
                except Exception:  # noqa: BLE001 - stored params that no longer validate: keep the defaults
                    rules = {r.key: r for r in builtin.build(builtin.defaults())}
                if len(self._variants) > 4096:
                    self._variants.clear()
                self._variants[key] = rules
        # a switched-off optional action (siren, cut-off) leaves the rule itself in place
        return rules.get(rule.key, rule)


# -- settings per household (the API) ---------------------------------------------------------------
@dataclass
class RuleView:
    key: str
    name: dict[str, str]
    enabled: bool
    may_disable: bool
    applies_to: str
    params: list[dict[str, Any]] = field(default_factory=list)


def describe(builtin: Builtin, enabled: bool, overrides: Mapping[str, Any] | None) -> RuleView:
    effective = builtin.effective(overrides)
    return RuleView(builtin.key, builtin.name, enabled or not builtin.may_disable, builtin.may_disable,
                    builtin.applies_to, [
                        {"name": p.name, "value": effective[p.name], "default": p.default, "minimum": p.minimum,
                         "maximum": p.maximum, "unit": p.unit, "adjustable": p.adjustable,
                         "description": p.description} for p in builtin.params])


def list_settings(call: Any, household_id: str) -> list[RuleView]:
    from cityweave.rules.state import HouseholdRuleSettings

    place = _household(call, household_id, write=False)
    rows = {r.rule_key: r for r in call.session.execute(select(HouseholdRuleSettings).where(
        HouseholdRuleSettings.household_id == place.id)).scalars()}
    return [describe(b, rows[b.key].enabled if b.key in rows else True,
                     rows[b.key].params if b.key in rows else None) for b in BUILTINS.values()]


def update_settings(call: Any, household_id: str, changes: Mapping[str, Any], *,
                    engine: Any = None) -> list[RuleView]:
    """``changes``: ``{rule key: {"enabled": bool?, "params": {name: value or null (= default)}}}``.
    Everything is checked before anything is written (422 with pointers)."""
    from cityweave.rules.state import HouseholdRuleSettings

    place = _household(call, household_id, write=True)
    errors: list[FieldError] = []
    planned: dict[str, tuple[bool | None, dict[str, Any]]] = {}
    for key, change in changes.items():
        builtin = BUILTINS.get(key)
        if builtin is None:
            errors.append(FieldError(f"/{key}", f"no built-in rule {key!r}; known: {sorted(BUILTINS)}"))
            continue
        if not isinstance(change, Mapping):
            errors.append(FieldError(f"/{key}", "expected an object with 'enabled' and/or 'params'"))
            continue
        unknown = set(change) - {"enabled", "params"}
        for name in sorted(unknown):
            errors.append(FieldError(f"/{key}/{name}", "unknown field"))
        enabled = change.get("enabled")
        if enabled is not None and not isinstance(enabled, bool):
            errors.append(FieldError(f"/{key}/enabled", "expected true or false"))
        elif enabled is False and not builtin.may_disable:
            errors.append(FieldError(f"/{key}/enabled", f"the {key} rule protects lives and cannot be switched off"))
        params = change.get("params") or {}
        if not isinstance(params, Mapping):
            errors.append(FieldError(f"/{key}/params", "expected an object"))
            params = {}
        clean: dict[str, Any] = {}
        by_name = {p.name: p for p in builtin.params}
        for name, value in params.items():
            param = by_name.get(name)
            if param is None:
                errors.append(FieldError(f"/{key}/params/{name}", f"unknown parameter; known: {sorted(by_name)}"))
                continue
            if value is None:
                clean[name] = None
                continue
            if not param.adjustable:
                errors.append(FieldError(f"/{key}/params/{name}", "this parameter cannot be changed"))
                continue
            try:
                clean[name] = _param_check(builtin, name, value)
            except ValueError as exc:
                errors.append(FieldError(f"/{key}/params/{name}", str(exc)))
        planned[key] = (enabled, clean)
    if errors:
        raise Invalid(errors)
    now = call.now()
    for key, (enabled, clean) in planned.items():
        row = call.session.get(HouseholdRuleSettings, (place.id, key))
        if row is None:
            row = HouseholdRuleSettings(household_id=place.id, rule_key=key, enabled=True, params={},
                                        updated_at=now, updated_by=call.principal.user_id)
            call.session.add(row)
        params = dict(row.params or {})
        for name, value in clean.items():
            if value is None:
                params.pop(name, None)
            else:
                params[name] = value
        row.params = params
        if enabled is not None:
            row.enabled = enabled
        row.updated_at, row.updated_by = now, call.principal.user_id
        call.audit("household.rule_settings", "place", place.id, place_path=place.path,
                   details={"rule": key, "enabled": row.enabled, "params": params})
    call.session.flush()
    if engine is not None:  # this process's engine reads the change at once, others within 30 s
        from cityweave.db.engine import on_commit

        on_commit(call.session, lambda: engine.invalidate(place.id))
    return list_settings(call, household_id)


def may_update(call: Any, household_id: str) -> bool:
    """Whether :func:`update_settings` would let the caller change this household's settings (for
    pages that show the settings read-only otherwise); 404 as :func:`list_settings` when unseen."""
    from cityweave.authz.policy import Action, Resource, allows

    place = _household(call, household_id, write=False)
    return allows(call.principal, Resource.RULE_SETTING, Action.UPDATE, [place.path])


def _household(call: Any, household_id: str, *, write: bool) -> Any:
    from cityweave.authz.policy import Action, Resource, allows, check
    from cityweave.errors import NotFound
    from cityweave.places import service as places
    from cityweave.places.models import PlaceKind

    place = places.get_place(call, household_id)
    if place.kind is not PlaceKind.HOUSEHOLD:
        raise NotFound(f"no household {household_id!r}")
    readable = allows(call.principal, Resource.RULE_SETTING, Action.READ, [place.path])
    check(call.principal, Resource.RULE_SETTING, Action.READ, [place.path], visible=False)
    if write:
        check(call.principal, Resource.RULE_SETTING, Action.UPDATE, [place.path], visible=readable)
    return place
