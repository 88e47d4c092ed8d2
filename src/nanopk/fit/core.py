"""``fit``: estimate model parameters from biodistribution data with lmfit.

The objective (:mod:`nanopk.fit.objective`) simulates every dataset with its own dose
at its own time points and returns weighted residuals — on the log scale by default;
parameters are optimised as ``ln θ`` inside bounds taken from the model.  With
``priors`` the residual vector gains one row per prior and the fit is the maximum a
posteriori (MAP) estimate,

    min_x  Σ_i r_i(x)² + Σ_j ((x_j − x̃_j)/s_j)²  =  −2 ln p(x | y) + const.

Uncertainty comes from the covariance at the optimum (:mod:`nanopk.fit.uncertainty`;
with priors the Laplace approximation of the posterior), optionally refined by
profile likelihood or MCMC.
"""
from __future__ import annotations

import math
import os
import time
import warnings
from typing import Callable

import numpy as np
import pandas as pd

from ..errors import FitError, suggest
from ..batch import thread_pool
from ..data.checks import fit_checks
from ._data import FitWarning, coerce_datasets
from ._optimize import minimize
from .metrics import goodness_of_fit
from .jacobians import ForwardDifferenceJacobian, SensitivityJacobian
from .objective import Objective
from .parameters import build_parameters
from .priors import check_priors_argument, resolve_priors
from .result import CovarianceStatus, FitResult, FitStatus, OptimizerStatus, adequacy
from .uncertainty import Covariance, covariance, parameter_flags, residual_scale

__all__ = ["fit", "build_objective"]

JACOBIANS = ("fd", "sensitivity")

#: Solver tolerances inside a fit, ``(rtol, atol relative to the dose)``, by Jacobian.
#: Finite differences need the solver's noise far below their step (1e-4 relative on the
#: log parameters), hence rtol 1e-8.  Forward sensitivities are integrated and
#: error-controlled with the states, so the simulation tolerance suffices; atol 1e-10 of
#: the dose keeps 1e-6 relative accuracy down to 0.01 %ID, the smallest organ amounts fitted.
FIT_TOLERANCES = {"fd": (1e-8, 1e-12), "sensitivity": (1e-6, 1e-10)}


def solver_tolerances(jacobian, rtol: float | None = None, atol: float | None = None) -> tuple[float, float]:
    """``(rtol, atol)`` for a fit with ``jacobian``: the given values, else :data:`FIT_TOLERANCES`
    (a callable Jacobian gets the finite-difference ones)."""
    default_rtol, default_atol = FIT_TOLERANCES["sensitivity" if jacobian == "sensitivity" else "fd"]
    return (default_rtol if rtol is None else float(rtol), default_atol if atol is None else float(atol))


def _jacobian(jacobian, objective, method, diff_step, pool):
    if jacobian == "fd":
        # least_squares gets the threaded forward differences; other methods difference
        # the residuals themselves.
        return ForwardDifferenceJacobian(diff_step, pool) if method == "least_squares" else None
    if jacobian == "sensitivity":
        return SensitivityJacobian(objective)
    if callable(jacobian):
        if objective.n_priors == 0:
            return jacobian

        def with_priors(obj, x):  # a user Jacobian of the data rows gets the constant prior rows
            return obj.with_prior_rows(jacobian(obj, x))

        with_priors.__name__ = getattr(jacobian, "__name__", "callable")
        return with_priors
    raise FitError(f"`jacobian` must be 'fd', 'sensitivity' or a callable jac(objective, x) (got {jacobian!r})")


#: Options of the scipy function behind each lmfit method that nanopk sets itself (or
#: lmfit does); the rest of its signature may be passed through ``**method_kws``.
_SET_BY_NANOPK = {
    "least_squares": {"fun", "x0", "args", "kwargs", "bounds", "method", "jac", "ftol", "xtol", "gtol", "loss", "f_scale",
                      "diff_step", "max_nfev"},
    "leastsq": {"func", "x0", "args", "ftol", "xtol", "gtol", "epsfcn"},
}


def _method_options(method: str) -> list[str] | None:
    """Keywords ``method`` accepts through ``**method_kws`` (``None``: not checked here)."""
    if method not in _SET_BY_NANOPK:
        return None
    import inspect

    import scipy.optimize

    names = inspect.signature(getattr(scipy.optimize, method)).parameters
    return [n for n in names if n not in _SET_BY_NANOPK[method]]


