"""SBML export: valid L3V2 with consistent units, and simulated elsewhere (libroadrunner) to nanopk's result."""
from __future__ import annotations

import functools
import sys
import time

import numpy as np
import pandas as pd
import pytest
import sympy as sp

import nanopk
from nanopk.errors import ExportError
from nanopk.parts import TIME, Flux, Part, State, symbol

libsbml = pytest.importorskip("libsbml")
roadrunner = pytest.importorskip("roadrunner")

from nanopk.export.sbml import check_sbml, observable_id, to_sbml  # noqa: E402  (after the import guards)

#: Log-spaced early times catch fast processes (distribution, aggregation), then every 2 h.
TIMES = np.concatenate(([0.0], np.geomspace(1e-3, 1.0, 13), np.linspace(2.0, 168.0, 84)))
#: %ID values compared: those above 1e-6 of the dose.
FLOOR_PCT = 1e-4
REL_TOL = 1e-5
#: Particles for the full tumour model, whose structure and parameters depend on them
#: (besides the spec's own particle, 15 nm PEG-5k gold).
PARTICLES = {
    "Au100-bare": dict(material="Au", core_diameter_nm=100, coating="none"),
    "Ag40-citrate": dict(material="Ag", core_diameter_nm=40, coating="citrate"),
}


def _cases():
    cases = [(name, None) for name in nanopk.list_models()]
    if "mouse_tumour_full" in nanopk.list_models():
        cases += [("mouse_tumour_full", label) for label in PARTICLES]
    return cases


CASES = _cases()
IDS = [name if label is None else f"{name}[{label}]" for name, label in CASES]


@functools.lru_cache(maxsize=None)
def _model(name, label):
    particle = nanopk.Particle(**PARTICLES[label]) if label else None
    return nanopk.load_model(name, particle=particle)


@functools.lru_cache(maxsize=None)
def _sbml(name, label):
    return to_sbml(_model(name, label), validate=False)


@pytest.mark.parametrize(("name", "label"), CASES, ids=IDS)
def test_sbml_passes_libsbml_consistency_with_units(name, label):
    """libsbml's checkConsistency (units on) reports no error; warnings are printed."""
    issues = check_sbml(_sbml(name, label))
    for issue in issues:
        print(f"[{name}{'/' + label if label else ''}] libsbml {issue}")
    errors = [i for i in issues if i.severity == "error"]
    assert not errors, "\n".join(map(str, errors))


@pytest.mark.parametrize(("name", "label"), CASES, ids=IDS)
def test_libroadrunner_reproduces_nanopk(name, label):
    """Every observable from libroadrunner on the export matches nanopk to 1e-5 relative."""
    model = _model(name, label)
    xml = _sbml(name, label)
    dose = model.parameters["dose"].value
    start = time.perf_counter()
    r = roadrunner.RoadRunner(xml)
    load_s = time.perf_counter() - start
    r.integrator.relative_tolerance = 1e-10
    # libroadrunner's absolute tolerance bounds the error of each step; 1e-14 × dose
    # left ~3e-6 relative error on the decaying tail of the one-compartment yardstick.
    r.integrator.absolute_tolerance = 1e-16 * dose
    r.integrator.maximum_num_steps = 1_000_000
    observables = list(model.observables)
    rr = np.asarray(r.simulate(times=TIMES, selections=["time"] + [observable_id(o) for o in observables]))
    sim = model.simulate(TIMES, rtol=1e-10, atol=1e-14)
    ours = sim[observables].to_numpy()
    theirs = rr[:, 1:]
    np.testing.assert_allclose(rr[:, 0], TIMES)
    compared = np.abs(ours) > FLOOR_PCT
    rel = np.zeros_like(ours)
    rel[compared] = np.abs(theirs - ours)[compared] / np.abs(ours)[compared]
    worst = int(np.argmax(rel.max(axis=0)))
    print(f"[{name}{'/' + label if label else ''}] roadrunner load {load_s:.3f} s; "
          f"largest relative difference {rel.max():.2e} ({observables[worst]})")
    if rel.max() > REL_TOL:
        table = pd.DataFrame({"nanopk": ours[:, worst], "libroadrunner": theirs[:, worst], "rel_diff": rel[:, worst]}, index=TIMES)
        with pd.option_context("display.max_rows", None, "display.float_format", "{:.10g}".format):
            print(f"observable {observables[worst]!r} (%ID):\n{table}")
    assert rel.max() <= REL_TOL


