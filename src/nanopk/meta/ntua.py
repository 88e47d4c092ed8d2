"""The NTUA nanomaterial biodistribution database as nanopk datasets.

``NMs_Database.xlsx`` (A. Angelis, NTUA thesis; repository
ntua-unit-of-control-and-informatics/NM-biodistribution-prediction, folder
``Biodistribution_data``) holds one row per *instance* (one nanoparticle in one
experiment of one study) in each of six sheets: ``Physchem_properties``,
``Experiment_details``, ``Metadata`` (per study) and three parallel wide sheets
``Time_points``, ``Tissues`` and ``Concentrations``, in which the k-th cell after the
two key columns ``Study_id, Instance`` gives the time, the tissue and the value of one
observation.

:func:`read_ntua_database` turns each instance into a :class:`nanopk.data.Dataset`
named ``ntua_s{study}_i{instance}`` whose sidecar metadata (DESIGN.md, "Datasets") is
checked by the data layer's own sidecar check (:func:`nanopk.data.sidecar.load_sidecar`)
and whose observations go through the data layer's own cell checks
(:func:`nanopk.data.validate.build_table`: numbers >= 0, units convertible to %ID,
times increasing within a tissue, the dose an amount unit needs).  Tissue spellings are
mapped with :func:`nanopk.data.canonical_tissue`; conversion to %ID is
:meth:`nanopk.data.Dataset.percent_id`.  Nothing is dropped silently: whatever cannot
be mapped is a row of the *refusals* table, with study, instance, sheet row and
columns, tissue, a short ``reason`` and the full ``detail``.  Its ``level`` says what
was left out:

``instance``
    the whole instance (unknown route or species, no citation, a value unit or time
    unit nanopk cannot read, an amount unit without a usable dose, or a problem the
    data layer's checks found, quoted in ``detail``);
``cells``
    observations of a kept instance (tissue outside nanopk's vocabulary, "ND" and
    "<DL" cells -- not detected, no limit given --, cells without a time or a tissue,
    non-numeric or negative cells);
``field``
    a metadata field that was not mapped while the instance was kept (a dose in
    particles/mL, a coating MW "2000 AND 5000", a zeta potential "neutral", a material
    or coating nanopk's :class:`~nanopk.Particle` does not know -- the raw value is
    kept in ``meta["ntua"]``);
``note``
    a correction that was made (the row keys of the sheets disagree; study 8's first
    time "2.0833 days" read as 0.020833 d; Greek look-alike letters in text cells).

Curation rules (each one a documented decision, not a guess):

- **Row keys.**  The six instance sheets are row-parallel (same Study_id in each row;
  the reader refuses a row where they differ).  The shared copy has a few key typos
  (Physchem rows of study 49, 91 and 117 repeat an instance number; Experiment_details
  repeats (35, 1); the wide sheets repeat (81, 1-3) for what Experiment_details calls
  instances 4-6, blood in %ID/mL).  The instance number of a row is the
  Experiment_details one unless it repeats there, then the Time_points one, then the
  Physchem one; a row whose sheets disagree is listed as a ``note``.
- **Censored cells.**  ``"<0.15"`` is a value below a stated limit: it becomes value 0
  with ``lloq`` 0.15, the data layer's encoding of a censored observation
  (``censored`` is True; a fit leaves it out of the log-scale residuals and says so).
  ``"ND"`` and ``"<DL"`` give no limit, so they are refused (``cells``), never given a
  value.
- **Tissues.**  Spellings go through :func:`nanopk.data.canonical_tissue`, plus
  :data:`TISSUE_SPELLINGS` for the database's own names nanopk's aliases lack
  (``Bile_juice`` -> ``bile``).  Control-group tissues (``Control_Tumor``), a single
  kidney, caecum, duodenum, adrenal, diaphragm, aorta, hind limbs, infected muscle and
  ``Cascade`` (probably "carcass", not certain) are refused with the reason.
- **Times.**  ``Sampled_time_units`` hours/days/min/sec -> h/d/min/s.  In study 8 (Cho
  2010) a time of 2.0833 d is read as 0.020833 d = 30 min (PROVENANCE.md: inferred
  from the ordering and the blood values; the original workbook has it, the shared
  copy already holds 0.020833).
- **Dose.**  Kept as given when pint reads it (mass, mass per body mass, activity);
  a concentration of the injected suspension (particles/mL, NPs/mL) is not a dose and
  is left out (``field``).  An instance in an amount unit (ng/g, µg/g) without a
  usable dose cannot be converted and is refused (``instance``).
- **Body weight.**  ``Weight_g`` when given; otherwise none, unless the caller passes
  ``assume_body_weight_g`` (then written in the sidecar's ``assumptions``).
- **Tumour.**  ``Cancer_presence`` Yes gives the sidecar a ``tumour`` object
  (``cell_line``, ``site``); a ``Cancer_volume_mm3`` becomes ``weight_g`` at 1 g/mL
  (the data layer's tissue density), stated in ``assumptions``.
- **Particle.**  ``material`` (Au, TiO2, SiO2, iron_oxide -> Fe3O4, lipid/liposome ->
  lipid, polymeric* -> polymer), ``core_diameter_nm`` (Nominal_size_nm),
  ``hydrodynamic_diameter_nm``, ``shape`` (sphere, rod, plate, cubic -> cube, any
  other named shape -> other), ``coating`` (Coating No -> none; a molecule with PEG ->
  PEG; dextran, BSA, zwitterion, citrate), ``coating_mw_da`` and ``zeta_mV`` when
  numeric.  A material or coating outside nanopk's vocabulary is kept *as written*, so
  that ``nanopk.Particle(**ds.particle_dict)`` refuses it instead of silently taking
  the default gold sphere; the raw row is in ``meta["ntua"]``.

Examples
--------
>>> from nanopk.meta.ntua import read_ntua_database, summarise_ntua   # doctest: +SKIP
>>> datasets, refusals = read_ntua_database("NMs_Database.xlsx")       # doctest: +SKIP
>>> datasets["ntua_s8_i2"].meta["value_unit"]                          # doctest: +SKIP
'ng/g'
>>> summarise_ntua(datasets, refusals)["reasons"]                      # doctest: +SKIP
"""
from __future__ import annotations

