"""Meta-analysis: the Nano-Tumor Database reader, the resumable parallel runner, summaries."""
import json
import math
import os
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from nanopk import DataError
from nanopk.meta import read_collection, read_dataset_folder, read_nano_tumor_db, run_meta, summarise
from nanopk.delivery import time_average
from nanopk.meta import runner

REPO = Path(__file__).resolve().parents[1]
RAW = REPO.parent / "shared" / "datasets" / "raw"
_HAVE_RAW = (RAW / "UFPBPK__Nano-AI-PBPK-G1").is_dir()
_MISSING = f"Nano-Tumor Database files not found under {RAW}"
#: Outside CI a missing data folder skips these tests (with the reason); in CI (CI=true) they
#: run and the ``db`` fixture fails them instead of skipping silently (issue 17 #13).
_IN_CI = os.environ.get("CI", "").lower() == "true"
needs_raw = pytest.mark.skipif(not _HAVE_RAW and not _IN_CI, reason=_MISSING)

#: Six datasets observed to 168 h (so the empirical prior has enough informative datasets).
SMALL = ["1", "3", "4", "28", "38", "39"]


@pytest.fixture(scope="module")
def db():
    if not _HAVE_RAW:
        pytest.fail(f"{_MISSING}; CI=true, so the published data must be present")
    return read_nano_tumor_db(RAW)


@needs_raw
def test_reader_forward_fills_ids_and_joins_descriptors(db):
    """378 datasets, 1722 rows (PROVENANCE.md §1); dataset 1 is 6/24/168 h; descriptors normalised."""
    assert len(db) == 378
    assert sum(it.n_points for it in db) == 1722
    first = db["1"]
    np.testing.assert_array_equal(first.times_h, [6.0, 24.0, 168.0])
    assert first.tumour_pct_id[0] == pytest.approx(1.641248, rel=1e-6)
    assert (first.dose_mg_kg, first.body_weight_g, first.tumour_weight_g) == (20.0, 20.0, 0.12)
    assert first.dose_ug == pytest.approx(400.0)  # 20 mg/kg × 20 g
    frame = db.to_frame()
    assert set(frame["type"]) == {"inorganic", "organic", "hybrid"}
    assert set(frame["targeting"].dropna()) == {"active", "passive"}
    # Core material from the Nano-ML-AI summary table, matched on (DE24, DE168, DEmax).
    assert frame["material"].notna().sum() >= 360
    assert frame.loc[frame["id"] == "1", "material"].item() == "gold"


@needs_raw
def test_published_delivery_medians(db):
    """Cheng et al., ACS Nano 2020 (PMID 32078303): median DE24 0.76 %ID and DE168 0.35 %ID over
    376 datasets; the 378-row Model_dataset.xlsx gives 0.735 and 0.34, within 5 %.  The observed
    tumour %ID at 24 h (332 datasets with a 24 h point) has median 0.77."""
    frame = db.to_frame()
    assert frame["published_DE24"].median() == pytest.approx(0.76, rel=0.05)
    assert frame["published_DE168"].median() == pytest.approx(0.35, rel=0.05)
    at24 = [dict(zip(it.times_h, it.tumour_pct_id))[24.0] for it in db if 24.0 in it.times_h]
    assert len(at24) == 332
    assert np.median(at24) == pytest.approx(0.76, rel=0.05)


def test_reader_errors_name_the_missing_file(tmp_path):
    """A folder without the workbook: one DataError naming the file."""
    with pytest.raises(DataError, match="no 'Time-course pharmacokinetics data.xlsx'"):
        read_nano_tumor_db(tmp_path)


def test_folder_of_nanopk_datasets():
    """The bundled datasets with tumour rows (Arnida 2010, Liu 2013, Wang 2015) become items in %ID."""
    coll = read_collection(REPO / "datasets")
    assert set(coll.ids) == {"arnida2010_peg_au_rod", "arnida2010_peg_au_sphere_50nm", "liu2013_peg_au_2nm",
                             "wang2015_au_sio2_rod_peg", "wang2015_au_sio2_rod_bsa"}
    rod = coll["arnida2010_peg_au_rod"]
    assert rod.descriptors["material"] == "gold" and rod.descriptors["type"] == "inorganic"
    assert rod.times_h[-1] == 168.0 and np.all(rod.tumour_pct_id > 0)
    assert read_dataset_folder(REPO / "datasets").ids == coll.ids


