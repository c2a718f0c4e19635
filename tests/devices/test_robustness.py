"""Bad input never crashes an adapter and never becomes a reading; refusals are counted and logged."""

from __future__ import annotations

import json
import logging
import sys
import textwrap
from typing import ClassVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cityweave.devices import capabilities
from cityweave.devices.adapters import adapter_classes, adapter_for_topic, create, create_all
from cityweave.devices.adapters.base import AdapterSettings, Message, VendorAdapter, topic_matches
from cityweave.devices.binding import DeviceBinding, InMemoryDirectory
from cityweave.devices.capabilities import CAPABILITIES
from cityweave.devices.metrics import DecodeMetrics
from cityweave.devices.reasons import Reason
from tests.devices.support import NOW

# One bound device per adapter, and topics where its messages arrive.
BINDINGS = [
    DeviceBinding("z", "zigbee2mqtt", "0x01", aliases=("lamp",)),
    DeviceBinding("t", "tasmota", "AABBCC", aliases=("tasmota_1",)),
    DeviceBinding("s", "shelly", "shellyplus1-01", profile={"gen": 2, "components": ["switch:0"]}),
    DeviceBinding("s1", "shelly", "shellyplug-s-01", profile={"gen": 1}),
    DeviceBinding("u", "tuya", "tu1", profile={"dps": {"switch_1": {"code": "switch_1", "type": "boolean",
                                                                    "capability": "on_off", "endpoint": "1"}}}),
    DeviceBinding("m", "miot", "did1", profile={"properties": {"2.1": {"capability": "on_off", "format": "bool",
                                                                       "access": ["read", "write"]}}}),
    DeviceBinding("n", "native", "dev-1"),
    DeviceBinding("h", "homeassistant", "ha1", profile={"entities": {"sensor.t": {
        "component": "sensor", "config": {"state_topic": "ha/t", "device_class": "temperature"},
        "capabilities": ["temperature"]}}}),
]
TOPICS = [
    "zigbee2mqtt/lamp", "zigbee2mqtt/bridge/devices", "zigbee2mqtt/lamp/availability", "zigbee2mqtt/lamp/set",
    "tasmota_1/tele/STATE", "tasmota_1/tele/SENSOR", "tasmota/discovery/AABBCC/config", "tasmota_1/cmnd/Backlog",
    "shellyplus1-01/events/rpc", "shellyplus1-01/status/switch:0", "cityweave/rpc", "shellies/shellyplug-s-01/info",
    "shellies/announce", "tylink/tu1/thing/property/report", "tuya/tu1/dps/state", "miot/did1/rpc",
    "cityweave/v1/dev-1/state", "cityweave/v1/dev-1/announce", "homeassistant/sensor/x/config", "ha/t",
]
BAD_PAYLOADS = [
    b"", b"{", b"not json", b"\xff\xfe\x00", b"null", b"[]", b"42", b'"text"', b"{}", b"[" * 5000 + b"]" * 5000,
    b'{"a": NaN}', b'{"state": {"nested": [1, 2, {"x": null}]}}', b'{"v": 1, "readings": [null, 1, "x"]}',
    b'{"params": "x", "method": "NotifyStatus"}', b'{"data": {"switch_1": {"value": [1]}}}',
    b'{"events": 5}', b'{"sn": 1}', b'{"POWER": {"x": 1}, "Dimmer": "bright"}', b'{"99999999999999999999999": 1e400}',
]


def _adapters():
    directory = InMemoryDirectory(BINDINGS)
    return create_all(directory=directory, settings=AdapterSettings(max_payload_bytes=64 * 1024))


def _decode_everywhere(adapters, topic, payload):
    target = adapter_for_topic(adapters, topic)
    assert target is not None, topic
    return target.decode(topic, payload, NOW)


def _sound(result):
    assert Reason.ADAPTER_ERROR not in result.reasons(), result.rejections
    for reading in result.readings:
        assert capabilities.validate(reading.capability, reading.value).ok, reading
    if result.rejections or result.unknown:
        assert result.raw is not None


@pytest.mark.parametrize("topic", TOPICS)
@pytest.mark.parametrize("payload", BAD_PAYLOADS, ids=lambda p: repr(p[:24]))
def test_bad_payloads_are_refused_not_raised(topic, payload):
    _sound(_decode_everywhere(_adapters(), topic, payload))