import math
import re
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import DataError, suggest
from .reader import Collection, _items_from_dataset

__all__ = ["read_ntua_database", "read_ntua_collection", "summarise_ntua", "DatasetCollection", "NTUA_FILE", "NTUA_SHEETS",
           "TISSUE_SPELLINGS", "REFUSAL_COLUMNS", "is_ntua_workbook"]

NTUA_FILE = "NMs_Database.xlsx"
#: Sheets read, with the columns each must have.
NTUA_SHEETS: dict[str, tuple[str, ...]] = {
    "Physchem_properties": ("Study_id", "Instance", "Material", "Nominal_size_nm", "Hydrodynamic_size_nm", "Shape",
                            "Coating", "Coating_molecule", "Coating_MW(Da)", "Z-potential"),
    "Experiment_details": ("Study_id", "Instance", "Species", "Strain", "Sex", "Cancer_presence", "Weight_g",
                           "Administration_route", "Dose", "Dose_units", "Measured_concentration_units",
                           "Sampled_time_units"),
    "Time_points": ("Study_id", "Instance"),
    "Tissues": ("Study_id", "Instance"),
    "Concentrations": ("Study_id", "Instance"),
    "Metadata": ("Study_id", "Author", "Date", "Title", "Doi"),
}
_WIDE = ("Time_points", "Tissues", "Concentrations")
_ROW_SHEETS = ("Experiment_details", "Time_points", "Physchem_properties", "Tissues", "Concentrations")

#: Columns of the refusals table.
REFUSAL_COLUMNS = ("study", "instance", "name", "level", "reason", "sheet", "row", "columns", "tissue", "n_cells", "detail")

#: The database's tissue spellings that nanopk's aliases lack (lower case, after
#: :func:`nanopk.data.vocabulary._normalise`).
TISSUE_SPELLINGS = {"bile_juice": "bile"}
#: Tissue names refused on purpose, with why (the vocabulary has no such tissue, or the
#: cells are not of the instance's animals).
_REFUSED_TISSUES = {
    "control": "a control group's tissue (not this nanoparticle's animals)",
    "kidney_left": "one kidney only; nanopk's 'kidney' is both kidneys",
    "kidney_right": "one kidney only; nanopk's 'kidney' is both kidneys",
    "cascade": "'Cascade' is not a tissue (perhaps 'carcass'; not certain, so not mapped)",
    "muscles_bacteria": "infected muscle (bacterial infection site), not muscle",
}

_TIME_UNITS = {"hours": "h", "hour": "h", "h": "h", "days": "d", "day": "d", "d": "d",
               "min": "min", "mins": "min", "minutes": "min", "sec": "s", "seconds": "s", "s": "s"}
_ROUTES = {"iv": "iv", "ipr": "ip", "ip": "ip", "sc": "sc"}
_MATERIALS = {"au": "Au", "tio2": "TiO2", "sio2": "SiO2", "iron_oxide": "Fe3O4", "lipid": "lipid",
              "liposome": "lipid", "polymeric": "polymer", "polymeric_micelles": "polymer",
              "polymeric_vesicles": "polymer"}
_SHAPES = {"sphere": "sphere", "rod": "rod", "plate": "plate", "cubic": "cube", "cube": "cube", "star": "star",
           "shell": "shell"}
_COATINGS = {"dextran": "dextran", "bsa": "BSA", "zwitterion": "zwitterionic", "zwitterionic": "zwitterionic",
             "citrate": "citrate"}
#: Doses that are a concentration of the injected suspension, not an amount.
_SUSPENSION_UNITS = ("particles/ml", "nps/ml")
#: Greek capitals/small letters that look like Latin ones ("ΝΑ", "Νο" in coating fields).
_GREEK = str.maketrans({"Α": "A", "Β": "B", "Ε": "E", "Η": "H", "Ι": "I", "Κ": "K", "Μ": "M", "Ν": "N", "Ο": "O",
                        "Ρ": "P", "Τ": "T", "Υ": "Y", "Χ": "X", "Ζ": "Z", "ο": "o", "α": "a", "ν": "v"})
_NA = {"", "na", "n/a", "nan", "none", "-"}
#: Study 8 (Cho 2010): "2.0833 days" is 0.020833 d = 30 min (PROVENANCE.md section 6).
_TIME_CORRECTIONS = {8: (2.0833, 0.020833)}
_LIMIT = re.compile(r"^<\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)$")


class DatasetCollection(Sequence):
    """An ordered collection of :class:`nanopk.data.Dataset`, indexable by position or name.

    Attributes
    ----------
    name, source : str
        What it is and the file it was read from.
    refusals : pandas.DataFrame
        What the reader could not map (:data:`REFUSAL_COLUMNS`), as returned beside it.
    """

    def __init__(self, datasets, name: str = "", source: str = "", refusals: pd.DataFrame | None = None):
        self.datasets = list(datasets)
        self.name = name
        self.source = source
        self.refusals = refusals if refusals is not None else _refusal_frame([])
        #: One row per instance row read (study, instance, name, row, species, route as
        #: written, cells, status mapped/refused, points mapped).
        self.instances = pd.DataFrame(columns=["study", "instance", "name", "row", "species", "route", "cells", "status", "points"])
        self._index = {ds.name: i for i, ds in enumerate(self.datasets)}
        if len(self._index) != len(self.datasets):
            dup = sorted({ds.name for ds in self.datasets if sum(d.name == ds.name for d in self.datasets) > 1})
            raise DataError(source or name, [{"message": f"duplicate dataset name(s) {', '.join(dup)}"}])

    def __len__(self) -> int:
        return len(self.datasets)

    def __getitem__(self, key):
        if isinstance(key, slice):
            return DatasetCollection(self.datasets[key], self.name, self.source, self.refusals)
        if isinstance(key, str):
            try:
                return self.datasets[self._index[key]]
            except KeyError:
                raise KeyError(f"no dataset {key!r} in {self.name!r}{suggest(key, self._index)}") from None
        return self.datasets[key]

    def __repr__(self) -> str:
        return f"<nanopk.meta.DatasetCollection {self.name!r}: {len(self)} datasets, {len(self.refusals)} refusal rows>"

    @property
    def names(self) -> list[str]:
        return [ds.name for ds in self.datasets]

    def to_frame(self) -> pd.DataFrame:
        """One row per dataset: key, species, route, units, dose, body weight, particle, tumour, points."""
        rows = []
        for ds in self.datasets:
            meta = ds.meta
            ntua = meta.get("ntua") or {}
            dose = meta.get("dose") or {}
            particle = meta.get("particle") or {}
            rows.append({
                "name": ds.name, "study": ntua.get("study"), "instance": ntua.get("instance"),
                "species": ds.species, "route": ds.route, "value_unit": meta.get("value_unit"),
                "time_unit": meta.get("time_unit"), "n_points": len(ds), "n_censored": int(ds.table["censored"].sum()),
                "dose_value": dose.get("value"), "dose_unit": dose.get("unit"), "dose_ug": ds.dose_ug,
                "body_weight_g": ds.body_weight_g, "tumour": meta.get("tumour") is not None,
                **{f"particle_{k}": particle.get(k) for k in ("material", "core_diameter_nm", "hydrodynamic_diameter_nm",
                                                              "shape", "coating", "coating_mw_da", "zeta_mV")},
            })
        return pd.DataFrame(rows)


