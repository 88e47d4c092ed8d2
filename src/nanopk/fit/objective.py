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

Parameters are optimised on the log scale (``x = ln θ``) whenever their lower bound
is ≥ 0 and their start value is positive; otherwise on the natural scale.  A lower
bound of 0 becomes ``start × 1e-6`` on the log scale (six decades below the start; a
log-parameter cannot reach 0, and one that runs to this floor is flagged as at a
bound, i.e. indistinguishable from zero); an infinite upper bound becomes
``start × 1e6``.

Robust losses.  ``loss`` (``"linear"``, default; ``"soft_l1"``, ``"huber"``,
``"cauchy"``, ``"arctan"``) and ``f_scale`` are scipy's: the fit minimises
``Σ f²·ρ((r_i/f)²)``, which grows like ``Σ r_i²`` for small residuals and more slowly
beyond ``f`` (in σ units; with σ = 1 on the log scale, ``f_scale = 0.5`` starts
down-weighting misfits beyond a factor e^0.5 ≈ 1.65).  Use one when some observations
cannot be fitted by any mass-conserving model (organ totals above 100 %ID), so that
they do not drag every other prediction.  Intervals then use the iteratively
reweighted approximation (see :mod:`nanopk.fit.uncertainty`).

Jacobians.  ``jacobian="fd"`` lets the optimiser difference the residuals with a
relative step ``diff_step`` (default 1e-4, well above the solver noise at
``rtol=1e-8``).  ``jacobian="sensitivity"`` uses forward parameter sensitivities from
the backend (``compiled.solve_sensitivities``; see :class:`SensitivityJacobian`) and
the chain rule through the observables, the residual model and the log transform;
the residuals then come from the same solve (one solve per evaluated point, where a
plain solve for the residuals and a sensitivity solve for the Jacobian did the states
twice).
Any callable ``jac(objective, x) -> ndarray (n_residuals, n_varied)`` may be given
instead.

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
from dataclasses import dataclass

import numpy as np
from scipy.special import log_ndtr

from ..errors import FitError, SolverError, suggest
from ..run import Runner, observation_derivatives
from ._data import FitData
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
_ZERO_FLOOR_DECADES = 6.0

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


@dataclass
class FitParameter:
    """One optimised quantity.

    ``name`` is the lmfit name (``Kmax_liver`` or, per dataset,
    ``Kmax_liver__<dataset>``); ``model_name`` the model parameter it sets;
    ``dataset`` ``None`` when shared by every dataset.  ``lower``/``upper`` are
    natural-scale bounds, ``xmin``/``xmax`` the optimiser's (log when ``log``).
    """

    name: str
    model_name: str
    dataset: str | None
    log: bool
    start: float
    lower: float
    upper: float
    unit: str
    source: str

    @property
    def xmin(self) -> float:
        return math.log(self.lower) if self.log else self.lower

    @property
    def xmax(self) -> float:
        return math.log(self.upper) if self.log else self.upper

    @property
    def x0(self) -> float:
        return math.log(self.start) if self.log else self.start

    def to_natural(self, x: float) -> float:
        return math.exp(x) if self.log else float(x)

    def to_internal(self, value: float) -> float:
        if self.log:
            if not value > 0:
                raise FitError(f"parameter {self.name!r} is fitted on the log scale and needs a positive value (got {value!r})")
            return math.log(value)
        return float(value)


#: What ``vary=None`` fits, per measured organ (when the model has the parameter):
#: the phagocytic uptake that dominates nanoparticle biodistribution, and for a
#: tumour the four parameters identifiable from a few tumour time points.
DEFAULT_VARY = {
    "liver": ("Kmax_liver", "K50_liver"),
    "spleen": ("Kmax_spleen", "K50_spleen"),
    "kidney": ("Kmax_kidney",),
    "lung": ("Kmax_lung",),
    "tumour": ("PATC_tumour", "P_tumour", "Kmax_tumour", "Krelease_tumour"),
}


def default_vary(model, datasets: list[FitData]) -> list[str]:
    """Parameters fitted when ``vary`` is not given (see :data:`DEFAULT_VARY`)."""
    observed = {o for d in datasets for o in d.rows["observable"]}
    names = [n for organ, group in DEFAULT_VARY.items() if organ in observed for n in group if n in model.parameters]
    if not names:
        raise FitError(f"`vary` was not given and none of the default parameters ({', '.join(n for g in DEFAULT_VARY.values() for n in g)}) "
                       f"is in model {model.name!r} for the measured tissues; name the parameters to fit, e.g. vary=['Kmax_liver']")
    return names


