"""The one JSON cleaner of nanopk: any result made safe for ``json.dumps(..., allow_nan=False)``.

Fit results, comparisons and exported models hold NumPy scalars and arrays, tuples,
DataFrames, paths and non-finite floats; JSON has none of these.  :func:`json_safe`
maps them once, the same way everywhere; only what a non-finite float becomes differs
(``None`` in a result, ``"inf"``/``"-inf"``/``"nan"`` in a lossless model export).

Every JSON nanopk writes says who wrote it: :func:`provenance` gives the
``nanopk_version`` and, where a model is involved, the model's ``structure_hash``
(:attr:`nanopk.Model.structure_hash`: equal hashes, equal equations), so a result can be
traced to the code and the equations that produced it.
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np
import pandas as pd

__all__ = ["json_safe", "nonfinite_as_text", "provenance", "stamped"]


def nonfinite_as_text(x: float) -> str:
    """``"inf"``, ``"-inf"`` or ``"nan"``: ``float()`` reads each back exactly."""
    return "inf" if x > 0 else "-inf" if x < 0 else "nan"


def json_safe(obj, nonfinite: Callable[[float], object] = lambda x: None):
    """A copy of ``obj`` that ``json.dumps(..., allow_nan=False)`` writes.

    Dict keys become strings; tuples, lists and arrays lists; NumPy booleans, integers
    and floats their Python types; a DataFrame its records; a non-finite float
    ``nonfinite(value)`` (default ``None``); ``None``, strings, booleans and integers
    stay; anything else (a path, an enum) becomes its ``str``.

    >>> json_safe({"a": np.float64("nan"), 2: (np.int64(3), float("inf"))})
    {'a': None, '2': [3, None]}
    >>> json_safe([float("-inf")], nonfinite=nonfinite_as_text)
    ['-inf']
    """
    if isinstance(obj, dict):
        return {str(k): json_safe(v, nonfinite) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v, nonfinite) for v in obj]
    if isinstance(obj, np.ndarray):
        return [json_safe(v, nonfinite) for v in obj.tolist()]
    if isinstance(obj, pd.DataFrame):
        return json_safe(obj.to_dict(orient="records"), nonfinite)
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        v = float(obj)
        return v if math.isfinite(v) else nonfinite(v)
    if obj is None or isinstance(obj, str):
        return obj
    return str(obj)


def provenance(model=None) -> dict:
    """``{"nanopk_version": ..., "structure_hash": ...}``: what wrote a JSON output.

    Parameters
    ----------
    model : nanopk.Model or str, optional
        The model the output is about, or its structure hash; without one only the
        version is given.

    Returns
    -------
    dict
        ``nanopk_version`` (:data:`nanopk.__version__`) and, with ``model``, its
        ``structure_hash``.
    """
    from ._version import __version__

    out = {"nanopk_version": __version__}
    if model is not None:
        out["structure_hash"] = model if isinstance(model, str) else model.structure_hash
    return out


def stamped(payload, model=None):
    """``payload`` with :func:`provenance` added: a dict gets the keys first (its own keys
    win), a list of records gets them in each record (a list stays a list for its readers)."""
    stamp = provenance(model)
    if isinstance(payload, dict):
        return {**stamp, **payload}
    if isinstance(payload, list) and all(isinstance(r, dict) for r in payload):
        return [{**stamp, **r} for r in payload]
    raise TypeError(f"stamped() takes a dict or a list of dicts (got {type(payload).__name__})")
