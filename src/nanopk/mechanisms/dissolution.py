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

Released ions are their own species (``dissolved`` kind) and follow their own
element's fate (:data:`ION_FATES`), not one generic route: intracellular ions
(``ions_cells``) leave cells with the element's cellular half-life (long where the ion is
bound and retained — Ag⁺ and Cd²⁺ by metallothionein, iron in ferritin), plasma ions
(``ions_blood``) are eliminated first order with the element's plasma half-life, a
fraction ``f_ion_urine`` into urine (``ions_urine``) and the rest through bile into the
faeces (``ions_faeces``); both are sinks:

    J_efflux = ln2/t½,cells · A_cells,
    J_urine  = f_ion_urine · ln2/t½,blood · A_blood,
    J_faeces = (1 − f_ion_urine) · ln2/t½,blood · A_blood.

The routes are the literature's (silver and copper leave in bile, zinc mostly in the
faeces, silicic acid in urine, iron has no excretion route, cadmium is retained for
years); the half-lives and the urinary fractions are order-of-magnitude assumptions,
each labelled so in its source — calibrated quantities for the calibration work, not
fitted here.  They are mouse values (:func:`nanopk.mechanisms._species.species_param`):
a rat or human model must give its own.  The observable ``dissolved`` is the NP mass
released as ions, cumulative: every dissolved state plus the excreted ions, in %ID;
``ions_excreted`` the ions in urine and faeces, ``ions_in_urine`` and ``ions_in_faeces``
each route.

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
7. ATSDR. Toxicological profile for silver. US DHHS, 1990 (elimination mainly faecal,
   via bile; urinary excretion minimal).
8. King JC, Shames DM, Woodhouse LR. Zinc homeostasis in humans. J Nutr
   2000;130:1360S (endogenous zinc leaves mainly through the intestine; urine is minor).
9. Linder MC, Hazegh-Azam M. Copper biochemistry and molecular biology. Am J Clin Nutr
   1996;63:797S (bile is the main excretion route of copper; urine is small).
10. Järup L, Åkesson A. Current status of cadmium as an environmental health problem.
    Toxicol Appl Pharmacol 2009;238:201 (Cd bound to metallothionein, retained in kidney
    and liver; biological half-life in humans 10–30 years).
11. Andrews NC. Disorders of iron metabolism. N Engl J Med 1999;341:1986 (no regulated
    excretion route; iron is stored in ferritin and recycled).
12. Jugdaohsingh R et al. Dietary silicon intake and absorption. Am J Clin Nutr
    2002;75:887 (absorbed orthosilicic acid is excreted in urine).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import sympy as sp

from ..errors import SpecError
from ..materials import dissolution_kinetics
from ..parts import Flux, Observable, Part, RateRule, State, symbol
from ._species import species_param
from .base import BuildContext, declare, param

