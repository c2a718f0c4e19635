"""The device runtime end to end: a real broker, the registry, ingest, telemetry, commands, the API.

A Zigbee2MQTT plug registered into household ca-b1-u1-101 reports through the machine's real
Mosquitto (127.0.0.1:1883); its value shows in the device's and the household's state, not to the
neighbours; a command reaches the broker and the plug's echo confirms it in the command log. A
second test runs the embedded broker (no MQTT URL). Both backends, through the ``ctx`` fixture.
"""

from __future__ import annotations

import json
import queue
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import paho.mqtt.client as paho
import pytest
from fastapi.testclient import TestClient

from cityweave.accounts import service as accounts
from cityweave.accounts.models import Role, User
from cityweave.api.app import create_app
from cityweave.clock import ManualClock
from cityweave.context import AppContext
from cityweave.devices.registry.live import DeviceStateChange
from cityweave.runtime import DeviceRuntime
from cityweave.simulator.runner import Broker
from tests.conftest import auth, need_service
from tests.world import World, plug

HOST, PORT = "127.0.0.1", 1883
HOUSEHOLD, NEIGHBOUR = "ca-b1-u1-101", "ca-b1-u1-102"


def _mosquitto() -> None:
    with socket.socket() as probe:
        probe.settimeout(1)
        if probe.connect_ex((HOST, PORT)) != 0:
            need_service("Mosquitto", f"nothing listens on {HOST}:{PORT}")


def _paho(host: str, port: int, name: str) -> paho.Client:
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"{name}-{uuid.uuid4().hex[:8]}")
    client.connect(host, port, keepalive=30)
    client.loop_start()
    return client


def _close(*clients: paho.Client) -> None:
    for client in clients:
        client.loop_stop()
        client.disconnect()


def _until(check: Callable[[], Any], timeout: float = 10.0, every: Callable[[], None] | None = None) -> Any:
    """Poll ``check`` until it answers something truthy (bounded); ``every`` runs before each try."""
    deadline = time.monotonic() + timeout
    while True:
        if every is not None:
            every()
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.25)


@pytest.fixture
def runtime_factory(ctx: AppContext, ingest_sessions) -> Iterator[Callable[[str | None], tuple[DeviceRuntime, TestClient]]]:
    started: list[tuple[DeviceRuntime, TestClient]] = []

    def start(mqtt_url: str | None) -> tuple[DeviceRuntime, TestClient]:
        ctx.settings.mqtt_url = mqtt_url
        ctx.settings.mqtt_embedded_port = 0
        ctx.settings.mqtt_client_id = f"cw-e2e-{uuid.uuid4().hex[:10]}"
        ingest_sessions(mqtt_url, ctx.settings.mqtt_client_id, ctx.settings.mqtt_client_id)
        runtime = DeviceRuntime(ctx, node=ctx.settings.mqtt_client_id)
        app = create_app(ctx)
        runtime.start()
        runtime.install(app)
        client = TestClient(app, raise_server_exceptions=False)
        started.append((runtime, client))
        assert runtime.wait_connected(10), "the runtime did not connect to its broker"
        return runtime, client

    yield start
    for runtime, client in started:
        client.close()
        runtime.stop()


def _token_of(ctx: AppContext, user_id: str) -> str:
    with ctx.db.session() as session:
        ctx.db.write_first(session)  # the running ingest commits all the time (see Database.write_first)
        user = session.get(User, user_id)
        assert user is not None
        return accounts.issue_tokens(ctx, session, user, source_ip=None).access_token


def _value(client: TestClient, path: str, headers: dict[str, str], capability: str) -> Any:
    r = client.get(path, headers=headers)
    if r.status_code != 200:
        return None
    return next((v for v in r.json()["values"] if v["capability"] == capability), None)


