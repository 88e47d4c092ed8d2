"""The JSON sidecar of a dataset: who measured what, in which units, after which dose.

A dataset ``NAME.csv`` (or ``NAME.xlsx``) has its metadata in ``NAME.json``::

    {"name": "cho2010_peg_au_13nm",
     "source": {"citation": "Cho WS et al. Toxicol Appl Pharmacol 2010;245:116-123",
                "doi": "10.1016/j.taap.2010.02.013"},
     "species": "mouse", "strain": "BALB/c", "sex": "male", "body_weight_g": 20,
     "route": "iv", "dose": {"value": 0.85, "unit": "mg/kg"},
     "time_unit": "d", "value_unit": "ng/g",
     "particle": {"material": "Au", "core_diameter_nm": 13, "coating": "PEG",
                  "coating_mw_da": 5000, "shape": "sphere", "targeting": "passive"},
     "tumour": {"model": "subcutaneous xenograft", "cell_line": "A431", "weight_g": 0.3},
     "organ_masses_g": {"liver": 1.1}, "perfused": false}

``dose.value`` may be ``null`` for %ID data whose paper gives no injected mass;
``dose.range`` (``[low, high]`` in µg) then says what is known, and a fit checks that
the model's %ID predictions do not depend on the dose across it
(:mod:`nanopk.fit._data`).

Required keys: ``name``, ``source`` (with ``citation`` and ``doi``; ``doi`` may be
``null`` for unpublished data), ``species``, ``route`` and ``time_unit``.  ``value_unit``
is required unless every row has a unit of its own.  Everything else is optional, and
``perfused`` (``true``/``false``, default ``false``) says whether the animals were
perfused before the organs were taken: organ observables then exclude the organs'
residual blood (a fit sets the model's ``f_residual_blood`` to 0 for the dataset;
:mod:`nanopk.mechanisms.circulation`).  ``tumour.weight_g`` is the mean tumour weight
(g) at sampling: it converts tumour %ID/g to %ID and, in fits, sets the model's tumour
volume; without it both use the species table's default tumour, with a warning.  Keys
nanopk does not know are kept in ``Dataset.meta`` (notes, assumptions...), except that a
key one letter away from a known key is reported as a likely typo.
"""
from __future__ import annotations

import difflib
import json
import math
from pathlib import Path

from ..units import pint  # without dask (nanopk.units._import_pint)

from ..errors import suggest
from ..units import COMMON_UNITS, parse_unit
from .convert import bare_number_hint, classify_unit, hours_per
from .vocabulary import canonical_tissue, suggest_tissue

__all__ = ["REQUIRED_KEYS", "PARTICLE_KEYS", "TUMOUR_KEYS", "KNOWN_KEYS", "load_sidecar", "normalise_dose", "SPECIES_SPELLINGS"]

REQUIRED_KEYS = ("name", "source", "species", "route", "time_unit")
PARTICLE_KEYS = (
    "material", "core_diameter_nm", "hydrodynamic_diameter_nm", "shape", "coating",
    "coating_mw_da", "zeta_mV", "targeting",
)
TUMOUR_KEYS = ("model", "cell_line", "weight_g")
KNOWN_KEYS = REQUIRED_KEYS + (
    "strain", "sex", "body_weight_g", "dose", "value_unit", "particle", "tumour", "organ_masses_g",
    "notes", "assumptions", "accepted_checks", "perfused",
)
SPECIES_SPELLINGS = {"mice": "mouse", "mus musculus": "mouse", "rats": "rat", "rattus norvegicus": "rat", "humans": "human"}

_PINT_ERRORS = (pint.errors.PintError, AttributeError, TypeError, ValueError, AssertionError, KeyError)


def normalise_dose(dose):
    """A dose as ``{"value": float, "unit": str}`` from a dict, ``"20 ug"``, ``(20, "ug")`` or a pint Quantity."""
    if dose is None or isinstance(dose, dict):
        return dose
    if isinstance(dose, pint.Quantity):
        return {"value": float(dose.magnitude), "unit": f"{dose.units:~}"}
    if isinstance(dose, (tuple, list)) and len(dose) == 2:
        return {"value": dose[0], "unit": dose[1]}
    if isinstance(dose, str):
        parts = dose.strip().split(None, 1)
        if len(parts) == 2:
            return {"value": parts[0], "unit": parts[1]}
    return dose  # reported as invalid by the checks below


