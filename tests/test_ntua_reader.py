"""The NTUA biodistribution database reader (nanopk.meta.ntua): small derived workbooks and the shared file.

The small workbooks are built here with openpyxl in the NTUA layout (six sheets, the
three wide sheets parallel, keyed by Study_id and Instance) with one instance per quirk
and per refusal path.  The real-file test reads ../shared/datasets/raw (PROVENANCE.md
section 6) and is skipped only when that folder is absent (tests/conftest.py fails a CI
run with skips).
"""
from __future__ import annotations

import math
import warnings
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nanopk.data import read_dataset
from nanopk.errors import DataError, NanopkError
from nanopk.meta import read_collection
from nanopk.meta.ntua import NTUA_SHEETS, REFUSAL_COLUMNS, read_ntua_database, summarise_ntua

openpyxl = pytest.importorskip("openpyxl")

RAW = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "raw"
NTUA = RAW / "ntua-unit-of-control-and-informatics__NM-biodistribution-prediction" / "Biodistribution_data" / "NMs_Database.xlsx"

EXP_COLS = list(NTUA_SHEETS["Experiment_details"]) + ["Cancer_cell_type", "Cancer_location", "Cancer_volume_mm3", "Dose_volume_ml"]
PHYS_COLS = list(NTUA_SHEETS["Physchem_properties"]) + ["Material_name"]
EXP_DEFAULT = {"Species": "Mice", "Strain": "BALB/c", "Sex": "Male", "Cancer_presence": "No", "Weight_g": 20,
               "Administration_route": "IV", "Dose": 10, "Dose_units": "mg/kg", "Measured_concentration_units": "%ID/g",
               "Sampled_time_units": "hours"}
PHYS_DEFAULT = {"Material": "Au", "Nominal_size_nm": 15, "Hydrodynamic_size_nm": 40, "Shape": "sphere", "Coating": "Yes",
                "Coating_molecule": "PEG", "Coating_MW(Da)": 5000, "Z-potential": -10}
OBS_DEFAULT = [(1, "Liver", 20.0), (24, "Liver", 30.0), (1, "Blood", 10.0), (24, "Blood", 2.0)]


def inst(study, instance, obs=None, key_override=None, **fields):
    """One instance: Experiment_details and Physchem fields (keyword) and (time, tissue, value) cells."""
    exp = dict(EXP_DEFAULT)
    phys = dict(PHYS_DEFAULT)
    for k, v in fields.items():
        (exp if k in EXP_COLS else phys)[k] = v
    return {"key": (study, instance), "exp": exp, "phys": phys, "obs": OBS_DEFAULT if obs is None else obs,
            "keys": key_override or {}}


def workbook(path: Path, instances, metadata=None, drop_sheet=None, drop_column=None, extra_wide_row=False):
    """Write an NTUA-layout workbook; ``metadata`` maps study -> (Author, Date, Title, Doi)."""
    studies = sorted({i["key"][0] for i in instances})
    metadata = metadata if metadata is not None else {s: (f"Author{s} et al.", 2010, f"Title {s}", f"10.1000/s{s}") for s in studies}
    wb = openpyxl.Workbook()
    wb.remove(wb.active)

    def sheet(name, header, rows):
        if name == drop_sheet:
            return
        ws = wb.create_sheet(name)
        header = [h for h in header if h != drop_column]
        ws.append(header)
        for r in rows:
            ws.append([r.get(h) for h in header] if isinstance(r, dict) else list(r))

    def key(i, sheet_name):
        return i["keys"].get(sheet_name, i["key"])

    sheet("Physchem_properties", PHYS_COLS,
          [dict(i["phys"], Study_id=key(i, "Physchem_properties")[0], Instance=key(i, "Physchem_properties")[1]) for i in instances])
    sheet("Experiment_details", EXP_COLS,
          [dict(i["exp"], Study_id=key(i, "Experiment_details")[0], Instance=key(i, "Experiment_details")[1]) for i in instances])
    for name, k in (("Time_points", 0), ("Tissues", 1), ("Concentrations", 2)):
        rows = [list(key(i, name)) + [o[k] for o in i["obs"]] for i in instances]
        if extra_wide_row and name == "Concentrations":
            rows.append([99, 1, 1.0])
        sheet(name, ["Study_id", "Instance"], rows)
    sheet("Metadata", ["Study_id", "Author", "Date", "Title", "Doi"], [[s, *m] for s, m in metadata.items()])
    wb.save(path)
    return path


