"""What every mechanism receives, and how a spec's ``"family.variant"`` is found.

Naming conventions shared by all mechanisms (so that parts connect):

- states: ``arterial_blood``, ``venous_blood``, ``{organ}_capillary``,
  ``{organ}_tissue``, ``{organ}_phagocytes``; sinks ``urine`` and ``faeces``;
- assignments: ``Q_C`` (cardiac output, L/h), ``Q_{organ}`` (L/h), ``V_{organ}``,
  ``V_{organ}_capillary``, ``V_{organ}_tissue``, ``V_plasma``, ``V_blood`` (L);
- parameter ``BW`` (body weight, kg); concentrations are amount/volume (µg/L).
"""
from __future__ import annotations

import importlib
import inspect
import math
from dataclasses import dataclass, field

from ..errors import SpecError, suggest
from ..parts import Parameter
from ..particle import Particle
from ..physiology import Physiology, get_physiology

__all__ = ["BuildContext", "resolve_mechanism", "FAMILIES"]

#: Mechanism families (modules of nanopk.mechanisms).
FAMILIES = ("classic", "circulation", "clearance", "epr", "corona", "aggregation", "dissolution", "targeting", "immunity", "mps")


@dataclass
class BuildContext:
    """Shared inputs of the mechanisms of one model.

    ``organs`` lists the organs the circulation builds (later mechanisms attach to
    them); ``provided`` records which mechanisms ran, so a mechanism can adapt to
    what is present (e.g. EPR uses the corona-grown diameter when a corona exists).
    """

    species: str = "mouse"
    particle: Particle | None = None
    organs: list[str] = field(default_factory=list)
    phagocyte_organs: list[str] = field(default_factory=list)
    provided: set[str] = field(default_factory=set)

    @property
    def physiology(self) -> Physiology:
        return get_physiology(self.species)


def param(name: str, value: float, unit: str, source: str, bounds=(0.0, math.inf), description: str = "") -> Parameter:
    """Shorthand for :class:`nanopk.parts.Parameter` with bounds defaulting to [0, inf)."""
    return Parameter(name, float(value), unit, source, tuple(float(b) for b in bounds), description)


def resolve_mechanism(ref: str):
    """The function for ``"family.variant"``; an unknown name lists the valid choices."""
    family, _, variant = ref.partition(".")
    if family not in FAMILIES or not variant:
        raise SpecError(f"unknown mechanism {ref!r}{suggest(family, FAMILIES)}; write 'family.variant' with family one of {', '.join(FAMILIES)}")
    module = importlib.import_module(f"nanopk.mechanisms.{family}")
    # A variant is a public function of the module whose first argument is the context;
    # helper formulas (e.g. epr.two_pore_permeability) are not mechanisms.
    variants = [
        n for n, f in inspect.getmembers(module, inspect.isfunction)
        if f.__module__ == module.__name__ and not n.startswith("_") and next(iter(inspect.signature(f).parameters), None) == "ctx"
    ]
    if variant not in variants:
        raise SpecError(f"mechanism family {family!r} has no variant {variant!r}{suggest(variant, variants)}; valid: {', '.join(sorted(variants))}")
    return getattr(module, variant)
