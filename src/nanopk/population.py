"""Virtual populations: parameter sets drawn from a distribution, their outputs and prediction bands.

Each virtual animal's parameters are drawn log-normally around the model's values,

    ln p_i = ln p̂ + s_p · z_i,   z_i ~ N(0, 1) independent per parameter,

with ``s_p`` the spread given for ``p`` (the SD of ln p; a geometric SD of g is
s = ln g) and each draw clipped to the parameter's bounds.  All animals are simulated by
:func:`nanopk.simulate_many` on all cores; outputs are read as in
:mod:`nanopk.sensitivity` (``DE24``, ``liver@24h``, ``AUC_blood``, …) and time courses
are summarised by their percentiles, the prediction band of the population.

Between-animal variability of the particle-driven constants is rarely published; a
spread is an input the user states (for instance the between-study SD of
``CALIBRATION.md``, τ = 0.57 log10 = 1.31 on ln), never a default the package invents.

References
----------
Jamei M et al. The Simcyp population-based ADME simulator. Expert Opin Drug Metab Toxicol
2009;5:211 (virtual populations by sampling physiological and kinetic parameters).
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from .batch import simulate_many
from .progress import get_logger
from .sensitivity import GLOBAL_ATOL, GLOBAL_RTOL, SensitivityError, evaluate_outputs, output_grid, parse_outputs

__all__ = ["draw_population", "virtual_population", "population_band"]

_LOG = get_logger("population")


def draw_population(model, spread: Mapping[str, float], n: int = 200, params: Mapping[str, float] | None = None,
                    seed: int = 0) -> pd.DataFrame:
    """``n`` parameter sets, ln p = ln p̂ + s_p·z, clipped to the bounds (see the module docstring).

    Parameters
    ----------
    spread : dict
        ``{parameter: s}``, the SD of ln p (> 0); the other parameters keep their values.
    params : dict, optional
        Centres p̂ other than the model's values.

    Returns
    -------
    pandas.DataFrame
        One row per virtual animal, one column per parameter in ``spread``.
    """
    if not isinstance(n, (int, np.integer)) or n < 2:
        raise SensitivityError("n", n, "an integer ≥ 2 (e.g. 200)")
    if not spread:
        raise SensitivityError("spread", spread, "at least one parameter with the SD of its log, e.g. {'Kmax_liver': 0.5}")
    from .errors import suggest

    centre = {k: float(v.value) for k, v in model.parameters.items()}
    centre.update({k: float(v) for k, v in (params or {}).items()})
    rng = np.random.default_rng(seed)
    out = {}
    for name, s in spread.items():
        if name not in model.parameters:
            raise SensitivityError("spread", name, "a parameter of the model", "is not one" + suggest(name, list(model.parameters)))
        if not (isinstance(s, (int, float)) and np.isfinite(s) and s > 0):
            raise SensitivityError(f"spread[{name!r}]", s, "a positive SD of ln p (e.g. 0.5: a geometric SD of 1.65)")
        if centre[name] <= 0:
            raise SensitivityError("spread", name, "a parameter with a positive value (the draws are log-normal)",
                                   f"has value {centre[name]:g}")
        lo, hi = model.parameters[name].bounds
        draws = np.exp(np.log(centre[name]) + float(s) * rng.standard_normal(int(n)))
        out[name] = np.clip(draws, lo, hi)
    return pd.DataFrame(out)


def virtual_population(model, spread: Mapping[str, float], outputs: str | Sequence[str] = ("DE24",), n: int = 200,
                       params: Mapping[str, float] | None = None, dose=None, seed: int = 0,
                       workers: int | None = None) -> pd.DataFrame:
    """Outputs of ``n`` virtual animals (:func:`draw_population`), one row each.

    Returns
    -------
    pandas.DataFrame
        The drawn parameters and one column per output; ``.attrs["summary"]`` holds the
        median and the 5th and 95th percentiles of each output.
    """
    outs = parse_outputs(outputs, model.observable_names)
    draws = draw_population(model, spread, n, params, seed)
    base = dict(params or {})
    sets = [{**base, **row} for row in draws.to_dict("records")]
    grid = output_grid(outs)
    obs = simulate_many(model, grid, sets, dose=dose, rtol=GLOBAL_RTOL, atol=GLOBAL_ATOL, workers=workers)
    values = evaluate_outputs(outs, grid, obs, model.observable_names)
    table = draws.copy()
    for j, o in enumerate(outs):
        table[o.name] = values[:, j]
    table.attrs["summary"] = {o.name: {"median": float(np.median(values[:, j])),
                                       "p5": float(np.percentile(values[:, j], 5)),
                                       "p95": float(np.percentile(values[:, j], 95))} for j, o in enumerate(outs)}
    _LOG.info("virtual population of %d for %s", len(table), model.name)
    return table


def population_band(model, population: pd.DataFrame, times_h, observables: Sequence[str] | None = None,
                    params: Mapping[str, float] | None = None, dose=None, percentiles=(5.0, 50.0, 95.0),
                    workers: int | None = None) -> pd.DataFrame:
    """The prediction band of a population's time courses: percentiles of each observable at each time.

    ``population`` is a table of parameter sets (:func:`draw_population`, or the
    parameter columns of :func:`virtual_population`); columns that are not parameters
    of the model (outputs) are ignored.

    Returns
    -------
    pandas.DataFrame
        Index ``time_h``; columns ``(observable, "p5")``, ``(observable, "p50")``, …
    """
    names = [c for c in population.columns if c in model.parameters]
    if not names:
        raise SensitivityError("population", list(population.columns), "a table with parameter columns of the model")
    observables = list(observables or model.observable_names)
    unknown = [o for o in observables if o not in model.observable_names]
    if unknown:
        raise SensitivityError("observables", unknown[0], f"one of {', '.join(model.observable_names)}")
    times = np.asarray(times_h, dtype=float)
    base = dict(params or {})
    sets = [{**base, **{k: float(v) for k, v in row.items()}} for row in population[names].to_dict("records")]
    obs = simulate_many(model, times, sets, dose=dose, rtol=GLOBAL_RTOL, atol=GLOBAL_ATOL, workers=workers)
    columns = {}
    for o in observables:
        k = model.observable_names.index(o)
        q = np.percentile(obs[..., k], list(percentiles), axis=0)
        for p, row in zip(percentiles, q):
            columns[(o, f"p{p:g}")] = row
    frame = pd.DataFrame(columns, index=pd.Index(times, name="time_h"))
    frame.columns = pd.MultiIndex.from_tuples(frame.columns)
    return frame
