"""Publication figures of fits and comparisons, in one style.

Every figure is built on :class:`matplotlib.figure.Figure` directly, not pyplot, so
plotting needs no display and leaves pyplot's global state alone; every function takes
``path`` and saves in the format of its suffix (PNG, SVG, PDF).  Matplotlib is optional
(``pip install 'nanopk[plot]'``) and imported only when a figure is drawn.

- :func:`plot_fit`: one panel per tissue on shared log axes — observed mean ± SD,
  censored rows as open triangles at their limit, the fitted time course, and the 95 %
  band of the fitted mean from the parameter covariance;
- :func:`plot_gof`: goodness of fit — observed against predicted with the 1:1, 2-fold
  and 3-fold lines, and the weighted residuals against time and against the prediction;
- :func:`plot_profiles`: profile-likelihood curves, Δχ² against the parameter, with the
  95 % threshold;
- :func:`plot_mcmc`: MCMC traces per parameter (and the corner plot with the ``corner``
  package, if installed);
- :func:`plot_compare`: two groups overlaid per tissue on shared axes, and the forest
  plot of the parameter ratios.

Titles say what the fit reports — the optimiser's verdict, the covariance step and the
adequacy with its within-2-fold fraction — never a bare "success" (a converged fit can
still miss the data).  The covariance band is the uncertainty of the fitted mean, not a
prediction interval for a new animal: the figure's legend says so.
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["plot_fit", "plot_gof", "plot_profiles", "plot_mcmc", "plot_compare", "fit_title", "save_figures"]

#: Parameter sets drawn from the covariance for the band of the fitted mean.
BAND_DRAWS = 100
#: The 2.5 and 97.5 percentiles of the drawn time courses bound the 95 % band.
BAND_PERCENTILES = (2.5, 97.5)
#: Floor of a plotted %ID on the log axis (a curve that reaches zero is drawn at it).
Y_FLOOR = 1e-6


def _matplotlib():
    try:
        import matplotlib  # noqa: F401
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError("plots need matplotlib: pip install 'nanopk[plot]'") from None
    return Figure


def _save(fig, path):
    if path is not None:
        fig.savefig(path, dpi=150)
    return fig


def fit_title(result) -> str:
    """``"<model>: converged, covariance ok, adequate (57 % within 2-fold)"``: what the fit reports."""
    status = getattr(result, "status", None)
    name = result.model.name
    if status is None:
        return f"{name}: {'converged' if result.success else 'NOT converged / unreliable'}"
    o, c, a = status.optimizer, status.covariance, status.adequacy
    within = f"{100 * a.frac_within_2fold:.0f} % within 2-fold" if math.isfinite(a.frac_within_2fold) else "no 2-fold figure"
    return f"{name}: {o.label.lower()}, covariance {c.state}, {a.verdict} ({within})"


def _time_grid(pred, n_grid):
    t_pos = pred.loc[pred["time_h"] > 0, "time_h"]
    t_lo = float(t_pos.min()) / 2 if len(t_pos) else 0.05
    t_hi = float(pred["time_h"].max()) * 1.2
    return np.geomspace(t_lo, t_hi, n_grid)


def mean_band(result, dataset, times, n_draws: int = BAND_DRAWS, seed: int = 0):
    """The 95 % band of the fitted mean time courses of ``dataset`` at ``times``.

    Parameter vectors are drawn from N(x̂, Σ) on the fit's internal (log) scale — the
    same draws as :meth:`FitResult.sample_parameters` — and each is simulated; the band
    is the :data:`BAND_PERCENTILES` of the curves, per observable.

    Returns
    -------
    dict or None
        ``{observable: (low, high)}``; ``None`` when the fit has no covariance or no draw
        could be simulated.
    """
    from ..errors import NanopkError

    objective = result.objective
    cov = result.covariance
    if cov is None or cov.covar is None:
        return None
    d = next(x for x in objective.datasets if x.name == dataset)
    rng = np.random.default_rng(seed)
    draws = np.clip(rng.multivariate_normal(cov.x, cov.covar, size=n_draws, method="svd"),
                    objective.xmin, objective.xmax)
    model = objective.model_of(d)
    curves = []
    for x in draws:
        try:
            sim = model.simulate(times, params=objective.overrides(x, d), dose=d.dose_ug,
                                 rtol=objective.rtol, atol=objective.atol, backend=objective.backend)
        except NanopkError:  # a draw the solver refuses is left out of the band, not the figure
            continue
        columns = list(sim.columns)
        curves.append(sim.to_numpy(dtype=float))  # one array per draw: column access copies the frame's attrs
    if not curves:
        return None
    lo, hi = np.percentile(np.array(curves), BAND_PERCENTILES, axis=0)
    return {col: (lo[:, k], hi[:, k]) for k, col in enumerate(columns)}


def plot_fit(result, path=None, n_grid: int = 200, ncols: int = 4, figsize=None, band: bool = True,
             n_draws: int = BAND_DRAWS, seed: int = 0):
    """The fit: one panel per tissue, shared log axes, data ± SD, model and its 95 % band.

    Observed mean ± SD are markers (censored rows: open triangles at their limit), the
    fitted time course is the line and, with ``band``, the shaded region is the 95 %
    band of the fitted mean from ``n_draws`` parameter sets drawn from the covariance
    (:func:`mean_band`).  Each dataset has its own colour.  Axes are shared so tissues
    compare at a glance.  The title states the fit's status (:func:`fit_title`).

    Parameters
    ----------
    path : str or Path, optional
        Save the figure there (format from the suffix).
    n_grid : int
        Points of each predicted time course.
    band : bool
        Draw the 95 % band of the fitted mean (needs a covariance).

    Returns
    -------
    matplotlib.figure.Figure
    """
    Figure = _matplotlib()
    pred = result.predictions
    tissues = list(dict.fromkeys(pred["observable"]))
    ncols = max(1, min(ncols, len(tissues)))
    nrows = math.ceil(len(tissues) / ncols)
    fig = Figure(figsize=figsize or (3.0 * ncols, 2.6 * nrows + 0.4), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, sharex=True, sharey=True).ravel()
    datasets = result.objective.datasets
    colours = [f"C{i % 10}" for i in range(len(datasets))]
    grid = _time_grid(pred, n_grid)
    curves = {d.name: result.simulate(grid, dataset=d.name) for d in datasets}
    bands = {d.name: mean_band(result, d.name, grid, n_draws, seed) for d in datasets} if band else {}
    for k, (ax, tissue) in enumerate(zip(axes, tissues)):
        for d, colour in zip(datasets, colours):
            rows = pred[(pred["dataset"] == d.name) & (pred["observable"] == tissue)]
            if rows.empty:
                continue
            ok = ~rows["censored"].astype(bool)
            sd = rows.loc[ok, "sd"].to_numpy(dtype=float)
            y = rows.loc[ok, "observed"].to_numpy(dtype=float)
            # a log axis cannot show the lower whisker below zero: cap it just above zero
            lower = np.where(np.isfinite(sd), np.minimum(sd, y * 0.999), 0.0)
            upper = np.where(np.isfinite(sd), sd, 0.0)
            ax.errorbar(rows.loc[ok, "time_h"].to_numpy(dtype=float), y, yerr=[lower, upper], fmt="o", ms=4, color=colour, capsize=2,
                        label=f"{d.name}: observed" if k == 0 else None, gid=f"observed:{d.name}:{tissue}")
            if (~ok).any():
                ax.plot(rows.loc[~ok, "time_h"].to_numpy(dtype=float), rows.loc[~ok, "lloq"].to_numpy(dtype=float), "v", mfc="none", color=colour,
                        label="censored (< LLOQ)" if k == 0 else None, gid=f"censored:{d.name}:{tissue}")
            ax.plot(grid, np.maximum(curves[d.name][tissue].to_numpy(), Y_FLOOR), "-", color=colour, lw=1.2,
                    label="fitted" if k == 0 else None, gid=f"fitted:{d.name}:{tissue}")
            b = bands.get(d.name)
            if b is not None and tissue in b:
                lo, hi = b[tissue]
                ax.fill_between(grid, np.maximum(lo, Y_FLOOR), np.maximum(hi, Y_FLOOR), color=colour, alpha=0.2,
                                lw=0, label="95 % band of the fitted mean" if k == 0 else None,
                                gid=f"band:{d.name}:{tissue}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(tissue, fontsize=9)
    for k, ax in enumerate(axes[: len(tissues)]):
        if k % ncols == 0:
            ax.set_ylabel("%ID")
        if k >= len(tissues) - ncols:
            ax.set_xlabel("time (h)")
            ax.xaxis.set_tick_params(labelbottom=True)
    handles, labels = axes[0].get_legend_handles_labels()
    for extra in axes[len(tissues):]:
        extra.set_visible(False)
    if len(axes) > len(tissues):  # an empty panel holds the legend, clear of the data
        spare = axes[len(tissues)]
        spare.set_visible(True)
        spare.axis("off")
        spare.legend(handles, labels, fontsize=7, loc="center")
    else:
        fig.legend(handles, labels, fontsize=7, loc="outside lower center", ncols=min(len(labels), 4))
    fig.suptitle(fit_title(result), fontsize=10)
    return _save(fig, path)


def plot_gof(result, path=None, figsize=None):
    """Goodness of fit: observed vs predicted (1:1, 2- and 3-fold lines), residuals vs time and vs prediction.

    Uncensored points with positive observed and predicted values only (a log axis
    cannot show the others; their count is in the first panel's title).  Residuals are
    the fit's own weighted residuals (``predictions["residual"]``: on the log scale for
    the default error model), so a pattern in time or in magnitude is the model's, not
    the weighting's.
    """
    Figure = _matplotlib()
    pred = result.predictions
    fig = Figure(figsize=figsize or (11, 3.4), layout="constrained")
    ax_ovp, ax_rt, ax_rp = fig.subplots(1, 3)
    uncensored = ~pred["censored"].astype(bool)
    ok = uncensored & (pred["observed"] > 0) & (pred["predicted"] > 0)
    datasets = list(dict.fromkeys(pred["dataset"]))
    for i, name in enumerate(datasets):
        rows = pred[ok & (pred["dataset"] == name)]
        colour = f"C{i % 10}"
        ax_ovp.plot(rows["observed"], rows["predicted"], "o", ms=4, color=colour, alpha=0.8, label=name,
                    gid=f"ovp:{name}")
        res = pred[uncensored & (pred["dataset"] == name)]
        ax_rt.plot(res["time_h"], res["residual"], "o", ms=4, color=colour, alpha=0.8, gid=f"res_time:{name}")
        pos = res[res["predicted"] > 0]
        ax_rp.plot(pos["predicted"], pos["residual"], "o", ms=4, color=colour, alpha=0.8, gid=f"res_pred:{name}")
    if ok.any():
        lo = float(min(pred.loc[ok, "observed"].min(), pred.loc[ok, "predicted"].min())) / 3
        hi = float(max(pred.loc[ok, "observed"].max(), pred.loc[ok, "predicted"].max())) * 3
        line = np.array([lo, hi])
        ax_ovp.plot(line, line, "k-", lw=1, label="1:1")
        for f, style, lab in ((2, "--", "2-fold"), (3, ":", "3-fold")):
            ax_ovp.plot(line, f * line, "k" + style, lw=0.8, label=lab)
            ax_ovp.plot(line, line / f, "k" + style, lw=0.8)
        ax_ovp.set_xlim(lo, hi)
        ax_ovp.set_ylim(lo, hi)
    ax_ovp.set_xscale("log")
    ax_ovp.set_yscale("log")
    ax_ovp.set_xlabel("observed (%ID)")
    ax_ovp.set_ylabel("predicted (%ID)")
    m = result.metrics
    left_out = int((~ok).sum())
    ax_ovp.set_title(f"within 2-fold {100 * m['frac_within_2fold']:.0f} %, AAFE {m['aafe']:.2f}"
                     + (f" ({left_out} not on log axes)" if left_out else ""), fontsize=8)
    ax_ovp.legend(fontsize=6, loc="upper left")
    for ax, xlabel in ((ax_rt, "time (h)"), (ax_rp, "predicted (%ID)")):
        ax.axhline(0.0, color="0.4", lw=0.8)
        for z in (-2, 2):
            ax.axhline(z, color="0.6", lw=0.6, ls="--")
        ax.set_xscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("weighted residual")
    ax_rt.set_title("residuals against time", fontsize=8)
    ax_rp.set_title("residuals against prediction", fontsize=8)
    fig.suptitle(fit_title(result), fontsize=10)
    return _save(fig, path)


def plot_profiles(result, names=None, path=None, ncols: int = 3, figsize=None):
    """Profile-likelihood curves: Δχ² against each parameter, with the 95 % threshold.

    Uses the profiles the fit already holds (``result.profiles``) and computes any named
    one that is missing (:meth:`FitResult.profile`).  The dashed line is the fit's
    threshold (χ²₁ 95 % quantile, scaled as the fit scaled its covariance); where the
    curve crosses it is the interval's end, marked by a vertical line.
    """
    Figure = _matplotlib()
    from ..errors import FitError

    if names is None:
        names = list(result.profiles) or list(result.names)
    names = [names] if isinstance(names, str) else list(names)
    if not names:
        raise FitError("no parameter to profile: the fit varied none")
    profiles = {n: result.profiles.get(n) or result.profile(n) for n in names}
    ncols = max(1, min(ncols, len(names)))
    nrows = math.ceil(len(names) / ncols)
    fig = Figure(figsize=figsize or (max(3.6 * ncols, 4.5), 3.0 * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    from matplotlib.ticker import NullFormatter

    for ax, name in zip(axes, names):
        prof = profiles[name]
        table = prof["table"]
        ax.plot(table["value"], table["delta"], "o-", ms=3, color="C0", gid=f"profile:{name}")
        ax.axhline(prof["threshold"], color="C3", ls="--", lw=0.8, label="95 % threshold")
        for end in prof["ci95"]:
            if end is not None:
                ax.axvline(end, color="C3", lw=0.6)
        ax.axvline(result.params[name].value, color="0.3", lw=0.8, ls=":", label="estimate")
        if (table["value"] > 0).all():
            ax.set_xscale("log")
            # minor-tick labels of a log axis spanning < 1 decade collide: label the majors only
            ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel(name)
        ax.set_ylabel("Δχ²")
        opened = f" (open: {', '.join(prof['open'])})" if prof["open"] else ""
        ax.set_title(f"{name}{opened}", fontsize=8)
    axes[0].legend(fontsize=6)
    for extra in axes[len(names):]:
        extra.set_visible(False)
    fig.suptitle(f"{result.model.name}: profile likelihood", fontsize=10)
    return _save(fig, path)


def plot_mcmc(result, path=None, corner_path=None, figsize=None):
    """MCMC traces (one row per parameter, the chain after burn-in and thinning).

    With ``corner_path`` and the ``corner`` package installed, also the corner plot of
    the posterior (``pip install corner``); without the package, an ImportError that
    says so.
    """
    from ..errors import FitError

    Figure = _matplotlib()
    mc = result.mcmc_result
    if mc is None:
        raise FitError("no MCMC chain to plot: run result.mcmc() first")
    chain = mc.chain
    fig = Figure(figsize=figsize or (7, 1.6 * chain.shape[1] + 0.6), layout="constrained")
    axes = fig.subplots(chain.shape[1], 1, squeeze=False, sharex=True).ravel()
    for ax, name in zip(axes, chain.columns):
        ax.plot(np.arange(len(chain)), chain[name].to_numpy(), lw=0.5, color="C0", gid=f"trace:{name}")
        ax.axhline(result.params[name].value, color="C3", lw=0.8, ls="--")
        ax.set_ylabel(name, fontsize=8)
    axes[-1].set_xlabel("sample (after burn-in and thinning)")
    fig.suptitle(f"{result.model.name}: MCMC, acceptance {mc.acceptance_fraction:.2f}", fontsize=10)
    _save(fig, path)
    if corner_path is not None:
        try:
            import corner
        except ImportError:
            raise ImportError("the corner plot needs the corner package: pip install corner") from None
        cfig = corner.corner(chain.to_numpy(), labels=list(chain.columns),
                             truths=[result.params[n].value for n in chain.columns])
        cfig.savefig(corner_path, dpi=150)
        import matplotlib.pyplot as plt

        plt.close(cfig)  # corner draws through pyplot: release its figure
    return fig


def plot_compare(comparison, path=None, ncols: int = 4, figsize=None, n_grid: int = 150):
    """A comparison: per tissue, every group's data and fitted curve overlaid on shared log axes,
    and the forest plot of the parameter ratios beside them.

    One colour per group, the same in every panel; the y axes are shared, so a
    difference between coatings is read as a vertical gap, not across two scales.
    """
    Figure = _matplotlib()
    fits = comparison.fits
    groups = list(comparison.groups)
    tissues = list(dict.fromkeys(t for f in fits.values() for t in f.predictions["observable"]))
    ncols = max(1, min(ncols, len(tissues)))
    nrows = math.ceil(len(tissues) / ncols)
    # tall enough for one forest row per ratio at a readable size (labels must not overlap)
    height = max(2.6 * nrows + 0.4, 0.32 * len(comparison.ratios) + 1.4)
    fig = Figure(figsize=figsize or (3.0 * ncols + 4.2, height), layout="constrained")
    # the forest column: as wide as its labels need, at most a third of the figure
    outer = fig.add_gridspec(1, 2, width_ratios=[3.0 * ncols, min(4.2, 1.5 * ncols)])
    left = outer[0, 0].subgridspec(nrows, ncols)
    first = None
    pred_all = [f.predictions for f in fits.values()]
    t_pos = [float(p.loc[p["time_h"] > 0, "time_h"].min()) for p in pred_all if (p["time_h"] > 0).any()]
    t_lo = min(t_pos) / 2 if t_pos else 0.05
    t_hi = max(float(p["time_h"].max()) for p in pred_all) * 1.2
    grid = np.geomspace(t_lo, t_hi, n_grid)
    sims = {g: fits[g].simulate(grid) for g in groups}
    for k, tissue in enumerate(tissues):
        ax = fig.add_subplot(left[k // ncols, k % ncols], sharex=first, sharey=first)
        first = first or ax
        for j, g in enumerate(groups):
            colour = f"C{j % 10}"
            pred = fits[g].predictions
            rows = pred[(pred["observable"] == tissue) & ~pred["censored"].astype(bool)]
            if len(rows):
                sd = rows["sd"].to_numpy(dtype=float)
                y = rows["observed"].to_numpy(dtype=float)
                lower = np.where(np.isfinite(sd), np.minimum(sd, y * 0.999), 0.0)
                upper = np.where(np.isfinite(sd), sd, 0.0)
                ax.errorbar(rows["time_h"].to_numpy(dtype=float), y, yerr=[lower, upper], fmt="o", ms=3, capsize=2, color=colour,
                            label=f"{g}" if k == 0 else None, gid=f"observed:{g}:{tissue}")
            if tissue in sims[g]:
                ax.plot(grid, np.maximum(sims[g][tissue].to_numpy(), Y_FLOOR), color=colour, lw=1.2,
                        gid=f"fitted:{g}:{tissue}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(tissue, fontsize=9)
        if k % ncols == 0:
            ax.set_ylabel("%ID")
        if k >= len(tissues) - ncols:
            ax.set_xlabel("time (h)")
    if first is not None:
        first.legend(fontsize=7, loc="lower left")
    ax = fig.add_subplot(outer[0, 1])
    comparison.forest(ax=ax)
    fig.suptitle(f"{comparison.model_name}: {' vs '.join(groups)}", fontsize=10)
    return _save(fig, path)


def save_figures(result, path) -> list:
    """Every figure of a fit, for the CLI's ``--plot PATH``: the fit at ``PATH``, the
    goodness-of-fit panels at ``PATH`` with ``-gof`` before the suffix, and, when they
    exist, the profiles (``-profiles``), the tumour delivery plot (``-delivery``, a model
    with a tumour) and the MCMC trace (``-mcmc``) and corner plot (``-corner``, with the
    ``corner`` package).  Returns the paths written."""
    from pathlib import Path

    path = Path(path)
    written = [path]
    plot_fit(result, path=path)
    gof = path.with_name(f"{path.stem}-gof{path.suffix}")
    plot_gof(result, path=gof)
    written.append(gof)
    if result.profiles:
        prof = path.with_name(f"{path.stem}-profiles{path.suffix}")
        plot_profiles(result, path=prof)
        written.append(prof)
    if "tumour" in result.model.observable_names:
        from ..delivery import plot_delivery

        de = path.with_name(f"{path.stem}-delivery{path.suffix}")
        plot_delivery(result, path=de)
        written.append(de)
    if result.mcmc_result is not None:
        trace = path.with_name(f"{path.stem}-mcmc{path.suffix}")
        corner_path = path.with_name(f"{path.stem}-corner{path.suffix}") if _has_corner() else None
        plot_mcmc(result, path=trace, corner_path=corner_path)
        written += [trace] + ([corner_path] if corner_path else [])
    return written


def _has_corner() -> bool:
    import importlib.util

    return importlib.util.find_spec("corner") is not None
