"""SymPy → C: the right-hand side and the dense Jacobian as plain C99 functions.

Shared by the CVODE backend (compiled at run time) and the C export
(:func:`nanopk.to_c`).  States become ``y[i]`` and parameters ``p[j]``; common
subexpressions are computed once (``sympy.cse``); only non-zero Jacobian entries are
written, column-major (``J[i + j*N] = ∂f_i/∂y_j``), the layout CVODE's dense matrix uses.
"""
from __future__ import annotations

import sympy as sp
from sympy.printing.c import C99CodePrinter

__all__ = ["c_function_bodies", "c_dfdp_body", "c_identifier"]


class _Printer(C99CodePrinter):
    """C99 printer that writes small integer powers as products (exact and fast)."""

    def _print_Pow(self, expr):
        base, exp = expr.args
        if exp.is_Integer and 1 < int(exp) <= 4:
            b = self._print(base)
            # Bracket the whole product: it may stand in a denominator (x/R**3).
            return "(" + "*".join([f"({b})"] * int(exp)) + ")"
        if exp == -1:
            return f"1.0/({self._print(base)})"
        return super()._print_Pow(expr)


def c_identifier(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch == "_" else "_" for ch in name)


def _indexed(system):
    mapping = {s: sp.Symbol(f"y[{i}]") for i, s in enumerate(system.y)}
    mapping.update({s: sp.Symbol(f"p[{j}]") for j, s in enumerate(system.p)})
    return mapping


def _block(assignments: list[tuple[str, sp.Expr]], mapping: dict, indent: str = "    ") -> str:
    printer = _Printer()
    exprs = [e.xreplace(mapping) for _, e in assignments]
    # optimizations=None: SymPy's "basic" pass spent 80 % of the time in factor_terms
    # for ~1 % shorter code on mouse_tumour_full.
    replacements, reduced = sp.cse(exprs, symbols=sp.numbered_symbols("x"), optimizations=None)
    lines = [f"{indent}const double {sym} = {printer.doprint(val)};" for sym, val in replacements]
    lines += [f"{indent}{target} = {printer.doprint(e)};" for (target, _), e in zip(assignments, reduced)]
    return "\n".join(lines)


def c_function_bodies(system) -> dict[str, str]:
    """C bodies of ``rhs`` (writes ``dydt``), ``jac`` (writes ``J``), ``observe`` (writes
    ``out``) and ``initial`` (writes ``y0``), with ``n``, ``n_obs`` and ``nnz``."""
    mapping = _indexed(system)
    n = system.n_states
    rhs = [(f"dydt[{i}]", system.rhs[i]) for i in range(n)]
    jac = [(f"J[{i + j * n}]", system.jacobian[i, j]) for j in range(n) for i in range(n) if system.jacobian[i, j] != 0]
    obs = [(f"out[{k}]", e) for k, e in enumerate(system.observables)]
    init = [(f"y0[{i}]", sp.sympify(e)) for i, e in enumerate(system.initial)]
    return {
        "rhs": _block(rhs, mapping),
        "jac": _block(jac, mapping) if jac else "    (void)J;",
        "observe": _block(obs, mapping),
        "initial": _block(init, mapping),
        "n": n,
        "n_obs": len(obs),
        "nnz": len(jac),
    }


def c_dfdp_body(system, indices) -> str:
    """C body writing ``D[i + j*N] = ∂f_i/∂p_{indices[j]}`` (column-major, non-zeros only)."""
    mapping = _indexed(system)
    n = system.n_states
    entries = []
    for j, k in enumerate(indices):
        pk = system.p[k]
        for i in range(n):
            if pk in system.rhs[i].free_symbols:
                entries.append((f"D[{i + j * n}]", system.rhs[i].diff(pk)))
    return _block(entries, mapping) if entries else "    (void)D;"
