"""Reading and writing the spreadsheet files themselves: CSV (UTF-8) and XLSX.

Uploads are untrusted, so reading is defensive: size and shape limits apply before anything
is parsed, every failure becomes a :class:`TableError` with an i18n key (never a crash), and
rows keep the number the person sees in Excel so that errors can point at them.

Writing guards against formula injection: a text cell that Excel would run as a formula gets
a leading apostrophe, and reading strips exactly that apostrophe again, so an exported file
re-imports unchanged.
"""

from __future__ import annotations

import csv
import enum
import io
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import Any

from openpyxl import Workbook, load_workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Font


class FileFormat(enum.StrEnum):
    CSV = "csv"
    XLSX = "xlsx"

#: Excel refuses longer cells, so longer ones cannot come from a real spreadsheet.
MAX_CELL_CHARS = 32_767
#: More columns than any sheet layout has, with room for stray notes.
MAX_COLUMNS = 100
#: An .xlsx is a zip: refuse archives that unpack to more than this (zip bombs).
MAX_UNPACKED_BYTES = 256 * 1024 * 1024

#: Leading characters that make Excel (or LibreOffice) treat text as a formula, plus the two
#: characters our own format gives a meaning to: '#' starts a comment row, "'" is the escape.
ESCAPED_STARTS = ("=", "+", "-", "@", "\t", "\r", "#", "'")
#: Cells starting with these are formulas on import (a '+' or '-' may start a phone or number).
FORMULA_STARTS = ("=", "@")

XLSX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
CSV_MEDIA_TYPE = "text/csv; charset=utf-8"

_ZIP_MAGIC = b"PK\x03\x04"
_OLE_MAGIC = b"\xd0\xcf\x11\xe0"  # old .xls, and password-protected .xlsx


class TableError(Exception):
    """The file as a whole cannot be used. ``code`` is an i18n key, ``params`` its values."""

    def __init__(self, code: str, **params: object) -> None:
        super().__init__(code)
        self.code = code
        self.params = params


class Formula:
    """Stands for a cell that held a formula: its value is unknown, so it must be refused."""

    def __init__(self, text: str) -> None:
        self.text = text


Cell = str | int | float | bool | date | datetime | time | Formula | None


@dataclass
class Row:
    number: int  # 1-based, as shown in the spreadsheet's row header
    cells: list[Cell]


@dataclass
class Table:
    format: FileFormat
    header_row: int
    headers: list[str | None]
    rows: list[Row] = field(default_factory=list)


# -- reading ----------------------------------------------------------------------------------------
def detect_format(data: bytes, filename: str | None) -> FileFormat:
    """Trust the extension the person chose; sniff only when there is none we know."""
    name = (filename or "").lower()
    if name.endswith(".xlsx"):
        return FileFormat.XLSX
    if name.endswith(".csv"):
        return FileFormat.CSV
    return FileFormat.XLSX if data.startswith((_ZIP_MAGIC, _OLE_MAGIC)) else FileFormat.CSV


def read_table(data: bytes, fmt: FileFormat, *, max_rows: int) -> Table:
    """The header row and the data rows, skipping blank rows and '#' comment rows.

    Raises :class:`TableError` for a file that is empty, unreadable, or has more than
    ``max_rows`` data rows (reading stops there, so a huge file costs little).
    """
    raw_rows = _csv_rows(data) if fmt is FileFormat.CSV else _xlsx_rows(data)
    table: Table | None = None
    try:
        for number, cells in raw_rows:
            if len(cells) > MAX_COLUMNS and not _is_blank(cells[MAX_COLUMNS:]):
                raise TableError("import.too_many_columns", limit=MAX_COLUMNS)
            cells = cells[:MAX_COLUMNS]
            if _is_blank(cells) or _is_comment(cells):
                continue
            if table is None:
                table = Table(fmt, number, [_header_text(c) for c in cells])
            elif len(table.rows) >= max_rows:
                raise TableError("import.too_many_rows", limit=max_rows)
            else:
                table.rows.append(Row(number, cells))
    finally:
        raw_rows.close()  # releases the workbook at once when reading stops early
    if table is None:
        raise TableError("import.bad_file", format=fmt.value.upper(), message_key="import.file_empty")
    return table


def unescape(text: str) -> str:
    """Undo :func:`escape`: drop one apostrophe that protects a dangerous first character."""
    if len(text) > 1 and text[0] == "'" and text[1] in "".join(ESCAPED_STARTS):
        return text[1:]
    return text


def _is_blank(cells: Sequence[Cell]) -> bool:
    return all(c is None or (isinstance(c, str) and not c.strip()) for c in cells)


def _is_comment(cells: Sequence[Cell]) -> bool:
    first = next((c for c in cells if c is not None and not (isinstance(c, str) and not c.strip())), None)
    return isinstance(first, str) and first.strip().startswith("#")


def _header_text(cell: Cell) -> str | None:
    if cell is None or isinstance(cell, Formula):
        return None
    text = str(cell).strip()
    return text or None


def _csv_rows(data: bytes) -> Iterator[tuple[int, list[Cell]]]:
    # Excel's "Unicode text" is UTF-16 with a byte-order mark; everything else must be UTF-8.
    encoding = "utf-16" if data.startswith((b"\xff\xfe", b"\xfe\xff")) else "utf-8-sig"
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError:
        raise TableError("import.bad_file", format="CSV", message_key="import.file_not_utf8") from None
    if not text.strip():
        raise TableError("import.bad_file", format="CSV", message_key="import.file_empty")
    if "\x00" in text:  # not text at all (a binary file, or UTF-16 without its byte-order mark)
        raise TableError("import.bad_file", format="CSV", message_key="import.file_malformed",
                         row=text.count("\n", 0, text.index("\x00")) + 1)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=_delimiter(text), strict=False)
    number = 0
    try:
        for number, record in enumerate(reader, start=1):
            yield number, [_csv_cell(value) for value in record]
    except csv.Error:
        raise TableError("import.bad_file", format="CSV", message_key="import.file_malformed",
                         row=number + 1) from None


