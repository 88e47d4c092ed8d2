"""Aggregation: Smoluchowski coagulation in sectional size classes, written as mass fluxes.

Number concentrations n_k of k-mers obey (Smoluchowski 1917)

    dn_k/dt = ½ Σ_{i+j=k} β_ij n_i n_j − n_k Σ_j β_kj n_j,

with the Brownian (perikinetic) kernel divided by the stability ratio W,

    β_ij = (2 k_B T / 3 μ) (1/r_i + 1/r_j)(r_i + r_j) / W,      r_k = r_1 · k^(1/D_f),

so equal sizes give β = 8 k_B T/(3 μ W) and the total number falls as
N(t) = N₀/(1 + k_f N₀ t/W), k_f = 4 k_B T/(3 μ) (rapid coagulation for W = 1).

Classes 1 … K are states; class K absorbs every aggregate of K or more particles.  The
coagulation is written as **mass** fluxes between particle states: an i + j collision
(rate R_ij = β_ij n_i n_j V, halved for i = j) moves i·m_p·R_ij from class i and
j·m_p·R_ij from class j into class min(i + j, K), with n_k = A_k/(k·m_p·V) and m_p the
mass of one core (:attr:`nanopk.particle.Particle.particle_mass_ug`).  One flux per
collision pair would need ~K² fluxes; instead each class k < K has two, through the
absorbing class: its loss to all partners (k → K) and its gain from all pairs that make
a k-mer (K → k).  The net flux of every class is its Smoluchowski balance exactly (the
tests compare it with the pair-by-pair balance), mass is conserved by the flux graph,
and the kernel's separable form makes the losses O(K) (see :func:`_coagulation`).

The attachment efficiency 1/W follows the coating.  Electrostatically stabilised
surfaces (bare, citrate) have W_el = 1 + (CCC/I)^β_RO: W → 1 above the critical
coagulation concentration (CCC) and log W falls linearly with log I below it, as
Reerink & Overbeek found (slope β_RO).  Only bare surface coagulates — two particles
stick when both contact patches are uncovered — so a protein corona of coverage Θ
(from :mod:`nanopk.mechanisms.corona`) stabilises:

    1/W = s_el · (1 − Θ)² / W_el + 1/W_steric,

with s_el = 0 for steric coatings (PEG, zwitterionic), which are stable (W_steric).

In blood, monomers stay in the circulation's states (``venous_blood``,
``arterial_blood``); aggregates (k ≥ 2) form a well-mixed circulating pool
``blood_aggregates_{k}`` in the plasma volume.  They do not extravasate (no EPR, no
renal filtration) and are captured by liver, spleen and lung phagocytes with the
well-stirred clearance CL = Q·CL_int/(Q + CL_int) and an intrinsic clearance that
grows in proportion to the aggregate diameter d_k = d_1·k^(1/D_f).

Sources
-------
1. Smoluchowski M. Versuch einer mathematischen Theorie der Koagulationskinetik
   kolloider Lösungen. Z Phys Chem 1917;92:129.
2. Elimelech M, Gregory J, Jia X, Williams RA. Particle Deposition and Aggregation.
   Butterworth-Heinemann 1995, ch. 6 (kernel, rapid-coagulation half-life).
3. Li X, Lenhart JJ, Walker HW. Dissolution-accompanied aggregation kinetics of silver
   nanoparticles. Langmuir 2010;26:16690 (doi:10.1021/la101768n): CCC 40 mM NaCl.
4. Reerink H, Overbeek JThG. The rate of coagulation as a measure of the stability of
   silver iodide sols. Discuss Faraday Soc 1954;18:74.
5. Lin MY et al. Universality in colloid aggregation. Nature 1989;339:360 (D_f 1.85).
6. Moghimi SM, Hunter AC, Murray JC. Long-circulating and target-specific
   nanoparticles. Pharmacol Rev 2001;53:283 (size and MPS capture).
"""
from __future__ import annotations

import numpy as np
import sympy as sp