def test_plug_reports_and_obeys_through_mosquitto(ctx: AppContext, world: World, clock: ManualClock,
                                                   runtime_factory) -> None:
    _mosquitto()
    runtime, client = runtime_factory(f"mqtt://{HOST}:{PORT}")
    resident = auth(world.token(Role.RESIDENT))
    # A friendly name of its own: other tests on the shared broker never see this plug.
    friendly = f"cw-e2e-{uuid.uuid4().hex[:10]}"
    body = plug(HOUSEHOLD, 4343).model_dump(mode="json")
    body.update(address=f"0x00e2e{uuid.uuid4().hex[:11]}", aliases=[friendly],
                profile={**body["profile"], "friendly_name": friendly})
    registered = client.post("/api/v1/devices", json=body, headers=resident)
    assert registered.status_code == 201, registered.text
    device_id = registered.json()["device"]["id"]
    announced: queue.Queue[DeviceStateChange] = queue.Queue()
    stop_listening = ctx.bus.subscribe(DeviceStateChange, announced.put)

    received: queue.Queue[paho.MQTTMessage] = queue.Queue()
    subscribed: queue.Queue[bool] = queue.Queue()
    listener = _paho(HOST, PORT, "cw-e2e-listener")
    device = _paho(HOST, PORT, "cw-e2e-device")
    try:
        listener.on_message = lambda _c, _u, message: received.put(message)
        listener.on_subscribe = lambda *_args: subscribed.put(True)
        listener.subscribe(f"zigbee2mqtt/{friendly}/set", qos=1)
        subscribed.get(timeout=5)

        # The device reports (again each try: the directory picks the new binding up within a second).
        report = lambda: device.publish(f"zigbee2mqtt/{friendly}",
                                        json.dumps({"state": "ON", "power": 12.5}), qos=1)
        power = _until(lambda: _value(client, f"/api/v1/devices/{device_id}/state", resident, "power_w"),
                       every=report)
        assert power is not None, "the reading never reached the device's state"
        assert power["value"] == 12.5 and power["device_id"] == device_id

        # The household's state: the resident sees it, the neighbours' resident does not.
        mine = client.get(f"/api/v1/places/{HOUSEHOLD}/state", headers=resident)
        assert mine.status_code == 200, mine.text
        assert {(v["device_id"], v["capability"]) for v in mine.json()["values"]} >= {(device_id, "power_w")}
        neighbour = auth(_token_of(ctx, world.household_user[NEIGHBOUR]))
        assert client.get(f"/api/v1/places/{HOUSEHOLD}/state", headers=neighbour).status_code in (403, 404)
        assert client.get(f"/api/v1/devices/{device_id}/state", headers=neighbour).status_code == 404
        theirs = client.get(f"/api/v1/places/{NEIGHBOUR}/state", headers=neighbour)
        assert theirs.status_code == 200 and all(v["device_id"] != device_id for v in theirs.json()["values"])
        # The building is readable by name, but its state shows the resident's own household only.
        building = client.get("/api/v1/places/ca-b1-u1/state", headers=neighbour)
        assert building.status_code in (200, 404)
        if building.status_code == 200:
            assert all(v["device_id"] != device_id for v in building.json()["values"])

        series = client.get(f"/api/v1/devices/{device_id}/telemetry", headers=resident, params={
            "capability": "power_w", "start": "2025-12-31T00:00:00Z", "end": "2026-01-02T00:00:00Z"})
        assert series.status_code == 200, series.text
        assert sum(b["count"] for b in series.json()["buckets"]) >= 1

        # A command goes out to the broker ...
        r = client.post(f"/api/v1/devices/{device_id}/commands", json={"capability": "on_off", "value": False},
                        headers=resident)
        assert r.status_code == 202, r.text
        assert r.json()["status"] == "sent"
        message = received.get(timeout=10)
        assert message.topic == f"zigbee2mqtt/{friendly}/set"
        assert json.loads(message.payload) == {"state": "OFF"}
        # ... and the plug's echo confirms it.
        clock.advance(seconds=1)
        device.publish(f"zigbee2mqtt/{friendly}", json.dumps({"state": "OFF", "power": 0}), qos=1)

        def confirmed() -> bool:
            log = client.get(f"/api/v1/devices/{device_id}/commands", headers=resident).json()
            return bool(log["items"]) and log["items"][0]["status"] == "confirmed"

        assert _until(confirmed), "the echo never confirmed the command"
        on_off = _value(client, f"/api/v1/devices/{device_id}/state", resident, "on_off")
        assert on_off is not None and on_off["value"] is False
        assert len(runtime.tracker) == 0
        # Live pages heard of the echo: the switch's new state, announced at the plug's place.
        changes = []
        while not announced.empty():
            changes.append(announced.get_nowait())
        mine = [c for c in changes if c.device_id == device_id]
        assert mine and mine[0].place_path.rstrip("/").endswith(HOUSEHOLD)
        assert mine[0].values["on_off"]["value"] is True and mine[-1].values["on_off"]["value"] is False

        ready = client.get("/readyz").json()
        assert ready["ingest"]["connected"] is True and ready["ingest"]["embedded_broker"] is False
    finally:
        stop_listening()
        _close(listener, device)


