"""Recalling a built model from its recipe (nanopk.prebuilt).

A recalled model must be indistinguishable from a freshly built one -- the same states,
parameters, observables and structural hash, the same simulation to the last bit, the
same equations once something asks for them -- and a recipe that differs in anything
(spec text, particle, parameter overrides) must build anew.
"""
import hashlib
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import nanopk
import nanopk.prebuilt as prebuilt
import nanopk.spec as spec
from nanopk.errors import ModelError
from nanopk.resources import CacheWarning


@pytest.fixture
def skeletons(tmp_path, monkeypatch):
    """Skeletons go to a fresh folder (compiled libraries stay in the shared cache)."""
    monkeypatch.setattr(prebuilt, "_file", lambda key: tmp_path / "models" / f"{key}.pickle")
    return tmp_path / "models"


@pytest.fixture
def builds(skeletons, monkeypatch):
    """The list counts real builds."""
    calls = []
    real = spec._build_model
    monkeypatch.setattr(spec, "_build_model", lambda *a: calls.append(a[0].stem) or real(*a))
    return calls


def _is_deferred(model):
    return "_build" in model.__dict__


@pytest.mark.parametrize("name", nanopk.list_models())
def test_recalled_model_equals_the_built_one(name, builds):
    built = nanopk.load_model(name)
    recalled = nanopk.load_model(name)
    assert builds == [name]
    assert not _is_deferred(built) and _is_deferred(recalled)
    assert recalled.states == built.states
    assert list(recalled.parameters.values()) == list(built.parameters.values())
    assert recalled.observable_units == built.observable_units
    assert (recalled.name, recalled.dose_target, recalled.notes, recalled.metadata, repr(recalled)) == \
        (built.name, built.dose_target, built.notes, built.metadata, repr(built))
    assert recalled.structure_hash == built.structure_hash
    times = [0.5, 1.0, 24.0]
    np.testing.assert_array_equal(recalled.simulate(times).to_numpy(), built.simulate(times).to_numpy())
    assert _is_deferred(recalled)  # simulating from the compiled library needs no equations
    # The equations, on demand: the same fluxes, rate rules, assignments and observables.
    assert recalled.fluxes == built.fluxes
    assert builds == [name, name] and not _is_deferred(recalled)
    assert recalled.rate_rules == built.rate_rules and recalled.assignments == built.assignments
    assert list(recalled.observables.values()) == list(built.observables.values())


def test_each_recipe_ingredient_makes_its_own_key(builds):
    nanopk.load_model("mouse_pbpk")
    nanopk.load_model("mouse_pbpk", particle="material=Au,core_diameter_nm=20,coating=PEG,coating_mw_da=5000")
    nanopk.load_model("mouse_pbpk", params={"K50_liver": 2.0})
    nanopk.load_model("mouse_pbpk", params={"K50_liver": 3.0})
    assert builds == ["mouse_pbpk"] * 4
    again = [nanopk.load_model("mouse_pbpk", particle="material=Au,core_diameter_nm=20,coating=PEG,coating_mw_da=5000"), nanopk.load_model("mouse_pbpk", params={"K50_liver": 3.0})]
    assert builds == ["mouse_pbpk"] * 4 and all(_is_deferred(m) for m in again)
    assert again[1].parameters["K50_liver"].value == 3.0


def test_an_edited_spec_is_built_again(tmp_path, builds):
    path = tmp_path / "one.toml"
    text = nanopk.spec.model_path("one_compartment_iv").read_text()
    path.write_text(text)
    first = nanopk.load_model(path)
    path.write_text(text.replace('name = "one_compartment_iv"', 'name = "one_compartment_edited"'))
    second = nanopk.load_model(path)
    assert builds == ["one", "one"]
    assert (first.name, second.name) == ("one_compartment_iv", "one_compartment_edited")


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=st.floats(min_value=0.05, max_value=50.0, allow_nan=False))
def test_recalled_parameter_overrides_are_the_requested_values(skeletons, value):
    """Any override value: the recalled model carries it exactly and simulates as the built one."""
    path = spec.model_path("two_compartment_iv")
    built = spec._build_model(path, path.read_text(), None, {"V1": value})
    nanopk.load_model(path, params={"V1": value})  # builds, or recalls a value drawn before
    recalled = nanopk.load_model(path, params={"V1": value})
    assert _is_deferred(recalled)
    assert recalled.parameters["V1"].value == value == built.parameters["V1"].value
    np.testing.assert_array_equal(recalled.simulate([1.0, 8.0]).to_numpy(), built.simulate([1.0, 8.0]).to_numpy())


