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

Only the tumour sub-model has a database spread.  The mononuclear-phagocyte (MPS) uptake
parameters, the partition and permeability coefficients of the other organs and the
excretion rates have no between-study distribution in any public table nanopk reads, so
they get no row: :func:`nanopk.fit.priors.population_priors` lists them as "no prior" and
the fit estimates them by maximum likelihood.
"""
from __future__ import annotations

import csv
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
FIELDS = ["parameter", "median", "ln_sd", "ln_sd_raw", "unit", "n_datasets", "database_column", "source"]


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
                    "n_datasets": len(logs), "database_column": column, "source": SOURCE})
    return out


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    raw = Path(argv[0]) if argv else RAW
    rows = table(raw)
    with open(OUT, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=FIELDS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    for r in rows:
        print(f"{r['parameter']:<16} median {r['median']:<10} ln-SD {r['ln_sd']:<8} {r['unit']:<14} n {r['n_datasets']}")
    print(f"wrote {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
