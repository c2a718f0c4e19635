"""Logins for the embedded broker (amqtt): an authentication plugin that asks CityWeave.

amqtt builds its plugins from dotted class names and plain configuration, so the plugin finds the
check it should run by a key in :data:`LOGINS`, which :class:`~cityweave.ingest.broker.EmbeddedBroker`
fills when it starts with a ``login`` callable and empties when it stops. The check may block
(it reads the device registry), so it runs in a worker thread, off the broker's event loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from amqtt.plugins.base import BaseAuthPlugin
from amqtt.session import Session

log = logging.getLogger("cityweave.ingest.broker")

# key -> (username, password) -> allowed?
LOGINS: dict[str, Callable[[str, str], bool]] = {}


class LoginPlugin(BaseAuthPlugin):
    """Allows a connection only when the registered check accepts its username and password."""

    @dataclass
    class Config:
        login: str = ""

    async def authenticate(self, *, session: Session) -> bool:
        check = LOGINS.get(getattr(self.context.config, "login", ""))
        username, password = session.username, session.password
        if check is None or not username or password is None:
            log.info("MQTT connection refused: no username/password (client %s)", session.client_id)
            return False
        if isinstance(password, bytes):
            password = password.decode("utf-8", "replace")
        try:
            allowed = await asyncio.to_thread(check, username, password)
        except Exception:
            log.exception("MQTT login check failed for %r", username[:80])
            return False
        if not allowed:
            log.info("MQTT connection refused: wrong credentials for %r", username[:80])
        return bool(allowed)
