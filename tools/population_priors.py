"""Write ``src/nanopk/data/population_priors.csv``: the population priors a single-study fit uses by default.

    .venv/bin/python tools/population_priors.py [RAW_DIR]

The Lin-lab tumour parameters' priors are the between-study distribution of the per-dataset
fits of Chou et al. 2023 (UFPBPK/Nano-AI-PBPK-G1 ``Model_dataset.xlsx``: the Chou 2023 PBPK
model fitted to each of the 378 Nano-Tumor Database datasets).  The file is read where it
lies (``RAW_DIR``, default ``../shared/datasets/raw`` beside the repository), never copied.
Each column's log-normal summary -- the median and the ln-scale SD (floored at 0.5, meta's
``MIN_PRIOR_SD``; ``ln_sd_raw`` is the unfloored value) over the datasets with a positive
value -- is :func:`nanopk.meta.runner.empirical_prior`, the same estimator ``nanopk meta``
uses for its empirical prior (one code path, not a second one).

The mononuclear-phagocyte (MPS) uptake parameters of the Lin-lab models (``Kmax_liver``,
``K50_liver``, ``Kmax_spleen``, ``K50_spleen``, ``Kmax_kidney``, ``Kmax_lung``; same names and
units in ``mouse_pbpk`` and ``mouse_tumour``) have no published between-study table, so this
tool tries to estimate their spread itself from the NTUA biodistribution database
(ntua-unit-of-control-and-informatics/NM-biodistribution-prediction ``NMs_Database.xlsx``,
read where it lies with :func:`nanopk.meta.read_ntua_database`, 20 g assumed where the
body weight is blank):

1. keep the mouse IV instances that are not one of the studies bundled in ``datasets/``
   (:func:`nanopk.calibrate.data.is_held_out`: the bundled fits must not be judged with
   priors built from themselves) and that measure blood and the liver or the spleen;
2. fit ``mouse_pbpk`` to each by maximum likelihood (``priors=None``), varying only the
   parameters its measured organs inform (liver: ``Kmax_liver``, ``K50_liver``; spleen:
   ``Kmax_spleen``, ``K50_spleen``; kidney: ``Kmax_kidney``; lung: ``Kmax_lung``);
3. keep an estimate only from a converged fit and only if it is not at (or, for the
   ``Kmax`` lower bound 0, within :data:`AT_ZERO` of) a bound;
4. one value per study (the geometric median of its instances), so a study with many
   instances does not dominate;
5. :func:`empirical_prior` over the studies (ln-SD floored at 0.5), as for the tumour rows;
   a parameter gets a row only with at least :data:`MIN_STUDIES` studies and at most
   :data:`MAX_AT_BOUND` of its converged fits on a bound: leaving out the at-bound estimates
   censors the distribution on one side, so past that share the median and spread of the
   rest are not the population's.  On the NTUA database (87 instances, 53 studies) only
   ``Kmax_liver`` (16 of 87 at a bound) and ``Kmax_spleen`` (11 of 69) pass; ``K50_liver``
   (57 of 87, 56 on its 0.1 h floor), ``K50_spleen`` (31 of 69, all on the floor),
   ``Kmax_kidney`` (31 of 67) and ``Kmax_lung`` (39 of 66) do not, and keep no prior.

For these rows ``n_datasets`` is the number of studies; the source names the instances.
The other organs' partition and permeability coefficients and the excretion rates still
get no row: :func:`nanopk.fit.priors.population_priors` lists them as "no prior" and the
fit estimates them by maximum likelihood.

Why the bundled table has no MPS rows (yet): the two credible rows (``Kmax_liver`` median
1.31942 /h, ln-SD 1.7750, 45 studies / 71 instances; ``Kmax_spleen`` 0.421875 /h, ln-SD
2.4161, 41 studies / 58 instances) make the default fits of the bundled tumour studies
worse, not better: with them the identifiability selection keeps the prior-held uptake and
drops the data-determined ``K50_spleen`` (Arnida 2010 spheres, the README study: AIC
27.72 -> 38.7, within 2-fold 51.4 % -> 45.7 %, DE24 interval 6.5-fold -> 45.6-fold), or
adds ``Kmax_liver`` as a fifth parameter (Arnida 2010 rods: DE24 interval 20.6-fold ->
439-fold).  So ``--with-mps`` writes them only on request (the machinery is here and
tested), and the default run writes the tumour rows.

    .venv/bin/python tools/population_priors.py [RAW_DIR] [--with-mps [--workers N]]

**Priors conditional on the particle** (``src/nanopk/data/conditional_priors.csv``, read by
:func:`nanopk.fit.priors.conditional_prior`).  Each Lin-lab tumour parameter (``Kmax_tumour``,
``K50_tumour``, ``n_tumour``, ``Krelease_tumour``, ``PATC_tumour``, ``P_tumour``) is regressed by
OLS, ln(parameter) on the particle descriptors both the database and a nanopk sidecar know
(:data:`nanopk.fit.priors.TERMS`: inorganic core, ln(hydrodynamic diameter/100 nm), active
targeting, non-spherical shape, positive zeta potential; dose, tumour model and |zeta| were
tried as well and helped no parameter on held-out studies).  Judged by study, not by dataset:

1. each Model_dataset row's study is the Nano-ML-AI ``data.csv`` paper whose (DE24, DE168,
   DEmax) it matches (:func:`study_of_datasets`, the rule of ``nanopk.meta``'s summary match);
   367 of 378 rows match 190 papers, the 11 others are studies of their own;
2. the bundled studies (:data:`BUNDLED_PAPERS`: Liu 2013, Arnida 2010, Wang 2015; 7 datasets)
   are left out, leaving 371 datasets of 198 studies;
3. terms enter by forward selection on the leave-study-out RMSE of ln(parameter), each
   lowering it by at least :data:`MIN_GAIN` (1 %); a missing descriptor (HD blank in 35 of
   the 371 rows, Charge in 40) enters a prediction at the training mean, rows without it are
   left out of the fit;
4. the honest figure is the *nested* leave-study-out RMSE: the selection re-run without each
   held-out study (its own cross-validation in :data:`INNER_FOLDS` groups of studies);
   a parameter's regression ships only if the nested RMSE is at least 1 % below both the
   marginal median's and the between-study mean's leave-study-out RMSE.

Leave-study-out RMSE of ln(parameter) (marginal median | mean | selected regression | nested):

    Kmax_tumour      1.583 | 1.572 | 1.572 (no term)             | 1.572  -> marginal
    K50_tumour       3.176 | 3.038 | 3.007 (ln HD)               | 3.105  -> marginal
    n_tumour         1.582 | 1.487 | 1.487 (no term)             | 1.487  -> marginal
    Krelease_tumour  2.610 | 2.621 | 2.528 (ln HD)               | 2.528  -> shipped
    PATC_tumour      2.100 | 2.106 | 2.033 (inorganic, nonsph.)  | 2.080  -> marginal (2.080 vs the 2.079 needed)
    P_tumour         1.324 | 1.329 | 1.329 (no term)             | 1.355  -> marginal

So one regression ships: ln Krelease_tumour = -2.176 + 0.8429·ln(HD/100 nm), residual SD
2.4845 (336 datasets of 179 studies with an HD): smaller particles release from the tumour
more slowly in the Chou fits (5.5 nm: median 0.0098 /h; 88.85 nm: 0.103 /h; marginal
0.097 /h).  The gain is small (3.1 % of the RMSE; a bootstrap over studies put the
difference at -0.08, 95 % [-0.19, +0.02]; 2000 resamples, seed 0, a check made outside this
tool) and the prior's spread stays wide (2.48 vs 2.59).
The marginal rows above (``table``) leave out the bundled studies' datasets too (371 of 378).
"""
from __future__ import annotations

