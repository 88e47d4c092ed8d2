"""nanopk.calibrate: data selection, grouped folds, recovery of known constants, predict and the CLI."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import nanopk
from nanopk import NanopkError
from nanopk.calibrate import (Constant, InstanceSimulator, calibrate_constants, calibration_points, null_predictor, score,
                              study_folds)
from nanopk.calibrate.predict import constant_draws, parse_dose, parse_particle, predict
from nanopk.calibrate.store import calibrated_values, load_calibration
from nanopk.cli import main


# ---------------------------------------------------------------------- data
def test_bundled_studies_are_held_out_and_rats_refused():
    """The bundled Cho 2010 and Arnida 2010 studies are held out by DOI; a rat study is refused with its species."""
    data = [nanopk.read_dataset(n) for n in ("cho2010_peg_au_13nm", "arnida2010_peg_au_sphere_50nm", "hirn2011_au_18nm")]
    with pytest.raises(NanopkError, match=r"no dataset left to calibrate on \(3 refused"):
        calibration_points(data)
    inst, pts, refused = calibration_points(data, exclude_held_out=False)
    assert set(inst["name"]) == {"cho2010_peg_au_13nm", "arnida2010_peg_au_sphere_50nm"}
    assert refused.loc[refused["name"] == "hirn2011_au_18nm", "reason"].str.contains("species 'rat'").all()
    assert (pts["pid"] > 0).all() and set(pts["tissue"]) <= {"blood", "liver", "spleen", "kidney", "lung", "tumour",
                                                             "brain", "muscle"}


# ---------------------------------------------------------------------- folds
@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 30), min_size=4, max_size=80), st.integers(2, 6), st.integers(0, 5))
def test_study_folds_never_split_a_study(labels, k, seed):
    """Every study is in exactly one fold, so no study is on both sides of a train/test split."""
    studies = [f"s{x}" for x in labels]
    n = len(set(studies))
    if k > n:
        with pytest.raises(NanopkError, match=r"folds must be an integer from 2 to the number of studies"):
            study_folds(studies, k, seed)
        return
    folds = study_folds(studies, k, seed)
    assert len(folds) == k
    flat = [s for f in folds for s in f]
    assert sorted(flat) == sorted(set(studies))  # each study once
    for f in folds:
        train = {s for s in studies if s not in set(f)}
        assert not train & set(f)
    sizes = [len(f) for f in folds]
    assert max(sizes) - min(sizes) <= 1


def test_null_predictor_is_the_training_median_per_tissue_and_bin():
    """The null predictor returns log10 of the training median of the test point's tissue and time bin."""
    train = pd.DataFrame({"tissue": ["liver"] * 3 + ["spleen"], "time_h": [24, 20, 30, 24], "pid": [10, 20, 40, 2]})
    test = pd.DataFrame({"tissue": ["liver", "spleen", "tumour"], "time_h": [25, 0.5, 24], "pid": [1, 1, 1]})
    got = null_predictor(train, test)
    assert got == pytest.approx([math.log10(20), math.log10(2), np.median(np.log10([10, 20, 40, 2]))])


def test_score_counts_fold_errors():
    """Within-2-fold counts |log10 error| ≤ log10 2; AFE is 10^mean error."""
    s = score(np.log10([1, 1, 1, 1]), np.log10([1.5, 2.5, 0.4, 1]))
    assert s["within2"] == pytest.approx(0.5)
    assert s["within3"] == pytest.approx(1.0)
    assert s["afe"] == pytest.approx((1.5 * 2.5 * 0.4) ** 0.25)


# ---------------------------------------------------------------------- recovery on synthetic data
PEG15 = dict(material="Au", core_diameter_nm=15.0, coating="PEG", coating_mw_da=5000.0)
BARE80 = dict(material="Au", core_diameter_nm=80.0, coating="none")
TRUTH = {"signal_50": 0.05, "S_V_tumour": 1200.0}
TWO_CONSTANTS = (Constant("signal_50", 1e-3, 1e3, ""), Constant("S_V_tumour", 1.0, 1e5, ""))


