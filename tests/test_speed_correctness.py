"""The compiled right-hand side with its parameter-only work hoisted out of the solve
(nanopk.backends.ccode.c_rhs_code) computes the same model as the unhoisted printer and
the reference backend, and solves to the same trajectories."""
from __future__ import annotations

import ctypes

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import nanopk
from nanopk.backends.ccode import c_rhs_code
from nanopk.compile import compile_model

TIMES = np.linspace(0.0, 168.0, 50)
_P = ctypes.c_void_p
MODELS = nanopk.list_models()


def _hoisted_rhs(compiled):
    """``f(t, y, p)`` through ``nanopk_rhs_constants`` then ``nanopk_rhs_core``, as a solve calls it."""
    lib = compiled._lib
    lib.nanopk_rhs_constants.argtypes = [_P, _P]
    lib.nanopk_rhs_core.argtypes = [ctypes.c_double, _P, _P, _P, _P]
    count = ctypes.c_int.in_dll(lib, "nanopk_rhs_nc").value

    def rhs(t, y, p):
        y, p = np.ascontiguousarray(y, float), np.ascontiguousarray(p, float)
        c, out = np.empty(max(count, 1)), np.empty(compiled.n_states)
        lib.nanopk_rhs_constants(p.ctypes.data, c.ctypes.data)
        lib.nanopk_rhs_core(float(t), y.ctypes.data, out.ctypes.data, p.ctypes.data, c.ctypes.data)
        return out

    return rhs


@pytest.mark.parametrize("name", MODELS)
def test_hoisted_rhs_equals_the_unhoisted_printers(name):
    """At 20 random points (t in 0–168 h with t = 0 included, amounts up to the dose,
    parameters ±35 % of the defaults) the hoisted f equals ``nanopk_rhs``, printed as
    before by :func:`c_rhs_body` (which tests/test_export_c.py checks against the
    reference backend), to 1e-12 relative, with a floor of 1e-12 of the largest entry
    for the entries where fluxes cancel."""
    model = nanopk.load_model(name)
    fast = compile_model(model, "cvode")
    rhs = _hoisted_rhs(fast)
    rng = np.random.default_rng(25)
    p0 = model.parameter_vector()
    dose = model.parameters["dose"].value
    mass = np.array([s.is_mass for s in model.states])
    for k in range(20):
        t = 0.0 if k == 0 else rng.uniform(0.0, 168.0)
        y = np.where(mass, dose * rng.uniform(0.0, 1.0, mass.size), rng.uniform(0.0, 1.0, mass.size))
        p = p0 * np.exp(rng.uniform(-0.35, 0.35, p0.size))
        plain = fast.rhs(t, y, p)
        np.testing.assert_allclose(rhs(t, y, p), plain, rtol=1e-12, atol=1e-12 * np.max(np.abs(plain)))


@settings(max_examples=60, deadline=None)
@given(t=st.one_of(st.just(0.0), st.floats(0.0, 1000.0)), n=st.one_of(st.just(0.0), st.floats(0.0, 8.0)),
       k=st.floats(0.01, 500.0))
def test_hill_terms_as_exp_log_keep_pow_values(t, n, k):
    """mouse_pbpk's Hill uptake (t/K)**n, printed as exp(n·log t − n·log K), equals
    the unhoisted pow at any t ≥ 0, K > 0 and n ≥ 0 to 1e-12 relative, including
    pow's special cases t = 0 (0 for n > 0) and n = 0 (1, also at t = 0)."""
    model = nanopk.load_model("mouse_pbpk")
    fast = compile_model(model, "cvode")
    names = model.parameter_names
    p = model.parameter_vector()
    hill = [i for i, name in enumerate(names) if name.startswith("n_")]  # the Hill exponents
    assert len(hill) == 4, [names[i] for i in hill]
    for i in hill:
        p[i], p[i - 1] = n, k  # n_<organ> follows its half-time t50_<organ>
    y = np.linspace(1.0, 2.0, fast.n_states)
    plain = fast.rhs(t, y, p)
    np.testing.assert_allclose(_hoisted_rhs(fast)(t, y, p), plain, rtol=1e-12, atol=1e-12 * np.max(np.abs(plain)))


def test_the_core_of_mouse_pbpk_does_no_parameter_only_work():
    """In the per-call core no volume or flow assignment is computed and no pow is
    called but as the fallback of a Hill term; its four Hill terms share one log(t)."""
    system = compile_model(nanopk.load_model("mouse_pbpk"), "reference").system
    code = c_rhs_code(system)
    core = code[code.index("void nanopk_rhs_core"):code.index("void nanopk_rhs(")]
    assert "a_V_" not in core and "a_Q_" not in core
    assert core.count("log(") == 1 and core.count("const double l0 = log(t);") == 1
    assert core.count("exp(") == 4 and core.count("pow(") == 4  # each pow behind `t > 0 && ... ?`


def _solve(model, hoisted: bool):
    switch = ctypes.c_int.in_dll(compile_model(model, "cvode")._lib, "nanopk_rhs_hoisted")
    switch.value = int(hoisted)
    try:
        return model.simulate(TIMES, backend="cvode", states=True)
    finally:
        switch.value = 1


@pytest.mark.parametrize("name", MODELS)
def test_hoisted_and_unhoisted_solves_agree(name):
    """Whole solves (0–168 h, default tolerances) with the hoisted f and with the
    unhoisted printer's f give observables equal to 1e-9 relative (values above 1e-6
    of the dose) and the same step count; the amounts sum to the dose within 1e-6 of it."""
    model = nanopk.load_model(name)
    new, old = _solve(model, True), _solve(model, False)
    observables = list(model.observables)
    a, b = new[observables].to_numpy(), old[observables].to_numpy()
    dose = new.attrs["dose_ug"]
    big = np.abs(b) > 1e-6 * np.abs(b).max()
    np.testing.assert_allclose(a[big], b[big], rtol=1e-9)
    assert new.attrs.get("n_steps", 0) == old.attrs.get("n_steps", 0)
    amounts = [f"state:{s.name}" for s in model.states if s.is_mass]
    np.testing.assert_allclose(new[amounts].to_numpy().sum(axis=1), dose, rtol=1e-6)
