"""PEtab export of a nanopk fit problem.

PEtab (Schmiester et al. 2021) is the tabular problem format of the ODE-fitting world
(pyPESTO, AMICI, COPASI, PEtab.jl, sbmlsim read it).  :func:`to_petab` writes the
problem that :func:`nanopk.fit` would solve for the same arguments -- the objective of
:func:`nanopk.fit.build_objective` -- as

=======================  ================================================================
file                     content
=======================  ================================================================
``model.xml``            the model as SBML (:func:`nanopk.export.sbml.to_sbml`)
``conditions.tsv``       one condition per dataset: its ``dose`` (µg, a bolus at t = 0)
                         and the per-dataset values the fit holds (``BW``, organ volume
                         fractions ...); a parameter varied per dataset (``shared``) is
                         mapped here to its copy ``NAME__<dataset>``
``observables.tsv``      one observable per measured model observable, ``y_NAME`` =
                         the SBML parameter ``obs_NAME`` (%ID), with the error model
``measurements.tsv``     every row the fit uses, its σ as ``noiseParameters``
``parameters.tsv``       the varied parameters: natural-scale bounds, ``log10`` scale
                         where nanopk fits on the log scale, the start value as
                         ``nominalValue``, and the priors
``problem.yaml``         the PEtab 1.0 problem file naming the five above
=======================  ================================================================

Error models (nanopk's residuals, :mod:`nanopk.fit.objective`, as PEtab noise models):

- ``"log"``: ``observableTransformation = log``, ``noiseDistribution = normal``,
  ``noiseFormula = noiseParameter1_y_NAME`` and the row's log-scale σ in
  ``noiseParameters``: ln y ~ N(ln ŷ, σ²), whose residual is nanopk's
  ``(ln y − ln ŷ)/σ``;
- ``"additive"``: ``lin``/``normal``, σ = the row's ``s_i`` (%ID);
- ``"combined"``: ``lin``/``normal``, ``sqrt(noiseParameter1^2 + (b·obs_NAME)^2)``
  with nanopk's ``b = error_params["prop"]``.  PEtab's likelihood then has the
  ``ln σ(ŷ)`` term that nanopk's iteratively reweighted residuals leave out, so the
  two optima differ slightly for this model only.

So for ``"log"`` and ``"additive"`` PEtab's negative log-likelihood is exactly
``χ²/2 + Σ_i [ln(√(2π) σ_i) (+ ln y_i for log)]`` with nanopk's ``χ²`` (the
constant does not depend on the parameters), and the two share their optimum.
Priors ``(median, sd)`` become ``objectivePriorType = logNormal`` with
``objectivePriorParameters = "ln(median);sd"`` (ln θ ~ N(ln median, sd²), as nanopk's
prior rows) for log-scale parameters and ``normal`` ``"mean;sd"`` otherwise.

What PEtab 1.0 cannot say is refused, not dropped: censored rows (below a limit of
quantification; nanopk's Beal M3 likelihood) and a robust ``loss`` raise
:class:`~nanopk.errors.ExportError`; fit with ``censored="exclude"`` or
``loss="linear"`` to export.  Rows the fit itself leaves out (tissues the model does
not observe ...) are left out here too and listed in ``problem.yaml``'s comment header.

References
----------
Schmiester L et al. PEtab -- interoperable specification of parameter estimation
problems in systems biology. PLoS Comput Biol 2021;17:e1008646
(doi:10.1371/journal.pcbi.1008646).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import ExportError, format_rows
from ..model import DOSE
from .sbml import observable_id, to_sbml

__all__ = ["to_petab", "petab_problem", "PetabTables", "lint_petab", "load_petab", "FILES"]

#: The file names written into the problem directory.
FILES = {
    "sbml": "model.xml",
    "conditions": "conditions.tsv",
    "observables": "observables.tsv",
    "measurements": "measurements.tsv",
    "parameters": "parameters.tsv",
    "yaml": "problem.yaml",
}


@dataclass
class PetabTables:
    """A PEtab problem in memory: the SBML text and the four tables (PEtab 1.0 columns)."""

    sbml: str
    conditions: pd.DataFrame
    observables: pd.DataFrame
    measurements: pd.DataFrame
    parameters: pd.DataFrame
    #: What the fit left out (one line each), written into problem.yaml's header.
    notes: list = field(default_factory=list)


#: SBML text by (model structure, parameter values): the export validates units, ~1 s,
#: and one model serves every dataset of a study.
_SBML_MEMO: dict = {}


def _sbml_of(model) -> str:
    key = (model.structure_hash, tuple(float(v) for v in model.parameter_vector()))
    if key not in _SBML_MEMO:
        _SBML_MEMO[key] = to_sbml(model)
    return _SBML_MEMO[key]


def _petab_id(name: str, what: str) -> str:
    """A PEtab identifier (letters, digits, underscore; not starting with a digit)."""
    out = re.sub(r"\W", "_", str(name))
    if not out or out[0].isdigit():
        out = "c_" + out
    if out != str(name) and not out:
        raise ExportError(f"{what} {name!r} cannot be made a PEtab identifier")
    return out


def petab_problem(objective) -> PetabTables:
    """The PEtab tables of a nanopk fit objective.

    Parameters
    ----------
    objective : nanopk.fit.objective.Objective
        What :func:`nanopk.fit.build_objective` returns (one model, any number of
        datasets).

    Returns
    -------
    PetabTables

    Raises
    ------
    ExportError
        For what PEtab 1.0 cannot express: censored rows, a robust loss, an objective
        of several models (:class:`nanopk.fit.JointObjective`).
    """
    model = getattr(objective, "model", None)
    if model is None or not hasattr(objective, "specs"):
        raise ExportError(f"PEtab export needs a one-model fit objective (nanopk.fit.build_objective); got "
                          f"{type(objective).__name__}, which PEtab 1.0 (one SBML model a problem) cannot hold")
    if objective.loss != "linear":
        raise ExportError(f"PEtab 1.0 has no robust loss: the fit uses loss={objective.loss!r}; export the problem "
                          "with loss='linear'")
    for d in objective.datasets:
        cens = d.rows["censored"].to_numpy(dtype=bool)
        if cens.any():
            rows = d.rows.loc[cens, "row"].tolist() if "row" in d.rows else list(np.flatnonzero(cens))
            raise ExportError(
                f"dataset {d.name!r} has {int(cens.sum())} censored row(s) ({format_rows(rows)}, below the limit of "
                "quantification): PEtab 1.0 has no censored likelihood (nanopk uses Beal M3); export with "
                "censored='exclude'")

    sbml = _sbml_of(model)
    specs = objective.specs
    varied_models = {s.model_name for s in specs}
    per_dataset = {s.model_name for s in specs if s.dataset is not None}

    # Conditions: the dose and every per-dataset value, one row per dataset.
    cond_ids = {}
    for d in objective.datasets:
        cid = _petab_id(d.name, "dataset name")
        if cid in cond_ids.values():
            raise ExportError(f"datasets {d.name!r} and another map to the same PEtab condition id {cid!r}; rename one")
        cond_ids[d.name] = cid
    fixed_names = list(dict.fromkeys(k for d in objective.datasets for k in d.fixed))
    clash = sorted(set(fixed_names) & varied_models)
    if clash:
        raise ExportError(f"parameter(s) {', '.join(clash)} are both varied and fixed per dataset; PEtab cannot hold both")
    defaults = dict(zip(model.parameter_names, model.parameter_vector()))
    rows = []
    for d in objective.datasets:
        row = {"conditionId": cond_ids[d.name], "conditionName": d.name, DOSE: float(d.dose_ug)}
        for k in fixed_names:
            row[k] = float(d.fixed.get(k, defaults[k]))
        for name in sorted(per_dataset):
            row[name] = next(s.name for s in specs if s.model_name == name and s.dataset == d.name)
        rows.append(row)
    conditions = pd.DataFrame(rows)

    # Observables: one per measured model observable, with the error model.
    measured = list(dict.fromkeys(o for d in objective.datasets for o in d.rows["observable"]))
    obs_rows = []
    for o in measured:
        sid = observable_id(o)
        if f'id="{sid}"' not in sbml:
            raise ExportError(f"observable {o!r} has no SBML parameter {sid!r} in the export of model {model.name!r}")
        oid = f"y_{o}"
        noise = f"noiseParameter1_{oid}"
        row = {"observableId": oid, "observableName": f"{o} (%ID)", "observableFormula": sid,
               "observableTransformation": "log" if objective.error_model == "log" else "lin",
               "noiseFormula": noise, "noiseDistribution": "normal"}
        if objective.error_model == "combined":
            row["noiseFormula"] = f"sqrt({noise}^2 + ({objective.error_params['prop']!r} * {sid})^2)"
        obs_rows.append(row)
    observables = pd.DataFrame(obs_rows)

    # Measurements: every row the fit uses, σ per row.
    meas = []
    for d in objective.datasets:
        r = d.rows
        meas.append(pd.DataFrame({
            "observableId": [f"y_{o}" for o in r["observable"]],
            "simulationConditionId": cond_ids[d.name],
            "measurement": r["observed"].to_numpy(dtype=float),
            "time": r["time_h"].to_numpy(dtype=float),
            "noiseParameters": r["sigma"].to_numpy(dtype=float),
            "datasetId": cond_ids[d.name],
        }))
    measurements = pd.concat(meas, ignore_index=True)
    if objective.error_model == "log" and not (measurements["measurement"] > 0).all():
        bad = measurements.index[~(measurements["measurement"] > 0)].tolist()
        raise ExportError(f"measurement rows {bad[:10]} are not positive, but the log error model needs y > 0")

    # Parameters: the varied ones, bounds on the natural scale.
    par_rows = []
    for s in specs:
        row = {"parameterId": s.name, "parameterName": s.model_name if s.dataset is None else f"{s.model_name} ({s.dataset})",
               "parameterScale": "log10" if s.log else "lin", "lowerBound": float(s.lower), "upperBound": float(s.upper),
               "nominalValue": float(s.start), "estimate": 1}
        prior = objective.priors.get(s.name)
        if prior is not None and math.isfinite(prior[1]):
            median, sd = prior
            row["objectivePriorType"] = "logNormal" if s.log else "normal"
            row["objectivePriorParameters"] = f"{math.log(median)!r};{sd!r}" if s.log else f"{median!r};{sd!r}"
        par_rows.append(row)
    parameters = pd.DataFrame(par_rows)

    notes = [f"{e.get('dataset', '')}: {e.get('tissue', '')} {format_rows(e['rows']) if e.get('rows') else ''} left out: "
             f"{e.get('reason', '')}".strip() for d in objective.datasets for e in d.excluded]
    return PetabTables(sbml, conditions, observables, measurements, parameters, notes)


def _yaml(tables: PetabTables, name: str) -> str:
    lines = [f"# PEtab problem {name!r} written by nanopk {_version()}"]
    lines += [f"# left out by the fit: {n}" for n in tables.notes]
    lines += [
        "format_version: 1",
        f"parameter_file: {FILES['parameters']}",
        "problems:",
        "- condition_files:",
        f"  - {FILES['conditions']}",
        "  measurement_files:",
        f"  - {FILES['measurements']}",
        "  observable_files:",
        f"  - {FILES['observables']}",
        "  sbml_files:",
        f"  - {FILES['sbml']}",
    ]
    return "\n".join(lines) + "\n"


def _version() -> str:
    from .._version import __version__

    return __version__


def to_petab(model, directory=None, data=None, *, objective=None, **fit_kwargs) -> Path:
    """Write the PEtab problem of ``fit(model, data, **fit_kwargs)`` into ``directory``.

    The ``petab`` format of :func:`nanopk.export` (``nanopk.export(model, "petab", DIR,
    data=...)``) and of ``nanopk export MODEL --petab DIR --data DATASET``.

    Parameters
    ----------
    model : nanopk.Model or str
        The model (or a bundled model name); ignored when ``objective`` is given.
    directory : str or Path
        Created if missing; the files of :data:`FILES` are written into it
        (existing ones are overwritten).
    data : Dataset, str, path, DataFrame, or a list / dict of these
        As for :func:`nanopk.fit`.
    objective : Objective, optional
        A prebuilt :func:`nanopk.fit.build_objective` objective instead of
        ``model``, ``data`` and ``fit_kwargs``.
    **fit_kwargs
        :func:`nanopk.fit.build_objective`'s keywords (``vary``, ``shared``,
        ``error_model``, ``weighting``, ``error_params``, ``priors``, ``bounds``,
        ``start``, ``tissue_map``, ``body_weight``, ``censored``, ``checks`` ...).

    Returns
    -------
    pathlib.Path
        The problem YAML (``directory/problem.yaml``), which ``petab.Problem.from_yaml``
        and pyPESTO load.

    Raises
    ------
    ExportError
        For what PEtab 1.0 cannot express (see the module docstring), or a missing
        ``directory``.
    FitError, DataError
        As :func:`nanopk.fit` for the same arguments.

    Examples
    --------
    >>> import nanopk, tempfile
    >>> path = nanopk.to_petab("rat_pbpk", tempfile.mkdtemp(), data="hirn2011_au_18nm")  # doctest: +SKIP
    """
    if directory is None:
        raise ExportError("to_petab needs `directory`, the folder to write the PEtab problem into")
    if objective is None:
        if data is None:
            raise ExportError("to_petab needs `data` (a dataset name, path or Dataset) or a prebuilt `objective`")
        from ..fit.core import build_objective

        objective = build_objective(model, data, **fit_kwargs)
    elif fit_kwargs:
        raise ExportError(f"with `objective` given, the fit keywords {', '.join(sorted(fit_kwargs))} are already fixed by it; "
                          "leave them out")
    tables = petab_problem(objective)
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    (out / FILES["sbml"]).write_text(tables.sbml, encoding="utf-8")
    tables.conditions.to_csv(out / FILES["conditions"], sep="\t", index=False)
    tables.observables.to_csv(out / FILES["observables"], sep="\t", index=False)
    tables.measurements.to_csv(out / FILES["measurements"], sep="\t", index=False, float_format="%.17g")
    tables.parameters.to_csv(out / FILES["parameters"], sep="\t", index=False, float_format="%.17g")
    yaml_path = out / FILES["yaml"]
    name = "+".join(d.name for d in objective.datasets)
    yaml_path.write_text(_yaml(tables, f"{objective.model.name} / {name}"), encoding="utf-8")
    return yaml_path


def _petab_module():
    try:
        import petab.v1 as petab
    except ImportError:
        raise ImportError("reading PEtab problems needs the petab library: pip install 'nanopk[petab]'") from None
    return petab


def _quiet_petab():
    """A context in which pandas' deprecation warnings about the petab library's own calls are silenced.

    petab (0.8) reads its tables with ``float_precision`` and ``inplace=True``, which
    pandas 3 deprecates (``Pandas4Warning``); they are about petab's code, not the
    problem, so they are silenced around petab's calls only.
    """
    import warnings

    ctx = warnings.catch_warnings()
    ctx.__enter__()
    try:
        from pandas.errors import Pandas4Warning
    except ImportError:  # pandas < 3: no such warnings
        pass
    else:
        warnings.simplefilter("ignore", Pandas4Warning)
    return ctx


def load_petab(yaml_path):
    """``petab.v1.Problem.from_yaml(yaml_path)`` (see :func:`_quiet_petab` for the warnings it silences)."""
    petab = _petab_module()
    ctx = _quiet_petab()
    try:
        return petab.Problem.from_yaml(str(yaml_path))
    finally:
        ctx.__exit__(None, None, None)


def lint_petab(yaml_path) -> list[str]:
    """Run the ``petab`` library's linter on a problem; the messages it logged at ERROR level.

    An empty list means the linter passed.  Needs ``pip install 'nanopk[petab]'``.
    """
    import logging

    petab = _petab_module()

    messages: list[str] = []

    class _Collect(logging.Handler):
        def emit(self, record):
            if record.levelno >= logging.ERROR:
                messages.append(record.getMessage())

    handler = _Collect()
    log = logging.getLogger("petab")
    log.addHandler(handler)
    ctx = _quiet_petab()
    try:
        problem = petab.Problem.from_yaml(str(yaml_path))
        failed = petab.lint_problem(problem)
    finally:
        ctx.__exit__(None, None, None)
        log.removeHandler(handler)
    if failed and not messages:
        messages.append("the petab linter reported errors (see its log)")
    return messages
