"""Compiled backend: generated C right-hand side and Jacobian driven by SUNDIALS CVODE.

The model's f and J are printed as C (:mod:`.ccode`): f into a small driver that runs
CVODE's variable-order BDF with the analytic Jacobian and a direct linear solver (the
model's own sparse LU where its Jacobian is sparse, or sparse but for a low-rank term,
:mod:`.sparse_lu`; SUNDIALS' dense LU otherwise), J into a second translation unit; both are compiled in parallel
with the system C compiler and linked into a shared library, against the SUNDIALS
libraries shipped in the ``scikit-sundae`` wheel.  One call from Python integrates the
whole output grid in C, so there is no per-step Python overhead.

Artifacts are cached on disk, keyed by the model's structural hash and the SUNDIALS
build, in ``$NANOPK_CACHE_DIR`` (default ``~/.cache/nanopk``), so a second process
loads the library without compiling.  Writes go through a temporary file and an atomic
rename, so concurrent processes never see a half-written library.

The cache is not trusted: beside each library ``nanopk_<model>_<key>.so`` a record
``.sha256`` holds the key, size and SHA-256 digest written at build time.  Before a
library is loaded its bytes are read and checked against that record, and those very
bytes are loaded, from a private in-memory copy (``memfd``): a truncated file (whose
``dlopen`` would end in "Bus error"), an empty one, another model's library or one
replaced after the check can never be loaded, and a file replaced or truncated on disk
while a process uses it does not touch the copy that process runs.  After loading, the
key compiled into the library (``nanopk_artifact_key``) must be the one asked for.  A bad
entry is rebuilt, with a :class:`~nanopk.resources.CacheWarning` naming the file and
what was wrong; a cache folder that cannot be written (read-only, disk full) is
replaced by a temporary one for the process, with one warning.

Amounts never go below zero and keep their sum.  CVODE's own error can take an amount
near zero slightly negative (to −4e-9 of the dose at the default tolerances on
mouse_tumour_full's particles; to −2.5e-5 of it in a stiff chain at atol 1e-4 × dose),
in its steps and more often in its interpolated outputs.  So every mass state
(``State.is_mass``; coverage, number and auxiliary states may be signed) is constrained
to ≥ 0 (``CVodeSetConstraints``), and since CVODE meets small violations by setting the
amount to zero, which adds mass (up to 6e-7 of the dose by 1000 h, 1e-4 in the stiff
chain), the sum of the amounts, an invariant of every nanopk model, is restored by a
projection after each step once it has drifted (``CVodeSetProjFn``).  The outputs,
CVODE's interpolation at the requested times, are projected the same way (amounts
below zero to zero, the others scaled to the invariant sum), a change no larger than
CVODE's own error.  Stopping at every output instead (a step ends at each requested
time) took 15–21 % more steps and ~50 % more time on 50 outputs, for outputs no more
accurate.  ``CvodeModel.constrain_mass = False`` solves without any of this (the
tests compare both).  The reference backend (LSODA) has no constraints: on the same
80 robustness cases its lowest amount was −4.1e-11 of the dose, but nothing bounds it.

SUNDIALS' messages (CVODE warnings such as "t + h = t on the next step", error texts)
never reach stdout or stderr: the C driver collects them and they are passed on
through :mod:`logging`, logger ``"nanopk.solver"`` (warnings at WARNING, the texts of
failures, which also raise :class:`~nanopk.errors.SolverError`, at DEBUG); each solve's
messages are also in ``SolveResult.solver_messages``.  Silence them with
``logging.getLogger("nanopk").setLevel(logging.ERROR)``.

Reference: Hindmarsh AC et al., SUNDIALS: Suite of nonlinear and differential/algebraic
equation solvers. ACM Trans Math Softw 2005;31:363 (doi:10.1145/1089014.1089020).
"""
from __future__ import annotations

import ctypes
import glob
import hashlib
import importlib.util
import itertools
import logging
import os
import shutil
import subprocess
import tempfile
import threading
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import BackendError, ExportError
from ..resources import CacheWarning, cache_dir, use_temporary_cache, write_atomic
from .base import CompiledModel, SolveResult
from .sparse_lu import c_newton_lu, plan_newton_lu

if TYPE_CHECKING:
    from .symbolic import SymbolicSystem

__all__ = ["CvodeModel", "BackendUnavailable", "sundials_libraries", "cache_dir", "build_library", "load_library", "read_verified"]

