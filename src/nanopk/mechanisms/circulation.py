"""Circulation: the whole-body PBPK skeleton (blood, organs, capillary exchange).

Blood leaves the venous pool through the lungs into the arterial pool and returns
through every systemic organ (the spleen drains into the liver):

    venous → lung capillary → arterial → organ capillary → venous
    flow flux        = Q · C_capillary                     (blood-flow-limited)

Each organ is split into capillary blood (a fraction ``f_B`` of the organ volume),
tissue and phagocytic cells (the RES; not in brain).  Nanoparticles cross the capillary
wall by permeability-limited exchange,

    J_cap→tis = PA · C_cap,    J_tis→cap = PA · C_tis / P,    PA = PAC · Q_organ,

with ``P`` the tissue:blood distribution coefficient.  Phagocytic uptake and
excretion are added by :mod:`nanopk.mechanisms.clearance`.

Observation model (what the ``blood`` and organ observables mean; DESIGN.md
"Observation model").  Biodistribution data are whole-blood samples and organ
homogenates, and the observables are defined as those are measured:

- ``blood`` (%ID) is the circulating concentration times the total blood volume:
  ``C_circ = A_vasc / V_vasc`` with ``A_vasc`` every particle in the blood -- the
  arterial and venous pools (and the other states a mechanism puts in ``organ="blood"``:
  aggregates, opsonised particles) plus every organ's capillary (residual) blood,
  tumour included -- and ``V_vasc`` their volumes, so ``blood = C_circ · V_vasc =
  100 · A_vasc / dose``.  It reads 100 %ID at t = 0+ after an IV bolus.  (Before,
  ``blood`` counted the two pools only, 3.55 % of BW of plasma, and read ~40 %ID
  36 s after a bolus in the mouse, because the organs' capillaries hold 6.05 % of BW.)
- an organ (``liver``, ``tumour``...) is its tissue and phagocytes plus
  ``f_residual_blood`` times its capillary blood: 1 (default) for homogenates of
  animals that were not perfused, 0 for perfused animals.  A fit sets it to 0 for a
  dataset whose sidecar says ``"perfused": true`` (:mod:`nanopk.fit._data`).

Blood is thus counted in ``blood`` and again, as residual blood, in the organs, as in
the data; ``total`` (every mass state once) is the mass balance.  One known mismatch
remains: the Lin-lab structure's vascular space (plasma pools 3.55 % BW plus the
organs' capillary blood, 6.05 % BW in the mouse) is larger than the species table's
blood volume (6 % BW), which the data converter uses to turn whole-blood %ID/g into
%ID; the amounts agree (a bolus is 100 %ID in both), the model's concentrations are
diluted 1.6-fold against a real mouse's at the same amount.

Sources: Lin Z, Monteiro-Riviere NA, Riviere JE. A physiologically based
pharmacokinetic model for polyethylene glycol-coated gold nanoparticles of different
sizes in adult mice. Nanotoxicology 2016;10:162 (doi:10.3109/17435390.2015.1027314);
Chou WC et al., J Control Release 2023;361:53 (doi:10.1016/j.jconrel.2023.07.040);
physiology from Brown et al. 1997 (see :mod:`nanopk.physiology`).
"""
from __future__ import annotations

import sympy as sp

from ..parts import RESIDUAL_BLOOD_PARAMETER, Assignment, Flux, Part, State, is_residual_blood, observed_amounts, symbol
from .base import BuildContext, declare, param

__all__ = ["whole_body", "capillary_exchange", "organ_states", "is_residual_blood", "observed_amounts",
           "RESIDUAL_BLOOD_PARAMETER"]

#: Organs of the Lin-lab mouse structure, in the order of the published model.
DEFAULT_ORGANS = ("lung", "liver", "spleen", "kidney", "brain", "muscle", "rest")

