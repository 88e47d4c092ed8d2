"""Clearance additions: renal sieving/filtration and capacity-limited phagocytic uptake."""
import numpy as np
import pytest
import sympy as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import nanopk
from nanopk import Assignment, Model, ModelError, Parameter, Part, State
from nanopk.mechanisms import clearance
from nanopk.mechanisms.base import BuildContext
from nanopk.mechanisms.circulation import whole_body
from nanopk.parts import symbol

RTOL, ATOL = 1e-6, 1e-9
TIMES = np.linspace(0.25, 48.0, 40)


def tolerance_units(y, exact, dose):
    """RMS error in units of the requested tolerance, as scipy's test_ivp measures it."""
    return np.sqrt(np.mean((np.abs(y - exact) / (ATOL * dose + RTOL * np.abs(exact))) ** 2))


# -- renal sieving (Choi et al., Nat Biotechnol 2007;25:1165, doi:10.1038/nbt1340) --------
def test_renal_sieving_falls_through_one_half_near_5_5_nm():
    """θ crosses 0.5 within 5.5 ± 0.3 nm: Choi 2007's renal-clearance threshold."""
    assert clearance.renal_sieving(5.2) > 0.5 > clearance.renal_sieving(5.8)
    assert clearance.renal_sieving(5.5) == pytest.approx(0.5, abs=1e-12)


def test_renal_sieving_passes_small_and_retains_large_particles():
    """θ(3 nm) > 0.9 and θ(10 nm) < 0.05; Choi 2007: 4.36 nm dots were renally cleared and
    8.65 nm dots were not, so θ(4.36) > 0.5 > 0.05 > θ(8.65)."""
    assert clearance.renal_sieving(3.0) > 0.9
    assert clearance.renal_sieving(10.0) < 0.05
    assert clearance.renal_sieving(4.36) > 0.5
    assert clearance.renal_sieving(8.65) < 0.05
    d = np.linspace(0.0, 500.0, 2001)
    theta = clearance.renal_sieving(d)
    assert np.all(np.diff(theta) <= 0) and theta[0] <= 1.0 and theta[-1] >= 0.0


def test_renal_sieving_symbolic_form_matches_numpy():
    """The tanh form the model compiles equals the NumPy function (1e-14)."""
    d = sp.Symbol("d", real=True)
    expr = clearance.renal_sieving_expr(d, 5.5, 0.7)
    for x in (0.5, 3.0, 5.5, 7.0, 20.0, 1000.0):
        assert float(expr.subs(d, x)) == pytest.approx(clearance.renal_sieving(x), rel=1e-14, abs=1e-300)


@pytest.mark.parametrize("bad", [-1.0, float("inf")])
def test_renal_sieving_rejects_an_invalid_diameter(bad):
    """A diameter must be finite and non-negative."""
    with pytest.raises(ValueError, match=r"`d_h_nm` must be finite and ≥ 0"):
        clearance.renal_sieving(bad)


def _spec(tmp_path, mechanisms: str, name="renal_test"):
    path = tmp_path / f"{name}.toml"
    path.write_text(f'''name = "{name}"
species = "mouse"
dose_target = "venous_blood"
[dose]
value = 17.0
unit = "ug"
source = "0.85 mg/kg × 20 g (Cho et al. 2010)"
[[mechanisms]]
use = "circulation.whole_body"
[[mechanisms]]
use = "clearance.hill_phagocytic_uptake"
[[mechanisms]]
use = "clearance.biliary_excretion"
{mechanisms}
''')
    return path


def test_renal_filtration_and_urinary_excretion_together_fail_validation(tmp_path):
    """Both declare the `urine` sink; the model reports the duplicate."""
    path = _spec(tmp_path, '[[mechanisms]]\nuse = "clearance.urinary_excretion"\n[[mechanisms]]\nuse = "clearance.renal_filtration"\n')
    with pytest.raises(ModelError, match=r"duplicate name 'urine' declared 2 times"):
        nanopk.load_model(path)