_DRIVER = (Path(__file__).with_name("cvode_driver.c")).read_text()
_SENSITIVITY = (Path(__file__).with_name("cvode_sensitivity.c")).read_text()
#: The generator of the sparse LU is part of what a cached library depends on.
_SPARSE_LU = (Path(__file__).with_name("sparse_lu.c")).read_text()
_SPARSE_LU_CODE = (Path(__file__).with_name("sparse_lu.py")).read_text() + _SPARSE_LU
#: The code that prints the model as C, read at import like the templates above: the key
#: must describe the code this process generates, even if the files change meanwhile.
_PRINTER_CODE = "".join(Path(__file__).with_name(f).read_text() for f in ("symbolic.py", "ccode.py", "sharing.py"))
_JACOBIAN = """#include <math.h>

/* J[i + j*N] = d f_i / d y_j, column-major; only the non-zero entries (the caller zeroes J).
   nanopk_jac_core reads the parameter-only values nanopk_jac_constants wrote (ccode.c_jacobian_code);
   nanopk_jac_prepare(p) computes them once per solve for this thread, nanopk_jac_hoisted uses them. */
/*JAC_CODE*/
static _Thread_local double jac_constants[NANOPK_JAC_NC > 0 ? NANOPK_JAC_NC : 1];

void nanopk_jac_hoisted(double t, const double *y, double *J, const double *p)
{
    nanopk_jac_core(t, y, J, p, jac_constants);
}

void nanopk_jac_prepare(const double *p)
{
    nanopk_jac_constants(p, jac_constants);
}
"""
#: With hubs the Newton solve uses J = J_d + F·E through them (SymbolicSystem.low_rank_split),
#: and J itself (Python's jac(), the sensitivity solve) is assembled from the same three,
#: every entry written: printing and compiling the full J as well, dense by coagulation
#: (10 201 entries at 101 states), took 40 % of the first compile of the 101-state
#: aggregation model.  J_N and J_H: states and hubs.
_JACOBIAN_SPLIT = """#include <math.h>
#include <string.h>

/*SPLIT_CODE*/
static _Thread_local double split_constants[NANOPK_JAC_SPLIT_NC > 0 ? NANOPK_JAC_SPLIT_NC : 1];

void nanopk_jac_split_hoisted(double t, const double *y, double *J, double *F, double *E, const double *p)
{
    nanopk_jac_split_core(t, y, J, F, E, p, split_constants);
}

/* J += F E (column-major; a zero E[k, j] adds nothing, as in the symbolic J). */
static void add_low_rank(double *J, const double *F, const double *E)
{
    for (int j = 0; j < J_N; j++)
        for (int k = 0; k < J_H; k++) {
            const double e = E[k + j * J_H];
            if (e != 0.0)
                for (int i = 0; i < J_N; i++)
                    J[i + j * J_N] += F[i + k * J_N] * e;
        }
}

typedef void (*split_fn)(double, const double *, double *, double *, double *, const double *);

/* J = J_d + F E from one of the two split functions (plain or with hoisted constants). */
static void assemble(split_fn split, double t, const double *y, double *J, const double *p)
{
    double F[J_N * J_H], E[J_H * J_N];
    memset(J, 0, sizeof(double) * J_N * J_N);
    memset(F, 0, sizeof F);
    memset(E, 0, sizeof E);
    split(t, y, J, F, E, p);
    add_low_rank(J, F, E);
}

void nanopk_jac(double t, const double *y, double *J, const double *p)
{
    assemble(nanopk_jac_split, t, y, J, p);
}

void nanopk_jac_hoisted(double t, const double *y, double *J, const double *p)
{
    assemble(nanopk_jac_split_hoisted, t, y, J, p);
}

void nanopk_jac_prepare(const double *p)
{
    nanopk_jac_split_constants(p, split_constants);
}
"""
_LIBS = ("core", "nvecserial", "sunmatrixdense", "sunlinsoldense", "sunmatrixband", "sunlinsolband", "cvode")
#: CVODE controls the *local* error; on the closed-form problems of tests/test_closed_form.py
#: its global error came out 7-13x the requested tolerance, LSODA's within it.  Asking
#: CVODE for a quarter of the tolerance keeps the global error inside what the user
#: requested (RMS < 2 tolerance units) for ~25 % more steps.
TOLERANCE_SAFETY = 0.25
#: Arrays cross into C as bare addresses: numpy's checked ndpointer conversion cost ~3 µs
#: per array, ~40 µs of every simulation.  Every array passed is made C-contiguous
#: float64 by _f64 or allocated here as such.
_DOUBLE_P = ctypes.c_void_p


def _f64(a) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.float64)


