"""Bayesian (MAP) priors in ``nanopk.fit``: closed forms, limits, Jacobian rows, errors.

The workhorse is the one-compartment bolus, whose blood %ID is ``f(t) = 100·e^(−k t)``:
``ln f = ln 100 − k t`` is linear in ``k``.  With ``n`` observations at ``t = 1 h``,
proportional error of known σ and a normal prior ``k ~ N(m, s²)`` (``k`` fitted on the
natural scale) the posterior is normal with

    precision  1/s² + n/σ²,      mean  (m/s² + n·k̂/σ²) / precision,

where ``k̂ = ln 100 − mean(ln y)`` is the data-only estimate — the precision-weighted
mean of data and prior.  Fitted on the log scale (``x = ln k``, log-normal prior
``x ~ N(ln m, s²)``) the MAP solves the stationarity condition

    Σ_i (ln y_i − ln 100 + k t)·k t / σ² + (x − ln m)/s² = 0

(solved here by bracketing) and the Laplace (Gauss–Newton) posterior SD of ``x`` is
``1/sqrt(1/s² + n (k t)²/σ²)``.
"""
import math
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import nanopk
from nanopk import FitError
from nanopk.fit import FitWarning
from nanopk.fit.jacobians import SensitivityJacobian, _finite_difference_jacobian

SIGMA = 0.3
#: ln-scale errors of the four observations (fixed, so every number below is exact).
NOISE = np.array([0.12, -0.21, 0.05, 0.31])
K_TRUE = 0.2
T = 1.0
#: Tight solver: the closed forms are checked to 1e-6, far below rtol = 1e-8 noise / 1e-4 step.
TIGHT = dict(rtol=1e-11, atol=1e-15)
KNOWN_SIGMA = dict(weighting="none", error_params={"sigma": SIGMA}, scale_covar=False)
#: Optimiser run to its floor, so that a stationarity check tests the objective, not the stopping rule.
CONVERGED = dict(ftol=1e-14, xtol=1e-14, gtol=1e-14)


def blood(name="a", k=K_TRUE, noise=NOISE, dose_ug=100.0):
    """n observations of the central %ID at t = 1 h: 100·e^(−k t − ε_i)."""
    df = pd.DataFrame({"time_h": T, "tissue": "central", "value": 100.0 * np.exp(-k * T - noise)})
    df.attrs.update(name=name, dose_ug=dose_ug)
    return df


@pytest.fixture(scope="module")
def one():
    return nanopk.load_model("one_compartment_iv")


def k_data(noise=NOISE, k=K_TRUE):
    """Data-only estimate of k: ln 100 − mean(ln y), over t."""
    return (k * T + np.mean(noise)) / T


@pytest.fixture(scope="module")
def data_only(one):
    return nanopk.fit(one, blood(), vary=["k10"], **KNOWN_SIGMA, **TIGHT)


# --------------------------------------------------------------------------- closed forms
@pytest.mark.parametrize("m, s", [(0.05, 0.1), (0.5, 0.05), (0.25, 1.0)])
def test_linear_gaussian_posterior_is_the_precision_weighted_mean(one, m, s):
    """k on the natural scale (bounds below 0), normal prior: MAP and posterior SD in closed form (1e-6, 1e-4 rel)."""
    n = NOISE.size
    result = nanopk.fit(one, blood(), vary=["k10"], bounds={"k10": (-1.0, 5.0)}, priors={"k10": (m, s)},
                        **KNOWN_SIGMA, **TIGHT)
    assert result.success and result.params["k10"].user_data["log_scale"] is False
    precision = 1 / s**2 + n * T**2 / SIGMA**2
    mean = (m / s**2 + n * T**2 * k_data() / SIGMA**2) / precision
    assert result.values["k10"] == pytest.approx(mean, rel=1e-6)
    assert result.params["k10"].stderr == pytest.approx(1 / math.sqrt(precision), rel=1e-4)
    # Data and prior are reported apart: χ² of the data residuals, the penalty of the prior row.
    pred = result.predictions
    chi_data = float(np.sum((np.log(pred["observed"] / pred["predicted"]) / SIGMA) ** 2))
    assert result.metrics["chisqr"] == pytest.approx(chi_data, rel=1e-9)
    assert result.prior_penalty == pytest.approx(((mean - m) / s) ** 2, rel=1e-5)
    assert result.metrics["cost"] == pytest.approx(chi_data + result.prior_penalty, rel=1e-12)
    assert result.metrics["n_residuals"] == n and result.metrics["n_priors"] == 1


