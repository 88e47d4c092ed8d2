"""Compare nanoparticle groups (coatings, sizes): which mechanisms differ, and by how much.

Given biodistribution data of two or more groups (e.g. PEG-coated and bare particles of
the same core), :func:`compare` fits

- each group alone (its own parameters, blood half-life and delivery);
- all groups jointly, the parameters in ``shared`` common to all groups and the other
  varied parameters group-specific (the *full* model);
- for each parameter group G (e.g. phagocytic uptake = ``Kmax_*``; extravasation =
  ``PAC_*``/``P_*``), the *reduced* model in which G is shared too.  The groups are
  the ones the mechanism that declares each parameter names (:attr:`nanopk.Part.groups`,
  :func:`nanopk.mechanisms.declare`), so a new mechanism brings its own.

The joint fits are :func:`nanopk.fit` of a :class:`nanopk.fit.JointObjective`: each
group's own objective, built exactly as its separate fit (the same error model,
weighting, censoring and priors), stacked, with the shared parameters tied.  So the
full and the reduced χ² of a test are of one likelihood, whatever ``error_model``.
With priors the statistic uses χ² plus the prior rows' share (−2 ln posterior; a
tied parameter's prior counts once).

Likelihood-ratio test of "G does not differ between groups" (Wilks)::

    known σ (every row has an SD):  Λ = χ²_reduced − χ²_full
    unknown σ (profiled out):       Λ = N · ln(χ²_reduced / χ²_full)
    p = P(χ²_df > Λ),   df = (number of groups − 1) · |G|

    ΔAIC = AIC_full − AIC_reduced = 2·df − Λ     (negative: the groups differ)

Ratios of group-specific parameters to the reference group (the first), with 95 %
intervals by the delta method on the log scale, from the full fit's covariance:

    ln R = x_g − x_ref,   Var(ln R) = Var x_g + Var x_ref − 2 Cov(x_g, x_ref),
    95 % CI = exp(ln R ± 1.96 · SE).

Groups may also differ by :class:`nanopk.Particle` (the mechanistic route: the same
physiology, a different particle; ``particles={"PEG": p1, "bare": p2}``): each group
is then fitted with ``load_model(model, particle=p)``, its objective in the joint
fits too; the full model ties nothing (it is the groups' separate fits side by side).

References
----------
1. Wilks SS. The large-sample distribution of the likelihood ratio for testing
   composite hypotheses. Ann Math Stat 1938;9:60.
2. Burnham KP, Anderson DR. Model Selection and Multimodel Inference, 2nd ed.
   Springer 2002.
3. Owens DE, Peppas NA. Opsonization, biodistribution, and pharmacokinetics of
   polymeric nanoparticles. Int J Pharm 2006;307:93 (PEG and phagocytic uptake).
"""
from __future__ import annotations

import json
import math
import sys as _sys
import types as _types
import warnings
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from .errors import FitError, ModelError, suggest
from .fit.uncertainty import Z95

__all__ = ["compare", "Comparison", "default_parameter_groups", "observed_kinetics", "terminal_slope", "same_data"]

#: Below this fraction of points within 2-fold (the customary PBPK acceptance, see
#: :mod:`nanopk.fit.metrics`) a group's fit is flagged as poor in the summary.
POOR_FIT_WITHIN_2FOLD = 0.5

def default_parameter_groups(model, names: Sequence[str]) -> dict[str, list[str]]:
    """``{group: [parameter, ...]}`` of ``names``, as the parts of ``model`` that declare them group them.

    A parameter whose part names no group (:attr:`nanopk.Part.groups`) is a group of
    its own, named after it.
    """
    declared = {name: group for part in model.parts for name, group in part.groups}
    groups: dict[str, list[str]] = {}
    for name in names:
        groups.setdefault(declared.get(name, name), []).append(name)
    return groups


def _chi2_sf(x: float, df: int) -> float:
    from scipy.stats import chi2

    return float(chi2.sf(max(x, 0.0), df))


