"""Per-species parameter sets and the human model: no silent mouse value in a rat or human model."""
from __future__ import annotations

import math

import numpy as np
import pytest

import nanopk
from nanopk import physiology
from nanopk.errors import ModelError
from nanopk.mechanisms._species import SPECIES_DEFAULTS, species_param



def _spec_for(species: str, tmp_path, extra: str = "", excretion_option: str = ""):
    text = f'''name = "probe"
species = "{species}"
dose_target = "venous_blood"
[[mechanisms]]
use = "circulation.whole_body"
organs = ["lung", "liver", "spleen", "kidney", "rest"]
phagocyte_organs = ["liver"]
[[mechanisms]]
use = "clearance.hill_phagocytic_uptake"
organs = ["liver"]
[[mechanisms]]
use = "clearance.urinary_excretion"
{excretion_option}
{extra}
'''
    path = tmp_path / f"probe_{species}.toml"
    path.write_text(text)
    return path


def test_a_species_without_a_default_is_a_validation_problem_naming_it(tmp_path):
    """A human model using mouse-only Hill uptake is invalid; the problem names the parameter, the species and who has a value."""
    with pytest.raises(ModelError, match=r"model 'probe' is invalid \(15 problem\(s\)\)") as err:
        nanopk.load_model(_spec_for("human", tmp_path))
    problems = err.value.problems
    assert ("no default for species 'human' for parameter 'Kmax_liver' of clearance.hill_phagocytic_uptake "
            "(species with a value: mouse); give it in the spec's [parameters] with its source") in problems[10]
    assert any("'P_liver' of circulation.whole_body (species with a value: mouse, rat)" in p for p in problems)
    assert any("'KurineC' of clearance.urinary_excretion (species with a value: mouse, rat)" in p for p in problems)
    assert all("nanopk.scale(<that species' model>, species='human')" in p for p in problems)


def test_spec_values_with_sources_clear_the_problems(tmp_path):
    """Giving every missing value in [parameters] (with a source) makes the human model valid."""
    names = ([f"{k}_{o}" for o in ("lung", "liver", "spleen", "kidney", "rest") for k in ("P", "PAC")]
             + [f"{k}_liver" for k in ("Kmax", "K50", "n", "Krelease")] + ["KurineC"])
    extra = "\n".join(f'[parameters.{n}]\nvalue = 0.5\nsource = "test value"' for n in names)
    model = nanopk.load_model(_spec_for("human", tmp_path, extra))
    assert model.parameters["Kmax_liver"].value == 0.5
    assert model.parameters["BW"].value == 70.0


def test_rat_gets_rat_values_not_mouse_ones(tmp_path):
    """A rat spec takes Chou 2022's rat values (MrgCode.R: P 0.15, PAC 0.001, KurineC 0.0012) where the mouse ones differ."""
    with pytest.raises(ModelError) as err:  # Hill uptake has no rat value
        nanopk.load_model(_spec_for("rat", tmp_path))
    assert [p for p in err.value.problems if "no default for species 'rat'" in p] == [
        f"no default for species 'rat' for parameter '{k}_liver' of clearance.hill_phagocytic_uptake (species with a value: mouse); "
        "give it in the spec's [parameters] with its source (for instance scaled from a species that has one: "
        "nanopk.scale(<that species' model>, species='rat'))" for k in ("Kmax", "K50", "n", "Krelease")]
    rat = nanopk.load_model("rat_pbpk").parameters
    # Chou et al., Part Fibre Toxicol 2022;19:47, MrgCode.R: PL 0.08, PK 0.15, PALC 0.001 (mouse PAC_kidney is 0.01).
    assert rat["P_liver"].value == 0.08 and "MrgCode.R" in rat["P_liver"].source
    assert rat["PAC_lung"].value == 0.001 and "MrgCode.R" in rat["PAC_lung"].source
    assert rat["KurineC"].value == 1.48e-5  # the spec's own value (server.R IV route) wins over the default


def test_a_mechanism_option_is_the_modellers_value(tmp_path):
    """`clearance_constant = ...` given in the spec is kept for any species (it is not a default)."""
    extra = "\n".join(f'[parameters.{k}_liver]\nvalue = 0.1\nsource = "test value"' for k in ("Kmax", "K50", "n", "Krelease"))
    model = nanopk.load_model(_spec_for("rat", tmp_path, extra, excretion_option="clearance_constant = 2e-3"))
    assert model.parameters["KurineC"].value == 2e-3


