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
profile-likelihood intervals (:func:`ratio_profile`): the full model's objective is
profiled over ln R = x_g − x_ref, every other parameter re-optimised, and the interval
is where it stays within 3.84·s² of its minimum (s² the residual scale, as for the
covariance).  The delta method on the log scale, from the full fit's covariance, is
kept beside it (and used, with the reason stated, if the profile fails, or with
``ratio_ci="delta"``):

    Var(ln R) = Var x_g + Var x_ref − 2 Cov(x_g, x_ref),   95 % CI = exp(ln R ± 1.96 · SE).

On a well-determined ratio the two agree; where the likelihood is not quadratic in
ln R (few points, a parameter near a bound or a plateau) the delta method's
symmetric-on-the-log-scale interval is not to be trusted and the profile is.

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

__all__ = ["compare", "Comparison", "ratio_profile", "default_parameter_groups", "observed_kinetics", "terminal_slope",
           "same_data"]

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
        ``group``, ``reference``, ``ratio``, ``ci95_low``, ``ci95_high`` (the 95 %
        interval reported), ``ci_method`` (``"profile likelihood"`` or ``"delta
        method"``), ``ci_open`` (``"lower"``/``"upper"``: the profile never rose by
        the threshold on that side, so the interval reaches at least the end given),
        ``ci_note`` (why the delta method was used, open sides, profile problems;
        empty when none), ``ci95_low_delta``, ``ci95_high_delta`` (the delta
        method's interval, always), ``value``, ``reference_value``,
        ``prob_ratio_above_1`` (the Bayesian alternative to the test: P(ratio > 1) =
        Φ(ln r̂ / se) from the normal approximation of the joint fit's log
        parameters — the posterior probability with priors, the flat-prior one
        without; ``None`` without a covariance).
    ratio_profiles : dict
        ``{"NAME (group)": profile}`` of each profiled ratio (:func:`ratio_profile`:
        its ``table`` holds the profiled points).
    pk : dict
        ``{group: {"t_half_blood_h", "t50_blood_h", "DE24", ...}}`` (each
        ``{value, ci95, unit}``) from the group's own fit.
    observed : dict
        ``{group: {tissue: {...}}}``: the data themselves, without a model — AUC,
        Cmax, mean %ID per tissue and the blood half-life by log-linear regression
        (:func:`observed_kinetics`).
    """

    def __init__(self, *, model_name, groups, fits, full, reduced, tests, ratios, pk, options, sigma_known,
                 attribution=None, ratio_profiles=None):
        self.model_name = model_name
        self.attribution = attribution
        self.observed = {g: observed_kinetics(f.predictions) for g, f in fits.items()}
        self.groups = groups
        self.fits = fits
        self.full = full
        self.reduced = reduced
        self.tests = tests
        self.ratios = ratios
        self.ratio_profiles = dict(ratio_profiles or {})
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
        methods = set(self.ratios["ci_method"]) if "ci_method" in self.ratios else {"delta method"}
        how = ("profile likelihood of the joint fit" if methods == {"profile likelihood"}
               else "delta method, log scale" if methods == {"delta method"} else "method on each line")
        lines.append(f"Parameter ratios (group / {self.groups[0]}), 95 % CI ({how}), "
                     f"and P(ratio > 1) ({posterior}, normal approximation):")
        from .fit.result import WALD_MAX_FOLD

        for _, r in self.ratios.iterrows():
            lo, hi, open_sides = r["ci95_low"], r["ci95_high"], str(r.get("ci_open") or "")
            if lo is None or pd.isna(lo):
                ci = "n/a"
            else:  # an open side is a bound the interval reaches at least: ≤ / ≥
                ci = (f"[{'≤' if 'lower' in open_sides else ''}{lo:.3g}, "
                      f"{'≥' if 'upper' in open_sides else ''}{hi:.3g}]")
            if ci != "n/a" and (lo <= 0 or hi / lo > WALD_MAX_FOLD ** 2):
                # an interval over more than 10^4-fold is the answer to "not determined":
                # say that, rather than print [4e-35, 2e+34]
                fold = math.inf if lo <= 0 else hi / lo
                ci = (f"(no useful interval: it spans {'at least ' if open_sides else ''}{fold:.2g}-fold; "
                      "these data do not determine this ratio)")
            if len(methods) > 1 or r.get("ci_note"):
                ci += f" ({r.get('ci_method', 'delta method')}" + (f": {r['ci_note']}" if r.get("ci_note") else "") + ")"
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
            # each profiled ratio's points (ratio, log ratio, objective, its rise, converged)
            "ratio_profiles": {k: {"ci95": p["ci95"], "open": p["open"], "threshold": p["threshold"], "nfev": p["nfev"],
                                   "points": p["table"].to_dict("records")} for k, p in self.ratio_profiles.items()},
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
        """Forest plot of parameter ratios (group / reference) with their reported 95 % intervals, log x.

        The intervals are ``ratios["ci95_low"]``/``["ci95_high"]``: profile likelihood,
        drawn solid; a delta-method one (profile failed, or ``ratio_ci="delta"``) is
        drawn dashed; an open side ends in an arrow head (the interval reaches at
        least there).  Each line's ``gid`` is ``"ratio:<parameter>:<group>"``.
        """
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
                profiled = row.get("ci_method", "delta method") == "profile likelihood"
                ax.plot([lo, hi], [y[k], y[k]], color="C0", ls="-" if profiled else "--",
                        gid=f"ratio:{row['parameter']}:{row['group']}")
                open_sides = str(row.get("ci_open") or "")
                for side, end, marker in (("lower", lo, "<"), ("upper", hi, ">")):
                    if side in open_sides:
                        ax.plot([end], [y[k]], marker, color="C0", ms=6)
            ax.plot([row["ratio"]], [y[k]], "s", color="C0")
        ax.axvline(1.0, color="0.5", ls="--")
        ax.set_xscale("log")
        ax.set_yticks(y)
        ax.set_ylim(-0.6, len(r) - 0.4)  # rows one unit apart, whatever the panel's height
        ax.set_yticklabels([f"{p} ({g})" for p, g in zip(r["parameter"], r["group"])], fontsize="small")
        methods = set(r["ci_method"]) if "ci_method" in r else {"delta method"}
        how = ("profile likelihood" if methods == {"profile likelihood"} else "delta method" if methods == {"delta method"}
               else "profile; dashed: delta method")
        ax.set_xlabel(f"ratio to {self.groups[0]}\n(95 % CI, {how})")
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


RATIO_COLUMNS = ["parameter", "group", "reference", "ratio", "ci95_low", "ci95_high", "ci_method", "ci_open", "ci_note",
                 "ci95_low_delta", "ci95_high_delta", "value", "reference_value", "prob_ratio_above_1"]


def _ratios(full, groups, specific, reference, method: str = "profile") -> tuple[pd.DataFrame, dict]:
    """Ratios from a joint fit, ``NAME__group`` / ``NAME__reference``, with their 95 % intervals.

    ``ci95_low``/``ci95_high`` are the profile likelihood's (:func:`ratio_profile`) unless
    ``method="delta"`` or the profile failed (``ci_note`` says why); the delta method's are
    kept as ``ci95_low_delta``/``ci95_high_delta``.  Returns the table and the profiles
    (``{"NAME (group)": profile dict}``).
    """
    obj = full.objective
    idx = {s.name: i for i, s in enumerate(obj.specs)}
    cov = full.covariance.covar
    rows, profiles = [], {}
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
            lo_d = hi_d = p_above = None
            why_no_delta = "the joint fit has no covariance" if cov is None else "not on the log scale"
            if cov is not None and si.log and sj.log:
                var = cov[i, i] + cov[j, j] - 2 * cov[i, j]
                if var >= 0 and math.isfinite(var):
                    se = math.sqrt(var)
                    d = full.x[i] - full.x[j]
                    lo_d, hi_d = math.exp(d - Z95 * se), math.exp(min(d + Z95 * se, 700.0))
                    # P(ratio > 1) = P(ln ratio > 0) = Φ(d / se) under the normal (Laplace)
                    # approximation of ln ratio at the joint optimum: with priors, the
                    # posterior probability; without, the same under flat priors on ln θ
                    p_above = float(0.5 * math.erfc(-d / (se * math.sqrt(2.0)))) if se > 0 else float(d > 0)
                else:
                    why_no_delta = f"the variance of the log ratio is {var:.3g}"
            lo, hi, how, open_sides, notes = lo_d, hi_d, "delta method", "", []
            if method == "profile":
                try:
                    prof = ratio_profile(full, name, g, reference)
                except FitError as exc:
                    notes.append(f"profile likelihood failed ({exc}); delta-method interval instead"
                                 + ("" if lo_d is not None else f", which is not available either ({why_no_delta})"))
                else:
                    profiles[f"{name} ({g})"] = prof
                    lo, hi = prof["ci95"]
                    how, open_sides = "profile likelihood", ",".join(prof["open"])
                    for side in prof["open"]:
                        notes.append(f"open {side} end: the profile does not rise by the 95 % threshold before "
                                     f"{prof['open_why'][side]}; the interval reaches at least the end given")
                    if prof["not_converged"]:
                        notes.append(f"{len(prof['not_converged'])} of the profile's re-optimisations did not converge")
                    if "better_optimum" in prof:
                        notes.append(f"the profile found a lower objective at ratio {prof['better_optimum']:.4g}: the joint fit "
                                     "was a local optimum (refit with multistart)")
            elif lo_d is None:
                notes.append(f"no delta-method interval: {why_no_delta}")
            rows.append({"parameter": name, "group": g, "reference": reference, "ratio": ratio, "ci95_low": lo,
                         "ci95_high": hi, "ci_method": how, "ci_open": open_sides, "ci_note": "; ".join(notes),
                         "ci95_low_delta": lo_d, "ci95_high_delta": hi_d, "value": vi, "reference_value": vj,
                         "prob_ratio_above_1": p_above})
    return pd.DataFrame(rows, columns=RATIO_COLUMNS), profiles


# --------------------------------------------------------------------------- ratio profiles
#: The ratio intervals :func:`compare` reports: the profile likelihood of the joint fit
#: (default), or the delta method from its covariance.
RATIO_CI_METHODS = ("profile", "delta")


class _FixedLogRatio:
    """The joint objective on the slice ``x_i − x_j = d`` (d fixed): what a ratio's profile re-optimises.

    ``x_i`` (the group's log parameter) is dropped from the vector and set to
    ``x_j + d`` (``x_j``: the reference group's), so the optimiser moves every other
    parameter, ``x_j`` included, with the log ratio held.  ``x_j``'s bounds are cut to
    those that keep ``x_i`` inside its own: ``[max(lo_j, lo_i − d), min(hi_j, hi_i − d)]``.
    Provides what :func:`nanopk.fit._optimize.minimize` and the fit's Jacobian callables
    read (names, bounds, residuals, loss, the call counter).
    """

    def __init__(self, objective, i: int, j: int, d: float):
        self.base, self.i, self.j, self.d = objective, i, j, float(d)
        n = len(objective.names)
        self.keep = np.array([k for k in range(n) if k != i])
        self.jj = int(np.flatnonzero(self.keep == j)[0])
        self.names = [objective.names[k] for k in self.keep]
        lo, hi = np.asarray(objective.xmin, float), np.asarray(objective.xmax, float)
        self.xmin, self.xmax = lo[self.keep].copy(), hi[self.keep].copy()
        self.xmin[self.jj] = max(lo[j], lo[i] - self.d)
        self.xmax[self.jj] = min(hi[j], hi[i] - self.d)
        self.loss, self.f_scale = objective.loss, objective.f_scale
        self.n_data, self.n_residuals = objective.n_data, objective.n_residuals

    @property
    def n_calls(self) -> int:
        return self.base.n_calls

    def full_x(self, y) -> np.ndarray:
        y = np.asarray(y, dtype=float)
        x = np.empty(len(self.keep) + 1)
        x[self.keep] = y
        x[self.i] = y[self.jj] + self.d
        return x

    def reduce(self, x) -> np.ndarray:
        """The slice's vector of a joint ``x`` (``x_i`` dropped), clipped to the slice's bounds."""
        return np.clip(np.asarray(x, dtype=float)[self.keep], self.xmin, self.xmax)

    def residual(self, y) -> np.ndarray:
        return self.base.residual(self.full_x(y))

    def cached_residual(self, y) -> np.ndarray:
        return self.base.cached_residual(self.full_x(y))

    def lmfit_residual(self, params) -> np.ndarray:
        return self.residual([params[n].value for n in self.names])

    def loss_value(self, r) -> float:
        return self.base.loss_value(r)

    def loss_weights(self, r) -> np.ndarray:
        return self.base.loss_weights(r)

    def jacobian(self, jac):
        """The slice's Jacobian: forward differences on the slice itself (one column fewer than the
        joint's), any other Jacobian callable through the chain rule (∂x_i/∂x_j = 1)."""
        from .fit.jacobians import ForwardDifferenceJacobian

        if isinstance(jac, ForwardDifferenceJacobian):
            return jac

        def on_slice(_, y):
            J = np.asarray(jac(self.base, self.full_x(y)), dtype=float)
            out = J[:, self.keep].copy()
            out[:, self.jj] += J[:, self.i]
            return out

        return on_slice


def ratio_profile(full, name: str, group: str, reference: str, max_steps: int = 12,
                  level: float | None = None) -> dict:
    """Profile-likelihood 95 % interval of the ratio ``name`` in ``group`` / in ``reference`` of a joint fit.

    The joint objective (−2 ln likelihood, plus the prior rows with priors: what the
    fit minimised, ``metrics["cost"]``) is profiled over the log ratio
    ``d = x_g − x_ref`` (``x = ln θ``): ``d`` is fixed on a grid and every other
    parameter re-optimised (:class:`_FixedLogRatio`).  The interval is where

        cost_p(d) − cost_min ≤ 3.84 · s²

    (χ²₁ 95 %; ``s²`` the fit's residual scale when ``scale_covar``, else 1: the same
    scaling as the covariance behind the delta method and as
    :func:`nanopk.fit.uncertainty.profile`).  The search steps out from ``d̂``.  The first point is the delta method's end, ``d̂ ± 1.96·SE`` (SE
    clamped to [0.02, 1], 0.3 without a covariance); each further step aims 10 % past
    the crossing that ``sqrt(Δcost)``, linear in ``d`` from ``d̂``, predicts (at most
    1.5× the last step; at most ``max_steps`` per side), so a nearly quadratic
    profile costs two or three re-optimisations a side.  The crossing is
    found by linear interpolation in ``sqrt(Δcost)`` (linear in ``d`` for a quadratic
    profile), one more re-optimisation there, and a last secant step.  For a
    well-determined ratio it agrees with the delta method; it
    differs where the likelihood is not quadratic in ``d``, which is where the
    delta-method interval is unreliable.

    Parameters
    ----------
    full : FitResult
        A joint fit (``nanopk.fit(objective=JointObjective(...))``), ``name__group``
        and ``name__reference`` fitted on the log scale.
    name, group, reference : str
        The model parameter and the two groups.
    max_steps : int
        Most steps outward per side before the side is reported open.
    level : float, optional
        Threshold before scaling (default 3.841, the 95 % χ²₁ quantile).

    Returns
    -------
    dict
        ``ratio`` (at the optimum), ``ci95`` ([low, high] on the ratio scale; on an
        open side the furthest ratio profiled, which the interval reaches at least),
        ``open`` (sides where the profile stayed below the threshold up to the
        parameters' bounds or the step limit; a side where a profiled point holds
        either parameter at a bound is open too, since the rise there is the bound's,
        not the data's), ``open_why`` (``{side: why}``), ``threshold``, ``table`` (DataFrame:
        ``ratio``, ``log_ratio``, ``cost``, ``delta``, ``converged``), ``nfev``,
        ``not_converged`` (re-optimisations that did not converge), and
        ``better_optimum`` (the ratio where the profile went below the joint fit's
        minimum: that fit was a local optimum) when that happened.

    Raises
    ------
    FitError
        ``name__group`` or ``name__reference`` not in the fit or not on the log
        scale; a re-optimisation whose objective is not finite (the model could not be
        simulated there); the profile's own step not finite.
    """
    from .errors import NanopkError
    from .fit._optimize import minimize
    from .fit.uncertainty import CHI2_95

    objective = full.objective
    names = list(objective.names)
    key, ref = f"{name}__{group}", f"{name}__{reference}"
    for n in (key, ref):
        if n not in names:
            raise FitError(f"cannot profile the ratio of {name!r} ({group} / {reference}): {n!r} is not a parameter of "
                           f"the joint fit{suggest(n, names)}; fitted: {', '.join(names)}")
    i, j = names.index(key), names.index(ref)
    if not (objective.specs[i].log and objective.specs[j].log):
        raise FitError(f"cannot profile the ratio {key} / {ref}: both must be fitted on the log scale (positive bounds)")
    x_hat = np.asarray(full.x, dtype=float)
    d_hat = float(x_hat[i] - x_hat[j])
    cost_min = float(full.metrics.get("cost", full.metrics["chisqr"]))
    if not (math.isfinite(d_hat) and math.isfinite(cost_min)):
        raise FitError(f"cannot profile the ratio {key} / {ref}: the joint fit's optimum is not finite")
    scale = full.covariance.scale if full.options.get("scale_covar", True) else 1.0
    threshold = (CHI2_95 if level is None else float(level)) * scale
    lo, hi = np.asarray(objective.xmin, float), np.asarray(objective.xmax, float)
    from .fit.uncertainty import BOUND_TOLERANCE

    tol = BOUND_TOLERANCE * (hi[[i, j]] - lo[[i, j]])
    d_lo, d_hi = float(lo[i] - hi[j]), float(hi[i] - lo[j])  # where x_i = x_j + d fits both boxes
    cov = full.covariance.covar
    se = math.sqrt(cov[i, i] + cov[j, j] - 2 * cov[i, j]) if cov is not None and cov[i, i] + cov[j, j] - 2 * cov[i, j] > 0 else math.nan
    h = min(max(se, 0.02), 1.0) if math.isfinite(se) else 0.3
    opts = dict(full.options.get("optimizer", {}))
    jac = opts.pop("jac", None)
    calls0 = objective.n_calls
    points = [(d_hat, cost_min, True)]
    failed = []

    def evaluate(d, warm):
        sliced = _FixedLogRatio(objective, i, j, d)
        try:
            out = minimize(sliced, sliced.reduce(warm), jac=None if jac is None else sliced.jacobian(jac), **opts)
        except NanopkError as exc:
            raise FitError(f"the profile of {key} / {ref} failed at ratio {math.exp(d):.4g}: {exc}") from None
        if not math.isfinite(out.cost):
            raise FitError(f"the profile of {key} / {ref} failed at ratio {math.exp(d):.4g}: the objective is not finite "
                           f"there ({objective.last_solver_error or 'no solver message'})")
        if not out.converged:
            failed.append(math.exp(d))
        x = sliced.full_x(out.x)
        # Held at a bound by the box, not by the data: x_i or x_j within 0.1 % of its range of a bound.
        pinned = bool(np.any(np.minimum(x[[i, j]] - lo[[i, j]], hi[[i, j]] - x[[i, j]]) <= tol))
        points.append((d, out.cost, out.converged))
        return out.cost, x, pinned

    ends, open_sides, why_open = {}, [], {}
    for direction in (-1, 1):
        side = "lower" if direction < 0 else "upper"
        edge = d_lo if direction < 0 else d_hi
        warm, prev_d, prev_delta, step, found = x_hat.copy(), d_hat, 0.0, Z95 * h, None
        why_open[side] = f"the step limit ({max_steps} steps)"
        for _ in range(max_steps):
            d = prev_d + direction * step
            at_edge = d <= edge if direction < 0 else d >= edge
            if at_edge:
                d = edge
            cost, warm, pinned = evaluate(d, warm)
            delta = max(cost - cost_min, 0.0)
            if pinned:  # any rise from here on is the bounds' doing: the data leave this side open
                why_open[side] = f"a parameter's bound (reached at ratio {math.exp(d):.3g})"
                if delta < threshold:
                    prev_d = d
                break
            if delta >= threshold:
                found = (prev_d, prev_delta, d, delta)
                break
            prev_d, prev_delta = d, delta
            if at_edge:
                why_open[side] = "the bounds of the two parameters"
                break
            if delta > 0:  # aim just past the crossing that sqrt(Δ), linear in d from d̂, predicts
                dist = abs(d - d_hat)
                step = min(max(dist * (1.1 * math.sqrt(threshold / delta) - 1.0), 0.1 * step), 1.5 * step)
            else:
                step *= 1.5
        if found is None:  # never rose by the threshold: open, reaching at least the furthest point
            ends[direction] = prev_d
            open_sides.append(side)
            continue
        why_open.pop(side)
        da, ca, db, cb = found
        ra, rb, rt = math.sqrt(ca), math.sqrt(cb), math.sqrt(threshold)
        dc = da + (db - da) * (rt - ra) / (rb - ra) if rb > ra else db
        cost_c, _, _ = evaluate(dc, warm)
        rc = math.sqrt(max(cost_c - cost_min, 0.0))
        if rc < rt and rb > rc:  # inside: the crossing is between dc and db
            dc = dc + (db - dc) * (rt - rc) / (rb - rc)
        elif rc > rt and rc > ra:  # outside: between da and dc
            dc = da + (dc - da) * (rt - ra) / (rc - ra)
        ends[direction] = dc
    if not all(math.isfinite(v) for v in ends.values()):
        raise FitError(f"the profile of {key} / {ref} gave a non-finite end ({ends})")
    table = pd.DataFrame([(math.exp(d), d, c, c - cost_min, ok) for d, c, ok in points],
                         columns=["ratio", "log_ratio", "cost", "delta", "converged"]).sort_values("log_ratio")
    out = {"parameter": name, "group": group, "reference": reference, "ratio": math.exp(d_hat),
           "ci95": [math.exp(ends[-1]), math.exp(min(ends[1], 700.0))], "open": open_sides, "open_why": why_open,
           "threshold": threshold,
           "table": table.reset_index(drop=True), "nfev": objective.n_calls - calls0, "not_converged": failed}
    if table["delta"].min() < -1e-6 * max(abs(cost_min), 1.0):
        out["better_optimum"] = float(table.loc[table["delta"].idxmin(), "ratio"])
    return out


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
    from .delivery import METRICS, metrics_with_intervals, observed_blood_kinetics, sampled_window

    model = fit.model
    values = {k: v for k, v in fit.values.items() if k in model.parameters}
    # The blood half-life is read over the data's sampled terminal window (or, without
    # blood data, the times the data cover), as for a single fit (FitResult.delivery):
    # the curve's last quarter (126-168 h) is a plateau fed by release from phagocytes
    # long after the last sample (t½ ~1400 h).
    data = observed_blood_kinetics(fit.predictions)
    draws, source = fit.parameter_draws(n_samples, seed)
    out = metrics_with_intervals(model, values, draws, source=source, names=METRICS,
                                 half_life_window=data["window"] if data is not None else sampled_window(fit.predictions))
    out.pop("_uncertainty", None)
    return out


# --------------------------------------------------------------------------- compare
def compare(model, datasets: Mapping, vary: Sequence[str] | None = None, shared: Sequence[str] | None = None,
            groups_of_parameters: Mapping[str, Sequence[str]] | None = None, particles: Mapping | None = None,
            n_samples: int = 100, seed: int = 0, ratio_ci: str = "profile", **fit_kwargs) -> Comparison:
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
    ratio_ci : {"profile", "delta"}
        The 95 % intervals of the ratios: the profile likelihood of the joint fit
        (default, :func:`ratio_profile`; about ten re-optimisations per ratio), or the
        delta method from its covariance (no extra fits).  The table keeps the
        delta-method interval beside the profile one either way.
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
    own = ["model", "datasets", "vary", "shared", "groups_of_parameters", "particles", "n_samples", "seed", "ratio_ci"]
    check_keywords({k: v for k, v in fit_kwargs.items() if k not in fit_names}, fit_kwargs.get("method", "least_squares"),
                   caller="compare", own=own)
    if ratio_ci not in RATIO_CI_METHODS:
        raise FitError(f"`ratio_ci` must be one of {', '.join(map(repr, RATIO_CI_METHODS))} (got {ratio_ci!r}): "
                       "'profile' for profile-likelihood intervals of the ratios, 'delta' for the delta method")
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
    ratios, ratio_profiles = _ratios(full, groups, specific, reference, ratio_ci)
    tests = pd.DataFrame(rows).set_index("test")
    pk = {g: _group_pk(fits[g], n_samples, seed) for g in groups}
    options = {"vary": vary, "shared": shared, "groups_of_parameters": tests_of, "n_samples": n_samples, "seed": seed,
               "ratio_ci": ratio_ci,
               "particles": {g: p.to_dict() if hasattr(p, "to_dict") else dict(p) for g, p in particles.items()} if particles else None,
               "fit": {k: v for k, v in fit_kwargs.items() if isinstance(v, (int, float, str, bool, type(None)))}}
    attribution = particle_attribution(models, groups, exclude=vary) if particles is not None else None
    return Comparison(model_name=model_name, groups=groups, fits=fits, full=full, reduced=reduced, tests=tests,
                      ratios=ratios, pk=pk, options=options, sigma_known=sigma_known, attribution=attribution,
                      ratio_profiles=ratio_profiles)


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
