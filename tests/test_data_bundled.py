"""Bundled datasets load, carry their units and DOI, and match the published source files.

The source files are the shared raw data (``../shared/datasets/raw`` from the repository
root, see its PROVENANCE.md); these tests are skipped only if that folder is absent.
"""
import csv
import math
from pathlib import Path

import numpy as np
import pytest

from nanopk.data import list_datasets, read_dataset

RAW = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "raw"
NTUA = RAW / "ntua-unit-of-control-and-informatics__NM-biodistribution-prediction" / "Biodistribution_data" / "NMs_Database.xlsx"
XDATA = RAW / "UFPBPK__Nano-iPBPK" / "xdata.csv"
KREYLING = RAW / "ntua-unit-of-control-and-informatics__PBK_Grouping" / "TiO2" / "data" / "Kreyling-IV-data.xlsx"
needs_raw = pytest.mark.skipif(not RAW.is_dir(), reason=f"shared raw data not found at {RAW}")

BUNDLED = {
    # name: (species, unit, DOI, tissues)
    "cho2010_peg_au_4nm": ("mouse", "ng/g", "10.1016/j.taap.2010.02.013", ["blood", "liver", "spleen", "lymph_node", "lung", "kidney", "heart", "testis", "brain"]),
    "cho2010_peg_au_13nm": ("mouse", "ng/g", "10.1016/j.taap.2010.02.013", ["blood", "liver", "spleen", "lymph_node", "lung", "kidney", "heart", "testis", "brain"]),
    "cho2010_peg_au_100nm": ("mouse", "ng/g", "10.1016/j.taap.2010.02.013", ["blood", "liver", "spleen", "lymph_node", "lung", "kidney", "heart"]),
    "hirn2011_au_1p4nm": ("rat", "%ID", "10.1016/j.ejpb.2010.12.029", ["blood", "lung", "gi", "liver", "kidney", "spleen", "rest", "urine"]),
    "hirn2011_au_5nm": ("rat", "%ID", "10.1016/j.ejpb.2010.12.029", ["blood", "lung", "gi", "liver", "kidney", "spleen", "rest", "urine"]),
    "hirn2011_au_18nm": ("rat", "%ID", "10.1016/j.ejpb.2010.12.029", ["blood", "lung", "gi", "liver", "kidney", "spleen", "rest", "urine"]),
    "hirn2011_au_80nm": ("rat", "%ID", "10.1016/j.ejpb.2010.12.029", ["blood", "lung", "gi", "liver", "kidney", "spleen", "rest", "urine"]),
    "hirn2011_au_200nm": ("rat", "%ID", "10.1016/j.ejpb.2010.12.029", ["blood", "lung", "gi", "liver", "kidney", "spleen", "rest", "urine"]),
    "kreyling2017_tio2_iv": ("rat", "%ID", "10.1080/17435390.2017.1306892", ["liver", "spleen", "kidney", "lung", "heart", "brain", "uterus", "blood", "carcass", "bone", "soft_tissue", "faeces", "urine"]),
    "li2014_go_bare": ("mouse", "%ID/g", "10.2147/IJN.S66591", ["blood", "lung", "liver", "spleen", "thyroid", "heart", "kidney", "stomach", "small_intestine", "large_intestine"]),
    "li2014_go_peg": ("mouse", "%ID/g", "10.2147/IJN.S66591", ["blood", "lung", "liver", "spleen"]),
    "arnida2010_peg_au_sphere_50nm": ("mouse", "%ID/g", "10.1016/j.ejpb.2010.11.010", ["blood", "heart", "lung", "liver", "spleen", "kidney", "brain", "tumour"]),
    "arnida2010_peg_au_rod": ("mouse", "%ID/g", "10.1016/j.ejpb.2010.11.010", ["blood", "heart", "lung", "liver", "spleen", "kidney", "brain", "tumour"]),
    "liu2013_peg_au_2nm": ("mouse", "%ID/g", "10.1002/anie.201304465", ["tumour", "liver", "blood", "lung", "spleen", "heart", "kidney"]),
    # Same-core coating pair (NTUA study 18), written by tools/make_ntua_pair.py; checked in tests/test_compare_pair.py.
    "wang2015_au_sio2_rod_peg": ("mouse", "%ID", "10.1039/c4mt00340c", ["tumour", "liver", "spleen", "kidney", "lung", "heart"]),
    "wang2015_au_sio2_rod_bsa": ("mouse", "%ID", "10.1039/c4mt00340c", ["tumour", "liver", "spleen", "kidney", "lung", "heart"]),
    # PEG vs small-ligand (mixed-charge) 16 nm Au pair (NTUA study 23), written by tools/make_liu2014_pair.py;
    # checked in tests/test_compare_gold_pair.py.
    "liu2014_au16_peg": ("mouse", "%ID", "10.1002/adhm.201300617", ["blood", "liver", "spleen", "heart", "lung", "kidney"]),
    "liu2014_au16_mixed_charge": ("mouse", "%ID", "10.1002/adhm.201300617", ["blood", "liver", "spleen", "heart", "lung", "kidney"]),
}

