"""Figures of a fit: time courses per tissue and predicted vs observed.

Matplotlib is optional (``pip install 'nanopk[plot]'``) and imported only here.  The
figure is built with :class:`matplotlib.figure.Figure` directly, not pyplot, so
plotting neither needs a display nor touches pyplot's global state.
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["plot_fit"]


def _matplotlib():
    try:
        import matplotlib  # noqa: F401
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError("plots need matplotlib: pip install 'nanopk[plot]'") from None
    return Figure


def plot_fit(result, path=None, n_grid: int = 200, ncols: int = 4, figsize=None):
    """Plot a :class:`FitResult`.

    One panel per fitted tissue: observed mean ± SD (markers; censored rows as open
    triangles at their limit) and the fitted time course (line), log y, log time;
    and a last panel of predicted vs observed %ID with the 1:1 line and the 2-fold
    band.  Each dataset has its own colour.

    Parameters
    ----------
    path : str or Path, optional
        Save the figure there (format from the suffix).
    n_grid : int
        Points of each predicted time course.

    Returns
    -------
    matplotlib.figure.Figure
    """
    Figure = _matplotlib()
    pred = result.predictions
    tissues = list(dict.fromkeys(pred["observable"]))
    n_panels = len(tissues) + 1
    ncols = min(ncols, n_panels)
    nrows = math.ceil(n_panels / ncols)
    fig = Figure(figsize=figsize or (3.2 * ncols, 2.8 * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    datasets = result.objective.datasets
    colours = [f"C{i % 10}" for i in range(len(datasets))]
    t_pos = pred.loc[pred["time_h"] > 0, "time_h"]
    t_lo = float(t_pos.min()) / 2 if len(t_pos) else 0.05
    t_hi = float(pred["time_h"].max()) * 1.2
    grid = np.geomspace(t_lo, t_hi, n_grid)
    curves = {d.name: result.simulate(grid, dataset=d.name) for d in datasets}
    for ax, tissue in zip(axes, tissues):
        for d, colour in zip(datasets, colours):
            rows = pred[(pred["dataset"] == d.name) & (pred["observable"] == tissue)]
            if rows.empty:
                continue
            ok = ~rows["censored"]
            sd = rows.loc[ok, "sd"].to_numpy(dtype=float)
            y = rows.loc[ok, "observed"].to_numpy(dtype=float)
            lower = np.where(np.isfinite(sd), np.minimum(sd, y * 0.999), 0.0)
            upper = np.where(np.isfinite(sd), sd, 0.0)
            ax.errorbar(rows.loc[ok, "time_h"], y, yerr=[lower, upper], fmt="o", ms=4, color=colour, capsize=2,
                        label=d.name if tissue == tissues[0] else None)
            if (~ok).any():
                ax.plot(rows.loc[~ok, "time_h"], rows.loc[~ok, "lloq"], "v", mfc="none", color=colour)
            ax.plot(grid, np.maximum(curves[d.name][tissue].to_numpy(), 1e-6), "-", color=colour, lw=1.2)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(tissue)
        ax.set_xlabel("time (h)")
        ax.set_ylabel("%ID")
    ax = axes[len(tissues)]
    ok = ~pred["censored"] & (pred["observed"] > 0) & (pred["predicted"] > 0)
    for d, colour in zip(datasets, colours):
        rows = pred[ok & (pred["dataset"] == d.name)]
        ax.plot(rows["observed"], rows["predicted"], "o", ms=4, color=colour, alpha=0.8)
    if ok.any():
        lo = float(min(pred.loc[ok, "observed"].min(), pred.loc[ok, "predicted"].min())) / 2
        hi = float(max(pred.loc[ok, "observed"].max(), pred.loc[ok, "predicted"].max())) * 2
        line = np.array([lo, hi])
        ax.plot(line, line, "k-", lw=1, label="1:1")
        ax.plot(line, 2 * line, "k--", lw=0.8, label="2-fold")
        ax.plot(line, line / 2, "k--", lw=0.8)
        ax.set_xlim(lo, hi)
        ax.set_ylim(lo, hi)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("observed (%ID)")
    ax.set_ylabel("predicted (%ID)")
    m = result.metrics
    ax.set_title(f"within 2-fold {100 * m['frac_within_2fold']:.0f} %, AAFE {m['aafe']:.2f}", fontsize=9)
    ax.legend(fontsize=7, loc="upper left")
    for extra in axes[n_panels:]:
        extra.set_visible(False)
    if len(datasets) > 1:
        axes[0].legend(fontsize=7)
    fig.suptitle(f"{result.model.name}: {'success' if result.success else 'NOT converged / unreliable'}", fontsize=10)
    if path is not None:
        fig.savefig(path, dpi=150)
    return fig