def _rows(store):
    con = sqlite3.connect(store)
    try:
        return {r[0]: r[1:] for r in con.execute("SELECT id, DE24, DE168, DEmax, params, run_id FROM results")}
    finally:
        con.close()


@needs_raw
def test_dask_cluster_gives_the_serial_numbers(db, tmp_path):
    """Six datasets (empirical prior: stage 1 + stage 2) in this process and on a Dask
    LocalCluster: identical DE24, DE168, DEmax and parameters."""
    distributed = pytest.importorskip("distributed")
    coll = db.subset(SMALL)
    serial = run_meta(coll, store=tmp_path / "serial.sqlite", workers=1, progress=False)
    assert serial["complete"] and serial["prior"] == "empirical" and serial["n_informative"] == 6
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None) as cluster:
        on_dask = run_meta(coll, store=tmp_path / "dask.sqlite", scheduler=cluster.scheduler_address, progress=True)
    assert on_dask["executor"] == "dask" and on_dask["complete"]
    a, b = _rows(tmp_path / "serial.sqlite"), _rows(tmp_path / "dask.sqlite")
    assert set(a) == set(b) == set(SMALL)
    for k in SMALL:
        np.testing.assert_allclose(a[k][:3], b[k][:3], rtol=1e-9)
        assert json.loads(a[k][3]) == pytest.approx(json.loads(b[k][3]), rel=1e-9)


@needs_raw
def test_local_processes_give_the_serial_numbers(db, tmp_path):
    """The default executor (spawned local processes) agrees with the serial run."""
    coll = db.subset(SMALL[:3])
    serial = run_meta(coll, store=tmp_path / "s.sqlite", workers=1, progress=False, prior="published")
    pooled = run_meta(coll, store=tmp_path / "p.sqlite", workers=2, progress=False, prior="published")
    assert pooled["executor"] == "processes" and serial["n_ok"] == pooled["n_ok"] == 3
    a, b = _rows(tmp_path / "s.sqlite"), _rows(tmp_path / "p.sqlite")
    for k in SMALL[:3]:
        np.testing.assert_allclose(a[k][:3], b[k][:3], rtol=1e-9)


class Killed(Exception):
    """Stands in for a kill signal in the middle of a run."""


@needs_raw
def test_interrupted_run_resumes_without_refitting(db, tmp_path, monkeypatch):
    """Kill the run inside the 4th fit; the 3 finished rows are in the store; restarting fits
    only the other 3 (counted) and leaves the first rows untouched (their run_id)."""
    coll = db.subset(SMALL)
    store = tmp_path / "meta.sqlite"
    calls = []
    real = runner._fit_one

    def dying(item, settings):
        calls.append(item.id)
        if len(calls) == 4:
            raise Killed("simulated kill")
        return real(item, settings)

    monkeypatch.setattr(runner, "_fit_one", dying)
    with pytest.raises(Killed):
        run_meta(coll, store=store, workers=1, progress=False, prior="published")
    first = _rows(store)
    assert sorted(first) == sorted(SMALL[:3])
    con = sqlite3.connect(store)
    assert con.execute("SELECT interrupted FROM runs").fetchall() == [(1,)]
    con.close()

    calls.clear()
    monkeypatch.setattr(runner, "_fit_one", lambda item, settings: (calls.append(item.id), real(item, settings))[1])
    out = run_meta(coll, store=store, workers=1, progress=False, prior="published")
    assert sorted(calls) == sorted(SMALL[3:])
    assert out["n_already_done"] == 3 and out["n_fitted"] == 3 and out["complete"]
    after = _rows(store)
    for k in SMALL[:3]:
        assert after[k] == first[k]  # same numbers, same run_id: not refitted
    # A third call has nothing left to do.
    calls.clear()
    assert run_meta(coll, store=store, workers=1, progress=False, prior="published")["n_fitted"] == 0
    assert calls == []


