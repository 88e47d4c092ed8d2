"""SBML import: nanopk's own export comes back unchanged; a model written by hand runs as libroadrunner and the closed form say."""
from __future__ import annotations

import math

import numpy as np
import pytest

import nanopk
from nanopk.errors import ModelError, NanopkError
from nanopk.export.sbml import to_sbml
from nanopk.sbml_import import SBMLImportError, import_sbml

pytest.importorskip("libsbml")

TIMES = [0.0, 0.25, 1.0, 4.0, 24.0, 72.0, 168.0]
TIGHT = {"rtol": 1e-11, "atol": 1e-15}

UNITS = """
    <listOfUnitDefinitions>
      <unitDefinition id="mg"><listOfUnits><unit kind="gram" exponent="1" scale="-3" multiplier="1"/></listOfUnits></unitDefinition>
      <unitDefinition id="ug"><listOfUnits><unit kind="gram" exponent="1" scale="-6" multiplier="1"/></listOfUnits></unitDefinition>
      <unitDefinition id="min"><listOfUnits><unit kind="second" exponent="1" scale="0" multiplier="60"/></listOfUnits></unitDefinition>
      <unitDefinition id="h"><listOfUnits><unit kind="second" exponent="1" scale="0" multiplier="3600"/></listOfUnits></unitDefinition>
      <unitDefinition id="per_min"><listOfUnits><unit kind="second" exponent="-1" scale="0" multiplier="60"/></listOfUnits></unitDefinition>
      <unitDefinition id="per_h"><listOfUnits><unit kind="second" exponent="-1" scale="0" multiplier="3600"/></listOfUnits></unitDefinition>
      <unitDefinition id="mg_per_min"><listOfUnits><unit kind="gram" exponent="1" scale="-3" multiplier="1"/>
        <unit kind="second" exponent="-1" scale="0" multiplier="60"/></listOfUnits></unitDefinition>
      <unitDefinition id="mg_per_L"><listOfUnits><unit kind="gram" exponent="1" scale="-3" multiplier="1"/>
        <unit kind="litre" exponent="-1" scale="0" multiplier="1"/></listOfUnits></unitDefinition>
      <unitDefinition id="L"><listOfUnits><unit kind="litre" exponent="1" scale="0" multiplier="1"/></listOfUnits></unitDefinition>
    </listOfUnitDefinitions>"""


def mathml(body: str) -> str:
    return f'<math xmlns="http://www.w3.org/1998/Math/MathML">{body}</math>'


#: A two-compartment model with Michaelis-Menten elimination, as another tool would write it: time in
#: minutes, amounts in mg, species in concentration (hasOnlySubstanceUnits=false), Km a local parameter.
TWO_COMPARTMENT_MM = f"""<?xml version="1.0" encoding="UTF-8"?>
<sbml xmlns="http://www.sbml.org/sbml/level3/version2/core" level="3" version="2">
  <model id="two_cmt_mm" timeUnits="min" substanceUnits="mg" extentUnits="mg" volumeUnits="L">{UNITS}
    <listOfCompartments>
      <compartment id="Vc" size="0.002" units="L" constant="true" spatialDimensions="3"/>
      <compartment id="Vp" size="0.005" units="L" constant="true" spatialDimensions="3"/>
    </listOfCompartments>
    <listOfSpecies>
      <species id="C" compartment="Vc" initialAmount="0.5" substanceUnits="mg" hasOnlySubstanceUnits="false"
               boundaryCondition="false" constant="false"/>
      <species id="P" compartment="Vp" initialAmount="0" substanceUnits="mg" hasOnlySubstanceUnits="false"
               boundaryCondition="false" constant="false"/>
    </listOfSpecies>
    <listOfParameters>
      <parameter id="k12" value="0.01" units="per_min" constant="true"/>
      <parameter id="k21" value="0.004" units="per_min" constant="true"/>
      <parameter id="Vmax" value="0.0004" units="mg_per_min" constant="true"/>
    </listOfParameters>
    <listOfReactions>
      <reaction id="distribution" reversible="false">
        <listOfReactants><speciesReference species="C" stoichiometry="1" constant="true"/></listOfReactants>
        <listOfProducts><speciesReference species="P" stoichiometry="1" constant="true"/></listOfProducts>
        <kineticLaw>{mathml("<apply><times/><ci>k12</ci><ci>C</ci><ci>Vc</ci></apply>")}</kineticLaw>
      </reaction>
      <reaction id="redistribution" reversible="false">
        <listOfReactants><speciesReference species="P" stoichiometry="1" constant="true"/></listOfReactants>
        <listOfProducts><speciesReference species="C" stoichiometry="1" constant="true"/></listOfProducts>
        <kineticLaw>{mathml("<apply><times/><ci>k21</ci><ci>P</ci><ci>Vp</ci></apply>")}</kineticLaw>
      </reaction>
      <reaction id="elimination" reversible="false">
        <listOfReactants><speciesReference species="C" stoichiometry="1" constant="true"/></listOfReactants>
        <kineticLaw>
          {mathml("<apply><divide/><apply><times/><ci>Vmax</ci><ci>C</ci></apply><apply><plus/><ci>Km</ci><ci>C</ci></apply></apply>")}
          <listOfLocalParameters><localParameter id="Km" value="50" units="mg_per_L"/></listOfLocalParameters>
        </kineticLaw>
      </reaction>
    </listOfReactions>
  </model>
</sbml>
"""


