"""MPS: phagocytic clearance driven by the particle's opsonisation and by phagocyte filling.

Circulating particles are in one of two pools.  Every dose enters the *naive* pool (the
circulation's blood, capillary and tissue states); a naive particle is *recognised* —
its corona carries enough opsonins for Kupffer cells and splenic macrophages to bind it
— at the rate k_rec, and moves to the circulating *opsonised* pool, which the liver and
spleen clear quickly::

      venous, arterial, {organ}_capillary (naive) ──k_rec·A──► blood_opsonised
             │                                                      │
             │ K_naive·free·A_source                                │ CL_organ·free·C_ops
             ▼                                                      ▼
      {organ}_phagocytes ◄──────────────────────────────────────────┘
             │ K_release·A_phag
             ▼
      {organ}_capillary (liver) / {organ}_tissue (others)   (back to the naive pool)

Recognition follows the opsonin signal of the particle, not the clock:

    S_eq   = opsonin_coverage_eq        (corona: equilibrium opsonin coverage of one particle,
                                         with PEG shielding by molecular weight)
    σ      = α · S_eq · (d_core / d_ref)²          (opsonin gain × opsonins per particle)
    k_rec  = k_rec,max · (σ/σ₅₀)^h / (1 + (σ/σ₅₀)^h)

``α`` is the corona's ``alpha_opsonin`` (gain of phagocytic uptake per unit opsonin
coverage), so a stronger opsonin signal — a higher gain, more opsonin adsorption, less
PEG — clears faster; (d_core/d_ref)² makes σ proportional to the number of opsonins on
a particle (coverage × core surface: the brush-anchored core is where proteins bind),
so larger particles are recognised faster; the Hill step with h = 2 is the need for
several opsonin–receptor contacts before a phagocyte engulfs a particle.

Uptake saturates with the number of particles a phagocyte population holds:

    N_organ = (A_phag + A_lyso) / m_p,     N₅₀,organ = N₅₀ · m_organ,
    free    = 1 / (1 + (N_organ / N₅₀,organ)^n_sat),

with m_p the mass of one core (density · π/6 · d_core³), A_lyso the particle mass in
the organ's lysosomes when the model dissolves particles (a dissolving core counts by
its remaining mass), and m_organ = 1000 · ρ · V_organ
(g).  ``free`` is smooth, in (0, 1], and multiplies every uptake into that organ's
phagocytes, so phagocytes fill and slow down without a kink or a negative flux.

Rates (mass fluxes, µg/h; structural mass balance):

    J_rec      = k_rec · A            for A in venous, arterial and every capillary bed
    J_capture  = Q·CL_int/(Q + CL_int) · free · A_ops / V_circ,
                 CL_int = k_cap,organ · V_circ                 (liver, spleen; well-stirred)
    J_naive    = f_naive · Kmax_organ · free · A_source        (liver: capillary, others: tissue)
    J_release  = Krelease_organ · A_phag
    J_tumour   = PS_tumour · A_ops / V_circ                     (option ``tumour_exchange``)

Everything depends on the particle and on the state, nothing on t: a dose given at
168 h behaves as one given at 0 h (up to the phagocytes still holding the first).

Sources
-------
1. Owens DE, Peppas NA. Opsonization, biodistribution, and pharmacokinetics of
   polymeric nanoparticles. Int J Pharm 2006;307:93 (doi:10.1016/j.ijpharm.2005.10.010):
   opsonisation precedes MPS recognition; PEG extends circulation by blocking it.
2. Walkey CD, Olsen JB, Guo H, Emili A, Chan WCW. Nanoparticle size and surface chemistry
   determine serum protein adsorption and macrophage uptake. JACS 2012;134:2139
   (doi:10.1021/ja2084338): macrophage uptake follows the adsorbed serum protein, falls
   with PEG grafting density and depends on size.
3. Perrault SD, Walkey C, Jennings T, Fischer HC, Chan WCW. Mediating tumor targeting
   efficiency of nanoparticles through design. Nano Lett 2009;9:1909
   (doi:10.1021/nl900031y): blood half-life of PEG-gold falls with size, rises with PEG MW.
4. Cho WS et al. Size-dependent tissue kinetics of PEG-coated gold nanoparticles.
   Toxicol Appl Pharmacol 2010;245:116 (doi:10.1016/j.taap.2010.02.013): 13 nm PEG-5k
   gold circulates for a day, 100 nm is gone from blood within 30 min (datasets
   cho2010_peg_au_13nm / _100nm): the two calibration anchors of this module.
5. Ouyang B et al. Tumour delivery of nanoparticles is overwhelmed by the liver above a
   dose threshold. Nat Mater 2020;19:1362 (doi:10.1038/s41563-020-0755-z): ~1e12
   particles saturate Kupffer-cell uptake in a mouse.
6. Chou WC et al. J Control Release 2023;361:53 (doi:10.1016/j.jconrel.2023.07.040):
   mouse phagocytic uptake and release constants (Lin-lab model).
7. Moghimi SM, Hunter AC, Murray JC. Long-circulating and target-specific nanoparticles.
   Pharmacol Rev 2001;53:283: opsonised particles are cleared by the MPS within minutes,
   mostly by Kupffer cells.
8. Tsoi KM et al. Mechanism of hard nanomaterial clearance by the liver. Nat Mater
   2016;15:1212 (doi:10.1038/nmat4718): Kupffer cells and splenic macrophages capture
   circulating nanoparticles from blood.
"""
from __future__ import annotations

