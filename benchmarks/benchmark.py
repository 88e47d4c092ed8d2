"""Side-by-side benchmark: nanopk (compiled CVODE, reference LSODA) vs libroadrunner.

Run from the repository root:

    python benchmarks/benchmark.py [--runs 200] [--out benchmarks/RESULTS.md]

For each model, libroadrunner loads nanopk's own SBML export of the same model, and the
three engines are timed *interleaved* (one run of each in turn), so machine noise hits
them alike; medians and ratios to libroadrunner are reported, not absolute times alone.
Same tolerances for all: rtol 1e-6, atol 1e-9 × dose, 0–168 h, 50 output points.
(nanopk asks CVODE for a quarter of the requested tolerance, see
nanopk.backends.cvode.TOLERANCE_SAFETY, so it does more work than libroadrunner here.)
"""
from __future__ import annotations

import argparse
import functools
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import nanopk
from nanopk.compile import compile_model

RTOL, ATOL = 1e-6, 1e-9
TIMES = np.linspace(0.0, 168.0, 50)


def roadrunner_for(model):
    import roadrunner

    from nanopk.export.sbml import to_sbml

    r = roadrunner.RoadRunner(to_sbml(model))
    r.integrator.relative_tolerance = RTOL
    r.integrator.absolute_tolerance = ATOL * model.parameters["dose"].value
    r.timeCourseSelections = ["time"] + model.state_names
    return r


def run_roadrunner(r):
    r.resetAll()
    return r.simulate(0.0, 168.0, len(TIMES))


def median_ms(samples):
    return 1000 * statistics.median(samples)


def interleaved_medians(calls, runs):
    """Median ms of each zero-argument call over ``runs`` rounds, each round timing every
    call once in turn (after one warm-up each), so that the machine's drift hits all
    sizes alike and cannot fake a slope."""
    for call in calls:
        call()
    samples = [[] for _ in calls]
    for _ in range(runs):
        for k, call in enumerate(calls):
            a = time.perf_counter()
            call()
            samples[k].append(time.perf_counter() - a)
    return [median_ms(s) for s in samples]


def _simulation(model, times=TIMES):
    return lambda: model.simulate(times, rtol=RTOL, atol=ATOL)


