"""Joint calibration of the particle → parameter maps' constants, with a study random effect.

The model (``mouse_tumour_full`` by default) turns each instance's :class:`~nanopk.Particle`
into parameters; a handful of *global constants* of those maps (:data:`CONSTANTS`) are
the same for every particle.  They are estimated from all instances at once on the
log10 %ID scale with a two-level model:

    y_ij = log10 f_ij(θ) + b_s(i) + ε_ij,     b_s ~ N(0, τ²),   ε_ij ~ N(0, σ²)

where ``y_ij`` is the j-th observation (organ, time) of instance i, ``s(i)`` its study
and ``b_s`` a per-study multiplicative offset (10^b: the lab, tumour model, assay and
dose accuracy of one paper).  The fit is an EM-type two-stage scheme (the method of
Lindstrom & Bates 1990 for the linear random effect, with the nonlinear part by least
squares):

1. for fixed variances, θ minimises the penalised residual sum of squares
   ``Σ (y − log10 f(θ) − μ − b̂_s)² + (σ²/τ²)·Σ b̂_s²`` with μ the mean of the study
   offsets (their GLS mean, ``μ = Σ_s S_s/(n_s + σ²/τ²) / Σ_s n_s/(n_s + σ²/τ²)``,
   S_s the sum of a study's residuals r = y − log10 f) and ``b̂_s`` the conditional mode
   (BLUP) of each study's offset about it, ``b̂_s = (S_s − n_s μ) / (n_s + σ²/τ²)``
   (:func:`scipy.optimize.least_squares`, trust region reflective, finite differences
   in log10 θ);
2. the variances are re-estimated by EM:
   ``τ² = mean_s(b̂_s² + v_s)``, ``σ² = mean_ij((r_ij − b̂_s)²) + Σ_s n_s v_s / N`` with
   ``v_s = 1/(n_s/σ² + 1/τ²)`` the conditional variance of ``b_s``;

repeated until τ² and σ² change by < 5 %.  Standard errors of log10 θ come from the
Gauss–Newton covariance ``s²·(JᵀJ)⁻¹`` of the last step.  A new study's prediction
is log10 f(θ) + μ (its offset at the mean) with the population interval
``± z·√(τ² + σ² + SE(μ)²)`` on log10 %ID.  μ says how much of the mass-balanced
model's %ID the studies report (10^μ); fixing it at 0, as the first calibrations did,
predicted nearly every organ of a new study too high, because reported organs add up to
well under the dose and no constant can lower all of them at once.

Each evaluation simulates every instance once (``InstanceSimulator``; a compiled
model per structure, the instance's particle, dose, body weight and tumour mass as
parameter overrides), in chunks of instances: in forked worker processes when
``workers > 1`` (``workers=None``: every core), or as tasks on a Dask cluster with
``scheduler="tcp://host:8786"`` (a ``distributed.Client`` or a cluster object also do;
each worker process loads each model once).  The solver and its inputs are the same
either way, so the numbers are too.

Resume.  With ``store=`` (a :class:`CalibrationStore`, SQLite) every evaluation is
written as it finishes — the constants as exact floats, the predictions bit for bit —
and every finished fit too.  The least-squares optimiser is deterministic, so a run
stopped by SIGTERM, Ctrl-C or a crash and started again asks for the same constants in
the same order, reads them back, and simulates only what was never finished; it ends
at the uninterrupted run's numbers exactly.  A store keeps the settings of its run
(:meth:`InstanceSimulator.settings`: model, solver tolerance, data, nanopk version, and
what the caller adds) and refuses others, naming each setting that differs.
"""
from __future__ import annotations

import hashlib
import json
import math
import multiprocessing
import os
import signal
import threading
import time
import warnings
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import NanopkError
from ..parallel import (RunInterrupted, StopOnSigterm, Terminated, dask_client, init_worker, open_sqlite, plain,
                        require_distributed, settings_diff)

__all__ = ["CONSTANTS", "Constant", "InstanceSimulator", "CalibrationResult", "calibrate_constants",
           "study_folds", "null_predictor", "score", "CalibrationStore", "CalibrationStoreError", "CalibrationInterrupted"]


@dataclass(frozen=True)
class Constant:
    """A calibrated global constant: the model parameter, its log10 bounds and what it controls."""

    name: str
    lower: float
    upper: float
    role: str


#: The constants calibrated by default (model parameter names of ``mouse_tumour_full``).
CONSTANTS = (
    Constant("signal_50", 1e-3, 1e3, "opsonin signal of half-maximal MPS recognition (size and PEG dependence of clearance)"),
    Constant("n_recognition", 1.0, 6.0, "steepness of recognition in the opsonin signal"),
    Constant("Kmax_liver", 1e-3, 100.0, "naive phagocytic uptake in the liver (× f_naive)"),
    Constant("Kmax_spleen", 1e-3, 100.0, "naive phagocytic uptake in the spleen (× f_naive)"),
    Constant("k_cap_ops_spleen", 1e-2, 1e3, "capture of opsonised particles by the spleen (liver/spleen share)"),
    Constant("Kmax_kidney", 1e-3, 100.0, "naive uptake and retention in the kidney (× f_naive)"),
    Constant("Kmax_lung", 1e-3, 100.0, "naive uptake and retention in the lung (× f_naive)"),
    Constant("PAC_muscle", 1e-7, 1e-1, "muscle capillary permeability (fraction of muscle blood flow)"),
    Constant("P_tumour", 1e-4, 10.0, "tumour tissue:blood distribution coefficient (tumour capacity)"),
    Constant("Kmax_tumour", 1e-3, 30.0, "uptake into tumour cells (tumour retention)"),
    Constant("Krelease_tumour", 1e-4, 15.0, "release from tumour cells (tumour retention)"),
)
"""The constants calibrated by default; each one's search range is its bounds here
intersected with the model parameter's own bounds (so every estimate is a value the
model admits)."""

