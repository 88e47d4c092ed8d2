"""Profile-likelihood and posterior-sampling (emcee) 95 % intervals agree on a well-posed fit.

The case: ``two_compartment_iv`` at its defaults (k10 0.2, k12 0.5, k21 0.1 /h), central
%ID at 8 times × 3 replicates with log-normal error σ = 0.15 (seed 7), k10 and k12 fitted
with the defaults (log-scale parameters, σ estimated).  ``FitResult.mcmc`` samples the
same likelihood with a flat prior on the log-scale parameters, so for a near-Gaussian
likelihood the marginal 2.5–97.5 % posterior quantiles and the profile-likelihood
interval must coincide up to Monte Carlo error.

Tolerance: each end within 15 % of the interval's log-width.  With 8 walkers × 800 kept
steps and an autocorrelation time of about 21 steps (emcee's estimate, seen) there are
~300 independent draws; the standard error of a 2.5 % quantile is then about 0.14 σ,
i.e. under 4 % of the 3.92 σ width, so 15 % is about 4 standard errors.  Seen: profile
k10 [0.208, 0.2521] vs MCMC [0.2051, 0.2516] (ends −7.3 %, −1.1 % of the width), k12
[0.4177, 0.5386] vs [0.4173, 0.5442] (−0.4 %, +4.1 %).
"""
import math
import warnings

import numpy as np
import pandas as pd
import pytest

import nanopk
from nanopk.fit import FitWarning

pytest.importorskip("emcee")

VARY = ["k10", "k12"]
TIMES = [0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 12.0, 24.0]


@pytest.fixture(scope="module")
def result():
    model = nanopk.load_model("two_compartment_iv")
    curve = model.simulate(TIMES, dose=100.0)
    rng = np.random.default_rng(7)
    rows = [(t, "central", curve.loc[t, "central"] * math.exp(0.15 * rng.standard_normal())) for t in TIMES for _ in range(3)]
    data = pd.DataFrame(rows, columns=["time_h", "tissue", "value"])
    data.attrs.update(name="sim", dose_ug=100.0)
    fit = nanopk.fit(model, data, vary=VARY)
    for name in VARY:
        fit.profile(name)
    with warnings.catch_warnings():
        # 1000 steps are ~45 autocorrelation times, under emcee's advice of 50: the quantiles'
        # Monte Carlo error is in the tolerance (module docstring); the warning says so.
        warnings.filterwarnings("ignore", message="MCMC: the chain", category=FitWarning)
        warnings.filterwarnings("ignore", message="The chain is shorter")
        fit.mcmc(steps=1000, nwalkers=8, burn=200, progress=False, seed=1)
    return fit


@pytest.mark.slow
@pytest.mark.parametrize("name", VARY)
def test_profile_and_mcmc_intervals_agree(result, name):
    """The profile-likelihood 95 % interval and the emcee 2.5-97.5 % quantiles agree to 15 % of the log-width at each end."""
    assert result.success
    prof = result.profiles[name]
    assert prof["open"] == []  # closed on both sides: a well-posed case
    lo, hi = prof["ci95"]
    width = math.log(hi / lo)
    q_lo, q_hi = np.percentile(result.mcmc_chain[name], [2.5, 97.5])
    assert abs(math.log(q_lo / lo)) <= 0.15 * width, (name, lo, q_lo)
    assert abs(math.log(q_hi / hi)) <= 0.15 * width, (name, hi, q_hi)
    # The posterior median sits at the maximum-likelihood estimate (within 10 % of the width).
    assert abs(math.log(np.median(result.mcmc_chain[name]) / result.values[name])) <= 0.10 * width


@pytest.mark.slow
def test_chain_is_usable(result):
    """The emcee chain has 8 × 800 kept draws and an acceptance fraction in the usual 0.2-0.9 range."""
    mc = result.mcmc_result
    assert len(result.mcmc_chain) == 8 * 800
    assert 0.2 <= float(np.mean(mc.acceptance_fraction)) <= 0.9
