"""Fit the tumour sub-model to every dataset of a collection, in parallel, resumably.

For each dataset the tumour parameters ``θ`` (default ``PATC_tumour``, ``P_tumour``,
``Kmax_tumour``, ``Krelease_tumour``) are fitted with the rest of the body at its
defaults, as Cheng et al. 2020 and Chou et al. 2023 did, by maximising the posterior

    −2 ln p(θ | y) = Σ_i [(ln y_i − ln f(t_i; θ)) / σ]² + Σ_j [(ln θ_j − ln θ̃_j) / s_j]² + const

(proportional error σ on the ln scale, a log-normal prior with centre θ̃_j and
ln-scale spread s_j).  The unvaried tumour parameters sit at the medians of the
Nano-Tumor Database fits (K50 12 h, n 1.9; SCIENCE.md §2).  The body weight, the
tumour weight (``f_V_tumour`` = TW/BW) and the dose (mg/kg × BW) come from the
dataset.  The fit is :func:`nanopk.fit` on the dataset's objective
(:func:`item_objective`, built by :func:`nanopk.fit.build_objective`: the fit seam a
single fit, :func:`nanopk.compare` and :class:`nanopk.fit.JointObjective` share) —
trust-region least squares on ln θ with the prior as extra residual rows (its MAP
estimate), proportional error of known σ (``weighting="none"``,
``error_params={"sigma": σ}``) and no covariance (``uncertainty=False``): a fraction
of a second per dataset.  DE24, DE168 and DEmax
are then read from the fitted model (:mod:`nanopk.delivery`).

Priors.  Most datasets have 3–6 points up to 24 h, too few to pin four parameters
down, and nothing after 24 h, so the prior decides how much of the dose stays in the
tumour by 168 h.  Two choices:

- ``prior="published"``: θ̃ and s are the medians and ln-SDs of the tumour parameters
  Chou et al. 2023 fitted to the 378 datasets (:data:`POPULATION_PRIOR`), σ = 0.3.
- ``prior="empirical"`` (default; empirical Bayes in two stages): stage 1 fits, with
  the published prior, only the *informative* datasets — those observing the tumour at
  ≥ ``informative_t_h`` (default 168 h: the DE168 time point itself, 20 of the 378
  Nano-Tumor datasets); the population prior is then the ln-median and ln-SD (floored
  at 0.5) of their fitted parameters, and σ the median residual SD of those fits.
  Stage 2 fits every dataset with that prior.  This borrows the retention the long
  studies observe, instead of a median of release rates that the short studies (95 %
  end by 72 h) never constrained.

Store.  Each result is written to an SQLite store **as it finishes** (one row per
dataset; stage-1 rows in their own table), so an interrupted run resumes where it
stopped without refitting finished datasets.  Work runs on local processes by default
(``concurrent.futures``, spawn), on a Dask cluster when given
``scheduler="tcp://host:8786"`` (or a ``distributed.Client`` or cluster object), or in
this process with ``workers=1``.

Settings key.  Every row carries the key of the settings it was fitted with (a hash of
everything that changes a row's result: the model's name, equations, parameter values
and bounds, the fitted names, fixed values, the prior kind, the prior itself and σ, the
informative time of an empirical prior, the solver tolerances and evaluation budget,
the minimum number of points and the nanopk version; the key's record is kept in the
store's ``settings`` table).  A store holds the rows of **one** set of settings: a run
whose settings differ from those of the stored rows is refused with
:class:`MetaStoreError`, naming the store and each setting that differs, stored and
now, before anything is fitted — so ``--prior published`` after a run with the
default cannot mix the two priors in one summary.  Use a new store for the new
settings or ``overwrite=True`` (``--overwrite``) to discard the stored rows.  The
same holds when the empirical prior itself changed (the collection's informative
datasets or their stage-1 fits changed): the stored stage-2 rows used another prior,
and the run stops after stage 1 with that message.  Stores written before settings
keys existed are refused the same way (their rows cannot be matched to settings);
:func:`nanopk.meta.summarise` still reads them and says so.

Faults.  A row is committed as a single SQLite transaction, so a store stays
consistent whenever the run stops.  Worker processes end with their parent: each one
asks the kernel for SIGKILL when its parent dies (Linux ``PR_SET_PDEATHSIG``) and a
watchdog thread exits it once its parent is gone (every platform), so a SIGKILLed
``nanopk meta`` leaves no worker behind.  SIGTERM (and Ctrl-C) of the parent stops the
pool (pending fits cancelled, running workers terminated), records the run as
interrupted and raises :class:`MetaInterrupted`; the same call resumes.

References
----------
Cheng YH et al., ACS Nano 2020;14:3075 (PMID 32078303); Chou WC et al., J Control
Release 2023;361:53 (doi:10.1016/j.jconrel.2023.07.040); Casella G. An introduction to
empirical Bayes data analysis. Am Stat 1985;39:83.
"""
from __future__ import annotations

import hashlib
import json
import math
import multiprocessing
import os
import signal
import sqlite3
import threading
import time
import traceback
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from ..errors import FitError, ModelError, NanopkError
from ..parallel import (RunInterrupted, StopOnSigterm, Terminated, dask_client, init_worker, open_sqlite,
                        settings_diff)
from ..parallel import plain as _plain  # the name tests and older callers use

