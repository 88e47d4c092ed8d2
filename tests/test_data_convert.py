"""Conversion of biodistribution units to %ID of the whole organ, checked number by number."""
import json
import math
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nanopk.data import DataWarning, dose_in_ug, percent_id_factor, read_dataset
from nanopk.physiology import organ_mass_g

REL = 1e-12


def make(tmp_path, csv_text, **meta):
    sidecar = {
        "name": "t", "source": {"citation": "Test 2024", "doi": None}, "species": "mouse",
        "route": "iv", "time_unit": "h", "body_weight_g": 20, "dose": {"value": 20, "unit": "ug"},
    }
    sidecar.update(meta)
    sidecar = {k: v for k, v in sidecar.items() if v is not None}
    path = tmp_path / "t.csv"
    path.write_text(csv_text.lstrip(), encoding="utf-8")
    (tmp_path / "t.json").write_text(json.dumps(sidecar), encoding="utf-8")
    return path


# ---------------------------------------------------------------- the factor itself
def test_percent_id_per_gram_times_organ_mass():
    """10 %ID/g in a 1.1 g liver is 11 %ID."""
    assert 10 * percent_id_factor("%ID/g", organ_mass_g=1.1) == pytest.approx(11.0, rel=REL)


def test_ng_per_gram_with_dose():
    """500 ng/g × 1.1 g / 20 µg = 550 ng / 20 000 ng = 2.75 %ID."""
    assert 500 * percent_id_factor("ng/g", organ_mass_g=1.1, dose_ug=20) == pytest.approx(2.75, rel=REL)


def test_ug_per_gram_and_ug_per_organ():
    """2.5 µg/g in a 0.1 g spleen after 20 µg is 1.25 %ID; 3 µg per organ is 15 %ID."""
    assert 2.5 * percent_id_factor("µg/g", organ_mass_g=0.1, dose_ug=20) == pytest.approx(1.25, rel=REL)
    assert 3 * percent_id_factor("µg/organ", dose_ug=20) == pytest.approx(15.0, rel=REL)
    assert 3000 * percent_id_factor("ng", dose_ug=20) == pytest.approx(15.0, rel=REL)


def test_per_millilitre_uses_one_gram_per_millilitre():
    """5 %ID/mL in 1.2 g of blood is 6 %ID; 1000 ng/mL in 1.2 g after 10 µg is 12 %ID."""
    assert 5 * percent_id_factor("%ID/mL", organ_mass_g=1.2) == pytest.approx(6.0, rel=REL)
    assert 1000 * percent_id_factor("ng/mL", organ_mass_g=1.2, dose_ug=10) == pytest.approx(12.0, rel=REL)


def test_percent_id_is_unchanged():
    """%ID and %ID/organ need neither mass nor dose."""
    assert percent_id_factor("%ID") == 1.0
    assert percent_id_factor("%ID/organ") == 1.0


def test_factor_refuses_missing_inputs():
    """A per-g unit without mass and an amount without dose raise ValueError."""
    with pytest.raises(ValueError, match=re.escape("unit '%ID/g' needs the organ mass to become %ID")):
        percent_id_factor("%ID/g")
    with pytest.raises(ValueError, match=re.escape("unit 'ng/g' needs the injected dose (µg) to become %ID")):
        percent_id_factor("ng/g", organ_mass_g=1.0)
    with pytest.raises(ValueError, match=re.escape("unit 'mol/g' cannot be converted to %ID")):
        percent_id_factor("mol/g", organ_mass_g=1.0)


def test_dose_in_ug():
    """0.85 mg/kg × 20 g = 17 µg; 1.4 mg = 1400 µg; an activity is not a mass."""
    assert dose_in_ug(0.85, "mg/kg", 20)[0] == pytest.approx(17.0, rel=REL)
    assert dose_in_ug(1.4, "mg")[0] == pytest.approx(1400.0, rel=REL)
    assert dose_in_ug(0.85, "mg/kg") == (None, "a dose in mg/kg needs body_weight_g")
    assert dose_in_ug(0.37, "MBq") == (None, "a dose in MBq is not a mass")


@settings(max_examples=200, deadline=None)
@given(value=st.floats(1e-6, 1e6), mass=st.floats(1e-3, 1e3), dose=st.floats(1e-3, 1e5))
def test_round_trip_per_gram_to_percent_id_and_back(value, mass, dose):
    """%ID/g -> %ID -> %ID/g and ng/g -> %ID -> ng/g are the identity."""
    pid = value * percent_id_factor("%ID/g", organ_mass_g=mass)
    assert pid / mass == pytest.approx(value, rel=REL)
    pid = value * percent_id_factor("ng/g", organ_mass_g=mass, dose_ug=dose)
    back = pid / 100 * dose * 1000 / mass  # %ID -> ng in the organ -> ng/g
    assert back == pytest.approx(value, rel=REL)


