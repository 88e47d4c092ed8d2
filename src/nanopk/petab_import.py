"""PEtab import: fit a PEtab problem (Schmiester et al. 2021) with nanopk.

:func:`read_petab` turns a PEtab 1.0 problem into what :func:`nanopk.fit` takes;
:func:`fit_petab` fits it (``nanopk fit --petab problem.yaml`` on the command line).
It reads the problem that :func:`nanopk.export.petab.to_petab` writes, and any other
whose tables say what nanopk's fit can say:

==========================  ===================================================================
PEtab                       nanopk
==========================  ===================================================================
SBML model                  :func:`nanopk.import_sbml` (what it cannot import it names by id)
condition                   one dataset (named by its ``conditionId``): ``dose`` (µg), or the
                            dose target species' initial value (SBML units), its dose;
                            a number under a model parameter that parameter's value for that
                            dataset (``attrs["parameters"]``); a parameter id under a model
                            parameter that parameter fitted per dataset (one id per condition)
observable                  ``observableFormula`` ``obs_NAME`` (the %ID parameter of nanopk's
                            SBML export), the name of a model observable (%ID), or the id of
                            a species of another tool's SBML (its amount or concentration in
                            the SBML's units, made %ID of the condition's dose row by row)
measurement                 a row of that dataset: ``time`` (the SBML's time unit, made
                            hours), ``measurement``, its σ from ``noiseParameters`` or a
                            numeric ``noiseFormula`` (scaled with the value on a linear scale)
noise model                 ``log`` + ``normal`` → ``error_model="log"`` with that σ on ln y;
                            ``log10`` likewise (σ·ln 10); ``lin`` + ``normal`` → ``"additive"``;
                            ``lin`` with ``sqrt(noiseParameter1_ID^2 + (b * FORMULA)^2)`` →
                            ``"combined"`` with ``error_params={"prop": b}``
parameter, ``estimate=1``   varied: ``nominalValue`` the start, ``lowerBound``/``upperBound``
                            the bounds; a prior ``logNormal`` / ``normal`` /
                            ``parameterScaleNormal`` as nanopk's ``(median, sd)`` prior
parameter, ``estimate=0``   held at ``nominalValue``
==========================  ===================================================================

Each row's σ is the PEtab σ exactly (given to the fit as a standard error with
``weighting="se"`` and no σ floor), so the objective is the PEtab likelihood's
residual sum of squares and the fit's optimum is the PEtab problem's (for ``log``,
``log10`` and ``lin`` noise; for the combined model nanopk's iteratively reweighted
residuals leave out PEtab's ``ln σ(ŷ)`` term, which :attr:`PetabFitProblem.notes`
says).  nanopk fits a parameter on the log scale when its lower bound is ≥ 0 and its
start positive, whatever its ``parameterScale``; the scale changes the optimiser's path,
not the optimum, and a note says where the two differ.

Refused, with a :class:`PetabImportError` that names the file, the column and the
row(s): several files of one table, observable formulas other than one observable,
noise distributions other than ``normal``, estimated noise or observable parameters
(``noiseParameters`` naming a parameter, ``observableParameters``), pre-equilibration,
steady-state times (``inf``), mixed transformations, a parameter per dataset that is
not given for every condition (or shared by some), condition columns that are not
model parameters (species' initial amounts), priors nanopk cannot state, and ids in
the parameter table that the problem does not use.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import NanopkError, format_rows, suggest
from .parts import DOSE, INFUSION_RATE

__all__ = ["read_petab", "fit_petab", "PetabFitProblem", "PetabImportError"]

#: PEtab 1.0 scales → natural value.
_SCALES = ("lin", "log", "log10")


class PetabImportError(NanopkError, ValueError):
    """A PEtab problem nanopk cannot fit; ``.file``, ``.column`` and ``.rows`` say where (rows 1-based, header = 1)."""

    def __init__(self, message: str, file: str | None = None, column: str | None = None, rows=None):
        self.file, self.column, self.rows = file, column, list(rows or [])
        super().__init__(message)


@dataclass
class PetabFitProblem:
    """A PEtab problem as nanopk's fit arguments.

    ``fit(problem.model, problem.data, **problem.fit_kwargs)`` is the PEtab problem's fit;
    :meth:`fit` and :meth:`objective` do that.
    """

    #: The model (:func:`nanopk.import_sbml` of the SBML file, with the ``estimate=0`` values set).
    model: object
    #: ``{conditionId: DataFrame}`` in nanopk's long %ID layout, ``attrs`` with ``dose_ug`` and ``parameters``.
    data: dict
    #: ``vary``, ``shared``, ``start``, ``bounds``, ``priors``, ``error_model``, ``error_params``,
    #: ``weighting``, ``sigma_floor``, ``body_weight``.
    fit_kwargs: dict
    #: The problem YAML.
    path: Path
    #: How the import read what PEtab and nanopk say differently (one line each).
    notes: list = field(default_factory=list)

    def objective(self, **options):
        """:func:`nanopk.fit.build_objective` of the problem (``options``: its other keywords, e.g. ``backend``)."""
        from .fit.core import build_objective

        return build_objective(self.model, self.data, **self.fit_kwargs, **options)

    def fit(self, **options):
        """:func:`nanopk.fit` of the problem; ``options`` are the optimiser's (``multistart``, ``jacobian`` ...)."""
        from .fit.core import fit

        return fit(self.model, self.data, **self.fit_kwargs, **options)


