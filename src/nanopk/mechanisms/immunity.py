"""Immune responses to the particle: accelerated blood clearance (ABC) of repeated PEG doses.

A first dose of PEGylated carriers makes splenic B cells secrete anti-PEG IgM without T-cell
help (a T-independent type-2 antigen); IgM binds the PEG of particles circulating days
later, and the opsonised particles are taken up by Kupffer cells, so a second dose
leaves the blood rapidly and accumulates in the liver (Dams et al. 2000; Ishida et al.
2006, 2011; Zhang et al. 2016).  nanopk models this with two dimensionless states, the
activated splenic B-cell signal ``B`` and the anti-PEG IgM titre ``I`` (both fractions of
their maximum), and one extra uptake flux::

    E       = C_spleen,capillary · V_plasma / dose           (splenic exposure, per initial concentration)
    dB/dt   = k_act · a_PEG · E/(E + E50) · (1 − B) − k_wane · B
    dP₁/dt  = k_d · (B − P₁),   dP₂/dt = k_d · (P₁ − P₂),   dP₃/dt = k_d · (P₂ − P₃)
    dI/dt   = k_d · (P₃ − I),   k_d = 4 / τ_IgM
    J_ABC   = k_ABC · I · A_liver,capillary    liver capillary blood → liver phagocytes

``a_PEG`` is 1 for a PEGylated particle and 0 otherwise (the antibody is anti-PEG), so
for any other coating the part changes nothing.  ``B`` is the activated B-cell pool: it
is switched on within hours of a PEGylated dose and wanes over weeks; ``P₁…P₃`` are the
stages of differentiation into IgM-secreting cells, a gamma-distributed delay of mean
``τ_IgM`` (5 days).  Starting from zero the titre rises as (k_d·t)⁴/24 at first, so it
is ~1 % of its maximum one day after the first dose (whose early curve is that of the
model without ABC) and ~80 % a week later, when a second dose meets it.  Mass is
conserved: ``J_ABC`` moves particles between two mass states.

The mechanism is optional: add ``use = "immunity.accelerated_blood_clearance"`` to a
spec (after the circulation); none of the bundled models lists it.  Its rate constants
are assumptions that put the titre's rise in days (the ABC phenomenon is seen when the
second dose follows the first by days); they are not fitted to a published titre curve.

Sources
-------
1. Dams ET, Laverman P, Oyen WJ, Storm G, Scherphof GL, van der Meer JW, Corstens FH,
   Boerman OC. Accelerated blood clearance and altered biodistribution of repeated
   injections of sterically stabilized liposomes. J Pharmacol Exp Ther 2000;292:1071.
2. Ishida T, Ichihara M, Wang X, Yamamoto K, Kimura J, Majima E, Kiwada H. Injection of
   PEGylated liposomes in rats elicits PEG-specific IgM, which is responsible for rapid
   elimination of a second dose of PEGylated liposomes. J Control Release 2006;112:15
   (doi:10.1016/j.jconrel.2006.01.005).
3. Ishida T, Kiwada H et al. Anti-PEG IgM response against PEGylated liposomes in mice
   and rats. Pharmaceutics 2011;3:1 (doi:10.3390/pharmaceutics3010001): the spleen is
   the major organ secreting anti-PEG IgM; splenic B cells secrete it without T cells.
4. Zhang Q et al. Repeated administration of hyaluronic acid coated liposomes with
   improved pharmacokinetics and reduced immune response. Mol Pharm 2016: the ABC
   phenomenon of PEG liposomes comes with greatly increased liver accumulation.
"""
from __future__ import annotations


from ..errors import SpecError
from ..parts import Assignment, Flux, Observable, Part, RateRule, State, symbol
from .base import BuildContext, declare, param

__all__ = ["accelerated_blood_clearance"]

S = symbol


_ISHIDA2006 = "Ishida et al., J Control Release 2006;112:15 (doi:10.1016/j.jconrel.2006.01.005)"
_ISHIDA2011 = "Ishida et al., Pharmaceutics 2011;3:1 (doi:10.3390/pharmaceutics3010001)"
_DAMS2000 = "Dams et al., J Pharmacol Exp Ther 2000;292:1071"


