"""What the tools that bundle an NTUA study pair share: the workbook, the CSV and the sidecar's source.

``make_ntua_pair.py`` (Wang 2015) and ``make_liu2014_pair.py`` (Liu 2014) read the shared
NTUA workbook where it lies (never copied into the repository) through
:func:`nanopk.meta.read_ntua_database` and write one long CSV and one JSON sidecar per arm.
"""
from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RAW = ROOT.parent / "shared" / "datasets" / "raw"
NTUA_REPO = "ntua-unit-of-control-and-informatics/NM-biodistribution-prediction"
NTUA_COMMIT = "86f3a2bf1d2db8a83f8d33ba06bb1771d40b15c5"
WORKBOOK = RAW / "ntua-unit-of-control-and-informatics__NM-biodistribution-prediction" / "Biodistribution_data" / "NMs_Database.xlsx"


def instances(workbook: Path = WORKBOOK) -> dict:
    """``{"ntua_s{study}_i{instance}": Dataset}`` of every instance the reader maps.

    Raises
    ------
    FileNotFoundError
        If the shared workbook is not at ``workbook``.
    """
    from nanopk.meta import read_ntua_database

    if not workbook.is_file():
        raise FileNotFoundError(f"NTUA workbook not found at {workbook}; the shared raw data must sit next to the repository")
    collection, _refusals = read_ntua_database(workbook)
    return {ds.name: ds for ds in collection}


def write_csv(path: Path, ds) -> Path:
    """The instance's rows as ``time,tissue,value`` (hours, %ID), in the reader's order, floats by repr."""
    with open(path, "w", newline="") as fh:
        fh.write("time,tissue,value\n")
        for t, tissue, v in ds.table[["time_h", "tissue", "value"]].itertuples(index=False):
            fh.write(f"{float(t)!r},{tissue},{float(v)!r}\n")
    return path


def source(citation: str, ds, study: int, instance: int) -> dict:
    """The sidecar's ``source``: the citation, the DOI the database gives, and the workbook cell range."""
    return {
        "citation": citation,
        "doi": ds.meta["source"]["doi"],
        "compiled_from": (f"{NTUA_REPO}@{NTUA_COMMIT}, Biodistribution_data/NMs_Database.xlsx: study {study}, "
                          f"instance {instance}; values digitised from the paper's figures by the database authors"),
    }


def write_sidecar(path: Path, sidecar: dict) -> Path:
    path.write_text(json.dumps(sidecar, indent=2, ensure_ascii=False) + "\n")
    return path
