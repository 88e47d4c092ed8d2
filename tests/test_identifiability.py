"""Identifiable defaults (nanopk.fit.select) and intervals that mean something (auto profile).

The yardstick is a three-compartment model whose uptake rate is ``a·b``: ``a`` and ``b``
enter only as their product, so at most one of them can be determined from any data.
"""
import math
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import nanopk
from nanopk import FitError, Flux, Model, Parameter, Part, State
from nanopk.fit import FitWarning
from nanopk.fit.select import collinearity_index, importance, select_parameters
from nanopk.parts import amount_observable, symbol

TIMES = [0.25, 1.0, 3.0, 8.0, 24.0, 48.0]
#: b and r stay at their defaults (1 and 0.05): what the selection holds must be right for the
#: fitted ones to be (a held parameter away from the truth biases the others, by design of a
#: conditional fit).
TRUTH = {"a": 0.8, "k": 0.3}  # a·b = 0.8


@pytest.fixture(scope="module")
def product_model():
    s = symbol
    part = Part(
        "product",
        states=(State("blood"), State("liver"), State("gut", "sink")),
        parameters=(Parameter("a", 0.5, "1/h", "test"), Parameter("b", 1.0, "dimensionless", "test"),
                    Parameter("k", 0.2, "1/h", "test"), Parameter("r", 0.05, "1/h", "test")),
        fluxes=(Flux("up", "blood", "liver", s("a") * s("b") * s("blood")),
                Flux("out", "blood", "gut", s("k") * s("blood")),
                Flux("back", "liver", "blood", s("r") * s("liver"))),
        observables=(amount_observable("blood", ["blood"]), amount_observable("liver", ["liver"])),
    )
    return Model("product", [part], "blood")


def synthetic(model, seed, cv=0.1, n=4):
    """Means of n animals with log-normal CV ``cv`` from TRUTH, SD as reported."""
    sim = model.simulate(TIMES, params=TRUTH, rtol=1e-10, atol=1e-14)
    rng = np.random.default_rng(seed)
    rows = [{"time_h": t, "tissue": o, "value": float(sim.loc[t, o]) * math.exp(cv / math.sqrt(n) * rng.standard_normal()),
             "sd": cv * float(sim.loc[t, o]), "n": n} for t in TIMES for o in ("blood", "liver")]
    df = pd.DataFrame(rows)
    df.attrs.update(name=f"synthetic{seed}", dose_ug=100.0)
    return df


def quiet_fit(*args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitWarning)
        return nanopk.fit(*args, **kwargs)


# --------------------------------------------------------------------------- the indices
@settings(max_examples=30, deadline=None)
@given(r=st.floats(-0.99, 0.99))
def test_collinearity_index_of_two_columns_is_closed_form(r):
    """Two unit columns with cosine r: S̃ᵀS̃ has eigenvalues 1 ± r, so γ = 1/sqrt(1 − |r|) (Brun et al. 2001)."""
    S = np.array([[1.0, r], [0.0, math.sqrt(1 - r * r)]])
    assert collinearity_index(3.0 * S) == pytest.approx(1 / math.sqrt(1 - abs(r)), rel=1e-6)


def test_collinear_and_zero_columns_have_infinite_index_and_importance_is_rms():
    """Equal columns (a product's two factors) or a zero column: γ = ∞; δ^msqr = sqrt(mean s²)."""
    S = np.array([[1.0, 1.0, 0.0], [2.0, 2.0, 0.0]])
    assert collinearity_index(S[:, :2]) == math.inf
    assert collinearity_index(S[:, [0, 2]]) == math.inf
    assert collinearity_index(S[:, :1]) == pytest.approx(1.0, rel=1e-12)
    np.testing.assert_allclose(importance(S), [math.sqrt(2.5), math.sqrt(2.5), 0.0])


