"""How far one solve is from its arithmetic floor: the work CVODE does, priced in C.

Run from the repository root:

    python benchmarks/floor.py [--rounds 30] [--models mouse_pbpk ...] [--out benchmarks/FLOOR.md]
                               [--profile 1000]

At the settings of benchmarks/benchmark.py (rtol 1e-6, atol 1e-9 × dose, 0–168 h, 50
outputs), for each model:

1. the solver's work in one solve, from CVODE's counters (``SolveResult.n_steps``,
   ``n_rhs``, ``n_lin_setups``, ``n_nonlin_iters``, ``n_jac_evals``): steps, evaluations
   of f, Jacobian evaluations, factorisations of the Newton matrix M = I − γJ (one per
   linear-solver setup) and linear solves (one per Newton iteration);
2. the unit cost of each kernel, timed by a loop *in C* (no ctypes call per evaluation):
   the model's generated f (``nanopk_rhs_core`` with the per-solve constants), its
   Jacobian (``nanopk_jac_hoisted`` after zeroing J, as the driver's ``cv_jac``), the
   generated sparse LU factorisation (``nanopk_lu_factor``) and triangular solve
   (``nanopk_lu_solve``).  The harness is appended to the model's generated driver source
   (``nanopk.backends.cvode.generate_source``) and compiled with the backend's flags, so
   it calls the very code a solve runs, at the states of that model's own trajectory;
   forming M from J in CVODE's dense storage (copy and M = I − γJ, once per setup) is
   priced too and shown, but is not counted in the floor;
3. the floor, Σ count × unit cost, and the ratio to it of: the C solve timed in C
   (``nanopk_solve`` called in a loop from the same harness library, no Python around
   it), the backend call (``CvodeModel.solve`` through ctypes), ``model.simulate()`` and
   ``nanopk.simulate()``.

Every quantity is timed *interleaved*: each round measures the unit costs and each call
once in turn, and the ratio to the floor is taken within the round; medians over rounds
are reported (the machine is shared: the load average is printed with the table).

With ``--profile N`` the Python layer of ``model.simulate()`` on mouse_pbpk is profiled
(cProfile, N calls on the compiled model) and the functions that take the time are listed.
"""
from __future__ import annotations

import argparse
import cProfile
import ctypes
import io
import os
import platform
import pstats
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from benchmark import ATOL, RTOL, TIMES  # noqa: E402

import nanopk  # noqa: E402
from nanopk.backends import cvode  # noqa: E402
from nanopk.compile import compile_model  # noqa: E402
from nanopk.run import Runner  # noqa: E402

MODELS = ("mouse_pbpk", "mouse_tumour", "mouse_tumour_full")

