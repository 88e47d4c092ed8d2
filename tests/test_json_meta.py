"""Every JSON nanopk writes says which nanopk wrote it and, where a model is involved, which equations.

Issue 23: ``nanopk_version`` (the package's version) and ``structure_hash``
(:attr:`nanopk.Model.structure_hash`) in every JSON output.  Each CLI command that takes
``--json`` is run here cheaply (small models, one varied parameter, fit compiled once per
structure); where a command would take minutes (``meta``, ``calibrate``) its writer is
checked with the expensive part replaced.
"""
from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

import nanopk
from nanopk._json import provenance, stamped
from nanopk.cli import main

VERSION = nanopk.__version__


def _hash(name, **kw):
    return nanopk.load_model(name, **kw).structure_hash


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    """The JSON of each command, by command name (run once for the module)."""
    d = tmp_path_factory.mktemp("json")
    runs = {
        "simulate": ["simulate", "one_compartment_iv", "--times", "1,24"],
        "datasets": ["datasets"],
        "check": ["check", "li2014_go_peg", "--model", "mouse_pbpk"],
        "fit": ["fit", "li2014_go_peg", "--model", "mouse_pbpk", "--vary", "Kmax_liver"],
        "sensitivity": ["sensitivity", "one_compartment_iv", "--output", "central@24h", "--no-check"],
        "population": ["population", "one_compartment_iv", "--spread", "k10=0.3", "--n", "10", "--output", "central@24h"],
        "scan": ["scan", "mouse_tumour_full", "--size", "20,50", "--output", "DE24"],
        "predict": ["predict", "--particle", "material=Au,core_diameter_nm=50,coating=PEG,coating_mw_da=5000"],
        "export": ["export", "two_compartment_iv", "--json"],
    }
    out = {}
    for name, argv in runs.items():
        path = d / f"{name}.json"
        rc = main(argv + [str(path)] if name == "export" else argv + ["--json", str(path)])
        assert rc in (0, 1, None), (name, rc)  # fit/check may exit 1 (a poor fit, a FAIL rule); the JSON is written
        out[name] = json.loads(path.read_text())
    # delivery from a fit JSON: the fit's hash travels to the delivery JSON
    fit_json = d / "tumour_fit.json"
    fit_json.write_text(json.dumps({"success": True, "structure_hash": "0123456789abcdef0123",
                                    "delivery": {"DE24": 1.0, "DE168": 0.5, "DEmax": 1.2}}))
    main(["delivery", str(fit_json), "--json", str(d / "delivery.json")])
    out["delivery"] = json.loads((d / "delivery.json").read_text())
    return out


@pytest.mark.parametrize("command, model", [
    ("simulate", "one_compartment_iv"), ("check", "mouse_pbpk"), ("fit", "mouse_pbpk"),
    ("sensitivity", "one_compartment_iv"), ("population", "one_compartment_iv"), ("export", "two_compartment_iv"),
])
def test_cli_json_names_version_and_model_hash(outputs, command, model):
    """`nanopk COMMAND ... --json F` writes nanopk_version and the structure hash of the model it used."""
    doc = outputs[command]
    assert doc["nanopk_version"] == VERSION
    assert doc["structure_hash"] == _hash(model)


def test_predict_json_names_the_particle_models_hash(outputs):
    """predict's JSON carries the hash of mouse_tumour_full built for the given particle (its equations)."""
    particle = nanopk.Particle(material="Au", core_diameter_nm=50, coating="PEG", coating_mw_da=5000)
    doc = outputs["predict"]
    assert doc["nanopk_version"] == VERSION
    assert doc["structure_hash"] == _hash(doc["model"], particle=particle)


def test_scan_json_has_a_hash_per_particle(outputs):
    """A scan's particles may differ in equations: each row carries its model's hash; the document the version."""
    doc = outputs["scan"]
    assert doc["nanopk_version"] == VERSION
    sizes = [r["core_diameter_nm"] for r in doc["rows"]]
    assert sizes == [20.0, 50.0]
    for row in doc["rows"]:
        particle = nanopk.Particle(material=row["material"], core_diameter_nm=row["core_diameter_nm"], coating="none")
        assert row["structure_hash"] == _hash("mouse_tumour_full", particle=particle)


def test_list_outputs_stamp_each_record(outputs, tmp_path, monkeypatch):
    """`datasets --json` and `models --json` stay lists; each record has the version (a model's row its hash)."""
    assert isinstance(outputs["datasets"], list) and len(outputs["datasets"]) >= 18
    assert {r["nanopk_version"] for r in outputs["datasets"]} == {VERSION}
    import nanopk.spec

    # two small models: the writer is what is tested, not the loading of all nine
    monkeypatch.setattr(nanopk.spec, "list_models", lambda: ["one_compartment_iv", "two_compartment_iv"])
    assert main(["models", "--json", str(tmp_path / "m.json")]) == 0
    rows = json.loads((tmp_path / "m.json").read_text())
    assert [(r["name"], r["nanopk_version"], r["structure_hash"]) for r in rows] == [
        ("one_compartment_iv", VERSION, _hash("one_compartment_iv")), ("two_compartment_iv", VERSION, _hash("two_compartment_iv"))]


