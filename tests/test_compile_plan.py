"""The shortcuts of the first compile (issue 25, build 4) derive what the long way did.

The Newton plan is chosen from J's structural pattern before J is differentiated, the
partial derivatives of a rate law are built in one walk of it, and the unhoisted f is
printed only for small models; each is compared here with what it replaces.
"""
from __future__ import annotations

import re

import pytest
import sympy as sp

import nanopk
from nanopk.backends.ccode import PLAIN_MAX_CHARS, c_rhs_code
from nanopk.backends.cvode import MAX_HUBS, newton_lu_plan
from nanopk.backends.sparse_lu import plan_newton_lu
from nanopk.backends.symbolic import SymbolicSystem, _diff, _partials

MODELS = nanopk.list_models()


def _aggregation(tmp_path, classes: int):
    """aggregation_plasma with ``classes`` size classes (classes + 1 states)."""
    text = nanopk.spec.model_path("aggregation_plasma").read_text()
    spec = tmp_path / f"aggregation_{classes}.toml"
    spec.write_text(re.sub(r"^K\s*=\s*\d+", f"K = {classes}", text, flags=re.M))
    return nanopk.load_model(str(spec))


@pytest.mark.parametrize("name", MODELS)
def test_structural_pattern_is_the_jacobians_pattern(name):
    """On every bundled model the pattern read from free symbols holds every non-zero of J
    and nothing else (no entry of theirs cancels), so the plan made from it is J's."""
    system = SymbolicSystem(nanopk.load_model(name))
    assert set(system.layered_jacobian) == set(system.structural_pattern)


def test_hub_model_is_planned_without_differentiating_the_dense_jacobian(tmp_path):
    """At 31 aggregation states the plan is the split's (3 hubs, sparse direct part), J
    itself is not built, and differentiating it shows why: it has no sparse plan."""
    system = SymbolicSystem(_aggregation(tmp_path, 30))
    plan, hubs = newton_lu_plan(system)
    assert hubs == 3 <= MAX_HUBS and plan is not None
    assert "layered_jacobian" not in system.__dict__
    assert plan == plan_newton_lu(system.n_states, system.low_rank_split.direct)
    assert plan_newton_lu(system.n_states, system.layered_jacobian) is None


@pytest.mark.parametrize("name", ["aggregation_plasma", "mouse_tumour", "corona_plasma"])
def test_partials_are_diffs_expressions(name):
    """For every rate law and assignment, the one-walk partials are the very expressions
    _diff builds symbol by symbol (structural equality, so the same C is printed)."""
    system = SymbolicSystem(nanopk.load_model(name))
    wrt = set(system.y) | set(system.p) | {a for a, _ in system.assignments}
    expressions = [rate for rate, _ in system._model.rate_terms()] + [e for _, e in system.assignments]
    for expr in expressions:
        found = _partials(expr, wrt, {})
        assert found == {s: _diff(expr, s) for s in expr.free_symbols & wrt}


def test_partials_of_powers_and_functions():
    """Powers with a symbolic exponent and functions fall back to _diff; constant
    exponents use the power rule once for all symbols of the base."""
    x, y, k = sp.symbols("x y k", real=True)
    expr = (x * y) ** sp.Rational(3, 4) + x ** k * sp.exp(y / k) + sp.Max(x, y)
    wrt = {x, y, k}
    assert _partials(expr, wrt, {}) == {s: _diff(expr, s) for s in wrt}


def _rhs_body(code: str) -> str:
    return code[code.index("void nanopk_rhs(double t"):]


def test_unhoisted_rhs_is_printed_only_for_small_models(tmp_path):
    """mouse_pbpk keeps the unhoisted f the tests compare with the core; at 41 aggregation
    states (a core above PLAIN_MAX_CHARS) nanopk_rhs is the constants and the core."""
    small = _rhs_body(c_rhs_code(SymbolicSystem(nanopk.load_model("mouse_pbpk"))))
    assert "nanopk_rhs_core(" not in small and "dydt[0] =" in small
    large = c_rhs_code(SymbolicSystem(_aggregation(tmp_path, 40)))
    core = large[large.index("void nanopk_rhs_core"):large.index("void nanopk_rhs(double t")]
    assert len(core) > PLAIN_MAX_CHARS
    assert "nanopk_rhs_core(t, y, dydt, p, c);" in _rhs_body(large) and "dydt[0] =" not in _rhs_body(large)
