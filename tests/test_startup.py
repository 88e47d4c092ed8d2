"""Start-up stays light: ``import nanopk`` and ``nanopk --help`` load none of the heavy libraries.

SymPy (1.3–2.4 s to import on the shared test machine), pandas, lmfit, pint, SciPy and
matplotlib load only when a model is built, a table made, a fit run or units converted
(issue 25: ``import nanopk`` ≤ 0.15 s).  Each check runs in a fresh interpreter,
because this test process has imported all of them already.
"""
import json
import subprocess
import sys

import pytest

import nanopk

HEAVY = ("sympy", "pandas", "lmfit", "pint", "scipy", "matplotlib", "numpy", "dask")


def _loaded_after(code: str) -> list[str]:
    """The HEAVY top-level packages in ``sys.modules`` after running ``code`` in a fresh interpreter."""
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r}))))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_import_nanopk_loads_no_heavy_library():
    """`import nanopk` imports none of sympy, pandas, lmfit, pint, scipy, matplotlib, numpy, dask."""
    assert _loaded_after("import nanopk") == []


def test_help_loads_no_heavy_library():
    """`nanopk --help` (the whole parser, every subcommand's options) imports none of them either."""
    code = "import contextlib, io\nfrom nanopk.cli import main\ntry:\n    with contextlib.redirect_stdout(io.StringIO()):\n        main(['--help'])\nexcept SystemExit:\n    pass"
    assert _loaded_after(code) == []


def test_error_classes_load_nothing_heavy():
    """The errors and warnings a caller catches come without any heavy import (the CLI silences
    FitWarning and DataWarning before it knows whether it will fit)."""
    assert _loaded_after("from nanopk.errors import FitWarning, DataWarning, NanopkError") == []


@pytest.mark.parametrize("name", sorted(nanopk.__all__) + ["read_dataset", "fit", "compare", "delivery_efficiency",
                                                           "import_sbml", "from_json", "to_sbml"])
def test_lazy_names_resolve_to_their_module_objects(name):
    """Every public name resolves (on first use) to the object its home module defines."""
    value = getattr(nanopk, name)
    home = nanopk._LAZY.get(name)
    if home is not None:
        import importlib

        module = importlib.import_module(home[0])
        assert value is (module if home[1] is None else getattr(module, home[1]))
    assert value is not None


@pytest.mark.parametrize("name", ["fit", "compare"])
def test_fit_and_compare_are_one_callable_object_whatever_was_imported_first(name):
    """`nanopk.fit` / `nanopk.compare` are the callable modules both before and after
    `import nanopk.fit` (a worker that imported the submodule first once saw the module and
    another the function)."""
    import importlib

    first = getattr(nanopk, name)
    module = importlib.import_module(f"nanopk.{name}")
    assert first is module is getattr(nanopk, name) and callable(module)


def test_simulate_stays_the_function_after_its_module_loads():
    """`nanopk.simulate` is the function even after `import nanopk.simulate` bound the submodule."""
    import types

    import nanopk.run  # noqa: F401 - imports nanopk.simulate's neighbours, as a session does
    import nanopk.simulate

    assert not isinstance(nanopk.simulate, types.ModuleType)
    assert nanopk.simulate is sys.modules["nanopk.simulate"].simulate


def test_warnings_are_one_class_each():
    """nanopk.fit.FitWarning and nanopk.data.DataWarning are the classes nanopk.errors defines
    (so the CLI's filter on the errors' classes silences the ones fits and readers raise)."""
    from nanopk import errors
    from nanopk.data import DataWarning
    from nanopk.fit import FitWarning

    assert FitWarning is errors.FitWarning and DataWarning is errors.DataWarning


def test_unknown_attribute_is_an_attribute_error():
    """A misspelt attribute is an AttributeError naming it, not an import of something else."""
    with pytest.raises(AttributeError, match="module 'nanopk' has no attribute 'load_modle'"):
        nanopk.load_modle  # noqa: B018


def test_calibrate_lazy_names():
    """nanopk.calibrate's names load on first use and are its submodules' objects."""
    import nanopk.calibrate as calibrate
    from nanopk.calibrate import core, data

    assert calibrate.calibrate_constants is core.calibrate_constants
    assert calibrate.study_key is data.study_key
    with pytest.raises(AttributeError, match="has no attribute 'calibrate_constant'"):
        calibrate.calibrate_constant  # noqa: B018


# ---------------------------------------------------------------- a cached model (issue 25)
# A model loaded a second time comes from its remembered skeleton (nanopk.prebuilt) and its
# compiled library from the disk cache: no equation is built, so SymPy must not load.  The
# first subprocess makes sure both are cached (it may build them: any edit of nanopk's source
# changes the skeleton's key); the second runs the command and reports what it imported.

#: The README's fit with two parameters given (the automatic selection's six fits would make this
#: file slow; its only model edit, with_parameters, is checked below on its own).
README_FIT = ["fit", "arnida2010_peg_au_sphere_50nm", "--model", "mouse_tumour", "--vary", "K50_spleen,Kmax_liver"]


