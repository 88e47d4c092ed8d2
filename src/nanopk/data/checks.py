"""Named plausibility rules for a dataset, its model and the fit's arguments.

:func:`check_dataset` runs every rule below and returns a :class:`CheckReport`: one
:class:`RuleResult` per rule, with its id, what it checks, a severity and the source
rows involved (1-based, header = row 1, as in every nanopk error).  The design follows
pharmpy's ``check_dataset`` (pharmpy/modeling/check_dataset.py: a code, a description
and a result for each rule), with nanopk's severities:

``OK``
    The rule holds.
``WARN``
    Doubtful but possible: a fit runs and lists the warning in its report.
``FAIL``
    Not possible for this dataset and model (a fit would return wrong numbers):
    :func:`nanopk.fit` refuses to fit, ``nanopk check`` exits with status 1.
``SKIP``
    The rule could not be checked (no model given, no body weight in the sidecar...);
    the message says what is missing.

The rules
---------
D1 ``organ_max``
    No tissue holds more than 100 %ID.  Values are converted with the dataset's own
    conversion (:meth:`Dataset.percent_id`: its organ masses and dose).  Above 105 %ID
    (100 % plus the 5 % a counting or weighing error can add) is FAIL; 100-105 %ID is
    WARN.
D2 ``organ_sum``
    The tissues measured at one time (per group) add up to at most 105 %ID.  Tissues
    that contain other tissues are counted once: ``plasma`` is part of ``blood``;
    ``stomach``/``intestine``/``small_intestine``/``large_intestine`` are part of
    ``gi``; the two intestines are part of ``intestine``; ``bone_marrow`` is part of
    ``bone``.  Organs without blood above 105 %ID is FAIL.  Blood overlaps the organs
    (an unperfused organ holds its capillary blood), so the sum *with* blood is only
    WARN, and only above 105 %ID plus the share of the blood's %ID that the measured
    organs' vascular space can hold: Σ_o f_B,o·m_o / m_blood of the species'
    physiology table (capillary blood fractions of Brown et al. 1997,
    :mod:`nanopk.physiology`).
D3 ``percent_id``
    Every row converts to %ID (WARN otherwise: those rows are outside D1 and D2).
D4 ``body_weight``
    The sidecar's ``body_weight_g`` lies in the species' range (see
    :data:`BODY_WEIGHT_G`): outside the typical range is WARN, outside the possible
    range (e.g. 0.02 typed into a gram field, 20 000 g for a mouse) FAIL.
D5 ``time_unit``
    The times look like the sidecar's ``time_unit`` (WARN only; see
    :func:`_days_labelled_hours`): times labelled ``h`` that are all whole numbers up
    to 31, drawn from a day schedule (1, 2, 3, 4, 5, 6, 7, 10, 14, 21, 28, 30, 31) and
    including a weekly mark (7, 14, 21 or 28) look like days -- a biodistribution study
    in hours samples minutes to 1-7 days (0.083, 1, 4, 24, 168 h) and so has a
    fraction or a time above 31; times labelled ``d`` that include at least two of
    24, 48, 72, 96, 168 look like hours.
M1 ``species``
    The sidecar's species is the model's (``model.metadata["species"]``); FAIL
    otherwise: the physiology (organ masses, blood flows) would be another species'.
M2 ``route``
    The sidecar's route is the model's.  nanopk's models are dosed as an
    intravenous bolus or infusion into their ``dose_target`` (``nanopk.Bolus``,
    ``nanopk.Infusion``), so the model's route is ``iv`` unless its metadata says
    otherwise; any other route (oral, intraperitoneal, inhalation ...) is FAIL (the
    absorption phase is not in the model), an unrecognised spelling WARN.
M3 ``particle_fields``
    Every particle field the user gave is read by the model (WARN otherwise).  Which
    fields the model reads is what its mechanisms looked at while it was built
    (``model.metadata["particle_fields_read"]``, recorded by
    :class:`nanopk.particle.ReadRecorder`; the same record names ignored fields in
    ``model.notes``).  ``mouse_pbpk`` reads none (its uptake parameters are calibrated
    values); ``zeta_mV`` and ``shape`` are read by no bundled model; ``targeting`` by
    ``mouse_tumour_full`` (receptor binding).
M4 ``particle_match``
    The particle fields the model reads agree with the dataset's sidecar ``particle``
    (WARN otherwise: e.g. ``mouse_tumour_full`` fitted to 50 nm data with its default
    15 nm particle).
F1 ``fixed_and_varied``
    No parameter is both held (``--param``) and varied (``--vary``); FAIL otherwise
    (the held value would silently become the start value of the fit).

A curator who has looked at a data finding and keeps the data as published says so in
the sidecar: ``"accepted_checks": {"D1": "reason"}`` turns that data rule's FAIL into a
WARN whose message starts with the reason (it is never hidden: every fit lists it).
Only data rules (D*) can be accepted; model and argument rules depend on the run.

>>> from nanopk.data import read_dataset, check_dataset
>>> report = check_dataset(read_dataset("cho2010_peg_au_13nm"))
>>> report.failed
()
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields

import numpy as np
import pandas as pd

from ..errors import DataError, FitError, format_rows

__all__ = ["check_dataset", "check_fit_arguments", "CheckReport", "RuleResult", "RULES", "BODY_WEIGHT_G",
           "OK", "WARN", "FAIL", "SKIP"]

OK, WARN, FAIL, SKIP = "OK", "WARN", "FAIL", "SKIP"
_RANK = {OK: 0, SKIP: 0, WARN: 1, FAIL: 2}

#: Rule id -> (name, what it checks).  The order is the order of every report.
RULES: dict[str, tuple[str, str]] = {
    "D1": ("organ_max", "no tissue above 100 %ID (FAIL above 105)"),
    "D2": ("organ_sum", "tissues at one time sum to at most 105 %ID (blood overlaps organs: WARN)"),
    "D3": ("percent_id", "every row converts to %ID"),
    "D4": ("body_weight", "body_weight_g in the species' range"),
    "D5": ("time_unit", "times look like the sidecar's time_unit"),
    "M1": ("species", "dataset species is the model's species"),
    "M2": ("route", "dataset route is the model's route"),
    "M3": ("particle_fields", "every particle field given is read by the model"),
    "M4": ("particle_match", "model particle agrees with the dataset's particle"),
    "F1": ("fixed_and_varied", "no parameter both held (--param) and varied (--vary)"),
}

#: Tolerance of the %ID rules: a single organ or a sum may exceed 100 %ID by this much
#: (counting statistics, weighing, the organ-mass assumption) before it is FAIL.
PERCENT_ID_TOLERANCE = 5.0

#: Body weight (g) by species: ``typical`` (outside: WARN) and ``possible`` (outside:
#: FAIL) ranges, with their sources.  The bounds are nanopk's choice around the cited
#: figures: wide enough for juveniles, obese strains and retired breeders, narrow
#: enough to catch a weight typed in the wrong unit (kg in a gram field, or the reverse).
BODY_WEIGHT_G: dict[str, dict] = {
    "mouse": {
        "typical": (15.0, 60.0), "possible": (2.0, 150.0),
        "source": "reference adult 20-25 g (Brown et al., Toxicol Ind Health 1997;13:407); 96-day means 19.9 g "
                  "(C57BL/6J females) to 49.1 g (lines selected for large size) (Gall & Kyle, Growth of the "
                  "laboratory mouse, Theor Appl Genet 1968); neonates weigh 1-2 g",
    },
    "rat": {
        "typical": (100.0, 800.0), "possible": (10.0, 1500.0),
        "source": "reference adult 250 g (Brown et al. 1997); body weight from weaning to old age in Ghasemi, "
                  "Jeddi & Kashfi, The laboratory rat: age and body weight matter, EXCLI J 2021;20:1431 "
                  "(doi:10.17179/excli2021-4072)",
    },
    "human": {
        "typical": (40_000.0, 150_000.0), "possible": (500.0, 650_000.0),
        "source": "reference adult 70 kg (Brown et al. 1997); possible range from a premature neonate to the "
                  "heaviest recorded adults",
    },
}

#: Route spellings that mean intravenous.
IV_ROUTES = frozenset({"iv", "i.v.", "i.v", "intravenous", "intravenously", "intravenous injection", "tail vein",
                       "tail-vein", "tail vein injection", "retro-orbital", "retroorbital", "intravenous bolus",
                       "iv bolus", "iv infusion", "intravenous infusion", "intra-venous"})
#: Route spellings known to be something else (absorption first).
OTHER_ROUTES = {
    "oral": "oral", "po": "oral", "p.o.": "oral", "gavage": "oral", "oral gavage": "oral",
    "ip": "intraperitoneal", "i.p.": "intraperitoneal", "intraperitoneal": "intraperitoneal",
    "sc": "subcutaneous", "s.c.": "subcutaneous", "subcutaneous": "subcutaneous",
    "im": "intramuscular", "i.m.": "intramuscular", "intramuscular": "intramuscular",
    "inhalation": "inhalation", "intratracheal": "intratracheal", "it": "intratracheal",
    "intranasal": "intranasal", "dermal": "dermal", "topical": "dermal", "intratumoral": "intratumoural",
    "intratumoural": "intratumoural", "it injection": "intratumoural",
}

# Containment: a tissue is left out of the organ sum when one that contains it is measured.
_PARTS_OF = {
    "plasma": ("blood",),
    "stomach": ("gi",), "intestine": ("gi",),
    "small_intestine": ("gi", "intestine"), "large_intestine": ("gi", "intestine"),
    "bone_marrow": ("bone",),
}
_BLOOD = ("blood", "plasma")

_DAY_SCHEDULE = frozenset({1, 2, 3, 4, 5, 6, 7, 10, 14, 21, 28, 30, 31})
_WEEKLY = frozenset({7, 14, 21, 28})
_HOUR_MARKS = frozenset({24, 48, 72, 96, 168})


# ---------------------------------------------------------------------- results
@dataclass(frozen=True)
class RuleResult:
    """The outcome of one rule.

    Attributes
    ----------
    id : str
        ``"D1"`` ... (see :data:`RULES`).
    name : str
        Short name, e.g. ``"organ_max"``.
    severity : {"OK", "WARN", "FAIL", "SKIP"}
    message : str
        What was found (the values, the rows, and for WARN/FAIL what would be right).
    rows : tuple of int
        Source rows involved (1-based, header = row 1); empty for sidecar and argument rules.
    column : str or None
        The column or sidecar key concerned.
    """

    id: str
    name: str
    severity: str
    message: str
    rows: tuple = ()
    column: str | None = None

    @property
    def description(self) -> str:
        """What the rule checks."""
        return RULES[self.id][1]

    def line(self) -> str:
        """``"FAIL  D1 organ_max: ...; rows 2, 3"`` -- one printable line."""
        rows = f" [{format_rows(self.rows)}]" if self.rows else ""
        return f"{self.severity:<4}  {self.id} {self.name}: {self.message}{rows}"

    def to_dict(self) -> dict:
        return {"id": self.id, "name": self.name, "severity": self.severity, "description": self.description,
                "message": self.message, "rows": list(self.rows), "column": self.column}


@dataclass(frozen=True)
class CheckReport:
    """Every rule's result for one dataset (and model, and fit arguments).

    Iterate over it for the :class:`RuleResult` objects (in :data:`RULES` order);
    ``str(report)`` prints every rule, OK ones too.
    """

    dataset: str
    model: str | None
    results: tuple
    path: str | None = None

    def __iter__(self):
        return iter(self.results)

    def __len__(self) -> int:
        return len(self.results)

    def __getitem__(self, key):
        """A result by position or by rule id (``report["D1"]``)."""
        if isinstance(key, str):
            for r in self.results:
                if r.id == key or r.name == key:
                    return r
            raise KeyError(f"no rule {key!r}; rules: {', '.join(RULES)}")
        return self.results[key]

    @property
    def failed(self) -> tuple:
        """The FAIL results."""
        return tuple(r for r in self.results if r.severity == FAIL)

    @property
    def warnings(self) -> tuple:
        """The WARN results."""
        return tuple(r for r in self.results if r.severity == WARN)

    @property
    def ok(self) -> bool:
        """True when no rule failed."""
        return not self.failed

    def to_frame(self) -> pd.DataFrame:
        """One row per rule: ``id, name, severity, description, message, rows, column``."""
        return pd.DataFrame([r.to_dict() for r in self.results],
                            columns=["id", "name", "severity", "description", "message", "rows", "column"])

    def to_dict(self) -> dict:
        return {"dataset": self.dataset, "model": self.model, "path": self.path,
                "n_fail": len(self.failed), "n_warn": len(self.warnings), "rules": [r.to_dict() for r in self.results]}

    def __str__(self) -> str:
        head = f"checks of dataset {self.dataset!r}" + (f" with model {self.model!r}" if self.model else "")
        tail = f"{len(self.failed)} FAIL, {len(self.warnings)} WARN, {len(self.results)} rules"
        return "\n".join([head] + [r.line() for r in self.results] + [tail])

    def raise_if_failed(self, error=DataError, hint: str = ""):
        """Raise ``error`` (:class:`DataError` or :class:`FitError`) listing every FAIL rule."""
        if not self.failed:
            return
        problems = [{"message": f"[{r.id} {r.name}] {r.message}" + (f" ({format_rows(r.rows)})" if r.rows else ""),
                     **({"rows": list(r.rows)} if r.rows else {}), **({"column": r.column} if r.column else {})}
                    for r in self.failed]
        if hint:
            problems[-1]["message"] += f"\n{hint}"
        if error is DataError:
            raise DataError(self.path or self.dataset, problems)
        raise error(f"{len(problems)} check(s) failed:\n" + "\n".join(f"  - {p['message']}" for p in problems))


def _result(rule: str, severity: str, message: str, rows=(), column=None) -> RuleResult:
    return RuleResult(rule, RULES[rule][0], severity, message, tuple(int(r) for r in sorted(set(rows))), column)


# ---------------------------------------------------------------------- entry points
def check_dataset(dataset, model=None, *, vary=None, fixed=None, particle=None) -> CheckReport:
    """Run every plausibility rule on ``dataset`` (and ``model``, and the fit's arguments).

    Parameters
    ----------
    dataset : Dataset or str or path
        A dataset, or a bundled name / path for :func:`nanopk.data.read_dataset`.
    model : nanopk.Model or str, optional
        The model to be fitted (rules M1-M4 are SKIP without one).
    vary : str or list of str, optional
        Parameters to be fitted (``--vary``).
    fixed : dict or list of str, optional
        Parameters held at given values (``--param``); rule F1 runs when ``vary`` or
        ``fixed`` is given.
    particle : Particle, dict or str, optional
        The particle the user gave for ``model`` (``--particle``): rule M3 checks
        these fields.  Default: the fields of the model's particle that differ from
        its spec's ``[particle]`` table and from :class:`nanopk.Particle`'s defaults.

    Returns
    -------
    CheckReport
        One result per rule in :data:`RULES`, OK ones included.

    Raises
    ------
    DataError
        Only if ``dataset`` cannot be read (a plausibility finding is a result, not an error).
    """
    if isinstance(dataset, (str,)) or hasattr(dataset, "__fspath__"):
        from .reader import read_dataset

        dataset = read_dataset(dataset)
    if isinstance(model, str):
        from ..spec import load_model

        model = load_model(model, particle=particle)
    accepted = _accepted(dataset)
    pid, unconvertible = _percent_id(dataset)
    results = [
        *_organ_rules(dataset, pid),
        _rule_convertible(dataset, unconvertible, model),
        _rule_body_weight(dataset),
        _rule_time_unit(dataset),
        _rule_species(dataset, model),
        _rule_route(dataset, model),
        *_particle_rules(dataset, model, particle),
        _rule_fixed_and_varied(vary, fixed),
    ]
    results = [_accept(r, accepted.get(r.id)) for r in results]
    return CheckReport(dataset.name, None if model is None else model.name, tuple(results),
                       None if dataset.path is None else str(dataset.path))


def _accepted(dataset) -> dict:
    """The sidecar's ``accepted_checks`` ``{rule id: reason}``, checked."""
    accepted = dataset.meta.get("accepted_checks")
    if accepted is None:
        return {}
    data_rules = [k for k in RULES if k.startswith("D")]
    where = dataset.path.with_suffix(".json").name if dataset.path else "the sidecar"
    problems = []
    if not isinstance(accepted, dict):
        problems.append(f"{where}: accepted_checks must be an object {{rule id: reason}} (got {accepted!r})")
    else:
        for key, reason in accepted.items():
            if key not in data_rules:
                problems.append(f"{where}: accepted_checks names {key!r}, which is not a data rule; valid: "
                                f"{', '.join(data_rules)} (model and argument rules cannot be accepted by a dataset)")
            elif not isinstance(reason, str) or not reason.strip():
                problems.append(f"{where}: accepted_checks[{key!r}] must give the reason as text (got {reason!r})")
    if problems:
        raise DataError(dataset.path or dataset.name, [{"message": p, "column": "accepted_checks"} for p in problems])
    return accepted


def _accept(result: RuleResult, reason: str | None) -> RuleResult:
    """A finding the dataset's curator accepted (sidecar ``accepted_checks``) is a WARN, never hidden."""
    if reason is None or result.severity not in (WARN, FAIL):
        return result
    return RuleResult(result.id, result.name, WARN, f"accepted by the sidecar ({reason.strip()}): {result.message}",
                      result.rows, result.column)


def check_fit_arguments(vary=None, fixed=None) -> RuleResult:
    """Rule F1 alone; raises :class:`FitError` when it fails (``nanopk fit --param ... --vary ...``)."""
    result = _rule_fixed_and_varied(vary, fixed)
    if result.severity == FAIL:
        raise FitError(f"[F1 fixed_and_varied] {result.message}")
    return result


def fit_checks(model, sources, vary=None) -> list[str]:
    """The hook of :func:`nanopk.fit`: check every Dataset among ``sources``.

    Returns the WARN results as lines for the fit's warnings; raises
    :class:`DataError` listing every FAIL rule of the first dataset that has one.
    Sources that are not a :class:`Dataset` (DataFrames) have no sidecar and are
    not checked.
    """
    from .dataset import Dataset

    notes, seen = [], set()
    for source in sources:
        if not isinstance(source, Dataset) or id(source) in seen:
            continue
        seen.add(id(source))
        report = check_dataset(source, model, vary=vary)
        report.raise_if_failed(DataError, hint=(
            f"    (`nanopk check {source.path or source.name} --model {model.name}` lists every rule; "
            "fit(..., checks=False) fits anyway)"))
        notes += [f"check {r.id} {r.name} on dataset {source.name!r}: {r.message}"
                  + (f" ({format_rows(r.rows)})" if r.rows else "") for r in report.warnings]
    return notes


# ---------------------------------------------------------------------- %ID rules
def _percent_id(dataset):
    """(%ID table of the convertible rows, {reason: rows} of the others), without warnings."""
    from .dataset import Dataset

    try:
        return dataset.percent_id(), {}
    except DataError as exc:
        bad = {p["message"]: list(p.get("rows") or []) for p in exc.problems}
    rows = {r for rs in bad.values() for r in rs}
    table = dataset.table
    rest = Dataset(table[~table["row"].isin(rows)], dataset.meta, dataset.path)
    return (rest.percent_id() if len(rest) else None), bad


def _group_label(group: str) -> str:
    return f"group {group!r}, " if group else ""


def _organ_rules(dataset, pid) -> list[RuleResult]:
    if pid is None or not len(pid):
        msg = "no row converts to %ID (see D3)"
        return [_result("D1", SKIP, msg), _result("D2", SKIP, msg)]
    limit = 100.0 + PERCENT_ID_TOLERANCE
    values = pid["value_pid"].to_numpy(dtype=float)
    over = pid[values > 100.0]
    if len(over):
        worst = over.loc[over["value_pid"].idxmax()]
        severity = FAIL if float(worst["value_pid"]) > limit else WARN
        items = [f"{t} {v:.4g} %ID at {h:g} h (row {r})" for t, v, h, r in
                 zip(over["tissue"], over["value_pid"], over["time_h"], over["row"])]
        shown = "; ".join(items[:6]) + (f"; … ({len(items)} in all)" if len(items) > 6 else "")
        masses = {t: m for t, m in zip(over["tissue"], over["mass_source"]) if m != "not needed"}
        sources = f" (organ masses: {'; '.join(f'{t}: {m}' for t, m in masses.items())})" if masses else ""
        d1 = _result("D1", severity,
                     f"{len(over)} value(s) above 100 %ID after conversion: {shown}{sources}; "
                     "check the value's unit (value_unit), the dose, body_weight_g and organ_masses_g",
                     over["row"], "value")
    else:
        d1 = _result("D1", OK, f"largest value {np.nanmax(values):.4g} %ID ({len(pid)} rows)")
    return [d1, _rule_sum(dataset, pid, limit)]


def _blood_overlap(species, tissues) -> float:
    """Share of the blood's %ID the measured organs' capillary blood can hold (physiology table)."""
    from ..physiology import SPECIES

    phys = SPECIES.get(species)
    if phys is None:
        return 0.0
    share = 0.0
    for t in tissues:
        organ = phys.organs.get(t)
        if organ is not None and organ.capillary_blood_fraction:
            share += organ.capillary_blood_fraction * organ.mass_fraction
    return min(1.0, share / phys.blood_fraction)


def _rule_sum(dataset, pid, limit) -> RuleResult:
    table = pid.groupby(["group", "time_h", "tissue"], sort=True).agg(
        value=("value_pid", "mean"), rows=("row", list)).reset_index()
    fails, warns, rows_f, rows_w, largest = [], [], [], [], (0.0, None)
    for (group, t), sub in table.groupby(["group", "time_h"], sort=True):
        present = set(sub["tissue"])
        counted = sub[[not any(p in present for p in _PARTS_OF.get(x, ())) for x in sub["tissue"]]]
        organs = counted[~counted["tissue"].isin(_BLOOD)]
        blood = counted[counted["tissue"].isin(_BLOOD)]
        s_org = float(organs["value"].sum())
        s_blood = float(blood["value"].sum())
        allow = _blood_overlap(dataset.species, organs["tissue"]) * s_blood
        where = f"{_group_label(group)}{t:g} h"
        rows = [r for rs in counted["rows"] for r in rs]
        if s_org + s_blood > largest[0]:
            largest = (s_org + s_blood, where)
        if s_org > limit:
            fails.append(f"{where}: organs {s_org:.4g} %ID without blood ({', '.join(organs['tissue'])})")
            rows_f += [r for rs in organs["rows"] for r in rs]
        elif s_org + s_blood > limit + allow:
            warns.append(f"{where}: {s_org + s_blood:.4g} %ID with blood {s_blood:.4g} %ID (the organs' capillary "
                         f"blood accounts for at most {allow:.3g} %ID of it)")
            rows_w += rows
    if fails:
        return _result("D2", FAIL, f"the tissues measured at one time hold more than {limit:g} %ID: " + "; ".join(fails)
                       + "; check the units, the dose and the organ masses", rows_f, "value")
    if warns:
        return _result("D2", WARN, f"tissues with blood sum above {limit:g} %ID beyond the blood the organs can hold: "
                       + "; ".join(warns) + "; were the organs perfused, and is blood in the right unit?", rows_w, "value")
    return _result("D2", OK, f"largest sum {largest[0]:.4g} %ID at {largest[1]} (blood and overlapping tissues "
                   "counted once)")


def _rule_convertible(dataset, unconvertible: dict, model=None) -> RuleResult:
    if not unconvertible:
        return _result("D3", OK, f"all {len(dataset)} rows convert to %ID")
    rows = [r for rs in unconvertible.values() for r in rs]
    text = "; ".join(m.replace("cannot convert to %ID: ", "").split("; add organ_masses_g")[0] for m in unconvertible)
    if model is not None:
        # Tissues the model does not observe never enter its fit: say so, but do not warn.
        observed = set(model.observable_names)
        table = dataset.table
        tissues = set(table.loc[table["row"].isin(rows), "tissue"])
        if not tissues & observed:
            return _result("D3", OK, f"{len(rows)} row(s) of {', '.join(sorted(tissues))} cannot be converted to %ID "
                           f"({text}); model {model.name!r} has no such observable, so a fit does not use them")
    return _result("D3", WARN, f"{len(rows)} row(s) cannot be converted to %ID and are not checked by D1/D2: {text}; "
                   "add organ_masses_g {tissue: grams} to the sidecar", rows, "tissue")


# ---------------------------------------------------------------------- sidecar rules
def _rule_body_weight(dataset) -> RuleResult:
    bw, species = dataset.body_weight_g, dataset.species
    if bw is None:
        return _result("D4", SKIP, "the sidecar has no body_weight_g", column="body_weight_g")
    ranges = BODY_WEIGHT_G.get(species)
    if ranges is None:
        return _result("D4", SKIP, f"no body-weight range for species {species!r} (known: {', '.join(BODY_WEIGHT_G)})",
                       column="body_weight_g")
    (tlo, thi), (plo, phi) = ranges["typical"], ranges["possible"]
    if not plo <= bw <= phi:
        hint = (f" ({bw * 1000:g} g if the value is in kg)" if bw < plo else f" ({bw / 1000:g} g if the value is in mg)")
        return _result("D4", FAIL, f"body_weight_g {bw:g} g is not a possible {species} weight (possible {plo:g}-{phi:g} g, "
                       f"typical {tlo:g}-{thi:g} g; {ranges['source']}); body_weight_g is in grams{hint}",
                       column="body_weight_g")
    if not tlo <= bw <= thi:
        return _result("D4", WARN, f"body_weight_g {bw:g} g is outside the typical {species} range {tlo:g}-{thi:g} g "
                       f"({ranges['source']}); check the unit (grams)", column="body_weight_g")
    return _result("D4", OK, f"{bw:g} g is in the typical {species} range {tlo:g}-{thi:g} g", column="body_weight_g")


def _days_labelled_hours(times) -> bool:
    """Times labelled ``h`` that look like days (the heuristic of rule D5)."""
    t = sorted({float(x) for x in times if float(x) > 0})
    if len(t) < 2 or any(abs(x - round(x)) > 1e-9 for x in t):
        return False
    ints = {int(round(x)) for x in t}
    return max(ints) <= 31 and ints <= _DAY_SCHEDULE and bool(ints & _WEEKLY)


def _hours_labelled_days(times) -> bool:
    t = {float(x) for x in times}
    return len({m for m in _HOUR_MARKS if m in t}) >= 2


def _rule_time_unit(dataset) -> RuleResult:
    from .convert import hours_per

    unit = str(dataset.meta.get("time_unit"))
    table = dataset.table
    raw = pd.to_numeric(table["time"], errors="coerce").to_numpy(dtype=float)
    shown = ", ".join(f"{x:g}" for x in sorted(set(raw[np.isfinite(raw)])))
    try:
        per = hours_per(unit)
    except ValueError:
        return _result("D5", SKIP, f"time_unit {unit!r} is not a unit of time", column="time_unit")
    if per == 1.0 and _days_labelled_hours(raw):
        return _result("D5", WARN, f"times {shown} are labelled {unit!r} but look like days (whole numbers up to 31 "
                       "from a day schedule with a weekly mark; hour schedules reach 24-168 h); if they are days, "
                       "set time_unit \"d\" in the sidecar", table["row"], "time")
    if per == 24.0 and _hours_labelled_days(raw):
        return _result("D5", WARN, f"times {shown} are labelled {unit!r} but look like hours (24, 48, 72, 96, 168 "
                       "are hour marks); if they are hours, set time_unit \"h\" in the sidecar", table["row"], "time")
    return _result("D5", OK, f"times {shown} {unit}")


# ---------------------------------------------------------------------- model rules
def _rule_species(dataset, model) -> RuleResult:
    if model is None:
        return _result("M1", SKIP, "no model given", column="species")
    want = (model.metadata.get("species") or "").lower()
    got = (dataset.species or "").lower()
    if got != want:
        return _result("M1", FAIL, f"the dataset is {got!r} (sidecar species) but model {model.name!r} is {want!r}: its "
                       f"physiology would be wrong; use a {got} model (see `nanopk models`) or fix the sidecar",
                       column="species")
    return _result("M1", OK, f"{got}", column="species")


def _route_kind(route) -> str | None:
    """``"iv"``, another route's name, or ``None`` if unrecognised."""
    key = " ".join(str(route).strip().lower().replace("_", " ").split())
    if key in IV_ROUTES:
        return "iv"
    return OTHER_ROUTES.get(key)


def _rule_route(dataset, model) -> RuleResult:
    if model is None:
        return _result("M2", SKIP, "no model given", column="route")
    model_route = str(model.metadata.get("route") or "iv")
    kind = _route_kind(dataset.route)
    if kind is None:
        return _result("M2", WARN, f"route {dataset.route!r} is not recognised; model {model.name!r} is dosed {model_route} "
                       f"(into {model.dose_target!r}); write route \"iv\" if the particles were injected intravenously",
                       column="route")
    if kind != _route_kind(model_route):
        return _result("M2", FAIL, f"the dataset's route is {dataset.route!r} ({kind}) but model {model.name!r} is dosed "
                       f"{model_route} into {model.dose_target!r}: it has no absorption phase, so it cannot describe "
                       f"these data", column="route")
    return _result("M2", OK, f"{dataset.route} (model: {model_route} into {model.dose_target!r})", column="route")


# ---------------------------------------------------------------------- particle rules
def _particle_defaults() -> dict:
    from ..particle import Particle

    return {f.name: f.default for f in fields(Particle)}


def _given_fields(model, particle) -> dict:
    """Fields of the particle the user chose (see :func:`check_dataset`)."""
    from ..particle import Particle

    if isinstance(particle, str):
        keys = [item.split("=", 1)[0].strip() for item in particle.split(",") if "=" in item]
        values = Particle.parse(particle).to_dict()
        return {k: values.get(k) for k in keys}
    if isinstance(particle, dict):
        return dict(particle)
    if isinstance(particle, Particle):
        defaults = _particle_defaults()
        return {k: v for k, v in particle.to_dict().items() if v != defaults.get(k)}
    built = model.metadata.get("particle") or {}
    spec_particle = _spec_table(model).get("particle") or {}
    defaults = _particle_defaults()
    return {k: v for k, v in built.items() if v != defaults.get(k) and v != spec_particle.get(k)}


def _spec_table(model) -> dict:
    import tomllib
    from pathlib import Path

    spec = model.metadata.get("spec")
    if not spec or not Path(spec).is_file():
        return {}
    try:
        return tomllib.loads(Path(spec).read_text())
    except (OSError, tomllib.TOMLDecodeError):
        return {}


def _fields_read(model, names) -> dict:
    """``{field: True/False}``: does a mechanism of ``model`` read the field?

    The record the model builder made while the mechanisms ran
    (``model.metadata["particle_fields_read"]``, see :class:`nanopk.particle.ReadRecorder`):
    the same source of truth as the "particle: model ... ignores" note of
    :func:`nanopk.load_model`.  A model without the record (built before it existed)
    is rebuilt from its spec once to make it.
    """
    record = model.metadata.get("particle_fields_read")
    if record is None:
        from pathlib import Path

        from ..particle import Particle
        from ..spec import _build_model  # the uncached builder: probes must not enter the model cache

        spec = Path(model.metadata["spec"])
        record = _build_model(spec, spec.read_text(), Particle.from_dict(model.metadata["particle"]), None
                              ).metadata.get("particle_fields_read", {})
    return {name: name in record for name in names}


def _particle_rules(dataset, model, particle) -> list[RuleResult]:
    if model is None:
        return [_result("M3", SKIP, "no model given", column="particle"), _result("M4", SKIP, "no model given", column="particle")]
    if not model.metadata.get("spec") or not _spec_table(model):
        msg = f"model {model.name!r} has no spec file to probe"
        return [_result("M3", SKIP, msg, column="particle"), _result("M4", SKIP, msg, column="particle")]
    if model.metadata.get("particle") is None:
        msg = f"model {model.name!r} was built without a particle"
        return [_result("M3", OK if particle is None else WARN, msg, column="particle"),
                _result("M4", SKIP, msg, column="particle")]
    given = _given_fields(model, particle)
    data_particle = dataset.particle_dict
    built = model.metadata["particle"]
    read = _fields_read(model, sorted(set(given) | set(data_particle) | set(built)))
    fields_read = [k for k, v in read.items() if v]
    unread = [k for k in given if not read.get(k, True)]
    if not given:
        m3 = _result("M3", OK, f"no particle field given (the model's particle is its spec's; it reads "
                     f"{', '.join(fields_read) or 'no field'})", column="particle")
    elif unread and not fields_read:
        m3 = _result("M3", WARN, f"model {model.name!r} reads no particle field, so {', '.join(unread)} change nothing "
                     "(its parameters are calibrated values); use a particle-driven model such as mouse_tumour_full, "
                     "or leave out --particle", column="particle")
    elif unread:
        m3 = _result("M3", WARN, f"model {model.name!r} does not read particle field(s) {', '.join(unread)}: they change "
                     f"no parameter; it reads {', '.join(fields_read)}", column="particle")
    else:
        m3 = _result("M3", OK, f"every field given is read ({', '.join(given)})", column="particle")

    def same(a, b):
        try:
            return math.isclose(float(a), float(b), rel_tol=1e-9)
        except (TypeError, ValueError):
            return a == b

    # A field the dataset does not give is compared with the value the model's particle
    # implies only when the dataset names the particle at all.
    differ = [(k, built.get(k), data_particle[k]) for k in fields_read
              if k in data_particle and not same(built.get(k), data_particle[k])]
    if not data_particle:
        m4 = _result("M4", SKIP, "the dataset's sidecar has no particle", column="particle")
    elif differ:
        shown = ", ".join(f"{k} {m!r} (dataset {d!r})" for k, m, d in differ)
        fix = ",".join(f"{k}={d}" for k, d in data_particle.items() if read.get(k, False))
        m4 = _result("M4", WARN, f"model {model.name!r} is built for another particle than the dataset's: {shown}; "
                     f"load it with --particle {fix}", column="particle")
    else:
        m4 = _result("M4", OK, f"the fields the model reads agree with the dataset's particle"
                     + (f" ({', '.join(k for k in fields_read if k in data_particle)})" if fields_read else
                        " (the model reads none)"), column="particle")
    return [m3, m4]


# ---------------------------------------------------------------------- fit-argument rule
def _rule_fixed_and_varied(vary, fixed) -> RuleResult:
    if vary is None and fixed is None:
        return _result("F1", SKIP, "no --vary or --param given")
    varied = [vary] if isinstance(vary, str) else list(vary or [])
    held = list(fixed or [])
    both = [n for n in varied if n in held]
    if both:
        values = ", ".join(f"{n}={fixed[n]:g}" if isinstance(fixed, dict) else n for n in both)
        return _result("F1", FAIL, f"{', '.join(map(repr, both))} is both held (--param {values}) and varied (--vary): "
                       "the held value would only be the fit's start; drop it from --vary to hold it, or from --param "
                       "to fit it (fit(..., start={...}) sets a start value)")
    return _result("F1", OK, f"{len(varied)} varied, {len(held)} held, none both")
