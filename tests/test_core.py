"""The foundation: mass balance by construction, backend agreement, validation, errors."""
import math
import re

import numpy as np
import pytest
import sympy as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import nanopk
from nanopk import Flux, Model, ModelError, Parameter, Part, Particle, RateRule, SolverError, SpecError, State
from nanopk.parts import symbol

TIMES = np.linspace(0.0, 168.0, 50)


@pytest.fixture(scope="module")
def mouse():
    return nanopk.load_model("mouse_pbpk")


def _log_uniform_inside(p, draw):
    lo, hi = p.bounds
    lo = max(lo, p.value / 10 if p.value > 0 else 1e-6)
    hi = min(hi, p.value * 10 if p.value > 0 else 1.0)
    if not (lo > 0 and hi > lo):
        return p.value
    return math.exp(draw(st.floats(math.log(lo), math.log(hi))))


@st.composite
def mouse_parameters(draw):
    model = nanopk.load_model("mouse_pbpk")
    varied = ["Kmax_liver", "Kmax_spleen", "K50_liver", "n_liver", "Krelease_liver", "PAC_spleen", "PAC_liver",
              "P_liver", "P_kidney", "KurineC", "KbileC", "QCC", "f_Q_kidney", "Kmax_lung"]
    return {name: _log_uniform_inside(model.parameters[name], draw) for name in varied}


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(params=mouse_parameters())
def test_mass_balance_and_nonnegativity_at_random_parameters(params):
    """For parameters inside their bounds, total = 100 %ID to 1e-6 relative at every time,
    and no state goes below −1e-9 of the dose."""
    model = nanopk.load_model("mouse_pbpk")
    sim = model.simulate(TIMES, params=params, states=True)
    np.testing.assert_allclose(sim["total"].to_numpy(), 100.0, rtol=1e-6)
    states = sim[[c for c in sim.columns if c.startswith("state:")]].to_numpy()
    assert states.min() >= -1e-9 * sim.attrs["dose_ug"]


def test_reference_and_fast_backend_agree_on_mouse_pbpk(mouse):
    """Both backends at tight tolerances agree to 1e-6 relative on every observable."""
    fast = mouse.simulate(TIMES, backend="cvode", rtol=1e-10, atol=1e-14)
    ref = mouse.simulate(TIMES, backend="reference", rtol=1e-10, atol=1e-14)
    scale = np.maximum(np.abs(ref.to_numpy()), 1e-6)  # values above 1e-6 %ID
    assert np.max(np.abs(fast.to_numpy() - ref.to_numpy()) / scale) < 1e-6


