"""JointObjective and compare through it: one likelihood for both models of every test."""
import math
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings, strategies as st
from scipy.stats import chi2

import nanopk
from nanopk import FitError
from nanopk.fit import FitWarning, JointObjective, build_objective
from nanopk.fit.protocol import check_objective

MOUSE_TIMES = np.array([0.5, 2.0, 8.0, 24.0, 72.0, 168.0])
BARE = {"Kmax_liver": 0.3, "Kmax_spleen": 5.0}  # Chou et al. 2023 mouse defaults (SCIENCE.md §1)
PEG = {"Kmax_liver": 0.06, "Kmax_spleen": 1.0}  # 5× lower phagocytic uptake
VARY = ["Kmax_liver", "Kmax_spleen"]
PARTICLES = {"PEG": nanopk.Particle(coating="PEG", coating_mw_da=5000), "bare": nanopk.Particle()}


def synthetic(model, params, seed, times, tissues, cv=0.15, dose_ug=None):
    """%ID of ``tissues`` at ``times`` with log-normal noise (CV ``cv``, reported as SD)."""
    rng = np.random.default_rng(seed)
    sim = model.simulate(times, params=params)
    rows = [{"time_h": t, "tissue": o, "value": float(sim.loc[t, o]) * math.exp(rng.normal(0.0, cv))}
            for t in times for o in tissues]
    df = pd.DataFrame(rows)
    df["sd"] = df["value"] * cv
    df.attrs.update(dose_ug=float(dose_ug or model.parameters["dose"].value), body_weight_g=20.0)
    return df


def fit_quietly(**kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitWarning)
        return nanopk.fit(**kwargs)


@pytest.fixture(scope="module")
def mouse():
    return nanopk.load_model("mouse_pbpk")


@pytest.fixture(scope="module")
def groups(mouse):
    return {"PEG": synthetic(mouse, PEG, 1, MOUSE_TIMES, ("blood", "liver", "spleen")),
            "bare": synthetic(mouse, BARE, 2, MOUSE_TIMES, ("blood", "liver", "spleen"))}


@pytest.fixture(scope="module")
def particle_route(groups):
    """compare on the particle route with the additive error model (where the old fitter used log errors)."""
    return nanopk.compare("mouse_pbpk", groups, vary=VARY, particles=PARTICLES, error_model="additive", n_samples=0)


def parts(groups, error_model, start=None):
    return {g: build_objective(nanopk.load_model("mouse_pbpk", particle=PARTICLES[g]), {g: groups[g]}, vary=VARY,
                               error_model=error_model, start=(start or {}).get(g), checks=False) for g in groups}


def test_particle_route_lrt_chi2_use_one_error_model(particle_route, groups):
    """Both χ² of the LRT are additive-error χ² (issue 18: the old reduced fit gave a log-error χ² of 181.8
    against an additive 22.4): the full one is the separate additive fits' sum, the reduced one the additive
    joint objective at the reduced optimum — and not the log-error objective's value there."""
    test = particle_route.test("phagocytic uptake")
    red = particle_route.reduced["phagocytic uptake"]
    assert particle_route.full.options["error_model"] == red.options["error_model"] == "additive"
    assert all(f.options["error_model"] == "additive" for f in particle_route.fits.values())
    separate = sum(f.metrics["chisqr"] for f in particle_route.fits.values())
    assert test["chisqr_full"] == pytest.approx(separate, rel=1e-6)
    at_optimum = JointObjective(parts(groups, "additive"), tied=VARY).chisqr(red.x)
    assert test["chisqr_reduced"] == pytest.approx(at_optimum, rel=1e-9)
    log_error = JointObjective(parts(groups, "log"), tied=VARY).chisqr(red.x)
    assert abs(log_error - at_optimum) > 0.05 * at_optimum
    assert test["statistic"] == pytest.approx(test["chisqr_reduced"] - test["chisqr_full"], rel=1e-12)


def test_particle_route_p_value_equals_nested_fits_through_fit(particle_route, groups):
    """The LRT p-value equals the one from fitting the two nested models with
    nanopk.fit(objective=JointObjective(...)) directly, from the model defaults (to 1e-6 relative)."""
    full = fit_quietly(objective=JointObjective(parts(groups, "additive")))
    reduced = fit_quietly(objective=JointObjective(parts(groups, "additive"), tied=VARY), uncertainty=False)
    assert full.success and reduced.status.optimizer.converged
    stat = reduced.metrics["chisqr"] - full.metrics["chisqr"]
    test = particle_route.test("phagocytic uptake")
    assert test["statistic"] == pytest.approx(stat, rel=1e-7)
    assert test["lrt_p"] == pytest.approx(chi2.sf(stat, 2), rel=1e-6)


def test_particle_route_finds_fivefold_phagocytic_uptake(particle_route):
    """Synthetic PEG data with 5× lower Kmax_liver and Kmax_spleen (issue 21): p < 0.01, and the 95 %
    interval of the bare/PEG ratio of each contains 5."""
    assert particle_route.test("phagocytic uptake")["lrt_p"] < 0.01
    assert particle_route.success, particle_route.problems
    for name in VARY:
        r = particle_route.ratio(name, "bare")
        assert r["ci95_low"] <= 5.0 <= r["ci95_high"], r


TWO_TIMES = np.array([0.25, 1.0, 3.0, 8.0, 24.0])


