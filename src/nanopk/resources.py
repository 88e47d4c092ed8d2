"""Where the bundled model specs and datasets live, and where nanopk caches what it builds.

A wheel carries them in ``nanopk/_bundled/`` (copied there by ``setup.py``); an editable
install or a source checkout reads the top-level ``models/`` and ``datasets/`` folders.
"""
from __future__ import annotations

import os
from pathlib import Path

__all__ = ["models_dir", "datasets_dir", "cache_dir"]

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


def cache_dir() -> Path:
    """nanopk's on-disk cache (compiled models, pint's parsed unit definitions), created if missing.

    ``$NANOPK_CACHE_DIR``, default ``~/.cache/nanopk``.
    """
    path = Path(os.environ.get("NANOPK_CACHE_DIR", Path.home() / ".cache" / "nanopk"))
    path.mkdir(parents=True, exist_ok=True)
    return path