from ..errors import SpecError
from ..parts import Assignment, Flux, Observable, Part, State, symbol
from .base import BuildContext, declare, param

__all__ = [
    "K_BOLTZMANN", "brownian_kernel", "brownian_kernel_equal", "rapid_coagulation_constant",
    "smoluchowski_constant_kernel", "total_number_constant_kernel", "rapid_coagulation_half_life",
    "electrostatic_stability_ratio", "kernel_shape", "plasma_aggregation", "blood_aggregation",
]

S = symbol
#: Boltzmann constant (J/K), exact in the 2019 SI.
K_BOLTZMANN = 1.380649e-23
#: m³/s → L/h
_M3S_TO_LH = 1000.0 * 3600.0

STERIC_COATINGS = ("PEG", "PEG-PLA", "zwitterionic", "polyacrylamide", "dextran", "lipid", "BSA")

_CODATA = "CODATA 2018 (exact in the 2019 SI)"
_LI2010 = "Li, Lenhart & Walker, Langmuir 2010;26:16690 (doi:10.1021/la101768n): CCC of bare/citrate Ag 40 mM NaCl"
_RO = ("Reerink & Overbeek, Discuss Faraday Soc 1954;18:74: d log W/d log c = −2.15e9·a·γ²/z² (a in m); "
       "a = 7.5 nm, ψ_d = −40 mV (γ = 0.36), z = 1 give a slope of 2")
_LIN1989 = "Lin et al., Nature 1989;339:360: fractal dimension 1.85 of diffusion-limited (rapid) aggregates"
_STERIC = ("steric stabilisation (PEG, zwitterionic, other hydrophilic polymers) keeps particles dispersed in plasma: "
           "effectively no aggregation (W = 1e12, SCIENCE.md §4; Tween-80 Ag stable to 1 M, Li et al. 2012)")
_PLASMA_I = "plasma ionic strength ≈ 150 mM (Na⁺ 140 mM, Cl⁻ 100 mM, HCO₃⁻ 25 mM; Guyton & Hall, Textbook of Medical Physiology)"
_PLASMA_MU = "plasma viscosity 1.10–1.30 mPa·s at 37 °C (Késmárky et al., Clin Hemorheol Microcirc 2008;39:243); 1.2 used"
_MOGHIMI = ("Moghimi, Hunter & Murray, Pharmacol Rev 2001;53:283: Kupffer cells hold most of the MPS capacity, splenic "
            "filtration of large particles, lung capture of micrometre aggregates; intrinsic capture ∝ diameter and "
            "the split liver:spleen:lung are assumptions")


# ---------------------------------------------------------------------- closed forms
def rapid_coagulation_constant(T: float, mu: float) -> float:
    """k_f = 4 k_B T / (3 μ) (m³/s): N(t) = N₀/(1 + k_f N₀ t/W).  ``T`` in K, ``mu`` in Pa·s."""
    return 4.0 * K_BOLTZMANN * T / (3.0 * mu)


def brownian_kernel(r_i, r_j, T: float, mu: float, W: float = 1.0):
    """β_ij = (2 k_B T/3 μ)(1/r_i + 1/r_j)(r_i + r_j)/W (m³/s); radii in any common unit."""
    r_i = np.asarray(r_i, dtype=float)
    r_j = np.asarray(r_j, dtype=float)
    return 2.0 * K_BOLTZMANN * T / (3.0 * mu) * (1.0 / r_i + 1.0 / r_j) * (r_i + r_j) / W


def brownian_kernel_equal(T: float, mu: float, W: float = 1.0) -> float:
    """β for two particles of equal size: 8 k_B T / (3 μ W) (m³/s)."""
    return 8.0 * K_BOLTZMANN * T / (3.0 * mu * W)


