"""An independent engine solves nanopk's exported PEtab problem and reaches nanopk's own optimum.

The engine knows nothing of nanopk: libroadrunner simulates the exported SBML, and
scipy.optimize.least_squares minimises the PEtab likelihood's residuals over the PEtab
parameter table (its scales, bounds and nominal values), read with the petab library.
"""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

import nanopk
from nanopk.export.petab import FILES, load_petab, to_petab
from nanopk.fit.core import build_objective

pytest.importorskip("petab.v1")
roadrunner = pytest.importorskip("roadrunner")
from scipy.optimize import least_squares  # noqa: E402

_UNSCALE = {"lin": lambda v: v, "log10": lambda v: 10.0 ** v, "log": math.exp}
_SCALE = {"lin": lambda v: v, "log10": math.log10, "log": math.log}


class PetabEngine:
    """PEtab residuals by libroadrunner: (transformed y − transformed ŷ)/σ for every measurement row."""

    def __init__(self, problem, sbml_path):
        self.problem = problem
        self.rr = roadrunner.RoadRunner(str(sbml_path))
        self.rr.integrator.relative_tolerance = 1e-10
        self.rr.integrator.absolute_tolerance = 1e-14
        par = problem.parameter_df
        self.estimated = par[par["estimate"] == 1]
        self.globals = set(self.rr.model.getGlobalParameterIds())

    def natural(self, x) -> dict:
        return {pid: _UNSCALE[p["parameterScale"]](v) for (pid, p), v in zip(self.estimated.iterrows(), x)}

    def scaled(self, column: str) -> np.ndarray:
        return np.array([_SCALE[p["parameterScale"]](p[column]) for _, p in self.estimated.iterrows()])

    def residuals(self, x) -> np.ndarray:
        theta, p, rr, out = self.natural(x), self.problem, self.rr, []
        obs = p.observable_df
        for cid, cond in p.condition_df.iterrows():
            rr.resetAll()
            for key, value in cond.items():
                if key != "conditionName":
                    rr.setValue(key, float(theta[value] if isinstance(value, str) else value))
            for pid, value in theta.items():
                if pid in self.globals:
                    rr.setValue(pid, value)
            rr.reset()  # the initial assignments (the dose into its target) from this condition's values
            m = p.measurement_df[p.measurement_df["simulationConditionId"] == cid]
            times = np.unique(np.concatenate([[0.0], m["time"].to_numpy(dtype=float)]))
            formulas = list(dict.fromkeys(obs.loc[m["observableId"], "observableFormula"]))
            sim = np.asarray(rr.simulate(times=times, selections=formulas))
            for _, row in m.iterrows():
                o = obs.loc[row["observableId"]]
                yhat = sim[np.searchsorted(times, row["time"]), formulas.index(o["observableFormula"])]
                y, sigma = row["measurement"], float(row["noiseParameters"])
                log = o["observableTransformation"] == "log"
                out.append((math.log(y) - math.log(yhat)) / sigma if log else (y - yhat) / sigma)
        return np.array(out)


def test_roadrunner_and_least_squares_reach_nanopk_optimum(tmp_path):
    """A 3-parameter rat_pbpk fit of Hirn 2011 (18 nm Au): roadrunner + least_squares on the PEtab export gives nanopk's χ² (1e-4) and parameters (1e-3, and within 1 % of their SE)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the fit's adequacy notes are not this test's subject
        objective = build_objective("rat_pbpk", "hirn2011_au_18nm", vary=["Kmax_liver", "Kmax_spleen", "Kmax_kidney"],
                                    checks=False)
        result = nanopk.fit(objective=objective)
    assert result.success
    problem = load_petab(to_petab(None, tmp_path, objective=objective))
    engine = PetabEngine(problem, tmp_path / FILES["sbml"])
    x0 = engine.scaled("nominalValue")
    # The engine starts where nanopk started (the table's nominal values), not at nanopk's optimum.
    assert engine.natural(x0) == pytest.approx({s.name: s.start for s in objective.specs}, rel=1e-12)
    sol = least_squares(engine.residuals, x0, bounds=(engine.scaled("lowerBound"), engine.scaled("upperBound")),
                        xtol=1e-12, ftol=1e-12, gtol=1e-12)
    assert sol.status > 0
    chi2_engine = float(sol.fun @ sol.fun)
    assert chi2_engine == pytest.approx(result.metrics["chisqr"], rel=1e-4)
    found = engine.natural(sol.x)
    for name, p in result.params.items():
        assert found[name] == pytest.approx(p.value, rel=1e-3)
        assert abs(math.log(found[name] / p.value)) < 0.01 * p.user_data["stderr_log"]