# --------------------------------------------------------------------------- selection
def test_selection_drops_one_factor_of_a_product(product_model):
    """a and b enter only as a·b: their log sensitivities are equal, so the second of them makes the set
    collinear (γ_K = ∞ > 10) and is left out with that reason; k and r are kept (limit raised to 3)."""
    data = synthetic(product_model, 1)
    sel = select_parameters(product_model, data, candidates=["a", "b", "k", "r"], max_parameters=3)
    assert sel.importance["a"] == pytest.approx(sel.importance["b"], rel=1e-4)
    assert len({"a", "b"} & set(sel.chosen)) == 1 and {"k", "r"} <= set(sel.chosen)
    dropped = ({"a", "b"} - set(sel.chosen)).pop()
    assert "collinear with the chosen ones (γ_K would be inf > 10" in sel.left_out[dropped]
    assert sel.collinearity < 10
    default = select_parameters(product_model, data, candidates=["a", "b", "k", "r"])
    assert default.max_parameters == 12 // 5 and len(default.chosen) == 2  # 12 points, one parameter per 5


def test_selection_limits_and_errors(product_model):
    """At most max_parameters; an unknown candidate or a limit below 1 is refused with the right name."""
    data = synthetic(product_model, 1)
    sel = select_parameters(product_model, data, candidates=["a", "b", "k", "r"], max_parameters=1)
    assert len(sel.chosen) == 1
    assert any("the data carry at most 1 parameters" in w for w in sel.left_out.values())
    with pytest.raises(FitError, match=r"`candidates` name unknown parameter\(s\): 'kk'.*did you mean 'k'"):
        select_parameters(product_model, data, candidates=["kk"])
    with pytest.raises(FitError, match=r"`max_collinearity` must be a number ≥ 1, e.g. 10 \(got 0.5\)"):
        select_parameters(product_model, data, candidates=["a"], max_collinearity=0.5)
    with pytest.raises(FitError, match=r"`max_parameters` must be a positive integer \(got 0\)"):
        select_parameters(product_model, data, candidates=["a"], max_parameters=0)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_default_fit_recovers_the_truth_inside_its_intervals(product_model, seed, monkeypatch):
    """Candidates a, b, k, r (monkeypatched default list): the default fit fits one of a/b, k and r —
    never both factors — and each 95 % interval contains the truth (for a or b: truth a·b = 0.8 divided
    by the other factor's held value)."""
    import nanopk.fit.parameters as parameters

    monkeypatch.setattr(parameters, "default_vary", lambda model, datasets: ["a", "b", "k", "r"])
    data = synthetic(product_model, seed)
    result = quiet_fit(product_model, data, max_nfev=2000)
    chosen = result.selection.chosen
    assert result.success and len({"a", "b"} & set(chosen)) == 1 and set(chosen) - {"a", "b"} == {"k"}
    for name in chosen:
        lo, hi = result.ci95(name)
        other = {"a": "b", "b": "a"}.get(name)
        truth = TRUTH.get(name) if other is None else 0.8 / result.model.parameters[other].value
        assert lo < truth < hi, (name, lo, truth, hi)
    assert "r" in result.selection.left_out  # 12 points carry 2 parameters
    text = result.report()
    assert "Parameters chosen from the local sensitivities (Brun et al. 2001" in text and "γ_K" in text


def test_vary_all_keeps_every_candidate_and_flags_the_product(product_model, monkeypatch):
    """vary="all" keeps today's behaviour: every candidate fitted, the a·b pair undetermined; their Wald
    intervals are unusable, so they are profiled automatically and the report says why."""
    import nanopk.fit.parameters as parameters

    monkeypatch.setattr(parameters, "default_vary", lambda model, datasets: ["a", "b", "k"])
    result = quiet_fit(product_model, synthetic(product_model, 1), vary="all")
    assert list(result.params) == ["a", "b", "k"] and result.selection is None
    assert {"a", "b"} <= set(result.unreliable_wald)
    assert {"a", "b"} <= set(result.profiles)
    assert "profile; Wald unreliable" in result.report()