def _cli_loaded(argv: list[str], model: str) -> tuple[list[str], str]:
    """``(HEAVY and scipy submodules in sys.modules, stdout)`` after ``nanopk <argv>`` on a cached ``model``."""
    warm = f"import nanopk\nnanopk.load_model({model!r}).compile()"
    done = subprocess.run([sys.executable, "-c", warm], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    probe = (
        "import contextlib, io, json, sys\nfrom nanopk.cli import main\nout = io.StringIO()\n"
        f"with contextlib.redirect_stdout(out):\n    status = main({argv!r})\n"
        "mods = {m.split('.')[0] for m in sys.modules} | {m for m in sys.modules if m.startswith('scipy.')}\n"
        f"print(json.dumps([status, sorted(mods & set({HEAVY!r} + ('scipy.stats', 'scipy.optimize'))), out.getvalue()]))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    status, loaded, stdout = json.loads(done.stdout.strip().splitlines()[-1])
    assert status in (0, None), stdout
    return loaded, stdout


def test_simulate_on_a_cached_model_loads_neither_sympy_nor_pint():
    """`nanopk simulate mouse_pbpk` on a cached model imports pandas and numpy only: not SymPy (the
    equations stay unbuilt), pint, SciPy, lmfit, matplotlib or dask."""
    loaded, stdout = _cli_loaded(["simulate", "mouse_pbpk"], "mouse_pbpk")
    assert loaded == ["numpy", "pandas"]
    assert "total" in stdout  # it did simulate: the mass-balance column is printed


def test_readme_fit_on_a_cached_model_loads_no_sympy_and_no_dask():
    """The README's `nanopk fit` (population priors, DE24 with prediction-profile intervals) on a
    cached model never builds the model's equations, so SymPy is not imported; pint reads the
    units without dask; lmfit, SciPy and pandas are what the fit itself needs."""
    loaded, stdout = _cli_loaded(README_FIT, "mouse_tumour")
    assert "sympy" not in loaded and "dask" not in loaded
    assert {"lmfit", "pandas", "pint", "scipy"} <= set(loaded)
    assert "DE24" in stdout  # the whole report was printed


def test_deferred_with_parameters_keeps_the_equations_unbuilt():
    """`with_parameters` on a recalled model gives a recalled model with the new values (its
    equations still deferred) that simulates exactly as the same values given to a built model."""
    import numpy as np

    from nanopk.spec import load_model

    load_model("mouse_pbpk")  # remembered (built here if the source changed)
    recalled = load_model("mouse_pbpk")
    assert "_build" in recalled.__dict__  # recalled from its skeleton, equations not built
    changed = recalled.with_parameters(Kmax_liver=3.0)
    assert "_build" in changed.__dict__ and "_fluxes" not in changed.__dict__
    assert changed.parameters["Kmax_liver"].value == 3.0 and recalled.parameters["Kmax_liver"].value != 3.0
    assert changed.structure_hash == recalled.structure_hash and changed.validated
    times = [1, 4, 24, 168]
    direct = recalled.simulate(times, params={"Kmax_liver": 3.0})
    np.testing.assert_array_equal(changed.simulate(times).to_numpy(), direct.to_numpy())  # same solve: bit-identical
    assert changed.fluxes and changed.observables["liver"].expr is not None  # built on demand
    assert len(changed.fluxes) == len(recalled.fluxes)


def test_deferred_with_parameters_refuses_what_a_built_model_refuses():
    """A value outside a parameter's bounds is refused by the recalled model's copy as by a built one."""
    from nanopk.errors import ModelError
    from nanopk.spec import load_model

    load_model("mouse_pbpk")
    recalled = load_model("mouse_pbpk")
    with pytest.raises(ModelError, match="Kmax_liver"):
        recalled.with_parameters(Kmax_liver=-1.0).ensure_valid()
    with pytest.raises(ModelError, match="Kmax_livr"):
        recalled.with_parameters(Kmax_livr=1.0)


def test_pint_is_imported_without_dask_and_dask_still_imports():
    """nanopk's pint comes without dask (0.2-0.5 s), and dask can be imported after it."""
    code = "import nanopk.units, sys\nassert 'dask' not in sys.modules\nimport dask  # noqa: F401\n"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_percent_id_factor_remembers_only_successes():
    """The remembered %ID factors are the computed ones (Arnida-style %ID/g × 1.1 g = 11 %ID, exact)
    and a unit that cannot be converted raises every time."""
    from nanopk.data.convert import _percent_id_factor, percent_id_factor

    assert percent_id_factor("%ID/g", 1.1) == _percent_id_factor("%ID/g", 1.1, None) == percent_id_factor("%ID/g", 1.1)
    assert 10 * percent_id_factor("%ID/g", organ_mass_g=1.1) == pytest.approx(11.0, rel=1e-12)
    for _ in range(2):
        with pytest.raises(ValueError, match="needs the organ mass"):
            percent_id_factor("%ID/g")
