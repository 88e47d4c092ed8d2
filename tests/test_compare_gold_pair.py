"""The bundled PEG vs small-ligand gold pair (Liu et al. 2014, NTUA study 23) and its comparison.

``liu2014_au16_peg`` / ``liu2014_au16_mixed_charge`` are written by
``tools/make_liu2014_pair.py`` from the shared NTUA workbook (``../shared/datasets/raw``, see
PROVENANCE.md); these tests check the files against the workbook, that the tool still
writes them byte for byte, and what ``compare`` finds on them.
"""
import warnings
from pathlib import Path

import pytest

from nanopk.data import read_dataset

ROOT = Path(__file__).resolve().parents[1]
RAW = ROOT.parent / "shared" / "datasets" / "raw"
NTUA = RAW / "ntua-unit-of-control-and-informatics__NM-biodistribution-prediction" / "Biodistribution_data" / "NMs_Database.xlsx"
needs_raw = pytest.mark.skipif(not NTUA.is_file(), reason=f"shared NTUA workbook not found at {NTUA}")

PEG, MIXED = "liu2014_au16_peg", "liu2014_au16_mixed_charge"
TISSUES = {"Blood": "blood", "Liver": "liver", "Spleen": "spleen", "Heart": "heart", "Lungs": "lung", "Kidneys": "kidney"}


@needs_raw
@pytest.mark.parametrize("name, inst", [(PEG, 2), (MIXED, 1)])
def test_pair_equals_the_ntua_workbook(ntua_sheets, name, inst):
    """Every row is an NTUA study 23 cell (days × 24 = hours, whole-organ %ID) and every cell a row, values equal to 1e-12."""
    ds = read_dataset(name)
    cells = zip(*(ntua_sheets[n][(23, inst)] for n in ("Time_points", "Tissues", "Concentrations")))
    source = {(TISSUES[tissue], float(t) * 24.0): float(c) for t, tissue, c in cells}
    mine = {(t, h): v for t, h, v in zip(ds.table["tissue"], ds.table["time_h"], ds.table["value"])}
    assert len(mine) == len(ds) == len(source) == 22
    for key, v in source.items():
        assert mine[key] == pytest.approx(v, rel=1e-12), key
    assert set(ds.table["unit"]) == {"%ID"}


def test_pair_differs_only_in_the_surface():
    """PEG and mixed-charge arms share the 16 nm core, ICR mice (20 g), dose (100 µg), route, units and times."""
    peg, mixed = read_dataset(PEG), read_dataset(MIXED)
    for key in ("species", "strain", "sex", "body_weight_g", "route", "dose", "time_unit", "value_unit"):
        assert peg.meta[key] == mixed.meta[key], key
    assert peg.dose_ug == pytest.approx(100.0, rel=1e-12) and peg.body_weight_g == 20.0
    assert (peg.particle_dict["coating"], mixed.particle_dict["coating"]) == ("PEG", "zwitterionic")
    assert peg.particle_dict["coating_mw_da"] == 2000
    for key in ("material", "core_diameter_nm", "shape"):
        assert peg.particle_dict[key] == mixed.particle_dict[key], key
    assert peg.particle_dict["core_diameter_nm"] == 16.0
    # Hydrodynamic 31 vs 17.1 nm (Liu et al. 2014 via NTUA study 23): the PEG shell adds ~14 nm.
    assert (peg.particle_dict["hydrodynamic_diameter_nm"], mixed.particle_dict["hydrodynamic_diameter_nm"]) == (31.0, 17.1)
    assert peg.doi == mixed.doi == "10.1002/adhm.201300617"
    assert peg.tissues == mixed.tissues == ["blood", "liver", "spleen", "heart", "lung", "kidney"]
    for ds in (peg, mixed):
        t = ds.table
        assert sorted(t.loc[t["tissue"] == "blood", "time_h"]) == [0.5, 3.0, 6.0, 12.0, 24.0, 48.0, 72.0]
        assert sorted(t.loc[t["tissue"] == "liver", "time_h"]) == [24.0, 168.0, 720.0]


