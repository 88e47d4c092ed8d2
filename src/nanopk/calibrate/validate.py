"""Leave-study-out validation of the calibration, and the whole calibration run.

:func:`run_calibration` reads the NTUA workbook, keeps the IV mouse instances nanopk
can simulate (:func:`~nanopk.calibrate.calibration_points`), holds out the bundled
studies (:data:`~nanopk.calibrate.HELD_OUT_DOIS`: Arnida 2010, Cho 2010, Liu 2013 and
Li 2014 are in NTUA; Hirn 2011 and Kreyling 2017 are rat studies, not in it), fits the
constants on all other studies, runs a grouped K-fold cross-validation by study
(refit on K−1 folds, a priori prediction of the held-out fold at the mean study offset μ) against the
uncalibrated model and the null predictor (the training folds' median per organ and
time bin), scores the bundled studies, and returns the record ``calibrated.json`` holds
with a markdown report.  ``benchmarks/calibrate_ntua.py`` and ``nanopk calibrate`` call it.
"""
from __future__ import annotations

import datetime
import math
import time
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["run_calibration", "blood_half_life", "anchors", "NTUA_DEFAULT"]

#: Where the NTUA workbook lies in the shared data folder (relative to the repository).
NTUA_DEFAULT = Path(__file__).resolve().parents[3].parent / "shared" / "datasets" / "raw" / \
    "ntua-unit-of-control-and-informatics__NM-biodistribution-prediction" / "Biodistribution_data" / "NMs_Database.xlsx"
T_REF_H = 5.0 / 60.0


def blood_half_life(t, blood, t_ref: float = T_REF_H) -> float:
    """Time (h) after ``t_ref`` at which ``blood`` falls to half its value at ``t_ref`` (as benchmarks/trends.py)."""
    t = np.asarray(t, float)
    b = np.asarray(blood, float)
    ref = float(np.interp(t_ref, t, b))
    after = t >= t_ref
    tt, bb = t[after], b[after]
    below = np.nonzero(bb <= 0.5 * ref)[0]
    if len(below) == 0:
        return math.inf
    i = below[0]
    if i == 0:
        return float(tt[0])
    t0, t1, b0, b1 = tt[i - 1], tt[i], max(bb[i - 1], 1e-300), max(bb[i], 1e-300)
    f = (math.log(0.5 * ref) - math.log(b0)) / (math.log(b1) - math.log(b0))
    return float(t0 + f * (t1 - t0))


ORGANS = ("blood", "liver", "spleen", "kidney", "lung", "tumour", "brain", "muscle")


def fmt(x, d=2):
    return "–" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:.{d}f}"


def table(rows: dict[str, dict[str, dict]], title: str) -> str:
    """rows: {group: {predictor: score}} -> markdown."""
    out = [f"#### {title}", "",
           "| organ | n pts | studies | within 2× cal / uncal / null | within 3× cal / uncal / null | median abs log10 err cal / uncal / null | R² log10 cal / uncal / null |",
           "|---|---|---|---|---|---|---|"]
    for g, s in rows.items():
        c, u, n = s["calibrated"], s["uncalibrated"], s["null"]
        if not c.get("n"):
            continue
        out.append(f"| {g} | {c['n']} | {s.get('studies', '')} | {fmt(c['within2'])} / {fmt(u['within2'])} / {fmt(n['within2'])} | "
                   f"{fmt(c['within3'])} / {fmt(u['within3'])} / {fmt(n['within3'])} | "
                   f"{fmt(c['median_abs_log10'])} / {fmt(u['median_abs_log10'])} / {fmt(n['median_abs_log10'])} | "
                   f"{fmt(c['r2_log10'])} / {fmt(u['r2_log10'])} / {fmt(n['r2_log10'])} |")
    return "\n".join(out)


def by_organ(points: pd.DataFrame, preds: dict[str, np.ndarray]) -> dict:
    from nanopk.calibrate import score

    obs = np.log10(points["pid"].to_numpy(float))
    rows = {}
    groups = [(o, points["tissue"].to_numpy() == o) for o in ORGANS]
    groups.append(("DE24 (tumour, 24 h)", (points["tissue"].to_numpy() == "tumour") & np.isclose(points["time_h"], 24.0)))
    groups.append(("all organs", np.ones(len(points), bool)))
    for g, sel in groups:
        rows[g] = {k: score(obs[sel], v[sel]) for k, v in preds.items()}
        rows[g]["studies"] = points.loc[sel, "study"].nunique()
    return rows


