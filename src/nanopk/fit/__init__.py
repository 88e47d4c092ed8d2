"""Fitting nanoparticle PK models to biodistribution data (lmfit).

>>> import nanopk
>>> result = nanopk.fit(model, dataset, vary=["Kmax_liver", "Kmax_spleen"])  # doctest: +SKIP
>>> print(result.report())                                                 # doctest: +SKIP

By default the varied parameters that have a population prior (the Lin-lab tumour
parameters; :mod:`.priors`) get it, and the fit is their MAP estimate; ``priors=None``
is the plain maximum-likelihood fit.

Modules: :mod:`.priors` (the bundled population priors, shrinkage), :mod:`.protocol` (what ``fit(objective=...)`` needs of an objective),
:mod:`.objective` (residuals, log-parameter transform, Jacobian hooks),
:mod:`.joint` (:class:`JointObjective`: several objectives, some parameters tied),
:mod:`.uncertainty` (covariance, profile likelihood, MCMC, parameter sampling),
:mod:`.metrics` (goodness of fit), :mod:`.result` (:class:`FitResult`, JSON, report),
:mod:`.plot` (figures; needs matplotlib).

``nanopk.fit`` is both this module and the function :func:`fit`: the package's lazy
attribute returns the function, but importing any submodule binds the *module* to
``nanopk.fit``, so the module is made callable and forwards to :func:`fit`.  Either
way ``nanopk.fit(model, data, vary=[...])`` fits and ``nanopk.fit.sample_parameters``
is available.
"""
from __future__ import annotations

import sys
import types

from ._data import FitData, FitWarning
from .core import build_objective, fit
from .joint import JointObjective
from .priors import population_priors
from .protocol import Objective as ObjectiveProtocol
from .result import FitResult
from .select import Selection, select_parameters
from .uncertainty import MCMCResult, sample_parameters

__all__ = ["fit", "FitResult", "FitWarning", "FitData", "MCMCResult", "sample_parameters", "build_objective",
           "JointObjective", "ObjectiveProtocol", "select_parameters", "Selection", "population_priors"]

# The function carries the helpers too, for code that got the function from the lazy
# attribute (``nanopk.fit.sample_parameters`` whichever object ``nanopk.fit`` is).
fit.sample_parameters = sample_parameters
fit.select_parameters = select_parameters
fit.FitResult = FitResult
fit.FitWarning = FitWarning
fit.build_objective = build_objective
fit.JointObjective = JointObjective
fit.population_priors = population_priors


class _CallableModule(types.ModuleType):
    def __call__(self, *args, **kwargs):
        return fit(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
