"""RuleSpec and SceneSpec validation: the device vocabulary decides, errors point into the body."""

from __future__ import annotations

from datetime import time
from typing import Any

import pytest

from cityweave.errors import Invalid
from cityweave.rules.model import (
    Op,
    RuleSpec,
    SceneSpec,
    TimeWindowCondition,
    compare,
    parse,
    parse_actions,
    parse_rule,
)

LIGHTS_OFF = {"type": "command", "target": {"device_type": "light"}, "capability": "on_off", "value": False}


def rule(trigger: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"key": "test-rule", "name": {"zh-CN": "测试", "en": "Test"}, "trigger": trigger,
            "actions": [LIGHTS_OFF], **extra}


def errors(data: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(Invalid) as caught:
        parse_rule(data)
    return [(e.pointer, e.detail) for e in caught.value.errors]


def test_a_valid_rule_round_trips_as_json() -> None:
    spec = parse_rule(rule({"type": "threshold", "capability": "pm25", "op": "gt", "value": "75"},
                           conditions=[{"type": "time_window", "start": "22:00", "end": "06:00"},
                                       {"type": "mode", "in": ["home", "sleep"]}],
                           cooldown_seconds=600))
    assert spec.trigger.capability == "pm2_5" and spec.trigger.value == 75.0  # alias and coercion
    document = spec.model_dump(mode="json")
    assert document["name"] == {"zh-CN": "测试", "en": "Test"}
    assert document["conditions"][1] == {"type": "mode", "in": ["home", "sleep"]}
    assert RuleSpec.model_validate(document) == spec
    assert spec.watched_capabilities() == {"pm2_5"} and spec.commanded_capabilities() == {"on_off"}


@pytest.mark.parametrize(("trigger", "pointer", "words"), [
    ({"type": "threshold", "capability": "temprature", "op": "gt", "value": 30}, "/trigger/capability",
     "unknown capability"),
    ({"type": "threshold", "capability": "temperature", "op": "gt", "value": 500}, "/trigger/value", "outside"),
    ({"type": "threshold", "capability": "temperature", "op": "gt", "value": 200}, "/trigger/value",
     "never be true"),
    ({"type": "threshold", "capability": "humidity", "op": "lt", "value": 0}, "/trigger/value", "never be true"),
    ({"type": "threshold", "capability": "smoke", "op": "gt", "value": 1}, "/trigger/value", "needs a number"),
    ({"type": "threshold", "capability": "temperature", "op": "gt", "value": "warm"}, "/trigger/value",
     "expected a number"),
    ({"type": "threshold", "capability": "blood_pressure", "op": "gt", "value": 140}, "/trigger/value",
     "name one of its members"),
    ({"type": "threshold", "capability": "blood_pressure", "field": "mean", "op": "gt", "value": 140},
     "/trigger/value", "no member"),
    ({"type": "threshold", "capability": "on_off", "op": "between", "value": 1}, "/trigger/op", ""),
    ({"type": "state", "capability": "lock", "to": "ajar"}, "/trigger/to", "not one of"),
    ({"type": "state", "capability": "smoke", "to": True, "from": True}, "/trigger/from", "same state"),
    ({"type": "duration", "capability": "gas_ppm", "op": "gt", "value": 1000, "seconds": 0}, "/trigger/seconds", ""),
    ({"type": "absence", "capabilities": [], "hours": 12}, "/trigger/capabilities", ""),
    ({"type": "absence", "capabilities": ["motion", "teleport"], "hours": 12}, "/trigger/capabilities/1",
     "unknown capability"),
    ({"type": "repeat", "capability": "doorbell", "count": 1, "within_seconds": 60}, "/trigger/count", ""),
    ({"type": "schedule", "at": "24:00"}, "/trigger/at", "HH:MM"),
    ({"type": "schedule", "at": "7:5"}, "/trigger/at", "HH:MM"),
    ({"type": "schedule", "at": "07:00", "days": ["monday"]}, "/trigger/days/0", ""),
    ({"type": "schedule", "at": "07:00", "timezone": "Mars/Olympus"}, "/trigger/timezone", "time zone"),
    ({"type": "availability", "offline_hours": 24}, "/trigger/device_types", "device_types or capabilities"),
    ({"type": "availability", "device_types": ["toaster"], "offline_hours": 24}, "/trigger/device_types/0",
     "unknown device type"),
    ({"type": "battery_low", "below_percent": 0}, "/trigger/below_percent", ""),
    ({"type": "telepathy"}, "/trigger", "does not match"),
])
def test_bad_triggers_are_refused_with_a_pointer(trigger: dict[str, Any], pointer: str, words: str) -> None:
    found = errors(rule(trigger))
    assert [p for p, _ in found] == [pointer], found
    assert words in found[0][1]


@pytest.mark.parametrize(("action", "pointer", "words"), [
    ({"type": "command", "target": "dev-1", "capability": "temperature", "value": 20}, "/actions/0/capability",
     "read-only"),
    ({"type": "command", "target": {"device_type": "light"}, "capability": "brightness", "value": 101},
     "/actions/0/value", "outside"),
    ({"type": "command", "target": {"device_type": "lamp"}, "capability": "on_off", "value": True},
     "/actions/0/target/device_type", "unknown device type"),
    ({"type": "command", "target": {}, "capability": "on_off", "value": True}, "/actions/0/target/device_type",
     "device_type or capability"),
    ({"type": "command", "target": "../etc", "capability": "on_off", "value": True}, "/actions/0/target", ""),
    ({"type": "raise_alarm", "kind": "fire", "severity": "apocalyptic"}, "/actions/0/severity", ""),
    ({"type": "raise_alarm", "kind": "fire", "severity": "critical", "escalation": "everyone"},
     "/actions/0/escalation", "unknown escalation chain"),
    ({"type": "notify", "audience": "neighbours", "message": {"key": "alarm.fire"}}, "/actions/0/audience", ""),
    ({"type": "notify", "audience": "family", "message": {"key": "Fire! Run!"}}, "/actions/0/message/key", ""),
    ({"type": "webhook", "url": "http://example.com/hook"}, "/actions/0/url", "https"),
    ({"type": "webhook", "url": "ftp://example.com/"}, "/actions/0/url", "https"),
    ({"type": "set_mode", "mode": "party"}, "/actions/0/mode", ""),
    ({"type": "scene", "scene_id": "Leave Home"}, "/actions/0/scene_id", ""),
])
def test_bad_actions_are_refused_with_a_pointer(action: dict[str, Any], pointer: str, words: str) -> None:
    data = rule({"type": "schedule", "at": "07:00"})
    data["actions"] = [action]
    found = errors(data)
    assert [p for p, _ in found] == [pointer], found
    assert words in found[0][1]


def test_conditions_and_the_rule_itself() -> None:
    found = errors(rule({"type": "schedule", "at": "07:00"}, conditions=[
        {"type": "time_window", "start": "08:00", "end": "08:00"},
        {"type": "mode", "in": ["armd"]},
        {"type": "device_state", "capability": "contact", "op": "ge", "value": True},
    ], extra_field=1, name={"zh-CN": " ", "en": "x"}, actions=[]))
    pointers = {p for p, _ in found}
    assert {"/conditions/0/end", "/conditions/1/in/0", "/conditions/2/value", "/extra_field", "/name/zh-CN",
            "/actions"} <= pointers, found


def test_webhooks_may_use_plain_http_only_to_this_machine() -> None:
    for url in ("https://hooks.example.com/x", "http://localhost:8080/x", "http://127.0.0.1/x", "http://[::1]/x"):
        data = rule({"type": "schedule", "at": "07:00"})
        data["actions"] = [{"type": "webhook", "url": url, "secret_ref": "family-hook"}]
        assert parse_rule(data).actions[0].url == url


def test_time_windows_may_wrap_midnight() -> None:
    night = TimeWindowCondition(start="22:00", end="06:00")
    assert night.contains(time(23, 30)) and night.contains(time(0, 0)) and night.contains(time(5, 59))
    assert not night.contains(time(6, 0)) and not night.contains(time(12, 0))
    day = TimeWindowCondition(start="08:00", end="18:00")
    assert day.contains(time(8, 0)) and not day.contains(time(18, 0)) and not day.contains(time(7, 59))


def test_compare_never_raises() -> None:
    assert compare(Op.GT, 5, 3) and compare("le", 3, 3) and not compare("lt", 3, 3)
    assert compare("eq", "locked", "locked") and compare("ne", True, False)
    assert not compare("gt", "5", 3) and not compare("gt", True, 0) and not compare("lt", None, 1)


def test_scenes_hold_only_commands_and_mode_changes() -> None:
    scene = parse(SceneSpec, {"name": {"zh-CN": "离家", "en": "Leave"},
                              "actions": [LIGHTS_OFF, {"type": "set_mode", "mode": "armed"}]})
    assert [a.type for a in scene.actions] == ["command", "set_mode"]
    with pytest.raises(Invalid) as caught:
        parse(SceneSpec, {"name": {"zh-CN": "报警", "en": "Alarm"},
                          "actions": [LIGHTS_OFF, {"type": "raise_alarm", "kind": "fire", "severity": "critical"}]})
    assert [e.pointer for e in caught.value.errors] == ["/actions/1/type"]
    with pytest.raises(Invalid) as caught:
        parse_actions([LIGHTS_OFF, {"type": "set_mode", "mode": "x"}])
    assert [e.pointer for e in caught.value.errors] == ["/actions/1/mode"]


def test_one_language_is_enough_for_a_name() -> None:
    scene = parse(SceneSpec, {"name": {"zh-CN": "观影"}, "actions": [LIGHTS_OFF]})
    assert scene.model_dump(mode="json")["name"] == {"zh-CN": "观影", "en": "观影"}
    assert parse(SceneSpec, {"name": {"en": "Movie"}, "actions": [LIGHTS_OFF]}).name.get("zh-CN") == "Movie"
    with pytest.raises(Invalid) as caught:
        parse(SceneSpec, {"name": {}, "actions": [LIGHTS_OFF]})
    assert [e.pointer for e in caught.value.errors] == ["/name/zh-CN"]