def _simulator(instances, tissues, times, truth=None, offsets=None, noise_sd=0.0, seed=7) -> InstanceSimulator:
    """A simulator of ``instances`` ((name, study, particle) triples: a 20 g mouse, 20 µg IV) at every tissue × time.

    With ``truth`` its points are the model's log10 %ID at those constants plus each study's ``offsets`` entry plus
    seeded normal noise of SD ``noise_sd``; without, every point is 1 %ID."""
    inst = pd.DataFrame([{"name": n, "study": s, "species": "mouse", "body_weight_g": 20.0, "dose_ug": 20.0,
                          "tumour_g": math.nan, "has_tumour": True, "perfused": False, "particle": p, "citation": ""}
                         for n, s, p in instances])
    pts = pd.DataFrame([{"name": n, "study": s, "tissue": t, "time_h": h, "pid": 1.0}
                        for n, s, _ in instances for t in tissues for h in times])
    sim = InstanceSimulator(inst, pts, workers=1)
    if truth is not None:
        y = sim.predict_log10(truth) + pts["study"].map(offsets or {}).fillna(0.0).to_numpy()
        sim.points["pid"] = 10 ** (y + np.random.default_rng(seed).normal(0.0, noise_sd, len(pts)))
    return sim


def _two_particles_in(studies):
    return [(f"i{j}_{s}", s, p) for j, p in enumerate((PEG15, BARE80)) for s in studies]


@pytest.fixture(scope="module")
def synthetic():
    """Four instances (two particles × two studies) simulated with known constants and study offsets."""
    sim = _simulator(_two_particles_in(("A", "B")), ("blood", "liver", "spleen", "tumour"), (1.0, 4.0, 24.0, 72.0),
                     truth=TRUTH, offsets={"A": 0.1, "B": -0.1})
    return sim, TRUTH


@pytest.mark.parametrize("order", [(0, 1), (1, 0)])
def test_instances_sharing_a_model_keep_their_own_particle(order):
    """Two particles of one model structure — the base model's own (15 nm PEG-5k Au) and a 50 nm PEG-2k one — are
    each predicted as a direct simulation of their own particle (to 1e-3 log10), whichever comes first (a
    regression: the second instance used to inherit the first one's core size and PEG)."""
    particles = [dict(material="Au", core_diameter_nm=50.0, coating="PEG", coating_mw_da=2000.0), PEG15]
    particles = [particles[i] for i in order]
    sim = _simulator([(f"i{j}", f"S{j}", p) for j, p in enumerate(particles)], ("blood", "liver", "tumour"), (1.0, 24.0))
    pts = sim.points
    assert sim._solver.structure[0] == sim._solver.structure[1]  # one shared model: the case under test
    got = sim.predict_log10({})
    for j, p in enumerate(particles):
        direct = nanopk.load_model("mouse_tumour_full", particle=nanopk.Particle(**p)).simulate(
            [0.0, 1.0, 24.0], params={"BW": 0.02, "dose": 20.0})
        sel = (pts["name"] == f"i{j}").to_numpy()
        want = [math.log10(direct.loc[h, t]) for t, h in zip(pts.loc[sel, "tissue"], pts.loc[sel, "time_h"])]
        assert got[sel] == pytest.approx(want, abs=1e-3)


def test_calibration_recovers_known_constants(synthetic):
    """Two constants used to simulate noise-free data (with ±0.1 log10 study offsets) are recovered within 5 %."""
    sim, truth = synthetic
    fit = calibrate_constants(sim, TWO_CONSTANTS, start={"signal_50": 0.35, "S_V_tumour": 400.0}, max_nfev=30,
                              em_rounds=2, tau0=0.1, sigma0=0.05)
    assert fit.values["signal_50"] == pytest.approx(truth["signal_50"], rel=0.05)
    assert fit.values["S_V_tumour"] == pytest.approx(truth["S_V_tumour"], rel=0.05)
    assert fit.study_offsets["A"] > 0 > fit.study_offsets["B"]
    assert fit.n_studies == 2 and fit.n_points == len(sim.points)
    # the record carries the covariance predict draws from: its diagonal is the SEs squared (to 1e-12)
    cov = fit.to_dict()["covariance_log10"]
    assert cov["names"] == ["signal_50", "S_V_tumour"]  # both identified
    assert np.allclose(np.diag(cov["matrix"]), [fit.se_log10[n] ** 2 for n in cov["names"]], rtol=1e-12)


