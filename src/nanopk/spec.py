"""Declarative model specs (``models/*.toml``) and ``load_model``.

A spec names the species, where the dose enters, the default dose and the mechanisms
(``use = "family.variant"`` plus that variant's options); it may override parameter
defaults, each override with its own source::

    name = "mouse_pbpk"
    species = "mouse"
    dose_target = "venous_blood"

    [dose]
    value = 0.85
    unit = "mg/kg"
    source = "Cho et al. 2010 ..."

    [[mechanisms]]
    use = "circulation.whole_body"

    [parameters.Kmax_liver]
    value = 0.3
    source = "..."

Every problem in a spec is reported with the key it concerns and the valid choices.
"""
from __future__ import annotations

import dataclasses
import functools
import inspect
import tomllib
from pathlib import Path


from .dosing import SPEC_DOSE_UNITS, dose_to_ug
from .errors import ModelError, SpecError, suggest
from .mechanisms._species import apply_species_defaults
from .mechanisms.base import BuildContext, resolve_mechanism
from .model import DOSE, Model
from .parts import Parameter, Part
from .particle import Particle, ReadRecorder, ignored_fields
from .prebuilt import recall, recipe_key, remember
from .resources import models_dir

__all__ = ["load_model", "list_models", "model_path", "dose_to_ug", "SPEC_DOSE_UNITS"]

_TOP_KEYS = {"name", "description", "species", "dose_target", "dose", "mechanisms", "parameters", "particle", "reference", "notes"}


def list_models() -> list[str]:
    """Names of the bundled models (``models/*.toml``)."""
    return sorted(p.stem for p in models_dir().glob("*.toml"))


def model_path(name_or_path) -> Path:
    """Resolve a bundled model name or a path to a spec file."""
    path = Path(name_or_path)
    if path.suffix == ".toml" or path.exists():
        if not path.exists():
            raise SpecError(f"model spec {str(path)!r} does not exist")
        return path
    candidate = models_dir() / f"{name_or_path}.toml"
    if not candidate.exists():
        names = list_models()
        raise SpecError(f"unknown model {name_or_path!r}{suggest(str(name_or_path), names)}; bundled models: {', '.join(names)}")
    return candidate


def load_model(name_or_path, particle: Particle | dict | str | None = None, params: dict | None = None) -> Model:
    """Build a model from a bundled name (``"mouse_pbpk"``) or a path to a spec.

    Parameters
    ----------
    name_or_path : str or Path
        A name from :func:`list_models` or a ``.toml`` file.
    particle : Particle, dict or str, optional
        The nanoparticle; its properties set the mechanistic parameters (size →
        permeability and renal sieving, coating → opsonin adsorption and stability,
        material → dissolution).  Defaults to the spec's ``[particle]`` table.
    params : dict, optional
        Parameter values overriding the defaults.

    Raises
    ------
    SpecError
        Listing every problem in the spec (unknown key, mechanism, option or
        parameter, each with the valid choices).

    Notes
    -----
    ``model.metadata["particle_fields_read"]`` maps each Particle field the model's
    mechanisms read to the mechanisms that read it (recorded while building, see
    :class:`nanopk.particle.ReadRecorder`); ``nanopk check`` (rule M3) uses the same
    record.  A field the particle sets to a non-default value that no mechanism reads
    (today ``zeta_mV`` and ``shape``: no cited relation is implemented) is named in
    ``model.notes`` ("particle: model NAME ignores ...").

    A model built once is remembered under ``$NANOPK_CACHE_DIR/models``, keyed by the
    spec's path and text, the particle, ``params`` and nanopk's source; a later load
    (in any process) returns it without rebuilding its SymPy equations, which are
    built when first needed (see :mod:`nanopk.prebuilt`).
    """
    path = model_path(name_or_path)
    text = path.read_text()
    if isinstance(particle, str):
        particle = Particle.parse(particle)
    elif isinstance(particle, dict):
        particle = Particle.from_dict(particle)
    # A model built from this very recipe before is recalled without rebuilding its
    # equations (nanopk.prebuilt); they are built if and when something needs them.
    key = recipe_key(path, text, particle, params)
    build = functools.partial(_build_model, path, text, particle, params)
    model = recall(key, build)
    if model is None:
        model = build()
        remember(key, model)
    return model


def _override_value(param: Parameter, override: dict) -> float:
    """An override's value in the unit the model's equations use (``param.unit``).

    A spec may write an override in another unit (``value = 5, unit = "1/min"`` for a
    rate the model keeps in 1/h): the value is converted, so the simulation and the
    SBML export (which declares ``param.unit``) use the same number.  A unit of another
    dimension is refused.
    """
    value = float(override["value"])
    unit = override.get("unit")
    if unit is not None and str(unit).strip() != param.unit:
        value = _convert(value, str(unit), param.unit)
    problem = param.problem(value, f"value {override['value']!r} {unit}" if unit else "value")
    if problem:
        raise ValueError(problem)
    return value


def _convert(value: float, unit: str, target: str) -> float:
    """``value`` from ``unit`` to ``target`` with pint (imported only for this)."""
    from .units import Q_, parse_unit

    try:
        given, wanted = parse_unit(unit), parse_unit(target)
    except Exception as exc:  # pint's UndefinedUnitError and friends
        raise ValueError(f"unknown unit {unit!r} ({exc}); the model's unit is {target!r}") from None
    if given.dimensionality != wanted.dimensionality:
        raise ValueError(f"unit {unit!r} is not convertible to the model's unit {target!r} "
                         f"({given.dimensionality} vs {wanted.dimensionality})")
    return float(Q_(value, given).to(wanted).magnitude)


