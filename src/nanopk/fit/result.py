"""The result of a fit: parameters with intervals, goodness of fit, predictions, JSON.

A :class:`FitResult` keeps the exact model it fitted (``result.model`` is
``model.with_parameters(best)``), the objective (so intervals can be refined later
with :meth:`FitResult.profile` and :meth:`FitResult.mcmc`), and every warning the fit
raised.

Status, as NONMEM reports it, in three separate parts (:class:`FitStatus`,
``result.status``; in the report header and in ``to_json()["status"]``):

- **optimizer**: did the optimiser converge, and why it stopped (scipy's / lmfit's
  message).  A fit that did not converge is never reported as converged.
- **covariance**: ``ok``, ``singular`` (rank-deficient JᵀJ: the parameters outside
  the degenerate directions keep their intervals, the others get
  ``"no CI: <reason>; use result.profile(name)"``), ``failed`` (no finite Jacobian at
  the optimum) or ``not attempted`` (``uncertainty=False``).
- **adequacy**: fraction of points within 2-fold, R² on the log scale, parameters at
  a bound, unidentifiable parameters, and a verdict: ``poor`` when the model misses
  the data (fewer than half the points within 2-fold — the customary PBPK acceptance —
  or R²(log) < 0.5: less than half the log-scale variance explained) or when a varied
  parameter is unidentifiable (the data do not determine it, nor anything computed
  from it); ``adequate`` otherwise.

``success`` is True only when the optimiser converged *and* the covariance step is
``ok`` (with ``uncertainty=False``, where the step is not attempted, it means
converged).  Adequacy does not enter ``success``: a converged fit of a model that
misses the data is a result (the model is wrong), reported as ``poor``.  A parameter
at a bound or a strongly correlated pair does not make a fit unsuccessful either — a
rate running to its floor is a finding ("indistinguishable from zero") — but both are
flagged in ``flags``, the report, the JSON and a :class:`FitWarning`, because the Wald
interval of such parameters is not to be trusted (use :meth:`profile`).
"""
from __future__ import annotations

import json
import math
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import lmfit
import numpy as np
import pandas as pd

from .._json import json_safe, provenance
from ..errors import FitError, suggest
from .uncertainty import Z95, profile as _profile, run_mcmc, sample_parameters

#: Most parameters :meth:`FitResult.auto_profile` profiles (each profile is ~25 refits).
AUTO_PROFILE_MAX = 4
#: A Wald interval spanning more than this factor is replaced by the profile likelihood.
WALD_MAX_FOLD = 100.0

__all__ = ["FitResult", "FitStatus", "OptimizerStatus", "CovarianceStatus", "Adequacy", "adequacy"]

#: A fit is ``poor`` below this fraction of uncensored points within 2-fold (the
#: customary acceptance of PBPK predictions; Obach et al. 1997, see
#: :mod:`nanopk.fit.metrics`) ...
ADEQUATE_WITHIN_2FOLD = 0.5
#: ... or below this R² of the log values (less than half their variance explained).
ADEQUATE_R2_LOG = 0.5


@dataclass(frozen=True)
class OptimizerStatus:
    """What the optimiser said: ``converged`` and ``message`` (scipy's / lmfit's reason)."""

    converged: bool
    message: str
    method: str
    nfev: int
    n_starts: int = 1
    n_converged: int = 0

    @property
    def label(self) -> str:
        return "converged" if self.converged else "NOT CONVERGED"


@dataclass(frozen=True)
class CovarianceStatus:
    """The covariance step: ``state`` ok / singular / failed / not attempted, and why."""

    state: str
    reason: str = ""
    rcond: float = math.nan
    no_ci: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.state == "ok"


@dataclass(frozen=True)
class Adequacy:
    """Does the fitted model describe the data, and do the data determine its parameters."""

    verdict: str
    frac_within_2fold: float
    r2_log: float
    n_points: int
    n_varied: int
    at_bound: list = field(default_factory=list)
    unidentifiable: list = field(default_factory=list)
    reasons: list = field(default_factory=list)