# --------------------------------------------------------------------------- helpers
def _text(x) -> str | None:
    """Stripped text of a cell with Greek look-alikes replaced; ``None`` for blank or NA."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return None
    s = str(x).translate(_GREEK).strip()
    return None if s.lower() in _NA else s


def _num(x) -> float | None:
    if isinstance(x, bool) or x is None:
        return None
    try:
        v = float(str(x).strip()) if isinstance(x, str) else float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _int(x) -> int | None:
    v = _num(x)
    return int(v) if v is not None and float(v).is_integer() else None


def _species_label(raw) -> str | None:
    """The species as nanopk names it ("Mice", "MIce " -> "mouse"), else the text as written."""
    from ..data.sidecar import SPECIES_SPELLINGS

    text = _text(raw)
    return None if text is None else SPECIES_SPELLINGS.get(text.lower(), text.lower())


def _refusal_frame(rows: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=list(REFUSAL_COLUMNS))
    frame["n_cells"] = pd.array(frame["n_cells"], dtype="Int64")
    return frame


def is_ntua_workbook(path) -> bool:
    """Whether ``path`` is an .xlsx workbook with the NTUA database's sheets (names only are read)."""
    path = Path(path)
    if not path.is_file() or path.suffix.lower() not in (".xlsx", ".xlsm"):
        return False
    if path.name == NTUA_FILE:
        return True
    try:
        import openpyxl

        wb = openpyxl.load_workbook(path, read_only=True)
        names = set(wb.sheetnames)
        wb.close()
    except Exception:  # noqa: BLE001 - not a readable workbook: not this format (its reader reports it)
        return False
    return set(_WIDE) <= names and "Experiment_details" in names


def _read_sheets(path: Path) -> dict[str, tuple[list[str], list[tuple[int, tuple]]]]:
    """Every needed sheet as (header, [(spreadsheet row, cells), ...]); one DataError for every problem."""
    import openpyxl

    problems = []
    try:
        wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # noqa: BLE001 - openpyxl raises many kinds; the message names the file and the cause
        raise DataError(path, [{"message": f"{path.name} could not be read as an .xlsx workbook ({type(exc).__name__}: {exc}); "
                                           f"expected the NTUA {NTUA_FILE}"}]) from None
    out = {}
    try:
        for sheet, need in NTUA_SHEETS.items():
            if sheet not in wb.sheetnames:
                problems.append({"message": f"{path.name}: no sheet {sheet!r}{suggest(sheet, wb.sheetnames)}; expected sheets "
                                            f"{', '.join(NTUA_SHEETS)}"})
                continue
            rows = list(wb[sheet].iter_rows(values_only=True))
            header = [("" if h is None else str(h).strip()) for h in (rows[0] if rows else ())]
            missing = [c for c in need if c not in header]
            if missing:
                problems.append({"message": f"{path.name}, sheet {sheet}: missing column(s) {', '.join(missing)} "
                                            f"(have {', '.join(h for h in header if h) or 'none'})", "column": ", ".join(missing)})
            body = [(i + 2, tuple(r)) for i, r in enumerate(rows[1:]) if any(c is not None and str(c).strip() for c in r)]
            out[sheet] = (header, body)
    finally:
        wb.close()
    if not problems:
        lengths = {s: len(out[s][1]) for s in _ROW_SHEETS}
        if len(set(lengths.values())) > 1:
            problems.append({"message": f"{path.name}: the instance sheets must have one row per instance, in the same order, "
                                        f"but their row counts differ ({', '.join(f'{s} {n}' for s, n in lengths.items())})"})
    if problems:
        raise DataError(path, problems)
    return out


def _col_letter(j: int) -> str:
    from openpyxl.utils import get_column_letter

    return get_column_letter(j + 1)


