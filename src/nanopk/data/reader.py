"""Read a dataset file (long or wide; CSV or .xlsx) and its sidecar into a :class:`Dataset`.

Everything wrong with the files is collected and raised as one :class:`DataError`,
whose message lists each problem with its column and rows (1-based spreadsheet rows:
the header is row 1, the first data row is row 2).  Nothing is dropped silently:
zeros and values below ``lloq`` are kept and flagged ``censored``.
"""
from __future__ import annotations

import zipfile
from pathlib import Path

from ..errors import DataError, suggest
from ._problems import Problems
from .dataset import Dataset
from .rawio import EXCEL_SUFFIXES, read_raw
from .sidecar import load_sidecar
from .validate import build_table, records_from_long
from .wide import looks_wide, records_from_wide

__all__ = ["read_dataset", "resolve_path", "bundled_names"]

DATA_SUFFIXES = (".csv",) + EXCEL_SUFFIXES


def bundled_names() -> list[str]:
    """Names of the datasets shipped with nanopk (``datasets/*.csv``)."""
    from ..resources import datasets_dir

    try:
        folder = datasets_dir()
    except FileNotFoundError:
        return []
    return sorted(p.stem for p in folder.glob("*.csv"))


def resolve_path(path) -> Path:
    """The data file for ``path``: an existing file, a sidecar's data file, or a bundled name.

    Raises
    ------
    DataError
        If nothing matches; the message suggests the nearest bundled names.
    """
    p = Path(path)
    if p.is_file() and p.suffix.lower() != ".json":
        return p
    if p.suffix.lower() == ".json":
        for suffix in DATA_SUFFIXES:
            if p.with_suffix(suffix).is_file():
                return p.with_suffix(suffix)
    if p.suffix.lower() not in DATA_SUFFIXES and len(p.parts) == 1:
        from ..resources import datasets_dir

        try:
            folder = datasets_dir()
        except FileNotFoundError:
            folder = None
        if folder is not None:
            for suffix in DATA_SUFFIXES:
                candidate = folder / f"{p.name}{suffix}"
                if candidate.is_file():
                    return candidate
    names = bundled_names()
    raise DataError(str(path), [{
        "message": f"no dataset file {str(path)!r} (not a file, and not a bundled dataset name"
                   f"{suggest(p.stem, names)}); bundled datasets: {', '.join(names) or 'none'}"
    }])


def read_dataset(path, *, layout: str | None = None, sheet: str | int | None = None, **meta) -> Dataset:
    """Read a biodistribution dataset.

    Parameters
    ----------
    path : str or path-like
        A ``.csv`` or ``.xlsx`` file with a JSON sidecar of the same stem, or the name
        of a bundled dataset (``"cho2010_peg_au_13nm"``, see :func:`list_datasets`).
    layout : {"long", "wide"}, optional
        Long: columns ``time, tissue, value`` and optional ``sd, sem, n, unit, lloq,
        group, note``.  Wide: ``time`` (optional ``group``, ``n``) and one column per
        tissue with optional ``<tissue>_sd``, ``_sem``, ``_n``, ``_lloq``.  Detected
        from the header when not given.
    sheet : str or int, optional
        Worksheet of an .xlsx workbook (name or 0-based index; default the first).
    **meta
        Sidecar keys (``value_unit="%ID/g"``, ``dose={"value": 20, "unit": "ug"}`` or
        ``dose="20 ug"``, ``body_weight_g=25``, ``species=``, ...) that override the
        sidecar, or replace it when there is none (``name`` then defaults to the file
        stem).

    Returns
    -------
    Dataset

    Raises
    ------
    DataError
        Listing every problem in the data file and the sidecar, each with its column
        and rows (1-based spreadsheet rows, header = row 1): unknown tissue (with the
        nearest names), missing or non-numeric or negative values, missing or unknown
        unit, times not increasing or repeated within a (group, tissue) series, SD
        without n, a dose needed for conversion but missing, missing required columns,
        and a missing, invalid or incomplete sidecar.
    """
    data_path = resolve_path(path)
    problems = Problems(data_path)
    meta_read, _ = load_sidecar(data_path, meta, problems)
    try:
        sheet_raw = read_raw(data_path, sheet)
    except UnicodeDecodeError as exc:
        problems.note(f"{data_path.name} is not UTF-8 text ({exc.reason} at byte {exc.start}); save the CSV as UTF-8")
        problems.raise_if_any()
    except (KeyError, IndexError) as exc:
        problems.note(f"no worksheet {sheet!r} in {data_path.name} ({exc})")
        problems.raise_if_any()
    except (zipfile.BadZipFile, OSError) as exc:
        problems.note(f"{data_path.name} could not be read as {data_path.suffix} ({exc})")
        problems.raise_if_any()

    if not sheet_raw.header:
        problems.note(f"{data_path.name} is empty; expected a header row (time, tissue, value, ...) and data rows")
        problems.raise_if_any()
    if layout is None:
        layout = "wide" if looks_wide(sheet_raw.header) else "long"
    if layout == "long":
        records = records_from_long(sheet_raw, problems)
    elif layout == "wide":
        records = records_from_wide(sheet_raw, problems)
    else:
        raise ValueError(f"`layout` must be 'long' or 'wide' (got {layout!r})")
    if not sheet_raw.rows:
        problems.note(f"{data_path.name} has a header but no data rows")
    table = build_table(records, meta_read, problems)
    problems.raise_if_any()
    return Dataset(table, meta_read, data_path)