@dataclass(frozen=True)
class FitStatus:
    """The three parts of a fit's status (see the module docstring)."""

    optimizer: OptimizerStatus
    covariance: CovarianceStatus
    adequacy: Adequacy

    @property
    def success(self) -> bool:
        """Converged and the covariance step ok (or, with ``uncertainty=False``, not attempted)."""
        return self.optimizer.converged and self.covariance.state in ("ok", "not attempted")

    def banner(self) -> str | None:
        """One loud line when the fit must not be used as it stands, else ``None``."""
        if not self.optimizer.converged:
            return f"*** NOT CONVERGED: {self.optimizer.message}; do not use these estimates ***"
        if self.covariance.state in ("singular", "failed"):
            return f"*** no covariance ({self.covariance.state}): {self.covariance.reason} ***"
        return None

    def lines(self) -> list[str]:
        """The three header lines of the report."""
        o, c, a = self.optimizer, self.covariance, self.adequacy
        starts = f", {o.n_converged} of {o.n_starts} starts converged" if o.n_starts > 1 else ""
        cov = c.state + (f" (rcond {c.rcond:.2g})" if c.state == "ok" and math.isfinite(c.rcond) else "")
        if c.reason and c.state != "ok":
            cov += f": {c.reason}"
        return [f"  optimizer:  {o.label}: {o.message} ({o.nfev} evaluations, {o.method}{starts})",
                f"  covariance: {cov}",
                f"  adequacy:   {a.verdict}" + (f": {'; '.join(a.reasons)}" if a.reasons else "")
                + f" [within 2-fold {_pct(a.frac_within_2fold)}, R² (log) {_num(a.r2_log)}]"]

    def to_dict(self) -> dict:
        out = {"success": self.success, "optimizer": asdict(self.optimizer), "covariance": asdict(self.covariance),
               "adequacy": asdict(self.adequacy)}
        out["optimizer"]["status"] = self.optimizer.label.lower()
        return out


def _pct(v) -> str:
    return f"{100 * v:.1f} %" if v is not None and math.isfinite(v) else "n/a"


def _num(v) -> str:
    return f"{v:.3f}" if v is not None and math.isfinite(v) else "n/a"


def adequacy(metrics: dict, flags: dict) -> Adequacy:
    """The adequacy verdict from a fit's metrics and flags (thresholds in the module docstring)."""
    f2, r2, n = metrics.get("frac_within_2fold", math.nan), metrics.get("r2_log", math.nan), metrics.get("n_points", 0)
    k = int(metrics.get("n_varied", 0))
    reasons = []
    if not metrics.get("n_fold", n):
        reasons.append("no positive observation to compare the predictions with")
    misses = []
    if math.isfinite(f2) and f2 < ADEQUATE_WITHIN_2FOLD:
        misses.append(f"{_pct(f2)} of points within 2-fold (< {ADEQUATE_WITHIN_2FOLD:.0%})")
    if math.isfinite(r2) and r2 < ADEQUATE_R2_LOG:
        misses.append(f"R² (log) {r2:.3f} (< {ADEQUATE_R2_LOG})")
    if misses:
        reasons.append("the model misses the data: " + ", ".join(misses))
    unid = list(flags.get("unidentifiable", []))
    if unid:
        reasons.append(f"{len(unid)} of {k} parameters unidentifiable ({', '.join(unid)})")
    at_bound = [f"{name} ({side})" for name, side in flags.get("at_bound", [])]
    verdict = "poor" if reasons else "adequate"
    if at_bound:  # a finding, not a failure (see the module docstring): listed, not a reason
        reasons.append(f"at a bound: {', '.join(at_bound)}")
    return Adequacy(verdict, float(f2), float(r2), int(n), k, at_bound, unid, reasons)


def _clean(obj):
    """JSON-safe copy: non-finite floats → None, NumPy scalars → Python (:func:`nanopk._json.json_safe`)."""
    return json_safe(obj)


