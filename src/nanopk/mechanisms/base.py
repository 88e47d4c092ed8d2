"""What every mechanism receives, and how a spec's ``"family.variant"`` is found.

Naming conventions shared by all mechanisms (so that parts connect):

- states: ``arterial_blood``, ``venous_blood``, ``{organ}_capillary``,
  ``{organ}_tissue``, ``{organ}_phagocytes``; sinks ``urine`` and ``faeces``;
- assignments: ``Q_C`` (cardiac output, L/h), ``Q_{organ}`` (L/h), ``V_{organ}``,
  ``V_{organ}_capillary``, ``V_{organ}_tissue``, ``V_plasma``, ``V_blood`` (L);
- parameter ``BW`` (body weight, kg); concentrations are amount/volume (µg/L).

The registry
------------
A *family* is a module whose public functions taking ``ctx`` first are its variants.
Families are discovered, not listed: every module of :mod:`nanopk.mechanisms` (but
this one) is a family, and so is every entry point of the group
``nanopk.mechanisms`` (:data:`ENTRY_POINT_GROUP`) that an installed package declares,
its name the family and its value the module::

    # a lab's package, pyproject.toml (nothing in nanopk changes)
    [project.entry-points."nanopk.mechanisms"]
    labbind = "labbind.mechanisms"

after which a spec may ``use = "labbind.receptor_binding"``.  A variant states what it
needs and offers with :func:`declare` (``requires``/``provides``: capabilities such
as ``"circulation"`` or ``"epr"``, or ``"state:NAME"``, ``"parameter:NAME"``); every
variant provides its family's name.  The part it returns carries both, so that
:meth:`nanopk.Model.validate` names an unmet requirement and the mechanisms that
would meet it (:func:`providers_of`).  Discovery runs once per process;
:func:`clear_registry_cache` forgets it (after installing a package at run time).
"""
from __future__ import annotations

import dataclasses
import functools
import importlib
import inspect
import math
import pkgutil
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import SpecError, suggest
from ..parts import Parameter, Part
from ..particle import Particle
from ..physiology import Physiology, get_physiology

__all__ = ["BuildContext", "resolve_mechanism", "families", "variants", "declare", "providers_of",
           "check_requirements", "register_family", "clear_registry_cache", "ENTRY_POINT_GROUP"]

#: The entry-point group through which an installed package adds mechanism families.
ENTRY_POINT_GROUP = "nanopk.mechanisms"


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
    #: What the mechanisms built so far offer by registry (family names, ``"family.variant"``
    #: and :func:`declare`-d capabilities); kept apart from ``provided``, which the
    #: built-in mechanisms read to adapt (a corona variant is not "corona" to aggregation).
    offered: set[str] = field(default_factory=set)

    @property
    def physiology(self) -> Physiology:
        return get_physiology(self.species)


def param(name: str, value: float, unit: str, source: str, bounds=(0.0, math.inf), description: str = "") -> Parameter:
    """Shorthand for :class:`nanopk.parts.Parameter` with bounds defaulting to [0, inf)."""
    return Parameter(name, float(value), unit, source, tuple(float(b) for b in bounds), description)


# ------------------------------------------------------------------------- registry
#: Families registered at run time by :func:`register_family` (name -> module name).
_REGISTERED: dict[str, str] = {}


@dataclass(frozen=True)
class _Family:
    """Where a family comes from: its module name, or the error that loading it gave."""

    name: str
    module: str
    origin: str  # "nanopk", "entry point <value> (<distribution>)" or "register_family"


def _entry_points() -> list:
    from importlib.metadata import entry_points

    return list(entry_points(group=ENTRY_POINT_GROUP))


@functools.lru_cache(maxsize=None)
def _discover() -> tuple[dict[str, _Family], tuple[str, ...]]:
    """``({family: _Family}, conflicts)``: the built-in modules, then the entry points."""
    # The modules beside this one (not `import nanopk.mechanisms`: the package imports us).
    package = __name__.rpartition(".")[0]
    found: dict[str, _Family] = {}
    for info in pkgutil.iter_modules([str(Path(__file__).parent)]):
        if info.name != "base" and not info.name.startswith("_"):
            found[info.name] = _Family(info.name, f"{package}.{info.name}", "nanopk")
    conflicts = []
    for ep in _entry_points():
        dist = getattr(getattr(ep, "dist", None), "name", None) or "an installed package"
        origin = f"entry point {ep.name} = {ep.value!r} of {dist}"
        if ep.name in found:
            # Two modules under one name: refuse rather than pick one silently.
            conflicts.append(f"mechanism family {ep.name!r} is declared by nanopk ({found[ep.name].origin}) "
                             f"and by the {origin}; rename the entry point")
            continue
        found[ep.name] = _Family(ep.name, ep.value.partition(":")[0], origin)
    for name, module in _REGISTERED.items():
        found[name] = _Family(name, module, "register_family")
    return found, tuple(conflicts)


