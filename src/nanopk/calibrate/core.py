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
   ``Σ (y − log10 f(θ) − b̂_s)² + (σ²/τ²)·Σ b̂_s²`` with ``b̂_s`` the conditional mode
   (BLUP) of each study's offset, ``b̂_s = Σ_{j∈s} r_j / (n_s + σ²/τ²)``
   (:func:`scipy.optimize.least_squares`, trust region reflective, finite differences
   in log10 θ);
2. the variances are re-estimated by EM:
   ``τ² = mean_s(b̂_s² + v_s)``, ``σ² = mean_ij((r_ij − b̂_s)²) + Σ_s n_s v_s / N`` with
   ``v_s = 1/(n_s/σ² + 1/τ²)`` the conditional variance of ``b_s``;

repeated until τ² and σ² change by < 5 %.  Standard errors of log10 θ come from the
Gauss–Newton covariance ``s²·(JᵀJ)⁻¹`` of the last step.  A new study's prediction
has b = 0 and the population interval ``± z·√(τ² + σ²)`` on log10 %ID.

Each evaluation simulates every instance once (``InstanceSimulator``; a compiled
model per structure, the instance's particle, dose, body weight and tumour mass as
parameter overrides, in forked worker processes when ``workers > 1``).
"""
from __future__ import annotations

import hashlib
import json
import math
import multiprocessing
import time
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..errors import NanopkError

__all__ = ["CONSTANTS", "Constant", "InstanceSimulator", "CalibrationResult", "calibrate_constants",
           "study_folds", "null_predictor", "score"]


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


class InstanceSimulator:
    """log10 %ID predicted at every point of ``points`` for given constants.

    Parameters
    ----------
    instances, points : pandas.DataFrame
        From :func:`nanopk.calibrate.calibration_points`.
    model : str
        Bundled model name.
    workers : int
        Processes used per evaluation (1: this process).
    rtol : float
        Relative tolerance of the solver (1e-5: well below the data's scatter, σ ≈ 0.3–0.5 log10).
    """

    def __init__(self, instances: pd.DataFrame, points: pd.DataFrame, model: str = "mouse_tumour_full", workers: int = 1,
                 rtol: float = 1e-5):
        from ..spec import load_model

        self.model_name = model
        self.instances = instances.reset_index(drop=True)
        self.points = points.reset_index(drop=True)
        self.workers = max(1, int(workers))
        self.rtol = float(rtol)
        base = load_model(model)
        self.default_values = {k: p.value for k, p in base.parameters.items()}
        self.bounds = {k: tuple(p.bounds) for k, p in base.parameters.items()}
        self._models: dict[tuple, object] = {}
        self._overrides: list[dict] = []
        self._structure: list[tuple] = []
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
            if struct not in self._models:
                self._models[struct] = load_model(model, particle=row.particle)
            over = dict(entry["params"])
            over["BW"] = row.body_weight_g / 1000.0
            over["dose"] = row.dose_ug
            if isinstance(row.tumour_g, float) and math.isfinite(row.tumour_g):
                over["f_V_tumour"] = float(np.clip(row.tumour_g / row.body_weight_g, 1e-4, 0.25))
            if row.perfused:
                over["f_residual_blood"] = 0.0
            self._overrides.append(over)
            self._structure.append(struct)
        _save_particle_cache(cache)
        self.times = np.unique(self.points["time_h"].to_numpy(float))
        self.times = self.times[self.times > 0]
        name_index = {n: i for i, n in enumerate(self.instances["name"])}
        self._point_inst = self.points["name"].map(name_index).to_numpy(int)
        self._point_time = np.searchsorted(self.times, self.points["time_h"].to_numpy(float))
        self._tissues = sorted(self.points["tissue"].unique())
        obs = list(next(iter(self._models.values())).observables)
        missing = [t for t in self._tissues if t not in obs]
        if missing:
            raise NanopkError(f"model {model!r} has no observable for tissue(s) {', '.join(missing)}; "
                              f"observables: {', '.join(obs)}")
        self._obs_index = np.array([obs.index(t) for t in self.points["tissue"]])
        self.n_evaluations = 0
        self.seconds = 0.0
        self.failures: dict[str, str] = {}
        self._pool = None
        # Compile and load each structure's library here, before any worker is forked.
        for struct in self._models:
            self._run([self._structure.index(struct)], {})

    # ------------------------------------------------------------------ simulation
    def _solve(self, i: int, constants: dict) -> np.ndarray:
        from ..simulate import solve_states

        model = self._models[self._structure[i]]
        params = {**self._overrides[i], **constants}
        t, Y, p, comp, _ = solve_states(model, self.times, params, None, "auto", self.rtol, 1e-9)
        return comp.observe(t, Y, p)

    def _run(self, indices, constants):
        out = {}
        for i in indices:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    out[i] = self._solve(i, constants)
            except (NanopkError, ArithmeticError, ValueError) as exc:
                out[i] = str(exc).splitlines()[0]
        return out

    def simulate_all(self, constants: dict) -> dict:
        """``{instance index: observable array (times × observables) or an error message}``."""
        n = len(self.instances)
        if self.workers == 1 or n < 2 or "fork" not in multiprocessing.get_all_start_methods():
            return self._run(range(n), constants)
        if self._pool is None:
            _JOB["sim"] = self
            self._pool = multiprocessing.get_context("fork").Pool(self.workers)
        chunks = [list(c) for c in np.array_split(np.arange(n), self.workers * 4) if len(c)]
        out = {}
        for part in self._pool.starmap(_run_chunk, [(c, constants) for c in chunks]):
            out.update(part)
        return out

    def close(self):
        """Stop the worker processes (if any)."""
        if self._pool is not None:
            self._pool.terminate()
            self._pool.join()
            self._pool = None

    def predict_log10(self, constants: dict, subset=None) -> np.ndarray:
        """log10 predicted %ID per point (NaN where the instance's simulation failed)."""
        t0 = time.perf_counter()
        sims = self.simulate_all(constants)
        self.n_evaluations += 1
        self.seconds += time.perf_counter() - t0
        pred = np.full(len(self.points), np.nan)
        for i, res in sims.items():
            sel = self._point_inst == i
            if isinstance(res, str):
                self.failures[self.instances["name"][i]] = res
                continue
            vals = res[self._point_time[sel], self._obs_index[sel]]
            with np.errstate(divide="ignore", invalid="ignore"):
                pred[sel] = np.log10(np.maximum(vals, 1e-12))
        return pred


def _run_chunk(indices, constants):  # pragma: no cover - runs in forked workers
    return _JOB["sim"]._run(indices, constants)


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

    def to_dict(self) -> dict:
        return {
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


def _blup(resid: np.ndarray, groups: np.ndarray, n_groups: int, ratio: float):
    """Conditional mode of each study's offset and the residuals it leaves."""
    ok = np.isfinite(resid)
    sums = np.bincount(groups[ok], weights=resid[ok], minlength=n_groups)
    counts = np.bincount(groups[ok], minlength=n_groups).astype(float)
    b = sums / (counts + ratio)
    return b, counts


def calibrate_constants(sim: InstanceSimulator, constants=CONSTANTS, start: dict | None = None, point_mask=None,
                        max_nfev: int = 40, em_rounds: int = 4, tau0: float = 0.3, sigma0: float = 0.5,
                        random_effect: bool = True, progress=None) -> CalibrationResult:
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

    Raises
    ------
    NanopkError
        If a starting value lies outside its constant's bounds or no point is selected.
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
            return r
        ratio = sigma2 / tau2
        b, _ = _blup(r, groups, n_groups, ratio)
        return np.concatenate([r - b[groups], math.sqrt(ratio) * b])

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
            sigma2 = float(np.mean(r ** 2))
            history.append({"round": rnd + 1, "cost": float(res.cost), "sigma": math.sqrt(sigma2), "tau": 0.0})
            break
        b, counts = _blup(r, groups, n_groups, sigma2 / tau2)
        v = 1.0 / (counts / sigma2 + 1.0 / tau2)
        new_tau2 = float(np.mean(b ** 2 + v))
        new_sigma2 = float((np.sum((r - b[groups]) ** 2) + np.sum(counts * v)) / len(r))
        history.append({"round": rnd + 1, "cost": float(res.cost), "sigma": math.sqrt(new_sigma2),
                        "tau": math.sqrt(new_tau2), "x": dict(zip(names, map(float, x)))})
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
        se = np.full(len(x), np.nan)
    at_bound = (np.isclose(x, lo, atol=1e-3) | np.isclose(x, hi, atol=1e-3))
    se = np.where(at_bound, np.nan, se)
    r = y - predicted(x)
    r = np.where(np.isfinite(r), r, FAILED_RESIDUAL)
    b, _ = _blup(r, groups, n_groups, sigma2 / tau2) if random_effect else (np.zeros(n_groups), None)
    inst_mask = sim.instances["name"].isin(set(sim.points["name"][mask]))
    return CalibrationResult(
        values=dict(zip(names, (float(v) for v in 10 ** x))), se_log10=dict(zip(names, (float(s) for s in se))),
        tau=math.sqrt(tau2), sigma=math.sqrt(sigma2), study_offsets=dict(zip(codes, map(float, b))),
        n_points=int(mask.sum()), n_instances=int(inst_mask.sum()), n_studies=n_groups,
        n_evaluations=len(memo), seconds=time.perf_counter() - t0, cost=float(res.cost), history=history,
        failures=dict(sim.failures))


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
