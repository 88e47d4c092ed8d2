"""Every dataset problem is reported, all at once, with its column, rows and expectation.

Rows in messages are 1-based spreadsheet rows (header = row 1, first data row = row 2).
"""
import json
import re

import pytest

from nanopk.data import DataWarning, read_dataset
from nanopk.errors import DataError, NanopkError

SIDECAR = {
    "name": "test",
    "source": {"citation": "Test et al. 2024", "doi": None},
    "species": "mouse",
    "route": "iv",
    "time_unit": "h",
    "value_unit": "%ID/g",
    "body_weight_g": 20,
    "dose": {"value": 20, "unit": "ug"},
}


def make(tmp_path, csv_text, sidecar=SIDECAR, name="data", suffix=".csv"):
    """Write ``name.csv`` and, unless ``sidecar`` is None, ``name.json``; return the CSV path."""
    path = tmp_path / f"{name}{suffix}"
    path.write_text(csv_text.lstrip(), encoding="utf-8")
    if sidecar is not None:
        text = sidecar if isinstance(sidecar, str) else json.dumps(sidecar)
        (tmp_path / f"{name}.json").write_text(text, encoding="utf-8")
    return path


def with_meta(**changes):
    meta = dict(SIDECAR)
    for key, value in changes.items():
        if value is None:
            meta.pop(key, None)
        else:
            meta[key] = value
    return meta


def problems_of(path, **kwargs):
    with pytest.raises(DataError) as info:
        read_dataset(path, **kwargs)
    return info.value


def test_data_error_is_a_value_error_and_a_nanopk_error(tmp_path):
    """DataError subclasses ValueError (bad input) and NanopkError."""
    path = make(tmp_path, "time,tissue,value\n1,livr,2\n")
    err = problems_of(path)
    assert isinstance(err, ValueError) and isinstance(err, NanopkError)
    assert err.column == "tissue" and err.rows == [2]


def test_unknown_tissue_names_rows_and_nearest_name(tmp_path):
    """An unknown tissue is reported once with all its rows and the nearest valid name."""
    path = make(tmp_path, """
time,tissue,value
1,liver,2
4,liver,3
1,livr,2
24,liver,1
1,spleen,5
4,spleen,5
24,spleen,5
4,livr,2
""")
    with pytest.raises(DataError, match=re.escape("unknown tissue 'livr' in column tissue, rows 4, 9; did you mean 'liver'?")):
        read_dataset(path)


def test_tissue_spellings_are_mapped(tmp_path):
    """tumor -> tumour, Kidneys -> kidney, feces -> faeces, Intestine_small -> small_intestine."""
    path = make(tmp_path, """
time,tissue,value,unit
1,tumor,2,%ID/g
1,Kidneys,3,%ID/g
1,feces,4,%ID
1,Intestine_small,5,%ID/g
1,serum,6,%ID/mL
""")
    ds = read_dataset(path)
    assert ds.tissues == ["tumour", "kidney", "faeces", "small_intestine", "plasma"]


def test_non_numeric_value(tmp_path):
    """A text value ('ND') is reported with the text and how to write censored values."""
    path = make(tmp_path, "time,tissue,value\n1,liver,2\n4,liver,ND\n24,liver,<DL\n")
    with pytest.raises(DataError, match=re.escape("non-numeric value in column value, rows 3, 4 (got 'ND', '<DL'); expected a number (a value below the limit of quantification is written as a number with its limit in column lloq)")):
        read_dataset(path)


def test_missing_value(tmp_path):
    """An empty value cell in a long file is an error, not a dropped row."""
    path = make(tmp_path, "time,tissue,value\n1,liver,\n4,liver,3\n")
    with pytest.raises(DataError, match=re.escape("missing value in column value, row 2; expected a number")):
        read_dataset(path)


def test_nan_and_inf_are_not_numbers(tmp_path):
    """'nan' and 'inf' parse as floats in Python but are not measurements."""
    path = make(tmp_path, "time,tissue,value\n1,liver,nan\n4,liver,inf\n")
    with pytest.raises(DataError, match=re.escape("non-numeric value in column value, rows 2, 3 (got 'nan', 'inf')")):
        read_dataset(path)


def test_negative_value(tmp_path):
    """A negative value names the column, the row and the value."""
    path = make(tmp_path, "time,tissue,value\n1,liver,-1.5\n4,liver,3\n")
    with pytest.raises(DataError, match=re.escape("negative value in column value, row 2 (got '-1.5'); expected a number >= 0")):
        read_dataset(path)


def test_non_numeric_and_negative_time(tmp_path):
    """Times must be numbers >= 0."""
    path = make(tmp_path, "time,tissue,value\n1h,liver,2\n-4,spleen,3\n")
    err = problems_of(path)
    assert "non-numeric time in column time, row 2 (got '1h'); expected a number" in str(err)
    assert "negative time in column time, row 3 (got '-4'); expected a number >= 0" in str(err)


