"""The ``nanopk`` command line, run in-process through ``nanopk.cli.main``."""
import json
import re
from pathlib import Path

import numpy as np
import pytest

from nanopk.cli import main

README = Path(__file__).resolve().parents[1] / "README.md"


def test_models_lists_every_bundled_model_with_its_size(capsys, tmp_path):
    assert main(["models", "--json", str(tmp_path / "m.json")]) == 0
    rows = {r["name"]: r for r in json.loads((tmp_path / "m.json").read_text())}
    assert rows["mouse_pbpk"]["states"] == 23
    assert {"one_compartment_iv", "two_compartment_iv", "mouse_tumour", "mouse_tumour_full"} <= set(rows)


def test_simulate_json_keeps_total_at_100_percent_and_mps_holds_the_dose(tmp_path, capsys):
    """The issue's must-show: total = 100 %ID to 1e-6; liver + spleen hold most of the dose by 168 h."""
    out = tmp_path / "sim.json"
    assert main(["simulate", "mouse_pbpk", "--times", "0:168:50", "--json", str(out)]) == 0
    sim = json.loads(out.read_text())
    total = np.array(sim["observables"]["total"])
    np.testing.assert_allclose(total, 100.0, rtol=1e-6)
    assert sim["observables"]["liver"][-1] + sim["observables"]["spleen"][-1] > 50.0
    assert "liver [%ID]" in capsys.readouterr().out


def test_simulate_with_param_and_particle(tmp_path):
    out = tmp_path / "sim.csv"
    assert main(["simulate", "mouse_pbpk", "--param", "Kmax_liver=1.0", "--times", "168", "--out", str(out)]) == 0
    assert "liver" in out.read_text().splitlines()[0]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["simulate", "mouse_pbkp"], r"unknown model 'mouse_pbkp'; did you mean 'mouse_pbpk'\?"),
        (["simulate", "mouse_pbpk", "--param", "Kmax_liver"], r"--param 'Kmax_liver' must be NAME=VALUE"),
        (["simulate", "mouse_pbpk", "--times", "a,b"], r"--times 'a,b': give comma-separated hours"),
        (["simulate", "mouse_pbpk", "--particle", "material=Gold"], r"material 'Gold' is unknown"),
        (["export", "mouse_pbpk"], r"needs one of --sbml FILE, --c DIR, --json FILE or --petab DIR"),
    ],
)
def test_user_errors_exit_2_with_one_clear_message(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert re.search(message, err), err
    assert "Traceback" not in err


def test_fit_prints_parameters_goodness_and_delivery(tmp_path, capsys):
    """The README's main job, with a narrower vary list to stay quick."""
    out = tmp_path / "fit.json"
    status = main(["fit", "arnida2010_peg_au_sphere_50nm", "--model", "mouse_tumour",
                   "--vary", "Kmax_liver,Kmax_spleen,PATC_tumour,P_tumour", "--json", str(out)])
    text = capsys.readouterr().out
    payload = json.loads(out.read_text())
    assert status == (0 if payload["success"] else 1)
    for key in ("model", "dataset", "success", "params", "metrics", "delivery"):
        assert key in payload
    for key in ("chisqr", "aic", "bic", "r2_log", "aafe", "frac_within_2fold"):
        assert np.isfinite(payload["metrics"][key])
    de24 = payload["delivery"]["DE24"]
    assert 0 < de24["value"] < 100 and de24["ci95"][0] <= de24["value"] <= de24["ci95"][1]
    assert "DE24" in text and "within 2-fold" in text


def test_fit_with_exact_gradients_reaches_the_same_optimum(tmp_path, capsys):
    """--jacobian sensitivity: the CLI passes it through; same optimum as finite
    differences (χ² to 1e-4 relative), far fewer model evaluations."""
    payloads = {}
    for jac in ("fd", "sensitivity"):
        out = tmp_path / f"{jac}.json"
        main(["fit", "arnida2010_peg_au_sphere_50nm", "--model", "mouse_tumour",
              "--vary", "Kmax_liver,PATC_tumour,P_tumour", "--jacobian", jac, "--json", str(out)])
        payloads[jac] = json.loads(out.read_text())
    capsys.readouterr()
    fd, exact = payloads["fd"]["metrics"], payloads["sensitivity"]["metrics"]
    assert exact["chisqr"] == pytest.approx(fd["chisqr"], rel=1e-4)
    assert exact["n_evaluations"] < fd["n_evaluations"] / 2


def test_export_writes_sbml_c_and_json(tmp_path):
    pytest.importorskip("libsbml")
    assert main(["export", "two_compartment_iv", "--sbml", str(tmp_path / "m.xml"), "--c", str(tmp_path / "c"),
                 "--json", str(tmp_path / "m.json")]) == 0
    assert "<sbml" in (tmp_path / "m.xml").read_text()
    assert any(p.suffix == ".c" for p in (tmp_path / "c").iterdir())
    assert json.loads((tmp_path / "m.json").read_text())["name"] == "two_compartment_iv"


def test_readme_commands_name_existing_models_and_datasets():
    """Every model and dataset the README's commands use exists (the docs cannot rot)."""
    import nanopk

    text = README.read_text()
    models, datasets = set(nanopk.list_models()), set(nanopk.list_datasets()["name"])
    for name in re.findall(r"--model (\w+)", text) + re.findall(r"nanopk (?:simulate|export) (\w+)", text):
        assert name in models, name
    for name in re.findall(r"nanopk (?:fit|delivery) (\w+)", text):
        assert name in datasets, name


def test_readme_python_example_runs(tmp_path, monkeypatch):
    """The README's Python block executes as written (STYLE.md habit 14)."""
    block = re.search(r"```python\n(.*?)```", README.read_text(), re.S).group(1)
    import warnings

    from nanopk.data import DataWarning
    from nanopk.fit import FitWarning

    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        exec(compile(block, "README.md", "exec"), namespace)
    # The example's fits legitimately warn (e.g. heart rows the model cannot observe);
    # anything else would be a bug.
    assert {type(w.message) for w in caught} <= {FitWarning, DataWarning}, [str(w.message) for w in caught]
    sim = namespace["sim"]
    np.testing.assert_allclose(sim["total"], 100.0, rtol=1e-9)
    assert (tmp_path / "fit.json").exists() and (tmp_path / "mouse_pbpk.xml").exists()
    assert 0 < namespace["de"]["DE24"]["value"] < 100
