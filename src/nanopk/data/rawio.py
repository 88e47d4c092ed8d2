"""Read a CSV or .xlsx sheet as raw cells, keeping the row numbers a spreadsheet shows.

Readers validate raw cells (strings or spreadsheet numbers) themselves, so that every
problem can name its column and its row: the header is row 1 and the first data row is
row 2, exactly as Excel or LibreOffice number them.  Fully blank rows are skipped but
still counted, so row numbers never drift.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

__all__ = ["RawSheet", "read_raw", "EXCEL_SUFFIXES"]

EXCEL_SUFFIXES = (".xlsx", ".xlsm")


@dataclass
class RawSheet:
    """A sheet as read: ``header`` (stripped strings) and ``rows`` of ``(row_number, cells)``."""

    header: list[str]
    rows: list[tuple[int, list]]
    header_row: int = 1


def _blank(cell) -> bool:
    return cell is None or (isinstance(cell, str) and not cell.strip())


def read_raw(path: Path, sheet: str | int | None = None) -> RawSheet:
    """Read ``path`` (.csv, or .xlsx via openpyxl) into a :class:`RawSheet`.

    The first non-blank row is the header.  ``sheet`` selects a worksheet of a workbook
    by name or 0-based index (default: the first).
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
    header_row, header = data[0]
    header = ["" if c is None else str(c).strip() for c in header]
    while header and not header[-1]:
        header.pop()
    width = len(header)
    # Short rows are padded; long rows are kept whole so that a value typed in a column
    # without a header is reported, not dropped.
    body = [(i, cells + [None] * (width - len(cells))) for i, cells in data[1:]]
    return RawSheet(header=header, rows=body, header_row=header_row)


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

    wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
    try:
        if sheet is None:
            ws = wb.worksheets[0]
        elif isinstance(sheet, int):
            ws = wb.worksheets[sheet]
        else:
            ws = wb[sheet]
        return [list(row) for row in ws.iter_rows(values_only=True)]
    finally:
        wb.close()
