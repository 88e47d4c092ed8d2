"""Tumour delivery efficiency and blood kinetics from a model or a fit, with intervals.

Delivery efficiency (DE) is the percentage of the injected dose in the *whole* tumour,
averaged over the time since injection: the quantity the values published by Cheng et
al. (ACS Nano 2020;14:3075, PMID 32078303) follow (see below):

    DE24  = (1/24)  ∫₀²⁴  tumour(t) dt,      DE168 = (1/168) ∫₀¹⁶⁸ tumour(t) dt   (%ID),
    DEmax = max over 0 ≤ t ≤ 168 h of tumour(t) (%ID), reached at t_max_h,

and the amount present at those times is reported beside them:

    tumour_24h = tumour(24 h),       tumour_168h = tumour(168 h)   (%ID).

Why the time average: the Nano-Tumor Database stores Cheng 2020's DE24 and DE168 for
each dataset, and they follow the average of the measured curve, not its value.  Over
the 332 datasets measured at 24 h, the stored DE24 lies a median 0.025 log10 units
(6 %) from the trapezoidal (1/24)∫₀²⁴ of the measurements and 0.137 (37 %) from the
24 h measurement; over the 20 measured at 168 h, DE168 lies 0.059 from the average and
0.36 from the measurement.  The stored DEmax follows the measured peak (0.071).

Exposure and blood kinetics over the same window, on a dense time grid::

    AUC_tumour = ∫₀¹⁶⁸ tumour(t) dt   (%ID·h, trapezoids),
    AUC_ratio  = AUC_tumour / AUC_blood,
    t_half_blood_h = ln 2 / λz, λz the slope of ln blood(t) over the tail
                     (the last quarter of the window, 126–168 h by default),
    t50_blood_h    = first time the circulating NP (blood pools plus the capillary blood
                     of every organ) falls to 50 %ID: half the dose has left blood.

Each metric carries a 95 % interval (2.5th–97.5th percentiles) when uncertainty is
available: MCMC draws of a fit when present, otherwise parameter sets sampled from the
fit's covariance (:func:`nanopk.fit.sample_parameters`).  A model with given
parameters has no uncertainty, and its intervals are ``None``.

References
----------
1. Cheng YH, He C, Riviere JE, Monteiro-Riviere NA, Lin Z. Meta-analysis of
   nanoparticle delivery to tumors using a physiologically based pharmacokinetic
   modeling and simulation approach. ACS Nano 2020;14:3075-3095 (PMID 32078303).
2. Wilhelm S et al. Analysis of nanoparticle delivery to tumours. Nat Rev Mater
   2016;1:16014.
"""
from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from .errors import ModelError, SolverError
from .nca import lambda_z, slope_over, time_average

__all__ = [
    "delivery_efficiency",
    "predict_delivery",
    "pk_metrics",
    "delivery_grid",
    "plot_delivery",
    "METRICS",
    "DE_METRICS",
    "delivery",
    "register_source",
    "metrics_with_intervals",
    "observed_blood_kinetics",
    "sampled_window",
    "flag_extrapolation",
    "prediction_profile",
]

#: Every metric :func:`delivery_efficiency` reports, in order.
METRICS = ("DE24", "DE168", "DEmax", "t_max_h", "tumour_24h", "tumour_168h", "AUC_tumour", "AUC_ratio",
           "t_half_blood_h", "t50_blood_h")
#: The three delivery efficiencies of Cheng et al. 2020.
DE_METRICS = ("DE24", "DE168", "DEmax")
#: Units of each metric (for JSON and plots).
UNITS = {"DE24": "%ID", "DE168": "%ID", "DEmax": "%ID", "t_max_h": "h", "tumour_24h": "%ID", "tumour_168h": "%ID",
         "AUC_tumour": "%ID·h", "AUC_ratio": "dimensionless", "t_half_blood_h": "h", "t50_blood_h": "h"}

#: What each metric is, in a few words (printed beside the values).
DESCRIPTIONS = {"DE24": "tumour %ID averaged over 0-24 h", "DE168": "tumour %ID averaged over 0-168 h",
                "DEmax": "peak tumour %ID over 0-168 h", "t_max_h": "time of the peak",
                "tumour_24h": "tumour %ID at 24 h", "tumour_168h": "tumour %ID at 168 h",
                "AUC_tumour": "tumour AUC over 0-168 h", "AUC_ratio": "tumour AUC / blood AUC",
                "t_half_blood_h": "terminal blood half-life", "t50_blood_h": "time until half the dose has left blood",
                "t_half_blood_nca_h": "blood half-life of the data (NCA)"}