#: Penalty (log10 units) given to each point of an instance whose simulation failed.
FAILED_RESIDUAL = 3.0

_JOB: dict = {}


def _particle_key(particle: dict) -> str:
    return json.dumps(sorted(particle.items()), default=str)


class CalibrationStoreError(NanopkError, ValueError):
    """A calibration store cannot be used: another run's settings, or not a usable SQLite file."""


class CalibrationInterrupted(RunInterrupted):
    """SIGTERM or Ctrl-C stopped a calibration; its store is consistent and the same call resumes.

    Attributes (:class:`nanopk.parallel.RunInterrupted`): ``signum``, ``store`` and
    ``n_fitted``, the new evaluations this run stored before it stopped.
    """


_STORE_SCHEMA = """
CREATE TABLE IF NOT EXISTS calibrate_settings (id INTEGER PRIMARY KEY CHECK (id = 1), record TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS calibrate_evaluations (
    key TEXT PRIMARY KEY, constants TEXT NOT NULL, pred BLOB NOT NULL, failures TEXT NOT NULL, finished_at TEXT);
CREATE TABLE IF NOT EXISTS calibrate_fits (key TEXT PRIMARY KEY, label TEXT, record TEXT NOT NULL, finished_at TEXT);
"""


def _constants_key(constants: dict) -> tuple[str, str]:
    """Key (hash) and text of a constants dict: each value as its exact float (``float.hex``)."""
    text = json.dumps([[k, float(v).hex()] for k, v in sorted(constants.items())])
    return hashlib.sha256(text.encode()).hexdigest(), text


