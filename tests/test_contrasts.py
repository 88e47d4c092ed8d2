"""nanopk.calibrate.contrasts: within-study ratios, their scores and the size elasticity."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nanopk.calibrate.contrasts import contrast_kind, contrast_scores, size_elasticity, within_study_contrasts


def _collection(beta: float, offsets=(0.0, 0.7, -1.2), sizes=(10.0, 20.0, 80.0), noise=None):
    """Three studies of three gold sizes each; log10 %ID = study offset + β·log10 d (+ noise) in two organs."""
    inst, pts = [], []
    rng = np.random.default_rng(0)
    for s, off in enumerate(offsets):
        for d in sizes:
            name = f"s{s}_d{d:g}"
            inst.append({"name": name, "study": f"s{s}", "dose_ug": 20.0,
                         "particle": {"material": "Au", "core_diameter_nm": d, "coating": "PEG"}})
            for tissue in ("liver", "blood"):
                for t in (1.0, 24.0):
                    y = off + beta * math.log10(d) + (rng.normal(0, noise) if noise else 0.0)
                    pts.append({"name": name, "study": f"s{s}", "tissue": tissue, "time_h": t, "pid": 10 ** y})
    return pd.DataFrame(inst), pd.DataFrame(pts)


def test_contrasts_cancel_the_study_offset():
    """A ratio of two instances of one study is β·log10(d_B/d_A) whatever the study's offset (to 1e-12)."""
    inst, pts = _collection(beta=-0.5)
    rows = within_study_contrasts(inst, pts, {"model": np.zeros(len(pts))})
    assert len(rows) == 3 * 3 * 4  # 3 studies × 3 pairs × (2 organs × 2 times)
    core = inst.set_index("name")["particle"].map(lambda p: p["core_diameter_nm"])
    expect = -0.5 * np.log10(core[rows["b"]].to_numpy() / core[rows["a"]].to_numpy())
    assert np.allclose(rows["observed"], expect, atol=1e-12) and set(rows["kind"]) == {"size"}
    assert np.all(rows["model"] == 0.0)


@settings(max_examples=20, deadline=None)
@given(beta=st.floats(-2.0, 2.0))
def test_size_elasticity_recovers_beta(beta):
    """Noise-free size series: the elasticity is β in every organ (to 1e-9); the bootstrap interval contains it."""
    inst, pts = _collection(beta=beta)
    rows = within_study_contrasts(inst, pts, {})
    table = size_elasticity(rows, inst, n_boot=50).set_index("tissue")
    assert np.allclose(table["beta"], beta, atol=1e-9)
    assert np.all(table["low"] <= beta + 1e-9) and np.all(table["high"] >= beta - 1e-9)
    assert list(table["studies"]) == [3, 3]


def test_scores_count_within_two_fold_and_sign():
    """A predictor with the right β scores 1 within 2-fold and 1 on sign; 'no effect' fails the >2-fold ratios."""
    inst, pts = _collection(beta=-1.0, sizes=(10.0, 15.0, 80.0))
    truth = np.log10(pts["pid"].to_numpy())
    rows = within_study_contrasts(inst, pts, {"right": truth, "wrong": -truth})
    table = contrast_scores(rows, ["right", "wrong"]).set_index("predictor")
    # pairs 10/15 (1.5×), 10/80 (8×) and 15/80 (5.3×): 2 of 3 pairs differ by > 2-fold, in 3 studies × 4 points
    assert table.loc["right", "within2"] == 1.0 and table.loc["right", "sign"] == 1.0
    assert table.loc["wrong", "sign"] == 0.0 and table.loc["no effect", "n_differ"] == 24
    assert table.loc["no effect", "within2"] == pytest.approx(1 / 3)


def test_kind_of_contrast():
    """What differs names the contrast: size (with what follows it), coating, dose, several, same particle."""
    assert contrast_kind(()) == "same particle"
    assert contrast_kind(("core_diameter_nm", "hydrodynamic_diameter_nm", "zeta_mV")) == "size"
    assert contrast_kind(("coating", "coating_mw_da", "zeta_mV")) == "coating"
    assert contrast_kind(("dose",)) == "dose"
    assert contrast_kind(("core_diameter_nm", "coating")) == "several"
    assert contrast_kind(("hydrodynamic_diameter_nm",)) == "several"  # no core change: not a size contrast


def test_a_study_with_one_instance_gives_no_contrast():
    """One instance per study: no pair, an empty table with the columns."""
    inst, pts = _collection(beta=0.3, sizes=(10.0,))
    rows = within_study_contrasts(inst, pts, {"m": np.zeros(len(pts))})
    assert len(rows) == 0 and {"observed", "m", "kind"} <= set(rows.columns)
