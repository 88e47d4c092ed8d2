"""The weighted residuals a fit minimises, on log-transformed parameters.

For observation *i* (mean ``y_i`` of ``n_i`` animals with standard deviation
``SD_i``) and prediction ``ŷ_i`` (%ID), the residual is

    log (default):  r_i = (ln y_i − ln ŷ_i) / σ_i,   σ_i = sqrt(ln(1 + (s_i / y_i)²))
    additive:       r_i = (y_i − ŷ_i) / σ_i,         σ_i = s_i
    combined:       r_i = (y_i − ŷ_i) / σ_i,         σ_i = sqrt(s_i² + (b · ŷ_i)²)

where ``s_i`` is the uncertainty of the observation.  The data are group means, so by
default (``weighting="se"``) ``s_i`` is the standard error of the mean,
``SD_i/sqrt(n_i)`` — the dataset layer derives it from a per-animal SD and n, or takes
a reported SEM as is — and the SD itself when n is unknown.  ``weighting="sd"`` uses
the per-animal SD (each mean weighted like one animal; SEM·√n when only an SEM is
reported); ``weighting="none"`` ignores the reported spread.  The log-scale σ is the
log-normal SD whose coefficient of variation is ``s_i / y_i`` (moment matching).
Rows without a spread get the median σ of the rows of the same dataset that have
one; when no row has one, σ = 1 on the log scale (the residual is the log error
itself) and ``error_params['add']`` for the additive models.  On the log scale σ
never falls below ``sigma_floor`` (default 0.05, i.e. 5 % CV), so a reported SD of 0
or a suspiciously tight one cannot dominate the fit.  With ``scale_covar`` (the
default) the covariance is rescaled by χ²/(N − k), so only the *relative* weights
matter for the intervals.

In the combined model ``b = error_params['prop']`` (default 0.1) and, without an
SD, ``s_i = error_params['add']`` (default 0.01 %ID).  σ is evaluated at the current
prediction (iteratively reweighted least squares, without the log-determinant term).
On the log scale ``error_params['sigma']`` replaces the σ = 1 of datasets without any
spread; with ``weighting="none"`` every row has it — proportional error of known σ
(then fit with ``scale_covar=False``, so that σ is not re-estimated).

Priors (maximum a posteriori).  A prior ``{name: (m, s)}`` on a parameter fitted on
the log scale is log-normal, ``ln θ ~ N(ln m, s²)``; on a parameter fitted on the
natural scale it is normal, ``θ ~ N(m, s²)``.  Each adds one row after the data
residuals,

    r_prior = (x − x̃) / s,    x̃ = ln m (log scale) or m (natural scale),

so that ``Σ r² = −2 ln p(θ | y) + const``: every optimiser minimises the negative log
posterior, and ``JᵀJ`` is the Gauss–Newton Hessian of the posterior (the Laplace
approximation; :mod:`nanopk.fit.uncertainty`).  The prior rows do not depend on the
model, so their Jacobian is the constant ``1/s`` in the column of their parameter.
A prior on a model name applies to every per-dataset copy (``NAME__<dataset>``), one
row each; a prior on a copy's own name applies to that copy only (and wins).

Censored observations (below the limit of quantification ``L``; Beal's M3 method)
contribute ``-2 ln Φ(z)`` to the objective, as the residual ``sqrt(-2 ln Φ(z))``
with ``z = (ln L − ln ŷ)/σ`` (log scale; ``σ`` from the rule above, or the dataset
median) or ``z = (L − ŷ)/σ`` (additive) — the probability that the measurement fell
below ``L`` given the prediction.

Parameters are optimised on the log scale where their bounds allow
(:mod:`nanopk.fit.parameters`).

Robust losses.  ``loss`` (``"linear"``, default; ``"soft_l1"``, ``"huber"``,
``"cauchy"``, ``"arctan"``) and ``f_scale`` are scipy's: the fit minimises
``Σ f²·ρ((r_i/f)²)``, which grows like ``Σ r_i²`` for small residuals and more slowly
beyond ``f`` (in σ units; with σ = 1 on the log scale, ``f_scale = 0.5`` starts
down-weighting misfits beyond a factor e^0.5 ≈ 1.65).  Use one when some observations
cannot be fitted by any mass-conserving model (organ totals above 100 %ID), so that
they do not drag every other prediction.  Intervals then use the iteratively
reweighted approximation (see :mod:`nanopk.fit.uncertainty`).

Jacobians (finite differences or forward sensitivities) are in :mod:`nanopk.fit.jacobians`;
explicit priors become residual rows through :func:`nanopk.fit.priors.prior_rows`.

References
----------
1. Beal SL. Ways to fit a PK model with some data below the quantification limit.
   J Pharmacokinet Pharmacodyn 2001;28:481 (doi:10.1023/A:1012299115260).
2. Newville M et al. LMFIT: non-linear least-squares minimization and curve-fitting
   for Python (doi:10.5281/zenodo.11813).
"""
from __future__ import annotations