@declare(requires=("circulation",), provides=("immunity",))
def accelerated_blood_clearance(ctx: BuildContext) -> Part:
    """Anti-PEG IgM induced by a PEGylated dose, clearing later PEG particles into Kupffer cells.

    States ``antiPEG_B``, ``antiPEG_P1…P3`` and ``antiPEG_IgM`` (dimensionless, non-mass), the flux
    ``abc_uptake_liver`` from ``liver_capillary`` to ``liver_phagocytes`` and the
    observable ``anti_PEG_IgM_titre`` (the relative titre); equations in the module docstring.

    Raises
    ------
    SpecError
        If the circulation is not listed before it, or the model has no liver
        phagocytes (``phagocyte_organs`` of ``circulation.whole_body`` must include
        the liver).
    """
    if "liver" not in ctx.phagocyte_organs or "spleen" not in ctx.organs:
        raise SpecError("immunity.accelerated_blood_clearance needs a spleen and liver phagocytes: list 'spleen' in the "
                        "organs and 'liver' in the phagocyte_organs of circulation.whole_body")
    particle = ctx.particle
    pegylated = 1.0 if (particle is not None and particle.is_pegylated) else 0.0
    origin = (f"set from the Particle (coating {particle.coating!r})" if particle is not None else "no particle given: not PEGylated")
    params = (
        param("ABC_PEG", pegylated, "dimensionless", f"{origin}: 1 for a PEGylated surface, 0 otherwise; the antibody is "
              f"anti-PEG IgM ({_ISHIDA2006})", (0.0, 1.0), "PEG antigen present (0/1)"),
        param("E50_ABC", 0.1, "dimensionless",
              f"assumption: half-maximal B-cell activation when splenic blood carries 10 % of the initial concentration; "
              f"even small first doses induce the response ({_ISHIDA2011}: a T-independent type-2 antigen)",
              (1e-6, 10.0), "splenic exposure giving half-maximal B-cell activation"),
        param("k_act_ABC", 1.0, "1/h",
              f"assumption: splenic B cells are activated within hours of exposure to PEG ({_ISHIDA2011}: splenic "
              "marginal-zone B cells secrete anti-PEG IgM without T-cell help)", (0.0, 100.0), "B-cell activation rate"),
        param("k_wane_ABC", 0.003, "1/h",
              "assumption: the activated B-cell pool wanes over weeks (half-time ~10 days); the ABC phenomenon depends on "
              f"the interval between doses ({_ISHIDA2006})", (0.0, 10.0), "waning rate of the activated B-cell pool"),
        param("tau_IgM_ABC", 120.0, "h",
              f"assumption: anti-PEG IgM appears days after the first dose (mean delay 5 days), when a second dose is "
              f"cleared rapidly ({_DAMS2000}; {_ISHIDA2006})", (1.0, 2000.0),
              "mean delay from B-cell activation to the IgM titre"),
        param("k_ABC", 10.0, "1/h",
              f"assumption: at the maximal titre, Kupffer cells clear IgM-opsonised particles from liver capillary blood "
              f"at 10 /h, so a second dose leaves the blood within hours ({_DAMS2000}: rapid clearance of a repeated "
              "dose with altered, liver-dominated biodistribution)", (0.0, 1000.0),
              "IgM-mediated uptake rate at the maximal titre"),
    )
    exposure = S("spleen_capillary") / S("V_spleen_capillary") * S("V_plasma") / S("dose")
    chain = ["antiPEG_B", "antiPEG_P1", "antiPEG_P2", "antiPEG_P3", "antiPEG_IgM"]
    states = (
        State("antiPEG_B", "auxiliary", "dimensionless", 0.0, description="activated splenic B-cell pool (fraction of maximal)"),
        *(State(n, "auxiliary", "dimensionless", 0.0, description=f"IgM-secreting cell differentiation, stage {i}")
          for i, n in enumerate(chain[1:-1], start=1)),
        State("antiPEG_IgM", "auxiliary", "dimensionless", 0.0, description="anti-PEG IgM titre (fraction of maximal)"),
    )
    assignments = (Assignment("ABC_exposure", exposure, "dimensionless",
                              "splenic capillary concentration per initial plasma concentration of the dose"),)
    k_d = (len(chain) - 1) / S("tau_IgM_ABC")
    activation = S("ABC_PEG") * S("ABC_exposure") / (S("ABC_exposure") + S("E50_ABC"))
    rules = (
        RateRule("antiPEG_B", S("k_act_ABC") * activation * (1 - S("antiPEG_B")) - S("k_wane_ABC") * S("antiPEG_B"),
                 "B-cell activation by PEG in the splenic blood, waning over weeks"),
        *(RateRule(later, k_d * (S(earlier) - S(later)), "one stage of the delay to the IgM titre")
          for earlier, later in zip(chain, chain[1:])),
    )
    fluxes = (Flux("abc_uptake_liver", "liver_capillary", "liver_phagocytes", S("k_ABC") * S("antiPEG_IgM") * S("liver_capillary"),
                   "k_ABC · I · A_liver,cap: Kupffer-cell uptake of IgM-opsonised particles"),)
    observables = (Observable("anti_PEG_IgM_titre", S("antiPEG_IgM"), "dimensionless", "anti-PEG IgM titre (fraction of maximal)"),)
    return Part("immunity.accelerated_blood_clearance", states, params, fluxes, rules, assignments, observables,
                notes=("immunity: accelerated blood clearance of PEG particles by anti-PEG IgM (Dams 2000; Ishida 2006); "
                       "titre kinetics are assumptions in days, not fitted",))