@needs_raw
def test_limit_stops_and_summary_reports(db, tmp_path):
    """``limit`` fits part of the collection; ``summarise`` reports medians, classes, convergence."""
    coll = db.subset(SMALL)
    store = tmp_path / "m.sqlite"
    part = run_meta(coll, store=store, workers=1, progress=False, prior="published", limit=2)
    assert part["n_fitted"] == 2 and not part["complete"]
    run_meta(coll, store=store, workers=1, progress=False, prior="published")
    s = summarise(store)
    assert s["n_datasets"] == 6 and s["n_ok"] == 6 and 0 < s["fraction_converged"] <= 1
    assert set(s["medians"]) == {"DE24", "DE168", "DEmax"}
    assert s["by_class"]["material"]["gold"]["n"] >= 3
    assert s["wall_time_s"] > 0 and len(s["runs"]) == 2
    row = next(r for r in s["datasets"] if r["id"] == "1")
    # Dataset 1 was observed at 24 h (2.06 %ID) and 168 h (2.01 %ID): the fit follows the data.
    assert row["tumour_24h"] == pytest.approx(2.06, rel=0.35) and row["tumour_168h"] == pytest.approx(2.01, rel=0.35)
    json.dumps(s)  # JSON-ready for the CLI


def test_run_meta_checks_model_and_names(tmp_path):
    """A model without a tumour or an unknown parameter fails before any fit."""
    from nanopk import FitError, ModelError
    from nanopk.meta import Collection

    empty = Collection([], name="empty")
    with pytest.raises(ModelError, match="no 'tumour' observable"):
        run_meta(empty, model="mouse_pbpk", store=tmp_path / "x.sqlite", vary=["Kmax_liver"], progress=False)
    with pytest.raises(ModelError, match="Kmax_tumor"):
        run_meta(empty, store=tmp_path / "x.sqlite", vary=["Kmax_tumor"], progress=False)
    with pytest.raises(FitError, match="`prior` must be one of"):
        run_meta(empty, store=tmp_path / "x.sqlite", prior="flat", progress=False)


def test_too_few_informative_datasets_fall_back_to_the_published_prior(tmp_path):
    """Five bundled tumour datasets (two observed to 168 h; Wang 2015 ends at 72 h) are too few for an
    empirical prior: no stage-1 fits, the published prior is used and the summary says so."""
    coll = read_collection(REPO / "datasets")
    store = tmp_path / "bundled.sqlite"
    out = run_meta(coll, store=store, workers=1, progress=False)
    assert out["prior"] == "empirical" and out["prior_used"] == "published"
    assert out["n_fitted"] == 5 and out["n_ok"] == 5
    s = summarise(store)
    assert s["prior"]["kind"].startswith("published (only 2 informative")
    rod = next(r for r in s["datasets"] if r["id"] == "arnida2010_peg_au_rod")
    # The fit follows the 168 h measurement (Arnida et al. 2010; %ID/g × the tumour mass the
    # data layer used, which the sidecar does not give: compared with the item's own value).
    measured = coll["arnida2010_peg_au_rod"].tumour_pct_id[-1]
    assert coll["arnida2010_peg_au_rod"].times_h[-1] == 168.0
    assert rod["tumour_168h"] == pytest.approx(measured, rel=0.5)


#: Published prior, σ = 0.3: the scipy loop that ``fit_item`` ran before it called ``nanopk.fit``
#: (captured 30 datasets; largest relative difference at 24 h 4e-5, at 168 h 2e-4): tumour %ID
#: at 24 h, at 168 h, and the fitted parameters.
_BEFORE_NANOPK_FIT = {
    "1": (2.135910069407512, 1.9671505912605713,
          {"PATC_tumour": 0.00253635, "P_tumour": 0.27011, "Kmax_tumour": 0.360274, "K50_tumour": 36.6844,
           "Krelease_tumour": 0.0164797}),
    "4": (5.66935478336161, 1.566691679391139,
          {"PATC_tumour": 0.00786997, "P_tumour": 0.161152, "Kmax_tumour": 0.263144, "K50_tumour": 116.681,
           "Krelease_tumour": 0.0301313}),
}


@needs_raw
@pytest.mark.parametrize("key", sorted(_BEFORE_NANOPK_FIT))
def test_fit_item_reproduces_the_former_engine(db, key):
    """fit_item through nanopk.fit (priors as residual rows) gives the former scipy loop's MAP:
    tumour %ID at 24 and 168 h to 1e-3, parameters to 2e-3 (solver noise / finite-difference
    steps differ)."""
    row = runner.fit_item(db[key])
    at24, at168, params = _BEFORE_NANOPK_FIT[key]
    assert row["status"] == "ok" and row["converged"] and row["error"] is None
    assert row["tumour_24h"] == pytest.approx(at24, rel=1e-3) and row["tumour_168h"] == pytest.approx(at168, rel=1e-3)
    assert row["params"] == pytest.approx(params, rel=2e-3)


