"""The ``cityweave`` command. Each sub-command is small and says what it does in --help."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from cityweave import __version__
from cityweave.cli import demo_cmd, simulate_cmd, transfer_cmds
from cityweave.cli.common import (
    DataDirOption,
    HostOption,
    PortOption,
    as_system,
    context_from,
    settings_from,
)
from cityweave.config import Settings
from cityweave.context import AppContext, Call

if TYPE_CHECKING:
    from cityweave.runtime import DeviceRuntime

app = typer.Typer(
    name="cityweave",
    help="CityWeave: homes, communities and the city in one system.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
)
console = Console()


def _version(value: bool) -> None:
    if value:
        console.print(f"cityweave {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="print the version")] = False,
) -> None:
    """Run `cityweave demo` to see a populated sample community at http://127.0.0.1:8000."""


@app.command()
def migrate(data_dir: DataDirOption = None) -> None:
    """Bring the database schema up to date (safe to run repeatedly)."""
    from cityweave.db import migrate as migrations

    ctx = context_from(settings_from(data_dir))
    migrations.upgrade(ctx.db.engine)
    console.print(f"schema at revision [bold]{migrations.current_revision(ctx.db.engine)}[/bold]")


@app.command()
def serve(host: HostOption = None, port: PortOption = None, data_dir: DataDirOption = None) -> None:
    """Serve the API (and later the pages) on an existing database; migrates first."""
    settings = settings_from(data_dir, host=host, port=port)
    _serve(settings)


demo_cmd.register(app)


@app.command()
def keygen() -> None:
    """Print a new master key for CITYWEAVE_SECRET_KEY (or a key file). Keep it outside the database."""
    from cityweave.security.crypto import generate_master_key

    print(generate_master_key())


def _serve(settings: Settings, *, before_start: Callable[[AppContext], None] | None = None,
           with_devices: Callable[[AppContext, DeviceRuntime], Callable[[], None] | None] | None = None,
           devices: bool = True) -> None:
    """Migrate, run ``before_start`` (the demo loads its data there), start the device runtime
    (ingest, telemetry, commands; then ``with_devices``, which may return a stop function), serve
    until stopped, and stop the devices again."""
    import uvicorn

    from cityweave.api.app import create_app
    from cityweave.db import migrate as migrations
    from cityweave.net import bind_tcp, display_url
    from cityweave.runtime import DeviceRuntime

    ctx = context_from(settings)
    migrations.upgrade(ctx.db.engine)
    if before_start is not None:
        before_start(ctx)
    # We bind the sockets ourselves: uvicorn takes one host, and whether "::" also accepts
    # IPv4 would depend on the machine's bindv6only setting (see cityweave.net).
    sockets = bind_tcp(settings.host, settings.port)
    app = create_app(ctx)
    runtime: DeviceRuntime | None = None
    stops: list[Callable[[], None]] = []
    try:
        # Notifications: missed alarm steps are queued (catch-up, then every minute), stale outbox
        # rows become digests, then the dispatcher sends what is due.
        notifications = app.state.notifications.start()
        stops.insert(0, notifications.stop)
        console.print("notifications: live events at /api/v1/events; webhooks are sent; SMS and voice "
                      "calls are only written to the log (no SMS provider is configured)")
        if devices:
            runtime = DeviceRuntime(ctx).start()
            runtime.install(app)
            console.print(f"devices: MQTT at [bold]{escape(str(runtime.broker_url))}[/bold]"
                          f"{' (embedded broker)' if runtime.ingest.broker is not None else ''}")
            if with_devices is not None and (stop := with_devices(ctx, runtime)) is not None:
                stops.append(stop)
        console.print(f"CityWeave {__version__} on [bold]{display_url(settings.host, settings.port)}[/bold]"
                      f" (listening on {escape(', '.join(_sock_name(s) for s in sockets))})")
        # Live event streams never end by themselves: give them 5 s, then close them, on shutdown.
        config = uvicorn.Config(app, log_config=None, proxy_headers=False, server_header=False,
                                timeout_graceful_shutdown=5)
        uvicorn.Server(config).run(sockets=sockets)
    finally:
        for stop in reversed(stops):
            stop()
        if runtime is not None:
            runtime.stop()


def _sock_name(sock) -> str:
    host, port = sock.getsockname()[:2]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


# -- users ------------------------------------------------------------------------------------------
user_app = typer.Typer(help="Manage accounts from the command line (acts as the platform).", no_args_is_help=True)
app.add_typer(user_app, name="user")


