"""Stepping API: co-simulation with a toy tumour-growth model, mass balance at every step, agreement with simulate."""
from __future__ import annotations

import math

import numpy as np
import pytest

import nanopk

MODEL = "mouse_tumour" if "mouse_tumour" in nanopk.list_models() else "mouse_pbpk"
#: The blood flow the growing tumour drives (the muscle's in a model without a tumour).
FLOW = "f_Q_tumour" if MODEL == "mouse_tumour" else "f_Q_muscle"
FLOOR_PCT = 1e-4  # %ID compared where above 1e-6 of the dose


@pytest.fixture(scope="module")
def model():
    return nanopk.load_model(MODEL)


def _rel_diff(a: dict, b: dict) -> float:
    worst = 0.0
    for name, value in b.items():
        if abs(value) > FLOOR_PCT:
            worst = max(worst, abs(a[name] - value) / abs(value))
    return worst


class LogisticTumour:
    """Toy tumour growth in Python: dV/dt = r·V·(1 − V/K), exact solution per step.

    Perfusion follows the vascular surface, so blood flow scales as (V/V0)^(2/3).
    """

    def __init__(self, v0_ml=0.15, k_ml=2.0, r_per_h=0.02):
        self.v0, self.k, self.r, self.v = v0_ml, k_ml, r_per_h, v0_ml

    def advance(self, dt):
        e = math.exp(self.r * dt)
        self.v = self.k * self.v * e / (self.k + self.v * (e - 1.0))

    def flow_factor(self):
        return (self.v / self.v0) ** (2.0 / 3.0)


def test_uninterrupted_steps_match_simulate(model):
    """Hourly steps with nothing changed reproduce one simulate() run to 1e-6 relative."""
    integ = model.integrator(rtol=1e-10, atol=1e-14)
    times = np.arange(1.0, 169.0)
    sim = model.simulate(times, rtol=1e-10, atol=1e-14)
    worst = 0.0
    for t in times:
        integ.advance(1.0)
        assert integ.t == pytest.approx(t, abs=1e-9)
        worst = max(worst, _rel_diff(integ.observe(), sim.loc[t].to_dict()))
    print(f"[{MODEL}] stepping vs simulate: largest relative difference {worst:.1e}")
    assert worst <= 1e-6


def test_tumour_growth_coupling_keeps_mass_balance(model):
    """A growing tumour raises its blood flow between steps; total stays 100 %ID and delivery rises."""
    tumour = LogisticTumour()
    q0 = model.parameters[FLOW].value
    organ = "tumour" if MODEL == "mouse_tumour" else "muscle"
    integ = model.integrator()
    fixed = model.integrator()
    coupled, uncoupled = [], []
    for _ in range(84):  # 2-h steps to 168 h
        integ.set_parameter(FLOW, q0 * tumour.flow_factor())
        integ.advance(2.0)
        fixed.advance(2.0)
        tumour.advance(2.0)
        obs = integ.observe()
        assert obs["total"] == pytest.approx(100.0, abs=1e-6)
        assert sum(integ.state[s] for s in model.mass_states) == pytest.approx(integ.administered_ug, rel=1e-8)
        coupled.append(obs[organ])
        uncoupled.append(fixed.observe()[organ])
    assert integ.t == pytest.approx(168.0)
    assert tumour.v > 5 * tumour.v0  # the toy tumour did grow ...
    assert integ.parameters[FLOW] > 3 * q0  # ... and drove the flow
    coupled, uncoupled = np.array(coupled), np.array(uncoupled)
    print(f"[{MODEL}] {organ} %ID with growth-driven flow: max {coupled.max():.4g} (fixed flow {uncoupled.max():.4g}), "
          f"168 h {coupled[-1]:.4g} ({uncoupled[-1]:.4g})")
    assert np.max(np.abs(coupled - uncoupled) / uncoupled) > 1e-2  # the coupling changed the delivery


def test_second_dose_matches_a_two_bolus_regimen(model):
    """add_dose keeps total at 100 % of what was given, and matches simulate() once both doses are in."""
    dose = model.parameters["dose"].value
    integ = model.integrator(rtol=1e-10, atol=1e-14)
    integ.advance(24.0)
    integ.add_dose(dose)
    assert integ.administered_ug == pytest.approx(2 * dose)
    assert integ.observe()["total"] == pytest.approx(100.0, abs=1e-6)
    integ.advance(24.0)
    sim = model.simulate([48.0], dose=[nanopk.Bolus(dose), nanopk.Bolus(dose, time_h=24.0)], rtol=1e-10, atol=1e-14)
    assert _rel_diff(integ.observe(), sim.loc[48.0].to_dict()) <= 1e-6


def test_infusion_matches_simulate(model):
    """A 2-h infusion through set_infusion matches simulate(Infusion) after it ends."""
    integ = model.integrator(dose=0, rtol=1e-10, atol=1e-14)
    with pytest.raises(nanopk.ModelError, match="nothing has been administered yet"):
        integ.observe()
    integ.set_infusion(10.0).advance(1.0).advance(1.0)
    assert integ.observe()["total"] == pytest.approx(100.0, abs=1e-6)
    integ.set_parameter("infusion_rate", 0.0).advance(22.0)
    sim = model.simulate([24.0], dose=nanopk.Infusion(20.0, duration_h=2.0), rtol=1e-10, atol=1e-14)
    assert integ.administered_ug == pytest.approx(20.0)
    assert _rel_diff(integ.observe(), sim.loc[24.0].to_dict()) <= 1e-6


def test_state_and_parameters_are_readable(model):
    """`state` is a dict of every state; the dose starts in the dose target."""
    integ = model.integrator()
    assert set(integ.state) == set(model.state_names)
    assert integ.state[model.dose_target] == model.parameters["dose"].value
    assert integ.parameters[FLOW] == model.parameters[FLOW].value
    assert integ.t == 0.0


def test_unknown_parameter_suggests_the_nearest(model):
    """A mistyped name is a ModelError naming the nearest valid parameters."""
    integ = model.integrator()
    with pytest.raises(nanopk.ModelError, match=rf"(?s)no parameter\(s\) 'f_Q_tumor'.*did you mean .*'{FLOW}'" if FLOW == "f_Q_tumour"
                       else r"(?s)no parameter\(s\) 'f_Q_tumor'"):
        integ.set_parameter("f_Q_tumor", 0.01)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda i: i.advance(0.0), r"`dt` must be a positive number of hours \(got 0.0\)"),
        (lambda i: i.advance(float("nan")), r"`dt` must be a positive number of hours"),
        (lambda i: i.add_dose(-1.0), r"dose amount must be a positive number of µg \(got -1.0\)"),
        (lambda i: i.add_dose(1.0, state="urine"), r"cannot dose into 'urine': it is a sink state"),
        (lambda i: i.add_dose(1.0, state="venus_blood"), r"has no state 'venus_blood'; did you mean 'venous_blood'"),
        (lambda i: i.set_parameter("dose", 5.0), r"`dose` is the total administered so far .* use add_dose"),
        (lambda i: i.set_parameter("BW", float("inf")), r"parameter 'BW' must be finite"),
        (lambda i: i.set_infusion(-1.0), r"infusion rate must be a finite number ≥ 0 µg/h"),
    ],
)
def test_bad_calls_are_named(model, call, message):
    """Each misuse gives one ModelError that says what was expected."""
    with pytest.raises(nanopk.ModelError, match=message):
        call(model.integrator())
