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

Every public name below loads its module on first use (``_LAZY``), so ``import nanopk``
costs the errors module and little else: SymPy is imported when a model is built,
pandas when a table is made, lmfit when a fit starts, pint when units are converted.
``tests/test_startup.py`` pins what ``import nanopk`` imports.
"""
from __future__ import annotations

import importlib
import importlib.util
import sys
import types

from ._version import __version__
from .errors import DataError, ExportError, FitError, ModelError, NanopkError, SolverError, SpecError

__all__ = [
    "Model", "Particle", "Part", "State", "Parameter", "Flux", "RateRule", "Assignment", "Observable",
    "Bolus", "Infusion", "Dosing", "simulate", "load_model", "list_models",
    "NanopkError", "ModelError", "SpecError", "DataError", "FitError", "SolverError", "ExportError",
    "BackendFallbackWarning", "CacheWarning",
]

#: Public name -> (module, attribute), imported on first access (attribute None: the module itself).
_LAZY = {
    "Model": ("nanopk.model", "Model"),
    "Particle": ("nanopk.particle", "Particle"),
    **{name: ("nanopk.parts", name)
       for name in ("Part", "State", "Parameter", "Flux", "RateRule", "Assignment", "Observable")},
    **{name: ("nanopk.dosing", name) for name in ("Bolus", "Infusion", "Dosing")},
    "simulate": ("nanopk.simulate", "simulate"),
    "load_model": ("nanopk.spec", "load_model"),
    "list_models": ("nanopk.spec", "list_models"),
    "BackendFallbackWarning": ("nanopk.compile", "BackendFallbackWarning"),
    "CacheWarning": ("nanopk.resources", "CacheWarning"),
    "read_dataset": ("nanopk.data", "read_dataset"),
    "list_datasets": ("nanopk.data", "list_datasets"),
    "check_dataset": ("nanopk.data", "check_dataset"),
    # fit and compare are callable modules (calling one runs its function): the module is the
    # public object, so `nanopk.fit` is the same whether or not `import nanopk.fit` ran first.
    "fit": ("nanopk.fit", None),
    "delivery_efficiency": ("nanopk.delivery", "delivery_efficiency"),
    "compare": ("nanopk.compare", None),
    "scale": ("nanopk.allometry", "scale"),
    "predict_delivery": ("nanopk.delivery", "predict_delivery"),
    "from_json": ("nanopk.export", "from_json"),
    "import_sbml": ("nanopk.sbml_import", "import_sbml"),
    "from_sbml": ("nanopk.sbml_import", "import_sbml"),  # the name issue 23 and DESIGN's readers look for
    "fit_petab": ("nanopk.petab_import", "fit_petab"),
    "read_petab": ("nanopk.petab_import", "read_petab"),
}


def __getattr__(name):
    if name in _LAZY:
        module, attr = _LAZY[name]
        value = importlib.import_module(module)
        if attr is not None:
            value = getattr(value, attr)
        globals()[name] = value  # later look-ups skip this function
        return value
    if name == "export":  # the export package, callable: nanopk.export(model, "sbml", "m.xml")
        return importlib.import_module("nanopk.export")
    if name.startswith("to_"):  # to_sbml, to_c, to_json and any registered format: the export registry
        try:
            return getattr(importlib.import_module("nanopk.export"), name)
        except AttributeError:
            pass
    elif not name.startswith("_") and importlib.util.find_spec(f"{__name__}.{name}") is not None:
        # A submodule: `import nanopk` used to load most of them, and `nanopk.spec.x` still works.
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'nanopk' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))


class _Package(types.ModuleType):
    """The package module, whose ``simulate`` stays the function.

    Importing the submodule ``nanopk.simulate`` binds it as the package's attribute of
    that name; the eager ``from .simulate import simulate`` used to overwrite that with
    the function, so ``nanopk.simulate(model, times)`` worked.  Now that the function
    loads lazily, the binding is refused and ``__getattr__`` returns the function.
    """

    def __setattr__(self, name, value):
        if name == "simulate" and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
