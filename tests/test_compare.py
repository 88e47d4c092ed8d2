"""Coating comparison: likelihood-ratio tests, parameter ratios, half-lives, JSON, plots."""
import json
import math
import re
import warnings

import numpy as np
import pandas as pd
import pytest

import nanopk
from nanopk import FitError
from nanopk.fit import FitWarning
from nanopk.compare import POOR_FIT_WITHIN_2FOLD, compare, default_parameter_groups, terminal_slope

TIMES = np.array([0.5, 2.0, 8.0, 24.0, 72.0, 168.0])
TISSUES = ("blood", "liver", "spleen")
BARE = {"Kmax_liver": 0.3, "Kmax_spleen": 5.0}  # Chou et al. 2023 mouse defaults (SCIENCE.md §1)
PEG = {"Kmax_liver": 0.06, "Kmax_spleen": 1.0}  # 5× lower phagocytic uptake


@pytest.fixture(scope="module")
def mouse():
    return nanopk.load_model("mouse_pbpk")


def synthetic(model, params, seed, cv=0.15, name="group"):
    """Blood, liver, spleen %ID at 6 times with log-normal noise (CV ``cv``, reported as SD)."""
    rng = np.random.default_rng(seed)
    sim = model.simulate(TIMES, params=params)
    rows = []
    for t in TIMES:
        for tissue in TISSUES:
            v = float(sim.loc[t, tissue]) * math.exp(rng.normal(0.0, cv))
            rows.append({"time_h": t, "tissue": tissue, "value": v, "sd": v * cv})
    df = pd.DataFrame(rows)
    df.attrs.update(name=name, dose_ug=float(model.parameters["dose"].value), body_weight_g=20.0)
    return df


@pytest.fixture(scope="module")
def peg_vs_bare(mouse):
    data = {"PEG": synthetic(mouse, PEG, seed=1), "bare": synthetic(mouse, BARE, seed=2)}
    return compare(mouse, data, vary=["Kmax_liver", "Kmax_spleen"], n_samples=30)


def test_fivefold_lower_phagocytic_uptake_is_found(peg_vs_bare):
    """Synthetic PEG data with 5× lower Kmax_liver and Kmax_spleen: the phagocytic-uptake test
    rejects 'no difference' (p < 0.01, ΔAIC < 0), and the 95 % profile-likelihood interval of
    the ratio bare/PEG (reference = PEG, the first group) contains 5 for both parameters (issue 21).
    The case is well posed, so each end lies within 5 % of the interval's log width of the
    delta method's (0.6-1 % seen)."""
    test = peg_vs_bare.test("phagocytic uptake")
    assert test["df"] == 2
    assert test["lrt_p"] < 0.01
    assert test["delta_aic"] < 0
    for name in ("Kmax_liver", "Kmax_spleen"):
        r = peg_vs_bare.ratio(name, "bare")
        assert r["reference"] == "PEG"
        assert r["ci_method"] == "profile likelihood" and r["ci_open"] == "", r
        assert r["ci95_low"] <= 5.0 <= r["ci95_high"], r
        width = math.log(r["ci95_high_delta"] / r["ci95_low_delta"])
        assert abs(math.log(r["ci95_low"] / r["ci95_low_delta"])) <= 0.05 * width, r
        assert abs(math.log(r["ci95_high"] / r["ci95_high_delta"])) <= 0.05 * width, r


def test_peg_circulates_longer_in_the_fitted_models(peg_vs_bare):
    """Less phagocytic uptake → longer blood half-life (terminal and 50 %-cleared), with intervals."""
    pk = peg_vs_bare.pk
    assert pk["PEG"]["t_half_blood_h"]["value"] > pk["bare"]["t_half_blood_h"]["value"]
    assert pk["PEG"]["t50_blood_h"]["value"] > pk["bare"]["t50_blood_h"]["value"]
    lo, hi = pk["PEG"]["t50_blood_h"]["ci95"]
    assert lo <= pk["PEG"]["t50_blood_h"]["value"] <= hi