class Comparison:
    """What :func:`compare` returns.

    Attributes
    ----------
    groups : list of str
        Group names, the reference first.
    fits : dict
        ``{group: FitResult}`` of each group fitted alone.
    full : FitResult
        The joint fit with ``shared`` parameters common and the rest group-specific
        (on the particle route nothing is shared: the separate fits side by side).
    reduced : dict
        ``{parameter group: FitResult}`` joint fits with that group shared too
        (without covariance: they give only χ²).
    tests : pandas.DataFrame
        One row per parameter group: ``parameters``, ``df``, ``statistic``,
        ``lrt_p``, ``delta_aic``, ``chisqr_full``, ``chisqr_reduced`` (data χ²),
        ``prior_penalty_full``, ``prior_penalty_reduced`` (0 without priors).
    ratios : pandas.DataFrame
        One row per group-specific parameter and non-reference group: ``parameter``,
        ``group``, ``reference``, ``ratio``, ``ci95_low``, ``ci95_high``, ``value``,
        ``reference_value``, ``prob_ratio_above_1`` (the Bayesian alternative to the
        test: P(ratio > 1) = Φ(ln r̂ / se) from the normal approximation of the joint
        fit's log parameters — the posterior probability with priors, the flat-prior
        one without; ``None`` without a covariance).
    pk : dict
        ``{group: {"t_half_blood_h", "t50_blood_h", "DE24", ...}}`` (each
        ``{value, ci95, unit}``) from the group's own fit.
    observed : dict
        ``{group: {tissue: {...}}}``: the data themselves, without a model — AUC,
        Cmax, mean %ID per tissue and the blood half-life by log-linear regression
        (:func:`observed_kinetics`).
    """

    def __init__(self, *, model_name, groups, fits, full, reduced, tests, ratios, pk, options, sigma_known,
                 attribution=None):
        self.model_name = model_name
        self.attribution = attribution
        self.observed = {g: observed_kinetics(f.predictions) for g, f in fits.items()}
        self.groups = groups
        self.fits = fits
        self.full = full
        self.reduced = reduced
        self.tests = tests
        self.ratios = ratios
        self.pk = pk
        self.options = options
        self.sigma_known = sigma_known

    @property
    def problems(self) -> list[str]:
        """Every fit behind the comparison that did not converge or whose covariance failed."""
        out = []
        for label, f in [*((f"group {g!r}", f) for g, f in self.fits.items()),
                         *([("the joint (full) fit", self.full)] if self.full is not None else [])]:
            if not f.success:
                out.append(f"{label}: {f.message}")
        for test, red in self.reduced.items():
            converged = red.get("converged") if isinstance(red, dict) else red.flags.get("converged")
            if not converged:
                out.append(f"the reduced fit of test {test!r} did not converge"
                           + ("" if isinstance(red, dict) else f": {red.outcome.message}"))
        return out

    @property
    def success(self) -> bool:
        """Every group's fit and the joint fit converged with a covariance, and every reduced fit converged
        (the reduced fits give only χ², so their covariance does not matter)."""
        return not self.problems

    def test(self, group: str) -> dict:
        """The test row of one parameter group as a dict."""
        if group not in self.tests.index:
            raise KeyError(f"no test {group!r}{suggest(group, list(self.tests.index))}; tests: {', '.join(self.tests.index)}")
        return self.tests.loc[group].to_dict()

    def ratio(self, parameter: str, group: str | None = None) -> dict:
        """Ratio of ``parameter`` in ``group`` (default: the second) to the reference group."""
        group = group or self.groups[1]
        hit = self.ratios[(self.ratios["parameter"] == parameter) & (self.ratios["group"] == group)]
        if hit.empty:
            raise KeyError(f"no ratio for {parameter!r} in group {group!r}{suggest(parameter, set(self.ratios['parameter']))}")
        return hit.iloc[0].to_dict()

    def __repr__(self) -> str:
        tests = ", ".join(f"{g}: p={r.lrt_p:.3g}" for g, r in self.tests.iterrows())
        return f"<Comparison {self.model_name!r} {' vs '.join(self.groups)}; {tests}>"

    def report(self) -> str:
        """Plain-text report (same as :meth:`summary`)."""
        return self.summary()

    def summary(self) -> str:
        """Plain-text summary: tests, ratios, half-lives and delivery."""
        problems = self.problems
        lines = [f"*** FIT FAILED: {'; '.join(problems)}; the tests and ratios below are not to be reported ***"] if problems else []
        lines.append(f"nanopk comparison of {' vs '.join(self.groups)} (model {self.model_name!r}; "
                     f"{'known SDs: Δχ²' if self.sigma_known else 'σ profiled: N·ln(χ²_r/χ²_f)'} LRT)")
        lines.append("Fit quality of each group's own fit (a test between groups means little if the model misses the data):")
        for g, f in self.fits.items():
            q = f.metrics
            poor = q.get("frac_within_2fold", 1.0) < POOR_FIT_WITHIN_2FOLD
            st = getattr(f, "status", None)
            state = (f"optimizer {st.optimizer.label}, covariance {st.covariance.state}, adequacy {st.adequacy.verdict}"
                     if st is not None else f"success {f.success}")
            lines.append(f"  {g}: R²(log) {q.get('r2_log', float('nan')):.3g}; {100 * q.get('frac_within_2fold', float('nan')):.0f} % of "
                         f"points within 2-fold; {state}"
                         + ("  <- POOR FIT: the model does not describe these data; read the tests below with caution" if poor else ""))
        for g, f in self.fits.items():
            for e in f.excluded:  # the rows the model cannot see are not part of any test below
                lines.append(f"  {g}: left out {e['tissue']} (rows {', '.join(map(str, e['rows']))}): {e['reason']}")
        lines.append("Does each mechanism differ between groups?")
        for g, r in self.tests.iterrows():
            lines.append(f"  {g:<28} df={int(r['df'])}  Λ={r['statistic']:.3g}  p={r['lrt_p']:.3g}  ΔAIC={r['delta_aic']:+.3g}"
                         f"  ({', '.join(r['parameters'])})")
        posterior = "posterior" if self.full.priors else "flat-prior"
        lines.append(f"Parameter ratios (group / {self.groups[0]}), 95 % CI (delta method, log scale), "
                     f"and P(ratio > 1) ({posterior}, normal approximation):")
        from .fit.result import WALD_MAX_FOLD

        for _, r in self.ratios.iterrows():
            ci = "n/a" if r["ci95_low"] is None or pd.isna(r["ci95_low"]) else f"[{r['ci95_low']:.3g}, {r['ci95_high']:.3g}]"
            if ci != "n/a" and (r["ci95_low"] <= 0 or r["ci95_high"] / r["ci95_low"] > WALD_MAX_FOLD ** 2):
                # an interval over more than 10^4-fold is the delta method's answer to "not
                # determined": say that, rather than print [4e-35, 2e+34]
                fold = math.inf if r["ci95_low"] <= 0 else r["ci95_high"] / r["ci95_low"]
                ci = f"(no useful interval: it spans {fold:.2g}-fold; these data do not determine this ratio)"
            prob = r.get("prob_ratio_above_1")
            prob = "" if prob is None or pd.isna(prob) else f"  P(>1) {prob:.3f}"
            lines.append(f"  {r['parameter']:<20} {r['group']}: {r['ratio']:.3g} {ci}{prob}")
        lines.append("Observed (no model): blood t½ by log-linear regression, AUC over the sampled times:")
        for g, o in self.observed.items():
            b = o.get("blood", {})
            parts = [f"blood t½ {b['t_half_h']:.3g} h ({b['n_points']} pts)" if b.get("t_half_h") else "blood t½ n/a"]
            parts += [f"{tis} AUC {e['auc']:.3g} %ID·h" for tis, e in o.items() if e.get("auc") is not None]
            lines.append(f"  {g}: " + "; ".join(parts))
        lines.append("Blood kinetics and delivery (each group's own fit):")
        for g, m in self.pk.items():
            parts = [f"{k} {v['value']:.3g}" + (f" [{v['ci95'][0]:.3g}, {v['ci95'][1]:.3g}]" if v.get("ci95") else "")
                     + (" (outside its draws' range)" if v.get("note") else "")
                     for k, v in m.items() if isinstance(v, dict) and v.get("value") is not None]
            lines.append(f"  {g}: " + "; ".join(parts))
        if self.attribution is not None and len(self.attribution):
            a = self.attribution
            metric = a["metric"].iloc[0]
            lines.append(f"Which particle-derived parameter makes the difference (a priori, model defaults): {metric} of "
                         f"{self.groups[0]} with one parameter at the other group's value")
            for g, rows in a.groupby("group", sort=False):
                lines.append(f"  {g}: {metric} {rows['metric_group'].iloc[0]:.3g} vs {rows['metric_reference'].iloc[0]:.3g} "
                             f"({self.groups[0]})")
                for _, r in rows.iterrows():
                    swapped = "n/a" if r["metric_swapped"] is None or pd.isna(r["metric_swapped"]) else f"{r['metric_swapped']:.3g}"
                    share = "" if r["share"] is None or pd.isna(r["share"]) else f", {100 * r['share']:.0f} % of the difference"
                    lines.append(f"    {r['parameter']:<24} {r['reference_value']:.3g} -> {r['value']:.3g}: {metric} {swapped}{share}")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        from ._json import json_safe as _clean
        from ._json import provenance

        tests = {g: {"parameters": list(r["parameters"]), "df": int(r["df"]), "statistic": r["statistic"],
                     "lrt_p": r["lrt_p"], "delta_aic": r["delta_aic"], "chisqr_full": r["chisqr_full"],
                     "chisqr_reduced": r["chisqr_reduced"], "prior_penalty_full": r["prior_penalty_full"],
                     "prior_penalty_reduced": r["prior_penalty_reduced"]} for g, r in self.tests.iterrows()}
        return _clean({
            # the reference group's equations; with `particles` each group's fit carries its own
            **provenance(self.fits[self.groups[0]]._base_model),
            "model": self.model_name,
            "success": self.success,
            "problems": self.problems,
            "groups": self.groups,
            "reference": self.groups[0],
            "fits": {g: f.to_dict() for g, f in self.fits.items()},
            "full_fit": self.full.to_dict() if self.full is not None else None,
            "tests": tests,
            "lrt_p": {g: t["lrt_p"] for g, t in tests.items()},
            "delta_aic": {g: t["delta_aic"] for g, t in tests.items()},
            "ratios": self.ratios.to_dict("records"),
            "attribution": None if self.attribution is None else self.attribution.to_dict("records"),
            "half_lives": {g: {k: m.get(k) for k in ("t_half_blood_h", "t50_blood_h")} for g, m in self.pk.items()},
            "delivery": {g: {k: m[k] for k in ("DE24", "DE168", "DEmax") if k in m} for g, m in self.pk.items()},
            "pk": self.pk,
            "observed": self.observed,
            "sigma_known": self.sigma_known,
            "options": self.options,
        })

    def to_json(self, path=None, indent: int = 2) -> str:
        """JSON with both groups' fits, the tests (``lrt_p``, ``delta_aic``), half-lives and delivery."""
        text = json.dumps(self.to_dict(), indent=indent, allow_nan=False)
        if path is not None:
            Path(path).write_text(text + "\n", encoding="utf-8")
        return text

    # ------------------------------------------------------------------ plots
    def plot(self, path=None, figsize=None):
        """Both groups overlaid per tissue on shared log axes, and the forest plot of the
        parameter ratios; see :func:`nanopk.fit.plot.plot_compare`."""
        from .fit.plot import plot_compare

        return plot_compare(self, path=path, figsize=figsize)

    def forest(self, ax=None, path=None):
        """Forest plot of parameter ratios (group / reference) with 95 % intervals, log x."""
        if ax is None:
            Figure = _figure_class()
            fig = Figure(figsize=(4.5, 0.45 * max(len(self.ratios), 2) + 1.2), layout="constrained")
            ax = fig.add_subplot()
        else:
            fig = ax.figure
        r = self.ratios.reset_index(drop=True)
        y = np.arange(len(r))[::-1]
        for k, (_, row) in enumerate(r.iterrows()):
            lo, hi = row["ci95_low"], row["ci95_high"]
            if lo is not None and not pd.isna(lo):
                ax.plot([lo, hi], [y[k], y[k]], color="C0")
            ax.plot([row["ratio"]], [y[k]], "s", color="C0")
        ax.axvline(1.0, color="0.5", ls="--")
        ax.set_xscale("log")
        ax.set_yticks(y)
        ax.set_ylim(-0.6, len(r) - 0.4)  # rows one unit apart, whatever the panel's height
        ax.set_yticklabels([f"{p} ({g})" for p, g in zip(r["parameter"], r["group"])], fontsize="small")
        ax.set_xlabel(f"ratio to {self.groups[0]} (95 % CI)")
        if path is not None:
            fig.savefig(path)
        return ax