def test_missing_unit(tmp_path):
    """No value_unit in the sidecar and an empty per-row unit is reported with the rows."""
    path = make(tmp_path, "time,tissue,value,unit\n1,liver,2,%ID/g\n4,liver,3,\n24,liver,3,\n", sidecar=with_meta(value_unit=None))
    with pytest.raises(DataError, match=re.escape("missing unit in column unit, rows 3, 4: no per-row unit and no value_unit in the sidecar")):
        read_dataset(path)


def test_unknown_unit_per_row(tmp_path):
    """An unknown per-row unit is reported with the nearest known spelling."""
    path = make(tmp_path, "time,tissue,value,unit\n1,liver,2,ng/gg\n")
    with pytest.raises(DataError, match=re.escape("unknown unit 'ng/gg' in column unit, row 2; did you mean 'ng/g'")):
        read_dataset(path)


def test_unknown_unit_in_sidecar(tmp_path):
    """An unknown sidecar value_unit is reported against the sidecar key."""
    path = make(tmp_path, "time,tissue,value\n1,liver,2\n", sidecar=with_meta(value_unit="%IDg"))
    with pytest.raises(DataError, match=re.escape("sidecar data.json: value_unit '%IDg' is unknown")):
        read_dataset(path)


def test_unit_that_cannot_become_percent_id(tmp_path):
    """A known unit of the wrong kind (mol/g) cannot be expressed as a fraction of the dose."""
    path = make(tmp_path, "time,tissue,value,unit\n1,liver,2,mol/g\n")
    with pytest.raises(DataError, match=re.escape("unit 'mol/g' in column unit, row 2 cannot be expressed as a fraction of the dose")):
        read_dataset(path)


def test_time_not_increasing(tmp_path):
    """Times going back within a (group, tissue) series are reported with both rows."""
    path = make(tmp_path, "time,tissue,value\n1,liver,2\n24,liver,3\n4,liver,3\n1,spleen,1\n")
    with pytest.raises(DataError, match=re.escape("time not increasing in column time for tissue 'liver', row 4 (4 in row 4 after 24 in row 3); expected each (group, tissue) series in increasing time order")):
        read_dataset(path)


def test_duplicate_time(tmp_path):
    """A group mean (SD and n) and another row at its time conflict: a duplicate, named with the group."""
    path = make(tmp_path, "time,tissue,value,sd,n,group\n1,liver,2,,,PEG\n24,liver,3,0.5,4,PEG\n24,liver,3.5,,,PEG\n24,liver,3,,,bare\n")
    with pytest.raises(DataError, match=re.escape("duplicate time 24 in column time for tissue 'liver' (group 'PEG'), rows 3, 4; expected one row per time in each (group, tissue) series")):
        read_dataset(path)


def test_groups_are_separate_series(tmp_path):
    """The same time in two groups is not a duplicate."""
    path = make(tmp_path, "time,tissue,value,group\n1,liver,2,PEG\n24,liver,3,PEG\n1,liver,3,bare\n24,liver,4,bare\n")
    ds = read_dataset(path)
    assert ds.groups == ["PEG", "bare"]
    assert ds.table["value"].tolist() == [2.0, 3.0, 3.0, 4.0]


def test_sd_without_n(tmp_path):
    """An SD needs n (the fit weights means by SD/sqrt(n))."""
    path = make(tmp_path, "time,tissue,value,sd,n\n1,liver,2,0.5,\n4,liver,3,0.5,\n24,liver,3,0.5,4\n")
    with pytest.raises(DataError, match=re.escape("SD without n in column sd, rows 2, 3; expected the number of animals in column n")):
        read_dataset(path)


def test_negative_sd(tmp_path):
    """A negative SD is reported with its value."""
    path = make(tmp_path, "time,tissue,value,sd,n\n1,liver,2,-0.1,4\n")
    with pytest.raises(DataError, match=re.escape("negative SD in column sd, row 2 (got '-0.1'); expected a number >= 0")):
        read_dataset(path)


def test_invalid_n_and_negative_lloq(tmp_path):
    """n must be a whole number >= 1; lloq must be >= 0."""
    path = make(tmp_path, "time,tissue,value,sd,n,lloq\n1,liver,2,0.1,3.5,-1\n4,liver,2,0.1,0,\n")
    err = problems_of(path)
    assert "invalid n in column n, rows 2, 3 (got '3.5', '0'); expected a whole number of animals >= 1" in str(err)
    assert "negative LLOQ in column lloq, row 2 (got '-1'); expected a number >= 0" in str(err)


