"""The wide spreadsheet layout: one row per time, one column per tissue.

Columns::

    time | group (optional) | n (optional, all tissues) | liver | liver_sd | spleen | spleen_sd | ...

A tissue column holds the values; ``<tissue>_sd``, ``<tissue>_sem``, ``<tissue>_n`` and
``<tissue>_lloq`` hold that tissue's SD, SEM, number of animals and limit of
quantification.  Tissue headers go through the same vocabulary as long files
("Kidneys" -> kidney).  An empty tissue cell means "not measured at this time" and gives
no observation; an SD or n next to an empty value is reported, since it means the value
was lost.  Units and the dose come from the sidecar (or keyword arguments), since a wide
sheet has no unit column.
"""
from __future__ import annotations

import math

import pandas as pd

from ..errors import DataError
from ._problems import Problems
from .validate import Record, is_blank
from .vocabulary import canonical_tissue, suggest_tissue

__all__ = ["records_from_wide", "to_wide", "SUFFIXES", "looks_wide"]

#: Per-tissue companion columns: suffix -> record field.
SUFFIXES = {"_sd": "sd", "_sem": "sem", "_n": "n", "_lloq": "lloq"}
_SHARED = ("time", "group", "n", "note", "notes")


def looks_wide(header: list[str]) -> bool:
    """A sheet is wide if it has a ``time`` column but no ``tissue``/``value`` columns."""
    names = {h.strip().lower() for h in header}
    return "time" in names and not {"tissue", "value"} & names


def _split(name: str):
    low = name.strip().lower()
    for suffix, field in SUFFIXES.items():
        if low.endswith(suffix) and len(low) > len(suffix):
            return name.strip()[: -len(suffix)], field
    return name.strip(), "value"


def records_from_wide(sheet, problems: Problems) -> list[Record]:
    """Records of a wide sheet; header problems (unknown tissues, orphan SD columns) are added."""
    shared: dict[str, int] = {}
    tissues: dict[str, dict[str, int]] = {}  # canonical tissue -> field -> column index
    for i, header in enumerate(sheet.header):
        low = header.strip().lower()
        if not low:
            continue
        if low in _SHARED:
            shared["note" if low == "notes" else low] = i
            continue
        base, field = _split(header)
        tissue = canonical_tissue(base)
        if tissue is None:
            problems.note(
                f"unknown tissue {base!r} in the header of column {header!r} (row {sheet.header_row}){suggest_tissue(base)}; "
                f"expected time, group, n and one column per tissue (with optional <tissue>_sd, _sem, _n, _lloq)",
                column=header, rows=[sheet.header_row],
            )
            continue
        if field in tissues.setdefault(tissue, {}):
            other = sheet.header[tissues[tissue][field]]
            problems.note(f"columns {other!r} and {header!r} both hold the {field} of tissue {tissue!r}; expected one", column=header)
            continue
        tissues[tissue][field] = i
    if "time" not in shared:
        got = ", ".join(h for h in sheet.header if h) or "none"
        problems.note(f"missing required column 'time'; got columns: {got}", column="time")
    for tissue, fields in tissues.items():
        if "value" not in fields:
            orphans = ", ".join(repr(sheet.header[i]) for i in fields.values())
            problems.note(f"column(s) {orphans} have no value column {tissue!r} beside them; expected a column named {tissue!r}", column=sheet.header[next(iter(fields.values()))])

    records = []
    for row, cells in sheet.rows:
        for tissue, fields in tissues.items():
            if "value" not in fields:
                continue
            value_col = fields["value"]
            if is_blank(cells[value_col]):
                stray = [sheet.header[i] for f, i in fields.items() if f != "value" and not is_blank(cells[i])]
                for col in stray:
                    problems.add(("stray", col), col, row,
                                 lambda text, _r, _g, col=col, vcol=sheet.header[value_col]: f"column {col} has a value in {text} but column {vcol} is empty; expected the measured value beside it")
                continue
            rec = Record(row=row, tissue=tissue)
            for name in ("time", "group", "note"):
                if name in shared:
                    rec.cells[name] = (cells[shared[name]], sheet.header[shared[name]])
            if "n" in shared:
                rec.cells["n"] = (cells[shared["n"]], sheet.header[shared["n"]])
            for field, i in fields.items():
                rec.cells[field] = (cells[i], sheet.header[i])
            records.append(rec)
    return records


def to_wide(table: pd.DataFrame, path=None) -> pd.DataFrame:
    """The wide form of a long table (one row per (group, time), one column per tissue).

    Columns are ``time`` (in the dataset's time unit), ``group`` if any group is named,
    then for each tissue its value and, where present, ``_sd``, ``_sem``, ``_n`` and
    ``_lloq``.  All rows must share one unit (a wide sheet has no unit column).

    Raises
    ------
    DataError
        If the rows have more than one unit.
    """
    units = sorted({u for u in table["unit"] if u is not None})
    if len(units) > 1:
        raise DataError(path or "<table>", [{"message": f"a wide sheet holds one unit, but the rows have units {', '.join(units)}; write the long layout instead", "column": "unit"}])
    has_group = bool((table["group"] != "").any())
    tissues = list(dict.fromkeys(table["tissue"]))
    # Rows sorted by time within each group, so every tissue's series increases down the sheet.
    group_order = {g: i for i, g in enumerate(dict.fromkeys(table["group"]))}
    keys = sorted(dict.fromkeys(zip(table["group"], table["time"])), key=lambda k: (group_order[k[0]], k[1]))
    rows = []
    for group, time in keys:
        row = {"time": time}
        if has_group:
            row["group"] = group
        rows.append(row)
    index = {k: i for i, k in enumerate(keys)}
    columns = ["time"] + (["group"] if has_group else [])
    for tissue in tissues:
        sub = table[table["tissue"] == tissue]
        columns.append(tissue)
        extra = [f for f in ("sd", "sem", "n", "lloq") if sub[f].notna().any()]
        columns += [f"{tissue}_{f}" for f in extra]
        for rec in sub.itertuples(index=False):
            row = rows[index[(rec.group, rec.time)]]
            row[tissue] = rec.value
            for f in extra:
                v = getattr(rec, f)
                row[f"{tissue}_{f}"] = None if (v is pd.NA or (isinstance(v, float) and math.isnan(v))) else v
    wide = pd.DataFrame(rows, columns=columns)
    return wide
