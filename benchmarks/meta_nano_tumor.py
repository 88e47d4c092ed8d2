"""Meta-analysis of the Nano-Tumor Database with nanopk, against the published medians.

Fits the tumour sub-model of ``mouse_tumour`` to each of the 378 tumour time courses of
the Nano-Tumor Database (Chou et al., J Control Release 2023;361:53) with the rest of
the body at its defaults, derives DE24, DE168 and DEmax from each fit, and prints the
medians beside the published ones:

- Cheng et al., ACS Nano 2020;14:3075 (PMID 32078303), 376 datasets: median DE24
  0.76 %ID, DE168 0.35 %ID (targets: within ±15 % and ±20 %);
- recomputed from the Nano-Tumor Database summary table (SCIENCE.md §2): DEmax 1.00;
  DE24 by class — inorganic 1.17, organic 0.62, gold 1.23, liposomes 0.29,
  polymeric 0.72, active targeting 0.98, passive 0.71.

Why DE168 is not tuned to 0.35: a scipy transcription of the published model code
(Chou 2023; UFPBPK Nano-AI-PBPK-G1 R code, not bundled), run with each dataset's stored
parameters, reproduces the stored DEmax (median 0.994 vs 0.990) but gives DE168 0.026
against the stored 0.340; the stored DE168 values were not produced by that model, and
on the 20 datasets measured at 168 h they over-predict the measurement (printed below).

Usage::

    PYTHONPATH=src python benchmarks/meta_nano_tumor.py [--raw DIR] [--workers 2]
        [--prior empirical|published] [--scheduler tcp://HOST:8786] [--store meta.sqlite] [--keep]

The raw files are read where they are (default ``../shared/datasets/raw`` next to the
repository); nothing is copied.  Without ``--keep`` the store is started afresh.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

#: Published medians (%ID) and the tolerance each target allows.
TARGETS = {"DE24": (0.76, 0.15), "DE168": (0.35, 0.20), "DEmax": (1.00, None)}
#: DE24 medians by class (SCIENCE.md §2, recomputed from the Nano-ML-AI summary table).
CLASS_DE24 = {("np_type", "inorganic"): 1.17, ("np_type", "organic"): 0.62, ("material", "gold"): 1.23,
              ("material", "liposomes"): 0.29, ("material", "polymeric"): 0.72, ("targeting", "active"): 0.98,
              ("targeting", "passive"): 0.71}


def _observed_24h_by_class(collection) -> dict:
    """Median measured tumour %ID at 24 h per class, over datasets with a 24 h point."""
    import numpy as np

    groups: dict = {}
    for it in collection:
        at = dict(zip(it.times_h, it.tumour_pct_id))
        if 24.0 not in at:
            continue
        d = it.descriptors
        keys = {"np_type": d.get("summary_type") or d.get("type"), "material": d.get("material"),
                "targeting": d.get("targeting")}
        for cls, level in keys.items():
            groups.setdefault((cls, level), []).append(at[24.0])
    return {k: float(np.median(v)) for k, v in groups.items()}


def _versus_measured(collection, summary) -> None:
    """Fitted DE24/DE168 against the tumour %ID measured at 24/168 h, beside the database's values."""
    import numpy as np

    fitted = {r["id"]: r for r in summary["datasets"]}
    for t, m in ((24.0, "DE24"), (168.0, "DE168")):
        obs, ours, pub = [], [], []
        for it in collection:
            at = dict(zip(it.times_h, it.tumour_pct_id))
            row = fitted.get(it.id)
            if t in at and at[t] > 0 and row and row.get(m) and it.published.get(m):
                obs.append(at[t]), ours.append(row[m]), pub.append(it.published[m])
        if len(obs) < 3:
            continue
        o, f, p = (np.log10(np.asarray(x)) for x in (obs, ours, pub))
        ss = np.sum((o - o.mean()) ** 2)
        print(f"Against the {len(obs)} datasets measured at {t:g} h: median measured {10 ** np.median(o):.3f}, "
              f"nanopk {10 ** np.median(f):.3f} (R² log10 {1 - np.sum((f - o) ** 2) / ss:.2f}), "
              f"database {10 ** np.median(p):.3f} (R² {1 - np.sum((p - o) ** 2) / ss:.2f})")


