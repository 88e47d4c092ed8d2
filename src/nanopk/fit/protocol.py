"""The ``Objective`` protocol: what :func:`nanopk.fit` needs from the thing it minimises.

:func:`nanopk.fit` builds an :class:`nanopk.fit.objective.Objective` from a model and
data, or takes a prebuilt one (``fit(objective=obj)``); :class:`nanopk.fit.joint.JointObjective`
stacks several into one.  Whatever is passed is minimised by the same optimiser
(:mod:`nanopk.fit._optimize`), gets the same covariance, identifiability flags and
status (:mod:`nanopk.fit.uncertainty`, :mod:`nanopk.fit.result`) and the same
:class:`~nanopk.fit.FitResult`.  This module writes the interface down, as scipy
documents what an ``OdeSolver`` subclass must provide; it is the list of what
``fit/core.py``, ``fit/_optimize.py``, ``fit/uncertainty.py`` and ``fit/result.py``
use, and nothing else of an objective is read by them.

The optimised vector
--------------------
``x`` (length ``k``) is on the optimiser's *internal* scale: ``ln θ`` for a
parameter fitted on the log scale, ``θ`` otherwise.

``specs`` : list of :class:`~nanopk.fit.parameters.FitParameter`
    One per entry of ``x``: ``name`` (unique, the name in the result),
    ``model_name`` (the model parameter it sets), ``dataset`` (``None`` when it acts
    on every dataset), ``log`` (the log flag), ``start``, ``lower``/``upper``
    (natural scale), ``xmin``/``xmax``/``x0`` (internal scale), ``unit``, ``source``,
    ``to_natural(x_j)``.
``names`` : list of str
    ``[s.name for s in specs]``.
``x0``, ``xmin``, ``xmax`` : ndarray (k,)
    Start and bounds on the internal scale.

Residuals: the data / prior split
---------------------------------
``residual(x) -> ndarray (n_residuals,)``
    The weighted residuals: first the ``n_data`` data rows (one per observation,
    in the order of ``datasets`` and their rows), then the ``n_priors`` prior rows.
    ``Σ r²`` is −2 ln(likelihood × prior) + const for the linear loss.  Must not
    raise on a solver failure: it returns large finite residuals (and counts the
    failure) so the optimiser backs off.  Called from several threads at once by the
    finite-difference Jacobian.
``cached_residual(x)``
    ``residual(x)``, reusing the last evaluation when it was at exactly ``x``.
``lmfit_residual(params)``
    ``residual`` of an :class:`lmfit.Parameters` holding ``x`` under ``names``.
``split(r) -> (r_data, r_prior)``
    The two parts of a residual vector.  Goodness of fit (χ², R², AIC) uses
    ``r_data`` only; the covariance's ``scale_covar`` scales the data rows only.
``n_data``, ``n_priors``, ``n_residuals`` : int
    ``n_residuals == n_data + n_priors``.
``priors`` : dict
    ``{name in names: (median or mean, sd)}`` of every parameter with a prior (an
    infinite sd is flat and has no row).
``prior_index`` : ndarray of int (n_priors,)
    Index into ``x`` of each prior row.
``prior_jacobian() -> ndarray (n_priors, k)`` and ``with_prior_rows(J_data)``
    The constant Jacobian of the prior rows, and a data Jacobian with it appended
    (used with a user Jacobian of the data rows).

Loss
----
``loss`` (str), ``f_scale`` (float), ``loss_value(r)`` (``Σ f²·ρ((r/f)²)``, what is
minimised), ``loss_weights(r)`` (IRLS weights ``ρ'``, for the covariance).

Predictions and data
--------------------
``datasets`` : list of :class:`~nanopk.fit.FitData`
    Every dataset, with distinct ``name``; each has ``rows`` (the fitted rows, a
    ``sigma`` column set by the objective), ``source``, ``dose_ug``, ``excluded``,
    ``fixed``, ``meta``, ``weighting``, ``dose_note``.
``predict(x) -> list of ndarray``
    The predicted value of every row, one array per dataset (in ``datasets`` order).
``residual_from(d, pred) -> ndarray``
    The data residuals of dataset ``d`` given its predictions.
``overrides(x, d) -> dict``
    Model parameter values that dataset ``d`` is simulated with at ``x``.
``model``
    The model of the result's name and report; ``model_of(d)`` the model that
    simulates dataset ``d`` (the same model, except in a joint objective whose parts
    use different models, e.g. one per particle).
``rtol``, ``atol``, ``backend``
    Solver settings, reused by ``FitResult.simulate``.
``error_model``, ``weighting``, ``error_params``
    Recorded in the result's options (a :class:`~nanopk.fit.joint.JointObjective`
    whose parts differ gives ``{dataset: value}``).

Counters
--------
``n_calls`` (residual evaluations), ``n_simulations``, ``n_solver_failures``,
``last_solver_error`` (str or None).

Not part of the protocol: ``jacobian="sensitivity"`` needs the concrete
:class:`~nanopk.fit.objective.Objective` (it reads the compiled model of one
objective); any other objective is fitted with finite differences or a callable
``jac(objective, x)``.
"""
from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np

