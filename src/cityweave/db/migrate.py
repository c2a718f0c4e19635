"""Schema migrations with Alembic, driven from Python so the CLI and tests share one path."""

from __future__ import annotations

from importlib import resources

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine


def _config() -> Config:
    folder = resources.files("cityweave.db") / "migrations"
    config = Config(str(folder / "alembic.ini"))
    config.set_main_option("script_location", str(folder))
    return config


def upgrade(engine: Engine, revision: str = "heads") -> None:
    """Upgrade to every head: parallel branches of work may each add a revision off the same
    parent before a merge revision joins them."""
    config = _config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        heads = MigrationContext.configure(connection).get_current_heads()
    return ",".join(sorted(heads)) or None


def head_revision() -> str | None:
    return ",".join(sorted(ScriptDirectory.from_config(_config()).get_heads())) or None


def autogenerate(engine: Engine, message: str) -> None:
    """For developers: write a new revision from the difference between models and database."""
    config = _config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.revision(config, message=message, autogenerate=True)
