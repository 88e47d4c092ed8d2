"""Clearance: phagocytic (MPS) uptake with slow release, urinary and biliary excretion.

Phagocytic uptake, time-dependent Hill form (Lin 2016; Chou 2023):

    K_up(t) = Kmax · (t/K50)^n / (1 + (t/K50)^n),
    J_up = K_up(t) · A_source,     J_release = K_release · A_phagocytes,

from capillary blood in the liver (Kupffer cells line the sinusoids) and from tissue
elsewhere.  Excretion:

    J_urine = K_urine · C_kidney,capillary,   K_urine = KurineC · BW^0.75
    J_bile  = K_bile · C_liver,tissue,        K_bile  = KbileC · BW^0.75

Capacity-limited phagocytic uptake (Chou et al. 2022, rat):

    K_up = Kmax · max(0, 1 − A_phagocytes / (A_cap · m_organ)),   m_organ = ρ · V_organ,

so uptake slows as the phagocytes fill and stops at capacity (a non-negative overflow
flux returns any numerical overshoot, see the function).  Size-dependent
glomerular filtration (Choi et al. 2007):

    J_renal = f_renal · GFR · θ(d_h) · C_kidney,capillary,   GFR = GFRC · BW^0.75,
    θ(d_h) = 1 / (1 + exp((d_h − d₅₀)/w)),   d₅₀ = 5.5 nm,  w = 0.7 nm,

where f_renal = 0.035 (a calibrated quantity: benchmarks/trends.py Choi 2007 rows) is
the fraction of the glomerular filtration rate at which a particle well below the cut-off
is cleared: with f_renal = 1 a 4.36 nm dot left the body within the hour (98.6 %ID in urine
at 1 h, 99.6 %ID by 4 h), while Choi 2007 report a whole-body half-life of ~4 h below
5.5 nm.

Sources: Lin et al., Nanotoxicology 2016;10:162 (doi:10.3109/17435390.2015.1027314);
Chou et al., J Control Release 2023;361:53 (doi:10.1016/j.jconrel.2023.07.040), mouse
defaults (liver, spleen, kidney, lung as in SCIENCE.md §1; muscle and rest of body
from the published model code of Chou 2023); Chou et al., Part Fibre Toxicol
2022;19:47 (doi:10.1186/s12989-022-00489-4), rat capacity-limited uptake; Choi HS et
al., Renal clearance of quantum dots, Nat Biotechnol 2007;25:1165 (doi:10.1038/nbt1340).
"""
from __future__ import annotations

import math

import numpy as np
import sympy as sp

from ..errors import SpecError
from ..parts import Flux, Part, State, TIME, symbol
from .base import BuildContext, declare, param

__all__ = [
    "hill_phagocytic_uptake",
    "urinary_excretion",
    "biliary_excretion",
    "hill",
    "capacity_limited_phagocytic_uptake",
    "renal_filtration",
    "renal_sieving",
    "renal_sieving_expr",
    "particle_diameter_parameter",
]

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


@declare(provides=("phagocytic_uptake",),
         groups={"phagocytic uptake": ("Kmax", "K50", "n"), "phagocyte release": ("Krelease",)})  # nanopk.compare tests each group as one
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
    return Part("clearance.hill_phagocytic_uptake", (), tuple(params), tuple(fluxes))


@declare(groups={"excretion": ("KurineC",)})  # nanopk.compare tests each group as one
def urinary_excretion(ctx: BuildContext, clearance_constant: float = 3e-6) -> Part:
    """Urine from kidney capillary blood, ``J = KurineC · BW^0.75 · C_kidney,cap``.

    Default KurineC = 3e-6 L/h/kg^0.75 (Chou 2023 mouse).  For size-dependent
    glomerular filtration see the renal sieving variant.
    """
    params = (param("KurineC", clearance_constant, "L/h/kg**0.75", _CHOU2023, (0.0, 1.0), "urinary clearance constant"),)
    rate = S("KurineC") * S("BW") ** sp.Rational(3, 4) * S("kidney_capillary") / S("V_kidney_capillary")
    states = (State("urine", "sink", organ="urine", description="cumulative NP mass in urine"),)
    return Part("clearance.urinary_excretion", states, params, (Flux("urinary_excretion", "kidney_capillary", "urine", rate),))


