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
