"""Non-compartmental analysis (NCA): the one terminal-slope estimator and time averages.

Everything in nanopk that reads a half-life off a concentration–time curve — the
observed blood points of a dataset (:func:`nanopk.compare.observed_kinetics`, the fit
report) or a model's simulated curve (:mod:`nanopk.delivery`) — uses
:func:`lambda_z` here, so the data and the model are measured with the same rule.

Terminal slope (Gabrielsson & Weiner 2016, ch. 2; the "best fit" rule of WinNonlin):

    ln y(t) = a − λz·t   by least squares on the last k points, k ≥ 3,

with k the one maximising the adjusted R², ``1 − (1 − R²)(k − 1)/(k − 2)`` (ties within
1e-4 go to more points), among the windows with a declining slope; ``t½ = ln 2 / λz``.
Trailing points that do not decline (the last value ≥ the one before it, repeatedly) are
left out first and counted in ``n_plateau``: two equal values at the end of a blood curve
are a detection floor or a plateau, and a window through them reads the plateau's slope
as the elimination half-life.
The estimate is over the sampled window only: it never extrapolates.

References
----------
1. Gabrielsson J, Weiner D. Pharmacokinetic and Pharmacodynamic Data Analysis:
   Concepts and Applications, 5th ed. Swedish Pharmaceutical Press 2016, ch. 2.
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["lambda_z", "slope_over", "time_average", "auc"]

#: Adjusted R² ties within this margin go to the window with more points.
ADJ_R2_TIE = 1e-4


def _clean(t, y) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(t, float).ravel()
    y = np.asarray(y, float).ravel()
    if t.shape != y.shape:
        raise ValueError(f"t and y must have the same length (got {t.size} and {y.size})")
    ok = np.isfinite(t) & np.isfinite(y) & (y > 0)
    order = np.argsort(t[ok], kind="stable")
    return t[ok][order], y[ok][order]


def lambda_z(t, y, min_points: int = 3) -> dict | None:
    """Terminal elimination rate by log-linear regression on the best last-k window.

    Parameters
    ----------
    t, y : array_like
        Times (h) and concentrations or amounts (> 0; non-positive and non-finite
        points are left out, as a log cannot take them).  Several values at one time
        should be averaged by the caller.
    min_points : int
        Fewest points in the terminal window (3: a line through 2 points has no
        goodness of fit).

    Returns
    -------
    dict or None
        ``lambda_z`` (1/h), ``t_half_h``, ``n_points``, ``adj_r2``, ``t_first`` and
        ``t_last`` (the window), ``intercept`` (ln y at t = 0 of the line),
        ``n_plateau`` (trailing points left out because they did not decline: a
        detection floor or a late plateau is not elimination); ``None`` when no window
        of ≥ ``min_points`` points declines.
    """
    t, y = _clean(t, y)
    # Trailing points that do not decline (each ≥ the one before) are a plateau — values at
    # the detection floor, or late redistribution — not elimination: left out, and counted.
    n_tail = 0
    while len(t) - n_tail >= 2 and y[-1 - n_tail] >= y[-2 - n_tail]:
        n_tail += 1
    if n_tail:
        t, y = t[:-n_tail], y[:-n_tail]
    best = None
    for k in range(int(min_points), len(t) + 1):
        tt, ly = t[-k:], np.log(y[-k:])
        if np.ptp(tt) <= 0:
            continue
        slope, intercept = np.polyfit(tt, ly, 1)
        r2 = np.corrcoef(tt, ly)[0, 1] ** 2 if np.ptp(ly) > 0 else 1.0
        adj = 1 - (1 - r2) * (k - 1) / (k - 2) if k > 2 else r2
        if slope < 0 and (best is None or adj > best["adj_r2"] - ADJ_R2_TIE):
            best = {"lambda_z": float(-slope), "t_half_h": float(math.log(2) / -slope), "n_points": int(k),
                    "adj_r2": float(adj), "t_first": float(tt[0]), "t_last": float(tt[-1]),
                    "intercept": float(intercept), "n_plateau": int(n_tail)}
    return best


def slope_over(t, y, t_first: float, t_last: float, min_points: int = 3) -> dict | None:
    """Log-linear slope of ``y`` over the fixed window ``[t_first, t_last]``.

    For a model's dense curve over the window the data's :func:`lambda_z` chose: the
    model's half-life *inside the sampled window*, comparable with the data's.

    Returns
    -------
    dict or None
        ``lambda_z``, ``t_half_h``, ``n_points``, ``t_first``, ``t_last``; ``None``
        when fewer than ``min_points`` positive points lie in the window or ``y`` does
        not decline over it.
    """
    t, y = _clean(t, y)
    keep = (t >= t_first - 1e-9) & (t <= t_last + 1e-9)
    if keep.sum() < min_points or np.ptp(t[keep]) <= 0:
        return None
    slope = float(np.polyfit(t[keep], np.log(y[keep]), 1)[0])
    if not slope < 0:
        return None
    return {"lambda_z": -slope, "t_half_h": math.log(2) / -slope, "n_points": int(keep.sum()),
            "t_first": float(t_first), "t_last": float(t_last)}


def time_average(t, y, t_end: float) -> float:
    """``(1/t_end) ∫₀^t_end y dt`` by trapezoids on the points up to ``t_end``.

    ``t`` must start at 0 and contain ``t_end`` (as :func:`nanopk.delivery.delivery_grid` does).
    """
    t = np.asarray(t, float)
    y = np.asarray(y, float)
    keep = t <= t_end
    return float(np.trapezoid(y[keep], t[keep]) / t_end)


def auc(t, y) -> float | None:
    """Trapezoidal area from the first to the last point (no extrapolation); ``None`` below 2 points."""
    t = np.asarray(t, float)
    y = np.asarray(y, float)
    if t.size < 2:
        return None
    return float(np.trapezoid(y, t))
