"""Dosing regimens: IV boluses and constant-rate infusions, and doses in µg.

A regimen is a list of :class:`Bolus` and :class:`Infusion` events.  Each event's
amount is a number of µg or a string with its unit (``"0.85 mg/kg"``, ``"20 ug"``);
per-body-mass doses are scaled by the body weight.  :class:`Dosing` resolves the events
to µg once and checks each of them before anything is solved: an amount must be a
finite positive mass, a time finite and ≥ 0, an infusion's duration finite and > 0.
A regimen that would integrate to nonsense (a NaN bolus time never given but counted
in %ID, an infinite infusion, a zero dose that %ID divides by) is refused with the
event, the field and the value that would be right.

This module sits below the model: it imports only :mod:`nanopk.errors` and
:mod:`nanopk.parts` (pint only for unusual dose units), so the model spec reader
(:mod:`nanopk.spec`) and the run kernel (:mod:`nanopk.simulate`) share it without
depending on each other.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from .errors import ModelError
from .parts import DOSE

__all__ = ["Bolus", "Infusion", "Dosing", "dose_to_ug", "SPEC_DOSE_UNITS"]

#: The dose units model specs write: µg per unit, and whether the unit is per body mass
#: (then µg per unit per kg of body weight).  Loading a model must not import pint (~0.3 s
#: per process); tests/test_units.py checks every entry against pint's conversion.
SPEC_DOSE_UNITS = {"ug": (1.0, False), "mg": (1000.0, False), "ug/kg": (1.0, True), "mg/kg": (1000.0, True)}


def dose_to_ug(value: float, unit: str, body_weight_kg: float | None) -> float:
    """Convert a dose (µg, mg, mg/kg, µg/kg, ...) to µg; per-kg doses need a body weight.

    The units in :data:`SPEC_DOSE_UNITS` convert by table; any other goes through the
    data layer's pint conversion (:func:`nanopk.data.convert.dose_in_ug`).  Raises
    instead of returning the reason a dose has no mass, and refuses a dose that is not
    a finite positive amount (``"0 ug"``, ``"-5 ug"``, ``"nan ug"``).
    """
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ModelError(f"dose value {value!r} is not a number; give e.g. 0.85 with unit 'mg/kg'") from None
    if not math.isfinite(number) or number <= 0:
        raise ModelError(f"dose must be a finite positive amount (got {value} {unit}); give e.g. '0.85 mg/kg' or '20 ug'")
    known = SPEC_DOSE_UNITS.get(unit.strip() if isinstance(unit, str) else unit)
    if known is not None and (not known[1] or body_weight_kg is not None):
        factor, per_kg = known
        return number * factor * (body_weight_kg if per_kg else 1.0)
    from .data.convert import dose_in_ug  # pint: only for units outside the table

    dose_ug, reason = dose_in_ug(number, unit, None if body_weight_kg is None else 1000.0 * body_weight_kg)
    if dose_ug is None:
        if body_weight_kg is None and "body_weight" in reason:
            reason = f"a dose in {unit} needs a body weight, and the model has no BW parameter"
        raise ModelError(f"cannot use dose {value} {unit}: {reason}; give e.g. 'ug', 'mg' or 'mg/kg'")
    return dose_ug


def _amount_ug(amount, body_weight_kg) -> float:
    """An event's amount in µg: a number of µg, or ``"VALUE UNIT"``."""
    if isinstance(amount, str):
        value, _, unit = amount.strip().partition(" ")
        try:
            number = float(value)
        except ValueError:
            raise ModelError(f"dose {amount!r} must read 'VALUE UNIT', e.g. '0.85 mg/kg' or '20 ug'") from None
        return dose_to_ug(value, unit.strip() or "ug", body_weight_kg)
    try:
        value = float(amount)
    except (TypeError, ValueError):
        raise ModelError(f"dose amount must be a positive number of µg or a string such as '20 ug' (got {amount!r})") from None
    if not math.isfinite(value) or value <= 0:
        raise ModelError(f"dose amount must be a finite positive number of µg (got {amount!r})")
    return value


