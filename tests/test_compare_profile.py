"""Profile-likelihood intervals of compare's group ratios (issue 21: "reports ratios with profile intervals").

Three groups simulated from ``two_compartment_iv`` (k12 0.5, 1.0 and 2.5 /h; log-normal
noise σ = 0.1, central and peripheral at 6 times): small enough that each compare takes
a few seconds, and well posed, so the profile and the delta method must agree.
"""
import json
import math
import re
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import least_squares

import nanopk
from nanopk import FitError
from nanopk.compare import compare, ratio_profile
from nanopk.fit.uncertainty import CHI2_95

TIMES = [0.5, 1.0, 2.0, 4.0, 8.0, 24.0]
K12 = {"A": 0.5, "B": 1.0, "C": 2.5}


@pytest.fixture(scope="module")
def model():
    return nanopk.load_model("two_compartment_iv")


def simulated(model, params, seed, name, sigma=0.1):
    """Central and peripheral %ID at 6 times, log-normal noise σ (no SD column: σ is estimated)."""
    curve = model.simulate(TIMES, params=params)
    rng = np.random.default_rng(seed)
    rows = [(t, tissue, curve.loc[t, tissue] * math.exp(sigma * rng.standard_normal()))
            for t in TIMES for tissue in ("central", "peripheral")]
    df = pd.DataFrame(rows, columns=["time_h", "tissue", "value"])
    df.attrs.update(name=name, dose_ug=100.0)
    return df


