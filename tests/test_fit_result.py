"""FitResult contents and the fit options: JSON, report, plot, several datasets,
censored data, error models, Jacobian hooks, MCMC, and ``nanopk.fit`` as module and function."""
import json
import math

import numpy as np
import pandas as pd
import pytest

import nanopk
from nanopk.fit import FitResult, FitWarning

TIMES = np.array([0.5, 4.0, 24.0, 72.0, 168.0])
TISSUES = ["blood", "liver", "spleen", "kidney", "lung"]


@pytest.fixture(scope="module")
def mouse():
    return nanopk.load_model("mouse_pbpk")


def simulated(model, params, seed, name, dose_ug=17.0, cv=0.1, tissues=TISSUES):
    sim = model.simulate(TIMES, params=params, dose=dose_ug, rtol=1e-10, atol=1e-14)
    rng = np.random.default_rng(seed)
    rows = [{"time_h": t, "tissue": o, "value": float(sim.loc[t, o]) * math.exp(cv * rng.standard_normal()),
             "sd": cv * float(sim.loc[t, o]) * math.sqrt(4), "n": 4}
            for t in TIMES for o in tissues]
    df = pd.DataFrame(rows)
    df.attrs.update(name=name, dose_ug=dose_ug)
    return df


@pytest.fixture(scope="module")
def single(mouse):
    data = simulated(mouse, {"Kmax_liver": 0.5, "Kmax_spleen": 3.0}, seed=1, name="single")
    return nanopk.fit(mouse, data, vary=["Kmax_liver", "Kmax_spleen"])


def test_json_has_the_contract_keys(single, tmp_path):
    """to_json holds model, dataset, success, params (value, stderr, unit, ci95), metrics and warnings."""
    path = tmp_path / "fit.json"
    text = single.to_json(path)
    data = json.loads(path.read_text())
    assert data == json.loads(text)
    for key in ("model", "dataset", "success", "params", "metrics", "warnings"):
        assert key in data
    assert data["model"] == "mouse_pbpk" and data["dataset"] == "single" and data["success"] is True
    entry = data["params"]["Kmax_liver"]
    assert set(entry) >= {"value", "stderr", "unit", "ci95"}
    assert entry["unit"] == "1/h" and entry["ci95"][0] < entry["value"] < entry["ci95"][1]
    for key in ("chisqr", "aic", "bic", "r2_log", "aafe", "frac_within_2fold", "frac_within_3fold", "n_points",
                "n_evaluations", "wall_time_s"):
        assert key in data["metrics"], key


def test_extra_json_is_merged(single):
    """The delivery slot: whatever extra_json holds appears at the top level of the JSON."""
    single.extra_json["delivery"] = {"DE24": {"value": 1.0, "ci95": [0.5, 2.0]}}
    try:
        assert json.loads(single.to_json())["delivery"]["DE24"]["value"] == 1.0
    finally:
        single.extra_json.clear()


def test_result_attributes(single, mouse):
    """params are natural-scale lmfit Parameters; model is the fitted model; predictions are tidy."""
    assert isinstance(single, FitResult)
    assert single.model.parameters["Kmax_liver"].value == single.params["Kmax_liver"].value
    assert mouse.parameters["Kmax_liver"].value == 0.3  # the input model is unchanged
    pred = single.predictions
    assert list(pred.columns[:8]) == ["dataset", "tissue", "observable", "time_h", "observed", "sd", "n", "predicted"]
    assert len(pred) == len(TIMES) * len(TISSUES)
    np.testing.assert_allclose(pred["fold"], pred["predicted"] / pred["observed"])
    assert single.datasets["single"].attrs["name"] == "single"
    assert single.metrics["n_evaluations"] > 0 and single.metrics["wall_time_s"] > 0


def test_metrics_definitions(single):
    """aafe, r2_log and the 2-fold fraction follow their formulas from the prediction table."""
    pred = single.predictions
    lr = np.log10(pred["predicted"] / pred["observed"])
    assert single.metrics["aafe"] == pytest.approx(10 ** np.mean(np.abs(lr)))
    ly = np.log(pred["observed"])
    r2 = 1 - np.sum((ly - np.log(pred["predicted"])) ** 2) / np.sum((ly - ly.mean()) ** 2)
    assert single.metrics["r2_log"] == pytest.approx(r2)
    ratio = pred["predicted"] / pred["observed"]
    assert single.metrics["frac_within_2fold"] == pytest.approx(np.mean((ratio >= 0.5) & (ratio <= 2)))
    assert single.metrics["chisqr"] == pytest.approx(float(np.sum(pred["residual"] ** 2)))