# --------------------------------------------------------------------------- the reader
def read_ntua_database(path, assume_body_weight_g: float | None = None) -> tuple[DatasetCollection, pd.DataFrame]:
    """Read the NTUA biodistribution database into nanopk datasets, and list what was refused.

    Parameters
    ----------
    path : str or Path
        ``NMs_Database.xlsx``, or a folder holding it (searched recursively).
    assume_body_weight_g : float, optional
        Body weight (g) for instances whose ``Weight_g`` is blank; written in each such
        sidecar's ``assumptions``.  Default: none (such instances keep no body weight,
        so per-gram values cannot become %ID of the organ until one is given).

    Returns
    -------
    (DatasetCollection, pandas.DataFrame)
        The datasets ``ntua_s{study}_i{instance}`` (metadata in :attr:`Dataset.meta`,
        the raw database fields under ``meta["ntua"]``), and the refusals table
        (:data:`REFUSAL_COLUMNS`; see the module docstring for its levels), also at
        ``collection.refusals``.

    Raises
    ------
    DataError
        When the workbook cannot be read as the NTUA database: not found, not an .xlsx,
        a sheet or a key column missing, or instance sheets of different lengths.
    """
    from ..data.sidecar import load_sidecar

    path = Path(path)
    if path.is_dir():
        hits = sorted(path.rglob(NTUA_FILE))
        if not hits:
            raise DataError(path, [{"message": f"no {NTUA_FILE!r} under {path}; pass the workbook's path"}])
        path = hits[0]
    if not path.is_file():
        raise DataError(path, [{"message": f"file {str(path)!r} does not exist; expected the NTUA {NTUA_FILE}"}])
    if assume_body_weight_g is not None and not (_num(assume_body_weight_g) and float(assume_body_weight_g) > 0):
        raise DataError(path, [{"message": f"assume_body_weight_g must be a positive number of grams (got {assume_body_weight_g!r})"}])

    sheets = _read_sheets(path)
    cols = {s: {h: j for j, h in enumerate(header) if h} for s, (header, _) in sheets.items()}
    refusals: list[dict] = []
    greek: dict[tuple, str] = {}  # (sheet, row cells, column) -> column name: each cell counted once

    def cell(sheet, cells, name):
        j = cols[sheet].get(name)
        raw = cells[j] if j is not None and j < len(cells) else None
        if isinstance(raw, str) and raw.translate(_GREEK) != raw:
            greek[(sheet, id(cells), j)] = f"{sheet} {name}"
        return raw

    # Metadata, one row per study.
    studies = {}
    for row, cells in sheets["Metadata"][1]:
        sid = _int(cell("Metadata", cells, "Study_id"))
        if sid is not None:
            studies[sid] = {k: cell("Metadata", cells, k) for k in ("Author", "Date", "Title", "Doi")} | {"row": row}

    keys = _row_keys(sheets, cols, refusals, path)
    datasets, instances = [], []
    n_rows = len(sheets["Experiment_details"][1])
    for r in range(n_rows):
        key = keys[r]
        if key is None:
            ex_row, ex = sheets["Experiment_details"][1][r]
            n_obs = sum(1 for j in range(2, max(len(sheets[w][1][r][1]) for w in _WIDE))
                        if any(j < len(sheets[w][1][r][1]) and sheets[w][1][r][1][j] not in (None, "") for w in _WIDE))
            for ref in refusals:
                if ref["level"] == "instance" and ref["row"] == ex_row and ref["n_cells"] is None:
                    ref["n_cells"] = n_obs
            instances.append({"study": _int(cell("Experiment_details", ex, "Study_id")), "instance": None, "name": None,
                              "row": ex_row, "species": _species_label(cell("Experiment_details", ex, "Species")),
                              "route": _text(cell("Experiment_details", ex, "Administration_route")), "cells": n_obs,
                              "status": "refused"})
            continue
        study, inst = key
        name = f"ntua_s{study}_i{inst}"
        ex_row, ex = sheets["Experiment_details"][1][r]
        _, ph = sheets["Physchem_properties"][1][r]
        wide_row = sheets["Time_points"][1][r][0]

        def refuse(level, reason, detail, sheet=None, row=None, columns="", tissue=None, n_cells=None):
            refusals.append({"study": study, "instance": inst, "name": name, "level": level, "reason": reason,
                             "sheet": sheet, "row": row, "columns": columns, "tissue": tissue, "n_cells": n_cells,
                             "detail": detail})

        start = len(refusals)
        meta, fatal = _instance_meta(study, inst, name, ex, ph, studies, cell, refuse, ex_row, path, assume_body_weight_g)
        cell_refusals: list[dict] = []
        records, n_obs = _instance_records(study, inst, sheets, r, lambda *a, **k: cell_refusals.append((a, k)))
        row_info = {"study": study, "instance": inst, "name": name, "row": ex_row,
                    "species": _species_label(cell("Experiment_details", ex, "Species")),
                    "route": _text(cell("Experiment_details", ex, "Administration_route")), "cells": n_obs}
        if not fatal and not records:
            refuse("instance", "no observations left", f"{name}: none of its {n_obs} cells could be mapped "
                   f"({'; '.join(sorted({a[1] for a, _ in cell_refusals}))})", sheet="Concentrations", row=wide_row)
            fatal = True
        if not fatal:
            ds, problems = _build_dataset(records, meta, path, load_sidecar)
            if ds is None:
                refuse("instance", "failed nanopk's dataset checks", f"{name}: " + "; ".join(p["message"] for p in problems),
                       sheet="Concentrations", row=wide_row)
                fatal = True
        if fatal:
            # The instance's cells leave with it: its refusal row counts them, and its
            # field-level rows are dropped (they describe a dataset that does not exist).
            del_fields = [i for i in range(start, len(refusals)) if refusals[i]["level"] == "field"]
            for i in reversed(del_fields):
                del refusals[i]
            for i in range(start, len(refusals)):
                if refusals[i]["level"] == "instance":
                    refusals[i]["n_cells"] = n_obs
                    break
            instances.append(row_info | {"status": "refused"})
            continue
        for args, kwargs in cell_refusals:
            refuse(*args, **kwargs)
        datasets.append(ds)
        instances.append(row_info | {"status": "mapped", "points": len(ds)})
    if greek:
        per_column = pd.Series(list(greek.values())).value_counts(sort=False)
        refusals.append({"study": None, "instance": None, "name": None, "level": "note",
                         "reason": "Greek look-alike letters read as Latin",
                         "sheet": ", ".join(dict.fromkeys(k[0] for k in greek)), "row": None,
                         "columns": ", ".join(dict.fromkeys(v.split(" ", 1)[1] for v in greek.values())), "tissue": None,
                         "n_cells": len(greek),
                         "detail": f"{len(greek)} text cells held Greek letters that look like Latin ones ('ΝΑ', 'Νο'), read as "
                                   f"'NA', 'No' ({', '.join(f'{c}: {n}' for c, n in per_column.items())})"})
    table = _refusal_frame(refusals)
    collection = DatasetCollection(datasets, name="NTUA NM biodistribution database", source=str(path), refusals=table)
    collection.instances = pd.DataFrame(instances, columns=["study", "instance", "name", "row", "species", "route", "cells",
                                                            "status", "points"])
    collection.instances["points"] = pd.array(collection.instances["points"], dtype="Int64")
    return collection, table


