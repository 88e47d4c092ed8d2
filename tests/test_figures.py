"""The figures hold the data they claim: arrays and labels read back from the Matplotlib artists."""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import nanopk
from nanopk.errors import FitError
from nanopk.fit import FitWarning
from nanopk.fit.plot import fit_title, mean_band, plot_compare, plot_fit, plot_gof, plot_mcmc, plot_profiles, save_figures

pytest.importorskip("matplotlib")

TIMES = [0.5, 2, 6, 24, 72]
TRUE = {"Kmax_liver": 4.0, "Kmax_spleen": 0.6}


def synthetic(model, params, seed, cv=0.2, name="study"):
    """Blood, liver and spleen %ID with log-normal noise (CV ``cv``, reported as SD), one row per time."""
    rng = np.random.default_rng(seed)
    sim = model.simulate(TIMES, params=params)
    rows = []
    for tissue in ("blood", "liver", "spleen"):
        for t, v in zip(TIMES, sim[tissue]):
            rows.append({"time_h": t, "tissue": tissue, "value": v * float(np.exp(rng.normal(0, cv))), "sd": v * cv})
    df = pd.DataFrame(rows)
    df.attrs.update(name=name, dose_ug=float(model.parameters["dose"].value), body_weight_g=20.0)
    return df


@pytest.fixture(scope="module")
def result():
    model = nanopk.load_model("mouse_pbpk")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return nanopk.fit(model, synthetic(model, TRUE, seed=3), vary=["Kmax_liver", "Kmax_spleen"])


def _by_gid(fig, prefix):
    out = {}
    for ax in fig.axes:
        for artist in [*ax.lines, *ax.collections]:
            gid = artist.get_gid() if hasattr(artist, "get_gid") else None
            if gid and gid.startswith(prefix):
                out.setdefault(gid, artist)  # an errorbar's data line (Line2D) first, not its bar collection
    return out


def test_fit_figure_plots_the_observations_and_the_fitted_curve(result):
    """Every observed point of every tissue is drawn at its (time, value), and the fitted line
    equals result.simulate on the plotted grid (to 1e-9 relative)."""
    fig = plot_fit(result, band=False)
    pred = result.predictions
    name = result.objective.datasets[0].name
    for tissue in ("blood", "liver", "spleen"):
        x, y = _by_gid(fig, f"observed:{name}:{tissue}")[f"observed:{name}:{tissue}"].get_data()
        rows = pred[pred["observable"] == tissue]
        np.testing.assert_allclose(x, rows["time_h"].to_numpy(dtype=float), rtol=0)
        np.testing.assert_allclose(y, rows["observed"].to_numpy(dtype=float), rtol=0)
        line = _by_gid(fig, f"fitted:{name}:{tissue}")[f"fitted:{name}:{tissue}"]
        grid, curve = line.get_data()
        sim = result.simulate(grid)[tissue].to_numpy()
        np.testing.assert_allclose(curve, np.maximum(sim, 1e-6), rtol=1e-9)


def test_fit_figure_axes_are_shared_and_titled_with_the_status(result):
    """Panels share x and y (tissues compare at a glance); the title states optimiser, covariance
    and adequacy, not a bare 'success'."""
    fig = plot_fit(result, band=False)
    shown = [ax for ax in fig.axes if ax.get_visible() and ax.get_title()]
    assert [ax.get_title() for ax in shown] == ["blood", "liver", "spleen"]
    assert len({ax.get_ylim() for ax in shown}) == 1 and len({ax.get_xlim() for ax in shown}) == 1
    title = fig._suptitle.get_text()
    assert title == fit_title(result)
    assert title.startswith("mouse_pbpk: converged, covariance ok, ") and "within 2-fold" in title
    assert "success" not in title


def test_band_brackets_the_fitted_mean_and_narrows_with_precise_data(result):
    """The 95 % band of the fitted mean contains the fitted curve at every grid time (the
    draws are centred on the estimate) and is not degenerate (upper > lower somewhere)."""
    grid = np.geomspace(0.5, 72, 40)
    name = result.objective.datasets[0].name
    band = mean_band(result, name, grid, n_draws=60, seed=1)
    fitted = result.simulate(grid)
    for tissue in ("liver", "spleen"):
        lo, hi = band[tissue]
        y = fitted[tissue].to_numpy()
        assert np.all(lo <= y * (1 + 1e-6)) and np.all(hi >= y * (1 - 1e-6))
        assert np.max(hi / np.maximum(lo, 1e-12)) > 1.01


def test_gof_panels_hold_observed_predicted_and_residuals(result):
    """Observed vs predicted plots every positive uncensored point; both residual panels plot
    the fit's own weighted residuals against time and against prediction."""
    fig = plot_gof(result)
    pred = result.predictions
    name = pred["dataset"].iloc[0]
    arts = _by_gid(fig, "")
    x, y = arts[f"ovp:{name}"].get_data()
    np.testing.assert_allclose(x, pred["observed"].to_numpy(dtype=float))
    np.testing.assert_allclose(y, pred["predicted"].to_numpy(dtype=float))
    t, r = arts[f"res_time:{name}"].get_data()
    np.testing.assert_allclose(t, pred["time_h"].to_numpy(dtype=float))
    np.testing.assert_allclose(r, pred["residual"].to_numpy(dtype=float))
    labels = [line.get_label() for line in fig.axes[0].lines]
    assert {"1:1", "2-fold", "3-fold"} <= set(labels)


