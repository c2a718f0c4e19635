"""Every fixture file is decoded by some test: a new file without a test fails here."""

from __future__ import annotations

from tests.devices.support import require_fixtures

# Files decoded by one named test each.
SINGLE_FILES = {
    "zigbee2mqtt/bridge_devices.json": "test_zigbee2mqtt.py::test_bridge_device_list_announces_every_device",
    "zigbee2mqtt/definitions.json": "test_zigbee2mqtt.py::test_definitions_file_describes_every_model",
    "zigbee2mqtt/messages.json": "test_zigbee2mqtt.py::test_every_state_message_decodes",
    "homeassistant_discovery/discovery.json": "test_homeassistant.py::test_every_discovery_payload",
    "homeassistant_discovery/states.json": "test_homeassistant.py::test_every_state_message",
    "tasmota/messages.json": "test_tasmota.py::test_every_message_decodes (+ discovery tests)",
    "shelly/notifications.json": "test_shelly.py::test_notifications_file",
    "miot/spec_instances.json": "test_miot.py::test_spec_instances_become_devices",
    "miot/messages.json": "test_miot.py::test_every_message_decodes",
}
# Globs that parametrized tests iterate over (the same patterns as in those tests).
PARAMETRIZED = {
    "shelly/aioshelly_fixtures/*.json": "test_shelly.py::test_device_dump_discovers_and_decodes",
    "shelly/ha_core_fixtures/*.json": "test_shelly.py::test_device_dump_discovers_and_decodes",
    "shelly/aioshelly_rpc_fixtures/*/*": "test_shelly.py::test_rpc_fixture_decodes",
    "tuya/ha_core_fixtures/*.json": "test_tuya.py::test_cloud_dump_discovers_and_its_status_decodes",
    "tuya/tuya_local_devices/*.yaml": "test_tuya.py::test_local_definition_discovers_and_decodes",
}
NOT_DEVICE_DATA = {"README.md"}


def test_every_fixture_file_has_a_decoding_test():
    root = require_fixtures()
    files = {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}
    data = {f for f in files if f not in NOT_DEVICE_DATA and not f.startswith("LICENSES/")}
    covered = set(SINGLE_FILES) & data
    for pattern in PARAMETRIZED:
        covered |= {str(p.relative_to(root)) for p in root.glob(pattern) if p.is_file()}
    assert data - covered == set(), "fixture files nobody decodes"
    assert set(SINGLE_FILES) <= files, "a named fixture file disappeared"
    assert len(data) >= 100
