"""The materials table: density, molar mass, and whether and how fast a core dissolves.

Densities and molar masses are handbook values (CRC Handbook of Chemistry and Physics,
97th ed.).  Dissolution rate constants are filled in by :mod:`nanopk.mechanisms.dissolution`
from the sources cited there; ``dissolves`` says whether the material releases ions at
all (gold is inert; Ag, ZnO, iron oxide and CdSe quantum dots dissolve).
"""
from __future__ import annotations

from dataclasses import dataclass

from .errors import ModelError, suggest

__all__ = ["Material", "MATERIALS", "material_info"]


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
