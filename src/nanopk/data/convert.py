"""Unit conversion of biodistribution measurements to %ID of the whole organ, with pint.

A measurement is either a fraction of the injected dose (%ID, %ID/g, %ID/mL) or an
amount of nanoparticle material (µg/organ, ng/g, µg/g, ng/mL).  With the organ mass
``M`` (g) and the dose ``D`` (µg) the conversions are ordinary unit algebra:

    %ID            ->  %ID                        (already a whole-organ amount)
    %ID/g          ->  %ID/g × M
    %ID/mL         ->  %ID/mL × M / ρ
    µg (per organ) ->  100 · m / D
    ng/g, µg/g     ->  100 · c × M / D
    ng/mL, µg/mL   ->  100 · c × M / ρ / D

with tissue density ρ = 1 g/mL (1 g of tissue or blood ≈ 1 mL; whole blood is 1.05-1.06
g/mL, so %ID/mL data converted this way carry a ~5 % uncertainty).  pint does every
step, so a unit that cannot be turned into %ID (mol/g, Bq/g) is an error, never a
silent factor of 1000.  The conversion is linear, so an SD, an SEM or a limit of
quantification converts with the same factor as the value.

The dose is converted to µg the same way: a mass dose directly, a dose per body mass
(mg/kg) times the body weight.

Bare numbers are refused, never guessed.  pint reads ``percent``, ``1``,
``dimensionless``, ``ppm`` -- and ``g/g``, whose units cancel -- as plain numbers, the
same kind of quantity as a mass ratio, so before this rule ``18.2 percent`` of blood
became 18.2 % of a gram per gram of tissue, 364 000 %ID.  A bare percentage is
ambiguous (of the dose in the whole organ, per gram, or of the tissue mass?) and a bare
fraction is 100 times off if read as a percentage, so :func:`bare_number_hint` names
what to write instead: ``%ID`` / ``%ID/g`` / ``%ID/mL`` for percentages of the injected
dose, ``ID`` (1 ID = 100 %ID) for fractions 0-1 of it, ``ug/g`` for ppm by mass.
Every spelling in :data:`BARE_NUMBER_SPELLINGS` (``%``, ``percent``, ``pct``, ``1``,
``dimensionless``, ``fraction``, ``ratio``, ``ppm``...), alone or per g or per mL, is
refused with that message, in the sidecar's ``value_unit``, a ``unit`` column, a wide
sheet's header and the dose unit alike.
"""
from __future__ import annotations

import functools
import math

from ..units import pint  # without dask (nanopk.units._import_pint)

from ..units import Q_, is_dose_fraction, parse_unit

__all__ = [
    "TISSUE_DENSITY_G_PER_ML",
    "UnitKind",
    "classify_unit",
    "needs_mass",
    "needs_dose",
    "percent_id_factor",
    "dose_in_ug",
    "hours_per",
    "bare_number_hint",
    "BARE_NUMBER_SPELLINGS",
]

#: 1 g of tissue or blood is taken as 1 mL (Brown et al., Toxicol Ind Health 1997;13:407
#: use the same convention for organ volumes).
TISSUE_DENSITY_G_PER_ML = 1.0


class UnitKind:
    """What a measurement unit measures (the strings are stable; they appear in messages)."""

    DOSE_FRACTION = "fraction of dose per organ"        # %ID
    DOSE_FRACTION_PER_MASS = "fraction of dose per g"    # %ID/g
    DOSE_FRACTION_PER_VOLUME = "fraction of dose per mL"  # %ID/mL
    AMOUNT = "amount per organ"                         # µg, ng/organ
    AMOUNT_PER_MASS = "amount per g"                    # ng/g, µg/g
    AMOUNT_PER_VOLUME = "amount per mL"                 # ng/mL, µg/mL


_PINT_ERRORS = (pint.errors.PintError, AttributeError, TypeError, ValueError, AssertionError, KeyError)
_MASS = Q_(1.0, "gram").dimensionality
_PER_MASS = (1 / Q_(1.0, "gram")).dimensionality
_PER_VOLUME = (1 / Q_(1.0, "milliliter")).dimensionality
_MASS_PER_VOLUME = Q_(1.0, "gram / milliliter").dimensionality
_TIME = Q_(1.0, "hour").dimensionality


#: Spellings of a bare number (lower case), each with what a user most likely meant.
BARE_NUMBER_SPELLINGS: dict[str, str] = {
    "%": "percent", "percent": "percent", "pct": "percent", "per cent": "percent", "%age": "percent",
    "1": "fraction", "dimensionless": "fraction", "fraction": "fraction", "ratio": "fraction",
    "unitless": "fraction", "none": "fraction", "-": "fraction", "frac": "fraction",
    "ppm": "ppm", "ppb": "ppb", "permille": "permille", "‰": "permille", "ppt": "ppt",
}
_PER = {"": "", "g": "/g", "gram": "/g", "gr": "/g", "ml": "/mL", "cc": "/mL", "cm3": "/mL", "organ": ""}