#: A solve's time goes into CVODE's dense linear algebra more than into the generated f
#: and J: on mouse_tumour_full -O1 solves as fast as -O2 (within 1 %) and compiles in
#: 70 % of the time.  -fno-math-errno lets the compiler share repeated pow() and exp()
#: calls, which errno would otherwise force it to repeat; nothing reads errno.
CFLAGS = ("-O1", "-fno-math-errno")


class BackendUnavailable(BackendError):
    """The compiled backend cannot be built here; the message says why and how to fix it."""


def sundials_libraries() -> list[str]:
    """Paths of the SUNDIALS shared libraries bundled with scikit-sundae."""
    # Locate the wheel without importing it: only its bundled libraries are used, and
    # importing sksundae's Python layer would cost ~0.8 s of start-up.
    spec = importlib.util.find_spec("sksundae")
    if spec is None or spec.origin is None:
        raise BackendUnavailable(
            "the compiled backend needs SUNDIALS from the 'scikit-sundae' wheel: pip install scikit-sundae"
        )
    libdir = Path(spec.origin).resolve().parent.parent / "scikit_sundae.libs"
    found = []
    for lib in _LIBS:
        matches = sorted(glob.glob(str(libdir / f"libsundials_{lib}-*.so*")))
        if not matches:
            raise BackendUnavailable(f"libsundials_{lib} not found in {libdir}; reinstall scikit-sundae (pip install --force-reinstall scikit-sundae)")
        found.append(matches[0])
    return found


#: For GCC, the Jacobian's unit bounds the alias queries of value numbering and dead-store
#: elimination: its thousands of stores into J (5 049 at 101 aggregation states) made GCC
#: relate every load to every earlier store, a quarter of its time.  Bounded, that unit
#: compiled in 6.3 s of CPU instead of 8.7 s, with the same J (same checksum) evaluated in
#: ~8 µs either way; it only forgoes reusing a load across stores.  Not the model's unit:
#: f runs at every step, and it compiled no faster.
JACOBIAN_GCC_FLAGS = ("--param=sccvn-max-alias-queries-per-access=10", "--param=dse-max-alias-queries-per-store=10")
_GCC: dict[str, bool] = {}


def _is_gcc(cc: str) -> bool:
    """Whether ``cc`` is GCC (clang and others do not know its ``--param`` names)."""
    if cc not in _GCC:
        try:
            out = subprocess.run([cc, "--version"], capture_output=True, text=True, timeout=30).stdout
        except (OSError, subprocess.SubprocessError):
            out = ""
        _GCC[cc] = "Free Software Foundation" in out and "clang" not in out.lower()
    return _GCC[cc]


def _compiler() -> str:
    """The C compiler: ``$CC`` (a name on PATH or a path), else cc, gcc or clang."""
    cc = os.environ.get("CC")
    if cc:
        found = shutil.which(cc)
        if not found:
            raise BackendUnavailable(f"the C compiler CC={cc!r} was not found or is not executable (point CC to a C "
                                     "compiler, or unset it to use cc, gcc or clang from PATH)")
        return found
    cc = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if not cc:
        raise BackendUnavailable("no C compiler found (set CC, or install gcc: apt-get install gcc)")
    return cc


def generate_source(system: SymbolicSystem, sensitivities: tuple[int, ...] | None = None) -> str:
    """The driver with the model's f, observables and initial state (all but J).

    With ``sensitivities`` (parameter indices) it also integrates dy/dp for them.
    """
    # The printers (and SymPy) load only when a library is built, not when a cached one is loaded.
    from .ccode import c_dfdp_code, c_initial_body, c_jacobian_pattern, c_observe_body, c_rhs_code

    source = (
        f"/* nanopk model {system.hash}: {system.n_states} states, {system.n_params} parameters */\n"
        f"#define NANOPK_N {system.n_states}\n"
        + _DRIVER.replace("/*RHS_CODE*/", c_rhs_code(system))
        .replace("/*OBS_BODY*/", c_observe_body(system)).replace("/*INIT_BODY*/", c_initial_body(system))
        .replace("/*SPARSE_LU*/", c_newton_lu(*newton_lu_plan(system)) + _SPARSE_LU)
    )
    if sensitivities is None:
        return source
    return (
        source + f"\n#define NANOPK_K {len(sensitivities)}\n"
        + _SENSITIVITY.replace("/*DFDP_CODE*/", c_dfdp_code(system, sensitivities))
        .replace("/*JNZ_TABLES*/", c_jacobian_pattern(system))
    )


