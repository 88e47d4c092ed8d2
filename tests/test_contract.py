"""The contract every bundled model honours (PyBaMM-style standard model test).

validate → compile → simulate 0–168 h → total = 100 %ID to 1e-6 → no negative state →
finite results with each parameter at each of its (finite) bounds.
"""
import math

import numpy as np
import pytest

import nanopk

TIMES = np.linspace(0.0, 168.0, 25)
MODELS = nanopk.list_models()


@pytest.fixture(scope="module", params=MODELS)
def model(request):
    return nanopk.load_model(request.param).validate()


def test_mass_balance_and_non_negativity_at_defaults(model):
    """total = 100 %ID to 1e-6 relative at every time; no state below −1e-9 of the dose."""
    sim = model.simulate(TIMES, states=True)
    np.testing.assert_allclose(sim["total"].to_numpy(), 100.0, rtol=1e-6)
    states = sim[[f"state:{s.name}" for s in model.states if s.is_mass]].to_numpy()
    assert states.min() >= -1e-9 * sim.attrs["dose_ug"]
    assert np.all(np.isfinite(sim.to_numpy()))


def test_finite_at_every_parameter_bound(model):
    """Each parameter at its lower and its upper bound (one at a time) still simulates,
    finite and mass-conserving: the bounds a fit may visit are safe."""
    failures = []
    for p in model.parameters.values():
        if p.name in ("dose", "infusion_rate"):
            continue
        for bound in p.bounds:
            if not math.isfinite(bound):
                continue
            try:
                sim = model.simulate(TIMES, params={p.name: bound})
            except nanopk.SolverError as exc:
                failures.append(f"{p.name}={bound}: {exc}")
                continue
            if not (np.all(np.isfinite(sim.to_numpy())) and np.allclose(sim["total"], 100.0, rtol=1e-6)):
                failures.append(f"{p.name}={bound}: total {sim['total'].min():.6g}–{sim['total'].max():.6g}")
    assert not failures, "\n".join(failures)


def test_every_parameter_has_unit_bounds_and_source(model):
    """Real science: each default carries a unit pint parses, admissible bounds and a source."""
    from nanopk.units import parse_unit

    for p in model.parameters.values():
        parse_unit(p.unit)
        assert p.bounds[0] <= p.value <= p.bounds[1], p.name
        assert len(p.source) > 10, f"{p.name} source {p.source!r}"
