"""Faults of `nanopk meta`: a resume with other settings, SIGKILL/SIGTERM in each stage, orphaned workers.

The collection is seven synthetic tumour time courses written to a temporary folder
(no published data needed): six observed to 168 h, so the default empirical prior
has a stage 1 (at least ``MIN_INFORMATIVE`` = 5 informative datasets), and one to 48 h.
"""
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from nanopk.cli import main
from nanopk.meta import read_collection, run_meta, summarise
from nanopk.meta import runner
from nanopk.meta.runner import MetaFitSettings, MetaStoreError

try:
    import psutil
except ImportError:  # fall back on /proc (Linux)
    psutil = None

#: Relative tolerance of "the same numbers": a resumed store against an uninterrupted run.
#: Every row is the same deterministic computation, so only the executor (spawned
#: processes against this one) could differ; test_meta.py pins that at 1e-9 too.
RTOL = 1e-9
N_INFORMATIVE, N_DATASETS = 6, 7


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """Seven tumour %ID time courses, rise-then-slow-decline curves of different heights."""
    out = tmp_path_factory.mktemp("collection")
    for i in range(N_DATASETS):
        t = np.array([1.0, 4.0, 24.0, 72.0, 168.0]) if i < N_INFORMATIVE else np.array([1.0, 4.0, 24.0, 48.0])
        y = (1.0 + 0.6 * i) * (1 - np.exp(-t / (6.0 + 3 * i))) * np.exp(-t / (300.0 + 80 * i))
        name = f"synthetic_{i}"
        rows = ["time,tissue,value"] + [f"{a:g},tumour,{b:.4f}" for a, b in zip(t, y)]
        (out / f"{name}.csv").write_text("\n".join(rows) + "\n")
        (out / f"{name}.json").write_text(json.dumps({
            "name": name, "source": {"citation": "synthetic curve for nanopk's fault tests", "doi": None},
            "species": "mouse", "body_weight_g": 20 + i, "route": "iv", "dose": {"value": 100, "unit": "ug"},
            "time_unit": "h", "value_unit": "%ID", "particle": {"material": "Au" if i % 2 else "liposome"}}))
    return out


@pytest.fixture(scope="module")
def reference(folder, tmp_path_factory):
    """An uninterrupted run (default empirical prior) in this process, and its summary."""
    store = tmp_path_factory.mktemp("ref") / "ref.sqlite"
    out = run_meta(read_collection(folder), store=store, workers=1, progress=False)
    assert out["complete"] and out["prior_used"] == "empirical" and out["n_informative"] == N_INFORMATIVE
    assert out["n_ok"] == N_INFORMATIVE + N_DATASETS  # stage 1 and stage 2 rows
    return store, summarise(store)


@pytest.fixture(scope="module")
def published_store(folder, tmp_path_factory):
    """A store with one row fitted with the published prior (``limit=1``)."""
    store = tmp_path_factory.mktemp("pub") / "pub.sqlite"
    out = run_meta(read_collection(folder), store=store, workers=1, progress=False, prior="published", limit=1)
    assert out["n_fitted"] == 1 and not out["complete"]
    return store


def _count(store, table):
    try:
        con = sqlite3.connect(str(store), timeout=30)
        try:
            return con.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
        finally:
            con.close()
    except sqlite3.OperationalError:  # not created yet
        return 0


def _snapshot(store):
    con = sqlite3.connect(str(store))
    try:
        return {t: con.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall() for t in ("results", "stage1", "runs")}
    finally:
        con.close()


def _copy(store, tmp_path):
    dst = tmp_path / "copy.sqlite"
    shutil.copy(store, dst)
    return dst


