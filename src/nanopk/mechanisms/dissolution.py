"""Dissolution: proton-promoted shrinking-sphere ion release, in blood and in endo/lysosomes.

A dissolving core loses material at a constant surface recession velocity v (the
Hixson–Crowell cube-root law), so the mass of a population of particles that started
at radius r₀ with mass m₀ follows

    dm/dt = −(3 v / r₀) · m^(2/3) · m₀^(1/3),     m/m₀ = (1 − t/t_c)³,   t_c = r₀ / v,

and 50 % (90 %) is dissolved at t/t_c = 1 − 0.5^(1/3) = 0.206 (1 − 0.1^(1/3) = 0.536).
The velocity is proton promoted,

    v(pH) = v_ref · 10^(−n·(pH − pH_ref)) ∝ [H⁺]^n,

with material constants from :data:`nanopk.materials.DISSOLUTION` (gold: v = 0).

In a whole-body model particles dissolve

- in blood, capillaries and interstitium at pH 7.4 (tumour interstitium pH 6.8);
- in the endosomes of phagocytes — the existing ``{organ}_phagocytes`` states (pH 6.0) —
  and in lysosomes, new states ``{organ}_lysosome`` (pH 4.75) that endosomes mature
  into at ``k_maturation``; lysosomal contents are released from the cell at the same
  ``Krelease_{organ}`` as the phagocytes' other contents, so for an inert core the
  particle kinetics of the uptake model are unchanged;
- likewise in tumour cells (``tumour_cells`` as endosomes, ``tumour_lysosome``) when
  the model has an EPR tumour.

Lysosomes hold particles long enough for the cube-root law to matter, so each tracks
the undissolved mass of its particles, m₀ (an auxiliary state: inflow minus release,
not reduced by dissolution), and dissolves at (3v/r₀)·m^(2/3)·m₀^(1/3).  Elsewhere
residence is short and particles are taken at their initial size (first order,
(3v/r₀)·m).

The cube-root law is written in a regularised form (:func:`cube_root_rate`, ε =
:data:`EPSILON`·dose) that is defined and finite for every amount:

    rate = (3v/r₀) · (m₀² + ε²)^(1/6) · m · (m² + ε²)^(−1/6).

Why: the solver's trial states dip a little below zero (within its absolute tolerance);
m^(2/3) of a negative amount is NaN, and the earlier form m·((m₀ + ε)/(m + ε))^(1/3)
was NaN once m < −ε, which made CVODE fail (CV_RHSFUNC_FAIL) for 23 of 72 material × core
size combinations of ``mouse_tumour_full`` over 1000 h (Ag, ZnO, Fe₃O₄, CdSe, SiO₂).  The rate is
smooth (C^∞), ≥ 0 for every m ≥ 0, and 0 at m = 0, so the exact solution stays
non-negative; its slope at m = 0 is k·((m₀² + ε²)/ε²)^(1/6) ≤ ~215·k (where the slope of
m^(2/3) is infinite), so the Jacobian stays bounded.  For an undershoot m < 0 the rate is
negative, as for every first-order flux k·m of the model: it pulls the amount back to
zero.  (A rate that is 0 for m ≤ 0 leaves an undershoot undamped; the solver's errors then
accumulated to −3.8e-6 of the dose in the spleen's lysosomes for 5 nm ZnO.)  For m, m₀ ≫ ε
it is the Hixson–Crowell rate to a relative (ε/m)²/6 + (ε/m₀)²/6: < 0.2 % for amounts above
1e-6 of the dose (1e-4 %ID), and the closed-form test (50 % dissolved at 0.206 t_c, 90 % at
0.536 t_c, and the whole curve to 0.95 t_c) holds within its tolerance.  The flux moves mass from
particles to ions, so mass balance holds by construction whatever the form.

Released ions are their own species (``dissolved`` kind): intracellular ions
(``ions_cells``) pass into plasma (``ions_blood``) and are excreted in urine
(``ions_urine``, a sink).  The observable ``dissolved`` is the NP mass released as
ions, cumulative: every dissolved state plus the excreted ions, in %ID.

Sources
-------
1. Hixson AW, Crowell JH. Dependence of reaction velocity upon surface and agitation.
   Ind Eng Chem 1931;23:923.
2. Liu J, Hurt RH. Ion release kinetics and particle persistence in aqueous nano-silver
   colloids. Environ Sci Technol 2010;44:2169 (doi:10.1021/es9035557).
3. Bachler G, von Goetz N, Hungerbühler K. A physiologically based pharmacokinetic
   model for ionic silver and silver nanoparticles. Int J Nanomedicine 2013;8:3365
   (doi:10.2147/IJN.S46624).
4. Godymchuk A et al. AIMS Mater Sci 2022;9:642 (α-Fe₂O₃ in lung-fluid and sweat
   simulants).
5. Huotari J, Helenius A. Endosome maturation. EMBO J 2011;30:3481
   (doi:10.1038/emboj.2011.286).
6. Casey JR, Grinstein S, Orlowski J. Sensors and regulators of intracellular pH.
   Nat Rev Mol Cell Biol 2010;11:50 (endosome pH ~6.0–6.5, lysosome ~4.5–5.0).
"""
from __future__ import annotations