__all__ = ["run_meta", "fit_item", "item_objective", "MetaFitSettings", "DEFAULT_VARY", "POPULATION_PRIOR", "empirical_prior",
           "open_store", "done_ids", "PRIORS", "MetaStoreError", "MetaInterrupted", "settings_record", "settings_key"]


class MetaStoreError(NanopkError, ValueError):
    """A results store cannot be resumed with these settings (or is not a meta store)."""


class MetaInterrupted(RunInterrupted):
    """The run was stopped by a signal; the store is consistent and the same call resumes.

    Attributes (:class:`nanopk.parallel.RunInterrupted`): ``signum``, ``store`` and
    ``n_fitted``, the rows this run wrote before it stopped.
    """


#: Tumour parameters fitted per dataset: identifiable from ~4 points of tumour %ID.
DEFAULT_VARY = ("PATC_tumour", "P_tumour", "Kmax_tumour", "K50_tumour", "Krelease_tumour")

#: Medians (θ̃) and ln-scale standard deviations (s) of the tumour parameters fitted by
#: Chou et al. 2023 to the 378 Nano-Tumor Database datasets (Model_dataset.xlsx columns
#: PATC, PT, KTRESmax, KTRES50, KTRESn, KTRESrelease; medians as in SCIENCE.md §2,
#: spreads computed from the same columns).
POPULATION_PRIOR = {
    "PATC_tumour": (0.003, 2.09),
    "P_tumour": (0.08, 1.35),
    "Kmax_tumour": (0.29, 1.56),
    "K50_tumour": (12.0, 3.04),
    "n_tumour": (1.9, 1.48),
    "Krelease_tumour": (0.097, 2.59),
}
PRIORS = ("empirical", "published")
#: Smallest ln-SD an empirical prior may have (a factor e^0.5 ≈ 1.65 either way).
MIN_PRIOR_SD = 0.5
#: Fewer informative datasets than this and the empirical prior falls back to the published one.
MIN_INFORMATIVE = 5

#: Candidate names of a tumour-weight parameter, with how to set it from (TW g, BW g).
_TUMOUR_WEIGHT_PARAMS = {
    "f_V_tumour": lambda tw, bw: tw / bw,  # fraction of body weight
    "VTC": lambda tw, bw: tw / bw,
    "W_tumour": lambda tw, bw: tw / 1000.0,  # kg
}


@dataclass(frozen=True)
class MetaFitSettings:
    """How each dataset is fitted (stored with the run)."""

    model: str = "mouse_tumour"
    vary: tuple = DEFAULT_VARY
    fixed: dict = field(default_factory=lambda: {"n_tumour": 1.9})
    prior: dict = field(default_factory=lambda: dict(POPULATION_PRIOR))
    sigma_log: float = 0.3
    use_body_weight: bool = True
    use_tumour_weight: bool = True
    rtol: float = 1e-7
    atol: float = 1e-11
    max_nfev: int = 200
    min_points: int = 2

    def to_dict(self) -> dict:
        d = asdict(self)
        d["vary"] = list(self.vary)
        d["prior"] = {k: list(v) for k, v in self.prior.items()}
        return d


#: Delivery metrics each result row carries (see :mod:`nanopk.delivery`).
_METRIC_KEYS = ("DE24", "DE168", "DEmax", "t_max_h", "tumour_24h", "tumour_168h")


# --------------------------------------------------------------------------- one dataset
_MODELS: dict = {}
_MODELS_LOCK = threading.Lock()


def _load(model_name: str):
    with _MODELS_LOCK:
        if model_name not in _MODELS:
            from ..spec import load_model

            model = load_model(model_name)
            model.compile()
            _MODELS[model_name] = model
        return _MODELS[model_name]


def _dataset_params(model, item, settings: MetaFitSettings) -> dict:
    names = set(model.parameter_names)
    params = {k: float(v) for k, v in settings.fixed.items() if k in names}
    bw = item.body_weight_g
    if settings.use_body_weight and bw and "BW" in names:
        lo, hi = model.parameters["BW"].bounds
        params["BW"] = float(np.clip(bw / 1000.0, lo, hi))
    if settings.use_tumour_weight and item.tumour_weight_g and bw:
        for name, convert in _TUMOUR_WEIGHT_PARAMS.items():
            if name in names:
                lo, hi = model.parameters[name].bounds
                params[name] = float(np.clip(convert(item.tumour_weight_g, bw), lo, hi))
                break
    if item.dose_ug:
        params["dose"] = item.dose_ug
    return params


def _bounds(model, name: str, center: float) -> tuple[float, float]:
    """ln-scale search interval of ``name``: the model's bounds within 5 decades of ``center``."""
    lo, hi = model.parameters[name].bounds
    lo = max(lo, center * 1e-5)
    hi = min(hi, center * 1e5)
    return math.log(lo), math.log(hi)


def _fit_data(item, params: dict, t, y):
    """The tumour time course as the long table :func:`nanopk.fit` takes, with the
    dataset's dose and its fixed parameter values (body and tumour weight) in ``attrs``."""
    import pandas as pd

    frame = pd.DataFrame({"time_h": t, "tissue": "tumour", "value": y})
    fixed = dict(params)
    dose = fixed.pop("dose", None)
    frame.attrs.update(name=f"meta_{item.id}", parameters=fixed)
    if dose:
        frame.attrs["dose_ug"] = float(dose)  # otherwise the model's default dose, as before
    return frame