def _exact_map(m, s):
    """Root in ln k of ½ d(−2 ln p)/d ln k = Σ (ln y_i − ln 100 + k t)·k t/σ² + (ln k − ln m)/s²."""
    from scipy.optimize import brentq

    ly = np.log(blood()["value"].to_numpy())

    def gradient(x):
        k = math.exp(x)
        return float(np.sum((ly - math.log(100.0) + k * T) * k * T) / SIGMA**2 + (x - math.log(m)) / s**2)

    return math.exp(brentq(gradient, math.log(1e-4), math.log(10.0), xtol=1e-15, rtol=1e-15))


@pytest.mark.parametrize("m, s", [(0.05, 0.3), (1.0, 0.1), (0.3, 2.0)])
@pytest.mark.parametrize("jacobian, tol", [("sensitivity", 1e-6), ("fd", 1e-4)])
def test_log_normal_prior_map_is_the_root_of_the_posterior_gradient(one, m, s, jacobian, tol):
    """k on the log scale, log-normal prior: the MAP is the root of the analytic gradient of −2 ln p and
    SE(ln k) = 1/sqrt(1/s² + n(k t)²/σ²) (Gauss–Newton Laplace, 1e-4 rel).  With exact sensitivities the
    MAP agrees to 1e-6 (the floor set by the solver's noise on the objective at rtol 1e-11); the default
    forward differences (step h ≈ 1e-4·max(1, |ln k|)) leave an O(h) bias, 1e-4."""
    result = nanopk.fit(one, blood(), vary=["k10"], priors={"k10": (m, s)}, jacobian=jacobian, **KNOWN_SIGMA, **TIGHT,
                        **CONVERGED)
    assert result.success and result.params["k10"].user_data["log_scale"] is True
    k = result.values["k10"]
    assert k == pytest.approx(_exact_map(m, s), rel=tol)
    sd = 1 / math.sqrt(1 / s**2 + NOISE.size * (k * T) ** 2 / SIGMA**2)
    assert result.params["k10"].user_data["stderr_log"] == pytest.approx(sd, rel=1e-4)


# --------------------------------------------------------------------------- limits
def test_a_very_wide_prior_reproduces_the_unpenalised_fit(one, data_only):
    """sd = 1e6: same estimate (1e-7), SE (1e-6) and χ² as no prior; sd = inf adds no row at all."""
    wide = nanopk.fit(one, blood(), vary=["k10"], priors={"k10": (0.01, 1e6)}, **KNOWN_SIGMA, **TIGHT)
    assert wide.values["k10"] == pytest.approx(data_only.values["k10"], rel=1e-7)
    assert wide.values["k10"] == pytest.approx(k_data(), rel=1e-7)
    assert wide.params["k10"].stderr == pytest.approx(data_only.params["k10"].stderr, rel=1e-6)
    assert wide.metrics["chisqr"] == pytest.approx(data_only.metrics["chisqr"], rel=1e-9)
    assert wide.prior_penalty < 1e-10
    flat = nanopk.fit(one, blood(), vary=["k10"], priors={"k10": (0.01, math.inf)}, **KNOWN_SIGMA, **TIGHT)
    assert flat.objective.n_priors == 0 and flat.priors == {"k10": (0.01, math.inf)}
    assert flat.values["k10"] == data_only.values["k10"]


