"""The solver's work counters, from which benchmarks/floor.py prices a solve's arithmetic floor.

CVODE's counters (CVodeGetNumSteps, ...RhsEvals, ...LinSolvSetups, ...NonlinSolvIters,
...JacEvals; SUNDIALS CVODE user guide, "Optional output functions") reach
``SolveResult`` and ``simulate()``'s ``attrs``.  Their relations follow from how CVODE's
BDF steps with a modified Newton iteration: every step needs at least one Newton
iteration, each iteration solves one linear system with the last factorisation and
evaluates f once, a factorisation (setup) happens at most once per step attempt and
reuses J when it can.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import nanopk
from nanopk.dosing import Bolus

TIMES = np.linspace(0.0, 168.0, 50)
COUNTERS = ("n_steps", "n_rhs", "n_lin_setups", "n_nonlin_iters", "n_jac_evals")


@pytest.fixture(scope="module")
def models():
    return {name: nanopk.load_model(name) for name in ("mouse_pbpk", "mouse_tumour")}


def _counts(df) -> dict:
    return {k: df.attrs[k] for k in COUNTERS}


def _assert_consistent(c: dict) -> None:
    assert all(isinstance(v, int) for v in c.values()), c
    assert 1 <= c["n_jac_evals"] <= c["n_lin_setups"] <= c["n_steps"], c
    assert c["n_steps"] <= c["n_nonlin_iters"] <= c["n_rhs"], c


def test_the_benchmark_solve_reports_its_newton_work(models):
    """mouse_pbpk at benchmark.py's settings (rtol 1e-6, atol 1e-9 × dose, 50 outputs in
    0–168 h) reports J evaluations ≤ LU setups ≤ steps ≤ linear solves ≤ f evaluations,
    and far fewer factorisations than steps (CVODE reuses M for several steps: the issue
    measured 63 for 472 steps)."""
    df = models["mouse_pbpk"].simulate(TIMES, rtol=1e-6, atol=1e-9)
    c = _counts(df)
    _assert_consistent(c)
    assert c["n_lin_setups"] < c["n_steps"] / 3, c


def test_a_repeated_solve_counts_the_same_work(models):
    """The solve is deterministic: the same call twice gives identical counters and states."""
    for model in models.values():
        a = model.simulate(TIMES, rtol=1e-6, atol=1e-9, states=True)
        b = model.simulate(TIMES, rtol=1e-6, atol=1e-9, states=True)
        assert _counts(a) == _counts(b)
        assert np.array_equal(a.to_numpy(), b.to_numpy())


def test_the_backend_result_and_simulate_agree(models):
    """A one-bolus simulate() is one backend solve: its attrs are that SolveResult's counters."""
    from nanopk.run import Runner

    model = models["mouse_tumour"]
    runner = Runner(model, "cvode")
    p = runner.parameters()
    dose = p[runner.layout.i_dose]
    y0 = runner.compiled.initial_state(p)
    y0[runner.layout.i_depot] = 0.0
    y0[runner.layout.i_target] += dose
    res = runner.compiled.solve(0.0, y0, p, TIMES, 1e-6, runner.atol(1e-9, dose))
    df = model.simulate(TIMES, rtol=1e-6, atol=1e-9)
    assert _counts(df) == {k: getattr(res, k) for k in COUNTERS}


def test_the_counters_of_a_regimen_are_summed_over_its_segments(models, monkeypatch):
    """Two boluses (0 h and 24 h) integrate two segments: the attrs are the sums of the
    counters of the two backend solves."""
    from nanopk.compile import compile_model

    model = models["mouse_pbpk"]
    compiled = compile_model(model, "cvode")
    seen, solve = [], compiled.solve

    def recording(*args, **kwargs):
        seen.append(solve(*args, **kwargs))
        return seen[-1]

    monkeypatch.setattr(compiled, "solve", recording)
    both = model.simulate(TIMES, rtol=1e-6, atol=1e-9, dose=[Bolus(10.0, 0.0), Bolus(10.0, 24.0)])
    assert len(seen) == 2
    _assert_consistent(_counts(both))
    assert _counts(both) == {k: getattr(seen[0], k) + getattr(seen[1], k) for k in COUNTERS}


@settings(max_examples=12, deadline=None)
@given(name=st.sampled_from(["mouse_pbpk", "mouse_tumour"]), log_rtol=st.floats(-9.0, -4.0))
def test_the_counters_are_consistent_at_any_tolerance(models, name, log_rtol):
    """Whatever the tolerance, J evaluations ≤ setups ≤ steps ≤ linear solves ≤ f evaluations."""
    df = models[name].simulate(TIMES, rtol=10.0 ** log_rtol, atol=1e-9)
    _assert_consistent(_counts(df))


def test_a_tighter_tolerance_costs_more_work(models):
    """rtol 1e-9 takes more steps, linear solves and f evaluations than rtol 1e-5 (BDF's
    step size shrinks with the tolerance)."""
    model = models["mouse_pbpk"]
    loose = _counts(model.simulate(TIMES, rtol=1e-5, atol=1e-9))
    tight = _counts(model.simulate(TIMES, rtol=1e-9, atol=1e-9))
    assert all(tight[k] > loose[k] for k in ("n_steps", "n_nonlin_iters", "n_rhs")), (loose, tight)


def test_the_reference_backend_reports_no_newton_counters(models):
    """LSODA (the reference backend) does not report these counters: they read 0, as
    SolveResult documents, never a made-up figure."""
    df = models["mouse_pbpk"].simulate(TIMES[:10], backend="reference", rtol=1e-6, atol=1e-9)
    assert df.attrs["n_steps"] > 0
    assert (df.attrs["n_lin_setups"], df.attrs["n_nonlin_iters"], df.attrs["n_jac_evals"]) == (0, 0, 0)
