"""A command through the machine's real Mosquitto (127.0.0.1:1883): the encoded vendor payload
arrives on the device's set topic. Skips without the broker, fails under CI=true."""

from __future__ import annotations

import json
import queue
import socket
import uuid

import paho.mqtt.client as paho
from fastapi.testclient import TestClient

from cityweave.accounts.models import Role
from tests.conftest import auth, need_service
from tests.world import World, plug

HOST, PORT = "127.0.0.1", 1883


class PahoPublisher:
    """The registry's Publisher protocol over a real paho client (what the ingest service does)."""

    def __init__(self, client: paho.Client) -> None:
        self.client = client

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> None:
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc != paho.MQTT_ERR_SUCCESS:
            raise ConnectionError(paho.error_string(info.rc))
        info.wait_for_publish(timeout=5)


def _client(name: str) -> paho.Client:
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"{name}-{uuid.uuid4().hex[:8]}")
    try:
        client.connect(HOST, PORT, keepalive=30)
    except OSError as exc:
        need_service("Mosquitto", f"cannot connect to {HOST}:{PORT}: {exc}")
    client.loop_start()
    return client


def test_command_arrives_on_the_vendors_set_topic(client: TestClient, world: World) -> None:
    with socket.socket() as probe:
        probe.settimeout(1)
        if probe.connect_ex((HOST, PORT)) != 0:
            need_service("Mosquitto", f"nothing listens on {HOST}:{PORT}")
    resident = auth(world.token(Role.RESIDENT))
    # A plug with a friendly name of its own, so other tests on the shared broker never see it.
    body = plug("ca-b1-u1-101", 4242).model_dump(mode="json")
    friendly = f"cw-test-{uuid.uuid4().hex[:10]}"
    body.update(aliases=[friendly], profile={**body["profile"], "friendly_name": friendly})
    registered = client.post("/api/v1/devices", json=body, headers=resident)
    assert registered.status_code == 201, registered.text
    device_id = registered.json()["device"]["id"]

    received: queue.Queue[paho.MQTTMessage] = queue.Queue()
    listener = _client("cw-listener")
    subscribed: queue.Queue[bool] = queue.Queue()
    listener.on_message = lambda _c, _u, message: received.put(message)
    listener.on_subscribe = lambda *_args: subscribed.put(True)
    publisher_client = _client("cw-commands")
    try:
        listener.subscribe(f"zigbee2mqtt/{friendly}/set", qos=1)
        subscribed.get(timeout=5)
        client.app.state.device_publisher = PahoPublisher(publisher_client)
        r = client.post(f"/api/v1/devices/{device_id}/commands", json={"capability": "on_off", "value": False},
                        headers=resident)
        assert r.status_code == 202, r.text
        assert r.json()["status"] == "sent"
        message = received.get(timeout=5)
        assert message.topic == f"zigbee2mqtt/{friendly}/set"
        assert json.loads(message.payload) == {"state": "OFF"}
    finally:
        for c in (listener, publisher_client):
            c.loop_stop()
            c.disconnect()
