"""Meta-analysis of tumour delivery across many datasets (the Nano-Tumor Database).

    collection = read_nano_tumor_db("path/to/raw")      # or read_dataset_folder("datasets/")
    datasets, refusals = read_ntua_database("NMs_Database.xlsx")   # NTUA: nanopk Datasets
    run_meta(collection, model="mouse_tumour", store="meta.sqlite")
    summarise("meta.sqlite")                            # medians of DE24/DE168/DEmax by class

Each dataset's tumour sub-model is fitted with the rest of the body at its defaults, as
in Cheng et al., ACS Nano 2020 (PMID 32078303) and Chou et al., J Control Release
2023;361:53; results go to an SQLite store as they finish, so a run resumes -- with the
same settings only: a store holds the rows of one set of settings, and a run with
others raises :class:`MetaStoreError` (see :mod:`nanopk.meta.runner`).
"""
from __future__ import annotations

from .reader import Collection, MetaItem, read_dataset_folder, read_nano_tumor_db

__all__ = ["Collection", "MetaItem", "read_collection", "read_nano_tumor_db", "read_dataset_folder",
           "read_ntua_database", "read_ntua_collection", "summarise_ntua", "DatasetCollection",
           "run_meta", "fit_item", "item_objective", "summarise", "DEFAULT_VARY", "MetaStoreError", "MetaInterrupted"]


def __getattr__(name):
    # The runner pulls in scipy.optimize and the model machinery; load it on first use.
    if name in ("run_meta", "fit_item", "item_objective", "DEFAULT_VARY", "MetaFitSettings", "MetaStoreError",
                "MetaInterrupted"):
        from . import runner

        return getattr(runner, name)
    if name in ("read_ntua_database", "read_ntua_collection", "summarise_ntua", "DatasetCollection"):
        # The NTUA reader pulls in openpyxl and the data layer; load it on first use.
        from . import ntua

        return getattr(ntua, name)
    if name == "read_collection":
        # It dispatches to the NTUA reader too (openpyxl, the data layer): on first use.
        from .sources import read_collection

        return read_collection
    if name == "summarise":
        from .summary import summarise

        return summarise
    raise AttributeError(f"module 'nanopk.meta' has no attribute {name!r}")
