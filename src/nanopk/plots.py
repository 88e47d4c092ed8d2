"""Figures of the analysis toolkit: sensitivity (tornado, Sobol bars) and design scans.

In the style of :mod:`nanopk.fit.plot` (Matplotlib ``Figure`` without pyplot; ``path``
saves in the format of its suffix).  Each function takes the tidy table its analysis
returns — :func:`nanopk.sensitivity.local_sensitivity`, :func:`nanopk.sensitivity.sobol`,
:func:`nanopk.scan.scan` — so a figure can be redrawn from a saved CSV.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import pandas as pd

from .errors import NanopkError
from .fit.plot import _matplotlib, _save

__all__ = ["plot_tornado", "plot_morris", "plot_sobol", "plot_scan", "plot_scan_heatmap", "plot_sensitivity",
           "plot_population"]


def _one_output(table: pd.DataFrame, output: str | None, what: str) -> tuple[str, pd.DataFrame]:
    outputs = list(dict.fromkeys(table["output"]))
    if output is None:
        output = outputs[0]
    if output not in outputs:
        from .errors import suggest

        raise NanopkError(f"{what}: no output {output!r} in the table{suggest(output, outputs)}; outputs: {', '.join(outputs)}")
    return output, table[table["output"] == output]


def plot_tornado(table: pd.DataFrame, output: str | None = None, top: int = 10, path=None, figsize=None):
    """Tornado plot of local normalised sensitivity coefficients S_p = ∂ln y/∂ln p of one output.

    The ``top`` parameters by |S_p|, largest at the top; bars right of zero raise the
    output, left lower it.  With a finite-difference check in the table, its value is
    a marker on each bar.
    """
    Figure = _matplotlib()
    output, rows = _one_output(table, output, "tornado plot")
    rows = rows.reindex(rows["coefficient"].abs().sort_values(ascending=False).index).head(top)
    rows = rows.iloc[::-1]  # barh draws bottom-up: the largest ends on top
    fig = Figure(figsize=figsize or (6, 0.35 * len(rows) + 1.3), layout="constrained")
    ax = fig.add_subplot()
    y = np.arange(len(rows))
    s = rows["coefficient"].to_numpy(dtype=float)
    ax.barh(y, s, color=np.where(s >= 0, "C3", "C0"), gid="coefficients")
    if "coefficient_fd" in rows and rows["coefficient_fd"].notna().any():
        ax.plot(rows["coefficient_fd"].to_numpy(dtype=float), y, "k|", ms=12, label="finite difference", gid="fd")
        ax.legend(fontsize=7, loc="lower right")
    ax.set_yticks(y)
    ax.set_yticklabels(rows["parameter"], fontsize=8)
    ax.axvline(0.0, color="0.3", lw=0.8)
    ax.set_xlabel(f"∂ ln {output} / ∂ ln p")
    value = rows["output_value"].iloc[0] if "output_value" in rows else math.nan
    ax.set_title(f"local sensitivity of {output} ({value:.3g})", fontsize=9)
    return _save(fig, path)


def plot_morris(table: pd.DataFrame, output: str | None = None, path=None, figsize=None):
    """Morris screening of one output: μ* (influence) against σ (non-linearity or interaction).

    Points far right matter; points high above the diagonal act non-linearly or through
    interactions (Campolongo et al. 2007).  Each point is labelled with its parameter.
    """
    Figure = _matplotlib()
    output, rows = _one_output(table, output, "Morris plot")
    fig = Figure(figsize=figsize or (5, 4), layout="constrained")
    ax = fig.add_subplot()
    ax.errorbar(rows["mu_star"].to_numpy(dtype=float), rows["sigma"].to_numpy(dtype=float),
                xerr=rows["mu_star_conf"].to_numpy(dtype=float), fmt="o", ms=4, capsize=2, color="C0",
                gid="morris")
    for _, r in rows.iterrows():
        ax.annotate(r["parameter"], (r["mu_star"], r["sigma"]), fontsize=7, xytext=(3, 3), textcoords="offset points")
    top = float(max(rows["mu_star"].max(), rows["sigma"].max(), 1e-12)) * 1.1
    ax.plot([0, top], [0, top], color="0.6", ls="--", lw=0.8)
    ax.set_xlim(0, top)
    ax.set_ylim(0, top)
    ax.set_xlabel("μ* (mean |elementary effect|)")
    ax.set_ylabel("σ (spread of the effects)")
    n = table.attrs.get("n_simulations")
    ax.set_title(f"Morris screening of {output}" + (f" ({n} simulations)" if n else ""), fontsize=9)
    return _save(fig, path)


def plot_sensitivity(table: pd.DataFrame, output: str | None = None, path=None, **kwargs):
    """The figure of a sensitivity table, by its method: tornado (local), μ*–σ (Morris) or bars (Sobol)."""
    if "coefficient" in table:
        return plot_tornado(table, output, path=path, **kwargs)
    if "mu_star" in table:
        return plot_morris(table, output, path=path, **kwargs)
    if "ST" in table:
        return plot_sobol(table, output, path=path, **kwargs)
    raise NanopkError("plot_sensitivity: the table is none of local_sensitivity's, morris's or sobol's "
                      "(no 'coefficient', 'mu_star' or 'ST' column)")


def plot_sobol(table: pd.DataFrame, output: str | None = None, path=None, figsize=None):
    """First-order (S1) and total (ST) Sobol indices of one output, with their 95 % intervals.

    ST − S1 is the share of the variance due to interactions; bars are sorted by ST.
    """
    Figure = _matplotlib()
    output, rows = _one_output(table, output, "Sobol plot")
    rows = rows.sort_values("ST", ascending=False)
    fig = Figure(figsize=figsize or (max(4.0, 0.7 * len(rows) + 2.0), 3.4), layout="constrained")
    ax = fig.add_subplot()
    x = np.arange(len(rows))
    w = 0.38
    ax.bar(x - w / 2, rows["S1"], w, yerr=rows["S1_conf"], capsize=2, color="C0", label="first order S1", gid="S1")
    ax.bar(x + w / 2, rows["ST"], w, yerr=rows["ST_conf"], capsize=2, color="C1", label="total ST", gid="ST")
    ax.set_xticks(x)
    ax.set_xticklabels(rows["parameter"], rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("share of the variance")
    ax.axhline(0.0, color="0.3", lw=0.6)
    ax.legend(fontsize=7)
    n = table.attrs.get("n_simulations")
    ax.set_title(f"Sobol indices of {output}" + (f" ({n} simulations)" if n else ""), fontsize=9)
    return _save(fig, path)


def plot_scan(table: pd.DataFrame, output: str = "DE24", x: str = "d_h", by: str = "coating", path=None, figsize=None):
    """An output against hydrodynamic diameter (``x``), one line per coating (``by``), log–log.

    One panel per dose when the scan has several doses.
    """
    Figure = _matplotlib()
    for col in (output, x):
        if col not in table:
            raise NanopkError(f"scan plot: no column {col!r} in the table; columns: {', '.join(map(str, table.columns))}")
    doses = list(dict.fromkeys(table["dose"])) if "dose" in table else [None]
    fig = Figure(figsize=figsize or (4.2 * len(doses), 3.4), layout="constrained")
    axes = fig.subplots(1, len(doses), squeeze=False, sharey=True).ravel()
    groups = list(dict.fromkeys(table[by])) if by in table else [None]
    for ax, dose in zip(axes, doses):
        sub = table if dose is None else table[table["dose"] == dose]
        for k, g in enumerate(groups):
            rows = (sub if g is None else sub[sub[by] == g]).sort_values(x)
            ax.plot(rows[x].to_numpy(dtype=float), rows[output].to_numpy(dtype=float), "o-", color=f"C{k % 10}",
                    label=str(g), gid=f"scan:{g}:{dose}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("hydrodynamic diameter (nm)" if x == "d_h" else x)
        if dose is not None:
            ax.set_title(f"dose {dose}", fontsize=9)
    axes[0].set_ylabel(output + (" (%ID)" if not output.startswith("t_half") else " (h)"))
    axes[0].legend(title=by, fontsize=7, title_fontsize=7)
    fig.suptitle(f"{output} over the design grid", fontsize=10)
    return _save(fig, path)


def plot_scan_heatmap(table: pd.DataFrame, output: str = "DE24", rows: str = "coating", cols: str = "core_diameter_nm",
                      path=None, figsize=None):
    """Heat map of an output over two grid axes (log colour scale), each cell labelled with its value.

    With more than one value of the other axes (a dose axis), the first is shown and the
    title says which.
    """
    Figure = _matplotlib()
    from matplotlib.colors import LogNorm

    for col in (output, rows, cols):
        if col not in table:
            raise NanopkError(f"scan heat map: no column {col!r} in the table; columns: {', '.join(map(str, table.columns))}")
    sub = table
    note = ""
    if "dose" in table and table["dose"].nunique() > 1:
        first = table["dose"].iloc[0]
        sub, note = table[table["dose"] == first], f" (dose {first})"
    grid = sub.pivot_table(index=rows, columns=cols, values=output, aggfunc="first")
    values = grid.to_numpy(dtype=float)
    fig = Figure(figsize=figsize or (1.0 * grid.shape[1] + 2.5, 0.6 * grid.shape[0] + 1.6), layout="constrained")
    ax = fig.add_subplot()
    positive = values[np.isfinite(values) & (values > 0)]
    norm = LogNorm(positive.min(), positive.max()) if positive.size and positive.min() < positive.max() else None
    image = ax.imshow(values, norm=norm, cmap="viridis", aspect="auto", gid="heatmap")
    for i in range(values.shape[0]):
        for j in range(values.shape[1]):
            if np.isfinite(values[i, j]):
                ax.text(j, i, f"{values[i, j]:.2g}", ha="center", va="center", fontsize=7, color="w")
    ax.set_xticks(range(grid.shape[1]))
    ax.set_xticklabels([f"{c:g}" if isinstance(c, (int, float)) else str(c) for c in grid.columns], fontsize=8)
    ax.set_yticks(range(grid.shape[0]))
    ax.set_yticklabels([str(r) for r in grid.index], fontsize=8)
    ax.set_xlabel(cols)
    ax.set_ylabel(rows)
    fig.colorbar(image, ax=ax, label=output)
    ax.set_title(f"{output}{note}", fontsize=9)
    return _save(fig, path)


def plot_population(band: pd.DataFrame, observables: Sequence[str] | None = None, path=None, figsize=None):
    """Prediction bands of a virtual population (:func:`nanopk.population.population_band`): per
    observable, the median line and the band between the lowest and highest percentile, log y."""
    Figure = _matplotlib()
    observables = list(observables or dict.fromkeys(band.columns.get_level_values(0)))
    fig = Figure(figsize=figsize or (3.2 * len(observables), 3.0), layout="constrained")
    axes = fig.subplots(1, len(observables), squeeze=False, sharex=True).ravel()
    t = band.index.to_numpy(dtype=float)
    for ax, o in zip(axes, observables):
        cols = [c for c in band[o].columns]
        lo, hi = band[(o, cols[0])].to_numpy(), band[(o, cols[-1])].to_numpy()
        mid = band[(o, cols[len(cols) // 2])].to_numpy()
        ax.fill_between(t, np.maximum(lo, 1e-6), np.maximum(hi, 1e-6), color="C0", alpha=0.25,
                        label=f"{cols[0]}–{cols[-1]}", gid=f"band:{o}")
        ax.plot(t, np.maximum(mid, 1e-6), color="C0", label=cols[len(cols) // 2], gid=f"median:{o}")
        ax.set_yscale("log")
        ax.set_title(o, fontsize=9)
        ax.set_xlabel("time (h)")
    axes[0].set_ylabel("%ID")
    axes[0].legend(fontsize=7)
    fig.suptitle("virtual population: prediction band", fontsize=10)
    return _save(fig, path)
