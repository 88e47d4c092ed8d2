"""Work–precision diagram: error against time for CVODE's settings and libroadrunner, one run.

Run from the repository root:

    python benchmarks/work_precision.py [--model mouse_tumour] [--runs 15] [--plot FILE.png]

One model (default mouse_tumour, 0–168 h, 50 outputs, bolus at 0).  The reference is the
compiled solve at rtol 1e-12, atol 1e-15 × dose (CVODE then gets a quarter of these,
``TOLERANCE_SAFETY``).  For each setting (CVODE's maximum BDF order 5 to 2, its first
step: its own estimate or 1e-6 h) and each requested tolerance rtol = 1e-4 … 1e-9 (atol =
1e-3 × rtol × dose), the C solve (``CvodeModel.solve``, as ``simulate()`` calls it) is
timed; libroadrunner (nanopk's SBML export, its CVODE at the same rtol/atol, no safety
factor) likewise.  Error: the largest relative deviation of an observable from the
reference over the outputs where it exceeds 1e-6 of the dose.  All configurations are
timed interleaved, one solve of each per round, over ``--runs`` rounds; the table gives
the median and the fastest time, and the diagram the fastest relative to
libroadrunner's fastest at rtol 1e-6: on a shared, loaded machine the medians of solves
longer than ~1.5 ms jumped tenfold between neighbouring tolerances (the process loses
its time slice), while the fastest time follows the step count.

The safety factor needs no axis of its own: nanopk at rtol r is CVODE at 0.25 r, one
point further along the same curve; the table gives both.
"""
from __future__ import annotations

import argparse
import ctypes
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from benchmark import TIMES, roadrunner_for  # noqa: E402

import nanopk  # noqa: E402
from nanopk.backends.cvode import TOLERANCE_SAFETY  # noqa: E402
from nanopk.compile import compile_model  # noqa: E402
from nanopk.run import Runner  # noqa: E402

RTOLS = (1e-4, 1e-5, 1e-6, 1e-7, 1e-8, 1e-9)
SETTINGS = [("order 5 (default)", 5, 0.0), ("order 4", 4, 0.0), ("order 3", 3, 0.0), ("order 2", 2, 0.0),
            ("order 5, h0 1e-6 h", 5, 1e-6)]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mouse_tumour")
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--plot", default=None, help="write the diagram to this PNG")
    args = parser.parse_args(argv)

    model = nanopk.load_model(args.model)
    compiled = compile_model(model, "cvode")
    runner = Runner(model, "cvode")
    p = runner.parameters()
    dose = p[runner.layout.i_dose]
    y0 = compiled.initial_state(p)
    y0[runner.layout.i_target] += dose
    order = ctypes.c_int.in_dll(compiled._lib, "nanopk_max_order")
    first = ctypes.c_double.in_dll(compiled._lib, "nanopk_initial_step")

    def observe(y):
        return compiled.observe(TIMES, y, p)

    def cvode(rtol, max_order, h0):
        def call():
            order.value, first.value = max_order, h0
            try:
                return compiled.solve(0.0, y0, p, TIMES, rtol, 1e-3 * rtol * dose)
            finally:
                order.value, first.value = 5, 0.0
        return call

    reference = observe(cvode(1e-12, 5, 0.0)().y)
    if not np.isfinite(reference).all():
        raise SystemExit("the reference solve failed")
    big = np.abs(reference) > 1e-4  # %ID above 1e-6 of the dose

    def error(obs):
        return float(np.max(np.abs(obs - reference)[big] / np.abs(reference)[big]))

    rr = roadrunner_for(model)
    selections = ["time"] + model.state_names

    def roadrunner(rtol):
        def call():
            rr.resetAll()
            rr.integrator.relative_tolerance = rtol
            rr.integrator.absolute_tolerance = 1e-3 * rtol * dose
            return np.asarray(rr.simulate(0.0, float(TIMES[-1]), len(TIMES), selections))
        return call

    configs = {}
    for label, max_order, h0 in SETTINGS:
        for rtol in RTOLS:
            call = cvode(rtol, max_order, h0)
            res = call()
            configs[(label, rtol)] = (call, error(observe(res.y)) if res.success else float("nan"), res.n_steps)
    for rtol in RTOLS:
        call = roadrunner(rtol)
        out = call()
        configs[("libroadrunner", rtol)] = (call, error(observe(out[:, 1:])), -1)  # steps not reported
    samples = {key: [] for key in configs}
    for _ in range(args.runs):
        for key, (call, _, _) in configs.items():
            t0 = time.perf_counter()
            call()
            samples[key].append(time.perf_counter() - t0)
    rr6 = np.array(samples[("libroadrunner", 1e-6)])
    print(f"Work–precision, {args.model}: error = max relative deviation of observables (> 1e-6 of the dose) "
          f"from rtol 1e-12; {args.runs} interleaved rounds")
    print("| setting | rtol asked | CVODE rtol | steps | error | median µs | fastest µs | "
          "fastest / libroadrunner(1e-6) fastest |")
    print("|---|---|---|---|---|---|---|---|")
    rows = []
    for (label, rtol), (_, err, steps) in configs.items():
        ts = np.array(samples[(label, rtol)])
        inner = rtol if label == "libroadrunner" else rtol * TOLERANCE_SAFETY
        ratio = float(ts.min() / rr6.min())
        rows.append((label, rtol, err, statistics.median(ts), ratio))
        print(f"| {label} | {rtol:.0e} | {inner:.1e} | {steps if steps >= 0 else '–'} | {err:.2e} | "
              f"{1e6 * statistics.median(ts):.0f} | {1e6 * ts.min():.0f} | {ratio:.3f} |")
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6.4, 4.8))
        for label in [s[0] for s in SETTINGS] + ["libroadrunner"]:
            pts = [(r[4], r[2]) for r in rows if r[0] == label]
            ax.loglog([x for x, _ in pts], [y for _, y in pts], "o-", label=label)
        ax.set_xlabel("fastest time / libroadrunner's fastest at rtol 1e-6 (same rounds)")
        ax.set_ylabel("max relative error of observables")
        ax.set_title(f"Work–precision, {args.model} (rtol 1e-4 … 1e-9)")
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(args.plot, dpi=100)
        print(f"diagram written to {args.plot}")


if __name__ == "__main__":
    main()