# --------------------------------------------------------------------------- other settings
def test_resume_with_another_prior_is_refused_by_the_cli(folder, published_store, tmp_path, capsys):
    """Issue 17 #7: the default (empirical) prior on a store of `--prior published` rows exits 2
    naming the store, each differing setting (stored, now) and the ways on; nothing is written."""
    store = _copy(published_store, tmp_path)
    before = _snapshot(store)
    assert main(["meta", str(folder), "--store", str(store), "--workers", "1", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"nanopk meta: error: store {str(store)!r} holds 1 result row(s) fitted with other "
                          f"settings; resuming would mix them with rows fitted now under one summary.")
    assert '  prior_kind: stored "published", now "empirical"\n' in err
    assert "  informative_t_h: stored (not set), now 168.0\n" in err
    assert "Use a new --store for these settings, or --overwrite to discard the rows in" in err
    assert _snapshot(store) == before


# Each change alters a row's result; drawn: which setting and its new value.
_CHANGES = st.one_of(
    st.builds(lambda v: ("max_nfev", {"settings": MetaFitSettings(max_nfev=v)}, v), st.integers(1, 199)),
    st.builds(lambda v: ("sigma_log", {"settings": MetaFitSettings(sigma_log=v)}, v),
              st.floats(0.05, 2.0).filter(lambda v: v != 0.3)),
    st.builds(lambda v: ("rtol", {"settings": MetaFitSettings(rtol=v)}, v),
              st.sampled_from([1e-6, 1e-8, 1e-9])),
    st.builds(lambda v: ("min_points", {"settings": MetaFitSettings(min_points=v)}, v), st.integers(3, 6)),
    st.builds(lambda v: ("vary", {"vary": list(v)}, list(v)),
              st.lists(st.sampled_from(runner.DEFAULT_VARY), min_size=1, max_size=4, unique=True)),
    st.builds(lambda v: ("prior.P_tumour", {"prior": {"P_tumour": (v, 1.35)}}, [v, 1.35]),
              st.floats(0.001, 10.0).filter(lambda v: v != 0.08)),
)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(change=_CHANGES)
def test_any_changed_setting_is_refused_before_fitting(folder, published_store, tmp_path, change):
    """Any setting that changes a row's result (budget, σ, tolerance, minimum points, fitted
    names, prior) is refused, the line naming it shows the stored and the new value, and the
    store is left as it was."""
    name, kwargs, value = change
    kwargs = {"prior": "published", **kwargs}
    if name == "prior.P_tumour":
        value_line = f"  prior.P_tumour: stored [0.08, 1.35], now {json.dumps(value)}"
    else:
        value_line = f"  {name}: stored {json.dumps(runner._plain(getattr(MetaFitSettings(), name)))}, now {json.dumps(value)}"
    store = tmp_path / "changed.sqlite"
    shutil.copy(published_store, store)
    before = _snapshot(store)
    try:
        with pytest.raises(MetaStoreError, match=re.escape(value_line + "\n")):
            run_meta(read_collection(folder), store=store, workers=1, progress=False, **kwargs)
        assert _snapshot(store) == before
    finally:
        store.unlink()


def test_same_settings_resume_and_overwrite_starts_afresh(folder, published_store, tmp_path):
    """The same settings resume (the stored row is kept, the others fitted); ``overwrite=True``
    discards the rows of other settings and leaves only rows of the new key."""
    coll = read_collection(folder)
    store = _copy(published_store, tmp_path)
    kept = _snapshot(store)["results"]
    out = run_meta(coll, store=store, workers=1, progress=False, prior="published", limit=1)
    assert out["n_already_done"] == 1 and out["n_fitted"] == 1
    assert kept[0] in _snapshot(store)["results"]
    new = run_meta(coll, store=store, workers=1, progress=False, prior="published",
                   settings=MetaFitSettings(max_nfev=50), limit=1, overwrite=True)
    assert new["n_already_done"] == 0 and new["n_fitted"] == 1 and new["settings_key"] != out["settings_key"]
    con = sqlite3.connect(store)
    try:
        assert con.execute("SELECT DISTINCT settings_key FROM results").fetchall() == [(new["settings_key"],)]
        assert con.execute("SELECT COUNT(*) FROM runs").fetchone() == (1,)
    finally:
        con.close()
    s = summarise(store)
    assert s["settings_key"] == new["settings_key"] and s["settings"]["requested"]["max_nfev"] == 50


def test_a_changed_empirical_prior_is_refused_after_stage_one(folder, reference, tmp_path):
    """Same request, other collection: without one informative dataset the empirical prior
    differs from the one the stored stage-2 rows used; refused, naming the prior."""
    store = _copy(reference[0], tmp_path)
    coll = read_collection(folder)
    smaller = coll.subset([i for i in coll.ids if i != "synthetic_0"])
    with pytest.raises(MetaStoreError, match=r"fitted with another empirical prior \(the collection's informative "
                                             r"datasets or their stage-1 fits changed since\)[^\n]*\n  prior\.K50_tumour: stored "
                                             r"\[6\.04\d+, 1\.066\d+\], now \[5\.27\d+, 0\.5\]\n"):
        run_meta(smaller, store=store, workers=1, progress=False)


def test_a_store_without_settings_keys_is_refused_but_summarised(folder, tmp_path):
    """A store written before settings keys: run_meta refuses it (it cannot tell the rows'
    settings); summarise reads it and says the settings cannot be verified."""
    store = tmp_path / "old.sqlite"
    con = sqlite3.connect(store)
    old = runner._COLUMNS.replace(",\n    tumour_24h REAL, tumour_168h REAL, settings_key TEXT", "")
    assert "settings_key" not in old and "tumour_24h" not in old
    con.execute(f"CREATE TABLE results {old}")
    con.execute("INSERT INTO results (id, status, converged, DE24, descriptors, published) "
                "VALUES ('synthetic_1', 'ok', 1, 0.5, '{}', '{}')")
    con.commit()
    con.close()
    with pytest.raises(MetaStoreError, match=r"holds 1 row\(s\) written by an earlier nanopk without a settings key "
                                             r"\(1 result\(s\), 0 stage-1 fit\(s\)\), so nanopk cannot tell which "
                                             r"model, prior and fit options they were fitted with, and resuming could "
                                             r"mix them with rows fitted now\. Use a new --store for these settings, or "
                                             r"--overwrite to discard the rows in '[^']+' and fit again \(Python: "
                                             r"run_meta\(\.\.\., store=<new file>\) or run_meta\(\.\.\., "
                                             r"overwrite=True\)\)\.$"):
        run_meta(read_collection(folder), store=store, workers=1, progress=False, prior="published")
    s = summarise(store)
    assert s["settings_key"] is None and s["settings_note"].startswith("1 row(s) were written by a nanopk without")
    assert s["medians"]["DE24"] == pytest.approx(0.5, rel=1e-12)


def test_summarise_refuses_rows_of_different_settings(published_store, tmp_path):
    """Rows of two keys in one store (only by editing it) are not summarised together."""
    store = _copy(published_store, tmp_path)
    con = sqlite3.connect(store)
    con.execute("INSERT INTO results (id, status, converged, settings_key, descriptors, published) "
                "VALUES ('x', 'ok', 1, 'other', '{}', '{}')")
    con.commit()
    con.close()
    from nanopk import DataError

    with pytest.raises(DataError, match=r"were fitted with different settings \(1 with key \w+, 1 with key "
                                        r"\w+\); their medians would mix them"):
        summarise(store)


# --------------------------------------------------------------------------- kills
def _descendants(pid):
    """Pids of every process below ``pid`` (psutil, or /proc when it is missing)."""
    if psutil is not None:
        return [p.pid for p in psutil.Process(pid).children(recursive=True)]
    parents = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
            except OSError:
                continue
            parents[int(d.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        kids = [c for c, pp in parents.items() if pp == p]
        out += kids
        todo += kids
    return out


def _running(pid):
    """True while ``pid`` runs (a zombie waiting for its reaper has ended)."""
    if psutil is not None:
        try:
            return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _start(folder, store, workers=2):
    """`nanopk meta` in a subprocess; its output goes to files beside the store, not pipes, so
    that a worker that outlives its parent (holding the pipes) cannot hang the test."""
    cmd = [sys.executable, "-m", "nanopk", "meta", str(folder), "--store", str(store), "--workers", str(workers),
           "--no-progress"]
    with open(store.with_suffix(".out"), "w") as out, open(store.with_suffix(".err"), "w") as err:
        return subprocess.Popen(cmd, stdout=out, stderr=err)


def _stderr(store):
    return store.with_suffix(".err").read_text()


def _wait_for_rows(proc, store, table, n=1, timeout=180.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            pytest.fail(f"nanopk meta ended (exit {proc.returncode}) before {table} had {n} row(s): "
                        f"{_stderr(store)[-2000:]}")
        if _count(store, table) >= n:
            return
        time.sleep(0.02)
    proc.kill()
    pytest.fail(f"no row in {table} after {timeout} s")


def _assert_all_end(pids, timeout=10.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end and any(_running(p) for p in pids):
        time.sleep(0.1)
    alive = [p for p in pids if _running(p)]
    for p in alive:  # the test fails, but leaves no orphan behind
        os.kill(p, signal.SIGKILL)
    assert not alive, f"worker process(es) {alive} still running {timeout} s after their parent ended"


def _same_summary(a, b):
    """The numbers of two summaries agree to RTOL; counts, classes and the prior exactly."""
    for k in ("n_datasets", "n_ok", "n_failed", "n_skipped", "n_converged", "failures"):
        assert a[k] == b[k], k
    assert a["prior"]["kind"] == b["prior"]["kind"] and a["prior"]["n_informative"] == b["prior"]["n_informative"]
    assert a["prior"]["sigma_log"] == pytest.approx(b["prior"]["sigma_log"], rel=RTOL)
    for name, (centre, sd) in a["prior"]["prior"].items():
        assert (centre, sd) == pytest.approx(tuple(b["prior"]["prior"][name]), rel=RTOL), name
    for k in ("medians", "means"):
        assert a[k] == pytest.approx(b[k], rel=RTOL), k
    assert a["by_class"].keys() == b["by_class"].keys()
    for cls, levels in a["by_class"].items():
        assert levels.keys() == b["by_class"][cls].keys(), cls
        for level, entry in levels.items():
            assert entry == pytest.approx(b["by_class"][cls][level], rel=RTOL), (cls, level)
    rows_a = {r["id"]: r for r in a["datasets"]}
    rows_b = {r["id"]: r for r in b["datasets"]}
    assert rows_a.keys() == rows_b.keys()
    for i, r in rows_a.items():
        for k in ("DE24", "DE168", "DEmax", "tumour_24h", "tumour_168h", "rmse_log"):
            assert r[k] == pytest.approx(rows_b[i][k], rel=RTOL), (i, k)
        assert r["params"] == pytest.approx(rows_b[i]["params"], rel=RTOL), i


# Stage 1 on two worker processes (the orphan check); stage 2 in the process itself, which
# spares a second pool start-up (the slowest part of these tests on a loaded machine).
@pytest.mark.parametrize(("stage", "workers"), [("stage1", 2), ("results", 1)])
def test_sigkill_in_each_stage_leaves_no_worker_and_resumes_to_the_same_summary(folder, reference, tmp_path, stage,
                                                                                 workers):
    """SIGKILL of `nanopk meta` once the stage has written its first row: every worker process
    ends within 10 s; the resume fits only what is missing and its summary equals the
    uninterrupted run's (counts, prior, medians, classes, every row) to 1e-9."""
    store = tmp_path / "killed.sqlite"
    proc = _start(folder, store, workers)
    try:
        _wait_for_rows(proc, store, stage)
        children = _descendants(proc.pid)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
    assert proc.returncode == -signal.SIGKILL
    if workers == 2:  # the pool was up: 2 workers and the multiprocessing resource tracker
        assert len(children) >= 3, children
    _assert_all_end(children)
    n1, n2 = _count(store, "stage1"), _count(store, "results")
    if stage == "stage1":
        assert 1 <= n1 < N_INFORMATIVE and n2 == 0, (n1, n2)
    else:
        assert n1 == N_INFORMATIVE and 1 <= n2 < N_DATASETS, (n1, n2)
    con = sqlite3.connect(store)
    assert con.execute("SELECT interrupted FROM runs").fetchall() == [(1,)]  # the killed run says so
    con.close()
    out = run_meta(read_collection(folder), store=store, workers=1, progress=False)
    assert out["complete"] and out["n_already_done"] == n2 and out["n_fitted"] == N_INFORMATIVE - n1 + N_DATASETS - n2
    _same_summary(summarise(store), reference[1])


def test_sigterm_ends_the_pool_and_records_the_run(folder, reference, tmp_path):
    """SIGTERM while the pool fits (stage 1): exit 143 with a message saying how to resume, no
    worker left, the run marked interrupted with as many rows as it wrote; the resume
    completes to the uninterrupted summary."""
    store = tmp_path / "terminated.sqlite"
    proc = _start(folder, store)
    try:
        _wait_for_rows(proc, store, "stage1")
        workers = _descendants(proc.pid)
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
    err = _stderr(store)
    assert proc.returncode == 128 + signal.SIGTERM
    assert len(workers) >= 3, workers  # 2 workers and the multiprocessing resource tracker
    assert re.fullmatch(rf"nanopk meta: stopped by SIGTERM after \d+ new row\(s\); the workers are ended and the "
                        rf"store {re.escape(repr(str(store)))} is consistent: run the same command again to resume\n",
                        err), err
    _assert_all_end(workers, timeout=2.0)
    con = sqlite3.connect(store)
    try:
        (run_id, interrupted, n_fitted), = con.execute("SELECT run_id, interrupted, n_fitted FROM runs").fetchall()
        written = sum(con.execute(f"SELECT COUNT(*) FROM {t} WHERE run_id = ?", (run_id,)).fetchone()[0]
                      for t in ("stage1", "results"))
    finally:
        con.close()
    assert interrupted == 1 and n_fitted == written and str(n_fitted) in err
    out = run_meta(read_collection(folder), store=store, workers=1, progress=False)
    assert out["complete"]
    _same_summary(summarise(store), reference[1])
