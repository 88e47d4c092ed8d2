"""Bad-input catalogue, data part (issue 17 #4, #11, #12): each bad file gives its pinned message.

Every case is a CSV and a sidecar a user could plausibly write; each must end in one
:class:`DataError` (or, for the fit-level cases, :class:`FitError`) whose message says
what was wrong, where (column, rows, sidecar key) and what to write instead -- never a
number silently read in the wrong unit.  Rows are spreadsheet rows (header = row 1).
"""
import json
import re

import pytest

from nanopk.data import read_dataset
from nanopk.errors import DataError, NanopkError

SIDECAR = {
    "name": "bad",
    "source": {"citation": "Bad input catalogue", "doi": None},
    "species": "mouse",
    "route": "iv",
    "time_unit": "h",
    "value_unit": "%ID",
    "body_weight_g": 25,
    "dose": {"value": 20, "unit": "ug"},
}
LONG = "time,tissue,value\n1,blood,18.2\n1,liver,40\n24,blood,3\n24,liver,60\n"
BARE_PERCENT = ("is a bare number, not a unit nanopk can convert: a percentage of the injected dose in the whole organ "
                "is '%ID', per gram of tissue '%ID/g', per mL '%ID/mL'")
BARE_FRACTION = ("is a bare number, not a unit nanopk can convert: a fraction 0-1 of the injected dose in the whole organ "
                 "is 'ID' (1 ID = 100 %ID), a percentage '%ID' (per gram '%ID/g')")


def _meta(**changes):
    meta = json.loads(json.dumps(SIDECAR))
    meta.update(changes)
    return meta


