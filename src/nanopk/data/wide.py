"""The wide spreadsheet layout: one row per time, one column per tissue.

Columns::

    time | group (optional) | n (optional, all tissues) | liver | liver_sd | spleen | spleen_sd | ...

A tissue column holds the values; ``<tissue>_sd``, ``<tissue>_sem``, ``<tissue>_n`` and
``<tissue>_lloq`` hold that tissue's SD, SEM, number of animals and limit of
quantification.  Tissue headers go through the same vocabulary as long files
("Kidneys" -> kidney).  An empty tissue cell means "not measured at this time" and gives
no observation; an SD or n next to an empty value is reported, since it means the value
was lost.  An ``animal`` column makes each row one animal (several rows may then share a
time); without it, rows repeating a time are read as individual animals too, unless
they give SDs or n > 1 (see :mod:`nanopk.data.validate`).

Headers copied from a paper are understood: a unit in parentheses or brackets is the
unit of that column (``Time (h)``, ``Blood (%ID/g)``, ``Liver SD [%ID/g]``) and wins over
the sidecar's ``value_unit`` for that tissue, as a long file's ``unit`` column does;
companions may be written ``Liver_sd``, ``Liver SD``, ``Liver-SEM`` or ``Liver SE``.  A
companion's unit must be its value column's.  A title row above the header is skipped
(:mod:`nanopk.data.rawio`).  Otherwise units and the dose come from the sidecar (or
keyword arguments).
"""
from __future__ import annotations

import math
import re

import pandas as pd

from ..errors import DataError
from ._problems import Problems
from .rawio import split_header
from .validate import Record, header_hint, is_blank
from .vocabulary import canonical_tissue, suggest_tissue

__all__ = ["records_from_wide", "to_wide", "SUFFIXES", "looks_wide"]

#: Per-tissue companion columns: suffix -> record field.
SUFFIXES = {"_sd": "sd", "_sem": "sem", "_n": "n", "_lloq": "lloq"}
_SHARED = ("time", "group", "n", "note", "notes", "animal")
# "Liver_sd", "Liver SD", "Liver-SEM", "Liver SE", "Liver ± SD": a separator is required,
# so that a tissue ending in the letters (spleen -> ...n) is never split.
_COMPANION = re.compile(r"^(?P<base>.+?)[\s_\-±]+(?P<field>sd|sem|se|n|lloq)$", re.IGNORECASE)
_FIELD = {"sd": "sd", "sem": "sem", "se": "sem", "n": "n", "lloq": "lloq"}


def looks_wide(header: list[str]) -> bool:
    """A sheet is wide if it has a ``time`` column but no ``tissue``/``value`` columns."""
    names = {split_header(h)[0].strip().lower() for h in header}
    return "time" in names and not {"tissue", "value"} & names


def _split(name: str):
    m = _COMPANION.match(name.strip())
    if m:
        return m.group("base").strip(), _FIELD[m.group("field").lower()]
    return name.strip(), "value"


def _unit_hint(base: str) -> str:
    """``"; write the unit in parentheses: 'Blood (%ID/g)'"`` for ``"Blood %ID/g"``."""
    words = base.split()
    for k in range(len(words) - 1, 0, -1):
        head, tail = " ".join(words[:k]), " ".join(words[k:])
        if canonical_tissue(head) is not None and any(ch in tail for ch in "%/") :
            return f"; to give a unit write it in parentheses: {head + ' (' + tail + ')'!r}"
    return ""


