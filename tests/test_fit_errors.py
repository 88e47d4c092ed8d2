"""Every FitError and FitWarning of the fit layer, each message pinned."""
import sys

import numpy as np
import pandas as pd
import pytest

import nanopk
from nanopk import FitError
from nanopk.fit import FitWarning

TIMES = [0.5, 4.0, 24.0, 168.0]


@pytest.fixture(scope="module")
def mouse():
    return nanopk.load_model("mouse_pbpk")


@pytest.fixture(scope="module")
def table(mouse):
    """Noise-free %ID of blood, liver, spleen at the model defaults (17 µg)."""
    sim = mouse.simulate(TIMES, rtol=1e-10, atol=1e-14)
    rows = [{"time_h": t, "tissue": o, "value": float(sim.loc[t, o])} for t in TIMES for o in ("blood", "liver", "spleen")]
    df = pd.DataFrame(rows)
    df.attrs.update(name="defaults", dose_ug=17.0)
    return df


def _with(table, rows):
    df = pd.concat([table, pd.DataFrame(rows)], ignore_index=True)
    df.attrs.update(table.attrs)
    return df


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"vary": ["Kmax_livr"]}, r"cannot vary unknown parameter\(s\): 'Kmax_livr'; did you mean 'Kmax_liver'"),
        ({"vary": []}, r"`vary` is empty; name the model parameters to fit"),
        ({"vary": ["Kmax_liver", "Kmax_liver"]}, r"`vary` names 'Kmax_liver' more than once"),
        ({"vary": ["dose"]}, r"'dose' is set by each dataset's dosing and cannot be fitted"),
        ({"vary": ["Kmax_liver"], "shared": ["Kmax_spleen"]}, r"`shared` names 'Kmax_spleen', which is not in `vary`"),
        ({"vary": ["Kmax_liver"], "start": {"Kmax_liver": 500.0}}, r"start value of 'Kmax_liver' must be finite and inside its bounds \[0, 100\]"),
        ({"vary": ["Kmax_liver"], "start": {"Kmax_livr": 1.0}}, r"`start`/`bounds` name\(s\) not fitted: 'Kmax_livr'; did you mean 'Kmax_liver'"),
        ({"vary": ["Kmax_liver"], "bounds": {"Kmax_liver": (1.0, 0.5)}, "start": {"Kmax_liver": 0.7}}, r"start value of 'Kmax_liver' must be finite and inside its bounds \[1, 0.5\]"),
        ({"vary": ["Kmax_liver"], "error_model": "lognormal"}, r"unknown error_model 'lognormal'; valid: log, additive, combined"),
        ({"vary": ["Kmax_liver"], "method": "newton"}, r"unknown method 'newton'; valid: least_squares, leastsq"),
        ({"vary": ["Kmax_liver"], "weighting": "inverse"}, r"unknown weighting 'inverse'; valid: se, sd, none"),
        ({"vary": ["Kmax_liver"], "jacobian": "analytic"}, r"`jacobian` must be 'fd', 'sensitivity' or a callable"),
        ({"vary": ["Kmax_liver"], "diff_step": 0.5}, r"`diff_step` must be a small positive relative step, e.g. 1e-4"),
        ({"vary": ["Kmax_liver"], "censored": "impute"}, r"`censored` must be 'm3' or 'exclude'"),
        ({"vary": ["Kmax_liver"], "body_weight": "mean"}, r"`body_weight` must be 'dataset' or 'model'"),
        ({"vary": ["Kmax_liver"], "multistart": -1}, r"`multistart` must be ≥ 0"),
    ],
)
def test_invalid_setups_raise_fit_error(mouse, table, kwargs, match):
    """Each invalid argument raises one FitError naming it, the expectation and the nearest valid choice."""
    with pytest.raises(FitError, match=match):
        nanopk.fit(mouse, table, **kwargs)


def test_fit_error_is_a_runtime_error(mouse, table):
    """FitError subclasses NanopkError and RuntimeError, so callers can catch either."""
    with pytest.raises(RuntimeError):
        nanopk.fit(mouse, table, vary=["nope"])
    assert issubclass(FitError, nanopk.NanopkError)


def test_unsupported_data_type(mouse):
    """Data that is neither a Dataset, a path, a DataFrame nor a collection of them is refused."""
    with pytest.raises(FitError, match=r"`data` must be a nanopk Dataset, a path or bundled dataset name, a DataFrame.*\(got int\)"):
        nanopk.fit(mouse, 42, vary=["Kmax_liver"])
    with pytest.raises(FitError, match=r"`data` is empty; give at least one dataset"):
        nanopk.fit(mouse, [], vary=["Kmax_liver"])