def anchors(values: dict | None, offset_log10: float = 0.0) -> dict:
    """A-priori figures of the issue: Arnida 50 nm tumour/spleen at 24 h (× 10^offset, as a study would report
    them), PEG-5k 50 nm blood t½ (a ratio of blood values: the offset cancels)."""
    import nanopk

    # Arnida et al. 2010 (doi:10.1016/j.ejpb.2010.11.010), datasets/arnida2010_peg_au_sphere_50nm.json:
    # 60 µg of 50 nm PEG-5k gold (d_h 88.85 nm) in a 20 g nude mouse.
    arnida = nanopk.Particle(material="Au", core_diameter_nm=50, hydrodynamic_diameter_nm=88.85, coating="PEG",
                             coating_mw_da=5000, zeta_mV=-27.1)
    m = nanopk.load_model("mouse_tumour_full", particle=arnida)
    params = dict(values or {})
    params.update({"BW": 0.02, "dose": 60.0})
    df = nanopk.simulate(m, [24.0], params=params)
    peg50 = nanopk.load_model("mouse_tumour_full", particle=nanopk.Particle(material="Au", core_diameter_nm=50, coating="PEG",
                                                                          coating_mw_da=5000))
    grid = np.unique(np.concatenate([np.geomspace(1e-3, 168, 400), [5 / 60]]))
    sim = nanopk.simulate(peg50, grid, params=dict(values or {}))
    scale = 10 ** offset_log10
    return {"arnida_tumour_24h": scale * float(df["tumour"].iloc[0]), "arnida_spleen_24h": scale * float(df["spleen"].iloc[0]),
            "peg5k_50nm_blood_t_half_h": blood_half_life(grid, sim["blood"].to_numpy())}


_STATE = ("inst", "inst_h", "pts", "pts_h", "summary", "collection_n", "full", "uncal", "cv_cal", "cv_null", "fold_fits",
          "cv_rows", "held_rows", "t_eval", "t_full", "t_cv", "default_values")


def _anchor_lines(before: dict, after: dict) -> list[str]:
    return ["#### Before / after (a priori, mouse_tumour_full)", "",
            "| figure | uncalibrated | calibrated | observed / literature |", "|---|---|---|---|",
            f"| Arnida 2010 50 nm PEG-Au tumour %ID at 24 h | {before['arnida_tumour_24h']:.3g} | {after['arnida_tumour_24h']:.3g} | 0.44 (issue 19) |",
            f"| Arnida 2010 50 nm PEG-Au spleen %ID at 24 h | {before['arnida_spleen_24h']:.3g} | {after['arnida_spleen_24h']:.3g} | 0.3 (issue 19) |",
            f"| PEG-5k 50 nm Au blood t½ (h, from 5 min) | {before['peg5k_50nm_blood_t_half_h']:.3g} | "
            f"{after['peg5k_50nm_blood_t_half_h']:.3g} | hours (Perrault 2009) |", ""]