def test_fit_item_reports_failures_as_rows_and_converged_honestly():
    """A model without a tumour: status 'failed' with the error, no exception; too few points: 'skipped';
    an evaluation budget too small: status 'ok' but converged False, and the error says why."""
    from nanopk.meta import MetaItem
    from nanopk.meta.runner import MetaFitSettings

    item = MetaItem("synthetic", np.array([1.0, 6.0, 24.0, 72.0]), np.array([0.5, 1.5, 2.0, 1.2]), dose_mg_kg=5.0,
                    body_weight_g=20.0, tumour_weight_g=0.2)
    row = runner.fit_item(item, MetaFitSettings(model="mouse_pbpk", vary=("Kmax_liver",)))
    assert row["status"] == "failed" and not row["converged"]
    assert row["error"] == "ModelError: model 'mouse_pbpk' has no 'tumour' observable"
    few = MetaItem("few", np.array([0.0, 24.0]), np.array([0.1, 1.0]))
    assert runner.fit_item(few)["status"] == "skipped"
    short = runner.fit_item(item, MetaFitSettings(max_nfev=2))
    assert short["status"] == "ok" and short["converged"] is False
    assert "max_nfev = 2" in short["error"] and short["nfev"] <= 3
    done = runner.fit_item(item)
    assert done["converged"] and done["error"] is None and done["nfev"] <= 200
    assert done["params"]["PATC_tumour"] > 0 and 0 < done["DE24"] < 100


@needs_raw
def test_published_de_values_are_time_averages(db):
    """Why DE24 and DE168 are averages: in the Nano-Tumor Database (Chou et al. 2023,
    Cheng et al. 2020's values), the stored DE24 of the datasets measured at 24 h lies a
    median 0.025 log10 units from the trapezoidal average of the measurements over 0–24 h
    and 0.137 from the 24 h measurement; DE168 of those measured at 168 h 0.059 from the
    average and 0.36 from the measurement.  Asserted: within 0.04 and 0.08 of the averages,
    beyond 0.1 and 0.25 of the measurements."""
    for T, key, close, far in ((24.0, "DE24", 0.04, 0.1), (168.0, "DE168", 0.08, 0.25)):
        to_average, to_value = [], []
        for item in db:
            t = np.asarray(item.times_h, float)
            y = np.asarray(item.tumour_pct_id, float)
            stored = item.published.get(key)
            at = np.isclose(t, T)
            if stored is None or not at.any() or y[at][0] <= 0:
                continue
            tt, yy = np.r_[0.0, t], np.r_[0.0, y]  # nothing in the tumour at injection
            to_average.append(abs(math.log10(stored / time_average(tt, yy, T))))
            to_value.append(abs(math.log10(stored / y[at][0])))
        assert len(to_average) >= (300 if T == 24.0 else 20)
        assert np.median(to_average) < close < far < np.median(to_value)


def test_a_store_from_before_the_added_columns_opens(tmp_path):
    """A store written before rows carried tumour_24h/tumour_168h and a settings key opens with
    the columns added and its rows kept (NULL there); run_meta then refuses to resume it
    (tests/test_meta_faults.py), since the rows' settings are unknown."""
    store = tmp_path / "old.sqlite"
    con = sqlite3.connect(store)
    old = runner._COLUMNS.replace(",\n    tumour_24h REAL, tumour_168h REAL, settings_key TEXT", "")
    assert "tumour_24h" not in old and "settings_key" not in old
    con.execute(f"CREATE TABLE results {old}")
    con.execute("INSERT INTO results (id, status, converged, DE24) VALUES ('7', 'ok', 1, 0.5)")
    con.commit()
    con.close()
    assert runner.done_ids(store) == {"7"}
    con = runner.open_store(store)
    rows = con.execute("SELECT id, DE24, tumour_24h, tumour_168h, settings_key FROM results").fetchall()
    con.close()
    assert rows == [("7", 0.5, None, None, None)]
