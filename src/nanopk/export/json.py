"""JSON round trip of a model: ``to_json(model)`` and ``from_json(text_or_path)``.

The document holds the model as it was composed -- name, description, metadata,
dose target and its *parts* (states, parameters, fluxes, rate rules, assignments,
observables, notes) -- so ``from_json(to_json(m))`` rebuilds the same
:class:`nanopk.Model` (same :attr:`~nanopk.Model.structure_hash`, same equations,
same parameter values).  What the model derives itself (the ``depot`` state, the
``infusion`` flux, organ and ``total`` observables) is not stored twice.

Expressions are stored twice: ``"text"``, SymPy's readable string (for people and
diffs), and ``"tree"``, an exact expression tree that :func:`from_json` rebuilds
without ``eval``:

    symbol       {"symbol": "k10", "assumptions": {"real": true}}
    integer      5            rational  {"rational": [1, 5]}
    float        {"float": "0.1"}          (``repr`` of the double: exact)
    constant     {"constant": "Pi"}        (Pi, Exp1, true, false, Infinity, ...)
    application  {"function": "Mul", "args": [...]}   (SymPy class by name)

Only SymPy classes are looked up by name, so loading a document cannot execute code.
The ``"tree"`` is authoritative; edit ``"text"`` alone and it is ignored.

Format version 1::

    {"format": "nanopk-model", "version": 1, "name": ..., "description": ...,
     "dose_target": ..., "metadata": {...}, "parts": [...],
     "parameter_values": {name: value}, "structure_hash": ..., "nanopk_version": ...}

``nanopk_version`` says which nanopk wrote the document; reading does not depend on it.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import sympy as sp

from .._json import json_safe, nonfinite_as_text, provenance
from ..errors import ExportError, ModelError
from ..model import Model
from ..parts import Assignment, Flux, Observable, Parameter, Part, RateRule, State

__all__ = ["to_json", "from_json", "model_to_dict", "model_from_dict", "expr_to_tree", "expr_from_tree", "FORMAT", "VERSION"]

FORMAT = "nanopk-model"
VERSION = 1

_CONSTANTS = {
    "Pi": sp.S.Pi, "Exp1": sp.S.Exp1, "BooleanTrue": sp.S.true, "BooleanFalse": sp.S.false,
    "Infinity": sp.S.Infinity, "NegativeInfinity": sp.S.NegativeInfinity, "NaN": sp.S.NaN,
    "ImaginaryUnit": sp.S.ImaginaryUnit, "EulerGamma": sp.S.EulerGamma,
}


# ----------------------------------------------------------------------------- expressions
def _sympy_class(name: str):
    """The SymPy class called ``name`` (top-level namespace, plus ExprCondPair), or None."""
    if name == "ExprCondPair":
        from sympy.functions.elementary.piecewise import ExprCondPair

        return ExprCondPair
    cls = getattr(sp, name, None)
    return cls if isinstance(cls, type) and issubclass(cls, sp.Basic) else None


def expr_to_tree(expr) -> Any:
    """An exact, JSON-serialisable tree of a SymPy expression (see the module docstring)."""
    expr = sp.sympify(expr)
    if expr.is_Symbol:
        assumptions = getattr(expr, "_assumptions_orig", None)
        if assumptions is None:  # SymPy < 1.12
            assumptions = expr.assumptions0
        return {"symbol": expr.name, "assumptions": {k: bool(v) for k, v in assumptions.items() if v is not None}}  # order kept: srepr prints it
    if expr.is_Integer:
        return int(expr)
    if expr.is_Rational:
        return {"rational": [int(expr.p), int(expr.q)]}
    if expr.is_Float:
        if expr._prec == 53:
            return {"float": repr(float(expr))}
        return {"float": sp.srepr(expr).split("'")[1], "precision": int(expr._prec)}
    name = type(expr).__name__
    if not expr.args:
        if name in _CONSTANTS and _CONSTANTS[name] is expr:
            return {"constant": name}
        raise ExportError(f"cannot write {name} ({expr}) to JSON")
    if _sympy_class(name) is not type(expr):
        raise ExportError(f"cannot write {name} in {sp.sstr(expr)[:80]} to JSON: not a SymPy class (undefined functions are not supported)")
    return {"function": name, "args": [expr_to_tree(a) for a in expr.args]}


def expr_from_tree(tree) -> sp.Basic:
    """Rebuild the SymPy expression of :func:`expr_to_tree` (no ``eval``)."""
    if isinstance(tree, bool):
        return sp.S.true if tree else sp.S.false
    if isinstance(tree, int):
        return sp.Integer(tree)
    if not isinstance(tree, dict):
        raise ModelError(f"expression tree node must be an integer or an object (got {tree!r})")
    if "symbol" in tree:
        return sp.Symbol(str(tree["symbol"]), **{str(k): bool(v) for k, v in tree.get("assumptions", {}).items()})
    if "rational" in tree:
        p, q = tree["rational"]
        return sp.Rational(int(p), int(q))
    if "float" in tree:
        if "precision" in tree:
            return sp.Float(tree["float"], precision=int(tree["precision"]))
        return sp.Float(float(tree["float"]))
    if "constant" in tree:
        if tree["constant"] not in _CONSTANTS:
            raise ModelError(f"unknown constant {tree['constant']!r}; valid: {', '.join(_CONSTANTS)}")
        return _CONSTANTS[tree["constant"]]
    if "function" in tree:
        name = str(tree["function"])
        cls = _sympy_class(name)
        if cls is None:
            raise ModelError(f"unknown SymPy function {name!r} in a model document")
        return cls(*[expr_from_tree(a) for a in tree.get("args", [])])
    raise ModelError(f"cannot read expression tree node {tree!r}")


def _expr(expr) -> dict:
    return {"text": sp.sstr(expr), "tree": expr_to_tree(expr)}


def _read_expr(obj, where: str):
    if not isinstance(obj, dict) or "tree" not in obj:
        raise ModelError(f"{where}: expected an expression object with 'tree' (and 'text')")
    return expr_from_tree(obj["tree"])


# ----------------------------------------------------------------------------- numbers
def _num(x: float):
    x = float(x)
    return x if math.isfinite(x) else nonfinite_as_text(x)


def _read_num(x) -> float:
    return float(x)  # float("inf"), float("-inf"), float("nan") read the strings back


def _jsonable(obj):
    """Metadata made JSON-safe (:func:`nanopk._json.json_safe`): paths and other objects
    become strings, floats stay exact, a non-finite one its text."""
    return json_safe(obj, nonfinite=nonfinite_as_text)


# ----------------------------------------------------------------------------- model
def _part_to_dict(part: Part) -> dict:
    return {
        "name": part.name,
        "states": [
            {"name": s.name, "kind": s.kind, "unit": s.unit,
             "initial": s.initial if isinstance(s.initial, str) else _num(s.initial),
             "initial_is_name": isinstance(s.initial, str),
             "organ": s.organ, "volume": s.volume, "description": s.description}
            for s in part.states
        ],
        "parameters": [
            {"name": p.name, "value": _num(p.value), "unit": p.unit, "source": p.source,
             "bounds": [_num(p.bounds[0]), _num(p.bounds[1])], "description": p.description}
            for p in part.parameters
        ],
        "fluxes": [
            {"name": f.name, "source": f.source, "target": f.target, "rate": _expr(f.rate), "description": f.description}
            for f in part.fluxes
        ],
        "rate_rules": [{"state": r.state, "expr": _expr(r.expr), "description": r.description} for r in part.rate_rules],
        "assignments": [
            {"name": a.name, "expr": _expr(a.expr), "unit": a.unit, "description": a.description} for a in part.assignments
        ],
        "observables": [
            {"name": o.name, "expr": _expr(o.expr), "unit": o.unit, "description": o.description} for o in part.observables
        ],
        "notes": list(part.notes),
        "requires": list(part.requires),
        "provides": list(part.provides),
        "groups": [list(g) for g in part.groups],
    }


def _part_from_dict(d: dict, i: int) -> Part:
    where = f"parts[{i}] ({d.get('name', '?')!r})"
    try:
        states = tuple(
            State(s["name"], s.get("kind", "particle"), s.get("unit", "ug"),
                  s["initial"] if s.get("initial_is_name") else _read_num(s.get("initial", 0.0)),
                  s.get("organ"), s.get("volume"), s.get("description", ""))
            for s in d.get("states", [])
        )
        parameters = tuple(
            Parameter(p["name"], _read_num(p["value"]), p["unit"], p["source"],
                      tuple(_read_num(b) for b in p.get("bounds", [0.0, "inf"])), p.get("description", ""))
            for p in d.get("parameters", [])
        )
        fluxes = tuple(
            Flux(f["name"], f["source"], f["target"], _read_expr(f["rate"], f"{where} flux {f['name']!r}"), f.get("description", ""))
            for f in d.get("fluxes", [])
        )
        rate_rules = tuple(
            RateRule(r["state"], _read_expr(r["expr"], f"{where} rate rule {r['state']!r}"), r.get("description", ""))
            for r in d.get("rate_rules", [])
        )
        assignments = tuple(
            Assignment(a["name"], _read_expr(a["expr"], f"{where} assignment {a['name']!r}"), a["unit"], a.get("description", ""))
            for a in d.get("assignments", [])
        )
        observables = tuple(
            Observable(o["name"], _read_expr(o["expr"], f"{where} observable {o['name']!r}"), o.get("unit", "percent_ID"), o.get("description", ""))
            for o in d.get("observables", [])
        )
    except KeyError as exc:
        raise ModelError(f"{where}: missing key {exc.args[0]!r}") from None
    return Part(d.get("name", f"part{i}"), states, parameters, fluxes, rate_rules, assignments, observables, tuple(d.get("notes", ())),
                tuple(d.get("requires", ())), tuple(d.get("provides", ())),
                tuple(tuple(g) for g in d.get("groups", ())))


def model_to_dict(model: Model) -> dict:
    """The JSON document of ``model`` as a dict (see the module docstring)."""
    return {
        "format": FORMAT,
        "version": VERSION,
        "name": model.name,
        "description": model.description,
        "dose_target": model.dose_target,
        "metadata": _jsonable(model.metadata),
        "parts": [_part_to_dict(p) for p in model.parts],
        # Values as the model holds them: the built-in dose and infusion_rate may live
        # on the model rather than on a part (Model.with_parameters).
        "parameter_values": {p.name: _num(p.value) for p in model.parameters.values()},
        **provenance(model),  # structure_hash and the writing nanopk_version
    }


def model_from_dict(doc: dict, validate: bool = True) -> Model:
    """Rebuild a :class:`Model` from :func:`model_to_dict`'s dict."""
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ModelError(f"not a nanopk model document: expected \"format\": \"{FORMAT}\" (got {doc.get('format') if isinstance(doc, dict) else type(doc).__name__!r})")
    if doc.get("version") != VERSION:
        raise ModelError(f"nanopk model document version {doc.get('version')!r} is not supported (this nanopk reads version {VERSION})")
    missing = [k for k in ("name", "dose_target", "parts") if k not in doc]
    if missing:
        raise ModelError(f"nanopk model document lacks {', '.join(repr(m) for m in missing)}")
    parts = [_part_from_dict(d, i) for i, d in enumerate(doc["parts"])]
    model = Model(doc["name"], parts, doc["dose_target"], doc.get("description", ""), doc.get("metadata") or {})
    stored = {k: _read_num(v) for k, v in (doc.get("parameter_values") or {}).items()}
    changed = {k: v for k, v in stored.items() if k in model.parameters and model.parameters[k].value != v}
    if changed:
        model = model.with_parameters(changed)
    if validate:
        model.validate()
    expected = doc.get("structure_hash")
    if expected and expected != model.structure_hash:
        raise ModelError(
            f"model {doc['name']!r} read from JSON has structure {model.structure_hash}, but the document "
            f"records {expected}: its equations were edited or were written by an incompatible nanopk"
        )
    return model


