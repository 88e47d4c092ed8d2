"""Coverage of the default fit's 95 % intervals over seeds, on data simulated from known parameters.

Data are drawn from ``mouse_pbpk`` at its default parameters with the fit's own default
error model (``error_model="log"``: ln y = ln f + σ ε, ε ~ N(0, 1), σ = 0.3, estimated
by the fit through ``scale_covar``), 5 organs × 5 times = 25 points per seed.  Each seed
is fitted with the defaults, and the interval the report prints (``FitResult.ci95``:
the profile likelihood where the fit computed one, else the Wald interval on the log
scale) is checked against the true value.

Band: with N = 40 seeds and true coverage 0.95, P(X ≤ 31) = 1.3e-4 (scipy.stats.binom),
so requiring ≥ 32 of 40 (0.8) fails a correct method about once in 8 000 runs, while
an interval that covers only 90 % fails it with probability 0.015 and one at 80 % about
half the time.  The upper end (1.0) cannot fail by itself, so intervals that are too
wide are caught separately: the standardised errors z = (ln θ̂ − ln θ)/se(ln θ) must have
an SD in [0.665, 1.36], the 0.1 %/99.9 % band of a χ²₃₉ SD for unit-variance z (the
small-sample t inflation, sqrt(23/21) = 1.05, is inside it).
"""
import math
import warnings

import numpy as np
import pandas as pd
import pytest

import nanopk

N_SEEDS = 40
SIGMA = 0.3
VARY = ["Kmax_liver", "Kmax_spleen"]
TIMES = [0.5, 2.0, 8.0, 24.0, 72.0]
TISSUES = ["blood", "liver", "spleen", "kidney", "lung"]
DOSE_UG = 17.0


def simulated(model, truth_curve, seed):
    """25 log-normal observations (σ = 0.3) of the true %ID curves, seed ``seed``."""
    rng = np.random.default_rng(seed)
    rows = [(t, tissue, truth_curve.loc[t, tissue] * math.exp(SIGMA * rng.standard_normal()))
            for t in TIMES for tissue in TISSUES]
    df = pd.DataFrame(rows, columns=["time_h", "tissue", "value"])
    df.attrs.update(name=f"seed{seed}", dose_ug=DOSE_UG)
    return df


@pytest.fixture(scope="module")
def runs():
    model = nanopk.load_model("mouse_pbpk")
    truth = {name: model.parameters[name].value for name in VARY}
    curve = model.simulate(TIMES, dose=DOSE_UG)
    out = []
    for seed in range(N_SEEDS):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # per-seed fit warnings are not the claim here
            result = nanopk.fit(model, simulated(model, curve, seed), vary=VARY)
        out.append((result, truth))
    return out


@pytest.mark.slow
def test_default_intervals_cover_the_truth_at_the_nominal_rate(runs):
    """The report's 95 % interval covers each true parameter in at least 32 of 40 seeds (binomial band, see module)."""
    assert all(r.success for r, _ in runs)
    for name in VARY:
        hits = sum(r.ci95(name)[0] <= truth[name] <= r.ci95(name)[1] for r, truth in runs)
        assert 32 <= hits <= N_SEEDS, (name, hits)


@pytest.mark.slow
def test_default_intervals_are_not_too_wide(runs):
    """Standardised log-scale errors have an SD in [0.665, 1.36] (χ²₃₉ 0.1 %–99.9 % band): intervals are not inflated."""
    for name in VARY:
        z = []
        for r, truth in runs:
            lo, hi = r.ci95(name)
            se = (math.log(hi) - math.log(lo)) / (2 * 1.959963984540054)
            z.append((math.log(r.values[name]) - math.log(truth[name])) / se)
        sd = float(np.std(z, ddof=1))
        assert 0.665 <= sd <= 1.36, (name, sd)
        # No bias either: the mean z of 40 unit-variance draws lies within ±3/sqrt(40) = ±0.47.
        assert abs(float(np.mean(z))) <= 0.47, (name, float(np.mean(z)))
