"""Within-study contrasts: does the model move with the particle the way one lab's data do?

Between studies, %ID of the same organ at the same time scatters by a factor of ~4
(the calibration's τ and σ): labs, tumour models, labels and assays differ.  Inside one
study most of that is shared, so the ratio of two instances of one study,

    r_obs = log10(y_B / y_A)    (same tissue, same time),

measures what the *particle* (or dose) difference between A and B does, and the model's
prediction of it,

    r_pred = log10(ŷ_B / ŷ_A),

tests the particle → parameter maps free of the lab.  :func:`within_study_contrasts`
pairs every two instances of a study at their common tissue × time points;
:func:`contrast_scores` scores predictors on those ratios (within 2-fold, and the sign
where the data differ by more than 2-fold) beside the "no effect" predictor r = 0;
:func:`size_elasticity` estimates d log10 %ID / d log10 core diameter per tissue from
pairs that differ only in size, with a bootstrap interval over studies.

This is a paired comparison with the study as the unit: what is shared within a study
cancels in the difference, as a subject's own baseline does in a within-subject design.
"""
from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd

__all__ = ["within_study_contrasts", "contrast_scores", "size_elasticity", "contrast_kind", "SIZE_FIELDS"]

#: Fields that change with core size alone (a measured hydrodynamic diameter and zeta
#: potential follow the core): a pair differing only in these is a size contrast.
SIZE_FIELDS = frozenset({"core_diameter_nm", "hydrodynamic_diameter_nm", "zeta_mV"})
#: Fields of a coating contrast (with what follows the coating: size by DLS, zeta).
COATING_FIELDS = frozenset({"coating", "coating_mw_da", "hydrodynamic_diameter_nm", "zeta_mV"})
TWO_FOLD = math.log10(2.0)


def _differs(pa: dict, pb: dict, dose_a, dose_b) -> tuple[str, ...]:
    keys = {k for k in set(pa) | set(pb) if pa.get(k) != pb.get(k)}
    if not (dose_a == dose_b or (dose_a and dose_b and math.isclose(dose_a, dose_b, rel_tol=1e-9))):
        keys.add("dose")
    return tuple(sorted(keys))


def contrast_kind(differs) -> str:
    """``"same particle"``, ``"size"``, ``"coating"``, ``"dose"`` or ``"several"`` for a tuple of differing fields."""
    d = set(differs)
    if not d:
        return "same particle"
    if "core_diameter_nm" in d and d <= SIZE_FIELDS:
        return "size"
    if d & {"coating", "coating_mw_da"} and d <= COATING_FIELDS:
        return "coating"
    if d == {"dose"}:
        return "dose"
    return "several"


def within_study_contrasts(instances: pd.DataFrame, points: pd.DataFrame, predictions: dict) -> pd.DataFrame:
    """Every pair of instances of a study at their common tissue × time points.

    Parameters
    ----------
    instances : DataFrame
        ``name``, ``study``, ``particle`` (dict) and ``dose_ug`` per instance (as
        :func:`nanopk.calibrate.calibration_points` returns them).
    points : DataFrame
        ``name``, ``study``, ``tissue``, ``time_h`` and ``pid`` (%ID, > 0) per point.
    predictions : dict
        ``{predictor: log10 %ID per row of points}``.

    Returns
    -------
    DataFrame
        One row per pair and common point: ``study``, ``a``, ``b``, ``differs`` (the
        particle fields, and ``dose``, that differ), ``kind`` (:func:`contrast_kind`),
        ``tissue``, ``time_h``, ``observed`` (log10 y_B/y_A) and one column per predictor.
        A point measured twice for one instance (tissue, time) is averaged on the log
        scale first.
    """
    pts = points[["name", "study", "tissue", "time_h"]].copy()
    pts["observed"] = np.log10(points["pid"].to_numpy(float))
    names = list(predictions)
    for k in names:
        pts[k] = np.asarray(predictions[k], float)
    pts = pts.groupby(["study", "name", "tissue", "time_h"], as_index=False)[["observed", *names]].mean()
    particle = instances.set_index("name")["particle"].to_dict()
    dose = instances.set_index("name")["dose_ug"].to_dict()
    rows = []
    for study, g in pts.groupby("study", sort=True):
        by = {n: gg.set_index(["tissue", "time_h"]) for n, gg in g.groupby("name", sort=True)}
        for a, b in itertools.combinations(sorted(by), 2):
            common = by[a].index.intersection(by[b].index)
            if not len(common):
                continue
            differs = _differs(particle[a], particle[b], dose.get(a), dose.get(b))
            ga, gb = by[a].loc[common], by[b].loc[common]
            frame = pd.DataFrame({"study": study, "a": a, "b": b, "differs": [differs] * len(common),
                                  "kind": contrast_kind(differs), "tissue": common.get_level_values(0),
                                  "time_h": common.get_level_values(1),
                                  "observed": gb["observed"].to_numpy() - ga["observed"].to_numpy()})
            for k in names:
                frame[k] = gb[k].to_numpy() - ga[k].to_numpy()
            rows.append(frame)
    columns = ["study", "a", "b", "differs", "kind", "tissue", "time_h", "observed", *names]
    return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(columns=columns)