#: Appended to the model's driver source: it sees the driver's static functions (the
#: sparse LU) and its per-thread constants.  Each kernel runs ``reps`` times over the
#: trajectory's states, its results summed into a sink the caller gets back, so that the
#: compiler can drop no call.
HARNESS = r"""
#include <time.h>

/* Wall-clock time, and this thread's CPU time (what the shared machine gives to other
   processes meanwhile is not counted in it). */
static void floor_now(double *t)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    t[0] = (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    t[1] = (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Of the batch started at t0, ns per call: wall-clock in out[0], CPU in out[NANOPK_FLOOR_K]. */
#define NANOPK_FLOOR_K 5
static void floor_record(const double *t0, long reps, double *out)
{
    double t1[2];
    floor_now(t1);
    out[0] = (t1[0] - t0[0]) / (double)reps * 1e9;
    out[NANOPK_FLOOR_K] = (t1[1] - t0[1]) / (double)reps * 1e9;
}

/* ns per call (wall-clock in out[0..4], CPU in out[5..9]) of: f, J (zeroed, then
   written), M = I - gamma J in dense storage (copy of J, then scaled: CVODE's setup),
   the sparse LU factorisation of M, the triangular solve.  Y: nrows states (row-major).
   Returns the sink, or NAN if the sparse LU declined the matrix. */
double nanopk_floor_units(const double *p, int nrows, const double *Y, double gamma, long reps, double *out)
{
    static double J[NANOPK_N * NANOPK_N], M[NANOPK_N * NANOPK_N];
    static double lu[NANOPK_LU_NNZ], m[NANOPK_M_NNZ];
    double dy[NANOPK_N], x[NANOPK_N], sink = 0.0, t[2];
    nanopk_rhs_constants(p, solve_constants);
    nanopk_jac_prepare(p);

    floor_now(t);
    for (long r = 0; r < reps; r++) {
        nanopk_rhs_core(1.0, Y + (size_t)(r % nrows) * NANOPK_N, dy, p, solve_constants);
        sink += dy[r % NANOPK_N];
    }
    floor_record(t, reps, out + 0);

    floor_now(t);
    for (long r = 0; r < reps; r++) {
        memset(J, 0, sizeof J);
        nanopk_jac_hoisted(1.0, Y + (size_t)(r % nrows) * NANOPK_N, J, p);
        sink += J[r % (NANOPK_N * NANOPK_N)];
    }
    floor_record(t, reps, out + 1);

    floor_now(t);
    for (long r = 0; r < reps; r++) {
        memcpy(M, J, sizeof M);
        for (int k = 0; k < NANOPK_N * NANOPK_N; k++) M[k] *= -gamma;
        for (int i = 0; i < NANOPK_N; i++) M[i + i * NANOPK_N] += 1.0;
        sink += M[r % (NANOPK_N * NANOPK_N)];
    }
    floor_record(t, reps, out + 2);

    if (nanopk_lu_factor(M, lu, m) != 0) return NAN;
    floor_now(t);
    for (long r = 0; r < reps; r++) {
        nanopk_lu_factor(M, lu, m);
        sink += lu[r % NANOPK_LU_NNZ];
    }
    floor_record(t, reps, out + 3);

    floor_now(t);
    for (long r = 0; r < reps; r++) {
        memcpy(x, Y + (size_t)(r % nrows) * NANOPK_N, sizeof x);
        nanopk_lu_solve(lu, x);
        sink += x[r % NANOPK_N];
    }
    floor_record(t, reps, out + 4);
    return sink;
}

/* ns of each of reps calls of nanopk_solve with these arguments: wall-clock in out[r],
   CPU in out[reps + r].  Returns the flag of the last. */
int nanopk_floor_solves(long reps, double t0, const double *y0, const double *p, int nout, const double *tout,
                        double *yout, double rtol, const double *atol, const double *constraints, long max_steps,
                        double *info, double *out)
{
    int flag = 0;
    for (long r = 0; r < reps; r++) {
        double a[2], b[2];
        floor_now(a);
        flag = nanopk_solve(t0, y0, p, nout, tout, yout, rtol, atol, constraints, max_steps, info);
        floor_now(b);
        out[r] = (b[0] - a[0]) * 1e9;
        out[reps + r] = (b[1] - a[1]) * 1e9;
    }
    return flag;
}
"""

KERNELS = ("rhs", "jac", "form_m", "lu", "solve")
P = ctypes.c_void_p


def build_harness(compiled, workdir: Path) -> ctypes.CDLL:
    """The model's driver and Jacobian units with :data:`HARNESS`, compiled as the backend
    compiles them (its compiler, ``CFLAGS``, SUNDIALS) into ``workdir``."""
    system = compiled.system
    if cvode.newton_lu_plan(system)[1]:
        raise SystemExit(f"{system.n_states}-state model with a low-rank update: the harness prices the plain sparse LU only")
    cc, libs = cvode._compiler(), cvode.sundials_libraries()
    # clock_gettime under -std=c99 needs POSIX declared before the driver's first include.
    units = {"model": "#define _POSIX_C_SOURCE 199309L\n" + cvode.generate_source(system) + HARNESS,
             "jacobian": cvode.generate_jacobian_source(system)}
    objects = []
    for name, source in units.items():
        src = workdir / f"{name}.c"
        src.write_text(source)
        objects.append(str(src.with_suffix(".o")))
        subprocess.run([cc, *cvode.CFLAGS, "-fPIC", "-std=c99", "-c", "-o", objects[-1], str(src)], check=True)
    out = workdir / "harness.so"
    subprocess.run([cc, "-shared", "-o", str(out), *objects, *libs, "-lm", f"-Wl,-rpath,{Path(libs[0]).parent}"],
                   check=True)
    lib = ctypes.CDLL(str(out))
    lib.nanopk_floor_units.argtypes = [P, ctypes.c_int, P, ctypes.c_double, ctypes.c_long, P]
    lib.nanopk_floor_units.restype = ctypes.c_double
    lib.nanopk_floor_solves.argtypes = [ctypes.c_long, ctypes.c_double, P, P, ctypes.c_int, P, P, ctypes.c_double, P, P,
                                        ctypes.c_long, P, P]
    lib.nanopk_floor_solves.restype = ctypes.c_int
    return lib


