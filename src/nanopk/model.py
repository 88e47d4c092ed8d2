"""The immutable compartment model: parts in, ODEs derived from the flux graph.

For mass states the right-hand side is never written by hand:

    dA_i/dt = Σ_{f : target(f) = i} rate_f − Σ_{f : source(f) = i} rate_f

so Σ_i dA_i/dt = 0 over all mass states, whatever the rate laws are.  Every model gets
a ``depot`` state (dose not yet administered, kind ``depot``), a ``dose`` parameter
(µg, the whole regimen) and an ``infusion_rate`` control (µg/h, set per dosing
segment by the simulator), so bolus, infusion and repeated dosing need no change of
structure and ``total`` = 100 %ID at all times.

Observables: one per organ named on the states (``State.organ``), in %ID, plus
``total``; mechanisms may add others (coverage, hydrodynamic diameter, ``dissolved``).
"""
from __future__ import annotations

import functools
import hashlib
import math
from collections import Counter, OrderedDict
from dataclasses import replace
from typing import TYPE_CHECKING, Iterable, Mapping, Sequence

import numpy as np

if TYPE_CHECKING:
    import sympy as sp

from . import unitcheck
from .errors import ModelError, suggest
from .parts import (
    DEPOT,
    RESIDUAL_BLOOD_PARAMETER,
    DOSE,
    INFUSION_RATE,
    MASS_KINDS,
    STATE_KINDS,
    Assignment,
    Flux,
    Observable,
    Parameter,
    Part,
    RateRule,
    State,
    NO_SPECIES_DEFAULT,
    amount_observable,
    unmet_requirements,
    observed_amounts,
    symbol,
)

__all__ = ["Model", "DOSE", "INFUSION_RATE", "DEPOT"]


_DOSE_PARAMETER = Parameter(
    DOSE, 1.0, "ug", "set by the dosing regimen (total of all administrations)", (1e-12, math.inf),
    "total administered NP mass; %ID is relative to it",
)
_INFUSION_PARAMETER = Parameter(
    INFUSION_RATE, 0.0, "ug/h", "control input, set by the simulator for each dosing segment", (0.0, math.inf),
    "zero-order input from the depot into the dose target",
)