class CalibrationStore:
    """The SQLite store of one calibration: every evaluation and every finished fit.

    An evaluation row holds the constants (each value exactly, as ``float.hex``), the
    log10 predictions of every point (float64, bit for bit) and the failed instances; a
    fit row holds a finished :class:`CalibrationResult`, keyed by everything the fit
    was given.  Each row is one SQLite transaction, committed as soon as it is made, so
    the store is consistent whenever the run stops.  Because the least-squares optimiser
    is deterministic, a resumed fit asks for the same constants in the same order and
    finds them here: it reaches the same numbers bit for bit without simulating them
    again, and a finished fit is read back whole.

    Parameters
    ----------
    path : str or Path
        SQLite file (created if missing).
    settings : dict
        Everything that changes a stored number (JSON-able).  The store keeps the
        settings of its first run; any other settings are refused.
    overwrite : bool
        Forget every stored row and setting first.

    Raises
    ------
    CalibrationStoreError
        ``path`` is not an SQLite file or cannot be written, or the store holds a
        calibration run with other settings (each differing setting is named, stored
        and now).
    """

    def __init__(self, path, settings: dict, overwrite: bool = False):
        self.path = Path(path)
        self.con = open_sqlite(self.path, _STORE_SCHEMA, lambda exc: CalibrationStoreError(
            f"cannot use {str(path)!r} as a calibration store ({exc}); give --store a new file or a store "
            f"`nanopk calibrate` wrote, in a writable folder"))
        try:
            if overwrite:
                for table in ("calibrate_settings", "calibrate_evaluations", "calibrate_fits"):
                    self.con.execute(f"DELETE FROM {table}")
                self.con.commit()
            self.settings = plain(settings)
            row = self.con.execute("SELECT record FROM calibrate_settings WHERE id = 1").fetchone()
            if row is None:
                self.con.execute("INSERT INTO calibrate_settings VALUES (1, ?)", (json.dumps(self.settings, sort_keys=True),))
                self.con.commit()
            else:
                lines = settings_diff(json.loads(row[0]), self.settings)
                if lines:
                    raise CalibrationStoreError(
                        f"store {str(path)!r} holds a calibration run with other settings; resuming would mix its "
                        f"evaluations with this run's. Settings that differ:\n" + "\n".join(lines) +
                        "\nUse a new --store for these settings, --overwrite to discard the stored run, or rerun "
                        "with the stored settings to resume.")
        except BaseException:
            self.con.close()
            raise
        self.n_new = 0

    def __len__(self) -> int:
        return int(self.con.execute("SELECT COUNT(*) FROM calibrate_evaluations").fetchone()[0])

    def evaluation(self, constants: dict):
        """``(predictions, failures)`` stored for ``constants``, or None."""
        key, _ = _constants_key(constants)
        row = self.con.execute("SELECT pred, failures FROM calibrate_evaluations WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        return np.frombuffer(row[0], dtype=np.float64).copy(), json.loads(row[1])

    def save_evaluation(self, constants: dict, pred: np.ndarray, failures: dict) -> None:
        key, text = _constants_key(constants)
        self.con.execute("INSERT OR REPLACE INTO calibrate_evaluations VALUES (?, ?, ?, ?, ?)",
                         (key, text, np.ascontiguousarray(pred, dtype=np.float64).tobytes(), json.dumps(failures),
                          datetime.now(timezone.utc).isoformat()))
        self.con.commit()
        self.n_new += 1

    def fit(self, key: str) -> dict | None:
        """The finished fit stored under ``key`` (:func:`calibrate_constants` makes the key), or None."""
        row = self.con.execute("SELECT record FROM calibrate_fits WHERE key = ?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def save_fit(self, key: str, label: str, record: dict) -> None:
        self.con.execute("INSERT OR REPLACE INTO calibrate_fits VALUES (?, ?, ?, ?)",
                         (key, label, json.dumps(record), datetime.now(timezone.utc).isoformat()))
        self.con.commit()

    def close(self) -> None:
        self.con.close()


class _Solver:
    """What simulating instances needs, picklable (a Dask task carries it); each structure's
    model is loaded (and its compiled library opened) on first use in a process, once."""

    def __init__(self, model_name: str, rtol: float, times: np.ndarray, particles: dict, overrides: list, structure: list):
        self.model_name, self.rtol, self.times = model_name, rtol, times
        self.particles, self.overrides, self.structure = particles, overrides, structure
        self.token = hashlib.sha256(json.dumps([model_name, rtol.hex(), [t.hex() for t in map(float, times)],
                                                [[list(k), v] for k, v in particles.items()], overrides, structure],
                                               default=str).encode()).hexdigest()
        self._models: dict = {}
        self.n_loaded = 0

    def __getstate__(self):
        return {**self.__dict__, "_models": {}, "n_loaded": 0}  # models are rebuilt where they run

    def model(self, struct: tuple):
        with _SOLVER_LOCK:
            if struct not in self._models:
                from ..spec import load_model

                self._models[struct] = load_model(self.model_name, particle=self.particles[struct])
                self.n_loaded += 1
            return self._models[struct]

    def solve(self, i: int, constants: dict) -> np.ndarray:
        from ..simulate import solve_states

        model = self.model(self.structure[i])
        params = {**self.overrides[i], **constants}
        t, Y, p, comp, _ = solve_states(model, self.times, params, None, "auto", self.rtol, 1e-9)
        return comp.observe(t, Y, p)

    def run(self, indices, constants) -> dict:
        out = {}
        for i in indices:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    out[int(i)] = self.solve(int(i), constants)
            except (NanopkError, ArithmeticError, ValueError) as exc:
                out[int(i)] = str(exc).splitlines()[0]
        return out


_SOLVER_LOCK = threading.RLock()
#: A Dask worker process's solvers by token: its models are loaded once, not per task.
_WORKER_SOLVERS: dict[str, _Solver] = {}


def _dask_chunk(solver: _Solver, indices, constants):  # runs on a Dask worker
    with _SOLVER_LOCK:
        solver = _WORKER_SOLVERS.setdefault(solver.token, solver)
    return solver.run(indices, constants)


class InstanceSimulator:
    """log10 %ID predicted at every point of ``points`` for given constants.

    Parameters
    ----------
    instances, points : pandas.DataFrame
        From :func:`nanopk.calibrate.calibration_points`.
    model : str
        Bundled model name.
    workers : int or None
        Local processes used per evaluation (1: this process; None: every core).
        Ignored with ``scheduler``.
    rtol : float
        Relative tolerance of the solver (1e-5: well below the data's scatter, σ ≈ 0.3–0.5 log10).
    scheduler : str, distributed.Client or cluster, optional
        Run each evaluation's simulations on a Dask cluster (``"tcp://host:8786"``), in
        chunks of instances; each worker process loads each model once.  The numbers
        are those of a local run (the same solver on the same inputs).  Needs
        ``pip install "nanopk[parallel]"``.
    store : str, Path or CalibrationStore, optional
        SQLite store of every evaluation (see :class:`CalibrationStore`): an evaluation
        found there is read, not simulated, so an interrupted calibration resumes.  A
        path opens a store whose settings are :meth:`settings` plus ``store_settings``.
    store_settings : dict, optional
        More settings the store must match (e.g. the fit options of a whole run).
    overwrite : bool
        Discard what the store at ``store`` holds.

    Raises
    ------
    ParallelDependencyError
        ``scheduler`` given but dask.distributed is not installed.
    CalibrationStoreError
        ``store`` holds a run with other settings, or is not a usable file.
    """

    def __init__(self, instances: pd.DataFrame, points: pd.DataFrame, model: str = "mouse_tumour_full",
                 workers: int | None = 1, rtol: float = 1e-5, scheduler=None, store=None, store_settings: dict | None = None,
                 overwrite: bool = False):
        from ..spec import load_model

        if scheduler is not None:
            require_distributed("nanopk calibrate", scheduler)  # before the models are built
        self.model_name = model
        self.instances = instances.reset_index(drop=True)
        self.points = points.reset_index(drop=True)
        self.workers = max(1, int(workers if workers is not None else (os.cpu_count() or 1)))
        self.rtol = float(rtol)
        base = load_model(model)
        self._base = base
        self.default_values = {k: p.value for k, p in base.parameters.items()}
        self.bounds = {k: tuple(p.bounds) for k, p in base.parameters.items()}
        overrides, structure, particles = [], [], {}
        cache = _particle_cache(model, self.default_values)
        for row in self.instances.itertuples():
            key = _particle_key(row.particle)
            if key not in cache["particles"]:
                m = load_model(model, particle=row.particle)
                cache["particles"][key] = {
                    "structure": [getattr(s, "name", s) for s in m.states],
                    "params": {k: p.value for k, p in m.parameters.items() if p.value != self.default_values.get(k)},
                }
                cache["dirty"] = True
            entry = cache["particles"][key]
            struct = tuple(entry["structure"])
            particles.setdefault(struct, row.particle)
            over = dict(entry["params"])
            over["BW"] = row.body_weight_g / 1000.0
            over["dose"] = row.dose_ug
            if isinstance(row.tumour_g, float) and math.isfinite(row.tumour_g):
                over["f_V_tumour"] = float(np.clip(row.tumour_g / row.body_weight_g, 1e-4, 0.25))
            if row.perfused:
                over["f_residual_blood"] = 0.0
            overrides.append(over)
            structure.append(struct)
        _save_particle_cache(cache)
        # Instances of one structure share the model of its first particle, and an instance's
        # overrides list only what differs from the *base* model.  A parameter that the shared
        # model's particle sets away from the base default must therefore be set back for every
        # instance that does not set it itself (else a 15 nm PEG-5k gold instance — the base
        # particle — would inherit the first particle's core size, coating and density).
        shared = {struct: cache["particles"][_particle_key(p)]["params"] for struct, p in particles.items()}
        for over, struct in zip(overrides, structure):
            for k in shared[struct]:
                over.setdefault(k, self.default_values[k])
        self.times = np.unique(self.points["time_h"].to_numpy(float))
        self.times = self.times[self.times > 0]
        self._solver = _Solver(model, self.rtol, self.times, particles, overrides, structure)
        name_index = {n: i for i, n in enumerate(self.instances["name"])}
        self._point_inst = self.points["name"].map(name_index).to_numpy(int)
        self._point_time = np.searchsorted(self.times, self.points["time_h"].to_numpy(float))
        self._tissues = sorted(self.points["tissue"].unique())
        obs = list(self._solver.model(structure[0]).observables) if structure else list(base.observables)
        missing = [t for t in self._tissues if t not in obs]
        if missing:
            raise NanopkError(f"model {model!r} has no observable for tissue(s) {', '.join(missing)}; "
                              f"observables: {', '.join(obs)}")
        self._obs_index = np.array([obs.index(t) for t in self.points["tissue"]])
        self.n_evaluations = 0
        self.n_reused = 0
        self.seconds = 0.0
        self.failures: dict[str, str] = {}
        self._pool = None
        self._client = self._spec = None
        self._owned = False
        self.scheduler = scheduler
        self.store = None
        if store is not None:
            self.open_store(store, store_settings, overwrite)
        # Compile and load each structure's library here, before any worker is forked.
        for struct in particles:
            self._solver.run([structure.index(struct)], {})

    # ------------------------------------------------------------------ settings and store
    def settings(self) -> dict:
        """What the simulated numbers depend on: the model (its equations and every parameter's
        value and bounds), the solver tolerance, the data (a hash of instances and points)
        and the nanopk version.  Not the workers or scheduler: they do not change a number."""
        from .._version import __version__
        from ..meta.runner import _model_fingerprint

        inst = self.instances[["name", "study", "body_weight_g", "dose_ug", "tumour_g", "perfused", "particle"]]
        pts = self.points[["name", "study", "tissue", "time_h", "pid"]]
        data = hashlib.sha256(json.dumps([inst.to_dict("list"), pts.to_dict("list")], default=str).encode())
        return {"model": self.model_name, "model_fingerprint": _model_fingerprint(self._base), "rtol": self.rtol,
                "data": data.hexdigest()[:20], "n_instances": len(self.instances), "n_points": len(self.points),
                "nanopk": __version__}

    def open_store(self, store, settings: dict | None = None, overwrite: bool = False) -> CalibrationStore:
        """Keep every evaluation in ``store`` (a path or a :class:`CalibrationStore`) from now on."""
        if not isinstance(store, CalibrationStore):
            store = CalibrationStore(store, {"simulator": self.settings(), **(settings or {})}, overwrite)
        self.store = store
        return store

    # ------------------------------------------------------------------ simulation
    def simulate_all(self, constants: dict) -> dict:
        """``{instance index: observable array (times × observables) or an error message}``.

        Locally the instances are split into chunks over ``workers`` forked processes;
        with a scheduler the same chunks are Dask tasks."""
        n = len(self.instances)
        if self.scheduler is not None:
            return self._simulate_dask(constants)
        if self.workers == 1 or n < 2 or "fork" not in multiprocessing.get_all_start_methods():
            return self._solver.run(range(n), constants)
        if self._pool is None:
            _JOB["sim"] = self._solver
            self._pool = multiprocessing.get_context("fork").Pool(self.workers, initializer=init_worker,
                                                                  initargs=(os.getpid(),))
        out = {}
        for part in self._pool.starmap(_run_chunk, [(c, constants) for c in self._chunks(self.workers)]):
            out.update(part)
        return out

    def _chunks(self, workers: int) -> list[list[int]]:
        n = len(self.instances)
        return [list(map(int, c)) for c in np.array_split(np.arange(n), min(n, workers * 4)) if len(c)]

    def _simulate_dask(self, constants: dict) -> dict:
        if self._client is None:
            self._client, self._owned = dask_client(self.scheduler, "nanopk calibrate")
            # One copy of the solver per worker; tasks refer to it (not 40 kB of overrides each).
            self._spec = self._client.scatter(self._solver, broadcast=True, hash=False)
        workers = int(sum(self._client.nthreads().values())) or 1
        futures = [self._client.submit(_dask_chunk, self._spec, c, constants, pure=False) for c in self._chunks(workers)]
        try:
            out = {}
            for part in self._client.gather(futures):
                out.update(part)
            return out
        finally:
            self._client.cancel([f for f in futures if not f.done()])

    def stop_workers(self):
        """Stop the local worker processes (if any); the next evaluation starts new ones."""
        if self._pool is not None:
            self._pool.terminate()
            self._pool.join()
            self._pool = None

    def close(self):
        """Stop the worker processes (if any), close an owned Dask client and the store."""
        self.stop_workers()
        if self._client is not None:
            if self._owned:
                self._client.close()
            self._client = self._spec = None
        if self.store is not None:
            self.store.close()
            self.store = None

    def predict_log10(self, constants: dict, subset=None) -> np.ndarray:
        """log10 predicted %ID per point (NaN where the instance's simulation failed).

        With a store, an evaluation stored for exactly these constants is read back
        (``n_reused``); otherwise it is simulated (``n_evaluations``) and stored."""
        constants = {k: float(v) for k, v in constants.items()}
        if self.store is not None:
            hit = self.store.evaluation(constants)
            if hit is not None:
                self.n_reused += 1
                self.failures.update(hit[1])
                return hit[0]
        t0 = time.perf_counter()
        sims = self.simulate_all(constants)
        self.n_evaluations += 1
        self.seconds += time.perf_counter() - t0
        pred = np.full(len(self.points), np.nan)
        failures = {}
        for i, res in sims.items():
            sel = self._point_inst == i
            if isinstance(res, str):
                failures[self.instances["name"][i]] = res
                continue
            vals = res[self._point_time[sel], self._obs_index[sel]]
            with np.errstate(divide="ignore", invalid="ignore"):
                pred[sel] = np.log10(np.maximum(vals, 1e-12))
        self.failures.update(failures)
        if self.store is not None:
            self.store.save_evaluation(constants, pred, failures)
        return pred


@contextmanager
def _interruptible(sim: InstanceSimulator):
    """With a store, SIGTERM or Ctrl-C ends the workers and raises :class:`CalibrationInterrupted`
    (the store holds every finished evaluation); without one, nothing changes."""
    if sim.store is None:
        yield
        return
    try:
        with StopOnSigterm():
            yield
        return
    except Terminated as exc:
        signum = exc.signum
    except KeyboardInterrupt:
        signum = signal.SIGINT
    sim.stop_workers()
    raise CalibrationInterrupted(signum, str(sim.store.path), sim.store.n_new, "new evaluation(s) stored")


def _run_chunk(indices, constants):  # pragma: no cover - runs in forked workers
    return _JOB["sim"].run(indices, constants)


def _particle_cache(model: str, defaults: dict) -> dict:
    """Particle → parameter overrides, cached on disk (a model load costs ~1 s per particle).

    Keyed by the model and its default parameter values (names and values): a change of
    any mechanism constant, table or the spec makes a new file.  A change of a
    particle map's *code* that leaves every default unchanged is not seen: delete
    ``$NANOPK_CACHE_DIR/calibrate`` after such a change."""
    from ..resources import cache_dir

    h = hashlib.sha256(model.encode())
    h.update(json.dumps(sorted((k, repr(v)) for k, v in defaults.items())).encode())
    path = cache_dir() / "calibrate" / f"particles_{h.hexdigest()[:16]}.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        data = {}
    return {"path": path, "particles": data, "dirty": False}


def _save_particle_cache(cache: dict) -> None:
    if not cache["dirty"]:
        return
    try:
        cache["path"].parent.mkdir(parents=True, exist_ok=True)
        cache["path"].write_text(json.dumps(cache["particles"]))
    except OSError:  # a cache that cannot be written only costs the rebuild
        pass


# ---------------------------------------------------------------------- the fit
@dataclass
class CalibrationResult:
    """Estimates (natural scale), their log10 standard errors, the variances and the record of the fit."""

    values: dict
    se_log10: dict
    tau: float
    sigma: float
    study_offsets: dict
    n_points: int
    n_instances: int
    n_studies: int
    n_evaluations: int
    seconds: float
    cost: float
    history: list = field(default_factory=list)
    failures: dict = field(default_factory=dict)
    #: Evaluations this call simulated (the others were read from the simulator's store).
    n_simulated: int = 0
    #: Gauss–Newton covariance of the identified constants' log10 values:
    #: ``{"names": [...], "matrix": [[...]]}`` (empty when none is identified);
    #: :func:`nanopk.calibrate.predict.constant_draws` draws from it.
    covariance_log10: dict = field(default_factory=dict)
    #: Mean of the study offsets μ (log10), estimated with them: a new study is predicted at
    #: log10 f(θ) + μ.  10^μ is the share of the mass-balanced model's %ID that the
    #: calibration studies report (0 when the fit was asked not to estimate it).
    offset_log10: float = 0.0
    #: Standard error of μ (GLS with the random study effect), or None.
    offset_se_log10: float | None = None

    def to_dict(self) -> dict:
        extra = {"covariance_log10": self.covariance_log10} if self.covariance_log10 else {}
        return {**extra, "offset_log10": self.offset_log10, "offset_se_log10": _finite(self.offset_se_log10),
            "constants": {k: {"value": v, "se_log10": _finite(self.se_log10.get(k)), "interval95": _interval(v, self.se_log10.get(k)),
                              "identified": _interval(v, self.se_log10.get(k)) is not None}
                          for k, v in self.values.items()},
            "tau_log10": self.tau, "sigma_log10": self.sigma,
            "n_points": self.n_points, "n_instances": self.n_instances, "n_studies": self.n_studies,
            "n_evaluations": self.n_evaluations, "seconds": round(self.seconds, 1), "cost": self.cost,
            "history": self.history, "failures": self.failures,
        }


def _finite(x):
    return float(x) if x is not None and math.isfinite(x) else None


#: An SE above this (log10) is reported as "not identified": the interval spans > 10⁴-fold.
SE_NOT_IDENTIFIED = 2.0


def _interval(value: float, se) -> list | None:
    """95 % interval value ×/÷ 10^(1.96·SE), or None when the SE is missing or the constant is not identified."""
    if se is None or not math.isfinite(se) or se > SE_NOT_IDENTIFIED:
        return None
    return [value / 10 ** (1.96 * se), value * 10 ** (1.96 * se)]


def _blup(resid: np.ndarray, groups: np.ndarray, n_groups: int, ratio: float, estimate_mean: bool = False):
    """The mean μ of the study offsets and each study's offset b about it (conditional modes).

    Minimises Σ (r − μ − b_g)² + ratio·Σ b_g² (ratio = σ²/τ²); for a given μ,
    b_g = (S_g − n_g·μ)/(n_g + ratio), and the μ that minimises the rest is the GLS mean
    μ = Σ_g S_g/(n_g + ratio) / Σ_g n_g/(n_g + ratio).  Without ``estimate_mean``, μ = 0.

    Returns
    -------
    (float, ndarray, ndarray)
        μ, the offsets b and the number of points per study.
    """
    ok = np.isfinite(resid)
    sums = np.bincount(groups[ok], weights=resid[ok], minlength=n_groups)
    counts = np.bincount(groups[ok], minlength=n_groups).astype(float)
    mu = 0.0
    if estimate_mean and counts.sum() > 0:
        mu = float(np.sum(sums / (counts + ratio)) / np.sum(counts / (counts + ratio)))
    return mu, (sums - counts * mu) / (counts + ratio), counts


def calibrate_constants(sim: InstanceSimulator, constants=CONSTANTS, start: dict | None = None, point_mask=None,
                        max_nfev: int = 40, em_rounds: int = 4, tau0: float = 0.3, sigma0: float = 0.5,
                        random_effect: bool = True, study_mean: bool = True, progress=None,
                        label: str = "fit") -> CalibrationResult:
    """Fit ``constants`` to the points of ``sim`` (those in ``point_mask``), with a study random effect.

    Parameters
    ----------
    sim : InstanceSimulator
    constants : sequence of Constant
    start : dict, optional
        Starting values (natural scale); default: the model's defaults.
    point_mask : array of bool, optional
        Points used (the training fold); default all.
    max_nfev : int
        Least-squares steps of the first stage (later stages, warm-started, get half);
        each step costs 1 + len(constants) evaluations (finite-difference Jacobian),
        each evaluation a simulation of every instance.
    em_rounds : int
        Alternations of the θ fit and the variance update.
    random_effect : bool
        Without it the fit is plain least squares (τ = 0).
    study_mean : bool
        Estimate the mean μ of the study offsets (b ~ N(μ, τ²)) instead of fixing it at
        0.  The studies' reported %ID can sit below a mass-balanced model in nearly every
        organ at once (the NTUA studies' measured organs add up to a median 39 %ID), which no
        constant can absorb; with μ fixed at 0 a new study is then predicted too high.
    progress : callable, optional
        Called with the number of distinct evaluations so far after each new one
        (stored evaluations replayed from the store included).
    label : str
        Name of the fit in the simulator's store (``"full"``, ``"fold 2"``...).

    Returns
    -------
    CalibrationResult
        ``n_evaluations`` counts the distinct constants the optimiser asked for,
        ``n_simulated`` those this call simulated (not found in the store).

    Raises
    ------
    NanopkError
        If a starting value lies outside its constant's bounds or no point is selected.
    CalibrationInterrupted
        With a store (``sim.store``): SIGTERM or Ctrl-C stopped the fit; every finished
        evaluation is stored, and the same call resumes from them to the same numbers.

    Notes
    -----
    Resume.  With ``sim.store`` every evaluation is written as it finishes, and the fit,
    once finished, under a key of everything it was given (constants and bounds, start,
    points, evaluation budget, EM rounds, starting variances).  The optimiser is
    deterministic, so the same call after an interruption asks for the same constants in
    the same order, reads them from the store, and simulates only the evaluations that
    were never finished: its result equals an uninterrupted run's bit for bit.  A
    finished fit is read back whole.
    """
    from scipy.optimize import least_squares

    names = [c.name for c in constants]
    unknown = [n for n in names if n not in sim.default_values]
    if unknown:
        raise NanopkError(f"constant(s) {', '.join(unknown)} are not parameters of {sim.model_name}")
    lo = np.log10([max(c.lower, sim.bounds[c.name][0], 1e-300) for c in constants])
    hi = np.log10([min(c.upper, sim.bounds[c.name][1]) for c in constants])
    start = {**{n: sim.default_values[n] for n in names}, **(start or {})}
    x0 = np.log10([start[n] for n in names])
    bad = [f"{n} = {start[n]:g} (bounds {10 ** lo[i]:g}–{10 ** hi[i]:g})" for i, (n, x) in enumerate(zip(names, x0))
           if not lo[i] - 1e-12 <= x <= hi[i] + 1e-12]
    if bad:
        raise NanopkError("calibration start outside the constants' bounds: " + "; ".join(bad))
    mask = np.ones(len(sim.points), bool) if point_mask is None else np.asarray(point_mask, bool)
    if not mask.any():
        raise NanopkError("no point selected for the calibration (point_mask is all False)")
    y = np.log10(sim.points["pid"].to_numpy(float))[mask]
    studies = sim.points["study"].to_numpy()[mask]
    codes, groups = np.unique(studies, return_inverse=True)
    n_groups = len(codes)
    tau2, sigma2 = (tau0 ** 2 if random_effect else 0.0), sigma0 ** 2
    memo: dict[bytes, np.ndarray] = {}

    def predicted(x):
        key = np.round(x, 12).tobytes()
        if key not in memo:
            memo[key] = sim.predict_log10(dict(zip(names, 10 ** x)))[mask]
            if progress:
                progress(len(memo))
        return memo[key]

    def residuals(x):
        r = y - predicted(x)
        r = np.where(np.isfinite(r), r, FAILED_RESIDUAL)
        if not random_effect or tau2 <= 0:
            return r - (float(np.mean(r)) if study_mean else 0.0)
        ratio = sigma2 / tau2
        mu, b, _ = _blup(r, groups, n_groups, ratio, study_mean)
        return np.concatenate([r - mu - b[groups], math.sqrt(ratio) * b])

    fit_key = None
    if sim.store is not None:
        fit_key = hashlib.sha256(json.dumps(plain({
            "constants": [[c.name, c.lower, c.upper] for c in constants], "start": [float(v).hex() for v in x0],
            "points": hashlib.sha256(mask.tobytes()).hexdigest(), "max_nfev": max_nfev, "em_rounds": em_rounds,
            "tau0": tau0, "sigma0": sigma0, "random_effect": random_effect, "study_mean": study_mean}),
            sort_keys=True).encode()).hexdigest()
        stored = sim.store.fit(fit_key)
        if stored is not None:  # finished before: read back, not refitted
            return CalibrationResult(**{**stored, "n_simulated": 0})
    n_simulated0 = sim.n_evaluations
    with _interruptible(sim):
        t0 = time.perf_counter()
        x = x0.copy()
        history = []
        res = None
        for rnd in range(max(1, em_rounds)):
            res = least_squares(residuals, x, bounds=(lo, hi), method="trf", x_scale=1.0, diff_step=1e-2,
                                max_nfev=max_nfev if rnd == 0 else max(2, max_nfev // 2), xtol=1e-3, ftol=1e-4)
            x = res.x
            r = y - predicted(x)
            r = np.where(np.isfinite(r), r, FAILED_RESIDUAL)
            if not random_effect:
                r = r - (float(np.mean(r)) if study_mean else 0.0)
                sigma2 = float(np.mean(r ** 2))
                history.append({"round": rnd + 1, "cost": float(res.cost), "sigma": math.sqrt(sigma2), "tau": 0.0})
                break
            mu, b, counts = _blup(r, groups, n_groups, sigma2 / tau2, study_mean)
            r = r - mu
            v = 1.0 / (counts / sigma2 + 1.0 / tau2)
            new_tau2 = float(np.mean(b ** 2 + v))
            new_sigma2 = float((np.sum((r - b[groups]) ** 2) + np.sum(counts * v)) / len(r))
            history.append({"round": rnd + 1, "cost": float(res.cost), "sigma": math.sqrt(new_sigma2),
                            "tau": math.sqrt(new_tau2), "offset": mu, "x": dict(zip(names, map(float, x)))})
            done = abs(new_tau2 / tau2 - 1) < 0.05 and abs(new_sigma2 / sigma2 - 1) < 0.05
            tau2, sigma2 = new_tau2, new_sigma2
            if done:
                break
        J = res.jac
        dof = max(1, len(res.fun) - len(x))
        s2 = 2 * float(res.cost) / dof
        try:
            cov = s2 * np.linalg.pinv(J.T @ J)
            se = np.sqrt(np.clip(np.diag(cov), 0, None))
        except np.linalg.LinAlgError:
            cov, se = None, np.full(len(x), np.nan)
        at_bound = (np.isclose(x, lo, atol=1e-3) | np.isclose(x, hi, atol=1e-3))
        se = np.where(at_bound, np.nan, se)
        # The covariance of the constants the fit identified (the ones an interval is reported
        # for), so that predict can draw them with their correlations.
        ident = [i for i, v in enumerate(se) if np.isfinite(v) and 0 < v <= SE_NOT_IDENTIFIED]
        covariance = ({"names": [names[i] for i in ident], "matrix": cov[np.ix_(ident, ident)].tolist()}
                      if cov is not None and ident else {})
        r = y - predicted(x)
        r = np.where(np.isfinite(r), r, FAILED_RESIDUAL)
        if random_effect:
            mu, b, counts = _blup(r, groups, n_groups, sigma2 / tau2, study_mean)
            # GLS variance of the mean with a random study effect: 1 / Σ_g n_g / (σ² + n_g τ²)
            mu_se = math.sqrt(1.0 / float(np.sum(counts / (sigma2 + counts * tau2)))) if study_mean else None
        else:
            mu = float(np.mean(r)) if study_mean else 0.0
            b, mu_se = np.zeros(n_groups), (math.sqrt(sigma2 / len(r)) if study_mean else None)
        inst_mask = sim.instances["name"].isin(set(sim.points["name"][mask]))
        result = CalibrationResult(
            values=dict(zip(names, (float(v) for v in 10 ** x))), se_log10=dict(zip(names, (float(s) for s in se))),
            tau=math.sqrt(tau2), sigma=math.sqrt(sigma2), study_offsets=dict(zip(codes, map(float, b))),
            n_points=int(mask.sum()), n_instances=int(inst_mask.sum()), n_studies=n_groups,
            n_evaluations=len(memo), seconds=time.perf_counter() - t0, cost=float(res.cost), history=history,
            failures=dict(sim.failures), n_simulated=sim.n_evaluations - n_simulated0, covariance_log10=covariance,
            offset_log10=float(mu), offset_se_log10=mu_se)
    if fit_key is not None:
        sim.store.save_fit(fit_key, label, {k: v for k, v in asdict(result).items() if k != "n_simulated"})
    return result


# ---------------------------------------------------------------------- validation
def study_folds(studies, k: int = 5, seed: int = 0) -> list[np.ndarray]:
    """Grouped K-fold: a list of K arrays of study ids; every study in exactly one fold.

    Studies are shuffled with ``seed`` and dealt round-robin, so fold sizes (in
    studies) differ by at most one.

    Raises
    ------
    NanopkError
        If ``k`` < 2 or larger than the number of studies.
    """
    uniq = np.unique(np.asarray(studies))
    if not isinstance(k, (int, np.integer)) or k < 2 or k > len(uniq):
        raise NanopkError(f"folds must be an integer from 2 to the number of studies ({len(uniq)}); got {k!r}")
    order = np.random.default_rng(seed).permutation(uniq)
    return [np.sort(order[i::k]) for i in range(k)]


#: Time bins (h) of the null predictor.
TIME_BINS = (0.0, 1.0, 4.0, 12.0, 36.0, 96.0, np.inf)


def null_predictor(train: pd.DataFrame, test: pd.DataFrame) -> np.ndarray:
    """log10 of the training points' median %ID per tissue and time bin (tissue median if the bin is empty)."""
    tb = np.digitize(train["time_h"], TIME_BINS[1:-1])
    sb = np.digitize(test["time_h"], TIME_BINS[1:-1])
    ly = np.log10(train["pid"].to_numpy(float))
    frame = pd.DataFrame({"tissue": train["tissue"].to_numpy(), "bin": tb, "ly": ly})
    by_bin = frame.groupby(["tissue", "bin"])["ly"].median().to_dict()
    by_tissue = frame.groupby("tissue")["ly"].median().to_dict()
    overall = float(np.median(ly))
    return np.array([by_bin.get((t, b), by_tissue.get(t, overall)) for t, b in zip(test["tissue"], sb)])


def score(obs_log10: np.ndarray, pred_log10: np.ndarray) -> dict:
    """Fraction within 2- and 3-fold, median |log10 error|, R² on log10, AFE and AAFE (n points)."""
    o = np.asarray(obs_log10, float)
    p = np.asarray(pred_log10, float)
    ok = np.isfinite(o) & np.isfinite(p)
    e = p[ok] - o[ok]
    if not ok.any():
        return {"n": 0}
    ss_tot = float(np.sum((o[ok] - o[ok].mean()) ** 2))
    return {"n": int(ok.sum()), "within2": float(np.mean(np.abs(e) <= math.log10(2))),
            "within3": float(np.mean(np.abs(e) <= math.log10(3))), "median_abs_log10": float(np.median(np.abs(e))),
            "r2_log10": 1 - float(np.sum(e ** 2)) / ss_tot if ss_tot > 0 else float("nan"),
            "afe": float(10 ** np.mean(e)), "aafe": float(10 ** np.mean(np.abs(e)))}
