"""``cityweave import`` and ``cityweave export``: spreadsheets in and out, acting as the platform.

The commands are thin: :mod:`cityweave.transfer` does the work, exactly as for the API. They
import it lazily so that ``cityweave --help`` stays quick.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from cityweave.cli.common import DataDirOption, as_system

if TYPE_CHECKING:
    from cityweave.transfer.importer import ImportReport

console = Console()

Sheet = Literal["places", "residents"]
SheetArgument = Annotated[Sheet, typer.Argument(help="which sheet: places or residents")]
LocaleOption = Annotated[
    str | None,
    typer.Option("--locale", help="language of the messages: zh-CN or en [default: from LANG, else zh-CN]"),
]
SHOWN_ERRORS = 200  # more would scroll away; the count says how many there were


def register(app: typer.Typer) -> None:
    """Add the two commands to the ``cityweave`` app."""
    app.command("import")(import_command)
    app.command("export")(export_command)


def import_command(
    sheet: SheetArgument,
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True,
                                         help="the filled-in .csv (UTF-8) or .xlsx file")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="check every row, write nothing")] = False,
    locale: LocaleOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Import places or residents, all or nothing: any row error means nothing is written.

    Errors are listed by spreadsheet row and column; the exit code is 1 when there are any.
    """
    from cityweave.transfer import importer
    from cityweave.transfer.templates import SheetKind

    language = _locale(locale)
    with as_system(data_dir) as call, _progress() as progress:
        tasks: dict[str, object] = {}

        def report_progress(phase: str, done: int, total: int) -> None:
            if phase not in tasks:
                label = {"check": "checking", "write": "writing"}.get(phase, phase)
                tasks[phase] = progress.add_task(label, total=total)
            progress.update(tasks[phase], completed=done, total=total)  # type: ignore[arg-type]

        report = importer.import_sheet(call, SheetKind(sheet), file.read_bytes(), filename=file.name,
                                       locale=language, dry_run=dry_run, progress=report_progress)
        progress.stop()
        if not report.ok:
            _print_errors(report, language)
            raise typer.Exit(1)  # leaves the transaction rolled back
    console.print(f"[green]{report.message}[/green]", highlight=False)


def export_command(
    sheet: SheetArgument,
    out_file: Annotated[Path, typer.Argument(dir_okay=False, help="where to write: .csv or .xlsx")],
    within: Annotated[str | None, typer.Option("--within", help="only what lies inside this place id")] = None,
    locale: LocaleOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Export places or residents in the template layout (the format follows the file name).

    Acting as the platform, residents are exported unmasked; each one is audited.
    """
    from cityweave.errors import CityWeaveError
    from cityweave.i18n import translate
    from cityweave.transfer import exporter
    from cityweave.transfer.tables import FileFormat
    from cityweave.transfer.templates import SheetKind

    suffix = out_file.suffix.lower().lstrip(".")
    if suffix not in ("csv", "xlsx"):
        console.print("[red]error:[/red] the file name must end in .csv or .xlsx", highlight=False)
        raise typer.Exit(2)
    language = _locale(locale)
    try:
        with as_system(data_dir) as call:
            result = exporter.export_sheet(call, SheetKind(sheet), FileFormat(suffix), within=within, locale=language)
            out_file.write_bytes(result.content)  # inside: a failed write undoes the audit records
    except CityWeaveError as exc:
        console.print(f"[red]error:[/red] {exc.detail}", highlight=False)
        raise typer.Exit(1) from exc
    console.print(translate("export.done", language, count=result.rows, file=str(out_file)), highlight=False)


def _locale(option: str | None) -> str:
    from cityweave.i18n import negotiate

    if option:
        return negotiate(option)
    # LANG=en_US.UTF-8 → "en_us.utf-8", which negotiate reads as English.
    return negotiate(os.environ.get("LANG", "").replace("_", "-"))


def _progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=console, transient=True)


def _print_errors(report: ImportReport, locale: str) -> None:
    from cityweave.i18n import translate

    console.print(f"[red]{report.message}[/red]", highlight=False)
    table = Table(translate("import.table_row", locale), translate("import.table_column", locale),
                  translate("import.table_message", locale))
    for error in report.errors[:SHOWN_ERRORS]:
        table.add_row("" if error.row is None else str(error.row), error.column or "", error.message)
    console.print(table)
    hidden = report.error_count - min(len(report.errors), SHOWN_ERRORS)
    if hidden > 0:
        console.print(translate("import.more_errors", locale, count=hidden), highlight=False)
