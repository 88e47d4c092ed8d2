"""The registries at nanopk's extension points: mechanism families, part requirements,
comparison groups, export formats; and the one JSON cleaner.

Plugins arriving by entry point are tested in ``test_entry_points.py``; here the
built-in contents, the run-time registration and every refusal message.
"""
import json
import math
import sys
import types

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import nanopk
from nanopk import export as export_package
from nanopk.mechanisms import base as mechanisms
from nanopk.parts import Flux, Parameter, Part, State, symbol

BUILTIN_FAMILIES = ["aggregation", "circulation", "classic", "clearance", "corona", "dissolution", "epr", "immunity",
                    "mps", "targeting"]


@pytest.fixture
def lab_family(monkeypatch):
    """A family ``labx`` registered at run time from an in-memory module; removed afterwards."""
    module = types.ModuleType("labx_mechanisms")

    @mechanisms.declare(requires=("epr",), provides=("tumour_binding",), groups={"binding": ("kb",)})
    def tumour_binding(ctx, kb=1.0):
        """Tumour-cell binding (needs the EPR tumour)."""
        return Part("labx.tumour_binding", parameters=(Parameter("kb_tumour", kb, "1/h", "lab"),))

    tumour_binding.__module__ = module.__name__
    module.tumour_binding = tumour_binding
    monkeypatch.setitem(sys.modules, module.__name__, module)
    mechanisms.register_family("labx", module.__name__)
    yield module
    mechanisms._REGISTERED.pop("labx", None)
    mechanisms.clear_registry_cache()


def _spec(tmp_path, mechanisms_toml, name="m"):
    path = tmp_path / f"{name}.toml"
    path.write_text(f'name = "{name}"\nspecies = "mouse"\ndose_target = "venous_blood"\n'
                    '[dose]\nvalue = 1.0\nunit = "ug"\nsource = "nominal"\n' + mechanisms_toml)
    return path


# ------------------------------------------------------------------ mechanisms
def test_the_families_are_the_modules_of_the_package():
    """Discovery finds every mechanism module (and not the registry module itself); FAMILIES follows it."""
    found = mechanisms.families()
    assert sorted(found) == BUILTIN_FAMILIES
    assert found["epr"] == "nanopk.mechanisms.epr"
    assert mechanisms.FAMILIES == tuple(found)
    assert sorted(mechanisms.variants("epr")) == ["lin_tumour", "two_pore_tumour"]


def test_unknown_family_and_variant_name_the_valid_ones():
    """A misspelt family or variant gets the nearest name and the valid list."""
    with pytest.raises(nanopk.SpecError, match=r"^unknown mechanism 'circulaton.whole_body'; did you mean 'circulation'\?; "
                                               r"write 'family.variant' with family one of aggregation, "):
        mechanisms.resolve_mechanism("circulaton.whole_body")
    with pytest.raises(nanopk.SpecError, match=r"^mechanism family 'epr' has no variant 'lin_tumor'; did you mean "
                                               r"'lin_tumour'\?; valid: lin_tumour, two_pore_tumour$"):
        mechanisms.resolve_mechanism("epr.lin_tumor")


def test_parts_built_through_the_registry_say_what_they_provide():
    """Each part of a bundled model carries its family and 'family.variant'; what a
    mechanism adds to ctx.provided (mps: phagocytic_uptake) is provided too."""
    model = nanopk.load_model("mouse_tumour_full")
    provides = {p.name: p.provides for p in model.parts}
    assert provides["circulation.whole_body"][:2] == ("circulation", "circulation.whole_body")
    assert "phagocytic_uptake" in provides["mps.opsonisation_uptake"]
    requires = {p.name: p.requires for p in model.parts}  # built-ins declare what they need (nanopk.mechanisms.declare)
    assert requires["mps.opsonisation_uptake"] == ("circulation", "corona")
    assert requires["targeting.receptor_binding"] == ("epr",) and requires["circulation.whole_body"] == ()


def test_a_declared_requirement_is_checked_when_the_spec_is_built(lab_family, tmp_path):
    """labx.tumour_binding requires 'epr': without it the spec error names the two EPR variants."""
    path = _spec(tmp_path, '[[mechanisms]]\nuse = "circulation.whole_body"\n[[mechanisms]]\nuse = "labx.tumour_binding"\n')
    with pytest.raises(nanopk.SpecError, match=r"labx.tumour_binding requires 'epr', which no mechanism listed before it "
                                               r"provides; list one of epr.lin_tumour, epr.two_pore_tumour before it"):
        nanopk.load_model(path)
    assert mechanisms.providers_of("tumour_binding") == ["labx.tumour_binding"]