import csv
import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RAW = ROOT.parent / "shared" / "datasets" / "raw"
WORKBOOK = Path("UFPBPK__Nano-AI-PBPK-G1") / "Model_dataset.xlsx"
OUT = ROOT / "src" / "nanopk" / "data" / "population_priors.csv"

#: Database column -> (model parameter of the Lin-lab tumour sub-model, unit).
COLUMNS = {
    "KTRESmax": ("Kmax_tumour", "1/h"),
    "KTRES50": ("K50_tumour", "h"),
    "KTRESn": ("n_tumour", "dimensionless"),
    "KTRESrelease": ("Krelease_tumour", "1/h"),
    "PATC": ("PATC_tumour", "dimensionless"),
    "PT": ("P_tumour", "dimensionless"),
    "QTC": ("f_Q_tumour", "dimensionless"),
    "BVT": ("f_B_tumour", "dimensionless"),
    "VTC": ("f_V_tumour", "dimensionless"),
}
SOURCE = ("Chou WC et al., J Control Release 2023;361:53 (doi:10.1016/j.jconrel.2023.07.040): per-dataset fits of "
          "378 Nano-Tumor Database datasets (the 7 of the studies bundled in datasets/ left out: Liu 2013, Arnida 2010, "
          "Wang 2015), UFPBPK/Nano-AI-PBPK-G1 Model_dataset.xlsx "
          "(commit 7c89ad457dcf6eff4f0993807b153458d29ea1ce, blob 3e78dc4e430014e4456c4b4e7dff1a0078ebe791)")
#: The NTUA workbook (relative to RAW_DIR).
NTUA = (Path("ntua-unit-of-control-and-informatics__NM-biodistribution-prediction") / "Biodistribution_data"
        / "NMs_Database.xlsx")
