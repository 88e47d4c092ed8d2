"""Exporters: a :class:`nanopk.Model` written out for other tools, from one registry.

Built-in formats, one module each:

- ``sbml`` -- :func:`.sbml.to_sbml`, SBML Level 3 Version 2 (python-libsbml, optional
  extra ``nanopk[sbml]``), simulated by libroadrunner in the test suite; units are
  translated by :mod:`.sbml_units`;
- ``c`` -- :func:`.c.to_c`, a C99 right-hand side and Jacobian with a header, an
  example driver and a Makefile (a directory);
- ``json`` -- :func:`.json.to_json` / :func:`.json.from_json`, a lossless,
  ``eval``-free round trip of the model's parts;
- ``petab`` -- :func:`.petab.to_petab`, the PEtab 1.0 problem of a fit (the model's
  SBML, the dataset's measurements, dosing as conditions, the error model, the varied
  parameters; a directory, options ``data=`` and :func:`nanopk.fit`'s keywords).

The registry (:func:`exporters`) is what :func:`export`, ``nanopk.to_<format>`` and
``nanopk export MODEL --<format> PATH`` read, so a format is listed once.  An installed
package adds one through the entry-point group ``nanopk.exporters``
(:data:`ENTRY_POINT_GROUP`), nothing in nanopk changing::

    [project.entry-points."nanopk.exporters"]
    mmd = "labexport:to_mermaid"     # to_mermaid(model, path, **options)

The object named is a function ``f(model, path, **options)`` that writes ``path``, or
an :class:`Exporter` (to say the target is a directory, or describe it).

``nanopk.export`` is this package *and* :func:`export`: the package is callable, so
``nanopk.export(model, "sbml", "model.xml")`` works however ``nanopk.export`` was
reached (the attribute is the package as soon as any exporter module is imported).
The submodules load on first use, so importing nanopk never needs libsbml.
"""
from __future__ import annotations

import functools
import importlib
import sys
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..errors import ExportError, suggest

__all__ = ["export", "exporters", "Exporter", "register_exporter", "clear_registry_cache", "ENTRY_POINT_GROUP",
           "to_sbml", "to_c", "to_json", "from_json"]

#: The entry-point group through which an installed package adds an export format.
ENTRY_POINT_GROUP = "nanopk.exporters"


@dataclass(frozen=True)
class Exporter:
    """One export format.

    Parameters
    ----------
    name : str
        The format (``"sbml"``); the CLI option ``--<name>``.
    function : callable or str
        ``function(model, path, **options)``, or ``"module:attribute"`` naming it
        (loaded on first use).
    target : str
        ``"FILE"`` or ``"DIR"``: what ``path`` names (shown by the CLI).
    description : str
        One line for ``nanopk export --help``.
    origin : str
        Where the format comes from (``"nanopk"`` or the entry point).
    """

    name: str
    function: Callable | str
    target: str = "FILE"
    description: str = ""
    origin: str = "nanopk"

    def load(self) -> Callable:
        """The exporting function (importing its module on first use)."""
        if not isinstance(self.function, str):
            return self.function
        module, _, attr = self.function.partition(":")
        try:
            obj = getattr(importlib.import_module(module), attr) if attr else importlib.import_module(module)
        except Exception as exc:  # a plugin's own import error: say whose
            raise ExportError(f"export format {self.name!r} ({self.origin}) cannot be loaded from "
                              f"{self.function!r}: {type(exc).__name__}: {exc}") from exc
        obj = obj.load() if isinstance(obj, Exporter) else obj
        if not callable(obj):
            raise ExportError(f"export format {self.name!r} ({self.origin}): {self.function!r} is a "
                              f"{type(obj).__name__}, not a function f(model, path, **options) or an Exporter")
        return obj


_BUILTIN = (
    Exporter("sbml", "nanopk.export.sbml:to_sbml", "FILE", "SBML Level 3 Version 2 (needs python-libsbml)"),
    Exporter("c", "nanopk.export.c:to_c", "DIR", "C99 right-hand side and Jacobian, header, driver and Makefile"),
    Exporter("json", "nanopk.export.json:to_json", "FILE", "the model's parts as JSON (lossless, read by from_json)"),
    Exporter("petab", "nanopk.export.petab:to_petab", "DIR",
             "PEtab 1.0 fit problem of the model and --data DATASET (SBML, tables, problem.yaml)"),
)
#: Option names ``nanopk export`` has already: a format may not take them.
_RESERVED = frozenset({"particle", "help", "model", "data", "vary"})
#: Formats registered at run time (:func:`register_exporter`).
_REGISTERED: dict[str, Exporter] = {}


def _entry_points() -> list:
    from importlib.metadata import entry_points

    return list(entry_points(group=ENTRY_POINT_GROUP))


