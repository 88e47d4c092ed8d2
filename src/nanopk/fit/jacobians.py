"""Jacobians of a fit's residuals: finite differences (optionally on threads) and forward sensitivities.

``jacobian="fd"`` differences the residuals with a relative step ``diff_step`` (default
1e-4, well above the solver noise at ``rtol=1e-8``); :class:`ForwardDifferenceJacobian`
runs the perturbed solves concurrently.  ``jacobian="sensitivity"``
(:class:`SensitivityJacobian`) uses forward parameter sensitivities from the backend and
the chain rule through the observables, the residual model and the log transform; the
residuals then come from the same solve.  Any callable ``jac(objective, x) -> ndarray
(n_residuals, n_varied)`` may be given instead.  Each takes the objective it
differentiates (:class:`nanopk.fit.objective.Objective`, or anything meeting
:mod:`nanopk.fit.protocol`).
"""
from __future__ import annotations

import numpy as np

from ..errors import FitError, SolverError
from ..run import observation_derivatives
from ._data import FitData
from .protocol import Objective  # the protocol every objective meets (annotations)

__all__ = ["ForwardDifferenceJacobian", "SensitivityJacobian"]


def _residuals_at(objective: Objective, points, pool=None) -> list[np.ndarray]:
    """The residuals at each point, on the thread ``pool`` if given (the compiled solver
    releases the GIL), else one after another."""
    if pool is None:
        return [objective.residual(p) for p in points]
    return list(pool.map(objective.residual, points))


def _finite_difference_jacobian(objective: Objective, x, step=1e-4, pool=None) -> np.ndarray:
    """Central differences of the residuals (one-sided next to a bound).

    The step is ``step·max(1, |x_j|)`` on the optimiser's (log) scale, as in scipy's
    ``diff_step``: with the solver at ``rtol=1e-8`` the truncation and noise errors
    are both ~1e-8 relative, far below what an interval needs.  With a thread
    ``pool`` the simulations run concurrently (see :class:`ForwardDifferenceJacobian`).
    """
    x = np.asarray(x, dtype=float)
    lo, hi = objective.xmin, objective.xmax
    plans = []  # per parameter: (point a, point b, divisor); None stands for x itself
    for j in range(x.size):
        h = step * max(1.0, abs(x[j]))
        up, down = x.copy(), x.copy()
        up[j] += h
        down[j] -= h
        if up[j] <= hi[j] and down[j] >= lo[j]:
            plans.append((up, down, 2 * h))
        elif up[j] <= hi[j]:
            plans.append((up, None, h))
        else:
            plans.append((None, down, h))
    one_sided = any(a is None or b is None for a, b, _ in plans)
    points = ([x] if one_sided else []) + [p for a, b, _ in plans for p in (a, b) if p is not None]
    values = _residuals_at(objective, points, pool)
    f0 = values[0] if one_sided else None
    rest = iter(values[1:] if one_sided else values)
    J = np.empty((objective.n_residuals, x.size))
    for j, (a, b, div) in enumerate(plans):
        fa = next(rest) if a is not None else f0
        fb = next(rest) if b is not None else f0
        J[:, j] = (fa - fb) / div
    return J


class ForwardDifferenceJacobian:
    """∂r/∂x by forward differences, the perturbed simulations running concurrently.

        J[:, j] = (r(x + h_j·e_j) − r(x)) / h_j,   h_j = diff_step · max(1, |x_j|)

    — scipy's ``"2-point"`` rule, with the step reversed where ``x + h_j`` would cross
    the upper bound.  The compiled solver runs in C without the GIL (a ``ctypes`` call
    releases it), so the ``k`` perturbed solves of one Jacobian run on ``workers``
    threads in parallel; ``r(x)`` is the optimiser's last evaluation
    (:meth:`Objective.cached_residual`).  On one worker it is the sequential rule.
    """

    def __init__(self, diff_step: float = 1e-4, pool=None):
        self.diff_step = float(diff_step)
        self.pool = pool

    def steps(self, objective: Objective, x) -> np.ndarray:
        x = np.asarray(x, dtype=float)
        h = self.diff_step * np.maximum(1.0, np.abs(x))
        h = np.where(x + h > objective.xmax, -h, h)
        return (x + h) - x  # the step actually representable at x

    def __call__(self, objective: Objective, x) -> np.ndarray:
        x = np.asarray(x, dtype=float)
        f0 = objective.cached_residual(x)
        h = self.steps(objective, x)
        points = []
        for j in range(x.size):
            xj = x.copy()
            xj[j] += h[j]
            points.append(xj)
        columns = _residuals_at(objective, points, self.pool)
        return np.column_stack([(fj - f0) / hj for fj, hj in zip(columns, h)])


