"""Delivery receipts: why a message redelivered after a crash is not stored twice.

The subscriber acknowledges (PUBACK) a message only after the batch holding it is committed. If
the process dies between the commit and the PUBACK, the broker still owns the message and sends it
again on reconnect, with the same packet id and DUP=1. So every batch also writes, in the same
transaction, one receipt per message: ``(client id, packet id) -> digest(topic, payload)``.

* A message with DUP=0 is a first delivery: always new. Its receipt overwrites whatever the packet
  id held before (packet ids are reused once acknowledged).
* A message with DUP=1 whose receipt holds the same digest was committed already: it is acked and
  not stored again. Without a matching receipt it is new (the crash came before the commit).

The table never holds more than 65,535 rows per client id. One case stays ambiguous and is
documented in docs/ingest.md: a packet id reused for a byte-identical message on the same topic
whose first delivery was lost in the crash is taken for the earlier one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import Integer, String, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Mapped, Session, mapped_column

from cityweave.db.base import Base


class IngestReceipt(Base):
    __tablename__ = "ingest_receipts"

    client_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    packet_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    digest: Mapped[str] = mapped_column(String(32))
    stored_at: Mapped[datetime]


def digest(topic: str, payload: bytes) -> str:
    h = hashlib.blake2b(digest_size=16)
    h.update(topic.encode("utf-8", "surrogatepass"))
    h.update(b"\0")
    h.update(payload)
    return h.hexdigest()


def already_stored(session: Session, client_id: str, candidates: Sequence[tuple[int, str]]) -> set[int]:
    """Packet ids among ``(packet id, digest)`` whose receipt holds that digest."""
    if not candidates:
        return set()
    wanted = dict(candidates)
    rows = session.execute(
        select(IngestReceipt.packet_id, IngestReceipt.digest).where(
            IngestReceipt.client_id == client_id, IngestReceipt.packet_id.in_(list(wanted))
        )
    )
    return {packet_id for packet_id, stored in rows if wanted.get(packet_id) == stored}


def record(session: Session, client_id: str, entries: Iterable[tuple[int, str]], at: datetime) -> None:
    """Upsert one receipt per ``(packet id, digest)``, in the caller's transaction."""
    rows = [{"client_id": client_id, "packet_id": pid, "digest": d, "stored_at": at} for pid, d in entries]
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    statement = insert(IngestReceipt)
    statement = statement.on_conflict_do_update(
        index_elements=["client_id", "packet_id"],
        set_={"digest": statement.excluded.digest, "stored_at": statement.excluded.stored_at},
    )
    session.execute(statement, rows)
