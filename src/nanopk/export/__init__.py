"""Exporters: a :class:`nanopk.Model` written out for other tools.

One module per format, each a function of the model:

- :mod:`.sbml` -- :func:`to_sbml`, SBML Level 3 Version 2 (python-libsbml, optional
  extra ``nanopk[sbml]``), simulated by libroadrunner in the test suite; units are
  translated by :mod:`.sbml_units`;
- :mod:`.c` -- :func:`to_c`, a C99 right-hand side and Jacobian with a header, an
  example driver and a Makefile;
- :mod:`.json` -- :func:`to_json` / :func:`from_json`, a lossless, ``eval``-free
  round trip of the model's parts.

The submodules are imported on first use (``nanopk.to_sbml`` etc.), so importing
nanopk never needs libsbml.
"""
from __future__ import annotations

__all__ = ["to_sbml", "to_c", "to_json", "from_json"]


def __getattr__(name):
    targets = {
        "to_sbml": "nanopk.export.sbml",
        "to_c": "nanopk.export.c",
        "to_json": "nanopk.export.json",
        "from_json": "nanopk.export.json",
    }
    if name in targets:
        import importlib

        return getattr(importlib.import_module(targets[name]), name)
    raise AttributeError(f"module 'nanopk.export' has no attribute {name!r}")