def read(path, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return read_ntua_database(path, **kwargs)


def refusal(refusals, name, reason):
    rows = refusals[(refusals["name"] == name) & (refusals["reason"] == reason)]
    assert len(rows) == 1, (name, reason, refusals[refusals["name"] == name][["level", "reason", "detail"]].to_string())
    return rows.iloc[0]


# ------------------------------------------------------------------ a mapped instance
def test_instance_becomes_a_dataset_with_its_sidecar(tmp_path):
    """An IV %ID/g instance maps species, route, dose, units, particle, tumour and citation into a nanopk Dataset."""
    path = workbook(tmp_path / "db.xlsx", [inst(1, 1, Cancer_presence="Yes", Cancer_cell_type="4T1", Cancer_location="flank",
                                                Cancer_volume_mm3=200, obs=OBS_DEFAULT + [(24, "Tumor", 5.0)])])
    coll, refusals = read(path)
    assert coll.names == ["ntua_s1_i1"] and list(refusals.columns) == list(REFUSAL_COLUMNS)
    ds = coll["ntua_s1_i1"]
    meta = ds.meta
    assert (meta["species"], meta["route"], meta["time_unit"], meta["value_unit"]) == ("mouse", "iv", "h", "%ID/g")
    assert meta["dose"] == {"value": 10.0, "unit": "mg/kg"} and ds.dose_ug == pytest.approx(200.0, rel=1e-12)  # 10 mg/kg x 20 g
    assert meta["source"]["citation"] == "Author1 et al. 2010. Title 1" and meta["source"]["doi"] == "10.1000/s1"
    assert meta["particle"] == {"material": "Au", "core_diameter_nm": 15.0, "hydrodynamic_diameter_nm": 40.0, "shape": "sphere",
                                "coating": "PEG", "coating_mw_da": 5000.0, "zeta_mV": -10.0}
    assert meta["tumour"] == {"model": "tumour-bearing", "cell_line": "4T1", "site": "flank", "weight_g": pytest.approx(0.2, rel=1e-12)}
    assert any("Cancer_volume_mm3" in a for a in meta["assumptions"])
    assert sorted(ds.tissues) == ["blood", "liver", "tumour"]
    t = ds.table.set_index(["tissue", "time_h"])["value"]
    assert t[("liver", 24.0)] == 30.0 and t[("tumour", 24.0)] == 5.0
    pid = ds.percent_id().set_index(["tissue", "time_h"])["value_pid"]
    assert pid[("tumour", 24.0)] == pytest.approx(5.0 * 0.2, rel=1e-12)  # %ID/g x tumour weight
    assert refusals.empty


def test_time_units_and_value_units_are_mapped(tmp_path):
    """days/min/sec become d/min/s (times converted to h by the data layer); ng/g with a mass dose is kept."""
    path = workbook(tmp_path / "db.xlsx", [
        inst(1, 1, Sampled_time_units="days", obs=[(1, "Liver", 1.0), (7, "Liver", 2.0)]),
        inst(1, 2, Sampled_time_units="min", obs=[(30, "Liver", 1.0)]),
        inst(1, 3, Sampled_time_units="sec", obs=[(90, "Liver", 1.0)]),
        inst(1, 4, Measured_concentration_units="ng/g", Dose=20, Dose_units="ug", obs=[(1, "Liver", 500.0)]),
    ])
    coll, _ = read(path)
    assert coll["ntua_s1_i1"].table["time_h"].tolist() == [24.0, 168.0]
    assert coll["ntua_s1_i2"].table["time_h"].tolist() == [0.5]
    assert coll["ntua_s1_i3"].table["time_h"].tolist() == [pytest.approx(0.025, rel=1e-12)]
    ds = coll["ntua_s1_i4"]
    liver_g = ds.organ_mass("liver")[0]
    assert ds.percent_id()["value_pid"].iloc[0] == pytest.approx(500.0 * liver_g / 1000 / 20 * 100, rel=1e-9)  # ng/g x g / µg


# ------------------------------------------------------------------ the quirks
def test_limit_strings_are_censored_and_nd_is_refused(tmp_path):
    """'<0.15' is value 0 with lloq 0.15 (censored); 'ND' and '<DL' cells are refused with their columns, never valued."""
    obs = [(1, "Liver", "<0.15"), (2, "Liver", 3.0), (1, "Brain", "ND"), (2, "Brain", "ND"), (1, "Blood", "<DL"), (2, "Blood", 1.0)]
    coll, refusals = read(workbook(tmp_path / "db.xlsx", [inst(1, 1, obs=obs)]))
    t = coll["ntua_s1_i1"].table
    cens = t[t["censored"]]
    assert cens[["tissue", "value", "lloq"]].values.tolist() == [["liver", 0.0, 0.15]]
    assert len(t) == 3 and "brain" not in set(t["tissue"])
    nd = refusal(refusals, "ntua_s1_i1", "not detected (ND), no limit given")
    assert (nd["level"], nd["tissue"], nd["columns"], nd["n_cells"], nd["row"]) == ("cells", "Brain", "E, F", 2, 2)
    dl = refusal(refusals, "ntua_s1_i1", "below detection limit (<DL), limit not given")
    assert (dl["tissue"], dl["columns"], dl["n_cells"]) == ("Blood", "G", 1)
    assert "which the database does not give" in dl["detail"]


def test_greek_lookalikes_in_coating_fields(tmp_path):
    """'Νο' / 'ΝΑ' written in Greek capitals read as No / NA: an uncoated particle, and the fix is counted."""
    coll, refusals = read(workbook(tmp_path / "db.xlsx", [inst(1, 1, Coating="Νο", Coating_molecule="ΝΑ", **{"Coating_MW(Da)": "ΝΑ"})]))
    assert coll["ntua_s1_i1"].meta["particle"]["coating"] == "none"
    assert "coating_mw_da" not in coll["ntua_s1_i1"].meta["particle"]
    note = refusals[refusals["reason"] == "Greek look-alike letters read as Latin"].iloc[0]
    assert note["level"] == "note" and note["n_cells"] == 3


def test_study_8_first_time_is_read_as_30_min(tmp_path):
    """Study 8's '2.0833 days' is 0.020833 d = 30 min (PROVENANCE.md section 6), and the correction is listed."""
    obs = [(2.0833, "Blood", 8141.0), (0.166667, "Blood", 5865.4), (1.0, "Blood", 4818.1)]
    coll, refusals = read(workbook(tmp_path / "db.xlsx", [inst(8, 5, Sampled_time_units="days", obs=obs)]))
    assert coll["ntua_s8_i5"].table["time_h"].tolist() == pytest.approx([0.5, 4.0, 24.0], rel=1e-4)
    note = refusal(refusals, "ntua_s8_i5", "study 8 time 2.0833 d read as 0.020833 d")
    assert (note["level"], note["columns"], note["n_cells"]) == ("note", "C", 1)


def test_the_same_time_outside_study_8_is_not_changed(tmp_path):
    """The study-8 correction is that study's only: 2.0833 d elsewhere stays 50 h (and out of order is refused)."""
    obs = [(2.0833, "Blood", 1.0), (0.166667, "Blood", 2.0)]
    _, refusals = read(workbook(tmp_path / "db.xlsx", [inst(9, 1, Sampled_time_units="days", obs=obs)]))
    row = refusal(refusals, "ntua_s9_i1", "failed nanopk's dataset checks")
    assert "time not increasing" in row["detail"] and row["n_cells"] == 2


def test_row_keys_that_disagree_are_read_in_parallel(tmp_path):
    """A Physchem row repeating the previous instance number is read as its row's instance, listed as a note."""
    path = workbook(tmp_path / "db.xlsx", [inst(49, 1), inst(49, 2, Nominal_size_nm=30, key_override={"Physchem_properties": (49, 1)})])
    coll, refusals = read(path)
    assert coll.names == ["ntua_s49_i1", "ntua_s49_i2"]
    assert coll["ntua_s49_i2"].meta["particle"]["core_diameter_nm"] == 30.0
    note = refusal(refusals, "ntua_s49_i2", "row keys disagree between sheets")
    assert note["level"] == "note" and "Physchem_properties (49, 1)" in note["detail"] and "read as instance 2" in note["detail"]


# ------------------------------------------------------------------ refusal paths
REFUSED = [
    # (instance fields, name, level, reason, words in detail)
    ({"Administration_route": "IR"}, "route not mapped", "instance", "administration route 'IR'"),
    ({"Species": "Dog"}, "species not mapped", "instance", "species 'Dog'"),
    ({"Sampled_time_units": "weeks"}, "time unit not mapped", "instance", "Sampled_time_units 'weeks'"),
    ({"Measured_concentration_units": None}, "value unit missing", "instance", "Measured_concentration_units is blank"),
    ({"Measured_concentration_units": "mol/g"}, "failed nanopk's dataset checks", "instance", "cannot be expressed as a fraction of the dose"),
    ({"Measured_concentration_units": "ng/g", "Weight_g": None}, "amount unit without a usable dose", "instance",
     "a dose in mg/kg needs body_weight_g (Weight_g is blank; pass assume_body_weight_g= to assume one)"),
    ({"Measured_concentration_units": "ug/g", "Dose": 4.5e11, "Dose_units": "particles/ml"}, "amount unit without a usable dose",
     "instance", "is a concentration of the injected suspension, not a dose"),
    ({"Dose": 4.5e11, "Dose_units": "particles/ml"}, "dose not mapped", "field", "concentration of the injected suspension"),
    ({"Dose": None}, "dose not mapped", "field", "no dose (Dose None"),
    ({"Dose_units": "NPs"}, "dose not mapped", "field", "dose unit 'NPs' is not a unit nanopk reads"),
    ({"Material": "graphene"}, "material not in nanopk's vocabulary", "field", "material 'graphene'"),
    ({"Coating_molecule": "NOTA"}, "coating not in nanopk's vocabulary", "field", "coating molecule 'NOTA'"),
    ({"Coating_MW(Da)": "2000 AND 5000"}, "Coating_MW(Da) not a number", "field", "'2000 AND 5000' is not a single positive number"),
    ({"Z-potential": "neutral"}, "Z-potential not a number", "field", "Z-potential 'neutral'"),
    ({"obs": [(1, "Adrenal", 1.0), (1, "Liver", 2.0)]}, "tissue not mapped", "cells", "not in nanopk's tissue vocabulary"),
    ({"obs": [(1, "Control_Tumor", 1.0), (1, "Liver", 2.0)]}, "tissue not mapped", "cells", "a control group's tissue"),
    ({"obs": [(1, "Cascade", 1.0), (1, "Liver", 2.0)]}, "tissue not mapped", "cells", "perhaps 'carcass'; not certain"),
    ({"obs": [(1, "Kidney_left", 1.0), (1, "Liver", 2.0)]}, "tissue not mapped", "cells", "one kidney only"),
    ({"obs": [(None, "Bile_juice", 4.7), (1, "Liver", 2.0)]}, "cell without a time", "cells", "Bile_juice value whose Time_points cell is blank"),
    ({"obs": [(None, None, 1.9), (1, "Liver", 2.0)]}, "cell without a tissue", "cells", "Tissues cell is blank"),
    ({"obs": [(1, "Liver", None), (2, "Liver", 2.0)]}, "cell without a value", "cells", "Concentrations cell is blank"),
    ({"obs": [("x", "Liver", 1.0), (2, "Liver", 2.0)]}, "time not a number >= 0", "cells", "time 'x'"),
    ({"obs": [(1, "Liver", "abc"), (2, "Liver", 2.0)]}, "value not a number", "cells", "value 'abc'"),
    ({"obs": [(1, "Liver", -3.0), (2, "Liver", 2.0)]}, "negative value", "cells", "negative value -3"),
    ({"obs": [(1, "Liver", "ND")]}, "no observations left", "instance", "none of its 1 cells could be mapped (not detected (ND)"),
]


@pytest.mark.parametrize("fields, reason, level, detail", REFUSED, ids=[r[1] + ":" + r[3][:25] for r in REFUSED])
def test_each_refusal_is_listed_with_its_reason(tmp_path, fields, reason, level, detail):
    """Each thing the reader cannot map is one refusals row (study, instance, level, reason, detail); nothing silent."""
    fields = dict(fields)
    obs = fields.pop("obs", None)
    coll, refusals = read(workbook(tmp_path / "db.xlsx", [inst(3, 1, obs=obs, **fields)]))
    row = refusal(refusals, "ntua_s3_i1", reason)
    assert (row["study"], row["instance"], row["level"]) == (3, 1, level)
    assert detail in row["detail"]
    assert ("ntua_s3_i1" in coll.names) == (level != "instance")
    s = summarise_ntua(coll)
    c = s["counts"]
    assert c["cells_read"] == c["points_mapped"] + c["cells_refused_in_mapped"] + c["cells_of_refused_instances"]


def test_an_instance_without_a_citation_is_refused(tmp_path):
    """A study missing from the Metadata sheet has no citation: its instances are refused."""
    _, refusals = read(workbook(tmp_path / "db.xlsx", [inst(5, 1)], metadata={}))
    row = refusal(refusals, "ntua_s5_i1", "no citation")
    assert row["level"] == "instance" and "study 5 has no row (or no Author) in sheet Metadata" in row["detail"]
    assert row["n_cells"] == 4


def test_pmid_and_pmcid_are_kept_instead_of_a_doi(tmp_path):
    """A 'PMID: n' or 'PMCn' in the Doi column is kept as pmid / pmcid, and the DOI is null."""
    meta = {1: ("A et al.", 2005, "T", "PMID: 16000291"), 2: ("B et al.", 2013, "U", "PMC3545363")}
    coll, _ = read(workbook(tmp_path / "db.xlsx", [inst(1, 1), inst(2, 1)], metadata=meta))
    assert coll["ntua_s1_i1"].meta["source"] | {} == {"citation": "A et al. 2005. T", "doi": None, "pmid": "16000291",
                                                      "compiled_from": "db.xlsx: study 1, instance 1 (Experiment_details row 2)"}
    assert coll["ntua_s2_i1"].meta["source"]["pmcid"] == "PMC3545363"


def test_duplicate_and_non_parallel_keys_are_refused(tmp_path):
    """A key repeated in every instance sheet (both rows), or rows naming different studies, cannot be placed: refused."""
    path = workbook(tmp_path / "db.xlsx", [inst(4, 1), inst(4, 1), inst(6, 1, key_override={"Tissues": (7, 1)}), inst(6, 2)])
    coll, refusals = read(path)
    assert coll.names == ["ntua_s6_i2"]
    dup = refusals[refusals["reason"] == "duplicate instance key"]
    assert dup["row"].tolist() == [2, 3] and set(dup["name"]) == {"ntua_s4_i1"} and set(dup["n_cells"]) == {4}
    assert "key (4, 1) repeats in every instance sheet, so its rows cannot be told apart" in dup.iloc[0]["detail"]
    par = refusals[refusals["reason"] == "sheets not parallel"].iloc[0]
    assert par["row"] == 4 and "Tissues 7" in par["detail"] and par["n_cells"] == 4


def test_assumed_body_weight_is_written_as_an_assumption(tmp_path):
    """assume_body_weight_g fills a blank Weight_g, says so in assumptions, and makes a per-kg dose a mass."""
    path = workbook(tmp_path / "db.xlsx", [inst(8, 2, Weight_g=None, Measured_concentration_units="ng/g", Dose=0.85)])
    coll, _ = read(path, assume_body_weight_g=20)
    ds = coll["ntua_s8_i2"]
    assert ds.body_weight_g == 20.0 and ds.dose_ug == pytest.approx(17.0, rel=1e-12)  # 0.85 mg/kg x 20 g
    assert ds.meta["assumptions"] == ["body_weight_g = 20 g is assumed (Weight_g is blank in the database)"]


# ------------------------------------------------------------------ errors
def test_errors_name_the_file_and_what_is_expected(tmp_path):
    """Unreadable input is one DataError (a NanopkError) that says what is wrong and what was expected."""
    with pytest.raises(DataError, match=r"file '.*nothere.xlsx' does not exist; expected the NTUA NMs_Database.xlsx"):
        read_ntua_database(tmp_path / "nothere.xlsx")
    with pytest.raises(DataError, match=r"no 'NMs_Database.xlsx' under .*; pass the workbook's path"):
        read_ntua_database(tmp_path)
    (tmp_path / "bad.xlsx").write_text("not a workbook")
    with pytest.raises(DataError, match=r"bad.xlsx could not be read as an .xlsx workbook \(.*\); expected the NTUA"):
        read_ntua_database(tmp_path / "bad.xlsx")
    good = workbook(tmp_path / "db.xlsx", [inst(1, 1)])
    with pytest.raises(DataError, match=r"assume_body_weight_g must be a positive number of grams \(got -5\)"):
        read_ntua_database(good, assume_body_weight_g=-5)
    assert issubclass(DataError, NanopkError)


def test_missing_sheet_column_or_rows_are_one_error(tmp_path):
    """A missing sheet (with the nearest name), a missing key column, or wide sheets of other lengths raise DataError."""
    path = workbook(tmp_path / "a.xlsx", [inst(1, 1)], drop_sheet="Tissues")
    with pytest.raises(DataError, match=r"a.xlsx: no sheet 'Tissues'; expected sheets Physchem_properties, .*Metadata"):
        read_ntua_database(path)
    path = workbook(tmp_path / "b.xlsx", [inst(1, 1)], drop_column="Administration_route")
    with pytest.raises(DataError, match=r"sheet Experiment_details: missing column\(s\) Administration_route \(have Study_id, "):
        read_ntua_database(path)
    path = workbook(tmp_path / "c.xlsx", [inst(1, 1)], extra_wide_row=True)
    with pytest.raises(DataError, match=r"must have one row per instance, in the same order, but their row counts differ "
                                        r"\(Experiment_details 1, Time_points 1, Physchem_properties 1, Tissues 1, Concentrations 2\)"):
        read_ntua_database(path)


# ------------------------------------------------------------------ counting, hypothesis
CELL = st.one_of(
    st.tuples(st.just("num"), st.floats(0, 1e4, allow_nan=False)),
    st.tuples(st.just("lim"), st.floats(0.01, 10, allow_nan=False)),
    st.sampled_from([("ND", None), ("<DL", None), ("notissue", None), ("notime", None), ("adrenal", None), ("neg", None)]),
)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cells=st.lists(CELL, min_size=1, max_size=12))
def test_every_cell_is_mapped_or_refused(tmp_path_factory, cells):
    """Cells read = points mapped + cells refused + cells of refused instances, for any mix of cell kinds."""
    obs = []
    for k, (kind, x) in enumerate(cells):
        t = float(k + 1)  # increasing times keep each tissue series in order
        obs.append({"num": (t, "Liver", x), "lim": (t, "Liver", f"<{x or 0:g}"), "ND": (t, "Liver", "ND"),
                    "<DL": (t, "Liver", "<DL"), "notissue": (t, None, 1.0), "notime": (None, "Liver", 1.0),
                    "adrenal": (t, "Adrenal", 1.0), "neg": (t, "Liver", -1.0)}[kind])
    path = workbook(tmp_path_factory.mktemp("h") / "db.xlsx", [inst(1, 1, obs=obs)])
    coll, refusals = read(path)
    c = summarise_ntua(coll)["counts"]
    assert c["cells_read"] == len(cells)
    assert c["cells_read"] == c["points_mapped"] + c["cells_refused_in_mapped"] + c["cells_of_refused_instances"]
    n_ok = sum(kind in ("num", "lim") for kind, _ in cells)
    assert c["points_mapped"] == n_ok and c["instances_mapped"] == (1 if n_ok else 0)
    assert c["points_censored"] == sum(kind == "lim" or (kind == "num" and x == 0) for kind, x in cells)


