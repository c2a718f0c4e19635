"""Options and helpers shared by every CLI command."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from cityweave.config import Settings, load_settings
from cityweave.context import AppContext, Call
from cityweave.logs import configure_logging

DataDirOption = Annotated[
    Path | None,
    typer.Option("--data-dir", help="folder for the SQLite database and the dev key [env CITYWEAVE_DATA_DIR]"),
]
HostOption = Annotated[str | None, typer.Option("--host", help="addresses to listen on, comma-separated (default 127.0.0.1,::1); '::' = all, IPv6 and IPv4")]
PortOption = Annotated[int | None, typer.Option("--port", help="TCP port")]


def settings_from(data_dir: Path | None = None, **overrides: object) -> Settings:
    settings = load_settings(data_dir=data_dir, **overrides)
    configure_logging(settings.log_level, settings.log_json)
    return settings


def context_from(settings: Settings) -> AppContext:
    from cityweave.security.crypto import MasterKeyError

    try:
        return AppContext.build(settings)
    except MasterKeyError as exc:
        typer.secho(f"cannot start: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from exc


@contextmanager
def as_system(data_dir: Path | None, label: str = "cli") -> Iterator[Call]:
    """A call acting as the platform (unrestricted, still audited) in one transaction:
    committed when the block ends normally, rolled back on any exception, ``typer.Exit`` too."""
    from cityweave.authz.policy import Principal

    ctx = context_from(settings_from(data_dir))
    try:
        with ctx.db.session() as session:
            yield Call(ctx, session, Principal.system(label))
    finally:
        ctx.db.dispose()