# ---------------------------------------------------------------- through a Dataset
def test_dataset_percent_id_with_sidecar_organ_masses(tmp_path):
    """Sidecar organ masses are used and named; SD and SEM convert with the value's factor."""
    path = make(tmp_path, """
time,tissue,value,sd,n
1,liver,10,2,4
1,spleen,500,50,4
""", value_unit=None, organ_masses_g={"liver": 1.1, "spleen": 0.1})
    path.write_text("time,tissue,value,sd,n,unit\n1,liver,10,2,4,%ID/g\n1,spleen,500,50,4,ng/g\n", encoding="utf-8")
    ds = read_dataset(path)
    t = ds.percent_id()
    assert t["value_pid"].tolist() == pytest.approx([11.0, 0.25], rel=REL)
    assert t["sd_pid"].tolist() == pytest.approx([2.2, 0.025], rel=REL)
    assert t["sem_pid"].tolist() == pytest.approx([1.1, 0.0125], rel=REL)  # SD / sqrt(4)
    assert t["mass_source"].tolist() == ["sidecar organ_masses_g", "sidecar organ_masses_g"]
    assert ds.mass_sources == {"liver": "sidecar organ_masses_g", "spleen": "sidecar organ_masses_g"}


def test_dataset_percent_id_from_physiology_table(tmp_path):
    """Without sidecar masses, the mouse table at the sidecar body weight is used and named."""
    path = make(tmp_path, "time,tissue,value\n1,liver,10\n", value_unit="%ID/g", body_weight_g=25)
    ds = read_dataset(path)
    liver_g = organ_mass_g("mouse", "liver", 25)
    t = ds.percent_id()
    assert t["organ_mass_g"].tolist() == pytest.approx([liver_g], rel=REL)
    assert t["value_pid"].tolist() == pytest.approx([10 * liver_g], rel=REL)
    assert t["mass_source"].iloc[0] == f"physiology:mouse ({liver_g / 25:.4g} of 25 g body weight)"


def test_blood_per_millilitre_uses_blood_volume(tmp_path):
    """Blood %ID/mL × blood mass (blood fraction × BW, 1 g ≈ 1 mL) is whole-blood %ID."""
    path = make(tmp_path, "time,tissue,value\n0.5,blood,5\n", value_unit="%ID/mL", body_weight_g=25)
    blood_g = organ_mass_g("mouse", "blood", 25)
    t = read_dataset(path).percent_id()
    assert t["value_pid"].tolist() == pytest.approx([5 * blood_g], rel=REL)
    path = make(tmp_path, "time,tissue,value\n0.5,blood,1000\n", value_unit="ng/mL", dose={"value": 10, "unit": "ug"},
                organ_masses_g={"blood": 1.2})
    assert read_dataset(path).percent_id()["value_pid"].tolist() == pytest.approx([12.0], rel=REL)


def test_mg_per_kg_dose_uses_body_weight(tmp_path):
    """0.85 mg/kg in a 20 g mouse is 17 µg; 1000 ng/g in a 1.1 g liver is 1.1 µg = 6.470588... %ID."""
    path = make(tmp_path, "time,tissue,value\n1,liver,1000\n", value_unit="ng/g", dose={"value": 0.85, "unit": "mg/kg"},
                organ_masses_g={"liver": 1.1})
    ds = read_dataset(path)
    assert ds.dose_ug == pytest.approx(17.0, rel=REL)
    assert ds.percent_id()["value_pid"].tolist() == pytest.approx([100 * 1.1 / 17], rel=REL)


def test_argument_masses_win_and_tumour_weight_is_used(tmp_path):
    """organ_masses_g= overrides the sidecar; the tumour takes tumour.weight_g."""
    path = make(tmp_path, "time,tissue,value\n24,liver,10\n24,tumor,4\n", value_unit="%ID/g",
                organ_masses_g={"liver": 1.1}, tumour={"model": "xenograft", "cell_line": "A431", "weight_g": 0.25})
    ds = read_dataset(path)
    t = ds.percent_id(organ_masses_g={"Liver": 1.3})
    assert t["value_pid"].tolist() == pytest.approx([13.0, 1.0], rel=REL)
    assert t["mass_source"].tolist() == ["argument organ_masses_g", "sidecar tumour.weight_g"]


def test_per_row_units_and_micro_spellings(tmp_path):
    """Each row converts in its own unit; µ (micro sign), μ (Greek mu) and u are the same."""
    path = make(tmp_path, """
time,tissue,value,unit
1,liver,2,µg/g
4,liver,2,μg/g
24,liver,2,ug/g
48,liver,2,%ID
""", organ_masses_g={"liver": 1.0})
    t = read_dataset(path).percent_id()
    assert t["value_pid"].tolist() == pytest.approx([10.0, 10.0, 10.0, 2.0], rel=REL)


