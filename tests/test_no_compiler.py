"""A machine without a C compiler: the reference fallback gives the compiled path's answers.

Issue 17 #9: without a compiler the default (multi-threaded) fit of the README gave
DE24 between 0.8 and 10 %ID instead of 0.47, and success False, because the fallback
was re-tried and re-warned on every simulation, every warning counted as a solver
failure, and ``warnings.catch_warnings`` in the reference solver caught the other
threads' warnings.  Here the compiler is made unavailable the way a machine lacks one
(``CC`` names no program and the cache is empty), so the real fallback path runs.
"""
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import nanopk
import nanopk.compile as compile_
from nanopk.backends.reference import ReferenceModel
from nanopk.compile import BackendFallbackWarning, compile_model
from nanopk.fit import FitWarning

DATASET = "arnida2010_peg_au_sphere_50nm"
#: The README's fit (mouse_tumour to Arnida 2011's 50 nm PEG-gold sphere data) with its
#: four tumour parameters varied instead of all ten: the same model, data, error model,
#: tolerances and threaded finite-difference Jacobian, in a fifth of the time of the
#: full fit on the reference backend (~16 s instead of ~60-90 s on 2 busy cores).  The
#: full README command was compared by hand (see the commit message).
TUMOUR = ["PATC_tumour", "P_tumour", "Kmax_tumour", "Krelease_tumour"]


@pytest.fixture
def no_compiler(tmp_path, monkeypatch):
    """CC names no program, the cache is empty and nothing compiled before is remembered.

    libroadrunner is hidden too, so that ``auto`` falls back to the reference backend
    tested here (with it, ``auto`` runs libroadrunner: tests/test_backend_roadrunner.py)."""
    monkeypatch.setenv("CC", str(tmp_path / "no-such-cc"))
    monkeypatch.setenv("NANOPK_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(compile_, "_MEMO", {})
    monkeypatch.setattr("nanopk.backends.roadrunner.roadrunner_available", lambda: False)
    return tmp_path


@pytest.fixture(scope="module")
def compiled_fit():
    """The fit and its DE24 on the compiled backend (the fast path)."""
    model = nanopk.load_model("mouse_tumour")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitWarning)
        fit = nanopk.fit(model, DATASET, vary=TUMOUR)
    assert fit.metrics["chisqr"] > 0
    return fit, nanopk.delivery_efficiency(fit, n_samples=0)["DE24"]["value"]


def test_fallback_is_chosen_once_with_one_warning(no_compiler):
    """From many calls on several threads: one warning naming CC, one reference model."""
    model = nanopk.load_model("mouse_pbpk")
    with pytest.warns(BackendFallbackWarning, match=r"compiled one is unavailable: the C compiler CC='.*no-such-cc' "
                      r"was not found or is not executable") as record:
        first = compile_model(model, "auto")
        with ThreadPoolExecutor(4) as pool:
            others = list(pool.map(lambda _: compile_model(model, "auto"), range(16)))
    assert len([w for w in record if issubclass(w.category, BackendFallbackWarning)]) == 1
    assert isinstance(first, ReferenceModel) and all(o is first for o in others)


def test_explicit_cvode_says_why_it_is_unavailable(no_compiler):
    """backend='cvode' raises BackendUnavailable with the reason, not a FileNotFoundError."""
    from nanopk.backends.cvode import BackendUnavailable

    with pytest.raises(BackendUnavailable, match=r"the C compiler CC='.*no-such-cc' was not found or is not executable "
                                                 r"\(point CC to a C compiler, or unset it"):
        compile_model(nanopk.load_model("mouse_pbpk"), "cvode")


