"""Physiology tables: organ masses, blood flows and capillary blood fractions.

Organ volumes scale with body weight, ``V_organ = f_V · BW`` (1 kg ≈ 1 L of tissue),
and cardiac output allometrically, ``Q_C = QCC · BW^0.75``; organ blood flows are
fractions of it, ``Q_organ = f_Q · Q_C``.  The capillary blood in an organ is a fraction
``f_B`` of the organ volume.  Organs not in a species table cannot be modelled for it;
organs with a mass but no flow (skin, bone, ...) serve data conversion only
(%ID/g × organ mass = %ID).

One table serves the model and the data: the data converter turns %ID/g into %ID
with :func:`organ_mass_g` from the same :class:`Organ` entries the circulation builds its
organ volumes from (``V_organ = f_V · BW``), so converter and model agree on every organ
mass.  Mouse (20 g reference; :func:`volume_sources` lists every species with sources):

=========  ========  ===========  =========  =====================================================
organ      % of BW   capillary    % of CO    source
=========  ========  ===========  =========  =====================================================
blood      6.0       --           --         Lin 2016 / Chou 2023 (Organ_percent_BW.xlsx: 4.9)
plasma     3.55      --           --         Davies & Morris 1993 (Chou 2023 VPlasC)
liver      5.5       0.31         2.0        Brown 1997 Tables 21/23/30, as in Lin 2016/Chou 2023
lung       0.7       0.5          100        Brown 1997 Tables 21/30
kidney     1.7       0.24         9.1        Brown 1997 Tables 21/23/30
brain      1.7       0.03         3.3        Brown 1997 Tables 21/23/30
spleen     0.5       0.17         1.1        Davies & Morris 1993; Brown 1997 Table 30
muscle     38.4      0.04         15.9       Brown 1997 Tables 21/23/30
tumour     0.76      0.02         2.0        median of 378 Nano-Tumor datasets (Chou 2023)
=========  ========  ===========  =========  =====================================================

``rest`` (built by the circulation) is the body mass and cardiac output left over,
capillary blood 0.04.  A dataset's sidecar ``tumour.weight_g`` (or ``organ_masses_g``)
overrides the table for the converter and, in fits, sets the model's ``f_V_tumour``
(``f_V_<organ>``) for that dataset (:mod:`nanopk.fit._data`).

Sources: Brown RP, Delp MD, Lindstedt SL, Rhomberg LR, Beliles RP. Physiological
parameter values for physiologically based pharmacokinetic models. Toxicol Ind Health
1997;13:407-484 (organ weights, blood flows, Table 30 blood volume fractions); the
mouse values as carried in the Lin-lab nano-PBPK (Lin et al., Nanotoxicology
2016;10:162, doi:10.3109/17435390.2015.1027314; Chou et al., J Control Release
2023;361:53, doi:10.1016/j.jconrel.2023.07.040).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .errors import ModelError, suggest

__all__ = ["Organ", "Physiology", "get_physiology", "organ_mass_g", "volume_sources", "SPECIES", "ICRP89_MALE"]


@dataclass(frozen=True)
class Organ:
    """One organ: fractions of body weight, of cardiac output and capillary blood."""

    name: str
    mass_fraction: float
    blood_flow_fraction: float | None = None
    capillary_blood_fraction: float | None = None
    source: str = ""


@dataclass(frozen=True)
class Physiology:
    """A species' physiology at a reference body weight."""

    species: str
    body_weight_kg: float
    cardiac_output_L_h_kg075: float
    blood_fraction: float
    plasma_fraction: float
    organs: dict[str, Organ] = field(default_factory=dict)
    source: str = ""
    blood_source: str = ""
    plasma_source: str = ""

    def organ(self, name: str) -> Organ:
        try:
            return self.organs[name]
        except KeyError:
            raise ModelError(
                f"no organ {name!r} in the {self.species} physiology table{suggest(name, self.organs)}; "
                f"available: {', '.join(self.organs)}"
            ) from None

    def organ_mass_g(self, name: str, body_weight_g: float | None = None) -> float:
        """Organ mass (g) at ``body_weight_g`` (default: the table's reference weight)."""
        bw_g = self.body_weight_kg * 1000.0 if body_weight_g is None else float(body_weight_g)
        if name == "blood":
            return self.blood_fraction * bw_g
        if name == "plasma":
            return self.plasma_fraction * bw_g
        return self.organ(name).mass_fraction * bw_g