def build_parameters(model, datasets: list[FitData], vary, shared, start, bounds) -> list[FitParameter]:
    """The optimised parameters: shared ones first, then per-dataset copies."""
    if vary is None:
        vary = default_vary(model, datasets)
    vary = [vary] if isinstance(vary, str) else list(vary)
    if not vary:
        raise FitError("`vary` is empty; name the model parameters to fit, e.g. vary=['Kmax_liver', 'Kmax_spleen']")
    known = model.parameters
    unknown = [v for v in vary if v not in known]
    if unknown:
        raise FitError("cannot vary unknown parameter(s): " + "; ".join(f"{u!r}{suggest(u, known)}" for u in unknown))
    dup = sorted({v for v in vary if vary.count(v) > 1})
    if dup:
        raise FitError(f"`vary` names {', '.join(map(repr, dup))} more than once")
    builtin = [v for v in vary if v in ("dose", "infusion_rate")]
    if builtin:
        raise FitError(f"{', '.join(map(repr, builtin))} is set by each dataset's dosing and cannot be fitted")
    if shared is None:
        shared_set = set(vary)
    else:
        shared = [shared] if isinstance(shared, str) else list(shared)
        stray = [s for s in shared if s not in vary]
        if stray:
            raise FitError(f"`shared` names {', '.join(map(repr, stray))}, which {'is' if len(stray) == 1 else 'are'} not in `vary`{suggest(stray[0], vary)}")
        shared_set = set(shared)
    if len(datasets) == 1:
        shared_set = set(vary)
    start = dict(start or {})
    bounds = dict(bounds or {})
    specs: list[FitParameter] = []
    for name in vary:
        copies = [(name, None)] if name in shared_set else [(f"{name}__{d.name}", d.name) for d in datasets]
        for pname, ds in copies:
            specs.append(_spec(known[name], pname, ds, start, bounds))
    names = {s.name for s in specs}
    stray = [k for k in list(start) + list(bounds) if k not in names and k not in vary]
    if stray:
        raise FitError("`start`/`bounds` name(s) not fitted: " + "; ".join(f"{s!r}{suggest(s, names)}" for s in stray))
    return specs


def _spec(param, pname: str, dataset, start: dict, bounds: dict) -> FitParameter:
    given = pname in start or param.name in start
    value = float(start.get(pname, start.get(param.name, param.value)))
    lo, hi = bounds.get(pname, bounds.get(param.name, param.bounds))
    lo, hi = float(lo), float(hi)
    if not given and hi > lo and not (lo <= value <= hi):
        # The model default lies outside bounds the user narrowed: start in the middle
        # (geometric for positive bounds).
        value = math.sqrt(lo * hi) if lo > 0 and math.isfinite(hi) else (lo + hi) / 2 if math.isfinite(hi) else lo
    if not (math.isfinite(value) and lo <= value <= hi):
        raise FitError(f"start value of {pname!r} must be finite and inside its bounds [{lo:g}, {hi:g}] (got {value!r})")
    log = lo >= 0 and value > 0
    if log:
        if lo <= 0:
            lo = value * 10 ** -_ZERO_FLOOR_DECADES
        if not math.isfinite(hi):
            hi = value * 10 ** _ZERO_FLOOR_DECADES
    elif not (math.isfinite(lo) and math.isfinite(hi)):
        if value == 0 and lo >= 0:
            raise FitError(f"cannot fit {pname!r} from a start value of 0 with bounds [{lo:g}, {hi:g}]: give a positive start, e.g. start={{{pname!r}: 1e-3}}")
    if not hi > lo:
        raise FitError(f"bounds of {pname!r} are empty: [{lo:g}, {hi:g}]")
    return FitParameter(pname, param.name, dataset, log, value, lo, hi, param.unit, param.source)


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
        self._obs_index = {n: i for i, n in enumerate(model.observables)}
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
        self.priors, self._prior_index, self._prior_center, self._prior_sd = _resolve_priors(priors, self.specs)
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


def _resolve_priors(priors, specs) -> tuple[dict, np.ndarray, np.ndarray, np.ndarray]:
    """Validate ``priors`` against the fitted parameters; one row per prior'd copy.

    Returns ``({fitted name: (median, sd)}, spec indices, centres x̃, sds)``.  Every
    unknown name and every invalid value is collected before one FitError is raised.
    """
    empty = ({}, np.zeros(0, dtype=int), np.zeros(0), np.zeros(0))
    if priors is None:
        return empty
    if not isinstance(priors, dict):
        raise FitError(f"`priors` must be a dict {{name: (median, sd)}} (got {type(priors).__name__})")
    fitted = [s.name for s in specs]
    model_names = list(dict.fromkeys(s.model_name for s in specs))
    known = set(fitted) | set(model_names)
    unknown = [k for k in priors if k not in known]
    if unknown:
        raise FitError("`priors` name(s) not fitted: " + "; ".join(f"{u!r}{suggest(str(u), sorted(known))}" for u in unknown)
                       + f"; varied parameters: {', '.join(model_names)}")
    problems = []
    for name, value in priors.items():
        try:
            median, sd = (float(v) for v in value)
        except (TypeError, ValueError):
            problems.append(f"{name!r} must be a pair (median, sd) of numbers (got {value!r})")
            continue
        log = any(s.log for s in specs if name in (s.name, s.model_name))
        if not (sd > 0):  # also catches NaN
            problems.append(f"{name!r} needs sd > 0 (got {sd!r})")
        if log and not (median > 0 and math.isfinite(median)):
            problems.append(f"{name!r} is fitted on the log scale, so its prior median must be positive and finite "
                            f"(got {median!r})")
        elif not math.isfinite(median):
            problems.append(f"{name!r} needs a finite prior mean (got {median!r})")
    if problems:
        raise FitError("invalid prior(s): " + "; ".join(problems))
    resolved, index, center, sd = {}, [], [], []
    for k, s in enumerate(specs):
        if s.name in priors:  # a copy's own prior wins over its model name's
            median, spread = (float(v) for v in priors[s.name])
        elif s.model_name in priors:
            median, spread = (float(v) for v in priors[s.model_name])
        else:
            continue
        resolved[s.name] = (median, spread)
        if math.isinf(spread):
            continue  # flat: contributes nothing
        index.append(k)
        center.append(math.log(median) if s.log else median)
        sd.append(spread)
    return resolved, np.array(index, dtype=int), np.array(center, dtype=float), np.array(sd, dtype=float)


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
