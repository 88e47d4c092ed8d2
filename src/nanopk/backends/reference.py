"""Reference backend: NumPy right-hand side and Jacobian, LSODA with the analytic Jacobian.

Always available and the yardstick for the compiled backend.  SymPy's
``lambdify(cse=True)`` turns the whole right-hand side into one function (common
subexpressions computed once); scipy's LSODA (``odeint``, switching between Adams and
BDF) takes the analytic Jacobian.  Slower than :mod:`.cvode` because every evaluation
crosses into Python.

Success is LSODA's own return state (``istate``) and finite states, never "no warning
was raised": a warning may come from anywhere in the process, and
``warnings.catch_warnings`` swaps process-wide state, so in the threads of a fit it
catches other threads' warnings and loses its own.  So LSODA is called without scipy's
warning wrapper, and floating-point warnings of the right-hand side are silenced for the
call (``np.errstate`` is thread-local): an overflow shows up as non-finite states, as
in the compiled backend, whose C code raises no warnings.
"""
from __future__ import annotations

import threading
import warnings

import numpy as np
import sympy as sp
from scipy.integrate import odeint

from .base import CompiledModel, SolveResult, SymbolicSystem

__all__ = ["ReferenceModel"]

try:  # scipy's LSODA without odeint's warning on failure; its message table
    from scipy.integrate import _odepack
    from scipy.integrate._odepack_py import _msgs as _LSODA_MESSAGES
except ImportError:  # pragma: no cover - a scipy without them takes the public path below
    _odepack, _LSODA_MESSAGES = None, {}

#: LSODA is asked for this fraction of the requested tolerances, as CVODE is
#: (cvode.TOLERANCE_SAFETY), so that both backends give a fit the same answer.  A fit's
#: finite differences amplify the solver's noise; on the README fit (mouse_tumour to
#: arnida2010_peg_au_sphere_50nm, rtol 1e-8) LSODA at the requested tolerance ended at
#: DE24 0.47036 %ID against the compiled backend's 0.47052 (3.4e-4 apart, χ² equal to
#: 2e-8), at a quarter of it at 0.470515 (1.5e-5 apart, χ² equal to 4e-9).
TOLERANCE_SAFETY = 0.25
#: Serialises the public-odeint path (it needs catch_warnings, which is process-wide).
_PUBLIC_LOCK = threading.Lock()


def _lsoda_private(f, y0, grid, p, J, rtol, atol, mxstep):
    y, info, istate = _odepack.odeint(f, np.array(y0, float), np.array(grid, float), (p,), J, 0, -1, -1, 1, rtol, atol,
                                      None, 0.0, 0.0, 0.0, 0, int(mxstep), 0, 12, 5, 1)
    return y, info, int(istate)


def _lsoda_public(f, y0, grid, p, J, rtol, atol, mxstep):
    """scipy's public odeint, whose failure warning is caught under a lock; any other
    warning caught meanwhile (from another thread) is passed on, not counted."""
    from scipy.integrate import ODEintWarning

    with _PUBLIC_LOCK, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        y, info = odeint(f, np.array(y0, float), np.array(grid, float), args=(p,), Dfun=J, tfirst=True, rtol=rtol,
                         atol=atol, mxstep=int(mxstep), full_output=True)
    for w in caught:
        if not issubclass(w.category, ODEintWarning):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno, source=w.source)
    codes = {message: code for code, message in _LSODA_MESSAGES.items()}
    istate = 2 if info["message"] == "Integration successful." else codes.get(info["message"], -1)
    return y, info, istate


def _private_works() -> bool:
    """Whether scipy's private LSODA entry point has the signature used here (dy/dt = −y)."""
    if _odepack is None:
        return False
    try:
        y, _, istate = _lsoda_private(lambda t, y, p: -y, [1.0], [0.0, 1.0], None, None, 1e-8, 1e-12, 500)
    except Exception:  # noqa: BLE001 - any change of the private API means: use the public one
        return False
    return istate == 2 and abs(y[-1, 0] - np.exp(-1.0)) < 1e-6


_lsoda = _lsoda_private if _private_works() else _lsoda_public


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
        with np.errstate(all="ignore"):
            y, info, istate = _lsoda(self._f, y0, grid, p, self._J, float(rtol) * TOLERANCE_SAFETY,
                                     np.multiply(atol, TOLERANCE_SAFETY), max_steps)
        ok = istate > 0 and bool(np.isfinite(y).all())
        t_end = float(t_out[-1]) if len(t_out) else float(t0)
        if ok:
            reached = t_end
            message = "Integration successful."
        else:
            # After a failure LSODA leaves the later entries of tcur unset.
            tcur = np.asarray(info.get("tcur", []), dtype=float)
            valid = tcur[np.isfinite(tcur) & (tcur >= t0) & (tcur <= t_end)]
            reached = float(valid.max()) if valid.size else float(t0)
            message = (_LSODA_MESSAGES.get(istate, f"LSODA istate {istate}") if istate <= 0
                       else "the states became non-finite (NaN or inf)")
        nst, nfe = info.get("nst", []), info.get("nfe", [])
        return SolveResult(t_out, y[1:], ok, reached, message, int(nst[-1]) if len(nst) else 0,
                           int(nfe[-1]) if len(nfe) else 0, "LSODA dense")
