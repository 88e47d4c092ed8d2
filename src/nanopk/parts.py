"""The building blocks a mechanism returns: states, parameters, fluxes, observables.

A *part* is what one mechanism contributes to a model.  Mechanisms never build whole
models; :class:`nanopk.model.Model` composes parts and derives the ODEs from the flux
graph, so that

    dA_i/dt = Σ_{fluxes into i} rate − Σ_{fluxes out of i} rate

and the sum of all mass states (particles, dissolved ions, excreta and the undelivered
dose) is constant by construction.  States that are not mass (protein-corona coverage,
particle counts, the size of a growing corona) evolve by *rate rules* and stay out of
the mass balance.

Every parameter carries a value, a unit that pint understands, bounds and the
literature source of its default.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterable

if TYPE_CHECKING:  # SymPy is imported where an expression is made: a model recalled from
    import sympy as sp  # the cache and run from its compiled library never needs it (issue 25)

__all__ = [
    "DOSE",
    "INFUSION_RATE",
    "DEPOT",
    "MASS_KINDS",
    "STATE_KINDS",
    "TIME",
    "State",
    "Parameter",
    "Flux",
    "RateRule",
    "Assignment",
    "Observable",
    "Part",
    "symbol",
    "amount_observable",
    "RESIDUAL_BLOOD_PARAMETER",
    "is_residual_blood",
    "observed_amounts",
    "NO_SPECIES_DEFAULT",
    "unmet_requirements",
]

#: Kinds of state whose amounts are NP mass (µg) and enter the mass balance.
#: ``particle``: intact nanoparticles; ``dissolved``: mass released as ions;
#: ``sink``: cumulative excreta (urine, faeces); ``depot``: dose not yet given.
MASS_KINDS = frozenset({"particle", "dissolved", "sink", "depot"})
#: All state kinds; the ones outside MASS_KINDS evolve by rate rules.
STATE_KINDS = MASS_KINDS | frozenset({"coverage", "number", "auxiliary"})

#: Names every model shares: the administered NP mass (µg; %ID is relative to it), the
#: infusion rate set by the simulator per dosing segment (µg/h), and the state holding
#: the dose not yet given.  They live here, at the bottom of the package, so that the
#: dosing layer and the model read them without importing each other.
DOSE = "dose"
INFUSION_RATE = "infusion_rate"
DEPOT = "depot"

def __getattr__(name: str):
    # ``TIME`` (model time, in hours since the first dose) is made on first use, so that
    # importing the parts does not import SymPy.
    if name == "TIME":
        import sympy as sp

        globals()["TIME"] = value = sp.Symbol("t", real=True, nonnegative=True)
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def symbol(name: str) -> sp.Symbol:
    """The SymPy symbol nanopk uses for a state, parameter or assignment name."""
    import sympy as sp

    return sp.Symbol(name, real=True)


@dataclass(frozen=True)
class State:
    """A state variable.

    Parameters
    ----------
    name : str
        Identifier (valid in Python, C and SBML).
    kind : str
        One of :data:`STATE_KINDS`.
    unit : str
        ``"ug"`` for mass kinds; the unit of the quantity otherwise.
    initial : float or str
        Initial value; a string names a parameter or assignment (non-mass states only:
        mass states start empty and receive the dose).
    organ : str, optional
        The organ whose observable this state counts toward (``"liver"``).
    volume : str, optional
        Name of the parameter or assignment that is the volume (L) of the space the
        state occupies; used for SBML compartments and concentrations.
    """

    name: str
    kind: str = "particle"
    unit: str = "ug"
    initial: float | str = 0.0
    organ: str | None = None
    volume: str | None = None
    description: str = ""

    @property
    def symbol(self) -> sp.Symbol:
        return symbol(self.name)

    @property
    def is_mass(self) -> bool:
        return self.kind in MASS_KINDS


@dataclass(frozen=True)
class Parameter:
    """A model parameter: value, unit, bounds and the source of its default.

    ``bounds`` are the physically admissible range used by fits (and by the contract
    test that simulates every model at its bounds).  ``source`` is a citation
    (author, journal, year, DOI or table).
    """

    name: str
    value: float
    unit: str
    source: str
    bounds: tuple[float, float] = (0.0, math.inf)
    description: str = ""

    @property
    def symbol(self) -> sp.Symbol:
        return symbol(self.name)

    def problem(self, value, what: str = "value") -> str | None:
        """Why ``value`` is not admissible for this parameter, or ``None``.

        ``bounds`` is the physically admissible range: a negative rate or a Hill
        coefficient of 50 gives numbers without meaning (a negative liver %ID), so
        every path that takes a value (spec overrides, ``with_parameters``,
        ``simulate(params=...)``, fits) refuses it with this one sentence.
        """
        try:
            number = float(value)
        except (TypeError, ValueError):
            return f"parameter {self.name!r} {what} {value!r} is not a number"
        lo, hi = self.bounds
        if not math.isfinite(number):
            return f"parameter {self.name!r} has a non-finite {what} {value!r}"
        # Values computed at a bound (10**log10(hi), a sampler's exp(log(hi))) land a few
        # ulps outside it; that is the bound, not a new value.
        slack = 1e-12
        if not (lo - slack * abs(lo) <= number <= hi + slack * abs(hi)):
            return f"parameter {self.name!r} {what} {number!r} lies outside its bounds [{lo:g}, {hi:g}] {self.unit}"
        return None

    def with_value(self, value: float) -> "Parameter":
        return Parameter(self.name, float(value), self.unit, self.source, self.bounds, self.description)


@dataclass(frozen=True)
class Flux:
    """Mass moving from ``source`` to ``target`` at ``rate`` (µg/h).

    Both ends are mass states; what leaves one enters the other, which is what makes
    mass balance structural.  Elimination goes to a sink state (urine, faeces).
    """

    name: str
    source: str
    target: str
    rate: sp.Expr
    description: str = ""


@dataclass(frozen=True)
class RateRule:
    """``d state / dt = expr`` for a state that is not mass (coverage, number)."""

    state: str
    expr: sp.Expr
    description: str = ""


@dataclass(frozen=True)
class Assignment:
    """A named derived quantity, ``name = expr`` (e.g. a blood flow from cardiac output).

    Assignments keep rate laws readable; they are substituted before compilation and
    exported as SBML assignment rules.
    """

    name: str
    expr: sp.Expr
    unit: str
    description: str = ""

    @property
    def symbol(self) -> sp.Symbol:
        return symbol(self.name)


@dataclass(frozen=True)
class Observable:
    """A measured quantity: ``expr`` over states, parameters and assignments, in ``unit``."""

    name: str
    expr: sp.Expr
    unit: str = "percent_ID"
    description: str = ""


def amount_observable(name: str, states: Iterable[str], dose: str = "dose", description: str = "") -> Observable:
    """Observable in %ID: ``100 · Σ states / dose``."""
    import sympy as sp

    total = sp.Add(*[symbol(s) for s in states])
    return Observable(name, 100 * total / symbol(dose), "percent_ID", description)


@dataclass(frozen=True)
class Part:
    """What a mechanism contributes: states, parameters, fluxes and the rest.

    Parts compose by concatenation (``part_a + part_b``); a part may refer to states
    and parameters declared by another part, which ``Model.validate`` checks once all
    parts are together.

    ``requires`` names what the part needs another part of the model to provide, and
    ``provides`` what it offers beyond its own names: capabilities such as
    ``"circulation"`` or ``"epr"``, or ``"state:NAME"``, ``"parameter:NAME"``,
    ``"assignment:NAME"``, ``"observable:NAME"`` (every part offers these for what it
    declares, without listing them).  :meth:`nanopk.Model.validate` reports a
    requirement no part meets (:func:`unmet_requirements`).  Parts a mechanism returns
    through the registry carry the mechanism's family and ``"family.variant"`` in
    ``provides`` (:func:`nanopk.mechanisms.resolve_mechanism`).

    ``groups`` pairs parameters with the mechanism they quantify (``("Kmax_liver",
    "phagocytic uptake")``): :func:`nanopk.compare` tests each group as one hypothesis.
    The part that declares a parameter names its group (see
    :func:`nanopk.mechanisms.declare`); an ungrouped parameter is tested alone.
    """

    name: str
    states: tuple[State, ...] = ()
    parameters: tuple[Parameter, ...] = ()
    fluxes: tuple[Flux, ...] = ()
    rate_rules: tuple[RateRule, ...] = ()
    assignments: tuple[Assignment, ...] = ()
    observables: tuple[Observable, ...] = ()
    #: Modelling assumptions worth stating (exported as comments and annotations).
    notes: tuple[str, ...] = field(default=())
    requires: tuple[str, ...] = ()
    provides: tuple[str, ...] = ()
    groups: tuple[tuple[str, str], ...] = ()

    def offers(self) -> set[str]:
        """Every capability the part meets: ``provides`` plus its declared names."""
        out = set(self.provides)
        out.update(f"state:{s.name}" for s in self.states)
        out.update(f"parameter:{p.name}" for p in self.parameters)
        out.update(f"assignment:{a.name}" for a in self.assignments)
        out.update(f"observable:{o.name}" for o in self.observables)
        return out

    def __add__(self, other: "Part") -> "Part":
        return Part(
            f"{self.name}+{other.name}",
            self.states + other.states,
            self.parameters + other.parameters,
            self.fluxes + other.fluxes,
            self.rate_rules + other.rate_rules,
            self.assignments + other.assignments,
            self.observables + other.observables,
            self.notes + other.notes,
            tuple(dict.fromkeys(self.requires + other.requires)),
            tuple(dict.fromkeys(self.provides + other.provides)),
            self.groups + other.groups,
        )


def unmet_requirements(parts: Iterable[Part], providers=None) -> list[str]:
    """One sentence per requirement of a part that no part of ``parts`` meets.

    Parameters
    ----------
    parts : iterable of Part
    providers : callable, optional
        ``providers(capability) -> list of str``: what would meet it (the model passes
        :func:`nanopk.mechanisms.providers_of`); called only for unmet requirements.
    """
    parts = list(parts)
    offered: set[str] = set()
    for part in parts:
        offered |= part.offers()
    problems = []
    for part in parts:
        for need in part.requires:
            if need in offered:
                continue
            who = providers(need) if providers is not None else []
            problems.append(f"part {part.name!r} requires {need!r}, which no part of the model provides; "
                            + (f"add one of: {', '.join(who)}" if who else "no registered mechanism provides it"))
    return problems


#: Source text that starts a mechanism default the model's species has no value for: the
#: value is NaN and the source says why (:mod:`nanopk.mechanisms._species`), which
#: ``Model.validate`` reports as the problem.
NO_SPECIES_DEFAULT = "no default for species"


# ---------------------------------------------------------------- observation
#: Name of the parameter that weights the organs' capillary blood in their observables.
RESIDUAL_BLOOD_PARAMETER = "f_residual_blood"


def is_residual_blood(state: State) -> bool:
    """Whether ``state`` is an organ's capillary (residual) blood.

    By the naming rule of :func:`nanopk.mechanisms.circulation.organ_states`: a state
    of an organ (not ``blood``) that occupies the volume ``V_<organ>_capillary``.
    """
    return bool(state.organ) and state.organ != "blood" and state.volume == f"V_{state.organ}_capillary"


def observed_amounts(states) -> "dict[str, sp.Expr]":
    """Amount (µg) each organ observable counts, defined as the data are measured.

    ``blood``: every state of organ ``blood`` plus every organ's capillary blood
    (the circulating concentration times the whole vascular volume); any other organ:
    its states, with its capillary blood weighted by ``f_residual_blood`` (1 for
    homogenates, 0 for perfused animals).  Only mass states count.  Used by
    :class:`nanopk.model.Model` when the model has the ``f_residual_blood`` parameter
    (every model built on :func:`nanopk.mechanisms.circulation.whole_body`).

    It lives here, below the model and the mechanisms, because it is how the data are
    measured (homogenates hold their residual blood), which both need.
    """
    import sympy as sp

    f_res = symbol(RESIDUAL_BLOOD_PARAMETER)
    terms: dict[str, list] = {}
    for s in states:
        if not (s.organ and s.is_mass):
            continue
        if is_residual_blood(s):
            terms.setdefault(s.organ, []).append(f_res * s.symbol)
            terms.setdefault("blood", []).append(s.symbol)
        else:
            terms.setdefault(s.organ, []).append(s.symbol)
    return {organ: sp.Add(*t) for organ, t in terms.items()}