T_END_H = 168.0


def delivery_grid(t_end_h: float = T_END_H) -> np.ndarray:
    """The time grid (h) metrics are computed on: dense early (log-spaced) and every 0.5 h.

    Always contains 0, 24 and ``t_end_h`` exactly, so the averages DE24 and DE168 end
    on grid points and the amounts at 24 and 168 h are read, not interpolated.
    """
    grid = np.concatenate([[0.0, 24.0, t_end_h], np.geomspace(0.005, t_end_h, 160), np.arange(0.0, t_end_h, 0.5)])
    grid = np.unique(np.round(grid[grid <= t_end_h], 9))
    return grid


# --------------------------------------------------------------------------- metrics
def _first_crossing(t: np.ndarray, y: np.ndarray, level: float) -> float | None:
    """First time ``y`` falls to ``level`` (log-linear interpolation between grid points)."""
    below = np.nonzero(y <= level)[0]
    if below.size == 0:
        return None
    k = int(below[0])
    if k == 0:
        return float(t[0])
    y0, y1 = y[k - 1], y[k]
    if y0 > 0 and y1 > 0:
        f = (math.log(y0) - math.log(level)) / (math.log(y0) - math.log(y1))
    else:
        f = (y0 - level) / (y0 - y1)
    return float(t[k - 1] + f * (t[k] - t[k - 1]))


def terminal_half_life(t: np.ndarray, y: np.ndarray, tail_fraction: float = 0.25,
                       window: tuple[float, float] | None = None) -> float | None:
    """``ln 2 / λz`` of a model curve: the log-linear slope over ``window`` (h), else over the
    last ``tail_fraction`` of the curve (:func:`nanopk.nca.slope_over`).

    Given a fit, ``window`` is the data's sampled terminal window, so the model's
    half-life is read where the data are, never from a post-sampling plateau.
    Returns ``None`` when the curve is not declining there or has non-positive values.
    """
    t = np.asarray(t, float)
    y = np.asarray(y, float)
    if window is None:
        window = (t[-1] - tail_fraction * (t[-1] - t[0]), t[-1])
        inside = (t >= window[0]) & (t <= window[1])
        if np.any(y[inside] <= 0):
            return None
    out = slope_over(t, y, window[0], window[1])
    return None if out is None else float(out["t_half_h"])


def _circulating(sim: pd.DataFrame) -> np.ndarray | None:
    """%ID in the whole vasculature: the blood pools plus every organ's capillary blood.

    The ``blood`` observable counts the arterial and venous pools only; within seconds
    of an IV bolus a third of the dose sits in the capillary beds of lung, liver and
    the other organs without having been cleared, so "half the dose has left blood"
    is read on this sum.
    """
    cols = [c for c in sim.columns if c.startswith("state:") and
            (c.endswith("_capillary") or c in ("state:arterial_blood", "state:venous_blood"))]
    dose = sim.attrs.get("dose_ug")
    if not cols or not dose:
        return None
    return 100.0 * sim[cols].to_numpy().sum(axis=1) / float(dose)


def _point_metrics(sim: pd.DataFrame, tail_fraction: float, window=None) -> dict:
    t = sim.index.to_numpy()
    out: dict = {}
    if "tumour" in sim:
        tum = sim["tumour"].to_numpy()
        reaches_end = t[-1] >= T_END_H
        out["DE24"] = time_average(t, tum, 24.0)
        out["DE168"] = time_average(t, tum, T_END_H) if reaches_end else None
        k = int(np.argmax(tum))
        out["DEmax"] = float(tum[k])
        out["t_max_h"] = float(t[k])
        out["tumour_24h"] = float(np.interp(24.0, t, tum))
        out["tumour_168h"] = float(np.interp(T_END_H, t, tum)) if reaches_end else None
        out["AUC_tumour"] = float(np.trapezoid(tum, t))
    if "blood" in sim:
        blood = sim["blood"].to_numpy()
        auc_blood = float(np.trapezoid(blood, t))
        if "tumour" in sim:
            out["AUC_ratio"] = out["AUC_tumour"] / auc_blood if auc_blood > 0 else None
        out["t_half_blood_h"] = terminal_half_life(t, blood, tail_fraction, window)
        circulating = _circulating(sim)
        out["t50_blood_h"] = _first_crossing(t, blood if circulating is None else circulating, 50.0)
    return out


