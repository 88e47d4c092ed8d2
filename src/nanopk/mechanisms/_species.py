"""Per-species parameter sets: a mechanism default is a value *for a species*.

Mechanism defaults were mouse numbers, so a rat or human model silently inherited them.
Here each species-dependent default is keyed by species, with its source:

- :data:`SPECIES_DEFAULTS` lists, per mechanism (``"family.variant"``), the parameters
  (a regular expression on the name) whose defaults depend on the species, and the
  species that have a literature value — either the mechanism's own default
  (:data:`OWN`: the species its numbers were published for) or a ``(value, source)``
  for another species (a function of the matched name where the value is per organ);
- :func:`apply_species_defaults` (run by :mod:`nanopk.spec` on every part a spec
  builds) gives each such parameter the model
  species' value, or — when that species has none — the value NaN with the reason as its
  source.  :meth:`nanopk.Model.validate` reports that reason as a problem (it names the
  parameter, the species and the species that have a value), unless the spec's
  ``[parameters]`` gives a value with its source (for instance one obtained with
  :func:`nanopk.scale`, which says so in its source);
- a mechanism that takes a species-keyed value directly calls :func:`species_param`.

A parameter not listed is species-independent (a material constant, a pH, a pore size)
or already comes from the species' physiology table (:mod:`nanopk.physiology`:
volumes, flows, capillary blood).  A mechanism option that sets a listed parameter
(``clearance_constant=`` of the excretion variants) is the modeller's value and is left
as given.
"""
from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping

from ..parts import NO_SPECIES_DEFAULT, Parameter, Part

__all__ = ["OWN", "SPECIES_DEFAULTS", "apply_species_defaults", "species_param", "missing_species_default"]


class _Own:
    def __repr__(self):
        return "OWN"


#: Marks the species whose value is the mechanism's own default.
OWN = _Own()

_CHOU2022_MRG = ("Chou et al., Part Fibre Toxicol 2022;19:47 (doi:10.1186/s12989-022-00489-4), rat model code "
                 "(UFPBPK/Nano-iPBPK 'Revised Code_for_App/MrgCode.R' @097792b)")
_RAT_ORGANS = ("lung", "liver", "spleen", "kidney", "rest", "gi")


def _rat_partition(name: str):
    organ = name.removeprefix("P_")
    if organ not in _RAT_ORGANS:
        return None
    value = 0.08 if organ == "liver" else 0.15
    return value, f"{_CHOU2022_MRG}: P{organ} {value:g}, the Lin 2016 values carried into the rat model"


def _rat_permeability(name: str):
    organ = name.removeprefix("PAC_")
    if organ not in _RAT_ORGANS:
        return None
    return 0.001, f"{_CHOU2022_MRG}: PA{organ}C 0.001 (all organs, after Lin 2016)"


#: ``{"family.variant": ((name pattern, {species: OWN | (value, source) | f(name)}, option), ...)}``;
#: ``option`` is the mechanism option that sets the parameter (left alone when given) or None.
SPECIES_DEFAULTS: dict[str, tuple[tuple[str, Mapping, str | None], ...]] = {
    "circulation.whole_body": (
        (r"P_\w+", {"mouse": OWN, "rat": _rat_partition}, None),
        (r"PAC_\w+", {"mouse": OWN, "rat": _rat_permeability}, None),
    ),
    "clearance.hill_phagocytic_uptake": (
        (r"(Kmax|K50|n|Krelease)_\w+", {"mouse": OWN}, None),
    ),
    "clearance.capacity_limited_phagocytic_uptake": (
        (r"(Kmax|Krelease|Acap)_\w+", {"rat": OWN}, None),
    ),
    "clearance.urinary_excretion": (
        ("KurineC", {"mouse": OWN, "rat": (1.2e-3, f"{_CHOU2022_MRG}: KurineC 0.0012 L/h/kg^0.75")}, "clearance_constant"),
    ),
    "clearance.biliary_excretion": (
        ("KbileC", {"mouse": OWN, "rat": (0.05, f"{_CHOU2022_MRG}: KbileC 0.05 L/h/kg^0.75")}, "clearance_constant"),
    ),
    "clearance.renal_filtration": (
        ("GFRC", {"mouse": OWN}, None),
        ("f_renal", {"mouse": OWN}, None),
    ),
    "mps.opsonisation_uptake": (
        (r"(Kmax|Krelease|k_cap_ops)_\w+", {"mouse": OWN}, None),
        (r"k_rec_max|N50_RES|n_saturation", {"mouse": OWN}, None),
    ),
}


def missing_species_default(name: str, unit: str, species: str, have: list[str], where: str,
                            bounds=(0.0, math.inf), description: str = "") -> Parameter:
    """The placeholder for a parameter with no default for ``species``: NaN, the reason as source."""
    others = ", ".join(have) if have else "none"
    reason = (f"{NO_SPECIES_DEFAULT} {species!r} for parameter {name!r} of {where} (species with a value: {others}); "
              f"give it in the spec's [parameters] with its source (for instance scaled from a species that has one: "
              f"nanopk.scale(<that species' model>, species={species!r}))")
    return Parameter(name, math.nan, unit, reason, tuple(bounds), description)


def _value_for(entry, name: str):
    if entry is OWN:
        return OWN
    if callable(entry):
        return entry(name)
    return entry


def _lookup(ref: str, name: str):
    for pattern, by_species, option in SPECIES_DEFAULTS.get(ref, ()):
        if re.fullmatch(pattern, name):
            return by_species, option
    return None, None


def apply_species_defaults(ref: str, species: str, part: Part, options: Mapping | None = None) -> Part:
    """``part`` with each species-dependent default set for ``species`` (see the module docstring)."""
    if ref not in SPECIES_DEFAULTS:
        return part
    options = options or {}
    out, changed = [], False
    for p in part.parameters:
        by_species, option = _lookup(ref, p.name)
        if by_species is None or (option is not None and option in options):
            out.append(p)
            continue
        entry = _value_for(by_species[species], p.name) if species in by_species else None
        if entry is OWN:
            out.append(p)
            continue
        changed = True
        if entry is None:
            have = [s for s, e in by_species.items() if _value_for(e, p.name) is not None]
            out.append(missing_species_default(p.name, p.unit, species, have, ref, p.bounds, p.description))
        else:
            value, source = entry
            out.append(Parameter(p.name, float(value), p.unit, source, p.bounds, p.description))
    if not changed:
        return part
    return dataclasses.replace(part, parameters=tuple(out))


def species_param(species: str, name: str, values: Mapping[str, tuple[float, str]], unit: str, where: str,
                  bounds=(0.0, math.inf), description: str = "") -> Parameter:
    """A parameter whose default is ``values[species]`` = ``(value, source)``.

    A species without an entry gets the NaN placeholder of :func:`missing_species_default`,
    which :meth:`nanopk.Model.validate` reports (naming the species that have a value).
    """
    if species in values:
        value, source = values[species]
        return Parameter(name, float(value), unit, source, tuple(float(b) for b in bounds), description)
    return missing_species_default(name, unit, species, list(values), where, bounds, description)


def species_defaults_of(ref: str) -> dict[str, Mapping]:
    """The species-keyed entries of mechanism ``ref`` (for documentation and tests)."""
    return {pattern: by_species for pattern, by_species, _ in SPECIES_DEFAULTS.get(ref, ())}
