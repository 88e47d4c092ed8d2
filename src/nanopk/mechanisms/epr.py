"""EPR: extravasation of nanoparticles into a solid tumour and their retention there.

The tumour is one more organ on the whole-body circulation, split into capillary blood,
interstitium (tissue) and tumour cells::

    arterial ─Q_T·C_a─► tumour_capillary ─Q_T·C_cap─► venous
                             │  ▲
           J_ex = PS·C_cap   ▼  │   J_re = PS·C_tis / P_T
                          tumour_tissue ──K_lymph·A_tis──► venous   (weak lymphatics)
                             │  ▲
           K_up(t)·A_tis     ▼  │   K_release·A_cells
                          tumour_cells

    K_up(t) = Kmax · (t/K50)^n / (1 + (t/K50)^n)          (lin_tumour: Hill in time, as for the RES)
    K_up    = Kmax                                        (two_pore_tumour: first order, no clock)

Two variants differ in the permeability-surface area product ``PS`` (L/h) and in the
default form of tumour-cell uptake:

- :func:`lin_tumour` — the Lin-lab tumour sub-model of Chou et al. 2023 exactly,
  ``PS = PATC · Q_T``, with parameters named for the Nano-Tumor meta-analysis
  (``PATC_tumour``, ``P_tumour``, ``Kmax_tumour``, ``K50_tumour``, ``n_tumour``,
  ``Krelease_tumour``) and defaults at their medians over 378 datasets;
- :func:`two_pore_tumour` — ``PS = P(r) · (S/V) · m_T`` with ``P(r)`` from two-pore
  theory and the particle's hydrodynamic radius ``r = d_h/2``:

      λ = r / R_pore,   Φ = (1 − λ)²,   D = D₀ / r   (Stokes–Einstein, D₀ = 3e-6 cm²·nm/s)
      P = Σ_{small, large} D · H(λ) · Φ · (A/L)_pore

  with small pores R_s = 4.5 nm, (A/L)_s = 17.6 cm⁻¹ and large pores R_L = 500 nm,
  (A/L)_L = 0.65 cm⁻¹, and the centreline diffusive hindrance

      H(λ) = (1 − 2.105λ + 2.0865λ³ − 1.7068λ⁵ + 0.72603λ⁶) / (1 − 0.75857λ⁵),   λ < 0.6.

  The source gives H only for λ < 0.6 and sets it to zero for λ > 0.9; between them
  nanopk uses the cubic Hermite interpolant that matches H and dH/dλ at λ = 0.6 and
  reaches 0 with zero slope at λ = 0.9, so H is continuously differentiable
  everywhere (a smooth right-hand side and Jacobian for the solver), positive and
  decreasing on (0.6, 0.9).  It is written as a SymPy ``Piecewise`` so that it
  compiles to C and exports to SBML.

The tumour draws its blood flow from the arterial pool on top of the organs of
:func:`nanopk.mechanisms.circulation.whole_body` (as that function documents); with the
default 2 % of cardiac output this shunt lowers tumour %ID by ~1.5 % against taking
the flow from the rest of the body (median 0.005–0.007 log10 over the Nano-Tumor
datasets with Chou 2023's fitted parameters).  The tumour mass is likewise added to, not taken from, the rest of the body.  (The
published Chou 2023 code takes both from the rest of the body; see :func:`lin_tumour`,
"Reproducing Chou et al. 2023".)

Sources
-------
1. Chou WC et al. Artificial intelligence-assisted PBPK modeling of nanoparticle
   tumor delivery. J Control Release 2023;361:53 (doi:10.1016/j.jconrel.2023.07.040);
   published model code UFPBPK/Nano-AI-PBPK-G1 ``Main_Code.R`` (tumour equations
   ``RTb``, ``RTt``, ``RTRES``; ``PAT = PATC·QT``) and ``Model_dataset.xlsx`` (fitted
   tumour parameters of 378 Nano-Tumor datasets; medians quoted in SCIENCE.md §2).
2. Schmidt MM, Wittrup KD. A modeling analysis of the effects of molecular size and
   binding affinity on tumor targeting. Mol Cancer Ther 2009;8:2861
   (doi:10.1158/1535-7163.MCT-09-0195): two-pore tumour capillary model.
3. Dogra P et al. A mathematical model to predict nanomedicine pharmacokinetics and
   tumor delivery. Comput Struct Biotechnol J 2020;18
   (doi:10.1016/j.csbj.2020.02.014), Table 2: tumour vascular surface area 40 mm²/mm³
   (literature 34–45).
4. Shah DK, Betts AM. Towards a platform PBPK model to characterize the plasma and
   tissue disposition of monoclonal antibodies. J Pharmacokinet Pharmacodyn
   2012;39:67 (lymph flow = 0.2 % of tissue plasma flow); Padera TP et al. Science
   2002;296:1883 (no functional lymphatics inside tumours); Stapleton S et al. PLoS ONE
   2013;8:e81157 (EPR model with impaired tumour lymphatic drainage).
"""
from __future__ import annotations

