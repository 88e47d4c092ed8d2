"""MPS uptake driven by the particle (mechanisms/mps.py) in mouse_tumour_full: opsonisation, saturation, size, PEG."""
from __future__ import annotations

import math

import numpy as np
import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st

import nanopk
from nanopk import ModelError
from nanopk.dosing import Bolus
from nanopk.mechanisms import mps
from nanopk.mechanisms.corona import PROTEINS, S_PER_H
from nanopk.parts import TIME, symbol

MODEL = "mouse_tumour_full"
GRID = np.concatenate([[0.0], np.geomspace(1.0 / 60.0, 168.0, 160)])


def peg(d, mw=5000.0):
    return nanopk.Particle(material="Au", core_diameter_nm=d, coating="PEG", coating_mw_da=mw)


def bare(d):
    return nanopk.Particle(material="Au", core_diameter_nm=d, coating="none")


def half_life(sim, t_ref=5.0 / 60.0):
    """Time (h) for blood to fall to half its value at t_ref (log-linear), as benchmarks/trends.py measures it."""
    t, b = sim.index.to_numpy(float), sim["blood"].to_numpy(float)
    target = 0.5 * np.interp(t_ref, t, b)
    after = t >= t_ref
    t, b = t[after], b[after]
    i = int(np.nonzero(b <= target)[0][0])
    f = (math.log(target) - math.log(b[i - 1])) / (math.log(b[i]) - math.log(b[i - 1]))
    return t[i - 1] + f * (t[i] - t[i - 1])


@pytest.fixture(scope="module")
def models():
    cache = {}

    def get(particle):
        key = repr(particle)
        if key not in cache:
            cache[key] = nanopk.load_model(MODEL, particle=particle)
        return cache[key]

    return get


def _total_ok(sim):
    assert np.abs(sim["total"] - 100.0).max() < 1e-6


# ---------------------------------------------------------------------- NumPy vs SymPy twins
@settings(max_examples=40, deadline=None)
@given(st.floats(0.0, 50.0), st.floats(1e-3, 10.0), st.floats(1.0, 6.0), st.floats(0.01, 100.0))
def test_recognition_rate_numpy_and_sympy_twins_agree(signal, s50, hill, kmax):
    """recognition_rate (NumPy) equals recognition_rate_expr (SymPy) to 1e-12 relative; it lies in [0, k_max]."""
    x, a, h, k = sp.symbols("x a h k", positive=True)
    f = sp.lambdify((x, a, h, k), mps.recognition_rate_expr(x, k, a, h), "math")
    value = mps.recognition_rate(signal, kmax, s50, hill)
    assert value == pytest.approx(f(signal, s50, hill, kmax), rel=1e-12, abs=1e-300)
    assert 0.0 <= value <= kmax


@settings(max_examples=40, deadline=None)
@given(st.floats(0.0, 1e16), st.floats(1e8, 1e14), st.floats(2.0, 8.0))
def test_free_capacity_numpy_and_sympy_twins_agree_and_stay_in_unit_interval(number, n50, hill):
    """free_capacity equals its SymPy twin to 1e-12 relative, lies in (0, 1] and is 1/2 at N = N50."""
    x, a, h = sp.symbols("x a h", positive=True)
    f = sp.lambdify((x, a, h), mps.free_capacity_expr(x, a, h), "math")
    value = mps.free_capacity(number, n50, hill)
    assert value == pytest.approx(f(number, n50, hill), rel=1e-12)
    assert 0.0 < value <= 1.0
    assert mps.free_capacity(n50, n50, hill) == pytest.approx(0.5, rel=1e-12)


@pytest.mark.parametrize("particle", [peg(13.0), peg(100.0), bare(15.0), peg(15.0, mw=2000.0)], ids=repr)
def test_opsonisation_flux_in_the_model_equals_the_numpy_closed_form(models, particle):
    """d(blood_opsonised)/dt at a state with mass only in venous blood = k_rec·A_venous, with k_rec from the
    NumPy twins (equilibrium_opsonin_coverage → opsonin_signal → recognition_rate), to 1e-10 relative."""
    model = models(particle)
    v = {n: p.value for n, p in model.parameters.items()}
    kc = [v[f"kon_{n}"] * v[f"C_{n}"] / v[f"koff_{n}"] for n in ("HSA", "HDL", "fibrinogen", "IgG")]
    g = 1.0 - math.exp(-v["PEG_MW"] / v["M_PEG"])
    coverage = mps.equilibrium_opsonin_coverage(
        kc, [PROTEINS[n].opsonin for n in ("HSA", "HDL", "fibrinogen", "IgG")],
        kon_factor=1.0 - (1.0 - v["PEG_opsonin_min"]) * g, accessible=1.0 - (1.0 - v["PEG_accessible_min"]) * g,
        adsorption=v["corona_adsorption"])
    signal = mps.opsonin_signal(v["alpha_opsonin"], coverage, v["d_core"], v["d_ref_opsonin"])
    k_rec = mps.recognition_rate(signal, v["k_rec_max"], v["signal_50"], v["n_recognition"])
    names = model.state_names
    y = np.zeros(len(names))
    y[names.index("d_h")] = v["d_h_buffer"]
    y[names.index("venous_blood")] = 3.0
    f = model.compile().rhs(0.0, y, model.parameter_vector())  # the compiled backend the simulations use
    assert f[names.index("blood_opsonised")] == pytest.approx(k_rec * 3.0, rel=1e-10)
    assert v["kon_IgG"] == PROTEINS["IgG"].k_on_M_s * S_PER_H  # the corona's constants, not copies


