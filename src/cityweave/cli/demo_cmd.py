"""``cityweave demo``: a populated sample district, on SQLite in a data folder, nothing else needed."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from sqlalchemy import select
from sqlalchemy.engine import make_url

from cityweave.cli.common import DataDirOption, HostOption, PortOption, context_from, settings_from
from cityweave.config import Settings
from cityweave.context import AppContext
from cityweave.demo.accounts import DEMO_ACCOUNTS
from cityweave.demo.generator import DEFAULT_SEED

if TYPE_CHECKING:
    from cityweave.runtime import DeviceRuntime

console = Console()

SeedOption = Annotated[int, typer.Option("--seed", help="seed of the generator: same seed, same district")]
ResetOption = Annotated[
    bool, typer.Option("--reset", help="delete the demo database in the data folder and load it afresh")
]
LoadOnlyOption = Annotated[
    bool, typer.Option("--load-only", help="migrate and load the demo data, then exit (for CI and timing)")
]
NoDevicesOption = Annotated[
    bool, typer.Option("--no-devices", help="serve without the MQTT ingest and the simulated devices")
]
RateOption = Annotated[
    float, typer.Option("--sim-rate", min=0.1, help="messages per second of the simulated devices")
]

_STAGE_LABELS = {"places": "places 地点", "residents": "residents 居民", "accounts": "accounts 账号"}


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)


def demo(
    host: HostOption = None,
    port: PortOption = None,
    data_dir: DataDirOption = None,
    seed: SeedOption = DEFAULT_SEED,
    reset: ResetOption = False,
    load_only: LoadOnlyOption = False,
    no_devices: NoDevicesOption = False,
    sim_rate: RateOption = 20.0,
) -> None:
    """Serve a populated sample district (三个社区, ~2,000 residents) at http://127.0.0.1:8000.

    The first start creates the data folder, migrates, and loads the demo data; later starts
    reuse it. Sign in with one of the demo accounts printed on start (also in the README).
    The demo residents' buildings are alive: simulated devices report through the MQTT ingest
    (embedded broker unless CITYWEAVE_MQTT_URL is set) and their state is in the API.
    """
    started = time.perf_counter()
    settings = settings_from(data_dir, host=host, port=port, mode="demo")
    if reset:
        _reset(settings)

    def before_start(ctx: AppContext) -> None:
        _prepare(ctx, seed)
        console.print(f"ready in {time.perf_counter() - started:.1f} s")

    if load_only:
        from cityweave.db import migrate as migrations

        ctx = context_from(settings)
        migrations.upgrade(ctx.db.engine)
        before_start(ctx)
        ctx.db.dispose()
        return
    # Imported here, not at the top: cli.main imports this module to register the command.
    from cityweave.cli.main import _serve

    def with_devices(ctx: AppContext, runtime: DeviceRuntime) -> Callable[[], None] | None:
        return _start_devices(ctx, runtime, seed, sim_rate, started)

    _serve(settings, before_start=before_start, with_devices=with_devices, devices=not no_devices)


def _start_devices(ctx: AppContext, runtime: DeviceRuntime, seed: int, rate: float,
                   started: float) -> Callable[[], None] | None:
    """Bind the demo buildings' simulated devices (first start only) and run the simulator."""
    from cityweave.demo import devices, loader
    from cityweave.simulator.runner import start_background

    with ctx.db.session() as session:
        seed = loader.loaded_seed(session) or seed
    fleet = devices.demo_fleet(ctx, seed)
    if not fleet.devices:
        return None
    report = devices.bind(ctx, fleet)
    if report is not None:
        console.print(f"bound {report.devices:,} simulated devices in {report.households:,} households "
                      f"in [bold]{report.seconds:.1f} s[/bold]")
    url = runtime.simulator_url()  # with an account of its own when the broker asks for logins
    if url is None:
        return None
    simulation = start_background(url, fleet=fleet, rate=rate, seed=seed)
    console.print(f"simulating {len(fleet.devices):,} devices at {rate:g} messages/s; "
                  f"devices ready in {time.perf_counter() - started:.1f} s")

    def stop() -> None:
        simulation.stop(timeout=5.0)

    return stop


