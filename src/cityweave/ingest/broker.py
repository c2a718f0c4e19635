"""The embedded MQTT broker: ``cityweave demo`` and a default ``serve`` need no external service.

amqtt (pure Python, asyncio) runs in its own thread and event loop inside the CityWeave process.
We bind the listening sockets ourselves with :func:`cityweave.net.bind_tcp` (127.0.0.1 and ::1 by
default, so IPv6 as well as IPv4; ``::`` is explicitly dual-stack) and hand connections to amqtt as
an "external" listener: amqtt's own bind parsing cannot open IPv6 literals. When the configured
port is taken, a free one is chosen and reported (``EmbeddedBroker.port``).

Limits, by design of an embedded broker: it speaks MQTT 3.1.1, keeps sessions in memory only
(a restart of CityWeave restarts the broker and drops what it had queued) and manages a few
thousand QoS 1 messages per second. Installations with real device fleets point
``CITYWEAVE_MQTT_URL`` at Mosquitto, EMQX or similar.

With a ``login`` check (``CITYWEAVE_MQTT_DEVICE_AUTH``) every connection needs a username and
password: a device's id and its device token, or one of the accounts the broker hands out to
CityWeave's own clients (:meth:`EmbeddedBroker.add_account`: the ingest subscriber, the demo's
simulator). Without one, anyone who reaches the port may connect (the default; see docs/ingest.md).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import secrets
import socket
import threading
import uuid
from collections.abc import Callable
from functools import partial
from typing import Any
from urllib.parse import quote

from cityweave.net import bind_tcp, parse_hosts

log = logging.getLogger("cityweave.ingest.broker")


class EmbeddedBroker:
    def __init__(self, hosts: str = "127.0.0.1,::1", port: int = 1883, *,
                 login: Callable[[str, str], bool] | None = None) -> None:
        self.hosts = hosts
        self.requested_port = port
        self.login = login  # (username, password) -> allowed; None: anonymous connections
        self._accounts: dict[str, str] = {}
        self._login_key: str | None = None
        self.port: int | None = None
        self.sockets: list[socket.socket] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._broker: Any = None
        self._servers: list[asyncio.AbstractServer] = []

    @property
    def url(self) -> str:
        if self.port is None:
            raise RuntimeError("the embedded broker is not running")
        return f"mqtt://127.0.0.1:{self.port}?protocol=311"

    @property
    def requires_login(self) -> bool:
        return self.login is not None

    def add_account(self, username: str) -> str:
        """A password for one of CityWeave's own clients (kept in memory; a new one each start)."""
        password = self._accounts.get(username) or secrets.token_urlsafe(24)
        self._accounts[username] = password
        return password

    def url_for(self, username: str) -> str:
        """The broker URL with this account's credentials (when logins are required)."""
        if not self.requires_login:
            return self.url
        password = self.add_account(username)
        return f"mqtt://{quote(username, safe='')}:{quote(password, safe='')}@127.0.0.1:{self.port}?protocol=311"

    def _check(self, username: str, password: str) -> bool:
        own = self._accounts.get(username)
        if own is not None:
            return hmac.compare_digest(own.encode(), password.encode())
        return self.login is not None and bool(self.login(username, password))

    def _bind(self) -> list[socket.socket]:
        if self.requested_port:
            try:
                return self._bind_all(self.requested_port)
            except OSError as exc:
                log.warning("MQTT port %d unavailable (%s); choosing a free port", self.requested_port, exc)
        last: OSError | None = None
        for _ in range(20):
            probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
            probe.close()
            try:
                return self._bind_all(port)
            except OSError as exc:
                last = exc
        raise OSError(f"no free port for the embedded MQTT broker: {last}")

    def _bind_all(self, port: int) -> list[socket.socket]:
        """Every host on the same port. A host in use by another program fails the port (devices
        would reach that program instead); a host the machine lacks (no IPv6) is skipped."""
        bound: list[socket.socket] = []
        try:
            for host in parse_hosts(self.hosts):
                try:
                    bound += bind_tcp(host, port)
                except OSError as exc:
                    if "in use" in str(exc).lower():
                        raise
                    log.warning("embedded MQTT broker not listening on %s: %s", host, exc)
        except OSError:
            for sock in bound:
                sock.close()
            raise
        if not bound:
            raise OSError(f"cannot listen on any of {self.hosts} port {port}")
        return bound

    def start(self, timeout: float = 15.0) -> None:
        from amqtt.broker import Broker  # imported here: only the embedded setup needs it

        logging.getLogger("amqtt").setLevel(logging.WARNING)
        logging.getLogger("transitions").setLevel(logging.WARNING)
        self.sockets = self._bind()
        self.port = self.sockets[0].getsockname()[1]
        plugins: dict[str, Any] = {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}}
        if self.login is not None:
            from cityweave.ingest.broker_auth import LOGINS

            self._login_key = uuid.uuid4().hex
            LOGINS[self._login_key] = self._check
            plugins = {"cityweave.ingest.broker_auth.LoginPlugin": {"login": self._login_key}}
        config = {"listeners": {"default": {"type": "external"}}, "plugins": plugins}
        ready = threading.Event()
        failure: list[BaseException] = []
        loop = asyncio.new_event_loop()
        self._loop = loop

        async def boot() -> None:
            self._broker = Broker(config, loop=loop)
            await self._broker.start()
            handler = partial(self._broker.stream_connected, listener_name="default")
            for sock in self.sockets:
                self._servers.append(await asyncio.start_server(handler, sock=sock))

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(boot())
            except BaseException as exc:  # noqa: BLE001 - reported to start()
                failure.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()

        self._thread = threading.Thread(target=run, name="cityweave-mqtt-broker", daemon=True)
        self._thread.start()
        if not ready.wait(timeout) or failure:
            self.stop()
            raise RuntimeError(f"embedded MQTT broker did not start: {failure[0] if failure else 'timeout'}")
        log.info("embedded MQTT broker on %s", ", ".join(_name(s) for s in self.sockets))

    def stop(self, timeout: float = 10.0) -> None:
        loop = self._loop
        if loop is None:
            return

        async def shutdown() -> None:
            for server in self._servers:
                server.close()
            if self._broker is not None:
                try:
                    await asyncio.wait_for(self._broker.shutdown(), timeout)
                except Exception:
                    log.debug("embedded broker shutdown", exc_info=True)

        if loop.is_running():
            try:
                asyncio.run_coroutine_threadsafe(shutdown(), loop).result(timeout)
            except Exception:
                log.debug("embedded broker shutdown", exc_info=True)
            loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(timeout)
        for sock in self.sockets:
            sock.close()
        if self._login_key is not None:
            from cityweave.ingest.broker_auth import LOGINS

            LOGINS.pop(self._login_key, None)
            self._login_key = None
        self._loop = None
        self._thread = None
        self._servers = []
        self.port = None


def _name(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