def test_mps_rates_do_not_depend_on_time(models):
    """Issue 19: uptake follows the particle, not the clock — no flux of mps.opsonisation_uptake contains t."""
    model = models(peg(15.0))
    mps_fluxes = [f for f in model.fluxes if f.name.startswith(("opsonisation_", "opsonised_", "phagocytosis_", "phagocyte_release_"))]
    assert len(mps_fluxes) >= 14
    subs = {symbol(a.name): a.expr for a in model.assignments}
    for flux in mps_fluxes:
        rate = flux.rate
        for _ in range(6):  # assignments may refer to assignments
            rate = rate.xreplace(subs)
        assert TIME not in rate.free_symbols, flux.name


# ---------------------------------------------------------------------- repeat dosing
def test_a_dose_at_168_h_gives_the_same_blood_curve_as_one_at_0_h(models):
    """Issue 19 repeat-dose invariance: the same bolus given at 168 h instead of 0 h gives the same blood curve
    within 1 %ID at every time 0–72 h after it (before: 20 %ID apart with the Hill-in-time uptake)."""
    model = models(peg(15.0))
    dose = model.parameters["dose"].value
    tau = np.concatenate([[0.0], np.geomspace(1.0 / 60.0, 72.0, 60)])
    first = model.simulate(tau)
    late = model.simulate(np.concatenate([[0.0], 168.0 + tau]), dose=[Bolus(dose, 168.0)])
    diff = np.abs(late["blood"].to_numpy()[1:] - first["blood"].to_numpy())
    assert diff.max() < 1.0
    _total_ok(late)


def test_a_second_dose_leaves_blood_as_fast_as_the_first(models):
    """Issue 19: with doses at 0 and 168 h the second dose's own blood curve (both minus the first alone) has the
    first's half-life within 5 % (before: 6× faster); accelerated blood clearance is not modelled."""
    model = models(peg(15.0))
    dose = model.parameters["dose"].value
    tau = np.concatenate([[0.0], np.geomspace(1.0 / 60.0, 72.0, 80)])
    times = np.concatenate([tau, 168.0 + tau[1:]])
    both = model.simulate(times, dose=[Bolus(dose), Bolus(dose, 168.0)])
    one = model.simulate(times)
    n = len(tau)
    second = (both["blood"].to_numpy() * 2 - one["blood"].to_numpy())[n:]  # %ID of one dose
    import pandas as pd
    first_half = half_life(one.iloc[:n])
    second_half = half_life(pd.DataFrame({"blood": second}, index=tau[1:]))
    assert second_half == pytest.approx(first_half, rel=0.05)
    _total_ok(both)


def test_a_stronger_opsonin_signal_clears_faster(models):
    """Owens & Peppas 2006 (opsonisation drives MPS clearance): tenfold opsonin gain (alpha_opsonin 9 → 90) halves
    blood at 1 h at least (before: unchanged, 33.1 %ID) and it clears far faster at 24 h."""
    model = models(peg(15.0))
    base = model.simulate([0.0, 1.0, 24.0])
    strong = model.simulate([0.0, 1.0, 24.0], params={"alpha_opsonin": 90.0})
    assert strong.loc[1.0, "blood"] < 0.5 * base.loc[1.0, "blood"]
    assert strong.loc[24.0, "blood"] < 0.1 * base.loc[24.0, "blood"]


# ---------------------------------------------------------------------- size and PEG
@pytest.fixture(scope="module")
def size_runs(models):
    return {(coat, d): models(peg(d) if coat == "PEG" else bare(d)).simulate(GRID)
            for coat in ("PEG", "bare") for d in (10.0, 15.0, 50.0, 100.0, 200.0)}