def _build_model(path: Path, text: str, particle: Particle | None, params: dict | None) -> Model:
    """Build and validate the model the spec ``text`` (read from ``path``) describes."""
    try:
        spec = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"model spec {path} is not valid TOML: {exc}") from None
    problems = []
    for key in spec:
        if key not in _TOP_KEYS:
            problems.append(f"unknown key {key!r}{suggest(key, _TOP_KEYS)}; valid keys: {', '.join(sorted(_TOP_KEYS))}")
    for key in ("name", "species", "dose_target", "mechanisms"):
        if key not in spec:
            problems.append(f"missing key {key!r}")
    if problems:
        raise SpecError(f"invalid model spec {path}:", problems)

    if particle is None and "particle" in spec:
        particle = Particle.from_dict(spec["particle"])
    ctx = BuildContext(species=spec["species"], particle=particle)
    reads: dict[str, set[str]] = {}  # particle field -> mechanisms that read it (ReadRecorder)
    try:
        ctx.physiology
    except Exception as exc:  # unknown species: report as a spec problem
        raise SpecError(f"invalid model spec {path}:", [f"species: {exc}"]) from None

    parts: list[Part] = []
    for i, entry in enumerate(spec["mechanisms"], start=1):
        entry = dict(entry)
        ref = entry.pop("use", None)
        if ref is None:
            problems.append(f"mechanisms[{i}] has no 'use' key (write use = \"family.variant\")")
            continue
        try:
            func = resolve_mechanism(ref)
        except SpecError as exc:
            problems.append(f"mechanisms[{i}]: {exc}")
            continue
        accepted = [n for n in inspect.signature(func).parameters if n != "ctx"]
        bad = [k for k in entry if k not in accepted]
        if bad:
            problems += [f"mechanisms[{i}] ({ref}): unknown option {k!r}{suggest(k, accepted)}; valid options: {', '.join(accepted) or 'none'}" for k in bad]
            continue
        if particle is not None:
            ctx.particle = ReadRecorder(particle, reads, ref)
        # Species-dependent defaults: the spec's species' value, or a validation problem
        # naming the parameter (nanopk.mechanisms._species), never a silent mouse value.
        parts.append(apply_species_defaults(ref, ctx.species, func(ctx, **entry), entry))
    ctx.particle = particle
    if problems:
        raise SpecError(f"invalid model spec {path}:", problems)

    declared = {p.name: p for part in parts for p in part.parameters}
    overrides = spec.get("parameters", {})
    for name, override in overrides.items():
        if name not in declared and name != DOSE:
            problems.append(f"parameters.{name}: no such parameter{suggest(name, declared)}")
        elif not isinstance(override, dict) or "value" not in override or "source" not in override:
            problems.append(f"parameters.{name}: write {{ value = ..., source = \"...\" }} (an override needs its source)")
    if problems:
        raise SpecError(f"invalid model spec {path}:", problems)
    values = {}
    for name, o in overrides.items():
        if name in declared:
            try:
                values[name] = _override_value(declared[name], o)
            except (TypeError, ValueError) as exc:
                problems.append(f"parameters.{name}: {exc}")
    if problems:
        raise SpecError(f"invalid model spec {path}:", problems)
    new_parts = []
    for part in parts:
        ps = []
        for p in part.parameters:
            o = overrides.get(p.name)
            ps.append(Parameter(p.name, values[p.name], p.unit, o["source"], p.bounds, p.description) if o else p)
        new_parts.append(dataclasses.replace(part, parameters=tuple(ps)))  # keeps requires/provides
    parts = new_parts

    dose = spec.get("dose", {"value": 1.0, "unit": "ug", "source": "nominal 1 µg (results are in %ID, independent of dose for linear models)"})
    bw = declared["BW"].value if "BW" in declared else None
    try:
        dose_ug = dose_to_ug(dose.get("value", 1.0), dose.get("unit", "ug"), bw)
    except ModelError as exc:
        raise SpecError(f"invalid model spec {path}:", [f"dose: {exc}"]) from None
    dose_source = dose.get("source", "")
    if not dose_source:
        raise SpecError(f"invalid model spec {path}:", ["dose: give a 'source' for the default dose"])
    parts.append(Part("dosing", parameters=(Parameter(DOSE, dose_ug, "ug", f"{dose['value']} {dose['unit']}: {dose_source}", (1e-9, 1e12), "administered NP mass"),)))
    ignored = ignored_fields(particle, reads) if particle is not None else {}
    if ignored:
        shown = ", ".join(f"{k}={v!r}" for k, v in ignored.items())
        one = len(ignored) == 1
        parts.append(Part("particle", notes=(
            f"particle: model {spec['name']!r} ignores {shown}: none of its mechanisms reads "
            f"{'it' if one else 'them'}, so {'it changes' if one else 'they change'} nothing",)))

    model = Model(
        spec["name"], parts, spec["dose_target"], spec.get("description", ""),
        {"species": spec["species"], "spec": str(path), "particle": particle.to_dict() if particle else None,
         "particle_fields_read": {k: tuple(sorted(v)) for k, v in sorted(reads.items())},
         "reference": spec.get("reference", ""), "notes": spec.get("notes", "")},
    )
    if params:
        model = model.with_parameters(params)
    return model.validate()
