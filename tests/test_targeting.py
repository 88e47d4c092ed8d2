"""Active targeting (receptor binding in the tumour) and accelerated blood clearance of repeated PEG doses.

Sources: Schmidt & Wittrup, Mol Cancer Ther 2009;8:2861 (targeting framework: for particles
of nanoparticle size targeting does not significantly increase tumour uptake); Wittrup et
al., Methods Enzymol 2012;503:255 (affinity "negligible for nanoparticles"); Cheng et al.,
ACS Nano 2020 (DE24 medians 0.98 active vs 0.71 %ID passive, recomputed from the Nano-Tumor
Database, SCIENCE.md §2); Sykes et al., ACS Nano 2014;8:5696 (~2× at 60 nm, no significant
difference at 15, 30 and 100 nm; SCIENCE.md §8); Dams et al., J Pharmacol Exp Ther
2000;292:1071 and Ishida et al., J Control Release 2006;112:15 (a second PEG dose days
after the first is cleared rapidly).
"""
import numpy as np
import pytest

import nanopk
from nanopk import SpecError
from nanopk.dosing import Bolus
from nanopk.mechanisms import targeting

PEG15 = dict(material="Au", core_diameter_nm=15.0, coating="PEG", coating_mw_da=5000.0)
#: Cheng 2020 DE24 medians: active 0.98, passive 0.71 %ID → ratio 1.38; Sykes 2014: up to ~2×.
CHENG_RATIO = 0.98 / 0.71


def _load(**fields):
    return nanopk.load_model("mouse_tumour_full", particle=nanopk.Particle(**fields))


@pytest.fixture(scope="module")
def pair():
    passive = _load(**PEG15)
    active = _load(**PEG15, targeting="active")
    times = [0.0, 1.0, 24.0, 168.0]
    return passive, active, passive.simulate(times), active.simulate(times)


# ---------------------------------------------------------------------- active targeting
def test_active_vs_passive_de24_ratio_is_in_the_meta_analysis_range(pair):
    """DE24 active / passive for 15 nm PEG-5k Au within 1.5× of Cheng 2020's median ratio 1.38 and ≤ 2 (Sykes 2014)."""
    _, _, p, a = pair
    ratio = float(a.loc[24.0, "tumour"] / p.loc[24.0, "tumour"])
    assert CHENG_RATIO / 1.5 <= ratio <= 2.0, ratio
    assert ratio > 1.0


def test_a_passive_particle_binds_nothing(pair, tmp_path):
    """For a passive particle the targeting part adds no state or flux: the model equals the spec without the
    mechanism (same states and fluxes, identical simulation), and the binding parameters move nothing."""
    passive, _, p, _ = pair
    assert passive.parameters["targeting_active"].value == 0.0
    assert "tumour_bound" not in passive.state_names
    text = nanopk.spec.model_path("mouse_tumour_full").read_text()
    assert '\n[[mechanisms]]\nuse = "targeting.receptor_binding"\n' in text
    path = tmp_path / "mouse_tumour_full.toml"
    path.write_text(text.replace('\n[[mechanisms]]\nuse = "targeting.receptor_binding"\n', "\n"))
    without = nanopk.load_model(path, particle=nanopk.Particle(**PEG15))
    assert without.state_names == passive.state_names and len(without.fluxes) == len(passive.fluxes)
    other = passive.simulate(list(p.index), params={"sigma_ligand": 0.5, "KD_ligand": 1e-10, "k_int_tumour": 5.0})
    cols = [c for c in p.columns if c in ("blood", "liver", "tumour", "urine", "total")]
    assert np.array_equal(other[cols].to_numpy(), p[cols].to_numpy())
    assert np.array_equal(without.simulate(list(p.index))[cols].to_numpy(), p[cols].to_numpy())


def test_active_particle_adds_the_bound_state(pair):
    """An active particle adds tumour_bound (counted in the tumour observable) and differs only in targeting_active."""
    passive, active, _, _ = pair
    assert set(active.state_names) - set(passive.state_names) == {"tumour_bound"}
    changed = {n for n, q in active.parameters.items() if q.value != passive.parameters[n].value}
    assert changed == {"targeting_active"}


def test_affinity_hardly_matters_for_a_multivalent_particle(pair):
    """Wittrup et al. 2012: affinity is negligible for nanoparticles — DE24 within 1 % for K_D 25 nM → 0.25 nM."""
    _, active, _, a = pair
    tight = active.simulate([24.0], params={"KD_ligand": 2.5e-10})
    assert float(tight.loc[24.0, "tumour"]) == pytest.approx(float(a.loc[24.0, "tumour"]), rel=0.01)


def test_receptor_saturation_removes_the_advantage_at_high_dose():
    """Receptors are finite (Berk et al. 1997: 0.56 nmol/g): at 1000× the dose active ≈ passive (within 5 %)."""
    passive, active = _load(**PEG15), _load(**PEG15, targeting="active")
    dose = 1000.0 * passive.parameters["dose"].value
    p = float(passive.simulate([24.0], dose=dose).loc[24.0, "tumour"])
    a = float(active.simulate([24.0], dose=dose).loc[24.0, "tumour"])
    assert a == pytest.approx(p, rel=0.05)


def test_mass_balance_with_targeting(pair):
    """total = 100 %ID to 1e-6 for the active particle (binding moves mass between states)."""
    _, _, _, a = pair
    assert np.abs(a["total"] - 100.0).max() < 1e-6