def _tumour_points(item) -> tuple[np.ndarray, np.ndarray]:
    """The dataset's positive tumour %ID at t > 0 (what is fitted; ln 0 has no residual)."""
    t = np.asarray(item.times_h, float)
    y = np.asarray(item.tumour_pct_id, float)
    keep = np.isfinite(t) & np.isfinite(y) & (y > 0) & (t > 0)
    return t[keep], y[keep]


def item_objective(item, settings: MetaFitSettings | None = None, model=None):
    """The objective one dataset's fit minimises: the fit seam of the meta-analysis.

    ``nanopk.fit.build_objective`` on the tumour %ID at t > 0 with proportional
    error of known σ (``error_model="log"``, ``weighting="none"``,
    ``error_params={"sigma": settings.sigma_log}``), the log-normal priors
    ``settings.prior`` of the varied names as residual rows, the dataset's body and
    tumour weight and dose held, each varied parameter started at its prior median
    and searched within its model bounds cut to 5 decades either side of it.
    :func:`fit_item` minimises it with ``nanopk.fit(objective=...)``; so does any
    user, and :class:`nanopk.fit.JointObjective` stacks the objectives of several
    datasets (nothing tied: the same estimates as the separate fits).

    Parameters
    ----------
    item : MetaItem
    settings : MetaFitSettings, optional
    model : nanopk.Model, optional
        Default: ``settings.model``, loaded and compiled once per process.

    Raises
    ------
    ModelError
        The model has no ``tumour`` observable, or does not have a varied name.
    FitError
        Fewer positive tumour values at t > 0 than ``settings.min_points``.
    """
    from ..fit import build_objective

    settings = settings or MetaFitSettings()
    model = model if model is not None else _load(settings.model)
    model.check_parameter_names(settings.vary)
    if "tumour" not in model.observables:
        raise ModelError(f"model {model.name!r} has no 'tumour' observable")
    t, y = _tumour_points(item)
    if len(t) < settings.min_points:
        raise FitError(f"dataset {item.id!r}: {len(t)} positive tumour value(s) at t > 0; need "
                       f"{settings.min_points} (MetaFitSettings.min_points)")
    vary = list(settings.vary)
    base = {k: v for k, v in _dataset_params(model, item, settings).items() if k not in vary}
    start, bounds = {}, {}
    for n in vary:
        center = settings.prior[n][0] if n in settings.prior else model.parameters[n].value
        lo, hi = _bounds(model, n, center)
        start[n] = math.exp(min(max(math.log(center), lo + 1e-9), hi - 1e-9))
        bounds[n] = (math.exp(lo), math.exp(hi))
    priors = {n: tuple(settings.prior[n]) for n in vary if n in settings.prior}
    return build_objective(model, _fit_data(item, base, t, y), vary=vary, error_model="log", weighting="none",
                           error_params={"sigma": settings.sigma_log}, body_weight="model", start=start,
                           bounds=bounds, priors=priors, jacobian="fd", rtol=settings.rtol, atol=settings.atol)


#: Optimiser options of every meta fit (``nanopk.fit`` keywords besides the objective):
#: scipy's default tolerances, no covariance (only the estimates are stored).
FIT_OPTIONS = dict(jacobian="fd", diff_step=1e-4, ftol=1e-8, xtol=1e-8, gtol=1e-8, scale_covar=False, workers=1,
                   uncertainty=False, warn=False)


def fit_item(item, settings: MetaFitSettings | None = None, model=None) -> dict:
    """Fit one dataset; return its result row (a failed fit is reported, never raised).

    The fit is ``nanopk.fit(objective=item_objective(item, settings), **FIT_OPTIONS,
    max_nfev=settings.max_nfev)``: the MAP estimate of :func:`item_objective`.

    Returns
    -------
    dict
        ``id, status`` (``"ok"``, ``"failed"``, ``"skipped"``), ``converged``,
        ``params`` (fitted values), ``DE24, DE168, DEmax, t_max_h, tumour_24h, tumour_168h``
        (%ID, h; :mod:`nanopk.delivery` defines them),
        ``rmse_log`` (ln-scale residual RMS of the data), ``n_points``, ``nfev``
        (the optimiser's residual evaluations, finite-difference ones not counted,
        in the units of ``max_nfev``), ``wall_s``, ``error``.
    """
    from ..delivery import pk_metrics
    from ..fit import fit

    settings = settings or MetaFitSettings()
    t0 = time.perf_counter()
    row = {"id": item.id, "status": "failed", "converged": False, "params": {}, **dict.fromkeys(_METRIC_KEYS),
           "rmse_log": None, "n_points": int(item.n_points), "nfev": 0, "error": None}
    try:
        model = model if model is not None else _load(settings.model)
        n = len(_tumour_points(item)[0])
        if n < settings.min_points and "tumour" in model.observables:
            row.update(status="skipped", error=f"{n} positive tumour value(s) at t > 0; need {settings.min_points}")
            return row
        objective = item_objective(item, settings, model)
        result = fit(objective=objective, max_nfev=settings.max_nfev, **FIT_OPTIONS)
        fitted = {name: float(result.params[name].value) for name in settings.vary}
        # The values the dataset was simulated with (held weights, the fit), and its dose.
        p = objective.overrides(result.x, objective.datasets[0])
        if item.dose_ug:
            p["dose"] = item.dose_ug
        m = pk_metrics(model, p, blood_states=False)
        r_log = result.predictions["residual"].to_numpy(float) * settings.sigma_log
        row.update(
            status="ok", converged=bool(result.success), params=fitted, **{k: m.get(k) for k in _METRIC_KEYS},
            rmse_log=float(np.sqrt(np.mean(r_log ** 2))),
            nfev=int(getattr(result.outcome.lmfit_result, "nfev", result.outcome.nfev)),
            error=None if result.success else result.message,
        )
    except (NanopkError, ValueError, FloatingPointError, ArithmeticError) as exc:
        row["error"] = f"{type(exc).__name__}: {exc}"
    except Exception as exc:  # a worker must report, not die: the run continues
        row["error"] = f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=3)}"
    finally:
        row["wall_s"] = time.perf_counter() - t0
    return row