def bare_number_hint(unit) -> str | None:
    """Why ``unit`` is refused and what to write instead, if it is a bare number; else ``None``.

    >>> bare_number_hint("%ID") is None
    True
    >>> print(bare_number_hint("percent"))
    'percent' is a bare number, not a unit nanopk can convert: a percentage of the injected dose in the whole organ is '%ID', per gram of tissue '%ID/g', per mL '%ID/mL'
    """
    text = str(unit).strip().lower().replace("\u03bc", "µ")
    if not text:
        return None  # a missing unit is reported as missing, not as a bare number
    head, _, tail = text.partition("/")
    head, tail = head.strip(), tail.strip()
    kind = BARE_NUMBER_SPELLINGS.get(head)
    if kind is None:
        try:
            parsed = parse_unit(unit)
        except _PINT_ERRORS:
            return None  # unknown: reported as unknown, with the nearest spellings
        names = parsed._units
        pure = [n for n in names if n in ("percent", "ppm", "permille")]
        if is_dose_fraction(unit) or (names and not pure):
            return None  # a real unit (ng/g, %ID/g, µg)
        # "g/g" and the like cancel to a plain number: a fraction
        kind = {"percent": "percent", "ppm": "ppm", "permille": "permille"}.get(pure[0], "fraction") if pure else "fraction"
        dim = parsed.dimensionality
        per = "/g" if dim == _PER_MASS else ("/mL" if dim == _PER_VOLUME else "")
    else:
        if tail not in _PER:
            per = "/g" if tail.endswith("g") else ("/mL" if tail.endswith("ml") else "")
        else:
            per = _PER[tail]
    said = f"{str(unit).strip()!r} is a bare number, not a unit nanopk can convert: "
    if kind == "percent":
        if per:
            return said + f"a percentage of the injected dose per {per[1:]} of tissue is '%ID{per}'"
        return said + "a percentage of the injected dose in the whole organ is '%ID', per gram of tissue '%ID/g', per mL '%ID/mL'"
    if kind == "fraction":
        return said + (f"a fraction 0-1 of the injected dose per {per[1:]} is 'ID{per}' (1 ID = 100 %ID); "
                       f"percentages of the dose are '%ID{per}'" if per else
                       "a fraction 0-1 of the injected dose in the whole organ is 'ID' (1 ID = 100 %ID), "
                       "a percentage '%ID' (per gram '%ID/g'); a mass ratio of tissue is e.g. 'ug/g'")
    if kind == "ppm":
        return said + "1 ppm by mass is 1 µg per g of tissue: write 'ug/g' (or 'ug/mL' for a fluid)"
    if kind == "ppb":
        return said + "1 ppb by mass is 1 ng per g of tissue: write 'ng/g' (or 'ng/mL' for a fluid)"
    return said + "write the amount per g of tissue (e.g. 'ug/g'), or a fraction of the dose ('%ID', '%ID/g')"


def classify_unit(unit: str) -> str | None:
    """The :class:`UnitKind` of ``unit``, or ``None`` if it cannot become %ID.

    A bare number (``percent``, ``1``, ``ppm``; see :func:`bare_number_hint`) cannot
    become %ID either: it gives ``None``.  Raises ``pint.UndefinedUnitError`` (or another
    pint error) if ``unit`` is unknown.
    """
    if bare_number_hint(unit) is not None:
        return None
    dim = parse_unit(unit).dimensionality
    if is_dose_fraction(unit):
        if not dim:
            return UnitKind.DOSE_FRACTION
        if dim == _PER_MASS:
            return UnitKind.DOSE_FRACTION_PER_MASS
        if dim == _PER_VOLUME:
            return UnitKind.DOSE_FRACTION_PER_VOLUME
        return None
    if not dim:
        return UnitKind.AMOUNT_PER_MASS  # a mass ratio (ng/g) is dimensionless in pint
    if dim == _MASS:
        return UnitKind.AMOUNT
    if dim == _MASS_PER_VOLUME:
        return UnitKind.AMOUNT_PER_VOLUME
    return None


def needs_mass(kind: str) -> bool:
    """Whether a unit of this kind needs the organ mass to become %ID."""
    return kind not in (UnitKind.DOSE_FRACTION, UnitKind.AMOUNT)


def needs_dose(kind: str) -> bool:
    """Whether a unit of this kind needs the injected dose to become %ID."""
    return kind in (UnitKind.AMOUNT, UnitKind.AMOUNT_PER_MASS, UnitKind.AMOUNT_PER_VOLUME)