class Case:
    """One model: its compiled backend, the solve ``model.simulate(TIMES)`` makes, its
    counters, and the harness that prices them."""

    def __init__(self, name: str, workdir: Path):
        self.name = name
        self.model = nanopk.load_model(name)
        self.compiled = compile_model(self.model, "cvode")
        runner = Runner(self.model, "cvode")
        self.p = runner.parameters()
        dose = self.p[runner.layout.i_dose]
        # As Runner.run with one bolus at t = 0: the dose starts in its target state.
        self.y0 = self.compiled.initial_state(self.p)
        self.y0[runner.layout.i_depot] = 0.0
        self.y0[runner.layout.i_target] += dose
        self.atol = runner.atol(ATOL, dose)
        self.runner = runner
        self.result = self.backend_call()
        sim = self.model.simulate(TIMES, rtol=RTOL, atol=ATOL, states=True)
        assert np.array_equal(sim[[c for c in sim.columns if c.startswith("state:")]].to_numpy(), self.result.y), \
            f"{name}: the backend call here is not the solve simulate() makes"
        self.counts = {"steps": self.result.n_steps, "rhs": self.result.n_rhs, "jac": self.result.n_jac_evals,
                       "lu": self.result.n_lin_setups, "solve": self.result.n_nonlin_iters}
        assert all(sim.attrs[k] == getattr(self.result, k) for k in
                   ("n_steps", "n_rhs", "n_lin_setups", "n_nonlin_iters", "n_jac_evals"))
        self.lib = build_harness(self.compiled, workdir)
        self.states = np.ascontiguousarray(self.result.y[1:], dtype=float)  # the trajectory after t = 0
        # The C solve's arguments, exactly as CvodeModel.solve passes them.
        n = self.compiled.n_states
        self.c_atol = np.multiply(self.atol, cvode.TOLERANCE_SAFETY, out=np.empty(n))
        self.constraints = self.compiled._constraints(self.y0, n)
        self.yout = np.empty((len(TIMES), n))
        self.info = np.zeros(cvode._INFO)
        flag = self.c_solves(1)[0]
        assert flag == 0 and np.array_equal(self.yout, self.result.y), f"{name}: the harness's solve differs from the backend's"
        assert int(self.info[1]) == self.counts["steps"] and int(self.info[7]) == self.counts["lu"]
        # γ = h·β of a typical step (β ≈ 0.5): the pivots' values, not the operation count, depend on it.
        self.gamma = 0.5 * TIMES[-1] / self.counts["steps"]

    def backend_call(self):
        return self.compiled.solve(0.0, self.y0, self.p, TIMES, RTOL, self.atol)

    def units(self, reps: int) -> dict[str, dict[str, float]]:
        """ns per call of each kernel, ``{"wall": {...}, "cpu": {...}}``."""
        out = np.zeros(2 * len(KERNELS))
        sink = self.lib.nanopk_floor_units(self.p.ctypes.data, len(self.states), self.states.ctypes.data, self.gamma, reps,
                                           out.ctypes.data)
        if not np.isfinite(sink):
            raise SystemExit(f"{self.name}: the sparse LU declined the Newton matrix at gamma = {self.gamma}")
        return {clock: dict(zip(KERNELS, out[k * len(KERNELS):(k + 1) * len(KERNELS)])) for k, clock in enumerate(CLOCKS)}

    def c_solves(self, reps: int) -> tuple[int, dict[str, float]]:
        """``reps`` calls of the C solve from C: the flag and the median seconds on each clock."""
        out = np.empty(2 * reps)
        flag = self.lib.nanopk_floor_solves(reps, 0.0, self.y0.ctypes.data, self.p.ctypes.data, len(TIMES), TIMES.ctypes.data,
                                            self.yout.ctypes.data, RTOL * cvode.TOLERANCE_SAFETY, self.c_atol.ctypes.data,
                                            None if self.constraints is None else self.constraints.ctypes.data, 100_000,
                                            self.info.ctypes.data, out.ctypes.data)
        return flag, {clock: 1e-9 * float(np.median(out[k * reps:(k + 1) * reps])) for k, clock in enumerate(CLOCKS)}

    def floor_ns(self, unit: dict[str, float]) -> float:
        return sum(self.counts[k] * unit[k] for k in FLOOR_KERNELS)