import numpy as np
import sympy as sp

from ..errors import SpecError
from ..materials import dissolution_kinetics
from ..parts import Flux, Observable, Part, RateRule, State, symbol
from .base import BuildContext, param

__all__ = [
    "hixson_crowell_remaining", "hixson_crowell_time_fraction", "critical_time_h", "recession_velocity",
    "cube_root_rate", "EPSILON", "medium_dissolution", "phagolysosomal_dissolution",
]

S = symbol
_CASEY = "Casey, Grinstein & Orlowski, Nat Rev Mol Cell Biol 2010;11:50"
_HUOTARI = ("Huotari & Helenius, EMBO J 2011;30:3481: endocytosed cargo reaches lysosomes within ~30–60 min; "
            "k = 1/h")
#: Regularisation of the cube-root law, ε, as a fraction of the dose: the rate departs from
#: Hixson–Crowell only for amounts within a few ε of zero (relative error (ε/m)²/6), and
#: its slope in m is at most k·((m₀² + ε²)/ε²)^(1/6), ~215·k for m₀ = dose.  With 1e-9
#: (slope up to 1000·k) CVODE needed up to 27 000 steps for 1.4 nm ZnO cores in
#: mouse_tumour_full over 1000 h, chattering at the lysosomes' finite-time extinction;
#: with 1e-7 at most ~1200 (the 9 materials × 8 sizes and five ZnO/SiO2 cores of 1.4–28 nm).
EPSILON = 1e-7


# ---------------------------------------------------------------------- closed forms
def hixson_crowell_remaining(t, t_c):
    """m/m₀ = (1 − t/t_c)³ for t ≤ t_c, 0 after."""
    x = np.clip(1.0 - np.asarray(t, dtype=float) / t_c, 0.0, None)
    return x**3


def hixson_crowell_time_fraction(fraction_dissolved):
    """t/t_c at which ``fraction_dissolved`` is gone: 1 − (1 − f)^(1/3)."""
    return 1.0 - (1.0 - np.asarray(fraction_dissolved, dtype=float)) ** (1.0 / 3.0)


def critical_time_h(r0_nm: float, v_nm_h: float) -> float:
    """t_c = r₀ / v (h); infinite for an inert core."""
    return float("inf") if v_nm_h <= 0 else r0_nm / v_nm_h


def recession_velocity(v_ref_nm_h: float, pH, pH_ref: float, order_H: float):
    """v(pH) = v_ref · 10^(−n·(pH − pH_ref)) (nm/h)."""
    return v_ref_nm_h * 10.0 ** (-order_H * (np.asarray(pH, dtype=float) - pH_ref))