def _figure_class():
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError("plots need matplotlib: pip install 'nanopk[plot]'") from None
    return Figure


# --------------------------------------------------------------------------- observed (NCA)
def terminal_slope(t, y, min_points: int = 3) -> dict | None:
    """λz of the observed curve: :func:`nanopk.nca.lambda_z` (the one estimator nanopk uses).

    Kept under this name for callers of ``nanopk.compare.terminal_slope``.
    """
    from .nca import lambda_z

    return lambda_z(t, y, min_points)


def observed_kinetics(predictions: pd.DataFrame, tissues=("blood", "liver", "spleen", "lung", "kidney", "tumour")) -> dict:
    """Non-compartmental summary of the observed %ID per tissue (no model).

    For each tissue present: ``auc`` (%ID·h, trapezoids from the first to the last
    observation, no extrapolation), ``cmax``, ``tmax``, ``t_last``, ``mean_pid``; for blood also
    ``t_half_h`` with its ``lambda_z``, ``n_points`` and ``adj_r2`` (:func:`terminal_slope`).
    """
    from .nca import auc as nca_auc

    out = {}
    obs = predictions[~predictions["censored"]] if "censored" in predictions else predictions
    for tissue in tissues:
        rows = obs[obs["observable"] == tissue]
        if rows.empty:
            continue
        g = rows.groupby("time_h")["observed"].mean().sort_index()
        t, y = g.index.to_numpy(float), g.to_numpy(float)
        entry = {"auc": nca_auc(t, y), "cmax": float(y.max()),
                 "tmax": float(t[int(np.argmax(y))]), "t_last": float(t[-1]), "mean_pid": float(y.mean()),
                 "times_h": t.tolist(), "values_pid": y.tolist()}
        if tissue == "blood":
            entry.update(terminal_slope(t, y) or {"t_half_h": None})
        out[tissue] = entry
    return out


