"""Migrations build exactly the schema the models describe, on SQLite and PostgreSQL, and undo."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine
from sqlalchemy.engine import Engine

from cityweave.db import migrate
from cityweave.db.models import metadata
from tests.conftest import _pg_available, _pg_exec, _pg_url, need_service


@pytest.fixture(params=["sqlite", "postgres"])
def empty_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "sqlite":
        engine = create_engine(f"sqlite:///{tmp_path / 'm.sqlite3'}")
        yield engine
        engine.dispose()
        return
    if problem := _pg_available():
        need_service("PostgreSQL", problem)
    name = f"cwmig_{uuid.uuid4().hex[:10]}"
    _pg_exec(f'CREATE DATABASE "{name}"')
    engine = create_engine(_pg_url(name))
    yield engine
    engine.dispose()
    _pg_exec(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _differences(engine: Engine) -> list:
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return compare_metadata(context, metadata)


def test_migrated_schema_matches_the_models(empty_engine: Engine) -> None:
    migrate.upgrade(empty_engine)
    assert migrate.current_revision(empty_engine) == migrate.head_revision()
    diffs = _differences(empty_engine)
    assert not diffs, "models and migrations disagree; write a migration:\n" + "\n".join(map(str, diffs))


def test_downgrade_to_base_and_up_again(empty_engine: Engine) -> None:
    from alembic import command

    migrate.upgrade(empty_engine)
    config = migrate._config()
    with empty_engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "base")
    assert migrate.current_revision(empty_engine) is None
    migrate.upgrade(empty_engine)
    assert migrate.current_revision(empty_engine) == migrate.head_revision()