def test_delivery_from_a_fit_json_keeps_the_fits_hash(outputs):
    """`nanopk delivery FIT.json --json F`: the version of the nanopk writing F, the hash of the fit's model."""
    doc = outputs["delivery"]
    assert doc["nanopk_version"] == VERSION
    assert doc["structure_hash"] == "0123456789abcdef0123"
    assert doc["DE24"] == 1.0


def test_fit_and_compare_to_json_through_the_api(tmp_path):
    """FitResult.to_json and Comparison.to_json (the API's writers) carry both fields; compare's is the reference group's model."""
    import inspect

    model = nanopk.load_model("mouse_pbpk")
    # the delta-method ratio intervals (no profile re-optimisations) where compare offers the choice
    fast = {"ratio_ci": "delta"} if "ratio_ci" in inspect.signature(nanopk.compare).parameters else {}
    cmp = nanopk.compare(model, {"PEG": "liu2014_au16_peg", "mixed_charge": "liu2014_au16_mixed_charge"},
                         vary=["Kmax_liver"], n_samples=10, **fast)
    doc = json.loads(cmp.to_json(tmp_path / "cmp.json"))
    assert (doc["nanopk_version"], doc["structure_hash"]) == (VERSION, model.structure_hash)
    fit_doc = doc["fits"]["PEG"]
    assert (fit_doc["nanopk_version"], fit_doc["structure_hash"]) == (VERSION, model.structure_hash)
    assert json.loads((tmp_path / "cmp.json").read_text()) == doc


def test_model_json_with_version_reads_back():
    """The model document carries nanopk_version and still reads back to the same structure."""
    from nanopk.export.json import from_json, to_json

    model = nanopk.load_model("two_compartment_iv")
    text = to_json(model)
    assert json.loads(text)["nanopk_version"] == VERSION
    assert from_json(text).structure_hash == model.structure_hash


def test_meta_json_names_the_model(tmp_path, monkeypatch):
    """`nanopk meta ... --json F`: the summary with the version and the hash of --model (the fits replaced by a stub summary)."""
    import nanopk.meta

    monkeypatch.setattr(nanopk.meta, "run_meta", lambda *a, **k: None)
    monkeypatch.setattr(nanopk.meta, "summarise", lambda store: {"n_datasets": 0, "datasets": []})
    assert main(["meta", str(tmp_path), "--model", "mouse_pbpk", "--json", str(tmp_path / "meta.json")]) in (0, None)
    doc = json.loads((tmp_path / "meta.json").read_text())
    assert (doc["nanopk_version"], doc["structure_hash"], doc["n_datasets"]) == (VERSION, _hash("mouse_pbpk"), 0)


def test_calibration_record_names_the_version(tmp_path):
    """save_calibration writes nanopk_version beside the constants; load_calibration reads the record back."""
    from nanopk.calibrate.store import load_calibration, save_calibration

    record = load_calibration()
    path = save_calibration({k: v for k, v in record.items() if k != "nanopk_version"}, tmp_path / "cal.json")
    back = load_calibration(path)
    assert back["nanopk_version"] == VERSION
    assert back["constants"] == json.loads(json.dumps(record["constants"], default=float))


def test_provenance_without_and_with_a_model():
    """provenance() gives the version alone, or with a Model or a hash string its structure hash."""
    assert provenance() == {"nanopk_version": VERSION}
    model = nanopk.load_model("one_compartment_iv")
    assert provenance(model) == {"nanopk_version": VERSION, "structure_hash": model.structure_hash}
    assert provenance("abc") == {"nanopk_version": VERSION, "structure_hash": "abc"}


@given(st.dictionaries(st.text(min_size=1, max_size=8), st.integers(), max_size=6))
def test_stamped_adds_the_fields_and_keeps_every_key(payload):
    """stamped() keeps every key and value of a dict (its own win) and adds the version; a list stamps each record."""
    out = stamped(payload)
    assert {k: out[k] for k in payload} == payload
    assert out["nanopk_version"] == payload.get("nanopk_version", VERSION)
    assert stamped([payload, {}]) == [out, {"nanopk_version": VERSION}]


def test_stamped_refuses_what_cannot_carry_the_fields():
    """A bare list of numbers or a string has nowhere to put the version: TypeError naming the type."""
    with pytest.raises(TypeError, match=r"stamped\(\) takes a dict or a list of dicts \(got str\)"):
        stamped("x")
    with pytest.raises(TypeError, match=r"\(got list\)"):
        stamped([1, 2])
