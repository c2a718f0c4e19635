"""Shared fixtures.

Storage-touching tests run on both SQLite and PostgreSQL through the ``backend`` parameter.
PostgreSQL tests skip when no server answers, except under ``CI=true`` where that fails.
A migrated, populated "world" is built once per backend and cloned for each test (a file copy
on SQLite, ``CREATE DATABASE … TEMPLATE`` on PostgreSQL), so tests start fast and isolated.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from cityweave.api.app import create_app
from cityweave.clock import ManualClock
from cityweave.config import Settings
from cityweave.context import AppContext
from cityweave.db import migrate
from tests.world import World, build_world

PG_ADMIN_URL = os.environ.get("CITYWEAVE_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
TEST_KEY = "q2Xn3VUmqkGq6jyHcC0C1Y0Jq4kV1w2mT9o3cYkqH0E="  # fixed so cloned worlds decrypt
IN_CI = os.environ.get("CI", "").lower() == "true"


def need_service(name: str, reason: str) -> None:
    """Skip a test whose real server is missing, unless in CI, where that is a failure."""
    if IN_CI:
        pytest.fail(f"{name} is required under CI=true: {reason}")
    pytest.skip(f"{name} not available: {reason}")


def _pg_available() -> str | None:
    try:
        engine = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
        return None
    except Exception as exc:  # noqa: BLE001
        return f"{type(exc).__name__}: {exc}".splitlines()[0]


def _pg_exec(sql: str) -> None:
    engine = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(sql))
    engine.dispose()


def _pg_url(dbname: str) -> str:
    return PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + dbname


def make_settings(data_dir: Path, database_url: str | None) -> Settings:
    return Settings(data_dir=data_dir, database_url=database_url, secret_key=TEST_KEY, mode="development")


class Template:
    """A migrated database with the world in it, ready to be cloned."""

    def __init__(self, backend: str, root: Path) -> None:
        self.backend = backend
        self.root = root
        self.name = f"cwtpl_{uuid.uuid4().hex[:10]}"
        if backend == "sqlite":
            self.url = f"sqlite:///{root / 'template.sqlite3'}"
        else:
            _pg_exec(f'CREATE DATABASE "{self.name}"')
            self.url = _pg_url(self.name)
        ctx = AppContext.build(make_settings(root, self.url), clock=ManualClock())
        migrate.upgrade(ctx.db.engine)
        self.world = build_world(ctx)
        ctx.db.dispose()

    def clone(self, data_dir: Path) -> str:
        if self.backend == "sqlite":
            target = data_dir / "cityweave.sqlite3"
            shutil.copyfile(self.root / "template.sqlite3", target)
            return f"sqlite:///{target}"
        name = f"cwt_{uuid.uuid4().hex[:12]}"
        _pg_exec(f'CREATE DATABASE "{name}" TEMPLATE "{self.name}"')
        return _pg_url(name)

    def drop_clone(self, url: str) -> None:
        if self.backend == "postgres":
            _pg_exec(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')

    def destroy(self) -> None:
        if self.backend == "postgres":
            _pg_exec(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
def template(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Template]:
    if request.param == "postgres" and (problem := _pg_available()):
        need_service("PostgreSQL", problem)
    tpl = Template(request.param, tmp_path_factory.mktemp(f"template-{request.param}"))
    yield tpl
    tpl.destroy()


@pytest.fixture
def backend(template: Template) -> str:
    return template.backend


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def ctx(template: Template, tmp_path: Path, clock: ManualClock) -> Iterator[AppContext]:
    """A fresh copy of the world database, on the current backend, with a manual clock."""
    url = template.clone(tmp_path)
    context = AppContext.build(make_settings(tmp_path, url), clock=clock)
    yield context
    context.db.dispose()
    template.drop_clone(url)


@pytest.fixture
def world(template: Template) -> World:
    return template.world


@pytest.fixture
def app(ctx: AppContext):
    return create_app(ctx)


@pytest.fixture
def client(app) -> Iterator[TestClient]:
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def ingest_sessions() -> Iterator[Callable[..., None]]:
    """End, after the test, what ingest clients leave on a shared broker: their persistent session
    (expiry 7 days, with every message for its subscriptions queued meanwhile) and their retained
    ``cityweave/ingest/<node>/status``. Call it with ``(broker url, client id, status node)`` for
    every ingest client a test connects to the machine's Mosquitto; fixtures that stop the client
    depend on this one, so the session is ended after the client is gone."""
    ended: list[tuple[str, str, str | None]] = []

    def remember(url: str | None, client_id: str, node: str | None = None) -> None:
        if url:  # the embedded broker keeps its sessions in memory and goes away with the test
            ended.append((url, client_id, node))

    yield remember
    from tests.ingest.support import forget_session  # imports this module

    for url, client_id, node in ended:
        forget_session(url, client_id, node)