def test_embedded_broker_takes_readings(world: World, runtime_factory) -> None:
    runtime, client = runtime_factory(None)
    assert runtime.ingest.broker is not None
    broker = Broker.parse(runtime.broker_url or "")
    device_id = world.device_of_household[HOUSEHOLD]
    resident = auth(world.token(Role.RESIDENT))
    device = _paho(broker.host, broker.port, "cw-e2e-embedded")
    try:
        report = lambda: device.publish("zigbee2mqtt/plug-ca-b1-u1-101", json.dumps({"power": 42.0}), qos=1)
        power = _until(lambda: _value(client, f"/api/v1/devices/{device_id}/state", resident, "power_w"),
                       every=report)
        assert power is not None and power["value"] == 42.0
    finally:
        _close(device)
    assert client.get("/readyz").json()["ingest"]["embedded_broker"] is True
    metrics = client.get("/metrics").text
    assert "cityweave_ingest_readings_stored_total" in metrics


def test_a_batch_seen_from_several_devices(ctx: AppContext, world: World, clock: ManualClock) -> None:
    """One ingest batch usually holds several devices: their last-seen times go in one executemany."""
    from cityweave.devices.registry import service
    from cityweave.devices.registry.models import Device, DeviceStatus

    keys = sorted(world.device_of_household.values())[:3]
    assert len(keys) >= 2
    with ctx.db.session() as session:
        activated = service.mark_seen(session, dict.fromkeys(keys, clock.now()), clock.now())
    assert sorted(activated) == keys
    with ctx.db.session() as session:
        for key in keys:
            device = session.get(Device, key)
            assert device is not None and device.status is DeviceStatus.ACTIVE and device.online is True


def test_a_confirmation_survives_its_batch_rolling_back(ctx: AppContext, world: World, clock: ManualClock) -> None:
    """The tracker forgets a command once confirmed; if the batch then rolls back, the runtime
    writes the confirmation again in its own transaction, and a timeout is written too."""
    from cityweave.devices.reading import Reading
    from cityweave.devices.registry import commands
    from cityweave.devices.registry.models import CommandStatus, Device, DeviceCommand
    from tests.devices_registry.support import RecordingPublisher, call_as

    runtime = DeviceRuntime(ctx)  # not started: no broker needed
    device_id = world.device_of_household[HOUSEHOLD]
    with ctx.db.session() as session:
        device = session.get(Device, device_id)
        assert device is not None and device.place_path is not None
        call = call_as(ctx, session, Role.RESIDENT, device.place_path)
        sent = [commands.send_command(call, device_id, "on_off", value, publisher=RecordingPublisher(),
                                      tracker=runtime.tracker).id for value in (False, True)]
    with pytest.raises(RuntimeError), ctx.db.session() as session:
        runtime.readings.write_batch(session, [Reading(device_id, "on_off", False, clock.now())])
        raise RuntimeError("the batch failed after the sink ran")
    clock.advance(seconds=60)  # the second command's echo never comes
    assert runtime.expire_commands() == 2
    with ctx.db.session() as session:
        assert session.get(DeviceCommand, sent[0]).status is CommandStatus.CONFIRMED
        assert session.get(DeviceCommand, sent[1]).status is CommandStatus.TIMED_OUT
    assert runtime.expire_commands() == 0


def _shelly_body(household: str) -> tuple[str, dict[str, Any]]:
    """A Shelly Plus 2PM of its own (unique id: other tests share the broker): a switch and a cover."""
    address = f"shellyplus2pm-e2e{uuid.uuid4().hex[:8]}"
    return address, {
        "place_id": household, "name": "卧室窗帘", "adapter": "shelly", "address": address,
        "device_type": "curtain", "manufacturer": "Shelly", "model": "SNSW-102P16EU", "protocol": "wifi",
        "capabilities": [{"capability": "on_off", "endpoint": "switch:0", "writable": True},
                         {"capability": "cover_control", "endpoint": "cover:0", "writable": True}],
        "profile": {"gen": 2, "topic_prefix": address, "components": ["cover:0", "switch:0"]},
    }