def _petab():
    try:
        import petab.v1 as petab
    except ImportError:
        raise ImportError("reading PEtab problems needs the petab library: pip install 'nanopk[petab]'") from None
    return petab


def _files(yaml_path: Path) -> dict:
    """``{table: path}`` from the problem YAML (one file per table)."""
    if not yaml_path.is_file():
        raise PetabImportError(f"PEtab problem file {str(yaml_path)!r} does not exist; give the problem's .yaml file",
                               str(yaml_path))
    petab = _petab()
    try:
        doc = petab.yaml.load_yaml(str(yaml_path))
    except Exception as exc:  # noqa: BLE001 - YAML syntax errors of several kinds
        raise PetabImportError(f"{yaml_path}: not a readable PEtab YAML file ({exc})", str(yaml_path)) from None
    if not isinstance(doc, dict) or "problems" not in doc or "parameter_file" not in doc:
        raise PetabImportError(f"{yaml_path}: a PEtab 1.0 problem file needs `format_version`, `parameter_file` and "
                               "`problems`", str(yaml_path))
    if str(doc.get("format_version", "1")).split(".")[0] != "1":
        raise PetabImportError(f"{yaml_path}: format_version {doc.get('format_version')!r}; nanopk reads PEtab 1",
                               str(yaml_path), "format_version")
    problems = doc["problems"]
    if len(problems) != 1:
        raise PetabImportError(f"{yaml_path}: {len(problems)} problems; nanopk fits one (a composite problem is several fits)",
                               str(yaml_path), "problems")
    out = {}
    pfiles = doc["parameter_file"] if isinstance(doc["parameter_file"], list) else [doc["parameter_file"]]
    entries = {"parameters": pfiles, **{k: problems[0].get(f"{k}_files") or [] for k in
                                       ("sbml", "condition", "observable", "measurement")}}
    for key, names in entries.items():
        if len(names) != 1:
            raise PetabImportError(f"{yaml_path}: {len(names)} {key} file(s); nanopk reads exactly one per table "
                                   "(merge them into one)", str(yaml_path), f"{key}_files")
        out[key] = (yaml_path.parent / names[0]).resolve()
        if not out[key].is_file():
            raise PetabImportError(f"{yaml_path}: the {key} file {str(out[key])!r} does not exist", str(yaml_path),
                                   f"{key}_files")
    return out


def _table(path: Path, required: tuple) -> pd.DataFrame:
    table = pd.read_csv(path, sep="\t", dtype=object, keep_default_na=False, na_values=[""])
    table.columns = [str(c).strip() for c in table.columns]
    missing = [c for c in required if c not in table.columns]
    if missing:
        raise PetabImportError(f"{path}: missing column(s) {', '.join(missing)} (columns: {', '.join(table.columns)})",
                               str(path), missing[0])
    table["_row"] = np.arange(2, len(table) + 2)  # as a spreadsheet numbers them, header = row 1
    return table


