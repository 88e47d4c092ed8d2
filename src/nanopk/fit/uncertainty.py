"""Parameter uncertainty: covariance, profile likelihood and MCMC.

Covariance.  At the optimum x̂ (log parameters), with the residual Jacobian J
(central differences, step 1e-4·max(1, |x|), or the plugged-in Jacobian)

    C_x = (JᵀJ)⁻¹ · s²,    s² = χ²/(N − k) when ``scale_covar`` (lmfit's default), else 1,

computed by SVD.  With a robust loss the rows of J and r are weighted by
``sqrt(ρ'((r_i/f)²))`` first (the iteratively reweighted least-squares
approximation).  Standard errors on the log scale are ``SE_x = sqrt(diag C_x)``; on
the natural scale by the delta method ``SE_θ = θ·SE_x``, and the 95 % interval is
``exp(x̂ ± 1.96·SE_x)`` — asymmetric, always positive.  Correlations are those of C_x
(the delta method with a diagonal Jacobian leaves them unchanged).

Priors.  With prior rows (:mod:`nanopk.fit.objective`) the same formula is the
Laplace approximation of the posterior: ``JᵀJ = J_dᵀJ_d + J_pᵀJ_p`` is the
Gauss–Newton Hessian of ``−½·(−2 ln p(x | y))`` at the MAP estimate.  ``scale_covar``
rescales the data rows only — the data's σ is re-estimated, the prior's spread is a
statement, not an estimate:

    C_x = (J_dᵀJ_d / s² + J_pᵀJ_p)⁻¹,    s² = χ²_data/(N_data − k) (or 1),

and when ``N_data ≤ k`` (possible only with priors) ``s² = 1``.  Without priors this
is the formula above.

The covariance is *singular* when JᵀJ is numerically rank deficient
(``σ_min/σ_max < 1e-7`` for the singular values of J; cond(JᵀJ) > 1e14).  One
degenerate direction (a rate drifting to ~0, where ∂r/∂ln θ = θ·∂r/∂θ vanishes) must not
cost every other parameter its interval, so a singular covariance is split (as a
NONMEM user would fix the degenerate parameter): with V₀ the right singular vectors of
the directions below the limit, parameter j is *estimable* when its loading on them,
``‖V₀[j, :]‖``, is below 1e-3 (e_j is then, to that accuracy, in the identifiable
subspace and ``Var x_j = e_jᵀ (JᵀJ)⁺ e_j s²`` exactly, the pseudo-inverse on the
identifiable subspace); it keeps its standard error and interval.  The others get no
interval and the reason, and are listed as unidentifiable; ``covar`` stays ``None``
(no joint draws, so delivery intervals are not propagated from a singular fit).

A parameter is *not identifiable* when it is not estimable as above or its 95 %
interval spans more than a factor of 10⁴ (SE_x > ln(10⁴)/3.92 ≈ 2.35); a parameter is
*at a bound* when within 0.1 % of its (log) range of it; a pair is *highly
correlated* when |ρ| > 0.95.

Profile likelihood.  For parameter j, x_j is fixed on a grid and the others
re-optimised; the interval is where ``χ²_p(x_j) − χ²_min ≤ 3.84·s²`` (the 95 %
χ²₁ quantile, scaled like the covariance), found by stepping out from x̂ and
refining each crossing by linear interpolation in ``sqrt(Δχ²)`` (which is linear in
x_j for a quadratic profile) and one more re-optimisation.  With priors χ² is the
minimised objective, data plus prior rows: the profile is that of −2 ln posterior.

MCMC.  lmfit's ``emcee`` method samples the posterior on the log scale with uniform
priors inside the bounds (log-uniform on θ) and the Gaussian likelihood of the
weighted residuals, divided by ``s`` when ``scale_covar`` so the posterior width
matches the covariance.  The likelihood is Gaussian whatever ``loss`` the fit used.
The fit's priors enter as their rows (``ln p = −½ Σ r_prior²``, a normal density on
``x``, i.e. the log-normal on θ with its Jacobian), not divided by ``s``.

References
----------
1. Raue A et al. Structural and practical identifiability analysis of partially
   observed dynamical models by exploiting the profile likelihood. Bioinformatics
   2009;25:1923 (doi:10.1093/bioinformatics/btp358).
2. Foreman-Mackey D et al. emcee: the MCMC hammer. PASP 2013;125:306
   (doi:10.1086/670067).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..errors import FitError
from ..progress import get_logger, progress_bar, progress_enabled
from ._data import FitWarning
from .jacobians import _finite_difference_jacobian
from .objective import Objective

__all__ = ["Covariance", "covariance", "profile", "run_mcmc", "MCMCResult", "sample_parameters",
           "Z95", "CHI2_95", "CORRELATION_LIMIT"]

Z95 = 1.959963984540054
CHI2_95 = 3.841458820694124
CORRELATION_LIMIT = 0.95
RCOND_LIMIT = 1e-7

_LOG = get_logger("fit.uncertainty")
IDENTIFIABILITY_SE = math.log(1e4) / (2 * Z95)
BOUND_TOLERANCE = 1e-3
#: Largest loading ‖V₀[j, :]‖ of a parameter on the near-null directions of a singular J
#: for which it still counts as estimable (see the module docstring).
ESTIMABLE_LOADING = 1e-3


@dataclass
class Covariance:
    """Covariance of the internal (log) parameters and what it says."""

    names: list
    x: np.ndarray
    covar: np.ndarray | None
    stderr: np.ndarray
    correl: np.ndarray | None
    scale: float
    rcond: float
    singular: bool
    jacobian: np.ndarray = field(repr=False, default=None)
    #: ``"ok"``, ``"singular"``, ``"failed"`` (no finite Jacobian) or ``"not attempted"``.
    state: str = "ok"
    #: Why the step is not ``"ok"`` (empty when it is).
    reason: str = ""
    #: ``{name: why it has no interval}`` for the parameters left without one.
    no_ci: dict = field(default_factory=dict)


def residual_scale(objective: Objective, r_data, scale_covar: bool) -> float:
    """s² = χ²_data/(N_data − k) when ``scale_covar`` and N_data > k, else 1."""
    r_data = np.asarray(r_data, dtype=float)
    dof = objective.n_data - len(objective.specs)
    return float(r_data @ r_data) / dof if (scale_covar and dof > 0) else 1.0


def covariance(objective: Objective, x, residual, jac=None, scale_covar: bool = True, step: float = 1e-4,
               pool=None) -> Covariance:
    """Covariance of ``x`` from the residual Jacobian (see the module docstring).

    Without ``jac`` the Jacobian is central differences, run on the thread ``pool``
    when one is given.
    """
    x = np.asarray(x, dtype=float)
    r = np.asarray(residual, dtype=float)
    J = jac(objective, x) if jac is not None else _finite_difference_jacobian(objective, x, step, pool)
    if objective.loss != "linear":  # IRLS: rows weighted by sqrt(ρ'((r/f)²)); no priors then
        w = np.sqrt(objective.loss_weights(r))
        J, r = J * w[:, None], r * w
    nd, k = objective.n_data, J.shape[1]
    dof = nd - k
    scale = residual_scale(objective, r[:nd], scale_covar)
    nan = np.full(k, np.nan)
    names = list(objective.names)
    if not np.all(np.isfinite(J)):
        bad = [n for n, col in zip(names, np.isfinite(J).all(axis=0)) if not col]
        reason = ("the Jacobian at the optimum is not finite (the model could not be simulated at a perturbed "
                  f"value of {', '.join(bad)})")
        return Covariance(names, x, None, nan, None, scale, 0.0, True, J, "failed", reason,
                          {n: "covariance step failed" for n in names})
    if dof <= 0 and objective.n_priors == 0:  # fit() refuses this; kept for direct callers
        reason = f"no degrees of freedom ({nd} observations, {k} parameters)"
        return Covariance(names, x, None, nan, None, scale, 0.0, True, J, "singular", reason, {n: reason for n in names})
    Jw = J.copy()
    Jw[:nd] /= math.sqrt(scale)  # C = (JwᵀJw)⁻¹: only the data rows carry s²
    _, s, vt = np.linalg.svd(Jw, full_matrices=True)  # vt is k × k even with fewer rows than k
    s_all = np.zeros(k)
    s_all[:s.size] = s
    rcond = float(s_all[-1] / s_all[0]) if s_all[0] > 0 else 0.0
    if rcond >= RCOND_LIMIT:
        covar = (vt.T / s_all ** 2) @ vt
        stderr = np.sqrt(np.diag(covar))
        correl = covar / np.outer(stderr, stderr)
        return Covariance(names, x, covar, stderr, correl, scale, rcond, False, J)
    # Rank deficient: keep the intervals of the parameters outside the degenerate directions.
    keep = s_all > RCOND_LIMIT * s_all[0] if s_all[0] > 0 else np.zeros(k, bool)
    null = vt[~keep]                      # rows: near-null directions
    loading = np.sqrt(np.sum(null ** 2, axis=0))
    estimable = loading < ESTIMABLE_LOADING
    pinv = (vt[keep].T / s_all[keep] ** 2) @ vt[keep]
    stderr = np.where(estimable, np.sqrt(np.clip(np.diag(pinv), 0.0, None)), np.nan)
    correl = np.full((k, k), np.nan)
    ix = np.flatnonzero(estimable)
    if ix.size:
        block = pinv[np.ix_(ix, ix)]
        sd = np.sqrt(np.clip(np.diag(block), 1e-300, None))
        correl[np.ix_(ix, ix)] = block / np.outer(sd, sd)
    directions = []
    for v in null:  # a single dominant parameter is named; a combination is shown with its weights
        big = sorted([i for i in np.argsort(-np.abs(v)) if abs(v[i]) >= 0.1][:4])  # shown in parameter order
        directions.append(names[big[0]] if len(big) == 1 else "[" + " ".join(f"{v[i]:+.2f}·{names[i]}" for i in big) + "]")
    degenerate = [n for n, e in zip(names, estimable) if not e]
    reason = (f"JᵀJ is rank deficient (rcond {rcond:.2g} < {RCOND_LIMIT:g}): the data do not determine "
              + ", ".join(directions) + f"; no interval for {', '.join(degenerate)}")
    no_ci = {n: f"not estimable (it moves along an undetermined direction, loading {loading[i]:.2g})"
             for i, n in enumerate(names) if not estimable[i]}
    return Covariance(names, x, None, stderr, correl, scale, rcond, True, J, "singular", reason, no_ci)


def parameter_flags(objective: Objective, cov: Covariance) -> dict:
    """``at_bound``, ``unidentifiable`` (lists of names), ``correlated`` (pairs with ρ)."""
    lo, hi = objective.xmin, objective.xmax
    tol = BOUND_TOLERANCE * (hi - lo)
    at_bound = []
    for k, s in enumerate(objective.specs):
        if cov.x[k] - lo[k] <= tol[k]:
            at_bound.append((s.name, "lower"))
        elif hi[k] - cov.x[k] <= tol[k]:
            at_bound.append((s.name, "upper"))
    correlated = []
    unidentifiable = []
    if cov.correl is not None:
        k = len(cov.names)
        for i in range(k):
            for j in range(i + 1, k):
                if abs(cov.correl[i, j]) > CORRELATION_LIMIT:
                    correlated.append((cov.names[i], cov.names[j], float(cov.correl[i, j])))
        for i, s in enumerate(objective.specs):
            se = cov.stderr[i] if s.log else cov.stderr[i] / max(abs(cov.x[i]), 1e-300)
            if not np.isfinite(se) or se > IDENTIFIABILITY_SE:
                unidentifiable.append(s.name)
    return {"at_bound": at_bound, "correlated": correlated, "unidentifiable": unidentifiable, "singular": cov.singular}


# ---------------------------------------------------------------------- profile
def profile(result, name: str, max_steps: int = 12, level: float = CHI2_95, progress: bool | None = None,
            **options) -> dict:
    """Profile-likelihood interval of ``name`` (see the module docstring).

    ``progress``: a bar on stderr, one tick per re-optimisation (default: when tqdm is
    installed and stderr is a terminal, :mod:`nanopk.progress`); each point is logged
    at DEBUG and the interval at INFO (logger ``nanopk.fit.uncertainty``).

    Returns
    -------
    dict
        ``name``, ``ci95`` (natural scale; ``None`` on a side where the profile
        never rose by the threshold before the bound), ``open`` (which sides stayed
        open), ``table`` (DataFrame: ``value``, ``x``, ``chisqr``, ``delta``), ``nfev``.
    """
    from ._optimize import minimize

    objective: Objective = result.objective
    if name not in objective.names:
        from ..errors import suggest

        raise FitError(f"cannot profile {name!r}: not a fitted parameter{suggest(name, objective.names)}; fitted: {', '.join(objective.names)}")
    j = objective.names.index(name)
    spec = objective.specs[j]
    x_hat = np.asarray(result.x, dtype=float)
    chi_min = float(result.metrics.get("cost", result.metrics["chisqr"]))
    scale = result.covariance.scale if result.options.get("scale_covar", True) else 1.0
    threshold = level * scale
    se = result.covariance.stderr[j]
    h = float(se) if np.isfinite(se) and se > 0 else 0.3
    h = min(max(h, 0.02), 1.0)
    lo, hi = objective.xmin[j], objective.xmax[j]
    opts = dict(result.options.get("optimizer", {}))
    opts.update(options)
    calls0 = objective.n_calls
    points = [(x_hat[j], chi_min, x_hat.copy())]

    bar = progress_bar(2 * (max_steps + 1), f"profile {name}", "fit", progress)

    def evaluate(xj, warm):
        start = warm.copy()
        start[j] = xj
        out = minimize(objective, start, fixed={j}, **opts)
        bar.update()
        _LOG.debug("profile %s: %s = %.6g, chi2 = %.6g (delta %.4g)", name, name, spec.to_natural(xj), out.cost,
                   out.cost - chi_min)
        return out.cost, out.x

    bounds_ci: dict = {}
    open_sides = []
    for direction in (-1, 1):
        warm = x_hat.copy()
        prev_x, prev_d = x_hat[j], 0.0
        step = h
        found = None
        for _ in range(max_steps):
            xj = prev_x + direction * step
            edge = lo if direction < 0 else hi
            hit_edge = (xj <= lo) if direction < 0 else (xj >= hi)
            if hit_edge:
                xj = edge
            chi, warm = evaluate(xj, warm)
            delta = max(chi - chi_min, 0.0)
            points.append((xj, chi, warm.copy()))
            if delta >= threshold:
                found = (prev_x, prev_d, xj, delta)
                break
            if hit_edge:
                break
            prev_x, prev_d = xj, delta
            step *= 1.5
        if found is None:
            bounds_ci[direction] = None
            open_sides.append("lower" if direction < 0 else "upper")
            continue
        xa, da, xb, db = found
        # sqrt(Δχ²) is linear in x for a quadratic profile: interpolate, then check.
        ra, rb, rt = math.sqrt(da), math.sqrt(db), math.sqrt(threshold)
        xc = xa + (xb - xa) * (rt - ra) / (rb - ra) if rb > ra else xb
        chi_c, _ = evaluate(xc, warm)
        dc = max(chi_c - chi_min, 0.0)
        points.append((xc, chi_c, None))
        rc = math.sqrt(dc)
        if dc < threshold and rb > rc:
            xc = xc + (xb - xc) * (rt - rc) / (rb - rc)
        elif dc > threshold and rc > ra:
            xc = xa + (xc - xa) * (rt - ra) / (rc - ra)
        bounds_ci[direction] = spec.to_natural(xc)
    bar.close()
    _LOG.info("profile of %s: 95 %% interval %s (open: %s), %d evaluations", name,
              [bounds_ci.get(-1), bounds_ci.get(1)], ", ".join(open_sides) or "none", objective.n_calls - calls0)
    table = pd.DataFrame(
        [(spec.to_natural(x), x, c, c - chi_min) for x, c, _ in points], columns=["value", "x", "chisqr", "delta"]
    ).sort_values("x").reset_index(drop=True)
    better = table["delta"].min()
    out = {
        "name": name,
        "ci95": [bounds_ci.get(-1), bounds_ci.get(1)],
        "open": open_sides,
        "threshold": threshold,
        "table": table,
        "nfev": objective.n_calls - calls0,
    }
    if better < -1e-6 * max(chi_min, 1.0):
        out["better_optimum"] = float(table.loc[table["delta"].idxmin(), "value"])
    return out


# ---------------------------------------------------------------------- MCMC
@dataclass
class MCMCResult:
    """Posterior samples on the natural scale and their summary.

    ``chain``: DataFrame (samples × parameters) after burn-in and thinning;
    ``summary``: median, mean, sd, 2.5 % and 97.5 % quantiles per parameter;
    ``acceptance_fraction`` (mean over walkers); ``autocorr`` (integrated
    autocorrelation time per parameter, ``None`` when the chain is too short to
    estimate it); ``warnings``.
    """

    chain: pd.DataFrame
    summary: pd.DataFrame
    acceptance_fraction: float
    autocorr: dict | None
    steps: int
    nwalkers: int
    burn: int
    thin: int
    warnings: list
    lmfit_result: object = field(repr=False, default=None)

    def to_dict(self) -> dict:
        return {
            "steps": self.steps, "nwalkers": self.nwalkers, "burn": self.burn, "thin": self.thin,
            "acceptance_fraction": self.acceptance_fraction, "autocorr": self.autocorr,
            "summary": {n: {k: float(v) for k, v in row.items()} for n, row in self.summary.iterrows()},
            "warnings": list(self.warnings),
        }


def _require_emcee():
    try:
        import emcee  # noqa: F401
    except ImportError:
        raise ImportError("MCMC needs emcee: pip install 'nanopk[mcmc]'") from None


def run_mcmc(result, steps: int = 1000, nwalkers: int | None = None, burn: int | None = None, thin: int = 1,
             progress: bool | None = None, seed: int | None = 0) -> MCMCResult:
    """Sample the posterior of the fitted parameters with emcee (through lmfit).

    ``progress``: emcee's bar on stderr (default: when tqdm is installed and stderr is
    a terminal, :mod:`nanopk.progress`); start and acceptance are logged at INFO.
    """
    _require_emcee()
    progress = progress_enabled(progress)
    import lmfit

    objective: Objective = result.objective
    k = len(objective.names)
    nwalkers = int(nwalkers or max(4 * k, 16))
    if nwalkers < 2 * k:
        raise FitError(f"`nwalkers` must be at least twice the number of fitted parameters ({2 * k}); got {nwalkers}")
    steps = int(steps)
    burn = steps // 4 if burn is None else int(burn)
    if not 0 <= burn < steps:
        raise FitError(f"`burn` must be in [0, steps) (got burn={burn}, steps={steps})")
    scale = math.sqrt(result.covariance.scale) if result.options.get("scale_covar", True) else 1.0
    params = lmfit.Parameters()
    lo, hi = objective.xmin, objective.xmax
    for i, name in enumerate(objective.names):
        params.add(name, value=float(result.x[i]), min=lo[i], max=hi[i])

    nd = objective.n_data

    def lnres(p):
        r = objective.lmfit_residual(p).copy()  # not the objective's cached array
        r[:nd] /= scale  # the data's σ is rescaled, the prior rows are not
        return r

    rng = np.random.default_rng(seed)
    cov = result.covariance.covar
    if cov is not None:
        pos = rng.multivariate_normal(result.x, cov * 0.01, size=nwalkers)
    else:
        pos = result.x + 1e-3 * rng.standard_normal((nwalkers, k))
    pos = np.clip(pos, lo + 1e-9 * (hi - lo), hi - 1e-9 * (hi - lo))
    mini = lmfit.Minimizer(lnres, params, nan_policy="raise")
    _LOG.info("MCMC: %d walkers x %d steps (burn %d, thin %d) on %d parameters", nwalkers, steps, burn, thin, k)
    res = mini.emcee(steps=steps, nwalkers=nwalkers, burn=burn, thin=thin, pos=pos, is_weighted=True,
                     progress=progress, seed=seed)
    flat = res.flatchain
    chain = pd.DataFrame({s.name: np.exp(flat[s.name]) if s.log else flat[s.name] for s in objective.specs})
    summary = pd.DataFrame({
        "median": chain.median(), "mean": chain.mean(), "sd": chain.std(),
        "q2.5": chain.quantile(0.025), "q97.5": chain.quantile(0.975),
    })
    acc = float(np.mean(res.acceptance_fraction))
    _LOG.info("MCMC: mean acceptance fraction %.2f", acc)
    notes = []
    acor = getattr(res, "acor", None)
    autocorr = {n: float(a) for n, a in zip(objective.names, acor)} if acor is not None else None
    if autocorr is None:
        notes.append(f"the chain ({steps} steps) is too short to estimate the autocorrelation time reliably; "
                     "run more steps (emcee recommends > 50 autocorrelation times)")
    if not 0.1 <= acc <= 0.7:
        notes.append(f"mean acceptance fraction {acc:.2f} is outside 0.1–0.7; the sampler mixes poorly")
    if notes:
        import warnings

        warnings.warn("MCMC: " + "; ".join(notes), FitWarning, stacklevel=3)
    return MCMCResult(chain, summary, acc, autocorr, steps, nwalkers, burn, thin, notes, res)


# ---------------------------------------------------------------------- sampling
def sample_parameters(result, n: int, seed: int | None = None) -> pd.DataFrame:
    """Draw parameter sets from a fit's covariance, on the log scale.

    ``x ~ N(x̂, C_x)`` with log-parameters exponentiated (a multivariate log-normal on
    the natural scale), truncated to the bounds by redrawing out-of-bounds rows (at
    most 100 rounds, then clipping).

    Parameters
    ----------
    result : FitResult
    n : int
        Number of parameter sets.
    seed : int, optional
        Seed of the random generator (reproducible draws).

    Returns
    -------
    pandas.DataFrame
        ``n`` rows, one column per fitted parameter (lmfit names, natural scale).

    Raises
    ------
    FitError
        If the fit has no covariance (singular, or not computed).
    """
    objective: Objective = result.objective
    cov = result.covariance
    if cov.covar is None and result.options.get("uncertainty") is False:
        raise FitError("cannot sample parameters: the fit was run with uncertainty=False; refit with uncertainty=True")
    if cov.covar is None:
        raise FitError("cannot sample parameters: the fit has no covariance (it is singular); "
                       "use result.mcmc() or fix the unidentifiable parameters")
    n = int(n)
    if n < 1:
        raise FitError(f"`n` must be a positive number of parameter sets (got {n})")
    rng = np.random.default_rng(seed)
    lo, hi = objective.xmin, objective.xmax
    draws = rng.multivariate_normal(cov.x, cov.covar, size=n, method="svd")
    for _ in range(100):
        bad = np.any((draws < lo) | (draws > hi), axis=1)
        if not bad.any():
            break
        draws[bad] = rng.multivariate_normal(cov.x, cov.covar, size=int(bad.sum()), method="svd")
    draws = np.clip(draws, lo, hi)
    return pd.DataFrame({s.name: np.exp(draws[:, i]) if s.log else draws[:, i] for i, s in enumerate(objective.specs)})
