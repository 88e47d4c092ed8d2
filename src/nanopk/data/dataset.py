"""A biodistribution dataset: the long table of measurements plus its sidecar metadata.

:class:`Dataset` keeps the measurements exactly as published (value, SD, SEM, n, unit)
and converts on request: :meth:`Dataset.percent_id` turns every row into %ID of the
whole organ, and :meth:`Dataset.fit_table` gives the rows a fit uses and, separately,
the rows it leaves out (zeros and values below the limit of quantification cannot enter
a log-scale fit), warning with their rows -- never silently.

Organ masses for the conversion come, in this order, from the ``organ_masses_g``
argument, the sidecar's ``organ_masses_g``, the sidecar's ``tumour.weight_g`` (tumour
only), and :func:`nanopk.physiology.organ_mass_g` for the species at the sidecar's
``body_weight_g``; the source used for each tissue is reported in the ``mass_source``
column and in :attr:`Dataset.mass_sources`.  The physiology table is the one the models
build their organ volumes from, and a fit gives the model the sidecar's masses (and,
without a tumour weight, the table's default tumour, with a warning), so the data and
the model use the same organ and tumour masses (:mod:`nanopk.fit._data`).  Blood and plasma masses are the physiology
table's blood and plasma fractions of body weight, and 1 g ≈ 1 mL turns a per-mL value
into an amount (see :mod:`nanopk.data.convert`).
"""
from __future__ import annotations

import copy
import csv
import json
import math
import warnings
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from ..errors import DataError, DataWarning, ModelError, format_rows
from .convert import classify_unit, dose_in_ug, needs_dose, needs_mass, percent_id_factor
from .sidecar import PARTICLE_KEYS
from .vocabulary import EXCRETA, canonical_tissue

__all__ = ["Dataset", "DataWarning", "FitTable"]


class FitTable(NamedTuple):
    """What :meth:`Dataset.fit_table` returns: the rows a fit uses and the rows it excludes."""

    used: pd.DataFrame
    excluded: pd.DataFrame


