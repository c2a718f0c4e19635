"""The audit trail is append-only in the database and tamper-evident through its hash chain."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from typer.testing import CliRunner

from cityweave.audit import trail
from cityweave.cli.main import app as cli
from cityweave.context import AppContext


def _verify(ctx: AppContext) -> trail.VerifyReport:
    with ctx.db.session() as session:
        return trail.verify(session)


def _drop_guards(ctx: AppContext) -> None:
    """What an attacker with database rights does first."""
    with ctx.db.engine.begin() as conn:
        if ctx.db.is_sqlite:
            conn.execute(text("DROP TRIGGER audit_records_no_update"))
            conn.execute(text("DROP TRIGGER audit_records_no_delete"))
        else:
            conn.execute(text("DROP TRIGGER audit_records_append_only ON audit_records"))


def test_intact_chain_verifies(ctx: AppContext) -> None:
    report = _verify(ctx)
    assert report.ok, report.problems
    assert report.checked == report.head_seq > 10


def test_database_refuses_updates_and_deletes(ctx: AppContext) -> None:
    for statement in ("UPDATE audit_records SET actor_label = 'x' WHERE seq = 1",
                      "DELETE FROM audit_records WHERE seq = 1"):
        with pytest.raises(DBAPIError, match="append-only"), ctx.db.engine.begin() as conn:
            conn.execute(text(statement))
    assert _verify(ctx).ok


@pytest.mark.parametrize(
    ("tamper", "expected"),
    [
        ("UPDATE audit_records SET actor_label = 'someone-else' WHERE seq = 5", "record 5: content does not match"),
        ("UPDATE audit_records SET outcome = 'denied' WHERE seq = 3", "record 3: content does not match"),
        ("DELETE FROM audit_records WHERE seq = 4", "records 4..4 are missing"),
        ("DELETE FROM audit_records WHERE seq = (SELECT MAX(seq) FROM audit_records)", "records at the end were deleted"),
    ],
    ids=["edit-actor", "edit-outcome", "delete-middle", "delete-last"],
)
def test_tampering_is_detected(ctx: AppContext, tamper: str, expected: str) -> None:
    _drop_guards(ctx)
    with ctx.db.engine.begin() as conn:
        conn.execute(text(tamper))
    report = _verify(ctx)
    assert not report.ok
    assert any(expected in problem for problem in report.problems), report.problems


def test_recomputed_hash_still_breaks_the_next_link(ctx: AppContext) -> None:
    """An attacker who edits a record *and* fixes its hash breaks the link from the next one."""
    _drop_guards(ctx)
    with ctx.db.session() as session:
        from cityweave.audit.models import AuditRecord

        record = session.get(AuditRecord, 6)
        record.actor_label = "forged"
        record.hash = trail.record_hash(record, record.prev_hash)
    report = _verify(ctx)
    assert any("record 7: link to the previous record is broken" in p for p in report.problems), report.problems


def test_cli_audit_verify_exit_codes(ctx: AppContext, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CITYWEAVE_DATABASE_URL", ctx.db.url)
    monkeypatch.setenv("CITYWEAVE_SECRET_KEY", ctx.settings.secret_key or "")
    runner = CliRunner()
    ok = runner.invoke(cli, ["audit", "verify", "--data-dir", str(ctx.settings.data_dir)])
    assert ok.exit_code == 0, ok.output
    assert "intact" in ok.output
    _drop_guards(ctx)
    with ctx.db.engine.begin() as conn:
        conn.execute(text("UPDATE audit_records SET details = '{}' WHERE seq = 2"))
    broken = runner.invoke(cli, ["audit", "verify", "--data-dir", str(ctx.settings.data_dir)])
    assert broken.exit_code == 1
    assert "BROKEN" in broken.output and "record 2" in broken.output


def test_the_head_follows_even_when_the_session_is_expunged(ctx):
    """A long batch may flush and expunge its session to keep autoflush cheap; the audit head
    cached for the transaction must not become a detached copy that silently stops updating."""
    from cityweave.audit import trail as audit_trail

    with ctx.db.session() as session:
        for n in range(3):
            audit_trail.append(session, actor=None, action="test.expunge", object_kind="test", object_id=str(n),
                               at=ctx.clock.now())
            session.flush()
            session.expunge_all()
    with ctx.db.session() as session:
        assert audit_trail.verify(session).ok
