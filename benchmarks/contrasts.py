"""Within-study contrasts on the NTUA database: does mouse_tumour_full follow the particle?

    .venv/bin/python benchmarks/contrasts.py [--database NMs_Database.xlsx] [--out benchmarks/CONTRASTS.md]

Pairs every two instances of one study at their common organ × time points
(:mod:`nanopk.calibrate.contrasts`), so the lab's own offset cancels, and scores the
model's predicted ratios — with its default (uncalibrated) constants and with the
calibrated ones (``calibrated.json``) — beside "no effect".  Also the size elasticity
d log10 %ID / d log10 core diameter per organ, observed and predicted.  The calibrated
constants were estimated on these studies' points (not on their ratios) except the bundled
studies, which are held out of the calibration; the table says which rows are which.
Writes the markdown table to ``--out`` and prints it.
"""
from __future__ import annotations

import argparse
import math
import sys
import time
import warnings
from pathlib import Path


HERE = Path(__file__).resolve().parent


def main(argv=None) -> int:
    from nanopk.calibrate import InstanceSimulator, calibration_points
    from nanopk.calibrate.contrasts import contrast_scores, size_elasticity, within_study_contrasts
    from nanopk.calibrate.data import is_held_out
    from nanopk.calibrate.store import calibrated_values
    from nanopk.calibrate.validate import NTUA_DEFAULT
    from nanopk.meta.ntua import read_ntua_database

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--database", default=str(NTUA_DEFAULT))
    ap.add_argument("--out", default=str(HERE / "CONTRASTS.md"))
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the workbook's openpyxl style warnings
        collection, _ = read_ntua_database(args.database, assume_body_weight_g=20)
    inst, pts, refused = calibration_points(collection, exclude_held_out=False)
    sim = InstanceSimulator(inst, pts, model="mouse_tumour_full", workers=1)
    preds = {"uncalibrated": sim.predict_log10({}), "calibrated": sim.predict_log10(calibrated_values())}
    rows = within_study_contrasts(inst, pts, preds)
    held_names = {ds.name for ds in collection if is_held_out(ds)}
    held = set(inst.loc[inst["name"].isin(held_names), "study"])
    rows["held_out"] = rows["study"].isin(held)
    lines = ["# Within-study contrasts: mouse_tumour_full on the NTUA database", "",
             f"Written by `benchmarks/contrasts.py` in {time.perf_counter() - t0:.0f} s. {len(inst)} IV mouse instances "
             f"of {inst['study'].nunique()} studies; {len(rows)} ratios of two instances of one study at a common organ "
             f"and time ({rows['study'].nunique()} studies). A ratio is log10(y_B / y_A); 'within 2×' is "
             "|predicted − observed| < log10 2; 'sign' is the share of ratios that differ by more than 2-fold in the "
             "data whose direction the predictor gets right. 'no effect' predicts ratio 1. The calibrated constants "
             "were fitted to these studies' points (not to their ratios), except the bundled studies held out of the "
             f"calibration ({', '.join(sorted(held)) or 'none'}).", ""]
    for title, sel in (("All contrasts, by what differs", rows), ("Held-out (bundled) studies only", rows[rows["held_out"]])):
        if not len(sel):
            continue
        table = contrast_scores(sel, list(preds))
        lines += [f"## {title}", "", "| what differs | ratios | studies | > 2-fold in data | within 2×: uncal / cal / no effect "
                  "| sign: uncal / cal |", "|---|---|---|---|---|---|"]
        for kind, g in table.groupby("kind", sort=True):
            r = g.set_index("predictor")
            lines.append(f"| {kind} | {int(r.loc['no effect', 'n'])} | {int(r.loc['no effect', 'studies'])} | "
                         f"{int(r.loc['no effect', 'n_differ'])} | {r.loc['uncalibrated', 'within2']:.2f} / "
                         f"{r.loc['calibrated', 'within2']:.2f} / {r.loc['no effect', 'within2']:.2f} | "
                         f"{_f(r.loc['uncalibrated', 'sign'])} / {_f(r.loc['calibrated', 'sign'])} |")
        lines.append("")
    obs = size_elasticity(rows, inst).set_index("tissue")
    unc = size_elasticity(rows, inst, column="uncalibrated").set_index("tissue")
    cal = size_elasticity(rows, inst, column="calibrated").set_index("tissue")
    lines += ["## Size elasticity d log10 %ID / d log10 core diameter (pairs differing only in size)", "",
              "| organ | ratios | studies | observed [90 % bootstrap over studies] | uncalibrated | calibrated |",
              "|---|---|---|---|---|---|"]
    for tissue, r in obs.iterrows():
        lines.append(f"| {tissue} | {int(r['n'])} | {int(r['studies'])} | {r['beta']:+.2f} [{_f(r['low'], '+.2f')}, "
                     f"{_f(r['high'], '+.2f')}] | {unc.loc[tissue, 'beta']:+.2f} | {cal.loc[tissue, 'beta']:+.2f} |")
    text = "\n".join(lines) + "\n"
    Path(args.out).write_text(text)
    print(text)
    return 0


def _f(x, fmt: str = ".2f") -> str:
    return "–" if x is None or (isinstance(x, float) and not math.isfinite(x)) else format(x, fmt)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