def check_keywords(given, method: str = "least_squares", caller: str = "fit", own=()) -> None:
    """Refuse keyword arguments that are neither ``caller``'s nor options of the lmfit ``method``.

    ``fit`` passes unknown keywords to lmfit and scipy, which would end a misspelling
    (``error_modle='log'``) in a bare ``TypeError`` from deep inside scipy — or, for
    methods whose options are not checked here, silently ignore it.  ``own`` are the
    caller's own keyword names besides :func:`fit`'s (for :func:`nanopk.compare`).

    Raises
    ------
    FitError
        Naming every unknown keyword, the nearest valid one, and where the valid ones are listed.
    """
    import inspect

    mine = [n for n, p in inspect.signature(fit).parameters.items() if p.kind is not p.VAR_KEYWORD]
    mine = list(own) + [n for n in mine if n not in own]
    options = _method_options(method)
    if options is not None:  # e.g. scipy's own `workers`: fit's keyword of that name takes it
        options = [o for o in options if o not in mine]
    unknown = []
    for key in given:
        if options is not None:
            if key not in options:
                unknown.append(key)
        elif suggest(key, mine):  # other methods: catch at least a near-miss of our own keywords
            unknown.append(key)
    if not unknown:
        return
    valid = mine + (options or [])
    shown = "; ".join(f"{k!r}{suggest(k, valid) or ' (no close match)'}" for k in unknown)
    passed = (f"; method={method!r} also accepts scipy.optimize.{method} options: {', '.join(options)}"
              if options else "")
    where = f"help(nanopk.{caller})" + ("" if caller == "fit" else " and help(nanopk.fit)")
    raise FitError(f"{caller}() got unknown keyword argument(s): {shown}; see {where} for the keywords{passed}")


def _workers(workers, n_varied: int) -> int:
    if workers is None:
        return max(1, min(os.cpu_count() or 1, n_varied))
    if not (isinstance(workers, int) and not isinstance(workers, bool) and workers >= 1):
        raise FitError(f"`workers` must be a positive integer (got {workers!r})")
    return workers


def _starts(objective: Objective, multistart: int, seed, span_decades: float) -> list[np.ndarray]:
    """The default start plus ``multistart`` Latin-hypercube starts.

    The box is the (log) bounds intersected with ``span_decades`` decades either
    side of the default start: full PBPK bounds span 6–12 decades, where most
    corners do not integrate or sit on flat plateaus of the objective.
    """
    x0 = objective.x0
    starts = [x0]
    if multistart <= 0:
        return starts
    from scipy.stats import qmc

    span = np.array([span_decades * math.log(10) if s.log else span_decades * max(abs(s.start), 1.0)
                     for s in objective.specs])
    lo = np.maximum(objective.xmin, x0 - span)
    hi = np.minimum(objective.xmax, x0 + span)
    sample = qmc.LatinHypercube(d=len(x0), seed=seed).random(int(multistart))
    starts += list(lo + sample * (hi - lo))
    return starts