def test_export_maps_every_element():
    """Species are amounts, one reaction per flux, sources annotated, dose is the target's initial amount."""
    model = _model("mouse_pbpk", None)
    doc = libsbml.readSBMLFromString(_sbml("mouse_pbpk", None))
    assert (doc.getLevel(), doc.getVersion()) == (3, 2)
    m = doc.getModel()
    assert m.getNumReactions() == len(model.fluxes)
    assert {m.getSpecies(i).getId() for i in range(m.getNumSpecies())} == set(model.mass_states)
    for i in range(m.getNumSpecies()):
        s = m.getSpecies(i)
        assert s.getHasOnlySubstanceUnits() and s.getSubstanceUnits() == "ug"
        assert s.getInitialAmount() == (model.parameters["dose"].value if s.getId() == model.dose_target else 0.0)
    assert m.getInitialAssignmentBySymbol(model.dose_target).getMath().getName() == "dose"
    for p in model.parameters.values():
        q = m.getParameter(p.name) or m.getCompartment(p.name)
        assert q.getConstant() and q.isSetUnits()
        assert p.source in libsbml.XMLNode.convertXMLNodeToString(q.getAnnotation()).replace("&amp;", "&")
    assert m.getParameter("infusion_rate").getValue() == 0.0
    assert m.getUnitDefinition("L_per_h_per_kg0_75") is not None
    assert m.getTimeUnits() == "h" and m.getExtentUnits() == "ug"
    law = m.getReaction("urinary_excretion").getKineticLaw()
    assert libsbml.formulaToL3String(law.getMath()) == "KurineC * kidney_capillary * BW^0.75 dimensionless / V_kidney_capillary"


def test_observable_literals_carry_percent_id():
    """The 100 in an observable is 100 %ID, so the %ID unit checks exactly."""
    m = libsbml.readSBMLFromString(_sbml("mouse_pbpk", None)).getModel()
    math = m.getAssignmentRuleByVariable(observable_id("liver")).getMath()
    assert math.getChild(0).getValue() == 100 and math.getChild(0).getUnits() == "pct_ID"
    ud = m.getUnitDefinition("pct_ID")
    assert ud.getNumUnits() == 1 and ud.getUnit(0).getMultiplier() == pytest.approx(0.01)


def test_to_sbml_writes_file_and_applies_params(tmp_path):
    """`path` writes the returned text; `params` sets values, the dose included."""
    model = _model("two_compartment_iv", None)
    path = tmp_path / "model.xml"
    text = nanopk.to_sbml(model, path, params={"dose": 5.0, "k10": 0.3})
    assert path.read_text(encoding="utf-8") == text
    m = libsbml.readSBMLFromString(text).getModel()
    assert m.getParameter("k10").getValue() == 0.3
    assert m.getSpecies(model.dose_target).getInitialAmount() == 5.0
    with pytest.raises(nanopk.ModelError, match=r"(?s)no parameter\(s\) 'k01'.*did you mean .*'k10'"):
        to_sbml(model, params={"k01": 1.0})


def test_unsupported_function_is_an_export_error():
    """A rate with no SBML equivalent (erf) is named in the error."""
    part = Part(
        "toy",
        states=(State("central", organ="central"), State("out", "sink")),
        parameters=(nanopk.Parameter("k", 0.1, "1/h", "test value"), nanopk.Parameter("tau", 2.0, "h", "test value")),
        fluxes=(Flux("loss", "central", "out", symbol("k") * symbol("central") * sp.erf(TIME / symbol("tau"))),),
    )
    model = nanopk.Model("toy_erf", [part], "central").validate()
    with pytest.raises(ExportError, match=r"flux 'loss': SBML has no equivalent of erf"):
        to_sbml(model)


def test_missing_libsbml_says_how_to_install(monkeypatch):
    """Without python-libsbml the ImportError names the extra to install."""
    monkeypatch.setitem(sys.modules, "libsbml", None)
    with pytest.raises(ImportError, match=r"SBML export needs python-libsbml: pip install 'nanopk\[sbml\]'"):
        to_sbml(_model("one_compartment_iv", None))