@declare(groups={"excretion": ("KbileC",)})  # nanopk.compare tests each group as one
def biliary_excretion(ctx: BuildContext, clearance_constant: float = 3e-5) -> Part:
    """Bile to faeces from liver tissue, ``J = KbileC · BW^0.75 · C_liver,tissue``.

    Default KbileC = 3e-5 L/h/kg^0.75 (Chou 2023 mouse).
    """
    params = (param("KbileC", clearance_constant, "L/h/kg**0.75", _CHOU2023, (0.0, 1.0), "biliary clearance constant"),)
    rate = S("KbileC") * S("BW") ** sp.Rational(3, 4) * S("liver_tissue") / S("V_liver_tissue")
    states = (State("faeces", "sink", organ="faeces", description="cumulative NP mass in faeces (via bile)"),)
    return Part("clearance.biliary_excretion", states, params, (Flux("biliary_excretion", "liver_tissue", "faeces", rate),))


# -- capacity-limited phagocytic uptake (Chou et al. 2022, rat) -------------------------
_CHOU2022 = "Chou et al., Part Fibre Toxicol 2022;19:47 (doi:10.1186/s12989-022-00489-4), rat"
_CHOU2022_CODE = _CHOU2022 + "; value from the published model code (UFPBPK/Nano-iPBPK MrgCode.R)"

#: Capacity-limited defaults (Kmax 1/h, release 1/h, capacity µg/g organ) and sources.
#: Lung: the interstitial-lung phagocytes of Chou 2022 (KinRESmax, KinRESrelease,
#: AinREScap); rest of body (and any other organ): KRRESmax, KRRESrelease, ARREScap.
CAPACITY_DEFAULTS = {
    "liver": (20.0, 10.0, 100.0, _CHOU2022),
    "spleen": (5.0, 1.0, 100.0, _CHOU2022),
    "kidney": (5.0, 1.0, 100.0, _CHOU2022),
    "lung": (20.0, 7.0, 100.0, _CHOU2022_CODE),
    "rest": (0.1, 0.2, 100.0, _CHOU2022_CODE),
}

#: µg/g · kg/L · L → µg: the organ mass in g is 1000 · ρ (kg/L) · V (L).  A literal so
#: that building a model does not import pint; tests/test_units.py checks it with pint.
_UG_PER_G_TIMES_KG = 1000.0


@declare(provides=("phagocytic_uptake",),
         groups={"phagocytic uptake": ("Kmax", "K50", "n"), "phagocyte release": ("Krelease",)})  # nanopk.compare tests each group as one
