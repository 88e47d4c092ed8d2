"""Chou et al. 2023's per-dataset fits, run in nanopk, against the Nano-Tumor Database they were fitted to.

Chou et al., J Control Release 2023;361:53 (doi:10.1016/j.jconrel.2023.07.040) fitted the
Lin-lab tumour sub-model to each of 378 Nano-Tumor datasets and published the fitted
parameters (UFPBPK/Nano-AI-PBPK-G1 ``Model_dataset.xlsx``: VTC, QTC, BVT, PT, PATC,
KTRESmax, KTRES50, KTRESn, KTRESrelease, with BW).  Run with those values, a model that
is theirs gives their fits back; these tests measure how closely nanopk does.

nanopk's ``mouse_tumour`` has the published tumour equations (``epr.lin_tumour``) but
differs from the published whole body (``Main_Code.R``) in three places, which the
Chou 2023 configuration below sets back:

1. the liver drains at the hepatic artery flow only (``RV = QL*CVL + ...``):
   ``circulation.whole_body(liver_outflow="hepatic_artery")``;
2. muscle and rest of body have phagocytes (``KMRES*``, ``KRRES*``):
   ``phagocyte_organs`` and the Hill-uptake organs include them;
3. the tumour's flow and mass come out of the rest of the body
   (``QRC = 1 - (... + QTC ...)``, ``VRC = 1 - (... + VTC + VPlasC)``): per dataset
   ``f_Q_rest`` and ``f_V_rest`` are lowered by QTC and VTC.
"""
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import nanopk
from nanopk.spec import model_path
from nanopk import SpecError
from nanopk.meta import read_nano_tumor_db
from nanopk.meta import runner

# Where the Nano-Tumor Database lies and the skip rule, shared with tests/test_meta.py: outside CI a
# missing data folder skips; in CI (CI=true) the db fixture fails.
from test_meta import _HAVE_RAW, _MISSING, RAW, needs_raw  # noqa: E402

#: Time windows (h), (lo, hi], of the per-window median signed log10(model / measured).
WINDOWS = ((0, 1), (1, 4), (4, 12), (12, 30), (30, 80), (80, math.inf))
#: Published per-dataset values → nanopk parameters (the tumour's physiology; the
#: Hill and exchange parameters already carry nanopk names in ``item.published``).
PHYSIOLOGY = {"VTC": "f_V_tumour", "QTC": "f_Q_tumour", "BVT": "f_B_tumour"}
FITTED = ("PATC_tumour", "P_tumour", "Kmax_tumour", "K50_tumour", "n_tumour", "Krelease_tumour")
#: Datasets whose published values lie outside lin_tumour's bounds (n_tumour ≥ 0.1,
#: K50_tumour ≥ 0.01 h): counted and named, not simulated.
OUT_OF_BOUNDS = {
    "135": ["n_tumour"], "138": ["n_tumour"], "163": ["n_tumour"], "164": ["n_tumour"], "180": ["n_tumour"],
    "241": ["n_tumour"], "274": ["n_tumour"], "285": ["K50_tumour", "n_tumour"], "286": ["K50_tumour"],
    "321": ["K50_tumour"], "337": ["K50_tumour"], "338": ["K50_tumour"], "345": ["K50_tumour"],
    "361": ["n_tumour"], "362": ["n_tumour"], "365": ["n_tumour"],
}


def chou2023_spec_text() -> str:
    """mouse_tumour's spec with the published whole body of Chou 2023 (points 1 and 2 above)."""
    text = model_path("mouse_tumour").read_text(encoding="utf-8")
    edits = [
        ('name = "mouse_tumour"', 'name = "mouse_tumour_chou2023"'),
        ('phagocyte_organs = ["liver", "spleen", "kidney", "lung"]',
         'phagocyte_organs = ["liver", "spleen", "kidney", "lung", "muscle", "rest"]\nliver_outflow = "hepatic_artery"'),
        ('use = "clearance.hill_phagocytic_uptake"\norgans = ["liver", "spleen", "kidney", "lung"]',
         'use = "clearance.hill_phagocytic_uptake"\norgans = ["liver", "spleen", "kidney", "lung", "muscle", "rest"]'),
    ]
    for old, new in edits:
        assert text.count(old) == 1, f"models/mouse_tumour.toml no longer has {old!r} once"
        text = text.replace(old, new)
    return text


