"""Individual-animal data, units in headers, title rows, and %ID data without a dose (issue 17 #11, #12, #4).

Labs record one row per animal: such rows are read as separate observations and fitted
one residual each; only true conflicts (a group mean beside other rows at its time, one
animal twice) are errors (those are pinned in tests/test_bad_input_data.py).
"""
import json
import math
import re
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import nanopk
from nanopk.data import DataWarning, read_dataset
from nanopk.errors import DataError, FitError
from nanopk.fit._data import DOSE_FREE_RTOL, coerce_datasets
from nanopk.spec import load_model

SIDECAR = {
    "name": "animals",
    "source": {"citation": "synthetic individual-animal data", "doi": None},
    "species": "mouse",
    "route": "iv",
    "time_unit": "h",
    "value_unit": "%ID",
    "body_weight_g": 25,
    "dose": {"value": 100, "unit": "ug"},
}
#: Blood %ID of 12 mice, three per time, from 100·exp(-0.2 t) times fixed factors 0.88-1.12.
FACTORS = [0.9, 1.0, 1.12, 1.05, 0.93, 1.0, 0.97, 1.1, 0.95, 1.02, 0.88, 1.08]
TIMES = [1, 4, 8, 24]


def write(tmp_path, text, meta=SIDECAR, name="animals", suffix=".csv"):
    path = tmp_path / f"{name}{suffix}"
    path.write_text(text, encoding="utf-8")
    if meta is not None:
        (tmp_path / f"{name}.json").write_text(json.dumps({k: v for k, v in meta.items() if v is not None}), encoding="utf-8")
    return path


