"""Sensitivity and design-scan figures hold the numbers of the tables they draw (read back from the artists)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nanopk.errors import NanopkError
from nanopk.plots import plot_morris, plot_scan, plot_scan_heatmap, plot_sensitivity, plot_sobol, plot_tornado

pytest.importorskip("matplotlib")

LOCAL = pd.DataFrame({
    "output": ["DE24"] * 4, "parameter": ["a", "b", "c", "d"], "rank": [1, 2, 3, 4], "output_value": [0.5] * 4,
    "coefficient": [-2.0, 1.5, 0.3, -0.1], "coefficient_fd": [-2.01, 1.49, 0.3, -0.1],
})


def test_tornado_draws_the_largest_coefficients_on_top_with_their_signs():
    """The bars are the coefficients of the `top` largest |S|, the largest at the top (highest y)."""
    fig = plot_tornado(LOCAL, top=3)
    ax = fig.axes[0]
    bars = sorted(ax.patches, key=lambda b: b.get_y())
    widths = [b.get_width() for b in bars]
    assert widths == [0.3, 1.5, -2.0]  # bottom to top
    assert [t.get_text() for t in ax.get_yticklabels()] == ["c", "b", "a"]
    fd = next(line for line in ax.lines if line.get_gid() == "fd")
    np.testing.assert_allclose(fd.get_xdata(), [0.3, 1.49, -2.01])


def test_sobol_bars_are_sorted_by_total_index():
    """S1 and ST bars of each parameter, sorted by ST, heights equal to the table."""
    table = pd.DataFrame({"output": ["y"] * 3, "parameter": ["p", "q", "r"], "S1": [0.1, 0.6, 0.0],
                          "S1_conf": [0.02] * 3, "ST": [0.3, 0.65, 0.01], "ST_conf": [0.03] * 3})
    ax = plot_sobol(table).axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["q", "p", "r"]
    heights = [b.get_height() for b in ax.patches]
    assert heights == [0.6, 0.1, 0.0, 0.65, 0.3, 0.01]


def test_morris_points_are_mu_star_and_sigma():
    """Each parameter is one point at (μ*, σ)."""
    table = pd.DataFrame({"output": ["y"] * 2, "parameter": ["p", "q"], "mu_star": [1.0, 0.2],
                          "mu_star_conf": [0.1, 0.05], "sigma": [0.4, 0.3]})
    ax = plot_morris(table).axes[0]
    line = next(ln for ln in ax.lines if ln.get_gid() == "morris")
    np.testing.assert_allclose(line.get_xdata(), [1.0, 0.2])
    np.testing.assert_allclose(line.get_ydata(), [0.4, 0.3])


def test_plot_sensitivity_dispatches_on_the_table_and_refuses_others():
    """A local table gives a tornado; a table of no known method is refused with the columns it lacks."""
    assert plot_sensitivity(LOCAL).axes[0].get_xlabel() == "∂ ln DE24 / ∂ ln p"
    with pytest.raises(NanopkError, match=r"no 'coefficient', 'mu_star' or 'ST' column"):
        plot_sensitivity(pd.DataFrame({"output": ["y"], "x": [1]}))
    with pytest.raises(NanopkError, match=r"tornado plot: no output 'DE168' in the table; outputs: DE24"):
        plot_tornado(LOCAL, output="DE168")


SCAN = pd.DataFrame({"core_diameter_nm": [10, 50, 10, 50], "coating": ["none", "none", "PEG", "PEG"],
                     "dose": ["1 mg/kg"] * 4, "d_h": [10.0, 50.0, 36.0, 76.0], "DE24": [0.013, 0.003, 0.73, 0.017]})


def test_scan_plot_has_one_line_per_coating_against_hydrodynamic_diameter():
    """DE24 against d_h, one line per coating, points in the table's values (sorted by d_h)."""
    ax = plot_scan(SCAN).axes[0]
    lines = {ln.get_gid(): ln for ln in ax.lines}
    peg = lines["scan:PEG:1 mg/kg"]
    np.testing.assert_allclose(peg.get_xdata(), [36.0, 76.0])
    np.testing.assert_allclose(peg.get_ydata(), [0.73, 0.017])
    assert ax.get_xlabel() == "hydrodynamic diameter (nm)"


def test_scan_heatmap_cells_are_the_table_values():
    """The heat map's array is the coating × size pivot of the table, and each cell is labelled with its value."""
    ax = plot_scan_heatmap(SCAN).axes[0]
    image = ax.images[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["PEG", "none"]  # pivot order: sorted labels
    assert [t.get_text() for t in ax.get_xticklabels()] == ["10", "50"]
    np.testing.assert_allclose(np.asarray(image.get_array()), [[0.73, 0.017], [0.013, 0.003]])
    assert {t.get_text() for t in ax.texts} == {"0.013", "0.003", "0.73", "0.017"}
