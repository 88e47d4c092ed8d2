"""Active targeting: receptor binding and internalisation of ligand-bearing particles in a tumour.

A particle with ``targeting = "active"`` carries ligands for a receptor on the tumour
cells.  In the tumour interstitium (the EPR mechanism's ``tumour_tissue``) it binds
free receptors, may unbind, and the bound particle is internalised into the tumour
cells (``tumour_cells``, which the EPR mechanism already has)::

    tumour_tissue ──J_bind──► tumour_bound ──J_int──► tumour_cells
          ▲                        │
          └──────────J_off─────────┘

    J_bind = a · k_on · n · R_acc · (1 − occupancy) · A_tissue
    J_off  = k_off,NP · A_bound,   k_off,NP = k_on · K_D · (K_D / (K_D + C_eff))^(n − 1)
    J_int  = k_int · A_bound
    n        = σ_L · A_contact                      (ligands engaged at once, the valency)
    R_acc    = f_access · R_T · 1e-6 · ρ            (M; receptor density R_T in nmol/g)
    occupancy = n · A_bound / m_p / (N_A · R_acc · V_tumour,tissue)

``a`` is 1 for an active particle.  For a passive particle the part declares its
parameters (``targeting_active`` = 0) but no state or flux, so its model is exactly the
model without the mechanism; active and passive particles therefore compile to two
structures.  Occupancy counts receptors: every bound particle
holds ``n`` of them, and ``m_p`` (µg per particle) turns the bound mass into a number,
so the binding saturates at high particle doses (receptor saturation removes the
advantage of targeting at high doses).  ``f_access`` is the binding-site
barrier: particles leave the vessels slowly and bind the first receptors they meet, so
only perivascular cells take them up (Wittrup et al. 2012; Sykes et al. 2014 saw
targeted particles near the vessels).  The
avidity of a multivalent particle: it leaves only when its last bond breaks while the
other n − 1 ligands are unbound, each of them bound with probability C_eff/(K_D + C_eff)
at the effective local receptor concentration C_eff — so for any K_D well below C_eff
the particle is held practically irreversibly and the affinity hardly matters.

What the framework predicts, and what the defaults reproduce (Schmidt & Wittrup 2009):
for agents of nanoparticle size extravasation, not binding, limits tumour uptake, so
targeting changes delivery little — it retains what extravasated (binding and
internalisation compete with the return to blood) rather than bringing more in.  The
meta-analyses agree: DE24 median 0.98 %ID for actively targeted vs 0.71 %ID for
passive particles in the Nano-Tumor Database (Cheng et al. 2020, recomputed; SCIENCE.md
§2), i.e. a ratio ~1.4; Sykes et al. 2014 found ~2× with transferrin only at 60 nm.
The accessible receptor fraction is sized to that ratio (a calibrated quantity: see
:data:`F_ACCESS`).

Bound particles sit on the cell surface at interstitial pH and do not dissolve in this
model; dissolution starts once they are internalised (``tumour_cells``).

Sources
-------
1. Schmidt MM, Wittrup KD. A modeling analysis of the effects of molecular size and
   binding affinity on tumor targeting. Mol Cancer Ther 2009;8:2861
   (doi:10.1158/1535-7163.MCT-09-0195): "For molecules in the size range of liposomes,
   the model predicts that antigen targeting will not significantly increase tumor
   uptake relative to untargeted molecules."
2. Wittrup KD, Thurber GM, Schmidt MM, Rhoden JJ. Practical theoretic guidance for the
   design of tumor-targeting agents. Methods Enzymol 2012;503:255
   (doi:10.1016/B978-0-12-396962-0.00010-0): affinity "negligible for nanoparticles".
3. Berk DA, Yuan F, Leunig M, Jain RK. Direct in vivo measurement of targeted binding
   in a human tumor xenograft. PNAS 1997;94:1785 (doi:10.1073/pnas.94.5.1785):
   carcinoembryonic antigen density 0.56 nmol/g (5.0e5 per cell), Ka ≤ 4e7 1/M.
4. Cheng YH, He C, Riviere JE, Monteiro-Riviere NA, Lin Z. Meta-analysis of
   nanoparticle delivery to tumors using a physiologically based pharmacokinetic
   modeling and simulation approach. ACS Nano 2020;14:3075 (PMID 32078303).
5. Sykes EA, Chen J, Zheng G, Chan WCW. Investigating the impact of nanoparticle size
   on active and passive tumor targeting efficiency. ACS Nano 2014;8:5696
   (doi:10.1021/nn500299p).
"""
from __future__ import annotations