def _row_keys(sheets, cols, refusals, path) -> list[tuple[int, int] | None]:
    """(study, instance) of each row of the row-parallel instance sheets (see the module docstring)."""
    per_sheet = {}
    for s in _ROW_SHEETS:
        per_sheet[s] = [(_int(c[cols[s]["Study_id"]]), _int(c[cols[s]["Instance"]])) for _, c in sheets[s][1]]
    repeated = {s: {k for k in ks if ks.count(k) > 1} for s, ks in per_sheet.items()}
    keys: list[tuple[int, int] | None] = []
    for r in range(len(per_sheet["Experiment_details"])):
        row = sheets["Experiment_details"][1][r][0]
        given = {s: per_sheet[s][r] for s in _ROW_SHEETS}
        base = dict(study=None, instance=None, name=None, sheet=", ".join(_ROW_SHEETS), row=row, columns="A, B",
                    tissue=None, n_cells=None)
        studies = {k[0] for k in given.values()}
        if None in studies or any(k[1] is None for k in given.values()):
            refusals.append(base | {"level": "instance", "reason": "row key not a number",
                                    "detail": f"row {row}: Study_id/Instance must be whole numbers in every instance sheet "
                                              f"(got {', '.join(f'{s} {k}' for s, k in given.items())})"})
            keys.append(None)
            continue
        if len(studies) > 1:
            refusals.append(base | {"level": "instance", "reason": "sheets not parallel",
                                    "detail": f"row {row}: the instance sheets name different studies "
                                              f"({', '.join(f'{s} {k[0]}' for s, k in given.items())}); "
                                              "their rows must describe the same instance"})
            keys.append(None)
            continue
        chosen = next((given[s] for s in ("Experiment_details", "Time_points", "Physchem_properties")
                       if given[s] not in repeated[s]), None)
        if chosen is None:
            k = given["Experiment_details"]
            refusals.append(base | {"level": "instance", "reason": "duplicate instance key", "study": k[0], "instance": k[1],
                                    "name": f"ntua_s{k[0]}_i{k[1]}",
                                    "detail": f"row {row}: key ({k[0]}, {k[1]}) repeats in every instance sheet, so its rows "
                                              "cannot be told apart; give each instance its own number"})
            keys.append(None)
            continue
        if len(set(given.values())) > 1:
            refusals.append(base | {"level": "note", "reason": "row keys disagree between sheets", "study": chosen[0],
                                    "instance": chosen[1], "name": f"ntua_s{chosen[0]}_i{chosen[1]}",
                                    "detail": f"row {row}: " + ", ".join(f"{s} ({k[0]}, {k[1]})" for s, k in given.items())
                                              + f"; the rows are parallel, read as instance {chosen[1]}"})
        keys.append(chosen)
    seen: dict = {}
    for r, k in enumerate(keys):
        if k is None:
            continue
        if k in seen:
            row = sheets["Experiment_details"][1][r][0]
            refusals.append({"study": k[0], "instance": k[1], "name": f"ntua_s{k[0]}_i{k[1]}", "level": "instance",
                             "reason": "duplicate instance key", "sheet": "Experiment_details", "row": row, "columns": "A, B",
                             "tissue": None, "n_cells": None,
                             "detail": f"row {row}: instance ({k[0]}, {k[1]}) is also row {seen[k]}; give each instance its own number"})
            keys[r] = None
        else:
            seen[k] = sheets["Experiment_details"][1][r][0]
    return keys