def fit(model=None, data=None, vary=None, shared=None, error_model: str = "log", multistart: int = 0, method: str = "least_squares",
        backend: str = "auto", *, weighting: str = "se", error_params: dict | None = None, sigma_floor: float = 0.05,
        censored: str = "m3", tissue_map: dict | None = None, body_weight: str = "dataset", start: dict | None = None,
        bounds: dict | None = None, jacobian: str | Callable = "fd", diff_step: float = 1e-4, rtol: float | None = None,
        atol: float | None = None, max_nfev: int | None = None, ftol: float = 1e-10, xtol: float = 1e-10, gtol: float = 1e-10,
        seed: int | None = 0, multistart_span: float = 2.0, scale_covar: bool = True, profile: bool | list = False,
        loss: str = "linear", f_scale: float = 1.0, workers: int | None = None, priors: dict | str | None = "population",
        uncertainty: bool = True, warn: bool = True, checks: bool = True, objective=None, auto_profile: bool = True,
        **method_kws) -> FitResult:
    """Fit ``model`` to biodistribution data.

    Parameters
    ----------
    model : nanopk.Model or str
        The model (or a bundled model name).
    data : Dataset, str, path, DataFrame, or a list / dict of these
        Several datasets are fitted at once; dict keys name them.  A DataFrame's
        ``attrs`` may give ``name``, ``dose_ug``, ``body_weight_g`` and
        ``parameters`` (model parameter values held for that dataset only).
    vary : list of str or "all", optional
        Model parameters to estimate; the others stay at the model's values.
        Default (``None``): the subset of the candidates the data can determine,
        chosen from the local sensitivities of the measured observables (importance
        and collinearity index, Brun et al. 2001; at most one parameter per 5 points)
        and checked by the fit: a chosen parameter that runs to a bound or stays
        undetermined is held and the choice redone (:mod:`nanopk.fit.select`);
        ``result.selection`` and the report say what was chosen, why, and where the
        others were held.  ``"all"``: every candidate — the phagocytic uptake
        (``Kmax``, and ``K50`` for liver and spleen) of each measured organ, and for a
        tumour ``PATC_tumour``, ``P_tumour``, ``Kmax_tumour``, ``Krelease_tumour``
        (:data:`nanopk.fit.objective.DEFAULT_VARY`).
    shared : list of str, optional
        With several datasets: parameters common to all; every other varied
        parameter gets one copy per dataset, named ``NAME__<dataset>``.  ``None``
        (default) shares every varied parameter; ``[]`` shares none.
    error_model : {"log", "additive", "combined"}
        Residual model (see :mod:`nanopk.fit.objective`); ``"log"`` is proportional
        error, the usual choice for %ID spanning decades.
    multistart : int
        Extra starts from a seeded Latin hypercube within ``multistart_span``
        decades of the defaults (inside the bounds); the best converged optimum wins.
    method : str
        lmfit method: ``"least_squares"`` (default, trust-region reflective),
        ``"leastsq"``, ``"nelder"``, …
    backend : {"auto", "cvode", "reference"}
    weighting : {"se", "sd", "none"}
        ``"se"``: weight by the standard error of each mean (SD/√n when the dataset
        reports per-animal SDs and n); ``"sd"``: by the SD as reported; ``"none"``:
        unit weights.
    error_params : dict, optional
        ``add`` (%ID) and ``prop`` for the combined error model; ``sigma``, the
        log-scale σ of rows without a reported spread when no row of their dataset
        has one (default 1).  Proportional error of *known* σ, ignoring any SDs:
        ``error_model="log", weighting="none", error_params={"sigma": 0.3},
        scale_covar=False``.
    sigma_floor : float
        Smallest log-scale σ derived from a reported spread (default 0.05); an
        explicit ``error_params["sigma"]`` is used as given.
    censored : {"m3", "exclude"}
        Rows below their limit of quantification: censored likelihood (Beal M3,
        default) or excluded with a warning.
    tissue_map : dict, optional
        Data tissue → model observable (e.g. ``{"plasma": "blood"}``).
    body_weight : {"dataset", "model"}
        Set the model's ``BW`` from each dataset's ``body_weight_g`` (default) or
        keep the model's value.
    start, bounds : dict, optional
        Start values and ``(lower, upper)`` bounds (natural scale) by parameter name
        (model name, or per-dataset name).
    jacobian : {"fd", "sensitivity"} or callable
        Finite differences (default; their simulations run on ``workers`` threads),
        forward sensitivities from the compiled backend (exact gradients: 4–10× fewer
        model evaluations on the bundled studies, and usually the faster fit on one
        core; the first fit with a given set of varied parameters compiles their
        sensitivity equations, cached on disk), or
        ``jac(objective, x) -> (n_residuals, n_varied)``.
    diff_step : float
        Relative finite-difference step on the log parameters (1e-4: well above the
        solver noise at ``rtol=1e-8``).
    rtol, atol : float, optional
        Solver tolerances inside the fit (``atol`` relative to the dose).  Default:
        1e-8 and 1e-12 with finite differences (their step must stand well above the
        solver's noise), 1e-6 and 1e-10 with ``jacobian="sensitivity"`` (exact gradients
        need no such margin; the 6-parameter Cho 2010 fit reaches the tight reference's χ² to
        1e-6 relative, see ``benchmarks/RESULTS.md``).
    max_nfev : int, optional
        Evaluation budget per local optimisation.
    ftol, xtol, gtol : float
        Convergence tolerances (least_squares / leastsq).
    seed : int, optional
        Seed of the multistart design.
    scale_covar : bool
        Scale the covariance by χ²/(N − k) (lmfit's default); with priors only the
        data rows are scaled (see :mod:`nanopk.fit.uncertainty`).
    profile : bool or list of str
        Also compute profile-likelihood intervals (all parameters, or those listed).
    workers : int, optional
        Threads that run the simulations of a finite-difference Jacobian concurrently
        (default: one per core; ``1``: sequential).  The compiled solver releases the
        GIL, so the perturbed solves of one Jacobian run in parallel.
    loss, f_scale :
        Robust loss of ``least_squares`` (``"linear"`` = ordinary least squares,
        ``"soft_l1"``, ``"huber"``, ``"cauchy"``, ``"arctan"``) and the residual scale
        (σ units) beyond which it down-weights; see :mod:`nanopk.fit.objective`.
    priors : "population", dict, None or False
        ``"population"`` (default): the bundled population priors — the between-study
        distribution of each varied parameter that has one (the Lin-lab tumour
        parameters, from the Chou et al. 2023 fits of the 378 Nano-Tumor Database
        datasets; :mod:`nanopk.fit.priors`); parameters without one (the MPS uptake,
        excretion) are fitted by maximum likelihood and listed in the report.
        ``None`` or ``False``: no priors, the plain maximum-likelihood fit
        (``nanopk fit --no-prior``).
        A dict ``{name: (median, ln_sd)}`` gives exactly those priors: a log-normal prior ``ln θ ~ N(ln median, ln_sd²)``
        on each named parameter fitted on the log scale (the default for positive
        parameters).  For a parameter fitted on the natural scale (bounds below 0)
        the pair is ``(mean, sd)`` of a normal prior ``θ ~ N(mean, sd²)``.  A model
        name applies to every per-dataset copy ``NAME__<dataset>``; a copy's own name
        to that copy.  ``ln_sd = inf`` is flat (no prior).  The fit is then the MAP
        estimate; the goodness-of-fit metrics (χ², R², fold errors, AIC, BIC) use
        the data residuals only, and the prior's share of the objective is
        ``result.prior_penalty`` (``metrics["prior_penalty"]``).  AIC and BIC are
        therefore those of the likelihood at the MAP estimate with k the number of
        varied parameters — not a Bayesian criterion; compare them only between
        fits with the same priors.  Needs ``loss="linear"`` (with a robust ``loss`` the default
        population priors are not applied, and the fit's warnings say so).  The report and ``result.prior_summary()`` give, per fitted
        parameter, the prior median and 95 % range, the estimate, its z against the
        prior and the shrinkage ``1 − posterior SD/prior SD``.
    uncertainty : bool
        Compute the covariance, standard errors, intervals and identifiability
        flags (default).  ``False`` skips the 2k extra simulations of the central
        differences, for batch fits that need only the estimates; ``success`` then
        means converged with a finite objective.
    warn : bool
        Emit the :class:`FitWarning` (default).  ``False`` only records the issues in
        ``result.warnings``, for batch callers that report them per fit (and for
        threads, where ``warnings.catch_warnings`` is not safe).
    checks : bool
        Run the plausibility rules of :func:`nanopk.data.check_dataset` on every
        :class:`~nanopk.data.Dataset` given (default): WARN rules join the fit's
        warnings, a FAIL rule raises :class:`~nanopk.errors.DataError` before
        fitting.  ``False`` skips them.
    objective : Objective, optional
        A prebuilt objective (the protocol of :mod:`nanopk.fit.protocol`: e.g.
        :func:`build_objective` or :class:`nanopk.fit.JointObjective`), minimised
        instead of one built from ``model`` and ``data``.  ``model`` and ``data`` are
        then left out (or ``model`` is the objective's own), and so is every keyword
        the objective fixes (``vary``, ``shared``, ``error_model``, ``weighting``,
        ``error_params``, ``sigma_floor``, ``censored``, ``tissue_map``,
        ``body_weight``, ``start``, ``bounds``, ``backend``, ``rtol``, ``atol``,
        ``loss``, ``f_scale``, ``priors``, ``checks``); the optimiser, covariance and
        status are those of any other fit.
    auto_profile : bool
        Replace the Wald interval by the profile-likelihood one wherever the Wald
        interval is unreliable: the parameter at a bound, its interval spanning more
        than 100-fold, or no interval (singular covariance); at most
        :data:`nanopk.fit.result.AUTO_PROFILE_MAX` parameters, the widest first
        (default; see :meth:`FitResult.auto_profile`).  ``False``: Wald only.
    **method_kws
        Passed to the lmfit method.

    Returns
    -------
    FitResult
        ``result.status`` reports the optimiser, the covariance step and adequacy
        apart (see :mod:`nanopk.fit.result`); ``result.success`` is converged *and*
        covariance ok.

    Raises
    ------
    FitError
        For an invalid set-up (unknown parameter, empty data, a start the solver
        cannot integrate, a prior on a parameter not fitted or with sd ≤ 0), for
        data without degrees of freedom (no uncensored observation; or, without
        priors, no more uncensored observations than varied parameters — censored rows
        bound the predictions but do not count), and for a keyword argument neither
        ``fit`` nor the lmfit ``method`` takes (named, with the nearest valid one).
    DataError
        When a plausibility rule fails (``checks=True``), listing every failed rule.

    Warns
    -----
    FitWarning
        One per fit, listing every issue: excluded rows, no convergence, singular
        covariance, parameters at a bound, abs(ρ) > 0.95, unidentifiable parameters,
        solver failures during the search.
    """
    t_start = time.perf_counter()
    if not (isinstance(diff_step, (int, float)) and 0 < diff_step < 0.1):
        raise FitError(f"`diff_step` must be a small positive relative step, e.g. 1e-4 (got {diff_step!r})")
    if int(multistart) < 0:
        raise FitError(f"`multistart` must be ≥ 0 (got {multistart})")
    check_keywords(method_kws, method)
    check_priors_argument(priors)
    if vary is None and objective is None and model is not None and data is not None:
        # No `vary`: fit the parameters the data can determine (nanopk.fit.select).
        given = {k: v for k, v in locals().items() if k not in ("model", "data", "vary", "objective", "method_kws", "t_start")}
        from .select import fit_selected

        return fit_selected(fit, model, data, {**given, **method_kws})
    if vary == "all" or (isinstance(vary, (list, tuple)) and list(vary) == ["all"]):
        vary = None  # every candidate of default_vary: the default before the selection
    if objective is None:
        if model is None or data is None:
            raise FitError("fit() needs a model and data, e.g. fit('mouse_pbpk', dataset, vary=['Kmax_liver']), "
                           "or a prebuilt objective=")
        objective = build_objective(model, data, vary, shared, error_model, weighting=weighting,
                                    error_params=error_params, sigma_floor=sigma_floor, censored=censored,
                                    tissue_map=tissue_map, body_weight=body_weight, start=start, bounds=bounds,
                                    backend=backend, jacobian=jacobian, rtol=rtol, atol=atol, loss=loss,
                                    f_scale=f_scale, priors=priors, checks=checks)
    else:
        _check_prebuilt(objective, model, data, jacobian, {k: v for k, v in locals().items() if k in _OBJECTIVE_KEYWORDS})
    # What the objective fixes, read back from it (the same values when fit built it).
    model, datasets, specs = objective.model, objective.datasets, objective.specs
    check_notes = list(getattr(objective, "check_notes", []))
    error_model, weighting, backend, rtol, atol = (objective.error_model, objective.weighting, objective.backend,
                                                   objective.rtol, objective.atol)
    loss, f_scale, sigma_floor = objective.loss, objective.f_scale, getattr(objective, "sigma_floor", sigma_floor)
    pool = thread_pool(_workers(workers, len(specs)))
    jac = _jacobian(jacobian, objective, method, diff_step, pool)
    objective.residual(objective.x0)
    if objective.n_solver_failures:
        raise FitError(f"the model cannot be simulated at the start values: {objective.last_solver_error}")
    _check_degrees_of_freedom(objective, datasets, len(specs))

    optimizer = dict(method=method, jac=jac, diff_step=diff_step, max_nfev=max_nfev, ftol=ftol, xtol=xtol, gtol=gtol, **method_kws)
    outcomes = []
    for x_start in _starts(objective, int(multistart), seed, multistart_span):
        try:
            outcomes.append(minimize(objective, x_start, **optimizer))
        except TypeError as exc:  # an option the method does not take (methods check_keywords cannot list)
            if "keyword" not in str(exc):
                raise
            raise FitError(f"method={method!r} does not accept an option in {sorted(method_kws)}: {exc}; "
                           "see help(nanopk.fit) and lmfit's documentation of the method") from None
    converged = [o for o in outcomes if o.converged]
    best = min(converged or outcomes, key=lambda o: o.cost)
    x = best.x
    resid = objective.cached_residual(x)  # the optimiser's last evaluation is usually at x
    r_data, r_prior = objective.split(resid)
    chisqr = float(r_data @ r_data)
    if uncertainty:
        # Intervals from central differences (second-order accurate) unless the Jacobian is exact.
        cov = covariance(objective, x, resid, jac=None if jacobian == "fd" else jac, scale_covar=scale_covar, pool=pool)
    else:
        scale = residual_scale(objective, r_data, scale_covar)  # still needed by profile() and mcmc()
        cov = Covariance(objective.names, np.asarray(x, float), None, np.full(len(specs), np.nan), None, scale, math.nan,
                         False, state="not attempted", reason="uncertainty=False")
    flags = parameter_flags(objective, cov)
    flags["converged"] = best.converged

    preds = objective.predict(x)
    frames = []
    for d, p in zip(datasets, preds):
        f = d.rows.copy()
        f.insert(0, "dataset", d.name)
        f["predicted"] = p
        f["residual"] = objective.residual_from(d, p)
        with np.errstate(divide="ignore", invalid="ignore"):
            f["fold"] = p / f["observed"].to_numpy(dtype=float)
        frames.append(f)
    predictions = pd.concat(frames, ignore_index=True)
    cols = ["dataset", "tissue", "observable", "time_h", "observed", "sd", "n", "predicted", "censored", "lloq",
            "sigma", "residual", "fold", "row"]
    predictions = predictions[cols]

    metrics = goodness_of_fit(r_data, predictions, len(specs))
    metrics["loss"] = loss
    metrics["prior_penalty"] = float(r_prior @ r_prior)
    metrics["n_priors"] = objective.n_priors
    metrics["cost"] = objective.loss_value(resid)  # what was minimised: data + prior penalty
    finite = bool(np.isfinite(chisqr) and np.all(np.isfinite(x)))
    status = FitStatus(
        OptimizerStatus(bool(best.converged and finite), best.message if finite or not best.converged
                        else f"{best.message}, but the objective is not finite at the optimum", method,
                        int(sum(o.nfev for o in outcomes)), len(outcomes), len(converged)),
        CovarianceStatus(cov.state, cov.reason, float(cov.rcond), dict(cov.no_ci)),
        adequacy(metrics, flags))
    success = status.success
    if not best.converged:
        message = f"did not converge: {best.message}"
    elif not finite:
        message = "the objective is not finite at the optimum"
    elif cov.state == "singular":
        message = f"converged ({best.message}) but the covariance is singular (rcond {cov.rcond:.2g})"
    elif cov.state == "failed":
        message = f"converged ({best.message}) but the covariance step failed: {cov.reason}"
    else:
        message = f"converged: {best.message}" + ("" if uncertainty else " (uncertainty not computed)")

    notes = check_notes + _warnings(datasets, objective, best, cov, flags, outcomes, converged)
    options = {
        "workers": 1 if pool is None else pool._max_workers,
        "error_model": error_model, "weighting": weighting, "method": method,
        "jacobian": jacobian if isinstance(jacobian, str) else getattr(jacobian, "__name__", "callable"),
        "diff_step": diff_step, "backend": backend, "rtol": rtol, "atol": atol, "multistart": int(multistart),
        "seed": seed, "scale_covar": scale_covar, "loss": loss, "f_scale": f_scale, "sigma_floor": sigma_floor, "censored": censored,
        "shared": None if shared is None else list([shared] if isinstance(shared, str) else shared),
        "vary": sorted({s.model_name for s in specs}, key=[s.model_name for s in specs].index), "body_weight": body_weight,
        "error_params": (objective.error_params if error_model == "combined"
                         else {"sigma": objective.error_params["sigma"]} if "sigma" in objective.error_params else None),
        "priors": {n: list(v) for n, v in objective.priors.items()} or None,
        "prior_kind": (getattr(objective, "prior_info", None) or {}).get("kind", "given" if objective.priors else "none"),
        "uncertainty": bool(uncertainty),
        "optimizer": optimizer,
    }
    result = FitResult(model=model, objective=objective, x=x, outcome=best, outcomes=outcomes, covariance=cov,
                       flags=flags, metrics=metrics, predictions=predictions, warnings=notes, options=options,
                       success=success, message=message, status=status)
    metrics.update(n_evaluations=objective.n_calls, n_simulations=objective.n_simulations,
                   n_solver_failures=objective.n_solver_failures, wall_time_s=time.perf_counter() - t_start,
                   optimizer_wall_time_s=sum(o.wall_time_s for o in outcomes),
                   optimizer_evaluations=sum(o.nfev for o in outcomes))
    if profile:
        result.profile(None if profile is True else list(profile))
    if auto_profile and uncertainty:
        result.auto_profile()
    if result.warnings and warn:
        head = f"fit of {model.name!r} to {', '.join(d.name for d in datasets)}: {len(result.warnings)} issue(s)"
        warnings.warn(head + "\n" + "\n".join(f"  - {w}" for w in result.warnings), FitWarning, stacklevel=2)
    return result


