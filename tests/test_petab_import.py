"""PEtab import: nanopk's exported problems fit back to the direct fit; what nanopk cannot fit is named by file, column and row."""
from __future__ import annotations

import json
import math
import re
import shutil
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import nanopk
from nanopk.errors import FitError, NanopkError
from nanopk.export.petab import FILES, to_petab
from nanopk.fit.core import build_objective
from nanopk.petab_import import PetabImportError, fit_petab, read_petab

pytest.importorskip("petab.v1")
pytest.importorskip("libsbml")

HIRN = "hirn2011_au_18nm"


def quiet(call, *args, **kwargs):
    """``call(*args, **kwargs)`` without the fit's adequacy notes (FitWarning), which are not these tests' subject."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return call(*args, **kwargs)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """rat_pbpk on Hirn 2011 (18 nm Au), Kmax_liver and Kmax_spleen, exported as PEtab."""
    objective = quiet(build_objective, "rat_pbpk", HIRN, vary=["Kmax_liver", "Kmax_spleen"], checks=False)
    folder = tmp_path_factory.mktemp("petab")
    to_petab(None, folder, objective=objective)
    return objective, folder


@pytest.fixture
def problem_dir(exported, tmp_path):
    """A copy of the exported problem that a test may edit."""
    return shutil.copytree(exported[1], tmp_path / "problem")


def edit(folder, table: str, change):
    """Apply ``change(DataFrame)`` to one of the problem's tables."""
    path = folder / FILES[table]
    frame = pd.read_csv(path, sep="\t", dtype=object, keep_default_na=False)
    change(frame)
    frame.to_csv(path, sep="\t", index=False)


def test_cli_fit_of_exported_problem_equals_direct_fit(exported, tmp_path, capsys):
    """`nanopk fit --petab problem.yaml` of an exported problem gives the direct fit's χ² (1e-6 relative) and parameters (1e-5)."""
    from nanopk.cli import main

    objective, folder = exported
    direct = quiet(nanopk.fit, objective=objective)
    assert main(["fit", "--petab", str(folder / FILES["yaml"]), "--json", str(tmp_path / "fit.json")]) == 0
    assert "nanopk fit of model 'rat_pbpk' to hirn2011_au_18nm" in capsys.readouterr().out
    payload = json.loads((tmp_path / "fit.json").read_text())
    assert payload["metrics"]["chisqr"] == pytest.approx(direct.metrics["chisqr"], rel=1e-6)
    assert payload["metrics"]["n_points"] == direct.metrics["n_points"] == 14
    for name, value in direct.values.items():
        assert payload["params"][name]["value"] == pytest.approx(value, rel=1e-5)


def test_two_conditions_per_dataset_copy_and_prior_equal_direct_fit(tmp_path):
    """Two datasets, Kmax_liver per dataset with a log-normal prior, Kmax_spleen shared: read_petab + fit equals the direct fit (χ² 1e-6)."""
    kw = dict(vary=["Kmax_liver", "Kmax_spleen"], shared=["Kmax_spleen"], priors={"Kmax_liver": (100.0, 1.0)},
              checks=False)
    objective = quiet(build_objective, "rat_pbpk", {"a": HIRN, "b": "hirn2011_au_80nm"}, **kw)
    direct = quiet(nanopk.fit, objective=objective, uncertainty=False)
    problem = read_petab(to_petab(None, tmp_path, objective=objective))
    assert problem.fit_kwargs["shared"] == ["Kmax_spleen"]
    assert problem.fit_kwargs["priors"]["Kmax_liver__a"] == pytest.approx((100.0, 1.0), rel=1e-12)
    assert sorted(problem.data) == ["a", "b"]
    result = quiet(problem.fit, uncertainty=False, checks=False)
    assert result.metrics["cost"] == pytest.approx(direct.metrics["cost"], rel=1e-6)
    assert result.metrics["chisqr"] == pytest.approx(direct.metrics["chisqr"], rel=1e-6)
    assert result.values == pytest.approx(direct.values, rel=1e-5)


