"""The compiled solve against libroadrunner, and against an earlier build of the same model.

Run from the repository root:

    python benchmarks/c_speed.py [--runs 300] [--models mouse_pbpk mouse_tumour]
                                 [--baseline mouse_pbpk=/path/old.so[,/path/old_sens.so] ...]

For each model: the C solve alone (``CvodeModel.solve``: one call into the library, 0–168 h,
50 outputs, rtol 1e-6, atol 1e-9 × dose), ``nanopk.simulate()`` (the whole Python layer),
the same solve with forward sensitivities to six parameters (:func:`sensitivity_call`),
and libroadrunner on nanopk's SBML export of the model with the same tolerances
(:func:`benchmark.roadrunner_for`), timed *interleaved*: each round runs every engine once
in turn, so the shared machine's noise hits them alike.  Reported: the median times,
their ratio to libroadrunner's, and the median over rounds of each engine's time divided
by libroadrunner's in the same round (a paired ratio; the baseline row divides by the
baseline's time instead).  With ``--baseline NAME=LIB`` a library built earlier for the
same model (say, by the previous C printer: copy it out of ``~/.cache/nanopk`` before
changing the printer) is timed in the same rounds, and the largest relative difference of
its observables from the current build's is printed (values above 1e-6 of the dose).
A second library after a comma is the earlier sensitivity library of the same model and
parameters (``nanopk_<hash>_<key>_s<indices>.so``): its solve is timed and compared too.
"""
from __future__ import annotations

import argparse
import copy
import ctypes
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from benchmark import ATOL, RTOL, TIMES, roadrunner_for, run_roadrunner  # noqa: E402

import nanopk  # noqa: E402
from nanopk.compile import compile_model  # noqa: E402
from nanopk.run import Runner  # noqa: E402


def with_library(compiled, path: str):
    """A copy of the CvodeModel ``compiled`` that calls the library at ``path`` instead."""
    lib = ctypes.CDLL(str(Path(path).resolve()))
    for name in ("nanopk_rhs", "nanopk_jac", "nanopk_solve", "nanopk_observe", "nanopk_observe_many",
                 "nanopk_initial", "nanopk_messages"):
        old = getattr(compiled._lib, name)
        new = getattr(lib, name)
        new.argtypes, new.restype = old.argtypes, old.restype
    other = copy.copy(compiled)
    other._lib = lib
    return other


def solve_call(compiled, model):
    """The C solve that ``model.simulate(TIMES)`` makes: the bolus at t = 0 already in its
    target state (:class:`nanopk.run.Runner`), ``atol × dose`` on the amounts."""
    runner = Runner(model, "cvode")
    p = runner.parameters()
    dose = p[runner.layout.i_dose]
    y0 = compiled.initial_state(p)
    y0[runner.layout.i_target] += dose
    atol = runner.atol(ATOL, dose)
    return lambda: compiled.solve(0.0, y0, p, TIMES, RTOL, atol)


def sensitivity_indices(model, k: int = 6) -> tuple[int, ...]:
    """The first ``k`` parameters with a positive default, bar the dose and the infusion rate
    (the fit's usual candidates: rate constants, capacities, half-times)."""
    names = model.parameter_names
    return tuple(i for i, n in enumerate(names)
                 if n not in ("dose", "infusion_rate") and model.parameters[n].value > 0)[:k]


def sensitivity_call(model, compiled=None):
    """The solve of :func:`solve_call` with y and ∂y/∂p for :func:`sensitivity_indices`
    (the run kernel's sensitivity solve, as a fit with ``jacobian="sensitivity"`` makes);
    with ``compiled``, that backend's libraries (:func:`with_sensitivity_library`)."""
    runner = Runner(model, "cvode")
    if compiled is not None:
        runner.compiled = compiled
    p, indices = runner.parameters(), sensitivity_indices(model)
    return lambda: runner.run(TIMES, p, None, RTOL, ATOL, sensitivities=indices)


def with_sensitivity_library(compiled, model, path: str):
    """A copy of ``compiled`` whose sensitivity solve for :func:`sensitivity_indices` calls
    the library at ``path``."""
    indices = sensitivity_indices(model)
    new = compiled._sensitivity_library(indices)
    lib = ctypes.CDLL(str(Path(path).resolve()))
    for name in ("nanopk_solve_sens", "nanopk_messages"):
        old, fn = getattr(new, name), getattr(lib, name)
        fn.argtypes, fn.restype = old.argtypes, old.restype
    other = copy.copy(compiled)
    other.__dict__["_sens_libs"] = {indices: lib}
    return other