class Dataset:
    """Biodistribution measurements of one nanoparticle in one species, with metadata.

    Build one with :func:`nanopk.data.read_dataset`.

    Attributes
    ----------
    name : str
        The sidecar's ``name``.
    meta : dict
        The sidecar (a copy), with keyword overrides applied.
    table : pandas.DataFrame
        Long table, one row per observation, columns ``time`` (as written, in
        ``meta["time_unit"]``), ``time_h`` (hours), ``tissue`` (controlled name),
        ``value``, ``sd``, ``sem``, ``n`` (nullable integer), ``unit`` (per row),
        ``lloq``, ``group`` (``""`` if none), ``censored`` (value is 0 or below
        ``lloq``), ``row`` (the row in the source file; header = row 1) and, when the
        file has them, ``animal`` (one row per animal) and ``note``.  Rows of
        individual animals are kept as they are, several per tissue and time.
    path : pathlib.Path or None
        The file read.
    """

    def __init__(self, table: pd.DataFrame, meta: dict, path=None):
        self._table = table.reset_index(drop=True)
        self._meta = copy.deepcopy(meta)
        self.path = Path(path) if path is not None else None

    # ------------------------------------------------------------------ metadata
    @property
    def name(self) -> str:
        return str(self._meta.get("name", self.path.stem if self.path else "dataset"))

    @property
    def meta(self) -> dict:
        return copy.deepcopy(self._meta)

    @property
    def table(self) -> pd.DataFrame:
        return self._table.copy()

    @property
    def species(self) -> str | None:
        return self._meta.get("species")

    @property
    def body_weight_g(self) -> float | None:
        bw = self._meta.get("body_weight_g")
        return None if bw is None else float(bw)

    @property
    def perfused(self) -> bool:
        """Whether the animals were perfused before the organs were taken (sidecar ``perfused``, default ``False``).

        Organs of perfused animals hold no residual blood: a fit then sets the model's
        ``f_residual_blood`` to 0 (:mod:`nanopk.mechanisms.circulation`).
        """
        return self._meta.get("perfused") is True

    @property
    def route(self) -> str | None:
        return self._meta.get("route")

    @property
    def citation(self) -> str | None:
        return (self._meta.get("source") or {}).get("citation")

    @property
    def doi(self) -> str | None:
        return (self._meta.get("source") or {}).get("doi")

    @property
    def tissues(self) -> list[str]:
        """Tissues in order of first appearance."""
        return list(dict.fromkeys(self._table["tissue"]))

    @property
    def times(self) -> np.ndarray:
        """Sorted distinct sampling times (h)."""
        return np.unique(self._table["time_h"].to_numpy(dtype=float))

    @property
    def groups(self) -> list[str]:
        """Groups in order of first appearance (``[""]`` when the file has none)."""
        return list(dict.fromkeys(self._table["group"]))

    @property
    def dose_ug(self) -> float | None:
        """Injected dose (µg), from ``dose`` (and ``body_weight_g`` for mg/kg); ``None`` if not a mass."""
        dose = self._meta.get("dose")
        if not isinstance(dose, dict):
            return None
        return dose_in_ug(dose.get("value"), str(dose.get("unit")), self.body_weight_g)[0]

    @property
    def particle_dict(self) -> dict:
        """The sidecar's particle fields that :class:`nanopk.Particle` knows (only those given)."""
        particle = self._meta.get("particle") or {}
        return {k: particle[k] for k in PARTICLE_KEYS if particle.get(k) is not None}

    def __len__(self) -> int:
        return len(self._table)

    def __repr__(self) -> str:
        units = ", ".join(dict.fromkeys(u for u in self._table["unit"] if u))
        return (
            f"<Dataset {self.name!r}: {self.species}, {len(self)} points, tissues {', '.join(self.tissues)}; "
            f"{len(self.times)} times {self.times.min() if len(self) else 0:g}-{self.times.max() if len(self) else 0:g} h; {units}>"
        )

    # ------------------------------------------------------------------ organ masses
    def organ_mass(self, tissue: str, organ_masses_g: dict | None = None) -> tuple[float | None, str]:
        """Mass (g) of ``tissue`` used for conversions, and where it comes from.

        Returns ``(None, reason)`` when no mass is available.
        """
        for label, masses in (("argument organ_masses_g", organ_masses_g), ("sidecar organ_masses_g", self._meta.get("organ_masses_g"))):
            for key, grams in (masses or {}).items():
                if canonical_tissue(key) == tissue:
                    return float(grams), label
        tumour = self._meta.get("tumour") or {}
        if tissue == "tumour" and tumour.get("weight_g") is not None:
            return float(tumour["weight_g"]), "sidecar tumour.weight_g"
        if tissue in EXCRETA:
            return None, f"{tissue} is an excretion and has no organ mass"
        species, bw = self.species, self.body_weight_g
        if species is None:
            return None, "the sidecar has no species"
        if bw is None:
            return None, f"the sidecar has no body_weight_g to scale the {species} physiology table"
        from ..physiology import organ_mass_g  # late: physiology is independent of data

        try:
            grams = organ_mass_g(species, tissue, bw)
        except (ModelError, KeyError) as exc:
            reason = str(exc).split(";")[0]
            return None, reason
        if tissue == "tumour":
            # The same default the models' f_V_tumour has (nanopk.physiology), which a fit
            # gives the model for this dataset, with a warning (nanopk.fit._data).
            return float(grams), (f"physiology:{species} default tumour ({grams / bw:.4g} of {bw:g} g body weight; "
                                  f"the sidecar gives no tumour.weight_g)")
        return float(grams), f"physiology:{species} ({grams / bw:.4g} of {bw:g} g body weight)"

    @property
    def mass_sources(self) -> dict[str, str]:
        """For each tissue, where :meth:`percent_id` takes its organ mass from.

        ``"not needed"`` for tissues whose rows are all whole-organ amounts (%ID, µg).
        """
        out = {}
        for tissue in self.tissues:
            units = set(self._table.loc[self._table["tissue"] == tissue, "unit"])
            if not any(needs_mass(classify_unit(u)) for u in units):
                out[tissue] = "not needed"
                continue
            grams, source = self.organ_mass(tissue)
            out[tissue] = source if grams is not None else f"unavailable: {source}"
        return out

    # ------------------------------------------------------------------ conversions
    def percent_id(self, tissues=None, organ_masses_g: dict | None = None, skip_unconvertible: bool = False) -> pd.DataFrame:
        """The long table converted to %ID of the whole organ.

        Parameters
        ----------
        tissues : iterable of str, optional
            Keep only these tissues (spellings are mapped; tissues absent from the
            dataset are ignored, so a model's observable list can be passed as is).
        organ_masses_g : dict, optional
            Organ masses (g) that take precedence over the sidecar and the physiology
            table, e.g. ``{"liver": 1.2}``.
        skip_unconvertible : bool
            Leave out rows that cannot be converted (no organ mass, no dose) with a
            :class:`DataWarning` listing them, instead of raising.

        Returns
        -------
        pandas.DataFrame
            :attr:`table` plus ``organ_mass_g`` (NaN where not needed),
            ``mass_source``, ``factor`` (%ID per unit of ``value``), ``value_pid``,
            ``sd_pid``, ``sem_pid`` and ``lloq_pid`` in %ID.  SD and SEM convert with
            the value's factor; a missing one is derived from the other and n
            (SEM = SD/√n).

        Raises
        ------
        DataError
            Listing every tissue whose rows cannot be converted, with rows and the fix.
        """
        table = self._select(tissues)
        masses: dict[str, tuple[float | None, str]] = {}
        dose_ug = self.dose_ug
        factors, mass_col, source_col = [], [], []
        bad: dict[tuple[str, str], list[int]] = {}
        for tissue, unit, row in zip(table["tissue"], table["unit"], table["row"]):
            kind = classify_unit(unit)
            mass, source = (None, "not needed")
            if needs_mass(kind):
                if tissue not in masses:
                    masses[tissue] = self.organ_mass(tissue, organ_masses_g)
                mass, source = masses[tissue]
                if mass is None:
                    bad.setdefault((tissue, f"no organ mass for tissue {tissue!r} ({source})"), []).append(row)
            if needs_dose(kind) and dose_ug is None:
                dose = self._meta.get("dose")
                reason = "no dose in the sidecar" if not isinstance(dose, dict) or dose.get("value") is None else (
                    dose_in_ug(dose.get("value"), str(dose.get("unit")), self.body_weight_g)[1])
                bad.setdefault((tissue, f"no dose in µg for {unit} rows of tissue {tissue!r} ({reason})"), []).append(row)
            ok = not (needs_mass(kind) and mass is None) and not (needs_dose(kind) and dose_ug is None)
            factors.append(percent_id_factor(unit, mass, dose_ug) if ok else math.nan)
            mass_col.append(math.nan if mass is None else mass)
            source_col.append(source if (mass is not None or not needs_mass(kind)) else f"unavailable: {source}")
        out = table.copy()
        out["organ_mass_g"] = np.asarray(mass_col, dtype=float)
        out["mass_source"] = pd.Series(source_col, index=out.index, dtype=object)
        out["factor"] = np.asarray(factors, dtype=float)
        n = out["n"].astype("float64").to_numpy()
        sd = out["sd"].to_numpy()
        sem = out["sem"].to_numpy()
        with np.errstate(invalid="ignore", divide="ignore"):
            sd_full = np.where(np.isnan(sd), sem * np.sqrt(n), sd)
            sem_full = np.where(np.isnan(sem), sd / np.sqrt(n), sem)
        out["value_pid"] = out["value"].to_numpy() * out["factor"].to_numpy()
        out["sd_pid"] = sd_full * out["factor"].to_numpy()
        out["sem_pid"] = sem_full * out["factor"].to_numpy()
        out["lloq_pid"] = out["lloq"].to_numpy() * out["factor"].to_numpy()
        if bad:
            lines = [f"{reason}, {format_rows(rows)}" for (_, reason), rows in bad.items()]
            fix = ("add organ_masses_g {tissue: grams} (and body_weight_g, dose) to the sidecar, pass organ_masses_g=, "
                   "choose tissues=, or pass skip_unconvertible=True")
            if not skip_unconvertible:
                raise DataError(self.path or self.name, [
                    {"message": f"cannot convert to %ID: {line}; {fix}", "column": "tissue", "rows": rows}
                    for line, rows in zip(lines, bad.values())
                ])
            warnings.warn(
                f"{self.name}: rows left out of the %ID table (not convertible): " + "; ".join(lines),
                DataWarning, stacklevel=2,
            )
            out = out[out["factor"].notna()]
        return out.reset_index(drop=True)

    def fit_table(self, log_scale: bool = True, tissues=None, organ_masses_g: dict | None = None,
                  skip_unconvertible: bool = False) -> FitTable:
        """Rows (in %ID) a fit uses, and the rows it leaves out.

        On a log scale a zero has no logarithm and a value below the limit of
        quantification is not a measurement of the mean, so censored rows are excluded
        and a :class:`DataWarning` names them (tissue and source rows).  On a linear
        scale every row is used.

        Returns
        -------
        FitTable
            ``(used, excluded)``, both in the format of :meth:`percent_id`.
        """
        table = self.percent_id(tissues=tissues, organ_masses_g=organ_masses_g, skip_unconvertible=skip_unconvertible)
        if not log_scale:
            return FitTable(table, table.iloc[0:0].copy())
        mask = table["censored"].to_numpy(dtype=bool)
        excluded = table[mask].reset_index(drop=True)
        used = table[~mask].reset_index(drop=True)
        if len(excluded):
            by_tissue = {}
            for tissue, row, value in zip(excluded["tissue"], excluded["row"], excluded["value"]):
                by_tissue.setdefault(tissue, []).append(row)
            detail = "; ".join(f"{t} {format_rows(r)}" for t, r in by_tissue.items())
            warnings.warn(
                f"{self.name}: {len(excluded)} censored value(s) (zero or below lloq) excluded from the log-scale fit: {detail}",
                DataWarning, stacklevel=2,
            )
        return FitTable(used, excluded)

    # ------------------------------------------------------------------ selection and output
    def _select(self, tissues=None, groups=None) -> pd.DataFrame:
        table = self._table
        if tissues is not None:
            if isinstance(tissues, str):
                tissues = [tissues]
            wanted = {canonical_tissue(t) or t for t in tissues}
            table = table[table["tissue"].isin(wanted)]
        if groups is not None:
            if isinstance(groups, str):
                groups = [groups]
            table = table[table["group"].isin(list(groups))]
        return table.reset_index(drop=True)

    def select(self, tissues=None, groups=None) -> "Dataset":
        """A new dataset with only these tissues and/or groups."""
        return Dataset(self._select(tissues, groups), self._meta, self.path)

    def to_wide(self) -> pd.DataFrame:
        """The wide layout of this dataset (see :func:`nanopk.data.wide.to_wide`)."""
        from .wide import to_wide

        return to_wide(self._table, self.path or self.name)

    def write(self, path, layout: str = "long") -> Path:
        """Write the dataset as ``path`` (.csv) plus its JSON sidecar; returns the CSV path.

        ``layout="wide"`` writes one row per time (all rows must share one unit).
        Numbers are written with full precision, so reading the file back gives the
        same table.
        """
        path = Path(path).with_suffix(".csv")
        meta = self.meta
        units = list(dict.fromkeys(self._table["unit"]))
        if layout == "wide":
            frame = self.to_wide()
            if units:
                meta["value_unit"] = units[0]
        elif layout == "long":
            cols = ["time", "tissue", "value"]
            cols += [c for c in ("sd", "sem", "n", "lloq") if self._table[c].notna().any()]
            if len(units) > 1 or (units and units[0] != meta.get("value_unit")):
                if len(units) == 1:
                    meta["value_unit"] = units[0]
                else:
                    cols.append("unit")
            if (self._table["group"] != "").any():
                cols.append("group")
            if "animal" in self._table.columns:  # individual-animal ids survive a round trip
                cols.append("animal")
            if "note" in self._table.columns:
                cols.append("note")
            frame = self._table[cols]
        else:
            raise ValueError(f"`layout` must be 'long' or 'wide' (got {layout!r})")
        _write_csv(frame, path)
        meta["name"] = meta.get("name", path.stem)
        path.with_suffix(".json").write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        return path


def _cell(v) -> str:
    """Text of one cell: shortest exact float (repr), whole numbers of n as integers."""
    if v is None or v is pd.NA:
        return ""
    if isinstance(v, (float, np.floating)):
        return "" if math.isnan(v) else repr(float(v))
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v)).lower()
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    return str(v)


def _write_csv(frame: pd.DataFrame, path: Path):
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(list(frame.columns))
        for row in frame.itertuples(index=False):
            writer.writerow([_cell(v) for v in row])