def empirical_prior(rows, vary, base_prior=None, n_varied: int | None = None) -> tuple[dict, float | None, int]:
    """Population prior and σ from stage-1 fits (see the module docstring).

    Parameters
    ----------
    rows : iterable of dict
        Result rows (``status``, ``params``, ``rmse_log``, ``n_points``).
    vary : sequence of str
        Fitted parameter names.
    base_prior : dict, optional
        Prior for the names not varied (kept as is).

    Returns
    -------
    (prior, sigma_log, n_used)
        ``prior`` maps each name to ``(ln-median, ln-SD ≥ 0.5)`` back on the natural
        scale; ``sigma_log`` is ``sqrt(median_i RSS_i / (n_i − k))`` over fits with more
        points than parameters (``None`` if there are none).
    """
    ok = [r for r in rows if r["status"] == "ok" and r["params"]]
    prior = dict(base_prior or POPULATION_PRIOR)
    if not ok:
        return prior, None, 0
    k = len(vary) if n_varied is None else n_varied
    for name in vary:
        # Sorted, so that the prior (and the settings key of the rows fitted with it) does not
        # depend on the order in which the stage-1 fits finished.
        v = np.sort(np.log([r["params"][name] for r in ok if r["params"].get(name, 0) > 0]))
        if v.size:
            prior[name] = (float(np.exp(np.median(v))), float(max(np.std(v, ddof=1) if v.size > 1 else 0.0, MIN_PRIOR_SD)))
    # Per-dataset residual variances RSS_i/(n_i − k); their median, not their pooled sum, so
    # that the few datasets the model cannot follow (an early spike, then near zero) do
    # not inflate σ for all.
    per = sorted(r["rmse_log"] ** 2 * r["n_points"] / (r["n_points"] - k) for r in ok
                 if r["n_points"] > k and r["rmse_log"] is not None)
    sigma = float(math.sqrt(np.median(per))) if per else None
    return prior, sigma, len(ok)


# --------------------------------------------------------------------------- store
#: Columns added after the first stores were written: (name, SQL type).
_ADDED_COLUMNS = (("tumour_24h", "REAL"), ("tumour_168h", "REAL"), ("settings_key", "TEXT"))
_COLUMNS = """(
    id TEXT PRIMARY KEY, status TEXT NOT NULL, converged INTEGER NOT NULL, params TEXT,
    DE24 REAL, DE168 REAL, DEmax REAL, t_max_h REAL, rmse_log REAL, n_points INTEGER, nfev INTEGER,
    wall_s REAL, error TEXT, descriptors TEXT, published TEXT, run_id INTEGER, finished_at TEXT,
    """ + ", ".join(f"{name} {kind}" for name, kind in _ADDED_COLUMNS) + "\n)"
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS results {_COLUMNS};
CREATE TABLE IF NOT EXISTS stage1 {_COLUMNS};
CREATE TABLE IF NOT EXISTS runs (
    run_id INTEGER PRIMARY KEY AUTOINCREMENT, started_at TEXT, finished_at TEXT, wall_s REAL,
    n_fitted INTEGER, executor TEXT, workers INTEGER, settings TEXT, collection TEXT, interrupted INTEGER
);
CREATE TABLE IF NOT EXISTS info (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, record TEXT NOT NULL);
"""
FINISHED = ("ok", "failed", "skipped")
_TABLES = ("results", "stage1")


def open_store(path) -> sqlite3.Connection:
    """Open (creating if needed) a results store.

    Raises
    ------
    MetaStoreError
        ``path`` is not an SQLite file, or cannot be written.
    """
    def migrate(con):
        for table in _TABLES:  # a store from an earlier nanopk: its rows keep NULL there
            have = {r[1] for r in con.execute(f"PRAGMA table_info({table})")}
            for name, kind in _ADDED_COLUMNS:
                if name not in have:
                    con.execute(f"ALTER TABLE {table} ADD COLUMN {name} {kind}")

    return open_sqlite(path, _SCHEMA, lambda exc: MetaStoreError(
        f"cannot use {str(path)!r} as a meta-analysis results store ({exc}); give --store a new or an existing "
        f"nanopk meta .sqlite file in a writable folder"), migrate)


def done_ids(store, retry_failed: bool = False, table: str = "results", settings_key: str | None = None) -> set[str]:
    """Ids already finished in ``store`` (failed ones too unless ``retry_failed``); with
    ``settings_key``, only the rows fitted with those settings."""
    if table not in _TABLES:
        raise ValueError(f"`table` must be one of {_TABLES} (got {table!r})")
    if not Path(store).exists():
        return set()
    con = open_store(store)
    try:
        return _done(con, table, retry_failed, settings_key)
    finally:
        con.close()


def _done(con, table: str, retry_failed: bool, settings_key: str | None) -> set[str]:
    statuses = ("ok", "skipped") if retry_failed else FINISHED
    q = f"SELECT id FROM {table} WHERE status IN ({','.join('?' * len(statuses))})"
    args = list(statuses)
    if settings_key is not None:
        q += " AND settings_key = ?"
        args.append(settings_key)
    return {r[0] for r in con.execute(q, args)}


def _model_fingerprint(model) -> str:
    """The model's equations (structure hash) and every parameter's value and bounds: what
    the unfitted part of the body contributes to a row's result."""
    h = hashlib.sha256(model.structure_hash.encode())
    for name in model.parameter_names:
        p = model.parameters[name]
        h.update(repr((name, p.value, tuple(p.bounds) if p.bounds is not None else None)).encode())
    return h.hexdigest()[:20]


