"""The run kernel: a model, parameter values and a dosing regimen in, states at output times out.

Every way nanopk runs a model goes through :class:`Runner`: :func:`nanopk.simulate`,
:func:`nanopk.batch.simulate_many`, the stepping :class:`~nanopk.stepping.Integrator`,
and a fit's residuals and sensitivity Jacobian (:mod:`nanopk.fit.objective`).  So each
of these is done in one place, the same way for all:

- **validation**, once per model (:meth:`nanopk.Model.ensure_valid`), and compilation,
  once per structure and backend (:func:`nanopk.compile.compile_model`);
- **the initial state and dosing**: the whole regimen (:mod:`nanopk.dosing`) starts in
  the ``depot`` state; a bolus moves its amount from the depot to the dose target at its
  time, an infusion moves it at a constant rate (the ``infusion_rate`` parameter) over
  its duration.  ``dose`` is the regimen's total, so the mass states sum to it at every
  time and %ID is relative to the whole regimen.  The integration runs segment by
  segment between dosing events (bolus times, infusion starts and stops), because the
  solver must not step across a discontinuity;
- **tolerances**: ``atol`` is a fraction of the dose for mass states and absolute for
  the others;
- **solver errors**: a failed solve raises :class:`~nanopk.errors.SolverError` naming
  the time reached, the mechanism and rate laws that are not finite, the parameters in
  them and what to try (:func:`solver_error`).

With ``sensitivities=[indices]`` the same segments are integrated together with the
forward sensitivities ``S = ∂y/∂p[indices]`` (compiled backend), starting from
``∂y(0)/∂p`` of the initial-state expressions; a bolus or an infusion does not change
``S`` (their amounts do not depend on the model's parameters; a per-kg dose scales
with ``BW``, whose sensitivity through the dose is not included).  One such solve gives
a fit both its residuals and its Jacobian at a point.

:data:`solves` counts the solves by kind (``"states"``, ``"sensitivities"``,
``"step"``): one per :meth:`Runner.run` or :meth:`Runner.step`, whatever the number of
segments; tests and benchmarks read it to show how many solves a task takes.
"""
from __future__ import annotations

import collections
import math
import threading
import weakref
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .compile import compile_model
from .dosing import Dosing
from .errors import ModelError, SolverError
from .parts import DEPOT, DOSE, INFUSION_RATE

__all__ = ["Runner", "Solution", "Layout", "ObservationSlopes", "solves", "solver_error", "observation_derivatives"]

#: Solves run so far in this process, by kind (``"states"``, ``"sensitivities"``, ``"step"``).
solves: collections.Counter = collections.Counter()
_COUNT_LOCK = threading.Lock()  # fits solve on several threads at once


def _count(kind: str) -> None:
    with _COUNT_LOCK:
        solves[kind] += 1


@dataclass(frozen=True)
class Layout:
    """Where the kernel finds the dose, the infusion rate, the depot, the dose target and
    the mass states, and the frame's column labels: computed once per compiled model,
    because fits run the kernel thousands of times and rebuilding these lists was a third
    of a call on a 23-state model."""

    i_dose: int
    i_infusion: int
    i_depot: int
    i_target: int
    is_mass: np.ndarray
    columns: pd.Index
    state_columns: pd.Index


#: Layouts by compiled model (one per structure and backend; the compile memo keeps
#: those for the process, so a plain dict loses nothing).
_LAYOUTS: dict = {}
#: The initial state's derivative ∂y0/∂p, lambdified, by compiled model.
_INITIAL_SLOPES: dict = {}


def _layout(model, compiled) -> Layout:
    layout = _LAYOUTS.get(compiled)
    if layout is None:
        names, states = list(compiled.parameter_names), list(compiled.state_names)
        layout = _LAYOUTS[compiled] = Layout(
            names.index(DOSE), names.index(INFUSION_RATE), states.index(DEPOT), states.index(model.dose_target),
            np.array([s.is_mass for s in model.states]), pd.Index(compiled.observable_names),
            pd.Index([f"state:{name}" for name in states]),
        )
    return layout


def _initial_slopes(compiled):
    """``p -> ∂y0/∂p`` (n_states × n_parameters) of the model's initial-state expressions."""
    f = _INITIAL_SLOPES.get(compiled)
    if f is None:
        import sympy as sp

        system = compiled.system
        f = _INITIAL_SLOPES[compiled] = sp.lambdify((system.p,), sp.Matrix(system.initial).jacobian(system.p), modules="numpy")
    return f


@dataclass
class Solution:
    """What :meth:`Runner.run` returns.

    Attributes
    ----------
    times : ndarray
        The output times (h).
    y : ndarray
        States at each time, ``len(times) × n_states`` (mass states in µg).
    p : ndarray
        The parameter vector solved with (``dose`` = the regimen's total).
    s : ndarray or None
        ``∂y/∂p[indices]`` at each time, ``len(times) × n_states × len(indices)``, when
        sensitivities were asked for.
    indices : tuple of int
        The parameter indices of ``s``.
    stats : dict
        ``n_steps``, ``n_rhs``, ``linear_solver``, ``dense_fallbacks``, ``n_lin_setups``,
        ``n_nonlin_iters``, ``n_jac_evals`` (see :func:`nanopk.simulate`).
    """

    times: np.ndarray
    y: np.ndarray
    p: np.ndarray
    s: np.ndarray | None = None
    indices: tuple = ()
    stats: dict | None = None