def test_calibration_estimates_the_mean_study_offset():
    """Studies that all report less than the model (offsets −0.2, −0.3, −0.4, −0.5 log10, mean −0.35) give μ = −0.35
    (to 0.02) with its SE, the constants within 5 %, and a new study predicted at that level; study_mean=False (the
    earlier calibrations) reports μ = 0 without an SE."""
    offsets = {"A": -0.2, "B": -0.3, "C": -0.4, "D": -0.5}
    sim = _simulator(_two_particles_in(offsets), ("blood", "liver", "spleen", "tumour"), (1.0, 4.0, 24.0, 72.0),
                     truth=TRUTH, offsets=offsets)
    options = dict(start={"signal_50": 0.35, "S_V_tumour": 400.0}, max_nfev=30, em_rounds=2, tau0=0.1, sigma0=0.05)
    fit = calibrate_constants(sim, TWO_CONSTANTS, **options)
    assert fit.offset_log10 == pytest.approx(-0.35, abs=0.02)
    assert 0 < fit.offset_se_log10 < 0.2
    assert fit.values["signal_50"] == pytest.approx(TRUTH["signal_50"], rel=0.05)
    assert fit.values["S_V_tumour"] == pytest.approx(TRUTH["S_V_tumour"], rel=0.05)
    assert fit.to_dict()["offset_log10"] == fit.offset_log10
    new_study = sim.predict_log10(fit.values) + fit.offset_log10
    truth_mean = sim.predict_log10(TRUTH) - 0.35
    assert np.median(np.abs(new_study - truth_mean)) < 0.03
    fixed = calibrate_constants(sim, TWO_CONSTANTS, study_mean=False, **options)
    assert fixed.offset_log10 == 0.0 and fixed.offset_se_log10 is None


def test_calibration_recovers_constants_mean_offset_and_between_study_sd():
    """Ten studies of two particles, simulated with known constants, study offsets of mean μ = −0.3 and SD τ = 0.3
    log10 (a fixed standardised set, so their SD is exactly τ) and residual noise σ = 0.1 (seeded): each constant and
    μ lie inside their 95 % intervals, and τ̂ is within 30 % of τ (issue 20's recovery test)."""
    z = np.array([-1.6, -1.1, -0.7, -0.35, -0.1, 0.1, 0.35, 0.7, 1.1, 1.6])
    z = (z - z.mean()) / z.std()
    studies = [f"S{k}" for k in range(len(z))]
    sim = _simulator(_two_particles_in(studies), ("blood", "liver", "tumour"), (1.0, 24.0), truth=TRUTH,
                     offsets=dict(zip(studies, -0.3 + 0.3 * z)), noise_sd=0.1)
    fit = calibrate_constants(sim, TWO_CONSTANTS, start={"signal_50": 0.35, "S_V_tumour": 400.0}, max_nfev=30,
                              em_rounds=4, tau0=0.2, sigma0=0.2)
    record = fit.to_dict()["constants"]
    for name, value in TRUTH.items():
        low, high = record[name]["interval95"]
        assert low < value < high, (name, low, value, high)
    assert abs(fit.offset_log10 + 0.3) < 1.96 * fit.offset_se_log10, (fit.offset_log10, fit.offset_se_log10)
    assert fit.tau == pytest.approx(0.3, rel=0.3)


def test_calibration_start_outside_bounds_is_refused(synthetic):
    """A starting value outside a constant's bounds names the constant and the bounds."""
    sim, _ = synthetic
    with pytest.raises(NanopkError, match=r"signal_50 = 5000 \(bounds 0.001–100\)"):
        calibrate_constants(sim, (Constant("signal_50", 1e-3, 1e3, ""),), start={"signal_50": 5000.0})


# ---------------------------------------------------------------------- predict
PEG50 = "material=gold,core_nm=50,coating=PEG,peg_mw=5000"


def test_shipped_calibration_has_values_intervals_and_source():
    """calibrated.json ships each constant with value, SE and interval, the variances, counts and the benchmark."""
    rec = load_calibration()
    assert rec["benchmark"].startswith("benchmarks/calibrate_ntua.py")
    assert rec["n_studies"] > 20 and rec["n_points"] > 1000
    assert rec["tau_log10"] > 0 and rec["sigma_log10"] > 0
    for v in rec["constants"].values():
        assert v["value"] > 0


def test_predict_de24_equals_simulate_with_calibrated_constants():
    """predict's DE24 is the 0–24 h mean of the tumour curve simulated with the calibrated constants, times 10^μ (the
    studies' mean offset), within 1 %; an organ value is the simulated one times 10^μ (to 1e-3)."""
    out = predict(PEG50, dose="1mg/kg", times=[24.0])
    p = nanopk.Particle(material="Au", core_diameter_nm=50, coating="PEG", coating_mw_da=5000)
    m = nanopk.load_model("mouse_tumour_full", particle=p)
    grid = np.linspace(0, 24, 2401)
    sim = nanopk.simulate(m, grid, params={**calibrated_values(), "BW": 0.02, "dose": 20.0})
    mu = load_calibration().get("offset_log10") or 0.0
    assert out["offset_log10"] == mu
    sim = sim * 10 ** mu
    y = sim["tumour"].to_numpy()
    de24 = float(np.sum((y[1:] + y[:-1]) * np.diff(grid)) / 2) / 24.0  # trapezoid rule
    assert out["delivery"]["DE24"]["value"] == pytest.approx(de24, rel=0.01)
    assert out["organs"]["tumour"][0]["value"] == pytest.approx(float(sim["tumour"].iloc[-1]), rel=1e-3)
    lo, hi = out["delivery"]["DE24"]["low"], out["delivery"]["DE24"]["high"]
    assert lo < out["delivery"]["DE24"]["value"] < hi
    assert all(r["high"] <= 100.0 for rows in out["organs"].values() for r in rows)  # no organ holds > 100 %ID


