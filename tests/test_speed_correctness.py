"""The compiled right-hand side, Jacobian and ∂f/∂p with their parameter-only work hoisted
out of the solve (nanopk.backends.ccode.c_hoisted_function) compute the same model as the
unhoisted printer and the reference backend, and solve to the same trajectories and
sensitivities."""
from __future__ import annotations

import ctypes
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import nanopk
from nanopk.backends.ccode import c_jacobian_code, c_rhs_code
from nanopk.backends.cvode import newton_lu_plan
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


def _hill_rhs(t, n, k):
    """mouse_pbpk's f at ``t`` with every Hill term's exponent ``n`` and half-time ``k``:
    ``(hoisted, unhoisted)``."""
    model = nanopk.load_model("mouse_pbpk")
    fast = compile_model(model, "cvode")
    names = model.parameter_names
    p = model.parameter_vector()
    hill = [i for i, name in enumerate(names) if name.startswith("n_")]  # the Hill exponents
    assert len(hill) == 4, [names[i] for i in hill]
    for i in hill:
        p[i], p[i - 1] = n, k  # n_<organ> follows its half-time t50_<organ>
    y = np.linspace(1.0, 2.0, fast.n_states)
    return _hoisted_rhs(fast)(t, y, p), fast.rhs(t, y, p)


@settings(max_examples=60, deadline=None)
@given(t=st.one_of(st.just(0.0), st.floats(1e-300, 1000.0)), n=st.one_of(st.just(0.0), st.floats(0.0, 8.0)),
       k=st.floats(0.01, 500.0))
def test_hill_terms_as_exp_log_keep_pow_values(t, n, k):
    """mouse_pbpk's Hill uptake (t/K)**n, printed as exp(n·log t − n·log K), equals
    the unhoisted pow at t = 0 and any t ≥ 1e-300, K > 0 and n ≥ 0 to 1e-12 relative,
    including pow's special cases t = 0 (0 for n > 0) and n = 0 (1, also at t = 0).
    (Below, t/K can be subnormal: see the next test.)"""
    hoisted, plain = _hill_rhs(t, n, k)
    np.testing.assert_allclose(hoisted, plain, rtol=1e-12, atol=1e-12 * np.max(np.abs(plain)))


def test_hill_terms_at_a_subnormal_time_keep_their_value():
    """At t = 5e-324 (the smallest subnormal) with K = 2 and n = 1/64, pow(t/K, n) is 0
    because t/K underflows to 0, while (t/K)**n = exp(n·(log t − log K)) = 8.8e-6; the
    exp·log form keeps that value (hypothesis found the case on the test above).  So the
    unhoisted f there equals its value at t = 0, and the hoisted one differs from it in
    exactly the source and target of the four Hill uptakes, moving mass, not making it,
    by less than 1e-4 of f's largest entry."""
    t, n, k = 5e-324, 1 / 64, 2.0
    assert t / k == 0.0 and math.exp(n * (math.log(t) - math.log(k))) == pytest.approx(8.7829e-6, rel=1e-4)
    hoisted, plain = _hill_rhs(t, n, k)
    np.testing.assert_array_equal(plain, _hill_rhs(0.0, n, k)[1])
    difference = hoisted - plain
    assert np.count_nonzero(difference) == 8
    assert abs(difference.sum()) <= 1e-14 * np.abs(plain).max()  # zero but for the rounding of f's entries
    assert np.abs(difference).max() < 1e-4 * np.abs(plain).max()


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


def _points(model, count=12, seed=25):
    """``(t, y, p)``: t in 0–168 h (t = 0 first), amounts up to the dose, parameters ±35 %."""
    rng = np.random.default_rng(seed)
    p0 = model.parameter_vector()
    dose = model.parameters["dose"].value
    mass = np.array([s.is_mass for s in model.states])
    for k in range(count):
        t = 0.0 if k == 0 else rng.uniform(0.0, 168.0)
        yield (t, np.where(mass, dose * rng.uniform(0.0, 1.0, mass.size), rng.uniform(0.0, 1.0, mass.size)),
               p0 * np.exp(rng.uniform(-0.35, 0.35, p0.size)))


def _assert_same(a, b, rtol=1e-11):
    """Equal to ``rtol`` relative, with a floor of ``rtol`` of the largest entry (where terms
    cancel); non-finite in the same places (∂/∂n of a Hill term at t = 0 is 0·log 0)."""
    finite = np.isfinite(b)
    np.testing.assert_array_equal(np.isfinite(a), finite)
    scale = np.max(np.abs(b[finite])) if finite.any() else 1.0
    np.testing.assert_allclose(a[finite], b[finite], rtol=rtol, atol=rtol * scale)