class Runner:
    """Runs one model with one backend: the kernel every simulation goes through.

    Parameters
    ----------
    model : nanopk.Model
        Validated here once (:meth:`nanopk.Model.ensure_valid`).
    backend : {"auto", "cvode", "reference"}

    Attributes
    ----------
    model, compiled, layout
        The model, its compiled backend and the :class:`Layout` of its states.
    backend : str
        The backend actually used (``"cvode"`` or ``"reference"``).

    Raises
    ------
    ModelError
        For an invalid model (every problem listed) or an unknown backend.
    """

    def __init__(self, model, backend: str = "auto"):
        model.ensure_valid()
        self.model = model
        self.compiled = compile_model(model, backend)
        self.backend = self.compiled.backend
        self.layout = _layout(model, self.compiled)

    # ------------------------------------------------------------------ inputs
    def parameters(self, params=None) -> np.ndarray:
        """The parameter vector with ``params`` applied; every non-finite value is named."""
        p = self.model.parameter_vector(params)
        if not np.isfinite(p).all():
            names = self.model.parameter_names
            bad = [n for n, v in zip(names, p) if not math.isfinite(v)]
            raise ModelError(f"parameter(s) {', '.join(bad)} are not finite", [f"{n} = {p[names.index(n)]}" for n in bad])
        return p

    def atol(self, atol: float, dose_ug: float) -> np.ndarray:
        """The absolute tolerance of each state: ``atol × dose`` for amounts, ``atol`` for the others."""
        return np.where(self.layout.is_mass, atol * dose_ug, atol)

    @staticmethod
    def check_times(times_h) -> np.ndarray:
        """The output times as a float array; finite, ≥ 0 and increasing, else a ModelError."""
        times = np.asarray(times_h, dtype=float).ravel()
        if times.size == 0:
            raise ModelError("`times_h` is empty; give at least one output time in hours")
        # One pass for the common case (a fit runs this thousands of times); the messages
        # come from the checks below.
        if not (np.isfinite(times).all() and times[0] >= 0 and (times[1:] >= times[:-1]).all()):
            if not np.all(np.isfinite(times)) or times.min() < 0:
                raise ModelError("`times_h` must be finite and ≥ 0 (hours since the first dose)")
            raise ModelError("`times_h` must be increasing")
        return times

    # ------------------------------------------------------------------ solving
    def run(self, times_h, p, dose=None, rtol: float = 1e-6, atol: float = 1e-9, max_steps: int = 200_000,
            sensitivities=None) -> Solution:
        """Integrate the regimen ``dose`` (see :meth:`nanopk.dosing.Dosing.coerce`) at parameters ``p``.

        Parameters
        ----------
        times_h : array_like
            Output times (h since the first dose), increasing.
        p : ndarray
            The parameter vector (:meth:`parameters`); not modified.
        sensitivities : sequence of int, optional
            Parameter indices whose forward sensitivities to integrate with the states.

        Raises
        ------
        ModelError
            For bad output times, a bad regimen, or sensitivities on a backend without them.
        SolverError
            Naming where the solve stopped and why (:func:`solver_error`).
        """
        times = self.check_times(times_h)
        p = np.array(p, dtype=float)
        layout = self.layout
        regimen = Dosing.coerce(dose, self.model, p)
        i_inf, i_depot, i_target = layout.i_infusion, layout.i_depot, layout.i_target
        total = regimen.total_ug
        p[layout.i_dose] = total
        y = self.compiled.initial_state(p)
        y[i_depot] = total
        atol_vec = self.atol(atol, total)
        indices = () if sensitivities is None else tuple(int(i) for i in sensitivities)
        sens = sensitivities is not None
        if sens:
            if not hasattr(self.compiled, "solve_sensitivities"):
                raise ModelError(f"forward sensitivities need the compiled backend; the {self.backend!r} backend "
                                 "has no `solve_sensitivities`: use backend='cvode'")
            s = np.asarray(_initial_slopes(self.compiled)(p), dtype=float)[:, list(indices)]
            s[i_depot] = 0.0  # the depot holds the regimen, set above, not its expression
            out_s = np.empty((times.size, y.size, len(indices)))

        t_end = max(times[-1], max(regimen.breakpoints()))
        bounds = [b for b in regimen.breakpoints() if b < t_end] + [t_end]
        out = np.empty((times.size, y.size))
        stats = {"n_steps": 0, "n_rhs": 0, "linear_solver": "", "dense_fallbacks": 0, "n_lin_setups": 0,
                 "n_nonlin_iters": 0, "n_jac_evals": 0}
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
            if sens:
                out_s[at_start] = s
            if b <= a:
                continue
            wanted = times[mask & (times > a)]
            grid = wanted if (wanted.size and wanted[-1] == b) else np.append(wanted, b)
            if sens:
                res = self.compiled.solve_sensitivities(a, y, s, p, grid, rtol, atol_vec, max_steps, indices)
            else:
                res = self.compiled.solve(a, y, p, grid, rtol, atol_vec, max_steps)
            stats["n_steps"] += res.n_steps
            stats["n_rhs"] += res.n_rhs
            stats["linear_solver"] = res.linear_solver
            stats["dense_fallbacks"] += res.dense_fallbacks
            stats["n_lin_setups"] += res.n_lin_setups
            stats["n_nonlin_iters"] += res.n_nonlin_iters
            stats["n_jac_evals"] += res.n_jac_evals
            if not res.success:
                _count("sensitivities" if sens else "states")
                raise solver_error(self.model, p, res, a, b, self.backend, rtol, atol, y, self.compiled)
            out[mask & (times > a)] = res.y[: wanted.size]
            y = res.y[-1].copy()
            if sens:
                out_s[mask & (times > a)] = res.s[: wanted.size]
                s = res.s[-1].copy()
        _count("sensitivities" if sens else "states")
        return Solution(times, out, p, out_s if sens else None, indices, stats)

    def step(self, t0: float, y, p, t1: float, rtol: float, atol: float, dose_ug: float,
             max_steps: int = 200_000) -> np.ndarray:
        """The states at ``t1`` from ``y`` at ``t0``: one step of the stepping API (no dosing).

        ``atol`` is a fraction of ``dose_ug`` for the amounts, absolute for the others.

        Raises
        ------
        SolverError
            As :meth:`run`.
        """
        y = np.asarray(y, dtype=float)
        res = self.compiled.solve(t0, y, p, np.array([t1]), rtol, self.atol(atol, dose_ug), max_steps)
        _count("step")
        if not res.success:
            raise solver_error(self.model, p, res, t0, t1, self.backend, rtol, atol, y, self.compiled)
        return np.asarray(res.y[-1], dtype=float).copy()

    def observe(self, solution: Solution) -> np.ndarray:
        """The observables (len(times) × n_observables) of a :class:`Solution`."""
        return self.compiled.observe(solution.times, solution.y, solution.p)