def linear_two_compartment(extra: str = "", reactions: str | None = None, species_units: str = "ug") -> str:
    """A linear two-compartment IV model in hours and µg (amounts), with optional extra elements."""
    law = mathml("<apply><times/><ci>{k}</ci><ci>{s}</ci></apply>")
    rx = reactions if reactions is not None else "".join(
        f"""<reaction id="{rid}" reversible="false">
        <listOfReactants><speciesReference species="{s}" stoichiometry="1" constant="true"/></listOfReactants>
        {f'<listOfProducts><speciesReference species="{t}" stoichiometry="1" constant="true"/></listOfProducts>' if t else ''}
        <kineticLaw>{law.format(k=k, s=s)}</kineticLaw></reaction>"""
        for rid, s, t, k in (("r12", "A1", "A2", "k12"), ("r21", "A2", "A1", "k21"), ("r10", "A1", None, "k10")))
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<sbml xmlns="http://www.sbml.org/sbml/level3/version2/core" level="3" version="2">
  <model id="two_cmt" timeUnits="h" substanceUnits="{species_units}" extentUnits="{species_units}">{UNITS}
    <listOfCompartments><compartment id="body" size="1" units="L" constant="true" spatialDimensions="3"/></listOfCompartments>
    <listOfSpecies>
      <species id="A1" compartment="body" initialAmount="100" hasOnlySubstanceUnits="true" boundaryCondition="false" constant="false"/>
      <species id="A2" compartment="body" initialAmount="0" hasOnlySubstanceUnits="true" boundaryCondition="false" constant="false"/>
    </listOfSpecies>
    <listOfParameters>
      <parameter id="k10" value="0.3" units="per_h" constant="true"/>
      <parameter id="k12" value="0.8" units="per_h" constant="true"/>
      <parameter id="k21" value="0.2" units="per_h" constant="true"/>
    </listOfParameters>
    {extra}
    <listOfReactions>{rx}</listOfReactions>
  </model>
</sbml>
"""


def relative_difference(a, b) -> float:
    """max |a − b| / |b|, values below 1e-6 of their column's largest taken at that floor."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    scale = np.maximum(np.abs(b), 1e-6 * np.abs(b).max(axis=0, keepdims=True))
    return float(np.max(np.abs(a - b) / np.where(scale > 0, scale, 1.0)))


@pytest.mark.parametrize("name", nanopk.list_models())
def test_round_trip_of_every_bundled_model(name):
    """export → import → simulate: the same observables (names, order, values to 1e-8 relative) as the original."""
    model = nanopk.load_model(name)
    back = import_sbml(to_sbml(model, validate=False))  # libsbml's own check is test_sbml_export's
    # SBML lists species and rate-rule parameters apart: the same states, species first.
    assert sorted(back.state_names) == sorted(model.state_names)
    assert sorted(back.parameter_names) == sorted(model.parameter_names)
    a = model.simulate(TIMES, **TIGHT)
    b = back.simulate(TIMES, **TIGHT)
    assert list(b.columns) == list(a.columns)
    assert relative_difference(b, a) < 1e-8


def test_round_trip_keeps_units_sources_and_bounds(tmp_path):
    """Parameters come back with their unit, bounds and literature source; states with kind and organ; from a file too."""
    model = nanopk.load_model("two_compartment_iv")
    path = tmp_path / "m.xml"
    to_sbml(model, path)
    back = nanopk.import_sbml(path)
    for name, p in model.parameters.items():
        q = back.parameters[name]
        assert (q.value, q.unit, q.bounds, q.source) == (p.value, p.unit, p.bounds, p.source)
    assert [(s.name, s.kind, s.organ) for s in back.states] == [(s.name, s.kind, s.organ) for s in model.states]
    assert back.dose_target == model.dose_target


