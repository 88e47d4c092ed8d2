"""Exact fit gradients from forward sensitivities (CVODE backend).

The sensitivity Jacobian must equal a converged finite-difference Jacobian, and a fit
with it must reach the same optimum as the finite-difference fit (NIST-style digits).
"""
import numpy as np
import pytest

import nanopk
from test_fit_reference import TRUE, digits, synthetic


@pytest.fixture(scope="module")
def mouse():
    return nanopk.load_model("mouse_pbpk")


def _assert_matches_central_differences(compiled, res, y0, p, times, atol, idx, varied):
    """res.s against central differences of solves at rtol 1e-12: 1e-4 relative, or 1e-5
    of the largest entry for entries near the absolute tolerance."""
    for j, k in enumerate(idx):
        h = 1e-4 * p[k]  # truncation O(h²) ~ 1e-8; a smaller step drowns in solver noise
        up, down = p.copy(), p.copy()
        up[k] += h
        down[k] -= h
        fd = (compiled.solve(0.0, y0, up, times, 1e-12, atol * 1e-4).y - compiled.solve(0.0, y0, down, times, 1e-12, atol * 1e-4).y) / (2 * h)
        assert np.abs(fd).max() > 0, varied[j]  # the parameter moves the solution
        np.testing.assert_allclose(res.s[:, :, j], fd, rtol=1e-4, atol=1e-5 * np.abs(fd).max(), err_msg=varied[j])


def test_sensitivities_match_tight_finite_differences(mouse):
    """∂y/∂p from the augmented system vs central differences at rtol 1e-12:
    1e-4 relative, or 1e-5 of the largest entry for entries near the absolute tolerance."""
    compiled = mouse.compile("cvode")
    names = mouse.parameter_names
    varied = ["Kmax_liver", "K50_liver", "n_liver", "PAC_spleen", "P_liver", "KbileC"]
    idx = [names.index(v) for v in varied]
    p = mouse.parameter_vector()
    y0 = np.zeros(compiled.n_states)
    y0[mouse.state_names.index("venous_blood")] = 17.0
    times = np.array([1.0, 24.0, 168.0])
    atol = np.full(compiled.n_states, 17e-9)
    res = compiled.solve_sensitivities(0.0, y0, np.zeros((compiled.n_states, len(idx))), p, times, 1e-10, atol * 1e-2, 100_000, idx)
    assert res.success
    # One (sparse) LU of the N x N block per setup, applied block by block (not a band LU).
    assert res.linear_solver == "sparse LU blocks"
    _assert_matches_central_differences(compiled, res, y0, p, times, atol, idx, varied)


def test_fit_with_exact_gradients_reaches_the_finite_difference_optimum(mouse):
    """Same data, same start: the optimum agrees to ≥ 3 significant digits, although each
    fit runs the solver at its own default tolerance (fd 1e-8, sensitivity 1e-6)."""
    data = synthetic(mouse, TRUE, seed=20240601)
    fd = nanopk.fit(mouse, data, vary=list(TRUE), jacobian="fd")
    exact = nanopk.fit(mouse, data, vary=list(TRUE), jacobian="sensitivity")
    assert fd.success and exact.success
    assert (fd.options["rtol"], fd.options["atol"]) == (1e-8, 1e-12)
    assert (exact.options["rtol"], exact.options["atol"]) == (1e-6, 1e-10)
    for name in TRUE:
        assert digits(exact.values[name], fd.values[name]) >= 3, name
    assert exact.metrics["chisqr"] == pytest.approx(fd.metrics["chisqr"], rel=1e-4)
    print(f"\nfd: {fd.metrics['n_evaluations']} evaluations, {fd.metrics['wall_time_s']:.3f} s; "
          f"sensitivity: {exact.metrics['n_evaluations']} evaluations, {exact.metrics['wall_time_s']:.3f} s")