def _prepare(ctx: AppContext, seed: int) -> None:
    """Load on first start (with a progress bar), then show what there is to sign in with."""
    from cityweave.demo import loader
    from cityweave.errors import Conflict

    try:
        with _progress_bar() as progress:
            report = loader.load(ctx, seed=seed, progress=progress)
    except Conflict as exc:
        console.print(f"[red]cannot load the demo:[/red] {exc.detail}", highlight=False)
        raise typer.Exit(1) from exc
    if report is None:
        with ctx.db.session() as session:
            loaded = loader.loaded_seed(session)
        note = f" (seed {loaded}; --reset to load seed {seed})" if loaded != seed else ""
        console.print(f"demo data already loaded{note}")
    else:
        console.print(
            f"loaded {report.places:,} places, {report.residents:,} residents "
            f"({report.care_tags:,} care tags) and {report.accounts} accounts "
            f"in [bold]{report.seconds:.1f} s[/bold] (seed {report.seed})"
        )
    console.print(accounts_table(ctx))


def accounts_table(ctx: AppContext, *, width: int | None = None) -> Table:
    """The demo accounts, their scopes by name, and their (public) passwords.

    The description column appears only where it fits (Chinese from 110 columns, both
    languages from 150): in 80 columns it would wrap the table into a column of fragments.
    """
    from cityweave.places.models import Place

    ids = [a.place_id for a in DEMO_ACCOUNTS if a.place_id]
    with ctx.db.session() as session:
        rows = session.execute(select(Place.id, Place.name).where(Place.id.in_(ids)))
        names = {row.id: row.name for row in rows}
    width = width or console.width
    columns = ["username", "password", "role", "scope"] + (["about"] if width >= 110 else [])
    table = Table(*columns, title="demo accounts 演示账号")
    for account in DEMO_ACCOUNTS:
        scope = names.get(account.place_id, account.place_id) if account.place_id else "—"
        if account.categories:
            scope += f" ({', '.join(account.categories)})"
        about = f"{account.about_zh} / {account.about_en}" if width >= 150 else account.about_zh
        row = [account.username, account.password, account.role.value, scope, about]
        table.add_row(*row[: len(columns)])
    return table


@contextmanager
def _progress_bar() -> Iterator[Callable[[str, int, int], None]]:
    """A Rich progress bar with one line per loading stage, fed by the loader's callback.

    Started on the first report only, so a start that loads nothing prints nothing here.
    """
    bar = Progress(TextColumn("{task.description:<14}"), BarColumn(), MofNCompleteColumn(),
                   TimeElapsedColumn(), console=console)
    tasks: dict[str, TaskID] = {}

    def update(stage: str, done: int, total: int) -> None:
        if not tasks:
            bar.start()
        if stage not in tasks:
            tasks[stage] = bar.add_task(_STAGE_LABELS.get(stage, stage), total=total)
        bar.update(tasks[stage], completed=done)

    try:
        yield update
    finally:
        if tasks:
            bar.stop()


def _reset(settings: Settings) -> None:
    """Delete the SQLite demo database, after making sure it is one.

    Only SQLite: dropping a PostgreSQL database is a decision for its administrator. And only a
    database that holds the demo or nothing: ``--reset`` must never delete somebody's real data.
    """
    from cityweave.demo import loader

    url = make_url(settings.effective_database_url)
    if url.get_backend_name() != "sqlite" or not url.database:
        console.print("[red]--reset[/red] replaces only the SQLite demo database in the data folder; "
                      "drop and recreate other databases yourself", highlight=False)
        raise typer.Exit(2)
    path = Path(url.database)
    if path.exists():
        ctx = context_from(settings)
        try:
            with ctx.db.session() as session:
                foreign = _has_tables(ctx) and loader.holds_other_data(session)
        finally:
            ctx.db.dispose()
        if foreign:
            console.print(f"[red]refusing to reset[/red] {path}: it holds places that are not the demo",
                          highlight=False)
            raise typer.Exit(1)
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    console.print(f"removed the demo database {path}", highlight=False)


def _has_tables(ctx: AppContext) -> bool:
    from sqlalchemy import inspect

    return inspect(ctx.db.engine).has_table("places")
