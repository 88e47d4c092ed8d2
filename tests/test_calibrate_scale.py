"""nanopk calibrate at scale: Dask and local runs agree, the SQLite store resumes a killed run exactly."""
from __future__ import annotations

import itertools
import re
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nanopk import NanopkError
from nanopk.calibrate import Constant, InstanceSimulator, calibrate_constants
from nanopk.calibrate import core
from nanopk.calibrate.core import CalibrationInterrupted, CalibrationStore, CalibrationStoreError
from nanopk.cli import main
from nanopk.parallel import ParallelDependencyError
from test_calibrate import synthetic  # noqa: F401 - the module fixture: four instances simulated from known constants

CONSTANTS = (Constant("signal_50", 1e-3, 1e3, ""), Constant("S_V_tumour", 1.0, 1e5, ""))
FIT = dict(start={"signal_50": 0.35, "S_V_tumour": 400.0}, max_nfev=4, em_rounds=2, tau0=0.1, sigma0=0.05)
INSTALL = r'pip install "nanopk\[parallel\]"'


@pytest.fixture(scope="module")
def case(synthetic):
    """The synthetic collection (test_calibrate's: known constants and study offsets) and its
    uninterrupted, local, storeless fit (the reference)."""
    sim, _ = synthetic
    return sim.instances, sim.points, calibrate_constants(sim, CONSTANTS, **FIT)


def _same(a, b):
    """Every number of two CalibrationResults equal to the bit (NaN SEs at a bound count as equal)."""
    assert a.values == b.values
    assert np.array_equal(list(a.se_log10.values()), list(b.se_log10.values()), equal_nan=True)
    assert (a.tau, a.sigma, a.cost, a.n_evaluations) == (b.tau, b.sigma, b.cost, b.n_evaluations)
    assert a.study_offsets == b.study_offsets and a.history == b.history


def test_dask_and_local_runs_agree(case):
    """A fit on a Dask cluster gives the local fit's constants to 1e-10 (relative); each worker loads each model once."""
    distributed = pytest.importorskip("distributed")
    inst, pts, ref = case
    core._WORKER_SOLVERS.clear()
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None) as cluster:
        sim = InstanceSimulator(inst, pts, scheduler=cluster)
        try:
            fit = calibrate_constants(sim, CONSTANTS, **FIT)
            assert sim._client is not None  # the evaluations ran as Dask tasks
        finally:
            sim.close()
    for name, value in ref.values.items():
        assert fit.values[name] == pytest.approx(value, rel=1e-10)
    assert fit.tau == pytest.approx(ref.tau, rel=1e-10) and fit.sigma == pytest.approx(ref.sigma, rel=1e-10)
    assert fit.n_evaluations == ref.n_evaluations
    (solver,) = core._WORKER_SOLVERS.values()  # one worker process: one solver, its models loaded once
    assert solver.n_loaded == len(solver.particles) and fit.n_evaluations > len(solver.particles)


def test_local_worker_processes_agree(case):
    """Two forked worker processes give the one-process fit exactly."""
    inst, pts, ref = case
    sim = InstanceSimulator(inst, pts, workers=2)
    try:
        _same(calibrate_constants(sim, CONSTANTS, **FIT), ref)
    finally:
        sim.close()


def test_killed_run_resumes_to_the_same_numbers(case, tmp_path):
    """A fit stopped (Ctrl-C) after 5 evaluations resumes from its store to the uninterrupted numbers, simulating only the rest."""
    inst, pts, ref = case
    store = tmp_path / "cal.sqlite"

    def kill(k):
        if k == 5:
            raise KeyboardInterrupt

    sim = InstanceSimulator(inst, pts, store=store)
    with pytest.raises(CalibrationInterrupted, match=r"stopped by SIGINT after 5 new evaluation\(s\) stored") as stop:
        calibrate_constants(sim, CONSTANTS, progress=kill, **FIT)
    assert stop.value.signum == signal.SIGINT and stop.value.store == str(store)
    assert len(sim.store) == 5
    sim.close()

    sim = InstanceSimulator(inst, pts, store=store)
    resumed = calibrate_constants(sim, CONSTANTS, **FIT)
    _same(resumed, ref)
    assert resumed.n_simulated == ref.n_evaluations - 5
    again = calibrate_constants(sim, CONSTANTS, **FIT)  # finished: read back, nothing simulated
    _same(again, ref)
    assert again.n_simulated == 0 and sim.n_evaluations == ref.n_evaluations - 5
    sim.close()


