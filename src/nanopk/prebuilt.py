"""Models built before, remembered by their recipe, so a later process need not rebuild them.

Building a model composes each mechanism's SymPy expressions, and SymPy's first
construction of an expression in a process is slow (its assumption system deduces facts
for every new product): ~0.2 s for ``mouse_tumour_full``, most of loading it.  Yet a
simulation from a cached compiled library needs none of those expressions -- only the
names, units and values of the states, parameters and observables, and the structural
hash that finds the library.

So after a model is built and validated, :func:`remember` writes that *skeleton* under
``$NANOPK_CACHE_DIR/models``, keyed by the recipe: the spec's path and text, the
particle, the parameter overrides, and the Python and C source of the whole nanopk
package (any change to a mechanism, the physiology tables or the model code makes a
new key) with the Python and SymPy versions.  :func:`recall` returns a model made from the skeleton
whose equations are built only when something asks for them (a flux, an export, the
sensitivity code); at that moment the built model's structural hash must equal the
remembered one, or the cache file is reported as stale.

A cache that cannot be read or written only costs the rebuild; it never changes a
result.  Each file starts with a header that names its key and the SHA-256 digest of
the pickled skeleton, checked before anything is unpickled: a truncated, damaged or
emptied file, or another model's file copied under this key, is rebuilt with a
:class:`~nanopk.resources.CacheWarning` naming the file and what was wrong, instead of
giving that model's names and library to this one.
"""
from __future__ import annotations

import functools
import hashlib
import pickle
import sys
from pathlib import Path

from .errors import ModelError

__all__ = ["recipe_key", "recall", "remember"]

#: Bumped whenever the skeleton's layout changes.
_FORMAT = 2
#: First line of every file: this, the key and the payload's SHA-256, space-separated.
_MAGIC = b"nanopk-model-skeleton"


