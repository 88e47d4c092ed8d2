"""Delivery efficiency (Cheng et al., ACS Nano 2020, PMID 32078303): definitions, intervals, prediction."""
import json
import math
import sys
import warnings

import numpy as np
import pandas as pd
import pytest

import nanopk
from nanopk import ModelError
from nanopk.delivery import (
    METRICS,
    _first_crossing,
    delivery_efficiency,
    delivery_grid,
    pk_metrics,
    plot_delivery,
    predict_delivery,
    terminal_half_life,
    time_average,
)


@pytest.fixture(scope="module")
def tumour_model():
    return nanopk.load_model("mouse_tumour")


def test_grid_holds_24_and_168_exactly():
    """The averages DE24 and DE168 end on grid points; tumour %ID at 24 and 168 h is read there."""
    grid = delivery_grid()
    assert grid[0] == 0.0 and grid[-1] == 168.0 and 24.0 in grid
    assert np.all(np.diff(grid) > 0)


def test_terminal_half_life_of_an_exponential_is_exact():
    """A mono-exponential y = e^(−kt) gives t½ = ln2/k to 1e-10 relative."""
    t = np.linspace(0, 168, 400)
    k = 0.05
    assert terminal_half_life(t, 80 * np.exp(-k * t)) == pytest.approx(math.log(2) / k, rel=1e-10)
    assert terminal_half_life(t, 1 + 0 * t) is None  # not declining


def test_first_crossing_interpolates_log_linearly():
    """On an exponential sampled coarsely, the 50 % crossing is exact (log-linear interpolation)."""
    t = np.array([0.0, 10.0, 20.0, 30.0])
    y = 100 * np.exp(-0.1 * t)
    assert _first_crossing(t, y, 50.0) == pytest.approx(math.log(2) / 0.1, rel=1e-12)
    assert _first_crossing(t, y, 1e-3) is None


@pytest.mark.parametrize("k", [0.01, 0.1, 1.0, 5.0])
def test_time_average_on_the_delivery_grid_is_the_closed_form(k):
    """Uptake y = A(1 − e^(−kt)) averages to A[1 − (1 − e^(−kT))/(kT)] over 0–T; the
    trapezoids on the delivery grid are within 1e-4 of it (largest seen: 4.7e-5)."""
    t = delivery_grid()
    y = 2.0 * (1.0 - np.exp(-k * t))
    for T in (24.0, 168.0):
        exact = 2.0 * (1.0 - (1.0 - math.exp(-k * T)) / (k * T))
        assert time_average(t, y, T) == pytest.approx(exact, rel=1e-4)


def test_delivery_metrics_match_their_definitions(tumour_model):
    """DE24/DE168 are the tumour %ID averaged over 0–24/0–168 h, DEmax the maximum over
    0–168 h, tumour_24h/168h the %ID at those times, AUC the integral."""
    de = delivery_efficiency(tumour_model)
    assert set(METRICS) <= set(de)
    sim = tumour_model.simulate([24.0, 168.0])
    assert de["tumour_24h"]["value"] == pytest.approx(sim.loc[24.0, "tumour"], rel=1e-6)
    assert de["tumour_168h"]["value"] == pytest.approx(sim.loc[168.0, "tumour"], rel=1e-6)
    fine = np.linspace(0, 168, 3361)
    dense = tumour_model.simulate(fine, rtol=1e-8, atol=1e-12)
    early = fine <= 24.0
    assert de["DE24"]["value"] == pytest.approx(np.trapezoid(dense["tumour"][early], fine[early]) / 24.0, rel=2e-3)
    assert de["DE168"]["value"] == pytest.approx(np.trapezoid(dense["tumour"], fine) / 168.0, rel=2e-3)
    assert de["DE168"]["value"] == pytest.approx(de["AUC_tumour"]["value"] / 168.0, rel=1e-12)
    assert de["DEmax"]["value"] == pytest.approx(dense["tumour"].max(), rel=1e-3)
    # The peak bounds every average and every amount.
    assert de["DEmax"]["value"] >= max(de[m]["value"] for m in ("DE24", "DE168", "tumour_24h", "tumour_168h"))
    assert 0 < de["t_max_h"]["value"] <= 168
    assert de["AUC_tumour"]["value"] == pytest.approx(np.trapezoid(dense["tumour"], fine), rel=2e-3)
    auc_blood = np.trapezoid(dense["blood"], fine)
    assert de["AUC_ratio"]["value"] == pytest.approx(de["AUC_tumour"]["value"] / auc_blood, rel=3e-3)
    # A model with given parameters has no uncertainty to propagate.
    assert all(de[m]["ci95"] is None for m in METRICS)
    assert de["uncertainty"]["source"] is None


