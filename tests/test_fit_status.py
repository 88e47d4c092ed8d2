"""Fit status as NONMEM reports it (issue 17 #6, #10): optimizer, covariance step and adequacy
apart; no fit without degrees of freedom; misspelt keywords named; one CLI exit-code policy."""
import json
import math
import re
import types
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import nanopk
from nanopk import FitError
from nanopk.cli import main
from nanopk.fit import FitWarning
from nanopk.fit.result import ADEQUATE_R2_LOG, ADEQUATE_WITHIN_2FOLD, adequacy
from nanopk.fit.uncertainty import covariance

T = np.array([0.5, 1.0, 2.0, 4.0, 8.0, 12.0, 24.0])
NOISE = 0.05 * np.sin(7 * T)
K_TRUE = 0.2


@pytest.fixture(scope="module")
def one():
    return nanopk.load_model("one_compartment_iv")


def mono(name="mono", noise=NOISE, k=K_TRUE):
    """Central %ID 100·exp(−k t − ε) after a 100 µg bolus: what one_compartment_iv describes."""
    df = pd.DataFrame({"time_h": T, "tissue": "central", "value": 100.0 * np.exp(-k * T - noise)})
    df.attrs.update(name=name, dose_ug=100.0)
    return df


def humps():
    """Rises and falls twice: no monoexponential decline can follow it."""
    df = pd.DataFrame({"time_h": T, "tissue": "central", "value": [5.0, 20.0, 60.0, 30.0, 5.0, 60.0, 1.0]})
    df.attrs.update(name="humps", dose_ug=100.0)
    return df


def quiet_fit(*args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitWarning)
        return nanopk.fit(*args, **kwargs)


# --------------------------------------------------------------------------- the three parts
def test_well_posed_fit_is_converged_with_covariance_and_adequate(one):
    """k10 from log-scale data: the closed-form estimate k + Σtε/Σt², converged, covariance ok, adequate."""
    result = quiet_fit(one, mono(), vary=["k10"])
    k_hat = K_TRUE + float(np.sum(T * NOISE) / np.sum(T * T))  # ln y = ln 100 − k t − ε: least squares in k
    assert result.values["k10"] == pytest.approx(k_hat, rel=1e-5)
    s = result.status
    assert s.optimizer.converged and s.covariance.state == "ok" and s.adequacy.verdict == "adequate"
    assert result.success is True and s.success is True
    assert s.adequacy.frac_within_2fold == 1.0 and s.adequacy.reasons == []
    report = result.report()
    assert re.search(r"\n  optimizer:  converged: .+ \(\d+ evaluations, least_squares\)\n  covariance: ok \(rcond 1\)\n"
                     r"  adequacy:   adequate \[within 2-fold 100\.0 %, R² \(log\) 1\.000\]", report), report
    assert "***" not in report
    status = json.loads(result.to_json())["status"]
    assert status["success"] is True and status["optimizer"]["status"] == "converged"
    assert status["covariance"]["state"] == "ok" and status["adequacy"]["verdict"] == "adequate"


def test_model_that_cannot_follow_the_data_is_converged_but_poor(one):
    """A converged fit of the wrong model is a result (success), and its adequacy says poor and why."""
    result = quiet_fit(one, humps(), vary=["k10"])
    a = result.status.adequacy
    assert result.success and result.status.covariance.state == "ok"
    assert a.verdict == "poor"
    assert a.frac_within_2fold == pytest.approx(3 / 7, abs=1e-12)  # 1, 4 and 8 h within 2-fold of the fitted decline
    assert a.r2_log < ADEQUATE_R2_LOG
    assert re.fullmatch(r"the model misses the data: 42\.9 % of points within 2-fold \(< 50%\), R² \(log\) -?\d\.\d{3} \(< 0\.5\)",
                        a.reasons[0]), a.reasons
    assert "adequacy:   poor: the model misses the data" in result.report()