def test_a_very_narrow_prior_pins_the_parameter_at_its_median(one, data_only):
    """sd = 1e-6 on ln k: the estimate is the prior median (1e-8 rel) and its SE the prior's (1e-3 rel)."""
    pinned = nanopk.fit(one, blood(), vary=["k10"], priors={"k10": (0.05, 1e-6)}, **KNOWN_SIGMA, **TIGHT)
    assert pinned.values["k10"] == pytest.approx(0.05, rel=1e-8)
    assert pinned.params["k10"].user_data["stderr_log"] == pytest.approx(1e-6, rel=1e-3)
    # The metrics are of the data only: χ²(k) = χ²(k̂) + n t²(k − k̂)²/σ² for this linear-in-k residual.
    extra = NOISE.size * T**2 * (0.05 - k_data()) ** 2 / SIGMA**2
    assert pinned.metrics["chisqr"] == pytest.approx(data_only.metrics["chisqr"] + extra, rel=1e-6)


@settings(max_examples=15, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(log_median=st.floats(math.log(0.01), math.log(3.0)), sd=st.floats(0.02, 5.0))
def test_map_lies_between_the_data_estimate_and_the_prior_median(one, data_only, log_median, sd):
    """For any log-normal prior the MAP of ln k is between the data-only estimate and ln median
    (to 1e-7), and closer to the median when sd is smaller than the data's SE."""
    result = nanopk.fit(one, blood(), vary=["k10"], priors={"k10": (math.exp(log_median), sd)}, **KNOWN_SIGMA,
                        **TIGHT, warn=False)
    x, xd = math.log(result.values["k10"]), math.log(data_only.values["k10"])
    lo, hi = min(xd, log_median), max(xd, log_median)
    assert lo - 1e-7 <= x <= hi + 1e-7
    se_data = data_only.params["k10"].user_data["stderr_log"]
    if sd < 0.5 * se_data:
        assert abs(x - log_median) < abs(x - xd)


# --------------------------------------------------------------------------- Jacobians
def test_sensitivity_jacobian_prior_rows_match_finite_differences(one):
    """Two datasets, per-dataset copies: the prior on k10 applies to both copies, a copy's own prior wins;
    the sensitivity Jacobian (data and prior rows) matches central differences to 1e-6 rel."""
    data = {"a": blood("a"), "b": blood("b", k=0.5, noise=NOISE[::-1])}
    priors = {"k10": (0.1, 0.5), "k10__b": (0.3, 0.2)}
    result = nanopk.fit(one, data, vary=["k10"], shared=[], priors=priors, jacobian="sensitivity", **KNOWN_SIGMA, **TIGHT,
                        **CONVERGED)
    obj = result.objective
    assert obj.names == ["k10__a", "k10__b"]
    assert result.priors == {"k10__a": (0.1, 0.5), "k10__b": (0.3, 0.2)}
    assert obj.n_data == 8 and obj.n_priors == 2
    J = SensitivityJacobian(obj)(obj, result.x)
    np.testing.assert_array_equal(J[-2:], [[1 / 0.5, 0.0], [0.0, 1 / 0.2]])
    fd = _finite_difference_jacobian(obj, result.x, step=1e-5)
    np.testing.assert_allclose(J, fd, rtol=1e-6, atol=1e-9)
    # The forward-difference fit reaches the same MAP up to its O(h) bias (h ≈ 2e-4 on ln k).
    by_fd = nanopk.fit(one, data, vary=["k10"], shared=[], priors=priors, jacobian="fd", **KNOWN_SIGMA, **TIGHT)
    np.testing.assert_allclose(result.x, by_fd.x, rtol=1e-4)
    # Each copy is the one-dimensional log-normal MAP of its own dataset and prior.
    for name, (m, s), d in (("k10__a", priors["k10"], data["a"]), ("k10__b", priors["k10__b"], data["b"])):
        alone = nanopk.fit(one, d, vary=["k10"], priors={"k10": (m, s)}, jacobian="sensitivity", **KNOWN_SIGMA, **TIGHT,
                           **CONVERGED)
        assert result.values[name] == pytest.approx(alone.values["k10"], rel=1e-6)


def test_a_user_jacobian_of_the_data_rows_gets_the_prior_rows(one):
    """A callable returning only the data rows is completed with the constant prior rows."""
    def data_rows(objective, x):
        return _finite_difference_jacobian(objective, x)[: objective.n_data]

    ref = nanopk.fit(one, blood(), vary=["k10"], priors={"k10": (0.1, 0.3)}, jacobian="sensitivity", **KNOWN_SIGMA, **TIGHT)
    got = nanopk.fit(one, blood(), vary=["k10"], priors={"k10": (0.1, 0.3)}, jacobian=data_rows, **KNOWN_SIGMA, **TIGHT)
    assert got.values["k10"] == pytest.approx(ref.values["k10"], rel=1e-6)
    assert got.params["k10"].stderr == pytest.approx(ref.params["k10"].stderr, rel=1e-6)


# --------------------------------------------------------------------------- covariance, MCMC, output
def test_scale_covar_rescales_the_data_rows_only(one):
    """With scale_covar the posterior precision is n(k t)²/(σ² s²_data) + 1/s² on ln k, s²_data = χ²/(n − 1)."""
    m, s = 0.1, 0.4
    result = nanopk.fit(one, blood(), vary=["k10"], priors={"k10": (m, s)}, weighting="none",
                        error_params={"sigma": SIGMA}, scale_covar=True, **TIGHT)
    k, n = result.values["k10"], NOISE.size
    s2 = result.metrics["chisqr"] / (n - 1)
    assert result.covariance.scale == pytest.approx(s2, rel=1e-12)
    sd = 1 / math.sqrt(n * (k * T) ** 2 / (SIGMA**2 * s2) + 1 / s**2)
    assert result.params["k10"].user_data["stderr_log"] == pytest.approx(sd, rel=1e-4)


def test_mcmc_samples_the_posterior_with_the_prior(one):
    """emcee on the linear-Gaussian case: posterior mean within 0.25 SD of the closed form, SD within 15 %
    (8 walkers × 600 kept steps, τ ≈ 23: ~200 effective samples, Monte Carlo errors ≈ 0.07 SD and 5 %);
    without the prior the SD is the data's σ/√n, about twice as wide."""
    pytest.importorskip("emcee")
    m, s = 0.05, 0.1
    n = NOISE.size
    precision = 1 / s**2 + n * T**2 / SIGMA**2
    mean, sd = (m / s**2 + n * T**2 * k_data() / SIGMA**2) / precision, 1 / math.sqrt(precision)
    lin = dict(vary=["k10"], bounds={"k10": (-1.0, 5.0)}, **KNOWN_SIGMA)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitWarning)  # a short chain: the autocorrelation note
        post = nanopk.fit(one, blood(), priors={"k10": (m, s)}, **lin).mcmc(steps=800, nwalkers=8, progress=False, seed=3)
        like = nanopk.fit(one, blood(), **lin).mcmc(steps=800, nwalkers=8, progress=False, seed=3)
    got = post.summary.loc["k10"]
    assert abs(got["mean"] - mean) < 0.25 * sd
    assert got["sd"] == pytest.approx(sd, rel=0.15)
    assert like.summary.loc["k10", "sd"] == pytest.approx(SIGMA / math.sqrt(n), rel=0.15)