def test_time_units_become_hours(tmp_path):
    """Minutes and days become hours with pint."""
    path = make(tmp_path, "time,tissue,value\n30,liver,1\n90,liver,1\n", value_unit="%ID", time_unit="min")
    assert read_dataset(path).table["time_h"].tolist() == pytest.approx([0.5, 1.5], rel=REL)
    path = make(tmp_path, "time,tissue,value\n0.5,liver,1\n7,liver,1\n", value_unit="%ID", time_unit="d")
    ds = read_dataset(path)
    assert ds.table["time_h"].tolist() == pytest.approx([12.0, 168.0], rel=REL)
    np.testing.assert_allclose(ds.times, [12.0, 168.0], rtol=REL)


def test_sem_only_data_keep_sem_and_derive_sd_with_n(tmp_path):
    """An SEM needs no n; with n the SD is SEM·sqrt(n)."""
    path = make(tmp_path, "time,tissue,value,sem,n\n1,liver,90,0.5,\n4,liver,80,0.5,9\n", value_unit="%ID")
    t = read_dataset(path).percent_id()
    assert t["sem_pid"].tolist() == pytest.approx([0.5, 0.5], rel=REL)
    assert math.isnan(t["sd_pid"].iloc[0]) and t["sd_pid"].iloc[1] == pytest.approx(1.5, rel=REL)


# ---------------------------------------------------------------- censoring and fitting
def test_zeros_and_values_below_lloq_are_kept_and_flagged(tmp_path):
    """Zeros and values below lloq stay in the table with censored=True."""
    path = make(tmp_path, """
time,tissue,value,lloq
1,brain,0,
4,brain,0.05,0.1
24,brain,0.2,0.1
1,liver,10,
""", value_unit="%ID")
    ds = read_dataset(path)
    assert ds.table["censored"].tolist() == [True, True, False, False]
    assert ds.table["value"].tolist() == [0.0, 0.05, 0.2, 10.0]


def test_log_scale_fit_table_excludes_censored_rows_with_a_warning(tmp_path):
    """The log-scale fit table leaves out censored rows and names them; linear keeps all."""
    path = make(tmp_path, """
time,tissue,value,lloq
1,brain,0,
4,brain,0.05,0.1
24,brain,0.2,0.1
1,liver,10,
""", value_unit="%ID")
    ds = read_dataset(path)
    with pytest.warns(DataWarning, match=re.escape("t: 2 censored value(s) (zero or below lloq) excluded from the log-scale fit: brain rows 2, 3")):
        used, excluded = ds.fit_table(log_scale=True)
    assert used["value_pid"].tolist() == pytest.approx([0.2, 10.0], rel=REL)
    assert excluded["row"].tolist() == [2, 3]
    used, excluded = ds.fit_table(log_scale=False)
    assert used["value_pid"].tolist() == pytest.approx([0.0, 0.05, 0.2, 10.0], rel=REL)
    assert len(excluded) == 0


def test_percent_id_selects_tissues_by_any_spelling(tmp_path):
    """tissues= accepts spellings and ignores tissues the dataset lacks (e.g. a model's observables)."""
    path = make(tmp_path, "time,tissue,value\n1,liver,10\n1,kidney,2\n1,testis,1\n", value_unit="%ID/g",
                organ_masses_g={"liver": 1.0, "kidney": 0.5})
    t = read_dataset(path).percent_id(tissues=["Kidneys", "liver", "tumour", "urine"])
    assert t["tissue"].tolist() == ["liver", "kidney"]
    assert t["value_pid"].tolist() == pytest.approx([10.0, 1.0], rel=REL)


def test_dataset_attributes(tmp_path):
    """name, species, dose_ug, particle_dict, tissues, times, groups and path."""
    path = make(tmp_path, "time,tissue,value,group\n1,liver,10,A\n24,liver,5,A\n1,blood,3,B\n", value_unit="%ID/g",
                particle={"material": "Au", "core_diameter_nm": 15, "coating": "PEG", "coating_mw_da": 5000, "label": "198Au"})
    ds = read_dataset(path)
    assert (ds.name, ds.species, ds.dose_ug, ds.path) == ("t", "mouse", 20.0, path)
    assert ds.particle_dict == {"material": "Au", "core_diameter_nm": 15, "coating": "PEG", "coating_mw_da": 5000}
    assert ds.meta["particle"]["label"] == "198Au"
    assert ds.tissues == ["liver", "blood"] and ds.groups == ["A", "B"]
    np.testing.assert_array_equal(ds.times, [1.0, 24.0])
    assert list(ds.table.columns) == ["time", "time_h", "tissue", "value", "sd", "sem", "n", "unit", "lloq", "group", "censored", "row"]
    assert ds.select(groups="B").table["value"].tolist() == [3.0]