import numpy as np
import sympy as sp

from ..errors import SpecError
from ..parts import Assignment, Flux, Observable, Part, State, symbol
from .base import BuildContext, declare, param

__all__ = [
    "opsonisation_uptake",
    "recognition_rate",
    "recognition_rate_expr",
    "free_capacity",
    "free_capacity_expr",
    "opsonin_signal",
    "equilibrium_opsonin_coverage",
]

S = symbol

_OWENS = "Owens & Peppas, Int J Pharm 2006;307:93 (doi:10.1016/j.ijpharm.2005.10.010)"
_WALKEY = "Walkey et al., JACS 2012;134:2139 (doi:10.1021/ja2084338)"
_CHO = "Cho et al., Toxicol Appl Pharmacol 2010;245:116 (doi:10.1016/j.taap.2010.02.013)"
_OUYANG = "Ouyang et al., Nat Mater 2020;19:1362 (doi:10.1038/s41563-020-0755-z)"
_CHOU2023 = "Chou et al., J Control Release 2023;361:53 (doi:10.1016/j.jconrel.2023.07.040), mouse"
_MOGHIMI = "Moghimi, Hunter & Murray, Pharmacol Rev 2001;53:283"

#: Fastest recognition (1/h): opsonised, uncoated particles leave mouse blood within
#: minutes (Moghimi 2001); 30 /h is a half-life of 1.4 min.
K_REC_MAX_PER_H = 30.0
#: Hill coefficient of recognition in the opsonin signal (several receptor contacts).
N_RECOGNITION = 2.0
#: Reference core diameter (nm) of the opsonin signal (a definition).
D_REF_NM = 100.0
#: Half-maximal opsonin signal.  Calibrated quantity: Cho et al. 2010 (datasets
#: cho2010_peg_au_13nm / _100nm) — 100 nm PEG-5k gold is at 0.55 % of the 13 nm
#: particle's blood concentration at 30 min (45 vs 8141 ng/g) and 13 nm blood halves from
#: its 30-min value in ~29 h (log-linear between the 24 h and 168 h means); 0.35 puts
#: both within 2× (benchmarks/trends.py rows "calibration anchor").
SIGNAL_50 = 0.35
#: Naive (opsonin-free) uptake as a fraction of the Lin/Chou Kmax.  An assumption: not
#: identifiable from Cho 2010 beside SIGNAL_50 (0.03–0.1 all keep the 13 nm half-time
#: within 2× of 29 h).
F_NAIVE = 0.05
#: Half-saturation of phagocytes (particles per g organ).  Calibrated quantity: Ouyang
#: et al. 2020 threshold ~1e12 particles per mouse: a 1.1 g mouse liver is half full at
#: ~1e12 particles.
N50_PER_G = 1.0e12
#: Hill coefficient of saturation (steepness of the threshold).
N_SATURATION = 4.0