def test_priors_in_json_and_report(one):
    """to_dict records each prior with its distribution; the report has the prior-penalty line."""
    result = nanopk.fit(one, blood(), vary=["k10"], priors={"k10": (0.1, 0.5)}, **KNOWN_SIGMA)
    d = result.to_dict()
    assert d["priors"] == {"k10": {"median": 0.1, "ln_sd": 0.5, "distribution": "lognormal"}}
    assert d["options"]["priors"] == {"k10": [0.1, 0.5]}
    assert d["options"]["error_params"] == {"sigma": SIGMA}
    assert d["metrics"]["prior_penalty"] == pytest.approx(((math.log(result.values["k10"]) - math.log(0.1)) / 0.5) ** 2)
    assert f"prior penalty Σ((x − x̃)/s)² = {result.prior_penalty:.4g} over 1 prior row(s)" in result.report()
    assert "k10 ~ LogNormal(0.1, 0.5)" in result.report()
    plain = nanopk.fit(one, blood(), vary=["k10"], **KNOWN_SIGMA)
    assert plain.to_dict()["priors"] == {} and plain.prior_penalty == 0.0 and "Priors" not in plain.report()


def test_known_sigma_sets_every_row_and_uncertainty_false_skips_the_covariance(one):
    """weighting='none' + error_params={'sigma': 0.3}: σ = 0.3 on every row (no floor applies to it);
    uncertainty=False: the same estimate, no standard errors, 2k fewer simulations."""
    full = nanopk.fit(one, blood(), vary=["k10"], priors={"k10": (0.1, 0.5)}, **KNOWN_SIGMA)
    lean = nanopk.fit(one, blood(), vary=["k10"], priors={"k10": (0.1, 0.5)}, uncertainty=False, **KNOWN_SIGMA)
    np.testing.assert_array_equal(full.predictions["sigma"], SIGMA)
    tiny = nanopk.fit(one, blood(), vary=["k10"], weighting="none", error_params={"sigma": 0.01}, sigma_floor=0.05)
    np.testing.assert_array_equal(tiny.predictions["sigma"], 0.01)
    assert lean.values == full.values
    assert lean.params["k10"].stderr is None and lean.ci95("k10") is None
    assert lean.success and lean.message.endswith("(uncertainty not computed)")
    assert full.metrics["n_simulations"] - lean.metrics["n_simulations"] == 2
    with pytest.raises(FitError, match="the fit was run with uncertainty=False; refit with uncertainty=True"):
        lean.sample_parameters(10)


