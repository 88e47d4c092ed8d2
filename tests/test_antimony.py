"""Models written in Antimony text: converted to SBML, imported by nanopk, simulated as libroadrunner simulates them."""
from __future__ import annotations

import numpy as np
import pytest

import nanopk
from nanopk.sbml_import import SBMLImportError, import_sbml

antimony = pytest.importorskip("antimony")
roadrunner = pytest.importorskip("roadrunner")
pytest.importorskip("libsbml")

#: Hours in Antimony's units: it writes 3600 s as multiplier 3.6, scale 3 (nanopk reads the product).
UNITS = """
  unit substance = 1e-6 gram
  unit extent = 1e-6 gram
  unit time_unit = 3600 second
  unit per_h = 1 / 3600 second
  unit ug_per_h = 1e-6 gram / 3600 second
  unit litre_u = litre
"""

#: A two-compartment model with Michaelis-Menten elimination, amounts in µg, time in hours.
TWO_COMPARTMENT_MM = f"""
model two_compartment_mm
{UNITS}
  compartment body = 1
  body has litre_u
  substanceOnly species A1 in body, A2 in body
  A1 = 100; A2 = 0
  A1 has substance; A2 has substance
  k12 = 0.8; k12 has per_h
  k21 = 0.2; k21 has per_h
  Vmax = 5; Vmax has ug_per_h
  Km = 20; Km has substance
  r12: A1 -> A2; k12*A1
  r21: A2 -> A1; k21*A2
  r10: A1 -> ; Vmax*A1/(Km + A1)
end
"""

TIMES = [0.0, 0.1, 0.5, 1.0, 3.0, 8.0, 23.5, 24.5, 30.0, 48.0, 72.0]
TIGHT = {"rtol": 1e-11, "atol": 1e-15}


def sbml_of(text: str) -> str:
    """The SBML of the last model in Antimony ``text``."""
    antimony.clearPreviousLoads()
    assert antimony.loadAntimonyString(text) >= 0, antimony.getLastError()
    return antimony.getSBMLString(antimony.getMainModuleName())


def roadrunner_amounts(sbml: str, species) -> np.ndarray:
    """Species amounts (µg) at TIMES by libroadrunner, at tight tolerances."""
    r = roadrunner.RoadRunner(sbml)
    r.integrator.relative_tolerance, r.integrator.absolute_tolerance = 1e-12, 1e-16
    out = r.simulate(times=TIMES, selections=[f"{s}" for s in species])
    return np.asarray(out)