#: Naive uptake constants Kmax (1/h) and release (1/h): the Lin-lab/Chou 2023 mouse plateau values.
NAIVE_DEFAULTS = {
    "liver": (0.3, 0.0015),
    "spleen": (5.0, 0.001),
    "kidney": (0.12, 0.001),
    "lung": (0.085, 0.003),
}
_NAIVE_REST = (0.4, 0.005)
#: Capture of opsonised particles: intrinsic clearance per circulating volume (1/h).
#: Calibrated quantities, both on Cho 2010's 100 nm PEG-5k gold (datasets
#: cho2010_peg_au_100nm), the particle that is captured almost entirely as opsonised:
#: liver — gone from blood by 30 min, which needs near flow-limited hepatic extraction
#: (80 /h gives E ≈ 0.5 per pass; the 10 /h used for aggregates left 11 % of the 13 nm
#: level); spleen — its concentration is 1.02, 1.22 and 1.94 × the liver's at 0.5, 24
#: and 168 h, and 2 /h gives 1.31, 1.33 and 1.41 (the earlier assumption, liver/5 =
#: 16 /h, gave 3.5–3.8 and put 24 % of every large particle in a 0.1 g spleen).
CAPTURE_DEFAULTS = {"liver": 80.0, "spleen": 2.0}

#: µg/g · kg/L · L → g: an organ mass in g is 1000 · ρ (kg/L) · V (L).
_G_PER_KG = 1000.0


# ---------------------------------------------------------------------- closed forms (NumPy)
def equilibrium_opsonin_coverage(K_C, opsonin, kon_factor, accessible, adsorption=1.0):
    """Competitive-Langmuir equilibrium opsonin coverage of one particle (NumPy).

        S_eq = φ_acc · Σ_{opsonins} a·ρ·K_i·C_i / (1 + Σ_j a·ρ_j·K_j·C_j)

    Parameters
    ----------
    K_C : sequence of float
        ``K_i · C_i = k_on,i · C_i / k_off,i`` of every protein (dimensionless).
    opsonin : sequence of bool
        Which proteins are opsonins.
    kon_factor : float
        PEG reduction ρ of opsonin association (1 without PEG).
    accessible : float
        Surface fraction φ_acc accessible to proteins (1 without PEG).
    adsorption : float
        Surface adsorptivity a (0 for a non-adsorbing surface).
    """
    kc = np.asarray(K_C, float) * adsorption
    rho = np.where(np.asarray(opsonin, bool), kon_factor, 1.0)
    weighted = rho * kc
    return accessible * float(np.sum(weighted[np.asarray(opsonin, bool)])) / (1.0 + float(np.sum(weighted)))


def opsonin_signal(alpha, coverage_eq, d_core_nm, d_ref_nm: float = D_REF_NM):
    """σ = α · S_eq · (d_core/d_ref)² (NumPy): opsonin gain × opsonins per particle."""
    return np.asarray(alpha, float) * np.asarray(coverage_eq, float) * (np.asarray(d_core_nm, float) / d_ref_nm) ** 2


def recognition_rate(signal, k_max: float = K_REC_MAX_PER_H, signal_50: float = SIGNAL_50, hill: float = N_RECOGNITION):
    """k_rec = k_max · x^h / (1 + x^h), x = σ/σ₅₀ (1/h; NumPy, vectorised).

    Raises
    ------
    ValueError
        If a signal is negative or not finite.
    """
    s = np.asarray(signal, float)
    if not np.all(np.isfinite(s) & (s >= 0)):
        raise ValueError(f"`signal` must be finite and ≥ 0 (got {signal!r})")
    x = (s / signal_50) ** hill
    out = k_max * x / (1.0 + x)
    return out if out.ndim else float(out)


def free_capacity(number, n50, hill: float = N_SATURATION):
    """free = 1 / (1 + (N/N₅₀)^n) (NumPy): the fraction of phagocytic uptake left when holding N particles."""
    n = np.asarray(number, float)
    if not np.all(np.isfinite(n) & (n >= 0)):
        raise ValueError(f"`number` must be finite and ≥ 0 (got {number!r})")
    out = 1.0 / (1.0 + (n / n50) ** hill)
    return out if out.ndim else float(out)


# ---------------------------------------------------------------------- SymPy twins
def recognition_rate_expr(signal, k_max, signal_50, hill) -> sp.Expr:
    """:func:`recognition_rate` as a SymPy expression."""
    x = (signal / signal_50) ** hill
    return k_max * x / (1 + x)