def test_rhs_and_jacobian_identical_across_backends(mouse):
    """The generated C and the NumPy lambdify evaluate the same f and J (1e-12 relative)."""
    fast, ref = mouse.compile("cvode"), mouse.compile("reference")
    rng = np.random.default_rng(1)
    p = mouse.parameter_vector()
    for _ in range(5):
        y = rng.uniform(0, 5, mouse.compile("reference").n_states)
        t = rng.uniform(0, 168)
        np.testing.assert_allclose(fast.rhs(t, y, p), ref.rhs(t, y, p), rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(fast.jac(t, y, p), ref.jac(t, y, p), rtol=1e-12, atol=1e-14)


def test_mouse_pbpk_liver_and_spleen_hold_most_of_the_dose_by_168h(mouse):
    """Lin 2016 (Nanotoxicology 10:162): PEG-Au ends up in the MPS organs."""
    sim = mouse.simulate([168.0])
    assert sim["liver"].iloc[0] + sim["spleen"].iloc[0] > 50.0
    assert sim["blood"].iloc[0] < 5.0


def test_simulate_returns_time_indexed_percent_id_frame(mouse):
    """Index is time_h; every observable of DESIGN.md's shared names is there, in %ID."""
    sim = mouse.simulate([1, 4, 24, 168])
    assert sim.index.name == "time_h"
    assert list(sim.index) == [1.0, 4.0, 24.0, 168.0]
    for name in ("blood", "lung", "liver", "spleen", "kidney", "brain", "muscle", "rest", "urine", "faeces", "total"):
        assert sim.attrs["units"][name] == "percent_ID"
    np.testing.assert_allclose(sim["total"], 100.0, rtol=1e-9)
    # Whole blood counts the organs' capillary blood, which unperfused organs count again
    # (as the data do; nanopk.mechanisms.circulation): without residual blood in the
    # organs, blood + organs + sinks partition the dose.
    perfused = mouse.simulate([1, 4, 24, 168], params={"f_residual_blood": 0.0})
    np.testing.assert_allclose(perfused.drop(columns="total").sum(axis=1), 100.0, rtol=1e-9)
    assert (sim.drop(columns="total").sum(axis=1) > 100.0).all()


def test_models_are_immutable_and_share_compiled_code(mouse):
    """with_parameters returns a new model with the same structure hash and a new value."""
    other = mouse.with_parameters(Kmax_liver=1.0)
    assert other is not mouse
    assert mouse.parameters["Kmax_liver"].value == 0.3
    assert other.parameters["Kmax_liver"].value == 1.0
    assert other.structure_hash == mouse.structure_hash
    assert other.compile() is mouse.compile()
    a = mouse.simulate([72.0])["liver"].iloc[0]
    b = other.simulate([72.0])["liver"].iloc[0]
    assert b > a + 10.0  # 3.3× faster Kupffer-cell uptake


def _tiny(**overrides):
    p = dict(
        states=(State("blood"), State("gut", "sink")),
        parameters=(Parameter("k", 0.1, "1/h", "test"),),
        fluxes=(Flux("out", "blood", "gut", symbol("k") * symbol("blood")),),
    )
    p.update(overrides)
    return Model("tiny", [Part("tiny", **p)], "blood")


def test_validate_lists_every_problem_at_once():
    """Undeclared symbol, duplicate name, non-finite default, unit mismatch, bad flux end."""
    broken = _tiny(
        states=(State("blood"), State("gut", "sink"), State("gut", "sink"), State("theta", "coverage", "dimensionless", initial=0.0)),
        parameters=(Parameter("k", float("nan"), "1/h", "test"), Parameter("V", 1.0, "L", "test")),
        fluxes=(
            Flux("out", "blood", "gut", symbol("k") * symbol("blood") * symbol("kk")),
            Flux("bad_units", "blood", "gut", symbol("V")),
            Flux("to_nowhere", "blood", "urine", symbol("blood") * 0),
        ),
    )
    with pytest.raises(ModelError) as info:
        broken.validate()
    text = str(info.value)
    assert "duplicate name 'gut' declared 2 times" in text
    assert "uses undeclared symbol 'kk'; did you mean 'k'?" in text
    assert "target 'urine' is not a declared state" in text
    assert "non-mass state 'theta' has no rate rule" in text
    assert "parameter 'k' has a non-finite default nan" in text
    assert len(info.value.problems) >= 5


def test_validate_reports_unit_mismatch():
    """A flux must be mass/time: a volume is not a rate."""
    model = _tiny(parameters=(Parameter("k", 0.1, "L", "test"),))
    with pytest.raises(ModelError, match=r"flux 'out' \(blood → gut\) has unit .* but should be"):
        model.validate()


def test_unit_check_is_remembered_per_equations_and_units(tmp_path, monkeypatch):
    """A model that passed the unit check is not re-checked (the check and pint's import
    were most of loading a cached model); a changed unit is checked afresh and a failure
    is never remembered."""
    import nanopk.unitcheck as unitcheck

    monkeypatch.setenv("NANOPK_CACHE_DIR", str(tmp_path))
    calls = []
    real = unitcheck.check_units
    monkeypatch.setattr(unitcheck, "check_units", lambda m: calls.append(m.name) or real(m))
    _tiny().validate()
    _tiny().validate()
    assert len(calls) == 1
    bad = dict(parameters=(Parameter("k", 0.1, "L", "test"),))
    for attempt in (2, 3):
        with pytest.raises(ModelError, match="has unit"):
            _tiny(**bad).validate()
        assert len(calls) == attempt


def test_loading_a_checked_model_does_not_import_pint(tmp_path):
    """A bundled model ships its unit verdict: even its first load in an empty cache
    simulates without importing pint.  A model nanopk has not seen (here aggregation with
    3 size classes) is checked with pint once, and a second process loads it without."""
    import os
    import subprocess
    import sys

    spec = tmp_path / "agg3.toml"
    spec.write_text(re.sub(r"^K\s*=\s*\d+", "K = 3", nanopk.spec.model_path("aggregation_plasma").read_text(), flags=re.M))
    env = dict(os.environ, NANOPK_CACHE_DIR=str(tmp_path / "cache"))

    def pint_imported(model):
        code = f"import sys, nanopk; m = nanopk.load_model({model!r}); m.simulate([1.0]); print('pint' in sys.modules)"
        return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout.split()

    assert pint_imported("mouse_tumour") == ["False"]
    assert [pint_imported(str(spec)) for _ in range(2)] == [["True"], ["False"]]


def test_bundled_models_ship_their_unit_verdicts():
    """checked_units.txt holds exactly the bundled models' signatures, and each of those
    models passes the unit check now (a verdict the package ships must be true).  When
    it is stale, regenerate it with `python tools/record_unit_verdicts.py`."""
    import sympy

    from nanopk.unitcheck import CHECKED_UNITS, shipped_unit_signatures, unit_signature
    from nanopk.unitcheck import check_units

    models = {name: nanopk.load_model(name) for name in nanopk.list_models()}
    for name, model in models.items():
        assert check_units(model) == [], name
    recorded_with = re.search(r"SymPy (\S+)\)", CHECKED_UNITS.read_text()).group(1)
    if recorded_with != sympy.__version__:  # the structural hash reads SymPy's trees
        pytest.skip(f"verdicts recorded with SymPy {recorded_with}, running {sympy.__version__}")
    current = {unit_signature(model): name for name, model in models.items()}
    assert set(current) == shipped_unit_signatures(), (
        "checked_units.txt is stale: run `python tools/record_unit_verdicts.py`")


def test_rate_rule_on_mass_state_is_rejected():
    """Mass may move only by fluxes; otherwise mass balance would not be structural."""
    model = _tiny(rate_rules=(RateRule("blood", -symbol("k") * symbol("blood")),))
    with pytest.raises(ModelError, match="rate rule on mass state 'blood'"):
        model.validate()


def test_unknown_parameter_override_suggests_nearest(mouse):
    with pytest.raises(ModelError, match=r"'Kmax_livr'; did you mean 'Kmax_liver'"):
        mouse.simulate([1.0], params={"Kmax_livr": 1.0})


def test_unknown_model_lists_bundled_models():
    with pytest.raises(SpecError, match=r"unknown model 'mouse_pbpkk'; did you mean 'mouse_pbpk'\?"):
        nanopk.load_model("mouse_pbpkk")


def test_spec_errors_name_key_and_valid_choices(tmp_path):
    spec = tmp_path / "bad.toml"
    spec.write_text(
        'name = "bad"\nspecies = "mouse"\ndose_target = "venous_blood"\nbogus = 1\n'
        '[[mechanisms]]\nuse = "circulation.whole_bodie"\n'
        '[[mechanisms]]\nuse = "clearance.biliary_excretion"\nrate = 3\n'
    )
    with pytest.raises(SpecError) as info:
        nanopk.load_model(spec)
    text = str(info.value)
    assert "unknown key 'bogus'" in text
    spec.write_text(
        'name = "bad"\nspecies = "mouse"\ndose_target = "venous_blood"\n'
        '[[mechanisms]]\nuse = "circulation.whole_bodie"\n'
        '[[mechanisms]]\nuse = "clearance.biliary_excretion"\nrate = 3\n'
    )
    with pytest.raises(SpecError) as info:
        nanopk.load_model(spec)
    text = str(info.value)
    assert "no variant 'whole_bodie'; did you mean 'whole_body'?" in text
    assert "unknown option 'rate'" in text and "valid options: clearance_constant" in text


def test_particle_validation_lists_choices():
    with pytest.raises(ModelError, match=r"material 'Gold' is unknown.*valid: Au, Ag"):
        Particle(material="Gold")
    with pytest.raises(ModelError, match=r"core_diameter_nm must be a positive number \(got -3\)"):
        Particle(core_diameter_nm=-3)
    with pytest.raises(ModelError, match=r"coating 'PEGG' is unknown; did you mean 'PEG'\?"):
        Particle(coating="PEGG")
    with pytest.raises(ModelError, match="coating 'PEG' needs coating_mw_da"):
        Particle(coating="PEG")


def test_particle_hydrodynamic_diameter_from_peg_shell():
    """PEG5000 adds 26 nm to the hydrodynamic diameter (Chen et al., Nanotechnology 2013;24:355101)."""
    assert Particle("Au", 15, coating="PEG", coating_mw_da=5000).hydrodynamic_diameter == pytest.approx(41.0)
    assert Particle.parse("material=Au,core_diameter_nm=15,coating=PEG,coating_mw_da=5000").coating_mw_da == 5000


def test_solver_failure_names_time_parameters_and_remedy():
    """A blow-up (positive feedback) stops the solver; the error says where and with what."""
    growth = Model("growth", [Part(
        "g", states=(State("blood"), State("gut", "sink")),
        parameters=(Parameter("k", 0.1, "1/h", "test", (-math.inf, math.inf)),),
        fluxes=(Flux("back", "gut", "blood", symbol("k") * sp.exp(symbol("blood") / symbol("dose")) * symbol("dose")),),
    )], "blood")
    with pytest.raises(SolverError, match=r"failed at t = .* h .*Parameters changed from the defaults: k=50.*Try:") as info:
        growth.simulate([1000.0], params={"k": 50.0}, max_steps=500)
    assert info.value.params == {"k": 50.0}
    assert info.value.t_reached < 1000.0


def test_times_must_be_increasing(mouse):
    with pytest.raises(ModelError, match="`times_h` must be increasing"):
        mouse.simulate([4.0, 1.0])


@pytest.mark.parametrize("times", [[-1.0, 2.0], [1.0, math.nan], [0.0, math.inf]])
def test_times_must_be_finite_and_not_negative(mouse, times):
    with pytest.raises(ModelError, match="`times_h` must be finite and ≥ 0"):
        mouse.simulate(times)


def test_a_parameter_that_is_not_finite_is_named(mouse):
    """Every non-finite value is named with its value, before anything is solved."""
    with pytest.raises(ModelError, match=r"2 parameter value\(s\) outside what the model admits:\n"
                                         r"  - parameter 'K50_liver' has a non-finite value nan\n"
                                         r"  - parameter 'P_spleen' has a non-finite value inf"):
        mouse.simulate([1.0], params={"K50_liver": math.nan, "P_spleen": math.inf})


def test_generated_c_brackets_powers_in_denominators():
    """Regression: x/R**3 once printed as x/(R)*(R)*(R) (= x·R) and broke size-dependent EPR."""
    from nanopk.backends.base import SymbolicSystem

    R = symbol("R")
    model = _tiny(
        parameters=(Parameter("k", 0.1, "1/h", "test"), Parameter("R", 2.0, "dimensionless", "test")),
        fluxes=(Flux("out", "blood", "gut", symbol("k") * symbol("blood") / R**3 + symbol("k") * symbol("blood") / R**-2 / 8),),
    )
    fast, ref = model.compile("cvode"), model.compile("reference")
    y = np.array([1.0, 0.0, 0.0])
    p = model.parameter_vector()
    expected = 0.1 / 8 + 0.1 * 4 / 8
    assert ref.rhs(0.0, y, p)[1] == pytest.approx(expected, rel=1e-14)
    assert fast.rhs(0.0, y, p)[1] == pytest.approx(expected, rel=1e-14)
    assert isinstance(SymbolicSystem(model).jacobian, sp.Matrix)


def test_helper_formulas_are_not_mechanism_variants():
    """Only functions taking the build context are mechanisms (helpers like renal_sieving are not)."""
    from nanopk.mechanisms.base import resolve_mechanism

    assert resolve_mechanism("clearance.biliary_excretion").__name__ == "biliary_excretion"
    with pytest.raises(SpecError, match="no variant 'hill'"):
        resolve_mechanism("clearance.hill")
