"""What the nanoparticle is: material, size, shape, coating, charge, targeting.

Mechanisms read a :class:`Particle` to set their parameters: the hydrodynamic
diameter drives tumour-capillary permeability and renal sieving, the coating drives
opsonin adsorption and colloidal stability, the material drives dissolution.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

from .errors import ModelError, suggest
from .materials import MATERIALS, material_info

__all__ = ["Particle", "COATINGS", "SHAPES", "TARGETING", "ReadRecorder", "ignored_fields"]

#: Coatings nanopk knows, with what each does to the mechanisms (see mechanisms/corona
#: and mechanisms/aggregation for the parameters they set).
COATINGS = {
    "none": "bare surface: full protein adsorption; electrostatically stabilised only",
    "citrate": "electrostatic stabiliser, displaced by plasma proteins: behaves as bare in blood",
    "PEG": "polyethylene glycol brush: lowers opsonin adsorption and sterically stabilises",
    "zwitterionic": "zwitterionic ligand (e.g. cysteine, Choi 2007): non-adsorbing, no corona",
    "PEG-PLA": "PEGylated polymer shell",
    "polyacrylamide": "hydrophilic polymer coating",
    "dextran": "polysaccharide coating",
    "BSA": "pre-formed albumin corona",
    "lipid": "lipid bilayer (liposomes)",
}
SHAPES = ("sphere", "rod", "cube", "plate", "star", "shell", "other")
TARGETING = ("passive", "active")

#: Hydrodynamic thickness added by a PEG brush (nm) per kDa, fitted to the upper bound
#: "PEG5000 adds up to 26 nm to the hydrodynamic diameter" (Chen et al., Nanotechnology
#: 2013;24:355101): 26 nm / 5 kDa, i.e. 2.6 nm of shell per kDa on each side.
PEG_DIAMETER_NM_PER_KDA = 26.0 / 5.0


@dataclass(frozen=True)
class Particle:
    """A nanoparticle description.

    Parameters
    ----------
    material : str
        Core material; one of :data:`nanopk.materials.MATERIALS` (``"Au"``, ``"Ag"``,
        ``"ZnO"``, ``"Fe3O4"``, ``"CdSe"``, ``"TiO2"``, ``"SiO2"``, ``"polymer"``, ``"lipid"``).
    core_diameter_nm : float
        Core diameter (nm), > 0.
    hydrodynamic_diameter_nm : float, optional
        Measured hydrodynamic diameter in buffer (nm).  If omitted it is estimated as
        the core plus the coating shell (PEG: 2.6 nm per kDa of chain, Chen 2013).
    shape, coating, coating_mw_da, zeta_mV, targeting :
        As named; ``coating_mw_da`` is the molecular weight of a polymer coating (Da).

    Raises
    ------
    ModelError
        For a negative or zero size, an unknown material, coating, shape or targeting
        (the message lists the valid choices).
    """

    material: str = "Au"
    core_diameter_nm: float = 15.0
    hydrodynamic_diameter_nm: float | None = None
    shape: str = "sphere"
    coating: str = "none"
    coating_mw_da: float | None = None
    zeta_mV: float | None = None
    targeting: str = "passive"

    def __post_init__(self):
        problems = []
        if self.material not in MATERIALS:
            problems.append(f"material {self.material!r} is unknown{suggest(self.material, MATERIALS)}; valid: {', '.join(MATERIALS)}")
        if self.coating not in COATINGS:
            problems.append(f"coating {self.coating!r} is unknown{suggest(self.coating, COATINGS)}; valid: {', '.join(COATINGS)}")
        if self.shape not in SHAPES:
            problems.append(f"shape {self.shape!r} is unknown; valid: {', '.join(SHAPES)}")
        if self.targeting not in TARGETING:
            problems.append(f"targeting {self.targeting!r} is unknown; valid: {', '.join(TARGETING)}")
        for name in ("core_diameter_nm", "hydrodynamic_diameter_nm", "coating_mw_da"):
            value = getattr(self, name)
            if value is None:
                continue
            try:
                ok = math.isfinite(float(value)) and float(value) > 0
            except (TypeError, ValueError):
                ok = False
            if not ok:
                problems.append(f"{name} must be a positive number (got {value!r})")
        if self.hydrodynamic_diameter_nm is not None and not problems and self.hydrodynamic_diameter_nm < self.core_diameter_nm:
            problems.append(
                f"hydrodynamic_diameter_nm ({self.hydrodynamic_diameter_nm}) is smaller than core_diameter_nm ({self.core_diameter_nm})"
            )
        if self.coating == "PEG" and self.coating_mw_da is None:
            problems.append("coating 'PEG' needs coating_mw_da (e.g. 2000 or 5000)")
        if problems:
            raise ModelError("invalid Particle:", problems)

    # ------------------------------------------------------------------ derived
    @property
    def hydrodynamic_diameter(self) -> float:
        """Hydrodynamic diameter in buffer (nm): measured, or core + coating shell."""
        if self.hydrodynamic_diameter_nm is not None:
            return float(self.hydrodynamic_diameter_nm)
        d = float(self.core_diameter_nm)
        if self.coating == "PEG":
            d += PEG_DIAMETER_NM_PER_KDA * float(self.coating_mw_da) / 1000.0
        elif self.coating == "zwitterionic":
            d += 1.0  # a cysteine/zwitterion monolayer is ~0.5 nm thick (Choi et al. 2007)
        return d

    @property
    def is_pegylated(self) -> bool:
        return self.coating in ("PEG", "PEG-PLA")

    @property
    def material_info(self):
        return material_info(self.material)

    @property
    def particle_mass_ug(self) -> float:
        """Mass of one core (µg), from the core diameter and the material density."""
        r_cm = self.core_diameter_nm * 1e-7 / 2
        return (4.0 / 3.0) * math.pi * r_cm**3 * self.material_info.density_g_cm3 * 1e6

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_dict(cls, d: dict) -> "Particle":
        known = {f.name for f in fields(cls)}
        unknown = [k for k in d if k not in known]
        if unknown:
            raise ModelError(
                "unknown Particle field(s):",
                [f"{k!r}{suggest(k, known)}; valid fields: {', '.join(sorted(known))}" for k in unknown],
            )
        return cls(**d)

    @classmethod
    def parse(cls, text: str) -> "Particle":
        """Parse ``"material=Au,core_diameter_nm=15,coating=PEG,coating_mw_da=5000"``."""
        d: dict = {}
        for item in filter(None, (s.strip() for s in text.split(","))):
            if "=" not in item:
                raise ModelError(f"particle field {item!r} must be NAME=VALUE (e.g. core_diameter_nm=15)")
            key, value = (s.strip() for s in item.split("=", 1))
            try:
                d[key] = float(value)
            except ValueError:
                d[key] = value
        return cls.from_dict(d)


class ReadRecorder:
    """A :class:`Particle` that records which of its fields a mechanism reads.

    The one source of truth for "which particle fields does a model use": the model
    builder (:func:`nanopk.spec.load_model`) hands every mechanism one of these instead
    of the particle, and afterwards knows exactly which fields each mechanism looked at
    — a property such as :attr:`Particle.hydrodynamic_diameter` runs on the recorder,
    so it records the fields it uses (``coating_mw_da`` only for a PEG coating).
    ``to_dict``/``from_dict``/``parse`` (used for provenance strings) are passed
    through unrecorded.  The record is ``sink[field]`` → set of ``who``.
    """

    __slots__ = ("_particle", "_sink", "_who")
    _PASS_THROUGH = frozenset({"to_dict", "from_dict", "parse"})

    def __init__(self, particle: Particle, sink: dict, who: str):
        object.__setattr__(self, "_particle", particle)
        object.__setattr__(self, "_sink", sink)
        object.__setattr__(self, "_who", who)

    def __getattr__(self, name):
        particle = object.__getattribute__(self, "_particle")
        if name in _FIELD_NAMES:
            object.__getattribute__(self, "_sink").setdefault(name, set()).add(object.__getattribute__(self, "_who"))
            return getattr(particle, name)
        attr = getattr(type(particle), name, None)
        if isinstance(attr, property):
            return attr.fget(self)  # the property's own field reads are recorded
        if name in ReadRecorder._PASS_THROUGH:
            return getattr(particle, name)
        raise AttributeError(f"Particle has no attribute {name!r}")

    def __setattr__(self, name, value):
        raise AttributeError("a Particle is immutable")

    def __repr__(self) -> str:
        return f"ReadRecorder({object.__getattribute__(self, '_particle')!r})"


_FIELD_NAMES = frozenset(f.name for f in fields(Particle))


def ignored_fields(particle: Particle, read: dict) -> dict:
    """The fields of ``particle`` set to a non-default value that no mechanism read.

    ``read`` maps field → readers (the record of :class:`ReadRecorder`).  A field left
    at its default (``shape="sphere"``, ``targeting="passive"``, ``zeta_mV=None``) is
    what every mechanism assumes and is not reported.
    """
    defaults = {f.name: f.default for f in fields(Particle)}
    return {k: v for k, v in asdict(particle).items() if v is not None and v != defaults.get(k) and k not in read}
