"""SBML import: a model someone else wrote (or nanopk exported) as a nanopk :class:`~nanopk.Model`.

What is read, and what it becomes:

==========================================  =============================================
SBML                                        nanopk
==========================================  =============================================
species (an amount in a *mass* unit)        mass state in µg (``organ`` = its id, so each
                                            species gets a %ID observable)
reaction ``A → B`` (stoichiometry 1)        flux ``A → B``, rate = the kinetic law
reaction ``A → ∅``                          flux into a sink state ``eliminated``
local parameters of a kinetic law           global parameters ``REACTION_PARAM``
constant parameter / compartment            parameter (value, unit, bounds, source)
assignment rule on a parameter/compartment  assignment
rate rule on a parameter                    non-mass state (``auxiliary``) + rate rule
initial assignment of a constant parameter  assignment (the same value at every time)
function definitions                        expanded in place (libsbml's converter)
the species with an initial amount          the dose target; its amount the default dose
event ``time >= T``: ``S = S + AMOUNT``     a bolus of AMOUNT into S at T (S the dose
                                            target); the model's ``metadata["dosing"]``
==========================================  =============================================

Doses from events.  An event whose trigger is a fixed time (``time >= T`` or
``time > T``, T > 0 a number or a constant parameter), without delay, with the one
assignment ``S = S + AMOUNT`` (a number or constant parameter; for a species in
concentration, times its compartment's size) is a bolus.  The initial amount and these
boluses are the model's regimen: ``dose`` is their total (so %ID is of everything
given), ``model.metadata["dosing"]`` lists them (``time_h``, ``amount_ug``,
``source``), and a simulation without an explicit ``dose=`` gives them
(:meth:`nanopk.dosing.Dosing.coerce`, scaled when ``dose`` is changed); an explicit
``dose=`` replaces the regimen, and a fit simulates each dataset with its own dose.

Units are translated from the ``unitDefinition`` elements (SI prefixes, hours,
minutes, days, whether a tool writes the factor as ``multiplier`` or ``scale`` or both,
as Antimony's 3.6·10³ s; a unit that names a pint unit is taken by its name).  nanopk's time is
hours and its mass states are µg: a model in minutes, or in mg, is rescaled on import
(every rate multiplied by the conversion factor; ``time`` replaced by the hours
times the factor; a species symbol by its µg amount divided by the factor, and by its
compartment's size for a species in concentration, ``hasOnlySubstanceUnits=false``),
so ``simulate()`` gives the same trajectories in nanopk's units.

A model nanopk itself exported (:func:`nanopk.to_sbml`) comes back as the model it was:
its annotations give each state's kind and organ and each parameter's unit, source and
bounds; the depot, the ``dose``/``infusion_rate`` parameters and the infusion reaction are
nanopk's own and are recreated, not imported; observables ``obs_NAME`` that nanopk does not
derive itself become declared observables.

Refused, with a :class:`SBMLImportError` that names the element's id and says what is
supported: events other than the boluses above, delays, algebraic rules, rules on
species, reactions that are not a one-to-one transfer of mass (stoichiometry other
than 1, several reactants or products, synthesis from nothing), species in a unit that is not a mass (nanopk's states are
particle masses), several species with an initial amount (nanopk gives one dose), an
id nanopk reserves (``dose``, ``infusion_rate``, ``depot``, ``t``), and units it
cannot translate.  Nothing is dropped silently.

References
----------
Hucka M et al. The Systems Biology Markup Language (SBML): language specification for
Level 3 Version 2 Core. J Integr Bioinform 2019;16:20190021 (doi:10.1515/jib-2019-0021).
"""
from __future__ import annotations

import math
from pathlib import Path
from xml.etree import ElementTree

import sympy as sp

from .errors import ModelError, NanopkError
from .parts import DEPOT, DOSE, INFUSION_RATE, TIME, Assignment, Flux, Observable, Parameter, Part, RateRule, State, symbol

__all__ = ["import_sbml", "SBMLImportError"]

NANOPK_NS = "https://nanopk.readthedocs.io/sbml/1"
RESERVED = {DOSE, INFUSION_RATE, DEPOT, "t"}
SINK = "eliminated"


class SBMLImportError(ModelError):
    """An SBML model (or one of its elements) that nanopk cannot import; the message names the id."""


def _libsbml():
    try:
        import libsbml
    except ImportError:
        raise ImportError("SBML import needs python-libsbml: pip install 'nanopk[sbml]'") from None
    return libsbml