def _is_number(x, positive=False, allow_zero=False) -> bool:
    if isinstance(x, bool):
        return False
    try:
        v = float(x)
    except (TypeError, ValueError):
        return False
    if not math.isfinite(v):
        return False
    if positive:
        return v > 0 or (allow_zero and v == 0)
    return True


def _typo(key: str, known) -> str | None:
    close = difflib.get_close_matches(key, list(known), n=1, cutoff=0.8)
    return close[0] if close and close[0] != key else None


def load_sidecar(data_path: Path, overrides: dict, problems, defaults: dict | None = None) -> tuple[dict, Path | None]:
    """Read and check the sidecar of ``data_path``; keyword ``overrides`` win over the file.

    ``defaults`` fill keys that neither the file nor ``overrides`` give (the time unit
    written in a ``Time (h)`` header).

    Every problem is added to ``problems``; the returned metadata holds what could be
    read (``species`` lower-cased and singular, ``dose`` as a dict).

    Returns
    -------
    (meta, sidecar_path) : tuple
        ``sidecar_path`` is ``None`` when no sidecar file exists.
    """
    sidecar = Path(data_path).with_suffix(".json")
    meta: dict = {}
    where = f"sidecar {sidecar.name}"
    if sidecar.is_file():
        try:
            text = sidecar.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            problems.note(f"{where} is not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8 JSON")
            text = None
        if text is not None:
            try:
                loaded = json.loads(text)
            except json.JSONDecodeError as exc:
                problems.note(f"{where} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}")
                loaded = {}
            if not isinstance(loaded, dict):
                problems.note(f"{where} must hold a JSON object {{...}} (got a {type(loaded).__name__})")
                loaded = {}
            meta.update(loaded)
    else:
        if not overrides:
            problems.note(
                f"sidecar {sidecar} not found; expected a JSON file with the same stem as the data, holding "
                f"{', '.join(REQUIRED_KEYS)}, value_unit and dose {{value, unit}} "
                f"(or pass them to read_dataset as keyword arguments)"
            )
            return meta, None
        meta["name"] = Path(data_path).stem
        where = "keyword arguments (no sidecar file)"
    meta.update(overrides)
    for key, value in (defaults or {}).items():
        if meta.get(key) in (None, ""):
            meta[key] = value
    if "dose" in meta:
        meta["dose"] = normalise_dose(meta["dose"])
    _check(meta, where, problems, sidecar_exists=sidecar.is_file())
    if isinstance(meta.get("species"), str):
        species = meta["species"].strip().lower()
        meta["species"] = SPECIES_SPELLINGS.get(species, species)
    return meta, (sidecar if sidecar.is_file() else None)