def test_predict_refuses_an_unknown_organ():
    """An organ asked for by name that the model does not observe is refused with the valid names (not dropped)."""
    with pytest.raises(NanopkError, match=r"organs 'livr'; did you mean 'liver'.*: not observables of mouse_tumour_full; "
                                          r"valid: .*liver"):
        predict(PEG50, times=[24.0], organs=["liver", "livr"], parameter_draws=0)
    out = predict(PEG50, times=[24.0], organs=["liver"], parameter_draws=0)
    assert list(out["organs"]) == ["liver"]


def test_predict_without_draws_is_the_between_study_interval():
    """parameter_draws=0: every interval is value ×/÷ 10^(z·√(τ² + σ² + SE(μ)²)) (z = 1.645 for 90 %), to 1e-12."""
    rec = load_calibration()
    out = predict(PEG50, dose="1mg/kg", times=[24.0], parameter_draws=0)
    factor = 10 ** (1.6448536269514722 * math.hypot(rec["tau_log10"], rec["sigma_log10"], rec.get("offset_se_log10") or 0))
    de = out["delivery"]["DE24"]
    assert de["value"] / de["low"] == pytest.approx(factor, rel=1e-12) and de["sd_parameter_log10"] == 0.0
    assert out["parameter_draws"] == 0 and out["parameter_uncertainty"] == "not propagated"


def test_predict_adds_the_constants_uncertainty_by_draws():
    """The interval's parameter share is the SD of log10 DE24 over the constants' draws (recomputed here, to 1e-9),
    added in quadrature to the between-study SD; the same seed gives the same interval."""
    rec = load_calibration()
    out = predict(PEG50, dose="1mg/kg", times=[24.0], parameter_draws=20, seed=3)
    p = nanopk.Particle(material="Au", core_diameter_nm=50, coating="PEG", coating_mw_da=5000)
    m = nanopk.load_model("mouse_tumour_full", particle=p)
    bounds = {k: m.parameters[k].bounds for k in rec["constants"]}
    draws, how, held = constant_draws(rec, 20, seed=3, bounds=bounds)
    from nanopk.delivery import pk_metrics
    logs = [math.log10(pk_metrics(m, {**d, "BW": 0.02, "dose": 20.0}, blood_states=False)["DE24"]) for d in draws]
    de = out["delivery"]["DE24"]
    assert de["sd_parameter_log10"] == pytest.approx(float(np.std(logs, ddof=1)), rel=1e-9)
    assert de["sd_parameter_log10"] > 0.05  # the constants' share is not negligible for a 50 nm PEG-gold particle
    assert de["sd_log10"] == pytest.approx(math.hypot(out["sd_log10"], de["sd_parameter_log10"]), rel=1e-12)
    assert out["failed_draws"] == 0 and out["held_constants"] == held == ["Kmax_tumour", "k_cap_ops_spleen"]
    assert "truncated to the model's bounds" in out["parameter_uncertainty"] == how
    assert predict(PEG50, dose="1mg/kg", times=[24.0], parameter_draws=20, seed=3)["delivery"]["DE24"] == de


@settings(max_examples=15, deadline=None)
@given(se=st.floats(0.05, 1.0), value=st.floats(0.1, 10.0), upper=st.floats(0.5, 20.0))
def test_constant_draws_are_log_normal_truncated_to_the_bounds(se, value, upper):
    """Draws of one constant: log10 mean and SD as given (within 10 % / 0.1·SE, 2000 draws) when the bounds are far;
    every draw inside the bounds; a constant without an SE held at its estimate."""
    rec = {"constants": {"a": {"value": value, "se_log10": se, "identified": True},
                         "b": {"value": 2.0, "se_log10": None, "identified": False}}}
    far, how, held = constant_draws(rec, 2000, seed=1)
    x = np.log10([d["a"] for d in far])
    assert x.mean() == pytest.approx(math.log10(value), abs=0.1 * se) and x.std(ddof=1) == pytest.approx(se, rel=0.1)
    assert held == ["b"] and all(d["b"] == 2.0 for d in far) and "independent" in how
    cut, _, _ = constant_draws(rec, 200, seed=1, bounds={"a": (0.0, max(upper, value))})
    assert all(d["a"] <= max(upper, value) for d in cut)
    with pytest.raises(NanopkError, match=r"only 0 of 200000 draws of the calibrated constants lie inside the model's bounds"):
        constant_draws(rec, 200, seed=1, bounds={"a": (value * 10 ** (40 * se), math.inf)})


