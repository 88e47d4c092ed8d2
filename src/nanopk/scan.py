"""Design scans: outputs (DE24, organ %ID at a time, AUCs) over a grid of particles and doses.

Every combination of the grid ``{size, coating, dose, ...}`` is one particle (and
regimen); each particle goes through ``nanopk.load_model(name, particle=p)`` as in
:func:`nanopk.predict_delivery`, so its size, coating and material set the mechanistic
parameters.  Particles whose models share one structure (same equations, other
parameter values) and one dose are then simulated together by
:func:`nanopk.simulate_many` on all cores, with the parameter values of each particle's
own model, and the outputs are read as in :mod:`nanopk.sensitivity`:

    DE24 = (1/24) ∫₀²⁴ tumour dt,  …,  liver@24h = liver(24 h),  AUC_blood = ∫₀¹⁶⁸ blood dt,
    t_half_blood_h = ln 2 / λz,  λz the log-linear slope of blood over 126–168 h,

so a scan's DE24 is the DE24 of :func:`nanopk.predict_delivery` and of
:func:`nanopk.delivery_efficiency` for the same particle.

References
----------
Cheng YH et al. Meta-analysis of nanoparticle delivery to tumors using a PBPK modeling
and simulation approach. ACS Nano 2020;14:3075 (the DE definitions).
"""
from __future__ import annotations

import math
import re
import time
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from .batch import simulate_many
from .delivery import _GRID_KEYS, T_END_H, _particle_rows, terminal_half_life
from .errors import suggest
from .particle import COATINGS, Particle
from .progress import get_logger, progress_bar
from .sensitivity import GLOBAL_ATOL, GLOBAL_RTOL, Output, SensitivityError, evaluate_outputs, output_grid, parse_outputs

__all__ = ["scan", "DEFAULT_OUTPUTS"]

_LOG = get_logger("scan")

#: Outputs of a scan when none are asked for.
DEFAULT_OUTPUTS = ("DE24", "DE168", "DEmax")
#: The scan-only output: terminal blood half-life, ln 2/λz over 126-168 h (as
#: :func:`nanopk.delivery.pk_metrics`); not a weighted sum, so not for sensitivities.
HALF_LIFE = "t_half_blood_h"


def _as_list(name: str, values) -> list:
    return list(values) if isinstance(values, (list, tuple, np.ndarray)) else [values]


#: A coating with its PEG molecular weight in one token: PEG5k, PEG2000, PEG-3.4k, PEG_5kDa.
_PEG_MW = re.compile(r"^PEG[-_ ]?(\d+(?:\.\d+)?)\s*(k|kDa|Da)?$", re.IGNORECASE)


def coating_token(value) -> tuple[str, float | None]:
    """``(coating, PEG molecular weight in Da or None)`` of a grid's coating entry.

    ``"PEG5k"`` → ``("PEG", 5000.0)``, ``"PEG2000"`` → ``("PEG", 2000.0)``; any other entry is
    returned as it is, with no molecular weight.
    """
    m = _PEG_MW.match(str(value).strip())
    if not m:
        return value, None
    number, unit = float(m.group(1)), (m.group(2) or "").lower()
    return "PEG", number * 1000.0 if unit in ("k", "kda") else number


def _check_grid(grid: Mapping) -> None:
    for key, values in grid.items():
        if key not in _GRID_KEYS:
            raise SensitivityError("grid", key, "one of " + ", ".join(_GRID_KEYS), "is not a particle field" + suggest(key, _GRID_KEYS))
        values = _as_list(key, values)
        if not values:
            raise SensitivityError(key, values, "at least one value", "is empty")
        if key == "coating":
            for c in values:
                c, _ = coating_token(c)
                if c not in COATINGS:
                    raise SensitivityError("coating", c, "one of " + ", ".join(COATINGS), "is not a coating" + suggest(str(c), COATINGS))
        if key in ("size", "core_diameter_nm", "d", "hydrodynamic_diameter_nm", "coating_mw_da"):
            for v in values:
                if isinstance(v, bool) or not isinstance(v, (int, float)) or not (v > 0 and math.isfinite(v)):
                    raise SensitivityError(key, v, "a positive number (nm, or Da for coating_mw_da)", "is not a positive number")
        if key == "dose":
            for v in values:
                if isinstance(v, (int, float)) and not isinstance(v, bool) and not (v > 0 and math.isfinite(v)):
                    raise SensitivityError("dose", v, "a positive number in mg/kg or a string with a unit ('20 ug')",
                                           "is not a positive dose")