from ..errors import FitError

__all__ = ["Objective", "REQUIRED", "check_objective"]

#: Every attribute and method an objective must provide (see the module docstring).
REQUIRED = (
    "specs", "names", "x0", "xmin", "xmax",
    "residual", "cached_residual", "lmfit_residual", "split", "n_data", "n_priors", "n_residuals",
    "priors", "prior_index", "prior_jacobian", "with_prior_rows",
    "loss", "f_scale", "loss_value", "loss_weights",
    "datasets", "predict", "residual_from", "overrides", "model", "model_of", "rtol", "atol", "backend",
    "error_model", "weighting", "error_params",
    "n_calls", "n_simulations", "n_solver_failures", "last_solver_error",
)


@runtime_checkable
class Objective(Protocol):
    """What ``nanopk.fit(objective=...)`` minimises; see the module docstring for each member."""

    specs: list
    names: list[str]
    n_data: int
    n_priors: int
    n_residuals: int
    priors: dict
    loss: str
    f_scale: float
    datasets: list
    model: Any
    rtol: float
    atol: float
    backend: str
    n_calls: int
    n_simulations: int
    n_solver_failures: int
    last_solver_error: str | None

    @property
    def x0(self) -> np.ndarray: ...

    @property
    def xmin(self) -> np.ndarray: ...

    @property
    def xmax(self) -> np.ndarray: ...

    @property
    def prior_index(self) -> np.ndarray: ...

    def residual(self, x) -> np.ndarray: ...

    def cached_residual(self, x) -> np.ndarray: ...

    def lmfit_residual(self, params) -> np.ndarray: ...

    def split(self, r) -> tuple[np.ndarray, np.ndarray]: ...

    def prior_jacobian(self) -> np.ndarray: ...

    def with_prior_rows(self, J) -> np.ndarray: ...

    def loss_value(self, r) -> float: ...

    def loss_weights(self, r) -> np.ndarray: ...

    def predict(self, x) -> list[np.ndarray]: ...

    def residual_from(self, d, pred) -> np.ndarray: ...

    def overrides(self, x, d) -> dict: ...

    def model_of(self, d) -> Any: ...


def check_objective(objective) -> None:
    """Refuse an object that lacks part of the protocol, naming every missing member.

    Raises
    ------
    FitError
        ``objective`` is missing members of :data:`REQUIRED`.
    """
    missing = [name for name in REQUIRED if not hasattr(objective, name)]
    if missing:
        raise FitError(f"`objective` ({type(objective).__name__}) does not provide the Objective protocol: missing "
                       f"{', '.join(missing)}; build one with nanopk.fit.build_objective(...) or "
                       "nanopk.fit.JointObjective(...), or see help(nanopk.fit.protocol)")
    k = len(objective.names)
    if not (len(objective.specs) == k == np.size(objective.x0) == np.size(objective.xmin) == np.size(objective.xmax)):
        raise FitError(f"`objective` is inconsistent: {len(objective.specs)} specs, {k} names, {np.size(objective.x0)} "
                       f"start values and {np.size(objective.xmin)}/{np.size(objective.xmax)} bounds; they must agree")
    if objective.n_residuals != objective.n_data + objective.n_priors:
        raise FitError(f"`objective` is inconsistent: n_residuals {objective.n_residuals} != n_data {objective.n_data} "
                       f"+ n_priors {objective.n_priors}")


class DerivedMembers:
    """Members an objective derives from its own: one implementation for every objective.

    Mixed into :class:`nanopk.fit.objective.Objective` and
    :class:`nanopk.fit.joint.JointObjective`.  ``specs`` is their list of
    :class:`~nanopk.fit.parameters.FitParameter` (optimiser scale, bounds, start),
    ``names`` the lmfit names, ``residual`` the residual vector, and ``_last`` the last
    ``(x, r)`` that ``residual`` stored.
    """

    specs: list

    @property
    def x0(self) -> np.ndarray:
        return np.array([s.x0 for s in self.specs])

    @property
    def xmin(self) -> np.ndarray:
        return np.array([s.xmin for s in self.specs])

    @property
    def xmax(self) -> np.ndarray:
        return np.array([s.xmax for s in self.specs])

    def natural(self, x) -> dict[str, float]:
        """``{lmfit name: natural-scale value}`` at the optimiser's ``x``."""
        return {s.name: s.to_natural(v) for s, v in zip(self.specs, x)}

    def cached_residual(self, x) -> np.ndarray:
        """The residuals at ``x``, reusing the last evaluation when it was at exactly ``x``.

        The optimiser evaluates the residuals at a new point before it asks for the
        Jacobian there, so a forward difference needs no extra simulation for ``r(x)``.
        """
        last = self._last
        if last is not None and np.array_equal(last[0], x):
            return last[1].copy()
        return self.residual(x)

    def lmfit_residual(self, params) -> np.ndarray:
        """``fcn`` for :class:`lmfit.Minimizer` (parameters hold ``x``)."""
        return self.residual([params[n].value for n in self.names])