def test_t50_reads_the_whole_vasculature(tumour_model):
    """t50_blood_h is when blood pools plus organ capillary blood hold 50 %ID."""
    m = pk_metrics(tumour_model)
    sim = tumour_model.simulate([m["t50_blood_h"]], states=True)
    cols = [c for c in sim.columns if c.endswith("_capillary") or c in ("state:arterial_blood", "state:venous_blood")]
    circulating = 100 * sim[cols].to_numpy().sum() / sim.attrs["dose_ug"]
    assert circulating == pytest.approx(50.0, rel=2e-3)


def test_model_without_tumour_has_no_delivery_efficiency():
    """mouse_pbpk has no tumour: the error says which model to use instead."""
    with pytest.raises(ModelError, match="no 'tumour' observable.*mouse_tumour"):
        delivery_efficiency(nanopk.load_model("mouse_pbpk"))
    assert "t_half_blood_h" in pk_metrics(nanopk.load_model("mouse_pbpk"))


def _synthetic_tumour(model, cv, seed, params):
    """Tumour and blood %ID at 6 times with log-normal noise of coefficient ``cv`` (SD given)."""
    rng = np.random.default_rng(seed)
    times = np.array([1.0, 4.0, 12.0, 24.0, 72.0, 168.0])
    sim = model.simulate(times, params=params)
    rows = []
    for tissue in ("tumour", "blood"):
        for t in times:
            v = sim.loc[t, tissue] * math.exp(rng.normal(0.0, cv))
            rows.append({"time_h": t, "tissue": tissue, "value": v, "sd": v * cv})
    df = pd.DataFrame(rows)
    df.attrs.update(name=f"synthetic_cv{cv}", dose_ug=float(model.parameters["dose"].value), body_weight_g=20.0)
    return df


def test_intervals_shrink_as_noise_falls(tumour_model):
    """Fits to data with 30 % vs 5 % noise: every DE interval is narrower at 5 % (intervals from
    the fit's covariance), and both contain the true value."""
    from nanopk.fit import FitWarning, fit

    truth = {"PATC_tumour": 0.006, "Kmax_tumour": 0.5}
    true_de = pk_metrics(tumour_model, truth)
    widths = {}
    for cv in (0.3, 0.05):
        data = _synthetic_tumour(tumour_model, cv, seed=3, params=truth)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FitWarning)
            result = fit(tumour_model, data, vary=["PATC_tumour", "Kmax_tumour"])
        assert result.success
        de = delivery_efficiency(result, n_samples=60, seed=1)
        assert de["uncertainty"]["source"] == "covariance"
        widths[cv] = {}
        for m in ("DE24", "DE168", "DEmax"):
            lo, hi = de[m]["ci95"]
            assert lo <= de[m]["value"] <= hi
            widths[cv][m] = math.log(hi / lo)
            if cv == 0.05:
                assert lo * 0.95 <= true_de[m] <= hi * 1.05
    for m in ("DE24", "DE168", "DEmax"):
        assert widths[0.05][m] < 0.5 * widths[0.3][m], (m, widths)


