"""Amounts stay ≥ 0 and keep their sum in the compiled backend (issue 17 #3).

CVODE's error can take an amount near zero below it; the compiled backend constrains every
mass state to ≥ 0 (CVodeSetConstraints) and restores the sum of the amounts, which every
nanopk model conserves, by a projection (see nanopk.backends.cvode).  The test model is a
stiff chain blood → liver (k_fast, 100/h) → urine (k_slow, 1/h) at loose tolerances (rtol
1e-4, atol 1e-6 × dose), where the unconstrained solve dips to about −7e-8 of the dose and
constraints alone add about 3e-5 of it.
"""
from __future__ import annotations

import ctypes

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import nanopk
from nanopk import Flux, Model, Parameter, Part, State
from nanopk.parts import symbol

TIMES = np.linspace(0.5, 200.0, 60)
LOOSE = {"rtol": 1e-4, "atol": 1e-6}


def _chain() -> Model:
    params = (Parameter("k_fast", 100.0, "1/h", "test value", (0.0, 1e5)),
              Parameter("k_slow", 1.0, "1/h", "test value", (0.0, 1e3)))
    part = Part("test.chain", states=(State("blood"), State("liver"), State("urine", "sink")), parameters=params,
                fluxes=(Flux("uptake", "blood", "liver", symbol("k_fast") * symbol("blood")),
                        Flux("excretion", "liver", "urine", symbol("k_slow") * symbol("liver"))))
    return Model("test_chain", [part], "blood")


MODEL = _chain()


def _lowest_and_drift(model, sim):
    """(lowest amount, largest |total − 100 %ID|), both as fractions of the dose."""
    amounts = sim[[f"state:{s.name}" for s in model.states if s.is_mass]].to_numpy()
    dose = sim.attrs["dose_ug"]
    return amounts.min() / dose, float(np.max(np.abs(sim["total"].to_numpy() - 100.0)) / 100.0)


def _solve(model=MODEL, *, constrained=True, output_mode=2, project=1, times=TIMES, **kwargs):
    """``model.simulate`` on the compiled backend with the driver's switches set for this call."""
    compiled = model.compile("cvode")
    mode = ctypes.c_int.in_dll(compiled._lib, "nanopk_output_mode")
    projection = ctypes.c_int.in_dll(compiled._lib, "nanopk_project_amounts")
    assert (mode.value, projection.value, compiled.constrain_mass) == (2, 1, True)  # the defaults
    mode.value, projection.value, compiled.constrain_mass = output_mode, project, constrained
    try:
        return model.simulate(times, states=True, backend="cvode", **{**LOOSE, **kwargs})
    finally:
        mode.value, projection.value, compiled.constrain_mass = 2, 1, True


def test_unconstrained_solve_of_the_stiff_chain_dips_below_zero():
    """The test model is a real test: without constraints CVODE's interpolated output of the chain goes below
    −1e-9 of the dose (−7e-8 measured) while the total stays 100 %ID."""
    lowest, drift = _lowest_and_drift(MODEL, _solve(constrained=False, output_mode=0))
    assert lowest < -1e-9
    assert drift < 1e-12


def test_constraints_alone_break_mass_balance():
    """Why the projection exists: CVODE's constraints alone (small violations set to 0) add ~3e-5 of the dose
    to the stiff chain, 30× the 1e-6 that `total` must meet."""
    lowest, drift = _lowest_and_drift(MODEL, _solve(output_mode=0, project=0))
    assert drift > 1e-6


def test_constrained_solve_is_nonnegative_and_conserves_mass():
    """Default solve of the stiff chain: no amount below 0, total = 100 %ID to 1e-11, the drift above which an
    output is projected (1e-6 required)."""
    lowest, drift = _lowest_and_drift(MODEL, _solve())
    assert lowest >= 0.0
    assert drift <= 1e-11


def test_constrained_solve_is_as_accurate_as_the_unconstrained_one():
    """The constraints and projections move the solution by no more than CVODE's own error: against a tight
    solve (rtol 1e-11) the constrained amounts are within 2x the unconstrained solve's worst error, and within
    1e-4 of the dose (rtol 1e-4)."""
    tight = _solve(constrained=False, output_mode=0, rtol=1e-11, atol=1e-15)
    columns = [f"state:{s}" for s in MODEL.state_names]
    dose = tight.attrs["dose_ug"]
    error = {c: float(np.max(np.abs(_solve(constrained=c, output_mode=2 if c else 0)[columns].to_numpy()
                                    - tight[columns].to_numpy())) / dose) for c in (False, True)}
    assert error[True] <= max(2.0 * error[False], 1e-9), error
    assert error[True] <= 1e-4, error


@settings(max_examples=25, deadline=None)
@given(k_fast=st.floats(10.0, 1e4), k_slow=st.floats(1e-2, 10.0), atol=st.sampled_from([1e-9, 1e-6, 1e-4]),
       dose=st.floats(1.0, 1000.0), n_times=st.integers(1, 80))
