"""Engine and session factory for SQLite (embedded default) and PostgreSQL."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

log = logging.getLogger("cityweave.db")

_AFTER_COMMIT = "cityweave_after_commit"


def on_commit(session: Session, callback: Callable[[], None]) -> None:
    """Run ``callback`` once the session's current transaction has committed; forget it if the
    transaction rolls back.

    This is how side effects that cannot be undone (an MQTT command, a push to a live page, a
    webhook) follow the data that justifies them: only what was stored is announced, and a
    retried batch does not announce twice. Callbacks run in the committing thread, in the order
    they were registered; an exception in one is logged and does not stop the others, nor undo
    the commit."""
    callbacks: list[Callable[[], None]] = session.info.setdefault(_AFTER_COMMIT, [])
    callbacks.append(callback)


def _run_after_commit(session: Session) -> None:
    if session.in_nested_transaction():
        return  # a SAVEPOINT was released: the transaction itself has not committed yet
    callbacks = session.info.pop(_AFTER_COMMIT, None)
    for callback in callbacks or ():
        try:
            callback()
        except Exception:
            log.exception("after-commit callback %r failed", callback)


def _forget_after_commit(session: Session) -> None:
    if session.in_nested_transaction():
        # Only a SAVEPOINT rolled back: what the transaction registered before it still holds.
        # Code that registers callbacks inside a savepoint drops its own when the savepoint fails.
        return
    session.info.pop(_AFTER_COMMIT, None)


event.listen(Session, "after_commit", _run_after_commit)
event.listen(Session, "after_rollback", _forget_after_commit)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers proceed while one writer writes; busy_timeout makes writers queue
    # instead of failing with "database is locked".
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


# A session whose connection carries this execution option starts with BEGIN IMMEDIATE on
# SQLite: it takes the write lock first (queueing behind busy_timeout) instead of failing with
# "database is locked" when another writer commits between its first read and its first write.
IMMEDIATE = "cityweave_immediate"


def _sqlite_begin(conn: Any) -> None:
    conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get(IMMEDIATE) else "BEGIN")


class Database:
    """Owns the engine; hands out sessions that commit on success and roll back on error."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = url
        kwargs: dict[str, Any] = {"echo": echo}
        if url.startswith("sqlite"):
            kwargs["connect_args"] = {"check_same_thread": False}
        else:
            kwargs.update(pool_size=10, max_overflow=10, pool_pre_ping=True)
        self.engine: Engine = create_engine(url, **kwargs)
        if self.is_sqlite:
            event.listen(self.engine, "connect", _sqlite_pragmas)
            # pysqlite's own transaction handling defers BEGIN; take control so that
            # "BEGIN IMMEDIATE" can be used for writes that must not interleave.
            event.listen(self.engine, "begin", _sqlite_begin)
            event.listen(
                self.engine,
                "connect",
                lambda dbapi_conn, _r: setattr(dbapi_conn, "isolation_level", None),
                insert=True,
            )
        self.session_factory = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self.session_factory() as session:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    def write_first(self, session: Session) -> None:
        """Begin ``session``'s transaction as a writer (SQLite: BEGIN IMMEDIATE); call it before
        the session's first statement. Writers serialize anyway on SQLite; this makes one that
        reads before it writes wait its turn rather than fail when another commits meanwhile."""
        if self.is_sqlite:
            session.connection(execution_options={IMMEDIATE: True})

    def dispose(self) -> None:
        self.engine.dispose()