# --------------------------------------------------------------------------- errors
def test_unknown_prior_names_are_all_named_with_the_varied_parameters(one):
    """Every unknown name in one FitError, with a suggestion and the list of varied parameters."""
    with pytest.raises(FitError, match=r"`priors` name\(s\) not fitted: 'k01'.*did you mean 'k10'.*; 'V1'.*"
                                       r"varied parameters: k10"):
        nanopk.fit(one, blood(), vary=["k10"], priors={"k01": (0.1, 1.0), "V1": (2.0, 1.0)})


@pytest.mark.parametrize("priors, match", [
    ({"k10": (0.1, 0.0)}, r"'k10' needs sd > 0 \(got 0.0\)"),
    ({"k10": (0.1, -1.0)}, r"'k10' needs sd > 0 \(got -1.0\)"),
    ({"k10": (0.1, math.nan)}, r"'k10' needs sd > 0 \(got nan\)"),
    ({"k10": (0.0, 1.0)}, r"'k10' is fitted on the log scale, so its prior median must be positive"),
    ({"k10": (-0.2, 0.0)}, r"'k10' needs sd > 0.*'k10' is fitted on the log scale"),
    ({"k10": 0.1}, r"'k10' must be a pair \(median, sd\) of numbers \(got 0.1\)"),
    ([("k10", (0.1, 1.0))], r"`priors` must be .population., None, False or a dict \{name: \(median, ln_sd\)\} \(got list\)"),
])
def test_bad_priors_raise_fit_error_naming_them(one, priors, match):
    """sd ≤ 0 (or NaN), a non-positive median on a log-scale parameter, a malformed entry: FitError."""
    with pytest.raises(FitError, match=match):
        nanopk.fit(one, blood(), vary=["k10"], priors=priors)