NTUA_SOURCE = ("NTUA NM-biodistribution database (ntua-unit-of-control-and-informatics/NM-biodistribution-prediction "
               "Biodistribution_data/NMs_Database.xlsx): {n_studies} studies ({n_instances} mouse IV instances, bundled "
               "studies left out) each fitted by maximum likelihood with the mouse_pbpk model; per-study geometric "
               "median, then nanopk.meta.runner.empirical_prior (median, ln-SD floored at 0.5) over the studies")
NTUA_COLUMN = ("mouse_pbpk ML fit per instance (converged, not at a bound), geometric median per study")
MPS_MODEL = "mouse_pbpk"
#: The organs of mouse_pbpk a fit reads (its observables but the excreta, which have no organ mass).
MPS_TISSUES = ("blood", "liver", "spleen", "kidney", "lung", "brain", "muscle")
#: Measured organ -> the MPS uptake parameters it informs (the Lin-lab names; units of the model).
MPS_ORGANS = {"liver": ("Kmax_liver", "K50_liver"), "spleen": ("Kmax_spleen", "K50_spleen"),
              "kidney": ("Kmax_kidney",), "lung": ("Kmax_lung",)}
#: A Kmax estimate below this (1/h) sits on its lower bound 0 on the fit's log scale: not an estimate.
AT_ZERO = 1e-5
#: Relative distance to a finite bound that counts as "at the bound".
AT_BOUND_REL = 1e-3
#: Fewest sampling times an instance needs: a single snapshot cannot tell an uptake rate from its time course.
MIN_TIMES = 3
#: Largest share of a parameter's converged instance fits that may sit on a bound for it to get a row.
MAX_AT_BOUND = 0.25
#: Fewest studies a parameter's row needs.
MIN_STUDIES = 5
FIELDS = ["parameter", "median", "ln_sd", "ln_sd_raw", "unit", "n_datasets", "database_column", "source", "models"]
#: The models the MPS rows apply to (``models`` column): the Lin-lab mouse models that share mouse_pbpk's MPS.
MPS_MODELS = "mouse_pbpk mouse_tumour"


def rows_from_workbook(path: Path) -> list[dict]:
    """One stage-1-style row per dataset (``status``, ``params``) for :func:`empirical_prior`.

    Raises
    ------
    FileNotFoundError
        If the workbook is not at ``path``.
    """
    import pandas as pd

    if not path.is_file():
        raise FileNotFoundError(f"Model_dataset.xlsx not found at {path}; the shared raw data must sit next to the "
                                "repository (../shared/datasets/raw) or be named as the first argument")
    frame = pd.read_excel(path)
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"{path}: column(s) {', '.join(missing)} missing; expected {', '.join(COLUMNS)}")
    values = {c: pd.to_numeric(frame[c], errors="coerce") for c in COLUMNS}
    # rmse_log None / n_points 0: these rows carry parameters only, no residual σ to pool.
    return [{"status": "ok", "rmse_log": None, "n_points": 0,
             "params": {COLUMNS[c][0]: float(values[c].iloc[i]) for c in COLUMNS}} for i in range(len(frame))]


def table(raw: Path = RAW) -> list[dict]:
    """The rows of ``population_priors.csv``."""
    import numpy as np

    from nanopk.meta.runner import empirical_prior

    # The bundled studies' datasets stay out: the bundled fits are judged with these priors
    # (the validation protocol: no study informs a prior it is then judged by).
    bundled = database_frame(raw)["bundled"].to_numpy()
    rows = [r for r, b in zip(rows_from_workbook(raw / WORKBOOK), bundled, strict=True) if not b]
    names = [p for p, _ in COLUMNS.values()]
    prior, _, _ = empirical_prior(rows, names, base_prior={})
    out = []
    for column, (name, unit) in COLUMNS.items():
        logs = np.log([r["params"][name] for r in rows if r["params"][name] > 0])
        median, ln_sd = prior[name]
        # ln_sd is floored at meta's MIN_PRIOR_SD (0.5): a population spread the database's rounding
        # makes narrower (QTC, BVT are mostly one value) would pin a lab's own data to it.
        out.append({"parameter": name, "median": f"{median:.6g}", "ln_sd": f"{ln_sd:.4f}",
                    "ln_sd_raw": f"{np.std(logs, ddof=1):.4f}", "unit": unit,
                    "n_datasets": len(logs), "database_column": column, "source": SOURCE, "models": ""})
    return out