# --------------------------------------------------------------------------- helpers
def same_data(a, b) -> bool:
    """True when two datasets (Dataset, path, bundled name or DataFrame) hold the same table.

    The same object, the same file, or equal tables with the same dose: comparing a
    group with itself would "test" nothing and report p = 1 for every mechanism.
    """
    if a is b:
        return True
    from .fit._data import _read

    try:
        a, b = _read(a), _read(b)
    except Exception:  # noqa: BLE001 - unreadable data is reported by the fit, with its own message
        return False
    if a is b:
        return True
    pa, pb = getattr(a, "path", None), getattr(b, "path", None)
    if pa is not None and pb is not None and Path(pa).resolve() == Path(pb).resolve():
        return True
    ta = a.table if hasattr(a, "table") else a
    tb = b.table if hasattr(b, "table") else b
    if not (isinstance(ta, pd.DataFrame) and isinstance(tb, pd.DataFrame)):
        return False
    dose_a = getattr(a, "meta", None) or getattr(ta, "attrs", {})
    dose_b = getattr(b, "meta", None) or getattr(tb, "attrs", {})
    same_dose = (dose_a.get("dose"), dose_a.get("dose_ug")) == (dose_b.get("dose"), dose_b.get("dose_ug"))
    return same_dose and ta.reset_index(drop=True).equals(tb.reset_index(drop=True))