NTUA_TISSUES = {
    "Blood": "blood", "Liver": "liver", "Spleen": "spleen", "Lungs": "lung", "Kidneys": "kidney", "Heart": "heart",
    "Brain": "brain", "Testis": "testis", "Lymph_node": "lymph_node", "Tumor": "tumour", "Thyroid": "thyroid",
    "Stomach": "stomach", "Intestine_small": "small_intestine", "Intestine_large": "large_intestine",
}


@pytest.fixture(scope="module")
def ntua():
    openpyxl = pytest.importorskip("openpyxl")
    if not NTUA.is_file():
        pytest.skip(f"{NTUA} not found")
    wb = openpyxl.load_workbook(NTUA, read_only=True)
    sheets = {name: {(r[0], r[1]): r[2:] for r in list(wb[name].iter_rows(values_only=True))[1:] if r[0] is not None}
              for name in ("Time_points", "Tissues", "Concentrations")}
    wb.close()
    return sheets


def ntua_observations(ntua, study, inst, hours_per_unit=1.0):
    """{(tissue, time_h): value} of an NTUA (study, instance); 'ND' cells are skipped."""
    out = {}
    for t, tissue, c in zip(*(ntua[n][(study, inst)] for n in ("Time_points", "Tissues", "Concentrations"))):
        if tissue is None or isinstance(c, str) or tissue not in NTUA_TISSUES:
            continue
        out[(NTUA_TISSUES[tissue], t * hours_per_unit)] = c
    return out


def as_dict(ds):
    return {(t, h): v for t, h, v in zip(ds.table["tissue"], ds.table["time_h"], ds.table["value"])}


def assert_same_observations(ds, source):
    """Every dataset row is a source cell and every numeric source cell is a row, values equal."""
    mine = as_dict(ds)
    assert len(mine) == len(ds)
    assert len(mine) == len(source)
    for (tissue, t), v in source.items():
        match = [key for key in mine if key[0] == tissue and math.isclose(key[1], t, rel_tol=1e-9)]
        assert len(match) == 1, (tissue, t)
        assert mine[match[0]] == pytest.approx(float(v), rel=1e-12), (tissue, t)


# ---------------------------------------------------------------- every bundled dataset
def test_list_datasets_has_one_line_per_bundled_dataset():
    """list_datasets() lists every bundled dataset with species, particle, points and citation."""
    table = list_datasets()
    assert sorted(table["name"]) == sorted(BUNDLED)
    row = table.set_index("name").loc["cho2010_peg_au_13nm"]
    assert row["particle"] == "Au 13 nm, PEG 5 kDa, sphere"
    assert row["n_points"] == 60
    assert row["doi"] == "10.1016/j.taap.2010.02.013"
    assert table["citation"].str.len().min() > 20