_LIN2016 = "Lin et al., Nanotoxicology 2016;10:162 (doi:10.3109/17435390.2015.1027314), as carried in Chou et al. 2023"
#: Tissue:blood distribution coefficients (Lin 2016): liver 0.08, other tissues 0.15.
DISTRIBUTION = {"liver": 0.08}
DISTRIBUTION_DEFAULT = 0.15
#: Permeability-surface-area coefficients as fractions of organ blood flow (Lin 2016).
PAC = {"liver": 0.001, "spleen": 0.15, "kidney": 0.01, "lung": 0.001, "muscle": 5e-5, "rest": 5e-5, "brain": 1e-6}
#: Choices of ``whole_body(liver_outflow=...)``: what drains the liver's capillary blood.
LIVER_OUTFLOWS = ("hepatic_vein", "hepatic_artery")
#: Capillary blood fraction of the rest of the body, taken equal to muscle (Chou 2023).
REST_CAPILLARY_FRACTION = 0.04

S = symbol


def organ_states(organ: str, phagocytes: bool = True) -> tuple[State, ...]:
    """Capillary, tissue and (optionally) phagocytic-cell states of one organ."""
    states = [
        State(f"{organ}_capillary", organ=organ, volume=f"V_{organ}_capillary", description=f"NP in {organ} capillary blood"),
        State(f"{organ}_tissue", organ=organ, volume=f"V_{organ}_tissue", description=f"NP in {organ} interstitium/parenchyma"),
    ]
    if phagocytes:
        states.append(State(f"{organ}_phagocytes", organ=organ, volume=f"V_{organ}_tissue", description=f"NP inside {organ} phagocytic cells"))
    return tuple(states)


def capillary_exchange(organ: str, flow: sp.Expr) -> tuple[tuple, tuple]:
    """Permeability-limited exchange of one organ: parameters and the two fluxes."""
    params = (
        param(f"P_{organ}", DISTRIBUTION.get(organ, DISTRIBUTION_DEFAULT), "dimensionless", _LIN2016, (1e-4, 10.0),
              f"{organ} tissue:blood distribution coefficient"),
        param(f"PAC_{organ}", PAC.get(organ, 5e-5), "dimensionless", _LIN2016, (1e-8, 1.0),
              f"{organ} permeability-surface area product as a fraction of its blood flow"),
    )
    PA = S(f"PAC_{organ}") * flow
    c_cap = S(f"{organ}_capillary") / S(f"V_{organ}_capillary")
    c_tis = S(f"{organ}_tissue") / S(f"V_{organ}_tissue")
    fluxes = (
        Flux(f"extravasation_{organ}", f"{organ}_capillary", f"{organ}_tissue", PA * c_cap, "PA · C_cap"),
        Flux(f"reabsorption_{organ}", f"{organ}_tissue", f"{organ}_capillary", PA * c_tis / S(f"P_{organ}"), "PA · C_tis / P"),
    )
    return params, fluxes