def pk_metrics(model, params: Mapping[str, float] | None = None, dose=None, t_end_h: float = T_END_H,
               tail_fraction: float = 0.25, rtol: float = 1e-7, atol: float = 1e-10, blood_states: bool = True,
               half_life_window: tuple[float, float] | None = None) -> dict:
    """Point values of every metric the model's observables allow (no intervals).

    Tumour metrics need a ``tumour`` observable, blood metrics a ``blood`` one; the
    others are left out.  See the module docstring for the definitions.
    ``blood_states=False`` skips the state output (and reads ``t50_blood_h`` on the
    ``blood`` observable), which is faster when only DE is wanted.
    ``half_life_window`` ``(t_first, t_last)`` (h): read ``t_half_blood_h`` over that
    window (the data's sampled terminal phase) instead of the curve's last quarter.
    """
    grid = delivery_grid(t_end_h)
    if half_life_window is not None:  # a dense grid inside the window too
        grid = np.unique(np.concatenate([grid, np.linspace(half_life_window[0], half_life_window[1], 25)]))
    sim = model.simulate(grid, params=_known(model, params), dose=dose, rtol=rtol, atol=atol, states=blood_states)
    return _point_metrics(sim, tail_fraction, half_life_window)


def _known(model, params):
    names = set(model.parameter_names)
    return {k: float(v) for k, v in (params or {}).items() if k in names}


# --------------------------------------------------------------------------- inputs
#: ``{type: (delivery, inputs)}`` registered by the layers above (:mod:`nanopk.fit.result`
#: registers :class:`~nanopk.fit.FitResult`), so this module needs no fit and no guessing.
_SOURCES: dict[type, tuple] = {}


def register_source(cls: type, delivery_of, inputs_of) -> None:
    """Let :func:`delivery_efficiency` and :func:`plot_delivery` take ``cls`` objects.

    ``delivery_of(obj, params=, n_samples=, seed=, dose=)`` returns the delivery dict;
    ``inputs_of(obj, params, n_samples, seed)`` returns ``(model, values, draws)``.
    """
    _SOURCES[cls] = (delivery_of, inputs_of)


def _source(obj):
    for cls, funcs in _SOURCES.items():
        if isinstance(obj, cls):
            return funcs
    return None


def _as_model(model):
    """A :class:`nanopk.Model` from a model, a bundled name or a spec path."""
    from .model import Model

    if isinstance(model, (str, Path)):
        from .spec import load_model

        return load_model(model)
    if isinstance(model, Model):
        return model
    raise ModelError(f"expected a nanopk Model, a model name, a spec path or a fit result (got {type(model).__name__})")


def _as_records(draws) -> list[dict]:
    if draws is None:
        return []
    if isinstance(draws, pd.DataFrame):
        return draws.to_dict("records")
    if isinstance(draws, Mapping):  # {name: array}
        keys = list(draws)
        arrays = [np.asarray(draws[k], float).ravel() for k in keys]
        return [dict(zip(keys, vals)) for vals in zip(*arrays)]
    return [dict(d) for d in draws]


def _interval(values: Sequence[float | None]) -> list[float] | None:
    v = np.array([x for x in values if x is not None and math.isfinite(x)], float)
    if v.size < 10:
        return None
    lo, hi = np.percentile(v, [2.5, 97.5])
    return [float(lo), float(hi)]