@pytest.mark.parametrize("topic", TOPICS)
def test_oversize_is_refused_before_parsing(topic):
    limit = 1024
    adapters = create_all(directory=InMemoryDirectory(BINDINGS), settings=AdapterSettings(
        max_payload_bytes=limit, max_discovery_payload_bytes=2 * limit))
    result = _decode_everywhere(adapters, topic, b" " * (3 * limit))
    assert result.reasons() == [Reason.OVERSIZE]
    assert result.raw is not None and len(result.raw) <= 1024


JSON_LEAVES = st.one_of(st.none(), st.booleans(), st.integers(-10**12, 10**12),
                        st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=20))
JSON_VALUES = st.recursive(JSON_LEAVES, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)), max_leaves=20)
VENDOR_KEYS = st.sampled_from([
    "state", "state_left", "brightness", "color", "color_temp", "contact", "smoke", "battery", "voltage", "action",
    "POWER", "POWER1", "Dimmer", "CT", "HSBColor", "Wifi", "Shutter1", "ENERGY", "DHT11", "StatusSNS",
    "switch:0", "cover:0", "em:0", "events", "params", "method", "src", "result", "error", "data", "switch_1",
    "phase_a", "v", "kind", "values", "readings", "ts", "device", "sn", "t", "rl", "mac", "siid", "piid", "did",
])
MESSAGES = st.dictionaries(VENDOR_KEYS, JSON_VALUES, max_size=6)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(topic=st.sampled_from(TOPICS), body=MESSAGES)
def test_fuzzed_vendor_shaped_messages(topic, body):
    _sound(_decode_everywhere(_adapters(), topic, json.dumps(body).encode()))


@settings(max_examples=200, deadline=None)
@given(topic=st.sampled_from(TOPICS), payload=st.binary(max_size=300))
def test_fuzzed_bytes(topic, payload):
    _sound(_decode_everywhere(_adapters(), topic, payload))


def test_registry_finds_every_vendor_module():
    classes = adapter_classes()
    assert set(classes) == {"homeassistant", "miot", "native", "shelly", "tasmota", "tuya", "zigbee2mqtt"}
    for name, cls in classes.items():
        assert cls.name == name and cls.title
        instance = create(name)
        assert instance.subscriptions()
        assert all(instance.handles(t) for t in instance.discovery_topics() if "+" not in t and "#" not in t)


def test_adding_a_vendor_is_adding_one_module(tmp_path, monkeypatch):
    package = sys.modules["cityweave.devices.adapters"]
    (tmp_path / "acme.py").write_text(textwrap.dedent('''
        from typing import ClassVar
        from cityweave.devices.adapters.base import Message, VendorAdapter

        class AcmeAdapter(VendorAdapter):
            name: ClassVar[str] = "acme"
            title: ClassVar[str] = "ACME"

            def subscriptions(self):
                return ["acme/+"]

            def _decode(self, message: Message) -> None:
                if message.bind(message.topic.split("/")[1]):
                    message.read("temperature", float(message.payload))
    '''))
    monkeypatch.setattr(package, "__path__", [*package.__path__, str(tmp_path)])
    adapter_classes.cache_clear()
    try:
        acme = create("acme", directory=InMemoryDirectory([DeviceBinding("k", "acme", "x")]))
        assert acme.decode("acme/x", b"21.5", NOW).readings[0].value == 21.5
        assert acme.decode("acme/x", b"hot", NOW).reasons() == [Reason.ADAPTER_ERROR]  # its bug, caught
    finally:
        adapter_classes.cache_clear()
        sys.modules.pop("cityweave.devices.adapters.acme", None)


class _Broken(VendorAdapter):
    name: ClassVar[str] = "broken"
    title: ClassVar[str] = "Broken"

    def subscriptions(self):
        return ["broken/#"]

    def _decode(self, message: Message) -> None:
        message.bind("x")
        message.read("temperature", 20)
        raise RuntimeError("boom")


def test_an_adapter_bug_is_caught_counted_and_logged(caplog):
    metrics = DecodeMetrics()
    broken = _Broken(InMemoryDirectory([DeviceBinding("k", "broken", "x")]), metrics=metrics)
    with caplog.at_level(logging.WARNING, logger="cityweave.devices"):
        result = broken.decode("broken/x", b"{}", NOW)
    assert result.reasons() == [Reason.ADAPTER_ERROR] and not result.readings  # nothing half-decoded survives
    assert metrics.rejected("broken", "adapter_error") == 1
    assert any("boom" in r.getMessage() or r.exc_info for r in caplog.records)


