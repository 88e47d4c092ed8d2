"""Where the bundled model specs and datasets live, and where nanopk caches what it builds.

A wheel carries them in ``nanopk/_bundled/`` (copied there by ``setup.py``); an editable
install or a source checkout reads the top-level ``models/`` and ``datasets/`` folders.
"""
from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import threading
import warnings
from pathlib import Path

__all__ = ["models_dir", "datasets_dir", "cache_dir", "CacheWarning", "use_temporary_cache", "write_atomic"]

_PACKAGE = Path(__file__).resolve().parent


def _find(folder: str) -> Path:
    for candidate in (_PACKAGE / "_bundled" / folder, _PACKAGE.parents[1] / folder):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(
        f"nanopk's bundled {folder}/ folder was not found (looked in {_PACKAGE / '_bundled'} and "
        f"{_PACKAGE.parents[1]}); reinstall nanopk with `pip install .` from a full checkout"
    )


def models_dir() -> Path:
    """Folder of the bundled model specs (``*.toml``)."""
    return _find("models")


def datasets_dir() -> Path:
    """Folder of the bundled datasets (``*.csv`` + ``*.json`` sidecars)."""
    return _find("datasets")


class CacheWarning(UserWarning):
    """nanopk's on-disk cache could not be used as is: an entry was rebuilt, or the
    folder cannot be written and a temporary one is used.  Results are not affected."""


_FALLBACK: Path | None = None
_FALLBACK_LOCK = threading.Lock()


def _configured_cache() -> Path:
    return Path(os.environ.get("NANOPK_CACHE_DIR", Path.home() / ".cache" / "nanopk")).expanduser()


def cache_dir() -> Path:
    """nanopk's on-disk cache (compiled models, pint's parsed unit definitions), created if missing.

    ``$NANOPK_CACHE_DIR``, default ``~/.cache/nanopk``.  If that folder cannot be
    created, or once a write into it has failed (read-only, disk full), a temporary
    folder is used for the rest of the process, with one :class:`CacheWarning`.
    """
    if _FALLBACK is not None:
        return _FALLBACK
    path = _configured_cache()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return use_temporary_cache(path, exc)
    return path


def use_temporary_cache(path, exc: BaseException) -> Path:
    """Switch this process to a temporary cache folder, because ``path`` failed with ``exc``.

    Warns once per process (:class:`CacheWarning`); the temporary folder is deleted
    when the process exits.
    """
    global _FALLBACK
    with _FALLBACK_LOCK:
        if _FALLBACK is None:
            _FALLBACK = Path(tempfile.mkdtemp(prefix="nanopk-cache-"))
            # Loaded libraries are private in-memory copies, so the folder can go at exit.
            atexit.register(shutil.rmtree, _FALLBACK, ignore_errors=True)
            reason = getattr(exc, "strerror", None) or str(exc)
            warnings.warn(
                f"nanopk cannot use its cache folder {path} ({reason}); compiled models are cached in the temporary "
                f"folder {_FALLBACK} for this process only. Set NANOPK_CACHE_DIR to a writable folder with free space "
                "to keep them between runs.", CacheWarning, stacklevel=3)
        return _FALLBACK


def write_atomic(target: Path, data: bytes) -> None:
    """Write ``data`` to ``target`` through a temporary file and an atomic rename, so a
    concurrent reader sees the old file or the new one, never half of one.  Raises
    OSError (read-only folder, disk full); leaves no temporary file behind."""
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), 0o644)  # as a plain write would leave it (mkstemp makes 0600)
            fh.write(data)
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
