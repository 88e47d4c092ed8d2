"""The meta runner's per-dataset fit is the fit seam: an objective that nanopk.fit and JointObjective take."""
import numpy as np
import pandas as pd
import pytest

import nanopk
from nanopk import FitError
from nanopk.fit import JointObjective
from nanopk.meta import MetaItem
from nanopk.meta import runner
from nanopk.meta.runner import FIT_OPTIONS, MetaFitSettings, item_objective

#: Two synthetic tumour time courses (%ID) with reported dose, body and tumour weight.
ITEMS = (
    MetaItem("a", np.array([1.0, 6.0, 24.0, 72.0]), np.array([0.5, 1.5, 2.0, 1.2]), dose_mg_kg=5.0,
             body_weight_g=20.0, tumour_weight_g=0.2),
    MetaItem("b", np.array([2.0, 8.0, 24.0, 48.0, 168.0]), np.array([0.3, 0.9, 1.4, 1.3, 0.6]), dose_mg_kg=2.0,
             body_weight_g=25.0, tumour_weight_g=0.5),
)


def test_fit_item_is_nanopk_fit_on_the_same_dataset():
    """fit_item's estimates equal those of nanopk.fit(model, data, ...) called with the single-fit keywords
    (log error, known σ, log-normal priors, held body/tumour weight and dose) to 1e-9: one code path."""
    item, settings = ITEMS[0], MetaFitSettings()
    row = runner.fit_item(item)
    assert row["status"] == "ok" and row["converged"] and row["error"] is None
    model = runner._load(settings.model)
    vary = list(settings.vary)
    held = {k: v for k, v in runner._dataset_params(model, item, settings).items() if k not in vary}
    start, bounds = {}, {}
    for n in vary:
        lo, hi = runner._bounds(model, n, settings.prior[n][0])
        start[n], bounds[n] = settings.prior[n][0], (np.exp(lo), np.exp(hi))
    data = pd.DataFrame({"time_h": item.times_h, "tissue": "tumour", "value": item.tumour_pct_id})
    data.attrs.update(name="meta_a", dose_ug=held.pop("dose"), parameters=held)
    single = nanopk.fit(model, data, vary=vary, error_model="log", weighting="none",
                        error_params={"sigma": settings.sigma_log}, body_weight="model", start=start, bounds=bounds,
                        priors={n: settings.prior[n] for n in vary}, rtol=settings.rtol, atol=settings.atol,
                        max_nfev=settings.max_nfev, **FIT_OPTIONS)
    assert row["params"] == pytest.approx({n: single.params[n].value for n in vary}, rel=1e-9)
    obj = item_objective(item, settings)
    assert (obj.error_model, obj.weighting, obj.error_params["sigma"]) == ("log", "none", settings.sigma_log)
    assert obj.priors == {n: tuple(settings.prior[n]) for n in vary}


def test_a_joint_objective_of_datasets_gives_their_separate_fits():
    """JointObjective of two datasets' meta objectives, nothing tied: each dataset's estimates are its
    fit_item estimates to 1e-3 (the same optimum; the joint search takes another path to it)."""
    settings = MetaFitSettings(vary=("PATC_tumour", "P_tumour", "Kmax_tumour"))
    rows = {it.id: runner.fit_item(it, settings) for it in ITEMS}
    joint = nanopk.fit(objective=JointObjective({it.id: item_objective(it, settings) for it in ITEMS}),
                       max_nfev=400, **FIT_OPTIONS)
    for it in ITEMS:
        assert rows[it.id]["converged"]
        got = {n: joint.params[f"{n}__{it.id}"].value for n in settings.vary}
        assert got == pytest.approx(rows[it.id]["params"], rel=1e-3)


def test_item_objective_refuses_too_few_points():
    """Fewer positive tumour values at t > 0 than min_points: FitError naming the dataset and the setting."""
    few = MetaItem("few", np.array([0.0, 24.0]), np.array([0.1, 1.0]))
    with pytest.raises(FitError, match=r"dataset 'few': 1 positive tumour value\(s\) at t > 0; need 2 "
                                       r"\(MetaFitSettings.min_points\)"):
        item_objective(few)