def records_from_wide(sheet, problems: Problems) -> list[Record]:
    """Records of a wide sheet; header problems (unknown tissues, orphan SD columns) are added."""
    shared: dict[str, int] = {}
    tissues: dict[str, dict[str, int]] = {}  # canonical tissue -> field -> column index
    units: dict[str, dict[str, str]] = {}  # canonical tissue -> field -> unit written in the header
    for i, header in enumerate(sheet.header):
        name, unit = split_header(header)
        low = name.strip().lower()
        if not low:
            continue
        if low in _SHARED:
            shared["note" if low == "notes" else low] = i
            continue
        base, field = _split(name)
        tissue = canonical_tissue(base)
        if tissue is None:
            problems.note(
                f"unknown tissue {base!r} in the header of column {header!r} (row {sheet.header_row}){suggest_tissue(base)}{_unit_hint(base)}; "
                f"expected time, group, n and one column per tissue (with optional <tissue>_sd, _sem, _n, _lloq)",
                column=header, rows=[sheet.header_row],
            )
            continue
        if field in tissues.setdefault(tissue, {}):
            other = sheet.header[tissues[tissue][field]]
            problems.note(f"columns {other!r} and {header!r} both hold the {field} of tissue {tissue!r}; expected one", column=header)
            continue
        tissues[tissue][field] = i
        if unit and field != "n":
            units.setdefault(tissue, {})[field] = unit
    if "time" not in shared:
        got = ", ".join(h for h in sheet.header if h) or "none"
        problems.note(f"missing required column 'time'; got columns: {got}{header_hint(sheet)}", column="time")
    for tissue, fields in tissues.items():
        if "value" not in fields:
            orphans = ", ".join(repr(sheet.header[i]) for i in fields.values())
            problems.note(f"column(s) {orphans} have no value column {tissue!r} beside them; expected a column named {tissue!r}", column=sheet.header[next(iter(fields.values()))])
            continue
        value_unit = units.get(tissue, {}).get("value")
        for field, unit in units.get(tissue, {}).items():
            if field != "value" and unit != value_unit:
                label, vlabel = sheet.header[fields[field]], sheet.header[fields["value"]]
                problems.note(f"column {label!r} gives unit {unit!r} but its value column {vlabel!r} "
                              f"{'gives ' + repr(value_unit) if value_unit else 'gives none'}; an {field.upper()} is in the unit of its value: "
                              f"write the unit in {vlabel!r} (e.g. '{split_header(vlabel)[0]} ({unit})') and the same or none in {label!r}",
                              column=label)

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
            if "animal" in shared:
                rec.cells["animal"] = (cells[shared["animal"]], sheet.header[shared["animal"]])
            for field, i in fields.items():
                rec.cells[field] = (cells[i], sheet.header[i])
            unit = units.get(tissue, {}).get("value")
            if unit:  # the header's unit is this column's unit, as a long file's unit cell
                rec.cells["unit"] = (unit, sheet.header[value_col])
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
    animal = table["animal"] if "animal" in table.columns else pd.Series([""] * len(table), index=table.index, dtype=object)
    has_animal = bool((animal != "").any())
    # One sheet row per (group, animal, time): replicate animals without ids would land in
    # the same cell, and a wide sheet has no place for the second value.
    cell_keys = list(zip(table["group"], animal, table["time"], table["tissue"]))
    seen: dict = {}
    for key, row in zip(cell_keys, table["row"]):
        seen.setdefault(key, []).append(int(row))
    clashes = [rows for rows in seen.values() if len(rows) > 1]
    if clashes:
        shown = "; ".join(f"rows {', '.join(map(str, r))}" for r in clashes[:3])
        raise DataError(path or "<table>", [{"message": f"a wide sheet holds one value per tissue in each row, but {len(clashes)} (time, tissue) cell(s) "
                                                        f"have several animals without an id ({shown}); write the long layout, or name the animals in an 'animal' column",
                                             "column": "time", "rows": sorted(r for rows in clashes for r in rows)}])
    tissues = list(dict.fromkeys(table["tissue"]))
    # Rows sorted by time within each group, so every tissue's series increases down the sheet.
    group_order = {g: i for i, g in enumerate(dict.fromkeys(table["group"]))}
    keys = sorted(dict.fromkeys(zip(table["group"], animal, table["time"])), key=lambda k: (group_order[k[0]], k[2], k[1]))
    rows = []
    for group, who, time in keys:
        row = {"time": time}
        if has_group:
            row["group"] = group
        if has_animal:
            row["animal"] = who
        rows.append(row)
    index = {k: i for i, k in enumerate(keys)}
    columns = ["time"] + (["group"] if has_group else []) + (["animal"] if has_animal else [])
    for tissue in tissues:
        sub = table[table["tissue"] == tissue]
        sub_animal = animal[sub.index]
        columns.append(tissue)
        extra = [f for f in ("sd", "sem", "n", "lloq") if sub[f].notna().any()]
        columns += [f"{tissue}_{f}" for f in extra]
        for who, rec in zip(sub_animal, sub.itertuples(index=False)):
            row = rows[index[(rec.group, who, rec.time)]]
            row[tissue] = rec.value
            for f in extra:
                v = getattr(rec, f)
                row[f"{tissue}_{f}"] = None if (v is pd.NA or (isinstance(v, float) and math.isnan(v))) else v
    wide = pd.DataFrame(rows, columns=columns)
    return wide