def _published_parameters_in_nanopk(collection, model_name: str) -> None:
    """DE from the database's own fitted tumour parameters, run through nanopk's model.

    Each dataset's KTRES*/PATC/PT/QTC/BVT (Model_dataset.xlsx) with its body weight, tumour
    weight and dose: if nanopk's model were the one that produced the stored DE values,
    the medians would match them.
    """
    import numpy as np

    from nanopk.delivery import pk_metrics
    from nanopk.meta.runner import MetaFitSettings, _dataset_params
    from nanopk.spec import load_model

    model = load_model(model_name)
    names = ("PATC_tumour", "P_tumour", "Kmax_tumour", "K50_tumour", "n_tumour", "Krelease_tumour")
    ours, stored = {m: [] for m in ("DE24", "DE168")}, {m: [] for m in ("DE24", "DE168")}
    for it in collection:
        pub = it.published
        if any(pub.get(k) is None for k in names + ("DE24", "DE168")):
            continue
        params = _dataset_params(model, it, MetaFitSettings(model=model_name, fixed={}))
        for name in names:
            lo, hi = model.parameters[name].bounds
            params[name] = float(np.clip(pub[name], lo, hi))
        params.update({k: pub[c] for k, c in (("f_Q_tumour", "QTC"), ("f_B_tumour", "BVT")) if pub.get(c) is not None})
        m = pk_metrics(model, params, blood_states=False)
        for key in ours:
            ours[key].append(m[key])
            stored[key].append(pub[key])
    if ours["DE24"]:
        print(f"\nThe database's own fitted tumour parameters run through nanopk's {model_name} ({len(ours['DE24'])} datasets): "
              + "; ".join(f"median {k} {np.median(ours[k]):.3f} (stored {np.median(stored[k]):.3f})" for k in ours))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--raw", default=str(REPO.parent / "shared" / "datasets" / "raw"),
                        help="folder holding the Nano-Tumor Database workbooks (searched recursively)")
    parser.add_argument("--model", default="mouse_tumour")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--scheduler", default=None, help="Dask scheduler address (default: local processes)")
    parser.add_argument("--prior", default="empirical", choices=["empirical", "published"])
    parser.add_argument("--store", default=str(Path(tempfile.gettempdir()) / "nanopk_meta_nano_tumor.sqlite"))
    parser.add_argument("--informative-h", type=float, default=168.0,
                        help="empirical prior: datasets observed to at least this time (h) are informative")
    parser.add_argument("--keep", action="store_true", help="resume from an existing store instead of starting afresh")
    parser.add_argument("--json", default=None, help="also write the summary as JSON here")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)

    from nanopk.meta import read_nano_tumor_db, run_meta, summarise

    store = Path(args.store)
    if store.exists() and not args.keep:
        store.unlink()
    t0 = time.perf_counter()
    collection = read_nano_tumor_db(args.raw)
    t_read = time.perf_counter() - t0
    run = run_meta(collection, model=args.model, scheduler=args.scheduler, store=store, workers=args.workers,
                   progress=not args.no_progress, prior=args.prior, informative_t_h=args.informative_h)
    s = summarise(store)

    print(f"\nnanopk meta-analysis of the Nano-Tumor Database ({len(collection)} datasets, read in {t_read:.1f} s)")
    print(f"model {run['model']}, prior {run['prior']}"
          + (f" (from {run['n_informative']} datasets observed to >= {args.informative_h:g} h; sigma_log {run['sigma_log']:.3f})"
             if run["prior"] == "empirical" else ""))
    print(f"executor {run['executor']} with {run['workers']} workers on {os.cpu_count()} cores; "
          f"wall time {run['wall_s']:.1f} s this run, {s['wall_time_s']:.1f} s over all runs of the store")
    print(f"fitted {s['n_ok']} / {s['n_datasets']}; failed {s['n_failed']}; skipped {s['n_skipped']}; "
          f"converged {s['n_converged']} ({100 * s['fraction_converged']:.1f} %)\n")
    print(f"{'metric':<8} {'nanopk':>8} {'published':>10} {'diff':>8}  target")
    for m, (ref, tol) in TARGETS.items():
        v = s["medians"][m]
        diff = v / ref - 1
        verdict = "" if tol is None else (f"±{tol:.0%}: " + ("PASS" if abs(diff) <= tol else "MISS"))
        print(f"{m:<8} {v:>8.3f} {ref:>10.2f} {diff:>+8.1%}  {verdict}")
    pub = s.get("published_medians", {})
    if pub:
        print("(Model_dataset.xlsx's own PBPK-derived values over the same datasets: "
              + ", ".join(f"{k} {v:.3f}" for k, v in pub.items()) + ")")
    observed = _observed_24h_by_class(collection)
    print("\nDE24 median by class (%ID); 'observed' = median of the measured tumour %ID at 24 h (no model)")
    print(f"{'class':<24} {'n':>4} {'nanopk':>8} {'published':>10} {'diff':>8} {'observed':>9}   DE168   DEmax")
    for (cls, level), ref in CLASS_DE24.items():
        e = s["by_class"].get(cls, {}).get(level)
        if e is None:
            print(f"{level:<24}    -")
            continue
        obs = observed.get((cls, level))
        print(f"{level:<24} {e['n']:>4} {e['DE24']:>8.3f} {ref:>10.2f} {e['DE24'] / ref - 1:>+8.1%} "
              f"{obs if obs is None else format(obs, '9.3f')}  {e['DE168']:>6.3f}  {e['DEmax']:>6.3f}")
    agree = s.get("agreement", {})
    if agree:
        print("\nPer dataset, nanopk vs the database's PBPK-derived values: "
              + "; ".join(f"{m}: median ratio {a['median_ratio']:.2f}, R² (log10) {a['r2_log10']:.2f}" for m, a in agree.items()))
    _versus_measured(collection, s)
    _published_parameters_in_nanopk(collection, args.model)
    if args.json:
        Path(args.json).write_text(json.dumps({"run": run, "summary": s}, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