def settings_record(settings: MetaFitSettings, prior_kind: str, informative_t_h: float | None, model) -> dict:
    """What a run asks for: every setting that changes a row's result (see the module docstring).

    ``settings.prior`` is the prior the run was given (for an empirical prior: the
    published one its stage 1 uses); the prior a row was actually fitted with is part of
    the row's own record (:func:`settings_key`).
    """
    from .._version import __version__

    rec = settings.to_dict()
    rec.update(prior_kind=prior_kind, model_fingerprint=_model_fingerprint(model), nanopk=__version__)
    if prior_kind == "empirical":
        rec.update(informative_t_h=float(informative_t_h), min_informative=MIN_INFORMATIVE, min_prior_sd=MIN_PRIOR_SD)
    return _plain(rec)


def settings_key(requested: dict, stage: str, prior_used: str, prior: dict, sigma_log: float) -> tuple[str, dict]:
    """Key and record of the rows of one stage: the run's ``requested`` settings, the stage
    (``"stage1"`` or ``"results"``), which prior was used (``"empirical"``, ``"published"``,
    ``"given"``) and the prior and σ those rows were fitted with."""
    record = _plain({"requested": requested, "stage": stage, "prior_used": prior_used,
                     "prior": {k: list(v) for k, v in sorted(prior.items())}, "sigma_log": sigma_log})
    key = hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()[:16]
    return key, record


def _remember_key(con, key: str, record: dict) -> None:
    con.execute("INSERT OR IGNORE INTO settings VALUES (?, ?)", (key, json.dumps(record, sort_keys=True)))
    con.commit()


def _how_to_proceed(store, resumable: bool = True) -> str:
    text = (f"Use a new --store for these settings, or --overwrite to discard the rows in {str(store)!r} and fit "
            f"again (Python: run_meta(..., store=<new file>) or run_meta(..., overwrite=True))")
    return text + ("; or rerun with the stored settings to resume." if resumable else ".")


def _check_store(con, store, requested: dict, keys: dict) -> None:
    """Refuse rows of other settings (module docstring, 'Settings key').

    ``keys`` maps a table to ``(key, record)`` of the rows this run writes there when
    already known; a table not in ``keys`` has only its requested settings compared
    (its prior is known after stage 1).
    """
    legacy = {t: con.execute(f"SELECT COUNT(*) FROM {t} WHERE settings_key IS NULL").fetchone()[0] for t in _TABLES}
    if any(legacy.values()):
        n = legacy["results"] + legacy["stage1"]
        raise MetaStoreError(
            f"store {str(store)!r} holds {n} row(s) written by an earlier nanopk without a settings key "
            f"({legacy['results']} result(s), {legacy['stage1']} stage-1 fit(s)), so nanopk cannot tell which "
            f"model, prior and fit options they were fitted with, and resuming could mix them with rows fitted "
            f"now. " + _how_to_proceed(store, resumable=False))
    records = {k: json.loads(r) for k, r in con.execute("SELECT key, record FROM settings")}
    for table in _TABLES:
        for key, n in con.execute(f"SELECT settings_key, COUNT(*) FROM {table} GROUP BY settings_key"):
            mine = keys.get(table)
            if mine is not None and key == mine[0]:
                continue
            record = records.get(key)
            if record is None:
                raise MetaStoreError(f"store {str(store)!r} holds {n} row(s) in table {table!r} with settings key "
                                     f"{key!r} but no record of those settings (the store was edited?). "
                                     + _how_to_proceed(store, resumable=False))
            lines = settings_diff(record["requested"], requested)
            what = "with other settings"
            if not lines:  # same request, another prior: the empirical prior itself changed
                if mine is None:
                    continue  # compared once the prior is known (after stage 1)
                lines = settings_diff({k: record.get(k) for k in ("prior_used", "prior", "sigma_log")},
                              {k: mine[1].get(k) for k in ("prior_used", "prior", "sigma_log")})
                what = ("with another empirical prior (the collection's informative datasets or their stage-1 "
                        "fits changed since)")
            raise MetaStoreError(
                f"store {str(store)!r} holds {n} {'result' if table == 'results' else 'stage-1'} row(s) fitted "
                f"{what}; resuming would mix them with rows fitted now under one summary. Settings that differ:\n"
                + "\n".join(lines) + "\n" + _how_to_proceed(store))