def scan(model_name, grid: Mapping[str, Sequence] | None = None, outputs: str | Sequence[str] = DEFAULT_OUTPUTS,
         base: Mapping | None = None, params: Mapping[str, float] | None = None, workers: int | None = None,
         progress: bool | None = None, **axes) -> pd.DataFrame:
    """Outputs over every combination of a particle/dose grid, as a tidy table.

    Parameters
    ----------
    model_name : str or Path
        A bundled model name or spec path (each particle rebuilds the model from it).
    grid : dict, optional
        ``{"size": [10, 50, 100], "coating": ["none", "PEG"], "dose": [1, 5]}``; the
        keys of :func:`nanopk.predict_delivery` (``size`` is the core diameter in nm;
        ``dose`` in mg/kg when a number, else a string with its unit).  The same axes
        may be given as keywords (``size=[10, 50]``).
    outputs : str or list of str
        As :mod:`nanopk.sensitivity` (``DE24``, ``DE168``, ``DEmax``, ``AUC_blood``,
        ``liver@24h``, …), and ``t_half_blood_h``: the terminal blood half-life
        ln 2/λz over the last quarter of 0–168 h (as :func:`nanopk.delivery.pk_metrics`;
        NaN where blood does not decline there).
    base : dict, optional
        Particle fields shared by all rows (default ``{"material": "Au"}``).  A PEG
        coating without a molecular weight gets 5000 Da (as ``predict_delivery``).
    params : dict, optional
        Parameter overrides for every model.

    Returns
    -------
    pandas.DataFrame
        Wide-by-output tidy table: one row per grid point, with the grid's columns
        (``size`` → ``core_diameter_nm``), ``dose``, ``d_h`` (hydrodynamic diameter,
        nm) and one column per output (%ID; AUCs %ID·h).  ``.attrs``:
        ``n_simulations``, ``seconds``, ``outputs``.

    Raises
    ------
    SensitivityError
        An unknown grid key, coating or output, a size or dose that is not positive.
    """
    grid = {**dict(grid or {}), **axes}
    if not grid:
        raise SensitivityError("grid", grid, "at least one axis, e.g. size=[10, 50, 100] or coating=['none', 'PEG']", "is empty")
    _check_grid(grid)
    grid = {k: _as_list(k, v) for k, v in grid.items()}
    from .spec import load_model

    base = {"material": "Au", **dict(base or {})}
    t0 = time.perf_counter()
    rows, models, doses = [], [], []
    n = int(np.prod([len(v) for v in grid.values()]))
    with progress_bar(n, f"building {n} models", "model", progress) as bar:
        for fields in _particle_rows(grid, base):
            dose = fields.pop("dose", None)
            if "coating" in fields:  # PEG5k: the coating and its molecular weight in one entry
                coating, mw = coating_token(fields["coating"])
                fields["coating"] = coating
                if mw is not None:
                    fields["coating_mw_da"] = mw
            if fields.get("coating") in ("PEG", "PEG-PLA") and fields.get("coating_mw_da") is None:
                fields["coating_mw_da"] = 5000.0
            particle = Particle.from_dict(fields)
            models.append(load_model(model_name, particle=particle, params=dict(params) if params else None))
            doses.append(f"{dose} mg/kg" if isinstance(dose, (int, float)) else dose)
            rows.append({**particle.to_dict(), "dose": dose, "d_h": particle.hydrodynamic_diameter})
            bar.update()
    names = [o.strip() for o in (outputs.split(",") if isinstance(outputs, str) else outputs) if str(o).strip()]
    half_life = HALF_LIFE in names
    if half_life and "blood" not in models[0].observable_names:
        raise SensitivityError("outputs", HALF_LIFE, "outputs of a model with a 'blood' observable", "needs blood")
    outs = parse_outputs([n for n in names if n != HALF_LIFE], models[0].observable_names) if names != [HALF_LIFE] else []
    # the half-life reads the blood curve to 168 h: the grid reaches it
    times = output_grid(outs + ([Output("blood@168h", "blood", "at", T_END_H)] if half_life else []))
    half_lives = np.full(len(rows), np.nan)
    values = np.full((len(rows), max(len(outs), 1)), np.nan)
    groups: dict = {}
    for i, (m, d) in enumerate(zip(models, doses)):
        groups.setdefault((m.structure_hash, str(d)), []).append(i)
    for (_, _), members in groups.items():
        first = models[members[0]]
        sets = [{n: float(p.value) for n, p in models[i].parameters.items()} for i in members]
        obs = simulate_many(first, times, sets, dose=doses[members[0]], rtol=GLOBAL_RTOL, atol=GLOBAL_ATOL, workers=workers)
        if outs:
            values[members] = evaluate_outputs(outs, times, obs, first.observable_names)
        if half_life:
            blood = obs[..., first.observable_names.index("blood")]
            half_lives[members] = [np.nan if (h := terminal_half_life(times, b)) is None else h for b in blood]
    elapsed = time.perf_counter() - t0
    _LOG.info("scan of %s: %d particle(s) in %d model structure(s), %.2f s", models[0].name, len(rows), len(groups), elapsed)
    table = pd.DataFrame(rows)
    columns = {o.name: values[:, j] for j, o in enumerate(outs)}
    if half_life:
        columns[HALF_LIFE] = half_lives
    order = [n if n == HALF_LIFE else o.name for n, o in zip(names, _aligned(names, outs))]
    for name in order:
        table[name] = columns[name]
    table.attrs.update(n_simulations=len(rows), seconds=elapsed, outputs=order,
                       structure_hashes=[m.structure_hash for m in models])  # per row, for the JSON's provenance
    return table


def _aligned(names, outs):
    """The parsed output of each requested name (None for the half-life), in request order."""
    it = iter(outs)
    return [None if n == HALF_LIFE else next(it) for n in names]