def _sigma_known(fits) -> bool:
    """True when every fitted row of every group has a reported SD/SE (weights are real σ)."""
    for f in fits:
        pred = f.predictions
        if not (pred["sd"].notna().all()):
            return False
    return True


def _statistic(chi_full: float, chi_red: float, n: int, sigma_known: bool) -> float:
    if sigma_known:
        return max(chi_red - chi_full, 0.0)
    if chi_full <= 0 or chi_red <= 0:
        return 0.0
    return max(n * math.log(chi_red / chi_full), 0.0)


def _fit_quietly(*args, **kwargs):
    """``nanopk.fit`` with its FitWarning kept on the result, not raised at the caller."""
    from .fit import FitWarning, fit

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitWarning)
        return fit(*args, **kwargs)


def _ratios(full, groups, specific, reference) -> pd.DataFrame:
    """Delta-method ratios from a joint fit: ``NAME__group`` vs ``NAME__reference``."""
    obj = full.objective
    idx = {s.name: i for i, s in enumerate(obj.specs)}
    cov = full.covariance.covar
    rows = []
    for name in specific:
        ref = f"{name}__{reference}"
        for g in groups[1:]:
            key = f"{name}__{g}"
            if key not in idx or ref not in idx:
                continue
            i, j = idx[key], idx[ref]
            si, sj = obj.specs[i], obj.specs[j]
            vi, vj = si.to_natural(full.x[i]), sj.to_natural(full.x[j])
            ratio = vi / vj if vj else math.nan
            lo = hi = p_above = None
            if cov is not None and si.log and sj.log:
                var = cov[i, i] + cov[j, j] - 2 * cov[i, j]
                if var >= 0 and math.isfinite(var):
                    se = math.sqrt(var)
                    d = full.x[i] - full.x[j]
                    lo, hi = math.exp(d - Z95 * se), math.exp(min(d + Z95 * se, 700.0))
                    # P(ratio > 1) = P(ln ratio > 0) = Φ(d / se) under the normal (Laplace)
                    # approximation of ln ratio at the joint optimum: with priors, the
                    # posterior probability; without, the same under flat priors on ln θ
                    p_above = float(0.5 * math.erfc(-d / (se * math.sqrt(2.0)))) if se > 0 else float(d > 0)
            rows.append({"parameter": name, "group": g, "reference": reference, "ratio": ratio, "ci95_low": lo,
                         "ci95_high": hi, "value": vi, "reference_value": vj, "prob_ratio_above_1": p_above})
    return pd.DataFrame(rows, columns=["parameter", "group", "reference", "ratio", "ci95_low", "ci95_high", "value",
                                       "reference_value", "prob_ratio_above_1"])


def _minus_two_log_posterior(fit) -> float:
    """χ² of the data plus the prior rows' share: −2 ln(likelihood × prior) + const (χ² without priors)."""
    return float(fit.metrics["chisqr"]) + float(fit.metrics.get("prior_penalty", 0.0))