def test_metrics_count_and_log_every_refusal(caplog):
    metrics = DecodeMetrics()
    directory = InMemoryDirectory(BINDINGS)
    native = create("native", directory=directory, metrics=metrics)
    with caplog.at_level(logging.WARNING, logger="cityweave.devices"):
        native.decode("cityweave/v1/dev-1/state", b'{"v":1,"values":{"battery":140,"on_off":true},"x":1}', NOW)
        native.decode("cityweave/v1/dev-1/state", b"{broken", NOW)
        native.decode("cityweave/v1/ghost/state", b'{"v":1,"values":{"on_off":true}}', NOW)
    snapshot = metrics.snapshot()
    assert snapshot["messages"] == {"native": 3} and snapshot["readings"] == {"native": 1}
    assert snapshot["rejections"] == {"native:out_of_range": 1, "native:malformed_json": 1, "native:unknown_device": 1}
    assert snapshot["dropped"] == {"native": 2} and snapshot["unknown_fields"] == {"native": 1}
    refusals = [r for r in caplog.records if r.getMessage().startswith("device message refused")]
    assert {r.reason for r in refusals} == {"out_of_range", "malformed_json", "unknown_device"}
    assert all(r.adapter == "native" and r.topic for r in refusals)
    text = metrics.prometheus()
    assert 'cityweave_device_rejections_total{adapter="native",reason="out_of_range"} 1' in text
    assert "# TYPE cityweave_device_messages_total counter" in text


def test_topic_matching():
    assert topic_matches("a/+/c", "a/b/c") and not topic_matches("a/+/c", "a/b/d")
    assert topic_matches("a/#", "a") and topic_matches("a/#", "a/b/c") and not topic_matches("a/b", "a/b/c")


def test_auto_bind_is_opt_in():
    strict = create("native")
    assert strict.decode("cityweave/v1/x/state", b'{"v":1,"values":{"on_off":true}}', NOW).reasons() == [Reason.UNKNOWN_DEVICE]
    open_ = create("native", directory=InMemoryDirectory(auto_bind=True))
    assert open_.decode("cityweave/v1/x/state", b'{"v":1,"values":{"on_off":true}}', NOW).readings[0].device_key == "native:x"


# Vendor-shaped messages one level deeper: the right envelope, random members.
def _keys(*names):
    return st.sampled_from(names)


V = JSON_VALUES
SHELLY_MEMBERS = _keys("output", "apower", "voltage", "current", "freq", "pf", "aenergy", "ret_aenergy",
                       "temperature", "brightness", "state", "current_pos", "tC", "rh", "lux", "illumination",
                       "battery", "external", "current_C", "target_C", "enable", "pos", "rssi", "value",
                       "num_objects", "alarm", "mute", "a_act_power", "total_act", "a_total_act_energy",
                       "n_current", "id", "ts")
SHELLY_COMPONENTS = _keys("switch:0", "cover:0", "light:0", "input:0", "em:0", "emdata:0", "em1:0", "em1data:0",
                          "temperature:0", "humidity:0", "illuminance:0", "devicepower:0", "thermostat:0",
                          "blutrv:200", "presencezone:200", "smoke:0", "flood:0", "wifi", "sys", "voltmeter",
                          "pm1:0", "weird:1")
SHELLY_STATUS = st.dictionaries(SHELLY_MEMBERS, V, max_size=6)
SHELLY_EVENTS = st.lists(st.dictionaries(_keys("event", "component", "id", "ts", "data"), V), max_size=3)
SHELLY_FRAME = st.fixed_dictionaries({
    "src": st.just("shellyplus1-01"),
    "method": _keys("NotifyStatus", "NotifyFullStatus", "NotifyEvent"),
    "params": st.dictionaries(st.one_of(SHELLY_COMPONENTS, _keys("events", "ts")),
                              st.one_of(SHELLY_STATUS, SHELLY_EVENTS, V), max_size=4)})
SHELLY_REPLY = st.fixed_dictionaries({
    "id": V, "src": st.just("shellyplus1-01"),
    "result": st.one_of(V, st.dictionaries(SHELLY_COMPONENTS, SHELLY_STATUS, max_size=3))})
GEN1_STATUS = st.dictionaries(
    _keys("relays", "meters", "lights", "tmp", "gas_sensor", "concentration", "valves", "ext_temperature",
          "ext_humidity", "hum", "bat", "inputs", "wifi_sta"),
    st.one_of(V, st.lists(st.dictionaries(_keys("ison", "power", "total", "is_valid", "brightness", "state",
                                                "input"), V), max_size=2)), max_size=5)
TASMOTA = st.dictionaries(
    _keys("StatusSNS", "StatusSTS", "ENERGY", "DHT11", "ANALOG", "Shutter1", "POWER", "Wifi", "HSBColor",
          "Switch1", "TempUnit"),
    st.one_of(V, st.dictionaries(_keys("Temperature", "Humidity", "Total", "Power", "Position", "Direction",
                                       "Id", "Temperature1", "CTEnergy1", "Signal", "Phase1", "TempUnit"),
                                 V, max_size=5)), max_size=4)
