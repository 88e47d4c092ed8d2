"""The generated sparse LU of CVODE's Newton matrix (nanopk.backends.sparse_lu).

Checked three ways: the planned elimination against what minimum degree must give on a
known pattern; the generated C against numpy's dense solve, on bundled models' patterns
and on random ones; and the driver, which must fall back to SUNDIALS' dense LU when the
backward-error check rejects a factorisation and give the dense path's trajectory.
"""
from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import nanopk
import nanopk.backends
from nanopk.backends.sparse_lu import MAX_BACKWARD_ERROR, c_newton_lu, elimination_order, plan_newton_lu

TIMES = np.linspace(0.0, 168.0, 50)


def _star(n_leaves: int) -> set:
    """Blood (state 0) exchanging with n organs that exchange with nothing else."""
    pattern = {(0, 0)}
    for leaf in range(1, n_leaves + 1):
        pattern |= {(0, leaf), (leaf, 0), (leaf, leaf)}
    return pattern


def test_minimum_degree_eliminates_the_organs_before_the_blood_without_fill():
    """Every organ has one neighbour (blood), blood has all: minimum degree takes the
    organs first and creates no fill-in.  Per organ: one multiplier and one update of
    the blood's diagonal, 2·n operations against (n+1)³/3 dense."""
    n = 20
    order = elimination_order(n + 1, _star(n))
    assert order.index(0) >= n - 1 and sorted(order) == list(range(n + 1))  # last but a tie
    plan = plan_newton_lu(n + 1, _star(n))
    assert len(plan.slots) == len(_star(n))  # no fill-in
    assert plan.factor_operations == 2 * n
    # Blood first would fill the whole matrix: the order is what makes it sparse.
    from nanopk.backends.sparse_lu import _eliminate

    assert len(_eliminate(n + 1, _star(n), list(range(n + 1))).slots) == (n + 1) ** 2


def test_dense_coagulation_keeps_the_dense_lu():
    """Smoluchowski couples every size class with every other: no sparse plan."""
    k = 12
    pattern = {(i, j) for i in range(k) for j in range(k)}
    assert plan_newton_lu(k, pattern) is None


def _lu_solve(check, M, b):
    """(ω, x) from a generated ``check(A, x)``: A column-major as CVODE stores it, held
    here while C reads it."""
    A, x = np.asfortranarray(M), np.array(b, dtype=float)
    return check(A.ctypes.data, x.ctypes.data), x


def _newton_matrix(pattern, n, gamma, rng):
    """M = I − γJ for a random compartmental J with this pattern (outflows ≥ 0, each
    column's diagonal the state's total loss), as CVODE stores it (column-major)."""
    J = np.zeros((n, n))
    for i, j in pattern:
        if i != j:
            J[i, j] = rng.uniform(0.0, 5.0)
    np.fill_diagonal(J, -J.sum(axis=0) - rng.uniform(0.0, 1.0, n))
    return np.eye(n) - gamma * J


@pytest.fixture(scope="module", params=["mouse_pbpk", "mouse_tumour_full"])
def compiled(request):
    lib = nanopk.load_model(request.param).compile("cvode")
    lib._lib.nanopk_lu_check.restype = ctypes.c_double
    lib._lib.nanopk_lu_check.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
    return lib


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), log_gamma=st.floats(-3.0, 3.0))
def test_generated_lu_solves_the_newton_systems_of_bundled_models(compiled, seed, log_gamma):
    """x = M⁻¹b from the generated C agrees with numpy to 1e-12 of |x|, and its
    componentwise backward error is at rounding level (≤ 1e-14), for γ from 1e-3 to 1e3."""
    rng = np.random.default_rng(seed)
    n = compiled.n_states
    M = _newton_matrix(compiled.system.layered_jacobian, n, 10.0 ** log_gamma, rng)
    b = rng.normal(size=n)
    omega, x = _lu_solve(compiled._lib.nanopk_lu_check, M, b)
    assert 0.0 <= omega <= 1e-14
    np.testing.assert_allclose(x, np.linalg.solve(M, b), rtol=0, atol=1e-12 * np.abs(x).max())


def test_backward_error_exposes_an_unstable_factorisation(compiled):
    """A vanishing first pivot with O(1) entries beside it makes multipliers of ~1e14 and
    destroys the factorisation; its backward error must say so (≫ √ε), so that the
    driver refactors with partial pivoting, while the matrix itself is well solvable."""
    rng = np.random.default_rng(7)
    n = compiled.n_states
    pattern = compiled.system.layered_jacobian
    M = _newton_matrix(pattern, n, 1.0, rng)
    plan = plan_newton_lu(n, pattern)
    # The first pivot coupled both ways to a later state (an organ exchanging with blood).
    k = next(k for k in range(n) if plan.below[k] and plan.right[k])
    first = plan.order[k]
    M[first, first] = 1e-14
    assert np.linalg.cond(M) < 1e17
    b = rng.normal(size=n)
    omega, x = _lu_solve(compiled._lib.nanopk_lu_check, M, b)
    assert omega > 1e3 * MAX_BACKWARD_ERROR


