"""nanopk.scale: allometric exponents by unit, closed forms, and mouse → rat against the published rat model."""
from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import nanopk
from nanopk.allometry import allometric_exponent, scale
from nanopk.errors import ModelError
from nanopk.parts import Parameter


def _p(name, value, unit):
    return Parameter(name, value, unit, "test value")


@pytest.mark.parametrize("unit, b", [
    ("dimensionless", 0.0), ("ug/g", 0.0), ("1/h", -0.25), ("1/min", -0.25), ("h", 0.25), ("L/h", 0.75),
    ("mL/min", 0.75), ("L", 1.0), ("kg", 1.0), ("ug", 1.0), ("ug/h", 0.75), ("ug/L", 0.0), ("kg/L", 0.0),
    ("L/kg", 0.0), ("L/h/kg**0.75", 0.0),
])
def test_exponent_follows_the_unit(unit, b):
    """Flows/clearances BW^0.75, volumes and masses BW^1, rate constants BW^-0.25, times BW^0.25 (Boxenbaum 1982; West 1997)."""
    assert allometric_exponent(unit)[0] == b


@settings(max_examples=60, deadline=None)
@given(bw_from=st.floats(0.01, 100.0), bw_to=st.floats(0.01, 100.0), value=st.floats(1e-6, 1e6))
def test_scaled_values_equal_the_closed_form(bw_from, bw_to, value):
    """p_to = p_from · (BW_to/BW_from)^b for every rule, to 1e-12 relative."""
    units = {"k": "1/h", "t": "h", "Q": "L/h", "V": "L", "A": "ug", "QCC": "L/h/kg**0.75", "P": "dimensionless"}
    src = {n: _p(n, value, u) for n, u in units.items()}
    out = scale(src, "rat", body_weight=bw_to, from_species="mouse", from_body_weight=bw_from)
    r = bw_to / bw_from
    expected = {"k": value * r**-0.25, "t": value * r**0.25, "Q": value * r**0.75, "V": value * r, "A": value * r,
                "QCC": value, "P": value}
    for name, want in expected.items():
        assert out[name].value == pytest.approx(want, rel=1e-12, abs=0.0)


def test_scaling_there_and_back_is_the_identity():
    """Scaling mouse → human → mouse returns every value to 1e-12 (exponents compose: r^b · r^-b = 1)."""
    model = nanopk.load_model("mouse_pbpk")
    there = scale(model, "human")
    back = scale({n: p.as_parameter() for n, p in there.items()}, "mouse", from_species="human")
    for name, p in model.parameters.items():
        if name in back:
            assert back[name].value == pytest.approx(p.value, rel=1e-12)


def test_body_weight_becomes_the_target_weight_and_flows_scale_as_bw_075():
    """BW (kg, b = 1) lands on the target weight; cardiac output Q_C = QCC·BW^0.75 scales as BW^0.75 (QCC's b = 0)."""
    model = nanopk.load_model("mouse_pbpk")
    out = scale(model, "human", body_weight=70.0)
    assert out["BW"].value == pytest.approx(70.0, rel=1e-12)
    assert out["QCC"].value == model.parameters["QCC"].value
    qc_mouse = model.parameters["QCC"].value * 0.02**0.75
    qc_human = out["QCC"].value * out["BW"].value ** 0.75
    assert qc_human / qc_mouse == pytest.approx((70.0 / 0.02) ** 0.75, rel=1e-12)
    assert out["Kmax_liver"].value == pytest.approx(0.3 * (70.0 / 0.02) ** -0.25, rel=1e-12)
    assert "scaled from mouse (BW 0.02 kg) to human (BW 70 kg)" in out["Kmax_liver"].source