import numpy as np
import sympy as sp

from ..errors import SpecError
from ..parts import Assignment, Flux, Part, State, symbol
from .base import BuildContext, declare, param
from .clearance import hill, particle_diameter_parameter

__all__ = [
    "lin_tumour",
    "two_pore_tumour",
    "two_pore_permeability",
    "diffusive_hindrance",
    "hindrance_expr",
    "two_pore_permeability_expr",
]

S = symbol

_CHOU2023 = "Chou et al., J Control Release 2023;361:53 (doi:10.1016/j.jconrel.2023.07.040)"
_NANO_TUMOR = (
    f"median over 378 Nano-Tumor datasets of the fitted Chou 2023 tumour parameters "
    f"(UFPBPK/Nano-AI-PBPK-G1 Model_dataset.xlsx; SCIENCE.md §2); {_CHOU2023}"
)
_SW2009 = "Schmidt & Wittrup, Mol Cancer Ther 2009;8:2861 (doi:10.1158/1535-7163.MCT-09-0195)"
_DOGRA2020 = (
    "Dogra et al., Comput Struct Biotechnol J 2020;18 (doi:10.1016/j.csbj.2020.02.014), Table 2: "
    "tumour vascular surface area 40 mm²/mm³ (literature 34–45) = 400 cm²/cm³ ≈ 400 cm²/g"
)
_LYMPH = (
    "lymph flow = 0.2 % of tissue plasma flow (Shah & Betts, J Pharmacokinet Pharmacodyn 2012;39:67) "
    "× plasma fraction of blood 0.55; an upper bound for tumours, whose interior has no functional "
    "lymphatics (Padera et al., Science 2002;296:1883; Stapleton et al., PLoS ONE 2013;8:e81157)"
)

# -- two-pore theory (Schmidt & Wittrup 2009) ------------------------------------------
#: Small and large pore radii (nm) and their area/thickness ratios (1/cm).
SMALL_PORE_NM, LARGE_PORE_NM = 4.5, 500.0
SMALL_PORE_AL, LARGE_PORE_AL = 17.6, 0.65
#: Stokes–Einstein constant: D (cm²/s) = D0 / r (nm).
D0_CM2_NM_S = 3e-6
#: λ below which the published hindrance polynomial holds, and above which H = 0.
LAMBDA_POLY, LAMBDA_ZERO = 0.6, 0.9
#: Tumour vascular surface area per gram of tumour (cm²/g), Dogra et al. 2020.
SURFACE_AREA_CM2_G = 400.0
#: Fraction of tumour blood flow leaving as lymph: 0.2 % of plasma flow × 0.55 plasma/blood.
LYMPH_FRACTION = 0.002 * 0.55

#: cm/s · cm²/g · kg  →  L/h (3600 s/h · 1000 g/kg · 1e-3 L/cm³ = 3600).  A literal, so
#: that building a model does not import pint; tests/test_units.py checks it with pint
#: (and the model's unit check would fail were it wrong).
_PS_TO_L_PER_H = 3600.0