def mps_instances(raw: Path = RAW) -> list:
    """The NTUA instances the MPS fits use (step 1 of the module docstring): ``[(DataFrame, vary)]``.

    Each instance's points in %ID at ``mouse_pbpk``'s organ observables, read as the calibration
    reads the database (:func:`nanopk.calibrate.data.calibration_points`, without its need of a
    known particle): replicate rows as their geometric mean, a dose given only as activity
    simulated as a tracer (``TRACER_DOSE_UG``: the model is linear in dose, so %ID does not
    depend on it), rows without an organ mass or a positive value left out.
    """
    import re
    import warnings

    import numpy as np

    from nanopk.calibrate.data import TRACER_DOSE_UG, is_held_out, study_key
    from nanopk.meta import read_ntua_database

    path = raw / NTUA
    if not path.is_file():
        raise FileNotFoundError(f"NMs_Database.xlsx not found at {path}; the shared raw data must sit next to the "
                                "repository (../shared/datasets/raw) or be named as the first argument")
    collection, _ = read_ntua_database(path, assume_body_weight_g=20)
    out = []
    for ds in collection:
        if ds.species != "mouse" or ds.route != "iv" or is_held_out(ds):
            continue
        dose = ds.dose_ug
        if dose is None and re.search(r"(Bq|Ci)", str((ds.meta.get("dose") or {}).get("unit") or "")):
            dose = TRACER_DOSE_UG
        wanted = [t for t in ds.tissues if t in MPS_TISSUES]
        if not dose or not wanted or ds.body_weight_g is None:
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            table = ds.percent_id(tissues=wanted, skip_unconvertible=True)
        table = table[np.isfinite(table["value_pid"]) & (table["value_pid"] > 0)]
        df = (table.groupby(["tissue", "time_h"], sort=True)["value_pid"]
              .agg(lambda v: float(np.exp(np.mean(np.log(v.to_numpy(float)))))).rename("value").reset_index())
        tissues = set(df["tissue"])
        if "blood" not in tissues or not tissues & {"liver", "spleen"} or df["time_h"].nunique() < MIN_TIMES:
            continue
        vary = [name for organ, names in MPS_ORGANS.items() if organ in tissues for name in names]
        df.attrs.update(name=ds.name, study=study_key(ds), dose_ug=float(dose), body_weight_g=float(ds.body_weight_g))
        out.append((df, vary))
    return out


def _fit_one(item) -> dict:
    """One instance's ML fit -> ``{name, study, vary, converged, success, params, at_bound, error}``."""
    import warnings

    import nanopk

    ds, vary = item
    study = ds.attrs["study"]
    row = {"name": ds.attrs["name"], "n_points": len(ds), "study": study, "vary": vary, "converged": False,
           "success": False, "params": {},
           "at_bound": [], "error": None}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = nanopk.fit(MPS_MODEL, ds, vary=vary, priors=None, warn=False)
    except Exception as exc:  # a refused instance is recorded with its reason, not dropped
        row["error"] = f"{type(exc).__name__}: {exc}"
        return row
    model = result.model
    flagged = {n for n, _ in result.flags.get("at_bound", [])}
    for name in vary:
        value = float(result.params[name].value)
        lo, hi = model.parameters[name].bounds
        at = (name in flagged or value < AT_ZERO or (lo > 0 and value <= lo * (1 + AT_BOUND_REL))
              or value >= hi * (1 - AT_BOUND_REL))
        row["params"][name] = value
        if at:
            row["at_bound"].append(name)
    row["converged"] = bool(result.flags.get("converged"))
    row["success"] = bool(result.success)
    return row


def mps_fits(raw: Path = RAW, workers: int = 2) -> list[dict]:
    """Step 2 of the module docstring: one row per instance (see :func:`_fit_one`), in database order."""
    items = mps_instances(raw)
    if workers > 1:
        import multiprocessing

        with multiprocessing.get_context("fork").Pool(workers) as pool:
            return pool.map(_fit_one, items, chunksize=1)
    return [_fit_one(item) for item in items]