def joint_fit(models: Mapping, data: Mapping, vary: Sequence[str], tied: Sequence[str], fits: Mapping,
              fit_kwargs: Mapping, uncertainty: bool = True):
    """Fit the groups jointly through ``nanopk.fit(objective=JointObjective(...))``.

    Each group's objective is built from ``fit_kwargs`` exactly as its separate fit
    was (:func:`nanopk.fit.build_objective`: error model, weighting, censoring,
    priors), started at that fit's estimates; ``tied`` parameters take one value for
    every group (their start: the mean of the groups' on the log scale), the others
    in ``vary`` one per group (``NAME__<group>``).  The rest of ``fit_kwargs``
    (``method``, ``multistart`` …) goes to :func:`nanopk.fit`.
    """
    from .fit.core import _OBJECTIVE_KEYWORDS, build_objective
    from .fit.joint import JointObjective

    build = {k: v for k, v in fit_kwargs.items() if k in _OBJECTIVE_KEYWORDS and k not in ("vary", "shared", "checks")}
    optimise = {k: v for k, v in fit_kwargs.items() if k not in _OBJECTIVE_KEYWORDS}
    if "jacobian" in fit_kwargs:  # it sets the default solver tolerances of the objective too
        build["jacobian"] = fit_kwargs["jacobian"]
    if not uncertainty:  # the reduced fits give only χ²
        optimise.update(uncertainty=False, profile=False)
    parts = {}
    for g, model in models.items():
        start = {**dict(fit_kwargs.get("start") or {}), **{n: v for n, v in fits[g].values.items() if n in vary}}
        # checks=False: the plausibility rules ran (and were reported) in the group's own fit.
        parts[g] = build_objective(model, {g: data[g]}, vary=vary, **{**build, "start": start}, checks=False)
    return _fit_quietly(objective=JointObjective(parts, tied=list(tied)), **optimise)


def _group_pk(fit, n_samples: int, seed: int) -> dict:
    from .delivery import METRICS, metrics_with_intervals, observed_blood_kinetics

    model = fit.model
    values = {k: v for k, v in fit.values.items() if k in model.parameters}
    # The blood half-life is read over the data's sampled terminal window, as for a
    # single fit (FitResult.delivery): the curve's last quarter (126-168 h) is a plateau
    # fed by release from phagocytes long after the last blood sample (t½ ~1400 h).
    data = observed_blood_kinetics(fit.predictions)
    draws, source = fit.parameter_draws(n_samples, seed)
    out = metrics_with_intervals(model, values, draws, source=source, names=METRICS,
                                 half_life_window=None if data is None else data["window"])
    out.pop("_uncertainty", None)
    return out