def metrics_with_intervals(model, params: Mapping[str, float] | None = None, draws=None, *, source: str | None = None,
                           dose=None, names: Iterable[str] | None = None, tail_fraction: float = 0.25,
                           half_life_window: tuple[float, float] | None = None) -> dict:
    """``{metric: {"value", "ci95", "unit"}}`` for every metric the model allows.

    ``params`` (model parameter names) give the point values; each of ``draws``
    (parameter sets: a list of dicts, a DataFrame or ``{name: array}``) overrides them
    for one simulation, and the 2.5th-97.5th percentiles over the draws are ``ci95``
    (``None`` without draws or with fewer than 10 that simulate).  Also returns
    ``_uncertainty``: ``{"source", "n_draws", "n_failed"}`` (``source`` as given).
    """
    params = _known(model, params)
    point = pk_metrics(model, params, dose=dose, tail_fraction=tail_fraction, half_life_window=half_life_window)
    names = [m for m in (names or METRICS) if m in point]
    draws = _as_records(draws)
    samples: dict[str, list] = {m: [] for m in names}
    failed = 0
    for d in draws:
        p = dict(params)
        p.update(_known(model, d))
        try:
            m = pk_metrics(model, p, dose=dose, tail_fraction=tail_fraction, half_life_window=half_life_window)
        except (SolverError, ModelError):
            failed += 1
            continue
        for k in names:
            samples[k].append(m.get(k))
    out = {k: {"value": point[k], "ci95": _interval(samples[k]) if draws else None, "unit": UNITS[k]} for k in names}
    for k, v in out.items():
        ci, x = v["ci95"], v["value"]
        if ci is not None and x is not None and not ci[0] <= x <= ci[1]:
            # percentiles of draws need not contain the point (a parameter at its bound, a
            # skewed metric): say so, rather than let [14.2, 41.5] pass as an interval of 14.1
            v["note"] = "the estimate lies outside the 95 % range of its draws (skewed or bound-limited uncertainty)"
    out["_uncertainty"] = {"source": source if draws else None, "n_draws": len(draws), "n_failed": failed}
    return out


def reject_unknown_keywords(caller: str, given: Mapping, valid: Iterable[str]) -> None:
    """Raise a :class:`ModelError` naming keyword arguments ``caller`` does not take.

    Python's own ``TypeError`` names the first one only and suggests nothing.
    """
    if not given:
        return
    from .errors import suggest

    valid = list(valid)
    shown = "; ".join(f"{k!r}{suggest(k, valid) or ' (no close match)'}" for k in given)
    raise ModelError(f"{caller}() got unknown keyword argument(s): {shown}; valid: {', '.join(valid)}")


def _require_tumour(model) -> None:
    if "tumour" not in model.observable_names:
        raise ModelError(
            f"model {model.name!r} has no 'tumour' observable, so it has no delivery efficiency; "
            f"use a tumour-bearing model (e.g. 'mouse_tumour') or nanopk.delivery.pk_metrics for blood kinetics"
        )


def delivery(model, params: Mapping[str, float] | None = None, draws=None, *, source: str | None = None, dose=None,
             half_life_window: tuple[float, float] | None = None) -> dict:
    """Tumour delivery of ``model`` at ``params``, with intervals over ``draws``: explicit inputs only.

    Parameters
    ----------
    model : Model
        A model with a ``tumour`` observable.
    params : dict, optional
        Parameter values (model names) overriding the model's defaults.
    draws : list of dict, DataFrame or dict of arrays, optional
        Parameter sets representing the uncertainty (e.g. ``FitResult.parameter_draws``);
        none: no intervals.
    source : str, optional
        Where the draws came from (``"mcmc"``, ``"covariance"``), reported as ``uncertainty.source``.
    dose : optional
        Dosing regimen as :func:`nanopk.simulate` accepts; default the model's dose.
    half_life_window : (float, float), optional
        Read ``t_half_blood_h`` over this window (h) instead of the curve's last quarter.

    Returns
    -------
    dict
        Each of :data:`METRICS` as ``{"value", "ci95", "unit"}``; ``uncertainty``
        (``source``, ``n_draws``, ``n_failed``) and ``model`` (its name).

    Raises
    ------
    ModelError
        If the model has no ``tumour`` observable.
    """
    _require_tumour(model)
    out = metrics_with_intervals(model, params, draws, source=source, dose=dose, half_life_window=half_life_window)
    unc = out.pop("_uncertainty")
    result = {k: out.get(k, {"value": None, "ci95": None, "unit": UNITS[k]}) for k in METRICS}
    result["uncertainty"] = unc
    result["model"] = model.name
    return result