# ---------------------------------------------------------------------- helpers
def _material_parameters(ctx: BuildContext):
    if ctx.particle is None:
        raise SpecError("dissolution needs a particle (its material sets the rate, its core radius the shrinking sphere); "
                        "give [particle] in the spec")
    p = ctx.particle
    kin = dissolution_kinetics(p.material)
    note = "" if kin.verified else " [assumption/unverified, see nanopk.materials.DISSOLUTION]"
    return [
        param("v_diss_ref", kin.v_ref_nm_h, "nm/h", f"{p.material}: {kin.source}{note}", (0.0, 100.0),
              "surface recession velocity at the reference pH"),
        param("pH_diss_ref", kin.pH_ref, "dimensionless", f"{p.material}: reference pH of v_diss_ref ({kin.source})", (0.0, 14.0),
              "pH at which v_diss_ref applies"),
        param("n_H", kin.order_H, "dimensionless", f"{p.material}: {kin.source}{note}", (-2.0, 2.0), "reaction order in [H+]"),
        param("r_core", p.core_diameter_nm / 2.0, "nm", f"set from the Particle: core radius ({p.material}, {p.core_diameter_nm:g} nm)",
              (0.1, 5000.0), "initial core radius r0"),
    ]


def _rate(pH_name: str) -> sp.Expr:
    """3·v(pH)/r₀ (1/h)."""
    return 3 * S("v_diss_ref") * 10 ** (-S("n_H") * (S(pH_name) - S("pH_diss_ref"))) / S("r_core")


def cube_root_rate(k, m, m0, eps):
    """The regularised Hixson–Crowell rate k·m^(2/3)·m₀^(1/3) (NumPy twin of the flux's rate).

    ``k·(m₀² + ε²)^(1/6)·m·(m² + ε²)^(−1/6)``: finite for every m and m₀, smooth, 0 at
    m = 0, ≥ 0 for m ≥ 0 (negative for an undershoot m < 0, which it pulls back to zero),
    and k·m^(2/3)·m₀^(1/3) to a relative (ε/m)²/6 + (ε/m₀)²/6 for m, m₀ ≫ ε (see the
    module docstring).

    Parameters
    ----------
    k : float or array_like
        3·v/r₀ (1/h).
    m, m0 : float or array_like
        Current and initial-size mass (µg).
    eps : float
        Regularisation (µg), > 0; the models use :data:`EPSILON` × dose.
    """
    k, m, m0 = (np.asarray(x, dtype=float) for x in (k, m, m0))
    return k * (m0**2 + eps**2) ** (1.0 / 6.0) * m * (m**2 + eps**2) ** (-1.0 / 6.0)


def _cube_root_law(k: sp.Expr, m: sp.Expr, m0: sp.Expr, m0_state: bool = True) -> sp.Expr:
    """SymPy twin of :func:`cube_root_rate`, with ε = EPSILON·dose.

    ``m0_state=False`` where m₀ is the (positive) dose itself: m₀^(1/3) needs no
    regularisation there, and SymPy would fold (dose² + ε²)^(1/6) into |dose|^(1/3).
    """
    eps = EPSILON * S("dose")
    size = (m0**2 + eps**2) ** sp.Rational(1, 6) if m0_state else m0 ** sp.Rational(1, 3)
    return k * size * m * (m**2 + eps**2) ** sp.Rational(-1, 6)


def _dissolved_observables(states: list[str], excreted: str | None):
    obs = [Observable("dissolved", 100 * sp.Add(*[S(s) for s in states]) / S("dose"), "percent_ID",
                      "NP mass released as ions, cumulative (all dissolved states and excreted ions)")]
    if excreted:
        obs.append(Observable("ions_excreted", 100 * S(excreted) / S("dose"), "percent_ID", "ions excreted in urine"))
    return obs


