"""Which reader a collection path needs: one dispatcher above the readers.

``nanopk meta PATH`` takes a folder of nanopk datasets, the Nano-Tumor Database files
or the NTUA biodistribution workbook; this module picks the reader, so that the
readers (:mod:`nanopk.meta.reader`, :mod:`nanopk.meta.ntua`) need not know each other.
"""
from __future__ import annotations

from pathlib import Path

from .ntua import is_ntua_workbook, read_ntua_collection
from .reader import Collection, read_dataset_folder, read_nano_tumor_db

__all__ = ["read_collection"]


def read_collection(path, **kwargs) -> Collection:
    """A collection from the Nano-Tumor Database files, the NTUA workbook or a folder of nanopk datasets.

    A folder is read as nanopk datasets when it holds ``*.csv`` + ``*.json`` pairs,
    otherwise as (or searched for) the Nano-Tumor Database workbooks.  A workbook with
    the NTUA database's sheets (``NMs_Database.xlsx``) is read by
    :func:`nanopk.meta.ntua.read_ntua_collection`: its tumour-bearing instances.
    """
    path = Path(path)
    if path.is_dir() and any(p.with_suffix(".json").exists() for p in path.glob("*.csv")):
        return read_dataset_folder(path, **kwargs)
    if is_ntua_workbook(path):
        return read_ntua_collection(path, **kwargs)
    return read_nano_tumor_db(path, **kwargs)
