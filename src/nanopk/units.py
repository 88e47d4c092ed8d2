"""One pint registry for nanopk, with the pharmacokinetic units defined once.

``percent_ID`` (%ID) is a fraction of the injected dose, dimensionless like any ratio
of masses (``100 · A/dose``); %ID/g is that per gram of tissue, so
``%ID/g × organ mass = %ID`` and ``ng/g × organ mass / dose = %ID`` are ordinary unit
algebra.

Model parameters carry their unit as a string (``"1/h"``, ``"L/h/kg**0.75"``); ``ureg``
parses them and :func:`dimensionality` gives what ``Model.validate`` compares.
"""
from __future__ import annotations

import functools
import sys

from .resources import cache_dir


def _import_pint():
    """pint, imported without its optional dask support unless dask is already loaded.

    pint imports dask at start-up when it is installed (``pint.compat``), 0.2-0.5 s of
    every command that reads a dataset (issue 25); nanopk never puts a dask array in a
    pint quantity.  A process that has imported dask before pint keeps pint's dask
    support, and dask itself stays importable afterwards.
    """
    if "pint" in sys.modules or "dask" in sys.modules:
        import pint

        return pint
    sys.modules["dask"] = None  # find_spec("dask") is None: pint sees no dask
    try:
        import pint
    finally:
        if "dask" in sys.modules and sys.modules["dask"] is None:
            del sys.modules["dask"]
    return pint


pint = _import_pint()

__all__ = [
    "ureg", "Q_", "parse_unit", "dimensionality", "to_pint_string",
    "is_dose_fraction", "COMMON_UNITS",
]


def _registry() -> pint.UnitRegistry:
    """pint's registry, its parsed definitions cached on disk.

    Parsing pint's definition file takes ~0.3 s in every process — most of loading a
    cached model.  pint can keep the parsed result in a cache folder (here
    ``$NANOPK_CACHE_DIR/pint``, default ``~/.cache/nanopk/pint``); a registry built from
    it is the same.  If the folder cannot be used (read-only home, a cache file being
    written by another process) the registry is built without it.
    """
    try:
        folder = cache_dir() / "pint"
        folder.mkdir(exist_ok=True)
        return pint.UnitRegistry(autoconvert_offset_to_baseunit=True, cache_folder=folder)
    except Exception:  # any failure of the optional cache: fall back to parsing
        return pint.UnitRegistry(autoconvert_offset_to_baseunit=True)


ureg = _registry()
# A fraction of the injected dose: 1 ID = 100 %ID (a mass ratio, hence dimensionless).
ureg.define("injected_dose = 1 = ID")
ureg.define("percent_ID = 0.01 * injected_dose = pct_ID")
Q_ = ureg.Quantity

# Spellings labs use in spreadsheets and sidecars, mapped to pint expressions.
_ALIASES = {
    "%id": "percent_ID",
    "%id/g": "percent_ID / gram",
    "%id/ml": "percent_ID / milliliter",
    "%id/organ": "percent_ID",
    "µg/g": "microgram / gram",
    "ug/g": "microgram / gram",
    "ng/g": "nanogram / gram",
    "ng/ml": "nanogram / milliliter",
    "µg/ml": "microgram / milliliter",
    "ug/ml": "microgram / milliliter",
    "µg/organ": "microgram",
    "ug/organ": "microgram",
    "ng/organ": "nanogram",
    "µg": "microgram",
    "ug": "microgram",
    "ng": "nanogram",
    "mg": "milligram",
    "ng/mg": "nanogram / milligram",
    "µg/mg": "microgram / milligram",
    "ug/mg": "microgram / milligram",
    "mg/kg": "milligram / kilogram",
    "µg/kg": "microgram / kilogram",
    "ug/kg": "microgram / kilogram",
    "%id/cc": "percent_ID / milliliter",
    "%id/kg": "percent_ID / kilogram",
    "1": "dimensionless",
    "": "dimensionless",
}


#: Units biodistribution data usually come in (for "did you mean" suggestions).
COMMON_UNITS = ("%ID", "%ID/g", "%ID/mL", "ng/g", "µg/g", "ng/mL", "µg/mL", "µg/organ", "ng", "µg", "mg/kg")


def to_pint_string(unit: str) -> str:
    """Map a lab spelling (``"%ID/g"``, ``"µg/g"``) to a pint expression."""
    # Greek small mu (U+03BC) looks like the micro sign (U+00B5) and both are typed.
    key = str(unit).strip().replace("\u03bc", "µ")
    return _ALIASES.get(key.lower(), key.replace("µ", "u").replace("%", "percent_"))


@functools.lru_cache(maxsize=512)
def parse_unit(unit: str) -> pint.Unit:
    """Parse a unit string; raises ``pint.UndefinedUnitError`` for unknown names."""
    return ureg.parse_units(to_pint_string(unit))


def is_dose_fraction(unit: str) -> bool:
    """Whether ``unit`` measures a fraction of the injected dose (%ID, %ID/g, ID/mL...).

    pint treats %ID and a mass ratio such as ng/g alike (both dimensionless), so the
    distinction is made on the unit's names: a dose fraction contains ``percent_ID`` or
    ``injected_dose``.  Raises ``pint.UndefinedUnitError`` for an unknown unit.
    """
    names = parse_unit(unit)._units
    return any(name in names for name in ("percent_ID", "injected_dose"))


def dimensionality(unit: str):
    """The pint dimensionality of a unit string (e.g. ``[mass] / [time]``)."""
    return parse_unit(unit).dimensionality