def test_unidentifiable_parameter_keeps_the_intervals_of_the_others(one):
    """V1 cannot change %ID: the covariance is singular, V1 has no CI, k10 keeps the CI of the k10-only fit."""
    alone = quiet_fit(one, mono(), vary=["k10"])
    with pytest.warns(FitWarning, match=r"V1 is not identifiable: not estimable \(it moves along an undetermined direction"):
        both = nanopk.fit(one, mono(), vary=["k10", "V1"])
    cov = both.status.covariance
    assert cov.state == "singular" and both.success is False
    assert cov.reason == "JᵀJ is rank deficient (rcond 0 < 1e-07): the data do not determine V1; no interval for V1"
    assert list(cov.no_ci) == ["V1"]
    # The automatic profile (an interval the Wald step could not give) finds the likelihood flat in V1:
    # open on both sides.
    assert both.ci95("V1") == [None, None]
    assert both.params["V1"].user_data["no_ci"] == ("no CI: not estimable (it moves along an undetermined direction, "
                                                     "loading 1); use result.profile('V1')")
    assert both.to_dict()["params"]["V1"]["no_ci"].startswith("no CI: not estimable")
    # Same optimum, same k10 column: SE differs only by s² = χ²/(N − k), with one parameter more in k.
    n = len(T)
    assert both.values["k10"] == pytest.approx(alone.values["k10"], rel=1e-6)
    se_both = both.params["k10"].user_data["stderr_log"]
    se_alone = alone.params["k10"].user_data["stderr_log"]
    assert se_both == pytest.approx(se_alone * math.sqrt((n - 1) / (n - 2)), rel=1e-4)
    assert both.ci95("k10") is not None
    assert both.status.adequacy.unidentifiable == ["V1"] and both.status.adequacy.verdict == "poor"
    report = both.report()
    assert report.startswith("*** no covariance (singular): JᵀJ is rank deficient")
    assert "[open, open] (profile; Wald unreliable: no CI: not estimable" in report


def test_fit_that_did_not_converge_is_never_reported_converged(mouse_table):
    """max_nfev=3: optimizer NOT CONVERGED in status, report banner and JSON; success False."""
    mouse, table = mouse_table
    result = quiet_fit(mouse, table, vary=["Kmax_liver", "Kmax_spleen"], start={"Kmax_liver": 2.0, "Kmax_spleen": 0.5},
                       max_nfev=3)
    assert result.status.optimizer.converged is False and result.success is False
    assert result.report().startswith("*** NOT CONVERGED: stopped after")
    assert "optimizer:  NOT CONVERGED: stopped after" in result.report()
    status = result.to_dict()["status"]
    assert status["optimizer"]["status"] == "not converged" and status["success"] is False


@pytest.fixture(scope="module")
def mouse_table():
    mouse = nanopk.load_model("mouse_pbpk")
    times = [0.5, 4.0, 24.0, 168.0]
    sim = mouse.simulate(times, rtol=1e-10, atol=1e-14)
    rows = [{"time_h": t, "tissue": o, "value": float(sim.loc[t, o])} for t in times for o in ("blood", "liver", "spleen")]
    df = pd.DataFrame(rows)
    df.attrs.update(name="defaults", dose_ug=17.0)
    return mouse, df


# --------------------------------------------------------------------------- covariance step, unit level
@settings(max_examples=40, deadline=None)
@given(extra=st.integers(1, 8), k=st.integers(2, 5), seed=st.integers(0, 2**32 - 1), data=st.data())
def test_singular_jacobian_keeps_exact_intervals_outside_the_null_direction(extra, k, seed, data):
    """A zero column j (n > k rows): the others' SE equal those of the reduced JᵀJ (to 1e-8), j gets none."""
    n = k + extra
    j = data.draw(st.integers(0, k - 1))
    rng = np.random.default_rng(seed)
    J = rng.standard_normal((n, k))
    J[:, j] = 0.0
    names = [f"p{i}" for i in range(k)]
    obj = types.SimpleNamespace(names=names, n_data=n, n_priors=0, loss="linear", specs=[None] * k)
    cov = covariance(obj, np.zeros(k), np.zeros(n), jac=lambda o, x: J, scale_covar=False)
    others = [i for i in range(k) if i != j]
    reduced = np.linalg.inv(J[:, others].T @ J[:, others])
    assert cov.state == "singular" and list(cov.no_ci) == [names[j]]
    assert math.isnan(cov.stderr[j])
    np.testing.assert_allclose(cov.stderr[others], np.sqrt(np.diag(reduced)), rtol=1e-8)


def test_parameters_entering_only_together_both_lose_their_interval_the_third_keeps_it():
    """Two equal columns (a product k1·k2): both get no CI, named as a combination; the third keeps its exact SE."""
    rng = np.random.default_rng(3)
    c, d = rng.standard_normal(8), rng.standard_normal(8)
    J = np.column_stack([c, c, d])
    obj = types.SimpleNamespace(names=["p0", "p1", "p2"], n_data=8, n_priors=0, loss="linear", specs=[None] * 3)
    cov = covariance(obj, np.zeros(3), np.zeros(8), jac=lambda o, x: J, scale_covar=False)
    assert re.fullmatch(r"JᵀJ is rank deficient \(rcond \S+ < 1e-07\): the data do not determine "
                        r"\[[+-]0\.71·p0 [+-]0\.71·p1\]; no interval for p0, p1", cov.reason), cov.reason
    assert sorted(cov.no_ci) == ["p0", "p1"]
    reduced = np.linalg.inv(np.column_stack([c, d]).T @ np.column_stack([c, d]))
    assert cov.stderr[2] == pytest.approx(math.sqrt(reduced[1, 1]), rel=1e-8)