def capacity_limited_phagocytic_uptake(ctx: BuildContext, organs=("liver", "spleen", "kidney", "lung"),
                                       opsonin_factor: str | None = None) -> Part:
    """Phagocytic uptake that saturates at a capacity per gram of organ, with release.

        K_up = Kmax · max(0, 1 − A_phag / (A_cap · ρ · V_organ)) · f_opsonin
        J_up = K_up · A_source,      J_release = K_release · A_phag,
        J_overflow = Kmax · f_opsonin · max(0, A_phag / (A_cap · ρ · V_organ) − 1) · A_source

    Parameters
    ----------
    organs : sequence of str
        Organs with phagocytic cells (each needs ``{organ}_phagocytes`` from the
        circulation).  Liver uptake is from capillary blood, others from tissue.
    opsonin_factor : str, optional
        Name of an assignment multiplying every uptake rate (set by the protein corona).

    Notes
    -----
    The capacity is per gram of the whole organ (``A_cap · ρ · V_organ``), as in the
    published model code (``ALREScap*VL``).  The published rate ``Kmax·(1 − A/cap)``
    would turn negative past capacity, i.e. uptake pumping particles out; here the
    uptake factor is held at zero instead (``Piecewise``), so every flux is
    non-negative.  Starting empty, the exact solution approaches capacity from below
    and never reaches past it, so ``J_overflow`` is identically zero; it exists for
    the solver, whose steps can overshoot the kink at capacity by a local error:
    without it an overshoot would stay (the clamped uptake is flat above capacity) and
    accumulate step by step at high doses (0.5 % past capacity after 48 h at
    dose/capacity ≈ 10⁴), with it capacity is an attracting state from both sides.
    The net uptake minus overflow equals the published rate law exactly.  With a
    capacity far above the dose the uptake is first order, ``Kmax · A_source``.
    """
    params, fluxes = [], []
    factor = S(opsonin_factor) if opsonin_factor else 1
    for organ in organs:
        kmax, krel, cap, src = CAPACITY_DEFAULTS.get(organ, CAPACITY_DEFAULTS["rest"])
        params += [
            param(f"Kmax_{organ}", kmax, "1/h", src, (0.0, 1000.0), f"maximal phagocytic uptake rate in {organ}"),
            param(f"Krelease_{organ}", krel, "1/h", src, (0.0, 100.0), f"release rate from {organ} phagocytes"),
            param(f"Acap_{organ}", cap, "ug/g", src, (1e-3, 1e7), f"phagocytic uptake capacity per gram of {organ}"),
        ]
        capacity = S(f"Acap_{organ}") * _UG_PER_G_TIMES_KG * S("rho_tissue") * S(f"V_{organ}")
        filled = S(f"{organ}_phagocytes") / capacity
        free = sp.Piecewise((1 - filled, filled < 1), (sp.Integer(0), True))
        excess = sp.Piecewise((filled - 1, filled > 1), (sp.Integer(0), True))
        source = f"{organ}_capillary" if organ == "liver" else f"{organ}_tissue"
        k_max = S(f"Kmax_{organ}") * factor
        fluxes += [
            Flux(f"phagocytosis_{organ}", source, f"{organ}_phagocytes", k_max * free * S(source), f"capacity-limited uptake from {source}"),
            Flux(f"phagocyte_release_{organ}", f"{organ}_phagocytes", source, S(f"Krelease_{organ}") * S(f"{organ}_phagocytes"),
                 "first-order release"),
            Flux(f"phagocyte_overflow_{organ}", f"{organ}_phagocytes", source, k_max * excess * S(source),
                 "returns a numerical overshoot past capacity (zero in exact arithmetic)"),
        ]
    return Part("clearance.capacity_limited_phagocytic_uptake", (), tuple(params), tuple(fluxes),
                notes=("phagocytic uptake: capacity-limited (Chou 2022); uptake held at 0 past capacity, an overflow flux returns numerical overshoot",))


# -- size-dependent glomerular filtration (Choi et al. 2007) ---------------------------
_CHOI2007 = "Choi et al., Nat Biotechnol 2007;25:1165 (doi:10.1038/nbt1340)"
#: Mouse GFR 0.278 mL/min for a 28 g mouse (SCIENCE.md §1), as an allometric constant:
#: 0.278 mL/min · 0.06 (L/h)/(mL/min) / 0.028^0.75 kg^0.75.
GFR_MOUSE_ML_MIN, GFR_MOUSE_BW_KG = 0.278, 0.028
#: 1 mL/min = 0.06 L/h (checked with pint in tests/test_units.py).
ML_PER_MIN_TO_L_PER_H = 0.06
GFRC_DEFAULT = GFR_MOUSE_ML_MIN * ML_PER_MIN_TO_L_PER_H / GFR_MOUSE_BW_KG**0.75
#: Sieving midpoint (nm): quantum dots with a final hydrodynamic diameter < 5.5 nm are
#: cleared in urine (Choi 2007).
SIEVING_MIDPOINT_NM = 5.5
#: Fraction of GFR reached by particles below the cut-off (dimensionless).  A calibrated
#: quantity: benchmarks/trends.py Choi 2007 rows.  Choi et al. 2007 give, for dots with a
#: final hydrodynamic diameter < 5.5 nm, "rapid and efficient urinary excretion" with a
#: whole-body half-life of ~4 h, i.e. about half the dose in urine at 4 h; in
#: mouse_tumour_full (defaults, zwitterionic 4.36 nm CdSe dot, no corona) f_renal = 1 put
#: 99.6 %ID in urine by 4 h, f_renal = 0.035 puts ~50 %ID there.  Why below 1: the
#: logistic θ stands for Choi's size threshold, not the sieving coefficient a glomerulus
#: shows a rigid particle (charge, shape and the glycocalyx lower it), and the model has
#: no separate tubular/renal retention.
RENAL_GFR_FRACTION = 0.035
#: Logistic width (nm).  Choi's smallest dot (4.36 nm) was renally cleared and the
#: 8.65 nm dot was not; w = 0.7 nm gives θ = 0.84 at 4.36 nm and 0.011 at 8.65 nm, and
#: meets θ(3 nm) > 0.9 and θ(10 nm) < 0.05 (which need w < 1.1 nm).
SIEVING_WIDTH_NM = 0.7