def free_capacity_expr(number, n50, hill) -> sp.Expr:
    """:func:`free_capacity` as a SymPy expression.

    Written ``((N/N₅₀)²)^(h/2)``: equal to ``(N/N₅₀)^h`` for N ≥ 0 and still finite and
    ≥ 0 when the solver's trial amounts dip below zero with a non-integer ``h``
    (``(−x)^2.5`` is NaN).  Its derivative ``h·x·(x²)^(h/2 − 1)`` is finite at x = 0
    only for h ≥ 2, hence the bounds of ``n_saturation`` ([2, 8]).
    """
    return 1 / (1 + ((number / n50) ** 2) ** (hill / 2))


# ---------------------------------------------------------------------- the part
def _particle_parameters(ctx: BuildContext):
    if ctx.particle is None:
        raise SpecError("mps.opsonisation_uptake needs a particle (its core size and mass set recognition and "
                        "saturation); give [particle] in the spec")
    params = [param("d_core", float(ctx.particle.core_diameter_nm), "nm",
                    f"set from the Particle ({ctx.particle.to_dict()}): core diameter", (0.5, 5000.0),
                    "core diameter (opsonin-binding surface, particle mass)")]
    if "aggregation" not in ctx.provided:  # aggregation declares the same core mass
        params.append(param("m_particle", ctx.particle.particle_mass_ug, "ug",
                            "set from the Particle: mass of one core = π/6·d³·density (materials table)", (1e-20, 1e-3),
                            "mass of one primary particle"))
        ctx.provided.add("parameter:m_particle")
    return params


@declare(requires=("circulation", "corona"), provides=("phagocytic_uptake", "mps"),
         groups={"phagocytic uptake": ("Kmax", "K50", "n"), "phagocyte release": ("Krelease",)})  # nanopk.compare tests each group as one