# ---------------------------------------------------------------------- in vitro
def medium_dissolution(ctx: BuildContext, pH: float = 4.5, medium: str = "artificial lysosomal fluid") -> Part:
    """Dissolution in a closed medium (in vitro): the Hixson–Crowell law exactly.

    States ``medium_particles`` (the dose target) and ``medium_ions`` (dissolved);
    flux (3v/r₀)·m^(2/3)·m₀^(1/3) with m₀ = dose (regularised: :func:`cube_root_rate`).  Observables ``dissolved`` and
    ``remaining`` (%ID).
    """
    params = _material_parameters(ctx) + [
        param("pH_medium", pH, "dimensionless", f"set by the model spec ({medium})", (0.0, 14.0), "pH of the medium"),
    ]
    states = (
        State("medium_particles", organ="medium", description=f"particles in {medium}"),
        State("medium_ions", "dissolved", description="ions released into the medium"),
    )
    flux = Flux("dissolution_medium", "medium_particles", "medium_ions",
                _cube_root_law(_rate("pH_medium"), S("medium_particles"), S("dose"), m0_state=False), "Hixson–Crowell, m0 = dose")
    obs = _dissolved_observables(["medium_ions"], None) + [
        Observable("remaining", 100 * S("medium_particles") / S("dose"), "percent_ID", "undissolved NP mass")]
    ctx.provided.add("dissolution")
    return Part("dissolution.medium_dissolution", states, tuple(params), (flux,), observables=tuple(obs))