def test_renal_filtration_rate_is_gfr_times_sieving_times_concentration(tmp_path):
    """d(urine)/dt = f_renal·GFRC·BW^0.75·θ(d_h)·A_kidney,cap/V_kidney,cap at a test state, where
    GFRC is the mouse GFR 0.278 mL/min at 28 g scaled with BW^0.75 (SCIENCE.md §1) and
    f_renal the calibrated fraction of GFR (clearance.RENAL_GFR_FRACTION)."""
    model = nanopk.load_model(_spec(tmp_path, '[[mechanisms]]\nuse = "clearance.renal_filtration"\n'),
                              particle=nanopk.Particle(material="CdSe", core_diameter_nm=3.0, hydrodynamic_diameter_nm=4.36))
    v = {n: p.value for n, p in model.parameters.items()}
    assert v["GFRC"] * 0.028**0.75 == pytest.approx(0.278 * 60 / 1000, rel=1e-12)
    names = model.state_names
    y = np.zeros(len(names))
    y[names.index("kidney_capillary")] = 2.5
    f = model.compile("reference").rhs(0.0, y, model.parameter_vector())
    v_cap = v["f_B_kidney"] * v["f_V_kidney"] * v["BW"] / v["rho_tissue"]
    assert v["f_renal"] == clearance.RENAL_GFR_FRACTION
    expected = v["f_renal"] * v["GFRC"] * v["BW"] ** 0.75 * clearance.renal_sieving(4.36) * 2.5 / v_cap
    assert f[names.index("urine")] == pytest.approx(expected, rel=1e-12)


def test_renal_filtration_clears_small_particles_and_not_large_ones(tmp_path):
    """A 4 nm particle reaches the urine; a 20 nm particle (corona-sized, Choi 2007) does not."""
    path = _spec(tmp_path, '[[mechanisms]]\nuse = "clearance.renal_filtration"\n')
    model = nanopk.load_model(path)
    small = model.simulate([4.0, 24.0], params={"d_h_particle": 4.0})["urine"].to_numpy()
    large = model.simulate([4.0, 24.0], params={"d_h_particle": 20.0})["urine"].to_numpy()
    assert small[-1] > 1.0  # %ID
    assert large[-1] < 1e-3 * small[-1]


def test_renal_filtration_follows_a_diameter_assignment(tmp_path):
    """With diameter_assignment the sieving reads that assignment (a corona's d_h)."""
    ctx = BuildContext(species="mouse")
    corona = Part("fake_corona", parameters=(Parameter("d_corona_test", 4.0, "nm", "test value"),),
                  assignments=(Assignment("d_h", symbol("d_corona_test"), "nm", "stand-in for a corona"),))
    parts = [whole_body(ctx), corona, clearance.renal_filtration(ctx, diameter_assignment="d_h"),
             Part("dosing", parameters=(Parameter("dose", 17.0, "ug", "test dose"),))]
    model = Model("renal_assignment", parts, "venous_blood").validate()
    assert "d_h_particle" not in model.parameters
    bare = model.simulate([24.0])["urine"].iloc[0]
    coated = model.simulate([24.0], params={"d_corona_test": 4.0 + 2 * 10.0})["urine"].iloc[0]
    assert bare > 1.0 and coated < 1e-3 * bare


# -- capacity-limited phagocytic uptake (Chou et al., Part Fibre Toxicol 2022) -------------
def _tiny(kmax=0.3, krelease=0.0, capacity_ug_per_g=1e7, volume_l=1.0, opsonin=None):
    """x_tissue → x_phagocytes only: a one-organ model built directly from parts."""
    ctx = BuildContext(species="mouse")
    base = Part(
        "tiny_organ",
        states=(State("x_tissue", organ="x"), State("x_phagocytes", organ="x")),
        parameters=(Parameter("V_x", volume_l, "L", "test organ volume"),
                    Parameter("rho_tissue", 1.0, "kg/L", "tissue density convention")),
    )
    parts = [base]
    if opsonin is not None:
        parts.append(Part("opsonins", parameters=(Parameter("f_ops_test", opsonin, "dimensionless", "test factor"),),
                          assignments=(Assignment("opsonin_factor", symbol("f_ops_test"), "dimensionless", "test"),)))
    parts.append(clearance.capacity_limited_phagocytic_uptake(ctx, organs=("x",),
                                                              opsonin_factor="opsonin_factor" if opsonin is not None else None))
    model = Model("tiny_capacity", parts, "x_tissue").validate()
    return model.with_parameters(Kmax_x=kmax, Krelease_x=krelease, Acap_x=capacity_ug_per_g)


@pytest.mark.parametrize("backend", ["cvode", "reference"])
def test_capacity_limited_uptake_with_huge_capacity_is_first_order(backend):
    """Capacity ≫ dose: A_tissue(t) = D·e^(−Kmax t) (error < 5 tolerance units)."""
    k, dose = 0.3, 10.0
    model = _tiny(kmax=k)
    sim = model.simulate(TIMES, dose=dose, backend=backend, rtol=RTOL, atol=ATOL, states=True)
    exact = dose * np.exp(-k * TIMES)
    assert tolerance_units(sim["state:x_tissue"].to_numpy(), exact, dose) < 5
    assert tolerance_units(sim["state:x_phagocytes"].to_numpy(), dose - exact, dose) < 5


