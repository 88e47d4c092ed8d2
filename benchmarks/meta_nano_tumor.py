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

DE24 and DE168 are the tumour %ID averaged over 0–24 and 0–168 h (nanopk.delivery):
the database's stored values follow the average of the measured curve, not its value
at 24 or 168 h (printed below, and tests/test_meta.py).

Both priors of nanopk.meta are run (``--prior both``, the default), because the median
DE168 depends on which one extrapolates the 95 % of datasets that end by 72 h:

- ``published``: the population of tumour parameters Chou et al. 2023 fitted to these
  datasets (the assumption behind the published medians);
- ``empirical``: the retention the 20 datasets observed to 168 h show.

The held-out check at the end decides between them on data: each of those 20 datasets is
cut to its points up to 24 h (and 72 h), fitted with either prior (the empirical one
rebuilt without that dataset), and its measured tumour %ID at 168 h and average over
0–168 h are predicted.

Usage::

    PYTHONPATH=src python benchmarks/meta_nano_tumor.py [--raw DIR] [--workers 2]
        [--prior both|empirical|published] [--scheduler tcp://HOST:8786] [--store meta.sqlite] [--keep]
        [--no-holdout]

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


def _measured(item, t_end: float) -> tuple[float, float] | None:
    """(measured tumour %ID at ``t_end``, its trapezoidal average over 0–``t_end``), with
    nothing in the tumour at injection; ``None`` without a positive point at ``t_end``."""
    import numpy as np

    from nanopk.delivery import time_average

    t = np.asarray(item.times_h, float)
    y = np.asarray(item.tumour_pct_id, float)
    at = np.isclose(t, t_end)
    if not at.any() or not y[at][0] > 0:
        return None
    return float(y[at][0]), time_average(np.r_[0.0, t], np.r_[0.0, y], t_end)


def _observed_24h_by_class(collection) -> dict:
    """Median measured tumour %ID averaged over 0–24 h per class, over datasets with a 24 h point."""
    import numpy as np

    groups: dict = {}
    for it in collection:
        measured = _measured(it, 24.0)
        if measured is None:
            continue
        d = it.descriptors
        keys = {"np_type": d.get("summary_type") or d.get("type"), "material": d.get("material"),
                "targeting": d.get("targeting")}
        for cls, level in keys.items():
            groups.setdefault((cls, level), []).append(measured[1])
    return {k: float(np.median(v)) for k, v in groups.items()}


def _versus_measured(collection, summary) -> None:
    """Fitted values against the measurements at 24/168 h: the amount at that time, and
    the average over 0–24/0–168 h (DE) beside the database's DE."""
    import numpy as np

    fitted = {r["id"]: r for r in summary["datasets"]}

    def line(what, obs, ours, pub=None):
        o, f = np.log10(obs), np.log10(ours)
        ss = np.sum((o - o.mean()) ** 2)
        text = (f"  {what}: median measured {10 ** np.median(o):.3f}, nanopk {10 ** np.median(f):.3f} "
                f"(R² log10 {1 - np.sum((f - o) ** 2) / ss:.2f})")
        if pub is not None:
            p = np.log10(pub)
            text += f", database {10 ** np.median(p):.3f} (R² {1 - np.sum((p - o) ** 2) / ss:.2f})"
        print(text)

    for t, de, amount in ((24.0, "DE24", "tumour_24h"), (168.0, "DE168", "tumour_168h")):
        rows = []
        for it in collection:
            measured, row = _measured(it, t), fitted.get(it.id)
            if measured and row and row.get(de) and row.get(amount) and it.published.get(de):
                rows.append((*measured, row[amount], row[de], it.published[de]))
        if len(rows) < 3:
            continue
        at, avg, our_at, our_de, pub_de = (np.asarray(c) for c in zip(*rows))
        print(f"Against the {len(rows)} datasets measured at {t:g} h:")
        line(f"tumour %ID at {t:g} h", at, our_at)
        line(f"{de} (average over 0–{t:g} h, trapezoids on the measurements)", avg, our_de, pub_de)


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


def _held_out_long_studies(collection, model_name: str, cuts=(24.0, 72.0)) -> None:
    """How well each prior extrapolates, on the datasets observed to 168 h.

    Each is cut to its points up to ``cut`` h and fitted with the published prior, and
    with an empirical prior rebuilt from the *other* long datasets (leave one out); the
    prediction is scored against the measured tumour %ID at 168 h and the measured
    average over 0–168 h (median |log10 ratio| and median signed log10 ratio).
    """
    import dataclasses

    import numpy as np

    from nanopk.delivery import pk_metrics
    from nanopk.meta.runner import MetaFitSettings, _dataset_params, empirical_prior, fit_item
    from nanopk.spec import load_model

    settings = MetaFitSettings(model=model_name)
    model = load_model(model_name)
    measured = {it.id: m for it in collection if (m := _measured(it, 168.0))}
    long = [it for it in collection if it.id in measured]
    full = {it.id: fit_item(it, settings, model) for it in long}
    choices = {}  # per dataset, the same for every cut: the published prior, and the others' empirical one
    for it in long:
        prior, sigma, _ = empirical_prior([r for k, r in full.items() if k != it.id], settings.vary)
        choices[it.id] = {"published": settings,
                          "empirical": dataclasses.replace(settings, prior=prior, sigma_log=sigma or settings.sigma_log)}
    print(f"\nHeld out: the {len(long)} datasets measured at 168 h, cut and extrapolated "
          "(median |log10 ratio| to the measurement; signed median in brackets)")
    for cut in cuts:
        scores: dict = {"published": [], "empirical": []}
        for it in long:
            keep = np.asarray(it.times_h, float) <= cut
            short = dataclasses.replace(it, times_h=tuple(np.asarray(it.times_h)[keep]),
                                        tumour_pct_id=tuple(np.asarray(it.tumour_pct_id)[keep]))
            at, avg = measured[it.id]
            for name, chosen in choices[it.id].items():
                row = fit_item(short, chosen, model)
                if row["status"] != "ok":
                    continue
                params = {k: v for k, v in _dataset_params(model, it, chosen).items() if k not in chosen.vary}
                params.update(row["params"])
                m = pk_metrics(model, params, blood_states=False)
                scores[name].append((np.log10(m["tumour_168h"] / at), np.log10(m["DE168"] / avg)))
        for name, rows in scores.items():
            e = np.asarray(rows)
            print(f"  data to {cut:g} h, {name:<9} prior (n={len(e)}): tumour %ID at 168 h "
                  f"{np.median(np.abs(e[:, 0])):.3f} ({np.median(e[:, 0]):+.3f}); DE168 "
                  f"{np.median(np.abs(e[:, 1])):.3f} ({np.median(e[:, 1]):+.3f})")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--raw", default=str(REPO.parent / "shared" / "datasets" / "raw"),
                        help="folder holding the Nano-Tumor Database workbooks (searched recursively)")
    parser.add_argument("--model", default="mouse_tumour")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--scheduler", default=None, help="Dask scheduler address (default: local processes)")
    parser.add_argument("--prior", default="both", choices=["both", "empirical", "published"])
    parser.add_argument("--store", default=str(Path(tempfile.gettempdir()) / "nanopk_meta_nano_tumor.sqlite"),
                        help="results store (with --prior both, one per prior: NAME.empirical.sqlite, ...)")
    parser.add_argument("--informative-h", type=float, default=168.0,
                        help="empirical prior: datasets observed to at least this time (h) are informative")
    parser.add_argument("--keep", action="store_true", help="resume from an existing store instead of starting afresh")
    parser.add_argument("--json", default=None, help="also write the summary as JSON here")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--no-holdout", action="store_true", help="skip the held-out check of the two priors")
    args = parser.parse_args(argv)

    from nanopk.meta import read_nano_tumor_db

    t0 = time.perf_counter()
    collection = read_nano_tumor_db(args.raw)
    t_read = time.perf_counter() - t0
    print(f"\nnanopk meta-analysis of the Nano-Tumor Database ({len(collection)} datasets, read in {t_read:.1f} s)")
    priors = ("published", "empirical") if args.prior == "both" else (args.prior,)
    observed = _observed_24h_by_class(collection)
    results = {}
    for prior in priors:
        store = Path(args.store)
        if len(priors) > 1:
            store = store.with_suffix(f".{prior}{store.suffix}")
        results[prior] = _run_and_report(collection, args, prior, store, observed)
    if len(priors) > 1:
        print("\nBoth priors:")
        print(f"{'metric':<8} {'target':>8} " + " ".join(f"{p + ' prior':>16}" for p in priors))
        for m, (ref, tol) in TARGETS.items():
            cells = " ".join(f"{results[p][1]['medians'][m]:>16.3f}" for p in priors)
            print(f"{m:<8} {ref:>8.2f} {cells}")
    if not args.no_holdout:
        _held_out_long_studies(collection, args.model)
    _published_parameters_in_nanopk(collection, args.model)
    if args.json:
        Path(args.json).write_text(json.dumps({p: {"run": r, "summary": s} for p, (r, s) in results.items()},
                                              indent=2, default=str) + "\n")
    return 0


def _run_and_report(collection, args, prior: str, store: Path, observed: dict):
    """Fit every dataset with ``prior`` into ``store``; print the medians against the targets
    (``observed``: the measured DE24 by class, from :func:`_observed_24h_by_class`)."""
    from nanopk.meta import run_meta, summarise

    if store.exists() and not args.keep:
        store.unlink()
    run = run_meta(collection, model=args.model, scheduler=args.scheduler, store=store, workers=args.workers,
                   progress=not args.no_progress, prior=prior, informative_t_h=args.informative_h)
    s = summarise(store)
    print(f"\n=== model {run['model']}, prior {run['prior']}"
          + (f" (from {run['n_informative']} datasets observed to >= {args.informative_h:g} h; sigma_log {run['sigma_log']:.3f})"
             if run["prior"] == "empirical" else " (Chou et al. 2023's fitted population)"))
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
    print("\nDE24 median by class (%ID); 'observed' = median of the measured average over 0–24 h (no model)")
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
    return run, s


if __name__ == "__main__":
    raise SystemExit(main())
