"""Calibration of the particle → parameter maps' constants on public biodistribution data.

:func:`calibration_points` builds the data, :class:`InstanceSimulator` predicts it,
:func:`calibrate_constants` fits the constants with a study random effect, and
:mod:`nanopk.calibrate.validate` runs the leave-study-out cross-validation.  The
shipped estimates are in ``calibrated.json`` (:func:`load_calibration`).
"""
from .core import (CONSTANTS, CalibrationResult, Constant, InstanceSimulator, calibrate_constants, null_predictor, score,
                   study_folds)
from .data import CALIBRATION_TISSUES, HELD_OUT_DOIS, calibration_points, study_key

__all__ = ["CONSTANTS", "Constant", "CalibrationResult", "InstanceSimulator", "calibrate_constants", "null_predictor",
           "score", "study_folds", "CALIBRATION_TISSUES", "HELD_OUT_DOIS", "calibration_points", "study_key"]
