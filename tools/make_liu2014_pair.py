"""Write the bundled PEG vs small-ligand gold pair (Liu et al. 2014, NTUA study 23).

Run from the repository root (the shared raw data lies next to it)::

    python tools/make_liu2014_pair.py [OUTDIR]

The values are read from the published workbook ``NMs_Database.xlsx``
(ntua-unit-of-control-and-informatics/NM-biodistribution-prediction@86f3a2bf, folder
``Biodistribution_data``; see ``../shared/datasets/raw/PROVENANCE.md``) by nanopk's own
reader, :func:`nanopk.meta.read_ntua_database`, so the tissue mapping, the day-to-hour
conversion and the refusals are the reader's documented curation rules.  Each dataset is
written as a long CSV (``time, tissue, value``; time in hours) and a JSON sidecar
(DESIGN.md, "Datasets").  Nothing is copied: the files are re-expressed, and this script
is the record of how.

Which pair, and why (checked on every shared raw source, 2026-12-07)
--------------------------------------------------------------------
Of the shared raw sources only the NTUA database records coatings next to organ time
courses (the UFPBPK Nano-Tumor tables have no coating column and only tumour values; the
Nano-iPBPK table is citrate gold only).  Its gold studies with a PEG arm and a non-PEG arm
of the same core are 12 (Cheng 2014; its "uncoated" tripod repeats the PEG-3400 arm, see
``tools/make_ntua_pair.py``), 18 (Wang 2015; PEG vs BSA, no blood, 18 points per arm),
28 (Kao 2014; PEG vs PEG + cetuximab, a targeting ligand on the same PEG, the PEG arm at
24 h only) and 23, written here.

Study 23 (Liu et al. 2014, doi:10.1002/adhm.201300617) puts one 16 nm gold core under
either a PEG 2 kDa shell (AuNP-PEG2000, 31 nm hydrodynamic) or a mixed-charge monolayer
of two small thiols (AuNP-C10-SN4: 10-mercaptodecanesulfonate and
(10-mercaptodecyl)trimethylammonium, 17.1 nm hydrodynamic), same zeta potential (-10.5 vs
-9.8 mV), dose (100 µg Au), male ICR mice (20 g) and sampling.  Both arms have blood at 7
times (0.5-72 h) and liver, spleen, kidney, lung and heart at 1, 7 and 30 days, all as
whole-organ %ID by ICP-MS: 22 points per arm, the richest same-core PEG vs non-PEG gold
pair in the shared data.  The non-PEG arm is not bare gold: it is the small-ligand
monolayer the brief allows as "uncoated".  Instances 3 and 4 of the same study (blood and
tumour only, 3 times, in KB-tumour nude mice of 17 g) are other animals and are not part of
this pair.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # tools/ntua_pair.py, also when loaded by path
from ntua_pair import ROOT, WORKBOOK, instances, source, write_csv, write_sidecar  # noqa: E402

# Title and DOI are the database's Metadata row for study 23; the author list beyond
# "Liu et al." was not checked against the paper, so it is not given.
CITATION = ("Liu et al. Mixed-charge nanoparticles for long circulation, low reticuloendothelial system clearance, "
            "and high tumor accumulation. Adv Healthc Mater 2014")

COMMON_NOTES = [
    "Pair: liu2014_au16_peg and liu2014_au16_mixed_charge share the 16 nm gold core, dose, mice, route and "
    "sampling times; only the surface differs (PEG 2 kDa, 31 nm hydrodynamic, vs a mixed-charge monolayer of "
    "two small thiols, 17.1 nm hydrodynamic).",
    "The mixed-charge arm is not bare gold: its ligands are sodium 10-mercaptodecanesulfonate (HS-C10-S, "
    "negative) and (10-mercaptodecyl)trimethylammonium bromide (HS-C10-N4, positive), per the database's cell "
    "comment; it is the pair's non-PEG, small-ligand arm.",
    "coating 'zwitterionic' is nanopk's nearest coating for this mixed-charge monolayer (anionic and cationic end "
    "groups on one surface, zeta -9.8 mV); the ligands themselves are named in particle.name (AuNP-C10-SN4) and "
    "the note above.",
    "Values are whole-organ %ID of gold measured by ICP-MS, digitised from the paper's figures by the database "
    "authors; no SD is given in the source.",
    "Blood is %ID in the whole blood volume at 0.5, 3, 6, 12, 24, 48 and 72 h; organs at 1, 7 and 30 days "
    "(24, 168 and 720 h).",
    "Dose 100 ug Au per mouse and body weight 20 g are the database's Dose and Weight_g cells (its cell comment "
    "gives 18-22 g); they were not checked against the paper.",
    "The same study's tumour-bearing arms (NTUA instances 3 and 4: KB xenografts in nude mice, 17 g, blood and "
    "tumour at 1-3 days) are other animals and are not included.",
]

#: name -> (study, instance, particle extras, particle name)
PAIRS = {
    "liu2014_au16_peg": (23, 2, {"coating": "PEG", "coating_mw_da": 2000}, "AuNP-PEG2000"),
    "liu2014_au16_mixed_charge": (23, 1, {"coating": "zwitterionic"},
                                  "AuNP-C10-SN4"),
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
        The files written, CSV then JSON for each dataset of ``PAIRS``.

    Raises
    ------
    FileNotFoundError
        If the shared workbook is not at ``WORKBOOK``.
    """
    by_name = instances(WORKBOOK)
    outdir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, (study, inst, particle_extra, particle_name) in PAIRS.items():
        ds = by_name[f"ntua_s{study}_i{inst}"]
        meta = ds.meta
        csv_path = write_csv(outdir / f"{name}.csv", ds)  # the reader's row order and units (h, %ID)
        particle = {
            "material": "Au",
            "core_diameter_nm": meta["particle"]["core_diameter_nm"],
            "hydrodynamic_diameter_nm": meta["particle"]["hydrodynamic_diameter_nm"],
            "shape": "sphere",
            "zeta_mV": meta["particle"]["zeta_mV"],
            "targeting": "passive",
            **particle_extra,
            "name": particle_name,
        }
        sidecar = {
            "name": name,
            "source": source(CITATION, ds, study, inst),
            "species": "mouse",
            "strain": meta["strain"],
            "sex": meta["sex"],
            "body_weight_g": meta["body_weight_g"],
            "route": "iv",
            "dose": {"value": meta["dose"]["value"], "unit": meta["dose"]["unit"]},
            "time_unit": "h",
            "value_unit": "%ID",
            "particle": particle,
            "assumptions": [
                "shape 'sphere': the database leaves Shape empty for both arms; spheres are assumed (not checked against the paper).",
            ],
            "notes": list(COMMON_NOTES),
        }
        written += [csv_path, write_sidecar(outdir / f"{name}.json", sidecar)]
    return written


if __name__ == "__main__":
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "datasets"
    for p in build(out):
        print(p)