def test_a_met_requirement_builds_and_the_part_carries_its_groups(lab_family, tmp_path):
    """With epr.lin_tumour first, the lab part builds; it requires 'epr', provides its
    declared capability, and groups kb_tumour as 'binding'."""
    path = _spec(tmp_path, '[[mechanisms]]\nuse = "circulation.whole_body"\n[[mechanisms]]\nuse = "epr.lin_tumour"\n'
                           '[[mechanisms]]\nuse = "labx.tumour_binding"\n')
    model = nanopk.load_model(path)
    part = next(p for p in model.parts if p.name == "labx.tumour_binding")
    assert part.requires == ("epr",)
    assert part.provides == ("labx", "labx.tumour_binding", "tumour_binding")
    assert part.groups == (("kb_tumour", "binding"),)


def test_validate_names_an_unmet_requirement_and_who_would_meet_it():
    """A hand-built model whose part requires 'circulation': validate() says which part, what, and who provides it."""
    pool = Part("pool", states=(State("pool"), State("sink", "sink")),
                parameters=(Parameter("k", 0.1, "1/h", "test"),),
                fluxes=(Flux("out", "pool", "sink", symbol("k") * symbol("pool")),), requires=("circulation",))
    with pytest.raises(nanopk.ModelError, match=r"part 'pool' requires 'circulation', which no part of the model provides; "
                                                r"add one of: circulation.whole_body"):
        nanopk.Model("hand", [pool], "pool").validate()
    met = Part("circ", provides=("circulation",))
    model = nanopk.Model("hand", [pool, met], "pool").validate()
    sim = model.simulate([0.0, 10.0])
    assert sim["total"].iloc[-1] == pytest.approx(100.0, rel=1e-9)


def test_a_requirement_on_a_declared_name_is_met_by_the_part_that_declares_it():
    """'state:pool' is offered by the part declaring the state, without listing it in provides."""
    pool = Part("pool", states=(State("pool"), State("sink", "sink")))
    user = Part("user", parameters=(Parameter("k", 0.1, "1/h", "test"),),
                fluxes=(Flux("out", "pool", "sink", symbol("k") * symbol("pool")),), requires=("state:pool",))
    assert "state:pool" in pool.offers()
    nanopk.Model("hand", [pool, user], "pool").validate()


def test_adding_parts_keeps_requires_provides_and_groups():
    """Part + Part concatenates groups and merges requires/provides without duplicates."""
    a = Part("a", requires=("x",), provides=("y",), groups=(("p", "g"),))
    b = Part("b", requires=("x", "z"), provides=("y", "w"), groups=(("q", "g"),))
    c = a + b
    assert (c.requires, c.provides, c.groups) == (("x", "z"), ("y", "w"), (("p", "g"), ("q", "g")))


def test_the_json_round_trip_keeps_requires_provides_and_groups():
    """to_json/from_json is lossless for the new Part fields."""
    model = nanopk.load_model("mouse_pbpk")
    back = nanopk.from_json(nanopk.to_json(model))
    assert [(p.requires, p.provides, p.groups) for p in back.parts] == [(p.requires, p.provides, p.groups)
                                                                       for p in model.parts]


def test_comparison_groups_come_from_the_declaring_mechanisms():
    """compare's default tests: uptake and release apart, tumour-cell uptake apart from MPS
    uptake, and a parameter no mechanism groups (targeting's kon_ligand) alone."""
    from nanopk.compare import default_parameter_groups

    model = nanopk.load_model("mouse_tumour_full")
    groups = default_parameter_groups(model, ["Kmax_liver", "Krelease_liver", "Kmax_tumour", "P_tumour", "kon_HSA",
                                              "kon_ligand"])
    assert groups == {"phagocytic uptake": ["Kmax_liver"], "phagocyte release": ["Krelease_liver"],
                      "tumour cell uptake": ["Kmax_tumour"], "extravasation": ["P_tumour"],
                      "corona and opsonisation": ["kon_HSA"], "kon_ligand": ["kon_ligand"]}


# ------------------------------------------------------------------ exporters
def test_the_export_registry_lists_the_builtin_formats():
    """sbml (a file), c (a directory), json (a file), petab (a directory), in that order; nanopk.to_json is the registry's."""
    formats = export_package.exporters()
    assert [(n, e.target) for n, e in formats.items()] == [("sbml", "FILE"), ("c", "DIR"), ("json", "FILE"), ("petab", "DIR")]
    from nanopk.export.json import to_json

    assert nanopk.to_json is to_json


def test_unknown_format_lists_the_registered_ones():
    """nanopk.export(model, 'jsn', ...) names the nearest format and every registered one."""
    with pytest.raises(nanopk.ExportError, match=r"^unknown export format 'jsn'; did you mean 'json'\?; "
                                                 r"registered formats: sbml, c, json, petab$"):
        nanopk.export(nanopk.load_model("one_compartment_iv"), "jsn", "m.json")