def _time(value, what: str, strictly_positive: bool = False) -> float:
    """A finite time in hours, ≥ 0 (or > 0), or a ModelError naming the field."""
    try:
        t = float(value)
    except (TypeError, ValueError):
        raise ModelError(f"{what} must be a number of hours (got {value!r})") from None
    if not math.isfinite(t) or t < 0 or (strictly_positive and t == 0):
        need = "finite and > 0" if strictly_positive else "finite and ≥ 0"
        raise ModelError(f"{what} must be {need} h (got {value!r})")
    return t


@dataclass(frozen=True)
class Bolus:
    """An IV bolus of ``amount`` (µg, or a string such as ``"0.85 mg/kg"``) at ``time_h``."""

    amount: float | str
    time_h: float = 0.0


@dataclass(frozen=True)
class Infusion:
    """A constant-rate IV infusion of ``amount`` in total over ``duration_h`` from ``start_h``."""

    amount: float | str
    duration_h: float
    start_h: float = 0.0


class Dosing:
    """A dosing regimen: boluses and infusions, in µg once resolved.

    Parameters
    ----------
    events : sequence of Bolus or Infusion
    body_weight_kg : float, optional
        Scales per-body-mass amounts (``"mg/kg"``).

    Raises
    ------
    ModelError
        For an empty regimen, an amount that is not a finite positive mass, a time that
        is not finite and ≥ 0, or an infusion duration that is not finite and > 0.

    Examples
    --------
    >>> Dosing([Bolus(20.0), Bolus(20.0, time_h=24)]).total_ug
    40.0
    """

    def __init__(self, events: Sequence[Bolus | Infusion], body_weight_kg: float | None = None):
        self.events = tuple(events)
        if not self.events:
            raise ModelError("a dosing regimen needs at least one bolus or infusion")
        self.boluses: list[tuple[float, float]] = []
        self.infusions: list[tuple[float, float, float]] = []  # (start, stop, rate µg/h)
        for i, e in enumerate(self.events, start=1):
            where = f"dosing event {i} ({type(e).__name__})" if len(self.events) > 1 else type(e).__name__.lower()
            if isinstance(e, Bolus):
                self.boluses.append((_time(e.time_h, f"{where}: time_h"), _amount_ug(e.amount, body_weight_kg)))
            elif isinstance(e, Infusion):
                start = _time(e.start_h, f"{where}: start_h")
                duration = _time(e.duration_h, f"{where}: duration_h", strictly_positive=True)
                self.infusions.append((start, start + duration, _amount_ug(e.amount, body_weight_kg) / duration))
            else:
                raise ModelError(f"dosing events must be Bolus or Infusion (got {type(e).__name__})")
        self.total_ug = sum(a for _, a in self.boluses) + sum((b - a) * r for a, b, r in self.infusions)

    @classmethod
    def coerce(cls, dose, model, p) -> "Dosing":
        """Build a regimen from what ``simulate(dose=...)`` accepts.

        ``p`` is the model's parameter vector: without ``dose`` the regimen is one
        bolus of the model's ``dose`` parameter, and ``BW`` (kg) scales per-kg doses.
        """
        index = model._parameter_index()
        if dose is None:
            total = float(p[index[DOSE]])
            # A model whose doses are part of it (SBML events, nanopk.import_sbml) keeps its schedule,
            # scaled so that the regimen's total is the `dose` parameter.
            schedule = model.metadata.get("dosing")
            if schedule:
                whole = sum(float(b["amount_ug"]) for b in schedule)
                return cls([Bolus(total * float(b["amount_ug"]) / whole, float(b["time_h"])) for b in schedule])
            return cls([Bolus(total)])
        bw = float(p[index["BW"]]) if "BW" in index else None
        if isinstance(dose, Dosing):
            return dose
        if isinstance(dose, (Bolus, Infusion)):
            return cls([dose], bw)
        if isinstance(dose, (list, tuple)):
            return cls(dose, bw)
        return cls([Bolus(dose)], bw)

    def breakpoints(self) -> list[float]:
        points = {0.0} | {t for t, _ in self.boluses} | {a for a, _, _ in self.infusions} | {b for _, b, _ in self.infusions}
        return sorted(points)

    def infusion_rate(self, t0: float, t1: float) -> float:
        """Total infusion rate (µg/h) on the segment [t0, t1)."""
        return sum(r for a, b, r in self.infusions if a <= t0 and t1 <= b)
