"""Classic compartmental PK: the closed-form yardsticks for the solver.

One compartment, first-order elimination:  dA/dt = −k10·A,
    A(t) = D·e^(−k10 t) (bolus);  A(t) = (R/k10)(1 − e^(−k10 t)) during an infusion.
Two compartments (central 1, peripheral 2):
    dA1/dt = −(k10 + k12)·A1 + k21·A2,   dA2/dt = k12·A1 − k21·A2,
    A1(t) = D[(α − k21)e^(−αt) + (k21 − β)e^(−βt)]/(α − β),
    α, β = ½[(k10+k12+k21) ± √((k10+k12+k21)² − 4·k10·k21)].

Source: Gibaldi M, Perrier D. Pharmacokinetics, 2nd ed. Marcel Dekker 1982, ch. 1–2.
Default values are illustrative round numbers for a small-molecule-like yardstick
(``V1`` 2 mL ≈ mouse plasma volume; Davies & Morris, Pharm Res 1993;10:1093).
"""
from __future__ import annotations

from ..parts import Assignment, Flux, Part, State, symbol
from .base import BuildContext, param

__all__ = ["one_compartment", "two_compartment"]

S = symbol
_GIBALDI = "illustrative yardstick value; closed forms from Gibaldi & Perrier, Pharmacokinetics 2nd ed. 1982"


def _central_and_sink():
    return (
        State("central", organ="central", volume="V1", description="drug/NP in the central compartment"),
        State("eliminated", "sink", organ="eliminated", description="cumulative amount eliminated"),
    )


def one_compartment(ctx: BuildContext, k10: float = 0.2) -> Part:
    """One-compartment IV model, elimination ``k10·A`` into the ``eliminated`` sink."""
    params = (
        param("k10", k10, "1/h", _GIBALDI, (1e-6, 100.0), "elimination rate constant"),
        param("V1", 2.0, "mL", "mouse plasma volume ~2 mL (Davies & Morris, Pharm Res 1993;10:1093)", (1e-3, 1e6), "central volume"),
    )
    return Part(
        "classic.one_compartment", _central_and_sink(), params,
        (Flux("elimination", "central", "eliminated", S("k10") * S("central")),),
        assignments=(Assignment("C_central", S("central") / S("V1"), "ug/mL", "central concentration"),),
    )


def two_compartment(ctx: BuildContext, k10: float = 0.2, k12: float = 0.5, k21: float = 0.1) -> Part:
    """Two-compartment IV model with central ↔ peripheral exchange."""
    params = (
        param("k10", k10, "1/h", _GIBALDI, (1e-6, 100.0), "elimination rate constant"),
        param("k12", k12, "1/h", _GIBALDI, (1e-6, 100.0), "central → peripheral"),
        param("k21", k21, "1/h", _GIBALDI, (1e-6, 100.0), "peripheral → central"),
        param("V1", 2.0, "mL", "mouse plasma volume ~2 mL (Davies & Morris, Pharm Res 1993;10:1093)", (1e-3, 1e6), "central volume"),
    )
    states = _central_and_sink() + (State("peripheral", organ="peripheral", description="peripheral compartment"),)
    fluxes = (
        Flux("elimination", "central", "eliminated", S("k10") * S("central")),
        Flux("distribution", "central", "peripheral", S("k12") * S("central")),
        Flux("redistribution", "peripheral", "central", S("k21") * S("peripheral")),
    )
    return Part("classic.two_compartment", states, params, fluxes,
                assignments=(Assignment("C_central", S("central") / S("V1"), "ug/mL", "central concentration"),))
