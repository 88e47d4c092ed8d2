"""JSON export: model → JSON → model keeps the equations, values and simulation exactly."""
from __future__ import annotations

import json

import numpy as np
import pytest
import sympy as sp

import nanopk
from nanopk.export.json import expr_from_tree, expr_to_tree, from_json, to_json
from nanopk.parts import TIME, symbol

TIMES = [0.0, 0.1, 1.0, 4.0, 24.0, 72.0, 168.0]


@pytest.mark.parametrize("name", nanopk.list_models())
def test_round_trip_keeps_equations_values_and_simulation(name):
    """Same structure hash, structurally equal right-hand sides, same parameters and simulation to 1e-12."""
    model = nanopk.load_model(name)
    text = to_json(model)
    back = from_json(text)
    assert back.structure_hash == model.structure_hash
    assert back.state_names == model.state_names and back.parameter_names == model.parameter_names
    for ours, theirs in zip(model.rhs_expressions(), back.rhs_expressions()):
        assert ours == theirs  # SymPy structural equality: stronger than simplify(a - b) == 0
    assert {k: (p.value, p.unit, p.source, p.bounds) for k, p in back.parameters.items()} == \
        {k: (p.value, p.unit, p.source, p.bounds) for k, p in model.parameters.items()}
    assert list(back.observables) == list(model.observables)
    assert (back.name, back.description, back.dose_target) == (model.name, model.description, model.dose_target)
    assert back.metadata == json.loads(json.dumps(model.metadata))
    np.testing.assert_allclose(back.simulate(TIMES).to_numpy(), model.simulate(TIMES).to_numpy(), rtol=1e-12, atol=0)
    assert to_json(back) == text  # idempotent


def test_paths_builtin_values_and_lazy_names(tmp_path):
    """`nanopk.to_json`/`from_json` read and write files; the dose set on the model survives."""
    model = nanopk.load_model("one_compartment_iv").with_parameters(dose=42.0, k10=0.3)
    path = tmp_path / "model.json"
    nanopk.to_json(model, path)
    back = nanopk.from_json(path)
    assert back.parameters["dose"].value == 42.0 and back.parameters["k10"].value == 0.3
    assert nanopk.from_json(str(path)).structure_hash == model.structure_hash


def test_expression_trees_are_exact():
    """Floats, rationals, assumptions, Piecewise and constants survive the tree."""
    x = symbol("x")
    for expr in (
        sp.Float(0.1) * x + sp.Rational(3, 4) * sp.exp(-x / TIME),
        sp.Piecewise((x, x > 1), (sp.pi * x, True)),
        sp.Max(x, TIME) + sp.Heaviside(x - 2) + sp.Float("0.1", 60) * x,
    ):
        back = expr_from_tree(json.loads(json.dumps(expr_to_tree(expr))))
        assert sp.srepr(back) == sp.srepr(expr)


def test_edited_equations_are_detected():
    """A document whose equations no longer match its recorded structure hash is refused."""
    doc = json.loads(to_json(nanopk.load_model("one_compartment_iv")))
    doc["parts"][0]["fluxes"][0]["rate"]["tree"] = expr_to_tree(2 * symbol("k10") * symbol("central"))
    with pytest.raises(nanopk.ModelError, match=r"read from JSON has structure \w+, but the document records"):
        from_json(doc)
    del doc["structure_hash"]
    assert from_json(doc).rhs_expressions()[0] == -2 * symbol("k10") * symbol("central") + symbol("infusion_rate")


def test_reading_never_evaluates_code():
    """Only SymPy classes are looked up by name; anything else is an error."""
    doc = json.loads(to_json(nanopk.load_model("one_compartment_iv")))
    doc["parts"][0]["fluxes"][0]["rate"]["tree"] = {"function": "__import__", "args": [{"symbol": "os"}]}
    with pytest.raises(nanopk.ModelError, match="unknown SymPy function '__import__'"):
        from_json(doc)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"format": "something-else"}', "not a nanopk model document"),
        ('{"format": "nanopk-model", "version": 99}', "version 99 is not supported"),
        ('{"format": "nanopk-model", "version": 1}', "lacks 'name', 'dose_target', 'parts'"),
        ("{not json", "not valid JSON"),
    ],
)
def test_bad_documents_are_named(text, message):
    """Wrong format, version or missing keys give one clear ModelError."""
    with pytest.raises(nanopk.ModelError, match=message):
        from_json(text)


def test_missing_file_is_named(tmp_path):
    """A path that does not exist is named in the error."""
    with pytest.raises(nanopk.ModelError, match="does not exist"):
        from_json(tmp_path / "nope.json")