def smoluchowski_constant_kernel(n0: float, beta: float, t, k):
    """Closed form for a constant kernel and monodisperse start (Smoluchowski 1917):

    n_k(t) = N₀ τ^(k−1)/(1 + τ)^(k+1),   τ = β N₀ t / 2.

    Units: ``n0`` and the result in any number/volume unit, ``beta`` in volume/time of
    the same units, ``t`` in that time unit.
    """
    tau = beta * n0 * np.asarray(t, dtype=float) / 2.0
    k = np.asarray(k, dtype=float)
    return n0 * tau ** (k - 1) / (1.0 + tau) ** (k + 1)


def total_number_constant_kernel(n0: float, beta: float, t):
    """N(t) = N₀/(1 + τ), τ = β N₀ t/2."""
    return n0 / (1.0 + beta * n0 * np.asarray(t, dtype=float) / 2.0)


def rapid_coagulation_half_life(n0: float, T: float, mu: float, W: float = 1.0) -> float:
    """Time (s) for the total number to halve: W/(k_f N₀); ``n0`` in 1/m³."""
    return W / (rapid_coagulation_constant(T, mu) * n0)


def electrostatic_stability_ratio(ionic_strength_mM, ccc_mM: float, slope: float = 2.0):
    """W_el = 1 + (CCC/I)^slope: → 1 above the CCC, log-linear in log I below it."""
    return 1.0 + (ccc_mM / np.asarray(ionic_strength_mM, dtype=float)) ** slope


# ---------------------------------------------------------------------- symbolic part
def _medium_parameters(particle, T, mu, mu_source, T_source, ionic_mM):
    steric = 1.0 if (particle is not None and particle.coating in STERIC_COATINGS) else 0.0
    coat = particle.coating if particle is not None else "none"
    m_p = particle.particle_mass_ug if particle is not None else None
    if m_p is None:
        raise SpecError("aggregation needs a particle (its core mass turns NP mass into particle numbers); give [particle] in the spec")
    return [
        param("k_B", K_BOLTZMANN, "J/K", _CODATA, (K_BOLTZMANN, K_BOLTZMANN), "Boltzmann constant"),
        param("T_medium", T, "K", T_source, (273.15, 320.0), "absolute temperature of the medium"),
        param("mu_medium", mu, "Pa*s", mu_source, (5e-4, 5e-3), "dynamic viscosity of the medium"),
        param("ionic_strength", ionic_mM, "mM", _PLASMA_I, (1e-3, 2000.0), "ionic strength of the medium"),
        param("CCC", 40.0, "mM", _LI2010 + " (taken for all electrostatically stabilised cores)", (0.1, 2000.0),
              "critical coagulation concentration (monovalent salt)"),
        param("beta_RO", 2.0, "dimensionless", _RO, (0.1, 20.0), "slope of log W vs log I below the CCC"),
        param("W_steric", 1e12, "dimensionless", _STERIC, (1.0, 1e15), "stability ratio of sterically stabilised / protein-covered surface"),
        param("steric_coating", steric, "dimensionless", f"set from the Particle (coating {coat!r}): 1 for steric coatings ({', '.join(STERIC_COATINGS)}), 0 otherwise",
              (0.0, 1.0), "1 if the coating is steric (no electrostatic coagulation)"),
        param("m_particle", m_p, "ug", "set from the Particle: mass of one core = π/6·d³·density (materials table)", (1e-20, 1e-3),
              "mass of one primary particle"),
    ]


def _kernel_assignments(corona: bool):
    cov = S("corona_coverage") if corona else 0
    return [
        Assignment("k_rapid", 4 * S("k_B") * S("T_medium") / (3 * S("mu_medium")) * _M3S_TO_LH, "L/h",
                   "rapid-coagulation constant k_f = 4 k_B T/(3 μ), converted from m³/s to L/h"),
        Assignment("W_electrostatic", 1 + (S("CCC") / S("ionic_strength")) ** S("beta_RO"), "dimensionless", "electrostatic stability ratio"),
        Assignment("attachment_efficiency",
                   (1 - S("steric_coating")) * (1 - cov) ** 2 / S("W_electrostatic") + 1 / S("W_steric"),
                   "dimensionless", "1/W: fraction of Brownian collisions that stick"),
        Assignment("coagulation_constant", 2 * S("k_rapid") * S("attachment_efficiency") / S("m_particle"), "L/h/ug",
                   "γ = β_equal/m_p = 8 k_B T/(3 μ W m_p)"),
    ]