def test_any_stiff_chain_stays_nonnegative_with_mass_balance(k_fast, k_slow, atol, dose, n_times):
    """Rates 10–1e4/h and 0.01–10/h, atol 1e-9 to 1e-4 × dose, 1–80 outputs: no amount below 0, total = 100 %ID to
    1e-11 (the projection's drift threshold)."""
    sim = MODEL.simulate(np.linspace(200.0 / n_times, 200.0, n_times), params={"k_fast": k_fast, "k_slow": k_slow},
                         dose=dose, states=True, backend="cvode", rtol=1e-4, atol=atol)
    lowest, drift = _lowest_and_drift(MODEL, sim)
    assert lowest >= 0.0
    assert drift <= 1e-11


def test_signed_states_are_not_constrained():
    """Only amounts are constrained: corona_plasma's coverage and number states are left free (0 in the
    constraint vector), its amounts are held ≥ 0."""
    model = nanopk.load_model("corona_plasma")
    compiled = model.compile("cvode")
    limits = compiled._constraints(np.zeros(compiled.n_states), compiled.n_states)
    assert list(limits) == [1.0 if s.is_mass else 0.0 for s in model.states]
    assert 0.0 in limits and 1.0 in limits


def test_an_initial_amount_below_zero_is_solved_without_constraints():
    """CVODE refuses a start outside its constraints: a state vector with a negative amount (a user's own
    initial state) is solved unconstrained, as before, not failed."""
    compiled = MODEL.compile("cvode")
    p = MODEL.parameter_vector()
    y0 = compiled.initial_state(p)
    y0[MODEL.state_names.index("blood")] = 10.0
    y0[MODEL.state_names.index("liver")] = -1e-6
    assert compiled._constraints(y0, y0.size) is None
    result = compiled.solve(0.0, y0, p, np.array([1.0, 10.0]), 1e-6, np.full(y0.size, 1e-8))
    assert result.success, result.message
    np.testing.assert_allclose(result.y.sum(axis=1), y0.sum(), rtol=1e-10)


def test_sensitivity_solve_keeps_the_amounts_nonnegative():
    """The forward-sensitivity solve (fits) constrains the amounts too, not the sensitivities: on the stiff chain
    its states are ≥ 0 with their sum kept to 1e-11 (the projection's drift threshold), and dy/dk_slow matches a central difference to 1e-3 of its
    largest value."""
    compiled = MODEL.compile("cvode")
    names = MODEL.parameter_names
    k = names.index("k_slow")
    p = MODEL.parameter_vector()
    y0 = compiled.initial_state(p)
    y0[MODEL.state_names.index("blood")] = p[names.index("dose")]
    atol = np.full(y0.size, 1e-6 * p[names.index("dose")])
    res = compiled.solve_sensitivities(0.0, y0, np.zeros((y0.size, 1)), p, TIMES, 1e-6, atol, 100_000, (k,))
    assert res.success, res.message
    assert res.y.min() >= 0.0
    np.testing.assert_allclose(res.y.sum(axis=1), y0.sum(), rtol=1e-11)
    step = 1e-4 * p[k]
    plus, minus = p.copy(), p.copy()
    plus[k] += step
    minus[k] -= step
    fd = (compiled.solve(0.0, y0, plus, TIMES, 1e-10, atol * 1e-4).y
          - compiled.solve(0.0, y0, minus, TIMES, 1e-10, atol * 1e-4).y) / (2 * step)
    np.testing.assert_allclose(res.s[:, :, 0], fd, rtol=0, atol=1e-3 * np.abs(fd).max())


@pytest.mark.parametrize("name", ["mouse_pbpk", "mouse_tumour_full"])
def test_unconstrained_and_constrained_bundled_models_agree(name):
    """Where nothing dips, nothing changes: on the bundled models at default tolerances the constrained outputs
    equal the unconstrained ones to 1e-9 of the dose."""
    model = nanopk.load_model(name)
    columns = [f"state:{s}" for s in model.state_names]
    free = _solve(model, constrained=False, output_mode=0, times=[1.0, 24.0, 168.0], rtol=1e-6, atol=1e-9)
    held = _solve(model, times=[1.0, 24.0, 168.0], rtol=1e-6, atol=1e-9)
    dose = free.attrs["dose_ug"]
    np.testing.assert_allclose(held[columns].to_numpy(), free[columns].to_numpy(), rtol=0, atol=1e-9 * dose)


def test_a_rate_that_drives_an_amount_negative_is_solved_unconstrained():
    """A negative rate (outside the model's bounds, as a fit with widened bounds may try) pushes the sink below
    zero by the ODE itself; the constrained solve stalls, so it is solved again unconstrained, as before the
    constraints: A(t) = A0·e^(k·t) to 1e-6 relative, the sink at −(A(t) − A0)."""
    model = nanopk.load_model("one_compartment_iv")
    compiled = model.compile("cvode")
    names = model.parameter_names
    p = model.parameter_vector()
    p[names.index("k10")] = -0.01
    y0 = compiled.initial_state(p)
    blood = [s.name for s in model.states].index(model.dose_target)
    y0[blood] = 10.0
    times = np.array([1.0, 10.0])
    result = compiled.solve(0.0, y0, p, times, 1e-8, np.full(y0.size, 1e-10))
    assert result.success, result.message
    np.testing.assert_allclose(result.y[:, blood], 10.0 * np.exp(0.01 * times), rtol=1e-6)