def test_dose_missing_for_amounts(tmp_path):
    """ng/g rows need the dose to become %ID: a missing dose is an error naming the rows."""
    path = make(tmp_path, "time,tissue,value\n1,liver,200\n4,liver,300\n", sidecar=with_meta(value_unit="ng/g", dose=None))
    with pytest.raises(DataError, match=re.escape("dose missing: rows 2, 3 are in ng/g, an amount of material, which needs the injected dose to become %ID")):
        read_dataset(path)


def test_dose_per_kg_without_body_weight(tmp_path):
    """A mg/kg dose cannot become µg without body_weight_g, if a conversion needs it."""
    path = make(tmp_path, "time,tissue,value\n1,liver,200\n", sidecar=with_meta(value_unit="ng/g", dose={"value": 0.85, "unit": "mg/kg"}, body_weight_g=None))
    with pytest.raises(DataError, match=re.escape("dose 0.85 mg/kg cannot be used: a dose in mg/kg needs body_weight_g; row 2 in ng/g need the injected mass")):
        read_dataset(path)


def test_dose_not_needed_for_dose_fractions(tmp_path):
    """%ID/g data read fine without a dose (a radioactive dose in MBq is fine too)."""
    path = make(tmp_path, "time,tissue,value\n1,liver,20\n", sidecar=with_meta(dose={"value": 0.37, "unit": "MBq"}))
    ds = read_dataset(path)
    assert ds.dose_ug is None
    assert ds.table["value"].tolist() == [20.0]


def test_missing_required_column_and_unknown_column(tmp_path):
    """A missing required column and a misspelt column are both reported."""
    path = make(tmp_path, "time,tissue,valu\n1,liver,2\n")
    err = problems_of(path)
    assert "missing required column 'value'; got columns: time, tissue, valu" in str(err)
    assert "unknown column 'valu'; did you mean 'value'?" in str(err)


def test_values_in_a_column_without_header(tmp_path):
    """A value typed beyond the last header is reported, not dropped."""
    path = make(tmp_path, "time,tissue,value\n1,liver,2,0.3\n4,liver,2\n")
    with pytest.raises(DataError, match=re.escape("values in column 4, which has no header, row 2")):
        read_dataset(path)


def test_sidecar_missing(tmp_path):
    """No sidecar and no keyword arguments: the expected sidecar path is named."""
    path = make(tmp_path, "time,tissue,value\n1,liver,2\n", sidecar=None)
    with pytest.raises(DataError, match=re.escape(f"sidecar {tmp_path / 'data.json'} not found; expected a JSON file with the same stem")):
        read_dataset(path)


def test_sidecar_invalid_json(tmp_path):
    """Invalid JSON names the line and column of the syntax error."""
    path = make(tmp_path, "time,tissue,value\n1,liver,2\n", sidecar='{"name": "x" "species": "mouse"}')
    with pytest.raises(DataError, match=re.escape("sidecar data.json is not valid JSON: Expecting ',' delimiter at line 1, column 14")):
        read_dataset(path)


def test_sidecar_missing_keys(tmp_path):
    """Every missing required key is listed, including those inside source."""
    meta = with_meta(species=None, route=None)
    meta["source"] = {"citation": "Test 2024"}
    path = make(tmp_path, "time,tissue,value\n1,liver,2\n", sidecar=meta)
    with pytest.raises(DataError, match=re.escape("sidecar data.json lacks required key(s) 'species', 'route', 'source.doi'")):
        read_dataset(path)


def test_sidecar_typo_and_bad_values(tmp_path):
    """A key one letter off, a non-time time_unit and a negative body weight are reported."""
    meta = with_meta(time_unit="mg", body_weight_g=-20)
    meta["particle"] = {"material": "Au", "core_diamter_nm": 15}
    meta["organ_masess_g"] = {"liver": 1}
    path = make(tmp_path, "time,tissue,value\n1,liver,2\n", sidecar=meta)
    err = str(problems_of(path))
    assert "sidecar data.json: time_unit 'mg' is not a unit of time" in err
    assert "sidecar data.json: body_weight_g must be a positive number of grams (got -20)" in err
    assert "sidecar data.json: unknown particle key 'core_diamter_nm'; did you mean 'core_diameter_nm'?" in err
    assert "sidecar data.json: unknown key 'organ_masess_g'; did you mean 'organ_masses_g'?" in err


def test_keyword_arguments_replace_a_missing_sidecar(tmp_path):
    """Without a sidecar, keyword arguments give the metadata (name defaults to the stem)."""
    path = make(tmp_path, "time,tissue,value\n30,liver,2\n", sidecar=None)
    ds = read_dataset(path, source={"citation": "lab notebook", "doi": None}, species="mouse", route="iv",
                      time_unit="min", value_unit="%ID/g", dose="20 ug")
    assert ds.name == "data"
    assert ds.table["time_h"].tolist() == [0.5]
    assert ds.dose_ug == 20.0


