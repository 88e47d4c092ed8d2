"""Species physiology tables: published values, internal consistency, whole-body models."""
import numpy as np
import pytest

import nanopk
from nanopk import ModelError
from nanopk.physiology import SPECIES, get_physiology, organ_mass_g


@pytest.mark.parametrize("species", ["mouse", "rat", "human"])
def test_systemic_blood_flows_sum_to_at_most_cardiac_output(species):
    """Σ f_Q over systemic organs ≤ 1 (the lung takes all of it, f_Q = 1)."""
    phys = get_physiology(species)
    flows = [o.blood_flow_fraction for o in phys.organs.values() if o.blood_flow_fraction is not None and o.name != "lung"]
    assert 0 < sum(flows) <= 1.0
    assert phys.organ("lung").blood_flow_fraction == 1.0


@pytest.mark.parametrize("species", ["mouse", "rat", "human"])
def test_organ_masses_and_plasma_leave_a_positive_rest_of_body(species):
    """Σ organ mass fractions + plasma < 1, every fraction in (0, 1), capillary blood in (0, 1)."""
    phys = get_physiology(species)
    total = sum(o.mass_fraction for o in phys.organs.values()) + phys.plasma_fraction
    assert total < 1.0
    for organ in phys.organs.values():
        assert 0 < organ.mass_fraction < 1
        if organ.capillary_blood_fraction is not None:
            assert 0 < organ.capillary_blood_fraction < 1
        assert organ.source  # every organ row cites where its numbers come from
    assert 0 < phys.plasma_fraction < phys.blood_fraction < 0.1


def test_rat_values_from_brown_1997():
    """Rat organ masses (% BW) liver 3.66, kidneys 0.73, lungs 0.50, brain 0.57, spleen 0.20;
    kidney flow 14.1 % and liver capillary blood 0.21 — Brown et al., Toxicol Ind Health
    1997;13:407, the same numbers as the NTUA rat table (TiO2_PBPK_IV 'Rat physiological
    parameters.xlsx'); QCC 14.0 L/h/kg^0.75 (Brown 1997, as in Lin-lab rat models)."""
    rat = get_physiology("rat")
    assert rat.organ("liver").mass_fraction == pytest.approx(0.0366)
    assert rat.organ("kidney").mass_fraction == pytest.approx(0.0073)
    assert rat.organ("lung").mass_fraction == pytest.approx(0.0050)
    assert rat.organ("brain").mass_fraction == pytest.approx(0.0057)
    assert rat.organ("spleen").mass_fraction == pytest.approx(0.0020)
    assert rat.organ("kidney").blood_flow_fraction == pytest.approx(0.141)
    assert rat.organ("liver").capillary_blood_fraction == pytest.approx(0.21)
    assert rat.cardiac_output_L_h_kg075 == pytest.approx(14.0)
    assert rat.body_weight_kg == pytest.approx(0.25)
    # 3.66 % of a 250 g rat
    assert organ_mass_g("rat", "liver") == pytest.approx(9.15)


def test_human_values_from_brown_1997():
    """Human (70 kg): liver 2.57 % BW, skin 3.71 % BW, blood 7.9 % BW; kidney flow 17.5 %,
    hepatic artery 4.6 % of cardiac output — Brown et al. 1997 (values as also tabulated
    from Brown 1997 in JPET PBPK models)."""
    human = get_physiology("human")
    assert human.organ("liver").mass_fraction == pytest.approx(0.0257)
    assert human.organ("skin").mass_fraction == pytest.approx(0.0371)
    assert human.blood_fraction == pytest.approx(0.079)
    assert human.organ("kidney").blood_flow_fraction == pytest.approx(0.175)
    assert human.organ("liver").blood_flow_fraction == pytest.approx(0.046)
    assert organ_mass_g("human", "liver") == pytest.approx(1799.0)
    # QCC from a resting cardiac output of 6.5 L/min at 70 kg (Williams & Leggett 1989)
    assert human.cardiac_output_L_h_kg075 * 70.0**0.75 == pytest.approx(6.5 * 60, rel=0.01)


def test_mouse_table_is_the_lin_chou_mouse():
    """Mouse liver 5.5 % BW, hepatic artery 2 % of cardiac output, capillary blood 0.31,
    QCC 16.5 (Chou et al. 2023 model code, from Brown 1997 Tables 21/23/30)."""
    mouse = get_physiology("mouse")
    assert (mouse.organ("liver").mass_fraction, mouse.organ("liver").blood_flow_fraction,
            mouse.organ("liver").capillary_blood_fraction) == (0.055, 0.02, 0.31)
    assert mouse.cardiac_output_L_h_kg075 == 16.5


def test_unknown_species_lists_the_tables():
    """A typo names the species that exist."""
    with pytest.raises(ModelError, match=r"no physiology table for species 'rta'.*did you mean 'rat'.*mouse, rat, human"):
        get_physiology("rta")
    assert set(SPECIES) == {"mouse", "rat", "human"}


@pytest.mark.parametrize("species", ["rat", "human"])
def test_whole_body_model_runs_and_conserves_mass(species, tmp_path):
    """The Lin-lab structure builds on each table: 100 %ID at all times, no negative state,
    blood falls over a week."""
    path = tmp_path / f"{species}_wb.toml"
    spec = '''name = "{species}_wb"
species = "{species}"
dose_target = "venous_blood"
[dose]
value = 1.0
unit = "mg/kg"
source = "nominal test dose"
[[mechanisms]]
use = "circulation.whole_body"
[[mechanisms]]
use = "clearance.hill_phagocytic_uptake"
[[mechanisms]]
use = "clearance.urinary_excretion"
[[mechanisms]]
use = "clearance.biliary_excretion"
'''
    # Mechanism defaults are per species (a rat or human has none of the mouse's Hill
    # uptake): give the mouse values scaled allometrically, as a modeller would.
    (tmp_path / "mouse_wb.toml").write_text(spec.format(species="mouse"))
    scaled = nanopk.scale(nanopk.load_model(tmp_path / "mouse_wb.toml"), species)
    path.write_text(spec.format(species=species) + "".join(
        f'[parameters.{n}]\nvalue = {v!r}\nsource = "mouse value scaled by nanopk.scale"\n'
        for n, v in scaled.to_dict(exclude_physiology=True).items()))
    model = nanopk.load_model(path)
    sim = model.simulate(np.linspace(0.0, 168.0, 30), states=True)
    np.testing.assert_allclose(sim["total"], 100.0, atol=1e-6)
    assert sim[[c for c in sim if c.startswith("state:")]].to_numpy().min() >= -1e-9 * sim.attrs["dose_ug"]
    assert sim["blood"].iloc[-1] < sim["blood"].iloc[1]
