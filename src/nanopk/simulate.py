"""Simulation of a dosing regimen to observables in %ID.

A regimen (:mod:`nanopk.dosing`) is a list of IV boluses and constant-rate infusions.  The whole regimen
starts in the ``depot`` state; a bolus moves its amount from the depot to the dose
target at its time, an infusion moves it at a constant rate over its duration.  So the
total of all mass states is the regimen's dose at every time and ``total`` reads
100 %ID throughout, for any regimen.  %ID is relative to the whole regimen.

The integration runs segment by segment between dosing events (bolus times, infusion
starts and stops), because the solver must not step across a discontinuity.  That, the
initial state, the tolerances, validation and the solver's errors are the run kernel's
(:mod:`nanopk.run`), shared with batches, the stepping API and fits.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np
import pandas as pd

from .dosing import Bolus, Dosing, Infusion
from .run import Runner

__all__ = ["Bolus", "Infusion", "Dosing", "simulate", "solve_states"]


def solve_states(model, times_h, params: Mapping[str, float] | None = None, dose=None, backend: str = "auto",
                 rtol: float = 1e-6, atol: float = 1e-9, max_steps: int = 200_000):
    """Integrate ``model``; return ``(times, states, p, compiled, stats)``.

    ``atol`` is relative to the dose for mass states and absolute for the others.  The
    work is :meth:`nanopk.run.Runner.run`'s; this is its tuple form.
    """
    runner = Runner(model, backend)
    sol = runner.run(times_h, runner.parameters(params), dose, rtol, atol, max_steps)
    return sol.times, sol.y, sol.p, runner.compiled, sol.stats


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
        :mod:`nanopk.backends.sparse_lu`); the Newton work: ``n_lin_setups``
        (factorisations of the Newton matrix), ``n_nonlin_iters`` (Newton iterations, one
        linear solve each) and ``n_jac_evals`` (Jacobian evaluations), summed over the
        dosing segments (0 on backends that do not count them; benchmarks/floor.py
        turns them into the solve's arithmetic floor).

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
        # The user's values, checked as fits check theirs (fits run the kernel with
        # values their own bounds already hold).
        model.check_parameter_values(params)
    runner = Runner(model, backend)
    sol = runner.run(times_h, runner.parameters(params), dose, rtol, atol, max_steps)
    layout = runner.layout
    values = runner.observe(sol)
    columns = layout.columns
    if states:
        # One block, one frame: inserting a column per state copied the frame each time.
        values = np.concatenate([values, sol.y], axis=1)
        columns = columns.append(layout.state_columns)
    # The values are this call's own array: no copy (a third of the frame's cost).
    df = pd.DataFrame(values, index=pd.Index(sol.times, name="time_h"), columns=columns, copy=False)
    df.attrs.update(model=model.name, backend=runner.backend, dose_ug=float(sol.p[layout.i_dose]),
                    units=model.observable_units, **sol.stats)
    return df