def opsonisation_uptake(ctx: BuildContext, organs=("liver", "spleen", "kidney", "lung"),
                        capture_organs=("liver", "spleen"), tumour_exchange: str | None = None) -> Part:
    """Phagocytic uptake that follows opsonisation and saturates with particle number.

    Parameters
    ----------
    organs : sequence of str
        Organs whose phagocytes take up naive particles (each needs
        ``{organ}_phagocytes`` from the circulation); liver from capillary blood, the
        others from tissue, as in the Lin-lab model.
    capture_organs : sequence of str
        Organs whose phagocytes capture opsonised particles from the circulation
        (Kupffer cells and splenic macrophages: Tsoi et al. 2016).
    tumour_exchange : str, optional
        Name of the tumour's permeability-surface area assignment (L/h), e.g.
        ``"PS_tumour"`` of ``epr.two_pore_tumour``: opsonised particles then
        extravasate into the tumour interstitium at ``PS · C_ops`` as naive ones do
        from the tumour capillaries (an opsonin corona does not stop extravasation;
        its size is already in ``d_h``).  Without it opsonised particles do not reach
        the tumour.

    Notes
    -----
    Needs ``circulation.whole_body`` and ``corona.blood_corona`` listed before it (the
    corona provides ``opsonin_coverage_eq``, ``alpha_opsonin`` and the PEG shielding);
    list it after ``epr.*`` to let particles in tumour capillaries be opsonised too,
    and after ``dissolution.*`` so that the particles phagocytes hold in their
    lysosomes (``{organ}_lysosome``) count toward their filling — by remaining mass,
    so that dissolving cores free the phagocytes as they dissolve (counting the
    initial-size mass ``{organ}_lysosome_m0`` instead kept fully dissolved cores
    "inside" for the ~700 h of lysosomal release and stalled the solver for 1 nm ZnO).
    Opsonised particles form one well-mixed circulating pool ``blood_opsonised`` (counted
    in ``blood``) in the circulating volume (plasma plus every capillary bed); they are
    not extravasated nor filtered.  Adds the observables ``recognition_rate`` (1/h),
    ``opsonised`` (%ID) and ``mps_free_{organ}`` (the free fraction of each organ's
    phagocytic uptake).
    """
    missing = [o for o in tuple(organs) + tuple(capture_organs) if o not in ctx.phagocyte_organs]
    if missing:
        raise SpecError(f"mps.opsonisation_uptake: organ(s) {', '.join(sorted(set(missing)))} have no phagocytes "
                        f"(phagocyte organs of circulation.whole_body: {', '.join(ctx.phagocyte_organs)})")
    params = _particle_parameters(ctx) + [
        param("k_rec_max", K_REC_MAX_PER_H, "1/h",
              f"{_MOGHIMI}: opsonised uncoated particles leave mouse blood within minutes; 30 /h (t½ 1.4 min) assumed",
              (0.01, 1000.0), "maximal recognition rate of a fully opsonised particle"),
        param("n_recognition", N_RECOGNITION, "dimensionless",
              f"assumption: several opsonin–receptor contacts are needed before engulfment ({_OWENS}; {_WALKEY})",
              (1.0, 6.0), "Hill coefficient of recognition in the opsonin signal"),
        param("signal_50", SIGNAL_50, "dimensionless",
              f"calibrated quantity: {_CHO} — 100 nm PEG-5k Au blood at 30 min is 0.55 % of the 13 nm particle's "
              "(45 vs 8141 ng/g) and 13 nm blood halves from its 30-min value in ~29 h (datasets cho2010_peg_au_100nm, "
              "_13nm); both within 2×", (1e-6, 100.0),
              "opsonin signal of half-maximal recognition"),
        param("d_ref_opsonin", D_REF_NM, "nm", "reference core diameter of the opsonin signal (definition)", (1.0, 1e4),
              "core diameter at which σ = α·S_eq"),
        param("f_naive", F_NAIVE, "dimensionless",
              f"assumption: an opsonin-free (stealth) particle is taken up at 5 % of the Lin/Chou plateau rate "
              f"({_CHOU2023}); not identifiable from {_CHO} beside signal_50 (0.03–0.1 keep the 13 nm blood "
              "half-time within 2× of 29 h)", (0.0, 10.0),
              "uptake of naive (opsonin-free) particles as a fraction of the Lin/Chou Kmax"),
        param("N50_RES", N50_PER_G, "1/g",
              f"calibrated quantity: {_OUYANG} — threshold ~1e12 particles per mouse; a 1.1 g liver is half full at ~1e12",
              (1e6, 1e18), "particles per gram of organ at which phagocytic uptake is halved"),
        param("n_saturation", N_SATURATION, "dimensionless",
              f"assumption: uptake unchanged an order of magnitude below the threshold, < 1e-3 of maximal an order "
              f"above it ({_OUYANG}: little change at 1e10–1e11 particles, overwhelmed at 1e13); ≥ 2 for a threshold (and for a "
              f"finite Jacobian of ((N/N50)²)^(n/2) at N = 0)", (2.0, 8.0),
              "Hill coefficient of phagocyte saturation"),
    ]
    signal = S("alpha_opsonin") * S("opsonin_coverage_eq") * (S("d_core") / S("d_ref_opsonin")) ** 2
    k_rec = recognition_rate_expr(S("opsonin_signal"), S("k_rec_max"), S("signal_50"), S("n_recognition"))
    capillaries = [f"{o}_capillary" for o in ctx.organs]
    capillary_volumes = [f"V_{o}_capillary" for o in ctx.organs]
    if "epr" in ctx.provided:
        capillaries.append("tumour_capillary")
        capillary_volumes.append("V_tumour_capillary")
    assignments = [
        Assignment("opsonin_signal", signal, "dimensionless", "σ = α·S_eq·(d_core/d_ref)²"),
        Assignment("k_recognition", k_rec, "1/h", "recognition (opsonisation) rate of a naive particle"),
        Assignment("V_circulating", S("V_plasma") + sp.Add(*[S(v) for v in capillary_volumes]), "L",
                   "plasma plus capillary blood: the volume of the opsonised pool"),
    ]
    states = (State("blood_opsonised", organ="blood", volume="V_circulating",
                    description="circulating opsonised particles (recognisable by phagocytes)"),)
    fluxes = [Flux(f"opsonisation_{pool}", pool, "blood_opsonised", S("k_recognition") * S(pool),
                   f"naive particles in {pool} acquire a recognisable opsonin corona")
              for pool in ["venous_blood", "arterial_blood"] + capillaries]
    c_ops = S("blood_opsonised") / S("V_circulating")
    flows = {"liver": S("Q_liver") + (S("Q_spleen") if "spleen" in ctx.organs else 0), "spleen": S("Q_spleen")}
    observables = [
        Observable("recognition_rate", S("k_recognition"), "1/h", "rate at which naive particles become opsonised"),
        Observable("opsonised", 100 * S("blood_opsonised") / S("dose"), "percent_ID", "circulating opsonised particles"),
    ]
    free = {}
    for organ in dict.fromkeys(tuple(organs) + tuple(capture_organs)):
        held = S(f"{organ}_phagocytes")
        if "dissolution" in ctx.provided:  # particles matured into lysosomes are still inside the phagocytes
            held += S(f"{organ}_lysosome")
        number = held / S("m_particle")
        n50 = S("N50_RES") * _G_PER_KG * S("rho_tissue") * S(f"V_{organ}")
        assignments.append(Assignment(f"mps_free_{organ}", free_capacity_expr(number, n50, S("n_saturation")), "dimensionless",
                                      f"free fraction of {organ} phagocytic uptake"))
        free[organ] = S(f"mps_free_{organ}")
        observables.append(Observable(f"mps_free_{organ}", free[organ], "dimensionless", f"free fraction of {organ} phagocytic uptake"))
    for organ in organs:
        kmax, krel = NAIVE_DEFAULTS.get(organ, _NAIVE_REST)
        params += [
            param(f"Kmax_{organ}", kmax, "1/h", _CHOU2023 + " (plateau Kmax of the Hill form)", (0.0, 100.0),
                  f"phagocytic uptake rate constant in {organ} (× f_naive for naive particles)"),
            param(f"Krelease_{organ}", krel, "1/h", _CHOU2023, (0.0, 10.0), f"release rate from {organ} phagocytes"),
        ]
        source = f"{organ}_capillary" if organ == "liver" else f"{organ}_tissue"
        fluxes += [
            Flux(f"phagocytosis_{organ}", source, f"{organ}_phagocytes",
                 S("f_naive") * S(f"Kmax_{organ}") * free[organ] * S(source), f"uptake of naive particles from {source}"),
            Flux(f"phagocyte_release_{organ}", f"{organ}_phagocytes", source, S(f"Krelease_{organ}") * S(f"{organ}_phagocytes"),
                 "first-order release (as naive particles)"),
        ]
    for organ in capture_organs:
        params.append(param(f"k_cap_ops_{organ}", CAPTURE_DEFAULTS.get(organ, 0.5), "1/h",
                            f"calibrated quantity, {_CHO}, 100 nm PEG-5k Au (dataset cho2010_peg_au_100nm): liver — gone "
                            "from blood by 30 min needs near flow-limited hepatic extraction; spleen — spleen/liver "
                            "concentration 1.02/1.22/1.94 at 0.5/24/168 h (2 /h gives 1.31/1.33/1.41)", (0.0, 1e4),
                            f"intrinsic capture of opsonised particles by {organ} phagocytes, per circulating volume"))
        Q = flows.get(organ, S(f"Q_{organ}"))
        cl_int = S(f"k_cap_ops_{organ}") * S("V_circulating")
        fluxes.append(Flux(f"opsonised_capture_{organ}", "blood_opsonised", f"{organ}_phagocytes",
                           Q * cl_int / (Q + cl_int) * free[organ] * c_ops,
                           f"well-stirred capture of opsonised particles by {organ} phagocytes"))
    if tumour_exchange:
        if "epr" not in ctx.provided:
            raise SpecError(f"mps.opsonisation_uptake option tumour_exchange = {tumour_exchange!r} needs an EPR tumour "
                            "(list epr.* before it) or no tumour_exchange")
        fluxes.append(Flux("opsonised_extravasation_tumour", "blood_opsonised", "tumour_tissue", S(tumour_exchange) * c_ops,
                           "opsonised particles extravasate into the tumour interstitium (PS · C_ops)"))
    return Part("mps.opsonisation_uptake", states, tuple(params), tuple(fluxes), assignments=tuple(assignments),
                observables=tuple(observables),
                notes=("phagocytic uptake: recognition follows the particle's opsonin signal (no time dependence); "
                       "opsonised particles are one well-mixed circulating pool captured by liver and spleen",
                       "phagocytic uptake saturates with the number of particles held per gram of organ (Ouyang 2020)"))
