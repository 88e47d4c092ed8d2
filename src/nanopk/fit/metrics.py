"""Goodness of fit: information criteria and fold-error statistics.

With ``N`` residuals ``r_i`` (censored observations included), ``k`` fitted
parameters and ``χ² = Σ r_i²``:

    aic = N ln(χ²/N) + 2k,     bic = N ln(χ²/N) + k ln N           (as lmfit)

and, over the ``m`` uncensored observations with positive values and predictions,

    r2_log            = 1 − Σ (ln y − ln ŷ)² / Σ (ln y − mean ln y)²
    aafe              = 10^( (1/m) Σ |log10(ŷ/y)| )       absolute average fold error
    afe               = 10^( (1/m) Σ  log10(ŷ/y) )        average fold error (bias)
    frac_within_2fold = #{ ½ ≤ ŷ/y ≤ 2 } / m,   frac_within_3fold likewise.

``aafe`` is 1 for a perfect fit; within 2 is the customary acceptance for PBPK
predictions.

With priors, ``r`` here is the data residuals only (the prior rows are reported as
``prior_penalty`` by :func:`nanopk.fit`), so χ², AIC and BIC are those of the
likelihood at the MAP estimate.

References
----------
1. Obach RS et al. The prediction of human pharmacokinetic parameters from
   preclinical and in vitro metabolism data. J Pharmacol Exp Ther 1997;283:46
   (fold-error statistics).
2. Burnham KP, Anderson DR. Model Selection and Multimodel Inference, 2nd ed.
   Springer 2002 (AIC, BIC).
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

__all__ = ["goodness_of_fit", "fold_metrics"]


def fold_metrics(observed, predicted) -> dict:
    """Fold-error statistics of positive observed/predicted pairs."""
    y = np.asarray(observed, dtype=float)
    yhat = np.asarray(predicted, dtype=float)
    ok = np.isfinite(y) & np.isfinite(yhat) & (y > 0) & (yhat > 0)
    y, yhat = y[ok], yhat[ok]
    if y.size == 0:
        return {"r2_log": math.nan, "aafe": math.nan, "afe": math.nan, "frac_within_2fold": math.nan,
                "frac_within_3fold": math.nan, "n_fold": 0}
    lr = np.log10(yhat / y)
    ly = np.log(y)
    ss_tot = float(np.sum((ly - ly.mean()) ** 2))
    ss_res = float(np.sum((ly - np.log(yhat)) ** 2))
    ratio = yhat / y
    return {
        "r2_log": 1.0 - ss_res / ss_tot if ss_tot > 0 else math.nan,
        "aafe": float(10 ** np.mean(np.abs(lr))),
        "afe": float(10 ** np.mean(lr)),
        "frac_within_2fold": float(np.mean((ratio >= 0.5) & (ratio <= 2.0))),
        "frac_within_3fold": float(np.mean((ratio >= 1 / 3) & (ratio <= 3.0))),
        "n_fold": int(y.size),
    }


def goodness_of_fit(residual: np.ndarray, predictions: pd.DataFrame, n_varied: int) -> dict:
    """Every metric of a fit from its residual vector and prediction table."""
    r = np.asarray(residual, dtype=float)
    n = int(r.size)
    chisqr = float(r @ r)
    dof = max(n - n_varied, 1)
    if chisqr > 0 and n > 0:
        base = n * math.log(chisqr / n)
        aic = base + 2 * n_varied
        bic = base + math.log(n) * n_varied
    else:
        aic = bic = -math.inf
    uncensored = predictions[~predictions["censored"]]
    out = {
        "chisqr": chisqr,
        "redchi": chisqr / dof,
        "aic": aic,
        "bic": bic,
        "n_points": int(len(uncensored)),
        "n_censored": int(predictions["censored"].sum()),
        "n_residuals": n,
        "n_varied": int(n_varied),
        "dof": int(n - n_varied),
    }
    out.update(fold_metrics(uncensored["observed"], uncensored["predicted"]))
    return out
