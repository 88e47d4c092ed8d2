"""Calibration of the particle → parameter maps' constants on public biodistribution data.

:func:`calibration_points` builds the data, :class:`InstanceSimulator` predicts it,
:func:`calibrate_constants` fits the constants with a study random effect, and
:mod:`nanopk.calibrate.validate` runs the leave-study-out cross-validation.  The
shipped estimates are in ``calibrated.json`` (:func:`load_calibration`).
"""
import importlib

__all__ = ["CONSTANTS", "Constant", "CalibrationResult", "InstanceSimulator", "calibrate_constants", "null_predictor",
           "score", "study_folds", "CALIBRATION_TISSUES", "HELD_OUT_DOIS", "calibration_points", "study_key"]

#: Loaded on first use: the command line imports ``.commands`` to build its parser, and
#: ``nanopk --help`` should not pay for pandas (``.core``, ``.data``) to do so.
_HOME = {**{name: ".core" for name in __all__[:8]}, **{name: ".data" for name in __all__[8:]}}


def __getattr__(name):
    if name in _HOME:
        value = getattr(importlib.import_module(_HOME[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