def newton_lu_plan(system: SymbolicSystem):
    """``(plan, hubs)``: the planned sparse LU of the model's Newton matrix (``None``:
    dense LU) and the number of hubs of a low-rank update (0: none).

    Where J is too dense for a sparse LU because rate laws share a hub (coagulation's
    moments of the size distribution), M = (I − γJ_d) − γF·E: the sparse LU of the
    direct part, updated by the Sherman–Morrison–Woodbury formula.
    """
    cached = system.__dict__.get("_newton_lu_plan")
    if cached is None:
        # J's structural pattern (a superset of its non-zeros) decides first: where even
        # it has a sparse plan, or where there is no usable split, J is differentiated and
        # planned as before; where it is dense and hubs split it, J itself is never built
        # (at 101 aggregation states differentiating it took longer than all the rest).
        split = None
        if plan_newton_lu(system.n_states, system.structural_pattern) is None:
            split = system.low_rank_split
            if split is not None and len(split.hubs) > MAX_HUBS:
                split = None
        plan = None if split is not None else plan_newton_lu(system.n_states, system.layered_jacobian)
        hubs = 0
        if split is not None:
            plan = plan_newton_lu(system.n_states, split.direct)
            hubs = len(split.hubs) if plan is not None else 0
        cached = system.__dict__["_newton_lu_plan"] = (plan, hubs)
    return cached


#: At most this many hubs: the update costs ~2·hubs·N per solve and hubs sparse solves
#: per factorisation.
MAX_HUBS = 8


def generate_jacobian_source(system: SymbolicSystem) -> str:
    """The Jacobian's translation unit: ``nanopk_jac``, or with hubs ``nanopk_jac_split`` and
    ``nanopk_jac`` assembled from it, each also hoisted (:func:`.ccode.c_jacobian_code`)
    with its constants kept per thread."""
    from .ccode import c_jacobian_code

    hubs = newton_lu_plan(system)[1]
    if hubs:
        return (f"#define J_N {system.n_states}\n#define J_H {hubs}\n"
                + _JACOBIAN_SPLIT.replace("/*SPLIT_CODE*/", c_jacobian_code(system, split=True)))
    return _JACOBIAN.replace("/*JAC_CODE*/", c_jacobian_code(system))


def _artifact_key(system: SymbolicSystem, libs: list[str]) -> str:
    """What the compiled library depends on: the model structure, the C templates and
    flags, SUNDIALS."""
    from .._version import __version__

    code = hashlib.sha256((_DRIVER + _JACOBIAN + _JACOBIAN_SPLIT + repr(CFLAGS) + repr(JACOBIAN_GCC_FLAGS) + _SPARSE_LU_CODE
                           + _PRINTER_CODE).encode()).hexdigest()
    parts = [system.hash, __version__, code, *(Path(x).name for x in libs)]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def _library_key(system: SymbolicSystem, sensitivities: tuple[int, ...] | None, libs: list[str]) -> str:
    key = _artifact_key(system, libs)
    if sensitivities is not None:
        key += "_s" + hashlib.sha256((repr(tuple(sensitivities)) + _SENSITIVITY).encode()).hexdigest()[:10]
    return key


def build_library(system: SymbolicSystem, sensitivities: tuple[int, ...] | None = None) -> Path:
    """Compile (or find verified in the cache) the shared library for ``system``; its path.

    The cache key is the model's structural hash (equations, observables, order of states
    and parameters), so a cached library is found without generating any code.  With
    ``sensitivities`` (parameter indices) the library also integrates dy/dp for them.

    The Jacobian, the largest function, is its own translation unit: generated first,
    it compiles while the rest is generated and compiled in parallel, so the first call
    of a large model waits for the Jacobian alone.
    """
    return _verified_library(system, sensitivities)[0]


def _verified_library(system: SymbolicSystem, sensitivities=None) -> tuple[Path, bytes, str]:
    """``(path, bytes, key)`` of the library: the cached entry if it passes its check,
    else a new build (stored in the cache if the cache can be written)."""
    libs = sundials_libraries()
    sensitivities = None if sensitivities is None else tuple(sensitivities)
    key = _library_key(system, sensitivities, libs)
    target = cache_dir() / f"nanopk_{system.hash}_{key}.so"
    data, problem = read_verified(target, key)
    if data is not None:
        return target, data, key
    if problem:
        warnings.warn(f"rebuilding the compiled model {target}: {problem}", CacheWarning, stacklevel=4)
    data, source = _compile(system, sensitivities, libs, key)
    return _store(target, data, key, source), data, key


def _record_path(target: Path) -> Path:
    return target.with_suffix(".sha256")