def _harness(tmp_path, plan, n: int):
    """The sparse LU (``sparse_lu.c``) with ``plan``'s tables, compiled alone; its
    ``nanopk_lu_check`` is the one the driver exports."""
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    assert cc, "needs a C compiler"
    loops = (Path(nanopk.backends.__file__).parent / "sparse_lu.c").read_text()
    source = f"#include <math.h>\n#include <string.h>\n#define NANOPK_N {n}\n" + c_newton_lu(plan) + loops
    (tmp_path / "lu.c").write_text(source)
    subprocess.run([cc, "-O1", "-std=c99", "-Wall", "-Werror", "-shared", "-fPIC", "-o", "lu.so", "lu.c", "-lm"],
                   cwd=tmp_path, check=True, capture_output=True)
    lib = ctypes.CDLL(str(tmp_path / "lu.so"))
    lib.nanopk_lu_check.restype = ctypes.c_double
    lib.nanopk_lu_check.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
    return lib


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_generated_lu_on_random_sparse_patterns(tmp_path, seed):
    """Random patterns of 40 states (~8 % dense, with fill-in): the planned elimination,
    printed as C and compiled alone, solves as numpy does (1e-12 of |x|) for 20 random
    Newton matrices each."""
    rng = np.random.default_rng(seed)
    n = 40
    pattern = {(i, i) for i in range(n)} | {(int(i), int(j)) for i, j in rng.integers(0, n, size=(130, 2))}
    plan = plan_newton_lu(n, pattern)
    assert plan is not None and len(plan.slots) > len(pattern)  # fill-in occurred
    lib = _harness(tmp_path, plan, n)
    for _ in range(20):
        M = _newton_matrix(pattern, n, 10.0 ** rng.uniform(-3, 3), rng)
        b = rng.normal(size=n)
        omega, x = _lu_solve(lib.nanopk_lu_check, M, b)
        assert 0.0 <= omega <= 1e-14
        np.testing.assert_allclose(x, np.linalg.solve(M, b), rtol=0, atol=1e-12 * np.abs(x).max())


def _switch(compiled, name, ctype=ctypes.c_int):
    return ctype.in_dll(compiled._lib, name)


def _dense_only(model, **simulate):
    """``model.simulate(TIMES, **simulate)`` with SUNDIALS' dense LU for every Newton system."""
    switch = _switch(model.compile("cvode"), "nanopk_sparse_lu_enabled")
    switch.value = 0
    try:
        return model.simulate(TIMES, **simulate)
    finally:
        switch.value = 1


def _all_rejected(model):
    """``model.simulate(TIMES)`` with the backward-error bound at 0: every factorisation of
    the generated LU is rejected at its first solve and redone densely."""
    bound = _switch(model.compile("cvode"), "nanopk_lu_max_backward_error", ctypes.c_double)
    assert bound.value == MAX_BACKWARD_ERROR
    bound.value = 0.0
    try:
        return model.simulate(TIMES)
    finally:
        bound.value = MAX_BACKWARD_ERROR


def test_sparse_and_dense_newton_solves_give_the_same_trajectory():
    """The LU changes how the Newton systems are solved, not the solution: on
    mouse_tumour_full (53 states, corona and aggregation) the two agree to 1e-6 of the
    dose at rtol 1e-8, with no fallback on the sparse path."""
    model = nanopk.load_model("mouse_tumour_full")
    sparse = model.simulate(TIMES, rtol=1e-8, states=True)
    dense = _dense_only(model, rtol=1e-8, states=True)
    assert sparse.attrs["linear_solver"] == "sparse LU" and dense.attrs["linear_solver"] == "dense"
    assert sparse.attrs["dense_fallbacks"] == 0
    mass = [c for c in sparse.columns if c.startswith("state:")]
    dose = sparse.attrs["dose_ug"]
    scale = np.where([s.is_mass for s in model.states], dose, np.abs(dense[mass].to_numpy()).max(axis=0) + 1e-300)
    assert np.abs((sparse[mass].to_numpy() - dense[mass].to_numpy()) / scale).max() < 1e-6