# ----------------------------------------------------------------------------- units
#: SBML base unit kinds → pint unit names.
_KINDS = {
    "gram": "gram", "kilogram": "kilogram", "litre": "liter", "liter": "liter", "metre": "meter", "meter": "meter",
    "second": "second", "mole": "mole", "dimensionless": "dimensionless", "item": "dimensionless",
    "kelvin": "kelvin", "radian": "radian",
}
_PREFIX = {-15: "femto", -12: "pico", -9: "nano", -6: "micro", -3: "milli", -2: "centi", -1: "deci", 0: "",
           3: "kilo"}
_TIME_MULT = {60.0: "minute", 3600.0: "hour", 86400.0: "day", 604800.0: "week"}


class _Units:
    """SBML unit ids → pint unit strings (``None`` for an undeclared unit)."""

    def __init__(self, sm, libsbml, where: str):
        from .units import Q_, parse_unit

        self.Q_, self.parse = Q_, parse_unit
        self.L = libsbml
        self.where = where
        self.defs = {sm.getUnitDefinition(i).getId(): sm.getUnitDefinition(i) for i in range(sm.getNumUnitDefinitions())}
        self.memo: dict[str, str] = {}

    def _element(self, u, uid: str):
        """``(pint quantity, pint string or None)`` of one <unit>: its name when one exists."""
        kind = self.L.UnitKind_toString(u.getKind())
        if kind not in _KINDS:
            raise SBMLImportError(f"{self.where}: unit {uid!r} uses the SBML unit kind {kind!r}, which nanopk does not "
                                  f"translate; supported kinds: {', '.join(sorted(set(_KINDS)))}")
        name = _KINDS[kind]
        mult, scale, exp = u.getMultiplier(), u.getScale(), u.getExponent()
        quantity = self.Q_(mult * 10.0 ** scale, self.parse(name)) ** exp
        # Tools split the factor differently (an hour is multiplier 3600, or 3.6 with scale 3 as
        # Antimony writes it; a µg scale -6, or multiplier 1e-6): read the product.
        total = float(mult) * 10.0 ** scale
        decade = round(math.log10(total)) if total > 0 else None
        time_name = next((v for k, v in _TIME_MULT.items() if math.isclose(total, k, rel_tol=1e-12)), None)
        if name == "second" and time_name is not None:
            base = time_name
        elif decade in _PREFIX and math.isclose(total, 10.0 ** decade, rel_tol=1e-12) \
                and not (name == "dimensionless" and decade != 0):
            base = name if name in ("dimensionless", "kilogram") and decade == 0 else _PREFIX[decade] + name
        else:
            return quantity, None
        return quantity, (base if exp == 1 else f"{base}**{exp:g}")

    def pint(self, uid: str) -> str | None:
        """The pint string of unit ``uid`` (None for an empty id)."""
        if not uid:
            return None
        if uid in self.memo:
            return self.memo[uid]
        if uid in _KINDS:
            out = _KINDS[uid]
        elif uid in self.defs:
            ud = self.defs[uid]
            elements = [self._element(ud.getUnit(i), uid) for i in range(ud.getNumUnits())]
            quantity = self.Q_(1.0, "dimensionless")
            for q, _ in elements:
                quantity = quantity * q
            out = None
            name = ud.getName()
            if name:  # nanopk's export names each unit by its pint string: that spelling, when it agrees
                try:
                    ratio = float(self.Q_(1.0, self.parse(name)).to(quantity.units).magnitude) / float(quantity.magnitude)
                    out = name if math.isclose(ratio, 1.0, rel_tol=1e-12) else None
                except Exception:  # noqa: BLE001 - a name pint cannot read, or of another dimension: use the parts
                    out = None
            if out is None and all(text is not None for _, text in elements):
                out = str(self.parse(" * ".join(text for _, text in elements) or "dimensionless"))
            if out is None:
                raise SBMLImportError(
                    f"{self.where}: unit {uid!r} ({quantity:~}) has a multiplier nanopk cannot name; supported: SI "
                    "prefixes (scale), on the second the multipliers 60, 3600, 86400, 604800 (minute, hour, day, week), "
                    "or a unitDefinition whose name is a unit pint reads (e.g. name=\"percent_ID\")")
        else:
            raise SBMLImportError(f"{self.where}: unit {uid!r} is neither an SBML base unit nor a unitDefinition of the model")
        self.memo[uid] = out
        return out

    def factor(self, unit: str, to: str) -> float:
        """How many ``to`` one ``unit`` is (``unit`` must have ``to``'s dimension)."""
        return float(self.Q_(1.0, self.parse(unit)).to(self.parse(to)).magnitude)

    def is_mass(self, unit: str) -> bool:
        return self.parse(unit).dimensionality == self.parse("ug").dimensionality