def test_keyword_arguments_without_sidecar_still_need_required_keys(tmp_path):
    """Keyword arguments missing a required key are reported as such."""
    path = make(tmp_path, "time,tissue,value\n1,liver,2\n", sidecar=None)
    with pytest.raises(DataError, match=re.escape("keyword arguments (no sidecar file) lacks required key(s) 'source', 'species', 'route', 'time_unit'")):
        read_dataset(path, value_unit="%ID/g")


def test_unknown_bundled_name_suggests_the_nearest(tmp_path):
    """A mistyped bundled name suggests the right one."""
    with pytest.raises(DataError, match=re.escape("did you mean 'cho2010_peg_au_13nm'")):
        read_dataset("cho2010_peg_au_13")


def test_one_file_with_many_problems_reports_all_of_them(tmp_path):
    """Every problem of a bad file and its sidecar comes in one DataError, with rows."""
    path = make(tmp_path, """
time,tissue,value,sd,n,unit
1,liver,10,1,4,%ID/g
1,livr,5,,,%ID/g
4,liver,ND,1,,%ID/g
24,liver,-3,-1,4,%ID/g
4,liver,2,,,%ID/g
4,spleen,3,,,ng/gg
4,spleen,4,,,%ID/g
24,livr,3,,,%ID/g
""", sidecar=with_meta(route=None))
    err = problems_of(path)
    expected = [
        "sidecar data.json lacks required key(s) 'route'",
        "unknown tissue 'livr' in column tissue, rows 3, 9; did you mean 'liver'?",
        "non-numeric value in column value, row 4 (got 'ND')",
        "SD without n in column sd, row 4",
        "negative value in column value, row 5 (got '-3')",
        "negative SD in column sd, row 5 (got '-1')",
        "unknown unit 'ng/gg' in column unit, row 7",
        "time not increasing in column time for tissue 'liver', row 6 (4 in row 6 after 24 in row 5)",
        "duplicate time 4 in column time for tissue 'liver', rows 4, 6",
    ]  # spleen rows 7, 8 (same time, no SD or n) are two animals, not a duplicate
    message = str(err)
    for text in expected:
        assert text in message
    assert message.startswith(f"{len(expected)} problem(s) in {path}:")
    assert len(err.problems) == len(expected)
    by_message = {p["message"].split(";")[0]: p for p in err.problems}
    livr = by_message["unknown tissue 'livr' in column tissue, rows 3, 9"]
    assert livr["column"] == "tissue" and livr["rows"] == [3, 9]


def test_percent_id_reports_every_unconvertible_tissue(tmp_path):
    """A tissue without organ mass cannot become %ID: an error names it and its rows."""
    path = make(tmp_path, "time,tissue,value\n1,liver,10\n1,testis,2\n4,testis,1\n1,carcass,1\n")
    ds = read_dataset(path)
    with pytest.raises(DataError) as info:
        ds.percent_id()
    message = str(info.value)
    assert "cannot convert to %ID: no organ mass for tissue 'testis' (no organ 'testis' in the mouse physiology table), rows 3, 4" in message
    assert "cannot convert to %ID: no organ mass for tissue 'carcass'" in message and ", row 5;" in message


def test_percent_id_skip_unconvertible_warns_with_rows(tmp_path):
    """skip_unconvertible leaves rows out with a DataWarning listing them; liver still converts."""
    path = make(tmp_path, "time,tissue,value\n1,liver,10\n1,testis,2\n", sidecar=with_meta(organ_masses_g={"liver": 1.1}))
    ds = read_dataset(path)
    with pytest.warns(DataWarning, match=re.escape("rows left out of the %ID table (not convertible): no organ mass for tissue 'testis' (no organ 'testis' in the mouse physiology table), row 3")):
        table = ds.percent_id(skip_unconvertible=True)
    assert table["tissue"].tolist() == ["liver"]
    assert table["value_pid"].tolist() == pytest.approx([11.0], rel=1e-12)


def test_excreta_in_concentration_units_cannot_become_percent_id(tmp_path):
    """Urine in ng/mL has no organ mass: the reason is given."""
    path = make(tmp_path, "time,tissue,value\n24,urine,30\n", sidecar=with_meta(value_unit="ng/mL"))
    ds = read_dataset(path)
    with pytest.raises(DataError, match=re.escape("no organ mass for tissue 'urine' (urine is an excretion and has no organ mass), row 2")):
        ds.percent_id()


def test_note_column_is_kept(tmp_path):
    """Free-text notes are carried into the table, not dropped."""
    path = make(tmp_path, "time,tissue,value,notes\n1,liver,2,haemolysed\n4,liver,3,\n")
    assert read_dataset(path).table["note"].tolist() == ["haemolysed", ""]