def test_predict_delivery_grid_is_tidy_and_size_dependent():
    """A size × coating grid through the mechanistic model: one row per particle, d_h from the
    particle (PEG adds 2.6 nm/kDa; Chen 2013); PEG delivers more than bare Au at every size
    (PEG blocks opsonisation and MPS uptake: Owens & Peppas, Int J Pharm 2006;307:93), and for
    PEG5000-Au the smaller particle delivers more (of 20/40/80 nm, 20 nm had the highest tumour
    uptake: Zhang et al., Biomaterials 2009;30:1928).  (Until the mechanism-driven MPS, bare Au
    delivered *more* at 50 than at 5 nm: particles were cleared by the clock, not by size.)"""
    df = predict_delivery("mouse_tumour_full", {"size": [15, 50], "coating": ["PEG", "none"]}, base={"material": "Au"})
    assert len(df) == 4
    assert {"material", "core_diameter_nm", "coating", "d_h", "DE24", "DE168", "DEmax"} <= set(df.columns)
    peg15 = df[(df.core_diameter_nm == 15) & (df.coating == "PEG")].iloc[0]
    assert peg15["d_h"] == pytest.approx(15 + 26.0)
    de24 = df.set_index(["coating", "core_diameter_nm"])["DE24"]
    for size in (15, 50):
        assert de24[("PEG", size)] > de24[("none", size)]
    assert de24[("PEG", 15)] > de24[("PEG", 50)]
    assert (df["DEmax"] >= df["DE24"] - 1e-12).all()


def test_predict_delivery_rejects_unknown_grid_keys():
    """A misspelt grid key is named with the nearest valid one."""
    with pytest.raises(ModelError, match="'szie'.*did you mean 'size'"):
        predict_delivery("mouse_tumour", {"szie": [15]})


def test_plot_delivery_draws_on_a_figure(tumour_model, tmp_path):
    """The plot returns an Axes and saves a file."""
    ax = plot_delivery(tumour_model, path=tmp_path / "de.png")
    assert ax.get_ylabel() == "tumour (%ID)"
    assert (tmp_path / "de.png").stat().st_size > 0


def test_plot_without_matplotlib_says_how_to_install(monkeypatch, tumour_model):
    """Without matplotlib the error names the extra to install."""
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ImportError, match=r"pip install 'nanopk\[plot\]'"):
        plot_delivery(tumour_model)


def test_mcmc_draws_take_precedence_and_the_fit_json_carries_delivery(tumour_model):
    """After result.mcmc(), intervals come from the posterior draws; the fit JSON gets `delivery`."""
    from nanopk.fit import FitWarning, fit

    data = _synthetic_tumour(tumour_model, 0.1, seed=5, params={"PATC_tumour": 0.006, "Kmax_tumour": 0.5})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitWarning)
        result = fit(tumour_model, data, vary=["PATC_tumour", "Kmax_tumour"])
        result.mcmc(steps=80, nwalkers=6, progress=False, seed=0)
    de = delivery_efficiency(result, n_samples=40, seed=0)
    assert de["uncertainty"] == {"source": "mcmc", "n_draws": 40, "n_failed": 0}
    lo, hi = de["DE24"]["ci95"]
    assert lo < de["DE24"]["value"] < hi
    d = json.loads(result.to_json())
    assert d["delivery"]["DE24"]["ci95"] == pytest.approx([lo, hi])


def test_an_estimate_outside_its_draws_range_is_marked(tumour_model):
    """Draws all above the point value (a parameter at its lower bound, sampled one-sided): the
    metric's 95 % range excludes the estimate, and the result says so instead of passing it as its interval."""
    from nanopk.delivery import metrics_with_intervals

    k = tumour_model.parameters["Kmax_tumour"].value
    draws = [{"Kmax_tumour": k * f} for f in np.linspace(2.0, 3.0, 12)]
    out = metrics_with_intervals(tumour_model, {}, draws, names=["DE24"])
    lo, hi = out["DE24"]["ci95"]
    assert out["DE24"]["value"] < lo
    assert out["DE24"]["note"].startswith("the estimate lies outside the 95 % range of its draws")
    inside = metrics_with_intervals(tumour_model, {}, [{"Kmax_tumour": k * f} for f in np.linspace(0.5, 2.0, 12)],
                                    names=["DE24"])
    assert "note" not in inside["DE24"]
