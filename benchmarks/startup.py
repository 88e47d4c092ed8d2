"""Start-up wall times: ``import nanopk``, ``nanopk --help``, ``nanopk simulate`` and ``nanopk fit``.

Each command runs ``--runs`` times in a fresh interpreter (the models' compiled C is
cached on disk, so every run after the first is a run "on a cached model"); the median
wall time is printed, with ``import numpy`` as the floor any nanopk command pays.
Machines are shared and noisy: compare figures from one run of this script.

    .venv/bin/python benchmarks/startup.py [--runs 7]
"""
from __future__ import annotations

import argparse
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


def wall(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    for name, cmd in COMMANDS.items():
        wall(cmd)  # warm the disk cache (and the compiled-model cache)
        times = [wall(cmd) for _ in range(args.runs)]
        print(f"{name:75s} median {statistics.median(times):6.3f} s  (min {min(times):.3f}, max {max(times):.3f}, "
              f"{args.runs} runs)")


if __name__ == "__main__":
    main()