def test_profile_and_wald_agree_on_a_well_posed_fit(product_model):
    """a and k fitted (well determined, 12 points with 5 % SE): the profile-likelihood bounds lie within
    10 % of the Wald (log-scale) bounds, and nothing is profiled automatically."""
    result = quiet_fit(product_model, synthetic(product_model, 4), vary=["a", "k"])
    assert result.unreliable_wald == {} and result.profiles == {}
    wald = {n: result.params[n].user_data["ci95"] for n in ("a", "k")}
    for name in ("a", "k"):
        prof = result.profile(name)["ci95"]
        assert prof[0] == pytest.approx(wald[name][0], rel=0.10)
        assert prof[1] == pytest.approx(wald[name][1], rel=0.10)


def test_readme_default_fit_is_well_posed():
    """README main command (arnida2010 sphere, mouse_tumour, no vary, the default population priors on the
    tumour parameters): 4 parameters chosen, converged with a covariance, none unidentifiable, every Wald
    interval reliable, 51.4 % within 2-fold and DE24 0.2327 %ID [0.102, 0.664] (6.5-fold; covariance draws,
    seed 0) — the figures `nanopk fit arnida2010_peg_au_sphere_50nm --model mouse_tumour` prints (to 0.1 %
    for DE24, 3 % for its interval's ends, drawn from the covariance)."""
    result = quiet_fit("mouse_tumour", "arnida2010_peg_au_sphere_50nm")
    assert result.success and not result.flags["unidentifiable"] and result.unreliable_wald == {}
    assert result.selection.chosen == ["K50_spleen", "P_tumour", "Kmax_liver", "Kmax_tumour"]
    assert result.options["prior_kind"] == "population" and set(result.priors) == {"P_tumour", "Kmax_tumour"}
    assert result.metrics["frac_within_2fold"] == pytest.approx(18 / 35)
    assert result.metrics["aic"] == pytest.approx(27.72, abs=0.01)
    de = nanopk.delivery_efficiency(result)
    assert de["DE24"]["value"] == pytest.approx(0.2327, rel=1e-3)
    assert de["DE24"]["ci95"] == pytest.approx([0.102, 0.664], rel=0.03)


def test_readme_fit_without_priors_is_well_posed():
    """README main command with --no-prior (priors=None, maximum likelihood): converged with a covariance, no
    chosen parameter unidentifiable, and DE24's interval narrower than 10-fold (before the selection: 10
    parameters, 8 unidentifiable, DE24 [0.069, 7.47], 108-fold)."""
    result = quiet_fit("mouse_tumour", "arnida2010_peg_au_sphere_50nm", priors=None)
    assert result.success and not result.flags["unidentifiable"]
    assert 1 <= len(result.selection.chosen) <= 35 // 5
    assert result.metrics["aic"] < 37.25  # the 10-parameter fit's AIC
    de = nanopk.delivery_efficiency(result, n_samples=100)
    lo, hi = de["DE24"]["ci95"]
    assert lo < de["DE24"]["value"] < hi and hi / lo < 10
    # Kmax_tumour's Wald interval ends on its bound, so DE24 comes from the prediction profile, whose
    # ends lie at Δχ² = 3.84 × the residual scale (checked on its own table: inside < threshold < outside).
    assert de["DE24"]["ci_method"] == "prediction profile" and "Kmax_tumour" in result.unreliable_wald
    from nanopk.delivery import prediction_profile

    prof = prediction_profile(result, "DE24")
    table, thr = prof["table"], prof["threshold"]
    inside = table[(table["value"] > lo) & (table["value"] < hi)]
    assert (inside["delta_chisqr"] < thr).all() and (table["delta_chisqr"] >= thr).sum() == 2


def test_when_no_subset_is_determined_the_last_fit_is_reported():
    """Hirn 2011 80 nm citrate-Au in rats (14 points): liver and spleen uptake both run to their upper bound
    (uptake as fast as the model allows), so no subset is determined; the fit of the last parameter is reported,
    with the note and the at-bound flag, instead of no result at all."""
    import nanopk

    result = nanopk.fit(nanopk.load_model("rat_pbpk"), "hirn2011_au_80nm", warn=False)
    assert result.selection.chosen == ["Kmax_spleen"]
    assert any("no subset of the candidates is determined" in st.get("note", "") for st in result.selection.steps)
    assert "Kmax_spleen" in [name for name, _ in result.flags.get("at_bound", [])]
    assert result.status.optimizer.converged