@user_app.command("create")
def user_create(
    username: str,
    role: Annotated[str, typer.Option(help="role to grant, e.g. platform_admin, community_admin")],
    place: Annotated[str | None, typer.Option(help="place id the role is held over")] = None,
    display_name: Annotated[str | None, typer.Option(help="name shown in pages")] = None,
    password: Annotated[str | None, typer.Option(prompt=True, hide_input=True, confirmation_prompt=True)] = None,
    data_dir: DataDirOption = None,
) -> None:
    """Create an account with one role grant."""
    from cityweave.accounts import service
    from cityweave.accounts.models import Role
    from cityweave.accounts.schemas import GrantIn, UserCreate

    with _system_call(data_dir) as call:
        user = service.create_user(call, UserCreate(
            username=username, password=password, display_name=display_name or username,
            grants=[GrantIn(role=Role(role), place_id=place)],
        ))
    console.print(f"created [bold]{user.username}[/bold] ({user.id})")


@user_app.command("list")
def user_list(data_dir: DataDirOption = None) -> None:
    """List accounts with their roles."""
    from sqlalchemy import select

    from cityweave.accounts.models import User

    ctx = context_from(settings_from(data_dir))
    table = Table("username", "name", "roles", "active", "locked until")
    with ctx.db.session() as session:
        for user in session.execute(select(User).order_by(User.username)).scalars():
            roles = ", ".join(f"{g.role.value}@{g.place_id or '*'}" for g in user.grants)
            table.add_row(user.username, user.display_name, roles, "yes" if user.is_active else "no",
                          user.locked_until.isoformat() if user.locked_until else "")
    console.print(table)


@user_app.command("set-password")
def user_set_password(
    username: str,
    password: Annotated[str, typer.Option(prompt=True, hide_input=True, confirmation_prompt=True)],
    data_dir: DataDirOption = None,
) -> None:
    """Set a new password; signs the account out everywhere and lifts a lockout."""
    from cityweave.accounts import service

    with _system_call(data_dir) as call:
        user = _user_by_name(call, username)
        service.set_password(call, user.id, password)
        service.unlock_user(call, user.id)
    console.print(f"password of [bold]{username}[/bold] changed")


@user_app.command("unlock")
def user_unlock(username: str, data_dir: DataDirOption = None) -> None:
    """Lift a lockout after repeated failed sign-ins."""
    from cityweave.accounts import service

    with _system_call(data_dir) as call:
        service.unlock_user(call, _user_by_name(call, username).id)
    console.print(f"[bold]{username}[/bold] unlocked")


# -- audit ------------------------------------------------------------------------------------------
audit_app = typer.Typer(help="The tamper-evident audit trail.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")


@audit_app.command("verify")
def audit_verify(data_dir: DataDirOption = None) -> None:
    """Recompute the hash chain; exit 1 if any record was edited or deleted."""
    from cityweave.audit import trail

    ctx = context_from(settings_from(data_dir))
    with ctx.db.session() as session:
        report = trail.verify(session)
    if report.ok:
        console.print(f"[green]audit trail intact[/green]: {report.checked} records, head {report.head_hash}")
        return
    console.print(f"[red]audit trail BROKEN[/red]: {len(report.problems)} problem(s) in {report.checked} records")
    for problem in report.problems[:50]:
        console.print(f"  - {problem}")
    raise typer.Exit(1)


# -- spreadsheets: `import` and `export` (cli/transfer_cmds.py) ---------------------------------------
transfer_cmds.register(app)
simulate_cmd.register(app)  # `simulate`: virtual devices over MQTT (cli/simulate_cmd.py)


# -- helpers ----------------------------------------------------------------------------------------
@contextmanager
def _system_call(data_dir: Path | None) -> Iterator[Call]:
    """``as_system`` with domain errors printed as a clear message and exit code 1."""
    from cityweave.errors import CityWeaveError

    try:
        with as_system(data_dir) as call:
            yield call
    except (CityWeaveError, ValueError) as exc:  # ValueError: a bad role name, a weak password
        _fail(exc)


def _user_by_name(call, username: str):
    from sqlalchemy import select

    from cityweave.accounts.models import User
    from cityweave.errors import NotFound

    user = call.session.execute(select(User).where(User.username == username)).scalar_one_or_none()
    if user is None:
        raise NotFound(f"no user {username!r}")
    return user


def _fail(exc: Exception) -> None:
    message = getattr(exc, "detail", None) or str(exc)
    errors = getattr(exc, "errors", None)
    console.print(f"[red]error:[/red] {message}", highlight=False)
    for err in errors or []:
        console.print(f"  {getattr(err, 'pointer', '')}: {getattr(err, 'detail', err)}", highlight=False)
    raise typer.Exit(1)


def run() -> None:  # pragma: no cover - console entry for `python -m cityweave`
    sys.exit(app())