def contrast_scores(contrasts: pd.DataFrame, predictors, by: str = "kind") -> pd.DataFrame:
    """Score predictors of within-study ratios, per group of ``by``, beside "no effect" (r = 0).

    Returns
    -------
    DataFrame
        Per group and predictor: ``n`` ratios, ``studies``, ``n_differ`` (|r_obs| > log10 2),
        ``within2`` (share with |r_pred − r_obs| < log10 2), ``sign`` (share of the
        ``n_differ`` ratios whose sign the predictor gets right; NaN without such ratios).
    """
    out = []
    for group, g in contrasts.groupby(by, sort=True):
        differ = np.abs(g["observed"].to_numpy()) > TWO_FOLD
        for name in [*predictors, "no effect"]:
            pred = np.zeros(len(g)) if name == "no effect" else g[name].to_numpy(float)
            obs = g["observed"].to_numpy(float)
            sign = float(np.mean(np.sign(pred[differ]) == np.sign(obs[differ]))) if differ.any() else math.nan
            out.append({by: group, "predictor": name, "n": len(g), "studies": g["study"].nunique(),
                        "n_differ": int(differ.sum()), "within2": float(np.mean(np.abs(pred - obs) < TWO_FOLD)),
                        "sign": sign})
    return pd.DataFrame(out)


def _slope(x: np.ndarray, y: np.ndarray) -> float:
    # Through the origin: two particles of the same size have (expected) ratio 1.
    return float(np.sum(x * y) / np.sum(x * x))


def size_elasticity(contrasts: pd.DataFrame, instances: pd.DataFrame, column: str = "observed",
                    n_boot: int = 500, seed: int = 0, level: float = 0.9) -> pd.DataFrame:
    """d log10 %ID / d log10 core diameter per tissue, from the pairs that differ only in size.

        r = β · log10(d_B / d_A)    (least squares through the origin)

    with a percentile bootstrap interval that resamples *studies* (their pairs move
    together).

    Returns
    -------
    DataFrame
        Per tissue: ``n`` ratios, ``studies``, ``beta`` and ``low``/``high`` (the
        ``level`` interval; NaN with a single study).
    """
    size = contrasts[contrasts["kind"] == "size"].copy()
    core = instances.set_index("name")["particle"].map(lambda p: float(p["core_diameter_nm"])).to_dict()
    size["log_size"] = np.log10([core[b] / core[a] for a, b in zip(size["a"], size["b"])])
    rng = np.random.default_rng(seed)
    out = []
    for tissue, g in size.groupby("tissue", sort=True):
        beta = _slope(g["log_size"].to_numpy(), g[column].to_numpy(float))
        studies = g["study"].unique()
        low = high = math.nan
        if len(studies) > 1:
            parts = {s: g[g["study"] == s] for s in studies}
            boots = []
            for _ in range(n_boot):
                gg = pd.concat([parts[s] for s in rng.choice(studies, len(studies))])
                boots.append(_slope(gg["log_size"].to_numpy(), gg[column].to_numpy(float)))
            low, high = np.quantile(boots, [(1 - level) / 2, (1 + level) / 2])
        out.append({"tissue": tissue, "n": len(g), "studies": len(studies), "beta": beta, "low": float(low),
                    "high": float(high)})
    return pd.DataFrame(out)