class Model:
    """A nanoparticle compartment model composed from mechanism parts.

    Parameters
    ----------
    name : str
        Model name (``models/NAME.toml``).
    parts : sequence of Part
        What the mechanisms contribute.
    dose_target : str
        The state an IV dose enters (e.g. ``"venous_blood"``).
    description, metadata :
        Free text and a dict carried along (species, spec path, particle, notes).

    Notes
    -----
    A model is immutable: :meth:`with_parameters` and :meth:`with_parts` return new
    models.  Two models with the same structure share one compiled artifact, because
    compilation is keyed by :attr:`structure_hash`, which ignores parameter values.
    """

    def __init__(
        self,
        name: str,
        parts: Sequence[Part],
        dose_target: str,
        description: str = "",
        metadata: Mapping | None = None,
    ):
        self._name = str(name)
        self._parts = tuple(parts)
        self._dose_target = dose_target
        self._description = description
        self._metadata = dict(metadata or {})
        whole = Part("model")
        for part in self._parts:
            whole = whole + part
        self._states = tuple(whole.states)
        if DEPOT not in {s.name for s in self._states}:
            self._states += (State(DEPOT, "depot", description="dose not yet administered"),)
        params = list(whole.parameters)
        names = {p.name for p in params}
        for builtin in (_DOSE_PARAMETER, _INFUSION_PARAMETER):
            if builtin.name not in names:
                params.append(builtin)
        self._parameters = tuple(params)
        self._fluxes = tuple(whole.fluxes) + (
            Flux("infusion", DEPOT, dose_target, symbol(INFUSION_RATE), "zero-order infusion"),
        )
        self._rate_rules = tuple(whole.rate_rules)
        self._assignments = tuple(whole.assignments)
        self._notes = tuple(whole.notes)
        self._observables = self._derive_observables(whole.observables)
        self._observable_heads = tuple((o.name, o.unit, o.description) for o in self._observables)
        self._cache: dict = {}

    # ------------------------------------------------------------ deferred equations
    # A model recalled by nanopk.prebuilt carries its names, units and values but not
    # its equations; the first access to one of these attributes builds them.
    _DEFERRED = frozenset({"_parts", "_fluxes", "_rate_rules", "_assignments", "_observables"})

    @classmethod
    def _deferred(cls, skeleton: Mapping, build) -> "Model":
        """A model from a remembered skeleton; ``build()`` makes its equations on demand.

        ``build`` returns the whole model; whoever remembered the skeleton checks, inside
        ``build``, that the equations it makes are the ones remembered
        (:func:`nanopk.prebuilt.recall`), so the model needs to know nothing of caches.
        """
        model = cls.__new__(cls)
        model._name = skeleton["name"]
        model._dose_target = skeleton["dose_target"]
        model._description = skeleton["description"]
        model._metadata = dict(skeleton["metadata"])
        model._states = tuple(skeleton["states"])
        model._parameters = tuple(skeleton["parameters"])
        model._observable_heads = tuple(skeleton["observables"])
        model._notes = tuple(skeleton["notes"])
        # Remembered only after the model validated, under a key that covers its recipe.
        model._cache = {"hash": skeleton["structure_hash"], "validated": True, "n_fluxes": skeleton["n_fluxes"]}
        model._build = build
        return model

    def __getattr__(self, name):
        # Called only for attributes not set: the equations of a deferred model.
        if name in Model._DEFERRED and self.__dict__.get("_build") is not None:
            self._materialize()
            return self.__dict__[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def _materialize(self) -> None:
        built = self.__dict__.pop("_build")()
        for name in Model._DEFERRED:
            setattr(self, name, getattr(built, name))

    # ------------------------------------------------------------------ structure
    @property
    def name(self) -> str:
        return self._name

    @property
    def description(self) -> str:
        return self._description

    @property
    def metadata(self) -> dict:
        return dict(self._metadata)

    @property
    def parts(self) -> tuple[Part, ...]:
        return self._parts

    @property
    def dose_target(self) -> str:
        return self._dose_target

    @property
    def states(self) -> tuple[State, ...]:
        return self._states

    @property
    def state_names(self) -> list[str]:
        return [s.name for s in self._states]

    @property
    def mass_states(self) -> list[str]:
        return [s.name for s in self._states if s.is_mass]

    @property
    def parameters(self) -> "OrderedDict[str, Parameter]":
        """Parameters by name, in declaration order (the dose and control last)."""
        return OrderedDict((p.name, p) for p in self._parameters)

    @property
    def parameter_names(self) -> list[str]:
        return [p.name for p in self._parameters]

    @property
    def fluxes(self) -> tuple[Flux, ...]:
        return self._fluxes

    @property
    def rate_rules(self) -> tuple[RateRule, ...]:
        return self._rate_rules

    @property
    def assignments(self) -> tuple[Assignment, ...]:
        return self._assignments

    @property
    def observables(self) -> "OrderedDict[str, Observable]":
        return OrderedDict((o.name, o) for o in self._observables)

    @property
    def observable_names(self) -> list[str]:
        """Observable names, in order (no equations needed)."""
        return [name for name, _, _ in self._observable_heads]

    @property
    def observable_units(self) -> dict[str, str]:
        return {name: unit for name, unit, _ in self._observable_heads}

    @property
    def notes(self) -> tuple[str, ...]:
        return self._notes

    def __repr__(self) -> str:
        n_fluxes = len(self.__dict__["_fluxes"]) if "_fluxes" in self.__dict__ else self._cache["n_fluxes"]
        return (
            f"<nanopk.Model {self._name!r}: {len(self._states)} states, "
            f"{len(self._parameters)} parameters, {n_fluxes} fluxes>"
        )

    # ------------------------------------------------------------------ edits
    def with_parameters(self, values: Mapping[str, float] | None = None, **kwargs) -> "Model":
        """A new model with parameter default values replaced.

        Raises
        ------
        ModelError
            If a name is not a parameter of the model (every unknown name is listed).
        """
        values = dict(values or {}, **kwargs)
        self.check_parameter_names(values)
        if self.__dict__.get("_build") is not None:  # recalled, equations not built: keep them deferred
            copy = self._deferred_with_values(values)
            if copy is not None:
                return copy
        new_parts = []
        for part in self._parts:
            new_params = tuple(p.with_value(values[p.name]) if p.name in values else p for p in part.parameters)
            new_parts.append(replace(part, parameters=new_params))
        model = Model(self._name, new_parts, self._dose_target, self._description, self._metadata)
        builtin = {k: v for k, v in values.items() if k in (DOSE, INFUSION_RATE)}
        if builtin:  # dose and control live on the model, not on a part
            model._parameters = tuple(p.with_value(builtin[p.name]) if p.name in builtin else p for p in model._parameters)
            model._cache.pop("parameter_defaults", None)
        return model

    def _deferred_with_values(self, values: Mapping[str, float]) -> "Model | None":
        """:meth:`with_parameters` of a recalled model whose equations are not built: a
        model from the same skeleton with those values, its equations deferred too (a fit
        on a cached model then never builds them, nor imports SymPy).

        Values do not enter the equations, the structural hash or the unit check, so
        the copy is as valid as this model if each value is admissible; ``None`` if one
        is not, and :meth:`with_parameters` builds the model, whose ``validate`` then
        reports it as for any model.
        """
        params = tuple(p.with_value(values[p.name]) if p.name in values else p for p in self._parameters)
        if any(p.problem(p.value, "default") for p in params):
            return None
        skeleton = {
            "name": self._name, "dose_target": self._dose_target, "description": self._description,
            "metadata": self._metadata, "states": self._states, "parameters": params,
            "observables": self._observable_heads, "notes": self._notes,
            "structure_hash": self._cache["hash"], "n_fluxes": self._cache["n_fluxes"],
        }
        return Model._deferred(skeleton, functools.partial(_built_with_values, self.__dict__["_build"],
                                                           tuple(values.items())))

    def with_parts(self, *parts: Part, name: str | None = None) -> "Model":
        """A new model with extra parts added."""
        return Model(name or self._name, self._parts + tuple(parts), self._dose_target, self._description, self._metadata)

    def _parameter_index(self) -> dict[str, int]:
        # simulate() runs in fits thousands of times: name lookups must not rebuild lists.
        index = self._cache.get("parameter_index")
        if index is None:
            index = self._cache["parameter_index"] = {p.name: i for i, p in enumerate(self._parameters)}
        return index

    def check_parameter_names(self, names: Iterable[str]) -> None:
        known = self._parameter_index()
        unknown = [n for n in names if n not in known]
        if unknown:
            raise ModelError(
                f"model {self._name!r} has no parameter(s) {', '.join(repr(u) for u in unknown)}",
                [f"{u!r}{suggest(u, known) or ' is not a parameter'}" for u in unknown],
            )

    def check_parameter_values(self, values: Mapping[str, float]) -> None:
        """Check values a user gives for parameters against their names and bounds.

        One check for every path that takes parameter values from a user
        (``simulate(params=...)``, the stepping API, batch runs, ``nanopk simulate
        --param``); :meth:`validate` applies the same rule to the defaults, so
        ``with_parameters`` and fits refuse the same values.

        Raises
        ------
        ModelError
            Listing every unknown name (with the nearest valid ones) and every value
            that is not a finite number inside the parameter's bounds (with its unit).
        """
        self.check_parameter_names(values)
        parameters = self.parameters
        problems = [problem for name, value in values.items() if (problem := parameters[name].problem(value))]
        if problems:
            raise ModelError(f"model {self._name!r}: {len(problems)} parameter value(s) outside what the model admits:", problems)

    def parameter_vector(self, overrides: Mapping[str, float] | None = None) -> np.ndarray:
        """Parameter values in :attr:`parameter_names` order, with ``overrides`` applied."""
        defaults = self._cache.get("parameter_defaults")
        if defaults is None:
            defaults = self._cache["parameter_defaults"] = np.array([float(p.value) for p in self._parameters])
        p = defaults.copy()
        if overrides:
            self.check_parameter_names(overrides)
            index = self._parameter_index()
            for name, value in overrides.items():
                p[index[name]] = float(value)
        return p

    # ------------------------------------------------------------------ equations
    def _derive_observables(self, declared: Sequence[Observable]) -> tuple[Observable, ...]:
        organs: "OrderedDict[str, list[str]]" = OrderedDict()
        for s in self._states:
            if s.organ and s.is_mass:
                organs.setdefault(s.organ, []).append(s.name)
        derived = [amount_observable(organ, names, DOSE, f"{organ}: all NP mass in the organ") for organ, names in organs.items()]
        if any(p.name == RESIDUAL_BLOOD_PARAMETER for p in self._parameters):
            # Observables as the data are measured (whole blood incl. capillary blood;
            # organs with their residual blood): nanopk.parts.observed_amounts.
            how = {"blood": "blood: whole-blood NP, arterial + venous + every organ's capillary blood"}
            derived = [Observable(organ, 100 * amount / symbol(DOSE), "percent_ID",
                                  how.get(organ, f"{organ}: NP in the organ, with f_residual_blood × its capillary blood"))
                       for organ, amount in observed_amounts(self._states).items()]
        declared_names = {o.name for o in declared}
        observables = [o for o in derived if o.name not in declared_names] + list(declared)
        observables.append(amount_observable("total", self.mass_states, DOSE, "every mass state plus sinks: mass balance made visible"))
        return tuple(observables)

    def ordered_assignments(self) -> list[Assignment]:
        """Assignments in dependency order: each refers only to assignments before it.

        Raises
        ------
        ModelError
            If assignments refer to each other in a cycle.
        """
        key = "assign_order"
        if key not in self._cache:
            import sympy as sp

            ordered: list[Assignment] = []
            pending = {a.symbol: a for a in self._assignments}
            while pending:
                ready = [s for s, a in pending.items() if not (sp.sympify(a.expr).free_symbols & pending.keys())]
                if not ready:
                    raise ModelError(f"model {self._name!r}: assignments refer to each other in a cycle", [str(s) for s in pending])
                ordered += [pending.pop(s) for s in ready]
            self._cache[key] = ordered
        return self._cache[key]

    def assignment_substitutions(self) -> dict:
        """``{symbol: expression in states, parameters and t}`` with nested assignments resolved."""
        key = "assign_subs"
        if key not in self._cache:
            import sympy as sp

            resolved: dict = {}
            for a in self.ordered_assignments():
                resolved[a.symbol] = sp.sympify(a.expr).xreplace(resolved)
            self._cache[key] = resolved
        return self._cache[key]

    def rate_terms(self) -> list[tuple[sp.Expr, tuple[tuple[int, int], ...]]]:
        """Every rate law once, assignments kept, with the states it changes.

        ``(rate, ((i, ±1), ...))``: a flux takes mass from its source (−1) to its target
        (+1); a rate rule drives its own state (+1).  So ``dy_i/dt = Σ sign · rate``,
        and a derivative of the system needs each rate law differentiated only once.
        """
        import sympy as sp

        index = {s.name: i for i, s in enumerate(self._states)}
        terms = [(sp.sympify(f.rate), ((index[f.source], -1), (index[f.target], 1))) for f in self._fluxes]
        terms += [(sp.sympify(r.expr), ((index[r.state], 1),)) for r in self._rate_rules]
        return terms

    def rhs_expressions(self, substitute: bool = True) -> list[sp.Expr]:
        """``dy/dt`` for every state, in :attr:`state_names` order.

        With ``substitute=False`` the assignments stay as symbols (see
        :meth:`ordered_assignments`), the form code generators print.
        """
        key = ("rhs", substitute)
        if key not in self._cache:
            import sympy as sp

            subs = self.assignment_substitutions() if substitute else {}
            terms: list[list] = [[] for _ in self._states]
            for rate, changes in self.rate_terms():
                rate = rate.xreplace(subs)
                for i, sign in changes:
                    terms[i].append(sign * rate)
            # One Add per state: repeated += re-canonicalises a growing sum (quadratic).
            self._cache[key] = [sp.Add(*t) for t in terms]
        return self._cache[key]

    def observable_expressions(self, substitute: bool = True) -> "OrderedDict[str, sp.Expr]":
        import sympy as sp

        subs = self.assignment_substitutions() if substitute else {}
        return OrderedDict((o.name, sp.sympify(o.expr).xreplace(subs)) for o in self._observables)

    def initial_state_expressions(self, substitute: bool = True) -> list[sp.Expr]:
        """Initial values before dosing: 0 for mass; the declared value for the rest."""
        import sympy as sp

        subs = self.assignment_substitutions() if substitute else {}
        out = []
        for s in self._states:
            v = s.initial
            out.append(symbol(v).xreplace(subs) if isinstance(v, str) else sp.Float(v))
        return out

    @property
    def state_symbols(self) -> list[sp.Symbol]:
        return [s.symbol for s in self._states]

    @property
    def parameter_symbols(self) -> list[sp.Symbol]:
        return [p.symbol for p in self._parameters]

    @property
    def structure_hash(self) -> str:
        """Hash of the model's definitions and the order of states and parameters (not values).

        Hashes what defines the equations -- states, flux ends and rate laws, rate rules,
        assignments, observables -- rather than the substituted ODEs: equal definitions
        give equal equations, and a cached compiled model is found without deriving them.
        """
        key = "hash"
        if key not in self._cache:
            import sympy as sp

            h = hashlib.sha256()
            h.update(repr(self.state_names).encode())
            h.update(repr(self.parameter_names).encode())
            h.update(repr([(s.kind, s.initial) for s in self._states]).encode())
            items = [(f.source, f.target, f.rate) for f in self._fluxes]
            items += [(r.state, r.expr) for r in self._rate_rules]
            items += [(a.name, a.expr) for a in self._assignments]
            items += [(o.name, o.expr) for o in self._observables]
            text: dict = {}
            for *names, expr in items:
                h.update(repr(names).encode() + _tree_text(sp.sympify(expr), text).encode())
            self._cache[key] = h.hexdigest()[:20]
        return self._cache[key]

    # ------------------------------------------------------------------ checks
    def validate(self) -> "Model":
        """Check the model and report every problem at once.

        Checks: duplicate names; fluxes between undeclared or non-mass states;
        symbols that are not declared; non-mass states without a rate rule, rate
        rules on mass states; missing or non-finite initial values and defaults;
        defaults outside their bounds; units — every flux must be mass/time, every
        rate rule the state's unit per time, every assignment its declared unit.

        Returns the model itself, so ``Model(...).validate()`` chains.

        Raises
        ------
        ModelError
            With ``.problems`` listing every problem found.
        """
        # What each part requires (Part.requires) must be offered by some part; the
        # registry names the mechanisms that would (looked up only when one is missing).
        # First: a missing part is the cause of the undeclared names reported after it.
        problems: list[str] = unmet_requirements(self._parts, _providers_of)
        names = [s.name for s in self._states] + [p.name for p in self._parameters] + [a.name for a in self._assignments]
        for name, count in Counter(names).items():
            if count > 1:
                problems.append(f"duplicate name {name!r} declared {count} times (states, parameters and assignments share one namespace)")
        if "t" in names:
            problems.append("the name 't' is reserved for time")
        states = {s.name: s for s in self._states}
        for s in self._states:
            if s.kind not in STATE_KINDS:
                problems.append(f"state {s.name!r} has kind {s.kind!r}; expected one of {sorted(STATE_KINDS)}")
            if s.is_mass and s.unit not in ("ug", "microgram"):
                problems.append(f"mass state {s.name!r} must be in ug (got {s.unit!r})")
        if self._dose_target not in states:
            problems.append(f"dose target {self._dose_target!r} is not a state{suggest(self._dose_target, states)}")
        elif states[self._dose_target].kind != "particle":
            problems.append(f"dose target {self._dose_target!r} must be a particle state (got kind {states[self._dose_target].kind!r})")
        from .parts import TIME

        known = {symbol(n) for n in names} | {TIME}
        for f in self._fluxes:
            for end, sname in (("source", f.source), ("target", f.target)):
                if sname not in states:
                    problems.append(f"flux {f.name!r}: {end} {sname!r} is not a declared state{suggest(sname, states)}")
                elif not states[sname].is_mass:
                    problems.append(f"flux {f.name!r}: {end} {sname!r} is a {states[sname].kind} state; fluxes move mass only (use a rate rule)")
            problems += _undeclared(f"flux {f.name!r}", f.rate, known, names)
        ruled = Counter(r.state for r in self._rate_rules)
        for r in self._rate_rules:
            if r.state not in states:
                problems.append(f"rate rule for undeclared state {r.state!r}{suggest(r.state, states)}")
            elif states[r.state].is_mass:
                problems.append(f"rate rule on mass state {r.state!r}: mass moves only by fluxes, so that mass balance holds")
            problems += _undeclared(f"rate rule of {r.state!r}", r.expr, known, names)
        for sname, count in ruled.items():
            if count > 1:
                problems.append(f"state {sname!r} has {count} rate rules; combine them into one")
        for s in self._states:
            if not s.is_mass and s.name not in ruled:
                problems.append(f"non-mass state {s.name!r} has no rate rule")
            if isinstance(s.initial, str):
                if symbol(s.initial) not in known:
                    problems.append(f"initial value of {s.name!r} refers to undeclared {s.initial!r}{suggest(s.initial, names)}")
            elif s.initial is None or not math.isfinite(float(s.initial)):
                problems.append(f"state {s.name!r} has no finite initial value (got {s.initial!r})")
        for a in self._assignments:
            problems += _undeclared(f"assignment {a.name!r}", a.expr, known, names)
        for o in self._observables:
            problems += _undeclared(f"observable {o.name!r}", o.expr, known, names)
        for p in self._parameters:
            problem = p.problem(p.value, "default")
            if problem:
                # A default the model's species has none of: its source says which species have one.
                problems.append(p.source if p.source.startswith(NO_SPECIES_DEFAULT) else problem)
            if not p.source:
                problems.append(f"parameter {p.name!r} has no literature source")
        signature = None if problems else unitcheck.unit_signature(self)
        if signature is not None and not unitcheck.units_known_good(signature):
            problems += unitcheck.check_units(self)
            if not problems:
                unitcheck.remember_units_good(signature)
        if problems:
            raise ModelError(f"model {self._name!r} is invalid ({len(problems)} problem(s)):", problems)
        # The unit check dominates loading a model; simulate() need not repeat it.
        self._cache["validated"] = True
        return self

    @property
    def validated(self) -> bool:
        """Whether :meth:`validate` has passed on this model (a recalled prebuilt model has)."""
        return bool(self._cache.get("validated"))

    def ensure_valid(self) -> "Model":
        """:meth:`validate` once: the first call checks, later calls return at once.

        What every run of the model (``simulate``, batches, the stepping API, fits)
        calls before solving; the model is immutable, so one pass holds for its life.

        Raises
        ------
        ModelError
            As :meth:`validate`, on the first call of an invalid model (and on each
            later one: an invalid model is never remembered as valid).
        """
        if not self._cache.get("validated"):
            self.validate()
        return self

    # ------------------------------------------------------------------ running
    def compile(self, backend: str = "auto"):
        """Compile (or load from cache) the numerical right-hand side and Jacobian."""
        from .compile import compile_model

        return compile_model(self, backend)

    def simulate(self, times_h, params: Mapping[str, float] | None = None, dose=None, **options):
        """Simulate and return observables in %ID (see :func:`nanopk.simulate.simulate`)."""
        from .simulate import simulate

        return simulate(self, times_h, params=params, dose=dose, **options)

    def integrator(self, params: Mapping[str, float] | None = None, **options):
        """A stepping integrator for co-simulation (see :class:`nanopk.stepping.Integrator`)."""
        from .stepping import Integrator

        return Integrator(self, params=params, **options)


def _built_with_values(build, values: tuple) -> "Model":
    """The model ``build()`` makes, with parameter ``values`` (a partial of this, not a
    closure, is what a deferred copy carries, so that it pickles for worker processes)."""
    return build().with_parameters(dict(values))


def _providers_of(capability: str) -> list[str]:
    """The registered mechanisms that provide ``capability`` (for the validation message)."""
    from .mechanisms.base import providers_of

    return providers_of(capability)


def _tree_text(expr, memo: dict) -> str:
    """An exact, process-independent text of ``expr``'s tree, for hashing.

    Atoms print their full content (symbol names with assumptions, the binary value of
    floats), so different trees give different texts.  Arguments of commutative
    operations (sums, products, Max, And...) are sorted, so the order an expression
    was built in does not matter.  Ten times faster than ``sympy.srepr``, which orders
    terms through SymPy's printing machinery; ``memo`` shares subtrees between rate laws.
    """
    if expr in memo:
        return memo[expr]
    if expr.is_Atom:
        out = f"{type(expr).__name__}{expr._hashable_content()!r}"
    else:
        from sympy.core.operations import AssocOp  # here: importing the model needs no SymPy

        args = [_tree_text(a, memo) for a in expr.args]
        if isinstance(expr, AssocOp) and expr.is_commutative:
            args.sort()
        out = f"{type(expr).__name__}({','.join(args)})"
    memo[expr] = out
    return out


def _undeclared(where: str, expr, known: set, names: Sequence[str]) -> list[str]:
    import sympy as sp

    missing = sorted(str(s) for s in sp.sympify(expr).free_symbols - known)
    return [f"{where} uses undeclared symbol {m!r}{suggest(m, names)}" for m in missing]