def test_missing_time_column(mouse, table):
    """A table without hours names the column it needs."""
    df = table.rename(columns={"time_h": "t"})
    with pytest.raises(FitError, match=r"dataset 'defaults' needs a `time_h` column \(hours after dosing\)"):
        nanopk.fit(mouse, df, vary=["Kmax_liver"])


def test_more_parameters_than_observations(mouse, table):
    """Seven parameters cannot be fitted to six points."""
    small = table[table["tissue"] == "liver"].copy()
    small = pd.concat([small, table[table["tissue"] == "spleen"].iloc[:2]])
    small.attrs.update(table.attrs)
    vary = ["Kmax_liver", "K50_liver", "n_liver", "Krelease_liver", "Kmax_spleen", "K50_spleen", "P_liver"]
    with pytest.raises(FitError, match=r"7 parameters cannot be fitted to 6 observations; vary fewer"):
        nanopk.fit(mouse, small, vary=vary)


def test_only_unknown_tissues_leaves_nothing_to_fit(mouse):
    """A table whose every tissue is missing from the model is refused, listing why."""
    df = pd.DataFrame({"time_h": [1.0, 2.0], "tissue": ["heart", "heart"], "value": [1.0, 0.5]})
    with pytest.raises(FitError, match=r"dataset 'dataset1': no rows left to fit; heart \(model 'mouse_pbpk' has no observable 'heart'"):
        nanopk.fit(mouse, df, vary=["Kmax_liver"])


def test_sensitivity_jacobian_needs_backend_support(mouse, table):
    """jacobian='sensitivity' on a backend without solve_sensitivities says so and what to use instead."""
    with pytest.raises(FitError, match=r"jacobian='sensitivity' needs forward sensitivities, which the 'reference' backend does not provide"):
        nanopk.fit(mouse, table, vary=["Kmax_liver"], jacobian="sensitivity", backend="reference")


def test_analytic_jacobian_only_with_least_squares(mouse, table):
    """A Jacobian callable with another method is refused."""
    with pytest.raises(FitError, match=r"an analytic `jacobian` is supported with method='least_squares' only"):
        nanopk.fit(mouse, table, vary=["Kmax_liver"], method="nelder", jacobian=lambda objective, x: None)


# --------------------------------------------------------------------------- warnings
def test_non_converged_fit_is_not_success(mouse, table):
    """With max_nfev=3 the optimiser stops early: success is False, and the message and warning say why."""
    with pytest.warns(FitWarning, match=r"the fit did not converge \(stopped after \d+ evaluations \(max_nfev = 3\)"):
        result = nanopk.fit(mouse, table, vary=["Kmax_liver", "Kmax_spleen"], start={"Kmax_liver": 2.0, "Kmax_spleen": 0.5}, max_nfev=3)
    assert result.success is False
    assert result.flags["converged"] is False
    assert result.message.startswith("did not converge: stopped after")
    assert '"success": false' in result.to_json()
    assert "success: False" in result.report()


def test_excluded_tissue_is_listed_never_dropped_silently(mouse, table):
    """A tissue the model lacks is excluded with its rows in the warning and in result.excluded."""
    df = _with(table, [{"time_h": 4.0, "tissue": "heart", "value": 1.0}, {"time_h": 24.0, "tissue": "heart", "value": 0.5}])
    with pytest.warns(FitWarning, match=r"excluded 2 row\(s\) of 'heart' in dataset 'defaults' \(rows 12, 13\): model 'mouse_pbpk' has no observable 'heart'"):
        result = nanopk.fit(mouse, df, vary=["Kmax_liver"])
    assert result.excluded == [{"dataset": "defaults", "tissue": "heart", "rows": [12, 13],
                                "reason": "model 'mouse_pbpk' has no observable 'heart'"}]
    assert result.to_dict()["excluded"] == result.excluded
    assert "heart" not in set(result.predictions["tissue"])


def test_zero_on_log_scale_without_lloq_is_excluded_with_its_rows(mouse, table):
    """A zero cannot be log-transformed: without an lloq it is excluded and listed."""
    df = _with(table, [{"time_h": 168.0, "tissue": "kidney", "value": 0.0}])
    with pytest.warns(FitWarning, match=r"excluded 1 row\(s\) of 'kidney' in dataset 'defaults' \(rows 12\): value ≤ 0 cannot enter a log-scale fit"):
        result = nanopk.fit(mouse, df, vary=["Kmax_liver"])
    assert result.metrics["n_points"] == len(table)


def test_zero_is_kept_by_the_additive_error_model(mouse, table):
    """On a linear scale a zero is an ordinary observation."""
    df = _with(table, [{"time_h": 168.0, "tissue": "kidney", "value": 0.0}])
    result = nanopk.fit(mouse, df, vary=["Kmax_liver"], error_model="additive")
    assert result.metrics["n_points"] == len(table) + 1
    assert result.excluded == []