def delivery_efficiency(model_or_fit, params: Mapping[str, float] | None = None, n_samples: int = 200,
                        seed: int = 0, dose=None, **unknown) -> dict:
    """Tumour delivery efficiency, tumour exposure and blood half-lives, with 95 % intervals.

    Parameters
    ----------
    model_or_fit : Model, str or FitResult
        A model (its defaults, overridden by ``params``; no intervals), a bundled model
        name, or a fit result (``fit.delivery(...)``: its fitted values, intervals
        propagated from its uncertainty).
    params : dict, optional
        Parameter values overriding the model's or the fit's.
    n_samples : int
        Parameter sets drawn from the fit's uncertainty (MCMC draws when the fit has
        them, else its covariance).  0 skips intervals.
    seed : int
        Random seed of the draws.
    dose : optional
        Dosing regimen as :func:`nanopk.simulate` accepts; default the model's dose.

    Returns
    -------
    dict
        ``DE24``, ``DE168`` (time-averaged tumour %ID over 0–24 and 0–168 h), ``DEmax``
        (peak tumour %ID), ``t_max_h`` (h), ``tumour_24h``, ``tumour_168h`` (tumour %ID
        at 24 and 168 h), ``AUC_tumour`` (%ID·h, 0–168 h), ``AUC_ratio`` (tumour/blood
        AUC), ``t_half_blood_h`` (terminal, h),
        ``t50_blood_h`` (h); each ``{"value", "ci95", "unit"}`` with ``ci95`` a
        ``[low, high]`` pair or ``None`` without uncertainty.  ``uncertainty`` says
        where the intervals came from (``"mcmc"``, ``"covariance"`` or ``None``).
        Given a fit, what :meth:`nanopk.fit.FitResult.delivery` returns (with
        ``fit_status``; the fit's JSON then carries it).

    Raises
    ------
    ModelError
        If the model has no ``tumour`` observable, or for a keyword argument it does
        not take (named, with the nearest valid one).

    References
    ----------
    Cheng et al., ACS Nano 2020;14:3075 (PMID 32078303): DE definitions.
    """
    reject_unknown_keywords("delivery_efficiency", unknown, ("model_or_fit", "params", "n_samples", "seed", "dose"))
    registered = _source(model_or_fit)
    if registered is not None:
        return registered[0](model_or_fit, params=params, n_samples=n_samples, seed=seed, dose=dose)
    return delivery(_as_model(model_or_fit), params, dose=dose)


def prediction_profile(fit, metric: str = "DE24", max_steps: int = 8, tau: float = 0.01, level: float | None = None) -> dict:
    """95 % prediction-profile-likelihood interval of a delivery metric of a fit.

    For each target value ``v`` of the metric (a log grid outward from the estimate) the
    fit's objective is minimised with the metric held at ``v`` by one penalty row
    ``(ln m(x) − ln v)/tau`` (``tau = 0.01``: the metric within ~1 % of ``v``); the interval
    ends where the data's χ² has risen by χ²₁(0.95) = 3.84 (times the fit's residual
    scale, as :meth:`FitResult.profile` does).  Needs neither the covariance nor MCMC,
    so it stands in when the covariance is singular (Kreutz et al. 2012).

    Returns
    -------
    dict
        ``value``, ``ci95`` (``None`` on a side that never reached the threshold), ``open``
        (those sides), ``table`` (target, Δχ²) and ``nfev``.

    References
    ----------
    Kreutz C, Raue A, Timmer J. Likelihood based observability analysis and confidence
    intervals for predictions of dynamic models. BMC Syst Biol 2012;6:120
    (doi:10.1186/1752-0509-6-120).
    """
    from scipy.optimize import least_squares

    from .fit.uncertainty import CHI2_95

    obj = fit.objective
    model = fit.model
    x_hat = np.asarray(fit.x, float)
    scale = fit.covariance.scale if fit.options.get("scale_covar", True) and math.isfinite(fit.covariance.scale) else 1.0
    threshold = (CHI2_95 if level is None else level) * scale
    r_hat = obj.split(obj.residual(x_hat))[0]
    chi_min = float(r_hat @ r_hat)
    nfev = 0

    def metric_at(x):
        nonlocal nfev
        nfev += 1
        try:
            value = pk_metrics(model, _known(model, obj.natural(x)), blood_states=False).get(metric)
        except (SolverError, ModelError):
            return None
        return value if value is not None and value > 0 else None

    m_hat = metric_at(x_hat)
    if m_hat is None:
        raise ModelError(f"{metric} is not defined at the fit's estimate; no prediction profile")

    def profile_at(v, warm):
        def rows(x):
            r = obj.split(obj.residual(x))[0]
            m = metric_at(x)
            pen = 1e3 if m is None else (math.log(m) - math.log(v)) / tau
            return np.append(r, pen)

        out = least_squares(rows, warm, bounds=(obj.xmin, obj.xmax), diff_step=1e-4, xtol=1e-8, ftol=1e-8, max_nfev=200)
        r = obj.split(obj.residual(out.x))[0]
        return float(r @ r) - chi_min, out.x

    table = [(m_hat, 0.0)]
    ends, open_sides = {}, []
    for direction in (-1, 1):
        warm, step, prev = x_hat.copy(), 0.15, (0.0, 0.0)
        found = None
        for _ in range(max_steps):
            u = prev[0] + direction * step  # ln(v / m_hat)
            delta, warm = profile_at(m_hat * math.exp(u), warm)
            table.append((m_hat * math.exp(u), delta))
            if delta >= threshold:
                found = (prev, (u, delta))
                break
            prev = (u, max(delta, 0.0))
            step *= 1.6
        if found is None:
            ends[direction] = None
            open_sides.append("lower" if direction < 0 else "upper")
            continue
        (ua, da), (ub, db) = found
        ra, rb, rt = math.sqrt(max(da, 0.0)), math.sqrt(db), math.sqrt(threshold)
        u = ua + (ub - ua) * (rt - ra) / (rb - ra) if rb > ra else ub
        ends[direction] = m_hat * math.exp(u)
    frame = pd.DataFrame(sorted(table), columns=["value", "delta_chisqr"])
    return {"metric": metric, "value": m_hat, "ci95": [ends[-1], ends[1]], "open": open_sides, "table": frame,
            "nfev": nfev, "threshold": threshold}