def bench(name: str, runs: int, baseline: str | None):
    model = nanopk.load_model(name)
    compiled = compile_model(model, "cvode")
    rr = roadrunner_for(model)
    calls = {"C solve": solve_call(compiled, model),
             "simulate()": lambda: model.simulate(TIMES, backend="cvode", rtol=RTOL, atol=ATOL),
             "6 sensitivities (run kernel)": sensitivity_call(model),
             "libroadrunner": lambda: run_roadrunner(rr)}
    sens_baseline = None
    if baseline and "," in baseline:
        baseline, sens_baseline = baseline.split(",", 1)
    if baseline:
        old = with_library(compiled, baseline)
        calls["C solve (baseline)"] = solve_call(old, model)
        a, b = calls["C solve"](), calls["C solve (baseline)"]()
        p = Runner(model, "cvode").parameters()
        oa, ob = compiled.observe(TIMES, a.y, p), compiled.observe(TIMES, b.y, p)
        big = np.abs(ob) > 1e-4  # %ID above 1e-6 of the dose
        print(f"{name}: steps {a.n_steps} (baseline {b.n_steps}), f calls {a.n_rhs} ({b.n_rhs}); observables vs baseline: max relative "
              f"difference {np.max(np.abs(oa - ob)[big] / np.abs(ob)[big]):.2e}")
    if sens_baseline:
        calls["6 sensitivities (baseline)"] = sensitivity_call(model, with_sensitivity_library(compiled, model, sens_baseline))
        a, b = calls["6 sensitivities (run kernel)"](), calls["6 sensitivities (baseline)"]()
        big = np.abs(b.y) > 1e-6 * model.parameters["dose"].value
        scale = np.abs(b.s).max(axis=0, keepdims=True)
        print(f"{name}: sensitivity solve steps {a.stats['n_steps']} (baseline {b.stats['n_steps']}); states vs baseline: "
              f"max relative difference {np.max(np.abs(a.y - b.y)[big] / np.abs(b.y)[big]):.2e}; sensitivities: max "
              f"difference / each one's largest magnitude {np.max(np.abs(a.s - b.s) / np.where(scale > 0, scale, 1)):.2e}")
    for call in calls.values():  # warm-up
        call()
    times = {k: [] for k in calls}
    for _ in range(runs):
        for k, call in calls.items():
            t0 = time.perf_counter()
            call()
            times[k].append(time.perf_counter() - t0)
    rr_t = np.array(times["libroadrunner"])
    rows = []
    for k, ts in times.items():
        ts = np.array(ts)
        rows.append((k, 1e6 * statistics.median(ts), statistics.median(ts) / statistics.median(rr_t),
                     float(np.median(ts / rr_t))))
    if baseline:
        new, old = np.array(times["C solve"]), np.array(times["C solve (baseline)"])
        rows.append(("C solve / baseline", float("nan"), statistics.median(new) / statistics.median(old),
                     float(np.median(new / old))))
    if sens_baseline:
        new, old = np.array(times["6 sensitivities (run kernel)"]), np.array(times["6 sensitivities (baseline)"])
        rows.append(("6 sensitivities / baseline", float("nan"), statistics.median(new) / statistics.median(old),
                     float(np.median(new / old))))
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--models", nargs="+", default=["mouse_pbpk", "mouse_tumour"])
    parser.add_argument("--baseline", nargs="*", default=[], help="NAME=PATH of an earlier library of model NAME")
    args = parser.parse_args(argv)
    baselines = dict(item.split("=", 1) for item in args.baseline)
    print(f"| model | engine | median µs | ratio of medians to libroadrunner | median of per-round ratios "
          f"({args.runs} rounds) |")
    print("|---|---|---|---|---|")
    for name in args.models:
        for engine, us, ratio, paired in bench(name, args.runs, baselines.get(name)):
            print(f"| {name} | {engine} | {us:.0f} | {ratio:.3f} | {paired:.3f} |")


if __name__ == "__main__":
    main()