_BROWN = "Brown et al., Toxicol Ind Health 1997;13:407"
_LIN_CHOU = "as used by Lin et al. 2016 and Chou et al. 2023 (J Control Release 361:53)"

_NANO_TUMOR_MEDIAN = (
    "median VTC 0.0076, QTC 0.02, BVT 0.02 over the 378 Nano-Tumor datasets fitted by Chou et al., J Control Release "
    "2023;361:53 (UFPBPK/Nano-AI-PBPK-G1 Model_dataset.xlsx); replaces the G2 code's VTC 0.024 (a ~0.5 g xenograft), "
    "3x the median tumour of the data"
)

_MOUSE = Physiology(
    species="mouse",
    body_weight_kg=0.02,
    cardiac_output_L_h_kg075=16.5,
    blood_fraction=0.06,
    plasma_fraction=0.0355,
    source=f"{_BROWN}; {_LIN_CHOU}",
    blood_source=("6 % BW: total blood volume of the mouse as carried by the Lin-lab models (Lin 2016; Chou 2023); "
                  "Organ_percent_BW.xlsx (NM-biodistribution-prediction, PROVENANCE.md §6; its source not given) lists "
                  "blood 4.9 % BW; neither checked against Brown 1997 here"),
    plasma_source="3.55 % BW: Davies & Morris, Pharm Res 1993;10:1093, as VPlasC in Chou 2023",
    organs={
        o.name: o
        for o in (
            # name, mass fraction of BW, fraction of cardiac output, capillary blood fraction
            Organ("liver", 0.055, 0.02, 0.31, f"{_BROWN}, Tables 21/23/30 ({_LIN_CHOU}); hepatic artery only: portal inflow arrives from the spleen"),
            Organ("lung", 0.007, 1.0, 0.5, f"{_BROWN}, Tables 21/30; the lung receives the whole cardiac output"),
            Organ("kidney", 0.017, 0.091, 0.24, f"{_BROWN}, Tables 21/23/30"),
            Organ("brain", 0.017, 0.033, 0.03, f"{_BROWN}, Tables 21/23/30"),
            Organ("spleen", 0.005, 0.011, 0.17, "Davies & Morris, Pharm Res 1993;10:1093; Brown 1997 Table 30"),
            Organ("muscle", 0.384, 0.159, 0.04, f"{_BROWN}, Tables 21/23/30"),
            Organ("heart", 0.005, None, None, f"{_BROWN}, Table 4 (0.50 % BW)"),
            Organ("skin", 0.1653, None, None, f"{_BROWN}, Table 4"),
            Organ("bone", 0.1073, None, None, f"{_BROWN}, Table 4"),
            Organ("gi", 0.0422, None, None, f"{_BROWN}, Table 4"),
            Organ("adipose", 0.07, None, None, f"{_BROWN}, Table 4"),
            # The default tumour of a dataset that gives no tumour weight, for the data
            # converter and the model alike: the median tumour of the Nano-Tumor datasets
            # (0.152 g in a 20 g mouse), with the median flow and capillary blood of the
            # same fits, so that the default is one coherent median set.
            Organ("tumour", 0.0076, 0.02, 0.02, _NANO_TUMOR_MEDIAN),
        )
    },
)

_NTUA_RAT = (
    "rat physiology table 'Rat physiological parameters.xlsx' (ntua-unit-of-control-and-informatics/"
    "TiO2_PBPK_IV @45dbb42; shared datasets/raw, PROVENANCE.md §8)"
)
_CHOU2022 = "Chou et al., Part Fibre Toxicol 2022;19:47 (doi:10.1186/s12989-022-00489-4), model code UFPBPK/Nano-iPBPK"
_DAVIES_MORRIS = "Davies & Morris, Pharm Res 1993;10:1093"