def _poly(lam):
    return (1 - 2.105 * lam + 2.0865 * lam**3 - 1.7068 * lam**5 + 0.72603 * lam**6) / (1 - 0.75857 * lam**5)


def _poly_slope(lam: float) -> float:
    """dH/dλ of :func:`_poly` by the quotient rule (SymPy's diff here cost 0.2 s per import)."""
    num = 1 - 2.105 * lam + 2.0865 * lam**3 - 1.7068 * lam**5 + 0.72603 * lam**6
    den = 1 - 0.75857 * lam**5
    dnum = -2.105 + 3 * 2.0865 * lam**2 - 5 * 1.7068 * lam**4 + 6 * 0.72603 * lam**5
    dden = -5 * 0.75857 * lam**4
    return (dnum * den - num * dden) / den**2


# Value and slope of the published polynomial at λ = 0.6, for the Hermite bridge.
_H06 = float(_poly(LAMBDA_POLY))
_DH06 = _poly_slope(LAMBDA_POLY)
_WIDTH = LAMBDA_ZERO - LAMBDA_POLY


def _hermite(x, h0=_H06, dh0=_DH06, width=_WIDTH):
    """Cubic on x ∈ [0, 1] with value h0 and slope dh0 (per unit λ) at 0, value and slope 0 at 1."""
    return (2 * x**3 - 3 * x**2 + 1) * h0 + (x**3 - 2 * x**2 + x) * width * dh0


def hindrance_expr(lam) -> sp.Expr:
    """Diffusive hindrance ``H(λ)`` as a SymPy ``Piecewise`` (C¹; zero for λ ≥ 0.9)."""
    lam = sp.sympify(lam)
    x = (lam - LAMBDA_POLY) / _WIDTH
    return sp.Piecewise(
        (_poly(lam), lam < LAMBDA_POLY),
        (_hermite(x), lam < LAMBDA_ZERO),
        (sp.Integer(0), True),
    )


def diffusive_hindrance(lam):
    """Diffusive hindrance ``H(λ)`` of a sphere in a cylindrical pore (NumPy, vectorised).

    The published polynomial for λ < 0.6, a C¹ cubic bridge to zero on [0.6, 0.9] and
    zero beyond (see the module docstring).
    """
    lam = np.asarray(lam, dtype=float)
    poly = _poly(np.minimum(lam, LAMBDA_POLY))  # clipped: the denominator vanishes near λ = 1.06
    bridge = _hermite(np.clip((lam - LAMBDA_POLY) / _WIDTH, 0.0, 1.0))
    return np.where(lam < LAMBDA_POLY, poly, np.where(lam < LAMBDA_ZERO, bridge, 0.0))


def two_pore_permeability(radius_nm, small_pore_nm=SMALL_PORE_NM, large_pore_nm=LARGE_PORE_NM,
                          small_pore_al=SMALL_PORE_AL, large_pore_al=LARGE_PORE_AL, d0=D0_CM2_NM_S):
    """Tumour capillary permeability (cm/s) of a sphere of hydrodynamic radius ``radius_nm``.

    ``P = Σ_pores (d0/r) · H(r/R) · (1 − r/R)² · (A/L)`` over a small- and a large-pore
    population (Schmidt & Wittrup 2009).

    Parameters
    ----------
    radius_nm : float or array_like
        Hydrodynamic radius (nm), > 0.
    small_pore_nm, large_pore_nm : float
        Pore radii (nm); defaults 4.5 and 500.
    small_pore_al, large_pore_al : float
        Pore area/thickness (1/cm); defaults 17.6 and 0.65.
    d0 : float
        Free diffusivity times radius (cm²·nm/s); default 3e-6.

    Returns
    -------
    numpy.ndarray or float
        Permeability in cm/s, same shape as ``radius_nm``.

    Raises
    ------
    ValueError
        If a radius is not a positive finite number.

    Examples
    --------
    >>> float(two_pore_permeability(50.0))  # doctest: +ELLIPSIS
    2.50...e-08
    """
    r = np.asarray(radius_nm, dtype=float)
    if not np.all(np.isfinite(r) & (r > 0)):
        raise ValueError(f"`radius_nm` must be positive and finite (got {radius_nm!r})")
    total = np.zeros_like(r)
    for pore, al in ((small_pore_nm, small_pore_al), (large_pore_nm, large_pore_al)):
        lam = r / pore
        phi = np.clip(1.0 - lam, 0.0, None) ** 2
        total = total + (d0 / r) * diffusive_hindrance(lam) * phi * al
    return total if total.ndim else float(total)


