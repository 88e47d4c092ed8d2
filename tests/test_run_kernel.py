"""The run kernel (nanopk.run): one place that validates, doses, sets tolerances, solves and counts.

simulate(), the batch runner, the stepping API and a fit's residuals and sensitivity
Jacobian all go through :class:`nanopk.run.Runner`; its counter ``nanopk.run.solves``
shows how many solves a task takes.
"""
import ast
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import nanopk
from nanopk import Flux, Model, ModelError, Parameter, Part, State
from nanopk import run as kernel
from nanopk.dosing import Bolus, Infusion
from nanopk.fit import FitWarning, build_objective
from nanopk.fit._optimize import minimize
from nanopk.fit.jacobians import SensitivityJacobian
from nanopk.parts import symbol
from nanopk.simulate import solve_states

SRC = Path(nanopk.__file__).parent


def _tiny(k=0.1):
    """blood --k--> gut: blood(t) = Σ a_i exp(−k (t − t_i)) after boluses a_i at t_i."""
    return Model("tiny", [Part("tiny", states=(State("blood"), State("gut", "sink")),
                               parameters=(Parameter("k", k, "1/h", "test"),),
                               fluxes=(Flux("out", "blood", "gut", symbol("k") * symbol("blood")),))], "blood")


@pytest.fixture(scope="module")
def tiny():
    return _tiny()


@pytest.fixture(scope="module")
def cho():
    """The 6-parameter Cho 2010 13 nm fit's objective (default vary: Kmax/K50 of liver and
    spleen, Kmax of kidney and lung), as nanopk.fit builds it with exact gradients."""
    model = nanopk.load_model("mouse_pbpk")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitWarning)  # lymph node, heart: not observables of the model
        return build_objective(model, "cho2010_peg_au_13nm", jacobian="sensitivity")


def _solves():
    return sum(kernel.solves.values())


def test_sensitivity_residual_and_jacobian_share_one_solve(cho):
    """With a SensitivityJacobian attached, the residuals at x solve once and the Jacobian at x
    reuses that solve; a Jacobian at a new point solves once and the residuals there reuse it."""
    jac = SensitivityJacobian(cho)
    x = cho.x0
    before = _solves()
    cho.residual(x)
    assert _solves() - before == 1  # one dataset, one solve
    J = jac(cho, x)
    assert _solves() - before == 1
    assert J.shape == (cho.n_residuals, len(cho.names)) and np.isfinite(J).all()
    x2 = x + 0.01
    jac(cho, x2)
    cho.residual(x2)
    assert _solves() - before == 2
    assert kernel.solves["sensitivities"] >= 2


def test_sensitivity_fit_runs_one_solve_per_evaluation(cho):
    """The 6-parameter Cho 13 nm fit with exact gradients: the kernel counts at most one solve per
    residual evaluation, Jacobians included (it was a plain solve per evaluation plus a
    sensitivity solve per Jacobian: 54 solves for 33 evaluations)."""
    jac = SensitivityJacobian(cho)
    calls0, sims0, before = cho.n_calls, cho.n_simulations, dict(kernel.solves)
    out = minimize(cho, cho.x0, jac=jac)
    solves = {k: kernel.solves[k] - before.get(k, 0) for k in kernel.solves}
    evaluations = cho.n_calls - calls0
    assert out.converged
    assert out.lmfit_result.njev >= 10  # the Jacobian was asked for, often
    assert solves.get("states", 0) == 0
    assert 0 < solves["sensitivities"] <= evaluations
    assert solves["sensitivities"] == cho.n_simulations - sims0


def test_residuals_from_the_sensitivity_solve_match_a_plain_solve(cho):
    """The states integrated with the sensitivities give the residuals of a plain solve, to the
    solver tolerance (rtol 1e-6: residuals within 1e-3 in σ units)."""
    x = cho.x0 + 0.05
    cho.use_sensitivities()
    with_s = cho.residual(x)
    cho.sensitive = False
    try:
        plain = cho.residual(x)
    finally:
        cho.sensitive = True
    np.testing.assert_allclose(with_s, plain, atol=1e-3, rtol=0)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(boluses=st.lists(st.tuples(st.sampled_from([0.0, 1.5, 3.0, 7.25]), st.floats(1.0, 50.0)), min_size=1, max_size=3,
                        unique_by=lambda b: b[0]),
       k=st.floats(0.05, 1.0))
