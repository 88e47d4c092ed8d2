"""libroadrunner backend: nanopk's own SBML export integrated by libroadrunner's CVODE.

The fast path without a C compiler.  The compiled backend (:mod:`.cvode`) needs a C
compiler and the scikit-sundae wheel (Linux); libroadrunner ships wheels for Linux,
macOS and Windows with its own LLVM JIT and SUNDIALS.  This backend writes the model
as SBML (:func:`nanopk.export.sbml.to_sbml`, which libroadrunner reproduces to 1e-9),
loads it once per model structure, and then for every solve

1. sets every parameter of nanopk's parameter vector (global parameters, or the
   compartment sizes a volume parameter becomes) and every state (species amounts in
   µg; non-mass states are rate-rule parameters) to nanopk's values at ``t0``,
2. integrates with libroadrunner's CVODE (BDF, its own Jacobian) to the output times.

So dosing, segment by segment, stays nanopk's (:func:`nanopk.simulate.solve_states`);
observables are nanopk's own, computed from the states.  The tolerances are those
asked for, scaled like the other backends' (:data:`TOLERANCE_SAFETY`): ``rtol``
relative, ``atol`` per state (the vector nanopk passes: ``atol × dose`` for amounts).

``rhs``/``jac`` (used by the solver-failure diagnosis, not by the solve) are the
reference backend's NumPy functions, built on first use.

libroadrunner is an optional dependency: ``pip install 'nanopk[sbml]'``.

References
----------
Welsh C et al. libRoadRunner 2.0: a high performance SBML simulation and analysis
library. Bioinformatics 2023;39:btac770 (doi:10.1093/bioinformatics/btac770).
"""
from __future__ import annotations

import functools
import threading

import numpy as np

from ..errors import BackendError
from .base import CompiledModel, SolveResult, SymbolicSystem

__all__ = ["RoadRunnerModel", "roadrunner_available", "TOLERANCE_SAFETY"]

#: libroadrunner's CVODE is asked for this fraction of the requested tolerances, as the
#: other backends are (cvode.TOLERANCE_SAFETY, reference.TOLERANCE_SAFETY).
TOLERANCE_SAFETY = 0.25

INSTALL_HINT = "pip install 'nanopk[sbml]'"


def _roadrunner():
    try:
        import roadrunner
    except ImportError:
        raise ImportError(f"backend='roadrunner' needs libroadrunner and python-libsbml: {INSTALL_HINT}") from None
    return roadrunner


def _cached_sbml(model) -> str:
    """The model's SBML, from nanopk's disk cache when an earlier process wrote it.

    The export takes ~3 s (its unit bookkeeping), the load 0.2-0.5 s.  Every solve sets
    all parameters and states, so the SBML depends only on the model's structure: the
    key is the structure hash, the nanopk version and the exporter's own source.  The
    export is nanopk's own, checked by its tests; its unit check is not repeated here.
    """
    import hashlib
    import importlib.util
    from pathlib import Path

    from .._version import __version__
    from ..resources import cache_dir, use_temporary_cache, write_atomic

    # The exporter's source, found without importing it (its import loads pint: seconds).
    origin = importlib.util.find_spec("nanopk.export.sbml").origin
    source = hashlib.sha256(Path(origin).read_bytes()).hexdigest()[:12]
    target = cache_dir() / f"nanopk_{model.structure_hash}_{__version__}_{source}.xml"
    try:
        return target.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):  # not cached yet (or unreadable): export again
        pass
    from ..export.sbml import to_sbml

    text = to_sbml(model, validate=False)
    try:
        write_atomic(target, text.encode("utf-8"))
    except OSError as exc:
        try:
            write_atomic(use_temporary_cache(target.parent, exc) / target.name, text.encode("utf-8"))
        except OSError:  # the text is in hand; only the next process pays the export again
            pass
    return text


#: libroadrunner's global configuration is process-wide: switched for a load, then restored.
_CONFIG_LOCK = threading.Lock()


def _load(rr, sbml: str):
    """A RoadRunner of ``sbml``, JIT-compiled by LLVM's LLJIT (ORC) rather than MCJIT.

    On mouse_tumour_full (40 states) MCJIT took 8.1 s to load and LLJIT 0.46 s, and
    the simulation was as fast (0.05-0.08 s for 0-168 h), so every backend load uses
    LLJIT; the user's own setting is restored afterwards.
    """
    Config = rr.Config
    with _CONFIG_LOCK:
        before = Config.getValue(Config.LLVM_BACKEND)
        Config.setValue(Config.LLVM_BACKEND, Config.LLJIT)
        try:
            return rr.RoadRunner(sbml)
        finally:
            Config.setValue(Config.LLVM_BACKEND, before)


def roadrunner_available() -> bool:
    """Whether libroadrunner and python-libsbml can be imported (without importing them twice)."""
    import importlib.util

    return importlib.util.find_spec("roadrunner") is not None and importlib.util.find_spec("libsbml") is not None


