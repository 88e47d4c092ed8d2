"""Read a dataset file (long or wide; CSV or .xlsx) and its sidecar into a :class:`Dataset`.

Everything wrong with the files is collected and raised as one :class:`DataError`,
whose message lists each problem with its column and rows (1-based spreadsheet rows:
the header is row 1, the first data row is row 2).  Nothing is dropped silently:
zeros and values below ``lloq`` are kept and flagged ``censored``.
"""
from __future__ import annotations

import warnings
import zipfile
from pathlib import Path

from ..errors import DataError, suggest
from ._problems import Problems
from .convert import hours_per
from .dataset import Dataset, DataWarning
from .rawio import EXCEL_SUFFIXES, header_time_unit, read_raw
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
    try:
        sheet_raw, read_error = read_raw(data_path, sheet), None
    except (UnicodeDecodeError, KeyError, IndexError, zipfile.BadZipFile, OSError) as exc:
        sheet_raw, read_error = None, exc
    # A unit in the time header ("Time (h)") stands in for a missing sidecar time_unit.
    header_unit, header_label = header_time_unit(sheet_raw.header) if sheet_raw is not None else (None, None)
    header_unit_ok = True
    if header_unit:
        try:
            hours_per(header_unit)
        except ValueError:
            header_unit_ok = False
    defaults = {"time_unit": header_unit} if header_unit and header_unit_ok else {}
    meta_read, _ = load_sidecar(data_path, meta, problems, defaults=defaults)
    if isinstance(read_error, UnicodeDecodeError):
        problems.note(f"{data_path.name} is not UTF-8 text ({read_error.reason} at byte {read_error.start}); save the CSV as UTF-8")
        problems.raise_if_any()
    elif isinstance(read_error, (KeyError, IndexError)):
        problems.note(f"no worksheet {sheet!r} in {data_path.name} ({read_error})")
        problems.raise_if_any()
    elif read_error is not None:
        problems.note(f"{data_path.name} could not be read as {data_path.suffix} ({read_error})")
        problems.raise_if_any()
    if header_unit and not header_unit_ok:
        problems.note(f"column {header_label!r}: {header_unit!r} is not a unit of time; expected e.g. 'Time (h)', 'Time (min)', 'Time (d)'",
                      column=header_label)
    elif header_unit and meta_read.get("time_unit") not in (None, "") and not _same_time_unit(header_unit, meta_read["time_unit"]):
        problems.note(f"column {header_label!r} gives times in {header_unit!r} but the sidecar's time_unit is "
                      f"{meta_read['time_unit']!r}; make them agree (or drop the unit from the header)", column=header_label)

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
    for message in problems.warnings:
        warnings.warn(f"{data_path.name}: {message}", DataWarning, stacklevel=2)
    return Dataset(table, meta_read, data_path)


def _same_time_unit(a, b) -> bool:
    try:
        return abs(hours_per(str(a)) - hours_per(str(b))) <= 1e-12 * hours_per(str(b))
    except ValueError:
        return True  # an unknown time unit is reported by its own check
