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

import pint

__all__ = ["ureg", "Q_", "parse_unit", "dimensionality", "to_pint_string"]

ureg = pint.UnitRegistry(autoconvert_offset_to_baseunit=True)
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
    "1": "dimensionless",
    "": "dimensionless",
}


def to_pint_string(unit: str) -> str:
    """Map a lab spelling (``"%ID/g"``, ``"µg/g"``) to a pint expression."""
    key = str(unit).strip()
    return _ALIASES.get(key.lower(), key.replace("µ", "u").replace("%", "percent_"))


@functools.lru_cache(maxsize=512)
def parse_unit(unit: str) -> pint.Unit:
    """Parse a unit string; raises ``pint.UndefinedUnitError`` for unknown names."""
    return ureg.parse_units(to_pint_string(unit))


def dimensionality(unit: str):
    """The pint dimensionality of a unit string (e.g. ``[mass] / [time]``)."""
    return parse_unit(unit).dimensionality
