"""Simulation of a dosing regimen to observables in %ID.

A regimen (:mod:`nanopk.dosing`) is a list of IV boluses and constant-rate infusions.  The whole regimen
starts in the ``depot`` state; a bolus moves its amount from the depot to the dose
target at its time, an infusion moves it at a constant rate over its duration.  So the
total of all mass states is the regimen's dose at every time and ``total`` reads
100 %ID throughout, for any regimen.  %ID is relative to the whole regimen.

The integration runs segment by segment between dosing events (bolus times, infusion
starts and stops), because the solver must not step across a discontinuity.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping

import numpy as np
import pandas as pd

from .compile import compile_model
from .dosing import Bolus, Dosing, Infusion
from .errors import ModelError, SolverError
from .parts import DEPOT, DOSE, INFUSION_RATE

__all__ = ["Bolus", "Infusion", "Dosing", "simulate", "solve_states"]


@dataclass(frozen=True)
class _Layout:
    """Where simulate() finds the dose, the depot and the mass states: computed once per
    model and backend, because fits call simulate() thousands of times and rebuilding
    these lists was a third of a call on a 23-state model."""

    i_dose: int
    i_infusion: int
    i_depot: int
    i_target: int
    is_mass: np.ndarray
    columns: pd.Index
    units: dict

    @classmethod
    def of(cls, model, compiled) -> "_Layout":
        key = ("layout", compiled.backend)
        layout = model._cache.get(key)
        if layout is None:
            names, states = model.parameter_names, model.state_names
            layout = model._cache[key] = cls(
                names.index(DOSE), names.index(INFUSION_RATE), states.index(DEPOT), states.index(model.dose_target),
                np.array([s.is_mass for s in model.states]), pd.Index(compiled.observable_names),
                model.observable_units,
            )
        return layout


def solve_states(model, times_h, params: Mapping[str, float] | None = None, dose=None, backend: str = "auto",
                 rtol: float = 1e-6, atol: float = 1e-9, max_steps: int = 200_000):
    """Integrate ``model``; return ``(times, states, p, compiled, stats)``.

    ``atol`` is relative to the dose for mass states and absolute for the others.
    """
    times = np.asarray(times_h, dtype=float).ravel()
    if times.size == 0:
        raise ModelError("`times_h` is empty; give at least one output time in hours")
    # One pass for the common case (a fit calls this thousands of times); the messages
    # come from the checks below.
    if not (np.isfinite(times).all() and times[0] >= 0 and (times[1:] >= times[:-1]).all()):
        if not np.all(np.isfinite(times)) or times.min() < 0:
            raise ModelError("`times_h` must be finite and ≥ 0 (hours since the first dose)")
        raise ModelError("`times_h` must be increasing")
    if not model._cache.get("validated"):
        model.validate()
        model._cache["validated"] = True
    compiled = compile_model(model, backend)
    p = model.parameter_vector(params)
    if not np.isfinite(p).all():
        bad = [n for n, v in zip(model.parameter_names, p) if not math.isfinite(v)]
        raise ModelError(f"parameter(s) {', '.join(bad)} are not finite", [f"{n} = {p[model.parameter_names.index(n)]}" for n in bad])
    regimen = Dosing.coerce(dose, model, p)
    layout = _Layout.of(model, compiled)
    i_inf, i_depot, i_target = layout.i_infusion, layout.i_depot, layout.i_target
    p[layout.i_dose] = regimen.total_ug
    y = compiled.initial_state(p)
    y[i_depot] = regimen.total_ug
    atol_vec = np.where(layout.is_mass, atol * regimen.total_ug, atol)

    t_end = max(times[-1], max(regimen.breakpoints()))
    bounds = [b for b in regimen.breakpoints() if b < t_end] + [t_end]
    out = np.empty((times.size, y.size))
    stats = {"n_steps": 0, "n_rhs": 0, "linear_solver": "", "dense_fallbacks": 0}
    for k, a in enumerate(bounds[:-1] if len(bounds) > 1 else bounds):
        b = bounds[k + 1] if len(bounds) > 1 else a
        for t_b, amount in regimen.boluses:
            if t_b == a:
                y[i_depot] -= amount
                y[i_target] += amount
        p[i_inf] = regimen.infusion_rate(a, b)
        last = k == len(bounds) - 2 or len(bounds) == 1
        mask = (times >= a) & ((times <= b) if last else (times < b))
        at_start = mask & (times == a)
        out[at_start] = y
        wanted = times[mask & (times > a)]
        grid = wanted if (wanted.size and wanted[-1] == b) else np.append(wanted, b)
        if b > a:
            res = compiled.solve(a, y, p, grid, rtol, atol_vec, max_steps)
            stats["n_steps"] += res.n_steps
            stats["n_rhs"] += res.n_rhs
            stats["linear_solver"] = res.linear_solver
            stats["dense_fallbacks"] += res.dense_fallbacks
            if not res.success:
                raise _solver_error(model, p, res, a, b, compiled.backend, rtol, atol, y, compiled)
            out[mask & (times > a)] = res.y[: wanted.size]
            y = res.y[-1].copy()
    return times, out, p, compiled, stats


#: How far below zero the diagnosis of a failed solve probes each state: a fraction of the
#: dose for amounts (µg), of max(|value|, 1) for the other states.
_PROBE = 1e-6
#: At most this many names of each kind in a solver-failure message (it stays short).
_SHOWN = 6


def _rate_evaluator(model):
    """Every rate law (fluxes, then rate rules) as one NumPy function of (t, y, p), with labels.

    Built once per model, on the first failure (a fit may fail many trial points).
    """
    cached = model._cache.get("rate_evaluator")
    if cached is None:
        import sympy as sp

        from .parts import TIME

        subs = model.assignment_substitutions()
        raw = [rate for rate, _ in model.rate_terms()]
        exprs = [rate.xreplace(subs) for rate in raw]
        owner = {}
        for part in model.parts:
            owner.update({("flux", f.name): part.name for f in part.fluxes})
            owner.update({("rate rule", r.state): part.name for r in part.rate_rules})
        labels = [("flux", f.name) for f in model.fluxes] + [("rate rule", r.state) for r in model.rate_rules]
        f = sp.lambdify((TIME, model.state_symbols, model.parameter_symbols), exprs, modules="numpy", cse=True)
        # The rates as declared (assignments kept as names) say which parameters a
        # mechanism's author wrote into them: the few worth naming.
        cached = model._cache["rate_evaluator"] = (f, raw, labels, [owner.get(label, "?") for label in labels])
    return cached


def _failing_rates(model, p, t, y, dose):
    """Rate laws that are not finite at state ``y`` (time ``t``), or once one state dips below zero.

    Returns ``[(term index, state name or None)]``: None where the rate is not finite at
    ``y`` itself, else the state whose small negative value (the solver's trial states
    dip below zero within its tolerance) makes it NaN or infinite.
    """
    f, _, _, _ = _rate_evaluator(model)
    n = y.size
    scale = np.array([dose if s.unit == "ug" else max(abs(v), 1.0) for s, v in zip(model.states, y)])
    Y = np.repeat(y[:, None], n + 1, axis=1)
    Y[np.arange(n), np.arange(1, n + 1)] = -_PROBE * scale
    with np.errstate(all="ignore"):
        values = f(t, list(Y), p)
    bad = ~np.isfinite(np.vstack([np.broadcast_to(np.asarray(v, dtype=float), (n + 1,)) for v in values]))
    at_state = np.flatnonzero(bad[:, 0])
    found = [(int(i), None) for i in at_state]
    if not found:
        for i in np.flatnonzero(bad.any(axis=1)):
            found.append((int(i), model.state_names[int(np.flatnonzero(bad[i])[0]) - 1]))
    return found


def _failing_slopes(model, compiled, p, t, y):
    """Rate laws whose slope in a state is not finite at ``y`` (x^n, n < 1, at x = 0): ``[(term, state)]``.

    CVODE's Newton matrix holds these slopes; an infinite one turns the Newton update
    into NaN, and the next right-hand side fails although every rate is finite at ``y``.
    The compiled Jacobian finds the entries; the rate laws that change the entry's state
    and contain its column's state are differentiated to find which one.
    """
    import sympy as sp

    from .parts import TIME

    with np.errstate(all="ignore"):
        J = np.asarray(compiled.jac(t, y, p), dtype=float)
    pairs = {(int(i), int(j)) for i, j in np.argwhere(~np.isfinite(J))}
    if not pairs:
        return []
    subs = model.assignment_substitutions()
    states = model.state_symbols
    found = []
    for k, (rate, changes) in enumerate(model.rate_terms()):
        columns = sorted({j for i, _ in changes for (i2, j) in pairs if i2 == i})
        if not columns:
            continue
        expr = rate.xreplace(subs)
        for j in columns:
            if states[j] not in expr.free_symbols:
                continue
            slope = sp.lambdify((TIME, states, model.parameter_symbols), sp.diff(expr, states[j]), modules="numpy")
            with np.errstate(all="ignore"):
                if not np.isfinite(float(slope(t, list(y), p))):
                    found.append((k, model.state_names[j]))
    return found


def _listing(names, shown=_SHOWN):
    names = list(names)
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


def _solver_error(model, p, res, a, b, backend, rtol, atol, y_start=None, compiled=None) -> SolverError:
    """A short message: where the solve stopped, which mechanism's rate failed, the few
    parameters in that rate (and any the caller changed), and what to try.

    The rates are evaluated at the last state the solver returned (the last output time
    before the failure, else the segment's start) and with each state nudged a little
    below zero, which is where a rate law such as m^(2/3) turns NaN.
    """
    names = model.parameter_names
    index = {n: i for i, n in enumerate(names)}
    defaults = model.parameter_vector()
    changed = {n: float(v) for n, v, d in zip(names, p, defaults) if v != d and n not in (DOSE, INFUSION_RATE)}
    head = f"the {backend} solver failed at t = {res.t_reached:.6g} h (integrating {a:g}–{b:g} h): {res.message}."
    culprit_text, culprit_params = "", {}
    t_state, y_state = a, (None if y_start is None else np.asarray(y_start, dtype=float))
    rows = np.asarray(res.y, dtype=float)
    if rows.ndim == 2 and rows.shape[0]:
        done = [k for k, tk in enumerate(np.asarray(res.t, dtype=float)[: rows.shape[0]])
                if tk < res.t_reached and np.isfinite(rows[k]).all()]
        if done:
            t_state, y_state = float(res.t[done[-1]]), rows[done[-1]]
    if y_state is not None and y_state.size == len(model.state_names):
        slopes = False
        try:
            failing = _failing_rates(model, p, t_state, y_state, float(p[index[DOSE]]) if DOSE in index else 1.0)
            if not failing and compiled is not None:
                failing, slopes = _failing_slopes(model, compiled, p, t_state, y_state), True
        except Exception:  # noqa: BLE001 - the diagnosis must never hide the solver's own failure
            failing = []
        if failing:
            _, exprs, labels, owners = _rate_evaluator(model)
            mechanisms = list(dict.fromkeys(owners[i] for i, _ in failing))
            rates = []
            for kind, word in (("flux", "flux"), ("rate rule", "rate rule of")):
                these = list(dict.fromkeys(labels[i][1] for i, _ in failing if labels[i][0] == kind))
                if these:
                    rates.append(f"{word}{'es' if kind == 'flux' and len(these) > 1 else ''} {_listing(these, 2)}")
            negative = list(dict.fromkeys(s for _, s in failing if s))
            used = {sym.name for i, _ in failing for sym in exprs[i].free_symbols}
            subs = model.assignment_substitutions()
            # Changed values first, also where a derived quantity brings them into the rate.
            behind = {sym.name for i, _ in failing for sym in exprs[i].xreplace(subs).free_symbols}
            first = [n for n in changed if n in behind]
            culprit_params = {n: float(p[index[n]]) for n in first + [n for n in names if n in used and n not in first]
                              if n not in (DOSE, INFUSION_RATE)}
            derived = sorted(n for n in used if n in {a.name for a in model.assignments})
            if slopes:
                what = f"Slope of a rate not finite (in {_listing(negative, 2)}) at the state of t = {t_state:.6g} h"
            elif negative:
                what = f"Rate not finite once an amount dips below zero ({_listing(negative, 2)})"
            else:
                what = f"Rate not finite at the state of t = {t_state:.6g} h"
            named = [f"{k}={v:.4g}{' (changed)' if k in changed else ''}" for k, v in culprit_params.items()]
            named[len(first):len(first)] = [f"{n} (derived)" for n in derived]
            culprit_text = (f" {what}: mechanism {_listing(mechanisms, 2)}, {'; '.join(rates)}."
                            f" In it: {_listing(named, 4) or 'no parameter'}.")
    others = {k: v for k, v in changed.items() if k not in culprit_params}
    listing = _listing((f"{k}={v:.4g}" for k, v in others.items()), 4 if culprit_text else _SHOWN)
    if culprit_text:
        params_text = f" Other parameters changed from the defaults: {listing}." if others else " No other parameter changed."
    else:
        params_text = f" Parameters changed from the defaults: {listing}." if changed else " All parameters at their defaults."
    if culprit_text and culprit_text.startswith(" Slope"):
        fix = ("a rate law with a finite slope at every amount (x^n with n < 1 has an infinite one at x = 0), "
               "or check these values against their bounds (model.parameters).")
    elif culprit_text and " dips below zero" in culprit_text:
        fix = (f"a rate law finite for every amount (as nanopk.mechanisms.dissolution.cube_root_rate), "
               f"or a tighter atol (now {atol:g} × dose).")
    elif culprit_text:
        fix = "check these values against their bounds (model.parameters), or backend='reference' to compare."
    else:
        fix = (f"{'check the changed values against their bounds (model.parameters), ' if changed else ''}"
               f"loosen rtol (now {rtol:g}) or atol (now {atol:g} × dose), or backend='reference' to compare.")
    return SolverError(
        f"{head}{culprit_text}{params_text} Try: {fix}",
        t_reached=res.t_reached,
        params={**culprit_params, **changed},
    )


def simulate(model, times_h, params: Mapping[str, float] | None = None, dose=None, backend: str = "auto",
             rtol: float = 1e-6, atol: float = 1e-9, states: bool = False, max_steps: int = 200_000) -> pd.DataFrame:
    """Simulate ``model`` and return its observables.

    Parameters
    ----------
    times_h : array_like
        Output times (h since the first dose), increasing.
    params : dict, optional
        Parameter values overriding the model's defaults.
    dose : float, str, Bolus, Infusion, list or Dosing, optional
        A number is an IV bolus in µg at t = 0; a string carries its unit
        (``"0.85 mg/kg"``, scaled by the ``BW`` parameter); lists mix boluses and
        infusions.  Default: one bolus of the model's ``dose`` parameter.
    backend : {"auto", "cvode", "reference"}
    rtol, atol : float
        Relative tolerance; absolute tolerance as a fraction of the dose (mass states).
    states : bool
        Also return every state (µg, or its own unit), as columns ``state:NAME``.

    Returns
    -------
    pandas.DataFrame
        Index ``time_h``; one column per observable (organs, ``total`` …) in %ID.
        ``df.attrs`` holds ``units``, ``model``, ``backend``, ``dose_ug`` and solver
        statistics: ``n_steps``, ``n_rhs``, ``linear_solver`` (how the Newton systems
        were solved: ``"sparse LU"``, the model's generated sparse LU; ``"sparse LU +
        low-rank update"``, that of J's direct part updated through shared moments; or
        ``"dense"``) and
        ``dense_fallbacks`` (factorisations the sparse LU handed to the dense one, see
        :mod:`nanopk.backends.sparse_lu`).

    Raises
    ------
    ModelError
        Before solving: an unknown parameter name, a value outside the parameter's
        bounds or not finite (every one listed), a dose that is not a finite positive
        amount, a dosing time that is not finite and ≥ 0, bad output times.
    SolverError
        Naming the time reached; the mechanism and fluxes whose rate is not finite
        (at the last state returned, or once an amount dips below zero) with the
        parameters in those rates; the values changed from the defaults; and what to try.
    """
    if params:
        # The user's values, checked as fits check theirs (fits call solve_states with
        # values their own bounds already hold).
        model.check_parameter_values(params)
    times, Y, p, compiled, stats = solve_states(model, times_h, params, dose, backend, rtol, atol, max_steps)
    layout = _Layout.of(model, compiled)
    values = compiled.observe(times, Y, p)
    # The values are this call's own array: no copy (a third of the frame's cost).
    df = pd.DataFrame(values, index=pd.Index(times, name="time_h"), columns=layout.columns, copy=False)
    if states:
        for i, name in enumerate(model.state_names):
            df[f"state:{name}"] = Y[:, i]
    df.attrs.update(model=model.name, backend=compiled.backend, dose_ug=float(p[layout.i_dose]), units=dict(layout.units), **stats)
    return df