import math
import threading

import numpy as np
from scipy.special import log_ndtr

from ..errors import FitError, SolverError, suggest
from ..run import Runner
from ._data import FitData
# The fit's other pieces live beside this module (parameters, priors, Jacobians); their
# names stay importable from here, where they were first defined.
from .jacobians import ForwardDifferenceJacobian, SensitivityJacobian
from .parameters import DEFAULT_VARY, FitParameter, build_parameters, default_vary
from .priors import prior_rows
from .protocol import DerivedMembers

__all__ = ["FitParameter", "Objective", "ForwardDifferenceJacobian", "SensitivityJacobian", "build_parameters", "default_vary", "DEFAULT_VARY",
           "ERROR_MODELS", "LOSSES", "PRED_FLOOR"]

ERROR_MODELS = ("log", "additive", "combined")
WEIGHTINGS = ("se", "sd", "none")
#: Predictions below this (%ID) are raised to it before taking logs: a solver can
#: return 0 or −1e-15 for an organ the particles have not reached yet.
PRED_FLOOR = 1e-10
#: Residual given to every point when the solver fails at a trial parameter set, so the
#: optimiser backs off (a trust-region step is rejected) instead of stopping.
PENALTY = 1e3

#: Keys of ``error_params``: additive SD (%ID) and proportional CV of the combined model,
#: and the log-scale σ of rows without a reported spread.
ERROR_PARAMS = ("add", "prop", "sigma")

#: Robust losses of scipy.optimize.least_squares: ρ(z) and ρ'(z) of z = (r/f)².
LOSSES = {
    "linear": (lambda z: z, lambda z: np.ones_like(z)),
    "soft_l1": (lambda z: 2 * (np.sqrt(1 + z) - 1), lambda z: 1 / np.sqrt(1 + z)),
    "huber": (lambda z: np.where(z <= 1, z, 2 * np.sqrt(z) - 1), lambda z: np.where(z <= 1, 1.0, 1 / np.sqrt(np.maximum(z, 1)))),
    "cauchy": (lambda z: np.log1p(z), lambda z: 1 / (1 + z)),
    "arctan": (lambda z: np.arctan(z), lambda z: 1 / (1 + z ** 2)),
}


