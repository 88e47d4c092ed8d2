"""The materials table: density, molar mass, and whether and how fast a core dissolves.

Densities and molar masses are handbook values (CRC Handbook of Chemistry and Physics,
97th ed.).  ``dissolves`` says whether the material releases ions at all (gold is
inert; Ag, ZnO, iron oxide and CdSe quantum dots dissolve).

Dissolution kinetics (:data:`DISSOLUTION`, used by :mod:`nanopk.mechanisms.dissolution`)
are a shrinking-sphere surface recession velocity v (nm/h) at a reference pH and a
reaction order n in [H⁺]:

    v(pH) = v_ref · 10^(−n·(pH − pH_ref)),      t_c = r₀ / v,      m/m₀ = (1 − t/t_c)³.

``verified`` is False where the number is an assumption or derived from a reading of a
source that was not checked against the full text; the ``source`` says which.
"""
from __future__ import annotations

from dataclasses import dataclass

from .errors import ModelError, suggest

__all__ = ["Material", "MATERIALS", "material_info", "DissolutionKinetics", "DISSOLUTION", "dissolution_kinetics"]


@dataclass(frozen=True)
class Material:
    name: str
    density_g_cm3: float
    molar_mass_g_mol: float
    dissolves: bool
    inorganic: bool
    source: str


_CRC = "CRC Handbook of Chemistry and Physics, 97th ed. (2016)"

MATERIALS: dict[str, Material] = {
    m.name: m
    for m in (
        Material("Au", 19.32, 196.97, False, True, _CRC),
        Material("Ag", 10.49, 107.87, True, True, _CRC),
        Material("ZnO", 5.61, 81.38, True, True, _CRC),
        Material("Fe3O4", 5.17, 231.53, True, True, _CRC),
        Material("CdSe", 5.82, 191.37, True, True, _CRC),
        Material("TiO2", 4.23, 79.87, False, True, _CRC + " (anatase 3.9, rutile 4.23)"),
        Material("SiO2", 2.20, 60.08, True, True, _CRC + " (amorphous silica)"),
        Material("polymer", 1.25, 0.0, False, False, "typical PLGA/PS density, Makadia & Siegel, Polymers 2011;3:1377"),
        Material("lipid", 1.0, 0.0, False, False, "phospholipid bilayer density ~1 g/cm3 (Nagle & Tristram-Nagle, BBA 2000;1469:159)"),
    )
}


def material_info(name: str) -> Material:
    try:
        return MATERIALS[name]
    except KeyError:
        raise ModelError(f"material {name!r} is unknown{suggest(name, MATERIALS)}; valid: {', '.join(MATERIALS)}") from None


@dataclass(frozen=True)
class DissolutionKinetics:
    """Shrinking-sphere dissolution: recession velocity ``v_ref_nm_h`` at ``pH_ref``, order ``order_H`` in [H⁺]."""

    v_ref_nm_h: float
    pH_ref: float
    order_H: float
    source: str
    verified: bool = False


_GODYMCHUK = ("Godymchuk et al., AIMS Mater Sci 2022;9:642: α-Fe2O3 NPs 2.3 % dissolved in 24 h in a lung-fluid "
              "simulant (pH 7.4) vs 0.4 % in sweat; with Hixson–Crowell, 1 − (1 − 0.023)^(1/3) = 0.0077 of t_c in 24 h, "
              "i.e. v = 0.0077·r₀/24 h = 0.008 nm/h for r₀ = 25 nm (particle radius assumed)")

DISSOLUTION: dict[str, DissolutionKinetics] = {
    "Au": DissolutionKinetics(0.0, 7.4, 0.0, "gold is inert in biological media (SCIENCE.md §5): no ion release", True),
    "TiO2": DissolutionKinetics(0.0, 7.4, 0.0, "TiO2 is practically insoluble at physiological pH (treated as inert)", False),
    "polymer": DissolutionKinetics(0.0, 7.4, 0.0, "organic core: degradation is not ion release (not modelled)", True),
    "lipid": DissolutionKinetics(0.0, 7.4, 0.0, "organic core: degradation is not ion release (not modelled)", True),
    "Ag": DissolutionKinetics(
        0.0075, 4.75, 0.5,
        "Liu & Hurt, Environ Sci Technol 2010;44:2169 (Ag+ release needs O2 and H+, falls with pH, complete oxidative "
        "dissolution possible) and Bachler et al., Int J Nanomedicine 2013;8:3365 (doi:10.2147/IJN.S46624: in vivo AgNPs "
        "are mostly stored rather than dissolved): assumed t_c ≈ 1000 h for a 15 nm core at lysosomal pH (v = 0.0075 nm/h) "
        "and a fractional order 0.5 in [H+]; not fitted to either paper's numbers", False),
    "ZnO": DissolutionKinetics(
        0.5, 5.0, 0.5,
        "ZnO dissolves within hours at lysosomal pH and slowly at pH 7.4 (Mudunkotuwa et al., Langmuir 2012;28:396); "
        "v = 0.5 nm/h at pH 5 and order 0.5 are assumptions matching that contrast", False),
    "Fe3O4": DissolutionKinetics(0.008, 7.4, 0.3, _GODYMCHUK + "; order 0.3 in [H+] assumed (iron oxide degrades over weeks in "
                                 "lysosomes: Levy et al., Nanotechnology 2011;22:395103)", False),
    "CdSe": DissolutionKinetics(
        0.002, 4.75, 0.5,
        "CdSe cores oxidise slowly and release Cd2+ (Derfus, Chan & Bhatia, Nano Lett 2004;4:11); v = 0.002 nm/h at "
        "lysosomal pH and order 0.5 are assumptions", False),
    "SiO2": DissolutionKinetics(
        0.01, 7.4, 0.0,
        "amorphous silica dissolves over days at pH 7.4, faster at higher pH, so not proton-promoted (Croissant et al., "
        "Adv Mater 2017;29:1604634); v = 0.01 nm/h and order 0 are assumptions", False),
}


def dissolution_kinetics(name: str) -> DissolutionKinetics:
    """Dissolution kinetics of a material (inert materials have ``v_ref_nm_h`` = 0)."""
    material_info(name)
    return DISSOLUTION.get(name, DissolutionKinetics(0.0, 7.4, 0.0, f"no dissolution data for {name}: treated as inert", False))