class RoadRunnerModel(CompiledModel):
    """A model integrated by libroadrunner from nanopk's SBML export.

    Parameters
    ----------
    system : SymbolicSystem
        The model's equations (for observables, initial states and ``rhs``/``jac``).
    model : nanopk.Model
        The model itself, exported to SBML once.

    Raises
    ------
    ImportError
        Without libroadrunner (``pip install 'nanopk[sbml]'``).
    BackendError
        When the SBML export of the model fails or libroadrunner cannot load it.
    """

    backend = "roadrunner"

    def __init__(self, system: SymbolicSystem, model):
        super().__init__(system)
        rr = _roadrunner()
        from ..errors import ExportError

        try:
            self.sbml = _cached_sbml(model)
        except ExportError as exc:
            raise BackendError(f"backend='roadrunner' cannot run model {model.name!r}: its SBML export failed: {exc}") from exc
        try:
            self._rr = _load(rr, self.sbml)
        except RuntimeError as exc:
            raise BackendError(f"libroadrunner could not load the SBML of model {model.name!r}: {exc}") from exc
        m = self._rr.model
        species = list(m.getFloatingSpeciesIds())
        globals_ = list(m.getGlobalParameterIds())
        compartments = list(m.getCompartmentIds())
        missing = [n for n in self.state_names if n not in species and n not in globals_]
        missing += [n for n in self.parameter_names if n not in globals_ and n not in compartments]
        if missing:
            raise BackendError(f"the SBML of model {model.name!r} lacks {', '.join(missing)}; backend='roadrunner' "
                               "needs every nanopk state and parameter under its own id")
        # Index arrays, so that a solve sets values with a few vectorised calls.
        self._species_idx = np.array([species.index(n) for n in self.state_names if n in species], dtype=np.int32)
        self._species_rows = np.array([i for i, n in enumerate(self.state_names) if n in species], dtype=np.int32)
        self._rule_states = [(i, globals_.index(n)) for i, n in enumerate(self.state_names) if n not in species]
        self._param_rows = np.array([i for i, n in enumerate(self.parameter_names) if n in globals_], dtype=np.int32)
        self._param_idx = np.array([globals_.index(self.parameter_names[i]) for i in self._param_rows], dtype=np.int32)
        self._comp_rows = np.array([i for i, n in enumerate(self.parameter_names) if n not in globals_], dtype=np.int32)
        self._comp_idx = np.array([compartments.index(self.parameter_names[i]) for i in self._comp_rows], dtype=np.int32)
        self._selections = ["time"] + list(self.state_names)
        self._tolerances = None
        self._lock = threading.Lock()  # one RoadRunner instance: one solve at a time

    @functools.cached_property
    def _reference(self):
        from .reference import ReferenceModel

        return ReferenceModel(self.system)

    def rhs(self, t, y, p):
        return self._reference.rhs(t, y, p)

    def jac(self, t, y, p):
        return self._reference.jac(t, y, p)

    def _set_tolerances(self, rtol, atol):
        atol = np.broadcast_to(np.asarray(atol, dtype=float), (len(self.state_names),))
        key = (float(rtol), tuple(atol))
        if key == self._tolerances:
            return
        integ = self._rr.integrator
        integ.relative_tolerance = float(rtol) * TOLERANCE_SAFETY
        integ.absolute_tolerance = float(atol.min()) * TOLERANCE_SAFETY
        for name, a in zip(self.state_names, atol):
            integ.setIndividualTolerance(name, float(a) * TOLERANCE_SAFETY)
        self._tolerances = key

    def solve(self, t0, y0, p, t_out, rtol, atol, max_steps=100_000) -> SolveResult:
        t_out = np.asarray(t_out, dtype=float)
        y0 = np.asarray(y0, dtype=float)
        p = np.asarray(p, dtype=float)
        with self._lock:
            r, m = self._rr, self._rr.model
            self._set_tolerances(rtol, atol)
            r.integrator.maximum_num_steps = int(max_steps)
            if self._param_rows.size:
                m.setGlobalParameterValues(self._param_idx, p[self._param_rows])
            if self._comp_rows.size:
                m.setCompartmentVolumes(self._comp_idx, p[self._comp_rows])
            if self._species_rows.size:
                m.setFloatingSpeciesAmounts(self._species_idx, y0[self._species_rows])
            for i, k in self._rule_states:
                m.setGlobalParameterValues(np.array([k], dtype=np.int32), np.array([y0[i]]))
            m.setTime(float(t0))
            grid = np.concatenate(([float(t0)], t_out))
            try:
                out = np.array(r.simulate(times=grid, selections=self._selections))
            except RuntimeError as exc:
                reached = float(m.getTime())
                return SolveResult(t_out, np.full((t_out.size, len(self.state_names)), np.nan), False, reached,
                                   f"libroadrunner: {str(exc).strip()}", linear_solver="libroadrunner CVODE")
        y = out[1:, 1:]
        ok = bool(np.isfinite(y).all()) and out.shape[0] == grid.size
        t_end = float(t_out[-1]) if t_out.size else float(t0)
        message = "Integration successful." if ok else "the states became non-finite (NaN or inf)"
        return SolveResult(t_out, y, ok, t_end if ok else float(t0), message, linear_solver="libroadrunner CVODE")