# ------------------------------------------------------------------ nanopk meta
def test_read_collection_takes_the_ntua_workbook(tmp_path):
    """read_collection (nanopk meta) reads an NTUA workbook's tumour instances as MetaItems; the others are listed."""
    obs = OBS_DEFAULT + [(1, "Tumor", 2.0), (24, "Tumor", 4.0)]
    path = workbook(tmp_path / "tumours.xlsx", [
        inst(1, 1, Cancer_presence="Yes", Cancer_volume_mm3=100, obs=obs),
        inst(1, 2, Cancer_presence="Yes", Weight_g=None, obs=obs),
        inst(1, 3),
    ])
    coll = read_collection(path)
    assert coll.ids == ["ntua_s1_i1"]
    item = coll["ntua_s1_i1"]
    assert item.tumour_pct_id.tolist() == pytest.approx([2.0 * 0.1, 4.0 * 0.1], rel=1e-12)  # %ID/g x 0.1 g
    assert item.dose_mg_kg == pytest.approx(10.0, rel=1e-12)
    row = refusal(coll.refusals, "ntua_s1_i2", "tumour not convertible to %ID")
    assert "no body_weight_g" in row["detail"] and row["n_cells"] == 2


# ------------------------------------------------------------------ the shared file
@pytest.fixture(scope="module")
def real():
    if not NTUA.is_file():
        pytest.skip(f"{NTUA} not found")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        coll, refusals = read_ntua_database(NTUA, assume_body_weight_g=20)
    return coll, refusals