def test_units_of_the_active_and_abc_equations_check(pair, tmp_path):
    """Every flux, rule and assignment of the active-targeting and ABC models is dimensionally consistent (pint);
    the recorded unit signatures cover only the bundled models' default (passive, no ABC) particle."""
    from nanopk.unitcheck import check_units

    _, active, _, _ = pair
    assert check_units(active) == []
    assert check_units(nanopk.load_model(_abc_spec(tmp_path), particle=nanopk.Particle(**PEG15))) == []


def test_receptor_density_conversion_matches_pint():
    """nmol/g × kg/L → M is 1e-6 (the literal the model uses), checked with pint."""
    from nanopk.units import Q_

    assert Q_(1.0, "nmol/g * kg/L").to("M").magnitude == pytest.approx(targeting.NMOL_PER_G_TO_M, rel=1e-12)


def test_targeting_without_a_tumour_is_refused(tmp_path):
    """receptor_binding needs an EPR tumour listed before it; the error says which to add."""
    path = tmp_path / "no_tumour.toml"
    path.write_text('name = "no_tumour"\nspecies = "mouse"\ndose_target = "venous_blood"\n'
                    '[[mechanisms]]\nuse = "circulation.whole_body"\n[[mechanisms]]\nuse = "targeting.receptor_binding"\n')
    with pytest.raises(SpecError, match=r"targeting\.receptor_binding requires 'epr', which no mechanism listed before "
                                        r"it provides; list one of epr\.lin_tumour, epr\.two_pore_tumour before it"):
        nanopk.load_model(path)


def test_unread_particle_fields_are_named_in_the_model_notes():
    """zeta_mV and shape change nothing in mouse_tumour_full: the model says so (one record with nanopk check's M3)."""
    model = _load(**PEG15, zeta_mV=-30.0, shape="rod", targeting="active")
    assert "targeting" in model.metadata["particle_fields_read"]
    assert "zeta_mV" not in model.metadata["particle_fields_read"] and "shape" not in model.metadata["particle_fields_read"]
    notes = [n for n in model.notes if n.startswith("particle:")]
    assert notes == ["particle: model 'mouse_tumour_full' ignores shape='rod', zeta_mV=-30.0: none of its mechanisms "
                     "reads them, so they change nothing"]
    assert not [n for n in _load(**PEG15).notes if n.startswith("particle:")]


# ---------------------------------------------------------------------- accelerated blood clearance
def _abc_spec(tmp_path):
    text = nanopk.spec.model_path("mouse_tumour_full").read_text()
    path = tmp_path / "mouse_tumour_full_abc.toml"
    path.write_text(text + '\n[[mechanisms]]\nuse = "immunity.accelerated_blood_clearance"\n')
    return path


TAU = np.array([0.0, 5.0 / 60.0, 1.0, 4.0, 24.0])


@pytest.fixture(scope="module")
def abc_runs(tmp_path_factory):
    path = _abc_spec(tmp_path_factory.mktemp("abc"))
    p = nanopk.Particle(**PEG15)
    off = nanopk.load_model("mouse_tumour_full", particle=p)
    on = nanopk.load_model(path, particle=p)
    dose = off.parameters["dose"].value
    times = sorted(set(TAU) | set(168.0 + TAU))
    regimen = [Bolus(dose), Bolus(dose, 168.0)]
    return on, off, on.simulate(times, dose=regimen), off.simulate(times, dose=regimen)


def test_abc_clears_a_second_peg_dose_faster(abc_runs):
    """Dams 2000, Ishida 2006: a PEG dose 7 days after the first leaves the blood rapidly — with ABC on, blood 4 h after
    the second dose is < 1/4 of the model without it, and the liver holds more."""
    _, _, on, off = abc_runs
    assert float(on.loc[172.0, "blood"]) < 0.25 * float(off.loc[172.0, "blood"])
    assert float(on.loc[172.0, "liver"]) > float(off.loc[172.0, "liver"])


def test_abc_leaves_the_first_hours_of_the_first_dose_alone(abc_runs):
    """The anti-PEG IgM titre takes days to rise, so blood over the first 4 h of the first dose is unchanged (1 %)."""
    _, _, on, off = abc_runs
    early = [0.0, 5.0 / 60.0, 1.0, 4.0]
    np.testing.assert_allclose(on.loc[early, "blood"], off.loc[early, "blood"], rtol=0.01)


def test_abc_off_for_a_non_peg_particle_is_identical(tmp_path):
    """The antibody is anti-PEG: for a bare particle the mechanism changes no observable (exactly)."""
    bare = nanopk.Particle(material="Au", core_diameter_nm=15.0, coating="none")
    on = nanopk.load_model(_abc_spec(tmp_path), particle=bare)
    off = nanopk.load_model("mouse_tumour_full", particle=bare)
    dose = off.parameters["dose"].value
    regimen = [Bolus(dose), Bolus(dose, 168.0)]
    times = [0.0, 1.0, 24.0, 169.0, 192.0]
    a, b = on.simulate(times, dose=regimen), off.simulate(times, dose=regimen)
    assert on.parameters["ABC_PEG"].value == 0.0
    for col in ("blood", "liver", "tumour", "urine"):
        np.testing.assert_allclose(a[col], b[col], rtol=1e-6, atol=1e-9)


def test_mass_balance_with_abc(abc_runs):
    """total = 100 %ID to 1e-6 with two doses and ABC (the uptake flux moves mass between states)."""
    _, _, on, _ = abc_runs
    assert np.abs(on["total"] - 100.0).max() < 1e-6