def test_sigterm_stops_cleanly_and_the_same_call_resumes(case, tmp_path):
    """SIGTERM mid-fit raises CalibrationInterrupted naming the store; the resumed fit equals the uninterrupted one."""
    inst, pts, ref = case
    data, store = tmp_path / "case.pkl", tmp_path / "cal.sqlite"
    pd.to_pickle((inst, pts), data)
    script = textwrap.dedent(f"""
        import os, signal
        import pandas as pd
        from nanopk.calibrate import Constant, InstanceSimulator, calibrate_constants
        inst, pts = pd.read_pickle({str(data)!r})
        sim = InstanceSimulator(inst, pts, workers=2, store={str(store)!r})

        def progress(k):
            if k == 3:
                os.kill(os.getpid(), signal.SIGTERM)

        calibrate_constants(sim, (Constant("signal_50", 1e-3, 1e3, ""), Constant("S_V_tumour", 1.0, 1e5, "")),
                            progress=progress, **{FIT!r})
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last == (f"nanopk.calibrate.core.CalibrationInterrupted: stopped by SIGTERM after 3 new evaluation(s) stored; "
                    f"the workers are ended and the store {str(store)!r} is consistent: run the same command again to resume")
    sim = InstanceSimulator(inst, pts, store=store)
    resumed = calibrate_constants(sim, CONSTANTS, **FIT)
    sim.close()
    _same(resumed, ref)
    assert resumed.n_simulated == ref.n_evaluations - 3


def test_resuming_with_changed_settings_is_refused(case, tmp_path):
    """A store of a run with another solver tolerance or fold count is refused, naming the setting, stored and now."""
    inst, pts, _ = case
    store = tmp_path / "cal.sqlite"
    InstanceSimulator(inst, pts, store=store, store_settings={"run": {"folds": 5}}).close()
    with pytest.raises(CalibrationStoreError, match=r"(?s)holds a calibration run with other settings.*"
                                                    r"Settings that differ:\n  run\.folds: stored 5, now 4\n  "
                                                    r"simulator\.rtol: stored 1e-05, now 1e-06\nUse a new --store"):
        InstanceSimulator(inst, pts, rtol=1e-6, store=store, store_settings={"run": {"folds": 4}})
    sim = InstanceSimulator(inst, pts, rtol=1e-6, store=store, store_settings={"run": {"folds": 4}}, overwrite=True)
    assert len(sim.store) == 0
    sim.close()


def test_store_that_is_not_sqlite_is_refused(tmp_path):
    """A --store file that is not SQLite is refused, naming the file and what to give instead."""
    bad = tmp_path / "notes.txt"
    bad.write_text("not a database\n" * 200)
    with pytest.raises(CalibrationStoreError, match=r"cannot use '.*notes\.txt' as a calibration store \(file is not "
                                                    r"a database\); give --store a new file"):
        CalibrationStore(bad, {})


_EXAMPLE = itertools.count()


@pytest.fixture(scope="module")
def scratch_store(tmp_path_factory):
    store = CalibrationStore(tmp_path_factory.mktemp("s") / "s.sqlite", {"x": 1})
    yield store
    store.close()


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=1, max_size=40),
       st.floats(min_value=1e-300, max_value=1e300))
def test_store_keeps_evaluations_bit_for_bit(scratch_store, values, constant):
    """An evaluation comes back from the store bit for bit, and a constant one ulp away is another evaluation."""
    pred = np.array(values)
    # a constant of its own per example: the store is shared, and an earlier example may have
    # saved this one's neighbour as its own constant
    name = f"a{next(_EXAMPLE)}"
    scratch_store.save_evaluation({name: constant}, pred, {"i1": "failed"})
    got, failures = scratch_store.evaluation({name: constant})
    assert got.tobytes() == pred.tobytes() and failures == {"i1": "failed"}
    assert scratch_store.evaluation({name: float(np.nextafter(constant, np.inf))}) is None


def test_missing_dask_names_the_install_command(case, monkeypatch, capsys):
    """Without dask.distributed a scheduler is refused (API and CLI) with the pip command, before any work."""
    inst, pts, _ = case
    monkeypatch.setitem(sys.modules, "distributed", None)  # `import distributed` raises ImportError
    with pytest.raises(ParallelDependencyError, match=r"nanopk calibrate \(scheduler 'tcp://127\.0\.0\.1:8786'\) needs "
                                                      r"dask\.distributed, which is not installed: " + INSTALL):
        InstanceSimulator(inst, pts, scheduler="tcp://127.0.0.1:8786")
    assert issubclass(ParallelDependencyError, ImportError) and issubclass(ParallelDependencyError, NanopkError)
    assert main(["calibrate", "--database", ".", "--scheduler", "tcp://127.0.0.1:8786"]) == 2
    err = capsys.readouterr().err
    assert "nanopk calibrate: error: nanopk calibrate --scheduler (scheduler 'tcp://127.0.0.1:8786') needs " \
           'dask.distributed, which is not installed: pip install "nanopk[parallel]"' in err, err


def test_progress_bar_counts_evaluations_on_stderr(case, capsys):
    """With progress on, each fit draws a tqdm bar on stderr naming the fit and counting its evaluations."""
    pytest.importorskip("tqdm")
    from nanopk.calibrate.validate import _fit

    inst, pts, _ = case
    sim = InstanceSimulator(inst, pts)
    fit = _fit(sim, "fold 3", True, max_nfev=1, em_rounds=1)
    counts = [int(n) for n in re.findall(r"calibrate fold 3: (\d+)evaluation", capsys.readouterr().err)]
    # every evaluation is drawn (mininterval 0): 0, 1, ... up to the fit's evaluations
    assert counts == list(range(len(counts))) and counts[-1] == fit.n_evaluations > 0, counts


def test_an_unreachable_scheduler_is_named(monkeypatch):
    """A scheduler address nobody answers at: one error naming the address and how to start one (not a bare OSError)."""
    from nanopk import parallel

    monkeypatch.setattr(parallel, "CONNECT_TIMEOUT_S", 1)
    with pytest.raises(parallel.SchedulerUnreachable,
                       match=r"^no Dask scheduler answers at 'tcp://127.0.0.1:1' for nanopk calibrate \(.*\); start one "
                             r"\(`dask scheduler`.*or run without --scheduler$"):
        parallel.dask_client("tcp://127.0.0.1:1", "nanopk calibrate")
