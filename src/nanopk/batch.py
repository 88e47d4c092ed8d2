"""Batched simulation of many parameter sets on all cores.

Virtual populations, design grids, profile likelihoods and meta-analyses run the same
model with many parameter sets.  About half of one simulation's time is Python
bookkeeping that holds the GIL, so threads do not scale; instead the batch is split
into one chunk per core and run in forked worker processes, which inherit the already
compiled and loaded model (no import, no compilation, no pickling of the model).  Only
the parameter sets go out and the observable arrays come back.
"""
from __future__ import annotations

import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from typing import Mapping, Sequence

import numpy as np

from .errors import ModelError
from .progress import NoBar, get_logger, progress_bar
from .run import Runner

__all__ = ["simulate_many", "thread_pool"]

_LOG = get_logger("batch")
_JOB: dict = {}  # the batch being run; set before forking so workers inherit it
_THREAD_POOLS: dict = {}


def thread_pool(workers: int) -> ThreadPoolExecutor | None:
    """A process-wide pool of ``workers`` threads (``None`` for one worker).

    For work whose time is spent inside the compiled solver, which releases the GIL:
    the simulations of one finite-difference Jacobian (:mod:`nanopk.fit`).  Pools are
    kept per process id, because a forked child inherits the pool object but not its
    threads, and a pool without threads never runs what it is given.
    """
    if workers <= 1:
        return None
    key = (os.getpid(), int(workers))
    if key not in _THREAD_POOLS:
        _THREAD_POOLS[key] = ThreadPoolExecutor(int(workers), thread_name_prefix="nanopk")
    return _THREAD_POOLS[key]


def _run_chunk(param_sets):
    job = _JOB
    runner = job["runner"]
    out = []
    for params in param_sets:
        sol = runner.run(job["times"], runner.parameters(params), job["dose"], job["rtol"], job["atol"])
        out.append(runner.observe(sol))
    return np.stack(out) if out else np.empty((0, len(job["times"]), 0))


def simulate_many(model, times_h, param_sets: Sequence[Mapping[str, float]], dose=None, backend: str = "auto",
                  rtol: float = 1e-6, atol: float = 1e-9, workers: int | None = None,
                  progress: bool | None = None) -> np.ndarray:
    """Simulate ``model`` once per parameter set, on all cores.

    Parameters
    ----------
    param_sets : sequence of dict
        Parameter overrides, one dict per simulation.
    workers : int, optional
        Worker processes (default: the number of CPU cores; 1 runs in this process).
    progress : bool, optional
        A progress bar on stderr (default: when tqdm is installed and stderr is a
        terminal; see :mod:`nanopk.progress`).

    Returns
    -------
    numpy.ndarray
        Observables, shape ``(len(param_sets), len(times_h), n_observables)``, columns in
        the order of ``model.observables``.

    Raises
    ------
    ModelError
        Before anything is solved, naming the first parameter set with an unknown name
        or a value outside its bounds (``param_sets[i]: ...``).
    """
    runner = Runner(model, backend)  # validate, compile and load once, before forking
    _JOB.update(runner=runner, times=Runner.check_times(times_h), dose=dose, rtol=rtol, atol=atol)
    param_sets = list(param_sets)
    for i, params in enumerate(param_sets):  # every set checked before any is solved
        try:
            model.check_parameter_values(params)
        except ModelError as exc:
            raise ModelError(f"param_sets[{i}]: {exc}") from None
    workers = min(workers or os.cpu_count() or 1, max(1, len(param_sets)))
    t0 = time.perf_counter()
    bar = progress_bar(len(param_sets), f"simulating {model.name}", "sim", progress)
    # With a bar, more chunks than workers, so that it moves while they run (a few
    # dozen simulations a chunk keep the per-chunk cost small).
    n_chunks = workers if isinstance(bar, NoBar) else max(workers, min(len(param_sets) // 24, 8 * workers))
    with bar:
        if workers == 1 or "fork" not in multiprocessing.get_all_start_methods():
            parts = []
            for c in np.array_split(np.arange(len(param_sets)), n_chunks):
                parts.append(_run_chunk([param_sets[i] for i in c]))
                bar.update(len(c))
        else:
            chunks = [list(c) for c in np.array_split(np.arange(len(param_sets)), n_chunks)]
            with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("fork")) as pool:
                parts = []
                for c, part in zip(chunks, pool.map(_run_chunk, [[param_sets[i] for i in c] for c in chunks])):
                    parts.append(part)
                    bar.update(len(c))
    _LOG.debug("simulate_many: %d simulation(s) of %s on %d worker(s) in %.2f s", len(param_sets), model.name, workers,
               time.perf_counter() - t0)
    return np.concatenate(parts) if parts else _run_chunk([])