def _split_jacobian(compiled, t, y, p):
    """J_d + F·E from ``nanopk_jac_split`` (one call: its constants, then its core)."""
    n, h = compiled.n_states, len(compiled.system.low_rank_split.hubs)
    J, F, E = np.zeros(n * n), np.zeros(n * h), np.zeros(h * n)
    fn = compiled._lib.nanopk_jac_split
    fn.argtypes = [ctypes.c_double] + [_P] * 5
    y, p = np.ascontiguousarray(y, float), np.ascontiguousarray(p, float)
    fn(float(t), y.ctypes.data, J.ctypes.data, F.ctypes.data, E.ctypes.data, p.ctypes.data)
    return J.reshape(n, n, order="F") + F.reshape(n, h, order="F") @ E.reshape(h, n, order="F")


@pytest.mark.parametrize("name", MODELS)
def test_hoisted_jacobian_equals_the_reference_backends(name):
    """At 12 random points the compiled J, now printed only hoisted (its constants, then its
    core), equals the reference backend's (SymPy's flat Jacobian through lambdify) to 1e-11
    relative with a floor of 1e-11 of the largest entry; for a model with hubs so does
    J_d + F·E from the hoisted split form."""
    model = nanopk.load_model(name)
    fast, slow = compile_model(model, "cvode"), compile_model(model, "reference")
    split = newton_lu_plan(fast.system)[1] > 0
    for t, y, p in _points(model):
        expected = slow.jac(t, y, p)
        _assert_same(fast.jac(t, y, p), expected)
        if split:
            _assert_same(_split_jacobian(fast, t, y, p), expected)


@pytest.mark.parametrize("name", ["mouse_pbpk", "mouse_tumour", "aggregation_plasma"])
def test_hoisted_dfdp_equals_sympys(name):
    """The compiled ∂f/∂p of six parameters (hoisted, as the sensitivity solve calls it)
    equals SymPy's derivative of the flat right-hand side at 12 random points (1e-11)."""
    import sympy as sp

    model = nanopk.load_model(name)
    compiled = compile_model(model, "cvode")
    system, indices = compiled.system, SENSITIVITY_INDICES(model)
    exact = sp.lambdify((system.t, system.y, system.p), system.rhs.jacobian([system.p[i] for i in indices]),
                        modules="numpy", cse=True)
    lib = compiled._sensitivity_library(indices)
    lib.nanopk_dfdp.argtypes = [ctypes.c_double, _P, _P, _P]
    n = compiled.n_states
    for t, y, p in _points(model):
        D = np.zeros(n * len(indices))
        y, p = np.ascontiguousarray(y, float), np.ascontiguousarray(p, float)
        lib.nanopk_dfdp(float(t), y.ctypes.data, D.ctypes.data, p.ctypes.data)
        with np.errstate(all="ignore"):
            expected = np.asarray(exact(t, y, p), dtype=float)
        _assert_same(D.reshape(n, len(indices), order="F"), expected)


def test_the_jacobian_core_of_mouse_pbpk_is_copies_and_hill_terms():
    """mouse_pbpk's J depends on parameters only but for its four Hill uptake terms: the
    per-call core computes no assignment, calls no pow but as a Hill fallback, and
    copies 50 of its 58 entries from ``c[k]`` or ``p[j]``; J is printed once."""
    system = compile_model(nanopk.load_model("mouse_pbpk"), "reference").system
    code = c_jacobian_code(system)
    core = code[code.index("void nanopk_jac_core"):code.index("void nanopk_jac(")]
    assert "a_V_" not in core and "a_Q_" not in core
    assert core.count("log(") == 1 and core.count("exp(") == 4 and core.count("pow(") == 4
    entries = [line.strip().rstrip(";").split(" = ") for line in core.splitlines() if line.strip().startswith("J[")]
    copies = [value for _, value in entries if value.count("[") == 1 and value[:2] in ("c[", "p[")]
    assert len(entries) == len(system.layered_jacobian) == 58
    assert len(copies) == 58 - 8  # the 4 Hill terms' two entries each compute
    assert code.count("J[") == 58  # each entry written once


def SENSITIVITY_INDICES(model, k=6):
    """The first k parameters with a positive default, bar the dose and the infusion rate
    (as benchmarks/c_speed.py picks them)."""
    return tuple(i for i, n in enumerate(model.parameter_names)
                 if n not in ("dose", "infusion_rate") and model.parameters[n].value > 0)[:k]
