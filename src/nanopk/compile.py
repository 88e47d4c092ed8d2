"""Compile once per model structure, with the fastest backend the machine can build.

``compile_model(model, "auto")`` returns the compiled (CVODE) backend when this machine
can build it and the reference (NumPy/LSODA) backend otherwise, with a warning that
says why and how to fix it.  Results are memoised in-process by the model's structural
hash, so models that differ only in parameter values share one compiled artifact (the
CVODE library is also cached on disk across processes).

The fallback is memoised too: a model whose compiled backend cannot be built warns
once (:class:`BackendFallbackWarning`) and every later ``"auto"`` request for it
returns the same reference backend, from any thread, without trying again.
"""
from __future__ import annotations

import threading
import warnings
from typing import TYPE_CHECKING

from .backends.base import CompiledModel
from .errors import ModelError

if TYPE_CHECKING:
    from .backends.symbolic import SymbolicSystem

__all__ = ["compile_model", "BACKENDS", "BackendFallbackWarning"]

BACKENDS = ("auto", "cvode", "roadrunner", "reference")
_MEMO: dict[tuple[str, str], CompiledModel] = {}
_SYSTEMS: dict[str, "LazySystem"] = {}
#: Compiling happens once per model; the lock makes it once when threads of a fit ask
#: for the same model at the same time (and so one fallback warning, not one a thread).
_LOCK = threading.RLock()


class BackendFallbackWarning(UserWarning):
    """The compiled backend could not be built; the reference backend is used instead."""


class LazySystem:
    """A model's :class:`~nanopk.backends.symbolic.SymbolicSystem`, built on first use.

    The names, sizes and structural hash come from the model itself (for a model
    recalled by :mod:`nanopk.prebuilt`, from its skeleton); every other attribute (the
    symbols, the equations, their derivatives) is the symbolic system's, which is built
    -- with the model's equations and SymPy -- the first time one is asked for.  So the
    compiled backend, which needs only the hash to find its library in the cache, runs a
    cached model without importing SymPy (issue 25: `nanopk fit` on a cached model).
    """

    def __init__(self, model):
        self.state_names = model.state_names
        self.parameter_names = model.parameter_names
        self.observable_names = model.observable_names
        self.hash = model.structure_hash
        self.n_states = len(self.state_names)
        self.n_params = len(self.parameter_names)
        self._model = model

    @property
    def full(self) -> "SymbolicSystem":
        """The symbolic system itself (built now if it was not)."""
        system = self.__dict__.get("_full")
        if system is None:
            with _LOCK:
                system = self.__dict__.get("_full")
                if system is None:
                    from .backends.symbolic import SymbolicSystem

                    system = self.__dict__["_full"] = SymbolicSystem(self._model)
        return system

    def __getattr__(self, name):
        # Only for attributes not set above; dunder look-ups (pickle, copy) are not the system's.
        if name.startswith("__") or "_model" not in self.__dict__:
            raise AttributeError(name)
        return getattr(self.full, name)


def symbolic_system(model) -> LazySystem:
    """The symbolic system of ``model``'s structure (one per structural hash), built on first use."""
    key = model.structure_hash
    with _LOCK:
        if key not in _SYSTEMS:
            _SYSTEMS[key] = LazySystem(model)
        return _SYSTEMS[key]


def _fallback(model, reason) -> CompiledModel:
    """What ``"auto"`` runs when the compiled backend cannot be built: libroadrunner when it
    is installed and can load the model (no compiler needed), else the reference backend;
    one :class:`BackendFallbackWarning` says which and why."""
    from .backends.roadrunner import INSTALL_HINT, roadrunner_available
    from .errors import BackendError

    if roadrunner_available():
        try:
            compiled = compile_model(model, "roadrunner")
        except BackendError as exc:
            reason = f"{reason}; libroadrunner cannot run it either: {exc}"
        else:
            warnings.warn(f"nanopk uses the libroadrunner backend because the compiled one is unavailable: {reason}",
                          BackendFallbackWarning, stacklevel=3)
            return compiled
    else:
        reason = (f"{reason} (libroadrunner, the fast path without a compiler, is not installed either: "
                  f"{INSTALL_HINT})")
    warnings.warn(f"nanopk uses the slower reference backend because the compiled one is unavailable: {reason}",
                  BackendFallbackWarning, stacklevel=3)
    return compile_model(model, "reference")


def compile_model(model, backend: str = "auto") -> CompiledModel:
    """Compile ``model`` with ``backend`` (``"auto"``, ``"cvode"``, ``"roadrunner"`` or ``"reference"``).

    ``"auto"`` is the compiled backend where it can be built; else libroadrunner
    (:mod:`nanopk.backends.roadrunner`, nanopk's SBML in libroadrunner's JIT and CVODE,
    no C compiler needed) when it is installed; else the reference one.  Then one
    :class:`BackendFallbackWarning` says why, and the choice is remembered for the rest
    of the process (both give the same results to the solver tolerance; the reference
    backend 10-20x more slowly).

    Raises
    ------
    BackendError
        ``"cvode"`` where it cannot be built (no C compiler ...; the message says how
        to fix it), ``"roadrunner"`` for a model libroadrunner cannot load.
    ImportError
        ``"roadrunner"`` without libroadrunner (``pip install 'nanopk[sbml]'``).
    """
    if backend not in BACKENDS:
        raise ModelError(f"unknown backend {backend!r}; valid: {', '.join(BACKENDS)}")
    key = (model.structure_hash, backend)
    compiled = _MEMO.get(key)  # the lock-free fast path: a fit asks thousands of times
    if compiled is not None:
        return compiled
    with _LOCK:
        if key in _MEMO:
            return _MEMO[key]
        system = symbolic_system(model)
        if backend == "reference":
            from .backends.reference import ReferenceModel

            compiled = ReferenceModel(system)
        elif backend == "roadrunner":
            from .backends.roadrunner import RoadRunnerModel

            compiled = RoadRunnerModel(system, model)
        else:
            from .backends.cvode import BackendUnavailable, CvodeModel

            # "auto" and "cvode" share one compiled model: its library is a private copy
            # per load, so two objects would not share the library's global switches.
            other = _MEMO.get((model.structure_hash, "cvode" if backend == "auto" else "auto"))
            try:
                compiled = other if isinstance(other, CvodeModel) else CvodeModel(system)
            except BackendUnavailable as exc:
                if backend == "cvode":
                    raise
                compiled = _fallback(model, exc)
        _MEMO[key] = compiled
        return compiled