def test_constant_draws_follow_a_stored_covariance():
    """With a covariance_log10 in the record the draws have its correlation (−0.8, within 0.05 over 4000 draws)."""
    cov = [[0.04, -0.8 * 0.2 * 0.1], [-0.8 * 0.2 * 0.1, 0.01]]
    rec = {"constants": {"a": {"value": 1.0, "se_log10": 0.2}, "b": {"value": 5.0, "se_log10": 0.1}},
           "covariance_log10": {"names": ["a", "b"], "matrix": cov}}
    draws, how, _ = constant_draws(rec, 4000, seed=2)
    r = np.corrcoef(np.log10([d["a"] for d in draws]), np.log10([d["b"] for d in draws]))[0, 1]
    assert r == pytest.approx(-0.8, abs=0.05) and "covariance of 2 constants" in how


def test_parse_particle_aliases_and_errors():
    """Short names map to Particle fields; a wrong field or material names the valid choices."""
    p = parse_particle(PEG50)
    assert (p.material, p.core_diameter_nm, p.coating_mw_da) == ("Au", 50.0, 5000.0)
    with pytest.raises(NanopkError, match=r"--particle field 'cor_nm' is unknown; did you mean 'core_nm'"):
        parse_particle("material=gold,cor_nm=50")
    with pytest.raises(NanopkError, match=r"--particle: .*material 'plutonium' is unknown; valid: Au"):
        parse_particle("material=plutonium,core_nm=50")
    with pytest.raises(NanopkError, match=r"--particle field core_diameter_nm: 'big' is not a number"):
        parse_particle("core_nm=big")


def test_parse_dose_errors():
    """A dose needs a mass or mass-per-body-mass unit and a positive value."""
    assert parse_dose("1mg/kg", 20.0) == pytest.approx(20.0)
    assert parse_dose("20 ug", 20.0) == pytest.approx(20.0)
    with pytest.raises(NanopkError, match=r"--dose '5MBq': a dose in MBq is not a mass"):
        parse_dose("5MBq", 20.0)
    with pytest.raises(NanopkError, match=r"--dose 'lots': give a number and a unit"):
        parse_dose("lots", 20.0)


# ---------------------------------------------------------------------- CLI errors
@pytest.mark.parametrize("argv, message", [
    (["predict", "--particle", PEG50, "--species", "rat"], r"--species 'rat': the calibration covers mouse only"),
    (["predict", "--particle", "material=gold,cor_nm=50"], r"--particle field 'cor_nm' is unknown"),
    (["predict", "--particle", PEG50, "--times", "1,x"], r"--times '1,x': give comma-separated hours"),
    (["predict", "--particle", PEG50, "--times", "0,24"], r"--times '0,24': give hours after the dose, each > 0"),
    (["predict", "--particle", PEG50, "--level", "1.5"], r"--level 1.5: give the interval's coverage between 0 and 1"),
    (["predict", "--particle", PEG50, "--calibration", "/nonexistent/c.json"], r"calibration file '/nonexistent/c.json' does not exist"),
    (["calibrate", "--database", "/nonexistent/NMs_Database.xlsx"], r"--database '/nonexistent/NMs_Database.xlsx' does not exist"),
    (["calibrate", "--database", ".", "--folds", "1"], r"--folds 1: give an integer ≥ 2"),
    (["calibrate", "--database", ".", "--output", "/nonexistent/dir/c.json"], r"--output /nonexistent/dir/c.json: the folder '/nonexistent/dir' does not exist"),
])
def test_cli_errors(argv, message, capsys):
    """Bad input to calibrate/predict exits 2 with one line naming the option and what is expected."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    import re

    assert re.search(message, err), err


def test_cli_predict_prints_organs_and_de24(capsys):
    """`nanopk predict` prints organ %ID with intervals and DE24 equal to the API's."""
    assert main(["predict", "--particle", PEG50, "--dose", "1mg/kg", "--times", "24"]) == 0
    out = capsys.readouterr().out
    de24 = predict(PEG50, dose="1mg/kg", times=[24.0])["delivery"]["DE24"]["value"]
    assert f"DE24 = {de24:.3g} %ID" in out
    assert "tumour" in out and "liver" in out