# ----------------------------------------------------------------------------- math
class _Math:
    """libsbml ASTNode → SymPy, with the id substitutions of the import."""

    _FUN = {
        "AST_FUNCTION_EXP": sp.exp, "AST_FUNCTION_LN": sp.log, "AST_FUNCTION_ABS": sp.Abs,
        "AST_FUNCTION_SIN": sp.sin, "AST_FUNCTION_COS": sp.cos, "AST_FUNCTION_TAN": sp.tan,
        "AST_FUNCTION_SINH": sp.sinh, "AST_FUNCTION_COSH": sp.cosh, "AST_FUNCTION_TANH": sp.tanh,
        "AST_FUNCTION_ARCSIN": sp.asin, "AST_FUNCTION_ARCCOS": sp.acos, "AST_FUNCTION_ARCTAN": sp.atan,
        "AST_FUNCTION_FLOOR": sp.floor, "AST_FUNCTION_CEILING": sp.ceiling,
        "AST_FUNCTION_MAX": sp.Max, "AST_FUNCTION_MIN": sp.Min,
    }
    _REL = {"AST_RELATIONAL_LT": sp.StrictLessThan, "AST_RELATIONAL_LEQ": sp.LessThan,
            "AST_RELATIONAL_GT": sp.StrictGreaterThan, "AST_RELATIONAL_GEQ": sp.GreaterThan,
            "AST_RELATIONAL_EQ": sp.Eq, "AST_RELATIONAL_NEQ": sp.Ne}
    _LOG = {"AST_LOGICAL_AND": sp.And, "AST_LOGICAL_OR": sp.Or, "AST_LOGICAL_NOT": sp.Not, "AST_LOGICAL_XOR": sp.Xor}

    def __init__(self, libsbml, names: dict, time_expr):
        self.L = libsbml
        self.names = names  # SBML id → SymPy expression
        self.time = time_expr
        self.kinds = {getattr(libsbml, k): k for k in dir(libsbml) if k.startswith("AST_")}

    def __call__(self, node, where: str):
        if node is None:
            raise SBMLImportError(f"{where} has no math")
        return self.expr(node, where)

    def expr(self, n, where):
        kind = self.kinds.get(n.getType(), "?")
        kids = [n.getChild(i) for i in range(n.getNumChildren())]
        if kind in ("AST_INTEGER",):
            return sp.Integer(n.getInteger())
        if kind in ("AST_REAL", "AST_REAL_E"):
            return sp.Float(n.getReal(), 17)
        if kind == "AST_RATIONAL":
            return sp.Rational(n.getNumerator(), n.getDenominator())
        if kind == "AST_NAME":
            name = n.getName()
            if name not in self.names:
                raise SBMLImportError(f"{where} refers to {name!r}, which is not a species, parameter or compartment of the model")
            return self.names[name]
        if kind == "AST_NAME_TIME":
            return self.time
        if kind in ("AST_FUNCTION_DELAY",):
            raise SBMLImportError(f"{where} uses delay(); nanopk integrates ODEs without delays (supported: "
                                  "arithmetic, powers, exp/ln/log, min/max, piecewise, relations, trigonometric functions)")
        if kind == "AST_NAME_AVOGADRO":
            return sp.Float(6.02214076e23)
        if kind == "AST_CONSTANT_PI":
            return sp.pi
        if kind == "AST_CONSTANT_E":
            return sp.E
        if kind == "AST_CONSTANT_TRUE":
            return sp.true
        if kind == "AST_CONSTANT_FALSE":
            return sp.false
        args = [self.expr(k, where) for k in kids]
        if kind == "AST_PLUS":
            return sp.Add(*args)
        if kind == "AST_MINUS":
            return -args[0] if len(args) == 1 else args[0] - args[1]
        if kind == "AST_TIMES":
            return sp.Mul(*args)
        if kind == "AST_DIVIDE":
            return args[0] / args[1]
        if kind in ("AST_POWER", "AST_FUNCTION_POWER"):
            return args[0] ** args[1]
        if kind == "AST_FUNCTION_ROOT":
            return args[-1] ** (1 / args[0]) if len(args) == 2 else sp.sqrt(args[0])
        if kind == "AST_FUNCTION_LOG":
            return sp.log(args[-1], args[0]) if len(args) == 2 else sp.log(args[0], 10)
        if kind == "AST_FUNCTION_PIECEWISE":
            pieces = [(args[i], args[i + 1]) for i in range(0, len(args) - 1, 2)]
            if len(args) % 2:
                pieces.append((args[-1], True))
            return sp.Piecewise(*pieces)
        if kind in self._FUN:
            return self._FUN[kind](*args)
        if kind in self._REL:
            return self._REL[kind](*args)
        if kind in self._LOG:
            return self._LOG[kind](*args)
        raise SBMLImportError(f"{where} uses the MathML element {kind} ({self.L.formulaToL3String(n)!r}), which nanopk "
                              "does not import (supported: arithmetic, powers, exp/ln/log, min/max, piecewise, "
                              "relations, logical operators, trigonometric functions)")