def test_shelly_rpc_replies_confirm_and_reject_commands(ctx: AppContext, world: World, runtime_factory) -> None:
    """Issue 3, device acknowledgements: the device's RPC reply (on ``<src>/rpc``) reaches the
    ``CommandTracker`` through the ingest batch: a result confirms a command that expects no state
    echo (Cover.Stop), an error rejects one (Switch.Set refused)."""
    _mosquitto()
    runtime, client = runtime_factory(f"mqtt://{HOST}:{PORT}")
    resident = auth(world.token(Role.RESIDENT))
    address, body = _shelly_body(HOUSEHOLD)
    registered = client.post("/api/v1/devices", json=body, headers=resident)
    assert registered.status_code == 201, registered.text
    device_id = registered.json()["device"]["id"]

    subscribed: queue.Queue[bool] = queue.Queue()
    device = _paho(HOST, PORT, "cw-e2e-shelly")

    def on_request(_c: Any, _u: Any, message: paho.MQTTMessage) -> None:
        """The device: Cover.* succeeds, Switch.Set is refused (as a device in cover mode does)."""
        frame = json.loads(message.payload)
        reply: dict[str, Any] = {"id": frame["id"], "src": address, "dst": frame["src"]}
        if frame["method"].startswith("Cover."):
            reply["result"] = None
        else:
            reply["error"] = {"code": -106, "message": "Component is in cover mode"}
        device.publish(f"{frame['src']}/rpc", json.dumps(reply), qos=1)

    try:
        device.on_message = on_request
        device.on_subscribe = lambda *_args: subscribed.put(True)
        device.subscribe(f"{address}/rpc", qos=1)
        subscribed.get(timeout=5)

        def status_of(command_id: str) -> str:
            log = client.get(f"/api/v1/devices/{device_id}/commands", headers=resident).json()
            return next((c["status"] for c in log["items"] if c["id"] == command_id), "")

        # The directory binds the new device within a second: until then its reply is an unknown device.
        _until(lambda: runtime.directory.find("shelly", address) is not None)
        stop = client.post(f"/api/v1/devices/{device_id}/commands", headers=resident,
                           json={"capability": "cover_control", "value": "stop", "endpoint": "cover:0"})
        assert stop.status_code == 202, stop.text
        assert _until(lambda: status_of(stop.json()["id"]) == "confirmed"), status_of(stop.json()["id"])

        switch = client.post(f"/api/v1/devices/{device_id}/commands", headers=resident,
                             json={"capability": "on_off", "value": True, "endpoint": "switch:0"})
        assert switch.status_code == 202, switch.text
        assert _until(lambda: status_of(switch.json()["id"]) == "rejected"), status_of(switch.json()["id"])
        log = client.get(f"/api/v1/devices/{device_id}/commands", headers=resident).json()["items"]
        rejected = next(c for c in log if c["id"] == switch.json()["id"])
        assert "-106" in rejected["detail"] and "cover mode" in rejected["detail"]
        assert len(runtime.tracker) == 0
    finally:
        _close(device)


def _simulated_devices(household: str) -> Any:
    """A light and a plug of every simulated ecosystem in ``household``, with addresses of their
    own (a random index: other tests and the demo share the broker)."""
    import random

    from cityweave.simulator.fleet import LIGHT, PLUG, VENDORS, Fleet, Household, VirtualDevice

    home = Household(household)
    base = random.Random().randrange(1 << 20, 1 << 23) * 16
    tag = uuid.uuid4().hex[:6]
    devices = [VirtualDevice(f"{household}-{kind}{tag}{n}", base + n, home, kind, vendor, "living_room",
                             f"{kind}{tag}{n}", appliance="kettle" if kind == PLUG else None,
                             rated_w=1800.0 if kind == PLUG else 0.0)
               for n, (vendor, kind) in enumerate((v, k) for v in VENDORS for k in (LIGHT, PLUG))]
    return Fleet(seed=7, households=(home,), devices=tuple(devices))