def kernel_shape(i: int, j: int, fractal_dimension: float) -> float:
    """(1/r_i + 1/r_j)(r_i + r_j)/4 = (2 + ρ + 1/ρ)/4, ρ = (i/j)^(1/D_f): β_ij / β_equal."""
    rho = (i / j) ** (1.0 / fractal_dimension)
    return (2.0 + rho + 1.0 / rho) / 4.0


def _kernel_factors(kernel: str, D_f: float):
    """c_ij = Σ_m φ_m(i)·ψ_m(j): the kernel shape as a sum of products (separable).

    Brownian: (2 + s_i/s_j + s_j/s_i)/4 with s_k = k^(1/D_f), three terms; constant: 1.
    The loss of a class to all its partners then needs only the moments
    Σ_j ψ_m(j)·A_j/j, not a sum over pairs.
    """
    if kernel == "constant":
        return [(lambda i: 1.0, lambda j: 1.0)]
    s = lambda k: k ** (1.0 / D_f)  # noqa: E731 -- r_k/r_1
    return [(lambda i: 0.5, lambda j: 1.0), (lambda i: 0.25 * s(i), lambda j: 1.0 / s(j)),
            (lambda i: 0.25 / s(i), lambda j: s(j))]


def _coagulation(monomer_pools, agg: list[str], agg_volume: str, K: int, kernel: str, D_f: float, prefix: str):
    """Sectional coagulation as mass fluxes through the absorbing class; ``agg[k-2]`` is class k.

    With γ = β_equal/m_p (``coagulation_constant``), c_ij the kernel shape and
    a_k = A_k/k (A the mass of class k, n_k = a_k/(m_p V)), Smoluchowski's balance of
    class k < K in mass is

        dA_k/dt = G_k − L_k,
        G_k = (γ k/V) Σ_{i ≤ j, i+j=k} w_ij c_ij a_i a_j      (w = ½ for i = j, else 1),
        L_k = (γ A_k/V) Σ_j c_kj a_j,

    the gain from every pair that makes a k-mer and the loss to every partner.  Each is
    one flux: L_k from class k **to class K**, G_k **from class K** to class k.  Every
    collision's mass thus passes through the absorbing class, where the mass of
    aggregates of K or more particles stays, so the net flux of each class is exactly
    its Smoluchowski balance and mass is conserved by the flux graph, with 2(K − 1)
    fluxes where one per pair needs ~K².  The kernel is separable,
    c_kj = Σ_m φ_m(k)ψ_m(j), so L_k uses three moments μ_m = Σ_{j≥2} ψ_m(j)·a_j
    (assignments, computed once): the losses cost O(K), the gains ~K²/4 products.

    Monomers live in pools of their own volume V_p (venous and arterial blood): two
    monomers collide in V_p (γA_p²/V_p into class 2); a monomer and a j-mer of the
    aggregate pool (volume V) in V_p, which leaves γ c_1j A_p a_j/V for either side.
    So, to the aggregates, the monomers count as one class 1 of mass A_1 = Σ_p A_p.
    """
    gamma = S("coagulation_constant")
    V = S(agg_volume)
    factors = _kernel_factors(kernel, D_f)

    def coefficient(x):
        return sp.Integer(1) if x == 1 else sp.Float(x, 15)

    def shape(i, j):
        return sum(phi(i) * psi(j) for phi, psi in factors)

    def a(k):  # a_k = A_k/k; class 1 is every monomer pool
        return sp.Add(*[S(pool) for pool, _ in monomer_pools]) if k == 1 else S(agg[k - 2]) / k

    def pair(i, j, c):
        """``c·a_i·a_j``: for i, j ≥ 2 the product SymPy makes of ``c·(A_i/i)·(A_j/j)``, its
        numbers multiplied first in the same order (so the same Float), in one product
        instead of two nested ones: the ~K²/4 pairs built through SymPy's arithmetic were
        most of loading the model at 101 states."""
        if i == 1:
            return c * a(i) * a(j)
        return sp.Mul(c * sp.Rational(1, i) * sp.Rational(1, j), S(agg[i - 2]), S(agg[j - 2]))

    moments = [Assignment(f"{prefix}_moment_{m}", sp.Add(*[coefficient(psi(j) / j) * S(agg[j - 2]) for j in range(2, K + 1)]),
                          "ug", f"μ_{m} = Σ_j ψ_{m}(j)·A_j/j over the aggregate classes: term {m} of the kernel's separable form")
               for m, (_, psi) in enumerate(factors)]
    mu = [S(m.name) for m in moments]
    absorbing = agg[K - 2]
    fluxes = []
    for pool, volume in monomer_pools:  # class 1: its partners are the other monomers of its pool and the aggregates
        A = S(pool)
        partners = A / S(volume) + sp.Add(*[coefficient(phi(1)) * m for (phi, _), m in zip(factors, mu)]) / V
        fluxes.append(Flux(f"coagulation_loss_{pool}", pool, absorbing, gamma * A * partners,
                           "monomers lost to collisions: γ A_p (A_p/V_p + Σ_j c_1j a_j/V)"))
    for k in range(2, K):
        partners = sp.Add(*[coefficient(phi(k)) * (m + psi(1) * a(1)) for (phi, psi), m in zip(factors, mu)])
        fluxes.append(Flux(f"coagulation_loss_{k}", agg[k - 2], absorbing, gamma * S(agg[k - 2]) / V * partners,
                           f"{k}-mers lost to collisions: γ A_{k} Σ_j c_{k}j a_j/V"))
    for k in range(2, K):
        pairs = [pair(i, k - i, coefficient((0.5 if i == k - i else 1.0) * shape(i, k - i))) for i in range(2 if k == 2 else 1, k // 2 + 1)]
        gain = gamma * k / V * sp.Add(*pairs)
        if k == 2:  # monomer pairs meet in their own pool
            gain += sp.Add(*[gamma * S(pool) ** 2 / S(volume) for pool, volume in monomer_pools])
        fluxes.append(Flux(f"coagulation_gain_{k}", absorbing, agg[k - 2], gain,
                           f"{k}-mers formed: γ {k}/V Σ_(i+j={k}) w c_ij a_i a_j, through the absorbing class"))
    return moments, fluxes


def _check_fractal(D_f):
    if not (isinstance(D_f, (int, float)) and 1.0 <= D_f <= 3.0):
        raise SpecError(f"aggregation option `fractal_dimension` must lie in [1, 3] (got {D_f!r}; {_LIN1989})")


def _check_K(K, kernel):
    if not isinstance(K, int) or K < 2:
        raise SpecError(f"aggregation option `K` must be an integer ≥ 2 (got {K!r})")
    if kernel not in ("brownian", "constant"):
        raise SpecError(f"aggregation option `kernel` must be 'brownian' or 'constant' (got {kernel!r})")


@declare(provides=("aggregation",))
def plasma_aggregation(ctx: BuildContext, K: int = 12, kernel: str = "brownian", volume_ml: float = 1.0,
                       temperature_K: float = 310.15, viscosity_Pa_s: float = 1.2e-3, fractal_dimension: float = 1.85) -> Part:
    """Aggregation alone, in vitro: particles dispersed in a medium of fixed volume.

    States ``plasma_particles`` (monomers; the dose target) and ``plasma_aggregates_{k}``
    (k = 2 … K; K absorbs larger aggregates).  Observables ``number_fraction`` (N/N₀),
    ``aggregated`` (%ID in k ≥ 2) and ``mean_aggregation_number``.  If the model also
    has a corona (``corona.plasma_corona`` listed first), covered surface does not
    coagulate.

    Parameters
    ----------
    K : int
        Number of size classes (≥ 2).
    kernel : {"brownian", "constant"}
        ``constant`` uses the equal-size kernel 8 k_B T/(3 μ W) for every pair (the
        closed-form case).
    volume_ml : float
        Volume of the incubation (mL).
    temperature_K, viscosity_Pa_s : float
        Medium; defaults are plasma at 37 °C.
    fractal_dimension : float
        D_f of the aggregates (r_k = r_1·k^(1/D_f)); 1.85 for diffusion-limited
        aggregation (Lin et al. 1989).  A structural option: it fixes the kernel's
        numeric coefficients.
    """
    _check_K(K, kernel)
    _check_fractal(fractal_dimension)
    corona = "corona" in ctx.provided
    params = _medium_parameters(ctx.particle, temperature_K, viscosity_Pa_s, _PLASMA_MU if viscosity_Pa_s == 1.2e-3 else "set by the model spec (medium viscosity)",
                                "body temperature 37 °C" if temperature_K == 310.15 else "set by the model spec (medium temperature)", 150.0)
    params.append(param("V_medium", volume_ml * 1e-3, "L", "set by the model spec (incubation volume)", (1e-9, 10.0), "volume of the medium"))
    agg = [f"plasma_aggregates_{k}" for k in range(2, K + 1)]
    states = []
    if "plasma_particles" not in ctx.provided:
        states.append(State("plasma_particles", organ="plasma", volume="V_medium", description="single particles in the medium"))
        ctx.provided.add("plasma_particles")
    states += [State(a, organ="plasma", volume="V_medium", description=f"aggregates of {k}{'+' if k == K else ''} particles")
               for k, a in zip(range(2, K + 1), agg)]
    moments, fluxes = _coagulation([("plasma_particles", "V_medium")], agg, "V_medium", K, kernel, fractal_dimension, "plasma")
    dose = S("dose")
    number = S("plasma_particles") + sp.Add(*[S(a) / k for k, a in zip(range(2, K + 1), agg)])
    observables = (
        Observable("number_fraction", number / dose, "dimensionless", "N/N₀: particles + aggregates per primary particle dosed"),
        Observable("aggregated", 100 * sp.Add(*[S(a) for a in agg]) / dose, "percent_ID", "mass in aggregates (k ≥ 2)"),
        Observable("mean_aggregation_number", dose / number, "dimensionless", "mass-per-number mean aggregation number"),
        Observable("primary_number_concentration", dose / (S("m_particle") * S("V_medium")), "1/L", "N₀: primary particles per litre"),
    )
    return Part("aggregation.plasma_aggregation", tuple(states), tuple(params), tuple(fluxes),
                assignments=tuple(_kernel_assignments(corona) + moments), observables=observables,
                notes=(f"aggregation: {K} sectional classes, class {K} absorbs larger aggregates (mass exact, its number approximate)",))


#: Capture of aggregates: (intrinsic clearance per plasma volume at d_ref = 100 nm, 1/h).
CAPTURE_DEFAULTS = {"liver": 10.0, "spleen": 2.0, "lung": 0.5}


@declare(requires=("circulation",), provides=("aggregation",))
def blood_aggregation(ctx: BuildContext, K: int = 6, capture_organs=("liver", "spleen", "lung"),
                      diameter_assignment: str | None = None, fractal_dimension: float = 1.85) -> Part:
    """Coagulation of circulating particles, and capture of the aggregates.

    Monomers coagulate in ``venous_blood`` and ``arterial_blood``; aggregates go to
    the circulating pool ``blood_aggregates_{k}`` (k = 2 … K, volume ``V_plasma``),
    counted in the ``blood`` observable, and are captured into
    ``{organ}_phagocytes`` with CL = Q·CL_int/(Q + CL_int),
    CL_int = k_cap·(d_k/d_ref)·V_plasma, d_k = d_1·k^(1/D_f).  Aggregates are not
    filtered by the kidney nor extravasated into tumours.

    Parameters
    ----------
    K : int
        Size classes (≥ 2); class K absorbs larger aggregates.
    capture_organs : sequence of str
        Organs whose phagocytes capture aggregates (need ``{organ}_phagocytes``).
    diameter_assignment : str, optional
        Name of an assignment giving the monomer hydrodynamic diameter (nm); default
        ``"d_h"`` when a corona is in the model, else the particle's diameter in buffer.
    fractal_dimension : float
        D_f of the aggregates; 1.85, diffusion-limited aggregation (Lin et al. 1989).
    """
    _check_K(K, "brownian")
    _check_fractal(fractal_dimension)
    missing = [o for o in capture_organs if o not in ctx.phagocyte_organs]
    if missing:
        raise SpecError(f"aggregation.blood_aggregation: capture organ(s) {', '.join(missing)} have no phagocytes "
                        f"(phagocyte organs: {', '.join(ctx.phagocyte_organs)})")
    corona = "corona" in ctx.provided
    params = _medium_parameters(ctx.particle, 310.15, 1.2e-3, _PLASMA_MU, "body temperature 37 °C", 150.0)
    assignments = _kernel_assignments(corona)
    if diameter_assignment is None:
        if corona:
            diameter_assignment = "d_h"
        else:
            params.append(param("d_h_monomer", ctx.particle.hydrodynamic_diameter, "nm",
                                "set from the Particle: hydrodynamic diameter in buffer", (0.5, 5000.0), "monomer diameter"))
            diameter_assignment = "d_h_monomer"
    params.append(param("d_ref_capture", 100.0, "nm", "reference diameter of the capture constants (definition)", (1.0, 1e4),
                        "diameter at which k_cap applies"))
    agg = [f"blood_aggregates_{k}" for k in range(2, K + 1)]
    states = [State(a, organ="blood", volume="V_plasma", description=f"circulating aggregates of {k}{'+' if k == K else ''} particles")
              for k, a in zip(range(2, K + 1), agg)]
    moments, fluxes = _coagulation([("venous_blood", "V_venous"), ("arterial_blood", "V_arterial")], agg, "V_plasma", K, "brownian",
                                   fractal_dimension, "blood")
    assignments += moments
    flows = {"lung": S("Q_C"), "liver": S("Q_liver") + (S("Q_spleen") if "spleen" in ctx.organs else 0), "spleen": S("Q_spleen")}
    for organ in capture_organs:
        params.append(param(f"k_cap_{organ}", CAPTURE_DEFAULTS.get(organ, 0.5), "1/h", _MOGHIMI, (0.0, 1e4),
                            f"intrinsic capture of 100 nm aggregates by {organ} phagocytes, per plasma volume"))
        Q = flows.get(organ, S(f"Q_{organ}"))
        for k, a in zip(range(2, K + 1), agg):
            d_k = S(diameter_assignment) * sp.Float(k ** (1.0 / fractal_dimension), 15)
            cl_int = S(f"k_cap_{organ}") * d_k / S("d_ref_capture") * S("V_plasma")
            cl = Q * cl_int / (Q + cl_int)
            fluxes.append(Flux(f"aggregate_capture_{organ}_{k}", a, f"{organ}_phagocytes", cl * S(a) / S("V_plasma"),
                               f"well-stirred capture of {k}-mers by {organ} phagocytes"))
    observables = (Observable("aggregated", 100 * sp.Add(*[S(a) for a in agg]) / S("dose"), "percent_ID", "circulating aggregates (k ≥ 2)"),)
    return Part("aggregation.blood_aggregation", tuple(states), tuple(params), tuple(fluxes),
                assignments=tuple(assignments), observables=observables,
                notes=("aggregation: monomers coagulate in the venous and arterial pools only (capillary volumes neglected); "
                       "aggregates are a well-mixed circulating pool that does not extravasate",))
