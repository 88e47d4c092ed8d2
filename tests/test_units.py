"""The pint registry: %ID defined once, lab spellings mapped, dose fractions told from mass ratios."""
import pint
import pytest

from nanopk.units import COMMON_UNITS, Q_, dimensionality, is_dose_fraction, parse_unit, to_pint_string


def test_percent_id_is_a_hundredth_of_the_dose():
    """100 %ID = 1 ID, and %ID/g × g = %ID."""
    assert Q_(100, "percent_ID").to("injected_dose").magnitude == pytest.approx(1.0, rel=1e-12)
    assert (Q_(10, parse_unit("%ID/g")) * Q_(1.1, "g")).to("percent_ID").magnitude == pytest.approx(11.0, rel=1e-12)


@pytest.mark.parametrize(
    "spelling, expected",
    [("%ID/g", "percent_ID / gram"), ("%id/ML", "percent_ID / milliliter"), ("µg/g", "microgram / gram"),
     ("\u03bcg/g", "microgram / gram"), ("ug/organ", "microgram"), ("mg/kg", "milligram / kilogram"),
     ("ng/mg", "nanogram / milligram"), ("%ID/cc", "percent_ID / milliliter")],
)
def test_lab_spellings(spelling, expected):
    """Spreadsheet spellings map to pint expressions (micro sign and Greek mu alike)."""
    assert to_pint_string(spelling) == expected


def test_unknown_unit_raises_pint_error():
    """An unknown unit name is a pint UndefinedUnitError."""
    with pytest.raises(pint.errors.UndefinedUnitError):
        parse_unit("ng/gg")


@pytest.mark.parametrize("unit, fraction", [("%ID", True), ("%ID/g", True), ("%ID/mL", True), ("ID", True),
                                            ("ng/g", False), ("µg/organ", False), ("mg/kg", False), ("ng/mL", False)])
def test_dose_fraction_versus_mass_ratio(unit, fraction):
    """%ID and ng/g are both dimensionless to pint; is_dose_fraction tells them apart."""
    assert is_dose_fraction(unit) is fraction


def test_dimensionality_of_per_gram_units():
    """%ID/g is per mass; ng/g is dimensionless."""
    assert dimensionality("%ID/g") == Q_(1, "1/g").dimensionality
    assert dimensionality("ng/g") == Q_(1, "").dimensionality


def test_common_units_all_parse():
    """Every unit offered in suggestions parses."""
    for unit in COMMON_UNITS:
        parse_unit(unit)


def _units_in_subprocess(cache):
    import os
    import subprocess
    import sys

    env = dict(os.environ, NANOPK_CACHE_DIR=str(cache))
    code = ("from nanopk.units import ureg; "
            "print((ureg.Quantity(2, 'percent_ID / gram') * ureg.Quantity(1.1, 'gram')).to('percent_ID').magnitude)")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return float(out.stdout)


def test_pint_definitions_are_cached_on_disk_and_give_the_same_units(tmp_path):
    """The registry parsed once is written under $NANOPK_CACHE_DIR/pint; a second process
    builds it from there and converts identically (2 %ID/g × 1.1 g = 2.2 %ID)."""
    first = _units_in_subprocess(tmp_path)
    assert any((tmp_path / "pint").iterdir())
    assert first == pytest.approx(2.2, rel=1e-12)
    assert _units_in_subprocess(tmp_path) == first


def test_an_unusable_cache_folder_falls_back_to_parsing(tmp_path):
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("a file where the cache folder should be")
    assert _units_in_subprocess(blocker) == pytest.approx(2.2, rel=1e-12)


@pytest.mark.parametrize(
    "module, constant, quantity, target",
    [("epr", "_PS_TO_L_PER_H", "cm/s * cm**2/g * kg", "L/h"),
     ("clearance", "_UG_PER_G_TIMES_KG", "ug/g * kg", "ug"),
     ("clearance", "ML_PER_MIN_TO_L_PER_H", "mL/min", "L/h")],
)
def test_mechanism_conversion_factors_are_pints(module, constant, quantity, target):
    """The mechanisms write unit conversions as literals (building a model must not import
    pint, which costs ~0.3 s on every load); each literal is exactly pint's factor."""
    import importlib

    value = getattr(importlib.import_module(f"nanopk.mechanisms.{module}"), constant)
    assert value == pytest.approx(Q_(1.0, quantity).to(target).magnitude, rel=1e-12)


@pytest.mark.parametrize("unit", ["ug", "mg", "ug/kg", "mg/kg"])
@pytest.mark.parametrize("value, body_weight_kg", [(1.0, 0.02), (7.5, 0.25)])
def test_spec_dose_table_is_pints_conversion(unit, value, body_weight_kg):
    """Model specs' dose units convert by a table (no pint on the load path) that equals the
    pint conversion of the data layer to 1e-12."""
    from nanopk.data.convert import dose_in_ug
    from nanopk.spec import SPEC_DOSE_UNITS, dose_to_ug

    assert unit in SPEC_DOSE_UNITS
    expected, reason = dose_in_ug(value, unit, 1000.0 * body_weight_kg)
    assert reason == ""
    assert dose_to_ug(value, unit, body_weight_kg) == pytest.approx(expected, rel=1e-12)