def test_profile_figure_plots_the_profile_table_and_its_threshold(result):
    """The curve is the profile's own (value, Δχ²) table; the dashed line sits at its threshold."""
    fig = plot_profiles(result, names=["Kmax_liver"])
    prof = result.profiles["Kmax_liver"]
    line = _by_gid(fig, "profile:Kmax_liver")["profile:Kmax_liver"]
    x, y = line.get_data()
    np.testing.assert_allclose(x, prof["table"]["value"].to_numpy())
    np.testing.assert_allclose(y, prof["table"]["delta"].to_numpy())
    thresholds = [ln.get_ydata()[0] for ln in fig.axes[0].lines if ln.get_label() == "95 % threshold"]
    assert thresholds == [pytest.approx(prof["threshold"], rel=1e-12)]


def test_mcmc_trace_plots_the_chain(result):
    """Without a chain the trace plot refuses, saying what to run; after a short emcee run each
    parameter's trace is its chain column, sample by sample."""
    pytest.importorskip("emcee")
    if result.mcmc_result is None:
        with pytest.raises(FitError, match=r"no MCMC chain to plot: run result.mcmc\(\) first"):
            plot_mcmc(result)
    with pytest.warns(FitWarning, match="too short"):  # a 60-step chain is for the figure, not for inference
        result.mcmc(steps=60, nwalkers=8, burn=20, progress=False, seed=0)
    fig = plot_mcmc(result)
    chain = result.mcmc_chain
    for name in ("Kmax_liver", "Kmax_spleen"):
        line = _by_gid(fig, f"trace:{name}")[f"trace:{name}"]
        np.testing.assert_array_equal(line.get_data()[1], chain[name].to_numpy())


def test_save_figures_adds_the_mcmc_trace_and_corner_plot(result, tmp_path):
    """After an MCMC run, --plot's figure set holds the trace (-mcmc) and the corner plot (-corner) as PNG files."""
    pytest.importorskip("emcee")
    pytest.importorskip("corner")
    if result.mcmc_result is None:
        with pytest.warns(FitWarning):
            result.mcmc(steps=60, nwalkers=8, burn=20, progress=False, seed=0)
    written = save_figures(result, tmp_path / "f.png")
    names = [p.name for p in written]
    assert {"f-mcmc.png", "f-corner.png"} <= set(names)
    for p in written:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_delivery_cli_plot(tmp_path, capsys):
    """`nanopk delivery DATASET --model M --plot PATH` writes the delivery figure; with a fit JSON it is refused
    before anything is read (a JSON holds no parameter draws)."""
    from nanopk.cli import main

    path = tmp_path / "de.png"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        status = main(["delivery", "arnida2010_peg_au_sphere_50nm", "--model", "mouse_tumour", "--vary", "Kmax_tumour",
                       "--plot", str(path)])
    assert status == 0 and path.read_bytes()[:4] == b"\x89PNG"
    fake = tmp_path / "fit.json"
    fake.write_text("{}")
    assert main(["delivery", str(fake), "--plot", str(tmp_path / "x.png")]) == 2
    assert "--plot needs the fit itself: give the dataset with --model, not a fit JSON" in capsys.readouterr().err


def test_save_figures_writes_fit_gof_and_profiles(result, tmp_path):
    """The CLI's --plot PATH writes the fit, its GOF panels and (when profiled) the profiles, as PNG files."""
    result.profile("Kmax_liver")
    written = save_figures(result, tmp_path / "fit.png")
    # the first three always; -mcmc/-corner follow when an earlier test ran the chain on this shared fit
    assert [p.name for p in written][:3] == ["fit.png", "fit-gof.png", "fit-profiles.png"]
    for p in written:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_compare_figure_overlays_groups_on_shared_axes():
    """Both groups' data and fitted curves are in the same panel per tissue, on shared y axes."""
    model = nanopk.load_model("mouse_pbpk")
    data = {"PEG": synthetic(model, {"Kmax_liver": 1.0, "Kmax_spleen": 0.15}, seed=1, name="PEG"),
            "bare": synthetic(model, TRUE, seed=2, name="bare")}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cmp = nanopk.compare(model, data, vary=["Kmax_liver", "Kmax_spleen"], n_samples=0)
    fig = plot_compare(cmp)
    tissue_axes = [ax for ax in fig.axes if ax.get_title() in ("blood", "liver", "spleen")]
    assert len(tissue_axes) == 3
    for ax in tissue_axes:
        gids = {a.get_gid() for a in ax.lines}
        assert {f"fitted:PEG:{ax.get_title()}", f"fitted:bare:{ax.get_title()}"} <= gids
    assert len({ax.get_ylim() for ax in tissue_axes}) == 1
    liver = next(ax for ax in tissue_axes if ax.get_title() == "liver")
    peg_line = next(a for a in liver.lines if a.get_gid() == "fitted:PEG:liver")
    grid, y = peg_line.get_data()
    np.testing.assert_allclose(y, np.maximum(cmp.fits["PEG"].simulate(grid)["liver"].to_numpy(), 1e-6), rtol=1e-9)


def test_delivery_plot_shows_the_measured_tumour_points():
    """Given a fit of a tumour study, the delivery plot draws the measured tumour %ID (every
    uncensored tumour row at its time) beside the model's curve."""
    from nanopk.delivery import plot_delivery

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = nanopk.fit(nanopk.load_model("mouse_tumour"), nanopk.read_dataset("arnida2010_peg_au_sphere_50nm"),
                         vary=["Kmax_tumour"])
    ax = plot_delivery(fit, n_samples=0)
    measured = next(line for line in ax.lines if line.get_gid() == "tumour:observed")
    rows = fit.predictions[(fit.predictions["observable"] == "tumour") & ~fit.predictions["censored"].astype(bool)]
    x, y = measured.get_data()
    np.testing.assert_allclose(x, rows["time_h"].to_numpy(dtype=float))
    np.testing.assert_allclose(y, rows["observed"].to_numpy(dtype=float))
    assert any(line.get_gid() == "tumour:model" for line in ax.lines)
