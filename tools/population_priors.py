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
          "378 Nano-Tumor Database datasets, UFPBPK/Nano-AI-PBPK-G1 Model_dataset.xlsx "
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

    rows = rows_from_workbook(raw / WORKBOOK)
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