def relative_difference(a, b) -> float:
    """max |a − b| / |b|, values below 1e-6 of their column's largest taken at that floor (the solvers' absolute noise)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    scale = np.maximum(np.abs(b), 1e-6 * np.abs(b).max(axis=0, keepdims=True))
    return float(np.max(np.abs(a - b) / np.where(scale > 0, scale, 1.0)))


def test_antimony_model_simulates_as_in_libroadrunner():
    """An Antimony two-compartment Michaelis-Menten model: nanopk's amounts (%ID × dose) equal libroadrunner's to 1e-8 relative."""
    sbml = sbml_of(TWO_COMPARTMENT_MM)
    model = import_sbml(sbml)
    assert model.dose_target == "A1" and model.parameters["dose"].value == 100.0
    assert model.parameters["Vmax"].unit == "microgram / hour"
    sim = model.simulate(TIMES, **TIGHT)
    ours = sim[["A1", "A2"]].to_numpy() * 100.0 / 100.0  # %ID of a 100 µg dose = µg
    assert relative_difference(ours, roadrunner_amounts(sbml, ["A1", "A2"])) < 1e-8
    np.testing.assert_allclose(sim["total"], 100.0, rtol=1e-10)


def test_bolus_event_imports_as_a_dose_and_matches_libroadrunner():
    """`at time >= 24: A1 = A1 + 50` becomes a 50 µg bolus at 24 h: nanopk's amounts equal libroadrunner's (1e-8), %ID of 150 µg."""
    text = TWO_COMPARTMENT_MM.replace("end", "  redose: at time >= 24: A1 = A1 + 50\nend")
    sbml = sbml_of(text)
    model = import_sbml(sbml)
    assert model.parameters["dose"].value == 150.0
    assert model.metadata["dosing"] == [
        {"time_h": 0.0, "amount_ug": 100.0, "source": "initial amount of 'A1'"},
        {"time_h": 24.0, "amount_ug": 50.0, "source": "SBML event 'redose'"}]
    sim = model.simulate(TIMES, **TIGHT)
    ours = sim[["A1", "A2"]].to_numpy() * 150.0 / 100.0
    assert relative_difference(ours, roadrunner_amounts(sbml, ["A1", "A2"])) < 1e-8
    # An explicit regimen still wins: one 100 µg bolus is the model without its event.
    alone = import_sbml(sbml_of(TWO_COMPARTMENT_MM)).simulate(TIMES, **TIGHT)
    np.testing.assert_allclose(model.simulate(TIMES, dose=100.0, **TIGHT)["A1"], alone["A1"], rtol=1e-10)


def test_event_in_minutes_and_mg_is_converted():
    """An event at 90 min adding 0.05 mg is a 50 µg bolus at 1.5 h; the trajectories match libroadrunner's (1e-8)."""
    text = """
model in_minutes
  unit substance = 1e-3 gram
  unit extent = 1e-3 gram
  unit time_unit = 60 second
  unit per_min = 1 / 60 second
  unit litre_u = litre
  compartment body = 1
  body has litre_u
  substanceOnly species A in body, B in body
  A = 0.1; B = 0
  A has substance; B has substance
  k = 0.01; k has per_min
  move: A -> B; k*A
  second_dose: at time > 90: A = 0.05 + A
end
"""
    sbml = sbml_of(text)
    model = import_sbml(sbml)
    schedule = [v for b in model.metadata["dosing"] for v in (b["time_h"], b["amount_ug"])]
    assert schedule == pytest.approx([0.0, 100.0, 1.5, 50.0], rel=1e-12)
    sim = model.simulate(TIMES, **TIGHT)
    r = roadrunner.RoadRunner(sbml)
    r.integrator.relative_tolerance, r.integrator.absolute_tolerance = 1e-12, 1e-16
    ref = np.asarray(r.simulate(times=[60.0 * t for t in TIMES], selections=["A", "B"])) * 1000.0  # mg → µg
    assert relative_difference(sim[["A", "B"]].to_numpy() * 150.0 / 100.0, ref) < 1e-8


@pytest.mark.parametrize("event, match", [
    ("stop: at time >= 24: k12 = 0", r"event 'stop' assigns 'k12', which is not a mass species nanopk imported; nanopk "
                                      r"imports as a dose only an event with trigger `time >= T`"),
    ("reset: at time >= 24: A1 = 50", r"event 'reset' sets 'A1' = '50', not A1 plus a positive amount"),
    ("low: at A1 < 10: A1 = A1 + 50", r"event 'low': the trigger 'A1 < 10' is not a fixed time"),
    ("late: at 2 after time >= 24: A1 = A1 + 50", r"event 'late' has a delay"),
    ("both: at time >= 24: A1 = A1 + 50, A2 = A2 + 1", r"event 'both' has 2 assignments"),
    ("other: at time >= 24: A2 = A2 + 5", r"event 'other' doses species 'A2', not the dose target 'A1'"),
])
def test_events_that_are_not_boluses_are_named(event, match):
    """Events other than a fixed-time addition to the dose target are refused, by SBML id, with what is supported."""
    with pytest.raises(SBMLImportError, match=match) as info:
        import_sbml(sbml_of(TWO_COMPARTMENT_MM.replace("end", f"  {event}\nend")))
    assert isinstance(info.value, nanopk.NanopkError)