def mps_table(fits: list[dict]) -> list[dict]:
    """Steps 3-5 of the module docstring: the MPS rows of ``population_priors.csv`` from :func:`mps_fits`."""
    import nanopk
    import numpy as np

    from nanopk.meta.runner import empirical_prior

    model = nanopk.load_model(MPS_MODEL)
    names = [n for names in MPS_ORGANS.values() for n in names]
    per_study: dict = {}
    for r in fits:
        if not r["converged"]:
            continue
        for name, value in r["params"].items():
            if name not in r["at_bound"]:
                per_study.setdefault(name, {}).setdefault(r["study"], []).append(math.log(value))
    out = []
    for name in names:
        studies = per_study.get(name, {})
        tried = [r for r in fits if r["converged"] and name in r["params"]]
        at_bound = sum(name in r["at_bound"] for r in tried)
        # Dropping at-bound estimates censors the distribution on one side: past MAX_AT_BOUND the kept
        # ones no longer stand for the population (K50_liver: 56 of 87 fits on its 0.1 h floor).
        if len(studies) < MIN_STUDIES or not tried or at_bound > MAX_AT_BOUND * len(tried):
            continue
        # One value per study (sorted by study, so the estimator sees a fixed order).
        rows = [{"status": "ok", "rmse_log": None, "n_points": 0, "params": {name: float(math.exp(np.median(v)))}}
                for _, v in sorted(studies.items())]
        prior, _, _ = empirical_prior(rows, [name], base_prior={})
        median, ln_sd = prior[name]
        logs = np.log([r["params"][name] for r in rows])
        n_inst = sum(len(v) for v in studies.values())
        out.append({"parameter": name, "median": f"{median:.6g}", "ln_sd": f"{ln_sd:.4f}",
                    "ln_sd_raw": f"{np.std(logs, ddof=1):.4f}", "unit": str(model.parameters[name].unit),
                    "n_datasets": len(studies), "database_column": NTUA_COLUMN,
                    "source": NTUA_SOURCE.format(n_studies=len(studies), n_instances=n_inst), "models": MPS_MODELS})
    return out


def summarise_fits(fits: list[dict]) -> None:
    """Print how many instance fits each MPS parameter kept, and why the others were left out."""
    print(f"{len(fits)} NTUA instances fitted ({len({r['study'] for r in fits})} studies); "
          f"{sum(r['error'] is not None for r in fits)} refused, {sum(r['converged'] for r in fits)} converged, "
          f"{sum(r['success'] for r in fits)} with a covariance")
    for organ, names in MPS_ORGANS.items():
        for name in names:
            tried = [r for r in fits if name in r["vary"]]
            kept = [r for r in tried if r["converged"] and name not in r["at_bound"]]
            print(f"  {name:<12} varied in {len(tried):>3}, kept {len(kept):>3} "
                  f"(not converged {sum(not r['converged'] for r in tried)}, at a bound "
                  f"{sum(r['converged'] and name in r['at_bound'] for r in tried)}) from "
                  f"{len({r['study'] for r in kept})} studies")


# ------------------------------------------------------------------ priors conditional on the particle
#: The Nano-ML-AI summary (``ID`` = the paper) that maps each Model_dataset row to its study.
SUMMARY = Path("UFPBPK__Nano-ML-AI") / "data.csv"
CONDITIONAL_OUT = ROOT / "src" / "nanopk" / "data" / "conditional_priors.csv"
#: The tumour parameters that may get a particle-conditional prior (database column -> name).
CONDITIONAL_COLUMNS = {c: COLUMNS[c] for c in ("KTRESmax", "KTRES50", "KTRESn", "KTRESrelease", "PATC", "PT")}
#: Papers (data.csv ``ID``) of the studies bundled in ``datasets/``, found by the sidecars' descriptors
#: (tests/test_conditional_priors.py checks each bundled tumour sidecar lands in one of them):
#: every dataset of these papers stays out of the regression, as the bundled fits are judged by it.
BUNDLED_PAPERS = {12: "Liu 2013, doi:10.1002/anie.201304465 (liu2013_peg_au_2nm: Au, HD 5.5 nm, MCF-7)",
                  18: "Arnida 2010, doi:10.1016/j.ejpb.2010.11.010 (arnida2010 sphere HD 88.9 nm and rod)",
                  20: "Wang 2015, doi:10.1039/c4mt00340c (wang2015 AuNR@SiO2 BSA 44.3 nm and PEG 41.8 nm)"}
#: A term enters a regression only if it lowers the leave-study-out RMSE by at least this share.
MIN_GAIN = 0.01
#: Groups of the inner cross-validation of the nested check (the selection re-run without each study).
INNER_FOLDS = 10
CONDITIONAL_FIELDS = ["parameter", "term", "coefficient", "ln_sd", "unit", "n_datasets", "n_studies",
                      "loso_rmse_marginal", "loso_rmse_mean", "loso_rmse_conditional", "loso_rmse_nested", "source"]
CONDITIONAL_SOURCE = ("OLS of ln(parameter) on the particle's descriptors over the Chou et al. 2023 per-dataset fits "
                      "(UFPBPK/Nano-AI-PBPK-G1 Model_dataset.xlsx, doi:10.1016/j.jconrel.2023.07.040; studies from "
                      "UFPBPK/Nano-ML-AI data.csv), {n} datasets of {k} studies, the bundled studies (Liu 2013, "
                      "Arnida 2010, Wang 2015) left out; kept because it lowers the leave-study-out RMSE "
                      "(tools/population_priors.py)")


