"""Certified reference fits: data simulated from known parameters are recovered.

As lmfit scores its fits against NIST certified values (tests/test_NIST_Strd.py),
these fits are scored against the parameters that generated the data: the truth must
lie inside every 95 % interval, and fits from different starting points must agree to
at least 3 significant digits.  Data: mouse_pbpk at the Cho 2010 dose (0.85 mg/kg,
17 µg) sampled at 7 times in 9 tissues, with 10 % log-normal noise (seeded).
"""
import math

import numpy as np
import pandas as pd
import pytest

import nanopk
from nanopk.fit import FitResult

TRUE = {"Kmax_liver": 0.6, "K50_liver": 30.0, "Kmax_spleen": 3.0, "K50_spleen": 20.0, "P_liver": 0.12, "KbileC": 6e-5}
TIMES = np.array([0.5, 1.0, 4.0, 24.0, 72.0, 168.0, 720.0])
TISSUES = ["blood", "liver", "spleen", "kidney", "lung", "brain", "muscle", "urine", "faeces"]
CV = 0.10


def synthetic(model, params, seed, cv=CV, name="synthetic", tissues=TISSUES, times=TIMES):
    """Long %ID table simulated from ``params`` with log-normal noise of CV ``cv``."""
    sim = model.simulate(times, params=params, rtol=1e-10, atol=1e-14)
    rng = np.random.default_rng(seed)
    rows = []
    for t in times:
        for tissue in tissues:
            value = float(sim.loc[t, tissue]) * math.exp(cv * rng.standard_normal())
            rows.append({"time_h": t, "tissue": tissue, "value": value, "sd": cv * value, "n": 1})
    df = pd.DataFrame(rows)
    df.attrs.update(name=name, dose_ug=17.0)
    return df


def digits(a, b):
    """Number of matching significant digits of ``a`` and reference ``b`` (lmfit's NIST score)."""
    if a == b:
        return 15.0
    return -math.log10(abs(a - b) / abs(b))


@pytest.fixture(scope="module")
def mouse():
    return nanopk.load_model("mouse_pbpk")


@pytest.fixture(scope="module")
def reference(mouse):
    data = synthetic(mouse, TRUE, seed=20240601)
    return data, nanopk.fit(mouse, data, vary=list(TRUE))


def test_truth_inside_every_95_percent_interval(reference):
    """All 6 generating values lie inside their 95 % intervals; the fit is a success."""
    _, result = reference
    assert isinstance(result, FitResult)
    assert result.success, result.message
    for name, truth in TRUE.items():
        lo, hi = result.ci95(name)
        assert lo < truth < hi, f"{name}: {truth} not in [{lo:.4g}, {hi:.4g}]"
    print("\n" + result.report())


def test_two_starting_points_agree_to_three_digits(mouse, reference):
    """Starting at 2× and at ½× the truth converges to the same optimum, ≥ 3 digits in every parameter."""
    data, first = reference
    for factor in (2.0, 0.5):
        other = nanopk.fit(mouse, data, vary=list(TRUE), start={k: v * factor for k, v in TRUE.items()})
        assert other.success
        for name in TRUE:
            assert digits(other.params[name].value, first.params[name].value) >= 3.0, name
        assert digits(other.metrics["chisqr"], first.metrics["chisqr"]) >= 5.0


def test_goodness_of_fit_matches_the_noise(reference):
    """With 10 % noise and σ from the SD, χ²/dof ≈ 1 and every point is within 2-fold."""
    _, result = reference
    m = result.metrics
    assert 0.6 < m["redchi"] < 1.5
    assert m["frac_within_2fold"] == 1.0
    assert m["r2_log"] > 0.99
    assert 1.0 < m["aafe"] < 1.15
    assert m["n_points"] == len(TIMES) * len(TISSUES)


def test_standard_errors_are_the_delta_method_of_the_log_scale(reference):
    """SE(θ) = θ·SE(ln θ) and the CI is exp(ln θ ± 1.96·SE(ln θ))."""
    _, result = reference
    for name in TRUE:
        p, q = result.params[name], result.params_log[name]
        assert p.stderr == pytest.approx(p.value * q.stderr, rel=1e-12)
        lo, hi = p.user_data["ci95"]
        assert lo == pytest.approx(math.exp(q.value - 1.959963984540054 * q.stderr), rel=1e-12)
        assert hi == pytest.approx(math.exp(q.value + 1.959963984540054 * q.stderr), rel=1e-12)


def test_wald_intervals_cover_the_truth_at_the_nominal_rate(mouse):
    """Over 8 noise seeds, ≥ 85 % of the 24 intervals of 3 parameters cover the truth (nominal 95 %)."""
    truth = {"Kmax_liver": 0.6, "Kmax_spleen": 3.0, "P_liver": 0.12}
    covered = total = 0
    for seed in range(8):
        data = synthetic(mouse, truth, seed=seed, tissues=["blood", "liver", "spleen", "kidney"], times=TIMES[[0, 2, 3, 5, 6]])
        result = nanopk.fit(mouse, data, vary=list(truth))
        for name, value in truth.items():
            lo, hi = result.ci95(name)
            covered += lo < value < hi
            total += 1
    assert covered / total >= 0.85


def test_profile_interval_agrees_with_wald_for_a_well_determined_parameter(reference):
    """For Kmax_liver (nearly quadratic profile) profile and Wald 95 % limits agree within 10 %."""
    _, result = reference
    prof = result.profile("Kmax_liver")
    wald = result.params["Kmax_liver"].user_data["ci95"]
    assert prof["open"] == []
    for a, b in zip(prof["ci95"], wald):
        assert a == pytest.approx(b, rel=0.10)
    assert result.ci95("Kmax_liver") == prof["ci95"]
    assert "profiles" in result.to_dict()


def test_sample_parameters_reproduce_the_covariance(reference):
    """Draws on the log scale have the fitted mean and covariance; seeded draws repeat."""
    _, result = reference
    draws = nanopk.fit.sample_parameters(result, 4000, seed=3)
    assert list(draws.columns) == list(TRUE)
    logs = np.log(draws.to_numpy())
    assert np.all(np.abs(logs.mean(axis=0) - result.x) < 4 * np.sqrt(np.diag(result.covariance.covar) / 4000))
    # Whitened by the fitted covariance, the sample covariance is the identity (sampling error ~1/√n).
    L = np.linalg.cholesky(result.covariance.covar)
    white = np.linalg.solve(L, np.linalg.solve(L, np.cov(logs.T)).T)
    np.testing.assert_allclose(white, np.eye(len(TRUE)), atol=5 / np.sqrt(4000))
    again = result.sample_parameters(4000, seed=3)
    pd.testing.assert_frame_equal(draws, again)