def test_mouse_to_rat_against_rat_pbpk_published_values():
    """Mouse (Lin 2016/Chou 2023) → rat vs rat_pbpk's Chou 2022 values: QCC within 1.2×, P and PAC of liver/lung equal, urine/bile under-predicted.

    Compared where rat_pbpk has a published value of the same meaning (Chou et al., Part Fibre
    Toxicol 2022;19:47, Nano-iPBPK IV route): QCC; P_liver, P_lung, P_spleen, P_kidney, P_rest;
    PAC_liver, PAC_lung; KurineC, KbileC.  Not comparable: the uptake constants (Hill form in the
    mouse, capacity-limited form in the rat).
    """
    out = scale(nanopk.load_model("mouse_pbpk"), "rat")
    rat = nanopk.load_model("rat_pbpk").parameters
    assert out["BW"].value == pytest.approx(rat["BW"].value, rel=1e-12)
    # Cardiac output: mouse QCC 16.5 carried (b = 0) vs Brown 1997 rat 14.0: 1.18x.
    assert out["QCC"].value / rat["QCC"].value == pytest.approx(16.5 / 14.0, rel=1e-12)
    for name in ("P_liver", "P_lung", "P_spleen", "P_kidney", "P_rest", "PAC_liver", "PAC_lung"):
        assert out[name].value == pytest.approx(rat[name].value, rel=1e-12), name
    # Fitted excretion does not follow allometry: 4.9x (urine) and 27x (bile) below the rat's.
    assert rat["KurineC"].value / out["KurineC"].value == pytest.approx(4.933, rel=1e-3)
    assert rat["KbileC"].value / out["KbileC"].value == pytest.approx(26.67, rel=1e-3)


def test_a_unit_without_a_law_is_refused_by_name():
    """A particle size (nm) has no allometric law: refused with the parameter, unit and remedy named."""
    src = {"r_core": _p("r_core", 7.5, "nm"), "v": _p("v", 0.01, "nm/h"), "k": _p("k", 1.0, "1/h")}
    with pytest.raises(ModelError, match=r"2 parameter\(s\) have a unit without an allometric law.*keep=") as err:
        scale(src, "rat", from_species="mouse")
    assert any("'r_core' (nm)" in p for p in err.value.problems)
    out = scale(src, "rat", from_species="mouse", keep=["r_core"], exponents={"v": 0.0})
    assert out["r_core"].value == 7.5 and out["v"].value == 0.01
    assert "keep=" in out["r_core"].source


def test_bad_arguments_say_what_is_right():
    """Unknown species, unknown keep name, non-positive body weight and a unitless mapping each name the argument."""
    model = nanopk.load_model("mouse_pbpk")
    with pytest.raises(ModelError, match=r"unknown target species 'rta'.*did you mean 'rat'"):
        scale(model, "rta")
    with pytest.raises(ModelError, match=r"'Kmax_livr'.*did you mean 'Kmax_liver'.*is not a parameter"):
        scale(model, "rat", keep=["Kmax_livr"])
    with pytest.raises(ModelError, match=r"`body_weight` must be a positive body weight in kg \(got -1.0\)"):
        scale(model, "rat", body_weight=-1.0)
    with pytest.raises(ModelError, match=r"must hold nanopk.Parameter values"):
        scale({"k": 1.0}, "rat", from_species="mouse")
    with pytest.raises(ModelError, match=r"source species is unknown; give `from_species=`"):
        scale({"k": _p("k", 1.0, "1/h")}, "rat")


def test_scaled_set_applies_to_a_target_model_keeping_its_physiology():
    """to_dict(exclude_physiology=True) drops BW, QCC and f_* so a rat model keeps its own table."""
    out = scale(nanopk.load_model("mouse_pbpk"), "rat")
    values = out.to_dict(exclude_physiology=True)
    assert not any(n == "BW" or n == "QCC" or n.startswith(("f_V_", "f_Q_", "f_B_")) for n in values)
    assert values["Kmax_liver"] == pytest.approx(0.3 * 12.5**-0.25, rel=1e-12)
    assert math.isclose(out.ratio, 12.5)


def test_to_toml_makes_a_valid_spec_for_the_target_species(tmp_path):
    """The scaled set pasted as [parameters] turns mouse_pbpk's structure into a valid rat model with those values."""
    from pathlib import Path

    import tomllib

    scaled = scale(nanopk.load_model("mouse_pbpk"), "rat")
    snippet = scaled.to_toml()
    assert tomllib.loads(snippet)["parameters"]["Kmax_liver"]["value"] == scaled["Kmax_liver"].value
    text = (Path(__file__).parents[1] / "models" / "mouse_pbpk.toml").read_text().replace('species = "mouse"', 'species = "rat"')
    spec = tmp_path / "rat_from_mouse.toml"
    spec.write_text(text + "\n" + snippet)
    model = nanopk.load_model(spec)
    assert model.parameters["Kmax_liver"].value == pytest.approx(0.3 * 12.5**-0.25, rel=1e-12)
    assert model.parameters["BW"].value == 0.25  # the rat table's own physiology
    assert "scaled from mouse (BW 0.02 kg) to rat (BW 0.25 kg)" in model.parameters["Kmax_liver"].source