#: How far below zero the diagnosis of a failed solve probes each state: a fraction of the
#: dose for amounts (µg), of max(|value|, 1) for the other states.
_PROBE = 1e-6
#: At most this many names of each kind in a solver-failure message (it stays short).
_SHOWN = 6


#: The rate evaluators of :func:`_rate_evaluator`, by model (they hold no reference to it).
_RATE_EVALUATORS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _rate_evaluator(model):
    """Every rate law (fluxes, then rate rules) as one NumPy function of (t, y, p), with labels.

    Built once per model, on the first failure (a fit may fail many trial points).
    """
    cached = _RATE_EVALUATORS.get(model)
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
        cached = _RATE_EVALUATORS[model] = (f, raw, labels, [owner.get(label, "?") for label in labels])
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


def solver_error(model, p, res, a, b, backend, rtol, atol, y_start=None, compiled=None) -> SolverError:
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


#: The observation derivatives of :func:`observation_derivatives`, by compiled model.
_OBSERVATION_SLOPES: dict = {}


@dataclass(frozen=True)
class ObservationSlopes:
    """``∂h/∂y`` and ``∂h/∂p`` of the observables ``h(t, y, p)``, NumPy functions of ``(t, y, p)``.

    ``dy_constant``: ``∂h/∂y`` depends on the parameters only (observables linear in the
    states, as %ID of amounts are), so one evaluation serves every output time.
    ``p_columns``: the parameters whose column of ``∂h/∂p`` is not identically zero
    (``dose`` and residual-blood fractions, say); a fit varying none of them needs no
    ``∂h/∂p`` at all.
    """

    dh_dy: object
    dh_dp: object
    dy_constant: bool
    p_columns: frozenset


def observation_derivatives(compiled) -> ObservationSlopes:
    """The :class:`ObservationSlopes` of a compiled model: derived and lambdified once per
    compiled model (they depend on its structure only), for the chain rule from forward
    sensitivities to observables."""
    cached = _OBSERVATION_SLOPES.get(compiled)
    if cached is None:
        import sympy as sp

        system = compiled.system
        h = sp.Matrix(system.observables)
        args = (system.t, system.y, system.p)
        dy, dp = h.jacobian(system.y), h.jacobian(system.p)
        moving = {system.t, *system.y}
        cached = _OBSERVATION_SLOPES[compiled] = ObservationSlopes(
            sp.lambdify(args, dy, modules="numpy", cse=True),
            sp.lambdify(args, dp, modules="numpy", cse=True),
            not (dy.free_symbols & moving),
            frozenset(j for j in range(dp.shape[1]) if any(e != 0 for e in dp[:, j])),
        )
    return cached
