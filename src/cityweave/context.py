"""What every service call needs: settings, the database, the field cipher, the clock.

The application, the CLI and the tests each build one :class:`AppContext`; a :class:`Call`
binds it to one database session and one caller.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from cityweave.audit import trail
from cityweave.authz.policy import Principal
from cityweave.bus import EventBus
from cityweave.clock import Clock
from cityweave.config import Settings
from cityweave.db.engine import Database
from cityweave.security.crypto import FieldCipher, load_master_key


@dataclass
class AppContext:
    settings: Settings
    db: Database
    cipher: FieldCipher
    clock: Clock = field(default_factory=Clock)
    # Committed facts for other domains and the live pages (alarm changes, work-order steps).
    bus: EventBus = field(default_factory=EventBus)

    @classmethod
    def build(cls, settings: Settings, *, clock: Clock | None = None) -> AppContext:
        key = load_master_key(
            env_value=settings.secret_key,
            key_file=settings.secret_key_file,
            data_dir=settings.data_dir,
            production=settings.mode == "production",
        )
        if settings.effective_database_url.startswith("sqlite"):
            settings.data_dir.mkdir(parents=True, exist_ok=True)
        return cls(
            settings=settings,
            db=Database(settings.effective_database_url),
            cipher=FieldCipher(key, settings.pii_cipher),
            clock=clock or Clock(),
        )


@dataclass
class Call:
    """One caller's unit of work: services read and write through ``session`` as ``principal``."""

    ctx: AppContext
    session: Session
    principal: Principal

    @property
    def cipher(self) -> FieldCipher:
        return self.ctx.cipher

    def now(self) -> datetime:
        return self.ctx.clock.now()

    def audit(
        self,
        action: str,
        object_kind: str,
        object_id: str | None = None,
        *,
        place_path: str | None = None,
        details: dict[str, Any] | None = None,
        outcome: str = "ok",
    ) -> None:
        trail.append(
            self.session,
            actor=self.principal,
            action=action,
            object_kind=object_kind,
            object_id=object_id,
            place_path=place_path,
            details=details,
            outcome=outcome,
            at=self.now(),
        )
