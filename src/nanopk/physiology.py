"""Physiology tables: organ masses, blood flows and capillary blood fractions.

Organ volumes scale with body weight, ``V_organ = f_V · BW`` (1 kg ≈ 1 L of tissue),
and cardiac output allometrically, ``Q_C = QCC · BW^0.75``; organ blood flows are
fractions of it, ``Q_organ = f_Q · Q_C``.  The capillary blood in an organ is a fraction
``f_B`` of the organ volume.  Organs not in a species table cannot be modelled for it;
organs with a mass but no flow (skin, bone, ...) serve data conversion only
(%ID/g × organ mass = %ID).

Sources: Brown RP, Delp MD, Lindstedt SL, Rhomberg LR, Beliles RP. Physiological
parameter values for physiologically based pharmacokinetic models. Toxicol Ind Health
1997;13:407-484 (organ weights, blood flows, Table 30 blood volume fractions); the
mouse values as carried in the Lin-lab nano-PBPK (Lin et al., Nanotoxicology
2016;10:162, doi:10.3109/17435390.2015.1027314; Chou et al., J Control Release
2023;361:53, doi:10.1016/j.jconrel.2023.07.040).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .errors import ModelError, suggest

__all__ = ["Organ", "Physiology", "get_physiology", "organ_mass_g", "SPECIES"]


@dataclass(frozen=True)
class Organ:
    """One organ: fractions of body weight, of cardiac output and capillary blood."""

    name: str
    mass_fraction: float
    blood_flow_fraction: float | None = None
    capillary_blood_fraction: float | None = None
    source: str = ""


@dataclass(frozen=True)
class Physiology:
    """A species' physiology at a reference body weight."""

    species: str
    body_weight_kg: float
    cardiac_output_L_h_kg075: float
    blood_fraction: float
    plasma_fraction: float
    organs: dict[str, Organ] = field(default_factory=dict)
    source: str = ""

    def organ(self, name: str) -> Organ:
        try:
            return self.organs[name]
        except KeyError:
            raise ModelError(
                f"no organ {name!r} in the {self.species} physiology table{suggest(name, self.organs)}; "
                f"available: {', '.join(self.organs)}"
            ) from None

    def organ_mass_g(self, name: str, body_weight_g: float | None = None) -> float:
        """Organ mass (g) at ``body_weight_g`` (default: the table's reference weight)."""
        bw_g = self.body_weight_kg * 1000.0 if body_weight_g is None else float(body_weight_g)
        if name == "blood":
            return self.blood_fraction * bw_g
        if name == "plasma":
            return self.plasma_fraction * bw_g
        return self.organ(name).mass_fraction * bw_g


_BROWN = "Brown et al., Toxicol Ind Health 1997;13:407"
_LIN_CHOU = "as used by Lin et al. 2016 and Chou et al. 2023 (J Control Release 361:53)"

_MOUSE = Physiology(
    species="mouse",
    body_weight_kg=0.02,
    cardiac_output_L_h_kg075=16.5,
    blood_fraction=0.06,
    plasma_fraction=0.0355,
    source=f"{_BROWN}; {_LIN_CHOU}",
    organs={
        o.name: o
        for o in (
            # name, mass fraction of BW, fraction of cardiac output, capillary blood fraction
            Organ("liver", 0.055, 0.02, 0.31, f"{_BROWN}, Tables 21/23/30 ({_LIN_CHOU}); hepatic artery only: portal inflow arrives from the spleen"),
            Organ("lung", 0.007, 1.0, 0.5, f"{_BROWN}, Tables 21/30; the lung receives the whole cardiac output"),
            Organ("kidney", 0.017, 0.091, 0.24, f"{_BROWN}, Tables 21/23/30"),
            Organ("brain", 0.017, 0.033, 0.03, f"{_BROWN}, Tables 21/23/30"),
            Organ("spleen", 0.005, 0.011, 0.17, "Davies & Morris, Pharm Res 1993;10:1093; Brown 1997 Table 30"),
            Organ("muscle", 0.384, 0.159, 0.04, f"{_BROWN}, Tables 21/23/30"),
            Organ("heart", 0.005, None, None, f"{_BROWN}, Table 4 (0.50 % BW)"),
            Organ("skin", 0.1653, None, None, f"{_BROWN}, Table 4"),
            Organ("bone", 0.1073, None, None, f"{_BROWN}, Table 4"),
            Organ("gi", 0.0422, None, None, f"{_BROWN}, Table 4"),
            Organ("adipose", 0.07, None, None, f"{_BROWN}, Table 4"),
            # A typical subcutaneous xenograft of ~0.5 g in a 20 g mouse.
            Organ("tumour", 0.024, 0.01, 0.01, "Chou et al. 2023 (J Control Release 361:53): VTC 0.024, QTC 0.01, BVT 0.01"),
        )
    },
)

SPECIES: dict[str, Physiology] = {"mouse": _MOUSE}


def get_physiology(species: str) -> Physiology:
    """The physiology table of ``species`` (``"mouse"``, ``"rat"``, ``"human"``)."""
    try:
        return SPECIES[species]
    except KeyError:
        raise ModelError(f"no physiology table for species {species!r}{suggest(species, SPECIES)}; available: {', '.join(SPECIES)}") from None


def organ_mass_g(species: str, organ: str, body_weight_g: float | None = None) -> float:
    """Organ mass (g) for ``species`` scaled to ``body_weight_g``."""
    return get_physiology(species).organ_mass_g(organ, body_weight_g)