def _number(value):
    """A float, or ``None`` for an empty cell; a string that is not a number stays a string."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value).strip()


def _where(path, column, rows) -> str:
    return f"{path.name}, column {column!r}, {format_rows(list(rows))}"


def read_petab(yaml_path) -> PetabFitProblem:
    """Read a PEtab 1.0 problem as nanopk's fit arguments (see the module docstring).

    Parameters
    ----------
    yaml_path : str or Path
        The problem YAML (``problem.yaml``); its tables are read from beside it.

    Returns
    -------
    PetabFitProblem

    Raises
    ------
    PetabImportError
        Naming the file, column and rows of what nanopk cannot fit.
    SBMLImportError
        For an SBML model :func:`nanopk.import_sbml` cannot import (naming the SBML ids).
    ImportError
        Without the petab library or python-libsbml (``pip install 'nanopk[petab]'``).
    """
    from .sbml_import import import_sbml

    yaml_path = Path(yaml_path)
    files = _files(yaml_path)
    model = import_sbml(files["sbml"])
    notes: list[str] = []
    params = _table(files["parameters"], ("parameterId", "parameterScale", "lowerBound", "upperBound", "nominalValue",
                                          "estimate"))
    conds = _table(files["condition"], ("conditionId",))
    obs = _table(files["observable"], ("observableId", "observableFormula", "noiseFormula"))
    meas = _table(files["measurement"], ("observableId", "simulationConditionId", "measurement", "time"))

    observables, error_model, prop = _observables(obs, files["observable"], model, notes)
    conditions, per_condition, held_by_condition = _conditions(conds, files["condition"], model)
    varied, held, start, bounds, priors, shared = _parameters(params, files["parameters"], model, per_condition,
                                                             conditions, notes)
    for (cid, column), value in held_by_condition.items():
        if column in varied:
            raise PetabImportError(f"{_where(files['condition'], column, [conditions[cid]['row']])}: {column!r} is a number "
                                   f"for condition {cid!r} but estimated in {files['parameters'].name}; nanopk varies "
                                   "a parameter for every dataset or for none", str(files["condition"]), column,
                                   [conditions[cid]["row"]])
    if held:
        model = model.with_parameters(held)
    for c in conditions.values():  # the dose target's initial value, made µg with the sizes the fit uses
        if c["initial"] is not None:
            c["dose"] = c["initial"] * _ug_per_value(model, model.dose_target, c["fixed"])
            if not (math.isfinite(c["dose"]) and c["dose"] > 0):
                raise PetabImportError(f"{_where(files['condition'], model.dose_target, [c['row']])}: the dose target's "
                                       f"initial value {c['initial']!r} is not a positive amount", str(files["condition"]),
                                       model.dose_target, [c["row"]])
    data = _measurements(meas, files["measurement"], observables, conditions, notes, error_model == "log", model)
    fit_kwargs = {"vary": varied, "shared": shared, "start": start, "bounds": bounds, "priors": priors or None,
                  "error_model": error_model, "error_params": {"prop": prop} if prop is not None else None,
                  "weighting": "se", "sigma_floor": 0.0, "body_weight": "model"}
    return PetabFitProblem(model, data, fit_kwargs, yaml_path, notes)


_NOISE_PARAMETER = re.compile(r"^noiseParameter1_(\w+)$")
_COMBINED = re.compile(r"^sqrt\(noiseParameter1_(\w+)\^2\+\(([-+0-9.eE]+)\*(\w+)\)\^2\)$")


def _observables(obs, path, model, notes):
    """``{observableId: (model observable, σ factor, numeric σ or None, species or None, linear)}``, the error
    model, the combined ``b``.  A species of the SBML is read in its own units (made %ID per row)."""
    out, transforms, props = {}, {}, {}
    names = [n for n in model.observable_names if n != "total"]
    for _, row in obs.iterrows():
        oid, r = str(row["observableId"]).strip(), int(row["_row"])
        formula = str(row["observableFormula"]).strip()
        target = formula[4:] if formula.startswith("obs_") and formula[4:] in model.observable_names else formula
        species = formula if formula in _sbml_units(model)["species"] and formula in model.observable_names else None
        if target not in model.observable_names:
            raise PetabImportError(
                f"{_where(path, 'observableFormula', [r])}: {formula!r} is not an observable of model {model.name!r}; "
                f"nanopk fits %ID observables, named as obs_NAME (nanopk's SBML export) or NAME, of: {', '.join(names)}"
                f"{suggest(formula, names + ['obs_' + n for n in names])}", str(path), "observableFormula", [r])
        unit = model.observable_units.get(target, "percent_ID")
        if unit not in ("percent_ID", "%ID"):
            raise PetabImportError(f"{_where(path, 'observableFormula', [r])}: {target!r} is in {unit!r}; nanopk's fit "
                                   "compares %ID observables", str(path), "observableFormula", [r])
        dist = row.get("noiseDistribution")
        if isinstance(dist, str) and dist.strip() not in ("", "normal"):
            raise PetabImportError(f"{_where(path, 'noiseDistribution', [r])}: {dist!r}; nanopk's residuals are normal "
                                   "(on the log scale for a log transformation)", str(path), "noiseDistribution", [r])
        transform = row.get("observableTransformation")
        transform = "lin" if not isinstance(transform, str) or not transform.strip() else transform.strip()
        if transform not in _SCALES:
            raise PetabImportError(f"{_where(path, 'observableTransformation', [r])}: {transform!r}; PEtab's are "
                                   "lin, log, log10", str(path), "observableTransformation", [r])
        transforms.setdefault(transform, []).append(r)
        noise = re.sub(r"\s+", "", str(row["noiseFormula"]))
        fixed = _number(noise)
        m, c = _NOISE_PARAMETER.match(noise), _COMBINED.match(noise)
        if isinstance(fixed, float):
            if not fixed > 0:
                raise PetabImportError(f"{_where(path, 'noiseFormula', [r])}: σ = {fixed!r} must be positive",
                                       str(path), "noiseFormula", [r])
            sigma = fixed
        elif m and m.group(1) == oid:
            sigma = None
        elif c and c.group(1) == oid and c.group(3) == formula and transform == "lin":
            sigma = None
            props[oid] = float(c.group(2))
        else:
            raise PetabImportError(
                f"{_where(path, 'noiseFormula', [r])}: {row['noiseFormula']!r} is not a noise model nanopk fits; supported: "
                f"a number, noiseParameter1_{oid} (σ per measurement row), or for lin "
                f"sqrt(noiseParameter1_{oid}^2 + (b * {formula})^2) (nanopk's combined error)", str(path), "noiseFormula", [r])
        factor = math.log(10.0) if transform == "log10" else 1.0
        out[oid] = (target, factor, None if sigma is None else sigma * factor, species, transform == "lin")
    if len(transforms) > 1:
        first = min(transforms, key=lambda k: transforms[k][0])
        other = [k for k in transforms if k != first][0]
        raise PetabImportError(f"{_where(path, 'observableTransformation', transforms[other])}: {other!r}, but "
                               f"{format_rows(transforms[first])} say {first!r}; nanopk fits one error model",
                               str(path), "observableTransformation", transforms[other])
    transform = next(iter(transforms), "lin")
    if props and len(props) != len(out):
        rows = [int(r["_row"]) for _, r in obs.iterrows() if str(r["observableId"]).strip() not in props]
        raise PetabImportError(f"{_where(path, 'noiseFormula', rows)}: not the combined error model of the other "
                               "observables; nanopk fits one error model", str(path), "noiseFormula", rows)
    if len(set(props.values())) > 1:
        raise PetabImportError(f"{path.name}, column 'noiseFormula': the proportional coefficients "
                               f"{sorted(set(props.values()))} differ; nanopk's combined error has one",
                               str(path), "noiseFormula", [int(r) for r in obs["_row"]])
    if props:
        notes.append("combined error: nanopk's iteratively reweighted residuals leave out PEtab's ln σ(ŷ) term of the "
                     "likelihood, so the optimum differs slightly from the PEtab likelihood's")
        return out, "combined", next(iter(props.values()))
    if transform == "log10":
        notes.append("log10 observables: σ·ln 10 on ln y (the same likelihood up to a constant)")
    return out, ("log" if transform in ("log", "log10") else "additive"), None


def _sbml_units(model) -> dict:
    """What the SBML's numbers are in nanopk's units (:func:`nanopk.import_sbml` records it; nanopk's own export: hours, %ID)."""
    return model.metadata.get("sbml_units") or {"hours_per_time_unit": 1.0, "species": {}}


def _ug_per_value(model, species: str, fixed: dict) -> float:
    """µg in one unit of ``species``' SBML value (an amount, or a concentration times its compartment's size)."""
    info = _sbml_units(model)["species"][species]
    comp = info["compartment"]
    size = 1.0 if comp is None else float(fixed.get(comp, model.parameters[comp].value))
    return float(info["ug_per_unit"]) * size


def _conditions(conds, path, model):
    """``{cid: {"row", "dose", "fixed"}}``, ``{column: {cid: parameter id}}``, ``{(cid, column): value}``."""
    known = model.parameters
    conditions, per_condition, held = {}, {}, {}
    species = _sbml_units(model)["species"]
    target = model.dose_target if model.dose_target in species else None
    for column in conds.columns:
        if column in ("conditionId", "conditionName", "_row") or column in (DOSE, target):
            continue
        if column in species:
            rows = [int(r) for r in conds["_row"]]
            raise PetabImportError(
                f"{_where(path, column, rows)}: species {column!r} is not the dose target {model.dose_target!r}; nanopk's "
                "mass states start empty and receive the dose (set the dose target's initial amount, or 'dose' in µg)",
                str(path), column, rows)
        if column not in known or column == INFUSION_RATE:
            rows = [int(r) for r in conds["_row"]]
            raise PetabImportError(
                f"{_where(path, column, rows)}: {column!r} is not a parameter of model {model.name!r}; nanopk's "
                f"conditions set the dose (column 'dose', µg) and model parameters{suggest(column, known)}",
                str(path), column, rows)
    for _, row in conds.iterrows():
        cid, r = str(row["conditionId"]).strip(), int(row["_row"])
        if cid in conditions:
            raise PetabImportError(f"{_where(path, 'conditionId', [r])}: condition {cid!r} is defined twice",
                                   str(path), "conditionId", [r])
        dose = _number(row.get(DOSE)) if DOSE in conds.columns else None
        initial = _number(row.get(target)) if target in conds.columns else None
        if dose is not None and initial is not None:
            raise PetabImportError(f"{_where(path, DOSE, [r])}: both 'dose' and the dose target {target!r} set the dose; "
                                   "give one", str(path), DOSE, [r])
        if dose is None:
            dose = float(model.parameters[DOSE].value)
        if not (isinstance(dose, float) and math.isfinite(dose) and dose > 0):
            raise PetabImportError(f"{_where(path, DOSE, [r])}: the dose must be a positive number of µg (got {dose!r}); "
                                   "nanopk does not estimate doses", str(path), DOSE, [r])
        fixed = {}
        for column in conds.columns:
            if column in ("conditionId", "conditionName", "_row", DOSE, target):
                continue
            value = _number(row[column])
            if value is None:
                continue  # PEtab: an empty cell keeps the model's value
            if isinstance(value, float):
                fixed[column] = value
                held[(cid, column)] = value
            else:
                per_condition.setdefault(column, {})[cid] = value
        if initial is not None:  # the dose target's initial value in the SBML's units (amount or concentration)
            if not isinstance(initial, float):
                raise PetabImportError(f"{_where(path, target, [r])}: {initial!r}; nanopk does not estimate doses",
                                       str(path), target, [r])
        conditions[cid] = {"row": r, "dose": dose, "fixed": fixed, "initial": initial}
    for column, ids in per_condition.items():
        missing = [c for c in conditions if c not in ids]
        if missing:
            rows = [conditions[c]["row"] for c in missing]
            raise PetabImportError(f"{_where(path, column, rows)}: {column!r} is a parameter per condition elsewhere but "
                                   f"not for condition(s) {', '.join(map(repr, missing))}; nanopk fits a copy for every "
                                   "dataset (give each condition its own parameter id)", str(path), column, rows)
        seen: dict = {}
        for cid, pid in ids.items():
            seen.setdefault(pid, []).append(cid)
        shared = {pid: cids for pid, cids in seen.items() if len(cids) > 1}
        if shared:
            pid, cids = next(iter(shared.items()))
            rows = [conditions[c]["row"] for c in cids]
            raise PetabImportError(f"{_where(path, column, rows)}: conditions {', '.join(map(repr, cids))} share {pid!r}; "
                                   f"nanopk shares a parameter by all datasets (estimate {column!r} itself) or by none",
                                   str(path), column, rows)
    return conditions, per_condition, held


def _prior(row, path, pid, log: bool):
    """nanopk's ``(median or mean, sd)`` of the objective prior in ``row`` (None without one)."""
    kind = row.get("objectivePriorType")
    if not isinstance(kind, str) or not kind.strip():
        return None
    kind, r = kind.strip(), int(row["_row"])
    text = row.get("objectivePriorParameters")
    try:
        a, b = (float(v) for v in str(text).split(";"))
    except ValueError:
        raise PetabImportError(f"{_where(path, 'objectivePriorParameters', [r])}: {text!r} is not 'a;b'",
                               str(path), "objectivePriorParameters", [r]) from None
    scale = str(row["parameterScale"]).strip()
    if kind == "logNormal" and log:
        return math.exp(a), b
    if kind == "normal" and not log:
        return a, b
    if kind == "parameterScaleNormal" and log and scale in ("log", "log10"):
        factor = math.log(10.0) if scale == "log10" else 1.0
        return math.exp(a * factor), b * factor
    if kind == "parameterScaleNormal" and not log and scale == "lin":
        return a, b
    what = "on the log scale (lower bound ≥ 0, positive nominal value)" if log else "on the natural scale"
    raise PetabImportError(
        f"{_where(path, 'objectivePriorType', [r])}: a {kind!r} prior on {pid!r}, which nanopk fits {what}; nanopk's "
        "priors are logNormal (log scale; or parameterScaleNormal of a log/log10 parameter) and normal (natural scale)",
        str(path), "objectivePriorType", [r])


def _parameters(params, path, model, per_condition, conditions, notes):
    """vary, held values, start, bounds, priors and shared of the parameter table."""
    known = model.parameters
    copy_of = {pid: (column, cid) for column, ids in per_condition.items() for cid, pid in ids.items()}
    varied, held, start, bounds, priors, shared = [], {}, {}, {}, {}, []
    seen = set()
    estimated_copies: dict = {}
    for _, row in params.iterrows():
        pid, r = str(row["parameterId"]).strip(), int(row["_row"])
        if pid in seen:
            raise PetabImportError(f"{_where(path, 'parameterId', [r])}: {pid!r} is listed twice", str(path), "parameterId", [r])
        seen.add(pid)
        values = {k: _number(row[k]) for k in ("lowerBound", "upperBound", "nominalValue", "estimate")}
        estimate = values["estimate"]
        if estimate not in (0.0, 1.0):
            raise PetabImportError(f"{_where(path, 'estimate', [r])}: {row['estimate']!r}; PEtab's estimate is 0 or 1",
                                   str(path), "estimate", [r])
        nominal = values["nominalValue"]
        if pid not in known and pid not in copy_of:
            raise PetabImportError(
                f"{_where(path, 'parameterId', [r])}: {pid!r} is neither a parameter of model {model.name!r} nor a "
                "parameter id of the condition table; nanopk estimates model parameters only (noise and observable "
                f"parameters are not supported){suggest(pid, list(known) + list(copy_of))}", str(path), "parameterId", [r])
        if pid in (DOSE, INFUSION_RATE):
            raise PetabImportError(f"{_where(path, 'parameterId', [r])}: {pid!r} is set by each condition's dosing, "
                                   "not by the parameter table", str(path), "parameterId", [r])
        scale = str(row["parameterScale"]).strip()
        if scale not in _SCALES:
            raise PetabImportError(f"{_where(path, 'parameterScale', [r])}: {scale!r}; PEtab's are lin, log, log10",
                                   str(path), "parameterScale", [r])
        if not estimate:
            if not isinstance(nominal, float):
                raise PetabImportError(f"{_where(path, 'nominalValue', [r])}: a parameter that is not estimated needs a "
                                       "numeric nominalValue", str(path), "nominalValue", [r])
            if pid in copy_of:
                column, cid = copy_of[pid]
                conditions[cid]["fixed"][column] = nominal
            else:
                held[pid] = nominal
            continue
        lo, hi = values["lowerBound"], values["upperBound"]
        if not all(isinstance(v, float) for v in (lo, hi, nominal)) or not lo <= nominal <= hi or not lo < hi:
            raise PetabImportError(f"{path.name}, columns lowerBound/nominalValue/upperBound, row {r}: {pid!r} needs "
                                   f"numbers lowerBound ≤ nominalValue ≤ upperBound, lowerBound < upperBound (got "
                                   f"{row['lowerBound']!r}, {row['nominalValue']!r}, {row['upperBound']!r})",
                                   str(path), "lowerBound", [r])
        log = lo >= 0 and nominal > 0  # nanopk's rule (nanopk.fit.objective)
        if pid in copy_of:
            column, cid = copy_of[pid]
            name = f"{column}__{_dataset_id(cid)}"
            estimated_copies.setdefault(column, []).append(cid)
        else:
            name = pid
            varied.append(pid)
            shared.append(pid)
        start[name], bounds[name] = nominal, (lo, hi)
        if (scale == "lin") == log:
            notes.append(f"{pid}: parameterScale {scale}, but nanopk fits it on the {'log' if log else 'natural'} "
                         "scale (its rule: log when the lower bound is ≥ 0 and the start positive); the optimum is the same")
        prior = _prior(row, path, pid, log)
        if prior is not None:
            priors[name] = prior
    for column, ids in per_condition.items():
        got = estimated_copies.get(column, [])
        if got and len(got) != len(ids):
            rows = [int(r["_row"]) for _, r in params.iterrows() if str(r["parameterId"]).strip() in ids.values()]
            raise PetabImportError(f"{_where(path, 'estimate', rows)}: the per-condition copies of {column!r} are "
                                   "estimated for some conditions and held for others; nanopk varies all or none",
                                   str(path), "estimate", rows)
        if got:
            varied.append(column)
    unused = [pid for column, ids in per_condition.items() for pid in ids.values() if pid not in seen]
    if unused:
        raise PetabImportError(f"{path.name}: parameter(s) {', '.join(map(repr, unused))} of the condition table are not "
                               f"in the parameter table{suggest(unused[0], seen)}", str(path), "parameterId")
    if not varied:
        rows = [int(r) for r in params["_row"]]
        raise PetabImportError(f"{_where(path, 'estimate', rows)}: no parameter is estimated (estimate = 1); there is "
                               "nothing to fit", str(path), "estimate", rows)
    return varied, held, start, bounds, priors, shared


def _dataset_id(cid: str) -> str:
    """The dataset name nanopk's fit gives condition ``cid`` (:func:`nanopk.fit._data._identifier`)."""
    out = re.sub(r"\W", "_", str(cid)).strip("_")
    return "d_" + out if not out or out[0].isdigit() else out


def _measurements(meas, path, observables, conditions, notes, log: bool, model):
    """``{cid: %ID DataFrame}`` of the measurement table (times in the SBML's time unit made hours)."""
    hours = _sbml_units(model)["hours_per_time_unit"]
    for column in ("observableParameters", "preequilibrationConditionId"):
        if column in meas.columns:
            rows = [int(r) for r, v in zip(meas["_row"], meas[column]) if isinstance(v, str) and v.strip()]
            if rows:
                what = ("observable parameters (nanopk's observables have none)" if column == "observableParameters"
                        else "pre-equilibration (nanopk starts every dataset from the empty body at dosing)")
                raise PetabImportError(f"{_where(path, column, rows)}: {what} are not supported", str(path), column, rows)
    parts: dict = {cid: [] for cid in conditions}
    for _, row in meas.iterrows():
        r = int(row["_row"])
        oid, cid = str(row["observableId"]).strip(), str(row["simulationConditionId"]).strip()
        if oid not in observables:
            raise PetabImportError(f"{_where(path, 'observableId', [r])}: {oid!r} is not in the observable table"
                                   f"{suggest(oid, observables)}", str(path), "observableId", [r])
        if cid not in conditions:
            raise PetabImportError(f"{_where(path, 'simulationConditionId', [r])}: {cid!r} is not in the condition table"
                                   f"{suggest(cid, conditions)}", str(path), "simulationConditionId", [r])
        time, value = _number(row["time"]), _number(row["measurement"])
        if not (isinstance(time, float) and math.isfinite(time) and time >= 0):
            raise PetabImportError(f"{_where(path, 'time', [r])}: {row['time']!r}; nanopk fits finite times ≥ 0 (h), not "
                                   "steady states", str(path), "time", [r])
        if not isinstance(value, float):
            raise PetabImportError(f"{_where(path, 'measurement', [r])}: {row['measurement']!r} is not a number",
                                   str(path), "measurement", [r])
        target, factor, sigma, species, linear = observables[oid]
        if sigma is None:
            given = _number(row.get("noiseParameters")) if "noiseParameters" in meas.columns else None
            if not isinstance(given, float) or not given > 0:
                raise PetabImportError(
                    f"{_where(path, 'noiseParameters', [r])}: {row.get('noiseParameters')!r}; observable {oid!r} takes σ "
                    "from each row's noiseParameters, which must be a positive number (estimated noise parameters are "
                    "not supported)", str(path), "noiseParameters", [r])
            sigma = given * factor
        time *= hours
        if species is not None:  # a value of the SBML species → %ID of this condition's dose
            to_pid = 100.0 * _ug_per_value(model, species, conditions[cid]["fixed"]) / conditions[cid]["dose"]
            value *= to_pid
            sigma = sigma * to_pid if linear else sigma
        parts[cid].append((target, time, value, sigma, r))
    data = {}
    for cid, rows in parts.items():
        if not rows:
            notes.append(f"condition {cid!r} has no measurements and is not fitted")
            continue
        tissue, time, value, sigma, row = (list(c) for c in zip(*rows))
        # The PEtab σ as the `se` that the fit's weighting="se" turns back into exactly that σ: on the log
        # scale the fit's σ is sqrt(ln(1 + (se/y)²)) (nanopk.fit.objective), so se = y·sqrt(e^{σ²} − 1).
        y, s = np.array(value, dtype=float), np.array(sigma, dtype=float)
        with np.errstate(invalid="ignore"):
            se = y * np.sqrt(np.expm1(s ** 2)) if log else s
        table = pd.DataFrame({"tissue": tissue, "time_h": time, "value": value, "se": se, "row": row})
        table.attrs.update(name=cid, dose_ug=conditions[cid]["dose"], parameters=dict(conditions[cid]["fixed"]),
                           petab_condition=cid)
        data[cid] = table
    return data


def fit_petab(yaml_path, **options):
    """Fit a PEtab problem: :func:`read_petab` then :func:`nanopk.fit`.

    Parameters
    ----------
    yaml_path : str or Path
        The problem YAML.
    **options
        The optimiser's keywords of :func:`nanopk.fit` (``multistart``, ``jacobian``,
        ``backend``, ``max_nfev`` ...); the problem fixes the model, the data and the
        likelihood.

    Returns
    -------
    nanopk.fit.FitResult
        Its ``petab_notes`` attribute lists what :attr:`PetabFitProblem.notes` says.

    Raises
    ------
    PetabImportError, SBMLImportError
        As :func:`read_petab`.
    FitError
        For ``options`` that the problem already fixes (``vary``, ``error_model`` ...).

    Examples
    --------
    >>> result = nanopk.fit_petab("problem.yaml")  # doctest: +SKIP
    """
    from .errors import FitError

    problem = read_petab(yaml_path)
    clash = sorted(set(options) & (set(problem.fit_kwargs) | {"model", "data", "objective"}))
    if clash:
        raise FitError(f"fit_petab: {', '.join(clash)} {'is' if len(clash) == 1 else 'are'} fixed by the PEtab problem "
                       f"{str(problem.path)!r}; change its tables instead")
    result = problem.fit(**options)
    result.petab_notes = list(problem.notes)
    return result