def test_sensitivities_through_a_regimen_match_the_closed_form(tiny, boluses, k):
    """∂blood/∂k across bolus segments equals −Σ a_i (t − t_i) e^{−k (t − t_i)} (to 1e-5 of its scale)."""
    runner = kernel.Runner(tiny, "cvode")
    times = np.array([0.5, 2.0, 3.0, 5.0, 10.0])
    p = runner.parameters({"k": k})
    i_k = tiny.parameter_names.index("k")
    sol = runner.run(times, p, [Bolus(a, time_h=t) for t, a in boluses], rtol=1e-10, atol=1e-12, sensitivities=[i_k])
    i_blood = tiny.state_names.index("blood")
    lag = times[:, None] - np.array([t for t, _ in boluses])[None, :]
    amount = np.array([a for _, a in boluses])[None, :]
    given_by = lag >= 0
    blood = np.sum(np.where(given_by, amount * np.exp(-k * lag), 0.0), axis=1)
    dblood = np.sum(np.where(given_by, -lag * amount * np.exp(-k * lag), 0.0), axis=1)
    np.testing.assert_allclose(sol.y[:, i_blood], blood, rtol=1e-6, atol=1e-9 * blood.max())
    np.testing.assert_allclose(sol.s[:, i_blood, 0], dblood, rtol=1e-5, atol=1e-6 * np.abs(dblood).max())


def test_sensitivities_through_an_infusion_match_finite_differences(tiny):
    """∂blood/∂k with an infusion 1–4 h and a bolus at 6 h equals the central difference of the
    plain solve (step 1e-5 relative; to 1e-5 of its scale)."""
    runner = kernel.Runner(tiny, "cvode")
    times = np.array([0.5, 2.0, 4.0, 6.0, 9.0])
    dose = [Infusion(12.0, 1.0, 4.0), Bolus(5.0, time_h=6.0)]
    i_k, i_blood = tiny.parameter_names.index("k"), tiny.state_names.index("blood")
    p = runner.parameters({"k": 0.3})
    s = runner.run(times, p, dose, rtol=1e-10, atol=1e-13, sensitivities=[i_k]).s[:, i_blood, 0]
    h = 0.3e-5
    up, down = p.copy(), p.copy()
    up[i_k] += h
    down[i_k] -= h
    fd = (runner.run(times, up, dose, 1e-11, 1e-14).y[:, i_blood] - runner.run(times, down, dose, 1e-11, 1e-14).y[:, i_blood]) / (2 * h)
    np.testing.assert_allclose(s, fd, rtol=1e-5, atol=1e-5 * np.abs(fd).max())


def test_simulate_is_one_solve_whatever_the_regimen(tiny):
    """A regimen of three boluses and an infusion is one solve on the kernel's counter."""
    before = _solves()
    df = tiny.simulate([1.0, 5.0, 30.0], dose=[Bolus(1.0), Bolus(2.0, time_h=2.0), Infusion(3.0, 3.0, 6.0), Bolus(1.0, time_h=4.0)])
    assert _solves() - before == 1
    assert df["total"].to_numpy() == pytest.approx(100.0, rel=1e-6)


def test_states_frame_is_built_at_once(tiny):
    """simulate(states=True): observables then ``state:NAME`` columns, equal to the solved
    states, in one block (no column inserted one at a time)."""
    df = tiny.simulate([0.0, 1.0, 2.0], states=True)
    assert list(df.columns) == list(tiny.observable_names) + [f"state:{n}" for n in tiny.state_names]
    _, Y, *_ = solve_states(tiny, [0.0, 1.0, 2.0])
    np.testing.assert_allclose(df[[f"state:{n}" for n in tiny.state_names]].to_numpy(), Y, rtol=1e-12)
    assert df["state:blood"].iloc[1] == pytest.approx(tiny.parameters["dose"].value * math.exp(-0.1), rel=1e-5)
    assert len(df._mgr.blocks) == 1