def renal_sieving(d_h_nm, midpoint_nm: float = SIEVING_MIDPOINT_NM, width_nm: float = SIEVING_WIDTH_NM):
    """Glomerular sieving coefficient ``θ(d_h) = 1/(1 + exp((d_h − d₅₀)/w))`` (NumPy).

    Parameters
    ----------
    d_h_nm : float or array_like
        Hydrodynamic diameter (nm), ≥ 0.
    midpoint_nm, width_nm : float
        ``d₅₀`` (θ = 0.5; default 5.5 nm, Choi et al. 2007) and the logistic width ``w``
        (default 0.7 nm, see :data:`SIEVING_WIDTH_NM`).

    Returns
    -------
    numpy.ndarray or float
        θ in [0, 1], same shape as ``d_h_nm``.

    Raises
    ------
    ValueError
        If a diameter is negative or not finite, or ``width_nm`` is not positive.
    """
    d = np.asarray(d_h_nm, dtype=float)
    if not np.all(np.isfinite(d) & (d >= 0)):
        raise ValueError(f"`d_h_nm` must be finite and ≥ 0 (got {d_h_nm!r})")
    if not width_nm > 0:
        raise ValueError(f"`width_nm` must be positive (got {width_nm!r})")
    # (1 − tanh(x/2))/2 ≡ 1/(1 + eˣ) without overflow for large x.
    theta = 0.5 * (1.0 - np.tanh((d - midpoint_nm) / (2.0 * width_nm)))
    return theta if theta.ndim else float(theta)


def renal_sieving_expr(d_h, midpoint, width) -> sp.Expr:
    """:func:`renal_sieving` as a SymPy expression (``tanh`` form: no overflow in C or NumPy)."""
    return (1 - sp.tanh((d_h - midpoint) / (2 * width))) / 2