def percent_id_factor(unit: str, organ_mass_g: float | None = None, dose_ug: float | None = None) -> float:
    """Factor that turns one ``unit`` of measurement into %ID of the whole organ.

    Parameters
    ----------
    unit : str
        Measurement unit (``"%ID/g"``, ``"ng/g"``, ``"µg/organ"``...).
    organ_mass_g : float, optional
        Organ mass (g); needed for per-g and per-mL units.
    dose_ug : float, optional
        Injected dose (µg); needed for amounts of material.

    Returns
    -------
    float
        ``value_in_unit × factor`` is %ID.

    Raises
    ------
    ValueError
        If the unit cannot be converted or a needed mass or dose is missing.

    Examples
    --------
    10 %ID/g in a 1.1 g liver is 11 %ID; 500 ng/g in the same liver after a 20 µg dose
    is 500 ng/g × 1.1 g / 20 µg = 2.75 %ID:

    >>> round(10 * percent_id_factor("%ID/g", organ_mass_g=1.1), 12)
    11.0
    >>> round(500 * percent_id_factor("ng/g", organ_mass_g=1.1, dose_ug=20), 12)
    2.75
    """
    key = (unit, organ_mass_g, dose_ug)
    try:
        hash(key)
    except TypeError:  # an unhashable argument (an array): computed, not remembered
        return _percent_id_factor(*key)
    return _remembered_factor(*key)


def _percent_id_factor(unit, organ_mass_g, dose_ug) -> float:
    """:func:`percent_id_factor` itself: five pint quantities, ~0.1 ms."""
    kind = classify_unit(unit)
    if kind is None:
        hint = bare_number_hint(unit)
        raise ValueError(hint if hint else f"unit {unit!r} cannot be converted to %ID")
    q = Q_(1.0, parse_unit(unit))
    if needs_mass(kind):
        if organ_mass_g is None or not math.isfinite(organ_mass_g):
            raise ValueError(f"unit {unit!r} needs the organ mass to become %ID")
        mass = Q_(float(organ_mass_g), "gram")
        volume = mass / Q_(TISSUE_DENSITY_G_PER_ML, "gram / milliliter")
        per_volume = kind in (UnitKind.DOSE_FRACTION_PER_VOLUME, UnitKind.AMOUNT_PER_VOLUME)
        q = q * (volume if per_volume else mass)
    if needs_dose(kind):
        if dose_ug is None or not math.isfinite(dose_ug) or dose_ug <= 0:
            raise ValueError(f"unit {unit!r} needs the injected dose (µg) to become %ID")
        q = q / Q_(float(dose_ug), "microgram")
    return float(q.to("percent_ID").magnitude)


#: The factors computed in this process: a fit asks for the same few (unit, organ mass,
#: dose) again at every step of its parameter selection (~600 times for the README's
#: fit, 0.1-0.2 s of pint); errors are not remembered, so a bad unit raises each time.
_remembered_factor = functools.lru_cache(maxsize=4096)(_percent_id_factor)


def dose_in_ug(value, unit: str, body_weight_g: float | None = None) -> tuple[float | None, str]:
    """The injected dose in µg, and why not if it cannot be computed.

    A mass dose (µg, mg) converts directly; a dose per body mass (mg/kg, µg/g) is
    multiplied by ``body_weight_g``.  Activity (MBq, µCi) or particle-number doses have
    no mass and give ``None``.

    Returns
    -------
    (dose_ug, reason) : tuple
        ``reason`` is ``""`` when ``dose_ug`` is a number, else why it is ``None``.
    """
    if value is None:
        return None, "no dose value"
    if bare_number_hint(unit) is not None:
        return None, f"dose unit {unit!r} is a bare number; expected a mass (ug, mg) or a mass per body mass (mg/kg)"
    try:
        q = Q_(float(value), parse_unit(unit))
    except (pint.errors.PintError, AttributeError, TypeError, ValueError, AssertionError):
        return None, f"dose unit {unit!r} is unknown"
    dim = q.dimensionality
    if dim == _MASS:
        return float(q.to("microgram").magnitude), ""
    if not dim and not is_dose_fraction(unit):  # mass per body mass (mg/kg)
        if body_weight_g is None:
            return None, f"a dose in {unit} needs body_weight_g"
        return float((q * Q_(float(body_weight_g), "gram")).to("microgram").magnitude), ""
    return None, f"a dose in {unit} is not a mass"


def hours_per(time_unit: str) -> float:
    """How many hours one ``time_unit`` is (``"min"`` -> 1/60, ``"d"`` -> 24).

    Raises ``ValueError`` if ``time_unit`` is not a unit of time.
    """
    try:
        q = Q_(1.0, parse_unit(time_unit))
    except (pint.errors.PintError, AttributeError, TypeError, ValueError, AssertionError) as exc:
        raise ValueError(f"unknown time unit {time_unit!r}") from exc
    if q.dimensionality != _TIME:
        raise ValueError(f"{time_unit!r} is not a unit of time")
    return float(q.to("hour").magnitude)
