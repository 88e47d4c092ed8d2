"""nanopk unit strings (pint) → SBML ``unitDefinition`` elements.

A unit such as ``"L/h/kg**0.75"`` becomes

    <unit kind="litre" exponent="1"/> <unit kind="second" exponent="-1" multiplier="3600"/>
    <unit kind="kilogram" exponent="-0.75"/>

SI prefixes become ``scale`` (µg: gram, scale -6), hours and minutes a ``multiplier``
on the second, %ID a dimensionless unit with multiplier 0.01; anything else goes
through pint's SI root units with the conversion factor as a multiplier.  Units of the
same kind are merged, so every definition is in the simple form unit checkers expect.
"""
from __future__ import annotations

import math

from ..errors import ExportError
from ..units import Q_, parse_unit, ureg

__all__ = ["UnitTable"]


#: SI prefixes pint reports → powers of ten (SBML ``scale``).
_PREFIX_SCALE = {
    "": 0, "yocto": -24, "zepto": -21, "atto": -18, "femto": -15, "pico": -12, "nano": -9, "micro": -6,
    "milli": -3, "centi": -2, "deci": -1, "deca": 1, "hecto": 2, "kilo": 3, "mega": 6, "giga": 9, "tera": 12,
}
_PREFIX_ABBREV = {
    "": "", "femto": "f", "pico": "p", "nano": "n", "micro": "u", "milli": "m", "centi": "c", "deci": "d",
    "kilo": "k", "mega": "M", "giga": "G",
}
#: pint unit names → SBML base units ``(kind, exponent, multiplier)``; the SI prefix
#: becomes the ``scale`` of the first entry.
_BASE = {
    "gram": [("gram", 1, 1.0)],
    "liter": [("litre", 1, 1.0)],
    "meter": [("metre", 1, 1.0)],
    "second": [("second", 1, 1.0)],
    "minute": [("second", 1, 60.0)],
    "hour": [("second", 1, 3600.0)],
    "day": [("second", 1, 86400.0)],
    "week": [("second", 1, 604800.0)],
    "mole": [("mole", 1, 1.0)],
    "molar": [("mole", 1, 1.0), ("litre", -1, 1.0)],
    "kelvin": [("kelvin", 1, 1.0)],
    "injected_dose": [],
    "percent_ID": [("dimensionless", 1, 0.01)],
    "radian": [("radian", 1, 1.0)],
}
_ABBREV = {
    "gram": "g", "liter": "L", "meter": "m", "second": "s", "minute": "min", "hour": "h", "day": "d",
    "week": "wk", "mole": "mol", "molar": "M", "kelvin": "K", "injected_dose": "ID", "percent_ID": "pct_ID",
    "dalton": "Da",
}
_ROOT_KINDS = {"gram": "gram", "kilogram": "kilogram", "meter": "metre", "second": "second", "mole": "mole",
               "kelvin": "kelvin", "ampere": "ampere", "candela": "candela", "radian": "radian"}
#: Unit kinds of SBML L3; a unitDefinition may not reuse these ids.
_RESERVED = {
    "ampere", "avogadro", "becquerel", "candela", "coulomb", "dimensionless", "farad", "gram", "gray", "henry",
    "hertz", "item", "joule", "katal", "kelvin", "kilogram", "litre", "lumen", "lux", "metre", "mole", "newton",
    "ohm", "pascal", "radian", "second", "siemens", "sievert", "steradian", "tesla", "volt", "watt", "weber",
}


