"""The interface every backend implements, and the symbolic system they share."""
from __future__ import annotations

import abc
import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .symbolic import SymbolicSystem

__all__ = ["CompiledModel", "SolveResult", "SymbolicSystem"]


def __getattr__(name: str):
    # SymbolicSystem (and with it SymPy) loads on first use: a backend that finds its
    # compiled library in the cache runs without SymPy (issue 25).
    if name == "SymbolicSystem":
        from .symbolic import SymbolicSystem

        return SymbolicSystem
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@dataclass
class SolveResult:
    """States at the requested times (``y``: len(t) × n_states) and solver statistics."""

    t: np.ndarray
    y: np.ndarray
    success: bool
    t_reached: float
    message: str = ""
    n_steps: int = 0
    n_rhs: int = 0
    #: How the Newton systems were solved ("sparse LU", "dense", "band", ...), and how
    #: many factorisations the sparse LU handed to the dense one (zero pivot or
    #: backward error above its bound).
    linear_solver: str = ""
    dense_fallbacks: int = 0
    #: What the solver library itself said during the solve (CVODE's warnings and error
    #: texts, "W|E <function>: <text>"); also passed to logging (see :mod:`.cvode`).
    solver_messages: tuple = ()
    #: The Newton work of the solve (CVODE's counters; 0 where a backend does not report
    #: them): linear-solver setups (one factorisation of M = I - γJ each), nonlinear
    #: iterations (one linear solve each) and Jacobian evaluations (a setup may reuse J).
    n_lin_setups: int = 0
    n_nonlin_iters: int = 0
    n_jac_evals: int = 0


class CompiledModel(abc.ABC):
    """What a backend returns: numerical f, J, observables and a solver.

    Subclasses implement :meth:`rhs`, :meth:`jac` and :meth:`solve`.
    """

    backend = "abstract"

    def __init__(self, system: SymbolicSystem):
        self.system = system
        self.state_names = system.state_names
        self.parameter_names = system.parameter_names
        self.observable_names = system.observable_names

    @functools.cached_property
    def _observe(self):
        import sympy as sp

        args = (self.system.t, self.system.y, self.system.p)
        return sp.lambdify(args, self.system.observables, modules="numpy", cse=True)

    @functools.cached_property
    def _initial(self):
        import sympy as sp

        return sp.lambdify((self.system.p,), self.system.initial, modules="numpy")

    @property
    def n_states(self) -> int:
        return self.system.n_states

    @abc.abstractmethod
    def rhs(self, t: float, y: np.ndarray, p: np.ndarray) -> np.ndarray:
        """Implemented by each backend."""

    @abc.abstractmethod
    def jac(self, t: float, y: np.ndarray, p: np.ndarray) -> np.ndarray:
        """Implemented by each backend."""

    @abc.abstractmethod
    def solve(self, t0, y0, p, t_out, rtol, atol, max_steps=100_000) -> SolveResult:
        """Implemented by each backend."""

    def initial_state(self, p: np.ndarray) -> np.ndarray:
        return np.asarray(self._initial(p), dtype=float)

    def observe(self, t: np.ndarray, Y: np.ndarray, p: np.ndarray) -> np.ndarray:
        """Observables at each row of ``Y`` (len(t) × n_states) → len(t) × n_obs."""
        values = self._observe(t, list(Y.T), p)
        return np.column_stack([np.broadcast_to(np.asarray(v, dtype=float), t.shape) for v in values])
