"""The examples in the docstrings run, and print what they say (doctest, every module that has one)."""
from __future__ import annotations

import doctest
import importlib
import pkgutil
from pathlib import Path

import pytest

import nanopk

SRC = Path(nanopk.__file__).parent


def _modules_with_examples() -> list[str]:
    names = []
    for info in pkgutil.walk_packages([str(SRC)], prefix="nanopk."):
        if info.name.startswith("nanopk._bundled") or info.name.startswith("nanopk.web"):
            continue
        path = SRC.joinpath(*info.name.split(".")[1:])
        file = path / "__init__.py" if info.ispkg else path.with_suffix(".py")
        if file.exists() and ">>>" in file.read_text(encoding="utf-8"):
            names.append(info.name)
    return sorted(names)


MODULES = _modules_with_examples()


def test_the_examples_are_found():
    """The collector sees the modules that document examples (dosing and epr among them), so a broken
    walk cannot pass as 'no doctest failed'."""
    assert {"nanopk.dosing", "nanopk.mechanisms.epr"} <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    """Every ``>>>`` example of the module gives the output its docstring shows (ELLIPSIS allowed)."""
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False,
                             report=True)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples in {name} failed (see the output above)"