#: The two clocks: wall-clock, and the CPU time of this thread (time the shared machine
#: gives to other processes is not counted; their pollution of the caches is).
CLOCKS = ("wall", "cpu")
#: Kernels counted in the floor (``form_m`` is shown, not counted).
FLOOR_KERNELS = ("rhs", "jac", "lu", "solve")
CALLS = ("C solve", "backend call", "Runner.run()", "model.simulate()", "nanopk.simulate()")


def timed(call, k: int) -> dict[str, float]:
    """Median seconds of k back-to-back calls, on each clock."""
    wall, cpu = [], []
    for _ in range(k):
        a, b = time.perf_counter(), time.thread_time()
        call()
        cpu.append(time.thread_time() - b)
        wall.append(time.perf_counter() - a)
    return {"wall": statistics.median(wall), "cpu": statistics.median(cpu)}


def measure(case: Case, rounds: int, per_round: int = 5, reps: int = 2000) -> dict:
    """Interleaved rounds: the unit costs, the C solve from C, the backend call,
    model.simulate() and nanopk.simulate(); in each round, each one's ratio to that round's
    floor (on the same clock).  Medians over rounds."""
    model = case.model
    calls = {"backend call": case.backend_call,
             "Runner.run()": lambda: case.runner.run(TIMES, case.p, None, RTOL, ATOL),
             "model.simulate()": lambda: model.simulate(TIMES, rtol=RTOL, atol=ATOL),
             "nanopk.simulate()": lambda: nanopk.simulate(model, TIMES, rtol=RTOL, atol=ATOL)}
    for call in calls.values():  # warm-up
        call()
    case.c_solves(per_round)
    case.units(reps)
    units = {c: {k: [] for k in KERNELS} for c in CLOCKS}
    floors = {c: [] for c in CLOCKS}
    times = {c: {k: [] for k in CALLS} for c in CLOCKS}
    ratios = {c: {k: [] for k in CALLS} for c in CLOCKS}
    for _ in range(rounds):
        unit = case.units(reps)
        row = {"C solve": case.c_solves(per_round)[1]}
        row.update({label: timed(call, per_round) for label, call in calls.items()})
        for c in CLOCKS:
            floor = case.floor_ns(unit[c]) * 1e-9
            floors[c].append(floor)
            for k, v in unit[c].items():
                units[c][k].append(v)
            for label in CALLS:
                times[c][label].append(row[label][c])
                ratios[c][label].append(row[label][c] / floor)
    med = statistics.median
    out = {c: {"units": {k: med(v) for k, v in units[c].items()}, "floor_us": 1e6 * med(floors[c]),
               "us": {k: 1e6 * med(v) for k, v in times[c].items()}, "ratio": {k: med(v) for k, v in ratios[c].items()}}
           for c in CLOCKS}
    # Best of the rounds: the least disturbed figure of each (CPU clock), the floor from
    # the least unit costs.
    best = {k: min(v) for k, v in units["cpu"].items()}
    floor = case.floor_ns(best) * 1e-9
    out["best"] = {"units": best, "floor_us": 1e6 * floor, "us": {k: 1e6 * min(v) for k, v in times["cpu"].items()},
                   "ratio": {k: min(v) / floor for k, v in times["cpu"].items()}}
    return out


