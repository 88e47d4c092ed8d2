"""Virtual populations: log-normal draws, their outputs and prediction bands against closed forms."""
from __future__ import annotations

import math

import numpy as np
import pytest

import nanopk
from nanopk.population import draw_population, population_band, virtual_population
from nanopk.sensitivity import SensitivityError


@pytest.fixture(scope="module")
def one():
    return nanopk.load_model("one_compartment_iv")


def _k_name(model):
    return next(n for n in model.parameters if n.lower().startswith("k"))


def test_draws_are_log_normal_with_the_stated_spread(one):
    """ln k of 4000 draws has mean ln k̂ and SD s (s = 0.3) to 3 standard errors."""
    k = _k_name(one)
    draws = draw_population(one, {k: 0.3}, n=4000, seed=2)[k]
    ln = np.log(draws.to_numpy())
    assert abs(ln.mean() - math.log(one.parameters[k].value)) < 3 * 0.3 / math.sqrt(4000)
    assert ln.std(ddof=1) == pytest.approx(0.3, rel=3 * math.sqrt(1 / (2 * 3999)))


def test_population_band_is_the_closed_form_quantile_of_a_mono_exponential(one):
    """C(t) = C0·exp(−k t) is monotone in k, so the 5th/95th percentile of C(t) over the population is C at the
    95th/5th percentile of k: the band equals the closed form at the draws' own quantiles to 1e-5 relative."""
    k = _k_name(one)
    pop = draw_population(one, {k: 0.4}, n=400, seed=1)
    times = np.array([0.5, 2.0, 6.0])
    band = population_band(one, pop, times, workers=1)
    obs = one.observable_names[0]
    base = one.simulate(times)[obs].to_numpy()
    k0 = one.parameters[k].value
    k95, k5 = np.percentile(pop[k], 95), np.percentile(pop[k], 5)
    # percentiles of a monotone decreasing transform: exact at order statistics, interpolated between them
    np.testing.assert_allclose(band[(obs, "p5")].to_numpy(), base * np.exp(-(k95 - k0) * times), rtol=2e-3)
    np.testing.assert_allclose(band[(obs, "p95")].to_numpy(), base * np.exp(-(k5 - k0) * times), rtol=2e-3)
    assert np.all(band[(obs, "p5")] < band[(obs, "p50")]) and np.all(band[(obs, "p50")] < band[(obs, "p95")])


def test_virtual_population_outputs_equal_single_simulations(one):
    """Each virtual animal's output equals a simulation of that animal alone, to 1e-5 relative (the population runs at
    the global methods' rtol 1e-7, simulate() at its default 1e-6)."""
    k = _k_name(one)
    obs = one.observable_names[0]
    table = virtual_population(one, {k: 0.5}, outputs=[f"{obs}@2h"], n=6, seed=3, workers=1)
    for _, row in table.iterrows():
        alone = one.simulate([2.0], params={k: row[k]})[obs].iloc[-1]
        assert row[f"{obs}@2h"] == pytest.approx(alone, rel=1e-5)
    s = table.attrs["summary"][f"{obs}@2h"]
    assert s["p5"] <= s["median"] <= s["p95"]


def test_bad_spreads_are_refused_with_the_field(one):
    """An unknown parameter, a non-positive spread and n < 2 are refused, naming what was wrong."""
    k = _k_name(one)
    with pytest.raises(SensitivityError, match=r"spread.*'kk'.*is not one"):
        draw_population(one, {"kk": 0.3})
    with pytest.raises(SensitivityError, match=r"spread\['%s'\].*positive SD of ln p" % k):
        draw_population(one, {k: -1.0})
    with pytest.raises(SensitivityError, match=r"n.*an integer ≥ 2"):
        draw_population(one, {k: 0.3}, n=1)


def test_population_plot_draws_the_band_and_median(one):
    """The figure's median line is the band's p50 column, at the band's times."""
    pytest.importorskip("matplotlib")
    from nanopk.plots import plot_population

    pop = draw_population(one, {_k_name(one): 0.3}, n=50, seed=0)
    band = population_band(one, pop, [0.5, 1, 2, 4], observables=["central"], workers=1)
    ax = plot_population(band).axes[0]
    line = next(ln for ln in ax.lines if ln.get_gid() == "median:central")
    np.testing.assert_allclose(line.get_xdata(), [0.5, 1, 2, 4])
    np.testing.assert_allclose(line.get_ydata(), band[("central", "p50")].to_numpy())


def test_population_cli_prints_the_summary_and_refuses_a_bad_spread(capsys, tmp_path):
    """`nanopk population` prints each output's median and 5–95 % range as virtual_population gives them,
    writes the band figure, and a spread that is not NAME=NUMBER exits 2 naming --spread."""
    pytest.importorskip("matplotlib")
    from nanopk.cli import main

    assert main(["population", "one_compartment_iv", "--spread", "k10=0.3", "--n", "20", "--output", "central@2h",
                 "--times", "0.5,1,2", "--plot", str(tmp_path / "band.png")]) == 0
    out = capsys.readouterr().out
    table = virtual_population(nanopk.load_model("one_compartment_iv"), {"k10": 0.3}, outputs=["central@2h"], n=20,
                               seed=0, workers=1)
    s = table.attrs["summary"]["central@2h"]
    assert f"median {s['median']:.4g}" in out and f"{s['p5']:.4g}–{s['p95']:.4g}" in out
    assert (tmp_path / "band.png").read_bytes()[:4] == b"\x89PNG"
    assert main(["population", "one_compartment_iv", "--spread", "k10=wide"]) == 2
    assert "--spread: 'k10=wide' is not valid; expected NAME=SD of ln p" in capsys.readouterr().err
