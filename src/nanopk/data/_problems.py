"""Collect every problem found in a dataset, then raise them as one :class:`DataError`.

Readers call :meth:`Problems.add` once per offending cell; cells of the same kind in the
same column (and, where it matters, with the same offending value) are merged into one
message that lists all their rows, e.g. "unknown tissue 'livr' in column tissue,
rows 4, 9; did you mean 'liver'?".  Rows are 1-based spreadsheet rows: the header is
row 1, so the first data row is row 2.
"""
from __future__ import annotations

from collections.abc import Callable

from ..errors import DataError, format_rows

__all__ = ["Problems", "show_values"]


def show_values(values, limit: int = 5) -> str:
    """``"'ND', '<DL'"``: distinct offending values, in order of appearance."""
    seen: list = []
    for v in values:
        if v not in seen:
            seen.append(v)
    shown = ", ".join(repr(v) for v in seen[:limit])
    return shown + (f", … ({len(seen)} distinct)" if len(seen) > limit else "")


class Problems:
    """An ordered collection of dataset problems, merged by (kind, column, key)."""

    def __init__(self, path):
        self.path = path
        self._groups: dict[tuple, dict] = {}
        self._single: list[tuple[int, dict]] = []
        self._order = 0
        #: Messages that do not stop reading (issued as DataWarning by the reader).
        self.warnings: list[str] = []

    def warn(self, message: str):
        """Record something a user must know that does not make the dataset invalid."""
        self.warnings.append(message)

    def add(self, key: tuple, column: str | None, row: int | None, render: Callable[[str, list, list], str], got=None):
        """Record one offending cell.

        ``key`` identifies the kind of problem (cells with the same key and column are
        merged); ``render(rows_text, rows, got_values)`` builds the final message.
        """
        group = self._groups.get((key, column))
        if group is None:
            self._order += 1
            group = {"order": self._order, "column": column, "rows": [], "got": [], "render": render}
            self._groups[(key, column)] = group
        if row is not None:
            group["rows"].append(row)
        if got is not None:
            group["got"].append(got)

    def note(self, message: str, column: str | None = None, rows=None):
        """Record a problem that is already a complete message (sidecar, header, dose)."""
        self._order += 1
        entry = {"message": message}
        if column is not None:
            entry["column"] = column
        if rows:
            entry["rows"] = sorted(set(rows))
        self._single.append((self._order, entry))

    def __bool__(self) -> bool:
        return bool(self._groups or self._single)

    def as_list(self) -> list[dict]:
        """Problems as dicts (``message``, ``column``, ``rows``) in the order found."""
        out: list[tuple[int, dict]] = list(self._single)
        for group in self._groups.values():
            rows = sorted(set(group["rows"]))
            message = group["render"](format_rows(rows) if rows else "", rows, group["got"])
            entry = {"message": message}
            if group["column"] is not None:
                entry["column"] = group["column"]
            if rows:
                entry["rows"] = rows
            out.append((group["order"], entry))
        return [entry for _, entry in sorted(out, key=lambda item: item[0])]

    def raise_if_any(self):
        """Raise one :class:`DataError` listing every problem, if there is any."""
        if self:
            raise DataError(self.path, self.as_list())