def _record(key: str, data: bytes) -> str:
    return f"key={key} size={len(data)} sha256={hashlib.sha256(data).hexdigest()}\n"


def read_verified(target: Path, key: str) -> tuple[bytes | None, str | None]:
    """The bytes of the cached library ``target`` if they match their build record.

    Returns ``(bytes, None)`` for a good entry, ``(None, None)`` for none, and
    ``(None, reason)`` for a bad one (what is wrong, for the warning).  Nothing is loaded.
    """
    try:
        data = target.read_bytes()
    except FileNotFoundError:
        return None, None
    except OSError as exc:
        return None, f"it cannot be read ({exc.strerror or exc})"
    try:
        fields = dict(part.split("=", 1) for part in _record_path(target).read_text().split())
    except FileNotFoundError:
        return None, f"no build record {_record_path(target).name} beside it, so its content cannot be checked"
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        return None, f"its build record {_record_path(target).name} is unreadable ({exc})"
    if fields.get("key") != key:
        return None, f"its build record is for another library (key {fields.get('key')!r}, expected {key!r})"
    if not data:
        return None, "the file is empty"
    if str(len(data)) != fields.get("size"):
        return None, f"the file has {len(data)} bytes but {fields.get('size')} were written (truncated or overwritten)"
    if hashlib.sha256(data).hexdigest() != fields.get("sha256"):
        return None, "its SHA-256 digest differs from the one recorded at build time (damaged or replaced)"
    return data, None


def _store(target: Path, data: bytes, key: str, source: str) -> Path:
    """Write the library, its build record and its C source (for reading) into the cache.

    The record goes first: a reader that finds the new record with an old library
    rebuilds, one that finds no library builds.  If the cache folder cannot be written,
    the process moves to a temporary one (one CacheWarning); if that fails too, the
    library is only not cached (it is loaded from memory either way).
    """
    for attempt in range(2):
        try:
            write_atomic(_record_path(target), _record(key, data).encode())
            write_atomic(target, data)
        except OSError as exc:
            if attempt:
                return target
            target = use_temporary_cache(target.parent, exc) / target.name
            continue
        try:
            write_atomic(target.with_suffix(".c"), source.encode())
        except OSError:
            pass  # the source is kept only for reading
        return target
    return target


def _compile(system: SymbolicSystem, sensitivities, libs: list[str], key: str) -> tuple[bytes, str]:
    """Build the library in a private temporary folder; ``(bytes, C source)``."""
    cc = _compiler()
    libdir = str(Path(libs[0]).parent)
    # The key compiled in is checked after loading (CvodeModel): a library found under
    # this name with a valid record but built for another model is refused.
    units = {"jacobian": lambda: generate_jacobian_source(system),
             "model": lambda: generate_source(system, sensitivities) + f'\nconst char nanopk_artifact_key[] = "{key}";\n'}
    try:
        with tempfile.TemporaryDirectory(prefix="nanopk-build-") as tmp:
            sources = _compile_in_parallel(cc, Path(tmp), units)
            out = Path(tmp) / "model.so"
            objects = [str(Path(tmp) / f"{name}.o") for name in units]
            proc = subprocess.run([cc, "-shared", "-o", str(out), *objects, *libs, "-lm", f"-Wl,-rpath,{libdir}"],
                                  capture_output=True, text=True)
            _check(proc.stderr, proc.returncode, "linking the model failed")
            data = out.read_bytes()
    except OSError as exc:
        raise BackendUnavailable(f"the model cannot be compiled in the temporary folder {tempfile.gettempdir()} "
                                 f"({exc.strerror or exc}); set TMPDIR to a writable folder with free space") from exc
    # Kept next to the library for reading; the two units concatenated compile as one.
    return data, sources["model"] + "\n" + sources["jacobian"]


#: Descriptors of the in-memory copies loaded, kept open for the life of the process:
#: dlopen finds an already loaded library by its path, so a closed descriptor's
#: /proc/self/fd/N reused by a later library would return the earlier one.
_LOADED_FDS: list[int] = []
_LOAD_LOCK = threading.Lock()
_COUNTER = itertools.count()


def _load_private(data: bytes, name: str) -> ctypes.CDLL:
    """``dlopen`` a private copy of ``data`` (the bytes that were verified), never the
    cache file itself."""
    with _LOAD_LOCK:
        if hasattr(os, "memfd_create"):
            try:
                fd = os.memfd_create(name, os.MFD_CLOEXEC)
            except OSError:
                fd = None
            if fd is not None:
                try:
                    with open(fd, "wb", closefd=False) as fh:
                        fh.write(data)
                    lib = ctypes.CDLL(f"/proc/self/fd/{fd}")
                except OSError:
                    os.close(fd)  # no /proc: a temporary file below
                else:
                    _LOADED_FDS.append(fd)
                    return lib
        # A name never used before in this process, for the same reason as above.
        with tempfile.TemporaryDirectory(prefix="nanopk-load-") as tmp:
            path = Path(tmp) / f"{os.getpid()}_{next(_COUNTER)}_{name}"
            path.write_bytes(data)
            return ctypes.CDLL(str(path))  # the mapping outlives the file


