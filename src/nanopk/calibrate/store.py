"""The shipped calibration: ``calibrated.json`` beside this module (package data).

:func:`load_calibration` returns the record the benchmark ``benchmarks/calibrate_ntua.py``
wrote: per constant its value, standard error (log10) and 95 % interval, the
between-study SD ``tau_log10`` and residual SD ``sigma_log10`` (log10 %ID), the data
set, date and counts, and the cross-validation figures.  :func:`calibrated_values` is
the parameter dict to pass to :func:`nanopk.simulate` (``params=``).
"""
from __future__ import annotations

import json
from pathlib import Path

from ..errors import NanopkError

__all__ = ["CALIBRATION_FILE", "load_calibration", "save_calibration", "calibrated_values"]

#: The package data file with the calibrated constants.
CALIBRATION_FILE = Path(__file__).resolve().parent / "calibrated.json"


def load_calibration(path=None) -> dict:
    """The calibration record (default: the shipped ``calibrated.json``).

    Raises
    ------
    NanopkError
        If the file is missing or is not a calibration record (names the file and the missing keys).
    """
    path = Path(path) if path is not None else CALIBRATION_FILE
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError:
        raise NanopkError(f"calibration file {str(path)!r} does not exist; run `nanopk calibrate --output FILE` "
                          "or use the shipped one (no --calibration)") from None
    except (OSError, ValueError) as exc:
        raise NanopkError(f"calibration file {str(path)!r} is not readable JSON ({exc})") from None
    missing = [k for k in ("constants", "tau_log10", "sigma_log10", "model") if k not in record]
    if missing:
        raise NanopkError(f"calibration file {str(path)!r} lacks {', '.join(missing)}; expected the JSON "
                          "`nanopk calibrate` writes")
    return record


def calibrated_values(record: dict | None = None) -> dict:
    """``{constant: value}`` of a calibration record (default: the shipped one)."""
    record = record if record is not None else load_calibration()
    return {k: float(v["value"]) for k, v in record["constants"].items()}


def save_calibration(record: dict, path=None) -> Path:
    """Write ``record`` as JSON (default: the shipped file)."""
    path = Path(path) if path is not None else CALIBRATION_FILE
    from .._json import stamped  # the record is for many particles' models: the version only

    path.write_text(json.dumps(stamped(record), indent=1, default=float) + "\n")
    return path