def study_of_datasets(desc, summary):
    """Model_dataset ``ID`` -> study key: the data.csv paper ``ID`` whose (DE24, DE168, DEmax) agrees.

    The rule of :func:`nanopk.meta.reader._match_summary` (max |Δ ln DE| < 0.05, ties prefer the
    same targeting and type), returning the paper instead of its material.  A dataset without
    a match is a study of its own (``"dataset <ID>"``); ``paper`` is None for it.
    """
    import numpy as np

    s = summary.dropna(subset=["DE_24", "DE_168", "DE_Max"])
    s = s[(s[["DE_24", "DE_168", "DE_Max"]] > 0).all(axis=1)].reset_index(drop=True)
    de = desc[["DE24", "DE168", "Demax"]].to_numpy(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        B = np.log(np.where(de > 0, de, np.nan))
    S = np.log(s[["DE_24", "DE_168", "DE_Max"]].to_numpy(float))
    dist = np.abs(B[:, None, :] - S[None, :, :]).max(axis=2)
    dist = np.where(np.isnan(dist), np.inf, dist)
    same_ts = desc["TS"].astype(str).str.lower().to_numpy()[:, None] == s["TS"].astype(str).str.lower().to_numpy()[None]
    same_type = (desc["Type"].astype(str).str.lower().to_numpy()[:, None]
                 == s["Type"].astype(str).str.lower().to_numpy()[None])
    j = (dist + 1e-3 * (~same_ts) + 1e-3 * (~same_type)).argmin(axis=1)
    papers = [int(s["ID"].iloc[jj]) if dist[k, jj] < 0.05 else None for k, jj in enumerate(j)]
    return papers


def database_frame(raw: Path = RAW):
    """The Model_dataset rows with their study, the :data:`nanopk.fit.priors.TERMS` and ln-parameters.

    Columns: ``ID``, ``paper`` (None if unmatched), ``study``, ``bundled``, one per term (NaN where the
    database has no value: HD blank in 36 rows, Charge in 40), one ``ln <parameter>`` per
    :data:`CONDITIONAL_COLUMNS`.
    """
    import numpy as np
    import pandas as pd

    path = raw / WORKBOOK
    if not path.is_file():
        raise FileNotFoundError(f"Model_dataset.xlsx not found at {path}; the shared raw data must sit next to the "
                                "repository (../shared/datasets/raw) or be named as the first argument")
    desc = pd.read_excel(path)
    summary = pd.read_csv(raw / SUMMARY, encoding="utf-8-sig")
    papers = study_of_datasets(desc, summary)
    out = pd.DataFrame({"ID": desc["ID"].astype(int), "paper": papers})
    out["study"] = [f"paper {p}" if p is not None else f"dataset {i}" for p, i in zip(papers, out["ID"])]
    out["bundled"] = [p in BUNDLED_PAPERS for p in papers]
    hd = pd.to_numeric(desc["HD"], errors="coerce")
    charge = pd.to_numeric(desc["Charge"], errors="coerce")
    # Same definitions as nanopk.fit.priors.particle_terms, from the database's columns.
    out["inorganic"] = desc["Type"].isin(["Inorganic", "Hybrid"]).astype(float)
    out["ln_hd_100nm"] = np.log(hd.where(hd > 0) / 100.0)
    out["active_targeting"] = (desc["TS"].astype(str).str.lower() == "active").astype(float)
    out["nonspherical"] = (desc["Shape"].astype(str) != "Spherical").astype(float)
    # Charge: 0 negative, 1 positive, 2 neutral (the sign of data.csv's ZP in 325 of the 328 matched rows).
    out["positive_zeta"] = (charge == 1).astype(float).where(charge.notna())
    for column, (name, _) in CONDITIONAL_COLUMNS.items():
        out[f"ln {name}"] = np.log(pd.to_numeric(desc[column], errors="coerce"))
    return out


def ols(cols: dict, y, terms):
    """OLS of ``y`` on ``terms`` over the complete rows -> (coefficients incl. intercept, term means, residual SD, n).

    ``cols`` maps each term to its column (numpy arrays; a DataFrame works too).
    """
    import numpy as np

    A = np.column_stack([np.ones(len(y))] + [np.asarray(cols[t], float) for t in terms])
    ok = np.isfinite(A).all(axis=1) & np.isfinite(y)
    b, *_ = np.linalg.lstsq(A[ok], y[ok], rcond=None)
    resid = y[ok] - A[ok] @ b
    sd = float(np.sqrt(resid @ resid / (ok.sum() - len(b))))
    return b, {t: float(np.mean(np.asarray(cols[t], float)[ok])) for t in terms}, sd, int(ok.sum())


def predict(cols: dict, b, means, terms, n: int):
    """The regression's prediction for ``n`` rows; a missing descriptor enters at its training mean (adds nothing)."""
    import numpy as np

    out = np.full(n, float(b[0]))
    for k, t in enumerate(terms):
        x = np.asarray(cols[t], float)
        out += b[k + 1] * np.where(np.isfinite(x), x, means[t])
    return out


def cv_rmse(cols: dict, y, terms, groups) -> float:
    """RMSE (ln scale) of predicting each group from the others: ``terms`` None = the median, [] = the mean.

    The regression of each fold is :func:`ols` on the other groups' complete rows, solved from
    per-group sums (``AᵀA``, ``Aᵀy``: the whole minus the held-out group), and :func:`predict`'s
    rule for a missing descriptor (the training mean); one pass, not one refit per group.
    """
    import numpy as np

    err = np.empty(len(y))
    if terms is None:
        for g in np.unique(groups):
            test = groups == g
            err[test] = y[test] - np.median(y[~test])
        return float(np.sqrt(np.mean(err ** 2)))
    _, inv = np.unique(groups, return_inverse=True)
    X = np.column_stack([np.ones(len(y))] + [np.asarray(cols[t], float) for t in terms])
    ok = np.isfinite(X).all(axis=1)
    A, k = X[ok], inv[ok]
    n_groups, p = inv.max() + 1, X.shape[1]
    ata = np.zeros((n_groups, p, p))
    np.add.at(ata, k, A[:, :, None] * A[:, None, :])
    aty = np.zeros((n_groups, p))
    np.add.at(aty, k, A * y[ok, None])
    b = np.linalg.solve(ata.sum(axis=0)[None] - ata, (aty.sum(axis=0)[None] - aty)[..., None])[..., 0]
    sums = ata[:, 0, :]  # row 0 of AᵀA: the count and the sums of each term over the complete rows
    means = (sums.sum(axis=0)[None] - sums)[:, 1:] / (sums.sum(axis=0)[None] - sums)[:, :1]
    Xf = np.where(np.isfinite(X), X, np.column_stack([np.ones(len(y)), means[inv]]))
    err = y - np.einsum("ij,ij->i", Xf, b[inv])
    return float(np.sqrt(np.mean(err ** 2)))


def forward_select(cols: dict, y, groups, candidates) -> tuple[list, float]:
    """Add the term that most lowers the cross-validated RMSE while it lowers it by >= :data:`MIN_GAIN`."""
    chosen, best = [], cv_rmse(cols, y, [], groups)
    while True:
        trial = {t: cv_rmse(cols, y, chosen + [t], groups) for t in candidates if t not in chosen}
        if not trial:
            return chosen, best
        term = min(trial, key=trial.get)
        if trial[term] >= best * (1 - MIN_GAIN):
            return chosen, best
        chosen.append(term)
        best = trial[term]


def nested_rmse(cols: dict, y, groups, candidates) -> float:
    """Leave-study-out RMSE of the whole procedure: the selection re-run without each held-out study.

    Inside, the studies left are split into :data:`INNER_FOLDS` groups (by their sorted order) for
    the selection's own cross-validation; the held-out study never informs the terms chosen for it.
    """
    import numpy as np

    err = np.empty(len(y))
    codes = np.unique(groups, return_inverse=True)[1]  # integer study codes, in sorted order of the keys
    for g in range(codes.max() + 1):
        test = codes == g
        train = {t: np.asarray(cols[t], float)[~test] for t in candidates}
        ytr, studies = y[~test], codes[~test]
        # the i-th remaining study (sorted) goes to inner group i mod INNER_FOLDS
        inner = (np.unique(studies, return_inverse=True)[1] % INNER_FOLDS)
        terms, _ = forward_select(train, ytr, inner, candidates)
        if terms:
            b, means, _, _ = ols(train, ytr, terms)
            err[test] = y[test] - predict({t: np.asarray(cols[t], float)[test] for t in terms}, b, means, terms,
                                          int(test.sum()))
        else:
            err[test] = y[test] - np.mean(ytr)
    return float(np.sqrt(np.mean(err ** 2)))


def conditional_inputs(raw: Path = RAW):
    """``(cols, groups, {parameter: ln values})`` of the datasets outside the bundled studies (numpy arrays)."""
    from nanopk.fit.priors import TERMS

    frame = database_frame(raw)
    frame = frame[~frame["bundled"]].reset_index(drop=True)
    cols = {t: frame[t].to_numpy(float) for t in TERMS}
    logs = {name: frame[f"ln {name}"].to_numpy(float) for name, _ in CONDITIONAL_COLUMNS.values()}
    return cols, frame["study"].to_numpy(), logs


def conditional_analysis(raw: Path = RAW, nested: bool = True, names=None, inputs=None) -> list[dict]:
    """Per tumour parameter: the terms chosen, coefficients and the held-out figures (ln-scale RMSEs).

    ``nested=False`` skips the nested check (the slow part); ``names`` limits the parameters;
    ``inputs`` is :func:`conditional_inputs`'s result when already read.
    A parameter's regression is shipped (``shipped``) only if the nested RMSE is at least
    :data:`MIN_GAIN` below both the marginal median's and the between-study mean's.
    """
    import numpy as np

    from nanopk.fit.priors import TERMS

    cols_all, groups_all, logs = conditional_inputs(raw) if inputs is None else inputs
    out = []
    for column, (name, unit) in CONDITIONAL_COLUMNS.items():
        if names is not None and name not in names:
            continue
        keep = np.isfinite(logs[name])
        f, yy, gg = {t: c[keep] for t, c in cols_all.items()}, logs[name][keep], groups_all[keep]
        terms, rmse_cond = forward_select(f, yy, gg, list(TERMS))
        b, means, sd, n = ols(f, yy, terms)
        complete = np.isfinite(np.column_stack([f[t] for t in terms] + [yy])).all(axis=1)
        row = {"parameter": name, "unit": unit, "column": column, "terms": terms,
               "coefficients": dict(zip(["intercept"] + terms, map(float, b))), "ln_sd": sd, "n_datasets": n,
               "n_studies": int(len(np.unique(gg[complete]))),
               "rmse_marginal": cv_rmse(f, yy, None, gg), "rmse_mean": cv_rmse(f, yy, [], gg),
               "rmse_conditional": rmse_cond,
               "rmse_single": {t: cv_rmse(f, yy, [t], gg) for t in TERMS}}
        row["rmse_nested"] = nested_rmse(f, yy, gg, list(TERMS)) if nested else None
        row["shipped"] = bool(terms) and row["rmse_nested"] is not None and (
            row["rmse_nested"] < (1 - MIN_GAIN) * min(row["rmse_marginal"], row["rmse_mean"]))
        out.append(row)
    return out


def conditional_rows(analysis: list[dict]) -> list[dict]:
    """The rows of ``conditional_priors.csv``: the shipped regressions, one row per term."""
    rows = []
    for a in analysis:
        if not a["shipped"]:
            continue
        for term, coef in a["coefficients"].items():
            rows.append({"parameter": a["parameter"], "term": term, "coefficient": f"{coef:.6g}",
                         "ln_sd": f"{max(a['ln_sd'], 0.5):.4f}", "unit": a["unit"], "n_datasets": a["n_datasets"],
                         "n_studies": a["n_studies"],
                         **{f"loso_rmse_{k}": f"{a[f'rmse_{k}']:.4f}" for k in ("marginal", "mean", "conditional",
                                                                                   "nested")},
                         "source": CONDITIONAL_SOURCE.format(n=a["n_datasets"], k=a["n_studies"])})
    return rows


def print_analysis(analysis: list[dict]) -> None:
    """The held-out figures, one line per parameter."""
    print("leave-study-out RMSE of ln(parameter) (bundled studies left out): marginal median | mean | "
          "regression (selected) | nested (selection re-run per held-out study) -> shipped")
    for a in analysis:
        coef = ", ".join(f"{t} {b:+.4g}" for t, b in a["coefficients"].items())
        nested = "n/a" if a["rmse_nested"] is None else f"{a['rmse_nested']:.3f}"
        print(f"  {a['parameter']:<16} {a['rmse_marginal']:.3f} | {a['rmse_mean']:.3f} | {a['rmse_conditional']:.3f} "
              f"{a['terms'] or '[]'} | {nested} -> {'shipped' if a['shipped'] else 'marginal'}; [{coef}], "
              f"residual SD {a['ln_sd']:.3f}, n {a['n_datasets']}")
        print("      single terms: " + ", ".join(f"{t} {v:.3f}" for t, v in a["rmse_single"].items()))


def write_conditional(rows: list[dict]) -> None:
    """Write the conditional table."""
    with open(CONDITIONAL_OUT, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=CONDITIONAL_FIELDS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {CONDITIONAL_OUT}")


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    workers = 2
    if "--workers" in argv:
        i = argv.index("--workers")
        workers = int(argv[i + 1])
        del argv[i:i + 2]
    with_mps = "--with-mps" in argv
    argv = [a for a in argv if a != "--with-mps"]
    raw = Path(argv[0]) if argv else RAW
    rows = table(raw)
    if with_mps:
        fits = mps_fits(raw, workers)
        summarise_fits(fits)
        rows += mps_table(fits)
    write_table(rows)
    analysis = conditional_analysis(raw)
    print_analysis(analysis)
    write_conditional(conditional_rows(analysis))
    return 0


def write_table(rows: list[dict]) -> None:
    """Write ``rows`` to the bundled CSV and print them."""
    with open(OUT, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=FIELDS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    for r in rows:
        print(f"{r['parameter']:<16} median {r['median']:<10} ln-SD {r['ln_sd']:<8} {r['unit']:<14} n {r['n_datasets']}")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    raise SystemExit(main())