def test_linear_two_compartment_matches_the_closed_form():
    """A hand-written linear 2-compartment SBML: central %ID = 100[(α−k21)e^−αt − (β−k21)e^−βt]/(α−β) (Gibaldi & Perrier 1982) to 1e-8."""
    model = nanopk.import_sbml(linear_two_compartment())
    sim = model.simulate(TIMES, **TIGHT)
    k10, k12, k21 = 0.3, 0.8, 0.2
    s = k10 + k12 + k21
    alpha, beta = (s + math.sqrt(s * s - 4 * k10 * k21)) / 2, (s - math.sqrt(s * s - 4 * k10 * k21)) / 2
    t = np.array(TIMES)
    central = 100 * ((alpha - k21) * np.exp(-alpha * t) - (beta - k21) * np.exp(-beta * t)) / (alpha - beta)
    np.testing.assert_allclose(sim["A1"], central, rtol=1e-8)
    np.testing.assert_allclose(sim["total"], 100.0, rtol=1e-10)
    assert model.parameters["dose"].value == 100.0 and model.dose_target == "A1"


def test_third_party_michaelis_menten_model_matches_libroadrunner():
    """Minutes, mg, concentrations and a local Km: nanopk's %ID equal libroadrunner's amounts of the same SBML to 1e-6."""
    roadrunner = pytest.importorskip("roadrunner")
    model = import_sbml(TWO_COMPARTMENT_MM)
    assert model.parameters["dose"].value == pytest.approx(500.0, rel=1e-15)  # 0.5 mg in µg
    assert model.parameters["elimination_Km"].unit == "milligram / liter"
    sim = model.simulate(TIMES, **TIGHT)
    r = roadrunner.RoadRunner(TWO_COMPARTMENT_MM)
    r.integrator.relative_tolerance, r.integrator.absolute_tolerance = 1e-12, 1e-16
    out = r.simulate(times=[60.0 * t for t in TIMES], selections=["time", "C", "P"])
    ref = np.column_stack([100 * np.asarray(out[:, 1]) / 0.5, 100 * np.asarray(out[:, 2]) / 0.5])
    assert relative_difference(sim[["C", "P"]].to_numpy(), ref) < 1e-6
    np.testing.assert_allclose(sim["C"] + sim["P"] + sim["eliminated"], 100.0, rtol=1e-9)


@pytest.mark.parametrize("extra, reactions, match", [
    ('<listOfEvents><event id="redose" useValuesFromTriggerTime="true"><trigger initialValue="false" persistent="true">'
     + mathml("<apply><gt/><csymbol encoding='text' definitionURL='http://www.sbml.org/sbml/symbols/time'>t</csymbol><cn>24</cn></apply>")
     + '</trigger><listOfEventAssignments><eventAssignment variable="A1">' + mathml("<cn>100</cn>")
     + "</eventAssignment></listOfEventAssignments></event></listOfEvents>", None,
     r"event 'redose' sets 'A1' = '100', not A1 plus a positive amount; nanopk imports as a dose only an event with "
     r"trigger `time >= T`"),
    ('<listOfRules><algebraicRule>' + mathml("<apply><minus/><ci>k10</ci><ci>k21</ci></apply>") + "</algebraicRule></listOfRules>",
     None, r"algebraic rule #1: nanopk integrates ODEs; supported are assignment rules and rate rules on parameters"),
    ("", '<reaction id="dimer" reversible="false"><listOfReactants><speciesReference species="A1" stoichiometry="2" constant="true"/>'
         '</listOfReactants><listOfProducts><speciesReference species="A2" stoichiometry="1" constant="true"/></listOfProducts>'
         "<kineticLaw>" + mathml("<apply><times/><ci>k12</ci><ci>A1</ci></apply>") + "</kineticLaw></reaction>",
     r"reaction 'dimer': the stoichiometry of 'A1' is not 1; nanopk moves mass one-to-one"),
    ("", '<reaction id="synthesis" reversible="false"><listOfProducts><speciesReference species="A2" stoichiometry="1" constant="true"/>'
         "</listOfProducts><kineticLaw>" + mathml("<ci>k12</ci>") + "</kineticLaw></reaction>",
     r"reaction 'synthesis' has 0 reactant\(s\) and 1 product\(s\); nanopk imports one-to-one transfers of mass"),
    ("", '<reaction id="lagged" reversible="false"><listOfReactants><speciesReference species="A1" stoichiometry="1" constant="true"/>'
         "</listOfReactants><kineticLaw>" + mathml(
             "<apply><times/><ci>k10</ci><apply><csymbol encoding='text' definitionURL='http://www.sbml.org/sbml/symbols/delay'>"
             "delay</csymbol><ci>A1</ci><cn>1</cn></apply></apply>") + "</kineticLaw></reaction>",
     r"the kinetic law of reaction 'lagged' uses delay\(\); nanopk integrates ODEs without delays"),
])
def test_unsupported_constructs_are_refused_by_id(extra, reactions, match):
    """An event that is not a bolus, algebraic rules, stoichiometry ≠ 1, synthesis and delays: an SBMLImportError naming the element and what is supported."""
    with pytest.raises(SBMLImportError, match=match) as info:
        import_sbml(linear_two_compartment(extra, reactions))
    assert isinstance(info.value, NanopkError) and isinstance(info.value, ModelError)