# Rat: organ masses (% BW), regional blood flows (% cardiac output) and residual
# (capillary) blood fractions of Brown et al. 1997.  Masses, flows and capillary
# fractions of liver, lung, kidney, brain, spleen, heart and skin are the same numbers
# in the shared NTUA rat table, which is cited alongside.  The liver flow is the hepatic
# artery only (2.1 % of 17.4 % total), because in nanopk's circulation the portal
# inflow arrives from the spleen.
_RAT = Physiology(
    species="rat",
    body_weight_kg=0.25,
    cardiac_output_L_h_kg075=14.0,
    blood_fraction=0.074,
    plasma_fraction=0.0312,
    blood_source=f"7.4 % BW: {_BROWN}",
    plasma_source="31.2 mL/kg: Davies & Morris, Pharm Res 1993;10:1093",
    source=(
        f"BW 0.25 kg: reference adult rat ({_BROWN}); QCC 14.0 L/h/kg^0.75: {_BROWN}, as in Lin-lab rat PBPK "
        f"models (Chou 2022 uses 15.0); blood 7.4 % BW: {_BROWN}; plasma 31.2 mL/kg: {_DAVIES_MORRIS}"
    ),
    organs={
        o.name: o
        for o in (
            # name, mass fraction of BW, fraction of cardiac output, capillary blood fraction
            Organ("liver", 0.0366, 0.021, 0.21,
                  f"mass 3.66 % BW, capillary blood 0.21: {_BROWN} and {_NTUA_RAT}; hepatic artery 2.1 % of cardiac "
                  f"output: {_BROWN}, as QLC 0.021 in {_CHOU2022} (total hepatic 17.4 % in {_NTUA_RAT})"),
            Organ("lung", 0.005, 1.0, 0.36,
                  f"mass 0.50 % BW, capillary blood 0.36: {_BROWN} and {_NTUA_RAT}; the lung receives the whole cardiac output"),
            Organ("kidney", 0.0073, 0.141, 0.16,
                  f"mass 0.73 % BW, flow 14.1 %, capillary blood 0.16: {_BROWN} and {_NTUA_RAT}"),
            Organ("brain", 0.0057, 0.020, 0.03,
                  f"mass 0.57 % BW, flow 2.0 %, capillary blood 0.03: {_BROWN} and {_NTUA_RAT}"),
            Organ("spleen", 0.002, 0.0085, 0.22,
                  f"mass 0.20 % BW, capillary blood 0.22: {_BROWN} and {_NTUA_RAT}; flow 0.85 %: {_DAVIES_MORRIS}, "
                  f"as QSC 0.0085 in {_CHOU2022} ({_NTUA_RAT} lists 1.22 %)"),
            Organ("muscle", 0.4043, 0.278, 0.04,
                  f"mass 40.43 % BW, flow 27.8 %: {_BROWN} ({_NTUA_RAT}: 40 %, 27.8 %); capillary blood 0.04: {_BROWN} "
                  f"Table 30 as carried for muscle by Chou et al. 2023 ({_NTUA_RAT} lists 0.0143)"),
            Organ("heart", 0.0033, 0.049, 0.26,
                  f"mass 0.33 % BW, flow 4.9 %, capillary blood 0.26: {_BROWN} and {_NTUA_RAT}"),
            Organ("skin", 0.1903, 0.058, 0.02,
                  f"mass 19.03 % BW, flow 5.8 %, capillary blood 0.02: {_BROWN} and {_NTUA_RAT}"),
            Organ("bone", 0.073, 0.122, 0.04,
                  f"mass 7.3 % BW: {_BROWN} ({_NTUA_RAT} lists skeleton 10 %); flow 12.2 %, capillary blood 0.04: {_NTUA_RAT}"),
            Organ("gi", 0.027, None, None, f"mass 2.7 % BW (GI tract, stomach and intestines): {_BROWN}"),
            Organ("adipose", 0.07, 0.07, 0.0055,
                  f"mass 7.0 % BW: {_BROWN}; flow 7 %, capillary blood 0.0055: {_NTUA_RAT}"),
        )
    },
)