def test_json_holds_fits_tests_half_lives_and_delivery(peg_vs_bare, tmp_path):
    """The compare JSON (DESIGN.md): both groups' fits, lrt_p and delta_aic per parameter group,
    half-lives and delivery per group."""
    path = tmp_path / "cmp.json"
    peg_vs_bare.to_json(path)
    d = json.loads(path.read_text())
    assert set(d["fits"]) == {"PEG", "bare"}
    assert d["fits"]["PEG"]["success"] is True
    assert set(d["lrt_p"]) == {"phagocytic uptake"} and set(d["delta_aic"]) == {"phagocytic uptake"}
    assert d["tests"]["phagocytic uptake"]["df"] == 2
    assert d["half_lives"]["PEG"]["t_half_blood_h"]["value"] > 0
    assert set(d["delivery"]) == {"PEG", "bare"}  # mouse_pbpk has no tumour: empty per group
    assert d["ratios"][0]["reference"] == "PEG"


def test_bundled_peg_vs_uncoated_pair_observed():
    """Li et al. 2014 (doi:10.2147/IJN.S66591) graphene oxide, PEG vs uncoated, bundled datasets.
    OBSERVED (non-compartmental, no model): PEG has the longer blood half-life (log-linear
    terminal regression, points chosen by adjusted R²), the larger blood AUC, and lower liver
    %ID at every sampled time.  mouse_pbpk (calibrated on gold) cannot follow graphene
    oxide's early liver capture and decline, even with immediate uptake (K50 0.1 h, n 1):
    the summary must say that the fits are poor instead of letting the LRT speak alone."""
    immediate = {"K50_liver": 0.1, "n_liver": 1.0, "K50_spleen": 0.1, "n_spleen": 1.0}
    model = nanopk.load_model("mouse_pbpk").with_parameters(immediate)
    cmp = compare(model, {"PEG": "li2014_go_peg", "bare": "li2014_go_bare"}, vary=["Kmax_liver"], n_samples=0)
    peg, bare = cmp.observed["PEG"], cmp.observed["bare"]
    assert peg["blood"]["t_half_h"] > bare["blood"]["t_half_h"]
    assert peg["blood"]["auc"] > bare["blood"]["auc"]
    assert peg["liver"]["times_h"] == bare["liver"]["times_h"]
    assert all(p < b for p, b in zip(peg["liver"]["values_pid"], bare["liver"]["values_pid"]))
    # Liver AUC over the sampled 0.17-6 h: bare more than twice PEG (308 vs 139 %ID·h when written).
    assert bare["liver"]["auc"] / peg["liver"]["auc"] > 2.0
    for group in ("PEG", "bare"):
        assert cmp.fits[group].metrics["frac_within_2fold"] < POOR_FIT_WITHIN_2FOLD
    assert cmp.summary().count("POOR FIT") == 2
    assert "observed" in json.loads(cmp.to_json())


def test_good_fits_are_not_flagged_poor(peg_vs_bare):
    assert all(f.metrics["frac_within_2fold"] >= POOR_FIT_WITHIN_2FOLD for f in peg_vs_bare.fits.values())
    assert "POOR FIT" not in peg_vs_bare.summary()


def test_particle_route_matches_the_shared_model_route(mouse, peg_vs_bare):
    """Groups defined by Particle on a model whose parameters the particle does not touch
    (mouse_pbpk) must give the same test as the one-model route."""
    data = {"PEG": synthetic(mouse, PEG, seed=1), "bare": synthetic(mouse, BARE, seed=2)}
    particles = {"PEG": nanopk.Particle(coating="PEG", coating_mw_da=5000), "bare": nanopk.Particle()}
    cmp = compare("mouse_pbpk", data, vary=["Kmax_liver", "Kmax_spleen"], particles=particles, n_samples=0)
    assert cmp.test("phagocytic uptake")["lrt_p"] < 0.01
    ref = peg_vs_bare.test("phagocytic uptake")
    assert cmp.test("phagocytic uptake")["statistic"] == pytest.approx(ref["statistic"], rel=1e-3)
    r = cmp.ratio("Kmax_liver")
    assert r["ci95_low"] <= 5.0 <= r["ci95_high"]