def two_pore_permeability_expr(radius, small_pore, large_pore, small_pore_al, large_pore_al, d0) -> sp.Expr:
    """:func:`two_pore_permeability` as a SymPy expression in the given symbols or numbers."""
    total = sp.Integer(0)
    for pore, al in ((small_pore, small_pore_al), (large_pore, large_pore_al)):
        # λ is kept as one unevaluated node (Max(·, 0) equals r/R for the positive radii
        # the bounds allow): written out, λ³ would expand to r³·R⁻³, and nanopk's C
        # printer currently emits a divisor R³ as "x/(R)*(R)*(R)" (wrong precedence).
        lam = sp.Max(radius / pore, 0)
        total += (d0 / radius) * hindrance_expr(lam) * (1 - lam) ** 2 * al
    return total


# -- the tumour compartments -----------------------------------------------------------
def _refuse_tumour_organ(ctx: BuildContext, variant: str) -> None:
    # The circulation itself is a declared requirement (checked before the variant runs).
    if "tumour" in ctx.organs:
        raise SpecError(
            f"epr.{variant} builds the tumour itself; remove 'tumour' from the organs of circulation.whole_body"
        )


def _tumour_physiology(ctx: BuildContext):
    # The tumour's volume is f_V_tumour · BW: the species table's default, the same one
    # the data converter uses for a dataset without a tumour weight
    # (nanopk.data.Dataset.organ_mass); fits override it per dataset.
    organ = ctx.physiology.organ("tumour")
    src = organ.source
    return [
        param("f_V_tumour", organ.mass_fraction, "dimensionless", src, (1e-4, 0.25), "tumour mass as a fraction of BW"),
        param("f_Q_tumour", organ.blood_flow_fraction, "dimensionless", src, (1e-3, 0.1),
              "tumour blood flow as a fraction of cardiac output"),
        param("f_B_tumour", organ.capillary_blood_fraction, "dimensionless", src, (1e-3, 0.5),
              "capillary blood fraction of the tumour"),
    ]


#: Tumour-cell uptake forms: the Lin-lab Hill in the time since the (first) dose, or
#: first-order in the interstitial amount (the particle's state, no clock).
CELL_UPTAKE = ("hill_time", "first_order")