def test_linear_scale_prior_may_have_any_finite_mean(one):
    """On the natural scale the pair is (mean, sd): a negative mean is a valid normal prior."""
    result = nanopk.fit(one, blood(), vary=["k10"], bounds={"k10": (-1.0, 5.0)}, priors={"k10": (-0.1, 0.05)},
                        **KNOWN_SIGMA, **TIGHT)
    assert result.to_dict()["priors"] == {"k10": {"mean": -0.1, "sd": 0.05, "distribution": "normal"}}


def test_priors_with_a_robust_loss_are_refused(one):
    """scipy's loss would also down-weight the prior rows, so priors need loss='linear'."""
    with pytest.raises(FitError, match=r"priors need loss='linear' \(got loss='soft_l1'\)"):
        nanopk.fit(one, blood(), vary=["k10"], priors={"k10": (0.1, 1.0)}, loss="soft_l1")


def test_bad_error_params_are_named(one):
    """Unknown keys (with a suggestion) and non-positive values, all in one FitError."""
    with pytest.raises(FitError, match=r"unknown key 'sigm'.*did you mean 'sigma'.*'add' must be a positive number"):
        nanopk.fit(one, blood(), vary=["k10"], error_params={"sigm": 0.3, "add": 0.0})


def test_priors_make_an_underdetermined_fit_possible(one):
    """Two parameters, one observation: refused without priors, a proper posterior with them."""
    two = nanopk.load_model("two_compartment_iv")
    d = blood(noise=NOISE[:1])
    with pytest.raises(FitError, match=r"2 parameters cannot be fitted to 1 observations; vary fewer or give priors"):
        nanopk.fit(two, d, vary=["k10", "k12"], **KNOWN_SIGMA)
    result = nanopk.fit(two, d, vary=["k10", "k12"], priors={"k10": (0.2, 0.5), "k12": (0.5, 0.5)}, **KNOWN_SIGMA)
    assert result.success and result.metrics["n_residuals"] == 1 and result.objective.n_residuals == 3
    assert np.all(np.isfinite([result.params[n].stderr for n in ("k10", "k12")]))


# --------------------------------------------------------------------------- per-dataset fixed values
def test_dataset_parameters_in_attrs_are_held_for_that_dataset():
    """attrs['parameters'] fixes model parameters per dataset: k12 = 0.5 reproduces its simulation exactly."""
    two = nanopk.load_model("two_compartment_iv")
    sim = two.simulate([0.5, 2.0, 8.0], params={"k10": 0.3, "k12": 0.5}, dose=100.0, rtol=1e-11, atol=1e-15)
    df = pd.DataFrame({"time_h": [0.5, 2.0, 8.0], "tissue": "central", "value": sim["central"].to_numpy()})
    df.attrs.update(name="fixed", dose_ug=100.0, parameters={"k12": 0.5})
    result = nanopk.fit(two, df, vary=["k10"], **KNOWN_SIGMA, **TIGHT)
    assert result.values["k10"] == pytest.approx(0.3, rel=1e-7)
    assert result.model.parameters["k12"].value == 0.5
    df.attrs["parameters"] = {"k10": 0.3, "k21x": 1.0}
    with pytest.raises(FitError, match=r"attrs\['parameters'\]: unknown parameter 'k21x'.*did you mean 'k21'"):
        nanopk.fit(two, df, vary=["k10"])
    df.attrs["parameters"] = {"k10": 0.3}
    with pytest.raises(FitError, match=r"cannot be both varied and set by its dataset.*'k10' in dataset 'fixed'"):
        nanopk.fit(two, df, vary=["k10"])


def test_readme_priors_example_runs():
    """The README's "Fitting with priors" block executes as written and reports a prior penalty."""
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme[readme.index("### Fitting with priors"):]
    block = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    namespace: dict = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitWarning)  # the dataset's heart rows are not in the model
        exec(compile(block, "README.md", "exec"), namespace)
    fit = namespace["fit"]
    assert fit.objective.n_priors == 2 and fit.prior_penalty > 0
    assert fit.metrics["cost"] == pytest.approx(fit.metrics["chisqr"] + fit.prior_penalty, rel=1e-12)