@pytest.mark.parametrize("error_model, error_params", [("additive", None), ("combined", {"prop": 0.2})])
def test_linear_scale_error_models_come_back(exported, tmp_path, error_model, error_params):
    """Additive and combined (prop 0.2) exports import as the same error model, and the objective's residuals equal the direct ones (1e-9)."""
    objective = quiet(build_objective, "rat_pbpk", HIRN, vary=["Kmax_liver"], error_model=error_model,
                      error_params=error_params, checks=False)
    problem = read_petab(to_petab(None, tmp_path, objective=objective))
    assert problem.fit_kwargs["error_model"] == error_model
    assert problem.fit_kwargs["error_params"] == error_params
    assert any("ln σ(ŷ)" in n for n in problem.notes) == (error_model == "combined")
    back = quiet(problem.objective, checks=False)
    x0 = [s.x0 for s in objective.specs]
    np.testing.assert_allclose(back.residual(x0), objective.residual(x0), rtol=1e-9)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sigmas=st.lists(st.floats(1e-3, 5.0), min_size=14, max_size=14), log10=st.booleans())
def test_every_row_keeps_its_sigma(exported, tmp_path_factory, sigmas, log10):
    """Any positive per-row σ (log, or log10 where σ_ln = σ·ln 10) is the σ of the imported objective's row (1e-12)."""
    folder = shutil.copytree(exported[1], tmp_path_factory.mktemp("sigma") / "p")

    def set_sigma(frame):
        frame["noiseParameters"] = [repr(s) for s in sigmas]

    edit(folder, "measurements", set_sigma)
    if log10:
        edit(folder, "observables", lambda f: f.__setitem__("observableTransformation", "log10"))
    objective = quiet(read_petab(folder / FILES["yaml"]).objective, checks=False)
    rows = objective.datasets[0].rows.sort_values("row")
    np.testing.assert_allclose(rows["sigma"], np.array(sigmas) * (math.log(10) if log10 else 1.0), rtol=1e-12)


@pytest.mark.parametrize("table, change, match", [
    ("observables", lambda f: f.__setitem__("noiseDistribution", "laplace"),
     r"observables.tsv, column 'noiseDistribution', row 2: 'laplace'; nanopk's residuals are normal"),
    ("observables", lambda f: f.loc.__setitem__((0, "observableFormula"), "obs_livr"),
     r"observables.tsv, column 'observableFormula', row 2: 'obs_livr' is not an observable of model 'rat_pbpk'.*"
     r"did you mean 'obs_liver'"),
    ("observables", lambda f: f.loc.__setitem__((1, "noiseFormula"), "sigma_lung"),
     r"observables.tsv, column 'noiseFormula', row 3: 'sigma_lung' is not a noise model nanopk fits; supported: a number"),
    ("observables", lambda f: f.loc.__setitem__((1, "observableTransformation"), "lin"),
     r"observables.tsv, column 'observableTransformation', row 3: 'lin', but rows 2, 4, 5, 6, 7, 8 say 'log'; nanopk fits one error model"),
    ("measurements", lambda f: f.loc.__setitem__((3, "noiseParameters"), "sd_lung"),
     r"measurements.tsv, column 'noiseParameters', row 5: 'sd_lung'; .* \(estimated noise parameters are not supported\)"),
    ("measurements", lambda f: f.loc.__setitem__((0, "time"), "inf"),
     r"measurements.tsv, column 'time', row 2: 'inf'; nanopk fits finite times ≥ 0 \(h\), not steady states"),
    ("measurements", lambda f: f.__setitem__("preequilibrationConditionId", [""] * 13 + ["steady"]),
     r"measurements.tsv, column 'preequilibrationConditionId', row 15: pre-equilibration .* not supported"),
    ("conditions", lambda f: f.__setitem__("liver", "5"),
     r"conditions.tsv, column 'liver', row 2: 'liver' is not a parameter of model 'rat_pbpk'; nanopk's conditions set "
     r"the dose \(column 'dose', µg\) and model parameters"),
    ("conditions", lambda f: f.__setitem__("dose", "-1"),
     r"conditions.tsv, column 'dose', row 2: the dose must be a positive number of µg \(got -1.0\)"),
    ("parameters", lambda f: f.loc.__setitem__((1, "parameterId"), "sigma_blood"),
     r"parameters.tsv, column 'parameterId', row 3: 'sigma_blood' is neither a parameter of model 'rat_pbpk' nor .*"
     r"noise and observable parameters are not supported"),
    ("parameters", lambda f: f.__setitem__("estimate", "0"),
     r"parameters.tsv, column 'estimate', rows 2, 3: no parameter is estimated"),
    ("parameters", lambda f: (f.__setitem__("objectivePriorType", "laplace"), f.__setitem__("objectivePriorParameters", "1;1")),
     r"parameters.tsv, column 'objectivePriorType', row 2: a 'laplace' prior on 'Kmax_liver', which nanopk fits on the log scale"),
])
def test_what_nanopk_cannot_fit_is_named(problem_dir, table, change, match):
    """Each unsupported PEtab construct raises PetabImportError naming the file, the column, the row and what is supported."""
    edit(problem_dir, table, change)
    with pytest.raises(PetabImportError, match=match) as info:
        read_petab(problem_dir / FILES["yaml"])
    assert isinstance(info.value, NanopkError) and info.value.file.endswith(FILES[table])


