"""The device lifecycle on both backends: discovered → claimed → active → decommissioned."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from sqlalchemy import func, select, text

from cityweave.accounts.models import Role
from cityweave.audit.models import AuditRecord
from cityweave.authz.policy import Principal, Unauthorized
from cityweave.context import AppContext, Call
from cityweave.devices.discovery import CapabilityRef, DiscoveredDevice
from cityweave.devices.registry import service
from cityweave.devices.registry.directory import DatabaseDirectory
from cityweave.devices.registry.models import Device, DeviceStatus
from cityweave.devices.registry.schemas import DeviceClaim
from cityweave.errors import AuthenticationFailed, Conflict, Invalid, NotFound
from tests.devices.support import adapter, decode, load_json
from tests.devices_registry.support import call_as
from tests.world import World, plug

CA = "/tc/tc-d1/tc-d1-s1/ca/"
HOME = CA + "ca-g1/ca-b1/ca-b1-u1/ca-b1-u1-101/"


def _bridge_devices() -> list[DiscoveredDevice]:
    z2m, _ = adapter("zigbee2mqtt")
    listing = load_json("zigbee2mqtt/bridge_devices.json")
    result = decode(z2m, listing["topic"], listing["payload"])
    assert result.discovered and not result.rejections
    return result.discovered


def _discover_all(ctx: AppContext) -> dict[str, str]:
    """Feed the real Zigbee2MQTT bridge list into the registry; {friendly name: device id}."""
    with ctx.db.session() as session:
        rows = [service.record_discovered(session, d, ctx.clock.now()) for d in _bridge_devices()]
        return {row.name: row.id for row in rows if row is not None and row.name}


def _audits(ctx: AppContext, action: str) -> list[AuditRecord]:
    with ctx.db.session() as session:
        return list(session.execute(select(AuditRecord).where(AuditRecord.action == action)).scalars())


def test_announced_devices_are_discovered_once_and_bind_nothing(ctx: AppContext) -> None:
    ids = _discover_all(ctx)
    assert len(ids) == 44
    again = _discover_all(ctx)  # the retained list arrives again on every reconnect
    assert again == ids
    with ctx.db.session() as session:
        smoke = session.get(Device, ids["kitchen/smoke_detector"])
        assert smoke.status is DeviceStatus.DISCOVERED and smoke.place_id is None
        assert smoke.device_type == "smoke_detector" and smoke.protocol.value == "zigbee"
        assert smoke.manufacturer and smoke.model == "JTYJ-GD-01LM/BW"
        assert {"capability": "smoke", "endpoint": None, "writable": False} in smoke.capabilities
    assert len(_audits(ctx, "device.discover")) == 44
    directory = DatabaseDirectory(ctx.db)
    assert directory.find("zigbee2mqtt", "kitchen/smoke_detector") is None


def test_claim_into_own_household_binds_and_first_reading_activates(ctx: AppContext, world: World) -> None:
    ids = _discover_all(ctx)
    directory = DatabaseDirectory(ctx.db, check_interval=3600)
    directory.refresh()
    before = directory.revision
    device_id = ids["kitchen/smoke_detector"]
    with ctx.db.session() as session:
        call = call_as(ctx, session, Role.RESIDENT, HOME)
        device = service.claim(call, device_id, DeviceClaim(place_id="ca-b1-u1-101", name="厨房烟感"))
        assert device.status is DeviceStatus.CLAIMED and device.place_path == HOME
    assert directory.find("zigbee2mqtt", "kitchen/smoke_detector") is None  # not checked yet
    directory.invalidate()
    binding = directory.find("zigbee2mqtt", "kitchen/smoke_detector")
    assert binding is not None and binding.device_key == device_id and directory.revision > before
    assert directory.find("zigbee2mqtt", binding.address) is binding

    # The claimed detector's next message decodes into a reading for it and activates it.
    z2m = _z2m(directory)
    result = decode(z2m, "zigbee2mqtt/kitchen/smoke_detector", {"smoke": False, "battery": 90})
    assert {r.device_key for r in result.readings} == {device_id}
    with ctx.db.session() as session:
        assert service.mark_seen(session, [r.device_key for r in result.readings], ctx.clock.now()) == [device_id]
        assert service.mark_seen(session, device_id, ctx.clock.now()) == []
    with ctx.db.session() as session:
        device = session.get(Device, device_id)
        assert device.status is DeviceStatus.ACTIVE and device.online is True
        assert device.last_seen_at == ctx.clock.now()
    claims = _audits(ctx, "device.claim")
    assert [a.place_path for a in claims] == [HOME]
    assert _audits(ctx, "device.activate")[0].place_path == HOME


def _z2m(directory: DatabaseDirectory):
    from cityweave.devices.adapters import create
    return create("zigbee2mqtt", directory=directory)


def test_who_may_claim_where(ctx: AppContext) -> None:
    ids = _discover_all(ctx)
    with ctx.db.session() as session:
        resident = call_as(ctx, session, Role.RESIDENT, HOME)
        with pytest.raises(NotFound):  # the neighbour's flat is not even visible
            service.claim(resident, ids["hallway_smoke"], DeviceClaim(place_id="ca-b1-u1-102"))
        staff = call_as(ctx, session, Role.PROPERTY_STAFF, CA)
        with pytest.raises(Unauthorized) as denied:  # staff install facilities, not devices in homes
            service.claim(staff, ids["hallway_smoke"], DeviceClaim(place_id="ca-b1-u1-101"))
        assert not denied.value.hidden
        grid = call_as(ctx, session, Role.GRID_WORKER, CA + "ca-g1/")
        with pytest.raises(Unauthorized):
            service.claim(grid, ids["hallway_smoke"], DeviceClaim(place_id="ca-b1-u1-101"))
        with pytest.raises(Invalid):  # a building is neither a household nor a facility
            service.claim(staff, ids["hallway_smoke"], DeviceClaim(place_id="ca-b1"))
        other_staff = call_as(ctx, session, Role.PROPERTY_STAFF, "/tc/tc-d1/tc-d1-s1/cb/")
        with pytest.raises(NotFound):
            service.claim(other_staff, ids["hallway_smoke"], DeviceClaim(place_id="ca-gate1"))
        gate = service.claim(staff, ids["hallway_smoke"], DeviceClaim(place_id="ca-gate1"))
        assert gate.status is DeviceStatus.CLAIMED and gate.place_kind == "facility"


def test_invalid_transitions_are_conflicts(ctx: AppContext, world: World) -> None:
    ids = _discover_all(ctx)
    with ctx.db.session() as session:
        admin = Call(ctx, session, Principal.system("test"))
        with pytest.raises(Conflict):  # discovered → active skips the claim
            service.activate(admin, ids["front_door"])
        with pytest.raises(Conflict):  # no credentials for a device nobody owns
            service.rotate_credentials(admin, ids["front_door"])
        bound = world.device_of_household["ca-b1-u1-101"]
        with pytest.raises(Conflict):  # claimed already
            service.claim(admin, bound, DeviceClaim(place_id="ca-b1-u1-101"))
        service.activate(admin, bound)
        with pytest.raises(Conflict):
            service.activate(admin, bound)
        service.decommission(admin, bound)
        for step in (lambda: service.decommission(admin, bound), lambda: service.activate(admin, bound),
                     lambda: service.claim(admin, bound, DeviceClaim(place_id="ca-b1-u1-101")),
                     lambda: service.rotate_credentials(admin, bound)):
            with pytest.raises(Conflict):
                step()


def test_withdrawn_announcements(ctx: AppContext) -> None:
    ids = _discover_all(ctx)
    now = ctx.clock.now()
    with ctx.db.session() as session:
        admin = Call(ctx, session, Principal.system("test"))
        service.claim(admin, ids["front_door"], DeviceClaim(place_id="ca-b1-u1-101"))
        window = session.get(Device, ids["bedroom_window"])
        gone = service.record_discovered(session, DiscoveredDevice("zigbee2mqtt", window.address, removed=True), now)
        assert gone is not None and gone.status is DeviceStatus.DECOMMISSIONED
        door = session.get(Device, ids["front_door"])
        kept = service.record_discovered(session, DiscoveredDevice("zigbee2mqtt", door.address, removed=True), now)
        assert kept is not None and kept.status is DeviceStatus.CLAIMED and kept.online is False
        assert service.record_discovered(session, DiscoveredDevice("zigbee2mqtt", "0xnothing", removed=True), now) is None
    # Paired again: the same row comes back, not a second one.
    assert _discover_all(ctx)["bedroom_window"] == ids["bedroom_window"]
    with ctx.db.session() as session:
        assert session.get(Device, ids["bedroom_window"]).status is DeviceStatus.DISCOVERED
        assert session.execute(select(func.count()).select_from(Device)).scalar_one() == 44 + 5


def test_credentials_are_hashed_rotated_and_revoked(ctx: AppContext) -> None:
    now = ctx.clock.now()
    with ctx.db.session() as session:
        resident = call_as(ctx, session, Role.RESIDENT, HOME)
        device, _, token = service.register(resident, plug("ca-b1-u1-101", 99))
        device_id = device.id
    assert token.startswith("cwd_")
    secret = token.split("_", 2)[2]
    with ctx.db.session() as session:
        dump = " ".join(str(v) for row in session.execute(text("SELECT * FROM device_credentials")) for v in row)
        assert secret not in dump and token not in dump
        assert hashlib.sha256(secret.encode()).hexdigest() in dump
        assert service.verify_token(session, token, now).id == device_id
        assert service.verify_mqtt_login(session, device_id, token, now).id == device_id
        with pytest.raises(AuthenticationFailed):
            service.verify_mqtt_login(session, "dev-someoneelse", token, now)
        for bad in ("", "cwd_x", "cwd_" + "a" * 40 + "_x", token[:-1] + ("A" if token[-1] != "A" else "B")):
            with pytest.raises(AuthenticationFailed):
                service.verify_token(session, bad, now)
    with ctx.db.session() as session:
        resident = call_as(ctx, session, Role.RESIDENT, HOME)
        _, new_token = service.rotate_credentials(resident, device_id)
    with ctx.db.session() as session:
        with pytest.raises(AuthenticationFailed):
            service.verify_token(session, token, now)
        assert service.verify_token(session, new_token, now + timedelta(minutes=5)).id == device_id
    with ctx.db.session() as session:
        service.decommission(call_as(ctx, session, Role.RESIDENT, HOME), device_id)
    with ctx.db.session() as session, pytest.raises(AuthenticationFailed):
        service.verify_token(session, new_token, now)


def test_one_live_device_per_vendor_address(ctx: AppContext) -> None:
    with ctx.db.session() as session:
        resident = call_as(ctx, session, Role.RESIDENT, HOME)
        first, _, _ = service.register(resident, plug("ca-b1-u1-101", 77))
        with pytest.raises(Conflict):
            service.register(resident, plug("ca-b1-u1-101", 77))
        service.decommission(resident, first.id)
        second, _, _ = service.register(resident, plug("ca-b1-u1-101", 77))
        assert second.id != first.id


def test_decommissioned_devices_stop_binding(ctx: AppContext, world: World) -> None:
    directory = DatabaseDirectory(ctx.db)
    device_id = world.device_of_household["ca-b1-u1-102"]
    binding = directory.find("zigbee2mqtt", "plug-ca-b1-u1-102")
    assert binding is not None and binding.device_key == device_id
    assert {b.device_key for b in directory.bindings("zigbee2mqtt")} == set(world.device_of_household.values())
    with ctx.db.session() as session:
        service.decommission(Call(ctx, session, Principal.system("test")), device_id)
    directory.invalidate()
    assert directory.find("zigbee2mqtt", "plug-ca-b1-u1-102") is None
    with ctx.db.session() as session:
        assert session.get(Device, device_id).status is DeviceStatus.DECOMMISSIONED  # history stays


def test_registry_sink_takes_a_batch_of_device_events(ctx: AppContext, world: World) -> None:
    from dataclasses import dataclass, field
    from datetime import datetime

    from cityweave.devices.reading import AvailabilityChange
    from cityweave.devices.registry.sink import RegistryEventSink

    @dataclass
    class DeviceEvents:  # the shape of cityweave.ingest.sinks.DeviceEvents
        discovered: list[tuple[DiscoveredDevice, datetime]] = field(default_factory=list)
        availability: list[tuple[AvailabilityChange, datetime]] = field(default_factory=list)
        seen: dict[str, datetime] = field(default_factory=dict)

    plug_id = world.device_of_household["ca-b2-u1-201"]
    now = ctx.clock.now()
    earlier = now - timedelta(seconds=30)
    announced = _bridge_devices()[0]
    events = DeviceEvents(discovered=[(announced, now)],
                          availability=[(AvailabilityChange("0x1", False, plug_id), now)],
                          seen={plug_id: earlier})
    with ctx.db.session() as session:
        RegistryEventSink().write_events(session, events)
    with ctx.db.session() as session:
        plug_row = session.get(Device, plug_id)
        assert plug_row.status is DeviceStatus.ACTIVE and plug_row.last_seen_at == earlier
        assert plug_row.online is False  # it went offline after its last message
        assert session.execute(select(Device).where(Device.address == announced.address)).scalar_one().status \
            is DeviceStatus.DISCOVERED
        # An older message time never moves last_seen_at backwards.
        service.mark_seen(session, {plug_id: earlier - timedelta(minutes=5)}, now)
    with ctx.db.session() as session:
        assert session.get(Device, plug_id).last_seen_at == earlier
    # Offline, then a message in the same batch: online again.
    with ctx.db.session() as session:
        RegistryEventSink().write_events(session, DeviceEvents(
            availability=[(AvailabilityChange("0x1", False, plug_id), now)],
            seen={plug_id: now + timedelta(seconds=1)}))
    with ctx.db.session() as session:
        assert session.get(Device, plug_id).online is True


def test_announcements_without_a_storable_address_are_skipped(ctx: AppContext) -> None:
    with ctx.db.session() as session:
        now = ctx.clock.now()
        assert service.record_discovered(session, DiscoveredDevice("homeassistant", "x" * 201), now) is None
        assert service.record_discovered(session, DiscoveredDevice("homeassistant", ""), now) is None
        long_endpoint = DiscoveredDevice("homeassistant", "node-1", name="n" * 300, model="m" * 300,
                                         capabilities=(CapabilityRef("temperature", "sensor." + "e" * 150),))
        device = service.record_discovered(session, long_endpoint, now)
        assert device is not None and len(device.name) == 200 and len(device.model) == 200


def test_http_ingest_token_verifier(ctx: AppContext) -> None:
    from cityweave.devices.registry.verifier import DatabaseTokenVerifier

    with ctx.db.session() as session:
        device, _, token = service.register(call_as(ctx, session, Role.RESIDENT, HOME), plug("ca-b1-u1-101", 55))
        device_id = device.id
    verifier = DatabaseTokenVerifier(ctx.db, ctx.clock)
    binding = verifier.verify(token)
    assert binding is not None and binding.device_key == device_id and binding.adapter == "zigbee2mqtt"
    assert verifier.verify(token + "x") is None and verifier.verify("") is None and verifier.verify("x" * 500) is None
    with ctx.db.session() as session:
        used = text("SELECT last_used_at FROM device_credentials WHERE device_id = :d")
        assert session.execute(used, {"d": device_id}).scalar_one() is not None
        service.decommission(call_as(ctx, session, Role.RESIDENT, HOME), device_id)
    assert verifier.verify(token) is None


@pytest.mark.parametrize("order", ["config_first", "sensors_first"])
def test_tasmota_config_and_sensors_describe_one_device_in_any_order(ctx: AppContext, order: str) -> None:
    """Tasmota announces a device in two halves under its MAC (``config``: relays and the MQTT
    topic its messages use; ``sensors``: what it measures). Whichever arrives last must not erase
    the other: the demo lost the topic of every metered plug whose ``sensors`` came second, and
    their reports were refused as unknown devices."""
    from cityweave.devices.adapters import create
    from cityweave.devices.binding import InMemoryDirectory
    from cityweave.simulator.behaviour import sample
    from cityweave.simulator.fleet import PLUG, TASMOTA, Household, VirtualDevice
    from cityweave.simulator.payloads import announcements, encode

    plug_ = VirtualDevice("ca-b1-u1-101-plug1", 4242, Household("ca-b1-u1-101"), PLUG, TASMOTA, "kitchen", "plug1",
                          appliance="kettle", rated_w=1800.0)
    now = ctx.clock.now()
    values = sample(plug_, now, __import__("random").Random(1))
    tasmota = create("tasmota", directory=InMemoryDirectory())
    halves = [m for m in announcements([plug_], now, lambda _d: values) if m.topic.startswith("tasmota/discovery/")]
    assert [m.topic.rsplit("/", 1)[1] for m in halves] == ["config", "sensors"]
    if order == "sensors_first":
        halves.reverse()
    with ctx.db.session() as session:
        for message in halves * 2:  # and each again: nothing changes
            for discovered in tasmota.decode(message.topic, message.payload, now).discovered:
                device = service.record_discovered(session, discovered, now)
        assert device is not None
        assert device.aliases == [plug_.tasmota_topic]
        assert device.profile["topic"] == plug_.tasmota_topic and device.profile["sensors"] == ["ENERGY", "Time"]
        names = {ref["capability"] for ref in device.capabilities}
        assert {"on_off", "rssi", "power_w", "energy_kwh", "voltage"} <= names
        assert device.device_type == "plug"
        call = Call(ctx, session, Principal.system("test"))
        service.claim(call, device.id, DeviceClaim(place_id="ca-b1-u1-101"))
        device_id = device.id
    directory = DatabaseDirectory(ctx.db, check_interval=3600)
    directory.refresh(force=True)
    live = create("tasmota", directory=directory)
    readings = [r for m in encode(plug_, values, now) for r in live.decode(m.topic, m.payload, now).readings]
    assert {r.device_key for r in readings} == {device_id}
    assert {"on_off", "power_w", "energy_kwh"} <= {r.capability for r in readings}