TASMOTA_CONFIG = st.dictionaries(_keys("mac", "t", "ft", "rl", "lt_st", "so", "swc", "bat", "fn", "md", "state"),
                                 V, max_size=8)
TUYA = st.fixed_dictionaries({
    "data": st.dictionaries(_keys("switch_1", "other"),
                            st.one_of(V, st.fixed_dictionaries({"value": V, "time": V})), max_size=3),
    "time": V})
MIOT = st.fixed_dictionaries({
    "id": V, "method": _keys("properties_changed", "event_occured", "set_properties", "action", "get_properties"),
    "params": st.lists(st.fixed_dictionaries({
        "did": _keys("did1", "x", None), "siid": _keys(2, 3, "2"), "piid": _keys(1, 2), "value": V,
        "eiid": V, "aiid": V, "arguments": V}), max_size=3)})
NATIVE = st.fixed_dictionaries({
    "v": st.just(1),
    "readings": st.lists(st.fixed_dictionaries({
        "capability": st.sampled_from(sorted(CAPABILITIES)), "value": V,
        "unit": st.one_of(st.none(), _keys("W", "kW", "°F", "mired", "x", "")),
        "endpoint": st.one_of(st.none(), st.text(max_size=3))}), max_size=4),
    "values": st.dictionaries(st.sampled_from(sorted(CAPABILITIES)), V, max_size=4)})
NATIVE_ANNOUNCE = st.fixed_dictionaries({"v": st.just(1), "capabilities": V, "device_type": V, "name": V})
Z2M = st.dictionaries(_keys("state", "brightness", "color", "color_temp", "action", "contact", "voltage",
                            "lock_state", "motor_state", "fall_status", "battery_state", "device", "linkquality"),
                      V, max_size=6)
Z2M_DEVICES = st.lists(st.fixed_dictionaries({
    "ieee_address": st.just("0x1"), "friendly_name": V,
    "definition": st.one_of(V, st.fixed_dictionaries({
        "exposes": st.lists(st.dictionaries(_keys("type", "property", "features", "access", "value_on",
                                                  "value_off", "unit", "values", "endpoint", "value_max"), V),
                            max_size=3),
        "description": V}))}), max_size=3)
HA_CONFIG = st.dictionaries(_keys("stat_t", "cmd_t", "dev_cla", "val_tpl", "qos", "~", "dev", "avty", "pl_on",
                                  "unit_of_meas", "schema", "brightness", "pos_t", "cmps", "retain"), V, max_size=6)
HA_DEVICE = st.fixed_dictionaries({
    "cmps": st.dictionaries(st.text(max_size=3), st.one_of(V, st.fixed_dictionaries({
        "p": _keys("sensor", "light", "cover", "bogus"), "stat_t": V})), max_size=3),
    "dev": V})
STRUCTURED = st.one_of(
    st.tuples(st.just("shellyplus1-01/events/rpc"), SHELLY_FRAME),
    st.tuples(st.just("cityweave/rpc"), SHELLY_REPLY),
    st.tuples(st.just("shellies/shellyplug-s-01/info"), GEN1_STATUS),
    st.tuples(st.just("tasmota_1/stat/STATUS10"), TASMOTA),
    st.tuples(st.just("tasmota_1/tele/SENSOR"), TASMOTA),
    st.tuples(st.just("tasmota/discovery/AABBCC/config"), TASMOTA_CONFIG),
    st.tuples(st.just("tylink/tu1/thing/property/report"), TUYA),
    st.tuples(st.just("miot/did1/rpc"), MIOT),
    st.tuples(st.just("cityweave/v1/dev-1/state"), NATIVE),
    st.tuples(st.just("cityweave/v1/dev-1/announce"), NATIVE_ANNOUNCE),
    st.tuples(st.just("zigbee2mqtt/lamp"), Z2M),
    st.tuples(st.just("zigbee2mqtt/bridge/devices"), Z2M_DEVICES),
    st.tuples(st.just("homeassistant/sensor/x/config"), HA_CONFIG),
    st.tuples(st.just("homeassistant/device/x/config"), HA_DEVICE),
    st.tuples(st.just("ha/t"), V),
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=STRUCTURED)
def test_fuzzed_envelopes(case):
    topic, body = case
    _sound(_decode_everywhere(_adapters(), topic, json.dumps(body).encode()))