def test_held_parameters_and_partial_copies(problem_dir):
    """estimate=0 holds a model parameter at its nominal value; a per-condition id missing for a condition is refused."""
    def hold_spleen(frame):
        frame.loc[1, "estimate"] = "0"
        frame.loc[1, "nominalValue"] = "7.5"

    edit(problem_dir, "parameters", hold_spleen)
    problem = read_petab(problem_dir / FILES["yaml"])
    assert problem.fit_kwargs["vary"] == ["Kmax_liver"]
    assert problem.model.parameters["Kmax_spleen"].value == 7.5

    def two_conditions(frame):
        frame.loc[1] = frame.loc[0]
        frame.loc[1, "conditionId"] = "second"
        frame["Kmax_liver"] = ["Kmax_liver_first", ""]

    edit(problem_dir, "conditions", two_conditions)
    with pytest.raises(PetabImportError, match=r"conditions.tsv, column 'Kmax_liver', row 3: 'Kmax_liver' is a parameter "
                                               r"per condition elsewhere but not for condition\(s\) 'second'"):
        read_petab(problem_dir / FILES["yaml"])


def test_fit_petab_refuses_what_the_problem_fixes_and_missing_files(exported, tmp_path, capsys):
    """fit_petab(vary=...) is a FitError; a missing YAML and DATASET beside --petab are refused (exit 2)."""
    from nanopk.cli import main

    yaml_path = exported[1] / FILES["yaml"]
    with pytest.raises(FitError, match=r"fit_petab: vary is fixed by the PEtab problem"):
        fit_petab(yaml_path, vary=["Kmax_liver"])
    with pytest.raises(PetabImportError, match=r"PEtab problem file '.*nope.yaml' does not exist"):
        read_petab(tmp_path / "nope.yaml")
    assert main(["fit", HIRN, "--petab", str(yaml_path)]) == 2
    assert re.search(r"leave out DATASET 'hirn2011_au_18nm' \(edit the problem's tables instead\)", capsys.readouterr().err)
    assert main(["fit"]) == 2
    assert "nanopk fit needs a DATASET (bundled name or CSV path) or --petab problem.yaml" in capsys.readouterr().err


#: A model another tool would write (Antimony): minutes, mg, the peripheral species a concentration (mg/L).
THIRD_PARTY = """
model two_compartment_min
  unit substance = 1e-3 gram
  unit extent = 1e-3 gram
  unit time_unit = 60 second
  unit per_min = 1 / 60 second
  unit mg_per_min = 1e-3 gram / 60 second
  unit litre_u = litre
  compartment Vc = 0.002, Vp = 0.005
  Vc has litre_u; Vp has litre_u
  substanceOnly species A1 in Vc
  species A2 in Vp
  A1 = 1; A2 = 0
  A1 has substance
  k12 = 0.02; k12 has per_min
  k21 = 0.004; k21 has per_min
  Vmax = 0.001; Vmax has mg_per_min
  Km = 0.5; Km has substance
  r12: A1 -> A2; k12*A1
  r21: A2 -> A1; k21*A2*Vp
  r10: A1 -> ; Vmax*A1/(Km + A1)
end
"""