def _unit_entries(name: str) -> list[tuple[str, float, int, float]]:
    """One pint unit name → SBML ``(kind, exponent, scale, multiplier)`` entries."""
    for prefix, base, _ in ureg.parse_unit_name(name):
        if base in _BASE and prefix in _PREFIX_SCALE:
            if base == "gram" and prefix == "kilo":
                return [("kilogram", 1, 0, 1.0)]
            entries = [(kind, exp, 0, mult) for kind, exp, mult in _BASE[base]]
            if entries and prefix:
                kind, exp, _, mult = entries[0]
                entries[0] = (kind, exp, _PREFIX_SCALE[prefix], mult)
            elif prefix:  # a prefixed dimensionless unit: fold into a multiplier
                entries = [("dimensionless", 1, _PREFIX_SCALE[prefix], 1.0)]
            return entries
    # Anything else: through pint's root (SI base) units, the factor as a multiplier.
    q = Q_(1.0, name).to_root_units()
    entries = [("dimensionless", 1, 0, float(q.magnitude))] if q.magnitude != 1 else []
    for root, exp in q.units._units.items():
        if root not in _ROOT_KINDS:
            raise ExportError(f"unit {name!r} (root unit {root!r}) has no SBML equivalent")
        entries.append((_ROOT_KINDS[root], exp, 0, 1.0))
    return entries


def _unit_id(unit) -> str:
    pos, neg = [], []
    for name, exp in unit._units.items():
        parts = []
        for prefix, base, _ in ureg.parse_unit_name(name):
            if base in _ABBREV:
                parts.append(_PREFIX_ABBREV.get(prefix, prefix) + _ABBREV[base])
                break
        text = parts[0] if parts else name
        mag = abs(exp)
        if mag != 1:
            text += ("%g" % mag).replace(".", "_")
        (pos if exp > 0 else neg).append(text)
    uid = "_".join(pos) if pos else ("per" if neg else "dimensionless")
    if neg:
        uid += ("_per_" if pos else "_") + "_per_".join(neg)
    uid = "".join(ch if ch.isalnum() or ch == "_" else "_" for ch in uid)
    if uid[0].isdigit() or uid in _RESERVED:
        uid = "u_" + uid
    return uid


class UnitTable:
    """pint units → SBML unitDefinitions, created on first use."""

    def __init__(self, sbml_model, libsbml):
        self.model = sbml_model
        self.L = libsbml
        self._ids: dict = {}

    def id_for(self, unit) -> str:
        """The unitDefinition id for ``unit`` (a unit string, pint Unit or Quantity)."""
        if isinstance(unit, str):
            unit = parse_unit(unit)
        elif hasattr(unit, "units") and hasattr(unit, "magnitude"):
            if unit.magnitude != 1:
                raise ExportError(f"cannot name a unit for a scaled quantity {unit}")
            unit = unit.units
        key = str(unit)
        if key in self._ids:
            return self._ids[key]
        entries = []
        for name, exp in unit._units.items():
            entries += [(kind, e * exp, scale, mult) for kind, e, scale, mult in _unit_entries(name)]
        entries = _merge(entries)
        if not entries:
            self._ids[key] = "dimensionless"
            return "dimensionless"
        uid = _unit_id(unit)
        taken = set(self._ids.values())
        base, k = uid, 2
        while uid in taken:
            uid, k = f"{base}_{k}", k + 1
        ud = self.model.createUnitDefinition()
        ud.setId(uid)
        ud.setName(format(unit, "~").replace("µ", "u") or "dimensionless")
        for kind, exp, scale, mult in entries:
            u = ud.createUnit()
            u.setKind(self.L.UnitKind_forName(kind))
            u.setExponent(float(exp))
            u.setScale(int(scale))
            u.setMultiplier(float(mult))
        self._ids[key] = uid
        return uid


def _merge(entries):
    """Combine entries of the same kind; fold pure factors into one dimensionless unit."""
    by_kind: dict[str, list] = {}
    for e in entries:
        by_kind.setdefault(e[0], []).append(e)
    out, factor = [], 1.0
    for kind, group in by_kind.items():
        if kind == "dimensionless":
            for _, exp, scale, mult in group:
                factor *= (mult * 10.0 ** scale) ** exp
            continue
        if len(group) == 1:
            out.append(group[0])
            continue
        total = sum(e[1] for e in group)
        f = math.prod((mult * 10.0 ** scale) ** exp for _, exp, scale, mult in group)
        if total == 0:
            factor *= f
        else:
            out.append((kind, total, 0, f ** (1.0 / total)))
    if not math.isclose(factor, 1.0, rel_tol=1e-15):
        out.append(("dimensionless", 1, 0, factor))
    return out