def build_objective(model, data, vary=None, shared=None, error_model: str = "log", *, weighting: str = "se",
                    error_params: dict | None = None, sigma_floor: float = 0.05, censored: str = "m3",
                    tissue_map: dict | None = None, body_weight: str = "dataset", start: dict | None = None,
                    bounds: dict | None = None, backend: str = "auto", jacobian="fd", rtol: float | None = None,
                    atol: float | None = None, loss: str = "linear", f_scale: float = 1.0,
                    priors: dict | str | None = "population", checks: bool = True) -> Objective:
    """The :class:`~nanopk.fit.objective.Objective` that ``fit(model, data, ...)`` minimises.

    The keywords are :func:`fit`'s (``jacobian`` only picks the default solver
    tolerances; ``priors`` defaults to the population priors, as for :func:`fit`, and
    ``objective.prior_info`` records which kind was applied and which varied parameters
    have no population prior).  ``fit(objective=build_objective(model, data, **kw))`` is
    ``fit(model, data, **kw)``; :class:`nanopk.fit.JointObjective` stacks several.
    The WARN notes of the plausibility rules (``checks``) are kept in
    ``objective.check_notes`` and join the warnings of the fit.

    Raises
    ------
    FitError, DataError
        As :func:`fit` does for the same arguments.
    """
    if isinstance(model, str):
        from ..spec import load_model

        model = load_model(model)
    if error_model not in ("log", "additive", "combined"):
        raise FitError(f"unknown error_model {error_model!r}; valid: log, additive, combined")
    rtol, atol = solver_tolerances(jacobian, rtol, atol)
    datasets = coerce_datasets(data, model, error_model == "log", censored, tissue_map, body_weight)
    # Plausibility rules (nanopk.data.checks): FAIL raises here, WARN joins the fit's warnings.
    check_notes = fit_checks(model, [d.source for d in datasets], vary) if checks else []
    specs = build_parameters(model, datasets, vary, shared, start, bounds)
    varied = {sp.model_name for sp in specs}
    clash = {d.name: sorted(varied & set(d.meta.get("parameters") or {})) for d in datasets}
    clash = {k: v for k, v in clash.items() if v}
    if clash:
        raise FitError("a parameter cannot be both varied and set by its dataset (attrs['parameters']): "
                       + "; ".join(f"{', '.join(map(repr, v))} in dataset {k!r}" for k, v in clash.items()))
    priors, prior_info = resolve_priors(priors, model, specs, datasets)  # datasets: the particle-conditional priors
    if prior_info["kind"] == "population" and priors and loss != "linear":
        # A robust loss would also down-weight the prior rows (Objective refuses an explicit
        # prior with it); the default steps aside and says so in the fit's warnings.
        note = (f"population priors not applied to {', '.join(priors)}: loss={loss!r} would also down-weight the "
                "prior rows; this is a maximum-likelihood fit (use loss='linear' for the priors)")
        priors, prior_info = None, {"kind": "none", "note": note}
        check_notes = list(check_notes) + [note]
    objective = Objective(model, datasets, specs, error_model, weighting, error_params, sigma_floor, backend, rtol, atol,
                          loss=loss, f_scale=f_scale, priors=priors)
    objective.check_notes = check_notes
    objective.prior_info = prior_info
    return objective