def test_default_parameter_groups_follow_mechanisms(mouse):
    """As the declaring parts group them: Kmax/K50 → phagocytic uptake; PAC/P → extravasation; others alone."""
    groups = default_parameter_groups(mouse, ["Kmax_liver", "K50_spleen", "PAC_liver", "P_spleen", "KurineC", "QCC"])
    assert groups["phagocytic uptake"] == ["Kmax_liver", "K50_spleen"]
    assert groups["extravasation"] == ["PAC_liver", "P_spleen"]
    assert groups["excretion"] == ["KurineC"]
    assert groups["QCC"] == ["QCC"]


def test_terminal_slope_of_an_exponential():
    """λz of an exact exponential is recovered with adjusted R² = 1."""
    t = np.array([1.0, 2.0, 4.0, 8.0, 16.0])
    out = terminal_slope(t, 10 * np.exp(-0.1 * t))
    assert out["lambda_z"] == pytest.approx(0.1, rel=1e-10) and out["n_points"] == 5


def test_bad_calls_are_explained(mouse):
    """One group, nothing varied, or shared names outside vary: each error says what to do."""
    d = synthetic(mouse, BARE, seed=0)
    with pytest.raises(FitError, match="two or more groups"):
        compare(mouse, {"only": d}, vary=["Kmax_liver"])
    with pytest.raises(FitError, match="`vary` is empty"):
        compare(mouse, {"A": d, "B": d}, vary=[])
    with pytest.raises(FitError, match="`shared` names 'Kmax_lver'"):
        compare(mouse, {"A": d, "B": d}, vary=["Kmax_liver"], shared=["Kmax_lver"])
    with pytest.raises(FitError, match="not distinct"):
        compare(mouse, {"PEG 5k": d, "PEG_5k": d}, vary=["Kmax_liver"])


def test_group_names_and_default_vary_follow_the_fit_layer(mouse):
    """Names become identifiers ("PEG 5k" → "PEG_5k"); without `vary`, the fit layer's default."""
    data = {"PEG 5k": synthetic(mouse, PEG, seed=1), "bare": synthetic(mouse, BARE, seed=2)}
    cmp = compare(mouse, data, n_samples=0)
    assert cmp.groups == ["PEG_5k", "bare"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitWarning)
        alone = nanopk.fit(mouse, {"PEG_5k": data["PEG 5k"]})
    # The fit layer's default (since the identifiability selection, not a fixed list).
    assert cmp.options["vary"] == alone.options["vary"]
    assert "PEG_5k" in cmp.report()


def test_plots_side_by_side_and_forest(peg_vs_bare, tmp_path):
    """Both groups' time courses, overlaid in one panel per tissue, and the forest plot go into one figure
    (tests/test_figures.py checks the plotted arrays)."""
    fig = peg_vs_bare.plot(tmp_path / "cmp.png")
    assert (tmp_path / "cmp.png").stat().st_size > 0
    assert len(fig.axes) == len(TISSUES) + 1
    ax = peg_vs_bare.forest()
    assert "ratio to PEG" in ax.get_xlabel()


def test_nanopk_compare_is_callable_after_the_module_is_imported(mouse):
    """`nanopk.compare(...)` works whether the attribute resolved to the function or the module."""
    import nanopk.compare as module

    assert callable(nanopk.compare) and callable(module)
    data = {"A": synthetic(mouse, BARE, seed=7), "B": synthetic(mouse, PEG, seed=8)}
    assert nanopk.compare(mouse, data, vary=["Kmax_liver"], n_samples=0).groups == ["A", "B"]