def test_parameter_at_bound_is_flagged(mouse, table):
    """A parameter driven to its bound is flagged in the warning, flags, report and JSON."""
    with pytest.warns(FitWarning, match=r"Kmax_liver is at its upper bound; its Wald interval is unreliable"):
        result = nanopk.fit(mouse, table, vary=["Kmax_liver"], bounds={"Kmax_liver": (0.01, 0.1)})
    assert result.flags["at_bound"] == [("Kmax_liver", "upper")]
    assert result.params["Kmax_liver"].user_data["at_bound"] == "upper"
    assert "AT UPPER BOUND" in result.report()
    assert result.to_dict()["flags"]["at_bound"] == [{"name": "Kmax_liver", "side": "upper"}]
    assert result.success  # the optimum is inside the constrained problem (documented)


def test_unidentifiable_parameter_is_flagged(mouse, table):
    """A parameter the data cannot see (brain permeability, no brain data) is flagged, not fitted silently."""
    noisy = table.copy()
    noisy["value"] *= np.exp(0.1 * np.sin(np.arange(len(noisy)) * 2.3))
    noisy.attrs.update(table.attrs)
    with pytest.warns(FitWarning, match=r"PAC_brain is practically unidentifiable|the covariance is singular"):
        result = nanopk.fit(mouse, noisy, vary=["Kmax_liver", "PAC_brain"])
    assert "PAC_brain" in result.flags["unidentifiable"] or result.flags["singular"]


def test_high_correlation_is_flagged():
    """Two parameters that enter only as a product are correlated at |ρ| ≈ 1 and flagged."""
    from nanopk import Flux, Model, Parameter, Part, State

    k1, k2 = nanopk.parts.symbol("k1"), nanopk.parts.symbol("k2")
    part = Part(
        "elim",
        states=(State("central", organ="blood"), State("urine", "sink", organ="urine")),
        parameters=(Parameter("k1", 0.5, "1/h", "test", (1e-3, 10.0)), Parameter("k2", 0.4, "dimensionless", "test", (1e-3, 10.0))),
        fluxes=(Flux("renal", "central", "urine", k1 * k2 * nanopk.parts.symbol("central")),),
    )
    model = Model("product", [part], "central").validate()
    t = np.array([0.5, 1, 2, 4, 8])
    df = pd.DataFrame({"time_h": t, "tissue": "blood", "value": 100 * np.exp(-0.2 * t) * np.exp(0.05 * np.sin(7 * t))})
    with pytest.warns(FitWarning) as record:
        result = nanopk.fit(model, df, vary=["k1", "k2"])
    text = str(record[0].message)
    assert "k1 and k2 are highly correlated" in text or "the covariance is singular" in text
    assert result.flags["singular"] or result.flags["correlated"]
    if result.flags["singular"]:
        assert not result.success  # a singular covariance is never success


def test_mcmc_needs_emcee(mouse, table, monkeypatch):
    """Without emcee, result.mcmc() raises an ImportError with the install command."""
    result = nanopk.fit(mouse, table, vary=["Kmax_liver"])
    monkeypatch.setitem(sys.modules, "emcee", None)
    with pytest.raises(ImportError, match=r"MCMC needs emcee: pip install 'nanopk\[mcmc\]'"):
        result.mcmc(steps=10, progress=False)


def test_plot_needs_matplotlib(mouse, table, monkeypatch):
    """Without matplotlib, result.plot() raises an ImportError with the install command."""
    result = nanopk.fit(mouse, table, vary=["Kmax_liver"])
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ImportError, match=r"plots need matplotlib: pip install 'nanopk\[plot\]'"):
        result.plot()


def test_result_lookups_name_the_valid_choices(mouse, table):
    """Unknown parameter or dataset names in result methods suggest the nearest valid one."""
    result = nanopk.fit(mouse, table, vary=["Kmax_liver"])
    with pytest.raises(FitError, match=r"cannot profile 'Kmax_livr': not a fitted parameter; did you mean 'Kmax_liver'"):
        nanopk.fit.uncertainty.profile(result, "Kmax_livr")
    with pytest.raises(FitError, match=r"'Kmax_livr' is not a fitted parameter; did you mean 'Kmax_liver'"):
        result.ci95("Kmax_livr")
    with pytest.raises(FitError, match=r"unknown dataset 'defualts'; did you mean 'defaults'"):
        result.simulate([1.0], dataset="defualts")
    with pytest.raises(FitError, match=r"`n` must be a positive number of parameter sets \(got 0\)"):
        result.sample_parameters(0)
