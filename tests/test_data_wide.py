"""The wide spreadsheet layout (CSV and .xlsx) and the long <-> wide round trip."""
import json
import re
import tempfile
from pathlib import Path

import numpy as np
import openpyxl
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nanopk.data import read_dataset
from nanopk.errors import DataError

META = {
    "name": "wide", "source": {"citation": "Test 2024", "doi": None}, "species": "mouse", "route": "iv",
    "time_unit": "h", "value_unit": "%ID/g", "body_weight_g": 20, "dose": {"value": 20, "unit": "ug"},
}

WIDE = """
time,n,Liver,liver_sd,Spleen,spleen_sd,Tumor
1,4,30.5,2.1,10,1,
24,4,25,3,12.5,0.5,4.2
"""


def write_sidecar(path, meta=META):
    path.with_suffix(".json").write_text(json.dumps(meta), encoding="utf-8")


def test_wide_csv_becomes_the_long_table(tmp_path):
    """One row per time, one column per tissue (+ _sd), n shared; empty cells are not observations."""
    path = tmp_path / "wide.csv"
    path.write_text(WIDE.lstrip(), encoding="utf-8")
    write_sidecar(path)
    t = read_dataset(path).table
    assert t["tissue"].tolist() == ["liver", "spleen", "liver", "spleen", "tumour"]
    assert t["time_h"].tolist() == [1.0, 1.0, 24.0, 24.0, 24.0]
    assert t["value"].tolist() == [30.5, 10.0, 25.0, 12.5, 4.2]
    assert t["sd"].tolist()[:4] == [2.1, 1.0, 3.0, 0.5] and np.isnan(t["sd"].iloc[4])
    assert t["n"].tolist() == [4, 4, 4, 4, 4]
    assert t["row"].tolist() == [2, 2, 3, 3, 3]


def test_wide_xlsx_reads_like_the_csv(tmp_path):
    """The same sheet saved as .xlsx gives the same table."""
    wb = openpyxl.Workbook()
    ws = wb.active
    for line in WIDE.strip().splitlines():
        ws.append([float(c) if c.replace(".", "").isdigit() else (c or None) for c in line.split(",")])
    path = tmp_path / "wide.xlsx"
    wb.save(path)
    write_sidecar(path)
    csv_path = tmp_path / "csv" / "wide.csv"
    csv_path.parent.mkdir()
    csv_path.write_text(WIDE.lstrip(), encoding="utf-8")
    write_sidecar(csv_path)
    a, b = read_dataset(path).table, read_dataset(csv_path).table
    pd.testing.assert_frame_equal(a, b)


def test_long_xlsx_with_keyword_metadata(tmp_path):
    """A long .xlsx without sidecar, metadata given as keyword arguments."""
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["time", "tissue", "value", "sd", "n"])
    ws.append([0.5, "liver", 12.0, 1.5, 3])
    ws.append([2, "liver", 20.0, 2.5, 3])
    path = tmp_path / "lab.xlsx"
    wb.save(path)
    ds = read_dataset(path, source={"citation": "lab", "doi": None}, species="mouse", route="iv", time_unit="d",
                      value_unit="%ID/g", body_weight_g=20)
    assert ds.name == "lab"
    assert ds.table["time_h"].tolist() == [12.0, 48.0]
    assert ds.table["sd"].tolist() == [1.5, 2.5]


def test_wide_errors_name_the_tissue_column_and_row(tmp_path):
    """Problems in a wide sheet cite the tissue's column and the sheet row."""
    path = tmp_path / "wide.csv"
    path.write_text("time,livr,spleen,spleen_sd,kidney_sd\n1,3,-2,0.5,0.1\n4,3,,0.4,\n6,3,1,0.1,\n", encoding="utf-8")
    write_sidecar(path)
    with pytest.raises(DataError) as info:
        read_dataset(path)
    message = str(info.value)
    assert "unknown tissue 'livr' in the header of column 'livr' (row 1); did you mean 'liver'?" in message
    assert "negative value in column spleen, row 2 (got '-2'); expected a number >= 0" in message
    assert "column spleen_sd has a value in row 3 but column spleen is empty" in message
    assert "column(s) 'kidney_sd' have no value column 'kidney' beside them" in message
    assert "SD without n in column spleen_sd, rows 2, 4" in message
    assert len(info.value.problems) == 5


