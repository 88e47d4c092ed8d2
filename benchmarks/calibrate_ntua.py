"""Calibrate mouse_tumour_full's particle → parameter constants on the NTUA database and validate by study.

Run from the repository root::

    .venv/bin/python benchmarks/calibrate_ntua.py [--folds 5] [--workers N | --scheduler tcp://host:8786]
                                                 [--store calibrate.sqlite] [--max-nfev 12] [--write]

It calls :func:`nanopk.calibrate.validate.run_calibration` (read the NTUA workbook in
``../shared/datasets/raw``; calibrate on every IV mouse study but the bundled ones;
grouped K-fold by study against the uncalibrated model and the null predictor; score the
bundled studies; before/after anchors), prints the markdown report, and with
``--write`` stores the record in ``src/nanopk/calibrate/calibrated.json`` (package data)
and the report in ``CALIBRATION.md`` between the ``<!-- results -->`` markers.  With
``--store`` every evaluation is kept in that SQLite file, so a killed run resumes (the
same command) to the same numbers; ``--scheduler`` runs the simulations on Dask.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--database", default=None, help="NMs_Database.xlsx (default: ../shared/datasets/raw/ntua-...)")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--workers", type=int, default=None, help="local processes per evaluation (default: every core)")
    ap.add_argument("--scheduler", help="Dask scheduler address (tcp://host:8786) instead of local processes")
    ap.add_argument("--store", help="SQLite store of every evaluation, to resume an interrupted run")
    ap.add_argument("--overwrite", action="store_true", help="discard what --store holds first")
    ap.add_argument("--max-nfev", type=int, default=8)
    ap.add_argument("--em-rounds", type=int, default=2)
    ap.add_argument("--cv-max-nfev", type=int, default=5)
    ap.add_argument("--cv-em-rounds", type=int, default=1)
    ap.add_argument("--checkpoint", help="pickle the fits and predictions here before the report is made")
    ap.add_argument("--write", action="store_true", help="write calibrated.json and CALIBRATION.md's results")
    args = ap.parse_args(argv)

    from nanopk.calibrate.store import save_calibration
    from nanopk.calibrate.validate import run_calibration

    command = ".venv/bin/python benchmarks/calibrate_ntua.py " + " ".join(sys.argv[1:] if argv is None else argv)
    record = run_calibration(args.database, folds=args.folds, workers=args.workers, max_nfev=args.max_nfev,
                             em_rounds=args.em_rounds, cv_max_nfev=args.cv_max_nfev, cv_em_rounds=args.cv_em_rounds,
                             command=command.strip(), checkpoint=args.checkpoint, log=lambda *a, **k: print(*a, **{**k, "flush": True}),
                             scheduler=args.scheduler, store=args.store, overwrite=args.overwrite)
    print(record["markdown"])
    if args.write:
        text = record["markdown"]
        save_calibration({k: v for k, v in record.items() if k != "markdown"})
        md = ROOT / "CALIBRATION.md"
        doc = md.read_text() if md.exists() else "<!-- results -->\n<!-- /results -->\n"
        head, _, rest = doc.partition("<!-- results -->")
        _, _, tail = rest.partition("<!-- /results -->")
        md.write_text(head + "<!-- results -->\n" + text + "\n<!-- /results -->" + tail)
        print(f"wrote {md} and src/nanopk/calibrate/calibrated.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