def _artifact_key_of(lib) -> str | None:
    """The key compiled into ``lib`` (None for a library without one)."""
    try:
        return ctypes.string_at(ctypes.addressof(ctypes.c_char.in_dll(lib, "nanopk_artifact_key"))).decode()
    except (ValueError, UnicodeDecodeError):
        return None


def load_library(system: SymbolicSystem, sensitivities=None) -> tuple[Path, ctypes.CDLL]:
    """The verified library for ``system`` (built if needed), loaded; ``(cache path, lib)``."""
    target, data, key = _verified_library(system, sensitivities)
    lib = _load_private(data, target.name)
    found = _artifact_key_of(lib)
    if found != key:
        warnings.warn(f"rebuilding the compiled model {target}: it is a library built for another model (key "
                      f"{found!r}, expected {key!r}) although its build record matches", CacheWarning, stacklevel=3)
        data, source = _compile(system, None if sensitivities is None else tuple(sensitivities), sundials_libraries(), key)
        target = _store(target, data, key, source)
        lib = _load_private(data, target.name)
    return target, lib


def _compile_in_parallel(cc: str, tmp: Path, units: dict) -> dict[str, str]:
    """Generate each unit's source and start compiling it (to ``tmp/<name>.o``) before
    generating the next; wait for all.  Returns the sources."""
    sources, jobs = {}, {}
    try:
        for name, generate in units.items():
            try:
                sources[name] = generate()
            except ExportError as exc:  # an expression C cannot print: this backend cannot run the model
                raise BackendUnavailable(str(exc)) from exc
            src = tmp / f"{name}.c"
            src.write_text(sources[name])
            extra = JACOBIAN_GCC_FLAGS if name == "jacobian" and _is_gcc(cc) else ()
            cmd = [cc, *CFLAGS, *extra, "-fPIC", "-std=c99", "-c", "-o", str(src.with_suffix(".o")), str(src)]
            try:
                jobs[name] = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            except OSError as exc:  # not executable, not a program
                raise BackendUnavailable(f"the C compiler {cc} cannot be run ({exc.strerror or exc}); point CC to a "
                                         "working C compiler") from exc
        for name, job in jobs.items():
            _check(job.communicate()[1], job.returncode, f"compiling the model ({name}.c) failed")
    finally:
        for job in jobs.values():  # after a failure, stop the others before tmp goes
            if job.poll() is None:
                job.kill()
                job.wait()
    return sources


def _check(stderr: str, returncode: int, what: str) -> None:
    if returncode != 0:
        raise BackendUnavailable(f"{what} ({_compiler()} {' '.join(CFLAGS)} ...):\n{stderr[-2000:]}")