@pytest.mark.parametrize("name", sorted(BUNDLED))
def test_bundled_dataset_metadata(name):
    """Each bundled dataset loads by name with its species, unit, DOI and tissues."""
    species, unit, doi, tissues = BUNDLED[name]
    ds = read_dataset(name)
    assert ds.name == name
    assert ds.species == species
    assert set(ds.table["unit"]) == {unit}
    assert ds.doi == doi
    assert ds.tissues == tissues
    assert ds.meta["route"] == "iv"
    assert ds.meta["source"]["citation"]


# ---------------------------------------------------------------- Cho 2010 (NTUA study 8)
@needs_raw
@pytest.mark.parametrize("size, organs, blood", [(4, 1, 4), (13, 2, 5), (100, 3, 6)])
def test_cho2010_matches_ntua_study_8(ntua, size, organs, blood):
    """Cho 2010 PEG-Au: ng/g, source days -> h (first point 0.020833 d = 30 min), ND cells left out."""
    ds = read_dataset(f"cho2010_peg_au_{size}nm")
    source = ntua_observations(ntua, 8, organs, hours_per_unit=24.0)
    source.update({k: v for k, v in ntua_observations(ntua, 8, blood, hours_per_unit=24.0).items() if k[0] == "blood"})
    assert_same_observations(ds, source)
    assert sorted(set(ds.table["time_h"])) == [0.5, 4.0, 24.0, 168.0, 720.0, 2160.0, 4320.0]
    assert ds.dose_ug == pytest.approx(0.85 * 20, rel=1e-12)  # 0.85 mg/kg x 20 g (assumed BW)


@needs_raw
def test_cho2010_13nm_specific_values():
    """Cho 2010 13 nm: blood 8141.0 ng/g at 30 min, liver 38147.4 ng/g at 7 d (NTUA study 8)."""
    t = read_dataset("cho2010_peg_au_13nm").table.set_index(["tissue", "time_h"])["value"]
    assert t[("blood", 0.5)] == pytest.approx(8141.00387927759, rel=1e-12)
    assert t[("liver", 168.0)] == pytest.approx(38147.3684210526, rel=1e-12)
    assert t[("spleen", 24.0)] == pytest.approx(25642.1052631578, rel=1e-12)


def test_cho2010_100nm_zero_is_kept_and_censored():
    """The 100 nm lymph-node value of 0 at 4 h is kept and flagged censored."""
    t = read_dataset("cho2010_peg_au_100nm").table
    zero = t[(t["tissue"] == "lymph_node") & (t["time_h"] == 4.0)]
    assert zero["value"].tolist() == [0.0] and zero["censored"].tolist() == [True]


# ---------------------------------------------------------------- Hirn 2011 (Nano-iPBPK xdata.csv)
HIRN_COLUMNS = {"cB": "blood", "cLu": "lung", "cGI": "gi", "cL": "liver", "cK": "kidney", "cS": "spleen", "cRt": "rest", "cU": "urine"}


@needs_raw
@pytest.mark.parametrize("size", ["1.4", "5", "18", "80", "200"])
def test_hirn2011_matches_xdata_iv_rows(size):
    """Hirn 2011 IV: %ID and SD (n = 4) equal the xdata.csv IV rows, 1 and 24 h."""
    with open(XDATA, newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["Route"] == "IV" and r["Size"] == f"{size} nm"]
    assert len(rows) == 2
    ds = read_dataset(f"hirn2011_au_{size.replace('.', 'p')}nm")
    t = ds.table.set_index(["tissue", "time_h"])
    for r in rows:
        for col, tissue in HIRN_COLUMNS.items():
            assert t.loc[(tissue, float(r["Time"])), "value"] == pytest.approx(float(r[col]), rel=1e-12)
            assert t.loc[(tissue, float(r["Time"])), "sd"] == pytest.approx(float(r[f"{col}_SD"]), rel=1e-12)
    assert set(t["n"]) == {4}
    assert ds.particle_dict["core_diameter_nm"] == float(size)