@settings(max_examples=200, deadline=None)
@given(f2=st.floats(0, 1), r2=st.floats(-3, 1), unid=st.lists(st.sampled_from(["a", "b", "c"]), unique=True),
       bound=st.booleans())
def test_adequacy_verdict(f2, r2, unid, bound):
    """Poor iff < 50 % within 2-fold, R²(log) < 0.5 or an unidentifiable parameter; a bound alone is not poor."""
    metrics = {"frac_within_2fold": f2, "r2_log": r2, "n_points": 10, "n_fold": 10, "n_varied": 3}
    flags = {"unidentifiable": unid, "at_bound": [("a", "lower")] if bound else []}
    a = adequacy(metrics, flags)
    poor = f2 < ADEQUATE_WITHIN_2FOLD or r2 < ADEQUATE_R2_LOG or bool(unid)
    assert a.verdict == ("poor" if poor else "adequate")
    assert (a.at_bound == ["a (lower)"]) is bound


# --------------------------------------------------------------------------- refused fits
def test_censored_only_data_are_refused(one):
    """Every row below its LLOQ: no observation determines anything, so no fit (it used to say success)."""
    df = mono().assign(censored=True, lloq=200.0)
    df.attrs.update(name="blq", dose_ug=100.0)
    with pytest.raises(FitError, match=r"^1 parameters cannot be fitted to 0 observations: every one of the 7 row\(s\) is "
                                       r"censored \(below its LLOQ\).*\(n_points 0 uncensored \(\+7 censored\), n_varied 1\)"):
        nanopk.fit(one, df, vary=["k10"])


@pytest.mark.parametrize("n_points, vary", [(1, ["k10"]), (2, ["k10", "V1"]), (1, ["k10", "V1"])])
def test_fits_without_degrees_of_freedom_are_refused(one, n_points, vary):
    """n_points ≤ n_varied (zero dof included) is refused with both counts."""
    df = mono().iloc[:n_points].copy()
    df.attrs.update(name="few", dose_ug=100.0)
    k = len(vary)
    with pytest.raises(FitError, match=rf"^{k} parameters cannot be fitted to {n_points} observations; vary fewer or give "
                                       rf"priors \(a fit needs more uncensored observations than varied parameters: "
                                       rf"n_points {n_points} uncensored, n_varied {k}, {n_points - k} degrees of freedom\)"):
        nanopk.fit(one, df, vary=vary)


# --------------------------------------------------------------------------- misspelt keywords, same dataset
@pytest.mark.parametrize("call, match", [
    (lambda one: nanopk.fit(one, mono(), vary=["k10"], error_modle="log"),
     r"^fit\(\) got unknown keyword argument\(s\): 'error_modle'; did you mean 'error_model' or 'error_params'\?; "
     r"see help\(nanopk\.fit\) for the keywords; method='least_squares' also accepts scipy\.optimize\.least_squares "
     r"options: x_scale, tr_solver"),
    (lambda one: nanopk.fit(one, mono(), vary=["k10"], method="nelder", multistrat=2),
     r"^fit\(\) got unknown keyword argument\(s\): 'multistrat'; did you mean 'multistart'"),
    (lambda one: nanopk.compare(one, {"a": mono("a"), "b": mono("b", k=0.3)}, vary=["k10"], error_modle="log"),
     r"^compare\(\) got unknown keyword argument\(s\): 'error_modle'; did you mean 'error_model'.*help\(nanopk\.compare\) "
     r"and help\(nanopk\.fit\)"),
    (lambda one: nanopk.compare(one, {"a": mono("a"), "b": mono("b", k=0.3)}, vary=["k10"], n_sample=5),
     r"^compare\(\) got unknown keyword argument\(s\): 'n_sample'; did you mean 'n_samples'"),
])
def test_misspelt_keyword_is_named_with_a_suggestion(one, call, match):
    """A misspelling is a FitError from nanopk naming it and the nearest keyword, not scipy's TypeError."""
    with pytest.raises(FitError, match=match):
        call(one)


