"""Dimensional analysis of a model's SymPy expressions with pint.

:mod:`nanopk.unitcheck` decides whether a model needs this analysis (a model that
passed once is not checked again); this module does it, and is imported only then,
because pint's import alone costs ~0.3 s.

Each symbol is replaced by one unit of its declared unit and the expression tree is
evaluated on pint quantities: sums must agree in dimension, arguments of ``exp`` and
``log`` and symbolic exponents must be dimensionless.  A flux must come out as mass
per time, a rate rule as its state's unit per time, an assignment as its declared
unit.  Numbers are dimensionless, so write ``(t/K50)**n`` rather than ``t**n``.
"""
from __future__ import annotations

from .units import pint  # without dask (nanopk.units._import_pint)
import sympy as sp

from .parts import TIME
from .units import Q_, parse_unit, ureg

__all__ = ["check_units", "expression_unit"]


class _UnitProblem(Exception):
    pass


def expression_unit(expr, units: dict) -> pint.Quantity:
    """Evaluate ``expr`` on pint quantities; ``units`` maps symbols to quantities."""
    if expr.is_Symbol:
        return units[expr]
    if expr.is_Number:
        return Q_(float(expr), "dimensionless")
    if isinstance(expr, sp.Add):
        terms = [expression_unit(a, units) for a in expr.args]
        first = terms[0]
        for other in terms[1:]:
            if other.dimensionality != first.dimensionality:
                raise _UnitProblem(f"adds {first.units:~} to {other.units:~} in {sp.sstr(expr)[:80]}")
        return first
    if isinstance(expr, sp.Mul):
        out = Q_(1.0, "dimensionless")
        for a in expr.args:
            out = out * expression_unit(a, units)
        return out
    if isinstance(expr, sp.Pow):
        base = expression_unit(expr.args[0], units)
        exponent = expr.args[1]
        if exponent.is_Number:
            return Q_(1.0, base.units ** float(exponent))
        if not base.dimensionless:
            raise _UnitProblem(f"raises {base.units:~} to the symbolic power {exponent} (make the base dimensionless)")
        _require_dimensionless(expression_unit(exponent, units), f"exponent {exponent}")
        return Q_(1.0, "dimensionless")
    if isinstance(expr, (sp.exp, sp.log, sp.tanh, sp.sin, sp.cos, sp.erf)):
        _require_dimensionless(expression_unit(expr.args[0], units), f"argument of {expr.func.__name__}")
        return Q_(1.0, "dimensionless")
    if isinstance(expr, (sp.Max, sp.Min)):
        parts = [expression_unit(a, units) for a in expr.args]
        for p in parts[1:]:
            if p.dimensionality != parts[0].dimensionality:
                raise _UnitProblem(f"{expr.func.__name__} of {parts[0].units:~} and {p.units:~}")
        return parts[0]
    if isinstance(expr, sp.Piecewise):
        values = [expression_unit(e, units) for e, _ in expr.args]
        for v in values[1:]:
            if v.dimensionality != values[0].dimensionality:
                raise _UnitProblem(f"Piecewise branches in {values[0].units:~} and {v.units:~}")
        return values[0]
    if isinstance(expr, sp.Heaviside):
        return Q_(1.0, "dimensionless")
    raise _UnitProblem(f"cannot check units of {expr.func.__name__} in {sp.sstr(expr)[:80]}")


def _require_dimensionless(q, what):
    if not q.dimensionless:
        raise _UnitProblem(f"{what} has unit {q.units:~}; expected dimensionless")


def check_units(model) -> list[str]:
    """Every unit problem in ``model``, as messages (empty when consistent)."""
    problems: list[str] = []
    units: dict = {TIME: Q_(1.0, "hour")}
    declared = [(s.name, s.unit, "state") for s in model.states]
    declared += [(p.name, p.unit, "parameter") for p in model.parameters.values()]
    declared += [(a.name, a.unit, "assignment") for a in model.assignments]
    for name, unit, what in declared:
        try:
            units[sp.Symbol(name, real=True)] = Q_(1.0, parse_unit(unit))
        except (pint.UndefinedUnitError, pint.DefinitionSyntaxError, ValueError, TypeError) as exc:
            problems.append(f"{what} {name!r} has unit {unit!r} that pint cannot parse ({exc})")
    if problems:
        return problems

    def check(where: str, expr, expected):
        try:
            got = expression_unit(sp.sympify(expr), units)
        except _UnitProblem as exc:
            problems.append(f"{where}: {exc}")
            return
        if got.dimensionality != expected.dimensionality:
            problems.append(f"{where} has unit {got.units:~} but should be {expected.units:~}")

    per_hour = ureg.parse_units("1/hour")
    mass_rate = Q_(1.0, "microgram/hour")
    for f in model.fluxes:
        check(f"flux {f.name!r} ({f.source} → {f.target})", f.rate, mass_rate)
    states = {s.name: s for s in model.states}
    for r in model.rate_rules:
        check(f"rate rule of {r.state!r}", r.expr, Q_(1.0, parse_unit(states[r.state].unit) * per_hour))
    for a in model.assignments:
        check(f"assignment {a.name!r}", a.expr, Q_(1.0, parse_unit(a.unit)))
    for o in model.observables.values():
        check(f"observable {o.name!r}", o.expr, Q_(1.0, parse_unit(o.unit)))
    return problems
