"""``nanopk.scale``: allometric scaling of a parameter set from one species (or body weight) to another.

A parameter ``p`` measured at body weight ``BW_from`` is predicted at ``BW_to`` as

    p_to = p_from · (BW_to / BW_from)^b,

with the exponent ``b`` set by the parameter's **unit** (its pint dimensionality), never
by its name.  The rules follow from three allometric laws — volumes (and masses) are
proportional to body weight, physiological times to BW^0.25, so that flows and
clearances go as BW^0.75 and rate constants as BW^-0.25 (Boxenbaum 1982; West, Brown &
Enquist 1997) — applied to the dimensions of the unit:

=============================================  ========  =============================================
dimensionality                                 b         examples
=============================================  ========  =============================================
dimensionless                                  0         partition coefficients, fractions, Hill n, ug/g
[time]^-1                                      -0.25     Kmax (1/h), release and transfer rates
[time]                                         +0.25     K50 (h), half-lives
[length]^3 / [time]                            +0.75     flows and clearances (L/h)
[length]^3                                     +1        volumes (L)
[mass]                                         +1        body weight (kg), amounts at equal mg/kg (ug)
[mass] / [time]                                +0.75     amount rates (ug/h)
[mass] / [length]^3 and [length]^3 / [mass]    0         concentrations, densities (ug/L, kg/L, L/kg)
[length]^3 / [time] / [mass]^0.75              0         allometric coefficients (QCC, KurineC: L/h/kg^0.75)
=============================================  ========  =============================================

A unit with any other dimensionality (a particle size in nm, a dissolution velocity in
nm/h, a count per gram) has no allometric law: :func:`scale` refuses it, naming the
parameter and its unit, unless the caller keeps it unchanged (``keep=``) or gives its
exponent (``exponents=``).

Why by unit: a parameter's name says what the modeller meant, its unit says how it
transforms; ``KurineC`` in L/h/kg^0.75 is already normalised by BW^0.75 and must not be
scaled again, while ``CL_ion_urine`` in L/h must be.

What allometry does *not* give: species differences that are not a power of body
weight (organ mass fractions, regional flow fractions, the target species' own fitted
clearances).  Dimensionless physiology (``f_V_liver``) is carried over unchanged (b = 0);
to use the target species' own table, apply the scaled values to a model built for that
species with ``exclude_physiology=True`` (see :meth:`ScaledParameters.to_dict`).

References
----------
1. Boxenbaum H. Interspecies scaling, allometry, physiological time, and the ground
   plan of pharmacokinetics. J Pharmacokinet Biopharm 1982;10:201-227.
2. West GB, Brown JH, Enquist BJ. A general model for the origin of allometric scaling
   laws in biology. Science 1997;276:122-126.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .errors import ModelError, suggest
from .parts import Parameter
from .physiology import SPECIES, get_physiology
from .units import dimensionality

__all__ = ["scale", "ScaledParameters", "ScaledParameter", "allometric_exponent", "ALLOMETRIC_RULES", "PHYSIOLOGY_PARAMETERS"]

_BOXENBAUM = "Boxenbaum, J Pharmacokinet Biopharm 1982;10:201"
_WEST = "West, Brown & Enquist, Science 1997;276:122"

#: The declared rules: (dimensionality as {base dimension: power}, exponent b, what it is).
#: Dimensions are pint's base dimensions; a volume is [length]^3.
ALLOMETRIC_RULES: tuple[tuple[dict, float, str], ...] = (
    ({}, 0.0, "dimensionless (fraction, partition coefficient, Hill coefficient, mass ratio)"),
    ({"[time]": -1}, -0.25, f"rate constant ∝ BW^-0.25 ({_BOXENBAUM}; {_WEST})"),
    ({"[time]": 1}, 0.25, f"physiological time ∝ BW^0.25 ({_BOXENBAUM})"),
    ({"[length]": 3, "[time]": -1}, 0.75, f"flow or clearance ∝ BW^0.75 ({_BOXENBAUM}; {_WEST})"),
    ({"[length]": 3}, 1.0, f"volume ∝ BW ({_BOXENBAUM})"),
    ({"[mass]": 1}, 1.0, "mass ∝ BW (body weight; amounts at an equal mg/kg dose)"),
    ({"[mass]": 1, "[time]": -1}, 0.75, "amount rate = amount × rate constant ∝ BW · BW^-0.25"),
    ({"[mass]": 1, "[length]": -3}, 0.0, "concentration or density: amount ∝ BW over volume ∝ BW"),
    ({"[length]": 3, "[mass]": -1}, 0.0, "volume per body mass (L/kg)"),
    ({"[length]": 3, "[time]": -1, "[mass]": -0.75}, 0.0,
     "allometric coefficient (per BW^0.75): the BW^0.75 law is already in the model's equations"),
)

#: Parameters that the target species' physiology table sets (circulation.whole_body):
#: dropped by ``ScaledParameters.to_dict(exclude_physiology=True)``.  A prefix list,
#: used only for that choice, never for the exponent.
PHYSIOLOGY_PARAMETERS = ("BW", "QCC", "f_plasma", "f_V_", "f_Q_", "f_B_", "rho_tissue", "f_residual_blood")


def _dims(unit: str) -> dict:
    return {str(k): float(v) for k, v in dict(dimensionality(unit)).items() if v}


def allometric_exponent(unit: str) -> tuple[float, str]:
    """The exponent b of BW for a parameter in ``unit``, and the rule that gives it.

    Raises
    ------
    ModelError
        When no rule of :data:`ALLOMETRIC_RULES` covers the unit's dimensionality (or
        the unit is unknown to pint).
    """
    try:
        dims = _dims(unit)
    except Exception as exc:  # pint's UndefinedUnitError and friends
        raise ModelError(f"unit {unit!r} is not a unit pint understands ({exc})") from None
    for rule, b, what in ALLOMETRIC_RULES:
        if dims.keys() == rule.keys() and all(math.isclose(dims[k], rule[k]) for k in rule):
            return b, what
    raise ModelError(f"no allometric rule for unit {unit!r} (dimensionality {dimensionality(unit)})")


@dataclass(frozen=True)
class ScaledParameter:
    """One parameter after scaling: the value at the source and the target body weight."""

    name: str
    unit: str
    value_from: float
    value: float
    exponent: float
    rule: str
    source: str

    def as_parameter(self, bounds=(0.0, math.inf), description: str = "") -> Parameter:
        return Parameter(self.name, self.value, self.unit, self.source, bounds, description)


class ScaledParameters(Mapping):
    """A parameter set for the target species: ``{name: ScaledParameter}``.

    Attributes
    ----------
    species_from, species_to : str
    body_weight_from_kg, body_weight_to_kg : float
    """

    def __init__(self, items: dict, species_from: str, species_to: str, bw_from: float, bw_to: float):
        self._items = dict(items)
        self.species_from, self.species_to = species_from, species_to
        self.body_weight_from_kg, self.body_weight_to_kg = bw_from, bw_to

    def __getitem__(self, name):
        try:
            return self._items[name]
        except KeyError:
            raise KeyError(f"no scaled parameter {name!r}{suggest(name, self._items)}") from None

    def __iter__(self):
        return iter(self._items)

    def __len__(self):
        return len(self._items)

    @property
    def ratio(self) -> float:
        """BW_to / BW_from."""
        return self.body_weight_to_kg / self.body_weight_from_kg

    def to_dict(self, exclude_physiology: bool = False) -> dict[str, float]:
        """``{name: scaled value}``, ready for ``model.with_parameters``.

        ``exclude_physiology=True`` leaves out body weight, cardiac output and the
        organ volume, flow and blood fractions (:data:`PHYSIOLOGY_PARAMETERS`), so that a
        model built for the target species keeps its own physiology table.
        """
        return {n: p.value for n, p in self._items.items()
                if not (exclude_physiology and any(n == q or (q.endswith("_") and n.startswith(q)) for q in PHYSIOLOGY_PARAMETERS))}

    def to_toml(self, exclude_physiology: bool = True) -> str:
        """The scaled values as a spec's ``[parameters]`` tables, each with its unit and source.

        Paste into a model spec for the target species (physiology left out by default:
        the target species' table provides it).
        """
        rows = []
        for name in self.to_dict(exclude_physiology):
            p = self._items[name]
            source = p.source.replace("\\", "\\\\").replace('"', '\\"')
            rows.append(f'[parameters.{name}]\nvalue = {p.value!r}\nunit = "{p.unit}"\nsource = "{source}"\n')
        return "\n".join(rows)

    def sources(self) -> dict[str, str]:
        """``{name: source}``: how each value was obtained (for a spec's ``[parameters]``)."""
        return {n: p.source for n, p in self._items.items()}

    def __repr__(self):
        return (f"ScaledParameters({len(self)} parameters, {self.species_from} {self.body_weight_from_kg:g} kg -> "
                f"{self.species_to} {self.body_weight_to_kg:g} kg)")


def _source_parameters(source) -> tuple[dict[str, Parameter], str | None, float | None]:
    model = getattr(source, "model", None) if not hasattr(source, "parameters") else source
    if model is not None and hasattr(model, "parameters"):
        params = dict(model.parameters)
        species = (getattr(model, "metadata", None) or {}).get("species")
        bw = params["BW"].value if "BW" in params else None
        return params, species, bw
    if isinstance(source, Mapping):
        bad = [n for n, p in source.items() if not isinstance(p, Parameter)]
        if bad:
            raise ModelError(f"scale: a mapping must hold nanopk.Parameter values (a unit is needed for each); "
                             f"{', '.join(map(repr, bad[:5]))} {'is' if len(bad) == 1 else 'are'} not")
        bw = source["BW"].value if "BW" in source else None
        return dict(source), None, bw
    raise ModelError(f"scale: `source` must be a nanopk.Model, a fit result (with .model) or a mapping of "
                     f"nanopk.Parameter; got {type(source).__name__}")


def scale(source, species: str, body_weight: float | None = None, *, from_species: str | None = None,
          from_body_weight: float | None = None, keep: Iterable[str] = (), exponents: Mapping[str, float] | None = None,
          skip: Iterable[str] = ("dose", "infusion_rate")) -> ScaledParameters:
    """Scale a model's (or a fit's) parameter set allometrically to another species.

    Parameters
    ----------
    source : Model, FitResult or mapping of Parameter
        The parameter set: a model's defaults, a fit's fitted values (``fit.model``), or
        ``{name: Parameter}``.
    species : str
        Target species (``"mouse"``, ``"rat"``, ``"human"``): names the result and gives the
        default target body weight.
    body_weight : float, optional
        Target body weight (kg); default: the target species' reference weight
        (:mod:`nanopk.physiology`).
    from_species : str, optional
        Source species; default: the model's ``species``.
    from_body_weight : float, optional
        Source body weight (kg); default: the source's ``BW`` parameter, else the source
        species' reference weight.
    keep : iterable of str
        Parameters carried over unchanged (exponent 0, said in their source) — for units
        without an allometric law, such as particle sizes in nm.
    exponents : mapping, optional
        ``{name: b}`` overriding the unit's rule for a parameter (say why in your own
        records: the source of the result names the override).
    skip : iterable of str
        Parameters left out of the result (the dose and the infusion input).

    Returns
    -------
    ScaledParameters
        ``{name: ScaledParameter}`` with ``value = value_from · (BW_to/BW_from)^b``, the
        exponent, the rule and a source string.

    Raises
    ------
    ModelError
        An unknown species, a non-positive body weight, a name in ``keep``/``exponents``
        that is not a parameter, or parameters whose unit has no rule (all listed at once).
    """
    params, model_species, model_bw = _source_parameters(source)
    if species not in SPECIES:
        raise ModelError(f"scale: unknown target species {species!r}{suggest(species, SPECIES)}; available: {', '.join(SPECIES)}")
    species_from = from_species or model_species
    if species_from is None:
        raise ModelError("scale: the source species is unknown; give `from_species=` (e.g. 'mouse')")
    if species_from not in SPECIES and from_body_weight is None and model_bw is None:
        raise ModelError(f"scale: unknown source species {species_from!r}{suggest(species_from, SPECIES)}; "
                         f"available: {', '.join(SPECIES)} (or give `from_body_weight=`)")
    bw_from = float(from_body_weight if from_body_weight is not None else
                    (model_bw if model_bw is not None else get_physiology(species_from).body_weight_kg))
    bw_to = float(body_weight if body_weight is not None else get_physiology(species).body_weight_kg)
    for arg, bw in (("from_body_weight", bw_from), ("body_weight", bw_to)):
        if not (math.isfinite(bw) and bw > 0):
            raise ModelError(f"scale: `{arg}` must be a positive body weight in kg (got {bw!r})")
    keep, exponents, skip = set(keep), dict(exponents or {}), set(skip)
    unknown = sorted((keep | set(exponents)) - set(params))
    if unknown:
        raise ModelError(f"scale: {', '.join(repr(n) + suggest(n, params) for n in unknown)} "
                         f"{'is not a parameter' if len(unknown) == 1 else 'are not parameters'} of the source")
    ratio = bw_to / bw_from
    where = f"scaled from {species_from} (BW {bw_from:g} kg) to {species} (BW {bw_to:g} kg)"
    out, problems = {}, []
    for name, p in params.items():
        if name in skip:
            continue
        if name in keep:
            b, rule = 0.0, "kept unchanged at the caller's request (keep=)"
        elif name in exponents:
            b, rule = float(exponents[name]), "exponent given by the caller (exponents=)"
        else:
            try:
                b, rule = allometric_exponent(p.unit)
            except ModelError as exc:
                problems.append(f"parameter {name!r} ({p.unit}): {exc}")
                continue
        value = p.value * ratio**b
        out[name] = ScaledParameter(name, p.unit, p.value, value, b,
                                    rule, f"{where}, × (BW ratio {ratio:.6g})^{b:g}: {rule}; from {p.value:.6g} {p.unit} ({p.source})")
    if problems:
        raise ModelError(
            f"scale: {len(problems)} parameter(s) have a unit without an allometric law; keep them unchanged "
            f"(keep=[...]) or give their exponent (exponents={{name: b}}):", problems)
    return ScaledParameters(out, species_from, species, bw_from, bw_to)