class SensitivityJacobian:
    """d(residual)/dx from forward sensitivities of the ODE solution.

    Needs the compiled backend to provide::

        solve_sensitivities(t0, y0, s0, p, t_out, rtol, atol, max_steps, indices)
            -> result with .success, .message, .y (len(t_out) × n_states) and
               .s (len(t_out) × n_states × len(indices)) = ∂y/∂p[indices]

    which the run kernel (:meth:`nanopk.run.Runner.run` with ``sensitivities``) drives
    through the datasets' dosing.  The chain rule then runs through the observables
    (∂h/∂y·S + ∂h/∂p, derived symbolically), the residual model and the log transform
    (∂θ/∂x = θ).

    Attaching one switches the objective to solving with sensitivities
    (:meth:`Objective.use_sensitivities`): the optimiser evaluates the residuals at a
    point before it asks for the Jacobian there, and that one solve serves both.
    """

    def __init__(self, objective: Objective):
        self.objective = objective
        self.compiled = objective.runner.compiled
        if not hasattr(self.compiled, "solve_sensitivities"):
            raise FitError(
                f"jacobian='sensitivity' needs forward sensitivities, which the {self.compiled.backend!r} backend does not "
                "provide (no `solve_sensitivities`); use jacobian='fd' (finite differences with diff_step=1e-4)"
            )
        # Depend only on the model structure: derived once per compiled model.
        self._slopes = observation_derivatives(self.compiled)
        objective.use_sensitivities()

    def __call__(self, objective: Objective, x) -> np.ndarray:
        obj = objective
        x = np.asarray(x, dtype=float)
        blocks = []
        obs_index = obj._obs_index
        for d in obj.datasets:
            own = obj.sensitivity_columns(d)
            try:
                sol = obj.solution(x, d)
            except SolverError as exc:
                raise FitError(f"sensitivity solve failed for dataset {d.name!r}: {exc}") from None
            p, Y, S, indices = sol.p, sol.y, sol.s, list(sol.indices)
            ti = d.time_index
            cols = np.array([obs_index[o] for o in d.rows["observable"]], dtype=int)
            obs = obj.runner.observe(sol)
            # d(observable)/dθ = ∂h/∂y·S + ∂h/∂θ at each output time, once per time (many
            # rows share one); ∂h/∂y once for all times where it depends on p only, and
            # ∂h/∂θ only where a fitted parameter enters the observables.
            slopes = self._slopes
            times = np.unique(ti)
            dobs = np.zeros((len(d.times), obs.shape[1], len(own)))
            if slopes.dy_constant:
                dhdy = np.asarray(slopes.dh_dy(d.times[0], list(Y[0]), p), dtype=float)
                dobs[times] = np.einsum("oy,tyk->tok", dhdy, S[times])
            else:
                for k_t in times:
                    dobs[k_t] = np.asarray(slopes.dh_dy(d.times[k_t], list(Y[k_t]), p), dtype=float) @ S[k_t]
            if slopes.p_columns.intersection(indices):
                for k_t in times:
                    dobs[k_t] += np.asarray(slopes.dh_dp(d.times[k_t], list(Y[k_t]), p), dtype=float)[:, indices]
            dpred = dobs[ti, cols]
            pred = obs[ti, cols]
            for j, k in enumerate(own):  # ∂θ/∂x
                if obj.specs[k].log:
                    dpred[:, j] *= obj.specs[k].to_natural(x[k])
            block = np.zeros((len(d.rows), len(obj.specs)))
            block[:, own] = self._dresidual_dpred(d, pred)[:, None] * dpred
            blocks.append(block)
        return obj.with_prior_rows(np.vstack(blocks))

    def _dresidual_dpred(self, d: FitData, pred: np.ndarray) -> np.ndarray:
        obj = self.objective
        h = np.maximum(np.abs(pred) * 1e-7, 1e-14)
        # The residual is a scalar function of each prediction, so a one-dimensional
        # central difference per row is exact to O(h²) and needs no new simulation.
        return (obj.residual_from(d, pred + h) - obj.residual_from(d, pred - h)) / (2 * h)