class CvodeModel(CompiledModel):
    backend = "cvode"

    def __init__(self, system: SymbolicSystem):
        super().__init__(system)
        self.library_path, lib = load_library(system)
        lib.nanopk_rhs.argtypes = [ctypes.c_double, _DOUBLE_P, _DOUBLE_P, _DOUBLE_P]
        lib.nanopk_jac.argtypes = [ctypes.c_double, _DOUBLE_P, _DOUBLE_P, _DOUBLE_P]
        lib.nanopk_solve.argtypes = [
            ctypes.c_double, _DOUBLE_P, _DOUBLE_P, ctypes.c_int, _DOUBLE_P, _DOUBLE_P,
            ctypes.c_double, _DOUBLE_P, _DOUBLE_P, ctypes.c_long, _DOUBLE_P,
        ]
        lib.nanopk_solve.restype = ctypes.c_int
        lib.nanopk_observe.argtypes = [ctypes.c_double, _DOUBLE_P, _DOUBLE_P, _DOUBLE_P]
        lib.nanopk_observe_many.argtypes = [ctypes.c_int, _DOUBLE_P, _DOUBLE_P, _DOUBLE_P, _DOUBLE_P, ctypes.c_int]
        lib.nanopk_initial.argtypes = [_DOUBLE_P, _DOUBLE_P]
        _declare_messages(lib)
        self._lib = lib
        self.n_observables = len(system.observable_names)
        #: Which states CVODE keeps ≥ 0 (1.0; 0.0: unconstrained): the amounts (State.is_mass).
        self._mass = np.array([1.0 if s.is_mass else 0.0 for s in system._model.states], dtype=float)
        #: False: solve without the non-negativity constraints (the tests compare both).
        self.constrain_mass = True

    def _constraints(self, y0: np.ndarray, n: int):
        """CVODE's constraint vector for a solve of n unknowns starting from y0 (the model's
        states first): 1 (≥ 0) on the amounts, 0 elsewhere; None without constraints.

        With an amount below zero at the start (a user's initial state) there are no
        constraints: CVODE refuses a start that violates them.
        """
        if not self.constrain_mass or not self._mass.any() or (y0[: self.n_states][self._mass > 0] < 0.0).any():
            return None
        c = np.zeros(n)
        c[: self.n_states] = self._mass
        return c

    def initial_state(self, p):
        y0, p = np.empty(self.n_states), _f64(p)
        self._lib.nanopk_initial(p.ctypes.data, y0.ctypes.data)
        return y0

    def observe(self, t, Y, p):
        t, Y, p = _f64(t), _f64(Y), _f64(p)
        out = np.empty((len(t), self.n_observables))
        self._lib.nanopk_observe_many(len(t), t.ctypes.data, Y.ctypes.data, p.ctypes.data, out.ctypes.data, self.n_observables)
        return out

    def _sensitivity_library(self, indices: tuple[int, ...]):
        cache = self.__dict__.setdefault("_sens_libs", {})
        if indices not in cache:
            _, lib = load_library(self.system, indices)
            _declare_messages(lib)
            lib.nanopk_solve_sens.argtypes = self._lib.nanopk_solve.argtypes
            lib.nanopk_solve_sens.restype = ctypes.c_int
            cache[indices] = lib
        return cache[indices]

    def solve_sensitivities(self, t0, y0, s0, p, t_out, rtol, atol, max_steps=100_000, indices=()) -> SolveResult:
        """Integrate y and S = ∂y/∂p[indices] together (forward sensitivities).

        ``s0`` is ∂y(t0)/∂p[indices] (n_states × k).  Returns a :class:`SolveResult`
        with ``.y`` (len(t_out) × n) and ``.s`` (len(t_out) × n × k).  The absolute
        tolerance of s_j is atol / |p_j|, so that p_j·s_j is controlled like y.
        """
        indices = tuple(int(i) for i in indices)
        lib = self._sensitivity_library(indices)
        n, k = self.n_states, len(indices)
        t_out, p = _f64(t_out), _f64(p)
        z0 = _f64(np.concatenate([np.asarray(y0, float), np.asarray(s0, float).reshape(n, k).T.ravel()]))
        atol_y = np.broadcast_to(np.asarray(atol, float), (n,))
        scales = [1.0 / max(abs(p[i]), 1e-300) if p[i] != 0 else 1.0 for i in indices]
        atol_z = _f64(np.concatenate([atol_y] + [atol_y * sc for sc in scales]) * TOLERANCE_SAFETY)
        zout = np.empty((len(t_out), n * (k + 1)))
        info = np.zeros(_INFO)
        limits = self._constraints(z0, z0.size)
        for constraints in ((limits, None) if limits is not None else (None,)):
            flag = lib.nanopk_solve_sens(float(t0), z0.ctypes.data, p.ctypes.data, len(t_out), t_out.ctypes.data, zout.ctypes.data,
                                         float(rtol) * TOLERANCE_SAFETY, atol_z.ctypes.data,
                                         None if constraints is None else constraints.ctypes.data, int(max_steps),
                                         info.ctypes.data)
            # As in solve(): a fit's residuals now come from this solve too, so a solve
            # the constraints stall is done again unconstrained, as the plain one is.
            if flag >= 0:
                break
        res = _result(t_out, zout[:, :n], flag, info, lib, t0)
        res.s = zout[:, n:].reshape(len(t_out), k, n).transpose(0, 2, 1)
        return res

    def rhs(self, t, y, p):
        out, y, p = np.empty(self.n_states), _f64(y), _f64(p)
        self._lib.nanopk_rhs(float(t), y.ctypes.data, out.ctypes.data, p.ctypes.data)
        return out

    def jac(self, t, y, p):
        out, y, p = np.zeros(self.n_states * self.n_states), _f64(y), _f64(p)
        self._lib.nanopk_jac(float(t), y.ctypes.data, out.ctypes.data, p.ctypes.data)
        return out.reshape(self.n_states, self.n_states, order="F")

    def solve(self, t0, y0, p, t_out, rtol, atol, max_steps=100_000) -> SolveResult:
        n = self.n_states
        t_out, y0, p = _f64(t_out), _f64(y0), _f64(p)
        yout = np.empty((len(t_out), n))
        atol = np.multiply(atol, TOLERANCE_SAFETY, out=np.empty(n))  # a scalar or n values
        info = np.zeros(_INFO)
        limits = self._constraints(y0, n)
        for constraints in ((limits, None) if limits is not None else (None,)):
            flag = self._lib.nanopk_solve(
                float(t0), y0.ctypes.data, p.ctypes.data, len(t_out), t_out.ctypes.data, yout.ctypes.data,
                float(rtol) * TOLERANCE_SAFETY, atol.ctypes.data, None if constraints is None else constraints.ctypes.data,
                int(max_steps), info.ctypes.data,
            )
            # Parameters outside a model's physical bounds (a negative rate, as a fit with
            # widened bounds may try) drive an amount below zero by the ODE itself, not by
            # CVODE's error: the constraints then stall the solver.  Such a solve is done
            # again unconstrained, as nanopk solved it before the constraints existed.
            if flag >= 0:
                break
        return _result(t_out, yout, flag, info, self._lib, t0)