def _instance_meta(study, inst, name, ex, ph, studies, cell, refuse, ex_row, path, assume_bw):
    """The sidecar of one instance; ``fatal`` when the instance cannot be a dataset."""
    from ..data.convert import hours_per
    from ..physiology import SPECIES
    from ..units import parse_unit

    E, P = "Experiment_details", "Physchem_properties"
    fatal = False
    raw = {k: cell(E, ex, k) for k in NTUA_SHEETS[E][2:]} | {k: cell(P, ph, k) for k in NTUA_SHEETS[P][2:]}
    for extra in ("Cancer_cell_type", "Cancer_location", "Cancer_volume_mm3", "Pathogen_presence", "Pathogen_type",
                  "Pre-treatment", "Dose_volume_ml", "Measured_chemical_species"):
        if cell(E, ex, extra) is not None:
            raw[extra] = cell(E, ex, extra)
    for extra in ("Material_name", "Length_nm", "Width_nm", "Aspect_ratio"):
        if cell(P, ph, extra) is not None:
            raw[extra] = cell(P, ph, extra)
    raw = {k: (v.translate(_GREEK).strip() if isinstance(v, str) else v) for k, v in raw.items()
           if v is not None and not (isinstance(v, float) and math.isnan(v))}

    def inst_refuse(reason, detail):
        nonlocal fatal
        fatal = True
        refuse("instance", reason, f"{name}: {detail}", sheet=E, row=ex_row)

    src = studies.get(study)
    source = None
    if src is None or not _text(src.get("Author")):
        inst_refuse("no citation", f"study {study} has no row (or no Author) in sheet Metadata; a dataset needs its source")
    else:
        doi_text = _text(src.get("Doi")) or ""
        title = _text(src.get("Title")) or ""
        year = _int(src.get("Date"))
        source = {"citation": f"{_text(src['Author'])} {year if year is not None else ''}. {title}".replace(" .", ".").strip(),
                  "doi": doi_text if doi_text.startswith("10.") else None,
                  "compiled_from": f"{path.name}: study {study}, instance {inst} (Experiment_details row {ex_row})"}
        if doi_text and not doi_text.startswith("10."):
            ident = doi_text.replace("PMID:", "").strip()
            source["pmid" if doi_text.upper().startswith("PMID") else "pmcid"] = ident

    species_raw = _text(raw.get("Species"))
    species = _species_label(species_raw)
    if species not in SPECIES:
        inst_refuse("species not mapped", f"species {species_raw!r} (Experiment_details column Species): nanopk has a physiology "
                                          f"for {', '.join(SPECIES)} only")

    route_raw = _text(raw.get("Administration_route"))
    route = _ROUTES.get((route_raw or "").lower())
    if route is None:
        inst_refuse("route not mapped", f"administration route {route_raw!r} (column Administration_route) is not one nanopk "
                                        f"knows (IV, IPR = intraperitoneal, SC); the database's Acronymes sheet does not define it")

    tu_raw = _text(raw.get("Sampled_time_units"))
    time_unit = _TIME_UNITS.get((tu_raw or "").lower())
    if time_unit is None:
        inst_refuse("time unit not mapped", f"Sampled_time_units {tu_raw!r}; expected hours, days, min or sec")
    else:
        hours_per(time_unit)

    value_unit = _text(raw.get("Measured_concentration_units"))
    if value_unit is None:
        inst_refuse("value unit missing", "Measured_concentration_units is blank")

    meta = {"name": name, "source": source, "species": species, "route": route, "time_unit": time_unit,
            "value_unit": value_unit}
    assumptions, notes = [], []
    for key, col in (("strain", "Strain"), ("sex", "Sex")):
        v = _text(raw.get(col))
        if v:
            meta[key] = v.lower() if key == "sex" else v
    bw = _num(raw.get("Weight_g"))
    if bw is not None and bw > 0:
        meta["body_weight_g"] = bw
    elif assume_bw is not None:
        meta["body_weight_g"] = float(assume_bw)
        assumptions.append(f"body_weight_g = {float(assume_bw):g} g is assumed (Weight_g is blank in the database)")

    dose_v, dose_u = _num(raw.get("Dose")), _text(raw.get("Dose_units"))
    dose_problem = None
    if dose_v is None or dose_v <= 0 or dose_u is None:
        dose_problem = f"no dose (Dose {raw.get('Dose')!r}, Dose_units {raw.get('Dose_units')!r})"
    elif dose_u.lower() in _SUSPENSION_UNITS:
        dose_problem = (f"dose {dose_v:g} {dose_u} is a concentration of the injected suspension, not a dose "
                        f"(Dose_volume_ml {raw.get('Dose_volume_ml')!r})")
    else:
        try:
            parse_unit(dose_u)
        except Exception:  # noqa: BLE001 - pint raises several kinds; any of them means the unit is unusable
            dose_problem = f"dose unit {dose_u!r} is not a unit nanopk reads"
    if dose_problem is None:
        meta["dose"] = {"value": dose_v, "unit": dose_u}
    else:
        refuse("field", "dose not mapped", f"{name}: {dose_problem}; the dataset has no dose", sheet=E, row=ex_row,
               columns="Dose, Dose_units")

    if _text(raw.get("Cancer_presence")) and _text(raw["Cancer_presence"]).lower() == "yes":
        tumour = {"model": "tumour-bearing"}
        if _text(raw.get("Cancer_cell_type")):
            tumour["cell_line"] = _text(raw["Cancer_cell_type"])
        if _text(raw.get("Cancer_location")):
            tumour["site"] = _text(raw["Cancer_location"])
        vol = _num(raw.get("Cancer_volume_mm3"))
        if vol is not None and vol > 0:
            from ..data.convert import TISSUE_DENSITY_G_PER_ML

            tumour["weight_g"] = vol / 1000.0 * TISSUE_DENSITY_G_PER_ML
            assumptions.append(f"tumour.weight_g = Cancer_volume_mm3 {vol:g} mm3 × {TISSUE_DENSITY_G_PER_ML:g} g/mL; the database "
                               "does not say when the volume was measured")
        meta["tumour"] = tumour
    if _text(raw.get("Pathogen_presence")) and _text(raw["Pathogen_presence"]).lower() == "yes":
        notes.append(f"the animals carried a pathogen ({_text(raw.get('Pathogen_type')) or 'type not given'})")

    if value_unit is not None and not fatal:
        _check_amount_dose(meta, value_unit, name, inst_refuse, dose_problem)

    meta["particle"] = _particle(raw, name, refuse, ex_row)
    meta["ntua"] = {"study": study, "instance": inst, **{k: (v if not isinstance(v, (np.floating, np.integer)) else v.item())
                                                       for k, v in raw.items()}}
    if assumptions:
        meta["assumptions"] = assumptions
    if notes:
        meta["notes"] = notes
    return meta, fatal


def _check_amount_dose(meta: dict, value_unit: str, name: str, inst_refuse, dose_problem: str | None):
    """An amount unit (ng/g, µg/g) becomes %ID only with the injected mass: refuse the instance without one."""
    from ..data.convert import classify_unit, dose_in_ug, needs_dose

    try:
        kind = classify_unit(value_unit)
    except Exception:  # noqa: BLE001 - an unknown unit is reported by the data layer's own check
        return
    if kind is None or not needs_dose(kind):
        return
    dose = meta.get("dose")
    if dose is None:
        inst_refuse("amount unit without a usable dose", f"values in {value_unit} (an amount of material) need the injected "
                    f"dose to become %ID, and the instance has none: {dose_problem}")
        return
    dose_ug, why = dose_in_ug(dose["value"], dose["unit"], meta.get("body_weight_g"))
    if dose_ug is None:
        hint = " (Weight_g is blank; pass assume_body_weight_g= to assume one)" if "body_weight_g" in why else ""
        inst_refuse("amount unit without a usable dose", f"values in {value_unit} (an amount of material) need the injected "
                    f"mass, but the dose {dose['value']:g} {dose['unit']} cannot give it: {why}{hint}")


