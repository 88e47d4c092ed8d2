"""backend="roadrunner": nanopk's SBML in libroadrunner gives the compiled backend's answers, without a compiler."""
from __future__ import annotations

import builtins
import warnings

import numpy as np
import pytest

import nanopk
import nanopk.compile as compile_
from nanopk.compile import BackendFallbackWarning, compile_model
from nanopk.errors import BackendError, ModelError, NanopkError

pytest.importorskip("roadrunner")
pytest.importorskip("libsbml")

TIMES = [0.0, 0.25, 1.0, 4.0, 24.0, 72.0, 168.0]
#: Both solvers at tight tolerances, so that their difference is the backends', not the tolerance's.
TIGHT = {"rtol": 1e-10, "atol": 1e-14}


def relative_difference(a, b) -> float:
    """max |a − b| / |b|, each column's values below 1e-6 of its largest taken at that floor (near-zero outputs)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    scale = np.maximum(np.abs(b), 1e-6 * np.abs(b).max(axis=0, keepdims=True))
    scale = np.where(scale > 0, scale, 1.0)
    return float(np.max(np.abs(a - b) / scale))


@pytest.mark.parametrize("name", nanopk.list_models())
def test_every_bundled_model_matches_cvode(name):
    """Every bundled model: all observables at 0-168 h equal the compiled CVODE backend's to 1e-6 relative."""
    model = nanopk.load_model(name)
    rr = model.simulate(TIMES, backend="roadrunner", **TIGHT)
    cv = model.simulate(TIMES, backend="cvode", **TIGHT)
    assert rr.attrs["backend"] == "roadrunner"
    assert list(rr.columns) == list(cv.columns)
    assert relative_difference(rr, cv) < 1e-6


def test_dosing_schedule_and_parameters_match_cvode():
    """A bolus, a later infusion and changed parameters: the same trajectories as cvode (1e-6), total 100 %ID."""
    model = nanopk.load_model("mouse_pbpk")
    dose = nanopk.Dosing([nanopk.Bolus(10.0, time_h=0.0), nanopk.Infusion(10.0, duration_h=2.0, start_h=24.0)])
    params = {"Kmax_liver": 2.0, "BW": 0.025}
    rr = model.simulate(TIMES, params=params, dose=dose, backend="roadrunner", **TIGHT)
    cv = model.simulate(TIMES, params=params, dose=dose, backend="cvode", **TIGHT)
    assert relative_difference(rr, cv) < 1e-6
    np.testing.assert_allclose(rr["total"], 100.0, rtol=1e-8)


def test_default_tolerances_are_honoured():
    """At the default rtol 1e-6 the answer is within 1e-4 of the tight one; at 1e-10 within 1e-7."""
    model = nanopk.load_model("two_compartment_iv")
    tight = model.simulate(TIMES, backend="cvode", rtol=1e-12, atol=1e-16)
    loose = model.simulate(TIMES, backend="roadrunner")
    assert relative_difference(loose, tight) < 1e-4
    assert relative_difference(model.simulate(TIMES, backend="roadrunner", **TIGHT), tight) < 1e-7


def test_a_fit_on_roadrunner_reaches_the_cvode_optimum():
    """A forward-difference fit (Kmax_liver, Hirn 2011 18 nm, rat_pbpk) reaches cvode's χ² and estimate to 1e-6 relative."""
    model = nanopk.load_model("rat_pbpk")
    kw = dict(vary=["Kmax_liver"], uncertainty=False, warn=False, checks=False, auto_profile=False, workers=1)
    rr = nanopk.fit(model, "hirn2011_au_18nm", backend="roadrunner", **kw)
    cv = nanopk.fit(model, "hirn2011_au_18nm", backend="cvode", **kw)
    assert rr.metrics["chisqr"] == pytest.approx(cv.metrics["chisqr"], rel=1e-6)
    assert rr.params["Kmax_liver"].value == pytest.approx(cv.params["Kmax_liver"].value, rel=1e-6)


@pytest.fixture
def no_compiler(tmp_path, monkeypatch):
    """CC names no program, the cache is empty and nothing compiled before is remembered."""
    monkeypatch.setenv("CC", str(tmp_path / "no-such-cc"))
    monkeypatch.setenv("NANOPK_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(compile_, "_MEMO", {})


def test_auto_without_compiler_chooses_roadrunner(no_compiler):
    """No C compiler: 'auto' warns once (naming CC) and runs libroadrunner, with the cvode answer; 'cvode' is a BackendError."""
    model = nanopk.load_model("one_compartment_iv")
    with pytest.warns(BackendFallbackWarning, match=r"uses the libroadrunner backend because the compiled one is unavailable: "
                                                    r"the C compiler CC='.*no-such-cc' was not found"):
        sim = model.simulate(TIMES, **TIGHT)
    assert sim.attrs["backend"] == "roadrunner"
    with pytest.raises(BackendError, match=r"the C compiler CC='.*no-such-cc' was not found or is not executable"):
        compile_model(model, "cvode")
    assert issubclass(BackendError, NanopkError)


def test_auto_without_compiler_or_roadrunner_says_how_to_get_the_fast_path(no_compiler, monkeypatch):
    """No compiler and no libroadrunner: the reference backend, and the warning names the extra to install."""
    monkeypatch.setattr("nanopk.backends.roadrunner.roadrunner_available", lambda: False)
    model = nanopk.load_model("one_compartment_iv")
    with pytest.warns(BackendFallbackWarning, match=r"slower reference backend .*\(libroadrunner, the fast path without a "
                                                    r"compiler, is not installed either: pip install 'nanopk\[sbml\]'"):
        compiled = compile_model(model, "auto")
    assert compiled.backend == "reference"


def test_missing_roadrunner_is_an_actionable_import_error(monkeypatch):
    """Without libroadrunner, backend='roadrunner' raises ImportError naming the extra to install."""
    real_import = builtins.__import__

    def no_roadrunner(name, *args, **kwargs):
        if name == "roadrunner":
            raise ImportError("No module named 'roadrunner'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_roadrunner)
    monkeypatch.setattr(compile_, "_MEMO", {})
    with pytest.raises(ImportError, match=r"backend='roadrunner' needs libroadrunner and python-libsbml: pip install 'nanopk\[sbml\]'"):
        compile_model(nanopk.load_model("one_compartment_iv"), "roadrunner")


def test_unknown_backend_lists_roadrunner():
    """A misspelt backend is a ModelError that lists every valid one, roadrunner among them."""
    with pytest.raises(ModelError, match=r"unknown backend 'roadruner'; valid: auto, cvode, roadrunner, reference"):
        compile_model(nanopk.load_model("one_compartment_iv"), "roadruner")


def test_solver_failure_is_a_result_not_an_exception():
    """A step budget too small ends the solve with success False and libroadrunner's message."""
    model = nanopk.load_model("mouse_pbpk")
    compiled = compile_model(model, "roadrunner")
    p = model.parameter_vector()
    y0 = compiled.initial_state(p)
    y0[model.state_names.index(model.dose_target)] = 17.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = compiled.solve(0.0, y0, p, [1000.0], 1e-8, 1e-12, max_steps=3)
    assert not res.success and res.message.startswith("libroadrunner:")
    ok = compiled.solve(0.0, y0, p, [1.0], 1e-8, 1e-12)
    assert ok.success and np.isclose(ok.y[-1].sum(), 17.0, rtol=1e-8)