#: Length of the driver's ``info`` array (see run_cvode in cvode_driver.c).
_INFO = 10
_LOG = logging.getLogger("nanopk.solver")


def _declare_messages(lib) -> None:
    lib.nanopk_messages.argtypes = [ctypes.c_char_p, ctypes.c_int]
    lib.nanopk_messages.restype = ctypes.c_long


def _messages(lib, info, t0, t_out) -> tuple[str, ...]:
    """SUNDIALS' messages of the solve just run on this thread, passed on to logging."""
    if not info[6]:
        return ()
    buffer = ctypes.create_string_buffer(4096)
    count = int(lib.nanopk_messages(buffer, len(buffer)))
    lines = tuple(line for line in buffer.value.decode(errors="replace").splitlines() if line)
    span = f"{float(t0):g}–{float(t_out[-1]) if len(t_out) else float(t0):g} h"
    for level, prefix in ((logging.WARNING, "W "), (logging.DEBUG, "E ")):
        some = [line[2:] for line in lines if line.startswith(prefix)]
        if some and _LOG.isEnabledFor(level):
            more = f" (and {count - len(lines)} more message(s))" if count > len(lines) else ""
            _LOG.log(level, "CVODE %s while integrating %s: %s%s", "warned" if prefix == "W " else "reported",
                     span, " | ".join(some), more)
    return lines


def _result(t_out, y, flag, info, lib=None, t0=0.0) -> SolveResult:
    """A :class:`SolveResult` from the driver's return flag and ``info`` (see run_cvode)."""
    solver = _LINEAR_SOLVERS.get(int(info[3]), "unknown")
    if info[4]:
        solver = solver.replace("dense", "sparse LU" if info[4] == 1 else "sparse LU + low-rank update")
    messages = _messages(lib, info, t0, t_out) if lib is not None else ()
    return SolveResult(t_out, y, flag == 0, float(info[0]), _CVODE_FLAGS.get(flag, f"CVODE flag {flag}"),
                       int(info[1]), int(info[2]), solver, int(info[5]), messages, int(info[7]), int(info[8]), int(info[9]))


#: How the driver solved the Newton systems (its info[3]; "dense" becomes "sparse LU"
#: where the model's generated sparse LU was installed, info[4] = 1, and "sparse LU +
#: low-rank update" where it solves J's direct part, info[4] = 2).
_LINEAR_SOLVERS = {0: "dense", 1: "dense blocks", 2: "band"}

# Meanings of CVODE's return flags (SUNDIALS CVODE user guide, "CVode" return values).
_CVODE_FLAGS = {
    0: "success",
    -1: "too much work: mxstep steps taken before reaching the output time (CV_TOO_MUCH_WORK)",
    -2: "too much accuracy requested for machine precision (CV_TOO_MUCH_ACC)",
    -3: "error test failed repeatedly or with |h| = hmin (CV_ERR_FAILURE): the solution may be singular or blow up",
    -4: "corrector convergence failed repeatedly (CV_CONV_FAILURE): stiffness or a discontinuity",
    -8: "the right-hand side returned a non-recoverable value, e.g. NaN or inf (CV_RHSFUNC_FAIL)",
    -15: "an amount would go below zero and reducing the step did not prevent it (CV_CONSTR_FAIL)",
    -100: "could not allocate the solver",
}
