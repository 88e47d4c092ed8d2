"""The fast code-generation path derives the same equations as plain SymPy.

The Jacobian and ∂f/∂p are derived rate law by rate law through the assignments (chain
rule, :mod:`nanopk.backends.symbolic`); here they are compared with SymPy's derivatives
of the fully substituted right-hand side, on every bundled model.
"""
from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

import nanopk
from nanopk.backends.symbolic import SymbolicSystem, _diff


def _sympy_derivative(rhs, wrt) -> sp.Matrix:
    """∂rhs/∂wrt by SymPy, differentiating only where the variable occurs."""
    occurs = [e.free_symbols for e in rhs]
    return sp.Matrix(len(rhs), len(wrt), lambda i, j: rhs[i].diff(wrt[j]) if wrt[j] in occurs[i] else 0)


def _points(model, rng, n=5):
    p0 = model.parameter_vector()
    for _ in range(n):
        y = rng.uniform(0.1, 1.0, len(model.states)) * np.where([s.is_mass for s in model.states], p0[-2], 1.0)
        yield float(rng.uniform(0.5, 100.0)), y, p0 * np.exp(rng.uniform(-0.3, 0.3, p0.size))


def _assert_same(model, system, ours: sp.Matrix, theirs: sp.Matrix):
    args = (system.t, system.y, system.p)
    f, g = (sp.lambdify(args, m, modules="numpy", cse=True) for m in (ours, theirs))
    for t, y, p in _points(model, np.random.default_rng(7)):
        a, b = np.asarray(f(t, y, p), float), np.asarray(g(t, y, p), float)
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12 * np.max(np.abs(b)))


@pytest.mark.parametrize("name", nanopk.list_models())
def test_chain_rule_jacobian_equals_sympy(name):
    model = nanopk.load_model(name)
    system = SymbolicSystem(model)
    theirs = _sympy_derivative(model.rhs_expressions(), system.y)
    ours = system.jacobian
    # Same structure: an entry is non-zero in one exactly when it is in the other.
    assert {ij for ij, e in np.ndenumerate(np.array(ours)) if e != 0} == {
        ij for ij, e in np.ndenumerate(np.array(theirs)) if e != 0
    }
    _assert_same(model, system, ours, theirs)


def test_chain_rule_dfdp_equals_sympy():
    model = nanopk.load_model("mouse_tumour_full")
    system = SymbolicSystem(model)
    indices = list(range(0, len(system.p), 5))  # every fifth: flows, volumes, rates, corona, aggregation, EPR
    ours = sp.zeros(system.n_states, len(indices))
    for (i, j), entry in system.layered_dfdp(indices).items():
        ours[i, j] = entry.xreplace(model.assignment_substitutions())
    _assert_same(model, system, ours, _sympy_derivative(model.rhs_expressions(), [system.p[k] for k in indices]))


@pytest.mark.parametrize("expr", ["x**3*y/(1 + x)", "exp(-k*x)*tanh(x/2)", "Max(0, x - 1)*x", "(x/K)**n/(1 + (x/K)**n)",
                                  "Piecewise((x**2, x < 1), (2*x - 1, True))", "((d + x)/(d + y))**(1/3)*y"])
def test_product_rule_derivative_equals_sympy(expr):
    names = sp.symbols("x y k K n d", real=True)
    e = sp.sympify(expr, locals={str(s): s for s in names})
    rng = np.random.default_rng(3)
    for s in names[:2] + names[4:5]:
        ours, theirs = sp.lambdify(names, _diff(e, s)), sp.lambdify(names, e.diff(s))
        for values in rng.uniform(0.2, 2.0, (10, len(names))):
            assert ours(*values) == pytest.approx(theirs(*values), rel=1e-12, abs=1e-300)