def quiet_compare(*args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return compare(*args, **kwargs)


@pytest.fixture(scope="module")
def three(model):
    data = {g: simulated(model, {"k12": k}, seed, g) for seed, (g, k) in enumerate(K12.items(), start=1)}
    return quiet_compare(model, data, vary=["k12"], n_samples=0)


def test_profile_ends_are_where_the_joint_objective_rises_by_the_scaled_threshold(three):
    """At each reported end R of B/A and C/A, re-optimising the others (scipy least_squares, not nanopk's
    optimiser) gives an objective 3.84·s² above the joint minimum, to 2 %; the truth (2 and 5) is inside."""
    full = three.full
    obj = full.objective
    assert obj.names == ["k12__A", "k12__B", "k12__C"]
    cost_min = full.metrics["cost"]
    threshold = CHI2_95 * full.covariance.scale
    for g, col in (("B", 1), ("C", 2)):
        r = three.ratio("k12", g)
        assert r["ci_method"] == "profile likelihood" and r["ci_open"] == "" and r["ci_note"] == ""
        assert r["ci95_low"] < K12[g] / K12["A"] < r["ci95_high"], r
        other = 3 - col  # the third group's parameter is re-optimised too
        for end in (r["ci95_low"], r["ci95_high"]):
            d = math.log(end)

            def residual(y):
                x = np.empty(3)
                x[0], x[other] = y
                x[col] = y[0] + d
                return obj.residual(x)

            sol = least_squares(residual, full.x[[0, other]], xtol=1e-12, ftol=1e-12, gtol=1e-12)
            rise = obj.loss_value(residual(sol.x)) - cost_min
            assert rise == pytest.approx(threshold, rel=0.02), (g, end, rise, threshold)
    assert three.ratio_profiles["k12 (B)"]["threshold"] == pytest.approx(threshold, rel=1e-12)


def test_profile_and_delta_method_agree_on_a_well_posed_case(three):
    """Well-posed (12 points per group, σ 0.1): each end of the profile interval lies within 3 % of the
    delta-method interval's log width of the delta-method end (a quadratic log-likelihood makes them equal)."""
    for _, r in three.ratios.iterrows():
        width = math.log(r["ci95_high_delta"]) - math.log(r["ci95_low_delta"])
        assert abs(math.log(r["ci95_low"]) - math.log(r["ci95_low_delta"])) <= 0.03 * width, r.to_dict()
        assert abs(math.log(r["ci95_high"]) - math.log(r["ci95_high_delta"])) <= 0.03 * width, r.to_dict()


def test_report_json_and_forest_name_and_use_the_profile_interval(three, tmp_path):
    """The summary names the method, the JSON holds each ratio's method and profiled points, and the
    forest plot draws exactly the reported (profile) interval, solid."""
    assert "95 % CI (profile likelihood of the joint fit)" in three.summary()
    d = json.loads(three.to_json(tmp_path / "cmp.json"))
    assert [r["ci_method"] for r in d["ratios"]] == ["profile likelihood"] * 2
    points = d["ratio_profiles"]["k12 (C)"]["points"]
    assert len(points) == len(three.ratio_profiles["k12 (C)"]["table"]) >= 5
    assert min(p["delta"] for p in points) == 0.0  # the optimum itself is the table's first point
    ax = three.forest()
    assert "profile likelihood" in ax.get_xlabel()
    for _, r in three.ratios.iterrows():
        line = next(a for a in ax.lines if a.get_gid() == f"ratio:k12:{r['group']}")
        np.testing.assert_allclose(line.get_xdata(), [r["ci95_low"], r["ci95_high"]], rtol=1e-12)
        assert line.get_linestyle() == "-"


def test_delta_method_on_request_and_a_bad_choice_is_refused(model):
    """ratio_ci='delta' reports the delta-method interval (no profiles); an unknown choice is refused by name."""
    data = {g: simulated(model, {"k12": K12[g]}, seed, g) for seed, g in ((1, "A"), (2, "B"))}
    cmp = quiet_compare(model, data, vary=["k12"], n_samples=0, ratio_ci="delta")
    r = cmp.ratio("k12", "B")
    assert r["ci_method"] == "delta method" and cmp.ratio_profiles == {}
    assert (r["ci95_low"], r["ci95_high"]) == (r["ci95_low_delta"], r["ci95_high_delta"])
    assert "95 % CI (delta method, log scale)" in cmp.summary()
    with pytest.raises(FitError, match=r"`ratio_ci` must be one of 'profile', 'delta' \(got 'wald'\)"):
        compare(model, data, vary=["k12"], ratio_ci="wald")


def test_a_failed_profile_falls_back_to_the_delta_method_and_says_why(model, monkeypatch):
    """A re-optimisation of the profile that raises (a solver failure) leaves the delta-method interval,
    marked as such with the reason in the table, the summary and the forest plot (dashed)."""
    import nanopk.fit._optimize as optimize
    from nanopk.compare import _FixedLogRatio
    from nanopk.errors import SolverError

    real = optimize.minimize

    def failing(objective, *args, **kwargs):
        if isinstance(objective, _FixedLogRatio):
            raise SolverError("CVODE failed (test)")
        return real(objective, *args, **kwargs)

    monkeypatch.setattr(optimize, "minimize", failing)
    data = {g: simulated(model, {"k12": K12[g]}, seed, g) for seed, g in ((1, "A"), (2, "B"))}
    cmp = quiet_compare(model, data, vary=["k12"], n_samples=0)
    r = cmp.ratio("k12", "B")
    assert r["ci_method"] == "delta method"
    assert (r["ci95_low"], r["ci95_high"]) == (r["ci95_low_delta"], r["ci95_high_delta"])
    assert re.fullmatch(r"profile likelihood failed \(the profile of k12__B / k12__A failed at ratio [0-9.]+: "
                        r"CVODE failed \(test\)\); delta-method interval instead", r["ci_note"]), r["ci_note"]
    assert "(delta method: profile likelihood failed (the profile of k12__B / k12__A" in cmp.summary()
    ax = cmp.forest()
    assert next(a for a in ax.lines if a.get_gid() == "ratio:k12:B").get_linestyle() == "--"


def test_a_side_the_data_do_not_bound_is_reported_open(model):
    """Group B eliminates 2000× slower than A (k10 1e-4 vs 0.2 /h) over 24 h: B's k10 sits at its lower bound,
    so the lower side of B/A is open (the rise there is the bound's); the upper end is bounded below 1."""
    data = {"A": simulated(model, {}, 1, "A"), "B": simulated(model, {"k10": 1e-4}, 2, "B")}
    cmp = quiet_compare(model, data, vary=["k10"], n_samples=0)
    r = cmp.ratio("k10", "B")
    assert r["ci_method"] == "profile likelihood" and r["ci_open"] == "lower"
    assert r["ci_note"].startswith("open lower end: the profile does not rise by the 95 % threshold before a parameter's bound")
    assert r["ci95_high"] < 1.0
    assert "it spans at least" in cmp.summary()
    ax = cmp.forest()
    assert any(a.get_marker() == "<" for a in ax.lines)


def test_ratio_profile_refuses_a_parameter_the_joint_fit_does_not_have(three):
    """Asking for a ratio of a parameter that is not group-specific names it and lists the fitted ones."""
    with pytest.raises(FitError, match=r"'k10__B' is not a parameter of the joint fit.*fitted: k12__A, k12__B, k12__C"):
        ratio_profile(three.full, "k10", "B", "A")
