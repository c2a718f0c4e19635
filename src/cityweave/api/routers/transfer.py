"""Spreadsheet import and export: templates, all-or-nothing uploads, scoped downloads.

The rules live in :mod:`cityweave.transfer`; this router only turns HTTP into calls and
reports into answers (200 with the report, or a 422 problem listing every row error).
"""

from __future__ import annotations

from typing import Annotated, Any, cast

from fastapi import APIRouter, File, Query, Request, UploadFile
from fastapi.responses import Response
from pydantic import BaseModel

from cityweave.api.deps import CallDep
from cityweave.api.problems import Problem, problem_response
from cityweave.context import Call
from cityweave.i18n import DEFAULT_LOCALE, negotiate
from cityweave.transfer import exporter, importer
from cityweave.transfer.tables import CSV_MEDIA_TYPE, XLSX_MEDIA_TYPE, FileFormat
from cityweave.transfer.templates import SheetKind, build_template

router = APIRouter(
    prefix="/api/v1",
    tags=["import-export"],
    responses={401: {"model": Problem}, 403: {"model": Problem}, 404: {"model": Problem}, 422: {"model": Problem}},
)

_MEDIA_TYPES = {FileFormat.CSV: CSV_MEDIA_TYPE, FileFormat.XLSX: XLSX_MEDIA_TYPE}
_FILE_CONTENT = {CSV_MEDIA_TYPE: {}, XLSX_MEDIA_TYPE: {}}


class RowErrorOut(BaseModel):
    row: int | None
    column: str | None
    field: str | None
    code: str
    message: str


class ImportReportOut(BaseModel):
    sheet: SheetKind
    ok: bool
    dry_run: bool
    message: str
    counts: dict[str, int]
    errors: list[RowErrorOut]
    error_count: int


class ImportProblem(Problem):
    """A rejected import: nothing was written; ``errors`` lists every problem by row and column."""

    errors: list[RowErrorOut] | None = None  # type: ignore[assignment]
    sheet: SheetKind
    dry_run: bool
    counts: dict[str, int]
    error_count: int
    errors_truncated: bool


def request_locale(request: Request, call: Call) -> str:
    """The account's language when the person chose one, else the browser's. zh-CN is every
    account's default, so it cannot tell a choice from none: then Accept-Language decides."""
    chosen = call.principal.locale if call.principal.locale != DEFAULT_LOCALE else None
    return negotiate(request.headers.get("accept-language"), chosen)


def _download(content: bytes, media_type: str, filename: str, **headers: str) -> Response:
    return Response(content, media_type=media_type,
                    headers={"Content-Disposition": f'attachment; filename="{filename}"', **headers})


@router.get("/templates/{sheet}.{fmt}", response_class=Response,
            responses={200: {"content": _FILE_CONTENT, "description": "an empty sheet with example rows"}})
def download_template(sheet: SheetKind, fmt: FileFormat) -> Response:
    """A blank sheet to fill in: bilingual headers, '#' example rows (skipped on import), and in
    XLSX a "说明 Help" sheet. Holds no data, so it needs no sign-in."""
    return _download(build_template(sheet, fmt), _MEDIA_TYPES[fmt], f"cityweave-{sheet.value}-template.{fmt.value}")


@router.post("/import/{sheet}", response_model=ImportReportOut,
             responses={413: {"model": Problem}, 422: {"model": ImportProblem}})
def import_sheet(
    request: Request,
    call: CallDep,
    sheet: SheetKind,
    file: Annotated[UploadFile, File(description="the filled-in .csv (UTF-8) or .xlsx sheet")],
    dry_run: Annotated[bool, Query(description="check every row, write nothing")] = False,
) -> Any:
    """All or nothing: every row is checked first; if any has a problem, nothing is written and
    the 422 answer lists each one with its spreadsheet row, column and a message in the
    caller's language."""
    report = importer.import_sheet(
        call, sheet, file.file.read(), filename=file.filename, locale=request_locale(request, call), dry_run=dry_run
    )
    errors = [RowErrorOut(**e.__dict__).model_dump() for e in report.errors]
    if not report.ok:
        return problem_response(
            request, 422, "validation-error", report.message,
            errors=cast(list[dict[str, str]], errors),  # row errors carry a row number too
            sheet=report.sheet.value, dry_run=report.dry_run, counts=report.counts,
            error_count=report.error_count, errors_truncated=report.truncated,
        )
    return ImportReportOut(sheet=report.sheet, ok=True, dry_run=report.dry_run, message=report.message,
                           counts=report.counts, errors=[], error_count=0)


@router.get("/export/{sheet}.{fmt}", response_class=Response,
            responses={200: {"content": _FILE_CONTENT, "description": "the sheet, in the template layout"}})
def export_sheet(
    request: Request,
    call: CallDep,
    sheet: SheetKind,
    fmt: FileFormat,
    within: Annotated[str | None, Query(max_length=64, description="only what lies inside this place")] = None,
) -> Response:
    """Everything of the kind in the caller's scope. Residents are masked unless the caller may
    reveal them; unmasked rows are audited as personal-data views."""
    result = exporter.export_sheet(call, sheet, fmt, within=within, locale=request_locale(request, call))
    return _download(result.content, result.media_type, result.filename,
                     **{"Cache-Control": "no-store", "X-Row-Count": str(result.rows)})
