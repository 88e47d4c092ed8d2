"""Which parameters the data can determine: subset selection by sensitivity and collinearity.

A lab dataset of 20–40 points (a few organs, 4–6 times) cannot determine the ten uptake
and tumour parameters :data:`nanopk.fit.objective.DEFAULT_VARY` lists for a tumour model:
fitted together, most of them end practically unidentifiable or on a bound.  When
:func:`nanopk.fit` is given no ``vary`` it fits only the subset chosen here; the others
stay at their default (prior) values.

Method (Brun, Reichert & Künsch 2001).  At the start values, the local sensitivities of
the measured observables to the candidate parameters, on log parameters and log
observables (a dimensionless, scale-free measure),

    s_ij = ∂ ln ŷ_i / ∂ ln θ_j        (central differences, step 1 % of θ),

over the n uncensored data rows give

    importance     δ_j^msqr = sqrt( (1/n) Σ_i s_ij² ),
    collinearity   γ_K = 1 / sqrt( λ_min( S̃_Kᵀ S̃_K ) ),   S̃ = columns of S scaled to unit length,

for a subset K.  δ_j^msqr is the mean change of ln ŷ per unit change of ln θ_j (0.1: a
two-fold change of θ_j moves the predictions by ~7 % on average); γ_K is the factor by
which a relative change of the observables can be compensated by the parameters of K
together: γ_K = 10 means a 10 % change of the parameters can be undone by the others
to within 1 %.  Brun et al. call subsets with γ_K below 10–15 identifiable.

Selection: candidates in decreasing δ^msqr order, each added when its δ^msqr is at least
``min_importance`` and the subset including it keeps γ_K ≤ ``max_collinearity``, until
``max_parameters``.  The default ``max_parameters`` is ``n_points // 5`` (at least 1):
five observations per parameter, the usual minimum for nonlinear regression to give a
covariance that is more than a local curvature (with fewer, the Wald intervals of
biodistribution fits spanned 10⁴-fold in the README's demo).

References
----------
1. Brun R, Reichert P, Künsch HR. Practical identifiability analysis of large
   environmental simulation models. Water Res 2001;35:1177-1183
   (doi:10.1016/S0043-1354(00)00370-4).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..errors import FitError, suggest

__all__ = ["select_parameters", "Selection", "collinearity_index", "importance",
           "MAX_COLLINEARITY", "MIN_IMPORTANCE", "POINTS_PER_PARAMETER"]

#: Largest collinearity index of the chosen subset (Brun et al. 2001: 10–15).
MAX_COLLINEARITY = 10.0
#: Smallest importance δ^msqr of a chosen parameter: below 0.05 a two-fold change of the
#: parameter moves the log predictions by < 3.5 % on average, under the 5 % σ floor of a fit.
MIN_IMPORTANCE = 0.05
#: Observations per fitted parameter for the default ``max_parameters``.
POINTS_PER_PARAMETER = 5
#: Relative step of the central differences (on ln θ).
_STEP = 0.01


def importance(S: np.ndarray) -> np.ndarray:
    """δ^msqr of each column of the sensitivity matrix ``S`` (n rows × k parameters)."""
    S = np.asarray(S, float)
    return np.sqrt(np.mean(S ** 2, axis=0))


def collinearity_index(S: np.ndarray) -> float:
    """γ_K of the columns of ``S``: ``1/sqrt(λ_min)`` of the normalised ``S̃ᵀS̃`` (∞ if a column is 0)."""
    S = np.asarray(S, float)
    norms = np.linalg.norm(S, axis=0)
    if S.shape[1] == 0:
        return 1.0
    if np.any(norms == 0) or not np.all(np.isfinite(S)):
        return math.inf
    Sn = S / norms
    lam = float(np.linalg.eigvalsh(Sn.T @ Sn)[0])
    # Below 1e-14 the smallest eigenvalue is rounding error of exactly dependent columns.
    return math.inf if lam <= 1e-14 else 1.0 / math.sqrt(lam)


@dataclass
class Selection:
    """What :func:`select_parameters` chose and why.

    Attributes
    ----------
    chosen : list of str
        The parameters to fit, in the order they were chosen.
    candidates : list of str
    importance : dict
        ``{name: δ^msqr}`` of every candidate.
    collinearity : float
        γ_K of the chosen subset.
    left_out : dict
        ``{name: reason}`` of every candidate not chosen (it stays at its default).
    start : dict
        ``{name: value}`` the sensitivities were taken at.
    n_points, max_parameters, max_collinearity, min_importance :
        The data size and the limits applied.
    """

    chosen: list
    candidates: list
    importance: dict
    collinearity: float
    left_out: dict
    start: dict
    n_points: int
    max_parameters: int
    max_collinearity: float
    min_importance: float
    steps: list = field(default_factory=list)
    sensitivity: np.ndarray | None = field(default=None, repr=False)

    def lines(self) -> list[str]:
        """The report's account of the choice."""
        out = [f"Parameters chosen from the local sensitivities (Brun et al. 2001; importance δ at the start values): {len(self.chosen)} of "
               f"{len(self.candidates)} candidates; collinearity index γ_K = {self.collinearity:.3g} "
               f"(limit {self.max_collinearity:g}); at most {self.max_parameters} for {self.n_points} points "
               f"(one per {POINTS_PER_PARAMETER})"]
        width = max(len(c) for c in self.candidates)

        def order(c):
            v = self.importance.get(c, math.nan)
            return (c not in self.chosen, -v if math.isfinite(v) else math.inf)

        for name in sorted(self.candidates, key=order):
            what = ("fitted" if name in self.chosen
                    else f"not fitted, held at {self.start[name]:.4g}: {self.left_out.get(name, '')}")
            v = self.importance.get(name, math.nan)
            imp = f"importance δ {v:.3g}" if math.isfinite(v) else "importance δ  n/a"
            out.append(f"  {name:<{width}}  {imp:<18}  {what}")
        out += [f"  note: {st['note']}" for st in self.steps if "note" in st]
        for i, st in enumerate([st for st in self.steps if "fitted" in st], 1):
            if "added" in st:
                out.append(f"  fit {i}: + {st['added']}: AIC {st['aic']:.4g}; {st['outcome']}")
                continue
            out.append(f"  fit {i}: {', '.join(st['fitted'])}: AIC {st['aic']:.4g}"
                       + (f"; {st['removed']} undetermined ({st['undetermined'][st['removed']]}), taken out"
                          if "removed" in st else "; every fitted parameter determined" if not st["undetermined"]
                          else ""))
        return out

    def to_dict(self) -> dict:
        return {"chosen": list(self.chosen), "candidates": list(self.candidates),
                "importance": {k: float(v) for k, v in self.importance.items()},
                "collinearity": float(self.collinearity), "left_out": dict(self.left_out),
                "start": {k: float(v) for k, v in self.start.items()}, "n_points": int(self.n_points),
                "max_parameters": int(self.max_parameters), "max_collinearity": float(self.max_collinearity),
                "min_importance": float(self.min_importance), "steps": list(self.steps)}