def _particle(raw: dict, name: str, refuse, ex_row) -> dict:
    """The sidecar's particle object (see the module docstring for the mapping)."""
    P = "Physchem_properties"
    out = {}

    def field(reason, detail, columns):
        refuse("field", reason, f"{name}: {detail}", sheet=P, row=ex_row, columns=columns)

    material = _text(raw.get("Material"))
    if material:
        mapped = _MATERIALS.get(material.lower())
        out["material"] = mapped or material
        if mapped is None:
            field("material not in nanopk's vocabulary", f"material {material!r} has no nanopk material (kept as written, "
                  "so nanopk.Particle refuses it)", "Material")
    for key, col in (("core_diameter_nm", "Nominal_size_nm"), ("hydrodynamic_diameter_nm", "Hydrodynamic_size_nm"),
                     ("coating_mw_da", "Coating_MW(Da)"), ("zeta_mV", "Z-potential")):
        v = raw.get(col)
        if v is None or _text(v) is None:
            continue
        x = _num(v)
        if x is None or (key != "zeta_mV" and x <= 0):
            field(f"{col} not a number", f"{col} {v!r} is not a single positive number; left out", col)
        else:
            out[key] = x
    shape = _text(raw.get("Shape"))
    if shape:
        out["shape"] = _SHAPES.get(shape.lower(), "other")
    coated = _text(raw.get("Coating"))
    molecule = _text(raw.get("Coating_molecule"))
    if coated and coated.lower() == "no":
        out["coating"] = "none"
        out.pop("coating_mw_da", None)
    elif molecule:
        if re.search(r"peg", molecule, re.IGNORECASE):
            out["coating"] = "PEG"
        elif molecule.lower() in _COATINGS:
            out["coating"] = _COATINGS[molecule.lower()]
        else:
            out["coating"] = molecule
            field("coating not in nanopk's vocabulary", f"coating molecule {molecule!r} is not a nanopk coating (kept as "
                  "written, so nanopk.Particle refuses it)", "Coating_molecule")
    return out


def _instance_records(study, inst, sheets, r, refuse):
    """The observation records of row ``r`` of the wide sheets; cells that cannot be read are refused."""
    from ..data.validate import Record
    from ..data.vocabulary import _normalise, canonical_tissue

    row, times = sheets["Time_points"][1][r]
    _, tissues = sheets["Tissues"][1][r]
    _, values = sheets["Concentrations"][1][r]
    width = max(len(times), len(tissues), len(values))
    grouped: dict[tuple, list[str]] = {}
    details: dict[tuple, str] = {}
    records = []
    n_obs = 0
    correction = _TIME_CORRECTIONS.get(study)
    corrected = []

    def at(seq, j):
        v = seq[j] if j < len(seq) else None
        return None if (v is None or (isinstance(v, str) and not v.strip())) else v

    def bad(reason, tissue, letter, detail):
        key = (reason, tissue)
        grouped.setdefault(key, []).append(letter)
        details.setdefault(key, detail)

    for j in range(2, width):
        t, tissue_raw, v = at(times, j), at(tissues, j), at(values, j)
        if t is None and tissue_raw is None and v is None:
            continue
        n_obs += 1
        letter = _col_letter(j)
        tissue_text = _text(tissue_raw)
        if tissue_text is None:
            bad("cell without a tissue", None, letter, "a Concentrations/Time_points cell whose Tissues cell is blank")
            continue
        if t is None:
            bad("cell without a time", tissue_text, letter, f"a {tissue_text} value whose Time_points cell is blank")
            continue
        if v is None:
            bad("cell without a value", tissue_text, letter, f"a {tissue_text} time whose Concentrations cell is blank")
            continue
        key = _normalise(tissue_text)
        tissue = canonical_tissue(tissue_text) or TISSUE_SPELLINGS.get(key)
        if tissue is None:
            why = next((w for prefix, w in _REFUSED_TISSUES.items() if key.startswith(prefix)),
                       "not in nanopk's tissue vocabulary (nanopk.data.TISSUES)")
            bad("tissue not mapped", tissue_text, letter, f"tissue {tissue_text!r}: {why}")
            continue
        time = _num(t)
        if time is None or time < 0:
            bad("time not a number >= 0", tissue_text, letter, f"time {t!r} is not a number >= 0")
            continue
        if correction and abs(time - correction[0]) < 5e-5:
            corrected.append(letter)
            time = correction[1]
        lloq = None
        if isinstance(v, str):
            text = v.strip()
            m = _LIMIT.match(text)
            if m:
                value, lloq = 0.0, float(m.group(1))
            elif text.upper() == "ND":
                bad("not detected (ND), no limit given", tissue_text, letter,
                    "'ND' (not detected): no detection limit is given, so there is no value or limit to keep")
                continue
            elif text.upper().replace(" ", "") in ("<DL", "<LOD", "<LOQ", "BDL"):
                bad("below detection limit (<DL), limit not given", tissue_text, letter,
                    f"{text!r}: below the detection limit, which the database does not give")
                continue
            else:
                value = _num(text)
                if value is None:
                    bad("value not a number", tissue_text, letter, f"value {text!r} is not a number")
                    continue
        else:
            value = _num(v)
            if value is None:
                bad("value not a number", tissue_text, letter, f"value {v!r} is not a number")
                continue
        if value < 0:
            bad("negative value", tissue_text, letter, f"negative value {v!r}")
            continue
        cells = {"time": (time, f"Time_points!{letter}"), "value": (value, f"Concentrations!{letter}")}
        if lloq is not None:
            cells["lloq"] = (lloq, f"Concentrations!{letter}")
        records.append(Record(row=row, cells=cells, tissue=tissue))
    for (reason, tissue), letters in grouped.items():
        refuse("cells", reason, f"{details[(reason, tissue)]}; row {row}, column(s) {', '.join(letters)}",
               sheet="Concentrations", row=row, columns=", ".join(letters), tissue=tissue, n_cells=len(letters))
    if corrected:
        refuse("note", "study 8 time 2.0833 d read as 0.020833 d",
               f"time 2.0833 d read as 0.020833 d = 30 min (PROVENANCE.md: inferred from the ordering and the blood values); "
               f"row {row}, column(s) {', '.join(corrected)}", sheet="Time_points", row=row, columns=", ".join(corrected),
               n_cells=len(corrected))
    return records, n_obs


def _build_dataset(records, meta, path: Path, load_sidecar):
    """A Dataset through the data layer's sidecar and cell checks, or (None, problems)."""
    from ..data._problems import Problems
    from ..data.dataset import Dataset, DataWarning
    from ..data.validate import build_table

    problems = Problems(path)
    # A path inside the workbook "file" cannot have a sidecar on disk: the metadata are
    # the keyword overrides only, checked by the same rules as a sidecar file.
    checked, _ = load_sidecar(path / meta["name"], meta, problems)
    table = build_table(records, checked, problems)
    if problems:
        return None, problems.as_list()
    ds = Dataset(table, checked, path)
    for message in problems.warnings:
        warnings.warn(f"{path.name}, {meta['name']}: {message}", DataWarning, stacklevel=3)
    return ds, []