def profile_simulate(name: str, calls: int, top: int = 18) -> str:
    """cProfile of ``calls`` × ``model.simulate(TIMES)`` on the compiled ``name``: the
    functions by their own time, then by cumulative time."""
    model = nanopk.load_model(name)
    model.simulate(TIMES, rtol=RTOL, atol=ATOL)
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(calls):
        model.simulate(TIMES, rtol=RTOL, atol=ATOL)
    prof.disable()
    text = []
    for key in ("tottime", "cumulative"):
        buf = io.StringIO()
        pstats.Stats(prof, stream=buf).strip_dirs().sort_stats(key).print_stats(top)
        lines = buf.getvalue().splitlines()
        start = next(i for i, line in enumerate(lines) if line.lstrip().startswith("ncalls"))
        head = next(line for line in lines if "function calls" in line).strip()
        text.append(f"sorted by {key} ({head}):\n" + "\n".join(lines[start:]).rstrip())
    return "\n\n".join(text)


def table(results, clock: str) -> str:
    """The Markdown table of ``results`` (``[(case, measure(case))]``) on ``clock``."""
    lines = [
        "| model | states | steps | f evals | J evals | LU (setups) | solves (Newton its) | f ns | J ns | LU ns | solve ns "
        "| form M ns (not in floor) | floor µs | " + " | ".join(f"{k} µs (× floor)" for k in CALLS) + " |",
        "|---" * (13 + len(CALLS)) + "|",
    ]
    for case, r in results:
        c, r = case.counts, r[clock]
        u, us, x = r["units"], r["us"], r["ratio"]
        lines.append(
            f"| {case.name} | {case.compiled.n_states} | {c['steps']} | {c['rhs']} | {c['jac']} | {c['lu']} | {c['solve']} "
            f"| {u['rhs']:.0f} | {u['jac']:.0f} | {u['lu']:.0f} | {u['solve']:.0f} | {u['form_m']:.0f} | {r['floor_us']:.1f} "
            + "".join(f"| {us[k]:.0f} ({x[k]:.2f}×) " for k in CALLS) + "|")
    return "\n".join(lines)