def test_weights_use_the_standard_error_of_the_mean(single):
    """σ_log = sqrt(ln(1 + (SE/y)²)) with SE = SD/√n (documented default)."""
    pred = single.predictions
    se = pred["sd"] / np.sqrt(pred["n"])
    np.testing.assert_allclose(pred["sigma"], np.maximum(np.sqrt(np.log1p((se / pred["observed"]) ** 2)), 0.05))


def test_report_lists_parameters_metrics_and_warnings(single):
    """The text report shows each parameter with its interval and the goodness of fit."""
    text = single.report()
    assert "Kmax_liver" in text and "(wald)" in text and "within 2-fold" in text and "AAFE" in text


def test_plot_time_courses_and_predicted_vs_observed(single, tmp_path):
    """plot() returns a Figure with one panel per tissue (log axes) and saves it; predicted vs observed is
    the goodness-of-fit figure's first panel (tests/test_figures.py checks the plotted arrays)."""
    from nanopk.fit.plot import plot_gof

    path = tmp_path / "fit.png"
    fig = single.plot(path)
    assert path.stat().st_size > 10_000
    panels = [ax for ax in fig.axes if ax.get_visible() and ax.get_title()]
    assert [ax.get_title() for ax in panels] == list(dict.fromkeys(single.predictions["observable"]))
    assert panels[0].get_yscale() == "log"
    assert plot_gof(single).axes[0].get_xlabel() == "observed (%ID)"


def test_nanopk_fit_is_callable_as_module_and_function(mouse, single):
    """After importing submodules, nanopk.fit is the module; it still fits, and carries sample_parameters."""
    import nanopk.fit.metrics  # noqa: F401  (binds the module to nanopk.fit)

    data = single.datasets["single"]
    again = nanopk.fit(mouse, data, vary=["Kmax_liver", "Kmax_spleen"])
    assert again.params["Kmax_liver"].value == pytest.approx(single.params["Kmax_liver"].value, rel=1e-9)
    assert callable(nanopk.fit.sample_parameters)
    assert nanopk.fit.fit.sample_parameters is nanopk.fit.sample_parameters


def test_several_datasets_shared_and_per_dataset_parameters(mouse):
    """Two doses, shared Kmax_liver, per-dataset Kmax_spleen: each dataset simulated with its own dose,
    per-dataset copies named NAME__<dataset> recover their own truths."""
    a = simulated(mouse, {"Kmax_liver": 0.5, "Kmax_spleen": 3.0}, seed=2, name="low", dose_ug=10.0)
    b = simulated(mouse, {"Kmax_liver": 0.5, "Kmax_spleen": 8.0}, seed=3, name="high", dose_ug=50.0)
    result = nanopk.fit(mouse, {"PEG": a, "bare": b}, vary=["Kmax_liver", "Kmax_spleen"], shared=["Kmax_liver"])
    assert result.success
    assert list(result.params) == ["Kmax_liver", "Kmax_spleen__PEG", "Kmax_spleen__bare"]
    assert result.params["Kmax_spleen__PEG"].user_data["dataset"] == "PEG"
    for name, truth in (("Kmax_liver", 0.5), ("Kmax_spleen__PEG", 3.0), ("Kmax_spleen__bare", 8.0)):
        lo, hi = result.ci95(name)
        assert lo < truth < hi, name
    assert [d.dose_ug for d in result.objective.datasets] == [10.0, 50.0]
    assert result.models["bare"].parameters["Kmax_spleen"].value == result.params["Kmax_spleen__bare"].value
    assert result.model.parameters["Kmax_liver"].value == result.params["Kmax_liver"].value
    assert json.loads(result.to_json())["dataset"] == ["PEG", "bare"]
    assert set(result.predictions["dataset"]) == {"PEG", "bare"}
    draws = result.sample_parameters(5, seed=1)
    assert list(draws.columns) == list(result.params)


def test_censored_values_use_the_m3_likelihood(mouse):
    """A value below its lloq enters as −2 ln Φ((ln lloq − ln ŷ)/σ), not dropped."""
    from scipy.stats import norm

    data = simulated(mouse, {}, seed=4, name="cens", tissues=["blood", "liver", "spleen"])
    data["lloq"] = np.nan
    late = (data["tissue"] == "blood") & (data["time_h"] == 168.0)
    data.loc[late, "lloq"] = 2.0
    data.loc[late, "value"] = 0.0
    result = nanopk.fit(mouse, data, vary=["Kmax_liver"])
    row = result.predictions[result.predictions["censored"]]
    assert len(row) == 1 and result.metrics["n_censored"] == 1
    z = (math.log(2.0) - math.log(row["predicted"].iloc[0])) / row["sigma"].iloc[0]
    assert row["residual"].iloc[0] == pytest.approx(math.sqrt(-2 * norm.logcdf(z)))
    with pytest.warns(FitWarning, match=r"excluded 1 row\(s\) of 'blood'.*censored='exclude'"):
        excl = nanopk.fit(mouse, data, vary=["Kmax_liver"], censored="exclude")
    assert excl.metrics["n_censored"] == 0