def test_species_that_are_not_masses_and_reserved_ids_are_refused():
    """A species in mol and a parameter named 'dose' are named, with the fix."""
    text = linear_two_compartment().replace('substanceUnits="ug" extentUnits="ug"', 'substanceUnits="mole" extentUnits="mole"')
    with pytest.raises(SBMLImportError, match=r"species 'A1' is in 'mole', not a mass; nanopk's states are particle masses"):
        import_sbml(text)
    text = linear_two_compartment().replace('id="k10"', 'id="dose"').replace("<ci>k10</ci>", "<ci>dose</ci>")
    with pytest.raises(SBMLImportError, match=r"SBML id 'dose' is reserved by nanopk .*; rename it in the SBML"):
        import_sbml(text)


def test_two_initial_amounts_and_missing_dose_target_are_refused():
    """Two species with initial amounts need dose_target=; a wrong dose_target is named with a suggestion."""
    text = linear_two_compartment().replace('id="A2" compartment="body" initialAmount="0"', 'id="A2" compartment="body" initialAmount="5"')
    with pytest.raises(SBMLImportError, match=r"species 'A1', 'A2' all have an initial amount; nanopk gives one dose into one species"):
        import_sbml(text)
    with pytest.raises(SBMLImportError, match=r"dose_target 'A11' is not a species nanopk imported; did you mean 'A1'?"):
        import_sbml(linear_two_compartment(), dose_target="A11")


def test_unnamed_unit_multiplier_and_missing_file_are_refused(tmp_path):
    """A unit with a multiplier nanopk cannot name, and a path that does not exist, say what is wrong."""
    text = linear_two_compartment().replace('<unit kind="second" exponent="-1" scale="0" multiplier="3600"/>',
                                            '<unit kind="second" exponent="-1" scale="0" multiplier="7"/>')
    with pytest.raises(SBMLImportError, match=r"unit 'per_h' .* has a multiplier nanopk cannot name; supported: SI prefixes"):
        import_sbml(text)
    with pytest.raises(NanopkError, match=r"SBML file '.*nope.xml' does not exist"):
        import_sbml(tmp_path / "nope.xml")
    with pytest.raises(SBMLImportError, match=r"SBML text is not valid SBML"):
        import_sbml("<sbml>not sbml</sbml>")


def test_unit_factors_split_between_multiplier_and_scale():
    """µg as multiplier 1e-6 and 1/h as multiplier 3.6, scale 3 (Antimony's spelling) read as µg and 1/h: same model, same trajectories (1e-12)."""
    text = (linear_two_compartment()
            .replace('<unitDefinition id="ug"><listOfUnits><unit kind="gram" exponent="1" scale="-6" multiplier="1"/>',
                     '<unitDefinition id="ug"><listOfUnits><unit kind="gram" exponent="1" scale="0" multiplier="1e-6"/>')
            .replace('<unitDefinition id="per_h"><listOfUnits><unit kind="second" exponent="-1" scale="0" multiplier="3600"/>',
                     '<unitDefinition id="per_h"><listOfUnits><unit kind="second" exponent="-1" scale="3" multiplier="3.6"/>'))
    assert 'multiplier="1e-6"' in text and 'scale="3" multiplier="3.6"' in text
    model, reference = import_sbml(text), import_sbml(linear_two_compartment())
    assert model.parameters["k10"].unit == reference.parameters["k10"].unit
    assert model.parameters["dose"].value == 100.0
    np.testing.assert_allclose(model.simulate(TIMES, **TIGHT).to_numpy(), reference.simulate(TIMES, **TIGHT).to_numpy(),
                               rtol=1e-12)


def test_from_sbml_is_import_sbml():
    """nanopk.from_sbml (the name the interoperability issue uses) is the one import entry point."""
    import nanopk
    from nanopk.sbml_import import import_sbml

    assert nanopk.from_sbml is import_sbml is nanopk.import_sbml