def run_calibration(database=None, folds: int = 5, workers: int | None = None, max_nfev: int = 12, em_rounds: int = 3,
                    cv_max_nfev: int = 8, cv_em_rounds: int = 2, command: str = "", log=print,
                    checkpoint=None, scheduler=None, store=None, overwrite: bool = False,
                    progress: bool | None = None) -> dict:
    """Calibrate on the NTUA database, cross-validate by study, score the bundled studies.

    Parameters
    ----------
    database : str or Path, optional
        The NTUA ``NMs_Database.xlsx`` (default :data:`NTUA_DEFAULT`).
    folds : int
        K of the leave-study-out cross-validation.
    workers : int, optional
        Local processes per evaluation (default: every core); ignored with ``scheduler``.
    max_nfev, em_rounds, cv_max_nfev, cv_em_rounds : int
        Budget of the full fit and of each fold's fit (:func:`calibrate_constants`).
    scheduler : str, distributed.Client or cluster, optional
        Simulate on a Dask cluster (``"tcp://host:8786"``); the numbers are those of a
        local run.  Needs ``pip install "nanopk[parallel]"``.
    store : str or Path, optional
        SQLite store of every evaluation and finished fit (:class:`CalibrationStore`):
        an interrupted run resumes from it to the same numbers, finished folds are read
        back.  It holds one run's settings (the data, model, solver tolerance, folds
        and budgets); other settings are refused unless ``overwrite``.
    overwrite : bool
        Discard what ``store`` holds first.
    progress : bool, optional
        Progress bar per fit on stderr (default: when stderr is a terminal).

    Returns
    -------
    dict
        The calibration record (what :func:`nanopk.calibrate.store.save_calibration`
        writes) with ``markdown``: the report.

    Raises
    ------
    NanopkError
        If the workbook cannot be read (DataError) or ``folds`` is not an integer from 2
        to the number of studies.
    CalibrationStoreError
        ``store`` holds a run with other settings (each is named) or is not usable.
    CalibrationInterrupted
        SIGTERM or Ctrl-C (with a store): the workers are ended and the same call resumes.
    ParallelDependencyError
        ``scheduler`` given without dask.distributed installed.

    Notes
    -----
    ``checkpoint`` (a path): the fits and predictions are pickled there before the
    anchors and the report are made.
    """
    from types import SimpleNamespace

    from ..meta.ntua import read_ntua_database
    from ..parallel import require_distributed
    from . import CONSTANTS, InstanceSimulator, calibration_points, study_folds
    from .core import _interruptible
    from .data import HELD_OUT_DOIS

    args = SimpleNamespace(database=str(database or NTUA_DEFAULT), folds=folds, workers=workers, max_nfev=max_nfev,
                           em_rounds=em_rounds, cv_max_nfev=cv_max_nfev, cv_em_rounds=cv_em_rounds)
    if scheduler is not None:
        require_distributed("nanopk calibrate", scheduler)  # before the workbook is read
    print = log  # noqa: A001 - progress lines go where the caller wants them

    t_all = time.perf_counter()
    t0 = time.perf_counter()
    collection, _ = read_ntua_database(args.database, assume_body_weight_g=20)
    inst_all, pts_all, refused = calibration_points(collection, exclude_held_out=False)
    doi = {ds.name: str(ds.doi or "").lower() for ds in collection}
    held = {d.lower() for d in HELD_OUT_DOIS}
    is_held = inst_all["name"].map(lambda n: doi.get(n, "") in held)
    inst, inst_h = inst_all[~is_held].reset_index(drop=True), inst_all[is_held].reset_index(drop=True)
    pts = pts_all[pts_all["name"].isin(set(inst["name"]))].reset_index(drop=True)
    pts_h = pts_all[pts_all["name"].isin(set(inst_h["name"]))].reset_index(drop=True)
    print(f"read and mapped in {time.perf_counter() - t0:.1f} s: {len(collection)} datasets; calibration set "
          f"{len(inst)} instances / {inst['study'].nunique()} studies / {len(pts)} points; held-out bundled studies "
          f"{len(inst_h)} instances / {inst_h['study'].nunique()} studies ({', '.join(sorted(inst_h['study'].unique()))}) / "
          f"{len(pts_h)} points")
    summary = refused.groupby(["level", "reason"]).agg(instances=("name", "count"), points=("n_points", "sum"))
    print(summary.to_string())

    folds = study_folds(inst["study"], args.folds, seed=0)  # a bad K is refused before any fit
    t0 = time.perf_counter()
    # What the stored numbers depend on besides the simulator (InstanceSimulator.settings):
    # a store of another run is refused, naming the setting.
    run_settings = {"run": {"folds": args.folds, "fold_seed": 0, "max_nfev": args.max_nfev, "em_rounds": args.em_rounds,
                            "cv_max_nfev": args.cv_max_nfev, "cv_em_rounds": args.cv_em_rounds,
                            "constants": [[c.name, c.lower, c.upper] for c in CONSTANTS]}}
    sim = InstanceSimulator(inst, pts, workers=args.workers, scheduler=scheduler, store=store,
                            store_settings=run_settings, overwrite=overwrite)
    try:
        with _interruptible(sim):
            return _calibrate_and_validate(args, sim, inst, inst_h, pts, pts_h, folds, collection, summary, command,
                                           checkpoint, progress, scheduler, t_all, t0, print)
    finally:
        sim.close()