def _tumour_part(ctx: BuildContext, name: str, exchange, extra_params, extra_assignments, lymphatic_drainage: bool,
                 notes: tuple[str, ...], cell_uptake: str = "hill_time") -> Part:
    """States, flows, exchange through ``exchange`` (L/h), cellular uptake and lymph."""
    if cell_uptake not in CELL_UPTAKE:
        raise SpecError(f"{name}: cell_uptake must be one of {', '.join(CELL_UPTAKE)} (got {cell_uptake!r})")
    kmax, k50, n, krel = 0.29, 12.0, 1.9, 0.097
    params = _tumour_physiology(ctx) + list(extra_params) + [
        param("P_tumour", 0.08, "dimensionless", _NANO_TUMOR, (1e-4, 10.0), "tumour tissue:blood distribution coefficient"),
        param("Kmax_tumour", kmax, "1/h", _NANO_TUMOR + ("" if cell_uptake == "hill_time" else
                                                          " (the plateau of the Hill, used as a first-order rate)"),
              (0.0, 30.0), "maximal uptake rate into tumour cells" if cell_uptake == "hill_time"
              else "first-order uptake rate of interstitial particles into tumour cells"),
    ]
    if cell_uptake == "hill_time":
        params += [
            param("K50_tumour", k50, "h", _NANO_TUMOR, (0.01, 200.0), "time to half-maximal tumour-cell uptake"),
            param("n_tumour", n, "dimensionless", _NANO_TUMOR + " (1.925 rounded as in SCIENCE.md)", (0.1, 10.0),
                  "Hill coefficient of tumour-cell uptake"),
        ]
    params.append(param("Krelease_tumour", krel, "1/h", _NANO_TUMOR, (0.0, 15.0), "release rate from tumour cells"))
    assignments = [
        Assignment("Q_tumour", S("Q_C") * S("f_Q_tumour"), "L/h", "tumour blood flow"),
        Assignment("V_tumour", S("f_V_tumour") * S("BW") / S("rho_tissue"), "L", "tumour volume"),
        Assignment("V_tumour_capillary", S("f_B_tumour") * S("V_tumour"), "L", "tumour capillary blood volume"),
        Assignment("V_tumour_tissue", (1 - S("f_B_tumour")) * S("V_tumour"), "L", "tumour extravascular volume"),
    ] + list(extra_assignments)
    states = (
        State("tumour_capillary", organ="tumour", volume="V_tumour_capillary", description="NP in tumour capillary blood"),
        State("tumour_tissue", organ="tumour", volume="V_tumour_tissue", description="NP in tumour interstitium"),
        State("tumour_cells", organ="tumour", volume="V_tumour_tissue", description="NP inside tumour cells"),
    )
    c_art = S("arterial_blood") / S("V_arterial")
    c_cap = S("tumour_capillary") / S("V_tumour_capillary")
    c_tis = S("tumour_tissue") / S("V_tumour_tissue")
    k_up = hill(S("Kmax_tumour"), S("K50_tumour"), S("n_tumour")) if cell_uptake == "hill_time" else S("Kmax_tumour")
    fluxes = [
        Flux("arterial_to_tumour", "arterial_blood", "tumour_capillary", S("Q_tumour") * c_art, "arterial supply of the tumour"),
        Flux("tumour_to_venous", "tumour_capillary", "venous_blood", S("Q_tumour") * c_cap, "venous return from the tumour"),
        Flux("extravasation_tumour", "tumour_capillary", "tumour_tissue", exchange * c_cap, "PS · C_cap"),
        Flux("reabsorption_tumour", "tumour_tissue", "tumour_capillary", exchange * c_tis / S("P_tumour"), "PS · C_tis / P_T"),
        Flux("uptake_tumour_cells", "tumour_tissue", "tumour_cells", k_up * S("tumour_tissue"),
             "Hill uptake into tumour cells" if cell_uptake == "hill_time" else "first-order uptake into tumour cells"),
        Flux("release_tumour_cells", "tumour_cells", "tumour_tissue", S("Krelease_tumour") * S("tumour_cells"), "first-order release"),
    ]
    if lymphatic_drainage:
        params.append(param("f_lymph_tumour", LYMPH_FRACTION, "dimensionless", _LYMPH, (0.0, 0.01),
                            "tumour lymph flow as a fraction of tumour blood flow"))
        fluxes.append(Flux("lymph_tumour", "tumour_tissue", "venous_blood", S("f_lymph_tumour") * S("Q_tumour") * c_tis,
                           "lymphatic drainage of the interstitium into venous blood"))
    return Part(name, states, tuple(params), tuple(fluxes), assignments=tuple(assignments), notes=notes)


@declare(requires=("circulation",), provides=("epr",),
         groups={"tumour cell uptake": ("Kmax", "K50", "n", "Krelease"), "extravasation": ("PATC", "PAC", "P")})  # nanopk.compare tests each group as one