def sensitivities(objective) -> np.ndarray:
    """``∂ ln ŷ / ∂ ln θ`` of the uncensored data rows at the objective's start (central differences)."""
    x0 = objective.x0
    keep = np.concatenate([~d.rows["censored"].to_numpy(dtype=bool) for d in objective.datasets])
    cols = []
    for j, spec in enumerate(objective.specs):
        h = _STEP if spec.log else _STEP * max(abs(spec.start), 1e-12)
        up, down = x0.copy(), x0.copy()
        up[j] = min(x0[j] + h, objective.xmax[j])
        down[j] = max(x0[j] - h, objective.xmin[j])
        pu = np.concatenate(objective.predict(up))
        pd_ = np.concatenate(objective.predict(down))
        with np.errstate(divide="ignore", invalid="ignore"):
            d = (np.log(np.maximum(pu, 1e-300)) - np.log(np.maximum(pd_, 1e-300))) / (up[j] - down[j])
        if not spec.log:  # ∂/∂ln θ = θ ∂/∂θ
            d = d * spec.start
        cols.append(d[keep])
    return np.column_stack(cols) if cols else np.empty((int(keep.sum()), 0))


def select_parameters(model, data, candidates=None, max_collinearity: float = MAX_COLLINEARITY,
                      max_parameters: int | None = None, min_importance: float = MIN_IMPORTANCE, *,
                      tissue_map: dict | None = None, body_weight: str = "dataset", start: dict | None = None,
                      bounds: dict | None = None, backend: str = "auto") -> Selection:
    """Choose the parameters the data can determine (see the module docstring).

    Parameters
    ----------
    model : nanopk.Model or str
    data : as :func:`nanopk.fit` takes it
    candidates : list of str, optional
        Default: what :func:`nanopk.fit` varied by default before this selection
        (:func:`nanopk.fit.parameters.default_vary`: the phagocytic uptake of each
        measured organ and the tumour parameters).
    max_collinearity : float
        Largest γ_K of the chosen subset (default 10; Brun et al.: 10–15).
    max_parameters : int, optional
        Default ``n_points // 5`` (at least 1).
    min_importance : float
        Smallest δ^msqr of a chosen parameter (default 0.05).
    tissue_map, body_weight, start, bounds, backend :
        As :func:`nanopk.fit`; ``start`` sets where the sensitivities are taken.

    Returns
    -------
    Selection

    Raises
    ------
    FitError
        For an unknown candidate, a non-positive limit, or a model that cannot be
        simulated at the start values.
    """
    from ._data import coerce_datasets
    from .objective import Objective
    from .parameters import build_parameters, default_vary

    if isinstance(model, str):
        from ..spec import load_model

        model = load_model(model)
    if not (isinstance(max_collinearity, (int, float)) and max_collinearity >= 1):
        raise FitError(f"`max_collinearity` must be a number ≥ 1, e.g. 10 (got {max_collinearity!r}); "
                       "γ_K is 1 for orthogonal sensitivities")
    if max_parameters is not None and not (isinstance(max_parameters, int) and max_parameters >= 1):
        raise FitError(f"`max_parameters` must be a positive integer (got {max_parameters!r})")
    datasets = coerce_datasets(data, model, True, "m3", tissue_map, body_weight)
    if candidates is None:
        candidates = default_vary(model, datasets)
    candidates = [candidates] if isinstance(candidates, str) else list(candidates)
    unknown = [c for c in candidates if c not in model.parameters]
    if unknown:
        raise FitError("`candidates` name unknown parameter(s): "
                       + "; ".join(f"{u!r}{suggest(u, model.parameters)}" for u in unknown))
    specs = build_parameters(model, datasets, candidates, None, start, bounds)
    objective = Objective(model, datasets, specs, "log", "se", None, 0.05, backend, 1e-8, 1e-12)
    objective.residual(objective.x0)
    if objective.n_solver_failures:
        raise FitError(f"the model cannot be simulated at the start values: {objective.last_solver_error}")
    S = sensitivities(objective)
    n_points = S.shape[0]
    if max_parameters is None:
        max_parameters = max(1, n_points // POINTS_PER_PARAMETER)
    delta = importance(S)
    imp = {c: float(v) for c, v in zip(candidates, delta)}
    chosen: list[int] = []
    left_out: dict = {}
    steps = []
    for j in sorted(range(len(candidates)), key=lambda k: -delta[k]):
        name = candidates[j]
        if not (delta[j] >= min_importance):
            left_out[name] = f"importance {delta[j]:.2g} < {min_importance:g}: the data barely respond to it"
            continue
        if len(chosen) >= max_parameters:
            left_out[name] = f"the data carry at most {max_parameters} parameters ({n_points} points)"
            continue
        gamma = collinearity_index(S[:, chosen + [j]])
        steps.append((name, gamma))
        if gamma > max_collinearity:
            partner = max(chosen, key=lambda k: abs(np.dot(S[:, k], S[:, j]))
                          / (np.linalg.norm(S[:, k]) * np.linalg.norm(S[:, j]) or 1.0))
            left_out[name] = (f"collinear with the chosen ones (γ_K would be {gamma:.3g} > {max_collinearity:g}; "
                              f"closest: {candidates[partner]})")
            continue
        chosen.append(j)
    return Selection(chosen=[candidates[j] for j in chosen], candidates=candidates, importance=imp,
                     collinearity=collinearity_index(S[:, chosen]), left_out=left_out,
                     start={s.model_name: s.start for s in specs}, n_points=n_points, max_parameters=max_parameters,
                     max_collinearity=float(max_collinearity), min_importance=float(min_importance),
                     steps=[{"parameter": n, "collinearity": float(g)} for n, g in steps], sensitivity=S)


#: A chosen parameter whose 95 % Wald interval spans more than this factor is not
#: determined by the data (a 100-fold interval says nothing about a rate).
MAX_FOLD = 100.0


def _undetermined(result) -> dict:
    """``{name: reason}`` of the fitted parameters the data did not determine: at a bound,
    flagged unidentifiable, without an interval, or with a Wald interval wider than
    :data:`MAX_FOLD`."""
    out = {}
    at_bound = dict(result.flags.get("at_bound", []))
    for name, p in result.params.items():
        ci = p.user_data.get("ci95")
        if name in at_bound:
            out[name] = f"ran to its {at_bound[name]} bound {p.value:.4g}"
        elif name in result.flags.get("unidentifiable", []) or ci is None:
            out[name] = "practically unidentifiable in the fit (no finite interval)"
        elif ci[0] > 0 and ci[1] / ci[0] > MAX_FOLD:
            out[name] = f"95 % interval [{ci[0]:.3g}, {ci[1]:.3g}] spans {ci[1] / ci[0]:.3g}-fold (> {MAX_FOLD:g})"
    return out


def _only(named: dict | None, vary: list) -> dict | None:
    """The entries of a ``bounds``/``priors`` dict that belong to ``vary`` (model or per-dataset names);
    anything else (``priors="population"``, ``None``, ``False``) passes unchanged."""
    if not named or not isinstance(named, dict):
        return named
    return {k: v for k, v in named.items() if k in vary or k.split("__")[0] in vary} or None


#: Smallest AIC decrease for a further parameter to be kept (Burnham & Anderson 2002:
#: models within 2 AIC units have about the same support; the simpler one is kept).
MIN_AIC_GAIN = 2.0


def held_undetermined(left_out: dict, first) -> set:
    """Candidates the backward pass took out (fitted and found undetermined), or collinear/unimportant at the start."""
    return {n for n, why in left_out.items() if "the data carry at most" not in why}


def _width(result, name) -> float:
    ci = result.params[name].user_data.get("ci95")
    return math.inf if not ci or ci[0] <= 0 else ci[1] / ci[0]


def fit_selected(fit, model, data, fit_kwargs: dict, max_collinearity: float = MAX_COLLINEARITY,
                 max_parameters: int | None = None):
    """:func:`nanopk.fit` with ``vary=None``: choose by sensitivity, then check the choice by the fit.

    :func:`select_parameters` chooses at the model's start values; the chosen set is
    fitted.  While the fit leaves a chosen parameter undetermined (:func:`_undetermined`:
    at a bound, no interval, or an interval wider than :data:`MAX_FOLD`), the worst
    one (no interval first, then the widest interval) is taken out and held — at the
    bound it ran to (the maximum-likelihood value lies on the bound: e.g. a
    half-saturation time at its 0.1 h floor is uptake at full capacity from the start);
    otherwise at its default when the default lies inside the parameter's 95 % interval
    (or it has none), else at its estimate (a default the data exclude is not a
    neutral choice) — and the others are refitted from their estimates.  Then each
    candidate left out only by the size limit gets one chance, most important at the
    current estimates first: kept when the fit with it determines every parameter and
    lowers the AIC by at least :data:`MIN_AIC_GAIN`.
    ``result.selection`` records every step and the report prints it.
    """
    if isinstance(model, str):
        from ..spec import load_model

        model = load_model(model)
    kwargs = dict(fit_kwargs)
    user_start = dict(kwargs.pop("start", None) or {})
    shared = kwargs.pop("shared", None)
    warn = kwargs.pop("warn", True)
    profile = kwargs.pop("profile", False)
    auto_profile = kwargs.pop("auto_profile", True)
    sel_kw = dict(tissue_map=kwargs.get("tissue_map"), body_weight=kwargs.get("body_weight", "dataset"),
                  bounds=kwargs.get("bounds"), backend=kwargs.get("backend", "auto"))
    first = select_parameters(model, data, None, max_collinearity, max_parameters, start=user_start or None, **sel_kw)
    candidates = list(first.candidates)
    current = model.with_parameters({k: v for k, v in user_start.items() if k in model.parameters})
    chosen = list(first.chosen)
    left_out = dict(first.left_out)
    held = {n: current.parameters[n].value for n in candidates if n not in chosen}
    steps: list = []
    result = None
    while chosen:
        start = {n: current.parameters[n].value for n in chosen}
        sh = None if shared is None else [s for s in ([shared] if isinstance(shared, str) else shared) if s in chosen]
        # start, bounds and priors of parameters not fitted this round stay out (fit refuses them).
        own = dict(kwargs, bounds=_only(kwargs.get("bounds"), chosen), priors=_only(kwargs.get("priors"), chosen))
        result = fit(current, data, vary=chosen, shared=sh, start=start, warn=False, auto_profile=False, **own)
        bad = _undetermined(result)
        steps.append({"fitted": list(chosen), "aic": float(result.metrics["aic"]), "success": bool(result.success),
                      "undetermined": dict(bad)})
        if not bad:
            break
        last = (result, list(chosen), current)  # reported if no subset turns out determined
        worst = max(bad, key=lambda n: _width(result, n))
        side = dict(result.flags.get("at_bound", [])).get(worst)
        default = model.parameters[worst].value
        ci = result.params[worst].user_data.get("ci95")
        if side:
            value, where = result.params[worst].value, "that bound"
        elif ci is None or ci[0] <= default <= ci[1]:
            value, where = default, "its default (inside the data's interval)"
        else:  # the data exclude the default: hold where they put it
            value, where = result.params[worst].value, f"its estimate (the data exclude the default {default:.4g})"
        held[worst] = value
        left_out[worst] = f"undetermined with {', '.join(chosen)} fitted ({bad[worst]}); held at {where} {value:.4g}"
        steps[-1]["removed"] = worst
        chosen.remove(worst)
        current = current.with_parameters({**{n: result.params[n].value for n in chosen}, worst: value})
    # Forward pass: candidates never fitted (left out by the size limit) get one chance each at
    # the current estimates, most important first; kept when the fit determines every
    # parameter and the AIC falls by at least MIN_AIC_GAIN.
    untried = [c for c in candidates if c not in chosen and c not in held_undetermined(left_out, first)]
    while result is not None and chosen and len(chosen) < first.max_parameters and untried:
        ranking = select_parameters(current, data, chosen + untried, max_collinearity, len(chosen) + len(untried),
                                    min_importance=0.0, **sel_kw)
        order = sorted(untried, key=lambda n: -ranking.importance[n])
        pick = None
        for c in order:
            idx = [ranking.candidates.index(n) for n in chosen + [c]]
            gamma = collinearity_index(ranking.sensitivity[:, idx])
            if ranking.importance[c] >= first.min_importance and gamma <= max_collinearity:
                pick = c
                break
        if pick is None:
            break
        untried.remove(pick)
        vary = chosen + [pick]
        sh = None if shared is None else [s for s in ([shared] if isinstance(shared, str) else shared) if s in vary]
        own = dict(kwargs, bounds=_only(kwargs.get("bounds"), vary), priors=_only(kwargs.get("priors"), vary))
        trial = fit(current, data, vary=vary, shared=sh, start={n: current.parameters[n].value for n in vary},
                    warn=False, auto_profile=False, **own)
        bad = _undetermined(trial)
        gain = result.metrics["aic"] - trial.metrics["aic"]
        step = {"fitted": list(vary), "aic": float(trial.metrics["aic"]), "success": bool(trial.success),
                "undetermined": dict(bad), "added": pick}
        steps.append(step)
        if trial.success and not bad and gain >= MIN_AIC_GAIN:
            chosen.append(pick)
            left_out.pop(pick, None)
            held.pop(pick, None)
            result = trial
            current = current.with_parameters({n: result.params[n].value for n in vary})
            step["outcome"] = f"kept (AIC −{gain:.3g})"
        else:
            why = ("the fit with it leaves " + "; ".join(f"{n} {w}" for n, w in bad.items()) if bad
                   else f"it lowers the AIC by {gain:.3g} only (< {MIN_AIC_GAIN:g})" if trial.success
                   else f"the fit with it failed ({trial.message})")
            step["outcome"] = "not kept: " + why
            left_out[pick] = f"tried after the others were settled: {why}"
    if result is not None and not chosen:
        # No subset is determined (a Kmax that runs to its upper bound is uptake as fast as
        # the model allows; Hirn 2011 80 nm): the last fit, of the most important parameter,
        # is reported rather than nothing; its status and warnings say what is undetermined.
        result, chosen, current = last
        name = chosen[0]
        why = left_out.pop(name)
        held.pop(name, None)
        steps[-1].pop("removed", None)
        steps.append({"note": f"no subset of the candidates is determined by these data; the fit of {name} is "
                              f"reported with what leaves it undetermined ({why.split('; held at')[0]})"})
    if result is None or not chosen:
        raise FitError("none of the candidate parameters " + ", ".join(candidates) + " can be determined from these data: "
                       + "; ".join(f"{n}: {w}" for n, w in left_out.items())
                       + "; name the parameters to fit with vary=[...] (or vary='all' for every candidate)")
    final_S = select_parameters(current, data, candidates, max_collinearity, len(candidates), min_importance=0.0,
                                **sel_kw)
    idx = [final_S.candidates.index(n) for n in chosen]
    selection = Selection(chosen=chosen, candidates=candidates, importance=dict(first.importance),
                          collinearity=collinearity_index(final_S.sensitivity[:, idx]), left_out=left_out,
                          start={n: held.get(n, current.parameters[n].value) for n in candidates},
                          n_points=first.n_points, max_parameters=first.max_parameters,
                          max_collinearity=float(max_collinearity), min_importance=first.min_importance, steps=steps,
                          sensitivity=final_S.sensitivity)
    result.selection = selection
    result.options["selection"] = selection.to_dict()
    if profile:
        result.profile(None if profile is True else list(profile))
    if auto_profile and kwargs.get("uncertainty", True):
        result.auto_profile()
    if result.warnings and warn:
        import warnings as _w

        from ._data import FitWarning

        names = ", ".join(d.name for d in result.objective.datasets)
        head = f"fit of {model.name!r} to {names}: {len(result.warnings)} issue(s)"
        _w.warn(head + "\n" + "\n".join(f"  - {w}" for w in result.warnings), FitWarning, stacklevel=3)
    return result
