"""SBML Level 3 Version 2 export of a nanopk model.

The model is written flat, one SBML element per nanopk element:

=====================  =========================================================
nanopk                 SBML
=====================  =========================================================
mass state             species, an *amount* in µg (``hasOnlySubstanceUnits``)
flux ``s → t``         irreversible reaction ``s → t``, kinetic law = the rate
non-mass state         parameter (``constant=false``) with a rate rule
parameter              parameter (``constant=true``), unit, source as annotation
assignment             parameter (or compartment) with an assignment rule
observable             parameter ``obs_NAME`` with an assignment rule (%ID)
``t``                  the csymbol *time* (model time unit: hour)
=====================  =========================================================

Because species are amounts, every kinetic law is exactly the nanopk flux rate
(µg/h, the model's extent per time), so

    d species_i / dt = Σ_{reactions into i} rate − Σ_{reactions out of i} rate

is the same equation nanopk derives from its flux graph.

Compartments: a state that names its ``volume`` (an assignment or parameter in L,
e.g. ``V_liver_capillary``) lives in a compartment whose id *is* that volume, its
size set by the same assignment rule; states without a physical volume (the depot,
excreta, classic PK compartments) live in ``default_compartment`` of nominal size
1 L.  Compartment sizes never enter a rate law unless the nanopk rate itself
divides by the volume: species are amounts, not concentrations.

Units: every unit string is translated into an SBML ``unitDefinition`` (µg, h, L,
1/h, L/h/kg^0.75, %ID = 0.01 dimensionless, ...); numeric literals carry
``sbml:units`` (dimensionless, or the unit that makes a term consistent, e.g. the
``100`` of an observable in %ID is ``100 %ID``), so libsbml's unit-consistency check
can verify every equation.  Dosing: the dose parameter is the initial amount of the
dose target (an initial assignment ``target = dose``); the depot starts empty and
``infusion_rate`` is 0.

References
----------
Keating SM et al. SBML Level 3: an extensible format for the exchange and reuse of
biological models. Mol Syst Biol 2020;16:e9110 (doi:10.15252/msb.20199110).
Bornstein BJ et al. LibSBML: an API library for SBML. Bioinformatics
2008;24:880 (doi:10.1093/bioinformatics/btn051).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping
from xml.sax.saxutils import escape, quoteattr

import sympy as sp

from ..errors import ExportError
from ..parts import DOSE, INFUSION_RATE
from ..parts import TIME, symbol
from ..units import Q_, parse_unit, ureg
from .sbml_units import UnitTable

__all__ = ["to_sbml", "check_sbml", "SBMLIssue", "observable_id", "NANOPK_NS"]

#: XML namespace of the nanopk annotations (parameter sources, bounds, units).
NANOPK_NS = "https://nanopk.readthedocs.io/sbml/1"
LEVEL, VERSION = 3, 2
DEFAULT_COMPARTMENT = "default_compartment"


def _libsbml():
    try:
        import libsbml
    except ImportError:
        raise ImportError("SBML export needs python-libsbml: pip install 'nanopk[sbml]'") from None
    return libsbml


def observable_id(name: str) -> str:
    """SBML id of the assignment-rule parameter holding observable ``name`` (``obs_NAME``)."""
    return f"obs_{name}"


# ----------------------------------------------------------------------------- math
_FUNCTIONS = {
    sp.exp: "AST_FUNCTION_EXP", sp.log: "AST_FUNCTION_LN", sp.Abs: "AST_FUNCTION_ABS",
    sp.sin: "AST_FUNCTION_SIN", sp.cos: "AST_FUNCTION_COS", sp.tan: "AST_FUNCTION_TAN",
    sp.sinh: "AST_FUNCTION_SINH", sp.cosh: "AST_FUNCTION_COSH", sp.tanh: "AST_FUNCTION_TANH",
    sp.asin: "AST_FUNCTION_ARCSIN", sp.acos: "AST_FUNCTION_ARCCOS", sp.atan: "AST_FUNCTION_ARCTAN",
    sp.floor: "AST_FUNCTION_FLOOR", sp.ceiling: "AST_FUNCTION_CEILING",
    sp.Max: "AST_FUNCTION_MAX", sp.Min: "AST_FUNCTION_MIN",
}
_RELATIONS = {
    sp.StrictLessThan: "AST_RELATIONAL_LT", sp.LessThan: "AST_RELATIONAL_LEQ",
    sp.StrictGreaterThan: "AST_RELATIONAL_GT", sp.GreaterThan: "AST_RELATIONAL_GEQ",
    sp.Equality: "AST_RELATIONAL_EQ", sp.Unequality: "AST_RELATIONAL_NEQ",
}
_LOGICAL = {sp.And: "AST_LOGICAL_AND", sp.Or: "AST_LOGICAL_OR", sp.Not: "AST_LOGICAL_NOT", sp.Xor: "AST_LOGICAL_XOR"}


class _Math:
    """SymPy → libsbml ASTNode, every numeric literal with its ``sbml:units``.

    Literals are dimensionless (nanopk's unit check treats numbers so), except a
    literal compared with, added to or alternated with a dimensioned sibling, which
    takes the sibling's unit, and a leading coefficient that converts the rest of an
    expression to its declared unit (the ``100`` in an observable in %ID).
    """

    def __init__(self, libsbml, units: UnitTable, pint_units: dict, ids: Mapping[str, str]):
        self.L = libsbml
        self.units = units
        self.pint_units = pint_units
        self.ids = ids
        self.where = ""

    # -- helpers
    def node(self, kind: str, *children):
        n = self.L.ASTNode(getattr(self.L, kind))
        for c in children:
            n.addChild(c)
        return n

    def number(self, value, unit_id: str = "dimensionless"):
        value = sp.sympify(value)
        if value.is_Integer:
            n = self.L.ASTNode(self.L.AST_INTEGER)
            n.setValue(int(value))
        else:
            n = self.L.ASTNode(self.L.AST_REAL)
            n.setValue(float(value))
        n.setUnits(unit_id)
        return n

    def sibling_unit(self, exprs) -> str:
        """Unit id of the first non-numeric expression among ``exprs`` (dimensionless if none)."""
        from ..dimensions import expression_unit

        for e in exprs:
            if not e.is_Number:
                try:
                    q = expression_unit(e, self.pint_units)
                except Exception:  # not checkable (e.g. a logical): dimensionless
                    return "dimensionless"
                return self.units.id_for(q.units)
        return "dimensionless"

    def fail(self, expr) -> ExportError:
        return ExportError(
            f"{self.where}: SBML has no equivalent of {type(expr).__name__} in {sp.sstr(expr)[:120]}; "
            "rewrite the rate with exp, log, powers, Max/Min, Piecewise or trigonometric functions"
        )

    # -- entry point
    def build(self, expr, declared_unit: str | None, where: str):
        """AST of ``expr``; with ``declared_unit``, give a leading literal the unit that makes it consistent."""
        self.where = where
        expr = sp.sympify(expr)
        if declared_unit is not None:
            scaled = self._scaled_coefficient(expr, declared_unit)
            if scaled is not None:
                coeff, rest, unit_id = scaled
                return self.node("AST_TIMES", self.number(coeff, unit_id), self.ast(rest))
        return self.ast(expr)

    def _scaled_coefficient(self, expr, declared_unit):
        from ..dimensions import expression_unit

        try:  # magnitudes from literals are dropped: only the unit's own scale counts
            derived = expression_unit(expr, self.pint_units)
            declared = parse_unit(declared_unit)
            ratio = float(Q_(1.0, derived.units).to(declared).magnitude)
        except Exception:  # dimension mismatch or uncheckable: leave it to libsbml's check
            return None
        if math.isclose(ratio, 1.0, rel_tol=1e-12):
            return None
        coeff, rest = _split_coefficient(expr)
        if coeff == 1 or rest.is_Number:
            return None
        try:
            literal = Q_(1.0, declared) / Q_(1.0, expression_unit(rest, self.pint_units).units)
            return coeff, rest, self.units.id_for(literal.units)
        except Exception:  # uncheckable rest: leave it to libsbml's check
            return None

    # -- recursion
    def ast(self, e):
        L = self.L
        if e.is_Symbol:
            if e == TIME:
                n = L.ASTNode(L.AST_NAME_TIME)
                n.setName("t")
                return n
            n = L.ASTNode(L.AST_NAME)
            n.setName(self.ids.get(e.name, e.name))
            return n
        if e.is_Number:
            if e is sp.S.Infinity or e is sp.S.NegativeInfinity or e is sp.S.NaN:
                n = L.ASTNode(L.AST_REAL)
                n.setValue(float(e))
                return n
            if e.is_negative:
                return self.node("AST_MINUS", self.number(-e))
            return self.number(e)
        if e is sp.pi:
            return L.ASTNode(L.AST_CONSTANT_PI)
        if e is sp.E:
            return L.ASTNode(L.AST_CONSTANT_E)
        if e is sp.true:
            return L.ASTNode(L.AST_CONSTANT_TRUE)
        if e is sp.false:
            return L.ASTNode(L.AST_CONSTANT_FALSE)
        if isinstance(e, sp.Add):
            return self._add(e)
        if isinstance(e, sp.Mul):
            return self._mul(e)
        if isinstance(e, sp.Pow):
            return self._pow(e)
        if isinstance(e, sp.Piecewise):
            return self._piecewise(e)
        if isinstance(e, sp.Heaviside):
            x = e.args[0]
            h0 = e.args[1] if len(e.args) > 1 else sp.Rational(1, 2)
            return self._piecewise(sp.Piecewise((1, x > 0), (h0, sp.Eq(x, 0)), (0, True), evaluate=False))
        if isinstance(e, sp.sign):
            x = e.args[0]
            return self._piecewise(sp.Piecewise((1, x > 0), (-1, x < 0), (0, True), evaluate=False))
        for cls, kind in _RELATIONS.items():
            if type(e) is cls:
                unit = self.sibling_unit(e.args)
                return self.node(kind, *[self.number(a, unit) if a.is_Number else self.ast(a) for a in e.args])
        for cls, kind in _LOGICAL.items():
            if type(e) is cls:
                return self.node(kind, *[self.ast(a) for a in e.args])
        for cls, kind in _FUNCTIONS.items():
            if type(e) is cls:
                if cls in (sp.Max, sp.Min):
                    unit = self.sibling_unit(e.args)
                    return self.node(kind, *[self.number(a, unit) if a.is_Number else self.ast(a) for a in e.args])
                return self.node(kind, *[self.ast(a) for a in e.args])
        raise self.fail(e)

    def _add(self, e):
        terms = list(e.args)
        unit = self.sibling_unit(terms)
        pos, neg = [], []
        for a in terms:
            if a.is_Number:
                (neg if a.is_negative else pos).append(self.number(abs(a), unit))
            elif a.could_extract_minus_sign():
                neg.append(self.ast(-a))
            else:
                pos.append(self.ast(a))
        if not pos:
            total = neg[0] if len(neg) == 1 else self.node("AST_PLUS", *neg)
            return self.node("AST_MINUS", total)
        out = pos[0] if len(pos) == 1 else self.node("AST_PLUS", *pos)
        for n in neg:
            out = self.node("AST_MINUS", out, n)
        return out

    def _mul(self, e):
        coeff, rest = e.as_coeff_Mul()
        if coeff.is_negative:
            return self.node("AST_MINUS", self._mul_positive(-coeff, rest))
        return self._mul_positive(coeff, rest)

    def _mul_positive(self, coeff, rest):
        num, den = [], []
        if coeff != 1:
            if coeff.is_Rational and not coeff.is_Integer and coeff.p == 1:
                den.append(self.number(coeff.q))
            else:
                num.append(self.number(coeff))
        for f in sp.Mul.make_args(rest):
            if isinstance(f, sp.Pow) and f.exp.is_Number and f.exp.is_negative:
                den.append(self.ast(f.base) if f.exp == -1 else self.ast(sp.Pow(f.base, -f.exp, evaluate=False)))
            else:
                num.append(self.ast(f))
        top = self.number(1) if not num else (num[0] if len(num) == 1 else self.node("AST_TIMES", *num))
        if not den:
            return top
        bottom = den[0] if len(den) == 1 else self.node("AST_TIMES", *den)
        return self.node("AST_DIVIDE", top, bottom)

    def _pow(self, e):
        base, exp = e.args
        if exp.is_Number and exp.is_negative:
            inner = self.ast(base) if exp == -1 else self._pow(sp.Pow(base, -exp, evaluate=False))
            return self.node("AST_DIVIDE", self.number(1), inner)
        if exp == sp.Rational(1, 2):
            return self.node("AST_FUNCTION_ROOT", self.ast(base))
        if base is sp.E:
            return self.node("AST_FUNCTION_EXP", self.ast(exp))
        return self.node("AST_POWER", self.ast(base), self.number(exp) if exp.is_Number else self.ast(exp))

    def _piecewise(self, e):
        values = [v for v, _ in e.args]
        unit = self.sibling_unit(values)
        n = self.L.ASTNode(self.L.AST_FUNCTION_PIECEWISE)
        for value, cond in e.args:
            n.addChild(self.number(value, unit) if value.is_Number else self.ast(value))
            if cond is not sp.true:
                n.addChild(self.ast(cond))
        return n


def _split_coefficient(expr):
    """``(c, rest)`` with ``expr = c · rest``, pulling the common numeric factor out of sums.

    ``(100·a + 100·b)/dose`` → ``(100, (a + b)/dose)``; cheap, unlike ``factor_terms``.
    """
    coeff, rest = expr.as_coeff_Mul()
    factors = []
    for f in sp.Mul.make_args(rest):
        if isinstance(f, sp.Add):
            content, primitive = f.primitive()
            coeff *= content
            factors.append(primitive)
        else:
            factors.append(f)
    return coeff, sp.Mul(*factors)


# ----------------------------------------------------------------------------- issues
@dataclass(frozen=True)
class SBMLIssue:
    """One libsbml diagnostic: ``severity`` (``"error"``/``"warning"``/``"info"``), id, line, message."""

    severity: str
    error_id: int
    category: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.severity} {self.error_id} ({self.category}, line {self.line}): {self.message.strip()}"


def check_sbml(sbml: str, units: bool = True) -> list[SBMLIssue]:
    """Run libsbml's ``checkConsistency()`` (unit checks on by default); every issue found.

    Parameters
    ----------
    sbml : str
        An SBML document as text.
    units : bool
        Include the unit-consistency checks.

    Returns
    -------
    list of SBMLIssue
        Errors first, then warnings and infos, each with its libsbml error id.
    """
    L = _libsbml()
    doc = L.readSBMLFromString(sbml)
    doc.setConsistencyChecks(L.LIBSBML_CAT_UNITS_CONSISTENCY, bool(units))
    doc.checkConsistency()
    issues = []
    for i in range(doc.getNumErrors()):
        err = doc.getError(i)
        sev = err.getSeverity()
        if sev in (L.LIBSBML_SEV_ERROR, L.LIBSBML_SEV_FATAL):
            severity = "error"
        elif sev in (L.LIBSBML_SEV_WARNING, L.LIBSBML_SEV_GENERAL_WARNING):
            severity = "warning"
        else:
            severity = "info"
        issues.append(SBMLIssue(severity, err.getErrorId(), err.getCategoryAsString(), err.getLine(), err.getMessage()))
    order = {"error": 0, "warning": 1, "info": 2}
    return sorted(issues, key=lambda x: order[x.severity])


# ----------------------------------------------------------------------------- export
def _notes(*paragraphs: str) -> str:
    body = "".join(f"<p>{escape(p)}</p>" for p in paragraphs if p)
    return f'<notes><body xmlns="http://www.w3.org/1999/xhtml">{body}</body></notes>'


def _annotation(tag: str, **attrs) -> str:
    text = " ".join(f"{k}={quoteattr(str(v))}" for k, v in attrs.items() if v not in (None, ""))
    return f'<annotation><nanopk:{tag} xmlns:nanopk="{NANOPK_NS}" {text}/></annotation>'


def _check(status: int, what: str, L) -> None:
    if status != L.LIBSBML_OPERATION_SUCCESS:
        raise ExportError(f"libsbml refused {what}: {L.OperationReturnValue_toString(status)}")


def _is_volume(unit: str) -> bool:
    try:
        return parse_unit(unit).dimensionality == ureg.parse_units("liter").dimensionality
    except Exception:  # unparsable units are reported by Model.validate, not here
        return False


def _assignment_dependencies(model) -> dict[str, set[str]]:
    """For each assignment, every name it depends on, through nested assignments."""
    direct = {a.name: {s.name for s in sp.sympify(a.expr).free_symbols} for a in model.assignments}
    resolved: dict[str, set[str]] = {}

    def walk(name, seen=()):
        if name not in resolved:
            out = set()
            for dep in direct[name]:
                out |= walk(dep, seen + (name,)) if dep in direct and dep not in seen else {dep}
            resolved[name] = out
        return resolved[name]

    for name in direct:
        walk(name)
    return resolved


def to_sbml(model, path=None, params: Mapping[str, float] | None = None, validate: bool = True) -> str:
    """Write ``model`` as SBML Level 3 Version 2 and return the XML text.

    Parameters
    ----------
    model : nanopk.Model
    path : str or Path, optional
        Also write the document to this file.
    params : dict, optional
        Parameter values to write instead of the model's defaults (``dose`` sets the
        initial amount of the dose target).
    validate : bool
        Run libsbml's consistency check, units included, and raise on any error.

    Returns
    -------
    str
        The SBML document.

    Raises
    ------
    ImportError
        If python-libsbml is not installed (``pip install 'nanopk[sbml]'``).
    ExportError
        If an expression has no SBML equivalent or libsbml reports errors.
    ModelError
        For unknown names in ``params``.

    Notes
    -----
    Species are amounts (µg), so kinetic laws are the nanopk flux rates; observables
    are exported as assignment-rule parameters ``obs_NAME`` in %ID, so a simulator
    can select them directly (e.g. libroadrunner: ``r.simulate(0, 168, 169,
    ["time", "obs_liver"])``).  See the module docstring for the full mapping.
    """
    L = _libsbml()
    values = dict(zip(model.parameter_names, model.parameter_vector(params)))
    if values[INFUSION_RATE] != 0:
        raise ExportError(
            f"`infusion_rate` must be 0 in an SBML export (got {values[INFUSION_RATE]!r}): the depot starts empty, "
            "so an infusion would drive it negative; give the dose as `dose` (a bolus into the dose target)"
        )
    if not values[DOSE] > 0:
        raise ExportError(f"`dose` must be a positive amount of µg (got {values[DOSE]!r})")
    states = {s.name: s for s in model.states}
    parameters = model.parameters
    assignments = {a.name: a for a in model.assignments}

    # Units of every symbol, as nanopk's unit check sees them (for literal units).
    pint_units: dict = {TIME: Q_(1.0, "hour")}
    for s in model.states:
        pint_units[s.symbol] = Q_(1.0, parse_unit(s.unit))
    for p in parameters.values():
        pint_units[p.symbol] = Q_(1.0, parse_unit(p.unit))
    for a in model.assignments:
        pint_units[a.symbol] = Q_(1.0, parse_unit(a.unit))

    doc = L.SBMLDocument(LEVEL, VERSION)
    sm = doc.createModel()
    used: set[str] = set(states) | set(parameters) | set(assignments)

    def unique(candidate: str) -> str:
        out, k = candidate, 2
        while out in used:
            out, k = f"{candidate}_{k}", k + 1
        used.add(out)
        return out

    from ..backends.ccode import c_identifier

    model_id = c_identifier(model.name) or "model"
    if model_id[0].isdigit():
        model_id = "m_" + model_id
    sm.setId(unique(model_id))
    sm.setName(model.name)
    meta = model.metadata
    sm.setNotes(_notes(
        model.description,
        f"Reference: {meta.get('reference')}" if meta.get("reference") else "",
        f"Particle: {meta.get('particle')}" if meta.get("particle") else "",
        *model.notes,
        "Exported by nanopk. Species are amounts in µg; "
        f"observables obs_NAME are in %ID of the parameter 'dose'; time in hours.",
    ))
    units = UnitTable(sm, L)
    sm.setTimeUnits(units.id_for("hour"))
    sm.setSubstanceUnits(units.id_for("ug"))
    sm.setExtentUnits(units.id_for("ug"))
    sm.setVolumeUnits(units.id_for("L"))

    # Compartments: a state's volume, when it is a volume-valued assignment or parameter.
    compartment_of: dict[str, str] = {}
    volume_names: list[str] = []
    for s in model.states:
        if not s.is_mass:
            continue
        v = s.volume
        unit = assignments[v].unit if v in assignments else parameters[v].unit if v in parameters else None
        if v and unit and _is_volume(unit):
            compartment_of[s.name] = v
            if v not in volume_names:
                volume_names.append(v)
        else:
            compartment_of[s.name] = DEFAULT_COMPARTMENT
    if DEFAULT_COMPARTMENT in compartment_of.values():
        if DEFAULT_COMPARTMENT in used:
            raise ExportError(f"model {model.name!r} uses the name {DEFAULT_COMPARTMENT!r}, which the SBML export reserves")
        used.add(DEFAULT_COMPARTMENT)
        c = sm.createCompartment()
        c.setId(DEFAULT_COMPARTMENT)
        c.setName("states without a physical volume (depot, excreta); species are amounts, so its size never enters a rate")
        c.setSpatialDimensions(3)
        c.setSize(1.0)
        c.setUnits(units.id_for("L"))
        c.setConstant(True)
    for v in volume_names:
        c = sm.createCompartment()
        c.setId(v)
        c.setSpatialDimensions(3)
        if v in assignments:
            a = assignments[v]
            c.setName(a.description or v)
            c.setUnits(units.id_for(a.unit))
            c.setConstant(False)
        else:
            p = parameters[v]
            c.setName(p.description or v)
            c.setUnits(units.id_for(p.unit))
            c.setSize(float(values[v]))
            c.setConstant(True)
            c.setAnnotation(_annotation("parameter", unit=p.unit, source=p.source, lower=p.bounds[0], upper=p.bounds[1]))
            c.setNotes(_notes(p.description, f"Source: {p.source}"))

    ids = {}  # nanopk names keep their ids; only fluxes and observables may be renamed
    mathml = _Math(L, units, pint_units, ids)

    # Species: the mass states, as amounts.
    for s in model.states:
        if not s.is_mass:
            continue
        sp_ = sm.createSpecies()
        sp_.setId(s.name)
        sp_.setName(s.description or s.name)
        sp_.setCompartment(compartment_of[s.name])
        sp_.setHasOnlySubstanceUnits(True)
        sp_.setSubstanceUnits(units.id_for(s.unit))
        sp_.setBoundaryCondition(False)
        sp_.setConstant(False)
        sp_.setInitialAmount(float(values[DOSE]) if s.name == model.dose_target else 0.0)
        sp_.setAnnotation(_annotation("state", kind=s.kind, organ=s.organ))
    ia = sm.createInitialAssignment()
    ia.setSymbol(model.dose_target)
    ia.setMath(mathml.build(symbol(DOSE), None, f"initial amount of {model.dose_target!r}"))

    # Parameters (constants), then non-mass states, assignments and observables (rules).
    for p in parameters.values():
        if p.name in volume_names:
            continue
        q = sm.createParameter()
        q.setId(p.name)
        q.setName(p.description or p.name)
        q.setValue(float(values[p.name]))
        q.setUnits(units.id_for(p.unit))
        q.setConstant(True)
        q.setAnnotation(_annotation("parameter", unit=p.unit, source=p.source, lower=p.bounds[0], upper=p.bounds[1]))
        q.setNotes(_notes(p.description, f"Source: {p.source}"))
    for s in model.states:
        if s.is_mass:
            continue
        q = sm.createParameter()
        q.setId(s.name)
        q.setName(s.description or s.name)
        q.setUnits(units.id_for(s.unit))
        q.setConstant(False)
        q.setAnnotation(_annotation("state", kind=s.kind, organ=s.organ))
        if isinstance(s.initial, str):
            q.setValue(0.0)
            init = sm.createInitialAssignment()
            init.setSymbol(s.name)
            init.setMath(mathml.build(symbol(s.initial), s.unit, f"initial value of {s.name!r}"))
        else:
            q.setValue(float(s.initial))
    for a in model.assignments:
        if a.name not in volume_names:
            q = sm.createParameter()
            q.setId(a.name)
            q.setName(a.description or a.name)
            q.setUnits(units.id_for(a.unit))
            q.setConstant(False)
        rule = sm.createAssignmentRule()
        rule.setVariable(a.name)
        _check(rule.setMath(mathml.build(a.expr, a.unit, f"assignment {a.name!r}")), f"the math of assignment {a.name!r}", L)
    for r in model.rate_rules:
        rule = sm.createRateRule()
        rule.setVariable(r.state)
        per_hour = f"({states[r.state].unit})/hour"
        _check(rule.setMath(mathml.build(r.expr, per_hour, f"rate rule of {r.state!r}")), f"the rate rule of {r.state!r}", L)
    for o in model.observables.values():
        q = sm.createParameter()
        q.setId(unique(observable_id(o.name)))
        q.setName(o.name)
        q.setUnits(units.id_for(o.unit))
        q.setConstant(False)
        q.setNotes(_notes(o.description, f"nanopk observable {o.name!r} in {o.unit}"))
        rule = sm.createAssignmentRule()
        rule.setVariable(q.getId())
        _check(rule.setMath(mathml.build(o.expr, o.unit, f"observable {o.name!r}")), f"the math of observable {o.name!r}", L)

    # Reactions: one irreversible reaction per flux, the rate as its kinetic law.
    species = set(compartment_of)
    depends = _assignment_dependencies(model)
    for f in model.fluxes:
        rx = sm.createReaction()
        rx.setId(unique(f.name))
        rx.setName(f.name)
        rx.setReversible(False)
        rx.setNotes(_notes(f.description, f"{f.source} → {f.target} at {sp.sstr(f.rate)} (µg/h)"))
        for role, sname in (("reactant", f.source), ("product", f.target)):
            ref = rx.createReactant() if role == "reactant" else rx.createProduct()
            ref.setSpecies(sname)
            ref.setStoichiometry(1.0)
            ref.setConstant(True)
        rate = sp.sympify(f.rate)
        referenced = set()
        for sym in rate.free_symbols:
            referenced |= depends.get(sym.name, {sym.name})
        referenced &= species
        for m in sorted(referenced - {f.source, f.target}):
            rx.createModifier().setSpecies(m)
        law = rx.createKineticLaw()
        _check(law.setMath(mathml.build(rate, "ug/hour", f"flux {f.name!r}")), f"the kinetic law of flux {f.name!r}", L)

    text = L.writeSBMLToString(doc)
    if validate:
        errors = [i for i in check_sbml(text) if i.severity == "error"]
        if errors:
            raise ExportError(
                f"the SBML export of model {model.name!r} has {len(errors)} error(s) (libsbml checkConsistency):\n"
                + "\n".join(f"  - {e}" for e in errors[:20])
            )
    if path is not None:
        Path(path).write_text(text, encoding="utf-8")
    return text