def test_pair_shows_the_coating_difference_in_the_raw_numbers():
    """Without a model: PEG arm has ~4× the liver and ~10× the spleen %ID at 24 h and ~1/11 the blood %ID (Liu et al. 2014)."""
    peg, mixed = (read_dataset(n) for n in (PEG, MIXED))

    def at(ds, tissue, h):
        t = ds.table
        return float(t.loc[(t["tissue"] == tissue) & (t["time_h"] == h), "value"].iloc[0])

    # Digitised values 25.6 vs 6.57 (liver), 5.95 vs 0.616 (spleen), 2.66 vs 30.1 (blood), checked to 1 %.
    assert at(peg, "liver", 24.0) / at(mixed, "liver", 24.0) == pytest.approx(25.605 / 6.573, rel=0.01)
    assert at(peg, "spleen", 24.0) / at(mixed, "spleen", 24.0) == pytest.approx(5.948 / 0.6161, rel=0.01)
    assert at(peg, "blood", 24.0) / at(mixed, "blood", 24.0) == pytest.approx(2.658 / 30.06, rel=0.01)


@needs_raw
def test_tool_rewrites_the_bundled_files_byte_for_byte(rerun_tool):
    """tools/make_liu2014_pair.py, run again, writes exactly the bundled CSV and JSON files (reproducible provenance)."""
    written = rerun_tool("make_liu2014_pair.py")
    assert sorted(p.name for p in written) == sorted(f"{n}.{ext}" for n in (PEG, MIXED) for ext in ("csv", "json"))
    for p in written:
        assert p.read_bytes() == (ROOT / "datasets" / p.name).read_bytes(), p.name


#: The README's comparison: liver and spleen phagocytic-uptake capacities per group (mouse_pbpk).
VARY = ["Kmax_liver", "Kmax_spleen"]


@pytest.fixture(scope="module")
def comparison():
    from nanopk.compare import compare

    with warnings.catch_warnings():
        # mouse_pbpk has no heart observable: those 3 rows per group are left out with a warning.
        warnings.simplefilter("ignore")
        return compare("mouse_pbpk", {PEG: read_dataset(PEG), MIXED: read_dataset(MIXED)}, vary=VARY)


@pytest.mark.slow
def test_compare_finds_lower_phagocytic_uptake_without_peg(comparison):
    """Mixed-charge vs PEG Au: phagocytic uptake differs (p 0.045 < 0.05); spleen Kmax ratio 0.030 [0.0016, 0.54] excludes 1.

    Figures seen with ``nanopk compare liu2014_au16_peg liu2014_au16_mixed_charge --model
    mouse_pbpk --vary Kmax_liver,Kmax_spleen``: Λ 6.19, p 0.0452, ΔAIC -2.19; ratios with
    profile-likelihood intervals Kmax_liver 0.413 [0.106, 2.52], Kmax_spleen 0.0303
    [0.00156, 0.544] (the delta method's, kept beside them: [0.115, 1.49] and [0.00222,
    0.413]; the likelihood is not quadratic in the log ratio on 19 points per arm).
    Direction as the paper's title claims (lower RES clearance of the mixed-charge
    particle).  The p-value is pinned to ±0.005 (so it stays below 0.05), the ratios to 20 %
    and their interval ends to 35 % (optimiser tolerance).
    """
    tests = comparison.tests
    assert list(tests.index) == ["phagocytic uptake"]
    row = tests.loc["phagocytic uptake"]
    assert row["lrt_p"] == pytest.approx(0.0452, abs=0.005)
    assert row["delta_aic"] < 0  # the model with a group difference is preferred
    ratios = comparison.ratios.set_index("parameter")
    spleen, liver = ratios.loc["Kmax_spleen"], ratios.loc["Kmax_liver"]
    assert spleen["ratio"] == pytest.approx(0.0303, rel=0.20)
    assert spleen["ci_method"] == liver["ci_method"] == "profile likelihood"
    assert spleen["ci_open"] == liver["ci_open"] == ""
    assert spleen["ci95_low"] == pytest.approx(0.00156, rel=0.35)
    assert spleen["ci95_high"] == pytest.approx(0.544, rel=0.35)
    assert spleen["ci95_high"] < 1  # resolved: the mixed-charge particle is taken up less by the spleen
    assert spleen["prob_ratio_above_1"] < 0.01  # 0.0044 seen
    assert liver["ratio"] == pytest.approx(0.413, rel=0.20)
    assert liver["ci95_low"] == pytest.approx(0.106, rel=0.35)
    assert liver["ci95_high"] == pytest.approx(2.52, rel=0.35)
    assert liver["ci95_low"] < 1 < liver["ci95_high"]  # liver alone is not resolved by 19 points per arm