from ..parts import Assignment, Flux, Part, State, symbol
from .base import BuildContext, declare, param

__all__ = ["receptor_binding", "NMOL_PER_G_TO_M", "K_INTERNALISATION", "F_ACCESS"]

S = symbol

#: nmol/g of tissue × ρ (kg/L) → mol/L: 1e-9 mol / 1e-3 kg × kg/L = 1e-6 M.  A literal so
#: that building a model does not import pint; tests/test_targeting.py checks it with pint.
NMOL_PER_G_TO_M = 1e-6
#: Internalisation rate of receptor-bound particles (1/h); an assumption (hours).
K_INTERNALISATION = 0.1
#: Fraction of the tumour's receptors within reach of extravasated particles.  A
#: calibrated quantity: benchmarks/trends.py active vs passive DE24 rows — chosen so
#: that a 15 nm PEG-5k Au particle made active gives DE24 ≈ 1.4× the passive one in
#: mouse_tumour_full with defaults (Cheng 2020: 0.98 vs 0.71 %ID medians).  With every
#: receptor reachable (1.0) the active particle's DE24 was several times the passive
#: one's.  Only the product f_access · k_on · n (the binding rate) is constrained by the
#: data; its smallness says that binding is limited by how few receptors the particles
#: reach near the vessels, not by the chemistry of the bond.
F_ACCESS = 1.2e-4

_SW2009 = "Schmidt & Wittrup, Mol Cancer Ther 2009;8:2861 (doi:10.1158/1535-7163.MCT-09-0195)"
_BERK1997 = "Berk et al., PNAS 1997;94:1785 (doi:10.1073/pnas.94.5.1785)"


