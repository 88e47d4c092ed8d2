"""Check raw dataset cells and build the long table; every problem is collected, none raised.

Both layouts (long and wide) are first turned into :class:`Record` objects -- one
observation each, holding its raw cells and the spreadsheet column and row each came
from -- so that one set of checks serves both, and every message names the column and
the rows the user will find the problem in (header = row 1).

Checks, per cell: time, value, sd, sem and lloq are finite numbers >= 0; n is a positive
integer; the tissue is in the controlled vocabulary; the unit (per-row ``unit`` or the
sidecar's ``value_unit``) is known and convertible to %ID; an SD has its n.  Per series
(group, tissue): times strictly increase in file order (a repeated time is reported as
a duplicate).  Per dataset: the dose is known if any unit is an amount of material.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pint

from ..errors import suggest
from ..units import COMMON_UNITS
from ._problems import Problems, show_values
from .convert import classify_unit, dose_in_ug, hours_per, needs_dose
from .vocabulary import canonical_tissue, suggest_tissue

__all__ = ["Record", "LONG_COLUMNS", "REQUIRED_COLUMNS", "TABLE_COLUMNS", "records_from_long", "build_table", "parse_number"]

REQUIRED_COLUMNS = ("time", "tissue", "value")
_NOTE_SPELLINGS = ("notes", "comment", "comments")
LONG_COLUMNS = REQUIRED_COLUMNS + ("sd", "sem", "n", "unit", "lloq", "group", "note")
#: Columns of ``Dataset.table``, in order (plus ``note`` when the file has notes).
TABLE_COLUMNS = ("time", "time_h", "tissue", "value", "sd", "sem", "n", "unit", "lloq", "group", "censored", "row")

_PINT_ERRORS = (pint.errors.PintError, AttributeError, TypeError, ValueError, AssertionError, KeyError)


@dataclass
class Record:
    """One observation as read: ``cells[field] = (raw value, column label)`` and its row."""

    row: int
    cells: dict = field(default_factory=dict)
    tissue: str | None = None  # already canonical (wide layout: from the header)

    def raw(self, name):
        return self.cells.get(name, (None, name))[0]

    def column(self, name):
        return self.cells.get(name, (None, name))[1]


def is_blank(raw) -> bool:
    return raw is None or (isinstance(raw, float) and math.isnan(raw)) or (isinstance(raw, str) and not raw.strip())


def parse_number(raw) -> float | None:
    """``float`` of a cell, or ``None`` if it is not a finite number (blank is checked before)."""
    if isinstance(raw, bool):
        return None
    if isinstance(raw, (int, float, np.integer, np.floating)):
        v = float(raw)
    else:
        try:
            v = float(str(raw).strip())
        except ValueError:
            return None
    return v if math.isfinite(v) else None


def _shown(raw):
    return raw.strip() if isinstance(raw, str) else raw


# --------------------------------------------------------------------------- long layout
def records_from_long(sheet, problems: Problems) -> list[Record]:
    """Records of a long sheet (columns time, tissue, value, ...); header problems are added."""
    names = [h.strip().lower() for h in sheet.header]
    seen: dict[str, int] = {}
    for i, name in enumerate(names):
        if not name:
            continue
        if name in seen:
            problems.note(f"duplicate column {sheet.header[i]!r} (columns {seen[name] + 1} and {i + 1}); expected each column once", column=sheet.header[i])
        else:
            seen[name] = i
        if name in _NOTE_SPELLINGS:
            continue
        if name not in LONG_COLUMNS:
            problems.note(
                f"unknown column {sheet.header[i]!r}{suggest(name, LONG_COLUMNS)}; expected columns {', '.join(LONG_COLUMNS)}",
                column=sheet.header[i],
            )
    for spelling in _NOTE_SPELLINGS:
        if spelling in seen and "note" not in seen:
            seen["note"] = seen.pop(spelling)
    got = ", ".join(h for h in sheet.header if h) or "none"
    for name in REQUIRED_COLUMNS:
        if name not in seen:
            problems.note(f"missing required column {name!r}; got columns: {got}", column=name)
    _headerless_cells(sheet, problems)

    records = []
    for row, cells in sheet.rows:
        rec = Record(row=row)
        for name, i in seen.items():
            if name in LONG_COLUMNS:
                rec.cells[name] = (cells[i] if i < len(cells) else None, sheet.header[i])
        records.append(rec)
    return records


def _headerless_cells(sheet, problems: Problems):
    """Values typed in a column that has no header would otherwise be lost: report them."""
    width = max([len(sheet.header)] + [len(cells) for _, cells in sheet.rows])
    for j in range(width):
        if j < len(sheet.header) and sheet.header[j]:
            continue
        label = f"column {j + 1}"
        for row, cells in sheet.rows:
            if j < len(cells) and not is_blank(cells[j]):
                problems.add(("headerless", j), label, row,
                             lambda text, _r, _g, label=label: f"values in {label}, which has no header, {text}; give the column a name (time, tissue, value, sd, ...)")


# --------------------------------------------------------------------------- the table
def build_table(records: list[Record], meta: dict, problems: Problems) -> pd.DataFrame:
    """Check every record and return the long table (:data:`TABLE_COLUMNS`)."""
    try:
        hours = hours_per(str(meta["time_unit"])) if meta.get("time_unit") not in (None, "") else math.nan
    except ValueError:
        hours = math.nan  # already reported by the sidecar check
    default_unit = meta.get("value_unit") if meta.get("value_unit") not in (None, "") else None
    sidecar_unit_ok = True
    if default_unit is not None:
        try:
            sidecar_unit_ok = classify_unit(str(default_unit)) is not None
        except _PINT_ERRORS:
            sidecar_unit_ok = False

    out = {c: [] for c in TABLE_COLUMNS}
    unit_kinds: dict[str, str | None] = {}
    for rec in records:
        time = _number(rec, "time", problems, required=True)
        tissue = rec.tissue if rec.tissue is not None else _tissue(rec, problems)
        value = _number(rec, "value", problems, required=True)
        sd = _number(rec, "sd", problems)
        sem = _number(rec, "sem", problems)
        lloq = _number(rec, "lloq", problems)
        n = _count(rec, problems)
        if sd is not None and n is None:
            problems.add(("sd_without_n",), rec.column("sd"), rec.row,
                         lambda text, _r, _g, col=rec.column("sd"): f"SD without n in column {col}, {text}; expected the number of animals in column n (or give the SEM in column sem)")
        unit = _unit(rec, default_unit, sidecar_unit_ok, problems, unit_kinds)
        group = rec.raw("group")
        group = "" if is_blank(group) else (str(int(group)) if isinstance(group, float) and group.is_integer() else str(group).strip())

        out["time"].append(math.nan if time is None else time)
        out["time_h"].append(math.nan if time is None else time * hours)
        out["tissue"].append(tissue)
        out["value"].append(math.nan if value is None else value)
        out["sd"].append(math.nan if sd is None else sd)
        out["sem"].append(math.nan if sem is None else sem)
        out["n"].append(n)
        out["unit"].append(unit)
        out["lloq"].append(math.nan if lloq is None else lloq)
        out["group"].append(group)
        out["censored"].append(value is not None and (value == 0 or (lloq is not None and value < lloq)))
        out["row"].append(rec.row)

    _check_series(records, out, problems)
    _check_dose(out, unit_kinds, meta, problems)

    table = pd.DataFrame(
        {
            "time": np.asarray(out["time"], dtype=float),
            "time_h": np.asarray(out["time_h"], dtype=float),
            "tissue": pd.Series(out["tissue"], dtype=object),
            "value": np.asarray(out["value"], dtype=float),
            "sd": np.asarray(out["sd"], dtype=float),
            "sem": np.asarray(out["sem"], dtype=float),
            "n": pd.array(out["n"], dtype="Int64"),
            "unit": pd.Series(out["unit"], dtype=object),
            "lloq": np.asarray(out["lloq"], dtype=float),
            "group": pd.Series(out["group"], dtype=object),
            "censored": np.asarray(out["censored"], dtype=bool),
            "row": np.asarray(out["row"], dtype=int),
        }
    )
    notes = ["" if is_blank(rec.raw("note")) else str(rec.raw("note")).strip() for rec in records]
    if any(notes):  # free-text notes are kept, not dropped
        table["note"] = pd.Series(notes, dtype=object)
    return table


def _number(rec: Record, name: str, problems: Problems, required: bool = False) -> float | None:
    raw = rec.raw(name)
    col = rec.column(name)
    what = {"time": "time", "value": "value", "sd": "SD", "sem": "SEM", "lloq": "LLOQ"}[name]
    if is_blank(raw):
        if required and name in rec.cells:
            hint = " (for a value below the limit of quantification write the measured number or 0 and the limit in column lloq)" if name == "value" else ""
            problems.add(("blank", name), col, rec.row,
                         lambda text, _r, _g, col=col, what=what, hint=hint: f"missing {what} in column {col}, {text}; expected a number{hint}")
        return None
    v = parse_number(raw)
    if v is None:
        hint = ""
        if name == "value":
            hint = " (a value below the limit of quantification is written as a number with its limit in column lloq)"
        problems.add(("non_numeric", name), col, rec.row,
                     lambda text, _r, got, col=col, what=what, hint=hint: f"non-numeric {what} in column {col}, {text} (got {show_values(got)}); expected a number{hint}",
                     got=_shown(raw))
        return None
    if v < 0:
        problems.add(("negative", name), col, rec.row,
                     lambda text, _r, got, col=col, what=what: f"negative {what} in column {col}, {text} (got {show_values(got)}); expected a number >= 0",
                     got=_shown(raw))
        return None
    return v


def _count(rec: Record, problems: Problems) -> int | None:
    raw = rec.raw("n")
    if is_blank(raw):
        return None
    v = parse_number(raw)
    if v is None or v < 1 or not float(v).is_integer():
        col = rec.column("n")
        problems.add(("bad_n",), col, rec.row,
                     lambda text, _r, got, col=col: f"invalid n in column {col}, {text} (got {show_values(got)}); expected a whole number of animals >= 1",
                     got=_shown(raw))
        return None
    return int(v)


def _tissue(rec: Record, problems: Problems) -> str | None:
    raw = rec.raw("tissue")
    col = rec.column("tissue")
    if is_blank(raw):
        if "tissue" in rec.cells:
            problems.add(("blank", "tissue"), col, rec.row,
                         lambda text, _r, _g, col=col: f"missing tissue in column {col}, {text}; expected a tissue name such as liver, spleen, blood")
        return None
    name = str(raw).strip()
    tissue = canonical_tissue(name)
    if tissue is None:
        problems.add(("unknown_tissue", name), col, rec.row,
                     lambda text, _r, _g, col=col, name=name: f"unknown tissue {name!r} in column {col}, {text}{suggest_tissue(name)}")
    return tissue


def _unit(rec: Record, default_unit, sidecar_unit_ok: bool, problems: Problems, kinds: dict) -> str | None:
    raw = rec.raw("unit")
    col = rec.column("unit")
    if is_blank(raw):
        if default_unit is None:
            problems.add(("missing_unit",), col, rec.row,
                         lambda text, _r, _g, col=col: f"missing unit in column {col}, {text}: no per-row unit and no value_unit in the sidecar; expected e.g. {', '.join(COMMON_UNITS[:5])}")
            return None
        return str(default_unit) if sidecar_unit_ok else None
    unit = str(raw).strip()
    if unit not in kinds:
        try:
            kinds[unit] = classify_unit(unit)
        except _PINT_ERRORS:
            kinds[unit] = "unknown"
    kind = kinds[unit]
    if kind == "unknown":
        problems.add(("unknown_unit", unit), col, rec.row,
                     lambda text, _r, _g, col=col, unit=unit: f"unknown unit {unit!r} in column {col}, {text}{suggest(unit, COMMON_UNITS)}; expected a unit such as {', '.join(COMMON_UNITS[:8])}")
        return None
    if kind is None:
        problems.add(("unconvertible_unit", unit), col, rec.row,
                     lambda text, _r, _g, col=col, unit=unit: f"unit {unit!r} in column {col}, {text} cannot be expressed as a fraction of the dose; expected %ID, %ID/g, %ID/mL, a mass (µg/organ), mass per g (ng/g) or mass per mL (ng/mL)")
        return None
    return unit


def _check_series(records: list[Record], out: dict, problems: Problems):
    """Within each (group, tissue) series, times must strictly increase in file order."""
    last: dict[tuple, tuple[float, int]] = {}
    seen_times: dict[tuple, dict[float, list[int]]] = {}
    for i, rec in enumerate(records):
        t, tissue, group = out["time"][i], out["tissue"][i], out["group"][i]
        if tissue is None or math.isnan(t):
            continue
        key = (group, tissue)
        seen_times.setdefault(key, {}).setdefault(t, []).append(rec.row)
        col = rec.column("time")
        label = f"tissue {tissue!r}" + (f" (group {group!r})" if group else "")
        if key in last:
            t_prev, row_prev = last[key]
            if t < t_prev:
                problems.add(("not_increasing", key), col, rec.row,
                             lambda text, _r, got, col=col, label=label: f"time not increasing in column {col} for {label}, {text} ({'; '.join(got[:3])}); expected each (group, tissue) series in increasing time order",
                             got=f"{_fmt(t)} in row {rec.row} after {_fmt(t_prev)} in row {row_prev}")
        if key not in last or t > last[key][0]:
            last[key] = (t, rec.row)
    for (group, tissue), times in seen_times.items():
        for t, rows in times.items():
            if len(rows) > 1:
                col = records[0].column("time")
                label = f"tissue {tissue!r}" + (f" (group {group!r})" if group else "")
                problems.note(
                    f"duplicate time {_fmt(t)} in column {col} for {label}, rows {', '.join(map(str, rows))}; expected one row per time in each (group, tissue) series (use column group for separate cohorts)",
                    column=col, rows=rows,
                )


def _fmt(x: float) -> str:
    return f"{x:g}"


def _check_dose(out: dict, kinds: dict, meta: dict, problems: Problems):
    """Amounts of material (ng/g, µg/organ) need the injected dose to become %ID."""
    rows = []
    units = []
    for unit, row in zip(out["unit"], out["row"]):
        if unit is None:
            continue
        kind = kinds.get(unit)
        if kind is None and unit not in kinds:
            try:
                kind = kinds[unit] = classify_unit(unit)
            except _PINT_ERRORS:
                kind = kinds[unit] = "unknown"
        if kind not in (None, "unknown") and needs_dose(kind):
            rows.append(row)
            if unit not in units:
                units.append(unit)
    if not rows:
        return
    dose = meta.get("dose")
    if not isinstance(dose, dict) or dose.get("value") is None:
        problems.note(
            f"dose missing: {'rows' if len(rows) > 1 else 'row'} {_rows_text(rows)} are in {', '.join(units)}, an amount of material, "
            f"which needs the injected dose to become %ID; add dose {{\"value\": ..., \"unit\": \"ug\" or \"mg/kg\"}} to the sidecar",
            rows=rows,
        )
        return
    bw = meta.get("body_weight_g")
    try:
        bw = float(bw) if bw is not None else None
    except (TypeError, ValueError):
        bw = None
    dose_ug, reason = dose_in_ug(dose.get("value"), str(dose.get("unit")), bw)
    if dose_ug is None:
        problems.note(
            f"dose {dose.get('value')} {dose.get('unit')} cannot be used: {reason}; {'rows' if len(rows) > 1 else 'row'} {_rows_text(rows)} "
            f"in {', '.join(units)} need the injected mass (give body_weight_g for a per-kg dose, or the dose in µg)",
            rows=rows,
        )


def _rows_text(rows, limit: int = 12) -> str:
    rows = sorted(set(rows))
    shown = ", ".join(str(r) for r in rows[:limit])
    return shown + (f" … ({len(rows)} in all)" if len(rows) > limit else "")