# ----------------------------------------------------------------------------- import
def _nanopk_annotation(element) -> dict:
    """Attributes of the nanopk annotation of ``element`` ({} when it has none)."""
    if not element.isSetAnnotation():
        return {}
    try:
        root = ElementTree.fromstring(element.getAnnotationString())
    except ElementTree.ParseError:
        return {}
    for child in root:
        if child.tag.startswith("{" + NANOPK_NS + "}"):
            return dict(child.attrib)
    return {}


def _read(source):
    """``(document, label)`` from a path or SBML text."""
    L = _libsbml()
    text = str(source)
    if isinstance(source, Path) or not text.lstrip().startswith("<"):
        path = Path(source)
        if not path.is_file():
            raise NanopkError(f"SBML file {str(path)!r} does not exist; give the path of an .xml/.sbml file or SBML text")
        doc, label = L.readSBMLFromFile(str(path)), str(path)
    else:
        doc, label = L.readSBMLFromString(text), "SBML text"
    errors = [doc.getError(i) for i in range(doc.getNumErrors())
              if doc.getError(i).getSeverity() in (L.LIBSBML_SEV_ERROR, L.LIBSBML_SEV_FATAL)]
    if errors:
        raise SBMLImportError(f"{label} is not valid SBML ({len(errors)} error(s)); libsbml reports:",
                              [f"line {e.getLine()}: {e.getMessage().strip()}" for e in errors[:10]])
    if doc.getModel() is None:
        raise SBMLImportError(f"{label} holds no <model>")
    return doc, label


def _constant_value(node, sm, L):
    """The number ``node`` is: a literal, or a constant parameter with a value and no rule (None otherwise)."""
    if node is None:
        return None
    if node.isNumber():
        return float(node.getValue())
    if node.isName():
        p = sm.getParameter(node.getName())
        if (p is not None and p.getConstant() and p.isSetValue() and sm.getInitialAssignment(p.getId()) is None
                and sm.getRule(p.getId()) is None):
            return float(p.getValue())
    if node.getType() == L.AST_MINUS and node.getNumChildren() == 1:
        inner = _constant_value(node.getChild(0), sm, L)
        return None if inner is None else -inner
    return None


def _event_bolus(e, what, sm, L, species_factor, compartments, per_hour, refuse):
    """``(species, time h, amount µg, event id)`` of an event that is a bolus; refuses any other event."""
    eid = e.getId() or what
    supported = ("; nanopk imports as a dose only an event with trigger `time >= T` (or `time > T`), T > 0 a number or "
                 "constant parameter, no delay, and one assignment `S = S + AMOUNT` to a mass species")
    trigger = e.getTrigger().getMath() if e.isSetTrigger() else None
    kids = [trigger.getChild(k) for k in range(trigger.getNumChildren())] if trigger is not None else []
    if trigger is None or trigger.getType() not in (L.AST_RELATIONAL_GEQ, L.AST_RELATIONAL_GT) or len(kids) != 2 \
            or kids[0].getType() != L.AST_NAME_TIME:
        text = L.formulaToL3String(trigger) if trigger is not None else "none"
        refuse(f"{what}: the trigger {text!r} is not a fixed time{supported}")
        return None
    t0 = _constant_value(kids[1], sm, L)
    if t0 is None or not math.isfinite(t0) or t0 <= 0:
        refuse(f"{what}: the trigger time {L.formulaToL3String(kids[1])!r} is not a number > 0 (a dose at time 0 is the "
               f"species' initial amount){supported}")
        return None
    if e.isSetDelay() and _constant_value(e.getDelay().getMath(), sm, L) != 0.0:
        refuse(f"{what} has a delay{supported}")
        return None
    if e.getNumEventAssignments() != 1:
        refuse(f"{what} has {e.getNumEventAssignments()} assignments{supported}")
        return None
    ea = e.getEventAssignment(0)
    sid, node = ea.getVariable(), ea.getMath()
    text = L.formulaToL3String(node) if node is not None else ""
    if sid not in species_factor:
        refuse(f"{what} assigns {sid!r}, which is not a mass species nanopk imported{supported}")
        return None
    terms = [node.getChild(k) for k in range(node.getNumChildren())] if node is not None and node.getType() == L.AST_PLUS else []
    names = [k for k, t in enumerate(terms) if t.isName() and t.getName() == sid]
    amount = _constant_value(terms[1 - names[0]], sm, L) if len(terms) == 2 and len(names) == 1 else None
    if amount is None or not math.isfinite(amount) or amount <= 0:
        refuse(f"{what} sets {sid!r} = {text!r}, not {sid} plus a positive amount{supported}")
        return None
    s = sm.getSpecies(sid)
    if not s.getHasOnlySubstanceUnits():  # the assignment is to the concentration: times the compartment's size
        c = compartments.get(s.getCompartment())
        if c is None or not c.getConstant() or not c.isSetSize() or sm.getRule(c.getId()) is not None:
            refuse(f"{what} adds a concentration to {sid!r}, whose compartment has no constant size to make it an amount")
            return None
        amount *= c.getSize()
    return sid, t0 / per_hour, amount * species_factor[sid], eid