def _csv_cell(value: str) -> Cell:
    if len(value) > MAX_CELL_CHARS:
        raise TableError("import.cell_too_long", limit=MAX_CELL_CHARS)
    stripped = value.strip()
    if stripped.startswith(FORMULA_STARTS):
        return Formula(stripped)
    return stripped or None


def _delimiter(text: str) -> str:
    """Comma, unless the header line clearly uses ';' (European Excel) or tabs."""
    first_line = text.split("\n", 1)[0]
    counts = {d: first_line.count(d) for d in (",", ";", "\t")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] > counts[","] else ","


def _xlsx_rows(data: bytes) -> Iterator[tuple[int, list[Cell]]]:
    _check_xlsx_container(data)
    try:
        workbook = load_workbook(io.BytesIO(data), read_only=True, data_only=False)
    except Exception:  # noqa: BLE001 - openpyxl raises many types for damaged files
        raise TableError("import.bad_file", format="XLSX", message_key="import.file_not_xlsx") from None
    try:
        if not workbook.worksheets:
            raise TableError("import.bad_file", format="XLSX", message_key="import.file_empty")
        sheet = workbook.worksheets[0]
        # Some generators write a wrong <dimension>; without a reset, cells past it vanish.
        sheet.reset_dimensions()
        for number, row in enumerate(sheet.iter_rows(min_row=1), start=1):
            yield number, [_xlsx_cell(cell) for cell in row[: MAX_COLUMNS + 1]]
    except TableError:
        raise
    except Exception:  # noqa: BLE001 - read-only mode parses lazily, so damage shows up here
        raise TableError("import.bad_file", format="XLSX", message_key="import.file_not_xlsx") from None
    finally:
        workbook.close()


def _check_xlsx_container(data: bytes) -> None:
    if data.startswith(_OLE_MAGIC):
        raise TableError("import.bad_file", format="XLSX", message_key="import.file_old_xls")
    if not data.startswith(_ZIP_MAGIC):
        key = "import.file_empty" if not data.strip() else "import.file_not_xlsx"
        raise TableError("import.bad_file", format="XLSX", message_key=key)
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            unpacked = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, ValueError, OSError):
        raise TableError("import.bad_file", format="XLSX", message_key="import.file_not_xlsx") from None
    if unpacked > MAX_UNPACKED_BYTES:
        raise TableError("import.bad_file", format="XLSX", message_key="import.file_unpacks_too_big",
                         limit=MAX_UNPACKED_BYTES // (1024 * 1024))


def _xlsx_cell(cell: Any) -> Cell:
    value = getattr(cell, "value", None)
    if getattr(cell, "data_type", None) == "f":
        return Formula(str(value))
    if value is None or isinstance(value, (bool, int, float, date, datetime, time)):
        return value
    if isinstance(value, str):
        if len(value) > MAX_CELL_CHARS:
            raise TableError("import.cell_too_long", limit=MAX_CELL_CHARS)
        stripped = value.strip()
        if stripped.startswith(FORMULA_STARTS):
            return Formula(stripped)
        return stripped or None
    return Formula(str(value))  # array formulas and other objects: nothing we can trust


# -- writing ----------------------------------------------------------------------------------------
Value = str | int | float | None


def escape(value: Value) -> Value:
    """Make a text cell inert in Excel: ``=1+1`` becomes ``'=1+1``. Numbers stay numbers."""
    if isinstance(value, str) and value.startswith(ESCAPED_STARTS):
        return "'" + value
    return value


def write_csv(
    headers: Sequence[str], rows: Iterable[Sequence[Value]], *, comments: Sequence[Sequence[str]] = ()
) -> bytes:
    """UTF-8 with a byte-order mark, because that is what makes Excel read Chinese correctly.

    ``comments`` are our own '#' rows (template examples), written as they are: escaping them
    would turn them into data.
    """
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(headers)
    writer.writerows(comments)
    for row in rows:
        writer.writerow(["" if v is None else escape(v) for v in row])
    return ("\ufeff" + buffer.getvalue()).encode("utf-8")


def write_xlsx(
    title: str,
    headers: Sequence[str],
    rows: Iterable[Sequence[Value]],
    *,
    extra_sheets: Sequence[tuple[str, Sequence[Sequence[Value]]]] = (),
) -> bytes:
    """A streaming (write-only) workbook: exports of a whole district stay within memory."""
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(title)
    sheet.freeze_panes = "A2"
    bold = Font(bold=True)
    sheet.append([_styled(sheet, h, bold) for h in headers])
    for row in rows:
        sheet.append([escape(v) for v in row])
    for extra_title, extra_rows in extra_sheets:
        extra = workbook.create_sheet(extra_title)
        for i, row in enumerate(extra_rows):
            extra.append([_styled(extra, v, bold) for v in row] if i == 0 else [escape(v) for v in row])
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def _styled(sheet: Any, value: Value, font: Font) -> WriteOnlyCell:
    cell = WriteOnlyCell(sheet, value=escape(value))
    cell.font = font
    return cell