@pytest.mark.parametrize("error_model", ["additive", "combined"])
def test_linear_error_models_recover_the_truth(mouse, error_model):
    """Additive and combined residuals fit noise-free data to the generating value."""
    data = simulated(mouse, {"Kmax_liver": 0.5}, seed=5, name="exact", cv=0.0)
    data["sd"] = 1.0
    result = nanopk.fit(mouse, data, vary=["Kmax_liver"], error_model=error_model)
    assert result.params["Kmax_liver"].value == pytest.approx(0.5, rel=1e-4)
    assert result.options["error_model"] == error_model


def test_leastsq_and_least_squares_agree(mouse, single):
    """MINPACK (epsfcn = diff_step²) and TRF find the same optimum to 4 digits."""
    other = nanopk.fit(mouse, single.datasets["single"], vary=["Kmax_liver", "Kmax_spleen"], method="leastsq")
    assert other.success
    for name in ("Kmax_liver", "Kmax_spleen"):
        assert other.params[name].value == pytest.approx(single.params[name].value, rel=1e-4)


def test_multistart_is_seeded_and_keeps_the_best(mouse, single):
    """multistart adds Latin-hypercube starts; the same seed gives the same starts and optimum."""
    data = single.datasets["single"]
    a = nanopk.fit(mouse, data, vary=["Kmax_liver", "Kmax_spleen"], multistart=2, seed=7)
    b = nanopk.fit(mouse, data, vary=["Kmax_liver", "Kmax_spleen"], multistart=2, seed=7)
    starts = [o["start"] for o in a.to_dict()["multistart"]]
    assert len(starts) == 3 and starts == [o["start"] for o in b.to_dict()["multistart"]]
    assert a.metrics["chisqr"] <= min(o.chisqr for o in a.outcomes) + 1e-9
    assert a.params["Kmax_liver"].value == pytest.approx(single.params["Kmax_liver"].value, rel=1e-3)


class _SensitivityBackend:
    """A compiled model plus `solve_sensitivities` by central differences (stands in for the lead's CVODES)."""

    def __init__(self, compiled):
        self._c = compiled
        self.backend = "fd-sens"

    def __getattr__(self, name):
        return getattr(self._c, name)

    def solve_sensitivities(self, t0, y0, s0, p, t_out, rtol, atol, max_steps, indices):
        # Tight tolerances so that the differences measure the derivative, not solver noise.
        rtol, atol = 1e-12, atol * 1e-3
        base = self._c.solve(t0, y0, p, t_out, rtol, atol, max_steps)
        s = np.empty(base.y.shape + (len(indices),))
        for j, i in enumerate(indices):
            h = 1e-5 * p[i]
            up, dn = p.copy(), p.copy()
            up[i] += h
            dn[i] -= h
            s[:, :, j] = (self._c.solve(t0, y0, up, t_out, rtol, atol, max_steps).y
                          - self._c.solve(t0, y0, dn, t_out, rtol, atol, max_steps).y) / (2 * h)
        base.s = s
        return base


def test_sensitivity_jacobian_hook(mouse, single, monkeypatch):
    """jacobian='sensitivity' chains backend sensitivities through observables, residuals and the log
    transform: the Jacobian equals central differences and the fit equals the FD fit."""
    import nanopk.compile
    from nanopk.fit.jacobians import SensitivityJacobian, _finite_difference_jacobian

    real = nanopk.compile.compile_model
    monkeypatch.setattr(nanopk.compile, "compile_model", lambda model, backend="auto": _SensitivityBackend(real(model, backend)))
    data = single.datasets["single"]
    result = nanopk.fit(mouse, data, vary=["Kmax_liver", "Kmax_spleen"], jacobian="sensitivity")
    assert result.options["jacobian"] == "sensitivity"
    for name in ("Kmax_liver", "Kmax_spleen"):
        assert result.params[name].value == pytest.approx(single.params[name].value, rel=1e-5)
    obj = result.objective
    J = SensitivityJacobian(obj)(obj, result.x)
    np.testing.assert_allclose(J, _finite_difference_jacobian(obj, result.x), rtol=1e-3, atol=1e-4 * np.abs(J).max())


