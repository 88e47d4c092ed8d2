"""Reference backend: NumPy right-hand side and Jacobian, LSODA with the analytic Jacobian.

Always available and the yardstick for the compiled backend.  SymPy's
``lambdify(cse=True)`` turns the whole right-hand side into one function (common
subexpressions computed once); scipy's ``odeint`` (LSODA, switching between Adams and
BDF) takes the analytic Jacobian.  Slower than :mod:`.cvode` because every evaluation
crosses into Python.
"""
from __future__ import annotations

import warnings

import numpy as np
import sympy as sp
from scipy.integrate import odeint

from .base import CompiledModel, SolveResult, SymbolicSystem

__all__ = ["ReferenceModel"]


class ReferenceModel(CompiledModel):
    backend = "reference"

    def __init__(self, system: SymbolicSystem):
        super().__init__(system)
        args = (system.t, system.y, system.p)
        self._f = sp.lambdify(args, list(system.rhs), modules="numpy", cse=True)
        self._J = sp.lambdify(args, system.jacobian, modules="numpy", cse=True)

    def rhs(self, t, y, p):
        return np.asarray(self._f(t, y, p), dtype=float)

    def jac(self, t, y, p):
        return np.asarray(self._J(t, y, p), dtype=float)

    def solve(self, t0, y0, p, t_out, rtol, atol, max_steps=100_000) -> SolveResult:
        t_out = np.asarray(t_out, dtype=float)
        grid = np.concatenate(([t0], t_out))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            y, info = odeint(
                self._f, np.asarray(y0, float), grid, args=(p,), Dfun=self._J, tfirst=True,
                rtol=rtol, atol=atol, mxstep=int(max_steps), full_output=True,
            )
        ok = info["message"] == "Integration successful." and not caught
        reached = float(info["tcur"][-1]) if len(info["tcur"]) else float(t0)
        if ok:
            reached = float(t_out[-1]) if len(t_out) else float(t0)
        message = info["message"] if not caught else "; ".join(str(w.message) for w in caught)
        return SolveResult(t_out, y[1:], ok, reached, message, int(info["nst"][-1]) if len(info["nst"]) else 0,
                           int(info["nfe"][-1]) if len(info["nfe"]) else 0, "LSODA dense")
