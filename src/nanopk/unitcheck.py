"""Whether a model's units need checking, and the check's memo.

The unit check evaluates every rate law on pint quantities, and importing pint alone
costs ~0.3 s; together they were most of loading a cached model.  A model whose
equations, declared units and checking code are those of one that passed before
passes again, so a marker file under the cache directory, keyed by all three, lets
later processes skip both.  The bundled models' signatures ship with the package
(CHECKED_UNITS, written by ``python tools/record_unit_verdicts.py`` after the check
passed on each, and compared with the models by the tests), so a bundled model's
first load on a new machine needs neither pint nor the check either.

This module imports neither pint nor the model: the model asks it, and the analysis
itself (:mod:`nanopk.dimensions`) is imported only when a model has to be checked.
"""
from __future__ import annotations

import functools
import hashlib
from pathlib import Path

__all__ = ["check_units", "unit_signature", "units_known_good", "remember_units_good", "shipped_unit_signatures",
           "CHECKED_UNITS"]


def check_units(model) -> list[str]:
    """Every unit problem in ``model`` (:func:`nanopk.dimensions.check_units`)."""
    from .dimensions import check_units as check

    return check(model)


#: The bundled models' unit signatures that passed the check (package data).
CHECKED_UNITS = Path(__file__).resolve().parent / "checked_units.txt"


@functools.cache
def shipped_unit_signatures() -> frozenset[str]:
    """Signatures in :data:`CHECKED_UNITS` (first word of each non-comment line)."""
    try:
        lines = CHECKED_UNITS.read_text().splitlines()
    except OSError:  # a missing file only costs the check
        return frozenset()
    return frozenset(line.split()[0] for line in lines if line.strip() and not line.startswith("#"))


@functools.cache
def _unit_checker_hash() -> str:
    """Hash of the checking code (read once per process, not once per model)."""
    here = Path(__file__).resolve().parent
    return hashlib.sha256(b"".join((here / f).read_bytes() for f in ("unitcheck.py", "dimensions.py", "units.py"))).hexdigest()


def unit_signature(model) -> str:
    """What the unit check's verdict depends on: equations, declared units, checking code."""
    h = hashlib.sha256(model.structure_hash.encode())
    declared = [(s.name, s.unit) for s in model.states] + [(p.name, p.unit) for p in model.parameters.values()]
    declared += [(a.name, a.unit) for a in model.assignments]
    h.update(repr(declared).encode())
    h.update(_unit_checker_hash().encode())
    return h.hexdigest()[:24]


def _unit_marker(signature: str):
    from .resources import cache_dir  # resources imports nothing of nanopk's

    return cache_dir() / "unitcheck" / signature


def units_known_good(signature: str) -> bool:
    if signature in shipped_unit_signatures():
        return True
    try:
        return _unit_marker(signature).is_file()
    except OSError:  # an unreadable cache only costs the check
        return False


def remember_units_good(signature: str) -> None:
    try:
        marker = _unit_marker(signature)
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.touch()
    except OSError:
        pass