def test_blood_half_life_falls_and_liver_uptake_rises_with_size_for_peg_gold(size_runs):
    """Perrault et al., Nano Lett 2009;9:1909 (half-life falls with core size) and Zhang et al., Biomaterials
    2009;30:1928 (20 nm PEG5000-Au had the lowest RES uptake): PEG-5k Au 10 → 200 nm."""
    sizes = (10.0, 50.0, 100.0, 200.0)
    halves = [half_life(size_runs["PEG", d]) for d in sizes]
    livers = [float(np.interp(24.0, GRID, size_runs["PEG", d]["liver"])) for d in sizes]
    assert all(a > b for a, b in zip(halves, halves[1:])), halves
    assert all(a < b for a, b in zip(livers, livers[1:])), livers
    assert livers[-1] > 2 * livers[0]
    for run in size_runs.values():
        _total_ok(run)


def test_peg_gold_circulates_for_hours_and_longer_than_bare(size_runs):
    """Perrault 2009 / Owens & Peppas 2006: 15 nm PEG-5k Au has a blood half-life of hours (≥ 1 h), > 10× bare;
    at 24 h the bare particle's liver %ID exceeds the PEG particle's wherever PEG circulates (t½ ≥ 1 h), and is
    the same to 0.5 %ID where PEG-5k too leaves the blood within the hour (both end in the MPS; only the
    liver/spleen/lung split differs, and bare aggregates lodge some in the lung)."""
    assert half_life(size_runs["PEG", 15.0]) >= 1.0
    assert half_life(size_runs["PEG", 15.0]) > 10 * half_life(size_runs["bare", 15.0])
    for d in (10.0, 15.0, 50.0, 100.0, 200.0):
        assert half_life(size_runs["bare", d]) < half_life(size_runs["PEG", d])
        bare_liver = np.interp(24.0, GRID, size_runs["bare", d]["liver"])
        peg_liver = np.interp(24.0, GRID, size_runs["PEG", d]["liver"])
        if half_life(size_runs["PEG", d]) >= 1.0:
            assert bare_liver > peg_liver + 10.0, (d, bare_liver, peg_liver)
        else:
            assert bare_liver > peg_liver - 0.5, (d, bare_liver, peg_liver)


def test_cho2010_calibration_anchors_hold(size_runs, models):
    """Cho et al., Toxicol Appl Pharmacol 2010 (datasets/cho2010_peg_au_13nm, _100nm), the calibration of
    signal_50 (and k_cap_ops_liver): 13 nm PEG-5k blood halves from its 30-min value in ~29 h (within 2×), and 100 nm
    blood at 30 min is 0.55 % of 13 nm's (within 2×)."""
    s13 = models(peg(13.0)).simulate(GRID)
    s100 = size_runs["PEG", 100.0]
    assert 14.5 <= half_life(s13, t_ref=0.5) <= 58.0
    ratio = np.interp(0.5, GRID, s100["blood"]) / np.interp(0.5, GRID, s13["blood"])
    assert 0.0055 / 2 <= ratio <= 0.0055 * 2


def test_spleen_liver_split_of_captured_particles_follows_cho2010(models):
    """Cho et al. 2010 (datasets/cho2010_peg_au_100nm), the calibration of k_cap_ops_spleen: 100 nm PEG-5k Au, captured
    almost entirely as opsonised particles, has a spleen/liver concentration ratio of 1.02, 1.22 and 1.94 at 0.5, 24
    and 168 h; the model is within 2× at each time."""
    conc = nanopk.read_dataset("cho2010_peg_au_100nm").table.pivot_table(index="time_h", columns="tissue", values="value")
    model = models(peg(100.0))
    sim = model.simulate([0.5, 24.0, 168.0])
    organ_mass_ratio = model.parameters["f_V_liver"].value / model.parameters["f_V_spleen"].value
    for t in (0.5, 24.0, 168.0):
        observed = conc.loc[t, "spleen"] / conc.loc[t, "liver"]
        predicted = sim.loc[t, "spleen"] / sim.loc[t, "liver"] * organ_mass_ratio
        assert observed / 2 <= predicted <= observed * 2, (t, observed, predicted)


def test_more_peg_shields_more(models):
    """Perrault 2009 (half-life rises with PEG MW) via Owens & Peppas 2006 (PEG blocks opsonisation): 15 nm Au
    with PEG 2k < 5k < 10k in blood at 4 h."""
    blood = [float(models(peg(15.0, mw)).simulate([0.0, 4.0]).loc[4.0, "blood"]) for mw in (2000.0, 5000.0, 10000.0)]
    assert blood[0] < blood[1] < blood[2]