def test_no_difference_is_not_significant_in_90_percent_of_seeds():
    """Both groups from the same two-compartment parameters (k12 the tested uptake): p > 0.05 in at
    least 18 of 20 seeds (a valid 5 % test rejects about 1 in 20)."""
    model = nanopk.load_model("two_compartment_iv")
    ps = []
    for seed in range(20):
        data = {g: synthetic(model, {}, offset + seed, TWO_TIMES, ("central", "peripheral"))
                for g, offset in (("A", 100), ("B", 200))}
        ps.append(nanopk.compare(model, data, vary=["k12"], n_samples=0).test("k12")["lrt_p"])
    assert sum(p > 0.05 for p in ps) >= 18, ps


@pytest.fixture(scope="module")
def two():
    model = nanopk.load_model("two_compartment_iv")
    data = {g: synthetic(model, {"k12": k12}, seed, TWO_TIMES, ("central", "peripheral"))
            for g, k12, seed in (("A", 0.5, 1), ("B", 1.0, 2))}
    return model, data


def two_parts(two, **kw):
    model, data = two
    return {g: build_objective(model, {g: data[g]}, vary=["k12", "k10"], checks=False, **kw) for g in data}


@settings(max_examples=15, deadline=None)
@given(st.lists(st.floats(-3.0, 1.0), min_size=3, max_size=3))
def test_joint_residual_stacks_the_parts(two, x):
    """With k10 tied, r(x) is part A's data rows at (k10, k12_A), then part B's at (k10, k12_B)."""
    p = two_parts(two)
    joint = JointObjective(p, tied=["k10"])
    assert joint.names == ["k10", "k12__A", "k12__B"]
    r = joint.residual(x)
    ra = p["A"].residual([x[1], x[0]])  # each part orders its own vector as vary: k12, k10
    rb = p["B"].residual([x[2], x[0]])
    np.testing.assert_array_equal(r, np.concatenate([ra, rb]))


def test_a_tied_prior_counts_once(two):
    """A prior on a tied parameter gives one row (as a shared parameter of one fit), an untied one a row per part."""
    p = two_parts(two, priors={"k10": (0.2, 0.5), "k12": (0.5, 1.0)})
    joint = JointObjective(p, tied=["k10"])
    assert joint.n_priors == 3 and joint.n_residuals == joint.n_data + 3
    assert sorted(joint.priors) == ["k10", "k12__A", "k12__B"]
    x = joint.x0 + 0.3
    _, prior = joint.split(joint.residual(x))
    want = {"k10": (x[0] - math.log(0.2)) / 0.5, "k12__A": (x[1] - math.log(0.5)), "k12__B": (x[2] - math.log(0.5))}
    assert sorted(prior) == pytest.approx(sorted(want.values()), rel=1e-12)
    J = joint.prior_jacobian()
    assert J.shape == (3, 3) and sorted(J.sum(axis=0)) == pytest.approx([1.0, 1.0, 2.0])


def test_nothing_tied_is_the_separate_fits(two):
    """With nothing tied the joint optimum is the parts' separate optima side by side (χ² to 1e-6)."""
    model, data = two
    separate = sum(fit_quietly(model=model, data={g: data[g]}, vary=["k12", "k10"]).metrics["chisqr"] for g in data)
    joint = fit_quietly(objective=JointObjective(two_parts(two)))
    assert joint.metrics["chisqr"] == pytest.approx(separate, rel=1e-6)
    assert set(joint.models) == {"A", "B"}


def test_bad_joint_objectives_are_explained(two):
    """Each misuse says what was wrong and what would be right."""
    p = two_parts(two)
    with pytest.raises(FitError, match=r"tied parameter 'k13' is not fitted in part\(s\) A, B.*'k12'"):
        JointObjective(p, tied=["k13"])
    with pytest.raises(FitError, match="two or more objectives"):
        JointObjective({"A": p["A"]})
    with pytest.raises(FitError, match="dataset 'A' is in parts 'A' and 'again'"):
        JointObjective({"A": p["A"], "again": two_parts(two)["A"]})
    with pytest.raises(FitError, match="tied parameter 'k10' has different priors"):
        JointObjective({"A": two_parts(two, priors={"k10": (0.2, 0.5)})["A"],
                        "B": two_parts(two, priors={"k10": (0.3, 0.5)})["B"]}, tied=["k10"])
    with pytest.raises(FitError, match="does not provide the Objective protocol: missing .*residual"):
        check_objective(object())
    with pytest.raises(FitError, match=r"fit\(objective=...\) got data, error_model='additive'"):
        nanopk.fit(data=two[1]["A"], objective=JointObjective(p), error_model="additive")
    with pytest.raises(FitError, match="jacobian='sensitivity' needs a single-model Objective"):
        nanopk.fit(objective=JointObjective(p), jacobian="sensitivity")


def test_data_route_joint_fits_are_the_fit_layers_shared_fits(two):
    """On the data route (one model) compare's full and reduced fits reach the χ² of nanopk.fit's own
    multi-dataset fits with the same `shared` and error model (combined here), to 1e-6."""
    model, data = two
    kw = dict(vary=["k12", "k10"], error_model="combined")
    cmp = nanopk.compare(model, data, shared=["k10"], n_samples=0, **kw)
    full = fit_quietly(model=model, data=data, shared=["k10"], **kw)
    reduced = fit_quietly(model=model, data=data, shared=["k10", "k12"], **kw)
    test = cmp.test("k12")
    assert cmp.full.options["error_model"] == cmp.reduced["k12"].options["error_model"] == "combined"
    assert test["chisqr_full"] == pytest.approx(full.metrics["chisqr"], rel=1e-6)
    assert test["chisqr_reduced"] == pytest.approx(reduced.metrics["chisqr"], rel=1e-6)
