"""Start-up wall times: ``import nanopk``, ``nanopk --help``, ``nanopk simulate`` and ``nanopk fit``.

Each command runs ``--runs`` times in a fresh interpreter (the models' compiled C is
cached on disk, so every run after the first is a run "on a cached model"); the median
wall time is printed, with ``import numpy`` as the floor any nanopk command pays.
Machines are shared and noisy: compare figures from one run of this script (the 1-minute
load average is printed with each line).  For ``simulate`` and ``fit`` the heavy libraries
the command imports on the cached model are listed too (a fresh interpreter running the
command, then reading ``sys.modules``): on a cached model no SymPy (the equations are never
built) and no dask (nanopk's pint does without it).  With
``--baseline-src DIR`` (the ``src`` folder of an earlier checkout, e.g. from
``git archive COMMIT src | tar -x -C /tmp/old``) each command also runs with that code
first on ``PYTHONPATH``, interleaved run by run with the current code, and the ratio of
the medians is printed.

    .venv/bin/python benchmarks/startup.py [--runs 7] [--baseline-src /tmp/old/src]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

BIN = Path(sys.executable).parent
COMMANDS = {
    "python -c 'import numpy'": [sys.executable, "-c", "import numpy"],
    "python -c 'import nanopk'": [sys.executable, "-c", "import nanopk"],
    "nanopk --help": [str(BIN / "nanopk"), "--help"],
    "nanopk simulate mouse_pbpk": [str(BIN / "nanopk"), "simulate", "mouse_pbpk"],
    "nanopk fit arnida2010_peg_au_sphere_50nm --model mouse_tumour (README)":
        [str(BIN / "nanopk"), "fit", "arnida2010_peg_au_sphere_50nm", "--model", "mouse_tumour"],
}


def wall(cmd: list[str], src: str | None = None) -> float:
    env = dict(os.environ, PYTHONPATH=src) if src else None
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    return time.perf_counter() - start


HEAVY = ("sympy", "pandas", "lmfit", "pint", "scipy", "scipy.stats", "scipy.optimize", "matplotlib", "dask")


def heavy_imports(cmd: list[str], src: str | None = None) -> list[str]:
    """The HEAVY modules in ``sys.modules`` after the ``nanopk`` command ``cmd`` ran in a fresh interpreter."""
    probe = ("import contextlib, io, json, sys\nfrom nanopk.cli import main\n"
             "with contextlib.redirect_stdout(io.StringIO()):\n    main(sys.argv[1:])\n"
             f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))")
    env = dict(os.environ, PYTHONPATH=src) if src else None
    done = subprocess.run([sys.executable, "-c", probe, *cmd[1:]], capture_output=True, text=True, env=env, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--baseline-src", help="an earlier checkout's src folder, timed interleaved with this one")
    args = parser.parse_args()
    for name, cmd in COMMANDS.items():
        wall(cmd)  # warm the disk cache (and the compiled-model cache)
        if args.baseline_src:
            wall(cmd, args.baseline_src)
        times, old = [], []
        for _ in range(args.runs):
            times.append(wall(cmd))
            if args.baseline_src:
                old.append(wall(cmd, args.baseline_src))
        line = f"{name:75s} median {statistics.median(times):6.3f} s  (min {min(times):.3f}, max {max(times):.3f}"
        if old:
            line += (f"; baseline median {statistics.median(old):.3f} s, ratio {statistics.median(times) / statistics.median(old):.3f}")
        print(line + f"; {args.runs} runs; load average {os.getloadavg()[0]:.1f})")
        if cmd[0].endswith("nanopk") and len(cmd) > 2:
            print(f"{'':75s} imports {', '.join(heavy_imports(cmd))}"
                  + (f" (baseline: {', '.join(heavy_imports(cmd, args.baseline_src))})" if args.baseline_src else ""))


if __name__ == "__main__":
    main()