def observed_blood_kinetics(predictions: pd.DataFrame) -> dict | None:
    """The data's blood kinetics behind a fit: NCA λz of the observed blood means.

    ``predictions`` is a fit's table of observations (``FitResult.predictions``:
    ``observable``, ``time_h``, ``observed``, ``censored``).

    Returns ``{"nca": lambda_z dict or None, "window": (t_first, t_last)}``, the window
    being the NCA terminal window, or the sampled blood window when no declining terminal
    phase of ≥ 3 points exists; ``None`` without blood observations (≥ 2 times).
    Means over datasets and animals at each time (uncensored rows).
    """
    pred = predictions
    if not isinstance(pred, pd.DataFrame):
        raise ModelError(f"observed_blood_kinetics() takes a fit's predictions table (a DataFrame), "
                         f"not {type(pred).__name__}; pass fit.predictions")
    if "observable" not in pred:
        return None
    rows = pred[(pred["observable"] == "blood") & ~pred["censored"].astype(bool)]
    if rows["time_h"].nunique() < 2:
        return None
    g = rows.groupby("time_h")["observed"].mean().sort_index()
    t, y = g.index.to_numpy(float), g.to_numpy(float)
    nca = lambda_z(t, y)
    window = (nca["t_first"], nca["t_last"]) if nca is not None else (float(t[0]), float(t[-1]))
    if window[1] <= window[0]:
        return None
    return {"nca": nca, "window": window}


def sampled_window(predictions: pd.DataFrame) -> tuple[float, float] | None:
    """``(first, last)`` positive time (h) of any observation of a fit, or ``None``.

    The window over which to read the model's blood half-life when no blood was
    measured (:func:`observed_blood_kinetics` is ``None``): the times the data cover,
    not the last quarter of 0–168 h, a plateau no one measured.
    """
    if not isinstance(predictions, pd.DataFrame) or "time_h" not in predictions:
        return None
    times = predictions["time_h"].to_numpy(float)
    times = times[np.isfinite(times) & (times > 0)]
    if not times.size or times.max() <= times.min():
        return None
    return float(times.min()), float(times.max())


#: The last time each metric needs (h): a metric past the last measurement is extrapolated.
HORIZON_H = {"DE24": 24.0, "tumour_24h": 24.0, "DE168": T_END_H, "DEmax": T_END_H, "t_max_h": T_END_H,
             "tumour_168h": T_END_H, "AUC_tumour": T_END_H, "AUC_ratio": T_END_H, "t50_blood_h": None,
             "t_half_blood_h": None}