#: Keywords of :func:`fit` that define the objective; with ``objective=`` they stay at their defaults.
_OBJECTIVE_KEYWORDS = ("vary", "shared", "error_model", "weighting", "error_params", "sigma_floor", "censored",
                       "tissue_map", "body_weight", "start", "bounds", "backend", "rtol", "atol", "loss", "f_scale",
                       "priors", "checks")


def _check_prebuilt(objective, model, data, jacobian, given: dict) -> None:
    """Refuse ``fit(objective=...)`` combined with what the objective already fixes."""
    import inspect

    from .protocol import check_objective

    check_objective(objective)
    defaults = {n: p.default for n, p in inspect.signature(fit).parameters.items()}
    clash = [f"{k}={v!r}" for k, v in given.items() if not (v is defaults[k] or v == defaults[k])]
    if data is not None:
        clash.insert(0, "data")
    if model is not None and model is not objective.model:
        clash.insert(0, "model (other than objective.model)")
    if clash:
        raise FitError(f"fit(objective=...) got {', '.join(clash)}: the objective already fixes its model, data and "
                       "likelihood; build the objective with them (nanopk.fit.build_objective(model, data, ...)) and "
                       "pass only optimiser options (method, multistart, jacobian, max_nfev, ...) to fit")
    if jacobian == "sensitivity" and not isinstance(objective, Objective):
        raise FitError(f"jacobian='sensitivity' needs a single-model Objective, not a {type(objective).__name__}; "
                       "use jacobian='fd' (finite differences) or a callable jac(objective, x)")