def bench_model(name, runs, particle=None):
    model = nanopk.load_model(name, particle=particle)
    fast, ref = compile_model(model, "cvode"), compile_model(model, "reference")
    r = roadrunner_for(model)
    # Warm-up, and the trajectories compared.
    sim_fast = model.simulate(TIMES, backend="cvode", rtol=RTOL, atol=ATOL, states=True)
    rr = np.asarray(run_roadrunner(r))
    p = model.parameter_vector()
    obs_rr = fast.observe(rr[:, 0], rr[:, 1:], p)
    obs_fast = sim_fast[list(model.observables)].to_numpy()
    scale = np.abs(obs_rr) > 1e-4  # %ID values above 1e-6 of the dose
    max_rel = float(np.max(np.abs(obs_fast - obs_rr)[scale] / np.abs(obs_rr)[scale]))
    t_fast, t_ref, t_rr = [], [], []
    ref_runs = max(20, runs // 10) if len(model.states) > 40 else runs
    for i in range(runs):
        a = time.perf_counter()
        model.simulate(TIMES, backend="cvode", rtol=RTOL, atol=ATOL)
        b = time.perf_counter()
        run_roadrunner(r)
        c = time.perf_counter()
        t_fast.append(b - a)
        t_rr.append(c - b)
        if i < ref_runs:
            d = time.perf_counter()
            model.simulate(TIMES, backend="reference", rtol=RTOL, atol=ATOL)
            t_ref.append(time.perf_counter() - d)
    return {
        "model": name if particle is None else f"{name} ({particle})",
        "states": len(model.states),
        "newton": sim_fast.attrs["linear_solver"],
        "fast_ms": median_ms(t_fast),
        "ref_ms": median_ms(t_ref),
        "rr_ms": median_ms(t_rr),
        "ratio_fast": median_ms(t_fast) / median_ms(t_rr),
        "ratio_ref": median_ms(t_ref) / median_ms(t_rr),
        "max_rel": max_rel,
        "runs": runs,
        "ref_runs": ref_runs,
    }


#: Processes timed per cell of the compile-and-load table (one process is one sample, and
#: a single sample on a shared machine swings by half).
LOAD_REPEATS = 5


def compile_and_load_times(name, repeats=LOAD_REPEATS):
    """Medians over ``repeats`` fresh caches of: importing nanopk and the first call
    (compiling), then importing and loading the cached model in a second process; and,
    in a third empty cache, the first call with the shipped unit-check verdicts ignored,
    so that pint is imported and the units are checked as for a model of the same size
    that nanopk does not ship (a lab's own model)."""
    def code(ignore_verdicts: bool) -> str:
        patch = "import nanopk.unitcheck as U; U.shipped_unit_signatures = frozenset;" if ignore_verdicts else ""
        return ("import time; t0=time.perf_counter(); import nanopk; t1=time.perf_counter();" + patch +
                f"m=nanopk.load_model({name!r}); m.compile('cvode'); m.simulate([1.0]); t2=time.perf_counter();"
                "print(t1-t0, t2-t1)")

    def run(cache, ignore_verdicts=False):
        env = dict(os.environ, NANOPK_CACHE_DIR=cache)
        return subprocess.run([sys.executable, "-c", code(ignore_verdicts)], env=env, capture_output=True, text=True,
                              check=True).stdout.split()

    samples = []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as cache, tempfile.TemporaryDirectory() as other:
            first, second = run(cache), run(cache)
            third = run(other, ignore_verdicts=True)
        samples.append([float(x) for x in first + second + third[1:]])
    return tuple(statistics.median(column) for column in zip(*samples))


def scaling_output_points(name="mouse_pbpk", runs=100):
    model = nanopk.load_model(name)
    sizes = (10, 50, 200, 1000, 5000)
    return list(zip(sizes, interleaved_medians([_simulation(model, np.linspace(0, 168, n)) for n in sizes], runs)))


def scaling_states(runs=100):
    """Time vs number of states through the aggregation size classes K (aggregation_plasma),
    nanopk and then libroadrunner on the same models."""
    spec = nanopk.spec.model_path("aggregation_plasma") if "aggregation_plasma" in nanopk.list_models() else None
    if spec is None:
        return []
    text = spec.read_text()
    import re

    if not re.search(r"^K\s*=\s*\d+", text, re.M):
        return []
    models = []
    for k in (2, 5, 10, 20, 50):  # the spec needs K ≥ 2
        path = Path(tempfile.mkdtemp()) / f"agg_{k}.toml"
        path.write_text(re.sub(r"^K\s*=\s*\d+", f"K = {k}", text, flags=re.M))
        models.append(nanopk.load_model(path))
    # One engine at a time, its sizes interleaved within each round (drift cannot fake a
    # slope): alternating the engines run by run left every small simulation starting
    # from caches the other engine's large one had just filled, doubling its time.
    ours = interleaved_medians([_simulation(m) for m in models], runs)
    theirs = interleaved_medians([functools.partial(run_roadrunner, roadrunner_for(m)) for m in models], runs)
    stats = [m.simulate(TIMES, rtol=RTOL, atol=ATOL).attrs for m in models]
    return [(len(m.states), r["linear_solver"], r["n_steps"], a, b) for m, r, a, b in zip(models, stats, ours, theirs)]


FIT_VARY = ["Kmax_liver", "K50_liver", "Kmax_spleen", "K50_spleen", "P_spleen", "Kmax_lung"]


def fit_timings(repeats=5):
    """6-parameter fit of mouse_pbpk to Cho 2010 13 nm: exact (sensitivity) vs FD gradients.

    Warm timings (the sensitivity library is compiled by a first, untimed fit); the
    'tight reference' is the finite-difference fit with solver rtol 1e-10.
    """
    import warnings

    from nanopk.fit import FitWarning

    model = nanopk.load_model("mouse_pbpk")
    data = nanopk.read_dataset("cho2010_peg_au_13nm")
    rows = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitWarning)
        tight = nanopk.fit(model, data, vary=FIT_VARY, jacobian="fd", rtol=1e-10)
        # workers=None: one thread per core for the finite-difference columns (the default);
        # workers=1: the same fit on one thread, for comparison.
        for jac, workers in (("fd", None), ("fd", 1), ("sensitivity", None)):
            nanopk.fit(model, data, vary=FIT_VARY, jacobian=jac, workers=workers)
            walls, result = [], None
            for _ in range(repeats):
                a = time.perf_counter()
                result = nanopk.fit(model, data, vary=FIT_VARY, jacobian=jac, workers=workers)
                walls.append(time.perf_counter() - a)
            worst = max(abs(result.values[n] - tight.values[n]) / abs(tight.values[n]) for n in FIT_VARY)
            threads = "1 thread" if workers == 1 else f"{min(os.cpu_count() or 1, len(FIT_VARY))} threads"
            # The sensitivity Jacobian is one augmented solve per dataset: one thread here.
            label = f"{jac} ({threads})" if jac == "fd" else f"{jac} (1 thread)"
            rows.append((label, result.options["rtol"], statistics.median(walls), result.metrics["n_evaluations"],
                         result.metrics["chisqr"], worst, result.success))
    return rows, tight.metrics["chisqr"]