def flag_extrapolation(result: dict, predictions: pd.DataFrame) -> None:
    """Mark each metric of ``result`` that needs the model past the last measured time of
    ``predictions`` (a fit's observations: tumour rows, else any)."""
    pred = predictions
    if pred.empty:
        return
    tum = pred[pred["observable"] == "tumour"]
    t_last = float((tum if not tum.empty else pred)["time_h"].max())
    result["last_measured_h"] = t_last
    for k, horizon in HORIZON_H.items():
        item = result.get(k)
        if not isinstance(item, dict) or item.get("value") is None or horizon is None:
            continue
        item["extrapolated"] = bool(horizon > t_last * (1 + 1e-9))
        if item["extrapolated"]:
            note = f"EXTRAPOLATED: needs the model to {horizon:g} h, the last {'tumour ' if not tum.empty else ''}measurement is at {t_last:g} h"
            item["note"] = note if not item.get("note") else f"{item['note']}; {note}"


# --------------------------------------------------------------------------- prediction
_GRID_KEYS = {"size": "core_diameter_nm", "core_diameter_nm": "core_diameter_nm", "d": "core_diameter_nm",
              "hydrodynamic_diameter_nm": "hydrodynamic_diameter_nm", "coating": "coating",
              "coating_mw_da": "coating_mw_da", "material": "material", "shape": "shape",
              "zeta_mV": "zeta_mV", "targeting": "targeting", "dose": "dose"}


def _particle_rows(particles, base: Mapping | None):
    base = dict(base or {})
    if isinstance(particles, Mapping):
        unknown = [k for k in particles if k not in _GRID_KEYS]
        if unknown:
            from .errors import suggest

            raise ModelError("unknown grid key(s):", [f"{k!r}{suggest(k, _GRID_KEYS)}; valid: {', '.join(_GRID_KEYS)}" for k in unknown])
        keys = list(particles)
        values = [v if isinstance(v, (list, tuple, np.ndarray)) else [v] for v in particles.values()]
        for combo in itertools.product(*values):
            yield {**base, **{_GRID_KEYS[k]: v for k, v in zip(keys, combo)}}
        return
    for p in particles:
        if hasattr(p, "to_dict"):
            p = p.to_dict()
        yield {**base, **dict(p)}


def predict_delivery(model_name_or_model, particles=None, base: Mapping | None = None,
                     params: Mapping[str, float] | None = None) -> pd.DataFrame:
    """Predicted DE24, DE168 and DEmax for particles, from a mechanistic model.

    Each particle goes through ``nanopk.load_model(name, particle=p)``, so its size,
    coating and material set the mechanistic parameters (pore permeability, renal
    sieving, opsonisation).

    Parameters
    ----------
    model_name_or_model : str, Path or Model
        A bundled model name or spec path; a Model is reloaded from its spec.
    particles : list or dict
        A list of :class:`nanopk.Particle` (or dicts of its fields), or a grid
        ``{"size": [...], "coating": [...], "dose": [...]}`` whose every combination
        is predicted.  ``size`` is the core diameter (nm); ``dose`` is in mg/kg when a
        number, or a string with its unit (``"20 ug"``).  A PEG coating without a
        molecular weight gets 5000 Da.
    base : dict, optional
        Particle fields shared by every row (e.g. ``{"material": "Au"}``).
    params : dict, optional
        Parameter overrides applied to every model.

    Returns
    -------
    pandas.DataFrame
        One row per particle: its fields, ``dose``, ``d_h`` (hydrodynamic diameter,
        nm), ``DE24``, ``DE168``, ``DEmax`` (%ID), ``t_max_h``.
    """
    from .model import Model
    from .particle import Particle
    from .spec import load_model

    source = model_name_or_model
    if isinstance(source, Model):
        spec = source.metadata.get("spec")
        if not spec:
            raise ModelError(f"model {source.name!r} has no spec to rebuild with a particle; pass its name instead")
        source = spec
    if particles is None:
        raise ModelError("`particles` is required: a list of particles or a grid dict such as {'size': [15, 50]}")
    rows = []
    for fields in _particle_rows(particles, base):
        dose = fields.pop("dose", None)
        if fields.get("coating") in ("PEG", "PEG-PLA") and fields.get("coating_mw_da") is None:
            fields["coating_mw_da"] = 5000.0
        particle = Particle.from_dict(fields)
        model = load_model(source, particle=particle, params=dict(params) if params else None)
        regimen = f"{dose} mg/kg" if isinstance(dose, (int, float)) else dose
        m = pk_metrics(model, None, dose=regimen)
        if "tumour" not in model.observable_names:
            raise ModelError(f"model {model.name!r} has no 'tumour' observable; predict_delivery needs a tumour model")
        row = {**particle.to_dict(), "dose": dose, "d_h": particle.hydrodynamic_diameter}
        row.update({k: m.get(k) for k in ("DE24", "DE168", "DEmax", "t_max_h")})
        rows.append(row)
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- plots
def _figure_class():
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError("plots need matplotlib: pip install 'nanopk[plot]'") from None
    return Figure


