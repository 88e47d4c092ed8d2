"""Clearance: phagocytic (MPS) uptake with slow release, urinary and biliary excretion.

Phagocytic uptake, time-dependent Hill form (Lin 2016; Chou 2023):

    K_up(t) = Kmax · (t/K50)^n / (1 + (t/K50)^n),
    J_up = K_up(t) · A_source,     J_release = K_release · A_phagocytes,

from capillary blood in the liver (Kupffer cells line the sinusoids) and from tissue
elsewhere.  Excretion:

    J_urine = K_urine · C_kidney,capillary,   K_urine = KurineC · BW^0.75
    J_bile  = K_bile · C_liver,tissue,        K_bile  = KbileC · BW^0.75

Sources: Lin et al., Nanotoxicology 2016;10:162 (doi:10.3109/17435390.2015.1027314);
Chou et al., J Control Release 2023;361:53 (doi:10.1016/j.jconrel.2023.07.040), mouse
defaults (liver, spleen, kidney, lung as in SCIENCE.md §1; muscle and rest of body
from the published model code of Chou 2023).
"""
from __future__ import annotations

import sympy as sp

from ..parts import Flux, Part, State, TIME, symbol
from .base import BuildContext, param

__all__ = ["hill_phagocytic_uptake", "urinary_excretion", "biliary_excretion", "hill"]

S = symbol
_CHOU2023 = "Chou et al., J Control Release 2023;361:53 (doi:10.1016/j.jconrel.2023.07.040), mouse"
_CHOU2023_CODE = _CHOU2023 + "; value from the published model code (UFPBPK/Nano-AI-PBPK)"

#: Hill-uptake defaults (Kmax 1/h, K50 h, n, release 1/h) and where each comes from.
HILL_DEFAULTS = {
    "liver": (0.3, 48.0, 5.0, 0.0015, _CHOU2023),
    "spleen": (5.0, 36.0, 5.0, 0.001, _CHOU2023),
    "kidney": (0.12, 48.0, 5.0, 0.001, _CHOU2023 + " (Kmax); K50, n, release from the model code"),
    "lung": (0.085, 48.0, 5.0, 0.003, _CHOU2023 + " (Kmax, release); K50, n from the model code"),
    "muscle": (0.4, 48.0, 5.0, 0.005, _CHOU2023_CODE),
    "rest": (0.4, 48.0, 5.0, 0.005, _CHOU2023_CODE),
}


def hill(kmax, k50, n, t=TIME) -> sp.Expr:
    """``Kmax · (t/K50)^n / (1 + (t/K50)^n)`` — written on t/K50 so units check."""
    x = (t / k50) ** n
    return kmax * x / (1 + x)


def hill_phagocytic_uptake(ctx: BuildContext, organs=("liver", "spleen", "kidney", "lung"), opsonin_factor: str | None = None) -> Part:
    """Time-dependent Hill uptake into phagocytic cells with first-order release.

    Parameters
    ----------
    organs : sequence of str
        Organs with phagocytic cells (each needs ``{organ}_phagocytes`` from the
        circulation).  Liver uptake is from capillary blood, others from tissue.
    opsonin_factor : str, optional
        Name of an assignment multiplying every uptake rate (the protein corona sets
        it from opsonin coverage; see :mod:`nanopk.mechanisms.corona`).
    """
    params, fluxes = [], []
    factor = S(opsonin_factor) if opsonin_factor else 1
    for organ in organs:
        kmax, k50, n, krel, src = HILL_DEFAULTS.get(organ, HILL_DEFAULTS["rest"])
        params += [
            param(f"Kmax_{organ}", kmax, "1/h", src, (0.0, 100.0), f"maximal phagocytic uptake rate in {organ}"),
            param(f"K50_{organ}", k50, "h", src, (0.1, 1000.0), f"time to half-maximal uptake in {organ}"),
            param(f"n_{organ}", n, "dimensionless", src, (0.1, 10.0), f"Hill coefficient of uptake in {organ}"),
            param(f"Krelease_{organ}", krel, "1/h", src, (0.0, 10.0), f"release rate from {organ} phagocytes"),
        ]
        source = f"{organ}_capillary" if organ == "liver" else f"{organ}_tissue"
        k_up = hill(S(f"Kmax_{organ}"), S(f"K50_{organ}"), S(f"n_{organ}")) * factor
        fluxes += [
            Flux(f"phagocytosis_{organ}", source, f"{organ}_phagocytes", k_up * S(source), f"Hill uptake from {source}"),
            Flux(f"phagocyte_release_{organ}", f"{organ}_phagocytes", source, S(f"Krelease_{organ}") * S(f"{organ}_phagocytes"), "first-order release"),
        ]
    ctx.provided.add("phagocytic_uptake")
    return Part("clearance.hill_phagocytic_uptake", (), tuple(params), tuple(fluxes))


def urinary_excretion(ctx: BuildContext, clearance_constant: float = 3e-6) -> Part:
    """Urine from kidney capillary blood, ``J = KurineC · BW^0.75 · C_kidney,cap``.

    Default KurineC = 3e-6 L/h/kg^0.75 (Chou 2023 mouse).  For size-dependent
    glomerular filtration see the renal sieving variant.
    """
    params = (param("KurineC", clearance_constant, "L/h/kg**0.75", _CHOU2023, (0.0, 1.0), "urinary clearance constant"),)
    rate = S("KurineC") * S("BW") ** sp.Rational(3, 4) * S("kidney_capillary") / S("V_kidney_capillary")
    states = (State("urine", "sink", organ="urine", description="cumulative NP mass in urine"),)
    return Part("clearance.urinary_excretion", states, params, (Flux("urinary_excretion", "kidney_capillary", "urine", rate),))


def biliary_excretion(ctx: BuildContext, clearance_constant: float = 3e-5) -> Part:
    """Bile to faeces from liver tissue, ``J = KbileC · BW^0.75 · C_liver,tissue``.

    Default KbileC = 3e-5 L/h/kg^0.75 (Chou 2023 mouse).
    """
    params = (param("KbileC", clearance_constant, "L/h/kg**0.75", _CHOU2023, (0.0, 1.0), "biliary clearance constant"),)
    rate = S("KbileC") * S("BW") ** sp.Rational(3, 4) * S("liver_tissue") / S("V_liver_tissue")
    states = (State("faeces", "sink", organ="faeces", description="cumulative NP mass in faeces (via bile)"),)
    return Part("clearance.biliary_excretion", states, params, (Flux("biliary_excretion", "liver_tissue", "faeces", rate),))