def test_real_file_counts(real):
    """The shared NMs_Database.xlsx: 98 studies, 239 instance rows, 5 375 cells (5 353 with time, tissue and value).

    PROVENANCE.md section 6 says 240 instances and 5 344 points: 240 is the sheets' row
    count with the header; its per-study table sums to 238 instances (study 35 listed
    with 1, the file has 2 rows) and 5 344 points (study 81 listed with 6, the file has
    15).  The 22 cells without a time or a tissue are 21 Bile_juice values of study 8
    (instances 4-6) and one value of study 48.
    """
    coll, refusals = real
    s = summarise_ntua(coll, refusals)
    c = s["counts"]
    assert (c["studies"], c["instances_read"], c["cells_read"]) == (98, 239, 5375)
    no_time = refusals[refusals["reason"] == "cell without a time"]
    no_tissue = refusals[refusals["reason"] == "cell without a tissue"]
    assert int(no_time["n_cells"].sum()) == 21 and set(no_time["study"]) == {8}
    assert int(no_tissue["n_cells"].sum()) == 1 and set(no_tissue["study"]) == {48}
    assert c["cells_read"] - 22 == 5353
    assert c["cells_read"] == c["points_mapped"] + c["cells_refused_in_mapped"] + c["cells_of_refused_instances"]
    assert (c["instances_mapped"], c["instances_refused"]) == (237, 2)
    assert (c["points_mapped"], c["points_censored"], c["cells_refused_in_mapped"], c["cells_of_refused_instances"]) == (5137, 114, 193, 45)
    cells = refusals[refusals["level"] == "cells"].groupby("reason")["n_cells"].sum().to_dict()
    assert cells == {"not detected (ND), no limit given": 95, "below detection limit (<DL), limit not given": 1,
                     "cell without a time": 21, "cell without a tissue": 1, "tissue not mapped": 75}
    refused = refusals[refusals["level"] == "instance"].set_index("name")["reason"].to_dict()
    assert refused == {"ntua_s21_i2": "route not mapped", "ntua_s31_i2": "amount unit without a usable dose"}
    assert set(coll.to_frame()["species"]) == {"mouse"}