@needs_raw
def test_hirn2011_specific_values():
    """Hirn 2011 1.4 nm at 24 h: liver 51.33 %ID (± 2.08), urine 4.7272 %ID; 200 nm liver 96.22 %ID."""
    t = read_dataset("hirn2011_au_1p4nm").table.set_index(["tissue", "time_h"])
    assert t.loc[("liver", 24.0), "value"] == 51.33 and t.loc[("liver", 24.0), "sd"] == 2.08
    assert t.loc[("urine", 24.0), "value"] == 4.7272
    t = read_dataset("hirn2011_au_200nm").table.set_index(["tissue", "time_h"])
    assert t.loc[("liver", 24.0), "value"] == 96.22


# ---------------------------------------------------------------- Kreyling 2017 (PBK_Grouping)
@needs_raw
def test_kreyling2017_matches_source_sheets():
    """Kreyling 2017 TiO2 IV: organ %ID and SEM, faeces %ID ± SD, cumulative urine %ID."""
    openpyxl = pytest.importorskip("openpyxl")
    wb = openpyxl.load_workbook(KREYLING, read_only=True, data_only=True)
    pid = list(wb["w-o free 48V"].iter_rows(values_only=True))
    sem = list(wb["SEM 1"].iter_rows(values_only=True))
    faeces = list(wb["Feces"].iter_rows(values_only=True))[1:]
    urine = list(wb["Urine"].iter_rows(values_only=True))[1:]
    wb.close()
    names = {"Liver": "liver", "Spleen": "spleen", "Kidneys": "kidney", "Lungs": "lung", "Heart": "heart", "Brain": "brain",
             "Uterus": "uterus", "Blood": "blood", "Carcass": "carcass", "Skeleton": "bone", "Soft tissue": "soft_tissue"}
    hours = {"1 h": 1.0, "4 h": 4.0, "24 h": 24.0, "7 d": 168.0, "28 d": 672.0}
    ds = read_dataset("kreyling2017_tio2_iv")
    t = ds.table.set_index(["tissue", "time_h"])
    for j, label in enumerate(pid[0][1:], start=1):
        for i in range(1, len(pid)):
            key = (names[label.strip()], hours[pid[i][0].strip()])
            assert t.loc[key, "value"] == pytest.approx(pid[i][j], rel=1e-12)
            assert t.loc[key, "sem"] == pytest.approx(sem[i][j], rel=1e-12)
    f = t.loc["faeces"]
    assert f["value"].tolist() == pytest.approx([r[1] for r in faeces], rel=1e-12)
    assert f["sd"].tolist() == pytest.approx([r[2] for r in faeces], rel=1e-12)
    np.testing.assert_allclose(f.index.to_numpy(), [r[0] * 24 for r in faeces], rtol=0.02)  # nominal vs digitised times
    u = t.loc["urine"]
    np.testing.assert_allclose(u.index.to_numpy(), [r[0] * 24 for r in urine], rtol=1e-12)
    assert u["value"].tolist() == pytest.approx([r[2] for r in urine], rel=1e-12)
    assert ds.body_weight_g == 263


def test_kreyling2017_brain_below_detection_is_censored():
    """Brain zeros (below the detection limit) are kept and flagged censored; liver 95.5 %ID at 1 h."""
    t = read_dataset("kreyling2017_tio2_iv").table
    brain = t[t["tissue"] == "brain"]
    assert brain["censored"].tolist() == [True, True, False, True, False]
    assert t.set_index(["tissue", "time_h"]).loc[("liver", 1.0), "value"] == 95.5


# ---------------------------------------------------------------- NTUA pairs and tumour studies
@needs_raw
@pytest.mark.parametrize("name, study, inst", [
    ("li2014_go_bare", 44, 1), ("li2014_go_peg", 44, 2),
    ("arnida2010_peg_au_sphere_50nm", 17, 1), ("arnida2010_peg_au_rod", 17, 2),
    ("liu2013_peg_au_2nm", 14, 1),
])
def test_ntua_datasets_match_source(ntua, name, study, inst):
    """Every row equals the NTUA database cell (study, instance), times in hours."""
    assert_same_observations(read_dataset(name), ntua_observations(ntua, study, inst))


