"""``nanopk calibrate`` and ``nanopk predict`` (registered by :func:`add_parsers` in :mod:`nanopk.cli`).

    nanopk calibrate [--database PATH] [--folds K] [--workers N | --scheduler ADDRESS] [--store FILE.sqlite]
                     [--overwrite] [--output FILE] [--report FILE.md]
    nanopk predict --particle material=gold,core_nm=50,coating=PEG,peg_mw=5000 [--dose 1mg/kg]
                   [--times 1,4,24,168] [--species mouse] [--body-weight 20] [--level 0.9]
                   [--calibration FILE] [--json FILE]
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from ..errors import NanopkError

__all__ = ["add_parsers", "cmd_calibrate", "cmd_predict"]


def _writable(option: str, value: str | None) -> None:
    if not value:
        return
    path = Path(value)
    if path.is_dir():
        raise NanopkError(f"{option} {value}: is a folder; give a file name, e.g. {path / 'calibration.json'}")
    if not path.parent.exists():
        raise NanopkError(f"{option} {value}: the folder {str(path.parent)!r} does not exist; create it or choose another path")
    if not os.access(path.parent, os.W_OK):
        raise NanopkError(f"{option} {value}: the folder {str(path.parent)!r} is not writable; choose another path")


def cmd_calibrate(args) -> int:
    """Calibrate on the NTUA workbook, cross-validate by study, write the record.

    Every evaluation and finished fit goes to the SQLite ``--store`` as it finishes
    (default ``calibrate.sqlite``): after an interruption (Ctrl-C, SIGTERM, a crash) the
    same command resumes and reaches the same numbers, simulating only what was never
    finished.  ``--scheduler tcp://host:8786`` runs the simulations on a Dask cluster
    (the numbers do not change); otherwise ``--workers`` local processes (default:
    every core).  A progress bar per fit is drawn on stderr when it is a terminal.
    Interrupted: exit status 128 + the signal's number.
    """
    from ..parallel import require_distributed
    from .core import CalibrationInterrupted
    from .store import save_calibration
    from .validate import NTUA_DEFAULT, run_calibration

    _writable("--output", args.output)
    _writable("--report", args.report)
    if args.scheduler:
        require_distributed("nanopk calibrate --scheduler", args.scheduler)
    database = Path(args.database) if args.database else NTUA_DEFAULT
    if not database.exists():
        raise NanopkError(f"--database {str(database)!r} does not exist; give the NTUA NMs_Database.xlsx "
                          "(or the folder holding it)")
    if args.folds < 2:
        raise NanopkError(f"--folds {args.folds}: give an integer ≥ 2 (studies are split into K groups)")
    if args.workers is not None and args.workers < 1:
        raise NanopkError(f"--workers {args.workers}: give an integer ≥ 1")
    command = f"nanopk calibrate --database {database} --folds {args.folds} --max-nfev {args.max_nfev}"
    # The settings of benchmarks/calibrate_ntua.py (two EM rounds for the full fit, one per fold).
    try:
        record = run_calibration(database, folds=args.folds, workers=args.workers, max_nfev=args.max_nfev, em_rounds=2,
                                 cv_max_nfev=max(1, round(args.max_nfev * 5 / 8)), cv_em_rounds=1, command=command,
                                 log=lambda *a, **k: print(*a, **{**k, "flush": True}), scheduler=args.scheduler or None,
                                 store=args.store, overwrite=args.overwrite)
    except CalibrationInterrupted as exc:  # the shell's convention for a signal: 128 + its number
        print(f"nanopk calibrate: {exc}", file=sys.stderr)
        return 128 + exc.signum
    print(record["markdown"])
    save_calibration({k: v for k, v in record.items() if k != "markdown"}, args.output)
    print(f"wrote {args.output}")
    if args.report:
        Path(args.report).write_text(record["markdown"] + "\n")
        print(f"wrote {args.report}")
    return 0


def cmd_predict(args) -> int:
    """Organ %ID and DE24/DE168/DEmax of a particle, with the population interval."""
    from .predict import interval_note, predict

    _writable("--json", args.json)
    try:
        times = [float(x) for x in args.times.split(",") if x.strip()]
    except ValueError:
        raise NanopkError(f"--times {args.times!r}: give comma-separated hours after the dose, e.g. 1,4,24,168") from None
    out = predict(args.particle, dose=args.dose, times=times, species=args.species, body_weight_g=args.body_weight,
                  calibration=args.calibration, level=args.level)
    cal = out["calibration"]
    pct = int(round(100 * out["level"]))
    print(f"# {out['model']} with the calibrated constants ({cal.get('benchmark')}, {cal.get('date')}; "
          f"{cal.get('n_studies')} studies, {cal.get('n_points')} points)")
    print(f"# particle {out['particle']}; dose {out['dose_ug']:.4g} µg IV; {out['species']} {out['body_weight_g']:g} g")
    for line in interval_note(out):
        print(f"# {line}")
    organs = list(out["organs"])
    times_h = [r["time_h"] for r in out["organs"][organs[0]]]
    print("organ %ID".ljust(10) + "".join(f"{t:>26g} h" for t in times_h))
    for organ in organs:
        cells = "".join(f"{r['value']:>10.3g} ({r['low']:.2g}–{r['high']:.2g})".rjust(28) for r in out["organs"][organ])
        print(organ.ljust(10) + cells)
    for k, v in out["delivery"].items():
        print(f"{k} = {v['value']:.3g} %ID ({pct} % population interval {v['low']:.3g}–{v['high']:.3g})")
    if args.json:
        from .._json import stamped

        Path(args.json).write_text(json.dumps(stamped(out, out["structure_hash"]), indent=2, default=float) + "\n")
        print(f"wrote {args.json}")
    return 0


def add_parsers(sub) -> None:
    """Add ``calibrate`` and ``predict`` to the ``nanopk`` sub-command parsers."""
    p = sub.add_parser("calibrate", help="fit the particle → parameter constants to the NTUA database, validated by study")
    p.add_argument("--database", help="NTUA NMs_Database.xlsx or its folder (default: ../shared/datasets/raw/ntua-...)")
    p.add_argument("--folds", type=int, default=5, help="K of the leave-study-out cross-validation (default 5)")
    p.add_argument("--workers", type=int, default=None,
                   help="local worker processes per model evaluation (default: every core)")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help='run the simulations on a Dask cluster, e.g. tcp://host:8786 (needs pip install "nanopk[parallel]")')
    p.add_argument("--store", default="calibrate.sqlite",
                   help="SQLite store of every evaluation: an interrupted run resumes from it (default calibrate.sqlite)")
    p.add_argument("--overwrite", action="store_true",
                   help="discard what --store holds (needed to reuse a store with other settings)")
    p.add_argument("--max-nfev", type=int, default=8,
                   help="least-squares steps of the full fit (default 8; each fold gets 5/8 of it)")
    p.add_argument("--output", default="calibration.json", help="calibration record to write (default calibration.json)")
    p.add_argument("--report", help="also write the markdown report here")
    p.set_defaults(func=cmd_calibrate)

    p = sub.add_parser("predict", help="a priori organ %%ID and DE24/DE168/DEmax of a particle (calibrated constants)",
                       description="A priori organ %ID and DE24/DE168/DEmax of a particle from mouse_tumour_full with "
                                   "the constants calibrated on the NTUA database, as a new study would report them "
                                   "(the model's %ID × 10^μ, μ the studies' mean offset), with the population interval "
                                   "of a new study (90 % by default). Read CALIBRATION.md for how well this predicts "
                                   "studies left out of the calibration.")
    p.add_argument("--particle", required=True,
                   help="e.g. material=gold,core_nm=50,coating=PEG,peg_mw=5000 (Particle field names work too)")
    p.add_argument("--dose", default="1mg/kg", help="IV bolus, e.g. 1mg/kg or 20ug (default 1mg/kg)")
    p.add_argument("--times", default="1,4,24,168", help="hours after the dose (default 1,4,24,168)")
    p.add_argument("--species", default="mouse", help="species (calibrated: mouse)")
    p.add_argument("--body-weight", type=float, default=20.0, help="body weight in g (default 20)")
    p.add_argument("--level", type=float, default=0.9, help="coverage of the population interval (default 0.9)")
    p.add_argument("--calibration", help="a calibration JSON from `nanopk calibrate` (default: the shipped one)")
    p.add_argument("--json", help="write the prediction as JSON")
    p.set_defaults(func=cmd_predict)