def _slope(rows, what: str) -> str:
    """Log-log slope of cost against size between the two largest sizes (1 = linear)."""
    (n1, t1), (n2, t2) = rows[-2], rows[-1]
    return (f"Log-log slope between {n1} and {n2} {what}: {math.log(t2 / t1) / math.log(n2 / n1):.2f} "
            "(1 = cost proportional to size).")


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--out", default="benchmarks/RESULTS.md")
    args = parser.parse_args(argv)
    available = nanopk.list_models()
    lines = [
        "# nanopk benchmark results",
        "",
        f"Command: `python benchmarks/benchmark.py --runs {args.runs}` (from the repository root).",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, {platform.platform()}, Python {platform.python_version()}.",
        f"Tolerances: rtol {RTOL:g}, atol {ATOL:g} × dose; 0–168 h, {len(TIMES)} output points; runs interleaved.",
        "",
        "## One simulation: nanopk vs libroadrunner on nanopk's SBML of the same model",
        "",
        "| model | states | Newton systems | nanopk CVODE (ms) | nanopk reference (ms) | libroadrunner (ms) | CVODE / rr | reference / rr | max rel. diff vs rr |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name in ("mouse_pbpk", "mouse_tumour", "mouse_tumour_full"):
        if name not in available:
            lines.append(f"| {name} | – | not in models/ at the time of this run | | | | | | |")
            continue
        row = bench_model(name, args.runs)
        lines.append(
            f"| {row['model']} | {row['states']} | {row['newton']} | {row['fast_ms']:.3f} | {row['ref_ms']:.2f} | {row['rr_ms']:.3f} | "
            f"**{row['ratio_fast']:.2f}×** | {row['ratio_ref']:.1f}× | {row['max_rel']:.1e} |"
        )
        print(lines[-1], flush=True)
    lines += ["", f"Medians of {args.runs} interleaved runs (reference: at least 20). Newton systems: how nanopk's "
              "CVODE solved them, with the model's generated sparse LU (`nanopk.backends.sparse_lu`) or SUNDIALS' "
              "dense LU. libroadrunner runs with its default integrator settings apart from the tolerances.", "", "## Compile and load", "",
              f"Medians of {LOAD_REPEATS} fresh caches (each: a first process that compiles, then a second that loads;"
              " and a third process, in another empty cache, that ignores the unit-check verdicts nanopk ships for its"
              " bundled models, so it imports pint and checks the units as it would for a lab's own model).", "",
              "| model | import nanopk (s) | first call incl. compile, empty cache (s) | second process: import (s) |"
              " second process: load cached + first simulation (s) | first call, empty cache, units checked (s) |",
              "|---|---|---|---|---|---|"]
    for name in ("mouse_pbpk", "mouse_tumour", "mouse_tumour_full"):
        if name in available:
            i1, c1, i2, c2, c3 = compile_and_load_times(name)
            lines.append(f"| {name} | {i1:.2f} | {c1:.2f} | {i2:.2f} | {c2:.3f} | {c3:.2f} |")
            print(lines[-1], flush=True)
    fits, tight_chisqr = fit_timings()
    lines += ["", "## 6-parameter fit of mouse_pbpk to Cho 2010 13 nm (" + ", ".join(FIT_VARY) + ")", "",
              f"Tight reference (finite differences, solver rtol 1e-10): χ² = {tight_chisqr:.6f}.", "",
              "Each fit runs the solver at its Jacobian's default tolerance (`nanopk.fit.core.FIT_TOLERANCES`).", "",
              "| gradient | solver rtol | median wall (s) | model evaluations | final χ² | max rel. parameter diff vs tight | success |",
              "|---|---|---|---|---|---|---|"]
    lines += [f"| {j} | {r:.0e} | {w:.3f} | {n} | {c:.6f} | {d:.1e} | {ok} |" for j, r, w, n, c, d, ok in fits]
    print("\n".join(lines[-len(fits) - 1:]), flush=True)
    lines += ["", "## Cost vs number of output points (mouse_pbpk, CVODE)", "", "| output points | median ms |", "|---|---|"]
    points = scaling_output_points()
    lines += [f"| {n} | {ms:.3f} |" for n, ms in points] + ["", _slope(points, "output points")]
    states = scaling_states()
    lines += ["", "## Cost vs number of states (aggregation size classes, CVODE)", ""]
    if states:
        lines += ["| states | Newton systems | CVODE steps | nanopk median ms | µs per step | libroadrunner median ms | nanopk / rr |",
                  "|---|---|---|---|---|---|---|"]
        lines += [f"| {n} | {ls} | {k} | {ms:.3f} | {1000 * ms / k:.2f} | {rr:.3f} | {ms / rr:.2f}× |" for n, ls, k, ms, rr in states]
        lines += ["", "nanopk: " + _slope([(n, ms) for n, _, _, ms, _ in states], "states"),
                  "libroadrunner: " + _slope([(n, rr) for n, _, _, _, rr in states], "states"),
                  "", "Coagulation couples every size class with every other. nanopk writes it as 2(K − 1) mass "
                  "fluxes through the absorbing class: each class's losses use three moments of the size "
                  "distribution shared by all classes, the gains ~K²/4 pair products "
                  "(`nanopk.mechanisms.aggregation`). The moments make J dense, so from 8 aggregate classes the "
                  "Newton systems are solved by the sparse LU of J's direct part with a rank-3 Woodbury update "
                  "(`nanopk.backends.sparse_lu`), not a dense LU. libroadrunner runs the SBML of the same fluxes. "
                  "The number of CVODE steps changes little with K, so the cost per step carries the growth."]
    else:
        lines.append("aggregation_plasma with a `classes` option was not available at the time of this run.")
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
