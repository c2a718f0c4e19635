"""Helpers for the ingest tests: brokers (the machine's Mosquitto, private Mosquitto instances),
publishing with paho, native payloads that carry a message number, session clean-up."""

from __future__ import annotations

import getpass
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path

import paho.mqtt.client as paho
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from tests.conftest import need_service

SHARED_HOST, SHARED_PORT = "127.0.0.1", 1883


def port_open(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(1)
        return sock.connect_ex((host, port)) == 0


def shared_mosquitto() -> str:
    """The machine's Mosquitto on 127.0.0.1:1883 (skip without it, fail under CI=true)."""
    if not port_open(SHARED_HOST, SHARED_PORT):
        need_service("Mosquitto", f"nothing listens on {SHARED_HOST}:{SHARED_PORT}")
    return f"mqtt://{SHARED_HOST}:{SHARED_PORT}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def wait_until(condition: Callable[[], bool], timeout: float, step: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step)
    return condition()


class PrivateMosquitto:
    """A Mosquitto of our own on a free port, with persistence in a temp dir, that a test may
    stop and start again. Configured as docs/ingest.md recommends (a deep per-client queue)."""

    def __init__(self, directory: Path) -> None:
        binary = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if os.path.exists("/usr/sbin/mosquitto") else None)
        if binary is None:
            need_service("Mosquitto", "the mosquitto program is not installed")
        self.binary = binary
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.config = directory / "mosquitto.conf"
        self.config.write_text(
            f"listener {self.port} 127.0.0.1\n"
            # Started as root, Mosquitto switches to the user "mosquitto", which could neither
            # write the persistence file nor the log here: a restart then lost every message
            # not yet acknowledged. Stay the user the tests run as.
            f"user {getpass.getuser()}\n"
            "allow_anonymous true\n"
            "persistence true\n"
            f"persistence_location {directory}/\n"
            "autosave_interval 1\n"
            "max_queued_messages 1000000\n"
            "max_inflight_messages 0\n"
            f"log_dest file {directory}/mosquitto.log\n"
        )
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.process = subprocess.Popen([self.binary, "-c", str(self.config)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not wait_until(lambda: port_open("127.0.0.1", self.port), 10):
            self.stop()
            raise RuntimeError("private mosquitto did not start")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.process = None


def native_state(device: str, number: int, value: float = 21.5) -> tuple[str, bytes]:
    """A native state message whose one reading carries the message number in its endpoint."""
    body = {"v": 1, "kind": "state", "device": device, "seq": number,
            "readings": [{"capability": "temperature", "value": value, "unit": "°C", "endpoint": f"m{number}"}]}
    return f"cityweave/v1/{device}/state", json.dumps(body).encode()


class Publisher:
    """A paho publisher that waits for every PUBACK (so "published" means "the broker has it")."""

    def __init__(self, url: str, client_id: str | None = None) -> None:
        address, _, query = url.partition("?")
        host, port = address.rsplit("//", 1)[1].rsplit(":", 1)
        protocol = paho.MQTTv311 if "protocol=311" in query else paho.MQTTv5  # the embedded broker: 3.1.1
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=client_id or unique("pub"),
                                  protocol=protocol)
        self.client.max_inflight_messages_set(500)
        self.client.max_queued_messages_set(0)
        self.client.connect(host.strip("[]"), int(port))
        self.client.loop_start()

    def publish(self, messages: Iterable[tuple[str, bytes]], qos: int = 1, timeout: float = 30) -> int:
        infos = [self.client.publish(topic, payload, qos=qos) for topic, payload in messages]
        for info in infos:
            info.wait_for_publish(timeout)
        return len(infos)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def forget_session(url: str, client_id: str, status_node: str | None = None) -> None:
    """End a persistent session a test left on a broker (and its retained status message), and the
    session of its companion safety client (``<client id>-safety``, see ingest/service.py)."""
    _forget_one(url, client_id, status_node)
    _forget_one(url, client_id + "-safety", None)


def _forget_one(url: str, client_id: str, status_node: str | None) -> None:
    host, port = url.split("?")[0].rsplit("//", 1)[1].rsplit(":", 1)
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv5)
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 0
    try:
        client.connect(host.strip("[]"), int(port), clean_start=True, properties=props)
        client.loop_start()
        if status_node:
            client.publish(f"cityweave/ingest/{status_node}/status", b"", qos=1, retain=True).wait_for_publish(5)
        client.disconnect()
        client.loop_stop()
    except OSError:
        pass