def lin_tumour(ctx: BuildContext, lymphatic_drainage: bool = False) -> Part:
    """The Lin-lab tumour sub-model (Chou et al. 2023): ``PS = PATC · Q_tumour``.

        dA_cap/dt = Q_T (C_a − C_cap) − PATC·Q_T·C_cap + PATC·Q_T·C_tis/P_T
        dA_tis/dt = PATC·Q_T·C_cap − PATC·Q_T·C_tis/P_T − K_up(t)·A_tis + K_rel·A_cells
        dA_cells/dt = K_up(t)·A_tis − K_rel·A_cells

    Parameters
    ----------
    lymphatic_drainage : bool
        Add lymphatic drainage of the interstitium to venous blood (``f_lymph_tumour``);
        off by default, as in the published model.

    Notes
    -----
    Defaults are the medians of the parameters Chou 2023 fitted to 378 Nano-Tumor
    datasets (PATC 0.003, P_T 0.08, Kmax 0.29 /h, K50 12 h, n 1.9, release 0.097 /h),
    so a meta-analysis can vary ``PATC_tumour``, ``P_tumour``, ``Kmax_tumour``,
    ``K50_tumour``, ``n_tumour`` and ``Krelease_tumour``.  Tumour mass, blood flow and
    capillary fraction come from the species table (mouse: the Nano-Tumor medians
    0.76 % BW, 2 % of cardiac output, 2 % capillary blood); a fit sets ``f_V_tumour``
    per dataset from its sidecar's ``tumour.weight_g`` (or the same table default the
    data converter uses, with a warning), so model and data share one tumour mass.

    Reproducing Chou et al. 2023.  These tumour equations are those of the published
    code (UFPBPK/Nano-AI-PBPK-G1 ``Main_Code.R``: ``RTb``, ``RTt``, ``RTRES``,
    ``PAT = PATC*QT``, observed ``Tumor = ATb+ATt+ATRES``), but ``mouse_tumour``'s whole
    body differs from that code in three places, which together put the tumour above
    what the published per-dataset fits give: median 0.03–0.04 log10 up to 30 h,
    0.08 at 30–80 h and 0.19 after 80 h (the liver outflow most of the early part,
    the muscle/rest phagocytes the late part).  To run Chou's model, build ``mouse_tumour`` with

    1. ``circulation.whole_body(liver_outflow="hepatic_artery")`` (``RV = QL*CVL + ...``:
       the portal flow does not leave the liver);
    2. ``phagocyte_organs`` and the ``clearance.hill_phagocytic_uptake`` organs
       including ``"muscle"`` and ``"rest"`` (``KMRES*``, ``KRRES*``);
    3. per dataset ``f_Q_rest`` lowered by ``f_Q_tumour`` and ``f_V_rest`` by
       ``f_V_tumour`` (``QRC = 1 - (... + QTC ...)``, ``VRC = 1 - (... + VTC + VPlasC)``).

    With the published per-dataset VTC, QTC, BVT, PT, PATC and KTRES* (and BW), this
    configuration gives the database's tumour %ID with a median per-dataset
    |log10 error| of 0.118 over 362 datasets (tests/test_chou2023_reproduction.py).
    """
    _refuse_tumour_organ(ctx, "lin_tumour")
    extra = [param("PATC_tumour", 0.003, "dimensionless", _NANO_TUMOR, (1e-6, 1.0),
                   "tumour permeability-surface area product as a fraction of tumour blood flow")]
    exchange = S("PATC_tumour") * S("Q_tumour")  # Main_Code.R: PAT = PATC * QT, QT = QC * QTC
    return _tumour_part(ctx, "epr.lin_tumour", exchange, extra, [], lymphatic_drainage,
                        ("tumour: Lin-lab sub-model of Chou et al. 2023, PS = PATC · Q_tumour",))


@declare(requires=("circulation",), provides=("epr",),
         groups={"tumour cell uptake": ("Kmax", "K50", "n", "Krelease"), "extravasation": ("PATC", "PAC", "P")})  # nanopk.compare tests each group as one
