"""nanopk.scan and `nanopk scan`: a design grid equals the individual predictions and simulations."""
import pandas as pd
import pytest

import nanopk
from nanopk.cli import main
from nanopk.scan import scan
from nanopk.sensitivity import SensitivityError


@pytest.fixture(scope="module")
def grid_table():
    return scan("mouse_tumour_full", {"size": [15, 50], "coating": ["PEG"], "dose": [1, 5]},
                outputs="DE24,DE168,DEmax,liver@24h,AUC_blood")


def test_scan_equals_predict_delivery(grid_table):
    """DE24, DE168 and DEmax of each grid row are predict_delivery's for the same particle and dose (rel 1e-9)."""
    ref = nanopk.predict_delivery("mouse_tumour_full", {"size": [15, 50], "coating": ["PEG"], "dose": [1, 5]},
                                  base={"material": "Au"})
    assert len(grid_table) == len(ref) == 4
    for key in ("core_diameter_nm", "coating", "dose", "d_h"):
        assert list(grid_table[key]) == list(ref[key])
    for key in ("DE24", "DE168", "DEmax"):
        assert grid_table[key].to_numpy() == pytest.approx(ref[key].to_numpy(), rel=1e-9)


def test_blood_half_life_equals_pk_metrics():
    """t_half_blood_h of a scan row is pk_metrics' terminal blood half-life of the same particle (rel 1e-9)."""
    table = scan("mouse_tumour_full", {"size": [15]}, base={"coating": "PEG"}, outputs="t_half_blood_h,DE24")
    assert table.attrs["outputs"] == ["t_half_blood_h", "DE24"]
    particle = nanopk.Particle(material="Au", core_diameter_nm=15, coating="PEG", coating_mw_da=5000)
    ref = nanopk.delivery.pk_metrics(nanopk.load_model("mouse_tumour_full", particle=particle))
    assert table["t_half_blood_h"].iloc[0] == pytest.approx(ref["t_half_blood_h"], rel=1e-9)
    assert table["DE24"].iloc[0] == pytest.approx(ref["DE24"], rel=1e-9)


def test_scan_equals_individual_simulations(grid_table):
    """liver@24h of each row is the particle's own model simulated alone at the same dose (rel 1e-6)."""
    for _, row in grid_table.iterrows():
        particle = nanopk.Particle(material="Au", core_diameter_nm=row["core_diameter_nm"], coating="PEG", coating_mw_da=5000)
        model = nanopk.load_model("mouse_tumour_full", particle=particle)
        sim = model.simulate([0.0, 24.0], dose=f"{row['dose']} mg/kg", rtol=1e-7, atol=1e-10)
        assert row["liver@24h"] == pytest.approx(sim["liver"].iloc[-1], rel=1e-6)
    # the particle matters: 15 nm and 50 nm PEG gold differ in DE24 by more than 10×
    de = grid_table.set_index(["core_diameter_nm", "dose"])["DE24"]
    assert de[(15, 1)] > 10 * de[(50, 1)]


@pytest.mark.parametrize("grid, match", [
    ({"coating": ["PGE"]}, r"coating: 'PGE' is not a coating; did you mean 'PEG'.*; expected one of none, citrate, PEG"),
    ({"size": [0]}, r"size: 0 is not a positive number; expected a positive number"),
    ({"size": ["ten"]}, r"size: 'ten' is not a positive number"),
    ({"sise": [10]}, r"grid: 'sise' is not a particle field; did you mean 'size'"),
    ({"dose": [-1]}, r"dose: -1 is not a positive dose"),
    ({}, r"grid: \{\} is empty; expected at least one axis"),
])
def test_bad_grids_are_refused(grid, match):
    """A grid with an unknown key, coating, or non-positive size or dose names the field, the value and what is valid."""
    with pytest.raises(SensitivityError, match=match):
        scan("mouse_tumour", grid)


def test_bad_output_is_refused():
    """An unknown output is refused before any simulation, with the nearest observable."""
    with pytest.raises(SensitivityError, match=r"outputs: 'livr@24h' names no observable 'livr'; did you mean 'liver'"):
        scan("mouse_tumour", {"size": [15]}, outputs="DE24,livr@24h")


def test_cli_scan_writes_a_tidy_csv(tmp_path, capsys):
    """`nanopk scan` prints one row per particle and writes them as CSV; `design` is the same command."""
    out = tmp_path / "scan.csv"
    argv = ["--size", "15,50", "--coating", "PEG", "--output", "DE24,liver@24h", "--out", str(out)]
    assert main(["scan", "mouse_tumour", *argv]) == 0
    text = capsys.readouterr().out
    assert "2 particle(s)" in text and "liver@24h" in text
    table = pd.read_csv(out)
    assert len(table) == 2 and {"core_diameter_nm", "coating", "d_h", "DE24", "liver@24h"} <= set(table.columns)
    assert table["d_h"].tolist() == [41.0, 76.0]  # PEG 5 kDa adds 26 nm (Particle.hydrodynamic_diameter)
    assert main(["design", "mouse_tumour", *argv]) == 0
    assert pd.read_csv(out)["DE24"].tolist() == table["DE24"].tolist()


def test_cli_scan_errors_exit_2(capsys):
    """A misspelt coating or a non-numeric size ends with exit 2 and one line naming the option."""
    assert main(["scan", "mouse_tumour", "--coating", "PGE"]) == 2
    assert "did you mean 'PEG'" in capsys.readouterr().err
    assert main(["scan", "mouse_tumour", "--size", "10,ten"]) == 2
    assert "--size: '10,ten' is not valid; expected comma-separated core diameters in nm" in capsys.readouterr().err
    assert main(["scan", "mouse_tumour"]) == 2
    assert "at least one of --size, --coating, --dose" in capsys.readouterr().err


def test_coating_tokens_carry_the_peg_molecular_weight():
    """'PEG5k', 'PEG2000' and 'PEG-3.4k' are PEG of 5000, 2000 and 3400 Da; other coatings pass unchanged;
    an unknown token is still refused with the coatings listed."""
    from nanopk.scan import coating_token, scan

    assert coating_token("PEG5k") == ("PEG", 5000.0)
    assert coating_token("PEG2000") == ("PEG", 2000.0)
    assert coating_token("peg-3.4k") == ("PEG", 3400.0)
    assert coating_token("none") == ("none", None)
    table = scan("mouse_tumour_full", size=[20], coating=["PEG2k", "PEG"], outputs="DE24", workers=1)
    assert list(table["coating_mw_da"]) == [2000.0, 5000.0]
    with pytest.raises(SensitivityError, match=r"coating: 'PEGX' is not a coating"):
        scan("mouse_tumour_full", size=[20], coating=["PEGX"], workers=1)
