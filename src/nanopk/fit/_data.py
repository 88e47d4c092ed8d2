"""What a fit needs from a dataset: rows in %ID at hours, mapped onto model observables.

A fit accepts a :class:`nanopk.data.Dataset`, a path or bundled name that
:func:`nanopk.read_dataset` reads, a pandas DataFrame in the long layout (columns
``time_h``, ``tissue``, ``value`` in %ID and optionally ``sd``, ``se``/``sem``,
``n``, ``lloq``, ``censored``, ``group``; ``df.attrs`` may give ``name``,
``dose_ug``, ``body_weight_g`` and ``parameters``, a dict of model parameter values
that hold for this dataset only, e.g. its tumour weight fraction), or a list or
dict of these.  A dataset with
several groups becomes one fitted dataset per group (``<name>_<group>``).  Each
becomes one :class:`FitData`: the rows the model can predict, the simulation grid,
and a record of every row that was left out and why.

Nothing is dropped silently.  Rows are excluded, each listed in ``FitData.excluded``
and in the fit's :class:`FitWarning`, when

- their tissue is not an observable of the model (``heart`` in a model without a
  heart), unless ``tissue_map`` maps it onto one;
- they are censored (zero, or below the limit of quantification) and no positive
  ``lloq`` is known on a log scale — there is then neither a logarithm nor a
  censored likelihood;
- the value is zero or negative on a log scale, or the time or value is missing.

Censored rows with a known ``lloq`` are kept and enter the likelihood as censored
observations (Beal's M3; see :mod:`nanopk.fit.objective`), unless
``censored="exclude"``.

Individual animals.  Rows of individual animals (several rows of one tissue and time,
or rows with an ``animal`` id; see :mod:`nanopk.data.validate`) are not averaged: each
is one observation with its own residual, so ``n_points`` counts animals.  They report
no SD, so the objective gives them the σ of rows without a spread (the median σ of the
dataset's rows that have one; on the log scale σ = 1 when no row has one, and the
covariance is scaled by the residual variance).  :attr:`FitData.weighting` says this
for each dataset, for the fit report.

Observation.  The model observes what the dataset measured: a dataset whose sidecar
says ``"perfused": true`` is fitted with ``f_residual_blood`` = 0 (organs without their
residual blood); organ masses the sidecar gives (``organ_masses_g``,
``tumour.weight_g``) set the model's ``f_V_<organ>`` for that dataset, as they set the
%ID/g → %ID conversion; and the tumour always gets the converter's mass -- without a
tumour weight the species table's default tumour, with a :class:`FitWarning` saying
so -- so data and model never use two different tumours.

Datasets without a dose.  A %ID dataset (%ID, %ID/g, %ID/mL) needs the injected mass
only for model terms that depend on it (a capacity-limited uptake).  When its sidecar
gives no dose value, the fit simulates it with the model's nominal dose, provided the
model's %ID predictions at the data's times do not depend on the dose: they are
simulated at the start parameters at both ends of the sidecar's ``dose.range`` (µg;
default a tenth and ten times the nominal dose) and must agree within
:data:`DOSE_FREE_RTOL`.  Otherwise the fit is refused with the measured change and
asks for the dose.  :attr:`FitData.dose_note` records which dose was used and why.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import FitError, FitWarning

__all__ = ["FitData", "FitWarning", "coerce_datasets", "DOSE_FREE_RTOL"]

#: Largest relative change of a %ID prediction between the ends of the dose range for a
#: %ID dataset to be fitted without its dose (far below the 5 % σ floor of the fit).
DOSE_FREE_RTOL = 0.01


@dataclass
class FitData:
    """One dataset prepared for fitting.

    Attributes
    ----------
    name : str
        Identifier used in per-dataset parameter names (``Kmax_liver__<name>``).
    source : object
        What the user passed (a Dataset, a DataFrame ...).
    dose_ug : float
        Injected dose (µg): the simulation's bolus at t = 0.
    rows : pandas.DataFrame
        The rows used: ``tissue`` (data name), ``observable`` (model name),
        ``time_h``, ``observed`` (%ID), ``sd`` (per-animal SD, %ID), ``se``
        (standard error of the mean, %ID; SD/√n when only one of them is given),
        ``n``, ``lloq`` (%ID), ``censored``, ``row`` (the row in the source file,
        header = row 1, for a Dataset; the 0-based position for a DataFrame).
    times : numpy.ndarray
        Sorted unique output times of the simulation.
    excluded : list of dict
        Left-out rows: ``dataset``, ``tissue``, ``rows``, ``reason``.
    fixed : dict
        Per-dataset parameter values set from the dataset (``BW`` from
        ``body_weight_g``; ``f_residual_blood`` = 0 for a perfused dataset;
        ``f_V_<organ>`` from the organ masses the data converter used -- the sidecar's
        ``organ_masses_g`` and ``tumour.weight_g``, and for the tumour the table default
        when the sidecar gives none; then ``attrs["parameters"]`` of a DataFrame).
    meta : dict
        The dataset's metadata (sidecar).
    weighting : str
        How the rows enter the objective when some are individual animals ("" when
        every row is a group mean or a single value); one line for the fit report.
    dose_note : str
        Where ``dose_ug`` comes from when the dataset gives no dose ("" otherwise).
    notes : list of str
        What the fit must warn about this dataset (a default tumour mass).
    """

    name: str
    source: object
    dose_ug: float
    rows: pd.DataFrame
    times: np.ndarray
    excluded: list = field(default_factory=list)
    fixed: dict = field(default_factory=dict)
    meta: dict = field(default_factory=dict)
    weighting: str = ""
    dose_note: str = ""
    notes: list = field(default_factory=list)

    @property
    def time_index(self) -> np.ndarray:
        return np.searchsorted(self.times, self.rows["time_h"].to_numpy())


def _identifier(name: str) -> str:
    """A valid lmfit parameter-name fragment from a dataset name."""
    out = re.sub(r"\W", "_", str(name)).strip("_")
    if not out or out[0].isdigit():
        out = "d_" + out
    return out


def _read(item):
    if isinstance(item, (str, Path)):
        from ..data import read_dataset

        return read_dataset(item)
    return item


def _num(table: pd.DataFrame, *names) -> np.ndarray:
    for n in names:
        if n in table.columns:
            return pd.to_numeric(table[n], errors="coerce").to_numpy(dtype=float)
    return np.full(len(table), np.nan)


def _standard(table: pd.DataFrame, value: str, sd: str, se: str, lloq: str, name: str, time_unit: str) -> pd.DataFrame:
    """Columns ``tissue, time_h, value, sd, se, n, lloq, censored, group, row`` from a %ID table."""
    if "tissue" not in table.columns:
        raise FitError(f"dataset {name!r} has no `tissue` column (columns: {', '.join(map(str, table.columns))})")
    if "time_h" in table.columns:
        time_h = _num(table, "time_h")
    elif "time" in table.columns and str(time_unit).lower() in ("h", "hour", "hours", "hr"):
        time_h = _num(table, "time")
    else:
        raise FitError(f"dataset {name!r} needs a `time_h` column (hours after dosing); got {', '.join(map(str, table.columns))}")
    out = pd.DataFrame({"tissue": table["tissue"].astype(str).to_numpy(), "time_h": time_h})
    out["value"] = _num(table, value)
    out["sd"] = _num(table, sd)
    out["se"] = _num(table, se)
    out["n"] = _num(table, "n")
    out["lloq"] = _num(table, lloq)
    with np.errstate(invalid="ignore", divide="ignore"):
        n = np.where(out["n"] > 0, out["n"], np.nan)
        out["se"] = np.where(np.isfinite(out["se"]), out["se"], out["sd"] / np.sqrt(n))
        out["sd"] = np.where(np.isfinite(out["sd"]), out["sd"], out["se"] * np.sqrt(n))
    if "censored" in table.columns:
        cens = table["censored"].fillna(False).astype(bool).to_numpy()
    else:
        cens = np.zeros(len(table), dtype=bool)
    with np.errstate(invalid="ignore"):
        cens = cens | (np.isfinite(out["lloq"]) & (out["value"] < out["lloq"])).to_numpy()
    out["censored"] = cens
    out["group"] = table["group"].astype(str).to_numpy() if "group" in table.columns else ""
    out["animal"] = table["animal"].fillna("").astype(str).to_numpy() if "animal" in table.columns else ""
    out["row"] = table["row"].to_numpy() if "row" in table.columns else np.arange(len(table))
    return out


def _tables_of(item, key, index, model, tissue_map) -> list[tuple]:
    """``[(name, standard %ID table, dose_ug, meta, excluded)]``, one per group of ``item``."""
    observables = set(model.observable_names) - {"total"}
    if isinstance(item, pd.DataFrame):
        attrs = dict(item.attrs)
        name = key or attrs.get("name") or f"dataset{index + 1}"
        table = _standard(item, "value", "sd", "se" if "se" in item.columns else "sem", "lloq", name, attrs.get("time_unit", "h"))
        dose = attrs.get("dose_ug", float(model.parameters["dose"].value))
        meta, excluded = attrs, []
    elif hasattr(item, "percent_id") and hasattr(item, "table"):
        name = key or getattr(item, "name", None) or f"dataset{index + 1}"
        meta = dict(getattr(item, "meta", {}) or {})
        dose = getattr(item, "dose_ug", None)
        raw = item.table
        # Tissues the model cannot predict are listed, not converted: converting them
        # could need organ masses the dataset does not have (lymph node, testis).
        mapped = raw["tissue"].map(lambda t: tissue_map.get(t, t))
        unknown = ~mapped.isin(observables)
        excluded = []
        for tissue, rows in raw[unknown].groupby("tissue", sort=False)["row"]:
            target = tissue_map.get(tissue, tissue)
            excluded.append({"dataset": name, "tissue": tissue, "rows": [int(r) for r in rows],
                             "reason": f"model {model.name!r} has no observable {target!r}"})
        wanted = list(dict.fromkeys(raw.loc[~unknown, "tissue"]))
        if not wanted:
            raise FitError(f"dataset {name!r}: none of its tissues ({', '.join(dict.fromkeys(raw['tissue']))}) is an observable "
                           f"of model {model.name!r} ({', '.join(sorted(observables))}); map them with tissue_map=")
        pid = item.percent_id(tissues=wanted)
        table = _standard(pid, "value_pid", "sd_pid", "sem_pid", "lloq_pid", name, "h")
    else:
        raise FitError(
            f"`data` must be a nanopk Dataset, a path or bundled dataset name, a DataFrame, or a list/dict of these "
            f"(got {type(item).__name__})"
        )
    if dose is None and _dose_value_missing(meta):
        pass  # %ID rows (percent_id needed no dose): _prepare checks the model does not need it either
    elif dose is None or not (isinstance(dose, (int, float)) and math.isfinite(dose) and dose > 0):
        raise FitError(f"dataset {name!r} has no dose in µg (got {dose!r}); a fit simulates each dataset with its own dose "
                       "(give the sidecar a dose and, for mg/kg, a body_weight_g)")
    dose = None if dose is None else float(dose)
    groups = list(dict.fromkeys(table["group"]))
    if len(groups) <= 1:
        return [(name, table, dose, meta, excluded)]
    out = []
    for g in groups:
        sub = table[table["group"] == g].reset_index(drop=True)
        gname = f"{name}_{g}" if g else name
        ex = [dict(e, dataset=gname) for e in excluded] if g == groups[0] else []
        out.append((gname, sub, dose, meta, ex))
    return out


def _dose_value_missing(meta) -> bool:
    """The sidecar gives no dose value at all (not a dose that cannot be converted)."""
    dose = meta.get("dose")
    return dose is None or (isinstance(dose, dict) and dose.get("value") is None)


def _dose_free(name, model, times, fixed, meta) -> tuple[float, str]:
    """The dose to simulate a %ID dataset that gives none, and why it may be used.

    The model's %ID predictions at ``times`` are simulated at the start parameters at
    both ends of the dose range; if they differ by more than :data:`DOSE_FREE_RTOL` the
    dataset needs its dose and :class:`FitError` says so.
    """
    nominal = float(model.parameters["dose"].value)
    dose = meta.get("dose") if isinstance(meta.get("dose"), dict) else {}
    given = dose.get("range")
    if given is not None:
        lo, hi = (float(v) for v in given)
        where = f"the sidecar's dose.range {lo:g}-{hi:g} µg"
        use = nominal if lo <= nominal <= hi else math.sqrt(lo * hi)
    else:
        lo, hi = nominal / 10.0, nominal * 10.0
        where = f"{lo:g}-{hi:g} µg (a tenth to ten times the model's nominal dose; give dose.range in the sidecar to set it)"
        use = nominal
    from ..errors import NanopkError

    try:
        low = model.simulate(times, params=fixed, dose=lo)
        high = model.simulate(times, params=fixed, dose=hi)
    except NanopkError as exc:
        raise FitError(f"dataset {name!r} gives no dose, and model {model.name!r} could not be simulated across {where} "
                       f"to check that its %ID predictions do not depend on the dose ({exc}); give the dose in the sidecar") from None
    cols = [c for c in low.columns if c != "total"]
    a, b = low[cols].to_numpy(dtype=float), high[cols].to_numpy(dtype=float)
    # Relative to the prediction, with a 0.001 %ID floor: traces far below any organ fitted
    # must not decide.
    change = float(np.max(np.abs(a - b) / np.maximum(np.maximum(np.abs(a), np.abs(b)), 1e-3))) if a.size else 0.0
    if change > DOSE_FREE_RTOL:
        raise FitError(f"dataset {name!r} gives no dose (its sidecar's dose.value is null), but the %ID predictions of model "
                       f"{model.name!r} change by {100 * change:.3g} % across {where} (a term depends on the injected mass, "
                       f"e.g. a capacity-limited uptake); give the dose in the sidecar: \"dose\": {{\"value\": ..., \"unit\": \"ug\"}}")
    note = (f"no dose in the dataset: simulated with {use:g} µg; the %ID data need no dose to convert, and the %ID predictions "
            f"of model {model.name!r} change by at most {100 * change:.2g} % across {where} at the start parameters")
    return use, note


def _weighting(rows: pd.DataFrame) -> str:
    """One line on how individual-animal rows are weighted ("" when there are none)."""
    key = list(zip(rows["observable"], rows["time_h"]))
    counts: dict = {}
    for k in key:
        counts[k] = counts.get(k, 0) + 1
    animal = rows["animal"].astype(str).to_numpy() if "animal" in rows.columns else np.array([""] * len(rows))
    spread = np.isfinite(rows["sd"].to_numpy(dtype=float)) | np.isfinite(rows["se"].to_numpy(dtype=float))
    individual = np.array([(counts[k] > 1 or a != "") and not s for k, a, s in zip(key, animal, spread)], dtype=bool)
    n_ind = int(individual.sum())
    if not n_ind:
        return ""
    cells = len({k for k, i in zip(key, individual) if i})
    head = (f"{n_ind} of {len(rows)} rows are individual animals ({cells} tissue-time cells, up to "
            f"{max(counts[k] for k, i in zip(key, individual) if i)} animals each), each its own residual (not averaged)")
    if spread.any():
        return head + "; they report no SD, so each gets the median σ of the rows that report a spread"
    return head + "; no row reports a spread, so every row has the same weight (σ = 1 on the log scale) and the covariance is scaled by the residual variance"


def _prepare(name, table, dose_ug, meta, excluded, source, model, log_scale, censored, tissue_map, body_weight) -> FitData:
    observables = set(model.observable_names) - {"total"}
    tissue = table["tissue"].to_numpy(dtype=object)
    mapped = np.array([tissue_map.get(t, t) for t in tissue], dtype=object)
    time_h, value = table["time_h"].to_numpy(dtype=float), table["value"].to_numpy(dtype=float)
    lloq, cens = table["lloq"].to_numpy(dtype=float), table["censored"].to_numpy(dtype=bool)
    file_rows = table["row"].to_numpy()
    keep = np.ones(len(table), dtype=bool)

    def exclude(mask, reason_of):
        groups: dict = {}
        for i in np.flatnonzero(mask & keep):
            groups.setdefault(tissue[i], []).append(int(file_rows[i]))
        for t, rows in groups.items():
            excluded.append({"dataset": name, "tissue": t, "rows": rows, "reason": reason_of(t)})
        keep[mask] = False

    exclude(np.array([m not in observables for m in mapped], dtype=bool),
            lambda t: f"model {model.name!r} has no observable {tissue_map.get(t, t)!r}")
    exclude(~np.isfinite(time_h) | (time_h < 0), lambda t: "time is missing, negative or not finite")
    if censored == "exclude":
        exclude(cens, lambda t: "censored (zero or below the limit of quantification) and censored='exclude'")
    if log_scale:
        exclude(cens & ~(np.isfinite(lloq) & (lloq > 0)), lambda t: "censored (zero or below the limit of quantification) "
                "with no positive `lloq`, so neither a log-scale residual nor a censored likelihood can be formed "
                "(give the lloq, or use error_model='additive')")
    else:
        exclude(cens & ~np.isfinite(lloq), lambda t: "censored with no `lloq` for the censored likelihood")
    exclude(~np.isfinite(value) & ~cens, lambda t: "value is missing or not finite")
    if log_scale:
        exclude((value <= 0) & ~cens, lambda t: "value ≤ 0 cannot enter a log-scale fit and no `lloq` is given "
                "(give an lloq to fit it as censored, or use error_model='additive')")
    rows = pd.DataFrame({
        "tissue": tissue[keep],
        "observable": mapped[keep],
        "time_h": time_h[keep],
        "observed": value[keep],
        "sd": table["sd"].to_numpy(dtype=float)[keep],
        "se": table["se"].to_numpy(dtype=float)[keep],
        "n": table["n"].to_numpy(dtype=float)[keep],
        "lloq": lloq[keep],
        "censored": cens[keep],
        "row": file_rows[keep],
    })
    if isinstance(table["animal"], pd.Series) and (table["animal"] != "").any():
        rows["animal"] = table["animal"].to_numpy(dtype=object)[keep]
    if rows.empty:
        raise FitError(f"dataset {name!r}: no rows left to fit; " + "; ".join(f"{e['tissue']} ({e['reason']})" for e in excluded))
    fixed = {}
    bw_g = meta.get("body_weight_g")
    if body_weight == "dataset" and bw_g is not None and "BW" in model.parameters:
        try:
            bw = float(bw_g) / 1000.0
        except (TypeError, ValueError):
            bw = math.nan
        if math.isfinite(bw) and bw > 0:
            fixed["BW"] = bw
    notes = _observation_parameters(name, source, meta, model, fixed, set(rows["observable"]))
    fixed.update(_dataset_parameters(meta.get("parameters"), name, model))
    times = np.unique(rows["time_h"].to_numpy())
    dose_note = ""
    if dose_ug is None:
        dose_ug, dose_note = _dose_free(name, model, times, fixed, meta)
    return FitData(_identifier(name), source, float(dose_ug), rows, times, excluded, fixed, meta,
                   weighting=_weighting(rows), dose_note=dose_note, notes=notes)


def _observation_parameters(name, source, meta, model, fixed, observed) -> list[str]:
    """Per-dataset parameters that make the model observe what the data measured.

    - ``f_residual_blood`` = 0 when the sidecar says ``"perfused": true`` (organs
      without residual blood), if the model has it;
    - ``f_V_<organ>`` = the organ mass the data converter used / the model's body
      weight, for every fitted organ whose mass the sidecar gives (``organ_masses_g``,
      ``tumour.weight_g``), and always for the tumour: without a tumour weight the model
      gets the converter's default tumour (the species table's), and a note says so.

    Sets them in ``fixed``; returns the notes for the fit's warnings.
    """
    notes: list[str] = []
    params = model.parameters
    if meta.get("perfused") is True and "f_residual_blood" in params:
        fixed["f_residual_blood"] = 0.0
    if not hasattr(source, "organ_mass"):
        return notes  # a DataFrame in %ID: attrs["parameters"] may set f_V_tumour itself
    bw_kg = fixed.get("BW", float(params["BW"].value) if "BW" in params else math.nan)
    for organ in sorted(observed):
        key = f"f_V_{organ}"
        if key not in params:
            continue
        grams, where = source.organ_mass(organ)
        from_sidecar = where.startswith("sidecar")
        if grams is None or not (from_sidecar or organ == "tumour") or not math.isfinite(bw_kg):
            continue
        fraction = grams / (bw_kg * 1000.0)
        problem = params[key].problem(fraction)
        if problem:
            raise FitError(f"dataset {name!r}: the {organ} mass {grams:g} g ({where}) is {fraction:.4g} of the "
                           f"{bw_kg * 1000:g} g body weight, outside what model {model.name!r} admits for {key} "
                           f"{params[key].bounds}; check the sidecar's organ masses and body_weight_g")
        fixed[key] = fraction
        if not from_sidecar:
            notes.append(f"dataset {name!r} gives no tumour weight (tumour.weight_g in the sidecar): the %ID/g → %ID "
                         f"conversion and the model's tumour both use the default tumour of {grams:.3g} g ({where}); "
                         f"give tumour.weight_g for this study's tumours")
    return notes


def _dataset_parameters(given, name, model) -> dict:
    """``attrs["parameters"]`` checked: model parameters with finite values (all problems at once)."""
    if given is None:
        return {}
    if not isinstance(given, dict):
        raise FitError(f"dataset {name!r}: attrs['parameters'] must be a dict {{parameter: value}} (got {type(given).__name__})")
    from ..errors import suggest

    known = model.parameters
    problems = []
    for key, value in given.items():
        if key not in known:
            problems.append(f"unknown parameter {key!r}{suggest(str(key), known)}")
        elif key in ("dose", "infusion_rate"):
            problems.append(f"{key!r} is the dataset's dosing (give attrs['dose_ug'])")
        elif not (isinstance(value, (int, float, np.floating)) and not isinstance(value, bool) and math.isfinite(value)):
            problems.append(f"{key!r} must be a finite number (got {value!r})")
    if problems:
        raise FitError(f"dataset {name!r}: attrs['parameters']: " + "; ".join(problems))
    return {k: float(v) for k, v in given.items()}


def coerce_datasets(data, model, log_scale: bool, censored: str = "m3", tissue_map: dict | None = None,
                    body_weight: str = "dataset") -> list[FitData]:
    """Turn whatever ``fit`` was given as ``data`` into a list of :class:`FitData`."""
    tissue_map = dict(tissue_map or {})
    if censored not in ("m3", "exclude"):
        raise FitError(f"`censored` must be 'm3' or 'exclude' (got {censored!r})")
    if body_weight not in ("dataset", "model"):
        raise FitError(f"`body_weight` must be 'dataset' or 'model' (got {body_weight!r})")
    if isinstance(data, dict):
        items = [(str(k), v) for k, v in data.items()]
    elif isinstance(data, (list, tuple)):
        items = [(None, v) for v in data]
    else:
        items = [(None, data)]
    if not items:
        raise FitError("`data` is empty; give at least one dataset")
    prepared = []
    for i, (key, item) in enumerate(items):
        source = _read(item)
        for name, table, dose, meta, excluded in _tables_of(source, key, i, model, tissue_map):
            prepared.append(_prepare(name, table, dose, meta, excluded, source, model, log_scale, censored, tissue_map, body_weight))
    names = [d.name for d in prepared]
    seen: dict = {}
    for d in prepared:  # make names unique: a, a_2, a_3
        if names.count(d.name) > 1:
            seen[d.name] = seen.get(d.name, 0) + 1
            if seen[d.name] > 1:
                d.name = f"{d.name}_{seen[d.name]}"
                for e in d.excluded:
                    e["dataset"] = d.name
    return prepared