def test_export_is_callable_after_a_submodule_import(tmp_path):
    """Importing nanopk.export.c binds the package to nanopk.export; it is still callable."""
    import nanopk.export.c  # noqa: F401

    written = nanopk.export(nanopk.load_model("one_compartment_iv"), "c", tmp_path / "c")
    assert sorted(p.name for p in written) == ["Makefile", "example_driver.c", "one_compartment_iv.c",
                                               "one_compartment_iv.h"]


def test_a_registered_format_is_exported_and_offered_by_the_cli(tmp_path, capsys):
    """register_exporter adds a format to export(), and nanopk export's options; a clash is refused."""
    from nanopk.cli import main

    def to_names(model, path):
        path.write_text("\n".join(model.state_names) + "\n")

    monkey = export_package.Exporter("names", to_names, "FILE", "state names, one a line", "test")
    export_package.register_exporter(monkey)
    try:
        out = tmp_path / "names.txt"
        assert nanopk.export(nanopk.load_model("one_compartment_iv"), "names", out) == [out]
        assert out.read_text().split() == ["central", "eliminated", "depot"]
        assert main(["export", "one_compartment_iv"]) == 2
        assert ("needs one of --sbml FILE, --c DIR, --json FILE, --petab DIR or --names FILE" in capsys.readouterr().err)
    finally:
        export_package._REGISTERED.pop("names", None)
        export_package.clear_registry_cache()
    with pytest.raises(nanopk.ExportError, match=r"^export format name 'json' is taken by nanopk or not an identifier; "
                                                 r"built-in formats: sbml, c, json, petab$"):
        export_package.register_exporter(export_package.Exporter("json", to_names))


def test_an_exporter_that_writes_nothing_is_an_error(tmp_path):
    """A format returning without writing its path is not reported as written."""
    export_package.register_exporter(export_package.Exporter("void", lambda model, path: None, origin="test"))
    try:
        with pytest.raises(nanopk.ExportError, match=r"^export format 'void' \(test\) returned without writing"):
            nanopk.export(nanopk.load_model("one_compartment_iv"), "void", tmp_path / "v.txt")
    finally:
        export_package._REGISTERED.pop("void", None)
        export_package.clear_registry_cache()


# ------------------------------------------------------------------ delivery, explicit inputs
def test_delivery_takes_model_parameters_and_draws():
    """delivery(model, params, draws): point values at params; intervals only with ≥ 10 draws, and they bracket the value."""
    from nanopk.delivery import delivery

    model = nanopk.load_model("mouse_tumour")
    plain = delivery(model, {"Kmax_tumour": 0.5})
    assert plain["DE24"]["ci95"] is None and plain["uncertainty"] == {"source": None, "n_draws": 0, "n_failed": 0}
    rng = np.random.default_rng(0)
    draws = [{"Kmax_tumour": float(k)} for k in 0.5 * np.exp(rng.normal(0.0, 0.2, 12))]
    out = delivery(model, {"Kmax_tumour": 0.5}, draws, source="test")
    assert out["DE24"]["value"] == pytest.approx(plain["DE24"]["value"], rel=1e-12)
    lo, hi = out["DE168"]["ci95"]
    assert lo < out["DE168"]["value"] < hi
    assert out["uncertainty"] == {"source": "test", "n_draws": 12, "n_failed": 0}
    with pytest.raises(nanopk.ModelError, match=r"^expected a nanopk Model, a model name, a spec path or a fit result "
                                                r"\(got int\)$"):
        nanopk.delivery_efficiency(3)


# ------------------------------------------------------------------ JSON
_leaf = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True, allow_infinity=True),
                  st.text(max_size=5))
_tree = st.recursive(_leaf, lambda c: st.one_of(st.lists(c, max_size=4), st.dictionaries(st.text(max_size=3), c, max_size=4)),
                     max_leaves=20)


@settings(max_examples=60, deadline=None)
@given(_tree)
def test_json_safe_output_is_strict_json_and_keeps_finite_numbers(obj):
    """Any nesting of numbers (NaN and ±inf included), strings and None: json_safe writes with
    allow_nan=False, and reading it back returns every finite number exactly."""
    from nanopk._json import json_safe

    text = json.dumps(json_safe(obj), allow_nan=False)

    def finite(x):
        if isinstance(x, float):
            return x if math.isfinite(x) else None
        if isinstance(x, dict):
            return {k: finite(v) for k, v in x.items()}
        if isinstance(x, list):
            return [finite(v) for v in x]
        return x

    assert json.loads(text) == finite(obj)