# ---------------------------------------------------------------------- whole body
def phagolysosomal_dissolution(ctx: BuildContext, organs=None, tumour: bool | None = None, extracellular: bool = True,
                               lysosome_release: bool = True) -> Part:
    """Dissolution in blood, tissue, endosomes and lysosomes; ions to plasma and urine.

    Parameters
    ----------
    organs : sequence of str, optional
        Organs whose phagocytes (``{organ}_phagocytes``, the endosomal pool) feed a
        lysosome; default: every organ with phagocytes.
    tumour : bool, optional
        Add tumour-cell endosomes (``tumour_cells``) and lysosomes; default: when the
        model has an EPR tumour (list ``epr.*`` before this mechanism).
    extracellular : bool
        Dissolve particles in blood pools, capillaries and interstitium as well.
    lysosome_release : bool
        Release lysosomal particles at ``Krelease_{organ}`` (declared by the uptake
        mechanism), into the compartment phagocytes release into (liver capillary
        blood, other organs' tissue, tumour interstitium).
    """
    if "circulation" not in ctx.provided:
        raise SpecError("dissolution.phagolysosomal_dissolution needs circulation.whole_body listed before it")
    organs = list(ctx.phagocyte_organs if organs is None else organs)
    missing = [o for o in organs if o not in ctx.phagocyte_organs]
    if missing:
        raise SpecError(f"dissolution: organ(s) {', '.join(missing)} have no phagocytes (phagocyte organs: {', '.join(ctx.phagocyte_organs)})")
    if tumour is None:
        tumour = "epr" in ctx.provided
    elif tumour and "epr" not in ctx.provided:
        raise SpecError("dissolution option `tumour = true` needs an EPR tumour (list epr.* before dissolution)")
    params = _material_parameters(ctx) + [
        param("pH_blood", 7.4, "dimensionless", "arterial blood pH 7.35–7.45", (6.5, 8.0), "pH of plasma and interstitium"),
        param("pH_endosome", 6.0, "dimensionless", f"{_CASEY}: early/late endosome pH 6.3–5.5", (4.0, 7.4), "endosomal pH"),
        param("pH_lysosome", 4.75, "dimensionless", f"{_CASEY}: lysosome pH 4.5–5.0", (3.5, 7.0), "lysosomal pH"),
        param("k_maturation", 1.0, "1/h", _HUOTARI, (0.0, 100.0), "endosome → lysosome maturation rate"),
        param("k_ion_efflux", 0.05, "1/h",
              "assumption: released ions are bound intracellularly (metallothionein, glutathione) and leave cells with a "
              "half-life of ~14 h; not fitted (Bachler et al. 2013 model Ag+ tissue binding)", (0.0, 100.0),
              "efflux of intracellular ions into plasma"),
        param("CL_ion_urine", 1.3e-3, "L/h",
              "fu·GFR: mouse GFR 0.278 mL/min at 28 g scaled to 20 g (0.22 mL/min = 0.013 L/h, SCIENCE.md §1) × "
              "unbound fraction 0.1 (assumption: metal ions bind albumin and thiols)", (0.0, 1.0), "renal clearance of plasma ions"),
    ]
    states, fluxes, rules = [], [], []
    ion_states = ["ions_cells", "ions_blood", "ions_urine"]
    states += [
        State("ions_cells", "dissolved", description="ions released inside cells"),
        State("ions_blood", "dissolved", volume="V_plasma", description="ions in plasma"),
        State("ions_urine", "sink", description="ions excreted in urine (cumulative)"),
    ]
    k_ext, k_endo, k_lys = _rate("pH_blood"), _rate("pH_endosome"), _rate("pH_lysosome")
    release_into = {o: (f"{o}_capillary" if o == "liver" else f"{o}_tissue") for o in organs}
    cells = [(o, f"{o}_phagocytes", f"{o}_lysosome", f"Krelease_{o}") for o in organs]
    if tumour:
        cells.append(("tumour", "tumour_cells", "tumour_lysosome", "Krelease_tumour"))
        release_into["tumour"] = "tumour_tissue"
    for organ, endo, lyso, krel in cells:
        m0 = f"{lyso}_m0"
        states += [
            State(lyso, organ=organ, volume=f"V_{organ}_tissue", description=f"NP in {organ} lysosomes (pH 4.5–5)"),
            State(m0, "auxiliary", "ug", 0.0, description=f"undissolved (initial-size) mass of the particles in {organ} lysosomes"),
        ]
        fluxes += [
            Flux(f"maturation_{organ}", endo, lyso, S("k_maturation") * S(endo), "endosome → lysosome"),
            Flux(f"dissolution_endosome_{organ}", endo, "ions_cells", k_endo * S(endo), "endosomal dissolution (initial size)"),
            Flux(f"dissolution_lysosome_{organ}", lyso, "ions_cells", _cube_root_law(k_lys, S(lyso), S(m0)),
                 "lysosomal dissolution (cube-root law)"),
        ]
        inflow = S("k_maturation") * S(endo)
        if lysosome_release:
            fluxes.append(Flux(f"lysosome_release_{organ}", lyso, release_into[organ], S(krel) * S(lyso), "exocytosis of lysosomal particles"))
            rules.append(RateRule(m0, inflow - S(krel) * S(m0), "inflow minus release (released particles take their share of m0)"))
        else:
            rules.append(RateRule(m0, inflow, "inflow of intact particles"))
    if extracellular:
        extra = ["arterial_blood", "venous_blood"] + [f"{o}_{part}" for o in ctx.organs for part in ("capillary", "tissue")]
        for s in extra:
            fluxes.append(Flux(f"dissolution_{s}", s, "ions_blood", k_ext * S(s), "dissolution at pH 7.4 (initial size)"))
        if tumour:
            params.append(param("pH_tumour_interstitium", 6.8, "dimensionless",
                                "tumour extracellular pH 6.5–7.0 (Gerweck & Seetharaman, Cancer Res 1996;56:1194)", (5.5, 7.6),
                                "tumour interstitial pH"))
            fluxes += [
                Flux("dissolution_tumour_capillary", "tumour_capillary", "ions_blood", k_ext * S("tumour_capillary"), "dissolution at pH 7.4"),
                Flux("dissolution_tumour_tissue", "tumour_tissue", "ions_blood", _rate("pH_tumour_interstitium") * S("tumour_tissue"),
                     "dissolution in the acidic tumour interstitium"),
            ]
    fluxes += [
        Flux("ion_efflux", "ions_cells", "ions_blood", S("k_ion_efflux") * S("ions_cells"), "intracellular ions into plasma"),
        Flux("ion_renal_excretion", "ions_blood", "ions_urine", S("CL_ion_urine") * S("ions_blood") / S("V_plasma"), "CL · C_plasma"),
    ]
    ctx.provided.add("dissolution")
    return Part("dissolution.phagolysosomal_dissolution", tuple(states), tuple(params), tuple(fluxes), tuple(rules),
                observables=tuple(_dissolved_observables(ion_states, "ions_urine")),
                notes=("dissolution: lysosomes follow the cube-root law with their own m0; blood, tissue and endosomes "
                       "use the initial particle size (first order)",))
