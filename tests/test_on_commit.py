"""db.engine.on_commit: side effects follow the commit, never a rollback."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from cityweave.db.engine import Database, on_commit


@pytest.fixture
def db(tmp_path):
    database = Database(f"sqlite:///{tmp_path / 'x.sqlite3'}")
    yield database
    database.dispose()


def test_callbacks_run_after_commit_in_order(db):
    ran: list[str] = []
    with db.session() as session:
        session.execute(text("CREATE TABLE t (x INTEGER)"))
        on_commit(session, lambda: ran.append("first"))
        on_commit(session, lambda: ran.append("second"))
        assert ran == []  # not before the commit
    assert ran == ["first", "second"]


def test_callbacks_are_forgotten_on_rollback(db):
    ran: list[str] = []
    with pytest.raises(RuntimeError), db.session() as session:
        on_commit(session, lambda: ran.append("never"))
        raise RuntimeError("boom")
    with db.session() as session:  # a later transaction on a fresh session does not inherit them
        session.execute(text("SELECT 1"))
    assert ran == []


def test_a_failing_callback_does_not_stop_the_others(db):
    ran: list[str] = []

    def fail() -> None:
        raise ValueError("broken")

    with db.session() as session:
        on_commit(session, fail)
        on_commit(session, lambda: ran.append("still"))
    assert ran == ["still"]


def test_each_transaction_of_a_session_has_its_own_callbacks(db):
    ran: list[str] = []
    with db.session_factory() as session:
        session.execute(text("SELECT 1"))
        on_commit(session, lambda: ran.append("one"))
        session.commit()
        session.execute(text("SELECT 1"))
        session.commit()  # nothing registered for this one
        session.execute(text("SELECT 1"))
        on_commit(session, lambda: ran.append("two"))
        session.rollback()
        session.execute(text("SELECT 1"))
        session.commit()
    assert ran == ["one"]


def test_a_savepoint_neither_runs_nor_forgets_the_callbacks(db):
    ran: list[str] = []
    with pytest.raises(RuntimeError), db.session() as session:
        session.execute(text("SELECT 1"))
        with session.begin_nested():
            on_commit(session, lambda: ran.append("inside a released savepoint"))
        assert ran == [], "releasing a savepoint is not the commit"
        raise RuntimeError("the transaction fails after all")
    assert ran == []
    with db.session() as session:
        session.execute(text("SELECT 1"))
        on_commit(session, lambda: ran.append("before"))
        with pytest.raises(ValueError), session.begin_nested():
            raise ValueError("the savepoint rolls back")
    assert ran == ["before"]