def _check_degrees_of_freedom(objective, datasets, n_varied: int) -> None:
    """Refuse a fit the data cannot determine: no uncensored observation, or (without
    priors) no more uncensored observations than varied parameters.

    Censored rows (below their LLOQ) bound a prediction but do not pin it, so they do not
    count; with priors the prior rows make an under-determined fit a proper posterior.
    """
    n_rows = sum(len(d.rows) for d in datasets)
    n_censored = sum(int(np.sum(d.rows["censored"].to_numpy(dtype=bool))) for d in datasets)
    n_points = n_rows - n_censored
    counts = f"n_points {n_points} uncensored" + (f" (+{n_censored} censored)" if n_censored else "") + f", n_varied {n_varied}"
    if n_points == 0:
        raise FitError(f"{n_varied} parameters cannot be fitted to 0 observations: every one of the {n_rows} row(s) "
                       f"is censored (below its LLOQ), which bounds the predictions but determines nothing ({counts}); "
                       "give measured values above the LLOQ")
    if objective.n_priors == 0 and n_points <= n_varied:
        raise FitError(f"{n_varied} parameters cannot be fitted to {n_points} observations; vary fewer or give priors "
                       f"(a fit needs more uncensored observations than varied parameters: {counts}, "
                       f"{n_points - n_varied} degrees of freedom)")
    if objective.n_residuals < n_varied:  # with priors: data and prior rows together
        raise FitError(f"{n_varied} parameters cannot be fitted to {n_points} observations and {objective.n_priors} "
                       f"prior(s); vary fewer ({counts})")