def import_sbml(source, *, name: str | None = None, dose_target: str | None = None) -> "Model":  # noqa: F821
    """Load an SBML model as a nanopk :class:`~nanopk.Model`.

    Parameters
    ----------
    source : str or Path
        An SBML file (Level 2 or 3; converted to L3V2) or the SBML text itself.
    name : str, optional
        The model's name (default: the SBML model id).
    dose_target : str, optional
        The species that receives the dose.  Default: the one species with a
        non-zero initial amount (its amount becomes the default ``dose``), or in
        nanopk's own export the species initialised to ``dose``.

    Returns
    -------
    nanopk.Model
        Validated (units included); ``simulate()`` runs it.

    Raises
    ------
    SBMLImportError
        A :class:`~nanopk.errors.ModelError` naming the SBML id of every element nanopk
        cannot import and what it supports (see the module docstring).
    NanopkError
        For a missing file.
    ImportError
        Without python-libsbml (``pip install 'nanopk[sbml]'``).

    Examples
    --------
    >>> model = nanopk.import_sbml("two_compartment_mm.xml")  # doctest: +SKIP
    >>> model.simulate([1, 24])                                 # doctest: +SKIP
    """
    from .model import Model

    L = _libsbml()
    doc, label = _read(source)
    if doc.getLevel() != 3 or doc.getVersion() != 2:
        doc.setLevelAndVersion(3, 2, False)
    props = L.ConversionProperties()
    props.addOption("expandFunctionDefinitions", True)
    if doc.getModel().getNumFunctionDefinitions() and doc.convert(props) != L.LIBSBML_OPERATION_SUCCESS:
        raise SBMLImportError(f"{label}: libsbml could not expand the function definitions")
    sm = doc.getModel()
    where = f"{label} (model {sm.getId()!r})"
    problems: list[str] = []

    def refuse(what: str):
        problems.append(what)

    for i in range(sm.getNumConstraints()):
        refuse(f"constraint #{i + 1}: nanopk does not import SBML constraints")
    for i in range(sm.getNumRules()):
        r = sm.getRule(i)
        if r.isAlgebraic():
            refuse(f"algebraic rule #{i + 1}: nanopk integrates ODEs; supported are assignment rules and rate rules on parameters")
    own = any(_nanopk_annotation(sm.getSpecies(i)).get("kind") == "depot" for i in range(sm.getNumSpecies()))

    units = _Units(sm, L, where)
    time_unit = units.pint(sm.getTimeUnits()) or "hour"
    try:
        per_hour = units.factor("hour", time_unit)  # model time units in one hour
    except Exception:  # noqa: BLE001 - pint's DimensionalityError: not a time
        raise SBMLImportError(f"{where}: the model's timeUnits {sm.getTimeUnits()!r} ({time_unit}) are not a time") from None
    model_substance = units.pint(sm.getExtentUnits()) or units.pint(sm.getSubstanceUnits())

    compartments = {sm.getCompartment(i).getId(): sm.getCompartment(i) for i in range(sm.getNumCompartments())}
    rules = {sm.getRule(i).getVariable(): sm.getRule(i) for i in range(sm.getNumRules()) if not sm.getRule(i).isAlgebraic()}
    inits = {sm.getInitialAssignment(i).getSymbol(): sm.getInitialAssignment(i) for i in range(sm.getNumInitialAssignments())}

    # Every id used in math → its SymPy expression (species: µg amount / factor [/ volume]).
    names: dict[str, sp.Expr] = {}
    all_ids = ([sm.getSpecies(i).getId() for i in range(sm.getNumSpecies())]
               + [sm.getParameter(i).getId() for i in range(sm.getNumParameters())] + list(compartments))
    for rid in [sm.getReaction(i).getId() for i in range(sm.getNumReactions())]:
        if rid:
            all_ids.append(rid)
    if not own:
        for ident in all_ids:
            if ident in RESERVED:
                refuse(f"SBML id {ident!r} is reserved by nanopk ({', '.join(sorted(RESERVED))}); rename it in the SBML")
    for cid in compartments:
        names[cid] = symbol(cid)
    for i in range(sm.getNumParameters()):
        names[sm.getParameter(i).getId()] = symbol(sm.getParameter(i).getId())

    # Species → mass states.
    states: list[State] = []
    species_factor: dict[str, float] = {}
    species_units: dict[str, dict] = {}  # what a value of the species in the SBML is in µg (nanopk.petab_import)
    initial_ug: dict[str, float] = {}
    for i in range(sm.getNumSpecies()):
        s = sm.getSpecies(i)
        sid = s.getId()
        ann = _nanopk_annotation(s)
        if own and sid == DEPOT:
            names[sid] = symbol(sid)
            continue
        unit = units.pint(s.getSubstanceUnits()) or units.pint(sm.getSubstanceUnits())
        if unit is None:
            refuse(f"species {sid!r} has no substance units (neither its own nor the model's substanceUnits); nanopk's "
                   "states are masses: declare them, e.g. substanceUnits=\"mg\" with a unitDefinition of gram, scale -3")
            continue
        try:
            mass = units.is_mass(unit)
        except Exception:  # noqa: BLE001 - pint could not read it: reported below as not a mass
            mass = False
        if not mass:
            refuse(f"species {sid!r} is in {unit!r}, not a mass; nanopk's states are particle masses (µg): give the "
                   "species' substanceUnits as a mass (gram with an SI scale)")
            continue
        if s.getBoundaryCondition() or s.getConstant():
            refuse(f"species {sid!r} is a boundary or constant species; nanopk's mass states change only by reactions "
                   "(make it a parameter)")
            continue
        if sid in rules:
            refuse(f"species {sid!r} has a {('rate' if rules[sid].isRate() else 'assignment')} rule; nanopk moves mass only "
                   "by reactions (supported: rules on parameters and compartments)")
            continue
        factor = units.factor(unit, "ug")
        species_factor[sid] = factor
        amount_expr = symbol(sid) / factor
        comp = s.getCompartment()
        species_units[sid] = {"ug_per_unit": factor, "compartment": None}
        if not s.getHasOnlySubstanceUnits():
            amount_expr = amount_expr / names.get(comp, symbol(comp))
            species_units[sid]["compartment"] = comp
        names[sid] = amount_expr
        if s.isSetInitialAmount():
            initial_ug[sid] = s.getInitialAmount() * factor
        elif s.isSetInitialConcentration():
            size = compartments[comp].getSize() if comp in compartments else float("nan")
            initial_ug[sid] = s.getInitialConcentration() * size * factor
        else:
            initial_ug[sid] = 0.0
        kind = ann.get("kind", "particle") if own else "particle"
        organ = ann.get("organ") if own else sid
        volume = comp if comp in compartments and comp != "default_compartment" else None
        states.append(State(sid, kind, "ug", 0.0, organ or None, volume, s.getName() if s.getName() != sid else ""))
    if own:
        names[INFUSION_RATE] = symbol(INFUSION_RATE)
    math_of = _Math(L, names, TIME * per_hour)

    # Events that add an amount to a species at a fixed time are boluses; any other is refused by id.
    boluses = []  # (species, time h, amount µg, event id)
    for i in range(sm.getNumEvents()):
        e = sm.getEvent(i)
        dose = _event_bolus(e, f"event {e.getId() or f'#{i + 1}'!r}", sm, L, species_factor, compartments, per_hour, refuse)
        if dose is not None:
            boluses.append(dose)

    # The dose target: nanopk's export initialises it to `dose`; otherwise the one species with an amount.
    if dose_target is None:
        if own:
            dose_target = next((sym for sym, ia in inits.items() if sym in species_factor
                                and L.formulaToL3String(ia.getMath()).strip() == DOSE), None)
        else:
            loaded = [sid for sid, v in initial_ug.items() if v != 0]
            if not loaded:  # every dose is an event: they name the target
                loaded = list(dict.fromkeys(b[0] for b in boluses if b[0] in species_factor))
            if len(loaded) > 1:
                refuse(f"species {', '.join(map(repr, loaded))} all have an initial amount; nanopk gives one dose into "
                       "one species: pass dose_target= and set the others' initial amounts to 0")
            dose_target = loaded[0] if len(loaded) == 1 else None
        if dose_target is None and not problems:
            refuse("no species has an initial amount, so the dose target is unknown: pass dose_target='SPECIES_ID'")
    elif dose_target not in species_factor:
        from .errors import suggest

        refuse(f"dose_target {dose_target!r} is not a species nanopk imported{suggest(dose_target, species_factor)}")
    for sid, _, _, eid in boluses:
        if dose_target is not None and sid != dose_target:
            refuse(f"event {eid!r} doses species {sid!r}, not the dose target {dose_target!r}; nanopk gives every dose "
                   "into one species")
    for sid, v in initial_ug.items():
        if v != 0 and sid != dose_target and not own:
            refuse(f"species {sid!r} has an initial amount {v:g} µg but is not the dose target {dose_target!r}; nanopk's "
                   "mass states start empty and receive the dose")

    # Parameters, compartments and their rules.
    parameters: list[Parameter] = []
    assignments: list[Assignment] = []
    rate_rules: list[RateRule] = []
    skip = {INFUSION_RATE} if own else set()  # nanopk's control input, recreated by Model

    def unit_of(element, what):
        ann = _nanopk_annotation(element)
        if ann.get("unit"):
            return ann["unit"]
        u = units.pint(element.getUnits()) if element.isSetUnits() else None
        if u is None:
            refuse(f"{what} {element.getId()!r} has no units; nanopk checks every equation's units: declare them "
                   "(units=\"...\" with a unitDefinition)")
            return "dimensionless"
        return u

    def declare(element, what, value):
        pid = element.getId()
        ann = _nanopk_annotation(element)
        unit = unit_of(element, what)
        if pid in rules:
            rule = rules[pid]
            expr = math_of(rule.getMath(), f"the {('rate' if rule.isRate() else 'assignment')} rule of {what} {pid!r}")
            if rule.isAssignment():
                assignments.append(Assignment(pid, expr, unit, element.getName() or ""))
            else:
                init = value
                if pid in inits:
                    node = inits[pid].getMath()
                    if node.isName():
                        init = node.getName()
                    else:
                        refuse(f"initial assignment of rate-rule {what} {pid!r} is not a single name "
                               f"({L.formulaToL3String(node)!r}); nanopk's states start from a number or a parameter")
                rate_rules.append(RateRule(pid, expr * per_hour))
                states.append(State(pid, "auxiliary", unit, init if init is not None and not (isinstance(init, float) and math.isnan(init)) else 0.0,
                                    description=element.getName() or ""))
            return
        if pid in inits:
            if not element.getConstant():
                refuse(f"{what} {pid!r} is not constant and has an initial assignment; nanopk imports initial "
                       "assignments of constant parameters only")
                return
            assignments.append(Assignment(pid, math_of(inits[pid].getMath(), f"the initial assignment of {what} {pid!r}"), unit,
                                          element.getName() or ""))
            return
        if not element.getConstant():
            refuse(f"{what} {pid!r} is not constant but has no rule; nanopk cannot tell how it changes")
            return
        if value is None or not math.isfinite(value):
            refuse(f"{what} {pid!r} has no value; give it one (value=/size=)")
            return
        lo = float(ann["lower"]) if "lower" in ann else (0.0 if value >= 0 else -math.inf)
        hi = float(ann["upper"]) if "upper" in ann else math.inf
        source = ann.get("source") or f"imported from SBML: {label}, {what} {pid!r}"
        desc = element.getName() if element.getName() != pid else ""
        parameters.append(Parameter(pid, float(value), unit, source, (lo, hi), desc or ""))

    for cid, c in compartments.items():
        if own and cid == "default_compartment":
            continue
        declare(c, "compartment", c.getSize() if c.isSetSize() else None)
    observable_params = {}
    for i in range(sm.getNumParameters()):
        p = sm.getParameter(i)
        if p.getId() in skip:
            continue
        if own and p.getId().startswith("obs_") and p.getId() in rules:
            observable_params[p.getId()] = p
            continue
        declare(p, "parameter", p.getValue() if p.isSetValue() else None)

    # Reactions → fluxes.
    fluxes: list[Flux] = []
    need_sink = False
    for i in range(sm.getNumReactions()):
        rx = sm.getReaction(i)
        rid = rx.getId() or f"reaction_{i + 1}"
        reactants = [rx.getReactant(k) for k in range(rx.getNumReactants())]
        products = [rx.getProduct(k) for k in range(rx.getNumProducts())]
        if own and rid == "infusion" and [r.getSpecies() for r in reactants] == [DEPOT]:
            continue  # nanopk's own infusion, which Model recreates
        what = f"reaction {rid!r}"
        if len(reactants) != 1 or len(products) > 1:
            refuse(f"{what} has {len(reactants)} reactant(s) and {len(products)} product(s); nanopk imports one-to-one "
                   "transfers of mass (A → B, or A → ∅ into a sink)")
            continue
        refs = reactants + products
        bad = [r.getSpecies() for r in refs if not (r.isSetStoichiometry() and r.getStoichiometry() == 1.0)]
        if bad:
            refuse(f"{what}: the stoichiometry of {', '.join(map(repr, bad))} is not 1; nanopk moves mass one-to-one")
            continue
        ends = [r.getSpecies() for r in refs]
        if any(e not in species_factor and not (own and e == DEPOT) for e in ends):
            refuse(f"{what} connects {', '.join(map(repr, ends))}, not all of them imported mass species")
            continue
        law = rx.getKineticLaw()
        if law is None:
            refuse(f"{what} has no kinetic law")
            continue
        local = {}
        for k in range(law.getNumLocalParameters()):
            lp = law.getLocalParameter(k)
            gid = f"{rid}_{lp.getId()}"
            local[lp.getId()] = symbol(gid)
            unit = units.pint(lp.getUnits()) if lp.isSetUnits() else None
            if unit is None:
                refuse(f"local parameter {lp.getId()!r} of {what} has no units; declare them")
                unit = "dimensionless"
            parameters.append(Parameter(gid, float(lp.getValue()), unit, f"imported from SBML: {label}, local parameter of {what}",
                                        (0.0, math.inf) if lp.getValue() >= 0 else (-math.inf, math.inf)))
        saved = {k: names.get(k) for k in local}
        names.update(local)
        try:
            rate = math_of(law.getMath(), f"the kinetic law of {what}")
        finally:
            for k, v in saved.items():
                if v is None:
                    names.pop(k, None)
                else:
                    names[k] = v
        # Extent per model time → µg per hour (every species of a reaction shares the extent unit).
        src = ends[0]
        factor = species_factor.get(src, 1.0) if model_substance is None else units.factor(model_substance, "ug")
        rate = rate * (factor * per_hour) if (factor * per_hour) != 1.0 else rate
        target = ends[1] if len(ends) > 1 else SINK
        need_sink |= len(ends) == 1
        fluxes.append(Flux(rid, src, target, rate, rx.getName() or ""))
    if need_sink:
        if SINK in species_factor:
            refuse(f"species id {SINK!r} is taken, but nanopk needs it for the sink of reactions without a product; rename it")
        states.append(State(SINK, "sink", "ug", 0.0, SINK, None, "mass removed by reactions without a product"))

    if problems:
        raise SBMLImportError(f"{where} cannot be imported into nanopk ({len(problems)} problem(s)):", problems)

    # Observables: nanopk's own obs_NAME that the Model would not derive itself.
    observables: list[Observable] = []
    if observable_params:
        probe = Model(name or sm.getId(), [Part("sbml", tuple(states), tuple(parameters), tuple(fluxes), tuple(rate_rules),
                                                 tuple(assignments))], dose_target)
        derived = set(probe.observables)
        for oid, p in observable_params.items():
            oname = p.getName() or oid[4:]
            if oname in derived:
                continue
            expr = math_of(rules[oid].getMath(), f"the assignment rule of observable {oid!r}")
            observables.append(Observable(oname, expr, units.pint(p.getUnits()) or "percent_ID", ""))
    metadata = {"reference": f"imported from SBML: {label}"}
    if not own:
        # How the SBML's own numbers map to nanopk's: a species' value × ug_per_unit (× its compartment's
        # size for a concentration) is µg; a time × hours_per_time_unit is hours.
        metadata["sbml_units"] = {"hours_per_time_unit": 1.0 / per_hour, "species": species_units}
    if not own and dose_target is not None:
        schedule = ([{"time_h": 0.0, "amount_ug": initial_ug[dose_target], "source": f"initial amount of {dose_target!r}"}]
                    if initial_ug[dose_target] else [])
        schedule += [{"time_h": t, "amount_ug": a, "source": f"SBML event {eid!r}"} for _, t, a, eid in boluses]
        total = sum(b["amount_ug"] for b in schedule)
        where = (f"initial amount of species {dose_target!r}" if len(schedule) == 1 and not boluses
                 else f"total of the initial amount of {dose_target!r} and {len(boluses)} event bolus(es)")
        parameters.append(Parameter(DOSE, total, "ug", f"{where} in {label}", (1e-12, math.inf),
                                    "total administered mass; %ID is relative to it"))
        if boluses:
            # The regimen of a run without an explicit dose (nanopk.dosing.Dosing.coerce), scaled to `dose`.
            metadata["dosing"] = schedule
    part = Part("sbml", tuple(states), tuple(parameters), tuple(fluxes), tuple(rate_rules), tuple(assignments),
                tuple(observables), notes=(f"imported from SBML: {label}",))
    notes_text = ""
    model = Model(name or sm.getId() or "sbml_model", [part], dose_target, notes_text or sm.getName() or "", metadata)
    try:
        model.validate()
    except ModelError as exc:
        raise SBMLImportError(f"{where} was read, but the nanopk model it gives is invalid:", exc.problems) from exc
    return model