def test_group_blood_half_life_is_read_over_the_sampled_window():
    """Each group's model half-life comes from the data's terminal window (within Li 2014's sampled 0-24 h), not
    from the post-sampling plateau that once read ~1400 h; it equals the single fit's delivery-style reading."""
    import nanopk
    from nanopk.delivery import observed_blood_kinetics, pk_metrics

    model = nanopk.load_model("mouse_pbpk").with_parameters(K50_liver=0.1, n_liver=1)
    data = {"PEG": nanopk.read_dataset("li2014_go_peg"), "bare": nanopk.read_dataset("li2014_go_bare")}
    cmp = compare(model, data, vary=["Kmax_liver"], n_samples=4)
    for group, fit in cmp.fits.items():
        t_half = cmp.pk[group]["t_half_blood_h"]["value"]
        window = observed_blood_kinetics(fit.predictions)["window"]
        assert window[1] <= 24.0 + 1e-9
        values = {k: v for k, v in fit.values.items() if k in fit.model.parameters}
        expected = pk_metrics(fit.model, values, half_life_window=window)["t_half_blood_h"]
        assert t_half == pytest.approx(expected, rel=1e-9)
        assert t_half < 24.0


def test_probability_ratio_above_one_is_the_normal_tail_of_the_log_ratio(peg_vs_bare):
    """P(ratio > 1) = Φ(ln r̂ / se), se from the ratio's delta-method 95 % interval (ln hi − ln lo = 2·1.96·se),
    to 1e-9; the 5× lower PEG uptake gives bare/PEG P(>1) above 0.99 (the Bayesian alternative to the LRT)."""
    from scipy.stats import norm

    for _, r in peg_vs_bare.ratios.iterrows():
        se = (math.log(r["ci95_high_delta"]) - math.log(r["ci95_low_delta"])) / (2 * 1.959963984540054)
        expected = norm.cdf(math.log(r["ratio"]) / se)
        assert r["prob_ratio_above_1"] == pytest.approx(expected, rel=1e-9, abs=1e-12)
    ratio = peg_vs_bare.ratio("Kmax_liver")
    p_above = peg_vs_bare.ratios.set_index("parameter").loc["Kmax_liver", "prob_ratio_above_1"]
    assert (ratio["ratio"] > 1) == (p_above > 0.5)
    assert min(p_above, 1 - p_above) < 0.01
    assert "P(>1)" in peg_vs_bare.summary()


def test_no_difference_is_found_where_there_is_none():
    """Both groups simulated with the same parameters (20 seed pairs, CV 15 %): the phagocytic-uptake
    LRT keeps p > 0.05 in at least 90 % of them (18 of 20), as a 5 %-level test should (issue 21)."""
    mouse = nanopk.load_model("mouse_pbpk")
    p_values = []
    for k in range(20):
        data = {"A": synthetic(mouse, BARE, seed=100 + 2 * k), "B": synthetic(mouse, BARE, seed=101 + 2 * k)}
        # the claim is the test's p-value: the ratios' profiles (~5 s per comparison) are not needed
        cmp = compare(mouse, data, vary=["Kmax_liver", "Kmax_spleen"], n_samples=0, ratio_ci="delta")
        p_values.append(float(cmp.tests.loc["phagocytic uptake", "lrt_p"]))
    assert sum(p > 0.05 for p in p_values) >= 18, p_values