def test_real_file_cho2010_matches_the_bundled_dataset(real):
    """ntua_s8_i2 (organs) and ntua_s8_i5 (blood) equal datasets/cho2010_peg_au_13nm.csv, which was compiled from them."""
    coll, _ = real
    bundled = read_dataset("cho2010_peg_au_13nm").table
    organs, blood = coll["ntua_s8_i2"], coll["ntua_s8_i5"]
    assert organs.meta["value_unit"] == "ng/g" and organs.meta["dose"] == {"value": 0.85, "unit": "mg/kg"}
    assert organs.dose_ug == pytest.approx(17.0, rel=1e-12)
    assert organs.meta["particle"]["core_diameter_nm"] == 13.0 and organs.meta["particle"]["coating_mw_da"] == 5000.0
    mine = {(t, h): v for t, h, v in zip(organs.table["tissue"], organs.table["time_h"], organs.table["value"])}
    mine.update({(t, h): v for t, h, v in zip(blood.table["tissue"], blood.table["time_h"], blood.table["value"]) if t == "blood"})
    assert len(bundled) == 60 and len(mine) == 60
    for tissue, time_h, value in zip(bundled["tissue"], bundled["time_h"], bundled["value"]):
        # the bundled file writes the nominal 0.5 h and 4 h; the database stores 0.020833 d and 0.16667 d
        match = [k for k in mine if k[0] == tissue and math.isclose(k[1], time_h, rel_tol=1e-4)]
        assert len(match) == 1, (tissue, time_h)
        assert mine[match[0]] == pytest.approx(value, rel=1e-9), (tissue, time_h)