@pytest.fixture(scope="module")
def chou_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("chou2023") / "mouse_tumour_chou2023.toml"
    path.write_text(chou2023_spec_text(), encoding="utf-8")
    model = nanopk.load_model(path)
    model.compile()
    return model


@pytest.fixture(scope="module")
def db():
    if not _HAVE_RAW:
        pytest.fail(f"{_MISSING}; CI=true, so the published data must be present")
    return read_nano_tumor_db(RAW)


def reproduce(model, db, tumour_from_rest: bool) -> dict:
    """Every dataset simulated with its published parameters; the residual figures."""
    fq_rest, fv_rest = model.parameters["f_Q_rest"].value, model.parameters["f_V_rest"].value
    times, errors, per_dataset, de24, skipped, worst_balance = [], [], [], [], {}, 0.0
    for item in db:
        t, y = runner._tumour_points(item)
        pub = item.published
        values = {name: pub[name] for name in FITTED} | {nano: pub[col] for col, nano in PHYSIOLOGY.items()}
        bad = sorted(k for k, v in values.items() if not (model.parameters[k].bounds[0] <= v <= model.parameters[k].bounds[1]))
        if bad:
            skipped[item.id] = bad
            continue
        params = {"BW": item.body_weight_g / 1000.0, **values}
        if tumour_from_rest:
            params.update(f_Q_rest=fq_rest - pub["QTC"], f_V_rest=fv_rest - pub["VTC"])
        grid = sorted({0.0, 24.0, *t.tolist()})
        sim = model.simulate(grid, params=params)
        worst_balance = max(worst_balance, float(np.max(np.abs(sim["total"].to_numpy()[1:] - 100.0))))
        tumour = sim["tumour"].reindex(grid).to_numpy()
        e = np.log10(np.interp(t, grid, tumour) / y)
        times.append(t)
        errors.append(e)
        per_dataset.append(np.median(np.abs(e)))
        if pub.get("DE24") and np.isclose(t, 24.0).any():
            # DE24 as the database computes it: trapezoid over 0 h and the measured times ≤ 24 h
            tt = np.r_[0.0, t[t <= 24.0]]
            de24.append(math.log10(np.trapezoid(np.interp(tt, grid, tumour), tt) / 24.0 / pub["DE24"]))
    T, E, de24 = np.concatenate(times), np.concatenate(errors), np.array(de24)
    return {
        "n": len(per_dataset), "skipped": skipped, "worst_balance": worst_balance,
        "windows": [float(np.median(E[(T > lo) & (T <= hi)])) for lo, hi in WINDOWS],
        "per_dataset": float(np.median(per_dataset)),
        "de24_n": len(de24), "de24_bias": float(np.median(de24)),
        "de24_within_2fold": float(np.mean(np.abs(de24) < math.log10(2.0))),
    }


@pytest.fixture(scope="module")
def chou_figures(chou_model, db):
    return reproduce(chou_model, db, tumour_from_rest=True)


@needs_raw
def test_out_of_bounds_datasets_are_counted_and_named(chou_figures):
    """362 of the 378 Chou 2023 datasets simulate; 16 have published n < 0.1 or K50 < 0.01 h, outside lin_tumour's bounds."""
    assert chou_figures["skipped"] == OUT_OF_BOUNDS
    assert chou_figures["n"] == 362 == 378 - len(OUT_OF_BOUNDS)