def two_pore_tumour(ctx: BuildContext, diameter_assignment: str | None = None, lymphatic_drainage: bool = True,
                    cell_uptake: str = "first_order") -> Part:
    """Tumour with size-dependent extravasation from two-pore theory.

        PS = 3600 · P(d_h/2) · S_V · m_T          (L/h; P in cm/s, S_V in cm²/g, m_T in kg)

    with ``P`` from :func:`two_pore_permeability_expr` and ``m_T = ρ · V_tumour``; the
    factor 3600 converts cm³·kg/(g·s) to L/h.

    Parameters
    ----------
    diameter_assignment : str, optional
        Name of an assignment (nm) giving the hydrodynamic diameter the tumour
        capillaries see — e.g. ``"d_h"`` from a protein-corona mechanism, so that a
        growing corona lowers extravasation.  Without it the diameter is the parameter
        ``d_h_particle`` (shared with renal filtration), set from
        ``ctx.particle.hydrodynamic_diameter`` (or the Nano-Tumor median 107.75 nm
        when no particle is given).
    lymphatic_drainage : bool
        Drain the interstitium to venous blood at ``f_lymph_tumour · Q_tumour``
        (default on; the Shah & Betts normal-tissue lymph flow, an upper bound for a
        tumour).
    cell_uptake : {"first_order", "hill_time"}
        ``"first_order"`` (default): interstitial particles enter tumour cells at
        ``Kmax_tumour · A_tis`` — uptake follows the particle's state, so a dose at
        168 h is taken up like one at 0 h.  ``"hill_time"``: the Lin-lab
        ``K_up(t) = Kmax·tⁿ/(K50ⁿ + tⁿ)`` in the time since the start of the
        simulation, as :func:`lin_tumour`.

    Notes
    -----
    Cellular uptake, release and the distribution coefficient use the Nano-Tumor
    medians, as in :func:`lin_tumour`; with first-order uptake ``Kmax_tumour`` is the
    Hill's plateau (0.29 /h), the rate the Lin-lab model reaches once ``t ≫ K50``.
    ``S_V_tumour`` = 400 cm²/g is the tumour vascular surface density of Dogra et al.
    2020 (40 mm²/mm³, tissue density 1 g/cm³).
    """
    _refuse_tumour_organ(ctx, "two_pore_tumour")
    extra = [
        param("R_small_pore", SMALL_PORE_NM, "nm", _SW2009, (1.0, 20.0), "small-pore radius of tumour capillaries"),
        param("R_large_pore", LARGE_PORE_NM, "nm", _SW2009, (50.0, 2000.0), "large-pore radius of tumour capillaries"),
        param("AL_small_pore", SMALL_PORE_AL, "1/cm", _SW2009, (0.0, 1000.0), "small-pore area per unit membrane thickness"),
        param("AL_large_pore", LARGE_PORE_AL, "1/cm", _SW2009, (0.0, 100.0), "large-pore area per unit membrane thickness"),
        param("D0_particle", D0_CM2_NM_S, "cm**2*nm/s", _SW2009 + " (Stokes–Einstein, D = D0/r)", (1e-7, 1e-5),
              "free diffusivity times hydrodynamic radius"),
        param("S_V_tumour", SURFACE_AREA_CM2_G, "cm**2/g", _DOGRA2020, (10.0, 2000.0), "tumour vascular surface area per gram"),
    ]
    if diameter_assignment:
        diameter = S(diameter_assignment)
    else:
        diameter = S("d_h_particle")
        extra += particle_diameter_parameter(ctx)
    radius = diameter / 2
    permeability = two_pore_permeability_expr(radius, S("R_small_pore"), S("R_large_pore"), S("AL_small_pore"),
                                              S("AL_large_pore"), S("D0_particle"))
    assignments = [
        Assignment("P_pore_tumour", permeability, "cm/s", "two-pore tumour capillary permeability"),
        Assignment("PS_tumour", _PS_TO_L_PER_H * S("P_pore_tumour") * S("S_V_tumour") * S("rho_tissue") * S("V_tumour"),
                   "L/h", "tumour permeability-surface area product"),
    ]
    return _tumour_part(ctx, "epr.two_pore_tumour", S("PS_tumour"), extra, assignments, lymphatic_drainage,
                        (f"tumour: two-pore permeability ({_SW2009}); H(λ) bridged by a C¹ cubic on 0.6 ≤ λ < 0.9",
                         f"tumour-cell uptake: {cell_uptake.replace('_', '-')}"), cell_uptake=cell_uptake)