# Human (reference adult, 70 kg): Brown et al. 1997 masses and flows; Brown gives no
# human residual-blood fractions, so the rat values stand in (stated per organ).
_WILLIAMS_LEGGETT = "Williams & Leggett, Clin Phys Physiol Meas 1989;10:187"
_RAT_SURROGATE = f"capillary blood fraction: rat value ({_BROWN}) as a surrogate"
_HUMAN = Physiology(
    species="human",
    body_weight_kg=70.0,
    cardiac_output_L_h_kg075=16.1,
    blood_fraction=0.079,
    plasma_fraction=0.0429,
    blood_source="7.9 % BW: Brown et al., Toxicol Ind Health 1997;13:407",
    plasma_source="3.0 L for 70 kg: Davies & Morris, Pharm Res 1993;10:1093",
    source=(
        f"BW 70 kg: reference adult ({_BROWN}); QCC 16.1 L/h/kg^0.75 = resting cardiac output 6.5 L/min "
        f"(reference adult male, {_WILLIAMS_LEGGETT}) / 70^0.75; blood 7.9 % BW: {_BROWN}; plasma 3.0 L "
        f"for 70 kg: {_DAVIES_MORRIS}"
    ),
    organs={
        o.name: o
        for o in (
            Organ("liver", 0.0257, 0.046, 0.21,
                  f"mass 2.57 % BW, hepatic artery 4.6 % of cardiac output (total hepatic 22.7 %): {_BROWN}; {_RAT_SURROGATE}"),
            Organ("lung", 0.0076, 1.0, 0.36,
                  f"mass 0.76 % BW: {_BROWN}; the lung receives the whole cardiac output; {_RAT_SURROGATE}"),
            Organ("kidney", 0.0044, 0.175, 0.16, f"mass 0.44 % BW, flow 17.5 %: {_BROWN}; {_RAT_SURROGATE}"),
            Organ("brain", 0.020, 0.114, 0.03, f"mass 2.00 % BW, flow 11.4 %: {_BROWN}; {_RAT_SURROGATE}"),
            Organ("spleen", 0.0026, 0.014, 0.22,
                  f"mass 0.26 % BW: {_BROWN}; flow 77 of 5600 mL/min = 1.4 %: {_DAVIES_MORRIS}; {_RAT_SURROGATE}"),
            Organ("muscle", 0.40, 0.191, 0.04, f"mass 40.0 % BW, flow 19.1 %: {_BROWN}; {_RAT_SURROGATE}"),
            Organ("heart", 0.0047, 0.040, 0.26, f"mass 0.47 % BW, flow 4.0 %: {_BROWN}; {_RAT_SURROGATE}"),
            Organ("skin", 0.0371, 0.058, 0.02, f"mass 3.71 % BW, flow 5.8 %: {_BROWN}; {_RAT_SURROGATE}"),
            Organ("bone", 0.1429, 0.042, 0.04, f"mass 14.29 % BW, flow 4.2 %: {_BROWN}; {_RAT_SURROGATE}"),
            Organ("adipose", 0.2142, 0.052, 0.0055, f"mass 21.42 % BW, flow 5.2 %: {_BROWN}; {_RAT_SURROGATE}"),
        )
    },
)

SPECIES: dict[str, Physiology] = {"mouse": _MOUSE, "rat": _RAT, "human": _HUMAN}