def _check(meta: dict, where: str, problems, sidecar_exists: bool):
    missing = [k for k in REQUIRED_KEYS if meta.get(k) in (None, "")]
    source = meta.get("source")
    if isinstance(source, dict):
        missing += [f"source.{k}" for k in ("citation", "doi") if k not in source]
        if not source.get("citation") and "citation" in source:
            missing.append("source.citation")
    elif source is not None:
        problems.note(f"{where}: key source must be an object {{\"citation\": ..., \"doi\": ...}} (got {source!r})")
    if missing:
        what = ", ".join(repr(k) for k in dict.fromkeys(missing))
        problems.note(f"{where} lacks required key(s) {what}; expected {', '.join(REQUIRED_KEYS)} (source with citation and doi)")

    for key in meta:
        if key not in KNOWN_KEYS:
            close = _typo(key, KNOWN_KEYS)
            if close:
                problems.note(f"{where}: unknown key {key!r}; did you mean {close!r}?")

    bw = meta.get("body_weight_g")
    if bw is not None and not _is_number(bw, positive=True):
        problems.note(f"{where}: body_weight_g must be a positive number of grams (got {bw!r})")

    perfused = meta.get("perfused")
    if perfused is not None and not isinstance(perfused, bool):
        problems.note(f"{where}: perfused must be true or false (whether the animals were perfused before the organs "
                      f"were taken; default false) (got {perfused!r})")

    time_unit = meta.get("time_unit")
    if time_unit not in (None, ""):
        try:
            hours_per(str(time_unit))
        except ValueError:
            problems.note(f"{where}: time_unit {time_unit!r} is not a unit of time; expected one of h, min, d, s, week")

    value_unit = meta.get("value_unit")
    if value_unit not in (None, ""):
        _check_unit(str(value_unit), f"{where}: value_unit", problems)

    dose = meta.get("dose")
    if dose is not None:
        if not isinstance(dose, dict):
            problems.note(f"{where}: dose must be {{\"value\": number, \"unit\": \"ug\"}} (got {dose!r})")
        else:
            value, unit = dose.get("value"), dose.get("unit")
            if value is not None and not _is_number(value, positive=True):
                problems.note(f"{where}: dose.value must be a positive number (got {value!r})")
            rng = dose.get("range")
            if rng is not None and not (isinstance(rng, (list, tuple)) and len(rng) == 2
                                        and all(_is_number(v, positive=True) for v in rng) and float(rng[0]) <= float(rng[1])):
                problems.note(f"{where}: dose.range must be [low, high], two positive numbers of µg with low <= high (got {rng!r})")
            elif rng is not None and str(unit) not in ("ug", "µg", "μg", "microgram"):
                problems.note(f"{where}: dose.range is in µg, so dose.unit must be 'ug' (got {unit!r})")
            if value is not None and unit in (None, ""):
                problems.note(f"{where}: dose.unit is missing; expected e.g. 'ug', 'mg/kg'")
            elif unit not in (None, "") and bare_number_hint(str(unit)) is not None:
                problems.note(f"{where}: dose.unit {unit!r} is a bare number; expected a mass ('ug', 'mg') or a mass per body mass ('mg/kg')")
            elif unit not in (None, ""):
                try:
                    parse_unit(str(unit))
                except _PINT_ERRORS:
                    problems.note(f"{where}: unknown dose unit {unit!r}{suggest(str(unit), ('ug', 'mg', 'mg/kg', 'ug/kg', 'MBq', 'uCi'))}")

    particle = meta.get("particle")
    if particle is not None:
        if not isinstance(particle, dict):
            problems.note(f"{where}: particle must be an object (got {particle!r})")
        else:
            for key in particle:
                close = _typo(key, PARTICLE_KEYS) if key not in PARTICLE_KEYS else None
                if close:
                    problems.note(f"{where}: unknown particle key {key!r}; did you mean {close!r}?")
            for key in ("core_diameter_nm", "hydrodynamic_diameter_nm", "coating_mw_da"):
                v = particle.get(key)
                if v is not None and not _is_number(v, positive=True):
                    problems.note(f"{where}: particle.{key} must be a positive number (got {v!r})")
            z = particle.get("zeta_mV")
            if z is not None and not _is_number(z):
                problems.note(f"{where}: particle.zeta_mV must be a number (got {z!r})")

    tumour = meta.get("tumour")
    if tumour is not None:
        if not isinstance(tumour, dict):
            problems.note(f"{where}: tumour must be an object (got {tumour!r})")
        else:
            w = tumour.get("weight_g")
            if w is not None and not _is_number(w, positive=True):
                problems.note(f"{where}: tumour.weight_g must be a positive number of grams (got {w!r})")

    masses = meta.get("organ_masses_g")
    if masses is not None:
        if not isinstance(masses, dict):
            problems.note(f"{where}: organ_masses_g must be an object {{tissue: grams}} (got {masses!r})")
        else:
            for tissue, grams in masses.items():
                if canonical_tissue(tissue) is None:
                    problems.note(f"{where}: unknown tissue {tissue!r} in organ_masses_g{suggest_tissue(tissue)}")
                if not _is_number(grams, positive=True):
                    problems.note(f"{where}: organ_masses_g[{tissue!r}] must be a positive number of grams (got {grams!r})")


def _check_unit(unit: str, label: str, problems) -> bool:
    try:
        kind = classify_unit(unit)
    except _PINT_ERRORS:
        problems.note(f"{label} {unit!r} is unknown{suggest(unit, COMMON_UNITS)}; expected a unit such as {', '.join(COMMON_UNITS[:8])}")
        return False
    if kind is None and bare_number_hint(unit) is not None:
        problems.note(f"{label}: {bare_number_hint(unit)}")
        return False
    if kind is None:
        problems.note(f"{label} {unit!r} cannot be expressed as a fraction of the dose; expected %ID, %ID/g, %ID/mL, a mass (µg/organ), mass per g (ng/g) or mass per mL (ng/mL)")
        return False
    return True