def test_mouse_models_keep_their_published_defaults():
    """Mouse models are unchanged: Hill liver Kmax 0.3 /h, KurineC 3e-6 (Chou 2023), PAC_kidney 0.01 (Lin 2016)."""
    p = nanopk.load_model("mouse_pbpk").parameters
    assert (p["Kmax_liver"].value, p["KurineC"].value, p["PAC_kidney"].value) == (0.3, 3e-6, 0.01)
    assert "Chou et al., J Control Release 2023" in p["Kmax_liver"].source


def test_species_param_keys_a_value_by_species():
    """species_param returns the species' (value, source), else a NaN placeholder whose source is the problem."""
    values = {"mouse": (1.0, "source M"), "rat": (2.0, "source R")}
    assert species_param("rat", "k", values, "1/h", "test").value == 2.0
    missing = species_param("human", "k", values, "1/h", "test")
    assert math.isnan(missing.value)
    assert missing.source.startswith("no default for species 'human' for parameter 'k' of test (species with a value: mouse, rat)")


def test_every_species_table_entry_names_known_species():
    """Every species key of SPECIES_DEFAULTS is a species with a physiology table."""
    for ref, entries in SPECIES_DEFAULTS.items():
        for _, by_species, _ in entries:
            assert set(by_species) <= set(physiology.SPECIES), ref


def test_human_physiology_reference_adult():
    """70 kg adult (Brown 1997): cardiac output 6.5 L/min (Williams & Leggett 1989); volumes in L and flows in L/h with sources."""
    rows = {r["organ"]: r for r in physiology.volume_sources("human")}
    assert rows["lung"]["blood_flow_L_h"] / 60 == pytest.approx(6.5, rel=0.005)
    assert rows["liver"]["volume_L"] == pytest.approx(0.0257 * 70, rel=1e-12)
    assert rows["kidney"]["blood_flow_L_h"] == pytest.approx(0.175 * 16.1 * 70**0.75, rel=1e-12)
    assert all(r["source"] for r in rows.values())


@pytest.mark.parametrize("organ, tol", [("liver", 0.05), ("kidney", 0.05), ("muscle", 0.05), ("lung", 0.12), ("spleen", 0.30)])
def test_brown_human_organ_fractions_agree_with_icrp89(organ, tol):
    """Brown 1997 human mass fractions vs ICRP 89 reference male (73 kg; liver 1800, kidneys 310, muscle 29000, lung tissue 500, spleen 150 g)."""
    row = {r["organ"]: r for r in physiology.volume_sources("human")}[organ]
    assert row["fraction_of_bw"] == pytest.approx(row["icrp89_fraction_of_bw"], rel=tol)


def test_human_model_is_the_mouse_structure_scaled():
    """human_pbpk: BW 70 kg, Hill Kmax = 0.3·(70/0.02)^-0.25, K50 = 48·(70/0.02)^0.25 (6 digits), blood ≥ 95 %ID at 0.01 h, mass balance."""
    model = nanopk.load_model("human_pbpk")
    p = model.parameters
    ratio = 70.0 / 0.02
    assert p["BW"].value == 70.0
    assert p["Kmax_liver"].value == pytest.approx(0.3 * ratio**-0.25, rel=1e-5)
    assert p["K50_liver"].value == pytest.approx(48.0 * ratio**0.25, rel=1e-5)
    assert "nanopk.scale" in p["Kmax_liver"].source
    sim = model.simulate([0.01, 24.0, 720.0])
    assert sim["blood"].iloc[0] >= 95.0
    np.testing.assert_allclose(sim["total"], 100.0, rtol=1e-9)


@pytest.mark.parametrize("ref, model", [
    ("circulation.whole_body", "mouse_pbpk"), ("clearance.hill_phagocytic_uptake", "mouse_pbpk"),
    ("clearance.urinary_excretion", "mouse_pbpk"), ("clearance.biliary_excretion", "mouse_pbpk"),
    ("clearance.capacity_limited_phagocytic_uptake", "rat_pbpk"), ("clearance.renal_filtration", "mouse_tumour_full"),
    ("mps.opsonisation_uptake", "mouse_tumour_full"),
])
def test_every_species_keyed_pattern_still_names_a_parameter(ref, model):
    """Each name pattern of SPECIES_DEFAULTS matches a parameter of a bundled model using that mechanism (guards renames)."""
    import re

    names = list(nanopk.load_model(model).parameters)
    for pattern, _, _ in SPECIES_DEFAULTS[ref]:
        assert any(re.fullmatch(pattern, n) for n in names), (ref, pattern)