@declare(provides=("circulation",), groups={"extravasation": ("PAC", "P")})  # nanopk.compare tests each group as one
def whole_body(ctx: BuildContext, organs=DEFAULT_ORGANS, phagocyte_organs=("liver", "spleen", "kidney", "lung"),
               body_weight_kg: float | None = None, liver_outflow: str = "hepatic_vein") -> Part:
    """Whole-body blood-flow- and permeability-limited PBPK skeleton.

    Parameters
    ----------
    organs : sequence of str
        Organs to build; ``lung`` and ``liver`` are required (the pulmonary and
        hepatic circulations close the loop), ``rest`` takes the remaining body mass
        and blood flow.
    phagocyte_organs : sequence of str
        Organs given a phagocytic-cell (RES) sub-compartment; the default follows the
        organs with published uptake parameters (Lin 2016; Chou 2023).
    body_weight_kg : float, optional
        Body weight; defaults to the species table's reference weight.
    liver_outflow : {"hepatic_vein", "hepatic_artery"}
        Flow that drains the liver's capillary blood to the venous pool.
        ``"hepatic_vein"`` (default): hepatic artery plus the portal (splenic) flow
        that enters it, ``(Q_liver + Q_spleen) · C_liver,cap`` — every flow that enters
        an organ leaves it.  ``"hepatic_artery"``: ``Q_liver · C_liver,cap`` only, as
        the published code of Chou et al. 2023 writes it (UFPBPK/Nano-AI-PBPK-G1
        ``Main_Code.R``: ``RV = QL*CVL + ...`` while ``RLb = QL*(CA-CVL) + QS*CVS ...``),
        so the portal flow's particles stay in the liver's capillary blood until the
        hepatic artery flow carries them out (before uptake, C_liver,cap ≈
        (Q_liver + Q_spleen)/Q_liver ≈ 1.55 × C_arterial in the mouse); needed to
        reproduce that model's fitted per-dataset outputs.  Mass balance is exact
        either way (each flux moves what it removes).

    Notes
    -----
    Blood pools hold plasma volume split 20 % arterial / 80 % venous, as in the
    Lin/Chou model; NPs do not enter red cells.  ``rest`` gets the cardiac output and
    body mass not assigned to other organs; a tumour added later (EPR) draws its small
    flow (2 % of cardiac output in the mouse) from the arterial pool on top of these.
    """
    phys = ctx.physiology
    organs = tuple(organs)
    for required in ("lung", "liver"):
        if required not in organs:
            from ..errors import SpecError
            raise SpecError(f"circulation.whole_body needs organ {required!r} (got {list(organs)})")
    if liver_outflow not in LIVER_OUTFLOWS:
        from ..errors import SpecError
        raise SpecError(f"circulation.whole_body: liver_outflow must be one of {', '.join(map(repr, LIVER_OUTFLOWS))} "
                        f"(got {liver_outflow!r})")
    ctx.organs = list(organs)
    ctx.phagocyte_organs = [o for o in phagocyte_organs if o in organs]
    bw = phys.body_weight_kg if body_weight_kg is None else float(body_weight_kg)
    src = phys.source
    params = [
        param("BW", bw, "kg", f"reference body weight, {src}", (1e-3, 200.0), "body weight"),
        param("QCC", phys.cardiac_output_L_h_kg075, "L/h/kg**0.75", f"{src} (Brown 1997 Table 22)", (1.0, 100.0), "cardiac output constant"),
        param("rho_tissue", 1.0, "kg/L", "tissue density ≈ 1 kg/L, the standard PBPK convention (Brown et al. 1997)", (0.9, 1.1), "converts organ mass to volume"),
        param(RESIDUAL_BLOOD_PARAMETER, 1.0, "dimensionless",
              "observation model: organ homogenates contain their residual blood unless the animals were perfused "
              "(DESIGN.md, Observation model); 1 = not perfused, 0 = perfused", (0.0, 1.0),
              "fraction of an organ's capillary blood counted in its observable"),
        param("f_plasma", phys.plasma_fraction, "dimensionless", "Davies & Morris, Pharm Res 1993;10:1093 (plasma 3.55 % of mouse BW), as in Chou 2023", (0.01, 0.1), "plasma volume fraction of BW"),
    ]
    assignments = [
        Assignment("Q_C", S("QCC") * S("BW") ** sp.Rational(3, 4), "L/h", "cardiac output"),
        Assignment("V_plasma", S("f_plasma") * S("BW") / S("rho_tissue"), "L", "plasma volume"),
        Assignment("V_arterial", sp.Rational(1, 5) * S("V_plasma"), "L", "arterial plasma (20 %)"),
        Assignment("V_venous", sp.Rational(4, 5) * S("V_plasma"), "L", "venous plasma (80 %)"),
    ]
    states = [
        State("arterial_blood", organ="blood", volume="V_arterial", description="NP in arterial plasma"),
        State("venous_blood", organ="blood", volume="V_venous", description="NP in venous plasma"),
    ]
    fluxes = []
    c_art = S("arterial_blood") / S("V_arterial")
    c_ven = S("venous_blood") / S("V_venous")
    systemic = [o for o in organs if o not in ("lung", "rest")]
    for organ in organs:
        if organ == "rest":
            mass_fraction = 1 - sum(phys.organ(o).mass_fraction for o in organs if o != "rest") - phys.plasma_fraction
            flow_fraction = 1 - sum(phys.organ(o).blood_flow_fraction for o in systemic)
            capillary_fraction = REST_CAPILLARY_FRACTION
            how = f"remainder of body mass and cardiac output ({src})"
        else:
            o = phys.organ(organ)
            mass_fraction, flow_fraction, capillary_fraction, how = o.mass_fraction, o.blood_flow_fraction, o.capillary_blood_fraction, o.source
        params += [
            param(f"f_V_{organ}", mass_fraction, "dimensionless", how, (1e-5, 1.0), f"{organ} mass as a fraction of BW"),
            param(f"f_B_{organ}", capillary_fraction, "dimensionless", how, (1e-4, 0.9), f"capillary blood fraction of {organ}"),
        ]
        if organ != "lung":
            params.append(param(f"f_Q_{organ}", flow_fraction, "dimensionless", how, (1e-5, 1.0), f"{organ} blood flow as a fraction of cardiac output"))
        flow = S("Q_C") if organ == "lung" else S("Q_C") * S(f"f_Q_{organ}")
        assignments += [
            Assignment(f"Q_{organ}", flow, "L/h", f"{organ} blood flow"),
            Assignment(f"V_{organ}", S(f"f_V_{organ}") * S("BW") / S("rho_tissue"), "L", f"{organ} volume"),
            Assignment(f"V_{organ}_capillary", S(f"f_B_{organ}") * S(f"V_{organ}"), "L", f"{organ} capillary blood volume"),
            Assignment(f"V_{organ}_tissue", (1 - S(f"f_B_{organ}")) * S(f"V_{organ}"), "L", f"{organ} tissue volume"),
        ]
        states += organ_states(organ, phagocytes=organ in phagocyte_organs)
        p, f = capillary_exchange(organ, S(f"Q_{organ}"))
        params += p
        fluxes += f
        c_cap = S(f"{organ}_capillary") / S(f"V_{organ}_capillary")
        if organ == "lung":
            fluxes += [
                Flux("venous_to_lung", "venous_blood", "lung_capillary", S("Q_C") * c_ven, "pulmonary arterial flow"),
                Flux("lung_to_arterial", "lung_capillary", "arterial_blood", S("Q_C") * c_cap, "pulmonary venous return"),
            ]
            continue
        fluxes.append(Flux(f"arterial_to_{organ}", "arterial_blood", f"{organ}_capillary", S(f"Q_{organ}") * c_art, f"arterial supply of {organ}"))
        if organ == "spleen" and "liver" in organs:
            fluxes.append(Flux("spleen_to_liver", "spleen_capillary", "liver_capillary", S("Q_spleen") * c_cap, "splenic vein into the portal vein"))
        elif organ == "liver" and "spleen" in organs:
            if liver_outflow == "hepatic_artery":  # Chou 2023 Main_Code.R: RV = QL*CVL + ... (see the docstring)
                fluxes.append(Flux("liver_to_venous", "liver_capillary", "venous_blood", S("Q_liver") * c_cap,
                                   "hepatic artery flow only (Chou 2023 published code)"))
            else:
                fluxes.append(Flux("liver_to_venous", "liver_capillary", "venous_blood", (S("Q_liver") + S("Q_spleen")) * c_cap, "hepatic vein: hepatic artery plus portal flow"))
        else:
            fluxes.append(Flux(f"{organ}_to_venous", f"{organ}_capillary", "venous_blood", S(f"Q_{organ}") * c_cap, f"venous return from {organ}"))
    return Part("circulation.whole_body", tuple(states), tuple(params), tuple(fluxes), assignments=tuple(assignments))
