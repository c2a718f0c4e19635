"""Appending to and verifying the hash-chained audit trail.

Each record's hash is SHA-256 over the previous hash and a canonical JSON of the record's
fields. Editing any field breaks that record's hash; deleting a record breaks the next
record's ``prev_hash`` (and the sequence); deleting the newest records breaks the head row.
Appends take a row lock on the head (``SELECT … FOR UPDATE`` on PostgreSQL; SQLite has one
writer at a time anyway), so concurrent writers cannot fork the chain.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cityweave.audit.models import AuditHead, AuditRecord
from cityweave.authz.policy import Principal

GENESIS = "0" * 64


def _canonical(record: AuditRecord, prev_hash: str) -> bytes:
    body = {
        "seq": record.seq,
        "at": record.at.isoformat(timespec="microseconds"),
        "actor_id": record.actor_id,
        "actor_label": record.actor_label,
        "action": record.action,
        "object_kind": record.object_kind,
        "object_id": record.object_id,
        "place_path": record.place_path,
        "source_ip": record.source_ip,
        "outcome": record.outcome,
        "details": record.details,
        "prev_hash": prev_hash,
    }
    return json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()


def record_hash(record: AuditRecord, prev_hash: str) -> str:
    return hashlib.sha256(_canonical(record, prev_hash)).hexdigest()


def append(
    session: Session,
    *,
    actor: Principal | None,
    action: str,
    object_kind: str,
    object_id: str | None = None,
    place_path: str | None = None,
    details: dict[str, Any] | None = None,
    outcome: str = "ok",
    at: datetime,
    actor_label: str | None = None,
    source_ip: str | None = None,
) -> AuditRecord:
    """Add one record in the caller's transaction: it commits or rolls back with the change."""
    head = _locked_head(session)
    record = AuditRecord(
        seq=head.last_seq + 1,
        at=at,
        actor_id=actor.user_id if actor else None,
        actor_label=actor_label or (actor.username if actor else "anonymous"),
        action=action,
        object_kind=object_kind,
        object_id=object_id,
        place_path=place_path,
        source_ip=source_ip or (actor.source_ip if actor else None),
        outcome=outcome,
        details=details or {},
        prev_hash=head.last_hash,
    )
    record.hash = record_hash(record, head.last_hash)
    session.add(record)
    head.last_seq = record.seq
    head.last_hash = record.hash
    # No flush per record: a bulk operation's records go out as multi-row INSERTs with the
    # rest of the transaction, and the head row stays locked until it ends.
    return record


def _locked_head(session: Session) -> AuditHead:
    """The head row, locked for this transaction. Locked once per transaction, not per record:
    an import of 20,000 rows would otherwise re-select it 20,000 times."""
    transaction = session.get_transaction()
    cached = session.info.get("audit_head")
    # Still attached? Code that expunges the session (to keep a long batch's autoflush cheap)
    # would otherwise leave us updating a detached copy, and the head would silently fall behind.
    if cached is not None and cached[0] is transaction and cached[1] in session:
        return cached[1]
    head = session.execute(select(AuditHead).where(AuditHead.id == 1).with_for_update()).scalar_one_or_none()
    if head is None:
        head = AuditHead(id=1, last_seq=0, last_hash=GENESIS)
        session.add(head)
        session.flush()
    session.info["audit_head"] = (transaction, head)
    return head


@dataclass
class VerifyReport:
    checked: int
    head_seq: int
    head_hash: str
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems


def verify(session: Session, *, batch: int = 5000) -> VerifyReport:
    """Walk the whole chain; report every broken link instead of stopping at the first."""
    problems: list[str] = []
    expected_prev = GENESIS
    expected_seq = 1
    checked = 0
    for record in _iter_records(session, batch):
        if record.seq != expected_seq:
            problems.append(f"records {expected_seq}..{record.seq - 1} are missing")
        if record.prev_hash != expected_prev:
            problems.append(f"record {record.seq}: link to the previous record is broken")
        if record_hash(record, record.prev_hash) != record.hash:
            problems.append(f"record {record.seq}: content does not match its hash (edited)")
        expected_prev = record.hash
        expected_seq = record.seq + 1
        checked += 1
    head = session.get(AuditHead, 1)
    head_seq = head.last_seq if head else 0
    head_hash = head.last_hash if head else GENESIS
    if head_seq != expected_seq - 1 or head_hash != expected_prev:
        problems.append(
            f"the chain ends at record {expected_seq - 1} but the head says {head_seq}: "
            "records at the end were deleted, or the head was altered"
        )
    return VerifyReport(checked=checked, head_seq=head_seq, head_hash=head_hash, problems=problems)


def _iter_records(session: Session, batch: int) -> Iterator[AuditRecord]:
    last = 0
    while True:
        rows = (
            session.execute(
                select(AuditRecord).where(AuditRecord.seq > last).order_by(AuditRecord.seq).limit(batch)
            )
            .scalars()
            .all()
        )
        if not rows:
            return
        yield from rows
        last = rows[-1].seq
        session.expunge_all()
