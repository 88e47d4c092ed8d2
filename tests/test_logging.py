"""Diagnostics go to the `nanopk` logger, progress bars to stderr; stdout is the CLI's report alone."""
import importlib.util
import logging

import numpy as np
import pandas as pd
import pytest

import nanopk
from nanopk.batch import simulate_many
from nanopk.cli import main
from nanopk.fit.uncertainty import profile
from nanopk.progress import get_logger, progress_bar, progress_enabled, set_progress
from nanopk.sensitivity import local_sensitivity, morris


@pytest.fixture(scope="module")
def two():
    return nanopk.load_model("two_compartment_iv")


@pytest.fixture(autouse=True)
def automatic_progress():
    set_progress(None)
    yield
    set_progress(None)


def test_library_calls_print_nothing_to_stdout(two, capfd, caplog):
    """Batch runs and sensitivity analyses at DEBUG log level write nothing to stdout or stderr; their lines reach logging."""
    caplog.set_level(logging.DEBUG, logger="nanopk")
    simulate_many(two, [1.0, 24.0], [{"k10": 0.1}, {"k10": 0.3}], workers=1)
    local_sensitivity(two, "central@4h")
    morris(two, "central@4h", parameters=["k10", "k12"], ranges=2.0, trajectories=2, workers=1)
    out, err = capfd.readouterr()
    assert out == "" and err == ""
    names = {r.name for r in caplog.records}
    assert {"nanopk.batch", "nanopk.sensitivity"} <= names
    assert any("finite-difference check" in r.getMessage() for r in caplog.records)


def test_progress_bar_goes_to_stderr_only(two, capfd):
    """progress=True draws tqdm's bar on stderr (named after the model) and leaves stdout empty."""
    pytest.importorskip("tqdm")
    out = simulate_many(two, [1.0], [{"k10": 0.1 + 0.01 * i} for i in range(50)], workers=1, progress=True)
    assert out.shape == (50, 1, len(two.observables))
    captured = capfd.readouterr()
    assert captured.out == ""
    assert "simulating two_compartment_iv:" in captured.err and "0/50" in captured.err


def test_progress_is_automatic_forced_or_refused(monkeypatch):
    """Automatic: off when stderr is not a terminal (pytest's capture); set_progress(True) forces it; without tqdm a forced bar is an ImportError."""
    pytest.importorskip("tqdm")
    assert progress_enabled() is False
    set_progress(True)
    assert progress_enabled() is True
    assert progress_enabled(False) is False  # the call's own choice wins
    with progress_bar(3, "x", progress=False) as bar:  # the no-op bar has the same calls
        bar.update()
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "tqdm" else real(name, *a))
    with pytest.raises(ImportError, match=r"the progress bar needs tqdm: pip install tqdm"):
        progress_enabled(True)
    set_progress(None)
    assert progress_enabled() is False  # automatic without tqdm: quietly no bar


def test_profile_reports_progress_and_logs_its_interval(capfd, caplog):
    """A profile likelihood ticks a bar on stderr, logs each point at DEBUG and its interval at INFO, prints nothing on stdout."""
    one = nanopk.load_model("one_compartment_iv")
    noise = np.array([0.05, -0.03, 0.02, -0.04, 0.01, 0.0])
    data = pd.DataFrame({"time_h": 1.0, "tissue": "central", "value": 100.0 * np.exp(-0.2 - noise)})
    data.attrs.update(name="synthetic", dose_ug=100.0)
    result = nanopk.fit(one, data, vary=["k10"], weighting="none", error_params={"sigma": 0.05}, scale_covar=False)
    caplog.set_level(logging.DEBUG, logger="nanopk")
    capfd.readouterr()
    prof = profile(result, "k10", max_steps=6, progress=True)
    out, err = capfd.readouterr()
    assert out == "" and "profile k10" in err
    assert prof["ci95"][0] < 0.2 < prof["ci95"][1]
    messages = [r.getMessage() for r in caplog.records if r.name == "nanopk.fit.uncertainty"]
    assert any(m.startswith("profile of k10: 95 % interval") for m in messages)
    assert sum(m.startswith("profile k10: k10 =") for m in messages) == prof["nfev"] and prof["nfev"] >= 4


def test_verbose_cli_shows_log_lines_on_stderr(capsys):
    """`nanopk -v` writes INFO lines on stderr (stdout keeps the report), `-vv` DEBUG, the default and `-q` none."""
    argv = ["sensitivity", "one_compartment_iv", "--output", "central@1h"]
    logger = logging.getLogger("nanopk")
    handlers, level = list(logger.handlers), logger.level
    assert main(["-v", *argv]) == 0
    out, err = capsys.readouterr()
    assert "nanopk: INFO nanopk.sensitivity: forward sensitivities of 1 output(s) to 2 parameter(s) of one_compartment_iv in" in err
    assert "INFO" not in out and "k10" in out
    assert main([*argv, "-vv"]) == 0  # after the command too
    err = capsys.readouterr().err
    assert "nanopk: DEBUG nanopk.batch: simulate_many: 4 simulation(s) of one_compartment_iv" in err
    assert main(argv) == 0
    assert capsys.readouterr().err == ""
    assert main(["-q", *argv, "--no-check"]) == 0
    assert capsys.readouterr().err == ""
    assert logger.handlers == handlers and logger.level == level  # main() leaves logging as it found it


def test_get_logger_names_the_hierarchy():
    """Every module's logger hangs below `nanopk`, so one level setting silences them all."""
    assert get_logger("batch").name == "nanopk.batch"
    assert get_logger("nanopk.scan").name == "nanopk.scan"
    assert get_logger("batch").parent is logging.getLogger("nanopk")