# --------------------------------------------------------------------------- compare
def compare(model, datasets: Mapping, vary: Sequence[str] | None = None, shared: Sequence[str] | None = None,
            groups_of_parameters: Mapping[str, Sequence[str]] | None = None, particles: Mapping | None = None,
            n_samples: int = 100, seed: int = 0, **fit_kwargs) -> Comparison:
    """Fit groups of nanoparticles separately and jointly; test which mechanisms differ.

    Parameters
    ----------
    model : Model or str
        The model (or a bundled name / spec path; required as a name or spec for the
        particle route).
    datasets : dict
        ``{group name: dataset}`` (a :class:`nanopk.data.Dataset`, path, bundled name
        or DataFrame, as :func:`nanopk.fit` accepts), two or more; the first group is
        the reference of the ratios.  Names are made identifiers as the fit layer
        does (``"PEG 5k"`` → ``"PEG_5k"``), since they become parts of parameter names.
    vary : list of str, optional
        Parameters fitted in every group (default: what :func:`nanopk.fit` varies by
        default for the reference group's data).
    shared : list of str, optional
        Parameters common to all groups in the full model (default: none); the others
        in ``vary`` are group-specific and tested.
    groups_of_parameters : dict, optional
        ``{test name: [parameter, ...]}`` — the mechanisms to test, e.g.
        ``{"phagocytic uptake": ["Kmax_liver", "Kmax_spleen"]}``.  Default: the
        group-specific parameters grouped as the mechanisms that declare them group
        them (:func:`default_parameter_groups`).
    particles : dict, optional
        ``{group: Particle}``: each group uses ``load_model(model, particle=...)`` (the
        mechanistic route; same physiology, different particle).
    n_samples, seed :
        Draws for the intervals of each group's half-life and delivery (0: none).
    **fit_kwargs
        Passed to :func:`nanopk.fit` (``error_model``, ``rtol``, ``multistart`` …).

    Returns
    -------
    Comparison
        ``.tests`` (``lrt_p``, ``delta_aic`` per parameter group), ``.ratios``,
        ``.fits``, ``.pk`` (blood half-lives and delivery per group),
        ``.to_json()``, ``.plot()``, ``.forest()``, ``.summary()``.

    Raises
    ------
    FitError
        Fewer than two groups, two groups holding the same dataset, no ``vary``, names
        outside ``vary``, a keyword argument neither ``compare`` nor ``fit`` takes.
    """
    import inspect

    from .fit.core import check_keywords, fit as _fit
    from .model import Model
    from .spec import load_model

    # A misspelt keyword would otherwise reach scipy as a bare TypeError, after the first fits.
    fit_names = {n for n, p in inspect.signature(_fit).parameters.items() if p.kind is not p.VAR_KEYWORD}
    own = ["model", "datasets", "vary", "shared", "groups_of_parameters", "particles", "n_samples", "seed"]
    check_keywords({k: v for k, v in fit_kwargs.items() if k not in fit_names}, fit_kwargs.get("method", "least_squares"),
                   caller="compare", own=own)
    if not isinstance(datasets, Mapping) or len(datasets) < 2:
        raise FitError("`datasets` must be a dict of two or more groups, e.g. {'PEG': ds1, 'bare': ds2}")
    from .fit._data import _identifier

    # Group names become parts of lmfit names (Kmax_liver__PEG): the fit layer's identifier rule.
    groups = [_identifier(str(g)) for g in datasets]
    if len(set(groups)) != len(groups):
        raise FitError(f"group names {', '.join(map(repr, datasets))} are not distinct once made identifiers ({', '.join(groups)})")
    data = {_identifier(str(g)): d for g, d in datasets.items()}
    if particles is not None:
        particles = {_identifier(str(g)): p for g, p in particles.items()}
    if vary is not None and len(vary) == 0:
        raise FitError("`vary` is empty: name the parameters fitted in every group, e.g. ['Kmax_liver', 'Kmax_spleen']")
    if vary is None:  # the fit layer's default for the reference group's data
        probe = _fit_quietly(load_model(model) if isinstance(model, (str, Path)) else model, {groups[0]: data[groups[0]]},
                             vary=None, **fit_kwargs)
        vary = list(probe.options["vary"])
    vary = [vary] if isinstance(vary, str) else list(vary)
    shared = [] if shared is None else ([shared] if isinstance(shared, str) else list(shared))
    stray = [s for s in shared if s not in vary]
    if stray:
        raise FitError(f"`shared` names {', '.join(map(repr, stray))} not in `vary`{suggest(stray[0], vary)}")
    specific = [v for v in vary if v not in shared]
    if not specific:
        raise FitError("every varied parameter is shared: nothing can differ between groups; leave some out of `shared`")
    if groups_of_parameters is not None:
        tests_of = {str(k): ([v] if isinstance(v, str) else list(v)) for k, v in groups_of_parameters.items()}
        bad = [p for ps in tests_of.values() for p in ps if p not in specific]
        if bad:
            raise FitError(f"`groups_of_parameters` names {', '.join(map(repr, bad))}, which are not group-specific "
                           f"(not in `vary`, or in `shared`); group-specific: {', '.join(specific)}")

    if particles is not None:
        missing = [g for g in groups if g not in particles]
        if missing:
            raise FitError(f"`particles` has no particle for group(s) {', '.join(missing)}")
        if isinstance(model, Model):
            source = model.metadata.get("spec")
            if not source:
                raise ModelError(f"model {model.name!r} has no spec to rebuild with a particle; pass its name")
        else:
            source = model
        models = {g: load_model(source, particle=particles[g]) for g in groups}
        model_name = next(iter(models.values())).name
    else:
        base = load_model(model) if isinstance(model, (str, Path)) else model
        models = {g: base for g in groups}
        model_name = base.name
    if groups_of_parameters is None:  # as the reference group's model declares them
        tests_of = default_parameter_groups(models[groups[0]], specific)

    if particles is not None and shared:
        raise FitError("with `particles`, each group has its own model and every varied parameter its own value per "
                       "group in the full model: leave `shared` empty")
    for i, ga in enumerate(groups):  # after the argument checks, before any fit
        for gb in groups[i + 1:]:
            if same_data(data[ga], data[gb]):
                raise FitError(f"groups {ga!r} and {gb!r} are the same dataset: compare needs different groups "
                               "(e.g. PEG-coated and bare particles of the same core)")
    fits = {g: _fit_quietly(models[g], {g: data[g]}, vary=vary, **fit_kwargs) for g in groups}
    sigma_known = _sigma_known(fits.values())
    reference = groups[0]
    # Full and reduced models: the groups' own objectives (built as their separate fits
    # were, so the same error model, weighting, censoring and priors) stacked, with
    # `shared` (full) or `shared` + the tested group (reduced) tied.  Both are fitted by
    # nanopk.fit itself, so the two χ² of each test are of the same likelihood.
    full = joint_fit(models, data, vary, shared, fits, fit_kwargs)
    chi_full, n_full = _minus_two_log_posterior(full), int(full.metrics["n_residuals"])
    rows = []
    reduced: dict = {}
    for test, params in tests_of.items():
        red = joint_fit(models, data, vary, shared + params, fits, fit_kwargs, uncertainty=False)
        reduced[test] = red
        chi_red = _minus_two_log_posterior(red)
        df = (len(groups) - 1) * len(params)
        stat = _statistic(chi_full, chi_red, n_full, sigma_known)
        rows.append({"test": test, "parameters": params, "df": df, "statistic": stat, "lrt_p": _chi2_sf(stat, df),
                     "delta_aic": 2 * df - stat, "chisqr_full": float(full.metrics["chisqr"]),
                     "chisqr_reduced": float(red.metrics["chisqr"]),
                     "prior_penalty_full": float(full.metrics["prior_penalty"]),
                     "prior_penalty_reduced": float(red.metrics["prior_penalty"])})
    ratios = _ratios(full, groups, specific, reference)
    tests = pd.DataFrame(rows).set_index("test")
    pk = {g: _group_pk(fits[g], n_samples, seed) for g in groups}
    options = {"vary": vary, "shared": shared, "groups_of_parameters": tests_of, "n_samples": n_samples, "seed": seed,
               "particles": {g: p.to_dict() if hasattr(p, "to_dict") else dict(p) for g, p in particles.items()} if particles else None,
               "fit": {k: v for k, v in fit_kwargs.items() if isinstance(v, (int, float, str, bool, type(None)))}}
    attribution = particle_attribution(models, groups, exclude=vary) if particles is not None else None
    return Comparison(model_name=model_name, groups=groups, fits=fits, full=full, reduced=reduced, tests=tests,
                      ratios=ratios, pk=pk, options=options, sigma_known=sigma_known, attribution=attribution)