def clear_registry_cache() -> None:
    """Forget discovered families (re-read the entry points on next use)."""
    _discover.cache_clear()
    _variants.cache_clear()


def register_family(name: str, module: str) -> None:
    """Register the module named ``module`` as mechanism family ``name`` for this process.

    For code that cannot install a package (a notebook); a package uses the entry
    point :data:`ENTRY_POINT_GROUP` instead.
    """
    if not name.isidentifier():
        raise SpecError(f"mechanism family name {name!r} is not an identifier (write e.g. 'labbind')")
    _REGISTERED[name] = module
    clear_registry_cache()


def families() -> dict[str, str]:
    """``{family: module name}`` of every mechanism family: nanopk's, then installed packages'."""
    return {name: fam.module for name, fam in _discover()[0].items()}


def __getattr__(name):
    # FAMILIES was a hand-written tuple; it is now what discovery finds.
    if name == "FAMILIES":
        return tuple(families())
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@functools.lru_cache(maxsize=None)
def _variants(family: str) -> dict:
    found, conflicts = _discover()
    for problem in conflicts:
        if repr(family) in problem:
            raise SpecError(problem)
    fam = found[family]
    try:
        module = importlib.import_module(fam.module)
    except Exception as exc:  # a plugin's own import error: say whose, not a bare traceback
        raise SpecError(f"mechanism family {family!r} ({fam.origin}) cannot be imported: "
                        f"{type(exc).__name__}: {exc}") from exc
    # A variant is a public function of the module whose first argument is the context;
    # helper formulas (e.g. epr.two_pore_permeability) are not mechanisms.
    return {
        n: f for n, f in inspect.getmembers(module, inspect.isfunction)
        if f.__module__ == module.__name__ and not n.startswith("_")
        and next(iter(inspect.signature(f).parameters), None) == "ctx"
    }


def variants(family: str) -> dict:
    """``{variant: function}`` of ``family``; an unknown family lists the valid ones."""
    names = families()
    if family not in names:
        raise SpecError(f"unknown mechanism family {family!r}{suggest(family, names)}; "
                        f"families: {', '.join(names)}")
    return dict(_variants(family))


def declare(requires=(), provides=(), groups=None):
    """Decorator: what a mechanism variant needs before it, offers after it, and how its
    parameters group into mechanisms.

    ``requires`` are capabilities a mechanism listed before it must offer (a family name
    such as ``"circulation"`` or ``"epr"``, a ``"family.variant"``, or a capability
    another variant declares in ``provides``).  Whether the variant is built through a
    spec (:func:`resolve_mechanism`) or called directly with a context, a requirement
    the context does not meet is a :class:`SpecError` naming the mechanisms that would
    meet it, before the variant runs; the part it returns carries ``requires`` and
    ``provides``, so :meth:`nanopk.Model.validate` names a requirement that no other
    part of an assembled model meets.  Declared ``provides`` join ``ctx.provided``.

    ``groups`` is ``{group: (stem, ...)}``: a parameter of the variant's part named
    ``stem`` or ``stem_<anything>`` belongs to ``group`` (the first that matches), which
    :func:`nanopk.compare` tests as one hypothesis; e.g. ``{"phagocytic uptake": ("Kmax",
    "K50", "n")}`` puts ``Kmax_liver`` and ``n_spleen`` together.

    >>> from nanopk.mechanisms import declare
    >>> @declare(requires=("epr",), provides=("receptor_binding",))
    ... def receptor_binding(ctx, k_on=1.0): ...
    >>> receptor_binding.requires, receptor_binding.provides
    (('epr',), ('receptor_binding',))
    """
    requires = tuple(str(r) for r in ([requires] if isinstance(requires, str) else requires))
    provides = tuple(str(p) for p in ([provides] if isinstance(provides, str) else provides))
    groups = {str(g): tuple([stems] if isinstance(stems, str) else stems) for g, stems in (groups or {}).items()}

    def mark(func):
        ref = f"{func.__module__.rpartition('.')[2]}.{func.__name__}"

        @functools.wraps(func)  # keeps the signature (specs check options against it) and __module__
        def build(ctx: BuildContext, *args, **options):
            # Called directly (not through the registry, which checks with the spec's name).
            check_requirements(ref, requires, ctx)
            part = func(ctx, *args, **options)
            if not isinstance(part, Part):
                return part
            ctx.provided.update(provides)
            return dataclasses.replace(part, requires=_unique(part.requires + requires),
                                       provides=_unique(part.provides + provides))

        build.requires, build.provides, build.groups = requires, provides, groups
        build.declared_body = func  # what resolve_mechanism runs after its own check
        return build

    return mark