def test_a_key_taken_by_an_earlier_row_is_refused(tmp_path):
    """When the fallback key of one row is another row's key, the later row is refused, naming the earlier one."""
    wide = ("Time_points", "Tissues", "Concentrations")
    path = workbook(tmp_path / "db.xlsx", [
        inst(5, 1, key_override={w: (5, 2) for w in wide} | {"Physchem_properties": (5, 2)}),
        inst(5, 2, key_override={w: (5, 4) for w in wide} | {"Physchem_properties": (5, 4)}),
        inst(5, 1),
    ])
    coll, refusals = read(path)
    assert coll.names == ["ntua_s5_i2", "ntua_s5_i1"]
    row = refusal(refusals, "ntua_s5_i2", "duplicate instance key")
    assert row["row"] == 3 and "instance (5, 2) is also row 2; give each instance its own number" in row["detail"]


def test_summary_counts_conversion_and_particles(tmp_path):
    """summarise_ntua counts instances converting fully to %ID, on the observables, and complete Particles, with reasons."""
    path = workbook(tmp_path / "db.xlsx", [
        inst(1, 1),
        inst(1, 2, Nominal_size_nm=None, obs=OBS_DEFAULT + [(1, "Stomach", 1.0)]),
        inst(1, 3, Administration_route="IPR", Coating_molecule="NOTA"),
    ])
    coll, _ = read(path)
    s = summarise_ntua(coll)
    assert s["percent_id"]["convert_fully"] == 2 and s["percent_id"]["observables_convert_fully"] == 3
    assert s["percent_id"]["reasons"] == {"no organ mass: no organ 'stomach' in the mouse physiology table": 1}
    assert s["particle"]["complete"] == 1
    assert s["particle"]["reasons"] == {"no core_diameter_nm": 1, "coating … is unknown; valid: none, citrate, PEG, zwitterionic, "
                                        "PEG-PLA, polyacrylamide, dextran, BSA, lipid": 1}
    assert s["by_species_route"].values.tolist() == [["mouse", "IPR", 1, 0], ["mouse", "IV", 2, 0]]
    assert coll["ntua_s1_i3"].route == "ip"