@functools.cache
def _package_hash() -> str:
    """Hash of the package's Python and C source (read once per process).

    Mechanisms, physiology and materials tables are Python; bundled specs and datasets
    are not hashed here (a spec's own text is part of the key).  SymPy's version is read
    from its installed metadata: importing SymPy (0.6-2 s) is what recalling avoids."""
    from importlib.metadata import version

    root = Path(__file__).resolve().parent
    h = hashlib.sha256(f"{_FORMAT} {sys.version} sympy {version('sympy')}".encode())
    for path in sorted(root.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and path.suffix in (".py", ".c"):
            h.update(str(path.relative_to(root)).encode())
            h.update(path.read_bytes())
    return h.hexdigest()


def _plugin_hash() -> str:
    """Hash of the source of every mechanism family that is not nanopk's own.

    A lab's family (an entry point or ``register_family``) builds parts just as the
    built-in ones do, so its source is part of what a model is made of: without it in
    the key, an edited plugin mechanism would be recalled from the cache unchanged.
    Not cached: a family may be registered at any time in a session.
    """
    import importlib.util

    from .mechanisms.base import _discover

    h = hashlib.sha256()
    for name, fam in sorted(_discover()[0].items()):
        if fam.origin == "nanopk":
            continue
        h.update(f"{name}={fam.module}\0".encode())
        try:
            spec = importlib.util.find_spec(fam.module)
        except (ImportError, ValueError):
            spec = None
        origin = Path(spec.origin) if spec is not None and spec.origin not in (None, "built-in", "frozen") else None
        if origin is None or not origin.is_file():
            h.update(b"<no source>")  # resolving the family will report it
            continue
        files = sorted(origin.parent.rglob("*.py")) if origin.name == "__init__.py" else [origin]
        for f in files:
            h.update(str(f).encode() + b"\0" + f.read_bytes())
    return h.hexdigest()


def recipe_key(path, text: str, particle, params) -> str:
    """Key of the model ``load_model`` builds from these arguments (and nanopk's and any
    plugin mechanism family's source)."""
    h = hashlib.sha256(_package_hash().encode())
    h.update(_plugin_hash().encode())
    h.update(str(Path(path).resolve()).encode() + b"\0" + text.encode())
    h.update(repr(sorted(particle.to_dict().items()) if particle is not None else None).encode())
    h.update(repr(sorted((params or {}).items())).encode())
    return h.hexdigest()[:24]


def _file(key: str) -> Path:
    from .resources import cache_dir

    return cache_dir() / "models" / f"{key}.pickle"


def remember(key: str, model) -> None:
    """Write ``model``'s skeleton (a validated model only)."""
    skeleton = {
        "format": _FORMAT,
        "name": model.name,
        "dose_target": model.dose_target,
        "description": model.description,
        "metadata": model.metadata,
        "states": model.states,
        "parameters": tuple(model.parameters.values()),
        "observables": model._observable_heads,
        "notes": model.notes,
        "n_fluxes": len(model.fluxes),
        "structure_hash": model.structure_hash,
    }
    from .resources import write_atomic

    payload = pickle.dumps(skeleton, protocol=pickle.HIGHEST_PROTOCOL)
    header = b" ".join((_MAGIC, key.encode(), hashlib.sha256(payload).hexdigest().encode())) + b"\n"
    try:
        target = _file(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(target, header + payload)  # a concurrent reader sees the old file or the new one
    except OSError:
        pass  # not remembered: the next process builds the model again


def _verified_payload(data: bytes, key: str) -> tuple[bytes | None, str | None]:
    """``(pickled skeleton, None)`` if ``data`` is a whole file written for ``key``, else
    ``(None, what is wrong)``."""
    if not data:
        return None, "the file is empty"
    header, newline, payload = data.partition(b"\n")
    fields = header.split(b" ")
    if not newline or len(fields) != 3 or fields[0] != _MAGIC:
        return None, "it does not start with nanopk's header (damaged, or written by another program)"
    if fields[1].decode(errors="replace") != key:
        return None, f"it was written for another model (key {fields[1].decode(errors='replace')!r}, expected {key!r})"
    if hashlib.sha256(payload).hexdigest().encode() != fields[2]:
        return None, "its content does not match the SHA-256 digest written with it (truncated or damaged)"
    return payload, None


def recall(key: str, build):
    """The model remembered under ``key``, its equations deferred to ``build()``; or None."""
    import warnings

    from .model import Model
    from .resources import CacheWarning

    path = _file(key)
    try:
        data = path.read_bytes()
    except OSError:
        return None  # absent or unreadable: rebuild
    payload, problem = _verified_payload(data, key)
    skeleton = None
    if payload is not None:
        try:
            skeleton = pickle.loads(payload)
        except Exception as exc:  # noqa: BLE001 - a verified file from another layout
            problem = f"it cannot be unpickled ({type(exc).__name__})"
        else:
            if not isinstance(skeleton, dict) or skeleton.get("format") != _FORMAT:
                problem, skeleton = "it has another layout", None
    if skeleton is None:
        warnings.warn(f"rebuilding the remembered model {path}: {problem}", CacheWarning, stacklevel=3)
        return None
    expected = (skeleton["structure_hash"], [s.name for s in skeleton["states"]], [p.name for p in skeleton["parameters"]])
    return Model._deferred(skeleton, functools.partial(_build_checked, build, skeleton["name"], expected, str(path)))


def _build_checked(build, name: str, expected: tuple, source: str):
    """``build()``, checked to make the equations the skeleton was remembered with.

    A partial of this (not a closure) is what a recalled model carries, so it still
    pickles with its recipe for worker processes.
    """
    built = build()
    if (built.structure_hash, built.state_names, built.parameter_names) != expected:
        raise ModelError(
            f"the remembered model {name!r} ({source}) does not match the model its recipe builds now; "
            f"delete that file (or the folder {Path(source).parent}) and load the model again"
        )
    return built
