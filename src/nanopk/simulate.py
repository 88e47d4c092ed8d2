"""Dosing regimens and simulation to observables in %ID.

A regimen is a list of IV boluses and constant-rate infusions.  The whole regimen
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
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from .compile import compile_model
from .errors import ModelError, SolverError
from .model import DEPOT, DOSE, INFUSION_RATE

__all__ = ["Bolus", "Infusion", "Dosing", "simulate", "solve_states"]


def _amount_ug(amount, body_weight_kg):
    if isinstance(amount, str):
        from .spec import dose_to_ug

        value, _, unit = amount.strip().partition(" ")
        try:
            number = float(value)
        except ValueError:
            raise ModelError(f"dose {amount!r} must read 'VALUE UNIT', e.g. '0.85 mg/kg' or '20 ug'") from None
        # Only the number is guarded: a unit problem keeps dose_to_ug's own reason.
        return dose_to_ug(number, unit.strip() or "ug", body_weight_kg)
    value = float(amount)
    if not math.isfinite(value) or value <= 0:
        raise ModelError(f"dose amount must be a positive number of µg (got {amount!r})")
    return value


@dataclass(frozen=True)
class Bolus:
    """An IV bolus of ``amount`` (µg, or a string such as ``"0.85 mg/kg"``) at ``time_h``."""

    amount: float | str
    time_h: float = 0.0


@dataclass(frozen=True)
class Infusion:
    """A constant-rate IV infusion of ``amount`` in total over ``duration_h`` from ``start_h``."""

    amount: float | str
    duration_h: float
    start_h: float = 0.0


class Dosing:
    """A dosing regimen: boluses and infusions, in µg once resolved.

    Examples
    --------
    >>> Dosing([Bolus(20.0), Bolus(20.0, time_h=24)]).total_ug
    40.0
    """

    def __init__(self, events: Sequence[Bolus | Infusion], body_weight_kg: float | None = None):
        self.events = tuple(events)
        if not self.events:
            raise ModelError("a dosing regimen needs at least one bolus or infusion")
        self.boluses: list[tuple[float, float]] = []
        self.infusions: list[tuple[float, float, float]] = []  # (start, stop, rate µg/h)
        for e in self.events:
            amount = _amount_ug(e.amount, body_weight_kg)
            if isinstance(e, Bolus):
                if e.time_h < 0:
                    raise ModelError(f"bolus time must be ≥ 0 h (got {e.time_h})")
                self.boluses.append((float(e.time_h), amount))
            elif isinstance(e, Infusion):
                if e.duration_h <= 0 or e.start_h < 0:
                    raise ModelError(f"infusion needs start_h ≥ 0 and duration_h > 0 (got {e.start_h}, {e.duration_h})")
                self.infusions.append((float(e.start_h), float(e.start_h + e.duration_h), amount / float(e.duration_h)))
            else:
                raise ModelError(f"dosing events must be Bolus or Infusion (got {type(e).__name__})")
        self.total_ug = sum(a for _, a in self.boluses) + sum((b - a) * r for a, b, r in self.infusions)

    @classmethod
    def coerce(cls, dose, model, p: np.ndarray) -> "Dosing":
        """Build a regimen from what ``simulate(dose=...)`` accepts."""
        index = model._parameter_index()
        if dose is None:
            return cls([Bolus(float(p[index[DOSE]]))])
        bw = float(p[index["BW"]]) if "BW" in index else None
        if isinstance(dose, Dosing):
            return dose
        if isinstance(dose, (Bolus, Infusion)):
            return cls([dose], bw)
        if isinstance(dose, (list, tuple)):
            return cls(dose, bw)
        return cls([Bolus(dose)], bw)

    def breakpoints(self) -> list[float]:
        points = {0.0} | {t for t, _ in self.boluses} | {a for a, _, _ in self.infusions} | {b for _, b, _ in self.infusions}
        return sorted(points)

    def infusion_rate(self, t0: float, t1: float) -> float:
        """Total infusion rate (µg/h) on the segment [t0, t1)."""
        return sum(r for a, b, r in self.infusions if a <= t0 and t1 <= b)


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
                raise _solver_error(model, p, res, a, b, compiled.backend, rtol, atol)
            out[mask & (times > a)] = res.y[: wanted.size]
            y = res.y[-1].copy()
    return times, out, p, compiled, stats


def _solver_error(model, p, res, a, b, backend, rtol, atol) -> SolverError:
    defaults = model.parameter_vector()
    changed = {n: float(v) for n, v, d in zip(model.parameter_names, p, defaults) if v != d and n not in (DOSE, INFUSION_RATE)}
    shown = changed or {n: float(v) for n, v in zip(model.parameter_names, p)}
    listing = ", ".join(f"{k}={v:.4g}" for k, v in shown.items())
    return SolverError(
        f"the {backend} solver failed at t = {res.t_reached:.6g} h (integrating {a:g}–{b:g} h): {res.message}. "
        f"Parameters {'changed from the defaults' if changed else '(all defaults)'}: {listing}. "
        f"Try: check these values against their bounds (model.parameters), loosen rtol (now {rtol:g}) "
        f"or atol (now {atol:g} × dose), or backend='reference' to compare.",
        t_reached=res.t_reached,
        params=shown,
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
    SolverError
        Naming the time reached, the parameter values and what to try.
    """
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
