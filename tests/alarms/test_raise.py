"""raise_alarm / clear_alarm: one open alarm per cause, counted, on SQLite and PostgreSQL."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest
from sqlalchemy import func, select

from cityweave.alarms.models import Alarm, AlarmEvent, AlarmStatus, Severity
from cityweave.alarms.service import clear_alarm, raise_alarm
from cityweave.audit.models import AuditRecord
from cityweave.clock import ManualClock
from cityweave.context import AppContext
from cityweave.errors import NotFound
from tests.alarms.support import smoke

REPO = Path(__file__).resolve().parents[2]


def _alarms(ctx: AppContext) -> list[Alarm]:
    with ctx.db.session() as session:
        return list(session.execute(select(Alarm).order_by(Alarm.first_at, Alarm.id)).scalars())


def _audit_actions(ctx: AppContext, alarm_id: str) -> list[str]:
    with ctx.db.session() as session:
        return list(session.execute(select(AuditRecord.action).where(AuditRecord.object_id == alarm_id)
                                    .order_by(AuditRecord.seq)).scalars())


def test_raise_then_repeat_counts_one_open_alarm(ctx: AppContext, clock: ManualClock) -> None:
    t0 = clock.now()
    with ctx.db.session() as session:
        first = raise_alarm(session, smoke(severity=Severity.MAJOR), t0)
    assert first.change == "raised" and first.count == 1 and first.status is AlarmStatus.RAISED
    assert first.alarm_id.startswith("alm-") and first.place_path == "/tc/tc-d1/tc-d1-s1/ca/ca-g1/ca-b1/ca-b1-u1/ca-b1-u1-101/"
    assert first.title == {"zh-CN": "烟雾报警", "en": "Smoke detected"}
    t1 = clock.advance(seconds=5)
    with ctx.db.session() as session:
        again = raise_alarm(session, smoke(severity=Severity.CRITICAL, value="again"), t1)
    with ctx.db.session() as session:
        lower = raise_alarm(session, smoke(severity=Severity.WARNING), clock.advance(seconds=5))
    assert again.change == lower.change == "repeated"
    assert again.alarm_id == lower.alarm_id == first.alarm_id
    assert (again.count, lower.count) == (2, 3)
    assert again.severity is Severity.CRITICAL and lower.severity is Severity.CRITICAL  # only up
    [alarm] = _alarms(ctx)
    assert alarm.open_key == alarm.cause_key == "fire.smoke:dev-smoke0001"
    assert alarm.first_at == t0 and alarm.last_at == clock.now() and alarm.count == 3
    assert alarm.details == {"smoke": True}  # the latest
    # Raised once in the trail and the history; repeats are only counted.
    assert _audit_actions(ctx, alarm.id) == ["alarm.raise"]
    with ctx.db.session() as session:
        assert session.execute(select(AlarmEvent.action).where(AlarmEvent.alarm_id == alarm.id)).scalars().all() == ["raised"]


def test_clear_closes_and_a_new_raise_opens_a_new_alarm(ctx: AppContext, clock: ManualClock) -> None:
    with ctx.db.session() as session:
        first = raise_alarm(session, smoke(), clock.now())
    with ctx.db.session() as session:
        cleared = clear_alarm(session, first.cause_key, clock.advance(seconds=30), reason="smoke gone")
        assert clear_alarm(session, first.cause_key, clock.now(), reason="again") is None
    assert cleared is not None and cleared.change == "cleared" and cleared.status is AlarmStatus.CLEARED
    assert cleared.alarm_id == first.alarm_id and cleared.note == "smoke gone"
    with ctx.db.session() as session:
        second = raise_alarm(session, smoke(), clock.advance(seconds=30))
    assert second.change == "raised" and second.count == 1 and second.alarm_id != first.alarm_id
    old, new = _alarms(ctx)
    assert (old.status, old.open_key, old.closed_at) == (AlarmStatus.CLEARED, None, cleared.at)
    assert (new.status, new.open_key) == (AlarmStatus.RAISED, new.cause_key)
    assert _audit_actions(ctx, old.id) == ["alarm.raise", "alarm.clear"]


def test_raise_at_an_unknown_place_is_refused(ctx: AppContext, clock: ManualClock) -> None:
    with ctx.db.session() as session, pytest.raises(NotFound):
        raise_alarm(session, smoke(place_id="no-such-place"), clock.now())
    assert _alarms(ctx) == []


def test_a_rolled_back_raise_leaves_nothing(ctx: AppContext, clock: ManualClock) -> None:
    with pytest.raises(RuntimeError), ctx.db.session() as session:
        raise_alarm(session, smoke(), clock.now())
        raise RuntimeError("the ingest batch failed")
    assert _alarms(ctx) == []


def _assert_one_open(ctx: AppContext, count: int) -> None:
    alarms = _alarms(ctx)
    assert len(alarms) == 1, [(a.id, a.count) for a in alarms]
    assert alarms[0].status is AlarmStatus.RAISED and alarms[0].count == count
    assert _audit_actions(ctx, alarms[0].id) == ["alarm.raise"]


def test_1000_concurrent_raises_from_8_threads_make_one_alarm(ctx: AppContext, clock: ManualClock) -> None:
    threads, per_thread = 8, 125
    start = threading.Barrier(threads)
    errors: list[BaseException] = []
    changes: list[str] = []
    lock = threading.Lock()

    def work() -> None:
        try:
            start.wait()
            for _ in range(per_thread):
                with ctx.db.session() as session:  # each raise its own session and transaction
                    change = raise_alarm(session, smoke(), clock.now())
                with lock:
                    changes.append(change.change)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=300)
    assert not errors, errors[:3]
    assert changes.count("raised") == 1 and changes.count("repeated") == threads * per_thread - 1
    _assert_one_open(ctx, threads * per_thread)


def test_1000_raises_from_4_processes_make_one_alarm(ctx: AppContext) -> None:
    processes, per_process = 4, 250
    procs = [subprocess.Popen([sys.executable, "-m", "tests.alarms.raise_worker", ctx.db.url, str(per_process)],
                              cwd=REPO, stderr=subprocess.PIPE) for _ in range(processes)]
    for proc in procs:
        _, stderr = proc.communicate(timeout=300)
        assert proc.returncode == 0, stderr.decode()[-2000:]
    _assert_one_open(ctx, processes * per_process)
    with ctx.db.session() as session:
        assert session.execute(select(func.count()).select_from(AlarmEvent)).scalar_one() == 1