def _clear(con) -> None:
    """``overwrite=True``: forget every row, run and setting of the store."""
    for table in (*_TABLES, "runs", "info", "settings"):
        con.execute(f"DELETE FROM {table}")
    con.commit()


def _read_rows(con, table: str, ids, key: str | None = None) -> list[dict]:
    ids = list(ids)
    if not ids:
        return []
    out = []
    for chunk in range(0, len(ids), 500):
        part = ids[chunk: chunk + 500]
        q = f"SELECT id, status, params, rmse_log, n_points FROM {table} WHERE id IN ({','.join('?' * len(part))})"
        if key is not None:
            q += " AND settings_key = ?"
            part = [*part, key]
        for r in con.execute(q, part):
            out.append({"id": r[0], "status": r[1], "params": json.loads(r[2]) if r[2] else {}, "rmse_log": r[3],
                        "n_points": r[4]})
    return out


def _write(con, table: str, row: dict, item, run_id: int, key: str) -> None:
    def num(v):
        return None if v is None or not math.isfinite(v) else float(v)

    values = {
        "id": row["id"], "status": row["status"], "converged": int(bool(row["converged"])),
        "params": json.dumps(row["params"]), **{k: num(row[k]) for k in _METRIC_KEYS}, "rmse_log": num(row["rmse_log"]),
        "n_points": row["n_points"], "nfev": row["nfev"], "wall_s": row["wall_s"], "error": row["error"],
        "descriptors": json.dumps(item.descriptors, default=str), "published": json.dumps(item.published, default=str),
        "run_id": run_id, "finished_at": datetime.now(timezone.utc).isoformat(), "settings_key": key,
    }
    con.execute(f"INSERT OR REPLACE INTO {table} ({', '.join(values)}) VALUES ({', '.join('?' * len(values))})",
                tuple(values.values()))
    con.commit()


def _set_info(con, key: str, value) -> None:
    con.execute("INSERT OR REPLACE INTO info VALUES (?, ?)", (key, json.dumps(value)))
    con.commit()


# --------------------------------------------------------------------------- executors
def _worker_init(model_name, parent_pid=None):  # pragma: no cover - runs in child processes
    init_worker(parent_pid)
    try:
        _load(model_name)
    except NanopkError:
        pass  # reported per dataset by fit_item


def _fit_one(item, settings):
    """The unit of work sent to a worker (a module-level function, so it pickles)."""
    return fit_item(item, settings)


def _progress(total: int, enabled: bool | None, desc: str):
    """The package's one progress bar (:func:`nanopk.progress.progress_bar`): ``True`` asks for it,
    ``None`` draws it on a terminal only, ``False`` never."""
    from ..progress import progress_bar

    return progress_bar(total, desc, "dataset", enabled)


class _Executor:
    """Runs fits on the chosen backend, yielding rows as they finish."""

    def __init__(self, kind: str, workers: int, model_name: str, scheduler=None):
        self.kind, self.workers, self.model_name, self.scheduler = kind, workers, model_name, scheduler
        self._pool = self._client = None
        self._owned = False

    def __enter__(self):
        if self.kind == "processes":
            ctx = multiprocessing.get_context("spawn")  # fork after threads (tqdm, BLAS) can deadlock
            self._pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=ctx, initializer=_worker_init,
                                             initargs=(self.model_name, os.getpid()))
        elif self.kind == "dask":
            self._client, self._owned = dask_client(self.scheduler, "nanopk meta")
            self.workers = int(sum(self._client.nthreads().values())) or None
        else:
            _load(self.model_name)
        return self

    def __exit__(self, exc_type, exc, tb):
        if self._pool is not None:
            if exc_type is not None:
                # Interrupted (SIGTERM, Ctrl-C, an error): cancel what has not started and do
                # not wait for the running fits (their rows are not written, so the resume
                # fits them again).
                procs = list((getattr(self._pool, "_processes", None) or {}).values())
                self._pool.shutdown(wait=False, cancel_futures=True)
                for proc in procs:
                    proc.terminate()
                for proc in procs:
                    proc.join(5)
            self._pool.shutdown(wait=True, cancel_futures=True)
        if self._client is not None and self._owned:
            self._client.close()
        return False

    def map(self, items, settings, tag: str):
        if not items:
            return
        if self.kind == "serial":
            for it in items:
                yield _fit_one(it, settings)
        elif self.kind == "processes":
            # Not cancelled here when the caller stops early: ``__exit__`` shuts the pool down
            # with ``cancel_futures``, and a future cancelled from outside the pool's manager
            # thread while workers are ended makes Python 3.11's ``terminate_broken`` raise
            # InvalidStateError in that thread.
            futures = [self._pool.submit(_fit_one, it, settings) for it in items]
            for fut in as_completed(futures):
                yield fut.result()
        else:
            import distributed

            futures = [self._client.submit(_fit_one, it, settings, pure=False, key=f"nanopk-meta-{tag}-{it.id}")
                       for it in items]
            try:
                for fut in distributed.as_completed(futures):
                    yield fut.result()
            finally:
                self._client.cancel([f for f in futures if not f.done()])


