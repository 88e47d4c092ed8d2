"""Write bundled coating-comparison pairs of gold particles from the NTUA database.

Run from the repository root (the shared raw data lies next to it)::

    python tools/make_ntua_pair.py [OUTDIR]

The values are read from the published workbook ``NMs_Database.xlsx``
(ntua-unit-of-control-and-informatics/NM-biodistribution-prediction@86f3a2bf, folder
``Biodistribution_data``; see ``../shared/datasets/raw/PROVENANCE.md``) by nanopk's own
reader, :func:`nanopk.meta.read_ntua_database`, so the tissue mapping, time units and
refusals are the reader's documented curation rules.  Each dataset is written as a long
CSV (``time, tissue, value``) and a JSON sidecar (DESIGN.md, "Datasets") whose
citation, animals, dose, units and particle come from the workbook plus the curation
below, each decision stated in ``assumptions`` or ``notes``.  Nothing is copied: the
files are re-expressed, and this script is the record of how.

Which pair, and why (checked on the workbook, 2026-12-07)
---------------------------------------------------------
The NTUA database has exactly one gold study with an arm it calls uncoated next to a
PEG arm, study 12 (Cheng et al. 2014, PEGylated Au tripods).  Its "uncoated" arm
(instance 4, "Au-tripods", coating "No") is, by its numbers, the PEG-3400 tripod again:
its 32 organ values (8 organs x 4 times) differ from instance 2 (PEG 3400) by a
geometric mean factor of 0.95 with a log-SD of 0.10, i.e. the same curves digitised
twice, and its hydrodynamic diameter (21.2 nm) and zeta potential (+23.1 mV) are those
of the PEG arms (PROVENANCE.md already calls it "an uncertain bare arm").  A comparison
of that pair would test digitisation noise, not a coating.

Study 18 (Wang et al. 2015) has no uncoated arm but a clean same-core coating pair:
silica-shelled gold nanorods (AuNR@SiO2) with a PEG 2 kDa or a bovine serum albumin
(BSA) corona, of the same hydrodynamic size (41.8 vs 44.3 nm), dose (20 µg), mice
(male BALB/c, 20 g, 4T1 tumour), route and sampling times, measured as whole-organ
%ID by ICP-MS (no organ masses needed).  This is the pair written here:
``wang2015_au_sio2_rod_peg`` and ``wang2015_au_sio2_rod_bsa``.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # tools/ntua_pair.py, also when loaded by path
from ntua_pair import ROOT, WORKBOOK, instances, source, write_csv, write_sidecar  # noqa: E402

CITATION = ("Wang J et al. Size- and surface chemistry-dependent pharmacokinetics and tumor accumulation of "
            "engineered gold nanoparticles after intravenous administration. Metallomics 2015")

COMMON_NOTES = [
    "Pair: wang2015_au_sio2_rod_peg and wang2015_au_sio2_rod_bsa share the core (silica-shelled gold nanorods, "
    "AuNR@SiO2), hydrodynamic size (41.8 vs 44.3 nm), dose, mice, route and sampling times; only the outer "
    "coating differs (PEG 2 kDa vs bovine serum albumin).",
    "Neither arm is uncoated: the NTUA database has no reliable PEG vs uncoated gold pair (study 12's 'uncoated' "
    "Au-tripod arm repeats its PEG-3400 arm within digitisation noise; see tools/make_ntua_pair.py).",
    "Values are whole-organ %ID measured by ICP-MS (gold), digitised from the paper's figures by the database "
    "authors; no SD is given in the source.",
    "No blood was reported; blood kinetics are therefore not constrained by these data.",
    "The core is reported as a nanorod with a silica shell; nanopk's Particle has no shell, so material is Au, "
    "shape rod, and the silica shell is named in particle.name.",
]

#: name -> (study, instance, particle extras, particle name, notes)
PAIRS = {
    "wang2015_au_sio2_rod_peg": (18, 1, {"coating": "PEG", "coating_mw_da": 2000}, "AuNR@SiO2-PEG", []),
    "wang2015_au_sio2_rod_bsa": (18, 2, {"coating": "BSA"}, "AuNR@SiO2-BSA", []),
}


def build(outdir: Path) -> list[Path]:
    """Read the workbook with nanopk's NTUA reader and write each dataset of ``PAIRS`` to ``outdir``.

    Parameters
    ----------
    outdir : Path
        Folder the CSV and JSON files are written to (created if missing).

    Returns
    -------
    list of Path
        The files written.

    Raises
    ------
    FileNotFoundError
        If the shared workbook is not at ``WORKBOOK``.
    """
    by_name = instances(WORKBOOK)
    outdir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, (study, inst, particle_extra, particle_name, notes) in PAIRS.items():
        ds = by_name[f"ntua_s{study}_i{inst}"]
        meta = ds.meta
        csv_path = write_csv(outdir / f"{name}.csv", ds)  # the reader's row order and units (h, %ID)
        particle = {
            "material": "Au",
            "hydrodynamic_diameter_nm": meta["particle"]["hydrodynamic_diameter_nm"],
            "shape": "rod",
            "zeta_mV": meta["particle"]["zeta_mV"],
            "targeting": "passive",
            **particle_extra,
            "name": particle_name,
        }
        sidecar = {
            "name": name,
            "source": source(CITATION, ds, study, inst),
            "species": "mouse",
            "strain": "BALB/c",
            "sex": "male",
            "body_weight_g": meta["body_weight_g"],
            "route": "iv",
            "dose": {"value": meta["dose"]["value"] * 1000.0, "unit": "ug"},
            "time_unit": "h",
            "value_unit": "%ID",
            "particle": particle,
            "tumour": {"model": "subcutaneous (hind leg)", "cell_line": "4T1"},
            "assumptions": [],
            "notes": COMMON_NOTES + [
                "Dose 20 ug Au per mouse: the database's 0.02 mg, with its cell comment '200 uL of 0.1 mg/mL'.",
                "Body weight 20 g and mouse age 4-6 weeks are the database's Weight_g and Age_weeks cells; "
                "they were not checked against the paper.",
                "The database's tumour volume of 0.5 mm3 is not carried over: it is implausibly small for a 4T1 "
                "tumour measured in %ID and is not needed because the values are whole-organ %ID.",
            ] + notes,
        }
        written += [csv_path, write_sidecar(outdir / f"{name}.json", sidecar)]
    return written


if __name__ == "__main__":
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "datasets"
    for p in build(out):
        print(p)
