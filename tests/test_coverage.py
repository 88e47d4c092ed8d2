"""Coverage of the default fit's 95 % intervals over 100 seeds, on data simulated from known parameters (issue 21).

Data are drawn from ``two_compartment_iv`` at its default parameters (k10 0.2 /h, k12
0.5 /h; k21 and V1 held at theirs) with the fit's own default error model
(``error_model="log"``: ln y = ln f + σ ε, ε ~ N(0, 1), σ = 0.3, estimated by the fit
through ``scale_covar``): central and peripheral %ID at 8 times, 2 animals each, 32
points per seed.  Each seed is fitted with the defaults (only ``vary`` given), reusing
one compiled model, and the interval the report prints (``FitResult.ci95``: the profile
likelihood where the fit computed one, else the Wald interval on the log scale) is
checked against the true value.  The small model keeps 100 fits at about 0.3 s each.

Band: the issue asks for ≥ 90 of 100.  A correct 95 % interval fails that with
probability 0.011 (scipy.stats.binom.cdf(89, 100, 0.95)); with 30 residual degrees of
freedom and σ estimated, z = 1.96 instead of t₃₀ gives 94.1 % in the linear case, still
well above 90.  An interval covering 80 % fails it with probability 0.994.  The upper
end cannot fail by itself, so intervals that are too wide are caught separately: the
standardised errors z = (ln θ̂ − ln θ)/se(ln θ) must have an SD in [0.786, 1.22], the
0.1 %/99.9 % band of the SD of 100 unit-variance normals (χ²₉₉; the small-sample t
inflation, sqrt(30/28) = 1.035, is inside it).
"""
import math
import warnings

import numpy as np
import pandas as pd
import pytest

import nanopk

N_SEEDS = 100
SIGMA = 0.3
VARY = ["k10", "k12"]
TIMES = [0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 24.0]
TISSUES = ["central", "peripheral"]
ANIMALS = 2
DOSE_UG = 100.0


def simulated(truth_curve, seed):
    """32 log-normal observations (σ = 0.3) of the true %ID curves, seed ``seed``."""
    rng = np.random.default_rng(seed)
    rows = [(t, tissue, truth_curve.loc[t, tissue] * math.exp(SIGMA * rng.standard_normal()))
            for t in TIMES for tissue in TISSUES for _ in range(ANIMALS)]
    df = pd.DataFrame(rows, columns=["time_h", "tissue", "value"])
    df.attrs.update(name=f"seed{seed}", dose_ug=DOSE_UG)
    return df


@pytest.fixture(scope="module")
def runs():
    model = nanopk.load_model("two_compartment_iv")  # compiled once, every seed's fit reuses it
    truth = {name: model.parameters[name].value for name in VARY}
    curve = model.simulate(TIMES, dose=DOSE_UG)
    out = []
    for seed in range(N_SEEDS):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # per-seed fit warnings are not the claim here
            out.append(nanopk.fit(model, simulated(curve, seed), vary=VARY))
    return out, truth


@pytest.mark.slow
def test_default_intervals_cover_the_truth_in_at_least_90_of_100_seeds(runs):
    """The report's 95 % interval covers each true parameter in at least 90 of 100 seeds (issue 21; binomial band, see module)."""
    results, truth = runs
    assert all(r.success for r in results)
    for name in VARY:
        hits = sum(r.ci95(name)[0] <= truth[name] <= r.ci95(name)[1] for r in results)
        assert 90 <= hits <= N_SEEDS, (name, hits)


@pytest.mark.slow
def test_default_intervals_are_not_too_wide(runs):
    """Standardised log-scale errors have an SD in [0.786, 1.22] (χ²₉₉ 0.1 %–99.9 % band) and mean within ±0.3: no inflated, no biased intervals."""
    results, truth = runs
    for name in VARY:
        z = []
        for r in results:
            lo, hi = r.ci95(name)
            se = (math.log(hi) - math.log(lo)) / (2 * 1.959963984540054)
            z.append((math.log(r.values[name]) - math.log(truth[name])) / se)
        sd = float(np.std(z, ddof=1))
        assert 0.786 <= sd <= 1.22, (name, sd)
        # No bias either: the mean z of 100 unit-variance draws lies within ±3/sqrt(100) = ±0.3.
        assert abs(float(np.mean(z))) <= 0.3, (name, float(np.mean(z)))