# ---------------------------------------------------------------------- saturation (Ouyang 2020)
@pytest.fixture(scope="module")
def ouyang(models):
    particle = peg(50.0)
    model = models(particle)
    m_p = particle.particle_mass_ug
    return {n: model.simulate(GRID, dose=n * m_p) for n in (1e10, 1e11, 1e13)}


def test_mps_saturates_above_the_ouyang_threshold(ouyang):
    """Ouyang et al., Nat Mater 2020;19:1362: above ~1e12 particles Kupffer-cell uptake is overwhelmed — at 1e13
    particles (50 nm PEG-Au) liver %ID at 24 h is lower, blood and tumour higher than at 1e10."""
    at = {n: {c: float(np.interp(24.0, GRID, s[c])) for c in ("liver", "blood", "tumour")} for n, s in ouyang.items()}
    assert at[1e13]["liver"] < 0.9 * at[1e10]["liver"]
    assert at[1e13]["blood"] > 10 * at[1e10]["blood"]
    assert at[1e13]["tumour"] > 10 * at[1e10]["tumour"]
    for s in ouyang.values():
        _total_ok(s)


def test_below_the_threshold_dose_changes_little(ouyang):
    """Ouyang 2020: the threshold is ~1e12 — between 1e10 and 1e11 particles liver %ID at 24 h changes < 5 %."""
    l10 = np.interp(24.0, GRID, ouyang[1e10]["liver"])
    l11 = np.interp(24.0, GRID, ouyang[1e11]["liver"])
    assert abs(l11 / l10 - 1.0) < 0.05


def test_mps_free_fraction_falls_with_dose(ouyang):
    """The free fraction of liver uptake (observable mps_free_liver) stays ~1 at 1e10 particles and falls below 0.1 at 1e13."""
    assert ouyang[1e10]["mps_free_liver"].min() > 0.99
    assert ouyang[1e13]["mps_free_liver"].min() < 0.1


# ---------------------------------------------------------------------- errors
def _spec(tmp_path, mechanisms: str, particle=True):
    path = tmp_path / "mps_test.toml"
    part = '[particle]\nmaterial = "Au"\ncore_diameter_nm = 15.0\ncoating = "none"\n' if particle else ""
    path.write_text(f'''name = "mps_test"
species = "mouse"
dose_target = "venous_blood"
{part}[dose]
value = 17.0
unit = "ug"
source = "test"
[[mechanisms]]
use = "circulation.whole_body"
{mechanisms}''')
    return path


CORONA = '[[mechanisms]]\nuse = "corona.blood_corona"\n'
MPS = '[[mechanisms]]\nuse = "mps.opsonisation_uptake"\n'


def test_mps_without_a_corona_is_refused(tmp_path):
    """The opsonin signal comes from the corona; without it the spec error says what to add."""
    with pytest.raises(ModelError, match=r"mps.opsonisation_uptake requires 'corona', which no mechanism listed before it "
                                         r"provides; list one of corona.blood_corona, corona.plasma_corona before it"):
        nanopk.load_model(_spec(tmp_path, MPS))


def test_mps_without_a_particle_is_refused(tmp_path):
    """Recognition and saturation need the core size and mass."""
    with pytest.raises(ModelError, match=r"mps.opsonisation_uptake needs a particle"):
        nanopk.load_model(_spec(tmp_path, CORONA + MPS, particle=False))


def test_mps_organ_without_phagocytes_is_refused(tmp_path):
    """Uptake into an organ with no phagocyte compartment is named, with the organs that have one."""
    with pytest.raises(ModelError, match=r"organ\(s\) brain have no phagocytes"):
        nanopk.load_model(_spec(tmp_path, CORONA + MPS + 'organs = ["liver", "brain"]\n'))


def test_mps_tumour_exchange_without_a_tumour_is_refused(tmp_path):
    """tumour_exchange needs an EPR tumour listed first."""
    with pytest.raises(ModelError, match=r"tumour_exchange = 'PS_tumour' needs an EPR tumour"):
        nanopk.load_model(_spec(tmp_path, CORONA + MPS + 'tumour_exchange = "PS_tumour"\n'))


def test_minimal_mps_model_keeps_mass_balance(tmp_path):
    """circulation + corona + mps alone: total = 100 %ID to 1e-6 over a week; bare 15 nm Au ends in the MPS."""
    model = nanopk.load_model(_spec(tmp_path, CORONA + MPS))
    sim = model.simulate([0.0, 0.5, 4.0, 24.0, 168.0])
    _total_ok(sim)
    assert sim["blood"].iloc[-1] < 1.0 and sim["liver"].iloc[-1] > 50.0  # bare 15 nm Au ends in the MPS