def test_particle_attribution_names_the_one_parameter_that_differs():
    """Two groups whose models differ in one parameter only: that parameter carries 100 % of the DE24
    difference (to 1e-9), and its swapped DE24 equals the other group's own DE24."""
    from nanopk.compare import particle_attribution
    from nanopk.delivery import pk_metrics

    base = nanopk.load_model("mouse_tumour")
    other = base.with_parameters({"Kmax_tumour": 2.0 * base.parameters["Kmax_tumour"].value})
    a = particle_attribution({"A": base, "B": other}, ["A", "B"])
    assert list(a["parameter"]) == ["Kmax_tumour"] and a["metric"].iloc[0] == "DE24"
    assert a["share"].iloc[0] == pytest.approx(1.0, rel=1e-9)
    assert a["metric_group"].iloc[0] == pytest.approx(pk_metrics(other, blood_states=False)["DE24"], rel=1e-12)
    assert a["metric_swapped"].iloc[0] == pytest.approx(a["metric_group"].iloc[0], rel=1e-9)


def test_particle_attribution_of_peg_vs_bare_in_the_particle_driven_model():
    """mouse_tumour_full, 50 nm gold, PEG 5 kDa vs bare: the particle maps change several parameters;
    each row's swapped DE24 is the reference model rerun with that one value, and the excluded (fitted)
    parameters are not attributed."""
    from nanopk.compare import particle_attribution
    from nanopk.delivery import pk_metrics

    peg = nanopk.load_model("mouse_tumour_full", particle=nanopk.Particle(material="Au", core_diameter_nm=50,
                                                                          coating="PEG", coating_mw_da=5000))
    bare = nanopk.load_model("mouse_tumour_full", particle=nanopk.Particle(material="Au", core_diameter_nm=50))
    a = particle_attribution({"PEG": peg, "bare": bare}, ["PEG", "bare"], exclude=["P_tumour"])
    assert len(a) >= 2 and "P_tumour" not in set(a["parameter"])
    top = a.iloc[0]
    rerun = pk_metrics(peg, {top["parameter"]: top["value"]}, blood_states=False)["DE24"]
    assert top["metric_swapped"] == pytest.approx(rerun, rel=1e-9)
    assert top["metric_reference"] == pytest.approx(pk_metrics(peg, blood_states=False)["DE24"], rel=1e-12)


def test_particle_route_on_a_model_the_particle_does_not_touch_attributes_nothing(mouse):
    """mouse_pbpk reads no particle field: the attribution table of a particle-route comparison is empty."""
    data = {"PEG": synthetic(mouse, PEG, seed=1), "bare": synthetic(mouse, BARE, seed=2)}
    particles = {"PEG": nanopk.Particle(coating="PEG", coating_mw_da=5000), "bare": nanopk.Particle()}
    cmp = compare("mouse_pbpk", data, vary=["Kmax_liver"], particles=particles, n_samples=0)
    assert cmp.attribution is not None and cmp.attribution.empty


def test_summary_lists_left_out_rows_and_says_when_a_ratio_is_not_determined(mouse):
    """A group's rows the model cannot see (a 'heart' tissue in mouse_pbpk) are listed in the summary with
    their rows and reason; a ratio whose delta-method interval spans more than 10^4-fold is reported as
    not determined instead of as [1e-35, 1e+34]."""
    a, b = synthetic(mouse, BARE, seed=3, name="A"), synthetic(mouse, PEG, seed=4, name="B")
    extra = pd.DataFrame([{"time_h": 1.0, "tissue": "heart", "value": 0.5, "sd": 0.1}])
    a = pd.concat([a, extra], ignore_index=True)
    a.attrs.update(name="A", dose_ug=float(mouse.parameters["dose"].value), body_weight_g=20.0)
    cmp = compare(mouse, {"A": a, "B": b}, vary=["Kmax_liver"], n_samples=0)
    text = cmp.summary()
    assert re.search(r"A: left out heart \(rows \d+\): model 'mouse_pbpk' has no observable 'heart'", text)
    fake = cmp.ratios.copy()
    fake.loc[0, ["ci95_low", "ci95_high"]] = [4.38e-35, 2.28e34]
    cmp.ratios = fake
    assert "no useful interval: it spans 5.2e+68-fold; these data do not determine this ratio" in cmp.summary()
