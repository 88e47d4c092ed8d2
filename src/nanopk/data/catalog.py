"""The catalogue of bundled datasets: one line per dataset, read from the files themselves."""
from __future__ import annotations

import pandas as pd

from .reader import bundled_names, read_dataset

__all__ = ["list_datasets", "particle_summary"]


def particle_summary(particle: dict) -> str:
    """``"Au 13 nm, PEG 5 kDa, sphere"`` from a sidecar particle dict."""
    parts = []
    head = str(particle.get("material", "?"))
    if particle.get("core_diameter_nm") is not None:
        head += f" {particle['core_diameter_nm']:g} nm"
    elif particle.get("hydrodynamic_diameter_nm") is not None:
        head += f" (d_h {particle['hydrodynamic_diameter_nm']:g} nm)"
    parts.append(head)
    coating = particle.get("coating")
    if coating:
        mw = particle.get("coating_mw_da")
        parts.append(f"{coating} {mw / 1000:g} kDa" if mw else str(coating))
    if particle.get("shape"):
        parts.append(str(particle["shape"]))
    if particle.get("targeting") == "active":
        parts.append("targeted")
    return ", ".join(parts)


def list_datasets() -> pd.DataFrame:
    """The bundled datasets, one row each.

    Returns
    -------
    pandas.DataFrame
        Columns ``name``, ``species``, ``particle`` (summary), ``tissues``
        (comma-separated), ``n_points``, ``units``, ``citation`` and ``doi``.
    """
    rows = []
    for name in bundled_names():
        ds = read_dataset(name)
        rows.append({
            "name": ds.name,
            "species": ds.species,
            "particle": particle_summary(ds.meta.get("particle") or {}),
            "tissues": ", ".join(ds.tissues),
            "n_points": len(ds),
            "units": ", ".join(dict.fromkeys(ds.table["unit"])),
            "citation": ds.citation,
            "doi": ds.doi,
        })
    return pd.DataFrame(rows, columns=["name", "species", "particle", "tissues", "n_points", "units", "citation", "doi"])