def test_li2014_pair_differs_only_in_coating():
    """The PEG / uncoated graphene oxide pair shares dose, animals, route and blood times."""
    bare, peg = read_dataset("li2014_go_bare"), read_dataset("li2014_go_peg")
    for key in ("species", "strain", "sex", "body_weight_g", "route", "dose", "time_unit", "value_unit"):
        assert bare.meta[key] == peg.meta[key]
    assert (bare.meta["particle"]["coating"], peg.meta["particle"]["coating"]) == ("none", "PEG")
    blood_times = [ds.table.loc[ds.table["tissue"] == "blood", "time_h"].tolist() for ds in (bare, peg)]
    assert blood_times[0] == blood_times[1]
    assert bare.table.set_index(["tissue", "time_h"]).loc[("liver", 1.0), "value"] == pytest.approx(30.528967254408, rel=1e-12)
    assert peg.table.set_index(["tissue", "time_h"]).loc[("liver", 1.0), "value"] == pytest.approx(18.4382871536523, rel=1e-12)


def test_tumour_studies_convert_to_percent_id():
    """Arnida 2010 spheres: tumour 1.83 %ID/g at 2 h; 60 µg dose; tumour %ID uses the physiology tumour mass."""
    ds = read_dataset("arnida2010_peg_au_sphere_50nm")
    assert ds.dose_ug == 60.0
    assert ds.meta["tumour"]["cell_line"] == "A2780"
    pid = ds.percent_id().set_index(["tissue", "time_h"])
    row = pid.loc[("tumour", 2.0)]
    assert row["value"] == 1.83
    assert row["value_pid"] == pytest.approx(1.83 * row["organ_mass_g"], rel=1e-12)
    assert row["mass_source"].startswith("physiology:mouse")
    liu = read_dataset("liu2013_peg_au_2nm")
    assert liu.dose_ug == pytest.approx(1400.0, rel=1e-12)
    assert liu.table.set_index(["tissue", "time_h"]).loc[("tumour", 12.0), "value"] == pytest.approx(8.33333333333333, rel=1e-12)


def test_top_level_read_dataset_is_the_data_reader():
    """nanopk.read_dataset and nanopk.list_datasets are the nanopk.data functions."""
    import nanopk
    import nanopk.data

    assert nanopk.read_dataset is nanopk.data.read_dataset
    assert nanopk.list_datasets is nanopk.data.list_datasets
    assert len(nanopk.read_dataset("hirn2011_au_18nm")) == 16


#: The bundled model each dataset is fitted with from the CLI (species, and a tumour if measured).
FIT_MODEL = {name: ("mouse_tumour" if "tumour" in tissues else f"{species}_pbpk") for name, (species, _u, _d, tissues) in BUNDLED.items()}


@pytest.mark.parametrize("name", sorted(BUNDLED))
def test_every_bundled_dataset_can_be_prepared_for_a_fit(name):
    """Every bundled dataset becomes fit data for a bundled model (issue 17 #12: the dose-free Hirn and Kreyling sets included)."""
    import warnings

    from nanopk.fit._data import coerce_datasets
    from nanopk.spec import load_model

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # censored rows and unmodelled organs are warned about elsewhere
        data = coerce_datasets(read_dataset(name), load_model(FIT_MODEL[name]), True)
    assert len(data) == 1 and len(data[0].rows) >= 10
    assert math.isfinite(data[0].dose_ug) and data[0].dose_ug > 0
    # Hirn 2011 gives %ID and no dose: simulated with a dose the model's %ID predictions do
    # not depend on, and the note says so.  (Kreyling 2017 gives per-group doses; its
    # sidecar takes their median, with the reason.)
    assert bool(data[0].dose_note) == name.startswith("hirn2011")