def renal_filtration(ctx: BuildContext, diameter_assignment: str | None = None) -> Part:
    """Size-dependent glomerular filtration into urine, used instead of :func:`urinary_excretion`.

        J = f_renal · GFRC · BW^0.75 · θ(d_h) · C_kidney,capillary

    Parameters
    ----------
    diameter_assignment : str, optional
        Name of an assignment (nm) giving the hydrodynamic diameter in blood — e.g.
        ``"d_h"`` from a protein-corona mechanism, so that a corona (which adds > 15 nm,
        Choi 2007) switches renal clearance off.  Without it the diameter is the
        parameter ``d_h_particle`` from the particle (shared with EPR).

    Notes
    -----
    Declares the ``urine`` sink, like :func:`urinary_excretion`; a model that uses both
    fails validation with a duplicate-name message.  GFRC = 0.244 L/h/kg^0.75 is the
    mouse GFR of 0.278 mL/min at 28 g scaled with BW^0.75 (0.22 mL/min at 20 g).
    ``f_renal`` (default :data:`RENAL_GFR_FRACTION`, 0.035) is the calibrated fraction of
    GFR reached below the cut-off: with it a zwitterionic 4.36 nm dot puts ~50 %ID in
    urine by 4 h in mouse_tumour_full (Choi 2007: whole-body half-life ~4 h below
    5.5 nm) and an 8.65 nm dot ~1 %ID.
    """
    params = [
        param("GFRC", GFRC_DEFAULT, "L/h/kg**0.75",
              f"mouse GFR {GFR_MOUSE_ML_MIN} mL/min for a {GFR_MOUSE_BW_KG * 1000:g} g mouse (SCIENCE.md §1), scaled with BW^0.75",
              (0.0, 10.0), "glomerular filtration rate constant"),
        param("d50_renal", SIEVING_MIDPOINT_NM, "nm", _CHOI2007, (1.0, 20.0), "hydrodynamic diameter with sieving coefficient 0.5"),
        param("w_renal", SIEVING_WIDTH_NM, "nm",
              f"{_CHOI2007}: 4.36 nm dots renally cleared, 8.65 nm not; w chosen so θ(4.36) = 0.84, θ(8.65) = 0.011",
              (0.05, 5.0), "width of the sieving transition"),
        param("f_renal", RENAL_GFR_FRACTION, "dimensionless",
              f"calibrated quantity: benchmarks/trends.py Choi 2007 rows ({_CHOI2007}: dots < 5.5 nm leave the body "
              "in urine with a whole-body half-life of ~4 h, i.e. ~50 %ID in urine at 4 h for the 4.36 nm dot)",
              (1e-4, 1.0), "fraction of GFR at which a particle below the sieving cut-off is cleared"),
    ]
    if diameter_assignment:
        diameter = S(diameter_assignment)
    else:
        diameter = S("d_h_particle")
        params += particle_diameter_parameter(ctx)
    theta = renal_sieving_expr(diameter, S("d50_renal"), S("w_renal"))
    rate = S("f_renal") * S("GFRC") * S("BW") ** sp.Rational(3, 4) * theta * S("kidney_capillary") / S("V_kidney_capillary")
    states = (State("urine", "sink", organ="urine", description="cumulative NP mass in urine"),)
    return Part("clearance.renal_filtration", states, tuple(params),
                (Flux("renal_filtration", "kidney_capillary", "urine", rate, "f_renal · GFR · θ(d_h) · C_kidney,cap"),),
                notes=("urine: glomerular filtration with a logistic sieving coefficient (Choi 2007) and a calibrated "
                       "fraction f_renal of GFR",))


#: Hydrodynamic diameter used when no particle is given: median HD (107.75 nm) of the
#: 342 Nano-Tumor datasets reporting it (UFPBPK/Nano-AI-PBPK-G1 Model_dataset.xlsx).
DEFAULT_DIAMETER_NM = 107.75


def particle_diameter_parameter(ctx: BuildContext) -> list:
    """The shared ``d_h_particle`` parameter (nm), declared once per model.

    EPR and renal filtration both read the particle's hydrodynamic diameter; the first
    mechanism that needs it declares it and records that in ``ctx.provided``, the
    others refer to it.  Its value is ``ctx.particle.hydrodynamic_diameter``, or the
    Nano-Tumor median (107.75 nm) when the model has no particle.
    """
    if "parameter:d_h_particle" in ctx.provided:
        return []
    if ctx.particle is not None:
        value = float(ctx.particle.hydrodynamic_diameter)
        src = f"hydrodynamic diameter of the model's particle ({ctx.particle.to_dict()})"
    else:
        value = DEFAULT_DIAMETER_NM
        src = ("median hydrodynamic diameter of the 342 Nano-Tumor datasets that report it "
               "(UFPBPK/Nano-AI-PBPK-G1 Model_dataset.xlsx, column HD; Chou et al. 2023)")
    if not (math.isfinite(value) and value > 0):
        raise SpecError(f"the particle's hydrodynamic diameter must be a positive number of nm (got {value!r})")
    ctx.provided.add("parameter:d_h_particle")
    return [param("d_h_particle", value, "nm", src, (0.5, 10000.0), "hydrodynamic diameter of the particle in buffer")]
