"""PEtab export of fit problems: the petab linter, an independent engine, refusals."""
from __future__ import annotations

import math
import re
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import nanopk
from nanopk.data import read_dataset
from nanopk.errors import ExportError
from nanopk.export.petab import FILES, lint_petab, load_petab, petab_problem, to_petab
from nanopk.fit.core import build_objective

petab = pytest.importorskip("petab.v1")
roadrunner = pytest.importorskip("roadrunner")


def default_model(name: str) -> str:
    """The bundled model each bundled dataset is fitted with: its species, with a tumour where it has one."""
    ds = read_dataset(name)
    if ds.species == "rat":
        return "rat_pbpk"
    return "mouse_tumour" if "tumour" in ds.tissues else "mouse_pbpk"


DATASETS = list(nanopk.list_datasets()["name"])


def objective(model, data, **kw):
    # The plausibility notes (FitWarning) are the fit's business, not the export's.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return build_objective(model, data, **kw)


def simulate_with_roadrunner(problem, directory) -> pd.DataFrame:
    """The PEtab simulation table of ``problem`` at its nominal parameters, by libroadrunner alone."""
    r = roadrunner.RoadRunner((directory / FILES["sbml"]).read_text())
    r.integrator.relative_tolerance = 1e-12
    r.integrator.absolute_tolerance = 1e-14
    obs = problem.observable_df
    rows = []
    for cid, cond in problem.condition_df.iterrows():
        r.resetAll()
        for k, v in cond.items():
            if k == "conditionName":
                continue
            value = problem.parameter_df.loc[v, "nominalValue"] if isinstance(v, str) else v
            r.setValue(k, float(value))
        for pid, p in problem.parameter_df.iterrows():
            if pid in r.model.getGlobalParameterIds():
                r.setValue(pid, float(p["nominalValue"]))
        r.reset()  # initial assignments (the dose into its target) from the condition's values
        m = problem.measurement_df[problem.measurement_df["simulationConditionId"] == cid]
        times = np.unique(np.concatenate([[0.0], m["time"].to_numpy(dtype=float)]))
        formulas = list(dict.fromkeys(obs.loc[m["observableId"], "observableFormula"]))
        out = pd.DataFrame(np.array(r.simulate(times=times, selections=["time"] + formulas)), columns=["time"] + formulas)
        for _, row in m.iterrows():
            k = int(np.searchsorted(times, row["time"]))
            rows.append({**row.to_dict(), "simulation": out[obs.loc[row["observableId"], "observableFormula"]].iloc[k]})
    return pd.DataFrame(rows)


def quiet_llh(*args):
    """petab's calculate_llh, without pandas' deprecation warnings about petab's own calls."""
    from nanopk.export.petab import _quiet_petab

    ctx = _quiet_petab()
    try:
        return petab.calculate_llh(*args)
    finally:
        ctx.__exit__(None, None, None)