def check_requirements(ref: str, requires, ctx: BuildContext) -> None:
    """Refuse to build mechanism ``ref`` when ``ctx`` lacks one of its ``requires``.

    A requirement is met by what the mechanisms built before it offer (``ctx.offered``:
    family names, ``"family.variant"``, declared capabilities) or recorded
    (``ctx.provided``).

    Raises
    ------
    SpecError
        One sentence per unmet requirement, naming the mechanisms that would meet it.
    """
    missing = [r for r in requires if r not in ctx.provided and r not in ctx.offered]
    if not missing:
        return
    sentences = []
    for need in missing:
        who = [w for w in providers_of(need) if w != ref]
        fix = (f"list {who[0]} before it" if len(who) == 1 else f"list one of {', '.join(who)} before it" if who
               else "no registered mechanism provides it")
        sentences.append(f"{ref} requires {need!r}, which no mechanism listed before it provides; {fix}")
    raise SpecError("; ".join(sentences))


def providers_of(capability: str) -> list[str]:
    """``"family.variant"`` of every registered mechanism that provides ``capability``.

    A variant provides its family's name, its own ``"family.variant"``, and whatever it
    declares (:func:`declare`).  Families that cannot be imported are skipped here (the
    error is raised where they are used).
    """
    out = []
    for family in families():
        try:
            found = _variants(family)
        except SpecError:
            continue
        for name, func in sorted(found.items()):
            ref = f"{family}.{name}"
            if capability in (family, ref) or capability in getattr(func, "provides", ()):
                out.append(ref)
    return out


def _unique(items) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


def _grouped(part: Part, groups: dict) -> tuple[tuple[str, str], ...]:
    """``(parameter, group)`` for each parameter of ``part`` a declared stem covers."""
    out = []
    for p in part.parameters:
        for group, stems in groups.items():
            if any(p.name == s or p.name.startswith(s + "_") for s in stems):
                out.append((p.name, group))
                break
    return tuple(out)


def resolve_mechanism(ref: str):
    """The function for ``"family.variant"``; an unknown name lists the valid choices.

    The function returned builds the variant's part and records on it what it requires
    and provides (:func:`declare`, plus the family name and whatever the variant added
    to ``ctx.provided``); a declared requirement that no mechanism listed before it met
    is a :class:`SpecError` naming the mechanisms that would meet it.
    """
    family, _, variant = ref.partition(".")
    names = families()
    if family not in names or not variant:
        raise SpecError(f"unknown mechanism {ref!r}{suggest(family, names)}; write 'family.variant' with family one of {', '.join(names)}")
    found = _variants(family)
    if variant not in found:
        raise SpecError(f"mechanism family {family!r} has no variant {variant!r}{suggest(variant, found)}; valid: {', '.join(sorted(found))}")
    return _recording(ref, family, found[variant])


def _recording(ref: str, family: str, func):
    requires = tuple(getattr(func, "requires", ()))
    declared = tuple(getattr(func, "provides", ()))
    groups = dict(getattr(func, "groups", {}))

    run = getattr(func, "declared_body", func)  # a declared variant's body: checked here, by its spec name

    @functools.wraps(func)  # keeps the signature: specs check options against it
    def build(ctx: BuildContext, **options) -> Part:
        check_requirements(ref, requires, ctx)
        before = set(ctx.provided)
        part = run(ctx, **options)
        if not isinstance(part, Part):
            raise SpecError(f"mechanism {ref} returned {type(part).__name__}, not a nanopk.Part")
        offered = (family, ref, *declared)
        ctx.offered.update(offered)
        ctx.provided.update(declared)
        return dataclasses.replace(part, requires=_unique(part.requires + requires),
                                   groups=part.groups + _grouped(part, groups),
                                   provides=_unique(part.provides + offered + tuple(sorted(ctx.provided - before - set(offered)))))

    return build