__all__ = [
    "hixson_crowell_remaining", "hixson_crowell_time_fraction", "critical_time_h", "recession_velocity",
    "cube_root_rate", "EPSILON", "medium_dissolution", "phagolysosomal_dissolution",
    "IonFate", "ION_FATES", "ion_fate",
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


# ---------------------------------------------------------------------- ion fates
@dataclass(frozen=True)
class IonFate:
    """Where a dissolved element goes: its route and its kinetics, each with a source.

    ``t_half_blood_h``: plasma half-life of the ion (elimination, urine + bile);
    ``f_urine``: the share of that elimination into urine (the rest bile → faeces);
    ``t_half_cells_h``: half-life of ions inside cells (retention).
    """

    ion: str
    t_half_blood_h: float
    f_urine: float
    t_half_cells_h: float
    route_source: str
    kinetics_source: str


_ASSUMED = "assumption (order of magnitude, not fitted; a calibrated quantity for the calibration work)"

#: Per-material ion fates (mouse); materials not listed release no ions (inert cores).
ION_FATES: dict[str, IonFate] = {
    "Ag": IonFate("Ag+", 24.0, 0.05, 1000.0,
                  "ATSDR, Toxicological profile for silver 1990: Ag+ leaves mainly through bile into the faeces, urinary "
                  "excretion minimal; retained in tissue bound to metallothionein (argyria)",
                  f"t½ blood 24 h, urinary share 0.05, t½ cells 1000 h (retained): {_ASSUMED}"),
    "ZnO": IonFate("Zn2+", 10.0, 0.15, 14.0,
                   "King, Shames & Woodhouse, J Nutr 2000;130:1360S: endogenous zinc is excreted mainly through the "
                   "intestine, urine is minor; zinc is homeostatically regulated, not retained",
                   f"t½ blood 10 h, urinary share 0.15, t½ cells 14 h: {_ASSUMED}"),
    "CuO": IonFate("Cu2+", 24.0, 0.02, 48.0,
                   "Linder & Hazegh-Azam, Am J Clin Nutr 1996;63:797S: bile is the main excretion route of copper, urine small",
                   f"t½ blood 24 h, urinary share 0.02, t½ cells 48 h: {_ASSUMED}"),
    "CdSe": IonFate("Cd2+", 100.0, 0.5, 10000.0,
                    "Järup & Åkesson, Toxicol Appl Pharmacol 2009;238:201: Cd2+ is bound to metallothionein and retained in "
                    "kidney and liver (human biological half-life 10–30 years), excreted slowly",
                    f"t½ blood 100 h, urinary share 0.5, t½ cells 10 000 h (retained; the human half-life is years): {_ASSUMED}"),
    "Fe3O4": IonFate("Fe3+", 10000.0, 0.05, 10000.0,
                     "Andrews, N Engl J Med 1999;341:1986: the body has no regulated iron excretion; iron is stored in "
                     "ferritin and recycled, losses are small",
                     f"t½ blood 10 000 h, urinary share 0.05, t½ cells 10 000 h (retained): {_ASSUMED}"),
    "SiO2": IonFate("Si(OH)4", 3.0, 0.95, 14.0,
                    "Jugdaohsingh et al., Am J Clin Nutr 2002;75:887: absorbed orthosilicic acid is excreted in urine",
                    f"t½ blood 3 h, urinary share 0.95, t½ cells 14 h: {_ASSUMED}"),
}

_NO_IONS = IonFate("none", 1.0, 0.0, 1.0, "inert core: no ions form", "inactive (no ions form from an inert core)")


def ion_fate(material: str) -> IonFate:
    """The ion fate of ``material``; an inert core (no dissolution data) forms no ions."""
    return ION_FATES.get(material, _NO_IONS)


def _ion_fate_part(ctx: BuildContext, material: str | None = None) -> Part:
    """Ion states, their per-material fate and the ``dissolved`` observables.

    States ``ions_cells``, ``ions_blood`` (volume ``V_plasma`` when the circulation
    defines it), sinks ``ions_urine`` and ``ions_faeces``; parameters
    ``t_half_ion_cells``, ``t_half_ion_blood`` (h, mouse values keyed by species) and
    ``f_ion_urine``.  A dissolution variant moves particle mass into ``ions_cells``
    (intracellular) or ``ions_blood`` (extracellular).
    """
    material = material or (ctx.particle.material if ctx.particle is not None else "Au")
    fate = ion_fate(material)
    inert = fate is _NO_IONS
    where = f"dissolution ({material} → {fate.ion})"
    # An inert core forms no ions, so its (inactive) constants hold for any species.
    species = {s: None for s in ("mouse", "rat", "human")} if inert else {"mouse": None}

    def keyed(name, value, unit, bounds, description):
        src = f"{material}: {fate.kinetics_source}; route: {fate.route_source}"
        return species_param(ctx.species, name, {s: (value, src) for s in species}, unit, where, bounds, description)

    params = [
        keyed("t_half_ion_cells", fate.t_half_cells_h, "h", (1e-3, 1e6), f"half-life of {fate.ion} inside cells (retention)"),
        keyed("t_half_ion_blood", fate.t_half_blood_h, "h", (1e-3, 1e6), f"plasma half-life of {fate.ion} (urine + bile)"),
        param("f_ion_urine", fate.f_urine, "dimensionless", f"{material}: {fate.kinetics_source}; route: {fate.route_source}",
              (0.0, 1.0), f"share of plasma {fate.ion} elimination into urine (the rest bile → faeces)"),
    ]
    volume = "V_plasma" if "circulation" in ctx.provided else None
    states = (
        State("ions_cells", "dissolved", description="ions released inside cells"),
        State("ions_blood", "dissolved", volume=volume, description="ions in plasma"),
        State("ions_urine", "sink", description="ions excreted in urine (cumulative)"),
        State("ions_faeces", "sink", description="ions excreted through bile into the faeces (cumulative)"),
    )
    k_blood = sp.log(2) / S("t_half_ion_blood")
    fluxes = (
        Flux("ion_efflux", "ions_cells", "ions_blood", sp.log(2) / S("t_half_ion_cells") * S("ions_cells"),
             "intracellular ions into plasma (retention: the element's cellular half-life)"),
        Flux("ion_renal_excretion", "ions_blood", "ions_urine", S("f_ion_urine") * k_blood * S("ions_blood"), "urinary share"),
        Flux("ion_biliary_excretion", "ions_blood", "ions_faeces", (1 - S("f_ion_urine")) * k_blood * S("ions_blood"),
             "biliary share, to the faeces"),
    )
    dose = S("dose")
    obs = _dissolved_observables([s.name for s in states], None) + [
        Observable("ions_excreted", 100 * (S("ions_urine") + S("ions_faeces")) / dose, "percent_ID",
                   "ions excreted in urine and faeces (cumulative)"),
        Observable("ions_in_urine", 100 * S("ions_urine") / dose, "percent_ID", "ions excreted in urine (cumulative)"),
        Observable("ions_in_faeces", 100 * S("ions_faeces") / dose, "percent_ID", "ions excreted in the faeces via bile (cumulative)"),
    ]
    return Part("dissolution.ions", states, tuple(params), fluxes, observables=tuple(obs),
                notes=(f"dissolution: {material} ions ({fate.ion}) follow their own fate: {fate.route_source}",))


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
        obs.append(Observable("ions_excreted", 100 * S(excreted) / S("dose"), "percent_ID", "ions excreted"))
    return obs


# ---------------------------------------------------------------------- in vitro
@declare(provides=("dissolution",))
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
    return Part("dissolution.medium_dissolution", states, tuple(params), (flux,), observables=tuple(obs))


# ---------------------------------------------------------------------- whole body
@declare(requires=("circulation",), provides=("dissolution",))
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
    ]
    states, fluxes, rules = [], [], []
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
    # The ions follow their element's own fate (ION_FATES): retention in cells, urine or bile.
    return Part("dissolution.phagolysosomal_dissolution", tuple(states), tuple(params), tuple(fluxes), tuple(rules),
                notes=("dissolution: lysosomes follow the cube-root law with their own m0; blood, tissue and endosomes "
                       "use the initial particle size (first order)",)) + _ion_fate_part(ctx)
