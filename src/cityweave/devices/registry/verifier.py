"""Device tokens for HTTP ingest, checked against the registry.

Implements ``cityweave.ingest.http_ingest.DeviceTokenVerifier`` (structurally): a token maps to
the binding of a claimed or active device, or to None when it is wrong, revoked, or its device is
not in service. Each check is its own short transaction, so ``last_used_at`` is recorded.
"""

from __future__ import annotations

from cityweave.clock import Clock
from cityweave.db.engine import Database
from cityweave.devices.binding import DeviceBinding
from cityweave.devices.registry.service import binding_of, verify_mqtt_login, verify_token
from cityweave.errors import AuthenticationFailed

MAX_TOKEN_LENGTH = 200


class DatabaseTokenVerifier:
    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    def verify(self, token: str) -> DeviceBinding | None:
        if not token or len(token) > MAX_TOKEN_LENGTH:
            return None
        try:
            with self._db.session() as session:
                # It may record last_used_at: begin as a writer, so that on SQLite an ingest batch
                # committing meanwhile makes it wait rather than fail.
                self._db.write_first(session)
                return binding_of(verify_token(session, token, self._clock.now()))
        except AuthenticationFailed:
            return None


class MqttLoginVerifier:
    """The embedded broker's device logins (``CITYWEAVE_MQTT_DEVICE_AUTH``): username = device id,
    password = device token of a claimed or active device (``verify_mqtt_login``)."""

    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    def check(self, username: str, password: str) -> bool:
        if not username or not password or len(password) > MAX_TOKEN_LENGTH or len(username) > 100:
            return False
        try:
            with self._db.session() as session:
                self._db.write_first(session)  # records last_used_at, as HTTP ingest does
                verify_mqtt_login(session, username, password, self._clock.now())
                return True
        except AuthenticationFailed:
            return False