def test_ensure_valid_validates_once_and_never_remembers_an_invalid_model():
    """A model validates on its first run only; an invalid one raises on every call."""
    model = _tiny()
    assert not model.validated
    assert model.ensure_valid() is model and model.validated
    broken = Model("broken", [Part("b", states=(State("blood"),), parameters=(Parameter("k", 0.1, "1/h", "test"),),
                                   fluxes=(Flux("out", "blood", "nowhere", symbol("k") * symbol("blood")),))], "blood")
    for _ in range(2):
        with pytest.raises(ModelError, match=r"flux 'out': target 'nowhere' is not a declared state"):
            broken.ensure_valid()
    assert not broken.validated
    with pytest.raises(ModelError, match=r"model 'broken' is invalid"):
        kernel.Runner(broken)


def test_no_module_writes_a_models_private_cache():
    """Outside model.py, no module assigns into ``<something>._cache[...]`` (validation goes
    through Model.ensure_valid, memos live in their own module)."""
    offenders = []
    for path in SRC.rglob("*.py"):
        text = path.read_text()
        if path.name == "model.py" or "_cache" not in text:
            continue
        for node in ast.walk(ast.parse(text)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, (ast.AugAssign, ast.AnnAssign)) else []
            for target in targets:
                if (isinstance(target, ast.Subscript) and isinstance(target.value, ast.Attribute)
                        and target.value.attr == "_cache" and not (isinstance(target.value.value, ast.Name) and target.value.value.id == "self")):
                    offenders.append(f"{path.relative_to(SRC)}:{node.lineno}")
    assert offenders == []


def test_integrator_failure_is_diagnosed_like_simulate():
    """The stepping API's solver error names the time, the step and the changed parameter, as simulate's does."""
    import sympy as sp

    growth = Model("growth", [Part(
        "g", states=(State("blood"), State("gut", "sink")),
        parameters=(Parameter("k", 0.1, "1/h", "test", (-math.inf, math.inf)),),
        fluxes=(Flux("back", "gut", "blood", symbol("k") * sp.exp(symbol("blood") / symbol("dose")) * symbol("dose")),),
    )], "blood")
    integ = growth.integrator(params={"k": 50.0}, max_steps=500)
    with pytest.raises(nanopk.SolverError, match=r"failed at t = .* h \(integrating 0–1000 h\).*k=50.*Try:"):
        integ.advance(1000.0)


def test_sensitivity_jacobian_matches_finite_differences_with_an_observable_parameter():
    """The exact Jacobian (∂h/∂y once for all times; ∂h/∂θ where θ enters the observables, as
    f_residual_blood does) equals central differences of the residuals (step 1e-5, solver
    rtol 1e-10): to 1e-4 of the largest entry."""
    from nanopk.fit.jacobians import _finite_difference_jacobian

    model = nanopk.load_model("mouse_pbpk")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitWarning)
        obj = build_objective(model, "cho2010_peg_au_13nm", vary=["Kmax_liver", "f_residual_blood", "P_spleen"],
                              jacobian="sensitivity", rtol=1e-10, atol=1e-14)
    jac = SensitivityJacobian(obj)
    slopes = kernel.observation_derivatives(obj.runner.compiled)
    assert slopes.dy_constant  # %ID observables are linear in the amounts
    assert model.parameter_names.index("f_residual_blood") in slopes.p_columns
    assert model.parameter_names.index("Kmax_liver") not in slopes.p_columns
    x = obj.x0 + np.array([0.1, -0.2, 0.05])
    J = jac(obj, x)
    obj.sensitive = False  # plain solves for the differences
    fd = _finite_difference_jacobian(obj, x, step=1e-5)
    assert np.abs(J[:, 1]).max() > 1e-3  # f_residual_blood moves the residuals
    np.testing.assert_allclose(J, fd, rtol=0, atol=1e-4 * np.abs(fd).max())
