"""Record the unit-check verdicts of the bundled models in src/nanopk/checked_units.txt.

Run after changing a mechanism, a bundled spec or the unit-checking code::

    python tools/record_unit_verdicts.py

Each bundled model is loaded, its units are checked with pint
(:func:`nanopk.dimensions.check_units`), and its signature
(:func:`nanopk.unitcheck.unit_signature`) is written with its name.  A bundled model's
first load on a new machine then needs neither pint nor the check.
``tests/test_core.py`` fails when the file is stale.  This tool lives outside the
package because it loads every model (it sits above the whole package; nothing in
nanopk imports it).
"""
from __future__ import annotations

import sys

import sympy as sp

from nanopk.dimensions import check_units
from nanopk.errors import ModelError
from nanopk.spec import list_models, load_model
from nanopk.unitcheck import CHECKED_UNITS, unit_signature


def record(path=None) -> list[str]:
    """Check every bundled model and write the signatures to ``path`` (default CHECKED_UNITS).

    Raises
    ------
    ModelError
        If a bundled model fails the check (nothing is written).
    """
    lines = []
    for name in list_models():
        model = load_model(name)
        problems = check_units(model)
        if problems:
            raise ModelError(f"bundled model {name!r} fails the unit check; nothing recorded:", problems)
        lines.append(f"{unit_signature(model)}  {name}")
    header = ("# Unit signatures of the bundled models that passed nanopk.dimensions.check_units\n"
              f"# (SymPy {sp.__version__}).  Written by `python tools/record_unit_verdicts.py`;\n"
              "# tests/test_core.py checks that it is current.\n")
    (CHECKED_UNITS if path is None else path).write_text(header + "\n".join(lines) + "\n")
    return lines


if __name__ == "__main__":
    if sys.argv[1:]:
        sys.exit("usage: python tools/record_unit_verdicts.py")
    for line in record():
        print(line)
