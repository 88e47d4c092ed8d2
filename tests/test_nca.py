"""nanopk.nca: the one terminal-slope estimator (λz) and time averages, against closed forms;
and the blood half-life a fit reports beside the NCA value of its data."""
import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import nanopk
from nanopk.compare import terminal_slope
from nanopk.nca import auc, lambda_z, slope_over, time_average


def test_lambda_z_of_a_biexponential_is_its_slow_rate():
    """y = 80 e^(−2t) + 20 e^(−0.1t): from 4 h on the fast phase is < 0.3 % of y, so the best-fit window
    starts at ≥ 4 h and λz is β = 0.1 /h within 0.5 % (the closed-form local slope there is 0.1003–0.1000)."""
    t = np.array([0.25, 0.5, 1, 2, 4, 8, 12, 24, 48])
    y = 80 * np.exp(-2 * t) + 20 * np.exp(-0.1 * t)
    out = lambda_z(t, y)
    assert out["lambda_z"] == pytest.approx(0.1, rel=5e-3)
    assert out["t_first"] >= 4.0 and out["t_last"] == 48.0
    assert out["adj_r2"] > 0.9999 and out["n_plateau"] == 0


def test_lambda_z_over_the_whole_biexponential_is_not_beta():
    """Only the terminal phase is β: a 3-point window that starts in the distribution phase (0.25–1 h)
    reads a steeper slope, so the estimator must choose its window (here it leaves out the first 4 points)."""
    t = np.array([0.25, 0.5, 1, 2, 4, 8, 12, 24, 48])
    y = 80 * np.exp(-2 * t) + 20 * np.exp(-0.1 * t)
    early = slope_over(t, y, 0.25, 1.0)
    assert early["lambda_z"] > 1.0  # dominated by α = 2 /h
    assert lambda_z(t, y)["n_points"] == 5


@settings(max_examples=40, deadline=None)
@given(k=st.floats(0.01, 3.0), n=st.integers(3, 9), t0=st.floats(0.05, 2.0))
def test_lambda_z_of_an_exponential_is_exact(k, n, t0):
    """Any exact single exponential: λz = k (rel 1e-9), every point used, adjusted R² = 1."""
    t = t0 * 1.7 ** np.arange(n)
    out = lambda_z(t, 50 * np.exp(-k * t))
    assert out["lambda_z"] == pytest.approx(k, rel=1e-9)
    assert out["t_half_h"] == pytest.approx(math.log(2) / k, rel=1e-9)
    assert out["n_points"] == n and out["adj_r2"] == pytest.approx(1.0, abs=1e-9)


def test_a_trailing_plateau_is_not_elimination():
    """Arnida 2010 sphere blood means (0.5–168 h; the last two equal, 0.072 %ID): the 168 h point is
    left out as a plateau and λz is read over 0.5–24 h (t½ 2.91 h), not as the plateau's 0 slope."""
    t = [0.5, 2, 6, 24, 168]
    y = [21.84, 16.716, 1.8, 0.072, 0.072]
    out = lambda_z(t, y)
    assert out["n_plateau"] == 1 and (out["t_first"], out["t_last"]) == (0.5, 24.0)
    assert out["t_half_h"] == pytest.approx(2.914, abs=0.001)


def test_no_declining_window_gives_none():
    """A rising or flat curve has no terminal phase; fewer than 3 points neither."""
    assert lambda_z([1, 2, 4], [1, 2, 3]) is None
    assert lambda_z([1, 2, 4], [5, 5, 5]) is None
    assert lambda_z([1, 2], [5, 1]) is None
    assert slope_over([1, 2, 4], [1, 2, 3], 1, 4) is None


def test_compare_uses_the_same_estimator():
    """compare.terminal_slope is nca.lambda_z (one estimator in the package)."""
    t = np.array([0.5, 2, 6, 24, 168])
    y = np.array([49.3, 40.0, 26.7, 3.79, 0.12])
    assert terminal_slope(t, y) == lambda_z(t, y)


def test_time_average_and_auc_of_an_exponential():
    """(1/T)∫₀ᵀ 10 e^(−0.1t) dt = 100(1 − e^(−0.1T))/T, to 1e-4 on a 0.01 h grid; AUC needs 2 points."""
    t = np.arange(0, 24.0 + 1e-9, 0.01)
    y = 10 * np.exp(-0.1 * t)
    assert time_average(t, y, 24.0) == pytest.approx(100 * (1 - math.exp(-2.4)) / 24, rel=1e-4)
    assert auc(t, y) == pytest.approx(100 * (1 - math.exp(-2.4)), rel=1e-4)
    assert auc([1.0], [2.0]) is None


def test_readme_fit_reports_the_blood_half_life_beside_the_data():
    """README fit (arnida2010 sphere, mouse_tumour, default vary): the model's blood t½ is read over the
    data's NCA window (0.5–24 h), within 1.5-fold of the NCA t½ (2.91 h) — not the 126–168 h plateau
    (2679 h before this change)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", nanopk.fit.FitWarning)
        result = nanopk.fit("mouse_tumour", "arnida2010_peg_au_sphere_50nm")
    de = nanopk.delivery_efficiency(result, n_samples=20)
    nca = de["t_half_blood_nca_h"]
    assert nca["value"] == pytest.approx(2.914, abs=0.001) and nca["window_h"] == [0.5, 24.0]
    model = de["t_half_blood_h"]
    assert model["window_h"] == [0.5, 24.0]
    assert 1 / 1.5 < model["value"] / nca["value"] < 1.5
    assert "the data's terminal window" in model["note"]
    assert de["DE24"]["extrapolated"] is False and de["last_measured_h"] == 168.0


def test_without_blood_data_the_model_half_life_is_read_over_the_sampled_window():
    """Wang 2015 BSA rods (no blood measured, organs at 1, 24 and 72 h): the model's blood t½
    is read over 1–72 h, equal to λz of the model's own blood curve there (rel 1e-6), and the
    note says no NCA value exists — not the 126–168 h tail the fit never saw (173 h before)."""
    from nanopk.delivery import terminal_half_life

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", nanopk.fit.FitWarning)
        result = nanopk.fit("mouse_tumour", "wang2015_au_sio2_rod_bsa", vary=["P_tumour"])
    de = result.delivery(n_samples=0)
    half = de["t_half_blood_h"]
    assert half["window_h"] == [1.0, 72.0]
    assert "no blood was measured, so no NCA half-life" in half["note"]
    assert "t_half_blood_nca_h" not in de
    t = np.unique(np.concatenate([nanopk.delivery.delivery_grid(168.0), np.linspace(1.0, 72.0, 25)]))
    blood = result.simulate(t)["blood"].to_numpy()
    assert half["value"] == pytest.approx(terminal_half_life(t, blood, 0.25, (1.0, 72.0)), rel=1e-6)
    assert half["value"] < 30.0