def test_a_rejected_factorisation_falls_back_to_the_dense_lu():
    """With the backward-error bound at 0 every sparse factorisation is rejected at its
    first solve and redone by SUNDIALS' dense LU: each setup is counted as a fallback,
    and the trajectory is the dense path's, bit for bit."""
    model = nanopk.load_model("mouse_pbpk")
    rejected, dense = _all_rejected(model), _dense_only(model)
    assert rejected.attrs["linear_solver"] == "sparse LU" and rejected.attrs["dense_fallbacks"] > 0
    assert rejected.attrs["n_steps"] == dense.attrs["n_steps"]
    np.testing.assert_array_equal(rejected.to_numpy(), dense.to_numpy())


@pytest.fixture(scope="module")
def aggregation_20(tmp_path_factory):
    """aggregation_plasma with 20 size classes (21 states): the moments of the size
    distribution make J dense, so its Newton systems take the low-rank update."""
    import re

    spec = tmp_path_factory.mktemp("agg") / "aggregation_20.toml"
    spec.write_text(re.sub(r"^K\s*=\s*\d+", "K = 20", nanopk.spec.model_path("aggregation_plasma").read_text(), flags=re.M))
    return nanopk.load_model(spec)


def test_the_jacobian_is_its_direct_part_plus_the_moments_low_rank_term(aggregation_20):
    """J = J_d + F·E at a random state, to 1e-13 of max |J|: the chain rule stopped at
    the three moments of the Brownian kernel's separable form.  J is dense (no sparse
    plan); J_d is lower triangular but for the absorbing class's row, so its planned LU
    has no fill-in."""
    from nanopk.backends.symbolic import SymbolicSystem

    system = SymbolicSystem(aggregation_20)
    split = system.low_rank_split
    n, h = system.n_states, len(split.hubs)
    assert [s.name for s in split.hubs] == ["plasma_moment_0", "plasma_moment_1", "plasma_moment_2"]
    compiled = aggregation_20.compile("cvode")
    rng = np.random.default_rng(7)
    y, p = rng.uniform(0.0, 2.0, n), aggregation_20.parameter_vector()
    J = compiled.jac(0.0, y, p)
    split_fn = compiled._lib.nanopk_jac_split
    Jd, F, E = np.zeros(n * n), np.zeros(n * h), np.zeros(h * n)
    yy = np.ascontiguousarray(y)
    split_fn.argtypes = [ctypes.c_double] + [ctypes.c_void_p] * 5
    split_fn(0.0, yy.ctypes.data, Jd.ctypes.data, F.ctypes.data, E.ctypes.data, p.ctypes.data)
    Jd, F, E = Jd.reshape(n, n, order="F"), F.reshape(n, h, order="F"), E.reshape(h, n, order="F")
    assert np.count_nonzero(J) > 0.9 * n * n
    np.testing.assert_allclose(Jd + F @ E, J, rtol=0, atol=1e-13 * np.abs(J).max())
    assert plan_newton_lu(n, system.layered_jacobian) is None
    plan = plan_newton_lu(n, split.direct)
    assert len(plan.slots) == len(split.direct | {(k, k): 0 for k in range(n)})  # no fill-in


def test_low_rank_update_and_dense_newton_solves_give_the_same_trajectory(aggregation_20):
    """Sparse LU of J_d with the Woodbury update against SUNDIALS' dense LU of the whole
    M: the same steps, trajectories within 1e-6 of the dose at rtol 1e-8, no fallback."""
    fast = aggregation_20.simulate(TIMES, rtol=1e-8, states=True)
    dense = _dense_only(aggregation_20, rtol=1e-8, states=True)
    assert fast.attrs["linear_solver"] == "sparse LU + low-rank update" and dense.attrs["linear_solver"] == "dense"
    assert fast.attrs["dense_fallbacks"] == 0
    mass = [c for c in fast.columns if c.startswith("state:")]
    assert np.abs(fast[mass].to_numpy() - dense[mass].to_numpy()).max() < 1e-6 * fast.attrs["dose_ug"]


def test_a_rejected_low_rank_factorisation_falls_back_to_the_whole_newton_matrix(aggregation_20):
    """A rejected check hands the dense LU CVODE's matrix, which holds M_d; the fallback
    adds −γF·E first, so it factors the whole M and takes the dense path's steps.  M is
    summed in another order than CVODE's I − γ(J_d + F·E), so the trajectories agree to
    rounding (1e-12 relative), not bit for bit."""
    rejected, dense = _all_rejected(aggregation_20), _dense_only(aggregation_20)
    assert rejected.attrs["linear_solver"] == "sparse LU + low-rank update" and rejected.attrs["dense_fallbacks"] > 0
    assert rejected.attrs["n_steps"] == dense.attrs["n_steps"]
    np.testing.assert_allclose(rejected.to_numpy(), dense.to_numpy(), rtol=1e-12, atol=0)