class Objective(DerivedMembers):
    """Residuals of every dataset as a function of the optimised vector ``x``.

    The concrete implementation of the protocol in :mod:`nanopk.fit.protocol`
    (one model, any number of datasets); :func:`nanopk.fit.build_objective` builds
    one as :func:`nanopk.fit` would.

    Parameters
    ----------
    model : nanopk.Model
    datasets : list of FitData
    specs : list of FitParameter
    error_model : {"log", "additive", "combined"}
    weighting : {"se", "sd", "none"}
    error_params : dict
        ``add`` (%ID) and ``prop`` (fraction) for the combined model.
    sigma_floor : float
        Smallest σ on the log scale.
    backend, rtol, atol, max_steps :
        Passed to the run kernel (:class:`nanopk.run.Runner`).
    loss, f_scale :
        Robust loss and its residual scale (see the module docstring).
    priors : dict, optional
        ``{name: (median, sd)}`` (see the module docstring); ``name`` is a varied
        model parameter or a per-dataset copy.  ``sd = inf`` is a flat prior (no row).

    Attributes
    ----------
    n_data : int
        Data residuals (one per fitted observation).
    n_priors : int
        Prior rows, after the data residuals.
    n_residuals : int
        ``n_data + n_priors``.
    priors : dict
        ``{fitted name: (median, sd)}`` of every parameter with a prior.
    n_calls : int
        Residual evaluations (each simulates every dataset once).
    n_simulations : int
        Solves run (plain or with sensitivities).
    n_solver_failures : int
    runner : nanopk.run.Runner
        The run kernel of the model (built on first use).
    """

    def __init__(self, model, datasets, specs, error_model="log", weighting="se", error_params=None, sigma_floor=0.05,
                 backend="auto", rtol=1e-8, atol=1e-12, max_steps=200_000, loss="linear", f_scale=1.0, priors=None):
        if loss not in LOSSES:
            raise FitError(f"unknown loss {loss!r}{suggest(str(loss), LOSSES)}; valid: {', '.join(LOSSES)}")
        if not (isinstance(f_scale, (int, float)) and f_scale > 0):
            raise FitError(f"`f_scale` must be a positive residual scale (got {f_scale!r})")
        self.loss, self.f_scale = loss, float(f_scale)
        if error_model not in ERROR_MODELS:
            raise FitError(f"unknown error_model {error_model!r}{suggest(str(error_model), ERROR_MODELS)}; valid: {', '.join(ERROR_MODELS)}")
        if weighting not in WEIGHTINGS:
            raise FitError(f"unknown weighting {weighting!r}; valid: {', '.join(WEIGHTINGS)}")
        self.model = model
        self.datasets = list(datasets)
        self.specs = list(specs)
        self.names = [s.name for s in self.specs]
        self.error_model = error_model
        self.weighting = weighting
        self.error_params = {"add": 0.01, "prop": 0.1, **_check_error_params(error_params)}
        self.sigma_floor = float(sigma_floor)
        self.backend = backend
        self.rtol, self.atol, self.max_steps = float(rtol), float(atol), int(max_steps)
        self.n_calls = 0
        self.n_simulations = 0
        self.n_solver_failures = 0
        self.last_solver_error: str | None = None
        # Finite-difference Jacobians evaluate residuals from several threads at once.
        self._lock = threading.Lock()
        self._last: tuple[np.ndarray, np.ndarray] | None = None
        self._runner: Runner | None = None
        # Per dataset: the fitted parameters it sees (indices into specs) and their indices
        # in the model's parameter vector, the columns of its sensitivities.
        index = {n: i for i, n in enumerate(model.parameter_names)}
        self._own = {d.name: [k for k, s in enumerate(self.specs) if s.dataset in (None, d.name)] for d in self.datasets}
        self._sensitivity_indices = {name: [index[self.specs[k].model_name] for k in own] for name, own in self._own.items()}
        #: True once a SensitivityJacobian is attached: every residual then solves with
        #: sensitivities, and the Jacobian at the same x reuses that solve.
        self.sensitive = False
        self._solutions: dict = {}  # dataset name -> (x as bytes, Solution) of its last sensitivity solve
        self._obs_index = {n: i for i, n in enumerate(model.observable_names)}
        self._arrays = {}
        for d in self.datasets:
            d.rows["sigma"] = self._base_sigma(d)
            # Plain arrays, so an evaluation touches no pandas machinery.
            self._arrays[d.name] = {
                "y": d.rows["observed"].to_numpy(dtype=float),
                "sigma": d.rows["sigma"].to_numpy(dtype=float),
                "censored": d.rows["censored"].to_numpy(dtype=bool),
                "lloq": d.rows["lloq"].to_numpy(dtype=float),
                "cols": np.array([self._obs_index[o] for o in d.rows["observable"]], dtype=int),
                "ti": d.time_index,
            }
            a = self._arrays[d.name]
            with np.errstate(divide="ignore", invalid="ignore"):
                a["log_y"] = np.log(a["y"])
                a["log_lloq"] = np.log(a["lloq"])
        self.n_data = sum(len(d.rows) for d in self.datasets)
        self.priors, self._prior_index, self._prior_center, self._prior_sd = prior_rows(priors, self.specs)
        if self.priors and self.loss != "linear":
            # scipy applies the loss to every residual: it would turn the Gaussian prior
            # rows into a heavy-tailed prior nobody asked for.
            raise FitError(f"priors need loss='linear' (got loss={self.loss!r}): a robust loss would also "
                           "down-weight the prior rows")
        self.n_priors = len(self._prior_index)
        self.n_residuals = self.n_data + self.n_priors

    # ------------------------------------------------------------------ setup
    def _base_sigma(self, d: FitData) -> np.ndarray:
        """σ of each row (log units, or %ID for additive/combined), before the floor."""
        y = d.rows["observed"].to_numpy(dtype=float)
        sd, se = d.rows["sd"].to_numpy(dtype=float), d.rows["se"].to_numpy(dtype=float)
        if self.weighting == "none":
            s = np.full(len(y), np.nan)
        elif self.weighting == "se":
            s = np.where(np.isfinite(se), se, sd)
        else:
            s = np.where(np.isfinite(sd), sd, se)
        s = np.where(np.isfinite(s) & (s >= 0), s, np.nan)
        cens = d.rows["censored"].to_numpy(dtype=bool)
        if self.error_model == "log":
            ref = np.where(cens, d.rows["lloq"].to_numpy(dtype=float), y)
            with np.errstate(divide="ignore", invalid="ignore"):
                sigma = np.sqrt(np.log1p((s / ref) ** 2))
            sigma[cens & ~(np.isfinite(sigma))] = np.nan
            sigma = np.maximum(sigma, self.sigma_floor)  # NaN stays NaN
            # An explicit σ is the user's statement of the error and is not floored.
            fill = np.nanmedian(sigma) if np.any(np.isfinite(sigma)) else self.error_params.get("sigma", 1.0)
            return np.where(np.isfinite(sigma), sigma, fill)
        fill = np.nanmedian(s) if np.any(np.isfinite(s)) else self.error_params["add"]
        s = np.where(np.isfinite(s), s, fill)
        return np.maximum(s, 1e-12)

    # ------------------------------------------------------------------ mapping
    def overrides(self, x, d: FitData) -> dict[str, float]:
        """Model parameter values for dataset ``d`` at ``x`` (fixed per-dataset values first)."""
        out = dict(d.fixed)
        for s, v in zip(self.specs, x):
            if s.dataset is None or s.dataset == d.name:
                out[s.model_name] = s.to_natural(v)
        return out

    # ------------------------------------------------------------------ evaluation
    @property
    def runner(self) -> Runner:
        """The run kernel of the model (validated and compiled on first use)."""
        if self._runner is None:
            self._runner = Runner(self.model, self.backend)
        return self._runner

    def use_sensitivities(self) -> None:
        """Solve every residual evaluation with forward sensitivities from now on.

        The optimiser asks for the Jacobian at the point whose residuals it has just
        evaluated; with sensitivities integrated in that same solve
        (:meth:`solution`), the Jacobian needs no solve of its own, where a plain solve
        for the residuals and a sensitivity solve for the Jacobian did the states twice.
        """
        self.sensitive = True

    def sensitivity_columns(self, d: FitData) -> list[int]:
        """Indices into ``x`` (and ``specs``) of the fitted parameters dataset ``d`` sees."""
        return list(self._own[d.name])

    def solution(self, x, d: FitData):
        """States and sensitivities (:class:`nanopk.run.Solution`) of dataset ``d`` at ``x``.

        The last one per dataset is kept, keyed by ``x`` exactly, so the residuals and
        the Jacobian at one point share one solve.

        Raises
        ------
        SolverError
            If the solve fails (the message names the mechanism and parameters).
        """
        x = np.asarray(x, dtype=float)
        key = x.tobytes()
        last = self._solutions.get(d.name)
        if last is not None and last[0] == key:
            return last[1]
        runner = self.runner
        sol = runner.run(d.times, runner.parameters(self.overrides(x, d)), d.dose_ug, self.rtol, self.atol,
                         self.max_steps, sensitivities=self._sensitivity_indices[d.name])
        with self._lock:
            self.n_simulations += 1
            self._solutions[d.name] = (key, sol)
        return sol

    def simulate(self, x, d: FitData, times=None):
        """Observables (len(times) × n_observables, %ID) of dataset ``d`` at ``x``."""
        runner = self.runner
        if times is None and self.sensitive:
            return runner.observe(self.solution(x, d))
        times = d.times if times is None else times
        sol = runner.run(times, runner.parameters(self.overrides(x, d)), d.dose_ug, self.rtol, self.atol, self.max_steps)
        with self._lock:
            self.n_simulations += 1
        return runner.observe(sol)

    def predict(self, x) -> list[np.ndarray]:
        """Predicted %ID for every row of every dataset."""
        out = []
        for d in self.datasets:
            obs = self.simulate(x, d)
            a = self._arrays[d.name]
            out.append(obs[a["ti"], a["cols"]])
        return out

    def residual_from(self, d: FitData, pred: np.ndarray) -> np.ndarray:
        """Weighted residuals of dataset ``d`` given its predictions."""
        a = self._arrays[d.name]
        y, sigma, cens, lloq = a["y"], a["sigma"], a["censored"], a["lloq"]
        if self.error_model == "log":
            lp = np.log(np.maximum(pred, PRED_FLOOR))
            r = (a["log_y"] - lp) / sigma
            if cens.any():
                z = (a["log_lloq"][cens] - lp[cens]) / sigma[cens]
                r[cens] = np.sqrt(-2.0 * log_ndtr(z))
            return r
        if self.error_model == "combined":
            sigma = np.sqrt(sigma ** 2 + (self.error_params["prop"] * pred) ** 2)
        r = (y - pred) / sigma
        if cens.any():
            z = (lloq[cens] - pred[cens]) / sigma[cens]
            r[cens] = np.sqrt(-2.0 * log_ndtr(z))
        return r

    @property
    def prior_index(self) -> np.ndarray:
        """Index into ``x`` of each prior row (see :mod:`nanopk.fit.protocol`)."""
        return self._prior_index.copy()

    def model_of(self, d: FitData):
        """The model that simulates dataset ``d``: this objective's one model."""
        return self.model

    def prior_residual(self, x) -> np.ndarray:
        """The prior rows ``(x_k − x̃_k)/s_k`` at ``x`` (empty without priors)."""
        x = np.asarray(x, dtype=float)
        return (x[self._prior_index] - self._prior_center) / self._prior_sd

    def prior_jacobian(self) -> np.ndarray:
        """∂(prior rows)/∂x, ``(n_priors, n_varied)``: ``1/s`` in the column of each prior's parameter."""
        P = np.zeros((self.n_priors, len(self.specs)))
        P[np.arange(self.n_priors), self._prior_index] = 1.0 / self._prior_sd
        return P

    def with_prior_rows(self, J) -> np.ndarray:
        """A data Jacobian ``(n_data, n_varied)`` with the prior rows appended."""
        J = np.asarray(J, dtype=float)
        if self.n_priors and J.shape[0] == self.n_data:
            return np.vstack([J, self.prior_jacobian()])
        return J

    def split(self, r) -> tuple[np.ndarray, np.ndarray]:
        """``(data residuals, prior rows)`` of a full residual vector."""
        r = np.asarray(r, dtype=float)
        return r[: self.n_data], r[self.n_data:]

    def residual(self, x) -> np.ndarray:
        """The residual vector at ``x``: datasets concatenated in order, then the prior rows."""
        x = np.array(x, dtype=float)
        with self._lock:
            self.n_calls += 1
        prior = self.prior_residual(x)
        try:
            preds = self.predict(x)
        except SolverError as exc:
            with self._lock:
                self.n_solver_failures += 1
                self.last_solver_error = str(exc)
            # The prior rows stay exact: they need no simulation.
            return np.concatenate([np.full(self.n_data, PENALTY), prior])
        r = np.concatenate([self.residual_from(d, p) for d, p in zip(self.datasets, preds)])
        if not np.all(np.isfinite(r)):
            with self._lock:
                self.n_solver_failures += 1
                self.last_solver_error = "non-finite residuals"
            r = np.where(np.isfinite(r), r, PENALTY)
        r = np.concatenate([r, prior])
        self._last = (x, r)
        return r

    def chisqr(self, x) -> float:
        r = self.residual(x)
        return float(r @ r)

    def loss_value(self, r) -> float:
        """``Σ f²·ρ((r/f)²)``: twice scipy's cost; ``χ² = Σ r²`` for the linear loss."""
        r = np.asarray(r, dtype=float)
        if self.loss == "linear":
            return float(r @ r)
        rho, _ = LOSSES[self.loss]
        return float(self.f_scale ** 2 * np.sum(rho((r / self.f_scale) ** 2)))

    def loss_weights(self, r) -> np.ndarray:
        """IRLS weights ``ρ'((r/f)²)`` of each residual (1 for the linear loss)."""
        _, drho = LOSSES[self.loss]
        return np.asarray(drho((np.asarray(r, dtype=float) / self.f_scale) ** 2), dtype=float)


def _check_error_params(error_params) -> dict:
    """``error_params`` as a dict of positive numbers with known keys (all problems at once)."""
    if error_params is None:
        return {}
    if not isinstance(error_params, dict):
        raise FitError(f"`error_params` must be a dict with keys among {', '.join(ERROR_PARAMS)} (got {error_params!r})")
    problems = []
    for key, value in error_params.items():
        if key not in ERROR_PARAMS:
            problems.append(f"unknown key {key!r}{suggest(str(key), ERROR_PARAMS)}")
        elif not (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0):
            problems.append(f"{key!r} must be a positive number (got {value!r})")
    if problems:
        raise FitError(f"`error_params`: {'; '.join(problems)}; valid keys: {', '.join(ERROR_PARAMS)}")
    return {k: float(v) for k, v in error_params.items()}