@needs_raw
def test_chou2023_configuration_reproduces_the_database(chou_figures):
    """Chou 2023's per-dataset fits in nanopk: median bias per window, per-dataset error and DE24 as measured (±0.01 log10)."""
    # Measured 2026-12-07 (issue 19).  The published fits themselves sit above the early
    # data (median +0.14 log10 in the first hour, +0.00 after 80 h); the default
    # mouse_tumour (next test) adds +0.03 early and +0.19 late to that.
    expected = [0.139, 0.116, 0.072, 0.086, 0.031, 0.000]
    assert chou_figures["windows"] == pytest.approx(expected, abs=0.01)
    assert max(abs(b) for b in chou_figures["windows"]) < 0.15
    assert chou_figures["per_dataset"] == pytest.approx(0.118, abs=0.01)
    assert chou_figures["de24_n"] == 320
    assert chou_figures["de24_bias"] == pytest.approx(0.066, abs=0.01)
    assert chou_figures["de24_within_2fold"] == pytest.approx(0.875, abs=0.01)
    assert chou_figures["worst_balance"] < 1e-6  # %ID: mass balance exact in every dataset


@needs_raw
def test_default_mouse_tumour_sits_above_the_published_fits(db):
    """The default mouse_tumour (portal flow leaving the liver, no muscle/rest phagocytes) runs 0.03–0.19 log10 above the Chou 2023 configuration."""
    figures = reproduce(runner._load("mouse_tumour"), db, tumour_from_rest=False)
    assert figures["n"] == 362
    assert figures["windows"] == pytest.approx([0.171, 0.151, 0.107, 0.114, 0.115, 0.185], abs=0.01)
    assert figures["per_dataset"] == pytest.approx(0.146, abs=0.01)
    assert figures["de24_bias"] == pytest.approx(0.097, abs=0.01)


def test_liver_outflow_choice_is_checked(tmp_path):
    """An unknown liver_outflow names the option and its two choices."""
    path = tmp_path / "bad.toml"
    path.write_text(chou2023_spec_text().replace('liver_outflow = "hepatic_artery"', 'liver_outflow = "portal"'), encoding="utf-8")
    with pytest.raises(SpecError, match=r"liver_outflow must be one of 'hepatic_vein', 'hepatic_artery' \(got 'portal'\)"):
        nanopk.load_model(path)


def test_hepatic_artery_outflow_keeps_mass_and_holds_more_in_the_liver(chou_model):
    """liver_outflow="hepatic_artery" (Chou 2023 Main_Code.R: RV = QL*CVL + ...): mass balance exact, liver %ID at 0.5 h 1.42× the default's."""
    times = [0.0, 0.5, 24.0, 168.0]
    chou = chou_model.simulate(times)
    default = runner._load("mouse_tumour").simulate(times)
    assert np.allclose(chou["total"].to_numpy()[1:], 100.0, atol=1e-6)
    ratio = chou["liver"].iloc[1] / default["liver"].iloc[1]
    assert ratio == pytest.approx(1.416, rel=0.01)  # measured; (Q_liver + Q_spleen)/Q_liver = 1.55 bounds it


_VARIED = ["f_Q_liver", "f_Q_spleen", "f_B_liver", "Kmax_liver", "Kmax_muscle", "Kmax_rest", "PATC_tumour",
           "Kmax_tumour", "K50_tumour", "f_Q_tumour", "f_V_tumour"]


@settings(max_examples=4, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_chou2023_configuration_conserves_mass_at_random_parameters(chou_model, data):
    """Anywhere inside the bounds, the Chou 2023 configuration (hepatic-artery outflow, muscle/rest phagocytes): total = 100 %ID (1e-6), no negative state."""
    params = {}
    for name in _VARIED:
        lo, hi = chou_model.parameters[name].bounds
        lo = max(lo, 1e-3)  # log-uniform needs a positive floor (Kmax may be 0)
        params[name] = math.exp(data.draw(st.floats(math.log(lo), math.log(hi)), label=name))
    sim = chou_model.simulate(np.linspace(0.0, 168.0, 25), params=params, states=True)
    np.testing.assert_allclose(sim["total"], 100.0, atol=1e-6)
    states = sim[[c for c in sim if c.startswith("state:")]].to_numpy()
    assert states.min() >= -1e-9 * sim.attrs["dose_ug"]