def test_a_warning_inside_the_reference_solver_is_not_a_failure():
    """A harmless warning raised by the right-hand side leaves a successful solve successful."""
    model = nanopk.load_model("mouse_pbpk")
    ref = compile_model(model, "reference")
    p = model.parameter_vector()
    y0 = ref.initial_state(p)
    y0[0] = 17.0
    plain = ref.solve(0.0, y0, p, [1.0, 24.0], 1e-8, 1e-12)
    noisy = ReferenceModel(ref.system)
    real = noisy._f

    def f(t, y, p):
        warnings.warn("harmless", UserWarning)
        return real(t, y, p)

    noisy._f = f
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the user's filter decides, not the solver
        res = noisy.solve(0.0, y0, p, [1.0, 24.0], 1e-8, 1e-12)
    assert plain.success and res.success, res.message
    np.testing.assert_array_equal(res.y, plain.y)


def test_another_threads_warning_is_neither_a_failure_nor_lost():
    """A warning issued by another thread while a reference solve runs does not fail the
    solve and reaches that thread's filters (catch_warnings in the solver did both)."""
    model = nanopk.load_model("mouse_pbpk")
    ref = ReferenceModel(compile_model(model, "reference").system)
    p = model.parameter_vector()
    y0 = ref.initial_state(p)
    y0[0] = 17.0
    expected = ref.solve(0.0, y0, p, [1.0, 24.0], 1e-8, 1e-12)
    inside, warned, raised = threading.Event(), threading.Event(), []
    real = ref._f

    def f(t, y, p):  # the first evaluation waits until the other thread has warned
        if not inside.is_set():
            inside.set()
            warned.wait(10)
        return real(t, y, p)

    def other():
        inside.wait(10)
        try:
            warnings.warn("another thread's warning", UserWarning)
        except UserWarning as exc:  # the "error" filter below, not the solver, got it
            raised.append(exc)
        warned.set()

    ref._f = f
    with warnings.catch_warnings():  # set before the threads start, restored after they end
        warnings.simplefilter("error", UserWarning)
        thread = threading.Thread(target=other)
        thread.start()
        res = ref.solve(0.0, y0, p, [1.0, 24.0], 1e-8, 1e-12)
        thread.join()
    assert inside.is_set() and warned.is_set()
    assert res.success, res.message
    np.testing.assert_array_equal(res.y, expected.y)
    assert [str(e) for e in raised] == ["another thread's warning"]


def test_default_fit_without_compiler_gives_the_compiled_answer(compiled_fit, no_compiler):
    """The default threaded fit on the fallback: χ² equal to 1e-6 relative, DE24 to 1e-4
    (issue 17 #9), with one fallback warning and no solver failure."""
    fit_c, de24_c = compiled_fit
    model = nanopk.load_model("mouse_tumour")
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        fit_r = nanopk.fit(model, DATASET, vary=TUMOUR)
        de24_r = nanopk.delivery_efficiency(fit_r, n_samples=0)["DE24"]["value"]
    fallbacks = [w for w in record if issubclass(w.category, BackendFallbackWarning)]
    assert len(fallbacks) == 1, [str(w.message) for w in record]
    assert isinstance(compile_model(model, "auto"), ReferenceModel)
    assert fit_r.objective.n_solver_failures == 0
    assert fit_r.metrics["chisqr"] == pytest.approx(fit_c.metrics["chisqr"], rel=1e-6)
    assert de24_r == pytest.approx(de24_c, rel=1e-4)


def test_public_odeint_path_gives_the_same_answers(monkeypatch):
    """If scipy's private LSODA entry point changes, the public odeint path is used: the
    same states on success, and a failure is a result, not an ODEintWarning."""
    import nanopk.backends.reference as reference

    model = nanopk.load_model("mouse_pbpk")
    ref = compile_model(model, "reference")
    p = model.parameter_vector()
    y0 = ref.initial_state(p)
    y0[0] = 17.0
    private = ref.solve(0.0, y0, p, [1.0, 24.0], 1e-8, 1e-12)
    monkeypatch.setattr(reference, "_lsoda", reference._lsoda_public)
    public = ref.solve(0.0, y0, p, [1.0, 24.0], 1e-8, 1e-12)
    assert private.success and public.success
    np.testing.assert_array_equal(public.y, private.y)
    failed = ref.solve(0.0, y0, p, [1000.0], 1e-8, 1e-12, max_steps=3)
    assert not failed.success and 0.0 <= failed.t_reached < 1000.0