def plot_delivery(model_or_fit, params: Mapping[str, float] | None = None, n_samples: int = 100, seed: int = 0,
                  ax=None, blood: bool = True, path=None):
    """Tumour %ID over 0–168 h with its 95 % band, DE24/DE168/DEmax marked, blood on a twin axis.

    Given a fit, its measured tumour points (mean ± SD, uncensored) are drawn beside the
    model's curve.  Returns the matplotlib ``Axes`` (on a new :class:`matplotlib.figure.Figure`, not
    pyplot, unless ``ax`` is given); ``path`` saves the figure.  Needs matplotlib
    (``pip install 'nanopk[plot]'``).
    """
    Figure = _figure_class()
    registered = _source(model_or_fit)
    if registered is not None:  # a fit: its values and its uncertainty's draws
        model, values, draws = registered[1](model_or_fit, params, n_samples, seed)
    else:
        model = _as_model(model_or_fit)
        values, draws = _known(model, params), []
    grid = delivery_grid()
    sim = model.simulate(grid, params=values)
    if ax is None:
        ax = Figure(figsize=(6, 4), layout="constrained").add_subplot()
    draws = _as_records(draws)
    if draws:
        curves = []
        for d in draws:
            p = dict(values)
            p.update(_known(model, d))
            try:
                curves.append(model.simulate(grid, params=p)["tumour"].to_numpy())
            except (SolverError, ModelError):
                continue
        if curves:
            lo, hi = np.percentile(np.array(curves), [2.5, 97.5], axis=0)
            ax.fill_between(grid, lo, hi, color="C0", alpha=0.25, label="95 % band")
    ax.plot(grid, sim["tumour"], color="C0", label="tumour", gid="tumour:model")
    # a fit's own tumour measurements beside the curve: DE24 is read off the model, and the
    # reader must see how far the model is from what was measured
    pred = getattr(model_or_fit, "predictions", None)
    if pred is not None:
        rows = pred[(pred["observable"] == "tumour") & ~pred["censored"].astype(bool)]
        if len(rows):
            sd = rows["sd"].to_numpy(dtype=float)
            ax.errorbar(rows["time_h"].to_numpy(dtype=float), rows["observed"].to_numpy(dtype=float),
                        yerr=np.where(np.isfinite(sd), sd, 0.0), fmt="s", ms=4, capsize=2, color="k",
                        label="tumour, measured", gid="tumour:observed")
    m = _point_metrics(sim, 0.25)
    ax.plot([24, T_END_H], [m["DE24"], m["DE168"]], "o", color="C3", label="DE24, DE168")
    ax.plot([m["t_max_h"]], [m["DEmax"]], "^", color="C2", label="DEmax")
    ax.set_xlabel("time (h)")
    ax.set_ylabel("tumour (%ID)")
    ax.set_xlim(0, T_END_H)
    if blood and "blood" in sim:
        ax2 = ax.twinx()
        ax2.semilogy(grid[1:], sim["blood"].to_numpy()[1:], color="0.4", ls="--", label="blood")
        ax2.set_ylabel("blood (%ID, log)")
    ax.legend(loc="best", fontsize="small")
    ax.set_title(f"{model.name}: DE24 {m['DE24']:.2g}, DE168 {m['DE168']:.2g}, DEmax {m['DEmax']:.2g} %ID")
    if path is not None:
        ax.figure.savefig(path)
    return ax