#: (id, csv text, sidecar (dict, raw JSON text or None), pinned message)
CASES = [
    # -- #4: dimensionless spellings of value_unit: refused, with what to write instead
    ("value_unit_percent", LONG, _meta(value_unit="percent"), "sidecar bad.json: value_unit: 'percent' " + BARE_PERCENT),
    ("value_unit_percent_sign", LONG, _meta(value_unit="%"), "sidecar bad.json: value_unit: '%' " + BARE_PERCENT),
    ("value_unit_one", LONG, _meta(value_unit="1"), "sidecar bad.json: value_unit: '1' " + BARE_FRACTION),
    ("value_unit_dimensionless", LONG, _meta(value_unit="dimensionless"), "sidecar bad.json: value_unit: 'dimensionless' " + BARE_FRACTION),
    ("value_unit_fraction", LONG, _meta(value_unit="fraction"), "sidecar bad.json: value_unit: 'fraction' " + BARE_FRACTION),
    ("value_unit_pct_is_not_picocarat", LONG, _meta(value_unit="pct"), "sidecar bad.json: value_unit: 'pct' " + BARE_PERCENT),
    ("value_unit_percent_per_g", LONG, _meta(value_unit="percent/g"),
     "value_unit: 'percent/g' is a bare number, not a unit nanopk can convert: a percentage of the injected dose per g of tissue is '%ID/g'"),
    ("value_unit_ppm", LONG, _meta(value_unit="ppm"),
     "value_unit: 'ppm' is a bare number, not a unit nanopk can convert: 1 ppm by mass is 1 µg per g of tissue: write 'ug/g'"),
    ("value_unit_g_per_g_cancels", LONG, _meta(value_unit="g/g"), "value_unit: 'g/g' " + BARE_FRACTION),
    ("row_unit_percent", "time,tissue,value,unit\n1,blood,18.2,percent\n1,liver,40,%ID\n", _meta(),
     "unit in column unit, row 2: 'percent' " + BARE_PERCENT),
    ("dose_unit_bare_number", LONG, _meta(dose={"value": 20, "unit": "1"}),
     "sidecar bad.json: dose.unit '1' is a bare number; expected a mass ('ug', 'mg') or a mass per body mass ('mg/kg')"),
    # -- #4: fraction 0-1 vs percent confusion
    ("fraction_unit_with_percent_values", LONG, _meta(value_unit="ID"),
     "value above 1 in column value, rows 2, 3, 4, 5 (got '18.2', '40', '3', '60') in unit 'ID', a fraction 0-1 of the injected dose "
     "(1 ID = 100 %ID): more than the whole dose in one organ; if the values are percentages of the dose, write '%ID'"),
    # -- #11: replicate rows: only true conflicts are errors
    ("replicate_conflicts_with_group_mean", "time,tissue,value,sd,n\n1,liver,40,4,3\n1,liver,44,,\n24,liver,60,5,3\n", _meta(),
     "duplicate time 1 in column time for tissue 'liver', rows 2, 3; expected one row per time in each (group, tissue) series "
     "(use column group for separate cohorts) -- row 2 gives an SD, SEM or n > 1, i.e. a group mean, so the rows cannot be individual animals"),
    ("same_animal_twice", "time,tissue,value,animal\n1,liver,40,m1\n1,liver,44,m1\n1,liver,41,m2\n", _meta(),
     "animal 'm1' has 2 rows for tissue 'liver' at time 1 (column animal), rows 2, 3; expected one value per animal, tissue and time"),
    ("animal_row_with_sd", "time,tissue,value,sd,n,animal\n1,liver,40,4,3,m1\n1,liver,44,,,m2\n", _meta(),
     "an animal named in column animal, row 2, together with an SD: one animal has no SD; for a group mean leave the animal cell blank"),
    ("animal_series_going_back", "time,tissue,value,animal\n24,blood,2,m1\n1,blood,30,m1\n", _meta(),
     "time not increasing in column time for tissue 'blood' of animal 'm1', row 3 (1 in row 3 after 24 in row 2); "
     "expected each (group, animal, tissue) series in increasing time order"),
    # -- #11: wide sheets with units in the headers and titles above them
    ("wide_sd_unit_differs", "Time (h),Blood (%ID/g),Blood SD (ng/g)\n1,10,1\n", _meta(value_unit=None),
     "column 'Blood SD (ng/g)' gives unit 'ng/g' but its value column 'Blood (%ID/g)' gives '%ID/g'; an SD is in the unit of its value"),
    ("wide_unit_without_parentheses", "time,Blood %ID/g\n1,10\n", _meta(),
     "unknown tissue 'Blood %ID/g' in the header of column 'Blood %ID/g' (row 1); did you mean 'blood'?; "
     "to give a unit write it in parentheses: 'Blood (%ID/g)'"),
    ("wide_header_time_unit_disagrees", "Time (d),Blood\n1,10\n", _meta(time_unit="h"),
     "column 'Time (d)' gives times in 'd' but the sidecar's time_unit is 'h'; make them agree"),
    ("wide_header_time_unit_not_time", "Time (g),Blood\n1,10\n", _meta(time_unit=None),
     "column 'Time (g)': 'g' is not a unit of time; expected e.g. 'Time (h)'"),
    ("wide_header_bare_unit", "Time (h),Blood (percent)\n1,10\n", _meta(value_unit=None),
     "unit in column Blood (percent), row 2: 'percent' " + BARE_PERCENT),
    ("data_rows_above_header", "Rat,1,2,3\nnote,a,b,c\nTime (h),Blood\n1,10\n", _meta(),
     "missing required column 'time'; got columns: Rat, 1, 2, 3; row 3 names a time column and looks like the header, "
     "but the rows above it hold more than a title: delete the rows above row 3"),
    ("long_sd_header_unit_differs", "time,tissue,Value (%ID),SD (%ID/g),n\n1,liver,40,4,3\n", _meta(),
     "column 'SD (%ID/g)' gives unit '%ID/g' but the value column gives '%ID'; an SD is in the unit of its value"),
    # -- malformed sidecars (#12: the dose range of %ID data without a dose)
    ("dose_range_reversed", LONG, _meta(dose={"value": None, "unit": "ug", "range": [32.9, 3.2]}),
     "sidecar bad.json: dose.range must be [low, high], two positive numbers of µg with low <= high (got [32.9, 3.2])"),
    ("dose_range_wrong_unit", LONG, _meta(dose={"value": None, "unit": "mg/kg", "range": [1, 2]}),
     "sidecar bad.json: dose.range is in µg, so dose.unit must be 'ug' (got 'mg/kg')"),
    ("sidecar_not_an_object", LONG, "[1, 2]", "sidecar bad.json must hold a JSON object {...} (got a list)"),
    ("sidecar_truncated_json", LONG, '{"name": "bad", "species": ', "sidecar bad.json is not valid JSON: Expecting value at line 1, column 28"),
]


def _write(tmp_path, text, sidecar):
    path = tmp_path / "bad.csv"
    path.write_text(text, encoding="utf-8")
    if sidecar is not None:
        payload = sidecar if isinstance(sidecar, str) else json.dumps({k: v for k, v in sidecar.items() if v is not None})
        (tmp_path / "bad.json").write_text(payload, encoding="utf-8")
    return path


@pytest.mark.parametrize("case, text, sidecar, message", CASES, ids=[c[0] for c in CASES])
def test_bad_data_input_is_refused_with_its_message(tmp_path, case, text, sidecar, message):
    """Each catalogued bad input raises a DataError (a NanopkError) carrying the pinned message."""
    path = _write(tmp_path, text, sidecar)
    with pytest.raises(DataError, match=re.escape(message)) as info:
        read_dataset(path)
    assert isinstance(info.value, NanopkError)


def test_catalogue_size_and_distinct_inputs():
    """The catalogue holds at least 15 distinct bad inputs (issue 17 asks for >= 15 in this part)."""
    assert len({c[0] for c in CASES}) == len(CASES) >= 15
    assert len({(c[1], json.dumps(c[2], sort_keys=True)) for c in CASES}) == len(CASES)