def test_wide_missing_time_column(tmp_path):
    """A wide sheet needs its time column."""
    path = tmp_path / "wide.csv"
    path.write_text("time_h,liver\n1,3\n", encoding="utf-8")
    write_sidecar(path)
    with pytest.raises(DataError, match=re.escape("missing required column 'time'; got columns: time_h, liver")):
        read_dataset(path, layout="wide")


def test_to_wide_refuses_mixed_units(tmp_path):
    """A wide sheet has no unit column, so mixed per-row units cannot be written wide."""
    path = tmp_path / "mixed.csv"
    path.write_text("time,tissue,value,unit\n1,liver,3,%ID/g\n1,blood,2,%ID/mL\n", encoding="utf-8")
    write_sidecar(path)
    with pytest.raises(DataError, match=re.escape("a wide sheet holds one unit, but the rows have units %ID/g, %ID/mL")):
        read_dataset(path).to_wide()


# ---------------------------------------------------------------- round trip
TISSUE_POOL = ["blood", "liver", "spleen", "kidney", "lung", "tumour", "brain"]
finite = st.floats(0, 1e6, allow_nan=False, allow_infinity=False)


@st.composite
def long_tables(draw):
    """Random valid long tables: several groups, tissues with increasing distinct times, SD with n."""
    groups = draw(st.lists(st.sampled_from(["", "A", "B"]), min_size=1, max_size=2, unique=True))
    if "" in groups:
        groups = [""]
    rows = []
    with_sd = draw(st.booleans())
    for group in groups:
        tissues = draw(st.lists(st.sampled_from(TISSUE_POOL), min_size=1, max_size=4, unique=True))
        for tissue in tissues:
            times = sorted(draw(st.lists(st.floats(0, 1e4, allow_nan=False), min_size=1, max_size=5, unique=True)))
            for t in times:
                row = {"time": t, "tissue": tissue, "value": draw(finite), "group": group}
                if with_sd:
                    row["sd"] = draw(finite)
                    row["n"] = draw(st.integers(1, 12))
                rows.append(row)
    return rows


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=long_tables())
def test_long_to_wide_to_long_round_trip(rows):
    """Reading a long file, writing it wide and reading that back gives the same observations."""
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        columns = ["time", "tissue", "value"] + (["sd", "n"] if "sd" in rows[0] else []) + ["group"]
        lines = [",".join(columns)] + [",".join(repr(r[c]) if isinstance(r[c], float) else str(r[c]) for c in columns) for r in rows]
        path = tmp / "long.csv"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        write_sidecar(path)
        long_ds = read_dataset(path)
        (tmp / "wide").mkdir()
        wide_path = long_ds.write(tmp / "wide" / "data.csv", layout="wide")
        wide_ds = read_dataset(wide_path)
        key = ["group", "tissue", "time"]
        cols = ["group", "tissue", "time", "time_h", "value", "sd", "n", "unit", "censored"]
        a = long_ds.table[cols].sort_values(key).reset_index(drop=True)
        b = wide_ds.table[cols].sort_values(key).reset_index(drop=True)
        pd.testing.assert_frame_equal(a, b)
        again = read_dataset(wide_ds.write(tmp / "long2.csv", layout="long"))
        pd.testing.assert_frame_equal(again.table[cols].sort_values(key).reset_index(drop=True), a)


def test_xlsx_rows_are_numbered_as_the_spreadsheet_shows(tmp_path):
    """A sheet whose header starts in row 3 reports problems with the sheet's own row numbers."""
    wb = openpyxl.Workbook()
    ws = wb.active
    ws["B3"], ws["C3"], ws["D3"] = "time", "tissue", "value"
    ws["B4"], ws["C4"], ws["D4"] = 1, "liver", 2
    ws["B6"], ws["C6"], ws["D6"] = 4, "livr", -3
    path = tmp_path / "offset.xlsx"
    wb.save(path)
    write_sidecar(path)
    with pytest.raises(DataError) as info:
        read_dataset(path)
    assert "unknown tissue 'livr' in column tissue, row 6; did you mean 'liver'?" in str(info.value)
    assert "negative value in column value, row 6 (got -3); expected a number >= 0" in str(info.value)


def test_semicolon_separated_csv(tmp_path):
    """A CSV saved with ';' separators (common in European locales) reads like a comma CSV."""
    path = tmp_path / "semi.csv"
    path.write_text("time;tissue;value;sd;n\n1;liver;30.5;2;4\n", encoding="utf-8")
    write_sidecar(path)
    t = read_dataset(path).table
    assert (t["tissue"].tolist(), t["value"].tolist(), t["sd"].tolist(), t["n"].tolist()) == (["liver"], [30.5], [2.0], [4])
