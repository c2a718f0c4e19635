"""Settings: environment variables (prefix ``CITYWEAVE_``) over an optional TOML file over defaults.

Every setting is documented in the README's configuration table; keep the two in step.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

Mode = Literal["development", "demo", "production"]
CipherName = Literal["AES-256-GCM", "SM4-GCM"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CITYWEAVE_", extra="forbid")

    mode: Mode = "development"
    data_dir: Path = Path("cityweave-data")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default is SQLite in the data folder."
    )
    # Comma-separated; both loopbacks by default. "::" is every interface, IPv6 and IPv4.
    host: str = "127.0.0.1,::1"
    port: int = 8000

    # Personal-data protection. The key never lives in the database.
    secret_key: str | None = Field(default=None, description="base64 of 32 random bytes")
    secret_key_file: Path | None = None
    pii_cipher: CipherName = "AES-256-GCM"

    # Authentication.
    access_token_minutes: int = 15
    refresh_token_days: int = 14
    session_hours: int = 12  # web page sign-ins (cookie sessions): a working day
    lockout_threshold: int = 5
    lockout_window_minutes: int = 15
    lockout_minutes: int = 15

    # HTTP.
    max_body_bytes: int = 1_048_576
    max_upload_bytes: int = 10_485_760

    # Device ingest (cityweave.ingest). No URL: an embedded broker on both loopbacks.
    mqtt_url: str | None = Field(
        default=None, description="external broker, e.g. mqtt://user:pass@127.0.0.1:1883"
    )
    mqtt_embedded_port: int = 1883  # 0, or taken: a free port is chosen
    mqtt_client_id: str = "cityweave-ingest"
    # Several ingest processes (each its own client id) share the load through MQTT 5 shared
    # subscriptions ($share/<group>/...) when this names the group.
    mqtt_shared_group: str | None = None
    # The embedded broker asks every client for a username and password: a device's id and its
    # device token (CityWeave's own clients get accounts of their own). Off by default: bridges
    # (Zigbee2MQTT, Home Assistant) publish for many devices under one login, and devices without a
    # token would be locked out; see docs/ingest.md. External brokers have their own authentication.
    mqtt_device_auth: bool = False
    # A second MQTT session ("<client id>-safety") subscribed to the exact topics that have carried
    # life-safety readings, so a smoke report does not wait behind the broker's backlog of the
    # main session; see docs/ingest.md, "The safety session". Off: the in-process lane only.
    ingest_safety_session: bool = True
    ingest_queue_size: int = Field(default=20_000, ge=1)
    ingest_batch_size: int = Field(default=2_000, ge=1)
    ingest_batch_ms: int = Field(default=50, ge=1)
    ingest_heartbeat_seconds: int = Field(default=300, ge=1)

    # Telemetry retention (days); hour rollups are kept forever unless a limit is given.
    telemetry_raw_days: int = Field(default=30, ge=1)
    telemetry_minute_days: int = Field(default=180, ge=1)
    telemetry_hour_days: int | None = Field(default=None, ge=1)
    # The device runtime's housekeeping (telemetry retention, receipts of ingest clients gone for
    # longer than their MQTT session) runs this many seconds apart.
    maintenance_interval_seconds: int = Field(default=3600, ge=1)

    # Live events and notifications (cityweave.notifications).
    events_heartbeat_seconds: float = Field(default=15.0, gt=0)  # ": ping" comment on idle streams
    events_reauth_seconds: float = Field(default=60.0, gt=0)  # a stream ends once its token does
    events_subscriber_queue: int = Field(default=256, ge=1)  # per stream; a slow one gets "resync"
    events_ring_size: int = Field(default=2_000, ge=1)  # kept for Last-Event-ID resumes
    notify_rate_limit: int = Field(default=5, ge=1)  # messages per recipient and channel per window
    notify_rate_window_seconds: int = Field(default=600, ge=1)
    notify_freshness_seconds: int = Field(default=600, ge=1)  # older pending rows at start: a digest
    notify_max_attempts: int = Field(default=5, ge=1)
    notify_retry_base_seconds: float = Field(default=5.0, gt=0)  # doubles per attempt
    notify_webhook_timeout_seconds: float = Field(default=5.0, gt=0)
    # Webhook URLs whose host is or resolves to a loopback, private, link-local, ... address are
    # refused (saving and sending) unless this is true: an on-premises receiver, tests.
    notify_webhook_allow_private: bool = False
    notify_retention_days: int = Field(default=90, ge=1)  # finished outbox rows are deleted after
    # Raised/escalated alarm steps of the last N minutes whose outbox rows are missing (a failed
    # write, a crash after the alarm's commit) are queued by the catch-up sweep; older ones are not.
    notify_catch_up_minutes: int = Field(default=60, ge=0)
    notify_webhook_secret: str | None = Field(
        default=None, description="HMAC-SHA256 key of webhook signatures; default: derived from the master key"
    )

    # Rules (cityweave.rules): after a restart, absence rules ("no activity for N hours") wait this
    # long before firing, so that a service that was down does not raise welfare checks at once.
    rules_grace_minutes: float = Field(default=30.0, ge=0)
    # Local time of the households, for time windows, daytime hours and schedules.
    rules_timezone: str = "Asia/Shanghai"

    # Logging.
    log_level: str = "INFO"
    log_json: bool = False

    config_file: Path | None = Field(default=None, description="TOML file read before env vars")

    @field_validator("database_url")
    @classmethod
    def _normalise_postgres_url(cls, value: str | None) -> str | None:
        # People paste libpq URLs; SQLAlchemy needs to know we use psycopg 3.
        if value and value.startswith(("postgres://", "postgresql://")):
            return "postgresql+psycopg://" + value.split("://", 1)[1]
        return value

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'cityweave.sqlite3').resolve()}"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _TomlSource(settings_cls, env_settings))


class _TomlSource(PydanticBaseSettingsSource):
    """Reads ``[cityweave]`` (or top-level keys) from the TOML file named by CITYWEAVE_CONFIG_FILE."""

    def __init__(self, settings_cls: type[BaseSettings], env: PydanticBaseSettingsSource) -> None:
        super().__init__(settings_cls)
        self._env = env

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        import os

        path = os.environ.get("CITYWEAVE_CONFIG_FILE")
        if not path:
            return {}
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
        return dict(data.get("cityweave", data))


def load_settings(**overrides: Any) -> Settings:
    """Build settings; explicit overrides (from CLI flags) win over everything."""
    clean = {k: v for k, v in overrides.items() if v is not None}
    return Settings(**clean)