def test_simulated_devices_answer_commands_of_every_adapter(ctx: AppContext, world: World,
                                                             runtime_factory) -> None:
    """Issue 3, the simulator answers commands: a command sent through the API to a simulated
    device of each ecosystem that takes commands ends ``confirmed``, through Mosquitto."""
    from cityweave.authz.policy import Principal
    from cityweave.context import Call
    from cityweave.devices.registry import service
    from cityweave.devices.registry.schemas import DeviceClaim
    from cityweave.simulator.registry import discover_fleet
    from cityweave.simulator.runner import start_background

    _mosquitto()
    fleet = _simulated_devices(HOUSEHOLD)
    ids: dict[str, str] = {}  # virtual id -> registry id
    with ctx.db.session() as session:
        call = Call(ctx, session, Principal.system("test"))
        for virtual_id, discovered in discover_fleet(fleet, when=ctx.clock.now()).items():
            device = service.record_discovered(session, discovered, ctx.clock.now())
            assert device is not None
            service.claim(call, device.id, DeviceClaim(place_id=HOUSEHOLD))
            ids[virtual_id] = device.id
    url = f"mqtt://{HOST}:{PORT}"
    _, client = runtime_factory(url)
    simulation = start_background(url, fleet=fleet, rate=4, announce=False)
    resident = auth(world.token(Role.RESIDENT))
    try:
        assert _until(lambda: simulation.running and simulation.error is None, 5)
        time.sleep(0.5)  # the simulator's SUBACK
        wanted = {"on_off": [False, True], "brightness": [37], "color_temperature": [3300]}
        outcomes: dict[tuple[str, str, Any], str] = {}
        for virtual in fleet.devices:
            device_id = ids[virtual.id]
            detail = client.get(f"/api/v1/devices/{device_id}", headers=resident).json()
            writable = [(c["capability"], c["endpoint"]) for c in detail["capabilities"] if c["writable"]]
            assert writable, f"{virtual.vendor} {virtual.kind} offers no command"
            for capability, endpoint in writable:
                for value in wanted[capability]:
                    r = client.post(f"/api/v1/devices/{device_id}/commands", headers=resident,
                                    json={"capability": capability, "value": value, "endpoint": endpoint})
                    assert r.status_code == 202, r.text
                    command_id = r.json()["id"]

                    def status(device_id: str = device_id, command_id: str = command_id) -> str:
                        log = client.get(f"/api/v1/devices/{device_id}/commands", headers=resident,
                                         params={"limit": 100}).json()["items"]
                        found = next((c["status"] for c in log if c["id"] == command_id), "")
                        return found if found not in ("sent", "pending") else ""

                    outcomes[(virtual.vendor, f"{virtual.kind}.{capability}", value)] = _until(status, 10) or "sent"
        assert {key: s for key, s in outcomes.items() if s != "confirmed"} == {}
        assert {vendor for vendor, _, _ in outcomes} == {v.vendor for v in fleet.devices}
    finally:
        simulation.stop()
    assert simulation.error is None


def _connack(host: str, port: int, username: str | None, password: str | None) -> str:
    """What the broker answers a real paho client logging in with these credentials."""
    answered: queue.Queue[str] = queue.Queue()
    probe = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"cw-auth-{uuid.uuid4().hex[:8]}",
                        protocol=paho.MQTTv311)
    if username is not None:
        probe.username_pw_set(username, password)
    probe.on_connect = lambda _c, _u, _f, reason, _p: answered.put(str(reason))
    probe.connect(host, port, keepalive=30)
    probe.loop_start()
    try:
        return answered.get(timeout=10)
    finally:
        probe.loop_stop()
        probe.disconnect()


def test_embedded_broker_device_logins(ctx: AppContext, world: World, runtime_factory) -> None:
    """CITYWEAVE_MQTT_DEVICE_AUTH: the embedded broker lets a device in with its id and device
    token and nobody with a wrong or another device's token; the ingest's own client and the
    demo's simulator have accounts of their own."""
    from cityweave.config import Settings

    assert Settings().mqtt_device_auth is False  # off unless asked for
    ctx.settings.mqtt_device_auth = True
    runtime, client = runtime_factory(None)  # connected: the ingest's own account works
    assert runtime.ingest.broker is not None and runtime.ingest.broker.requires_login
    host, port = "127.0.0.1", runtime.ingest.broker.port
    assert port is not None
    resident = auth(world.token(Role.RESIDENT))
    device_id = world.device_of_household[HOUSEHOLD]
    issued = client.post(f"/api/v1/devices/{device_id}/credentials", headers=resident)
    assert issued.status_code == 201, issued.text
    token = issued.json()["token"]
    other = world.device_of_household[NEIGHBOUR]

    assert _connack(host, port, device_id, token) == "Success"
    assert _connack(host, port, device_id, token + "x") == "Not authorized"
    assert _connack(host, port, other, token) == "Not authorized"  # the token names another device
    assert _connack(host, port, None, None) == "Not authorized"
    assert _connack(host, port, device_id, "") == "Not authorized"
    simulator = Broker.parse(runtime.simulator_url() or "")
    assert _connack(host, port, simulator.username, simulator.password) == "Success"
    assert "@" not in str(runtime.broker_url)  # the printed URL carries no password

    # The device reports through its login, and the reading is stored.
    device = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"cw-auth-dev-{uuid.uuid4().hex[:8]}",
                         protocol=paho.MQTTv311)
    device.username_pw_set(device_id, token)
    device.connect(host, port)
    device.loop_start()
    try:
        report = lambda: device.publish("zigbee2mqtt/plug-ca-b1-u1-101", json.dumps({"power": 7.5}), qos=1)
        power = _until(lambda: _value(client, f"/api/v1/devices/{device_id}/state", resident, "power_w"),
                       every=report)
        assert power is not None and power["value"] == 7.5
    finally:
        _close(device)
    # Revoked by rotation: the old token no longer logs in.
    assert client.post(f"/api/v1/devices/{device_id}/credentials", headers=resident).status_code == 201
    assert _connack(host, port, device_id, token) == "Not authorized"
