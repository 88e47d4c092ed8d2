"""Protein corona: competitive multi-protein adsorption, Vroman exchange, hardening.

Each protein *i* covers an area fraction θ_i of the particle surface (its footprint is
folded into an area-based association constant).  Plasma proteins are in large excess,
so their concentrations C_i are constant, and adsorption is competitive Langmuir
kinetics on the free surface f (Dell'Orco et al. 2010; Sahneh et al. 2013):

    f        = φ_acc − Σ_j (θ_j + η_j)
    dθ_i/dt  = a · ρ_i · k_on,i · C_i · f − k_off,i · θ_i − k_hard · θ_i
    dη_i/dt  = k_hard · θ_i − ε_hard · k_off,i · η_i

θ_i is the soft (exchanging) corona, η_i the hard corona it matures into by a slow
first-order step (Röcker 2009: soft HSA residence ~100 s; Tenzer 2013: the amount of
bound protein evolves over 0.5–480 min).  Without hardening the equilibrium is

    θ_i = K_i·C_i / (1 + Σ_j K_j·C_j),      K_i = k_on,i / k_off,i

and the approach to it is the Vroman exchange: abundant fast binders (albumin) first
fill the surface in proportion to k_on,i·C_i (Sahneh's metastable composition), then
are displaced over hours by scarce high-affinity proteins (HDL, fibrinogen, IgG).

Coating enters through parameters set from the :class:`~nanopk.particle.Particle`:
``a`` = 0 for a zwitterionic surface (no adsorption; Choi et al. 2007), 1 otherwise; a
PEG brush of molecular weight M leaves an accessible area fraction
φ_acc = 1 − (1 − φ_min)·g and multiplies opsonin association by
ρ_ops = 1 − (1 − ρ_min)·g, with brush completeness g = 1 − exp(−M/M_PEG).

Couplings, as assignments other mechanisms use by name:

    opsonin_factor = 1 + α · Σ_{opsonins} (θ + η)          (phagocytic uptake, Hill-in-time form)
    opsonin_coverage_eq = φ_acc · Σ_ops K_i·C_i / (1 + Σ_j K_j·C_j)
                                  (per-particle equilibrium opsonin coverage, K = a·ρ·k_on/k_off:
                                   the opsonin signal of mps.opsonisation_uptake, independent of time)
    corona_thickness = Σ_i L_i (θ_i + η_i) + L_outer · Σ_i η_i      (nm)
    d_h = d_h_buffer + 2 · corona_thickness                 (nm; EPR, renal sieving)

The last term is the loosely bound outer layer that sits on the hard corona (Milani et
al., ACS Nano 2012;6:2532; Walczyk et al., JACS 2010;132:5761); it makes d_h grow over
hours as the corona hardens, as measured for Ag NPs in HSA (Zhao et al. 2021).

Rate constants are stored in hour-based units because model time is in hours:
k_on in 1/(M·h) (= 3600 × the value in 1/(M·s)), k_off in 1/h.

Sources
-------
1. Dell'Orco D, Lundqvist M, Oslakovic C, Cedervall T, Linse S. Modeling the time
   evolution of the nanoparticle-protein corona in a body fluid. PLoS ONE
   2010;5:e10949 (doi:10.1371/journal.pone.0010949).
2. Sahneh FD, Scoglio C, Riviere J. Dynamics of nanoparticle-protein corona complex
   formation: analytical results from population balance equations. PLoS ONE
   2013;8:e64690 (doi:10.1371/journal.pone.0064690).
3. Röcker C, Pötzl M, Zhang F, Parak WJ, Nienhaus GU. A quantitative fluorescence
   study of protein monolayer formation on colloidal nanoparticles. Nat Nanotechnol
   2009;4:577 (doi:10.1038/nnano.2009.195).
4. Tenzer S et al. Rapid formation of plasma protein corona critically affects
   nanoparticle pathophysiology. Nat Nanotechnol 2013;8:772 (doi:10.1038/nnano.2013.181).
5. Pelaz B et al. Surface functionalization of nanoparticles with polyethylene glycol:
   effects on protein adsorption and cellular uptake. ACS Nano 2015;9:6996
   (doi:10.1021/acsnano.5b01326).
6. Owens DE, Peppas NA. Opsonization, biodistribution, and pharmacokinetics of
   polymeric nanoparticles. Int J Pharm 2006;307:93 (doi:10.1016/j.ijpharm.2005.10.010).
7. Choi HS et al. Renal clearance of quantum dots. Nat Biotechnol 2007;25:1165
   (doi:10.1038/nbt1340).
8. Zhao Z et al. 2021, AgNP20 hydrodynamic diameters in HSA, as tabulated in the
   UFPBPK/Nano-PC repository (Chen X, Lin Z, "AgNP-HSA Size Evolution Model").
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping

import sympy as sp

from ..errors import SpecError, suggest
from ..parts import Assignment, Observable, Part, RateRule, State, symbol
from .base import BuildContext, declare, param

__all__ = ["plasma_corona", "blood_corona", "Protein", "PROTEINS", "coating_parameters",
           "langmuir_single", "competitive_equilibrium", "S_PER_H"]

S = symbol
#: Seconds per hour: converts k_on (1/(M·s)) and k_off (1/s) to model time.
S_PER_H = 3600.0

_DELLORCO = "Dell'Orco et al., PLoS ONE 2010;5:e10949 (doi:10.1371/journal.pone.0010949)"
_DELLORCO_TBL = _DELLORCO + ", Table 1"
_UNVERIFIED = " (value to confirm against the full text; not verified)"


@dataclass(frozen=True)
class Protein:
    """One adsorbing plasma protein (or protein class).

    ``k_on_M_s`` (1/(M·s)) is area-based: it already contains the footprint, so that
    θ is the area fraction covered.  ``opsonin`` marks proteins that tag the particle
    for phagocytes (IgG, complement, fibrinogen).
    """

    name: str
    k_on_M_s: float
    k_off_s: float
    conc_M: float
    thickness_nm: float
    opsonin: bool
    kinetics_source: str
    conc_source: str
    thickness_source: str


#: The default plasma proteins (human plasma, the medium of the published corona data).
PROTEINS: dict[str, Protein] = {
    p.name: p
    for p in (
        Protein(
            "HSA", 2.4e3, 2.0e-3, 6.0e-4, 3.3, False,
            _DELLORCO_TBL + ": k_on 2.4e3 1/(M·s), k_off 2e-3 1/s, as carried (\"cited from Dell'Orco et al. 2010\") "
            "in UFPBPK/Nano-PC 'AgNP-HSA Size Evolution Model'; a 2.4e4 reading exists and is not resolved here. "
            "SCIENCE.md's checks (τ = 0.69 s, θ_eq = 0.9986) follow from 2.4e3",
            _DELLORCO + ": plasma HSA 6e-4 M",
            "Röcker et al., Nat Nanotechnol 2009;4:577: HSA monolayer 3.3 nm thick",
        ),
        Protein(
            "HDL", 3.0e4, 2.0e-5, 1.5e-5, 10.0, False,
            _DELLORCO_TBL + ": HDL binds more slowly per molecule than HSA is displaced but with ~100-fold "
            "higher affinity, dominating the equilibrium corona" + _UNVERIFIED,
            _DELLORCO + ": plasma HDL ~10–20 µM (15 µM used)" + _UNVERIFIED,
            "HDL particle diameter 7–12 nm (Kontush & Chapman, Pharmacol Rev 2006;58:342); 10 nm used",
        ),
        Protein(
            "fibrinogen", 2.0e3, 2.0e-6, 8.8e-6, 6.0, True,
            _DELLORCO_TBL + ": slow association, very slow dissociation (days)" + _UNVERIFIED,
            "plasma fibrinogen 3 g/L / 340 kDa = 8.8 µM (SCIENCE.md §3: 6–12 µM)",
            "fibrinogen 47.5 × 6 nm rod adsorbed side-on (Hall & Slayter, J Biophys Biochem Cytol 1959;5:11): 6 nm",
        ),
        Protein(
            "IgG", 1.0e3, 1.0e-5, 6.7e-5, 8.0, True,
            "assumption (no measured NP-binding kinetics found): opsonin class IgG/complement with a "
            "slow association and high affinity (hours-long residence), as seen in hard coronas rich in IgG "
            "and complement (Tenzer et al., Nat Nanotechnol 2013;8:772)",
            "human plasma IgG ~10 g/L (reference range 7–16 g/L) / 150 kDa = 6.7e-5 M",
            "IgG 14.2 × 8.5 × 3.8 nm (Silverton et al., PNAS 1977;74:5140): 8 nm adsorbed layer used",
        ),
    )
}

#: Coatings whose surface takes up no protein at all (Choi 2007: cysteine-coated QDs).
NON_ADSORBING = ("zwitterionic",)
PEG_COATINGS = ("PEG", "PEG-PLA")

_ZWITTERION_SRC = ("Choi et al., Nat Biotechnol 2007;25:1165: zwitterionic (cysteine) coated QDs adsorb no serum "
                   "protein; Murthy et al., JACS 2013;135:7799: zwitterion-tipped Au NPs, no size change in undiluted serum")
_PEG_MREF_SRC = ("Gref et al., Colloids Surf B 2000;18:301 and Owens & Peppas, Int J Pharm 2006;307:93: protein "
                 "repulsion grows with PEG MW up to ~5 kDa and changes little above; M_PEG = 2 kDa makes PEG 5 kDa "
                 "92 % of the full brush effect (assumption fitted to that qualitative trend)")
_PEG_PHI_SRC = ("Pelaz et al., ACS Nano 2015;9:6996: on PEGylated NPs the HSA corona thickness is ~50 % of that on "
                "the bare NP, i.e. about half the surface stays accessible at maximal grafting")
_PEG_RHO_SRC = ("Pelaz et al., ACS Nano 2015;9:6996 (fibrinogen adsorbs even less than HSA on PEGylated NPs); "
                "Owens & Peppas, Int J Pharm 2006;307:93 (PEG blocks opsonisation); residual opsonin association "
                "5 % of bare at a full brush is an assumption")


def coating_parameters(particle) -> dict:
    """``{"adsorption": a, "PEG_MW": M (g/mol)}`` for a :class:`~nanopk.particle.Particle` (or None)."""
    if particle is None:
        return {"adsorption": 1.0, "PEG_MW": 0.0}
    a = 0.0 if particle.coating in NON_ADSORBING else 1.0
    mw = float(particle.coating_mw_da or 0.0) if particle.coating in PEG_COATINGS else 0.0
    return {"adsorption": a, "PEG_MW": mw}


# ---------------------------------------------------------------------- closed forms
def langmuir_single(t_s, k_on_M_s: float, k_off_s: float, conc_M: float):
    """θ(t) of one protein on a bare surface, in excess: θ_eq·(1 − e^(−k_obs·t)).

    ``k_obs = k_on·C + k_off`` and ``θ_eq = k_on·C / k_obs``; ``t_s`` in seconds.
    Returns ``(theta, theta_eq, tau_s)`` with ``tau_s = 1/k_obs``.
    """
    import numpy as np

    k_obs = k_on_M_s * conc_M + k_off_s
    theta_eq = k_on_M_s * conc_M / k_obs
    return theta_eq * (1.0 - np.exp(-k_obs * np.asarray(t_s, dtype=float))), theta_eq, 1.0 / k_obs


def competitive_equilibrium(K_C: Mapping[str, float]) -> dict:
    """Equilibrium coverages ``θ_i = K_i·C_i / (1 + Σ_j K_j·C_j)`` (equal footprints)."""
    total = 1.0 + sum(K_C.values())
    return {k: v / total for k, v in K_C.items()}


def _equilibrium_opsonin_coverage(binding) -> sp.Expr:
    """φ_acc · Σ_ops K_i·C_i / (1 + Σ_j K_j·C_j), K = k_on/k_off, written over the product of the k_off.

    ``binding`` holds (k_on·C, k_off, opsonin) per protein, k_on already scaled by the
    adsorptivity and the PEG opsonin factor.  Multiplying through by Π k_off keeps the
    expression finite when one k_off is 0 (an irreversible binder then takes the surface).
    """
    def others(i):
        return sp.Mul(*[koff for j, (_, koff, _) in enumerate(binding) if j != i])

    terms = [kc * others(i) for i, (kc, _, _) in enumerate(binding)]
    ops = [t for t, (_, _, opsonin) in zip(terms, binding) if opsonin]
    if not ops:
        return sp.Integer(0)
    return S("corona_accessible") * sp.Add(*ops) / (sp.Mul(*[koff for _, koff, _ in binding]) + sp.Add(*terms))


# ---------------------------------------------------------------------- the part
def _resolve_proteins(proteins) -> list[Protein]:
    out, problems = [], []
    for entry in proteins:
        if isinstance(entry, Protein):
            out.append(entry)
        elif isinstance(entry, str):
            if entry not in PROTEINS:
                problems.append(f"unknown protein {entry!r}{suggest(entry, PROTEINS)}; known: {', '.join(PROTEINS)} "
                                "(or give a table with name, k_on_M_s, k_off_s, conc_M, thickness_nm, opsonin, source)")
            else:
                out.append(PROTEINS[entry])
        elif isinstance(entry, Mapping):
            d = dict(entry)
            base = PROTEINS.get(d.get("name", ""))
            required = ("name", "k_on_M_s", "k_off_s", "conc_M") if base is None else ("name",)
            missing = [k for k in required if k not in d]
            if missing or (base is None and "source" not in d):
                problems.append(f"protein {d.get('name', '?')!r} needs {', '.join(missing + ([] if base or 'source' in d else ['source']))}")
                continue
            src = d.get("source")
            out.append(Protein(
                d["name"],
                float(d.get("k_on_M_s", base.k_on_M_s if base else 0.0)),
                float(d.get("k_off_s", base.k_off_s if base else 0.0)),
                float(d.get("conc_M", base.conc_M if base else 0.0)),
                float(d.get("thickness_nm", base.thickness_nm if base else 3.3)),
                bool(d.get("opsonin", base.opsonin if base else False)),
                src or base.kinetics_source, src or base.conc_source,
                d.get("thickness_source", src or (base.thickness_source if base else "")),
            ))
        else:
            problems.append(f"protein entries must be names or tables (got {entry!r})")
    names = [p.name for p in out]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        problems.append(f"protein(s) listed twice: {', '.join(dup)}")
    bad = [p.name for p in out if not p.name.isidentifier()]
    if bad:
        problems.append(f"protein names must be identifiers (got {', '.join(map(repr, bad))})")
    if problems:
        raise SpecError("invalid corona proteins:", problems)
    if not out:
        raise SpecError("the corona needs at least one protein")
    return out


def _corona(ctx: BuildContext, proteins, hardening: bool, name: str, medium: str, medium_scale: bool,
            d_h_state: bool = False) -> Part:
    prots = _resolve_proteins(proteins)
    coat = coating_parameters(ctx.particle)
    d_buffer = ctx.particle.hydrodynamic_diameter if ctx.particle is not None else 15.0
    if ctx.particle is not None:
        from_particle = f"set from the Particle (coating {ctx.particle.coating!r})"
    else:
        from_particle = "no particle given: bare 15 nm surface assumed"
    params = [
        param("corona_adsorption", coat["adsorption"], "dimensionless", f"{from_particle}: 0 for a non-adsorbing surface, 1 otherwise; {_ZWITTERION_SRC}",
              (0.0, 1.0), "surface adsorptivity (0 = no corona)"),
        param("PEG_MW", coat["PEG_MW"], "g/mol", f"{from_particle}: PEG chain molecular weight, 0 without PEG", (0.0, 1e5), "PEG molecular weight"),
        param("M_PEG", 2000.0, "g/mol", _PEG_MREF_SRC, (100.0, 1e5), "characteristic PEG MW of protein repulsion"),
        param("PEG_accessible_min", 0.5, "dimensionless", _PEG_PHI_SRC, (0.0, 1.0), "surface fraction left accessible by a full PEG brush"),
        param("PEG_opsonin_min", 0.05, "dimensionless", _PEG_RHO_SRC, (0.0, 1.0), "opsonin association left by a full PEG brush (fraction of bare)"),
        param("d_h_buffer", d_buffer, "nm", f"{from_particle}: hydrodynamic diameter in buffer (measured, or core + coating shell)",
              (0.5, 5000.0), "hydrodynamic diameter before protein adsorption"),
        param("alpha_opsonin", 9.0, "dimensionless",
              "assumption: a particle fully covered by opsonins is taken up 10× faster than an opsonin-free one "
              "(macrophage uptake rises with adsorbed serum protein over about an order of magnitude across PEG "
              "densities: Walkey et al., JACS 2012;134:2139, doi:10.1021/ja2084338; Owens & Peppas 2006)",
              (0.0, 100.0), "gain of phagocytic uptake per unit opsonin coverage"),
    ]
    if medium_scale:
        params.append(param("plasma_strength", 1.0, "dimensionless",
                            "undiluted plasma; set to the plasma fraction of an in-vitro incubation medium (e.g. 0.1 for 10 % plasma)",
                            (0.0, 1.0), "scales every protein concentration"))
    if hardening:
        params += [
            param("k_hard", 1.0, "1/h",
                  "soft → hard corona maturation on the hour scale: Tenzer et al., Nat Nanotechnol 2013;8:772 (corona "
                  "amount evolves over 0.5–480 min); calibrated to d_h growth of AgNP20 in HSA over 0.3–3 h "
                  "(Zhao 2021 via UFPBPK/Nano-PC); soft HSA residence ~100 s (Röcker 2009) is much faster",
                  (0.0, 100.0), "first-order hardening rate"),
            param("epsilon_hard", 0.01, "dimensionless",
                  "hard corona is practically irreversible on the hours scale (Milani et al., ACS Nano 2012;6:2532); "
                  "hard-layer off-rate 1 % of the soft one is an assumption", (0.0, 1.0), "hard/soft off-rate ratio"),
            param("L_outer", 3.3, "nm",
                  "one loosely bound HSA layer (3.3 nm, Röcker 2009) on the hard corona (Milani 2012; Walczyk et al., "
                  "JACS 2010;132:5761)", (0.0, 50.0), "thickness of the outer soft layer on the hard corona"),
        ]
    g = 1 - sp.exp(-S("PEG_MW") / S("M_PEG"))
    assignments = [
        Assignment("PEG_brush", g, "dimensionless", "PEG brush completeness g = 1 − exp(−M/M_PEG)"),
        Assignment("corona_accessible", 1 - (1 - S("PEG_accessible_min")) * S("PEG_brush"), "dimensionless", "surface fraction accessible to proteins"),
        Assignment("opsonin_kon_factor", 1 - (1 - S("PEG_opsonin_min")) * S("PEG_brush"), "dimensionless", "PEG reduction of opsonin association"),
    ]
    states, rules = [], []
    covered = []
    thickness = []
    hard_terms = []
    opsonins = []
    growth = []  # d(corona_thickness)/dt, for d_h as a state
    binding = []  # (k_on·C, k_off, opsonin?) per protein, for the equilibrium opsonin coverage
    for p in prots:
        n = p.name
        params += [
            param(f"kon_{n}", p.k_on_M_s * S_PER_H, "1/(M*h)", f"{p.kinetics_source}; {p.k_on_M_s:g} 1/(M·s) × 3600",
                  (0.0, 1e12), f"{n} area-based association rate constant"),
            param(f"koff_{n}", p.k_off_s * S_PER_H, "1/h", f"{p.kinetics_source}; {p.k_off_s:g} 1/s × 3600",
                  (0.0, 1e6), f"{n} dissociation rate constant"),
            param(f"C_{n}", p.conc_M, "M", p.conc_source, (0.0, 1.0), f"{n} concentration in {medium}"),
            param(f"L_{n}", p.thickness_nm, "nm", p.thickness_source, (0.0, 100.0), f"{n} adsorbed layer thickness"),
        ]
        conc = S(f"C_{n}") * (S("plasma_strength") if medium_scale else 1)
        kon = S(f"kon_{n}") * S("corona_adsorption") * (S("opsonin_kon_factor") if p.opsonin else 1)
        binding.append((kon * (S(f"C_{n}") * (S("plasma_strength") if medium_scale else 1)), S(f"koff_{n}"), p.opsonin))
        soft, hard = f"theta_{n}", f"theta_hard_{n}"
        states.append(State(soft, "coverage", "dimensionless", 0.0, description=f"soft-corona area fraction covered by {n}"))
        expr = kon * conc * S("corona_free_surface") - S(f"koff_{n}") * S(soft)
        total_i = S(soft)
        if hardening:
            expr -= S("k_hard") * S(soft)
        rules.append(RateRule(soft, expr, f"{n} competitive Langmuir adsorption"))
        d_total_i = kon * conc * S("corona_free_surface") - S(f"koff_{n}") * S(soft)
        if hardening:
            states.append(State(hard, "coverage", "dimensionless", 0.0, description=f"hard-corona area fraction covered by {n}"))
            d_hard = S("k_hard") * S(soft) - S("epsilon_hard") * S(f"koff_{n}") * S(hard)
            rules.append(RateRule(hard, d_hard, f"{n} hardening"))
            total_i = total_i + S(hard)
            hard_terms.append(S(hard))
            d_total_i = d_total_i - S("epsilon_hard") * S(f"koff_{n}") * S(hard)
            growth.append(S("L_outer") * d_hard)
        growth.append(S(f"L_{n}") * d_total_i)
        covered.append(total_i)
        thickness.append(S(f"L_{n}") * total_i)
        if p.opsonin:
            opsonins.append(total_i)
    total = sp.Add(*covered)
    outer = S("L_outer") * sp.Add(*hard_terms) if hardening else 0
    assignments += [
        Assignment("corona_coverage", total, "dimensionless", "Σ (θ + η): area fraction covered by protein"),
        Assignment("corona_free_surface", S("corona_accessible") - S("corona_coverage"), "dimensionless", "free surface f"),
        Assignment("opsonin_coverage", sp.Add(*opsonins) if opsonins else sp.Integer(0), "dimensionless", "area fraction covered by opsonins"),
        Assignment("opsonin_factor", 1 + S("alpha_opsonin") * S("opsonin_coverage"), "dimensionless", "multiplies phagocytic uptake"),
        Assignment("opsonin_coverage_eq", _equilibrium_opsonin_coverage(binding), "dimensionless",
                   "opsonin coverage of one particle at the competitive-Langmuir equilibrium (soft exchange, PEG shielding "
                   "included): a property of the particle, not of the time since the first dose"),
        Assignment("corona_thickness", sp.Add(*thickness) + outer, "nm", "protein layer thickness"),
    ]
    if d_h_state:
        # d_h = d_h_buffer + 2·corona_thickness, integrated rather than assigned: the
        # size-dependent mechanisms (two-pore EPR, renal sieving) then depend on one
        # state instead of every coverage, which keeps their Jacobian entries (and the
        # compile time) small.  The rate rule is the exact time derivative.
        states.append(State("d_h", "auxiliary", "nm", "d_h_buffer", description="hydrodynamic diameter with the corona"))
        rules.append(RateRule("d_h", 2 * sp.Add(*growth), "d/dt of d_h_buffer + 2·corona_thickness"))
    else:
        assignments.append(Assignment("d_h", S("d_h_buffer") + 2 * S("corona_thickness"), "nm", "hydrodynamic diameter with the corona"))
    observables = [Observable(f"coverage_{p.name}", c, "dimensionless", f"{p.name} area fraction (soft + hard)") for p, c in zip(prots, covered)]
    observables += [
        Observable("coverage_total", S("corona_coverage"), "dimensionless", "total protein coverage"),
        Observable("coverage_opsonin", S("opsonin_coverage"), "dimensionless", "opsonin coverage"),
        Observable("opsonin_factor", S("opsonin_factor"), "dimensionless", "multiplier of phagocytic uptake"),
        Observable("d_h_nm", S("d_h"), "nm", "hydrodynamic diameter with the corona"),
    ]
    if hardening:
        observables.append(Observable("coverage_hard", sp.Add(*hard_terms), "dimensionless", "hard-corona coverage"))
    notes = (
        "corona: plasma proteins in excess (constant concentrations); coverages are area fractions with footprints folded into k_on",
        "corona: one corona for all circulating particles (mean field): particles that leave and re-enter the blood keep the blood corona's age",
    )
    return Part(name, tuple(states), tuple(params), (), tuple(rules), tuple(assignments), tuple(observables), notes)


@declare(provides=("corona", "plasma_particles"), groups={"corona and opsonisation": ("kon", "koff", "opsonin")})  # nanopk.compare tests each group as one
def plasma_corona(ctx: BuildContext, proteins: Iterable = ("HSA", "HDL", "fibrinogen", "IgG"), hardening: bool = True) -> Part:
    """The corona of particles incubated in plasma (in vitro), with its dose state.

    Declares ``plasma_particles`` (a particle mass state nothing moves: the model's
    dose target) and the coverage states ``theta_{protein}`` (soft) and
    ``theta_hard_{protein}`` (hard, when ``hardening``).  ``plasma_strength`` scales
    every protein concentration (0.1 for 10 % plasma).

    Parameters
    ----------
    proteins : sequence of str or table
        Names from :data:`PROTEINS` or tables ``{name, k_on_M_s, k_off_s, conc_M,
        thickness_nm, opsonin, source}`` (values per second and molar, as published).
    hardening : bool
        Add the soft → hard maturation and the outer layer on the hard corona.
    """
    part = _corona(ctx, proteins, hardening, "corona.plasma_corona", "the incubation plasma", True)
    dose_state = State("plasma_particles", organ="plasma", volume=None, description="particles in the incubation plasma (nothing moves them)")
    return Part(part.name, (dose_state,) + part.states, part.parameters, part.fluxes, part.rate_rules,
                part.assignments, part.observables, part.notes)


@declare(provides=("corona",), groups={"corona and opsonisation": ("kon", "koff", "opsonin")})  # nanopk.compare tests each group as one
def blood_corona(ctx: BuildContext, proteins: Iterable = ("HSA", "HDL", "fibrinogen", "IgG"), hardening: bool = True,
                 d_h_state: bool = True) -> Part:
    """The corona of particles circulating in blood (whole-body models).

    Provides ``opsonin_factor`` (for
    ``clearance.hill_phagocytic_uptake(opsonin_factor="opsonin_factor")``), ``d_h`` (nm,
    for ``diameter_assignment = "d_h"`` of EPR and renal filtration) and
    ``corona_coverage`` (used by aggregation: covered surface does not coagulate).
    Protein concentrations are those of (human) plasma; see :data:`PROTEINS`.

    Parameters
    ----------
    proteins, hardening :
        As for :func:`plasma_corona`.
    d_h_state : bool
        Integrate ``d_h`` as an auxiliary state whose rate rule is the exact time
        derivative of ``d_h_buffer + 2·corona_thickness`` (default), instead of an
        assignment.  The values are the same to solver tolerance; the size-dependent
        mechanisms then differentiate through one variable rather than every
        coverage, which cuts the symbolic Jacobian and C compile of a full model ~5×.
    """
    return _corona(ctx, proteins, hardening, "corona.blood_corona", "plasma", False, d_h_state)
