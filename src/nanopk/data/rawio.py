"""Read a CSV or .xlsx sheet as raw cells, keeping the row numbers a spreadsheet shows.

Readers validate raw cells (strings or spreadsheet numbers) themselves, so that every
problem can name its column and its row: the header is row 1 and the first data row is
row 2, exactly as Excel or LibreOffice number them.  Fully blank rows are skipped but
still counted, so row numbers never drift.

A sheet copied from a paper often has a title above the header ("Table 2. Gold in
organs, %ID/g") and units in the header cells ("Time (h)", "Blood (%ID/g)").  The header
is therefore the first row that names a time column (``time``, ``Time (h)``...), provided
every non-blank row above it holds at most :data:`MAX_TITLE_CELLS` cells -- a title or a
caption, kept in :attr:`RawSheet.preamble`, never data.  A row above the time header
with more cells may be data, so it is not skipped: the first non-blank row stays the
header and :attr:`RawSheet.time_header_row` tells the readers which row to suggest.
:func:`split_header` splits ``"Blood (%ID/g)"`` into ``("Blood", "%ID/g")``.
"""
from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import DataError, suggest

__all__ = ["RawSheet", "read_raw", "EXCEL_SUFFIXES", "split_header", "MAX_TITLE_CELLS", "header_time_unit"]

EXCEL_SUFFIXES = (".xlsx", ".xlsm")
#: Rows above the header with at most this many filled cells are a title or caption.
MAX_TITLE_CELLS = 2
#: How far down a title may push the header (non-blank rows).
_MAX_TITLE_ROWS = 5
_UNIT_IN_HEADER = re.compile(r"^(?P<name>.*?)\s*[\(\[](?P<unit>[^\)\]]*)[\)\]]\s*$")


def split_header(header: str) -> tuple[str, str | None]:
    """``"Blood (%ID/g)"`` -> ``("Blood", "%ID/g")``; ``"Time [h]"`` -> ``("Time", "h")``; no unit -> ``(header, None)``.

    >>> split_header("Liver SD (%ID/g)")
    ('Liver SD', '%ID/g')
    >>> split_header("liver")
    ('liver', None)
    """
    text = str(header).strip()
    m = _UNIT_IN_HEADER.match(text)
    if not m or not m.group("name").strip():
        return text, None
    return m.group("name").strip(), m.group("unit").strip()


def _is_time_header(cell) -> bool:
    return cell is not None and split_header(str(cell))[0].strip().lower() == "time"


def header_time_unit(header: list[str]) -> tuple[str | None, str | None]:
    """The unit written in the time column's header (``"Time (h)"`` -> ``"h"``) and that header."""
    for h in header:
        name, unit = split_header(h)
        if name.lower() == "time" and unit:
            return unit, h
    return None, None


@dataclass
class RawSheet:
    """A sheet as read: ``header`` (stripped strings) and ``rows`` of ``(row_number, cells)``."""

    header: list[str]
    rows: list[tuple[int, list]]
    header_row: int = 1
    #: ``(row, text)`` of the title/caption rows skipped above the header.
    preamble: list = field(default_factory=list)
    #: A row below the header that names a time column, when rows above it hold more
    #: than a title (so it was not taken as the header); for the readers' hints.
    time_header_row: int | None = None


def _blank(cell) -> bool:
    return cell is None or (isinstance(cell, str) and not cell.strip())


def read_raw(path: Path, sheet: str | int | None = None) -> RawSheet:
    """Read ``path`` (.csv, or .xlsx via openpyxl) into a :class:`RawSheet`.

    The first non-blank row is the header.  ``sheet`` selects a worksheet of a workbook
    by name or 0-based index; it may be left out only for a workbook of one sheet.

    Raises
    ------
    DataError
        For a file that is not a workbook, a workbook of several sheets without
        ``sheet``, or a sheet that does not exist (with the sheet names).
    """
    path = Path(path)
    if path.suffix.lower() in EXCEL_SUFFIXES:
        rows = _xlsx_rows(path, sheet)
    else:
        rows = _csv_rows(path)
    numbered = [(i, list(cells)) for i, cells in enumerate(rows, start=1)]
    data = [(i, cells) for i, cells in numbered if not all(_blank(c) for c in cells)]
    if not data:
        return RawSheet(header=[], rows=[])
    start, preamble, later = 0, [], None
    for k, (i, cells) in enumerate(data[: _MAX_TITLE_ROWS + 1]):
        if any(_is_time_header(c) for c in cells):
            above = data[:k]
            if all(sum(not _blank(c) for c in row) <= MAX_TITLE_CELLS for _, row in above):
                start = k
                preamble = [(r, " ".join(str(c).strip() for c in row if not _blank(c))) for r, row in above]
            elif k:
                later = i
            break
    header_row, header = data[start]
    header = ["" if c is None else str(c).strip() for c in header]
    while header and not header[-1]:
        header.pop()
    width = len(header)
    # Short rows are padded; long rows are kept whole so that a value typed in a column
    # without a header is reported, not dropped.
    body = [(i, cells + [None] * (width - len(cells))) for i, cells in data[start + 1:]]
    return RawSheet(header=header, rows=body, header_row=header_row, preamble=preamble, time_header_row=later)


def _csv_rows(path: Path):
    # utf-8-sig strips the byte-order mark Excel writes at the start of a CSV.
    with open(path, newline="", encoding="utf-8-sig") as fh:
        text = fh.read()
    # Spreadsheets in many locales save CSV with ';' (or tabs): take the separator from
    # the header line when it has no comma.
    first = next((line for line in text.splitlines() if line.strip()), "")
    delimiter = ","
    if "," not in first:
        delimiter = ";" if ";" in first else ("\t" if "\t" in first else ",")
    return [row for row in csv.reader(text.splitlines(), delimiter=delimiter)]


def _xlsx_rows(path: Path, sheet):
    import openpyxl

    try:
        wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # zipfile.BadZipFile, KeyError, InvalidFileException ...
        raise DataError(path, [{"message": f"cannot read {path.name} as an .xlsx workbook ({type(exc).__name__}: {exc}); "
                                           "save it from the spreadsheet program as .xlsx or .csv"}]) from None
    try:
        names = wb.sheetnames
        # A workbook of several sheets has no obvious "the data": taking the first one
        # silently fitted whatever sheet happened to be first.
        if sheet is None and len(names) > 1:
            raise DataError(path, [{"message": f"{path.name} has {len(names)} sheets ({', '.join(map(repr, names))}); "
                                               "choose one with sheet=NAME (--sheet NAME on the command line)"}])
        if isinstance(sheet, str) and sheet not in names and sheet.strip().lstrip("-").isdigit():
            sheet = int(sheet)  # "--sheet 1" on the command line is an index
        if sheet is None:
            ws = wb.worksheets[0]
        elif isinstance(sheet, int) and not isinstance(sheet, bool):
            if not -len(names) <= sheet < len(names):
                raise DataError(path, [{"message": f"sheet index {sheet} is out of range: {path.name} has {len(names)} "
                                                   f"sheet(s) ({', '.join(map(repr, names))}; index 0 is the first)"}])
            ws = wb.worksheets[sheet]
        elif str(sheet) in names:
            ws = wb[str(sheet)]
        else:
            raise DataError(path, [{"message": f"{path.name} has no sheet {sheet!r}{suggest(str(sheet), names)}; "
                                               f"its sheets: {', '.join(map(repr, names))}"}])
        return [list(row) for row in ws.iter_rows(values_only=True)]
    finally:
        wb.close()