def test_misspelt_delivery_keyword_is_named():
    """delivery_efficiency(n_sampels=...) names the keyword and lists the valid ones."""
    with pytest.raises(nanopk.NanopkError, match=r"^delivery_efficiency\(\) got unknown keyword argument\(s\): 'n_sampels'; "
                                                 r"did you mean 'n_samples'\?; valid: model_or_fit, params, n_samples, seed, dose$"):
        nanopk.delivery_efficiency("mouse_tumour", n_sampels=5)


def test_compare_refuses_the_same_dataset_twice(one):
    """Two groups holding one table (same object or an equal copy) would test nothing."""
    d = mono("a")
    for other in (d, d.copy()):
        with pytest.raises(FitError, match=r"^groups 'a' and 'b' are the same dataset: compare needs different groups"):
            nanopk.compare(one, {"a": d, "b": other}, vary=["k10"], n_samples=0)


def test_comparison_success_follows_its_fits(one):
    """Comparison.success: every fit converged with a covariance; a singular group fit is named."""
    data = {"a": mono("a"), "b": mono("b", k=0.3)}
    ok = nanopk.compare(one, data, vary=["k10"], n_samples=0)
    assert ok.success and ok.problems == [] and "***" not in ok.summary()
    bad = nanopk.compare(one, data, vary=["k10", "V1"], shared=["V1"], n_samples=0)
    assert not bad.success
    assert bad.problems[0].startswith("group 'a': converged (") and "covariance is singular" in bad.problems[0]
    assert bad.summary().startswith("*** FIT FAILED: group 'a'")
    assert bad.to_dict()["success"] is False


# --------------------------------------------------------------------------- CLI exit codes
@pytest.fixture(scope="module")
def pbpk_csv(tmp_path_factory, mouse_table):
    """The mouse_pbpk defaults at 4 times, ±10 % deterministic scatter, as a CSV with its sidecar."""
    _, table = mouse_table
    folder = tmp_path_factory.mktemp("cli")
    values = table["value"].to_numpy() * np.exp(0.1 * np.sin(2.3 * np.arange(len(table))))
    pd.DataFrame({"time": table["time_h"], "tissue": table["tissue"], "value": values}).to_csv(folder / "pbpk.csv", index=False)
    (folder / "pbpk.json").write_text(json.dumps({
        "name": "synthetic_pbpk", "species": "mouse", "route": "iv", "dose": {"value": 17, "unit": "ug"},
        "body_weight_g": 20, "time_unit": "h", "value_unit": "%ID",
        "source": {"citation": "synthetic: mouse_pbpk defaults with ±10 % scatter (nanopk test)", "doi": None}}))
    return folder / "pbpk.csv"


def test_cli_fit_exits_0_when_converged_with_covariance(pbpk_csv, capsys):
    """Exit 0: converged, covariance ok; the header shows all three parts."""
    assert main(["fit", str(pbpk_csv), "--model", "mouse_pbpk", "--vary", "Kmax_liver"]) == 0
    out = capsys.readouterr().out
    assert "optimizer:  converged" in out and "covariance: ok" in out and "adequacy:   adequate" in out


def test_cli_exits_2_on_bad_input(pbpk_csv, capsys):
    """Exit 2, one line: the same dataset twice to compare."""
    assert main(["compare", str(pbpk_csv), str(pbpk_csv), "--model", "mouse_pbpk", "--vary", "Kmax_liver"]) == 2
    err = capsys.readouterr().err
    assert re.fullmatch(r"nanopk compare: error: '.*pbpk\.csv' and '.*pbpk\.csv' are the same dataset \('synthetic_pbpk'\): "
                        r"compare needs two different groups \(e\.g\. PEG-coated and bare particles\)\n", err), err


def test_cli_delivery_from_a_failed_fit_exits_1_with_the_banner(tmp_path, capsys):
    """The issue's case: KbileC undetermined, covariance singular -> exit 1, DE labelled, also from the fit JSON."""
    argv = ["arnida2010_peg_au_sphere_50nm", "--model", "mouse_tumour", "--vary", "PATC_tumour,P_tumour,KbileC,KurineC"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # "no intervals: could not sample" (stated in the banner too)
        assert main(["delivery", *argv]) == 1
        out = capsys.readouterr().out
        assert out.startswith("  *** FIT FAILED: these figures come from a fit that has no covariance (singular): "
                              "JᵀJ is rank deficient"), out
        assert "the data do not determine KbileC; no interval for KbileC" in out and "DE24" in out
        fit_json = tmp_path / "fit.json"
        assert main(["fit", *argv, "--json", str(fit_json)]) == 1
        out = capsys.readouterr().out
        assert out.startswith("*** no covariance (singular):") and "*** FIT FAILED" in out
        assert main(["delivery", str(fit_json)]) == 1
        assert "*** FIT FAILED" in capsys.readouterr().out
