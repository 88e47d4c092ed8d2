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

from .backends.base import CompiledModel, SymbolicSystem
from .errors import ModelError

__all__ = ["compile_model", "BACKENDS", "BackendFallbackWarning"]

BACKENDS = ("auto", "cvode", "roadrunner", "reference")
_MEMO: dict[tuple[str, str], CompiledModel] = {}
_SYSTEMS: dict[str, SymbolicSystem] = {}
#: Compiling happens once per model; the lock makes it once when threads of a fit ask
#: for the same model at the same time (and so one fallback warning, not one a thread).
_LOCK = threading.RLock()


class BackendFallbackWarning(UserWarning):
    """The compiled backend could not be built; the reference backend is used instead."""


def symbolic_system(model) -> SymbolicSystem:
    key = model.structure_hash
    with _LOCK:
        if key not in _SYSTEMS:
            _SYSTEMS[key] = SymbolicSystem(model)
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
