"""Per-material ion fates: each element's route (urine, bile, retention) and kinetics, mass balance, a closed form."""
from __future__ import annotations

import math

import numpy as np
import pytest
import sympy as sp

import nanopk
from nanopk.errors import ModelError
from nanopk.materials import DISSOLUTION
from nanopk.mechanisms.base import BuildContext
from nanopk.mechanisms.dissolution import ION_FATES, _ion_fate_part, ion_fate
from nanopk.model import Model
from nanopk.parts import Flux, Parameter, Part, State, symbol

K0 = 0.2  # 1/h: dissolution of the test particles into cells


def _chain(material: str, species: str = "mouse") -> Model:
    """Particles dissolving first order into cells, followed by the material's ion fate."""
    ctx = BuildContext(species=species, particle=nanopk.Particle(material=material, core_diameter_nm=15))
    source = Part("test_particles", (State("p", organ="test"),), (Parameter("k0", K0, "1/h", "test value"),),
                  (Flux("dissolve", "p", "ions_cells", symbol("k0") * symbol("p")),))
    dose = Part("dosing", parameters=(Parameter("dose", 1.0, "ug", "test dose"),))
    return Model(f"ions_{material}", [source, _ion_fate_part(ctx), dose], "p")


def _bateman(t, k1, k2, k3):
    """Amounts (dose 1) in p → cells → blood → out for distinct rate constants."""
    t = np.asarray(t, dtype=float)
    p = np.exp(-k1 * t)
    c = k1 * (np.exp(-k1 * t) - np.exp(-k2 * t)) / (k2 - k1)
    b = k1 * k2 * (np.exp(-k1 * t) / ((k2 - k1) * (k3 - k1)) + np.exp(-k2 * t) / ((k1 - k2) * (k3 - k2))
                   + np.exp(-k3 * t) / ((k1 - k3) * (k2 - k3)))
    return p, c, b, 1.0 - p - c - b


@pytest.mark.parametrize("material", ["Ag", "ZnO", "SiO2", "CdSe"])
def test_ion_chain_matches_the_bateman_closed_form(material):
    """Cells, plasma, urine and faeces follow the Bateman solution of p → cells → blood → (urine | faeces) to 1e-7 of the dose."""
    fate = ion_fate(material)
    k2, k3 = math.log(2) / fate.t_half_cells_h, math.log(2) / fate.t_half_blood_h
    t = np.array([0.0, 1.0, 6.0, 24.0, 168.0, 1000.0])
    sim = _chain(material).simulate(t, states=True, rtol=1e-10, atol=1e-13)
    p, c, b, out = _bateman(t, K0, k2, k3)
    np.testing.assert_allclose(sim["state:ions_cells"], c, atol=1e-7)
    np.testing.assert_allclose(sim["state:ions_blood"], b, atol=1e-7)
    np.testing.assert_allclose(sim["state:ions_urine"], fate.f_urine * out, atol=1e-7)
    np.testing.assert_allclose(sim["state:ions_faeces"], (1 - fate.f_urine) * out, atol=1e-7)
    np.testing.assert_allclose(sim["dissolved"] + 100 * sim["state:p"], 100.0, atol=1e-4)


def test_routes_follow_the_element():
    """Ag⁺ and Cu²⁺ leave through bile (ATSDR 1990; Linder 1996), silicic acid in urine (Jugdaohsingh 2002), Zn mostly faecal (King 2000)."""
    assert ION_FATES["Ag"].f_urine < 0.1 and ION_FATES["CuO"].f_urine < 0.1
    assert ION_FATES["SiO2"].f_urine > 0.9
    assert ION_FATES["ZnO"].f_urine < 0.5
    sim = {m: _chain(m).simulate([0.0, 2000.0]) for m in ("Ag", "SiO2", "ZnO")}
    for m, s in sim.items():
        ratio = s["ions_in_urine"].iloc[-1] / s["ions_excreted"].iloc[-1]
        assert ratio == pytest.approx(ION_FATES[m].f_urine, rel=1e-9), m
    assert sim["Ag"]["ions_in_faeces"].iloc[-1] > 10 * sim["Ag"]["ions_in_urine"].iloc[-1]
    assert sim["SiO2"]["ions_in_urine"].iloc[-1] > 10 * sim["SiO2"]["ions_in_faeces"].iloc[-1]


def test_silver_and_cadmium_are_retained_zinc_is_not():
    """At 168 h most Ag⁺/Cd²⁺ released in cells is still there (metallothionein; Järup & Åkesson 2009), Zn²⁺ has left (King 2000)."""
    left = {m: _chain(m).simulate([0.0, 168.0], states=True)["state:ions_cells"].iloc[-1] for m in ("Ag", "CdSe", "ZnO")}
    assert left["Ag"] > 0.8 and left["CdSe"] > 0.9
    assert left["ZnO"] < 1e-3


def test_every_dissolving_material_has_its_own_fate_with_sources():
    """No generic fate: every material with a dissolution rate has an ion fate, each with a route source and a kinetics label."""
    dissolving = {m for m, k in DISSOLUTION.items() if k.v_ref_nm_h > 0}
    assert dissolving <= set(ION_FATES)
    for m, fate in ION_FATES.items():
        assert fate.route_source and "assumption" in fate.kinetics_source, m
        assert 0.0 <= fate.f_urine <= 1.0


def test_whole_body_mass_balance_to_1e6_of_the_dose():
    """mouse_tumour_full with Ag cores: every mass state sums to the dose within 1e-6 of it over 1000 h; ions mostly in faeces."""
    model = nanopk.load_model("mouse_tumour_full", particle=nanopk.Particle(material="Ag", core_diameter_nm=15))
    sim = model.simulate([0.0, 1.0, 24.0, 168.0, 1000.0], states=True)
    mass = [s.name for s in model.states if s.is_mass and s.name != "depot"]
    total = sim[[f"state:{n}" for n in mass]].sum(axis=1) + sim.get("state:depot", 0.0)
    np.testing.assert_allclose(total / sim.attrs["dose_ug"], 1.0, atol=1e-6)
    assert sim["ions_in_faeces"].iloc[-1] > 10 * sim["ions_in_urine"].iloc[-1]


def test_a_species_without_ion_kinetics_is_a_validation_problem():
    """Ion half-lives are mouse values: a rat model must give its own (the problem names parameter, species and 'mouse')."""
    with pytest.raises(ModelError, match=r"no default for species 'rat' for parameter 't_half_ion_cells' of "
                                         r"dissolution \(Ag → Ag\+\) \(species with a value: mouse\)"):
        _chain("Ag", species="rat").validate()
    _chain("Au", species="rat").validate()  # an inert core forms no ions: nothing to ask for


def test_ion_fluxes_are_first_order_in_the_element_half_lives():
    """The plasma fluxes are f·ln2/t½·A and (1 − f)·ln2/t½·A (sympy identity)."""
    part = _ion_fate_part(BuildContext(particle=nanopk.Particle(material="ZnO", core_diameter_nm=10)))
    rates = {f.name: f.rate for f in part.fluxes}
    A, f, t = symbol("ions_blood"), symbol("f_ion_urine"), symbol("t_half_ion_blood")
    assert sp.simplify(rates["ion_renal_excretion"] - f * sp.log(2) / t * A) == 0
    assert sp.simplify(rates["ion_biliary_excretion"] - (1 - f) * sp.log(2) / t * A) == 0
