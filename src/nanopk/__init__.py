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
        "from_json": ("nanopk.export", "from_json"),
        "import_sbml": ("nanopk.sbml_import", "import_sbml"),
    }
    import importlib

    if name in lazy:
        module, attr = lazy[name]
        return getattr(importlib.import_module(module), attr)
    if name == "export":  # the export package, callable: nanopk.export(model, "sbml", "m.xml")
        return importlib.import_module("nanopk.export")
    if name.startswith("to_"):  # to_sbml, to_c, to_json and any registered format: the export registry
        try:
            return getattr(importlib.import_module("nanopk.export"), name)
        except AttributeError:
            pass
    raise AttributeError(f"module 'nanopk' has no attribute {name!r}")