#: ICRP Publication 89 (2002) reference adult male, 73 kg: organ masses (g), the cross-check
#: of the Brown 1997 human fractions above (``volume_sources("human")`` carries both).
#: Lung: tissue only (1200 g with its blood).  As tabulated from ICRP 89 in Turner JE, Atoms,
#: Radiation, and Radiation Protection, 3rd ed., Wiley 2007, Table 16.1.
ICRP89_MALE = {
    "body_weight_g": 73000.0,
    "organs_g": {"liver": 1800.0, "lung": 500.0, "spleen": 150.0, "kidney": 310.0, "muscle": 29000.0,
                 "skin": 3300.0, "adipose": 18200.0},
    "source": ("ICRP Publication 89, Basic anatomical and physiological data for use in radiological protection: "
               "reference values, Ann ICRP 2002;32(3-4), reference adult male (as tabulated in Turner, Atoms, "
               "Radiation, and Radiation Protection, 3rd ed. 2007, Table 16.1)"),
}


def get_physiology(species: str) -> Physiology:
    """The physiology table of ``species`` (``"mouse"``, ``"rat"``, ``"human"``)."""
    try:
        return SPECIES[species]
    except KeyError:
        raise ModelError(f"no physiology table for species {species!r}{suggest(species, SPECIES)}; available: {', '.join(SPECIES)}") from None


def organ_mass_g(species: str, organ: str, body_weight_g: float | None = None) -> float:
    """Organ mass (g) for ``species`` scaled to ``body_weight_g``."""
    return get_physiology(species).organ_mass_g(organ, body_weight_g)


def volume_sources(species: str, body_weight_g: float | None = None) -> list[dict]:
    """Every volume of a species table with where it comes from: the one table both the
    data converter (%ID/g → %ID) and the models use.

    Parameters
    ----------
    species : str
        ``"mouse"``, ``"rat"`` or ``"human"``.
    body_weight_g : float, optional
        Body weight for ``mass_g`` (default: the table's reference weight).

    Returns
    -------
    list of dict
        One row per volume -- ``blood`` (total blood volume), ``plasma`` and every organ
        -- with ``organ``, ``fraction_of_bw``, ``mass_g``, ``capillary_blood_fraction``
        and ``blood_flow_fraction`` (``None`` where not given) and ``source``; in
        absolute units at ``body_weight_g``, ``volume_L`` (tissue density 1 kg/L) and
        ``blood_flow_L_h`` (fraction × cardiac output ``QCC · BW^0.75``; the liver's is the
        hepatic artery only, its portal inflow arriving from the spleen); for the human,
        ``icrp89_fraction_of_bw`` where ICRP 89 gives the organ (:data:`ICRP89_MALE`).
    """
    phys = get_physiology(species)
    bw_g = phys.body_weight_kg * 1000.0 if body_weight_g is None else float(body_weight_g)
    rows = [
        {"organ": "blood", "fraction_of_bw": phys.blood_fraction, "capillary_blood_fraction": None,
         "blood_flow_fraction": None, "source": phys.blood_source},
        {"organ": "plasma", "fraction_of_bw": phys.plasma_fraction, "capillary_blood_fraction": None,
         "blood_flow_fraction": None, "source": phys.plasma_source},
    ] + [
        {"organ": o.name, "fraction_of_bw": o.mass_fraction, "capillary_blood_fraction": o.capillary_blood_fraction,
         "blood_flow_fraction": o.blood_flow_fraction, "source": o.source}
        for o in phys.organs.values()
    ]
    cardiac_output_L_h = phys.cardiac_output_L_h_kg075 * (bw_g / 1000.0) ** 0.75
    icrp = ICRP89_MALE["organs_g"] if species == "human" else {}
    for row in rows:
        row["mass_g"] = row["fraction_of_bw"] * bw_g
        row["volume_L"] = row["mass_g"] / 1000.0
        flow = row["blood_flow_fraction"]
        row["blood_flow_L_h"] = None if flow is None else flow * cardiac_output_L_h
        if species == "human":
            grams = icrp.get(row["organ"])
            row["icrp89_fraction_of_bw"] = None if grams is None else grams / ICRP89_MALE["body_weight_g"]
    return rows