def run_meta(collection, model: str = "mouse_tumour", scheduler=None, store="meta.sqlite", workers: int | None = None,
             progress: bool = True, vary=None, prior="empirical", settings: MetaFitSettings | None = None,
             limit: int | None = None, retry_failed: bool = False, informative_t_h: float = 168.0,
             overwrite: bool = False) -> dict:
    """Fit the tumour sub-model to every dataset of ``collection``; results go to ``store``.

    Parameters
    ----------
    collection : Collection or path
        Datasets (:func:`nanopk.meta.read_collection` is applied to a path).
    model : str
        Model name or spec path with a ``tumour`` observable.
    scheduler : str, distributed.Client or cluster, optional
        Run on a Dask cluster (``"tcp://host:8786"``); default: local processes.
    store : str or Path
        SQLite file.  Datasets already finished there **with the same settings** are not
        refitted (resume); rows of other settings make the call fail (see ``overwrite``).
    workers : int, optional
        Local processes (default: all cores); ``1`` runs in this process.
    progress : bool
        Show a tqdm progress bar.
    vary : sequence of str, optional
        Tumour parameters to fit (default :data:`DEFAULT_VARY`).
    prior : {"empirical", "published"} or dict
        Prior of the fitted parameters (see the module docstring); a dict maps names
        to ``(median, ln-SD)``.
    settings : MetaFitSettings, optional
        Full control of the fit; ``model``, ``vary`` and ``prior`` override its fields.
    limit : int, optional
        Fit at most this many datasets in this call (then stop; resume later).
    retry_failed : bool
        Refit datasets whose earlier fit failed.
    informative_t_h : float
        Empirical prior: a dataset is informative when it observes the tumour at or
        after this time (h); default 168 h, the DE168 time point.
    overwrite : bool
        Discard every row, run and setting already in ``store`` and start afresh
        (needed to reuse a store with other settings).

    Returns
    -------
    dict
        ``store, model, prior, prior_used`` (``"published"`` when too few datasets
        are informative for an empirical prior), ``sigma_log, n_informative, n_datasets, n_already_done,
        n_fitted, n_ok, n_failed, n_skipped, n_converged, wall_s, executor, workers,
        run_id, complete, settings_key`` (the key of the result rows; ``None`` while an
        empirical run has not finished stage 1).

    Raises
    ------
    MetaStoreError
        ``store`` holds rows fitted with other settings (a different model or model
        file, fitted names, fixed values, prior, σ, informative time, tolerances,
        evaluation budget, minimum points or nanopk version), rows from a nanopk without
        settings keys, or is not a usable SQLite file.  Nothing is fitted.
    MetaInterrupted
        SIGTERM arrived (when called from the main thread) or Ctrl-C: the pool is ended,
        the run is recorded as interrupted, and the same call resumes.
    """
    from .reader import Collection
    from .sources import read_collection

    if not isinstance(collection, Collection):
        collection = read_collection(collection)
    settings = settings or MetaFitSettings()
    settings = replace(settings, model=str(model), vary=tuple(vary) if vary is not None else tuple(settings.vary))
    if isinstance(prior, dict):
        settings = replace(settings, prior={**settings.prior, **{k: tuple(v) for k, v in prior.items()}})
        prior_kind = "given"
    elif prior in PRIORS:
        prior_kind = prior
    else:
        raise FitError(f"`prior` must be one of {', '.join(PRIORS)} or a dict of (median, ln-SD) (got {prior!r})")
    if len(settings.vary) == 0:
        raise FitError("`vary` is empty: name at least one tumour parameter to fit")
    from ..spec import load_model

    m = load_model(settings.model)  # check the model and the names here, once, not in every worker
    if "tumour" not in m.observables:
        raise ModelError(f"model {m.name!r} has no 'tumour' observable; the meta-analysis needs a tumour model such as 'mouse_tumour'")
    m.check_parameter_names(list(settings.vary) + list(settings.fixed))

    informative = [it for it in collection if it.n_points and float(np.max(it.times_h)) >= informative_t_h]
    empirical = prior_kind == "empirical" and len(informative) >= MIN_INFORMATIVE
    requested = settings_record(settings, prior_kind, informative_t_h if prior_kind == "empirical" else None, m)
    key1, rec1 = settings_key(requested, "stage1", "empirical", POPULATION_PRIOR, settings.sigma_log)
    keys = {"stage1": (key1, rec1)}
    if not empirical:
        used = "published" if prior_kind == "empirical" else prior_kind
        keys["results"] = settings_key(requested, "results", used, settings.prior, settings.sigma_log)

    store = Path(store)
    con = open_store(store)
    try:
        if overwrite:
            _clear(con)
        _check_store(con, store, requested, keys)  # before anything is fitted or written
        for key, record in keys.values():
            _remember_key(con, key, record)
    except sqlite3.OperationalError as exc:  # read-only file or folder, full disk, locked
        con.close()
        raise MetaStoreError(f"cannot write to the results store {str(store)!r} ({exc}); give --store a file in a "
                             f"writable folder") from None
    except BaseException:
        con.close()
        raise
    started = datetime.now(timezone.utc).isoformat()
    t0 = time.perf_counter()
    key2 = keys["results"][0] if "results" in keys else None
    # Every stored result row has this run's requested settings (checked above); an empirical
    # run learns its prior, and so the rows' full key, after stage 1.
    finished = _done(con, "results", retry_failed, key2)
    pending = [it for it in collection if it.id not in finished]
    stage1_pending = []
    if empirical:
        done1 = _done(con, "stage1", retry_failed, key1)
        stage1_pending = [it for it in informative if it.id not in done1]
    budget = math.inf if limit is None else max(int(limit), 0)
    if scheduler is not None:
        kind = "dask"
    elif workers == 1 or len(pending) + len(stage1_pending) <= 1:
        kind = "serial"
    else:
        kind = "processes"
    n_workers = 1 if kind == "serial" else (workers or os.cpu_count() or 1)

    def run_settings():
        return json.dumps({**settings.to_dict(), "prior_kind": prior_kind, "settings_key": key2})

    cur = con.execute(
        "INSERT INTO runs (started_at, executor, workers, settings, collection, interrupted) VALUES (?,?,?,?,?,1)",
        (started, kind, n_workers, run_settings(), collection.name),
    )
    run_id = cur.lastrowid
    con.commit()
    counts = {"ok": 0, "failed": 0, "skipped": 0, "converged": 0}
    by_id = {it.id: it for it in collection}
    interrupted = 1
    sigma, n_inf = settings.sigma_log, None
    prior_used = "published" if prior_kind == "empirical" and not empirical else prior_kind

    def run_stage(ex, items, stage_settings, table, label, key):
        nonlocal budget
        items = items[: int(min(len(items), budget))] if math.isfinite(budget) else items
        bar = _progress(len(items), progress, f"{label} {settings.model}")
        try:
            for row in ex.map(items, stage_settings, f"{run_id}-{table}"):
                _write(con, table, row, by_id[row["id"]], run_id, key)
                budget -= 1
                counts[row["status"]] += 1
                counts["converged"] += int(bool(row["converged"]))
                bar.update(1)
        finally:
            bar.close()

    complete = False
    stopped = None
    try:
        with StopOnSigterm(), _Executor(kind, n_workers, settings.model, scheduler) as ex:
            n_workers = ex.workers
            if prior_kind == "empirical" and not empirical:
                n_inf = len(informative)
                _set_info(con, "prior", {"kind": f"published (only {n_inf} informative dataset(s); an empirical "
                                                 f"prior needs {MIN_INFORMATIVE})",
                                         "n_informative": n_inf, "sigma_log": settings.sigma_log,
                                         "prior": {k: list(v) for k, v in settings.prior.items()}})
            elif empirical:
                published = replace(settings, prior=dict(POPULATION_PRIOR))
                run_stage(ex, stage1_pending, published, "stage1", "meta stage 1 (informative)", key1)
                rows1 = _read_rows(con, "stage1", [it.id for it in informative], key1)
                if len([r for r in rows1 if r["status"] in FINISHED]) < len(informative):
                    pending = []  # stage 1 unfinished (limit reached): resume later
                else:
                    emp, emp_sigma, n_inf = empirical_prior(rows1, settings.vary, POPULATION_PRIOR)
                    sigma = emp_sigma or settings.sigma_log
                    settings = replace(settings, prior=emp, sigma_log=sigma)
                    keys["results"] = settings_key(requested, "results", "empirical", emp, sigma)
                    key2 = keys["results"][0]
                    _check_store(con, store, requested, keys)  # stored stage-2 rows used this prior?
                    _remember_key(con, *keys["results"])
                    finished = _done(con, "results", retry_failed, key2)
                    pending = [it for it in collection if it.id not in finished]
                    _set_info(con, "prior", {"kind": "empirical", "informative_t_h": informative_t_h,
                                             "n_informative": n_inf, "sigma_log": sigma,
                                             "prior": {k: list(v) for k, v in emp.items()}})
            else:
                _set_info(con, "prior", {"kind": prior_kind, "sigma_log": settings.sigma_log,
                                         "prior": {k: list(v) for k, v in settings.prior.items()}})
            if key2 is not None:
                _set_info(con, "settings", {"key": key2, **keys["results"][1]})
                run_stage(ex, pending, settings, "results", "meta", key2)
        complete = key2 is not None and len(_done(con, "results", retry_failed, key2) & set(collection.ids)) == len(collection)
        interrupted = 0
    except Terminated as exc:
        stopped = exc.signum
    except KeyboardInterrupt:  # Ctrl-C: the same clean stop as SIGTERM
        stopped = signal.SIGINT
    finally:
        wall = time.perf_counter() - t0
        n_fitted = counts["ok"] + counts["failed"] + counts["skipped"]
        con.execute("UPDATE runs SET finished_at=?, wall_s=?, n_fitted=?, interrupted=?, settings=? WHERE run_id=?",
                    (datetime.now(timezone.utc).isoformat(), wall, n_fitted, interrupted, run_settings(), run_id))
        con.commit()
        con.close()
    if stopped is not None:
        raise MetaInterrupted(stopped, store, n_fitted)
    return {
        "store": str(store), "model": settings.model, "prior": prior_kind, "prior_used": prior_used, "sigma_log": sigma,
        "n_informative": n_inf, "n_datasets": len(collection), "n_already_done": len(finished & set(collection.ids)),
        "n_fitted": n_fitted, "n_ok": counts["ok"], "n_failed": counts["failed"], "n_skipped": counts["skipped"],
        "n_converged": counts["converged"], "wall_s": wall, "executor": kind, "workers": n_workers, "run_id": run_id,
        "complete": complete, "settings_key": key2,
    }

