"""Biodistribution datasets: reading, checking, unit conversion to %ID, bundled data.

A dataset is a CSV (or .xlsx) of measurements plus a JSON sidecar with the same stem
(DESIGN.md, "Datasets").  :func:`read_dataset` reads the long layout (``time, tissue,
value`` and optional ``sd, sem, n, unit, lloq, group``) or the wide one (one row per
time, one column per tissue), checks every cell and raises one :class:`DataError`
listing every problem with its column and rows; :class:`Dataset` converts to %ID of the
whole organ with pint and organ masses whose source it records.  :func:`check_dataset`
runs named plausibility rules (organs above 100 %ID, body weight, species, route, ...;
see :mod:`nanopk.data.checks`).

>>> from nanopk.data import read_dataset
>>> ds = read_dataset("cho2010_peg_au_13nm")
>>> ds.species, ds.meta["value_unit"]
('mouse', 'ng/g')
"""
from __future__ import annotations

from ..errors import DataError
from .catalog import list_datasets
from .checks import CheckReport, RuleResult, check_dataset
from .convert import dose_in_ug, percent_id_factor
from .dataset import Dataset, DataWarning, FitTable
from .reader import read_dataset
from .vocabulary import ALIASES, OBSERVABLES, TISSUES, canonical_tissue

__all__ = [
    "read_dataset", "list_datasets", "Dataset", "DataWarning", "DataError", "FitTable",
    "TISSUES", "ALIASES", "OBSERVABLES", "canonical_tissue", "percent_id_factor", "dose_in_ug",
    "check_dataset", "CheckReport", "RuleResult",
]