@pytest.mark.parametrize("name", DATASETS)
def test_petab_linter_passes_on_every_bundled_dataset(name, tmp_path):
    """The petab library's linter finds no error in the exported problem of each bundled dataset with its default model."""
    path = to_petab(default_model(name), tmp_path, name, checks=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(FILES.values())
    assert lint_petab(path) == []
    m = pd.read_csv(tmp_path / FILES["measurements"], sep="\t")
    assert len(m) == len(objective(default_model(name), name, checks=False).datasets[0].rows)


def test_linter_messages_are_returned(tmp_path):
    """A problem whose parameter table lacks an estimated parameter fails the linter, and lint_petab says so."""
    path = to_petab("rat_pbpk", tmp_path, "hirn2011_au_18nm", vary=["Kmax_liver"], checks=False)
    table = pd.read_csv(tmp_path / FILES["parameters"], sep="\t")
    table["lowerBound"] = 1e9  # bounds above the nominal value and the upper bound
    table.to_csv(tmp_path / FILES["parameters"], sep="\t", index=False)
    assert lint_petab(path) != []


def test_independent_engine_reproduces_nanopk_predictions_and_likelihood(tmp_path):
    """libroadrunner on the exported problem gives nanopk's predictions to 1e-6, and PEtab's NLL is the data χ²/2 +
    Σ ln(√(2π)σ y) of that simulation (1e-9) and of nanopk's within what the 1e-6 prediction difference allows."""
    obj = objective("mouse_tumour", "arnida2010_peg_au_sphere_50nm", checks=False)
    problem = load_petab((to_petab(None, objective=obj, directory=tmp_path)))
    sim = simulate_with_roadrunner(problem, tmp_path)
    x0 = [s.x0 for s in obj.specs]
    pred = np.concatenate(obj.predict(x0))
    assert len(sim) == len(pred) == 35
    assert np.max(np.abs(sim["simulation"].to_numpy() / pred - 1)) < 1e-6
    llh = quiet_llh(problem.measurement_df, sim, problem.observable_df, problem.parameter_df)
    rows = obj.datasets[0].rows
    sigma, y = rows["sigma"].to_numpy(), rows["observed"].to_numpy()
    const = np.sum(np.log(math.sqrt(2 * math.pi) * sigma) + np.log(y))
    # the data rows of nanopk's residual (the rows after them are the population priors' penalty)
    nll = 0.5 * np.sum(obj.residual(np.asarray(x0, float))[:len(rows)] ** 2) + const
    # PEtab's likelihood of libroadrunner's simulation is the log-normal NLL of that simulation (to 1e-9) ...
    z_rr = (np.log(y) - np.log(sim["simulation"].to_numpy())) / sigma
    assert -llh == pytest.approx(0.5 * np.sum(z_rr ** 2) + const, rel=1e-9)
    # ... and differs from nanopk's by no more than the two engines' prediction difference (< 1e-6 relative) allows
    z = (np.log(y) - np.log(pred)) / sigma
    allowed = np.sum(np.abs(z) / sigma) * 1e-6 + 1e-9 * abs(nll)
    assert abs(-llh - nll) <= allowed


def test_additive_error_model_likelihood_matches_chi2(tmp_path):
    """With additive error the PEtab NLL is χ²/2 + Σ ln(√(2π)σ) of nanopk's residuals (1e-6), linear scale."""
    obj = objective("rat_pbpk", "hirn2011_au_18nm", vary=["Kmax_liver", "Kmax_spleen"], error_model="additive", checks=False)
    problem = load_petab((to_petab(None, objective=obj, directory=tmp_path)))
    assert set(problem.observable_df["observableTransformation"]) == {"lin"}
    sim = simulate_with_roadrunner(problem, tmp_path)
    llh = quiet_llh(problem.measurement_df, sim, problem.observable_df, problem.parameter_df)
    x0 = [s.x0 for s in obj.specs]
    sigma = obj.datasets[0].rows["sigma"].to_numpy()
    assert -llh == pytest.approx(0.5 * obj.chisqr(x0) + np.sum(np.log(math.sqrt(2 * math.pi) * sigma)), rel=1e-6)


def test_parameter_table_scales_bounds_and_priors():
    """Log-fitted parameters are log10 with natural bounds and a logNormal prior 'ln(median);sd'."""
    obj = objective("rat_pbpk", "hirn2011_au_18nm", vary=["Kmax_liver", "Kmax_spleen"], priors={"Kmax_liver": (0.5, 0.7)},
                    bounds={"Kmax_spleen": (0.01, 20.0)}, checks=False)
    t = petab_problem(obj).parameters.set_index("parameterId")
    assert list(t.index) == ["Kmax_liver", "Kmax_spleen"]
    assert set(t["parameterScale"]) == {"log10"}
    assert (t.loc["Kmax_spleen", "lowerBound"], t.loc["Kmax_spleen", "upperBound"]) == (0.01, 20.0)
    assert t.loc["Kmax_liver", "objectivePriorType"] == "logNormal"
    mu, sd = (float(v) for v in t.loc["Kmax_liver", "objectivePriorParameters"].split(";"))
    assert mu == pytest.approx(math.log(0.5), rel=1e-15) and sd == 0.7
    assert not isinstance(t.loc["Kmax_spleen", "objectivePriorType"], str)  # no prior: empty cell


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(median=st.floats(1e-3, 1e3), sd=st.floats(0.01, 5.0))
def test_prior_parameters_round_trip(median, sd):
    """Any log-normal prior (median, sd) is written so that exp(mu) = median and sigma = sd (1e-12)."""
    obj = objective("rat_pbpk", "hirn2011_au_18nm", vary=["Kmax_liver"], priors={"Kmax_liver": (median, sd)}, checks=False)
    mu, s = (float(v) for v in petab_problem(obj).parameters.loc[0, "objectivePriorParameters"].split(";"))
    assert math.exp(mu) == pytest.approx(median, rel=1e-12) and s == pytest.approx(sd, rel=1e-12)


def test_conditions_hold_dose_and_per_dataset_values():
    """Each dataset is a condition with its dose and BW; an unshared parameter maps to its per-dataset copy."""
    obj = objective("rat_pbpk", {"a": "hirn2011_au_18nm", "b": "hirn2011_au_80nm"}, vary=["Kmax_liver", "Kmax_spleen"],
                    shared=["Kmax_spleen"], checks=False)
    tables = petab_problem(obj)
    c = tables.conditions.set_index("conditionId")
    assert list(c.index) == ["a", "b"]
    assert list(c["dose"]) == [10.0, 10.0]  # Hirn 2011 gives no dose: rat_pbpk's nominal 10 µg
    assert list(c["Kmax_liver"]) == ["Kmax_liver__a", "Kmax_liver__b"]
    assert set(tables.parameters["parameterId"]) == {"Kmax_spleen", "Kmax_liver__a", "Kmax_liver__b"}


def test_combined_error_model_noise_formula():
    """The combined error model's σ is sqrt(s² + (prop·ŷ)²) with nanopk's prop."""
    obj = objective("rat_pbpk", "hirn2011_au_18nm", vary=["Kmax_liver"], error_model="combined", error_params={"prop": 0.2},
                    checks=False)
    row = petab_problem(obj).observables.iloc[0]
    assert row["noiseFormula"] == f"sqrt(noiseParameter1_{row['observableId']}^2 + (0.2 * {row['observableFormula']})^2)"


def test_refuses_censored_rows():
    """Rows below the LLOQ cannot be said in PEtab 1.0: ExportError naming the dataset, the rows and the fix."""
    df = pd.DataFrame({"tissue": ["liver", "liver", "spleen"], "time_h": [1.0, 24.0, 24.0],
                       "value": [20.0, 0.01, 3.0], "lloq": [0.1, 0.1, 0.1]})
    df.attrs.update(name="toy", dose_ug=10.0)
    obj = objective("rat_pbpk", df, vary=["Kmax_liver"], checks=False)
    with pytest.raises(ExportError, match=r"dataset 'toy' has 1 censored row\(s\) \(row 1, .*Beal M3.*censored='exclude'"):
        petab_problem(obj)


def test_refuses_robust_loss_and_bad_arguments(tmp_path):
    """A robust loss, a missing directory or data, and fit keywords beside an objective are refused by name."""
    obj = objective("rat_pbpk", "hirn2011_au_18nm", vary=["Kmax_liver"], loss="soft_l1", checks=False)
    with pytest.raises(ExportError, match=r"PEtab 1.0 has no robust loss: the fit uses loss='soft_l1'"):
        petab_problem(obj)
    with pytest.raises(ExportError, match=r"to_petab needs `directory`"):
        to_petab("rat_pbpk", data="hirn2011_au_18nm")
    with pytest.raises(ExportError, match=r"to_petab needs `data`"):
        to_petab("rat_pbpk", tmp_path)
    with pytest.raises(ExportError, match=r"the fit keywords vary are already fixed by it"):
        to_petab(None, directory=tmp_path, objective=obj, vary=["Kmax_spleen"])
    with pytest.raises(ExportError, match=r"needs a one-model fit objective .* got str"):
        petab_problem("not an objective")


def test_registry_and_cli_write_the_problem(tmp_path, capsys):
    """nanopk.export(model, 'petab', DIR, data=...) and `nanopk export MODEL --petab DIR --data DATASET` write a problem the linter passes."""
    from nanopk.cli import main

    written = nanopk.export(nanopk.load_model("rat_pbpk"), "petab", tmp_path / "py", data="hirn2011_au_18nm",
                            vary=["Kmax_liver"], checks=False)
    assert written == [tmp_path / "py"] and lint_petab(tmp_path / "py" / FILES["yaml"]) == []
    assert main(["export", "rat_pbpk", "--petab", str(tmp_path / "cli"), "--data", "hirn2011_au_18nm",
                 "--vary", "Kmax_liver,Kmax_spleen", "--error-model", "additive"]) == 0
    assert f"wrote {tmp_path / 'cli'}" in capsys.readouterr().out
    params = pd.read_csv(tmp_path / "cli" / FILES["parameters"], sep="\t")
    assert list(params["parameterId"]) == ["Kmax_liver", "Kmax_spleen"]
    observables = pd.read_csv(tmp_path / "cli" / FILES["observables"], sep="\t")
    assert set(observables["observableTransformation"]) == {"lin"}
    assert lint_petab(tmp_path / "cli" / FILES["yaml"]) == []


@pytest.mark.parametrize("argv, message", [
    (["export", "rat_pbpk", "--petab", "DIR"], r"nanopk export --petab DIR needs --data DATASET \(a bundled dataset name"),
    (["export", "rat_pbpk", "--json", "m.json", "--data", "hirn2011_au_18nm"],
     r"--data set\(s\) the fit problem of --petab DIR, which was not given; add --petab DIR or leave them out"),
])
def test_cli_petab_needs_its_dataset(argv, message, capsys, tmp_path, monkeypatch):
    """--petab without --data, and --data without --petab, exit 2 with one message saying what to add."""
    from nanopk.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    assert re.search(message, capsys.readouterr().err)
    assert not (tmp_path / "DIR").exists() and not (tmp_path / "m.json").exists()
