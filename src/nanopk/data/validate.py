"""Check raw dataset cells and build the long table; every problem is collected, none raised.

Both layouts (long and wide) are first turned into :class:`Record` objects -- one
observation each, holding its raw cells and the spreadsheet column and row each came
from -- so that one set of checks serves both, and every message names the column and
the rows the user will find the problem in (header = row 1).

Checks, per cell: time, value, sd, sem and lloq are finite numbers >= 0; n is a positive
integer; the tissue is in the controlled vocabulary; the unit (per-row ``unit`` or the
sidecar's ``value_unit``) is known and convertible to %ID -- a bare number such as
``percent`` or ``1`` is refused with what to write instead; an SD has its n; a value in
``ID`` (a fraction 0-1 of the dose) in a whole organ is at most 1.  Per series (group,
tissue): times do not decrease in file order.  Per dataset: the dose is known if any
unit is an amount of material.

Individual animals.  Labs record one row per animal, so several rows of one (group,
tissue, time) are accepted as separate observations -- each becomes its own residual in
a fit -- when none of them is a group mean: a row with an ``sd`` or ``sem`` or with
``n`` > 1 summarises several animals, and another row at the same time then conflicts
with it (reported as a duplicate time).  An optional ``animal`` column names the
animal; two rows of the same animal, tissue and time conflict, and an animal row
cannot carry an SD or ``n`` > 1.  With an ``animal`` column the time order is checked
within each animal.  Fully identical replicate rows are kept but warned about (a row
pasted twice looks the same).

Headers may carry units: ``Time (h)`` gives the time unit (it must agree with the
sidecar's ``time_unit``), ``Value (%ID/g)`` the unit of rows without a ``unit`` cell.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from ..units import pint  # without dask (nanopk.units._import_pint)

from ..errors import suggest
from ..units import COMMON_UNITS
from ._problems import Problems, show_values
from .rawio import split_header
from .convert import UnitKind, bare_number_hint, classify_unit, dose_in_ug, hours_per, needs_dose, percent_id_factor
from .vocabulary import canonical_tissue, suggest_tissue

__all__ = ["Record", "LONG_COLUMNS", "REQUIRED_COLUMNS", "TABLE_COLUMNS", "records_from_long", "build_table", "parse_number"]

REQUIRED_COLUMNS = ("time", "tissue", "value")
_NOTE_SPELLINGS = ("notes", "comment", "comments")
LONG_COLUMNS = REQUIRED_COLUMNS + ("sd", "sem", "n", "unit", "lloq", "group", "animal", "note")
#: Columns whose header may carry a measurement unit: ``Value (%ID/g)``.
_QUANTITY_COLUMNS = ("value", "sd", "sem", "lloq")
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
    """Records of a long sheet (columns time, tissue, value, ...); header problems are added.

    A unit in a header (``Value (%ID/g)``) is the unit of the rows whose ``unit`` cell is
    blank; an SD, SEM or LLOQ header may repeat it but not give another one.
    """
    split = [split_header(h) for h in sheet.header]
    names = [name.strip().lower() for name, _ in split]
    header_units = {names[i]: unit for i, (_, unit) in enumerate(split) if unit and names[i] in _QUANTITY_COLUMNS}
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
            problems.note(f"missing required column {name!r}; got columns: {got}{header_hint(sheet)}", column=name)
    value_unit = header_units.get("value")
    for name, unit in header_units.items():
        if name != "value" and unit != value_unit:
            label = sheet.header[seen[name]]
            problems.note(f"column {label!r} gives unit {unit!r} but the value column "
                          f"{'gives ' + repr(value_unit) if value_unit else 'gives none'}; an {name.upper()} is in the unit of its "
                          f"value: write the unit in the value column's header (e.g. 'value ({unit})') and the same or none here",
                          column=label)
    _headerless_cells(sheet, problems)

    records = []
    for row, cells in sheet.rows:
        rec = Record(row=row)
        for name, i in seen.items():
            if name in LONG_COLUMNS:
                rec.cells[name] = (cells[i] if i < len(cells) else None, sheet.header[i])
        if value_unit and is_blank(rec.raw("unit")):
            rec.cells["unit"] = (value_unit, sheet.header[seen["value"]])
        records.append(rec)
    return records


def header_hint(sheet) -> str:
    """``"; row 3 looks like the header ..."`` when a time header sits below other rows."""
    if getattr(sheet, "time_header_row", None) is None:
        return ""
    return (f"; row {sheet.time_header_row} names a time column and looks like the header, but the rows above it hold more "
            f"than a title: delete the rows above row {sheet.time_header_row} (a title of at most two cells may stay)")


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
    out["animal"] = []
    has_animal = any("animal" in rec.cells for rec in records)
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
        group = _label(rec.raw("group"))
        animal = _label(rec.raw("animal"))
        if animal and (sd is not None or sem is not None or (n is not None and n > 1)):
            what = "an SD" if sd is not None else ("an SEM" if sem is not None else f"n = {n}")
            problems.add(("animal_summary",), rec.column("animal"), rec.row,
                         lambda text, _r, _g, col=rec.column("animal"), what=what: f"an animal named in column {col}, {text}, together with {what}: "
                         "one animal has no SD; for a group mean leave the animal cell blank, for one animal leave sd, sem and n blank (or n = 1)")
        if value is not None and unit is not None and value > 1 and _is_whole_fraction(unit, unit_kinds):
            problems.add(("fraction_above_1", unit), rec.column("value"), rec.row,
                         lambda text, _r, got, col=rec.column("value"), unit=unit: f"value above 1 in column {col}, {text} (got {show_values(got)}) "
                         f"in unit {unit!r}, a fraction 0-1 of the injected dose (1 ID = 100 %ID): more than the whole dose in one organ; "
                         "if the values are percentages of the dose, write '%ID'",
                         got=_shown(rec.raw("value")))

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
        out["animal"].append(animal)
        out["censored"].append(value is not None and (value == 0 or (lloq is not None and value < lloq)))
        out["row"].append(rec.row)

    _check_series(records, out, problems, has_animal)
    _check_dose(out, unit_kinds, meta, problems)
    _check_fraction_as_percent(out, unit_kinds, problems)

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
    if has_animal:  # individual-animal ids are kept, as the notes are
        table["animal"] = pd.Series(out["animal"], dtype=object)
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
    hint = bare_number_hint(unit) if kind is None else None
    if hint is not None:
        problems.add(("bare_number_unit", unit), col, rec.row,
                     lambda text, _r, _g, col=col, hint=hint: f"unit in column {col}, {text}: {hint}")
        return None
    if kind == "unknown":
        problems.add(("unknown_unit", unit), col, rec.row,
                     lambda text, _r, _g, col=col, unit=unit: f"unknown unit {unit!r} in column {col}, {text}{suggest(unit, COMMON_UNITS)}; expected a unit such as {', '.join(COMMON_UNITS[:8])}")
        return None
    if kind is None:
        problems.add(("unconvertible_unit", unit), col, rec.row,
                     lambda text, _r, _g, col=col, unit=unit: f"unit {unit!r} in column {col}, {text} cannot be expressed as a fraction of the dose; expected %ID, %ID/g, %ID/mL, a mass (µg/organ), mass per g (ng/g) or mass per mL (ng/mL)")
        return None
    return unit


def _label(raw) -> str:
    """Text of a group or animal cell (``""`` when blank; ``3.0`` -> ``"3"``)."""
    if is_blank(raw):
        return ""
    return str(int(raw)) if isinstance(raw, float) and raw.is_integer() else str(raw).strip()


def _kind(unit: str, kinds: dict):
    """The :class:`UnitKind` of ``unit`` (cached in ``kinds``; ``"unknown"`` for an unknown unit)."""
    if unit not in kinds:
        try:
            kinds[unit] = classify_unit(unit)
        except _PINT_ERRORS:
            kinds[unit] = "unknown"
    return kinds[unit]


def _is_whole_fraction(unit: str, kinds: dict) -> bool:
    """Whether ``unit`` is a fraction 0-1 of the dose in a whole organ (``ID``; not ``%ID``)."""
    if _kind(unit, kinds) != UnitKind.DOSE_FRACTION:
        return False
    try:
        return percent_id_factor(unit) > 1.5  # 1 ID = 100 %ID; %ID itself has factor 1
    except ValueError:
        return False


def _is_summary(out: dict, i: int) -> bool:
    """Row ``i`` summarises several animals: it has an SD or SEM, or n > 1."""
    n = out["n"][i]
    return not math.isnan(out["sd"][i]) or not math.isnan(out["sem"][i]) or (n is not None and n > 1)


def _check_series(records: list[Record], out: dict, problems: Problems, has_animal: bool = False):
    """Times do not decrease within a series; replicate rows at one time must be individual animals.

    The series is (group, tissue), or (group, animal, tissue) with an ``animal`` column.
    Several rows of one (group, tissue, time) are individual observations unless one
    of them is a group mean (SD, SEM or n > 1) -- then they conflict -- or two name the
    same animal.
    """
    last: dict[tuple, tuple[float, int]] = {}
    cells: dict[tuple, list[int]] = {}
    for i, rec in enumerate(records):
        t, tissue, group, animal = out["time"][i], out["tissue"][i], out["group"][i], out["animal"][i]
        if tissue is None or math.isnan(t):
            continue
        cells.setdefault((group, tissue, t), []).append(i)
        key = (group, animal, tissue) if has_animal else (group, tissue)
        col = rec.column("time")
        label = f"tissue {tissue!r}" + (f" (group {group!r})" if group else "") + (f" of animal {animal!r}" if has_animal and animal else "")
        series = "(group, animal, tissue)" if has_animal else "(group, tissue)"
        if key in last:
            t_prev, row_prev = last[key]
            if t < t_prev:
                problems.add(("not_increasing", key), col, rec.row,
                             lambda text, _r, got, col=col, label=label, series=series: f"time not increasing in column {col} for {label}, {text} ({'; '.join(got[:3])}); expected each {series} series in increasing time order",
                             got=f"{_fmt(t)} in row {rec.row} after {_fmt(t_prev)} in row {row_prev}")
        if key not in last or t >= last[key][0]:
            last[key] = (t, rec.row)
    identical: list[list[int]] = []
    for (group, tissue, t), idx in cells.items():
        if len(idx) < 2:
            continue
        rows = [records[i].row for i in idx]
        col = records[idx[0]].column("time")
        label = f"tissue {tissue!r}" + (f" (group {group!r})" if group else "")
        summaries = [records[i].row for i in idx if _is_summary(out, i)]
        if summaries:
            problems.note(
                f"duplicate time {_fmt(t)} in column {col} for {label}, rows {', '.join(map(str, rows))}; expected one row per time in each (group, tissue) series "
                f"(use column group for separate cohorts) -- {'row' if len(summaries) == 1 else 'rows'} {', '.join(map(str, summaries))} "
                f"{'gives' if len(summaries) == 1 else 'give'} an SD, SEM or n > 1, i.e. a group mean, so the rows cannot be individual animals "
                "(rows of individual animals leave sd, sem and n blank, or n = 1)",
                column=col, rows=rows,
            )
            continue
        by_animal: dict[str, list[int]] = {}
        for i in idx:
            if out["animal"][i]:
                by_animal.setdefault(out["animal"][i], []).append(records[i].row)
        conflict = False
        for animal, arows in by_animal.items():
            if len(arows) > 1:
                conflict = True
                acol = records[idx[0]].column("animal")
                problems.note(
                    f"animal {animal!r} has {len(arows)} rows for {label} at time {_fmt(t)} (column {acol}), rows {', '.join(map(str, arows))}; "
                    "expected one value per animal, tissue and time (give each animal its own id)",
                    column=acol, rows=arows,
                )
        if conflict:
            continue
        seen: dict[tuple, list[int]] = {}
        for i in idx:
            if out["value"][i] > 0 and not out["animal"][i]:
                seen.setdefault((out["value"][i], out["unit"][i], out["lloq"][i] if not math.isnan(out["lloq"][i]) else None), []).append(records[i].row)
        identical += [r for r in seen.values() if len(r) > 1]
    if identical:
        shown = "; ".join(f"rows {', '.join(map(str, r))}" for r in identical[:5])
        problems.warn(f"{len(identical)} set(s) of identical rows (same tissue, time, group and value), read as separate animals: {shown}"
                      f"{' …' if len(identical) > 5 else ''}; if a row was pasted twice, delete the copy, or name the animals in an 'animal' column")


def _check_fraction_as_percent(out: dict, kinds: dict, problems: Problems):
    """%ID data whose organs sum to at most 1 %ID at every time look like fractions 0-1."""
    sums: dict[tuple, float] = {}
    count: dict[tuple, int] = {}
    for tissue, t, group, unit, value in zip(out["tissue"], out["time"], out["group"], out["unit"], out["value"]):
        if tissue is None or unit is None or math.isnan(value) or math.isnan(t):
            continue
        if _kind(unit, kinds) != UnitKind.DOSE_FRACTION or _is_whole_fraction(unit, kinds):
            continue
        key = (group, t)
        sums[key] = sums.get(key, 0.0) + value
        count[key] = count.get(key, 0) + 1
    full = {k: v for k, v in sums.items() if count[k] >= 3}
    if full and max(full.values()) <= 1.0:
        problems.warn(f"the %ID values of every time with 3 or more organs sum to at most {max(full.values()):.3g} %ID: they look like "
                      "fractions 0-1 of the dose; if they are, write the unit 'ID' (1 ID = 100 %ID), otherwise ignore this warning")


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