def test_unreadable_skeleton_is_rebuilt(skeletons, builds):
    """A file that is not a skeleton is rebuilt, with a CacheWarning naming it."""
    nanopk.load_model("mouse_pbpk")
    (skeleton,) = skeletons.glob("*.pickle")
    skeleton.write_bytes(b"not a pickle")
    with pytest.warns(CacheWarning, match=rf"rebuilding the remembered model {skeleton}: it does not start with"):
        model = nanopk.load_model("mouse_pbpk")
    assert builds == ["mouse_pbpk", "mouse_pbpk"] and not _is_deferred(model)


def test_a_skeleton_that_does_not_match_its_equations_is_reported(skeletons):
    nanopk.load_model("mouse_pbpk")
    (skeleton,) = skeletons.glob("*.pickle")
    header, payload = skeleton.read_bytes().split(b"\n", 1)
    data = pickle.loads(payload)
    data["structure_hash"] = "0" * 20
    payload = pickle.dumps(data)  # with a valid header: only the equations can tell
    fields = header.split(b" ")
    skeleton.write_bytes(b" ".join(fields[:2] + [hashlib.sha256(payload).hexdigest().encode()]) + b"\n" + payload)
    model = nanopk.load_model("mouse_pbpk")
    with pytest.raises(ModelError, match=rf"remembered model 'mouse_pbpk' \({skeleton}\) does not match.*delete that file"):
        model.fluxes


def test_a_recalled_model_pickles_with_its_recipe(skeletons):
    """Worker processes receive models by pickle; the deferred equations travel as the recipe."""
    nanopk.load_model("mouse_tumour")
    recalled = nanopk.load_model("mouse_tumour")
    copy = pickle.loads(pickle.dumps(recalled))
    assert _is_deferred(copy)
    np.testing.assert_array_equal(copy.simulate([2.0, 48.0]).to_numpy(), recalled.simulate([2.0, 48.0]).to_numpy())
    assert copy.fluxes == nanopk.load_model("mouse_tumour").fluxes


def test_the_recipe_key_is_the_same_in_another_process():
    path = spec.model_path("mouse_pbpk")
    key = prebuilt.recipe_key(path, path.read_text(), None, {"K50_liver": 2.0})
    code = ("import nanopk.prebuilt as p, nanopk.spec as s; path = s.model_path('mouse_pbpk'); "
            "print(p.recipe_key(path, path.read_text(), None, {'K50_liver': 2.0}))")
    out = subprocess.run([sys.executable, "-c", code], env=dict(os.environ), capture_output=True, text=True, check=True).stdout
    assert out.strip() == key


def test_an_edited_plugin_mechanism_is_built_again(tmp_path, builds, monkeypatch):
    """A registered mechanism family's source is part of the recipe: after the module's
    default rate changes from 0.5 to 5.0 /h, the same spec builds anew and simulates with 5.0
    (the cache once recalled the old model; found by a tutorial's test)."""
    from nanopk.mechanisms import base

    module = tmp_path / "labsink.py"
    source = '''from nanopk.mechanisms.base import param
from nanopk.parts import Flux, Part, State, symbol


def sink(ctx):
    return Part("labsink.sink", states=(State("sink"),),
                parameters=(param("k_sink", {k}, "1/h", "test value", (0.0, 100.0)),),
                fluxes=(Flux("to_sink", "central", "sink", symbol("k_sink") * symbol("central")),))
'''
    module.write_text(source.format(k=0.5))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(base, "_REGISTERED", dict(base._REGISTERED))  # the registration is undone after the test
    base.register_family("labsink", "labsink")
    spec_path = tmp_path / "plugin.toml"
    spec_path.write_text(nanopk.spec.model_path("one_compartment_iv").read_text()
                         + '\n[[mechanisms]]\nuse = "labsink.sink"\n')
    first = nanopk.load_model(spec_path)
    module.write_text(source.format(k=5.0))
    sys.modules.pop("labsink", None)
    base.clear_registry_cache()
    second = nanopk.load_model(spec_path)
    base.clear_registry_cache()
    assert builds == ["plugin", "plugin"]
    assert (first.parameters["k_sink"].value, second.parameters["k_sink"].value) == (0.5, 5.0)
