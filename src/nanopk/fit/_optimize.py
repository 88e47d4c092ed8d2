"""One local optimisation with lmfit, on the objective's internal (log) scale.

``least_squares`` (scipy's trust-region-reflective method, bounds handled natively,
the default) differences the residuals with a relative step ``diff_step`` or calls a
Jacobian callable; ``leastsq`` (MINPACK Levenberg-Marquardt) uses
``epsfcn = diff_step²`` so that its step is the same; any other lmfit method
(``nelder``, ``powell``, ``differential_evolution`` …) is passed through.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import lmfit
import numpy as np

from ..errors import FitError
from .objective import Objective

__all__ = ["Outcome", "minimize", "METHODS"]

METHODS = ("least_squares", "leastsq", "nelder", "powell", "lbfgsb", "differential_evolution", "basinhopping", "dual_annealing")

_STATUS = {
    -1: "improper input parameters",
    0: "the maximum number of function evaluations was exceeded",
    1: "the gradient norm fell below gtol",
    2: "the relative change of the objective fell below ftol",
    3: "the relative step fell below xtol",
    4: "both ftol and xtol were met",
}


@dataclass
class Outcome:
    """What one local optimisation returned."""

    x: np.ndarray
    x_start: np.ndarray
    chisqr: float
    cost: float
    converged: bool
    message: str
    nfev: int
    wall_time_s: float
    lmfit_result: object = field(repr=False, default=None)


def _parameters(objective: Objective, x0, fixed) -> lmfit.Parameters:
    params = lmfit.Parameters()
    lo, hi = objective.xmin, objective.xmax
    for k, name in enumerate(objective.names):
        value = float(np.clip(x0[k], lo[k], hi[k]))
        params.add(name, value=value, min=lo[k], max=hi[k], vary=k not in fixed)
    return params


def minimize(objective: Objective, x0, fixed=(), method="least_squares", jac=None, diff_step=1e-4,
             max_nfev=None, ftol=1e-10, xtol=1e-10, gtol=1e-10, **kws) -> Outcome:
    """Minimise ``objective`` from ``x0`` with the parameters at indices ``fixed`` held.

    Returns
    -------
    Outcome
        ``converged`` is the optimiser's own verdict (for ``least_squares`` a
        positive ``status``; for ``leastsq`` ``ier`` in 1–4), never ``True`` when the
        evaluation budget ran out.
    """
    if method not in METHODS:
        raise FitError(f"unknown method {method!r}; valid: {', '.join(METHODS)}")
    fixed = set(fixed)
    x0 = np.asarray(x0, dtype=float)
    params = _parameters(objective, x0, fixed)
    n_vary = len(objective.names) - len(fixed)
    if n_vary == 0:
        r = objective.residual(x0)
        return Outcome(x0.copy(), x0.copy(), float(r @ r), objective.loss_value(r), True,
                       "nothing to optimise: every parameter is fixed", 1, 0.0)
    mini = lmfit.Minimizer(objective.lmfit_residual, params, scale_covar=True, nan_policy="raise")
    options = dict(kws)
    if objective.loss != "linear" and method != "least_squares":
        raise FitError(f"a robust loss ({objective.loss!r}) needs method='least_squares' (got method={method!r})")
    if method == "least_squares":
        options.update(ftol=ftol, xtol=xtol, gtol=gtol, loss=objective.loss, f_scale=objective.f_scale)
        if jac is not None:
            free = [k for k in range(len(objective.names)) if k not in fixed]

            def jacobian(p):
                x = np.array([p[n].value for n in objective.names])
                return jac(objective, x)[:, free]

            options["jac"] = jacobian
        else:
            options["diff_step"] = diff_step
    elif method == "leastsq":
        if jac is not None:
            raise FitError("an analytic `jacobian` is supported with method='least_squares' only; use jacobian='fd' with leastsq")
        options.update(ftol=ftol, xtol=xtol, gtol=gtol, epsfcn=diff_step ** 2)
    elif jac is not None:
        raise FitError(f"an analytic `jacobian` is supported with method='least_squares' only (got method={method!r})")
    t0 = time.perf_counter()
    calls0 = objective.n_calls
    # nanopk computes the covariance itself (fit.uncertainty).  lmfit's least_squares always
    # adds its own estimate from the last Jacobian, and on a near-singular problem takes the
    # square root of a slightly negative variance: silence that, the estimate is not used.
    with np.errstate(invalid="ignore", divide="ignore"):
        res = mini.minimize(method=method, params=params, max_nfev=max_nfev, **options)
    wall = time.perf_counter() - t0
    x = np.array([res.params[n].value for n in objective.names])
    r = objective.residual(x)
    chisqr = float(r @ r)
    cost = objective.loss_value(r)
    converged = bool(res.success) and not bool(getattr(res, "aborted", False)) and np.isfinite(chisqr)
    if method == "least_squares":
        status = getattr(res, "status", None)
        if getattr(res, "aborted", False) or status is None:
            message = f"stopped after {objective.n_calls - calls0} evaluations (max_nfev = {max_nfev}) before converging"
            converged = False
        else:
            converged = converged and status > 0
            message = _STATUS.get(status, str(res.message))
    else:
        message = str(res.message) if res.message else ("converged" if converged else "did not converge")
        if getattr(res, "aborted", False):
            message = f"stopped after {objective.n_calls - calls0} evaluations (max_nfev = {max_nfev}) before converging"
            converged = False
    return Outcome(x, x0.copy(), chisqr, cost, converged, message, objective.n_calls - calls0, wall, res)
