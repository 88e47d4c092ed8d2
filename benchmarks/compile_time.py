"""First-compile time of the aggregation model against its number of states.

Run from the repository root:

    python benchmarks/compile_time.py [--classes 20 50 100] [--repeats 1]

aggregation_plasma with K size classes (K + 1 states; the bundled spec with ``K = <K>``)
is loaded and compiled in a fresh process with an empty cache (``NANOPK_CACHE_DIR`` a new
temporary folder), and the wall time of each stage printed: loading the spec (with the
SymPy import, which ``import nanopk`` no longer pays), the symbolic system the build
derives (rate laws and the Newton solve's plan: J's low-rank split where it has hubs),
printing the C (``generate_source`` and ``generate_jacobian_source``, timed inside the
first ``compile('cvode')``), and the rest of that compile (the C compiler, the link,
loading) with one simulation.  The stages do not overlap; their sum is the first
compile.  Medians over ``--repeats`` processes.  Slopes between sizes are log(time ratio) / log(states ratio).
"""
from __future__ import annotations

import argparse
import math
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

CODE = r"""
import sys, time
t0 = time.perf_counter()
import nanopk
from nanopk.compile import symbolic_system
from nanopk.backends import cvode
t1 = time.perf_counter()
m = nanopk.load_model(sys.argv[1])
t2 = time.perf_counter()
s = symbolic_system(m)
s.layered_rhs; cvode.newton_lu_plan(s)  # what the build derives: rates, the Newton plan (J's split where hubs)
t3 = time.perf_counter()
printing = [0.0]
def timed(generate):
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return generate(*args, **kwargs)
        finally:
            printing[0] += time.perf_counter() - start
    return wrapper
cvode.generate_source = timed(cvode.generate_source)
cvode.generate_jacobian_source = timed(cvode.generate_jacobian_source)
m.compile("cvode"); m.simulate([1.0])
t4 = time.perf_counter()
print(len(m.states), t2 - t1, t3 - t2, printing[0], t4 - t3 - printing[0])
"""

def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--classes", type=int, nargs="+", default=[20, 50, 100])
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args(argv)
    import nanopk

    text = nanopk.spec.model_path("aggregation_plasma").read_text()
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for k in args.classes:
            spec = Path(folder) / f"aggregation_{k}.toml"
            spec.write_text(re.sub(r"^K\s*=\s*\d+", f"K = {k}", text, flags=re.M))
            samples = []
            for _ in range(args.repeats):
                with tempfile.TemporaryDirectory() as cache:
                    env = dict(os.environ, NANOPK_CACHE_DIR=cache)
                    out = subprocess.run([sys.executable, "-c", CODE, str(spec)], env=env, capture_output=True,
                                         text=True, check=True).stdout.split()
                samples.append([float(x) for x in out])
            rows.append([statistics.median(column) for column in zip(*samples)])
    print("| states | load spec (s) | symbolic system (s) | print C (s) | compile + link + first simulation (s) | total (s) |")
    print("|---|---|---|---|---|---|")
    for n, load, sym, printing, build in rows:
        print(f"| {int(n)} | {load:.2f} | {sym:.2f} | {printing:.2f} | {build:.2f} | {load + sym + printing + build:.2f} |")
    for a, b in zip(rows, rows[1:]):
        slope = math.log(sum(b[1:]) / sum(a[1:])) / math.log(b[0] / a[0])
        print(f"slope of the total, {int(a[0])} → {int(b[0])} states: {slope:.2f}")


if __name__ == "__main__":
    main()
