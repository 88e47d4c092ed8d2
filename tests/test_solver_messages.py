"""SUNDIALS' messages reach Python's logging, never the process's stdout or stderr.

Issue 17 #14: CVODE's warnings ("t + h = t on the next step") were printed to stdout by
SUNDIALS 7's logger, from C, where scripts could neither filter nor redirect them.  They
now go to the logger "nanopk.solver" (a child of "nanopk"); ``capfd`` sees the file
descriptors themselves, so it also catches output written by C.
"""
import logging

import numpy as np
import pytest

import nanopk
from nanopk.compile import compile_model


@pytest.fixture(scope="module")
def cvode():
    model = nanopk.load_model("mouse_pbpk")
    compiled = compile_model(model, "cvode")
    p = model.parameter_vector()
    return compiled, p, np.ones(compiled.n_states)


def _t_plus_h_equals_t(cvode):
    """A solve started at t = 1e15 h, where CVODE's first steps underflow t + h."""
    compiled, p, y0 = cvode
    return compiled.solve(1e15, y0, p, [1e15 + 1e3], 1e-8, 1e-12)


def test_cvode_warnings_are_logged_not_printed(cvode, capfd, caplog):
    """CVODE's 't + h = t' warning: nothing on stdout or stderr, one WARNING record of
    'nanopk.solver' that quotes it, and the text in the result."""
    caplog.set_level(logging.WARNING, logger="nanopk")
    res = _t_plus_h_equals_t(cvode)
    out, err = capfd.readouterr()
    assert (out, err) == ("", "")
    records = [r for r in caplog.records if r.name == "nanopk.solver" and r.levelno == logging.WARNING]
    assert len(records) == 1
    assert "CVODE warned while integrating 1e+15–1e+15 h: CVode: Internal t = 1e+15 and h = " in records[0].getMessage()
    assert "are such that t + h = t on the next step" in records[0].getMessage()
    assert any(m.startswith("W CVode: Internal t = 1e+15") for m in res.solver_messages)


def test_failure_texts_are_debug_records(cvode, capfd, caplog):
    """A failed solve (too few steps) prints nothing; CVODE's own text is a DEBUG record
    (the failure itself is reported by the result, and by SolverError in simulate)."""
    compiled, p, y0 = cvode
    caplog.set_level(logging.DEBUG, logger="nanopk")
    res = compiled.solve(0.0, y0, p, [1000.0], 1e-8, 1e-12, max_steps=3)
    assert not res.success and "CV_TOO_MUCH_WORK" in res.message
    assert capfd.readouterr() == ("", "")
    texts = [r.getMessage() for r in caplog.records if r.name == "nanopk.solver"]
    assert [r.levelno for r in caplog.records if r.name == "nanopk.solver"] == [logging.DEBUG]
    assert texts[0].startswith("CVODE reported while integrating 0–1000 h: CVode: At t = ")
    assert "mxstep steps taken before reaching tout" in texts[0]


def test_scripts_can_silence_them(cvode, capfd, caplog):
    """logging.getLogger('nanopk').setLevel(ERROR) silences the warnings entirely."""
    caplog.set_level(logging.ERROR, logger="nanopk")
    res = _t_plus_h_equals_t(cvode)
    assert res.solver_messages  # still recorded on the result
    assert not [r for r in caplog.records if r.name.startswith("nanopk")]
    assert capfd.readouterr() == ("", "")