def test_sensitivities_of_a_nonlinear_model_match_finite_differences():
    """Coagulation is quadratic in the amounts, so J depends on y and the block-diagonal
    Newton matrix is a modified Newton: it may change the iterations, not the solution.
    Same criterion as above, on aggregation_plasma (12 size classes) at 2 mM ionic
    strength, where the number of particles halves within ~0.02 h.  Its Newton blocks are
    solved through the coagulation moments' low-rank update (sparse_lu, Woodbury)."""
    model = nanopk.load_model("aggregation_plasma")
    compiled = model.compile("cvode")
    names = model.parameter_names
    varied = ["CCC", "ionic_strength", "beta_RO", "m_particle"]
    idx = [names.index(v) for v in varied]
    p = model.parameter_vector({"ionic_strength": 2.0})
    dose = p[names.index("dose")]
    y0 = compiled.initial_state(p)
    y0[model.state_names.index("depot")] = 0.0
    y0[model.state_names.index(model.dose_target)] = dose
    times = np.array([0.003, 0.03, 0.3])
    atol = np.full(compiled.n_states, 1e-9 * dose)
    res = compiled.solve_sensitivities(0.0, y0, np.zeros((compiled.n_states, len(idx))), p, times, 1e-10, atol * 1e-2, 100_000, idx)
    assert res.success and res.linear_solver == "sparse LU + low-rank update blocks" and res.dense_fallbacks == 0
    _assert_matches_central_differences(compiled, res, y0, p, times, atol, idx, varied)


def test_block_and_band_newton_solves_give_the_same_sensitivities(mouse):
    """The band matrix is the fallback where the block solve cannot be installed; both
    solve the same Newton systems, so they agree to the solver's tolerance."""
    import ctypes

    compiled = mouse.compile("cvode")
    names = mouse.parameter_names
    idx = [names.index(v) for v in ("Kmax_liver", "K50_liver", "P_spleen")]
    lib = compiled._sensitivity_library(tuple(idx))
    p = mouse.parameter_vector()
    y0 = np.zeros(compiled.n_states)
    y0[mouse.state_names.index("venous_blood")] = 17.0
    times = np.array([1.0, 24.0, 168.0])
    atol = np.full(compiled.n_states, 17e-12)
    args = (0.0, y0, np.zeros((compiled.n_states, len(idx))), p, times, 1e-10, atol, 100_000, idx)
    blocks = compiled.solve_sensitivities(*args)
    switch = ctypes.c_int.in_dll(lib, "nanopk_block_solve_enabled")
    switch.value = 0
    try:
        band = compiled.solve_sensitivities(*args)
    finally:
        switch.value = 1
    assert (blocks.linear_solver, band.linear_solver) == ("sparse LU blocks", "band")
    np.testing.assert_allclose(blocks.y, band.y, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(blocks.s, band.s, rtol=1e-6, atol=1e-7 * np.abs(band.s).max())


@pytest.mark.parametrize("model_name, dataset", [
    ("mouse_pbpk", "cho2010_peg_au_4nm"),
    ("mouse_pbpk", "cho2010_peg_au_100nm"),
    ("mouse_tumour", "arnida2010_peg_au_sphere_50nm"),
])
def test_exact_gradients_reach_the_same_optimum_on_published_data(model_name, dataset):
    """Bundled published data, each model's full candidate list (vary="all"): exact gradients at
    their looser solver tolerance (rtol 1e-6) reach the finite-difference optimum (rtol 1e-8)
    to 1e-5 in χ², with fewer model evaluations."""
    import warnings

    from nanopk.fit import FitWarning

    model = nanopk.load_model(model_name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitWarning)  # unidentifiable parameters are expected here
        fd = nanopk.fit(model, dataset, vary="all", jacobian="fd")
        exact = nanopk.fit(model, dataset, vary="all", jacobian="sensitivity")
    assert fd.success and exact.success
    assert exact.metrics["chisqr"] == pytest.approx(fd.metrics["chisqr"], rel=1e-5)
    assert exact.metrics["n_evaluations"] < fd.metrics["n_evaluations"]