@functools.lru_cache(maxsize=None)
def _discover() -> tuple[dict[str, Exporter], tuple[str, ...]]:
    found = {e.name: e for e in _BUILTIN}
    conflicts = []
    for ep in _entry_points():
        dist = getattr(getattr(ep, "dist", None), "name", None) or "an installed package"
        origin = f"entry point {ep.name} = {ep.value!r} of {dist}"
        if ep.name in found or ep.name in _RESERVED or not ep.name.isidentifier():
            # Refused, not dropped: export() and the CLI report it when the name is used.
            conflicts.append(f"export format {ep.name!r} of the {origin} "
                             + ("clashes with nanopk's own; rename the entry point" if ep.name in found
                                else f"clashes with the option --{ep.name} of nanopk export; rename the entry point"
                                if ep.name in _RESERVED else "is not an identifier (it becomes the CLI option --NAME)"))
            continue
        found[ep.name] = Exporter(ep.name, ep.value, "PATH", f"from {dist}", origin)
    found.update(_REGISTERED)
    return found, tuple(conflicts)


def clear_registry_cache() -> None:
    """Forget the discovered formats (re-read the entry points on next use)."""
    _discover.cache_clear()


def register_exporter(exporter: Exporter) -> None:
    """Register ``exporter`` for this process (a package uses the entry point instead)."""
    if not isinstance(exporter, Exporter):
        raise ExportError(f"register_exporter() takes a nanopk.export.Exporter, not {type(exporter).__name__}")
    if exporter.name in {e.name for e in _BUILTIN} | _RESERVED or not exporter.name.isidentifier():
        raise ExportError(f"export format name {exporter.name!r} is taken by nanopk or not an identifier; "
                          f"built-in formats: {', '.join(e.name for e in _BUILTIN)}")
    _REGISTERED[exporter.name] = exporter
    clear_registry_cache()


def exporters() -> dict[str, Exporter]:
    """``{format: Exporter}``: nanopk's formats, then installed packages' (entry points)."""
    return dict(_discover()[0])


def registry_problems() -> list[str]:
    """Entry points that were refused (a clash with a built-in name, a bad name)."""
    return list(_discover()[1])


def export(model, fmt: str, path, **options) -> list[Path]:
    """Write ``model`` in format ``fmt`` to ``path``; return the paths written.

    Parameters
    ----------
    model : nanopk.Model
    fmt : str
        A registered format (:func:`exporters`): ``"sbml"``, ``"c"``, ``"json"`` or one
        an installed package adds.
    path : str or Path
        The file (or, for ``"c"``, the directory) to write.
    **options
        Passed to the format's function (e.g. ``params={...}`` for sbml and c).

    Returns
    -------
    list of Path
        What was written (the files of the C directory; else ``[path]``).

    Raises
    ------
    ExportError
        ``fmt`` is not registered (the message lists the registered formats), two
        packages declare it, the format cannot be loaded, or it wrote nothing at ``path``.

    Examples
    --------
    >>> import nanopk, tempfile, pathlib
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "m.json"
    >>> nanopk.export(nanopk.load_model("one_compartment_iv"), "json", out) == [out]
    True
    """
    found, conflicts = _discover()
    # A name two packages claim is ambiguous: refuse it rather than pick one silently.
    clash = [c for c in conflicts if c.startswith(f"export format {fmt!r}")]
    if clash:
        raise ExportError(clash[0])
    if fmt not in found:
        raise ExportError(f"unknown export format {fmt!r}{suggest(str(fmt), found)}; registered formats: {', '.join(found)}")
    exporter = found[fmt]
    written = exporter.load()(model, path, **options)
    if isinstance(written, (list, tuple)) and written and all(isinstance(w, (str, Path)) for w in written):
        return [Path(w) for w in written]
    if not Path(path).exists():
        raise ExportError(f"export format {fmt!r} ({exporter.origin}) returned without writing {str(path)!r}")
    return [Path(path)]


def __getattr__(name):
    # to_<format> of the registry (to_sbml, to_c, to_json); from_json is the JSON importer.
    if name == "from_json":
        return importlib.import_module("nanopk.export.json").from_json
    if name.startswith("to_"):
        found = _discover()[0]
        if name[3:] in found:
            return found[name[3:]].load()
    raise AttributeError(f"module 'nanopk.export' has no attribute {name!r}")


class _CallablePackage(types.ModuleType):
    """``nanopk.export`` the package, callable as :func:`export` (module docstring)."""

    def __call__(self, model, fmt: str, path, **options) -> list[Path]:
        return export(model, fmt, path, **options)


sys.modules[__name__].__class__ = _CallablePackage