def animals_csv(with_ids: bool) -> str:
    lines = ["time,tissue,value" + (",animal" if with_ids else "")]
    for k, f in enumerate(FACTORS):
        t = TIMES[k // 3]
        lines.append(f"{t},blood,{100 * math.exp(-0.2 * t) * f:.4g}" + (f",m{k + 1}" if with_ids else ""))
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("with_ids", [True, False])
def test_one_row_per_animal_is_read_as_separate_observations(tmp_path, with_ids):
    """Three rows per time (with or without an animal column) load as 12 observations, none merged."""
    ds = read_dataset(write(tmp_path, animals_csv(with_ids)))
    assert len(ds) == 12
    assert list(ds.table.groupby("time_h").size()) == [3, 3, 3, 3]
    assert ("animal" in ds.table.columns) == with_ids


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(per_time=st.lists(st.integers(min_value=1, max_value=5), min_size=1, max_size=4),
       seed=st.integers(min_value=0, max_value=10_000))
def test_any_number_of_animals_per_time_loads_every_row(tmp_path, per_time, seed):
    """Whatever the number of animals per time, every row becomes one observation, in file order."""
    rng = np.random.default_rng(seed)
    lines, values = ["time,tissue,value"], []
    for i, k in enumerate(per_time):
        for _ in range(k):
            v = float(rng.uniform(0.1, 90.0))
            values.append(float(f"{v:.6g}"))
            lines.append(f"{i + 1},liver,{values[-1]!r}")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds = read_dataset(write(tmp_path, "\n".join(lines) + "\n"))
    assert ds.table["value"].tolist() == values
    assert len(ds) == sum(per_time)


def test_animal_ids_round_trip_through_write_and_to_wide(tmp_path):
    """Dataset.write keeps the animal column; to_wide gives one sheet row per animal."""
    ds = read_dataset(write(tmp_path, animals_csv(True)))
    back = read_dataset(ds.write(tmp_path / "copy.csv"))
    assert back.table["animal"].tolist() == [f"m{k}" for k in range(1, 13)]
    assert back.table["value"].tolist() == ds.table["value"].tolist()
    wide = ds.to_wide()
    assert list(wide.columns) == ["time", "animal", "blood"] and len(wide) == 12


def test_to_wide_refuses_replicates_without_ids(tmp_path):
    """A wide sheet has one cell per tissue and row, so replicate animals without ids cannot be written wide."""
    ds = read_dataset(write(tmp_path, animals_csv(False)))
    with pytest.raises(DataError, match=re.escape("4 (time, tissue) cell(s) have several animals without an id (rows 2, 3, 4; rows 5, 6, 7; "
                                                  "rows 8, 9, 10); write the long layout, or name the animals in an 'animal' column")):
        ds.to_wide()


def test_identical_replicate_rows_are_kept_with_a_warning(tmp_path):
    """Two identical rows are read as two animals, but a warning says a pasted row looks the same."""
    path = write(tmp_path, "time,tissue,value\n1,liver,40\n1,liver,40\n1,liver,41\n")
    with pytest.warns(DataWarning, match=re.escape("animals.csv: 1 set(s) of identical rows (same tissue, time, group and value), "
                                                   "read as separate animals: rows 2, 3; if a row was pasted twice, delete the copy")):
        ds = read_dataset(path)
    assert len(ds) == 3


def test_percent_values_that_sum_below_one_warn_of_fractions(tmp_path):
    """%ID organs summing to <= 1 at every time look like fractions 0-1: warned, not silently 100x off."""
    path = write(tmp_path, "time,tissue,value\n1,liver,0.6\n1,spleen,0.1\n1,blood,0.2\n24,liver,0.8\n24,spleen,0.1\n24,blood,0.02\n")
    with pytest.warns(DataWarning, match=re.escape("the %ID values of every time with 3 or more organs sum to at most 0.92 %ID: they look like "
                                                   "fractions 0-1 of the dose; if they are, write the unit 'ID' (1 ID = 100 %ID)")):
        read_dataset(path)


def test_fraction_unit_converts_to_percent(tmp_path):
    """Values in 'ID' (fractions 0-1 of the dose) become %ID times 100."""
    ds = read_dataset(write(tmp_path, "time,tissue,value\n1,liver,0.6\n1,blood,0.2\n", {**SIDECAR, "value_unit": "ID"}))
    assert ds.percent_id()["value_pid"].tolist() == pytest.approx([60.0, 20.0], rel=1e-12)


def test_percent_is_no_longer_read_as_a_mass_ratio():
    """'percent' used to give 18.2 % of a g/g x organ mass / dose (1.365e6 %ID for 25 g mouse blood, 20 ug); now refused."""
    from nanopk.data.convert import percent_id_factor

    with pytest.raises(ValueError, match=re.escape("'percent' is a bare number, not a unit nanopk can convert")):
        percent_id_factor("percent", organ_mass_g=1.5, dose_ug=20)


def test_wide_sheet_with_title_row_and_units_in_headers_loads(tmp_path):
    """A pasted table (title row, 'Time (h)', 'Blood (%ID/g)', 'Blood SD (%ID/g)', 'Liver (%ID)') loads without value_unit/time_unit."""
    text = ("Table 2. Gold in organs of mice (mean, SD; n = 4),,,,\n"
            "Time (h),Blood (%ID/g),Blood SD (%ID/g),Liver (%ID),n\n"
            "1,10,1.5,40,4\n"
            "24,2,0.4,60,4\n")
    meta = {**SIDECAR, "value_unit": None, "time_unit": None}
    ds = read_dataset(write(tmp_path, text, meta))
    t = ds.table
    assert t["unit"].tolist() == ["%ID/g", "%ID", "%ID/g", "%ID"]
    assert t["tissue"].tolist() == ["blood", "liver", "blood", "liver"]
    assert t["sd"].tolist()[0::2] == [1.5, 0.4] and t["row"].tolist() == [3, 3, 4, 4]
    assert t["n"].tolist() == [4, 4, 4, 4]
    assert ds.meta["time_unit"] == "h"


def test_long_headers_with_units_set_time_and_value_units(tmp_path):
    """'Time (min)' converts times to hours (sidecar agreeing), 'Value (%ID/g)' is the unit of rows without one."""
    text = "Time (min),Tissue,Value (%ID/g),unit\n30,liver,10,\n90,liver,12,%ID\n"
    ds = read_dataset(write(tmp_path, text, {**SIDECAR, "time_unit": "min", "value_unit": None}))
    assert ds.table["time_h"].tolist() == pytest.approx([0.5, 1.5], rel=1e-12)
    assert ds.table["unit"].tolist() == ["%ID/g", "%ID"]


def test_fit_of_individual_animals_gives_each_a_residual(tmp_path):
    """12 mice (3 per time) fit k10 = 0.2/h within 1 % (data made from k10 = 0.2); n_points 12, equal weights, the report line says so."""
    ds = read_dataset(write(tmp_path, animals_csv(True)))
    result = nanopk.fit("one_compartment_iv", ds, vary=["k10"], tissue_map={"blood": "central"}, uncertainty=False)
    assert result.metrics["n_points"] == 12
    assert result.values["k10"] == pytest.approx(0.2, rel=0.01)
    data = result.objective.datasets[0]
    assert data.rows["sigma"].tolist() == [1.0] * 12
    assert data.weighting == ("12 of 12 rows are individual animals (4 tissue-time cells, up to 3 animals each), each its own residual "
                              "(not averaged); no row reports a spread, so every row has the same weight (σ = 1 on the log scale) "
                              "and the covariance is scaled by the residual variance")


def test_group_means_have_no_weighting_note():
    """A dataset of group means (one row per tissue and time) carries no individual-animal note."""
    data = coerce_datasets(read_dataset("cho2010_peg_au_13nm"), load_model("mouse_pbpk"), True)
    assert data[0].weighting == ""


def test_hirn_percent_id_fits_without_a_dose():
    """Hirn 2011 gives %ID and no dose: rat_pbpk's %ID changes < 1 % across 3.2-32.9 ug (Chou 2022 Table 1), so its 10 ug nominal dose is used."""
    data = coerce_datasets(read_dataset("hirn2011_au_18nm"), load_model("rat_pbpk"), True)[0]
    assert data.dose_ug == 10.0
    change = float(re.search(r"change by at most ([0-9.]+) %", data.dose_note).group(1))
    assert change < 100 * DOSE_FREE_RTOL
    assert "across the sidecar's dose.range 3.2-32.9 µg at the start parameters" in data.dose_note


def test_dose_free_fit_is_refused_when_the_model_saturates():
    """Across 1 mg - 1 g the capacity-limited uptake of rat_pbpk saturates: the fit asks for the dose instead of guessing."""
    ds = read_dataset("hirn2011_au_18nm", dose={"value": None, "unit": "ug", "range": [1000, 1e6]})
    with pytest.raises(FitError, match=r"the %ID predictions of model 'rat_pbpk' change by [0-9.]+ % across the sidecar's dose.range "
                                       r"1000-1e\+06 µg \(a term depends on the injected mass, e.g. a capacity-limited uptake\); give the dose"):
        coerce_datasets(ds, load_model("rat_pbpk"), True)
