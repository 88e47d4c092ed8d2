"""nanopk: nanoparticle pharmacokinetics (nano-ADME).

SymPy compartment models of what the body does to a nanoparticle -- circulation, EPR
extravasation into tumours, protein corona formation, aggregation, dissolution at
endosomal pH and clearance -- compiled to fast numerical code, fitted with lmfit to
biodistribution data, and used to predict the fraction of the dose that reaches a
tumour.

>>> import nanopk
>>> model = nanopk.load_model("mouse_pbpk")
>>> sim = model.simulate([1, 4, 24, 168])
>>> round(float(sim["total"].iloc[-1]), 6)
100.0
"""
from __future__ import annotations

from .compile import BackendFallbackWarning
from .errors import DataError, ExportError, FitError, ModelError, NanopkError, SolverError, SpecError
from .model import Model
from .particle import Particle
from .parts import Assignment, Flux, Observable, Parameter, Part, RateRule, State
from .resources import CacheWarning
from .dosing import Bolus, Dosing, Infusion
from .simulate import simulate
from .spec import list_models, load_model

from ._version import __version__

__all__ = [
    "Model", "Particle", "Part", "State", "Parameter", "Flux", "RateRule", "Assignment", "Observable",
    "Bolus", "Infusion", "Dosing", "simulate", "load_model", "list_models",
    "NanopkError", "ModelError", "SpecError", "DataError", "FitError", "SolverError", "ExportError",
    "BackendFallbackWarning", "CacheWarning",
]


def __getattr__(name):
    # Heavier subsystems load on first use, so `import nanopk` stays fast.
    lazy = {
        "read_dataset": ("nanopk.data", "read_dataset"),
        "list_datasets": ("nanopk.data", "list_datasets"),
        "check_dataset": ("nanopk.data", "check_dataset"),
        "fit": ("nanopk.fit", "fit"),
        "delivery_efficiency": ("nanopk.delivery", "delivery_efficiency"),
        "compare": ("nanopk.compare", "compare"),
        "scale": ("nanopk.allometry", "scale"),
        "predict_delivery": ("nanopk.delivery", "predict_delivery"),
        "to_sbml": ("nanopk.export.sbml", "to_sbml"),
        "to_c": ("nanopk.export.c", "to_c"),
        "to_json": ("nanopk.export.json", "to_json"),
        "from_json": ("nanopk.export.json", "from_json"),
    }
    if name in lazy:
        import importlib

        module, attr = lazy[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'nanopk' has no attribute {name!r}")