@declare(requires=("epr",), provides=("targeting",))
def receptor_binding(ctx: BuildContext) -> Part:
    """Receptor binding and internalisation of actively targeted particles in the tumour.

    Adds the state ``tumour_bound`` (particles bound to tumour-cell receptors; organ
    ``tumour``, so it counts in the ``tumour`` observable) and three fluxes between it,
    ``tumour_tissue`` and ``tumour_cells``; see the module docstring for the equations.
    List it after an ``epr.*`` tumour (and after ``aggregation.*`` when present, whose
    particle mass ``m_particle`` it shares).

    Raises
    ------
    SpecError
        If no EPR tumour is listed before it.

    Notes
    -----
    ``targeting_active`` is set from ``ctx.particle.targeting`` (1 for ``"active"``, 0
    otherwise and without a particle), so one spec serves passive and active particles;
    a passive particle gets the parameters only (no ``tumour_bound`` state, no flux).
    The ligand density ``sigma_ligand`` and affinity ``KD_ligand`` are parameters, not
    Particle fields: set them with ``params`` (a dataset rarely reports them).
    """
    particle = ctx.particle
    active = 1.0 if (particle is not None and particle.targeting == "active") else 0.0
    origin = (f"set from the Particle (targeting {particle.targeting!r})" if particle is not None
              else "no particle given: passive")
    params = [
        param("targeting_active", active, "dimensionless", f"{origin}: 1 for an actively targeted particle, 0 otherwise",
              (0.0, 1.0), "switch of receptor binding (0 = passive particle)"),
        param("R_tumour", 0.56, "nmol/g",
              f"{_BERK1997}: carcinoembryonic antigen density in LS174T xenografts measured in vivo, 0.56 nmol/g "
              "(5.0e5 per cell)", (0.0, 100.0), "receptor density in the tumour"),
        param("KD_ligand", 2.5e-8, "M",
              f"{_BERK1997}: in vivo association constant Ka ≤ 4e7 1/M, i.e. K_D ≥ 25 nM for one ligand–receptor pair",
              (1e-12, 1e-3), "dissociation constant of one ligand–receptor bond"),
        param("kon_ligand", 3.6e8, "1/(M*h)",
              "assumption: 1e5 1/(M·s) × 3600, the usual order of protein ligand–receptor association (Schmidt & "
              "Wittrup 2009 treat binding as fast against extravasation, which is what matters here)",
              (0.0, 1e13), "association rate constant of one ligand–receptor bond"),
        param("sigma_ligand", 0.05, "1/nm**2",
              "assumption: 0.05 ligands/nm², a few % of the maximal thiol-PEG grafting density (1.13 chains/nm², "
              "Manson et al., Gold Bull 2011;44:99) carrying a ligand; targeting depends on ligand density (Chen et al., "
              "Nanotechnology 2013;24:355101)", (1e-4, 5.0), "ligand surface density"),
        param("A_contact", 100.0, "nm**2",
              "assumption: a 10 × 10 nm patch of the particle surface faces the cell membrane closely enough to bind",
              (1.0, 1e5), "particle surface area in contact with a cell"),
        param("k_int_tumour", K_INTERNALISATION, "1/h",
              "assumption: receptor-mediated endocytosis of a bound particle within hours (half-life ~7 h)", (0.0, 100.0),
              "internalisation rate of receptor-bound particles"),
        param("f_receptor_access", F_ACCESS, "dimensionless",
              "calibrated quantity: benchmarks/trends.py active vs passive DE24 rows (Cheng et al. 2020: DE24 median 0.98 "
              "active vs 0.71 %ID passive; Sykes et al. 2014: ~2× at 60 nm only); the binding-site barrier: particles "
              f"that extravasate reach the receptors of perivascular cells only ({_SW2009}; Wittrup et al. 2012)",
              (0.0, 1.0), "fraction of tumour receptors within reach of extravasated particles"),
        param("C_eff_receptor", 1e-6, "M",
              "assumption: 1 µM effective concentration of receptors around the free ligands of a tethered particle "
              "(order of magnitude of effective molarities in multivalent binding); it makes multivalent binding "
              "practically irreversible, as the targeting framework treats nanoparticles (Wittrup et al. 2012: affinity "
              "'negligible for nanoparticles')", (1e-12, 1.0), "effective local receptor concentration for rebinding"),
        param("N_avogadro", 6.02214076e23, "1/mol", "SI (2019): exact", (6.0e23, 6.1e23), "Avogadro constant"),
    ]
    if "aggregation" not in ctx.provided:
        m_p = particle.particle_mass_ug if particle is not None else 3.41e-11
        params.append(param("m_particle", m_p, "ug", "set from the Particle: mass of one core = π/6·d³·density (materials table)",
                            (1e-20, 1e-3), "mass of one primary particle"))
    assignments = [
        Assignment("n_ligand_contact", S("sigma_ligand") * S("A_contact"), "dimensionless",
                   "ligands engaged at once (the valency of a bound particle)"),
        Assignment("k_off_particle",
                   S("kon_ligand") * S("KD_ligand") * (S("KD_ligand") / (S("KD_ligand") + S("C_eff_receptor"))) ** (S("n_ligand_contact") - 1),
                   "1/h", "off-rate of a particle held by n bonds: the last bond breaks while the other n − 1 are unbound"),
        Assignment("R_tumour_M", S("f_receptor_access") * S("R_tumour") * NMOL_PER_G_TO_M * S("rho_tissue"), "M",
                   "concentration of the tumour receptors particles can reach"),
        Assignment("receptor_occupancy",
                   S("n_ligand_contact") * S("tumour_bound") / S("m_particle")
                   / (S("N_avogadro") * S("R_tumour_M") * S("V_tumour_tissue")),
                   "dimensionless", "fraction of tumour receptors held by bound particles"),
    ]
    state = State("tumour_bound", organ="tumour", volume="V_tumour_tissue",
                  description="particles bound to tumour-cell receptors (cell surface)")
    fluxes = (
        Flux("receptor_binding_tumour", "tumour_tissue", "tumour_bound",
             S("targeting_active") * S("kon_ligand") * S("n_ligand_contact") * S("R_tumour_M") * (1 - S("receptor_occupancy"))
             * S("tumour_tissue"), "a · k_on · n · R_free · A_tissue"),
        Flux("receptor_unbinding_tumour", "tumour_bound", "tumour_tissue",
             S("k_off_particle") * S("tumour_bound"), "k_off,NP · A_bound"),
        Flux("receptor_internalisation_tumour", "tumour_bound", "tumour_cells", S("k_int_tumour") * S("tumour_bound"),
             "k_int · A_bound"),
    )
    if not active:
        # A passive particle gets the parameters (so that they are listed and the switch
        # is visible) but no state or flux: its model is exactly the model without the
        # mechanism (an always-zero state would still change the solver's error norm).
        return Part("targeting.receptor_binding", (), tuple(params),
                    notes=("targeting: passive particle, no receptor binding (targeting_active = 0)",))
    return Part("targeting.receptor_binding", (state,), tuple(params), fluxes, assignments=tuple(assignments),
                notes=("targeting: receptor binding in the tumour interstitium (Schmidt & Wittrup 2009 framework); "
                       "multivalent avidity; receptors reachable near the vessels only (f_receptor_access)",))