def test_third_party_problem_in_its_own_units_reaches_the_roadrunner_optimum(tmp_path):
    """A hand-written PEtab problem on an Antimony model (minutes, mg, a concentration observable): nanopk's fit and roadrunner + least_squares reach the same χ² (1e-6) and parameters (1e-4)."""
    antimony = pytest.importorskip("antimony")
    roadrunner = pytest.importorskip("roadrunner")
    from scipy.optimize import least_squares

    antimony.clearPreviousLoads()
    assert antimony.loadAntimonyString(THIRD_PARTY) >= 0, antimony.getLastError()
    sbml = antimony.getSBMLString("two_compartment_min")
    (tmp_path / "model.xml").write_text(sbml)
    rr = roadrunner.RoadRunner(sbml)
    rr.integrator.relative_tolerance, rr.integrator.absolute_tolerance = 1e-11, 1e-16
    times = np.array([5.0, 30.0, 60.0, 120.0, 240.0, 480.0])  # minutes
    doses = {"low": 0.5, "high": 2.0}  # mg, the initial amount of A1

    def simulate(k12, vmax, dose):
        rr.resetAll()
        rr.setValue("init(A1)", dose)
        rr.setValue("k12", k12)
        rr.setValue("Vmax", vmax)
        rr.reset()
        return np.asarray(rr.simulate(times=np.concatenate([[0.0], times]), selections=["A1", "[A2]"]))[1:]

    z = np.random.default_rng(7).normal(size=(2, len(times), 2))  # a fixed log-normal scatter, σ = 0.1
    rows = []
    for (cid, dose), noise in zip(doses.items(), z):
        truth = simulate(0.03, 0.002, dose)
        for j, (obs, col) in enumerate((("y_A1", 0), ("y_A2", 1))):
            for t, y, e in zip(times, truth[:, col], noise[:, j]):
                rows.append({"observableId": obs, "simulationConditionId": cid, "measurement": y * math.exp(0.1 * e),
                             "time": t, "noiseParameters": 0.1})
    measurements = pd.DataFrame(rows)
    measurements.to_csv(tmp_path / "measurements.tsv", sep="\t", index=False, float_format="%.17g")
    pd.DataFrame({"conditionId": list(doses), "A1": list(doses.values())}).to_csv(tmp_path / "conditions.tsv", sep="\t",
                                                                                   index=False)
    pd.DataFrame({"observableId": ["y_A1", "y_A2"], "observableFormula": ["A1", "A2"],
                  "observableTransformation": "log", "noiseFormula": ["noiseParameter1_y_A1", "noiseParameter1_y_A2"],
                  "noiseDistribution": "normal"}).to_csv(tmp_path / "observables.tsv", sep="\t", index=False)
    pd.DataFrame({"parameterId": ["k12", "Vmax", "Km"], "parameterScale": ["log10", "log10", "lin"],
                  "lowerBound": [1e-4, 1e-5, 0.01], "upperBound": [1.0, 0.1, 10.0], "nominalValue": [0.01, 0.0005, 0.5],
                  "estimate": [1, 1, 0]}).to_csv(tmp_path / "parameters.tsv", sep="\t", index=False)
    (tmp_path / "problem.yaml").write_text(
        "format_version: 1\nparameter_file: parameters.tsv\nproblems:\n- condition_files: [conditions.tsv]\n"
        "  measurement_files: [measurements.tsv]\n  observable_files: [observables.tsv]\n  sbml_files: [model.xml]\n")

    problem = read_petab(tmp_path / "problem.yaml")
    assert {cid: t.attrs["dose_ug"] for cid, t in problem.data.items()} == pytest.approx({"low": 500.0, "high": 2000.0})
    assert problem.data["low"]["time_h"].max() == pytest.approx(8.0, rel=1e-15)  # 480 min
    result = quiet(problem.fit)
    assert result.success

    y = measurements["measurement"].to_numpy()

    def residuals(x):
        k12, vmax = 10.0 ** x
        sim = np.concatenate([simulate(k12, vmax, dose).T.ravel() for dose in doses.values()])
        return (np.log(y) - np.log(sim)) / 0.1

    sol = least_squares(residuals, np.log10([0.01, 0.0005]), bounds=(np.log10([1e-4, 1e-5]), np.log10([1.0, 0.1])),
                        xtol=1e-12, ftol=1e-12, gtol=1e-12)
    assert float(sol.fun @ sol.fun) == pytest.approx(result.metrics["chisqr"], rel=1e-6)
    # The imported parameters keep the SBML's units (1/min, mg/min); nanopk rescales the rate laws instead.
    assert result.model.parameters["Vmax"].unit == "milligram / minute"
    assert [result.values["k12"], result.values["Vmax"]] == pytest.approx(10.0 ** sol.x, rel=1e-4)