def _fit(sim, label: str, progress, log=None, **options):
    """One :func:`calibrate_constants` of :data:`CONSTANTS`, with a progress bar (and a log
    line every 10 evaluations when ``log``)."""
    from ..progress import progress_bar
    from . import CONSTANTS, calibrate_constants

    # Each evaluation simulates every instance (seconds): draw every one.
    bar = progress_bar(None, f"calibrate {label}", "evaluation", progress, mininterval=0)

    def step(k):
        bar.update(1)
        if log is not None and k % 10 == 0:
            log(f"  ... {k} evaluations", flush=True)

    try:
        return calibrate_constants(sim, CONSTANTS, progress=step, label=label, **options)
    finally:
        bar.close()


def _calibrate_and_validate(args, sim, inst, inst_h, pts, pts_h, folds, collection, summary, command, checkpoint,
                            progress, scheduler, t_all, t0, print):  # noqa: A002 - the caller's log
    from . import InstanceSimulator, null_predictor
    from .data import HELD_OUT_DOIS

    sim_h = InstanceSimulator(inst_h, pts_h, workers=1)
    where = f"Dask scheduler {scheduler}" if scheduler is not None else f"{sim.workers} local process(es)"
    print(f"simulators ready in {time.perf_counter() - t0:.1f} s ({where}"
          + (f"; store {str(sim.store.path)!r} holds {len(sim.store)} evaluation(s))" if sim.store is not None else ")"))
    t0 = time.perf_counter()
    uncal = sim.predict_log10({})
    t_eval = time.perf_counter() - t0
    eval_text = "read from the store" if sim.n_evaluations == 0 else f"{t_eval:.2f} s"
    print(f"one evaluation (all {len(inst)} instances, {where}): {eval_text}")

    t0 = time.perf_counter()
    full = _fit(sim, "full", progress, print, max_nfev=args.max_nfev, em_rounds=args.em_rounds)
    t_full = time.perf_counter() - t0
    print(f"full calibration: {t_full:.0f} s, {full.n_evaluations} evaluations; tau {full.tau:.3f}, sigma {full.sigma:.3f}")
    for k, v in full.values.items():
        print(f"  {k} = {v:.4g} (SE log10 {full.se_log10[k]:.3f}; default {sim.default_values[k]:.4g})")

    # Leave-study-out CV.
    t0 = time.perf_counter()
    cv_cal = np.full(len(pts), np.nan)
    cv_null = np.full(len(pts), np.nan)
    fold_fits = []
    for k, test_studies in enumerate(folds):
        test = pts["study"].isin(set(test_studies)).to_numpy()
        assert not set(pts.loc[~test, "study"]) & set(test_studies)
        fit = _fit(sim, f"fold {k + 1}", progress, point_mask=~test, max_nfev=args.cv_max_nfev,
                   em_rounds=args.cv_em_rounds)
        cv_cal[test] = sim.predict_log10(fit.values)[test] + fit.offset_log10  # a new study: b = μ
        cv_null[test] = null_predictor(pts[~test], pts[test])
        fold_fits.append({"fold": k + 1, "test_studies": len(test_studies), "test_points": int(test.sum()),
                          "values": fit.values, "offset_log10": fit.offset_log10, "tau": fit.tau, "sigma": fit.sigma,
                          "seconds": round(fit.seconds, 1)})
        print(f"fold {k + 1}/{len(folds)}: {len(test_studies)} studies, {int(test.sum())} test points, "
              f"{fit.seconds:.0f} s", flush=True)
    t_cv = time.perf_counter() - t0
    cv_rows = by_organ(pts, {"calibrated": cv_cal, "uncalibrated": uncal, "null": cv_null})

    # Bundled studies, held out of everything.
    held_rows = {}
    if len(pts_h):
        h_cal = sim_h.predict_log10(full.values) + full.offset_log10
        h_unc = sim_h.predict_log10({})
        h_null = null_predictor(pts, pts_h)
        held_rows = by_organ(pts_h, {"calibrated": h_cal, "uncalibrated": h_unc, "null": h_null})
    if checkpoint:  # everything computed so far, so a failure below does not cost the fits
        import pickle

        Path(checkpoint).write_bytes(pickle.dumps({k: v for k, v in locals().items() if k in _STATE}))
    try:
        before, after = anchors(None), anchors(full.values, full.offset_log10)  # inside the model's bounds
    except Exception as exc:  # noqa: BLE001 - reported in the record and the report, not hidden
        before = after = {"error": f"{type(exc).__name__}: {exc}"}
    t_total = time.perf_counter() - t_all

    date = datetime.date.today().isoformat()
    lines = [f"Produced by `{command or 'nanopk.calibrate.validate.run_calibration'}` on {date}.", "",
             f"Data: {len(inst)} instances, {inst['study'].nunique()} studies, {len(pts)} points (calibration set); "
             f"held-out bundled studies {len(inst_h)} instances, {inst_h['study'].nunique()} studies, {len(pts_h)} points.", "",
             f"Read: {len(collection)} NTUA datasets (mapped by nanopk.meta.read_ntua_database, body weight 20 g assumed "
             "where blank). What the calibration left out or assumed (instances / points):", "",
             "| level | reason | instances | points |", "|---|---|---|---|"]
    lines += [f"| {lvl} | {reason} | {int(r.instances)} | {int(r.points)} |" for (lvl, reason), r in summary.iterrows()]
    lines += ["",
             f"Wall time on this machine ({where}): one evaluation {eval_text}; full calibration "
             f"{t_full:.0f} s ({full.n_evaluations} evaluations); {args.folds}-fold CV {t_cv:.0f} s; whole script {t_total:.0f} s"
             + (f" ({sim.n_reused} evaluation(s) read from the store {str(sim.store.path)!r}, "
                f"{sim.n_evaluations} simulated)." if sim.store is not None else "."), "",
             "#### Calibrated constants (all calibration studies)", "",
             "| constant | default | calibrated | SE log10 | 95 % interval |", "|---|---|---|---|---|"]
    d = full.to_dict()
    for k, v in d["constants"].items():
        iv = v["interval95"]
        lines.append(f"| {k} | {sim.default_values[k]:.4g} | {v['value']:.4g} | {fmt(v['se_log10'], 3)} | "
                     f"{'not identified' if iv is None else f'{iv[0]:.3g}–{iv[1]:.3g}'} |")
    mu_se = "" if full.offset_se_log10 is None else f" (SE {full.offset_se_log10:.3f})"
    lines += ["", f"Mean study offset μ = {full.offset_log10:+.3f} log10{mu_se}: the studies report ×{10 ** full.offset_log10:.3g} "
              "of the mass-balanced model's %ID (a new study is predicted at log10 f + μ). "
              f"Between-study SD τ = {full.tau:.3f} log10 (×{10 ** full.tau:.2f}); residual SD σ = {full.sigma:.3f} "
              f"log10 (×{10 ** full.sigma:.2f}); EM rounds: {len(full.history)}.", "",
              table(cv_rows, f"Leave-study-out {args.folds}-fold CV (a priori, study offset at its mean μ)"), ""]
    if held_rows:
        lines += [table(held_rows, "Bundled studies, held out of every fit (calibrated on all calibration studies)"), ""]
    if "error" in before:
        lines += [f"Before/after anchors failed: {before['error']}", ""]
    else:
        lines += _anchor_lines(before, after)
    lines += [
]
    text = "\n".join(lines)
    record = {**d, "model": "mouse_tumour_full", "method": "two-stage EM with a study random effect (log10 %ID)",
              "database": "NTUA NMs_Database.xlsx (ntua-unit-of-control-and-informatics/NM-biodistribution-prediction)",
              "date": date, "benchmark": "benchmarks/calibrate_ntua.py (CALIBRATION.md)", "command": command,
              "held_out_studies": sorted(HELD_OUT_DOIS.values()), "folds": fold_fits,
              "cv": cv_rows, "held_out": held_rows, "anchors": {"uncalibrated": before, "calibrated": after},
              "wall_seconds": {"evaluation": round(t_eval, 2), "full": round(t_full, 1), "cv": round(t_cv, 1),
                               "total": round(t_total, 1)},
              "refused": [{"level": lvl, "reason": reason, "instances": int(r.instances), "points": int(r.points)}
                          for (lvl, reason), r in summary.iterrows()],
              "markdown": text}
    return record