def test_jacobian_callable_hook(mouse, single):
    """Any callable jac(objective, x) is used as the Jacobian."""
    from nanopk.fit.jacobians import _finite_difference_jacobian

    calls = []

    def jac(objective, x):
        calls.append(1)
        return _finite_difference_jacobian(objective, x)

    result = nanopk.fit(mouse, single.datasets["single"], vary=["Kmax_liver", "Kmax_spleen"], jacobian=jac)
    assert calls and result.params["Kmax_liver"].value == pytest.approx(single.params["Kmax_liver"].value, rel=1e-5)


def test_mcmc_with_progress_bar(single, capsys):
    """A short emcee run (tqdm bar) gives natural-scale samples centred on the optimum; JSON gains 'mcmc'."""
    with pytest.warns(FitWarning, match=r"MCMC: the chain \(60 steps\) is too short to estimate the autocorrelation time"):
        mc = single.mcmc(steps=60, nwalkers=8, burn=20, progress=True, seed=1)
    assert list(mc.chain.columns) == ["Kmax_liver", "Kmax_spleen"]
    assert len(mc.chain) == 8 * 40
    assert (mc.chain > 0).all().all()
    lo, hi = single.ci95("Kmax_liver")
    assert lo < mc.summary.loc["Kmax_liver", "median"] < hi
    assert "mcmc" in single.to_dict()
    assert single.mcmc_chain is mc.chain


def test_all_candidates_follow_the_measured_organs(mouse, single):
    """vary="all" fits Kmax and K50 of liver and spleen, and Kmax of the other measured RES organs
    (the candidates the default selection chooses from)."""
    result = nanopk.fit(mouse, single.datasets["single"], vary="all", auto_profile=False)
    assert list(result.params) == ["Kmax_liver", "K50_liver", "Kmax_spleen", "K50_spleen", "Kmax_kidney", "Kmax_lung"]
    assert result.options["vary"] == list(result.params)
    assert result.selection is None


def test_groups_become_datasets_and_tissue_map_renames(mouse):
    """A table with a group column is fitted as one dataset per group; tissue_map maps a data tissue
    onto a model observable."""
    a = simulated(mouse, {"Kmax_liver": 0.5}, seed=8, name="g", tissues=["blood", "liver"])
    b = simulated(mouse, {"Kmax_liver": 0.5}, seed=9, name="g", tissues=["blood", "liver"])
    a["group"], b["group"] = "PEG", "bare"
    both = pd.concat([a, b], ignore_index=True)
    both.loc[both["tissue"] == "blood", "tissue"] = "plasma"
    both.attrs.update(name="study", dose_ug=17.0)
    result = nanopk.fit(mouse, both, vary=["Kmax_liver"], shared=[], tissue_map={"plasma": "blood"})
    assert [d.name for d in result.objective.datasets] == ["study_PEG", "study_bare"]
    assert list(result.params) == ["Kmax_liver__study_PEG", "Kmax_liver__study_bare"]
    assert set(result.predictions["observable"]) == {"blood", "liver"}
    assert set(result.predictions["tissue"]) == {"plasma", "liver"}


def test_profile_option_and_open_interval(mouse, single):
    """fit(..., profile=[name]) profiles at once; a parameter the data cannot see (brain permeability,
    no brain data) has an open profile interval, reported as a warning."""
    with pytest.warns(FitWarning, match=r"PAC_brain is practically unidentifiable"):
        result = nanopk.fit(mouse, single.datasets["single"], vary=["Kmax_liver", "PAC_brain"], profile=["Kmax_liver"])
    assert "Kmax_liver" in result.profiles and result.profiles["Kmax_liver"]["open"] == []
    prof = result.profile("PAC_brain", max_steps=4)
    assert "lower" in prof["open"] and prof["ci95"][0] is None
    assert any("profile likelihood of PAC_brain does not reach the 95 % threshold toward the lower" in w for w in result.warnings)
    assert json.loads(result.to_json())["params"]["PAC_brain"]["ci95_profile"][0] is None


def test_bundled_dataset_by_name(mouse):
    """A bundled dataset name is read with read_dataset; its dose and body weight are used."""
    with pytest.warns(FitWarning, match=r"excluded 7 row\(s\) of 'lymph_node'"):
        result = nanopk.fit(mouse, "cho2010_peg_au_100nm", vary=["Kmax_liver"], max_nfev=20)
    d = result.objective.datasets[0]
    assert d.name == "cho2010_peg_au_100nm" and d.dose_ug == pytest.approx(17.0) and d.fixed == {"BW": 0.02}
    assert result.to_dict()["datasets"][0]["doi"] == "10.1016/j.taap.2010.02.013"