def particle_attribution(models: Mapping, groups: Sequence[str], exclude: Sequence[str] = ()) -> pd.DataFrame:
    """Which particle-derived parameter explains the difference between groups, and by how much.

    On the mechanistic route each group's model is built from its own ``Particle``, so
    the particle maps (corona, opsonisation, EPR permeability, renal sieving, ...) give
    the groups different parameter values.  For every parameter whose default differs
    between the reference group (the first) and group g — leaving out ``exclude`` (the
    fitted ones) — the metric M of the reference model is recomputed with that one
    parameter at group g's value (one at a time)::

        share_p = (M_ref[p ← p_g] − M_ref) / (M_g − M_ref)

    M is DE24 (tumour %ID averaged over 0–24 h, :mod:`nanopk.delivery`) when the model
    has a tumour, else the blood %ID at 24 h.  The shares need not sum to 1: the maps
    interact (one-at-a-time attribution, as in local sensitivity analysis).

    Returns
    -------
    pandas.DataFrame
        ``group``, ``reference``, ``parameter``, ``reference_value``, ``value``,
        ``metric``, ``metric_reference``, ``metric_group``, ``metric_swapped``,
        ``share``; sorted by |share| within each group.
    """
    from .delivery import pk_metrics
    from .errors import NanopkError

    reference = groups[0]
    ref = models[reference]
    has_tumour = "tumour" in ref.observables
    name = "DE24" if has_tumour else "blood_24h"

    def metric(model, params):
        try:
            if has_tumour:
                return pk_metrics(model, params, blood_states=False)["DE24"]
            return float(model.simulate([24.0], params=params)["blood"].iloc[-1])
        except NanopkError:  # a swapped value outside the reference's bounds, or a solver failure
            return None

    base = metric(ref, {})
    rows = []
    for g in groups[1:]:
        other = models[g]
        total = metric(other, {})
        for p, par in ref.parameters.items():
            if p in exclude or p not in other.parameters:
                continue
            v_ref, v_g = float(par.value), float(other.parameters[p].value)
            if math.isclose(v_ref, v_g, rel_tol=1e-9, abs_tol=0.0):
                continue
            swapped = metric(ref, {p: v_g})
            share = ((swapped - base) / (total - base)
                     if None not in (swapped, base, total) and total != base else None)
            rows.append({"group": g, "reference": reference, "parameter": p, "reference_value": v_ref, "value": v_g,
                         "metric": name, "metric_reference": base, "metric_group": total, "metric_swapped": swapped,
                         "share": share})
    out = pd.DataFrame(rows, columns=["group", "reference", "parameter", "reference_value", "value", "metric",
                                      "metric_reference", "metric_group", "metric_swapped", "share"])
    if len(out):
        out = (out.assign(_order=out["share"].abs().fillna(-1.0)).sort_values(["group", "_order"], ascending=[True, False])
               .drop(columns="_order").reset_index(drop=True))
    return out


# ``nanopk.compare`` is both this module and the function: the package's lazy attribute
# returns the function, but importing the module (``from nanopk.compare import ...``)
# binds the *module* to ``nanopk.compare``.  Making the module callable keeps
# ``nanopk.compare(model, {...})`` working either way (as nanopk.fit does).
class _CallableModule(_types.ModuleType):
    def __call__(self, *args, **kwargs):
        return compare(*args, **kwargs)


_sys.modules[__name__].__class__ = _CallableModule