def _warnings(datasets, objective, best, cov, flags, outcomes, converged) -> list[str]:
    notes = []
    for d in datasets:
        for e in d.excluded:
            rows = e["rows"]
            shown = ", ".join(map(str, rows[:12])) + (f" … ({len(rows)} in all)" if len(rows) > 12 else "")
            notes.append(f"excluded {len(rows)} row(s) of {e['tissue']!r} in dataset {e['dataset']!r} (rows {shown}): {e['reason']}")
        notes.extend(getattr(d, "notes", ()))  # e.g. a default tumour mass (nanopk.fit._data)
    if not best.converged:
        notes.append(f"the fit did not converge ({best.message}); do not use its parameters — raise max_nfev, "
                     "try multistart, or vary fewer parameters")
    if len(outcomes) > 1 and not converged:
        notes.append(f"none of the {len(outcomes)} starts converged")
    if cov.state == "singular":
        notes.append(f"the covariance is singular (rcond {cov.rcond:.2g}): some parameters are not identifiable from "
                     f"these data ({cov.reason}); fix some of them or profile them with result.profile(name)")
    elif cov.state == "failed":
        notes.append(f"the covariance step failed: {cov.reason}; no intervals")
    for name, side in flags["at_bound"]:
        notes.append(f"{name} is at its {side} bound; its Wald interval is unreliable (use result.profile({name!r}))")
    for a, b, r in flags["correlated"]:
        notes.append(f"{a} and {b} are highly correlated (ρ = {r:+.3f}); the data determine a combination of them")
    for name in flags["unidentifiable"]:
        if name in cov.no_ci:
            notes.append(f"{name} is not identifiable: {cov.no_ci[name]}; no interval (use result.profile({name!r}))")
        else:
            notes.append(f"{name} is practically unidentifiable (95 % interval spans more than a factor of 10⁴)")
    if objective.n_solver_failures:
        notes.append(f"the solver failed at {objective.n_solver_failures} trial parameter set(s) during the search "
                     f"(penalised); last: {objective.last_solver_error}")
    return notes