class FitResult:
    """What :func:`nanopk.fit` returns.

    Attributes
    ----------
    params : lmfit.Parameters
        Fitted parameters on the natural scale, ``stderr`` by the delta method,
        ``correl`` between them; ``par.user_data`` holds ``unit``, ``ci95`` (cut at the bounds),
        ``log_scale``, ``model_parameter``, ``dataset`` (``None`` if shared),
        ``stderr_log``, ``at_bound`` and ``source`` (of the default).
    params_log : lmfit.Parameters
        The optimised (log-scale) parameters with their standard errors.
    success : bool
        ``status.success``: the optimiser converged and the covariance step is ok.
    status : FitStatus
        optimizer, covariance and adequacy, each with its reason (module docstring).
    message : str
        Why the fit succeeded or not.
    model : nanopk.Model
        The model with the fitted values (shared ones, plus per-dataset ones when
        there is a single dataset).
    models : dict
        ``{dataset: model}`` with that dataset's fitted and fixed values.
    datasets : dict
        ``{dataset name: what was passed}``.
    metrics : dict
        ``chisqr``, ``redchi``, ``aic``, ``bic``, ``r2_log``, ``aafe``, ``afe``,
        ``frac_within_2fold``, ``frac_within_3fold``, ``n_points``, ``n_censored``,
        ``n_varied``, ``n_evaluations``, ``n_simulations``, ``wall_time_s`` — of the
        data residuals only — and ``prior_penalty`` (``Σ r_prior²``, 0 without
        priors), ``n_priors`` and ``cost`` (the minimised objective, data + prior).
    priors : dict
        ``{fitted name: (median, sd)}`` of every parameter with a prior (empty
        without); see :func:`nanopk.fit`.
    predictions : pandas.DataFrame
        One row per fitted observation: ``dataset``, ``tissue``, ``observable``,
        ``time_h``, ``observed``, ``sd``, ``n``, ``predicted``, ``censored``,
        ``lloq``, ``sigma``, ``residual``, ``fold`` (predicted/observed), ``row``.
    excluded : list of dict
        Rows left out: ``dataset``, ``tissue``, ``rows``, ``reason``.
    warnings : list of str
    flags : dict
        ``at_bound`` [(name, side)], ``correlated`` [(a, b, ρ)],
        ``unidentifiable`` [names], ``singular`` (bool), ``converged`` (bool).
    extra_json : dict
        Merged into :meth:`to_json` (e.g. ``delivery`` stored by :meth:`delivery`).
    """

    def __init__(self, *, model, objective, x, outcome, outcomes, covariance, flags, metrics, predictions,
                 warnings, options, success, message, status: FitStatus | None = None):
        self._base_model = model
        self.objective = objective
        self.x = np.asarray(x, dtype=float)
        self.outcome = outcome
        self.outcomes = list(outcomes)
        self.covariance = covariance
        self.flags = flags
        self.metrics = metrics
        self.predictions = predictions
        self.warnings = list(warnings)
        self.options = dict(options)
        self.status = status
        self.success = bool(success) if status is None else (bool(success) and status.success)
        self.message = message
        self.extra_json: dict = {}
        self.profiles: dict = {}
        self.mcmc_result = None
        self.selection = None  # nanopk.fit.select.Selection when vary was chosen by the fit
        self.unreliable_wald: dict = {}  # {name: why its Wald interval is not used}
        self.datasets = {d.name: d.source for d in objective.datasets}
        self.excluded = [e for d in objective.datasets for e in d.excluded]
        self.params_log, self.params = self._parameters()
        # model_of: a joint objective may simulate each dataset with its own model (nanopk.fit.protocol).
        self.models = {d.name: objective.model_of(d).with_parameters(objective.overrides(self.x, d))
                       for d in objective.datasets}
        if len(self.models) == 1:
            self.model = next(iter(self.models.values()))
        else:
            shared = {s.model_name: s.to_natural(v) for s, v in zip(objective.specs, self.x) if s.dataset is None}
            self.model = model.with_parameters(shared)

    # ------------------------------------------------------------------ parameters
    def _parameters(self):
        obj, cov = self.objective, self.covariance
        at_bound = dict(self.flags.get("at_bound", []))
        plog, pnat = lmfit.Parameters(), lmfit.Parameters()
        for i, s in enumerate(obj.specs):
            x, se = float(self.x[i]), float(cov.stderr[i])
            plog.add(s.name, value=x, min=s.xmin, max=s.xmax)
            value = s.to_natural(x)
            pnat.add(s.name, value=value, min=s.lower, max=s.upper)
            if np.isfinite(se):
                plog[s.name].stderr = se
                if s.log:
                    pnat[s.name].stderr = value * se
                    with np.errstate(over="ignore"):
                        ci = [math.exp(x - Z95 * se), math.exp(min(x + Z95 * se, 700.0))]
                else:
                    pnat[s.name].stderr = se
                    ci = [x - Z95 * se, x + Z95 * se]
                # An interval reaching past a bound ends at it (the bound is the
                # physically admissible range; at_bound flags the parameter).
                ci = [max(ci[0], s.lower), min(ci[1], s.upper)]
            else:
                ci = None
            no_ci = None
            if ci is None:
                why = getattr(cov, "no_ci", {}).get(s.name) or getattr(cov, "reason", "") or "no covariance"
                no_ci = f"no CI: {why}; use result.profile({s.name!r})"
            pnat[s.name].init_value = s.start
            pnat[s.name].user_data = {
                "unit": s.unit, "ci95": ci, "log_scale": s.log, "model_parameter": s.model_name,
                "dataset": s.dataset, "stderr_log": se if (s.log and np.isfinite(se)) else None,
                "at_bound": at_bound.get(s.name), "source": s.source, "start": s.start, "no_ci": no_ci,
            }
        if cov.correl is not None:
            for i, a in enumerate(obj.names):
                for j, b in enumerate(obj.names):
                    if i != j:
                        plog[a].correl = plog[a].correl or {}
                        pnat[a].correl = pnat[a].correl or {}
                        plog[a].correl[b] = float(cov.correl[i, j])
                        pnat[a].correl[b] = float(cov.correl[i, j])
        return plog, pnat

    @property
    def names(self) -> list[str]:
        return list(self.objective.names)

    @property
    def values(self) -> dict:
        """``{name: fitted value}`` on the natural scale."""
        return {n: p.value for n, p in self.params.items()}

    def ci95(self, name: str | None = None):
        """95 % interval(s) on the natural scale: profile-likelihood if computed, else Wald (log scale)."""
        if name is None:
            return {n: self.ci95(n) for n in self.names}
        self._check_name(name)
        if name in self.profiles:
            return list(self.profiles[name]["ci95"])
        return self.params[name].user_data["ci95"]

    def _check_name(self, name):
        if name not in self.params:
            raise FitError(f"{name!r} is not a fitted parameter{suggest(name, self.names)}; fitted: {', '.join(self.names)}")

    @property
    def priors(self) -> dict:
        return dict(self.objective.priors)

    def prior_summary(self) -> dict:
        """Per fitted parameter: its prior (median, 95 % range), the estimate, z against the
        prior and the shrinkage ``1 − posterior SD/prior SD``; see :func:`nanopk.fit.priors.prior_summary`."""
        from .priors import prior_summary

        return prior_summary(self)

    @property
    def prior_penalty(self) -> float:
        """``Σ ((x_j − x̃_j)/s_j)²`` at the estimate: the priors' share of −2 ln posterior."""
        return float(self.metrics.get("prior_penalty", 0.0))

    @property
    def nfev(self) -> int:
        return int(self.metrics["n_evaluations"])

    # ------------------------------------------------------------------ refinements
    def profile(self, name: str | list | None = None, max_steps: int = 12):
        """Profile-likelihood 95 % interval(s); stored in ``profiles`` and the JSON.

        ``name`` may be one parameter, a list, or ``None`` for all.  Returns the
        profile dict (see :func:`nanopk.fit.uncertainty.profile`), or a dict of them.
        """
        if name is None or isinstance(name, (list, tuple)):
            names = self.names if name is None else list(name)
            return {n: self.profile(n, max_steps) for n in names}
        self._check_name(name)
        prof = _profile(self, name, max_steps=max_steps)
        self.profiles[name] = prof
        self.params[name].user_data["ci95_profile"] = prof["ci95"]
        if prof["open"]:
            note = (f"profile likelihood of {name} does not reach the 95 % threshold toward the "
                    f"{' and '.join(prof['open'])} bound: the parameter is practically unidentifiable on that side")
            if note not in self.warnings:
                self.warnings.append(note)
        if "better_optimum" in prof:
            note = f"profiling {name} found a lower χ² at {name} = {prof['better_optimum']:.4g}: the fit was a local optimum; refit with multistart"
            if note not in self.warnings:
                self.warnings.append(note)
        return prof

    def wald_unreliable(self) -> dict:
        """``{name: reason}`` of the parameters whose Wald interval cannot be trusted.

        At a bound, or with the interval cut by a bound (the quadratic approximation
        ends at the bound), without an interval (singular covariance), or spanning more
        than :data:`WALD_MAX_FOLD` (the log-likelihood is far from quadratic over such
        a range).
        """
        at_bound = dict(self.flags.get("at_bound", []))
        out = {}
        for name, p in self.params.items():
            ci = p.user_data.get("ci95")
            if name in at_bound:
                out[name] = f"at its {at_bound[name]} bound"
            elif ci is None:
                out[name] = p.user_data.get("no_ci") or "no Wald interval"
            elif ci[0] > 0 and ci[1] / ci[0] > WALD_MAX_FOLD:
                out[name] = f"Wald interval spans {ci[1] / ci[0]:.3g}-fold (> {WALD_MAX_FOLD:g})"
            elif ci[0] <= p.min or ci[1] >= p.max:
                out[name] = f"Wald interval cut at the {'lower' if ci[0] <= p.min else 'upper'} bound"
        return out

    def auto_profile(self, max_parameters: int = AUTO_PROFILE_MAX) -> dict:
        """Profile-likelihood intervals wherever the Wald interval is unreliable (:meth:`wald_unreliable`).

        At most ``max_parameters`` are profiled (at-bound and interval-less ones first,
        then the widest); every other unreliable one gets a warning saying why and how to
        profile it.  Returns ``{name: reason}`` of the parameters found unreliable
        (also ``self.unreliable_wald``).
        """
        bad = self.wald_unreliable()
        self.unreliable_wald = dict(bad)

        def width(n):
            ci = self.params[n].user_data.get("ci95")
            return math.inf if not ci or ci[0] <= 0 else ci[1] / ci[0]

        at_bound = dict(self.flags.get("at_bound", []))
        order = sorted(bad, key=lambda n: (n not in at_bound and width(n) < math.inf, -width(n)))
        for k, name in enumerate(order):
            if name in self.profiles:
                continue
            if k >= max_parameters:
                note = (f"{name}: {bad[name]}; not profiled automatically (only {max_parameters} are: at a bound or without an interval first, then the widest): "
                        f"use result.profile({name!r})")
                if note not in self.warnings:
                    self.warnings.append(note)
                continue
            try:
                self.profile(name)
            except FitError as exc:
                note = f"{name}: {bad[name]}, and its profile likelihood failed ({exc}); its interval is unknown"
                if note not in self.warnings:
                    self.warnings.append(note)
        return bad

    def mcmc(self, steps: int = 1000, nwalkers: int | None = None, burn: int | None = None, thin: int = 1,
             progress: bool | None = None, seed: int | None = 0):
        """Posterior samples with emcee (``pip install 'nanopk[mcmc]'``); see :class:`MCMCResult`.

        ``progress``: a bar on stderr (default: only when stderr is a terminal).
        """
        self.mcmc_result = run_mcmc(self, steps=steps, nwalkers=nwalkers, burn=burn, thin=thin, progress=progress, seed=seed)
        return self.mcmc_result

    @property
    def mcmc_chain(self) -> pd.DataFrame | None:
        """Posterior samples (natural scale) of the last :meth:`mcmc` run, or ``None``."""
        return None if self.mcmc_result is None else self.mcmc_result.chain

    def sample_parameters(self, n: int, seed: int | None = None) -> pd.DataFrame:
        """Parameter sets drawn from the fitted covariance (log scale); see :func:`nanopk.fit.sample_parameters`."""
        return sample_parameters(self, n, seed)

    def parameter_draws(self, n: int, seed: int = 0) -> tuple[list[dict], str | None]:
        """Up to ``n`` parameter sets representing this fit's uncertainty, and their source.

        The posterior draws of :meth:`mcmc` when it ran (``"mcmc"``, a random subset of
        the chain), else draws from the covariance (``"covariance"``,
        :meth:`sample_parameters`); ``([], None)`` for ``n <= 0`` or when the covariance
        cannot be sampled (a ``RuntimeWarning`` says why).
        """
        if n <= 0:
            return [], None
        rng = np.random.default_rng(seed)
        chain = self.mcmc_chain
        if chain is not None and len(chain):
            idx = rng.choice(len(chain), size=min(n, len(chain)), replace=False)
            return chain.iloc[np.sort(idx)].to_dict("records"), "mcmc"
        try:
            draws = self.sample_parameters(n, seed=seed)
        except (FitError, ValueError, np.linalg.LinAlgError) as exc:
            warnings.warn(f"no intervals: could not sample the fit's parameters ({exc})", RuntimeWarning, stacklevel=3)
            return [], None
        return draws.to_dict("records"), "covariance"

    def delivery(self, n_samples: int = 200, seed: int = 0, dose=None, params: dict | None = None) -> dict:
        """Tumour delivery (DE24, DE168, DEmax …) of the fitted model, with 95 % intervals.

        :func:`nanopk.delivery.delivery` of :attr:`model` at the fitted values (``params``
        override them) over :meth:`parameter_draws`, plus what only a fit knows:
        ``fit_status`` (``success``, ``converged``, ``covariance``, ``message``);
        prediction-profile intervals for DE24/DE168/DEmax when the covariance is unusable
        or a Wald interval unreliable (:func:`nanopk.delivery.prediction_profile`); the
        blood half-life read over the data's terminal window with the data's own NCA
        half-life beside it (``t_half_blood_nca_h``); and each metric that needs the
        model past the last measurement marked ``extrapolated``.

        The result is also stored as ``extra_json["delivery"]``, so :meth:`to_json`
        carries it (DESIGN.md's fit JSON).

        Raises
        ------
        ModelError
            If the model has no ``tumour`` observable.
        """
        from ..delivery import (DE_METRICS, METRICS, delivery, flag_extrapolation, observed_blood_kinetics,
                                prediction_profile, sampled_window)
        from ..errors import NanopkError

        model = self.model
        values = {n: p.value for n, p in self.params.items() if n in model.parameters}
        values.update({k: float(v) for k, v in (params or {}).items() if k in model.parameters})
        if "tumour" not in model.observable_names:  # before drawing: the draws would be wasted
            delivery(model)  # raises the ModelError that says what to use instead
        data = observed_blood_kinetics(self.predictions)
        sampled = sampled_window(self.predictions) if data is None else None  # no blood measured
        window = data["window"] if data is not None else sampled
        draws, source = self.parameter_draws(n_samples, seed)
        result = delivery(model, values, draws, source=source, dose=dose, half_life_window=window)
        unc = result["uncertainty"]
        status = self._delivery_status()
        result["fit_status"] = status
        if unc.get("source") is None and n_samples > 0:
            why = (status["message"] if not status["success"]
                   else (self.status.covariance.reason if self.status is not None else None) or "no draws")
            unc["note"] = (f"no intervals: the fit's covariance is not available ({why}); DE24/DE168/DEmax get "
                           "prediction-profile intervals instead; for the others refit with the identifiable default "
                           "(vary=None), or run result.mcmc() then delivery_efficiency(result) for posterior sampling")
            for k in METRICS:
                if result[k].get("value") is not None:
                    result[k]["note"] = "no CI: " + unc["note"][len("no intervals: "):]
        if unc.get("source") == "covariance" and self.unreliable_wald:
            unc["note"] = ("DE24/DE168/DEmax: prediction-profile intervals; the other metrics': covariance draws, "
                           "approximate because the Wald approximation is unreliable for "
                           + ", ".join(f"{n} ({w})" for n, w in self.unreliable_wald.items())
                           + "; for posterior-sampling intervals run result.mcmc() then delivery_efficiency(result)")
        if n_samples > 0 and (unc.get("source") is None or self.unreliable_wald):
            # The covariance is unusable (no draws) or its Wald approximation unreliable for some
            # parameter: the delivery efficiencies get prediction-profile intervals instead.
            why = "the covariance is unusable" if unc.get("source") is None else "a fitted parameter's Wald interval is unreliable"
            for k in DE_METRICS:
                item = result[k]
                if item.get("value") is None:
                    continue
                try:
                    prof = prediction_profile(self, k)
                except (NanopkError, ValueError, np.linalg.LinAlgError) as exc:
                    item["note"] = f"no prediction profile either ({exc})"
                    continue
                item["ci95_covariance"] = item.get("ci95")
                item["ci95"] = None if None in prof["ci95"] else prof["ci95"]
                item["ci_method"] = "prediction profile"
                item["note"] = (f"95 % prediction-profile interval ({why})" if not prof["open"] else
                                f"prediction profile open toward the {' and '.join(prof['open'])} side: "
                                f"[{prof['ci95'][0] or 'open'}, {prof['ci95'][1] or 'open'}]; {why}")
            unc["de_method"] = "prediction profile"
        if data is not None:
            w0, w1 = data["window"]
            result["t_half_blood_h"]["window_h"] = [w0, w1]
            result["t_half_blood_h"]["note"] = f"model, log-linear over {w0:.3g}-{w1:.3g} h (the data's terminal window)"
            nca = data["nca"]
            result["t_half_blood_nca_h"] = {
                "value": None if nca is None else nca["t_half_h"], "ci95": None, "unit": "h",
                "n_points": None if nca is None else nca["n_points"], "adj_r2": None if nca is None else nca["adj_r2"],
                "window_h": [w0, w1],
                "note": (f"data (NCA): λz over the last {nca['n_points']} blood means, {w0:.3g}-{w1:.3g} h, "
                         f"adjusted R² {nca['adj_r2']:.3f}"
                         + (f"; {nca['n_plateau']} trailing non-declining point(s) left out as a plateau"
                            if nca.get("n_plateau") else "")) if nca is not None
                        else f"data (NCA): no declining terminal phase of ≥ 3 blood points; model read over {w0:.3g}-{w1:.3g} h",
            }
        if sampled is not None and result.get("t_half_blood_h", {}).get("value") is not None:
            result["t_half_blood_h"]["window_h"] = list(sampled)
            result["t_half_blood_h"]["note"] = (f"model, log-linear over {sampled[0]:.3g}-{sampled[1]:.3g} h, the sampled "
                                                "window: no blood was measured, so no NCA half-life")
        if isinstance(self.predictions, pd.DataFrame):
            flag_extrapolation(result, self.predictions)
        self.extra_json["delivery"] = {k: v for k, v in result.items() if k != "model"}
        return result

    def _delivery_status(self) -> dict:
        """``{"success", "converged", "covariance", "message"}`` for :meth:`delivery`."""
        status = self.status
        converged = status.optimizer.converged if status is not None else self.flags.get("converged")
        covariance = status.covariance.state if status is not None else None
        message = self.message
        if status is not None and converged and status.covariance.reason and covariance != "ok":
            message = status.covariance.reason  # says which parameters are undetermined
        return {"success": bool(self.success), "converged": converged, "covariance": covariance, "message": message}

    def _delivery_inputs(self, params, n_samples: int, seed: int):
        """``(model, values, draws)`` for :func:`nanopk.delivery.plot_delivery`."""
        model = self.model
        values = {n: p.value for n, p in self.params.items() if n in model.parameters}
        values.update({k: float(v) for k, v in (params or {}).items() if k in model.parameters})
        return model, values, self.parameter_draws(n_samples, seed)[0]

    def simulate(self, times_h, dataset: str | None = None, **options) -> pd.DataFrame:
        """Simulate the fitted model for ``dataset`` (its dose and its own parameters)."""
        d = self._dataset(dataset)
        opts = {"rtol": self.objective.rtol, "atol": self.objective.atol, "backend": self.objective.backend, **options}
        return self.models[d.name].simulate(times_h, dose=d.dose_ug, **opts)

    def _dataset(self, dataset):
        ds = self.objective.datasets
        if dataset is None:
            if len(ds) > 1:
                raise FitError(f"this fit has {len(ds)} datasets; name one: {', '.join(d.name for d in ds)}")
            return ds[0]
        for d in ds:
            if d.name == dataset:
                return d
        names = [d.name for d in ds]
        raise FitError(f"unknown dataset {dataset!r}{suggest(str(dataset), names)}; datasets: {', '.join(names)}")

    # ------------------------------------------------------------------ output
    def to_dict(self) -> dict:
        """Everything :meth:`to_json` writes, as a dict."""
        obj = self.objective
        params = {}
        for name, p in self.params.items():
            u = p.user_data
            entry = {
                "value": p.value, "stderr": p.stderr, "unit": u["unit"], "ci95": u["ci95"],
                "start": u["start"], "bounds": [p.min, p.max], "log_scale": u["log_scale"],
                "model_parameter": u["model_parameter"], "dataset": u["dataset"],
                "stderr_log": u["stderr_log"], "at_bound": u["at_bound"],
            }
            if "ci95_profile" in u:
                entry["ci95_profile"] = u["ci95_profile"]
            if u.get("no_ci") and entry["ci95"] is None:
                entry["no_ci"] = u["no_ci"]
            params[name] = entry
        names = [d.name for d in obj.datasets]
        datasets = []
        for d in obj.datasets:
            src = d.meta.get("source") if isinstance(d.meta.get("source"), dict) else {}
            datasets.append({"name": d.name, "dose_ug": d.dose_ug, "n_rows": int(len(d.rows)), "fixed": d.fixed,
                             "citation": src.get("citation"), "doi": src.get("doi"),
                             "weighting": d.weighting or None, "dose_note": d.dose_note or None})
        correl = None
        if self.covariance.correl is not None:
            correl = {a: {b: float(self.covariance.correl[i, j]) for j, b in enumerate(obj.names) if j != i}
                      for i, a in enumerate(obj.names)}
        out = {
            **provenance(self._base_model),  # which nanopk and which equations wrote this fit
            "model": self._base_model.name,
            "dataset": names[0] if len(names) == 1 else names,
            "datasets": datasets,
            "success": self.success,
            "message": self.message,
            "status": self.status.to_dict() if self.status is not None else None,
            "params": params,
            "correlation": correl,
            "metrics": dict(self.metrics),
            "warnings": list(self.warnings),
            "flags": {
                "converged": self.flags.get("converged"),
                "singular": self.flags.get("singular"),
                "at_bound": [{"name": n, "side": s} for n, s in self.flags.get("at_bound", [])],
                "correlated": [{"a": a, "b": b, "rho": r} for a, b, r in self.flags.get("correlated", [])],
                "unidentifiable": list(self.flags.get("unidentifiable", [])),
            },
            "excluded": self.excluded,
            "priors": self._priors_dict(),
            "prior_summary": self.prior_summary(),
            "options": {k: v for k, v in self.options.items() if k != "optimizer"},
            "multistart": [
                {"start": dict(zip(obj.names, [s.to_natural(v) for s, v in zip(obj.specs, o.x_start)])),
                 "chisqr": o.chisqr, "converged": o.converged, "nfev": o.nfev} for o in self.outcomes
            ],
        }
        if self.profiles:
            out["profiles"] = {n: {"ci95": p["ci95"], "open": p["open"], "nfev": p["nfev"]} for n, p in self.profiles.items()}
        if self.mcmc_result is not None:
            out["mcmc"] = self.mcmc_result.to_dict()
        out.update(self.extra_json)
        return _clean(out)

    def _prior_on_log_scale(self) -> dict[str, bool]:
        """Per prior: on ln θ (log-normal on θ), or on θ itself (normal)."""
        log = {spec.name: spec.log for spec in self.objective.specs}
        return {n: log[n] for n in self.objective.priors}

    def _priors_dict(self) -> dict:
        log = self._prior_on_log_scale()
        return {n: ({"median": m, "ln_sd": sd, "distribution": "lognormal"} if log[n]
                    else {"mean": m, "sd": sd, "distribution": "normal"}) for n, (m, sd) in self.objective.priors.items()}

    def to_json(self, path=None, indent: int = 2) -> str:
        """The fit as JSON (keys: ``model``, ``dataset``, ``success``, ``params``, ``metrics``,
        ``warnings`` … and whatever :attr:`extra_json` holds); written to ``path`` if given."""
        text = json.dumps(self.to_dict(), indent=indent, allow_nan=False)
        if path is not None:
            Path(path).write_text(text + "\n", encoding="utf-8")
        return text

    def report(self) -> str:
        """A plain-text report: parameters with intervals, goodness of fit, warnings."""
        m = self.metrics
        names = [d.name for d in self.objective.datasets]
        banner = self.status.banner() if self.status is not None else None
        lines = [banner] if banner else []
        lines += [
            f"nanopk fit of model {self._base_model.name!r} to {', '.join(names)}",
            f"  success: {self.success} ({self.message})",
            *(self.status.lines() if self.status is not None else []),
            f"  error model: {self.options.get('error_model')}, method: {self.options.get('method')}, "
            f"jacobian: {self.options.get('jacobian')}, backend: {self.objective.backend}",
            "",
            "Parameters (95 % CI on the natural scale; Wald on log scale unless profiled):",
        ]
        width = max(len(n) for n in self.names)
        for name, p in self.params.items():
            u = p.user_data
            ci = self.ci95(name)
            how = ("profile" if name not in self.unreliable_wald
                   else f"profile; Wald unreliable: {self.unreliable_wald[name]}") if name in self.profiles else "wald"
            ci_text = ("[" + ", ".join("open" if c is None else f"{c:.4g}" for c in ci) + f"] ({how})" if ci
                       else f"({u.get('no_ci') or 'no CI'})")
            se = f"± {p.stderr:.3g}" if p.stderr is not None else "± n/a"
            flag = f"  AT {u['at_bound'].upper()} BOUND" if u["at_bound"] else ""
            lines.append(f"  {name:<{width}} = {p.value:<11.5g} {se:<11} {u['unit']:<14} {ci_text}  (start {u['start']:.4g}){flag}")
        if self.selection is not None:
            lines += ["", *self.selection.lines()]
        lines += [
            "",
            "Goodness of fit:",
            f"  n_points {m['n_points']} (+{m['n_censored']} censored), n_varied {m['n_varied']}, "
            f"chisqr {m['chisqr']:.4g}, redchi {m['redchi']:.4g}, AIC {m['aic']:.4g}, BIC {m['bic']:.4g}",
            f"  R² (log) {m['r2_log']:.3f}, AAFE {m['aafe']:.3f}, AFE {m['afe']:.3f}, "
            f"within 2-fold {100 * m['frac_within_2fold']:.1f} %, within 3-fold {100 * m['frac_within_3fold']:.1f} %",
            f"  {m['n_evaluations']} objective evaluations ({m['n_simulations']} simulations) in {m['wall_time_s']:.2f} s",
            # How the rows were weighted (animals, means ± SD) and which dose a %ID dataset used.
            *(f"  {d.name}: {note}" for d in self.objective.datasets for note in (d.weighting, d.dose_note) if note),
        ]
        from .priors import summary_lines

        lines += summary_lines(self)
        if self.flags.get("correlated"):
            lines.append("  correlations |ρ| > 0.95: " + ", ".join(f"{a}/{b} {r:+.3f}" for a, b, r in self.flags["correlated"]))
        if self.excluded:
            lines += ["", "Excluded rows:"]
            lines += [f"  {e['dataset']}: {e['tissue']} (rows {', '.join(map(str, e['rows']))}): {e['reason']}" for e in self.excluded]
        if self.warnings:
            lines += ["", "Warnings:"] + [f"  - {w}" for w in self.warnings]
        return "\n".join(lines)

    def __repr__(self) -> str:
        vals = ", ".join(f"{n}={p.value:.4g}" for n, p in self.params.items())
        return f"<FitResult {self._base_model.name!r} success={self.success} {vals}>"

    def plot(self, path=None, **kwargs):
        """Observed (± SD) vs predicted time courses per tissue (log y) and predicted vs
        observed with 1:1 and 2-fold lines; see :func:`nanopk.fit.plot.plot_fit`."""
        from .plot import plot_fit

        return plot_fit(self, path=path, **kwargs)


def _delivery_of(fit: FitResult, params=None, n_samples: int = 200, seed: int = 0, dose=None) -> dict:
    return fit.delivery(n_samples=n_samples, seed=seed, dose=dose, params=params)


def _register_with_delivery() -> None:
    # nanopk.delivery_efficiency(fit) and plot_delivery(fit) dispatch on the type, which
    # the delivery layer learns from here (it imports no fit code).
    from ..delivery import register_source

    register_source(FitResult, _delivery_of, lambda fit, params, n, seed: fit._delivery_inputs(params, n, seed))


_register_with_delivery()