def to_json(model: Model, path=None, indent: int = 1) -> str:
    """Write ``model`` as JSON; return the text (and write it to ``path`` if given).

    Raises
    ------
    ExportError
        If an expression uses something with no JSON form (an undefined function).
    """
    text = json.dumps(model_to_dict(model), indent=indent, ensure_ascii=False, allow_nan=False)
    if path is not None:
        Path(path).write_text(text + "\n", encoding="utf-8")
    return text


def from_json(text_or_path, validate: bool = True) -> Model:
    """Read a model written by :func:`to_json`, from JSON text, a path or a dict.

    Parameters
    ----------
    text_or_path : str, Path or dict
        JSON text (starts with ``{``), a file path, or the parsed document.
    validate : bool
        Run :meth:`Model.validate` on the result.

    Raises
    ------
    ModelError
        If the document is not a nanopk model, has an unsupported version, lacks a
        key, or its equations do not match its recorded ``structure_hash``.
    """
    if isinstance(text_or_path, dict):
        doc = text_or_path
    else:
        text = str(text_or_path) if not isinstance(text_or_path, Path) else None
        if text is None or not text.lstrip().startswith("{"):
            path = Path(text_or_path)
            if not path.exists():
                raise ModelError(f"model document {str(path)!r} does not exist")
            text = path.read_text(encoding="utf-8")
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ModelError(f"model document is not valid JSON: {exc}") from None
    return model_from_dict(doc, validate=validate)