def _flux_rates(model, **state_values):
    """Each flux's rate (µg/h) at the given states and the default parameters."""
    subs = {symbol(n): p.value for n, p in model.parameters.items()}
    subs.update({symbol(s): state_values.get(s, 0.0) for s in model.state_names})
    assign = model.assignment_substitutions()
    return {f.name: float(sp.sympify(f.rate).xreplace(assign).xreplace(subs)) for f in model.fluxes}


def test_uptake_is_never_negative_and_stops_at_capacity():
    """Every flux is ≥ 0 on either side of capacity.  Below it, uptake = Kmax·(1 − A/cap)·A_src;
    at or above it uptake is 0 — the published form Kmax·(1 − A/cap) would turn negative —
    and only release (and the overflow that returns a numerical overshoot) act."""
    model = _tiny(kmax=2.0, krelease=0.1, capacity_ug_per_g=1.0, volume_l=1e-3)  # capacity 1 µg
    below = _flux_rates(model, x_tissue=5.0, x_phagocytes=0.25)
    assert below["phagocytosis_x"] == pytest.approx(2.0 * 0.75 * 5.0, rel=1e-14)
    assert below["phagocyte_overflow_x"] == 0.0
    above = _flux_rates(model, x_tissue=5.0, x_phagocytes=3.0)  # three times capacity
    assert above["phagocytosis_x"] == 0.0
    assert above["phagocyte_release_x"] == pytest.approx(0.1 * 3.0, rel=1e-14)
    assert above["phagocyte_overflow_x"] == pytest.approx(2.0 * (3.0 - 1.0) * 5.0, rel=1e-14)
    for a_phag in np.linspace(0.0, 4.0, 41):
        rates = _flux_rates(model, x_tissue=5.0, x_phagocytes=float(a_phag))
        assert min(rates.values()) >= 0.0


def test_opsonin_factor_multiplies_capacity_limited_uptake():
    """J_up = Kmax·(1 − A/cap)·f_opsonin·A_source."""
    model = _tiny(kmax=2.0, capacity_ug_per_g=1.0, volume_l=1e-3, opsonin=3.0)
    names = model.state_names
    y = np.zeros(len(names))
    y[names.index("x_tissue")], y[names.index("x_phagocytes")] = 5.0, 0.5
    f = model.compile("reference").rhs(0.0, y, model.parameter_vector())
    assert f[names.index("x_phagocytes")] == pytest.approx(2.0 * 0.5 * 3.0 * 5.0, rel=1e-14)


_CAPACITY_MODEL = None


@settings(max_examples=15, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(dose=st.floats(0.01, 1e4))
def test_phagocytes_never_exceed_their_capacity(dose):
    """For any dose the phagocytes stay at or below A_cap·m_organ (1 µg here), up to the
    solver's error (5 tolerance units, atol·dose + rtol·capacity), over 7 days; with a dose
    well above capacity and no release they fill to it."""
    global _CAPACITY_MODEL
    if _CAPACITY_MODEL is None:
        _CAPACITY_MODEL = _tiny(kmax=2.0, krelease=0.0, capacity_ug_per_g=1.0, volume_l=1e-3)
    sim = _CAPACITY_MODEL.simulate(np.linspace(0.0, 168.0, 169), dose=dose, rtol=RTOL, atol=ATOL, states=True)
    phag = sim["state:x_phagocytes"].to_numpy()
    capacity = 1.0
    assert (phag.max() - capacity) / (ATOL * dose + RTOL * capacity) <= 5.0
    np.testing.assert_allclose(sim["total"], 100.0, rtol=1e-9)
    if dose >= 10.0:
        assert phag[-1] >= 0.999 * capacity


def test_rat_pbpk_reproduces_hirn_2011_liver_at_24_h():
    """18 nm citrate Au IV in rats: liver 94.3 ± 0.84 %ID, urine 0.004 %ID at 24 h
    (Hirn et al., Eur J Pharm Biopharm 2011;77:407, as tabulated in UFPBPK/Nano-iPBPK xdata.csv).
    rat_pbpk carries the Chou 2022 IV-route parameters; liver within 3 %ID, urine < 0.05 %ID."""
    sim = nanopk.load_model("rat_pbpk").simulate([1.0, 24.0], states=True)
    assert sim["liver"].iloc[-1] == pytest.approx(94.3, abs=3.0)
    assert sim["urine"].iloc[-1] < 0.05
    np.testing.assert_allclose(sim["total"], 100.0, atol=1e-6)