def python_probe() -> float:
    """CPU ms of ``sum(range(10**6))``, the median of 5: how fast the interpreter runs on
    the machine as loaded now (compare runs by it: it varied from 19.7 to 34.3 ms within one
    run of this script on the shared 2-core machine of issue 25), since the
    Python layer's share of a call swings with it far more than the C kernels' costs do."""
    samples = []
    for _ in range(5):
        a = time.thread_time()
        sum(range(10**6))
        samples.append(time.thread_time() - a)
    return 1e3 * statistics.median(samples)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--out", default="benchmarks/FLOOR.md")
    parser.add_argument("--profile", type=int, default=1000,
                        help="simulate() calls to profile on mouse_pbpk when above 2.5× its floor (0: never)")
    args = parser.parse_args(argv)
    command = "python benchmarks/floor.py " + " ".join(argv if argv is not None else sys.argv[1:])
    load_before, probe_before = os.getloadavg(), python_probe()
    results = []
    with tempfile.TemporaryDirectory(prefix="nanopk-floor-") as tmp:
        for name in args.models:
            workdir = Path(tmp) / name
            workdir.mkdir()
            case = Case(name, workdir)
            results.append((case, measure(case, args.rounds)))
            print(f"{name}: done", file=sys.stderr)
    load_after, probe_after = os.getloadavg(), python_probe()
    tables = {c: table(results, c) for c in (*CLOCKS, "best")}
    def layers(r) -> str:
        us, fl = r["us"], r["floor_us"]
        parts = (("C solve", us["C solve"]), ("ctypes and CvodeModel.solve", us["backend call"] - us["C solve"]),
                 ("Runner.run's regimen and checks", us["Runner.run()"] - us["backend call"]),
                 ("validation, observables and DataFrame", us["model.simulate()"] - us["Runner.run()"]))
        return ", ".join(f"{name} {x:.0f} µs ({x / fl:.2f}× floor)" for name, x in parts)

    goal = [f"- {case.name}: `model.simulate()` at {r['cpu']['ratio']['model.simulate()']:.2f}× the floor in CPU time "
            f"({r['wall']['ratio']['model.simulate()']:.2f}× wall-clock, {r['best']['ratio']['model.simulate()']:.2f}× best "
            f"of the rounds), the C solve at {r['cpu']['ratio']['C solve']:.2f}× ({r['wall']['ratio']['C solve']:.2f}×, "
            f"{r['best']['ratio']['C solve']:.2f}×).  Layers (CPU medians): {layers(r['cpu'])}" for case, r in results]
    goal.append("- Goal of issue 25: `simulate()` within 2.5× of the floor on mouse_pbpk.")
    for case, r in results:
        if case.name == "mouse_pbpk":
            for label, rr in (("CPU medians", r["cpu"]), ("best of the rounds", r["best"])):
                us, fl = rr["us"], rr["floor_us"]
                python = (us["model.simulate()"] - us["C solve"]) / fl
                need = (f"`simulate()` ≤ 2.5× needs the C solve ≤ {2.5 - python:.2f}× the floor" if python < 2.5 else
                        "`simulate()` ≤ 2.5× cannot be reached by the C solve alone")
                goal.append(f"- mouse_pbpk, {label}: the Python layer around the C solve is {python:.2f}× the floor, so "
                            f"{need} (it is at {us['C solve'] / fl:.2f}×); forming M in dense storage costs "
                            f"{case.counts['lu'] * rr['units']['form_m'] / 1e3 / fl:.2f}× the floor per solve.")
    profile = ""
    pbpk = [r for case, r in results if case.name == "mouse_pbpk"]
    if args.profile and pbpk and pbpk[0]["cpu"]["ratio"]["model.simulate()"] > 2.5:
        profile = profile_simulate("mouse_pbpk", args.profile)
    header = (f"Load average (1, 5, 15 min) before: {', '.join(f'{x:.2f}' for x in load_before)}; after: "
              f"{', '.join(f'{x:.2f}' for x in load_after)} on {os.cpu_count()} cores "
              f"({platform.processor() or platform.machine()}, Python {platform.python_version()}, "
              f"{shutil.which(os.environ.get('CC', 'cc')) or 'cc'} {' '.join(cvode.CFLAGS)}).  "
              f"Python speed probe (CPU ms of sum(range(10**6)), see python_probe): {probe_before:.1f} before, "
              f"{probe_after:.1f} after.  "
              f"Medians over {args.rounds} interleaved rounds; each ratio is the median of the per-round ratios.")
    titles = {"cpu": "CPU time of the measuring thread (time given to other processes not counted)",
              "wall": "Wall-clock time (same rounds)",
              "best": "Best of the rounds (CPU time: the least of each time and of each unit cost, the least disturbed "
                      "figures on a shared machine)"}
    print(header)
    for c in ("cpu", "wall", "best"):
        print(f"\n{titles[c]}:\n{tables[c]}")
    print("\n".join(goal))
    if profile:
        print(profile)
    doc = [
        "# Distance from the arithmetic floor", "",
        f"Generated by `{command.strip()}` (issue 25).  rtol 1e-6, atol 1e-9 × dose, 0–168 h, 50 outputs "
        "(the settings of benchmarks/benchmark.py; CVODE is asked for 0.25 of them, `TOLERANCE_SAFETY`).", "",
        "Counts: CVODE's counters for one solve (`df.attrs` of `simulate()`: `n_steps`, `n_rhs`, `n_jac_evals`, "
        "`n_lin_setups`, `n_nonlin_iters`).  Unit costs: ns per call, timed by a C loop over the model's generated "
        "kernels at the states of its own trajectory (see the module docstring).  Floor = f evals × f + J evals × J "
        "+ setups × LU + Newton iterations × solve.  Not in the floor: forming M = I − γJ in CVODE's dense storage "
        "(shown), the first solve's backward-error check after each factorisation, CVODE's own vector work, error "
        "tests and interpolation.  C solve: `nanopk_solve` in a C loop; backend call: `CvodeModel.solve` through "
        "ctypes; `model.simulate()` and `nanopk.simulate()` return the DataFrame of observables.", "",
        header, "",
    ]
    for c in ("cpu", "wall", "best"):
        doc += [f"## {titles[c]}", "", tables[c], ""]
    doc += goal + [""]
    if profile:
        doc += [f"## Where `model.simulate()` spends its time outside C (mouse_pbpk, cProfile of {args.profile} calls)", "",
                "```", profile, "```", ""]
    Path(args.out).write_text("\n".join(doc))


if __name__ == "__main__":
    main()