# --------------------------------------------------------------------------- summary
def summarise_ntua(collection: DatasetCollection, refusals: pd.DataFrame | None = None) -> dict:
    """Counts of what :func:`read_ntua_database` read, mapped and refused.

    Returns
    -------
    dict
        ``counts``: studies, instance rows read, mapped and refused, observation cells
        read, points mapped (and how many of them censored), cells refused in mapped
        instances and cells of refused instances (the three add up to the cells read);
        ``reasons``: a table level, reason -> instances, cells; ``by_species_route``:
        instances mapped and refused per species and route as written in the
        database; ``percent_id``: how many mapped instances convert fully to %ID with
        :meth:`nanopk.data.Dataset.percent_id`, and why the others do not (counted per
        instance and reason).
    """
    refusals = collection.refusals if refusals is None else refusals
    inst = collection.instances
    cells = refusals[refusals["level"] == "cells"]
    counts = {
        "studies": int(inst["study"].nunique()),
        "instances_read": len(inst),
        "instances_mapped": int((inst["status"] == "mapped").sum()),
        "instances_refused": int((inst["status"] == "refused").sum()),
        "cells_read": int(inst["cells"].sum()),
        "points_mapped": int(sum(len(ds) for ds in collection)),
        "points_censored": int(sum(int(ds.table["censored"].sum()) for ds in collection)),
        "cells_refused_in_mapped": int(cells["n_cells"].fillna(0).sum()),
        "cells_of_refused_instances": int(inst.loc[inst["status"] == "refused", "cells"].sum()),
    }
    reasons = (refusals.assign(n_cells=refusals["n_cells"].fillna(0).astype(int), key=refusals["name"].fillna(""))
               .groupby(["level", "reason"], sort=False)
               .agg(rows=("reason", "size"), instances=("key", lambda k: int((k != "").sum() and k[k != ""].nunique())),
                    cells=("n_cells", "sum")).reset_index())
    by = (inst.assign(species=inst["species"].fillna("(blank)"), route=inst["route"].fillna("(blank)"))
          .pivot_table(index=["species", "route"], columns="status", values="row", aggfunc="count", fill_value=0)
          .reset_index())
    by.columns.name = None
    for col in ("mapped", "refused"):
        if col not in by:
            by[col] = 0
    full, why = 0, {}
    for ds in collection:
        try:
            ds.percent_id()
            full += 1
        except DataError as exc:
            seen = set()
            for p in exc.problems:
                reason = re.sub(r"^cannot convert to %ID: ", "", p["message"]).split(", row")[0]
                reason = re.sub(r"^no organ mass for tissue '[^']+' \((.*)\)$", r"no organ mass: \1", reason)
                reason = re.sub(r"\(([^()]*?) \(?[0-9.]+ of [0-9.]+ g body weight\)?\)", r"(\1)", reason)
                if reason not in seen:
                    seen.add(reason)
                    why[reason] = why.get(reason, 0) + 1
    from ..data.vocabulary import OBSERVABLES

    observables = 0
    for ds in collection:
        try:
            observables += len(ds.percent_id(tissues=OBSERVABLES)) > 0
        except DataError:
            pass
    from ..errors import ModelError
    from ..particle import Particle

    builds, lacking = 0, {}
    for ds in collection:
        given = ds.particle_dict
        missing = [k for k in ("material", "core_diameter_nm", "coating") if k not in given]
        reasons_ = [f"no {k}" for k in missing]
        if not missing:
            try:
                Particle(**given)
                builds += 1
            except ModelError as exc:
                reasons_ = [re.sub(r"\(-?[0-9.]+\)", "(…)", re.sub(r"'[^']*'", "…", p)) for p in exc.problems]
        for reason in dict.fromkeys(reasons_):
            lacking[reason] = lacking.get(reason, 0) + 1
    return {"counts": counts, "reasons": reasons, "by_species_route": by[["species", "route", "mapped", "refused"]],
            "particle": {"complete": builds, "incomplete": len(collection) - builds,
                         "reasons": dict(sorted(lacking.items(), key=lambda kv: -kv[1]))},
            "percent_id": {"convert_fully": full, "not_fully": len(collection) - full,
                           "reasons": dict(sorted(why.items(), key=lambda kv: -kv[1])),
                           "observables_convert_fully": int(observables)}}


# --------------------------------------------------------------------------- nanopk meta
def read_ntua_collection(path, assume_body_weight_g: float | None = None):
    """The NTUA instances with tumour observations as a :class:`nanopk.meta.Collection` (for ``nanopk meta``).

    Each mapped dataset with tumour rows becomes one :class:`~nanopk.meta.MetaItem`
    through the same conversion as a folder of nanopk datasets
    (:func:`nanopk.meta.reader.read_dataset_folder`: tumour %ID/g × the sidecar's
    ``tumour.weight_g`` or the species table's tumour).  The collection's
    ``refusals`` attribute is the reader's refusals table plus one ``instance`` row for
    each tumour-bearing dataset whose tumour rows cannot become %ID (reason
    ``tumour not convertible to %ID``).
    """
    datasets, refusals = read_ntua_database(path, assume_body_weight_g=assume_body_weight_g)
    items, extra = [], []
    for ds in datasets:
        if "tumour" not in ds.tissues:
            continue
        try:
            items += _items_from_dataset(ds, Path(datasets.source))
        except DataError as exc:
            ntua = ds.meta.get("ntua") or {}
            extra.append({"study": ntua.get("study"), "instance": ntua.get("instance"), "name": ds.name, "level": "instance",
                          "reason": "tumour not convertible to %ID", "sheet": "Concentrations", "row": None, "columns": "",
                          "tissue": "tumour", "n_cells": int((ds.table["tissue"] == "tumour").sum()),
                          "detail": f"{ds.name} (left out of the meta-analysis collection): "
                                    + "; ".join(p["message"] for p in exc.problems)})
    collection = Collection(items, name=datasets.name, source=datasets.source)
    collection.refusals = _refusal_frame(refusals.to_dict("records") + extra) if extra else refusals
    return collection
