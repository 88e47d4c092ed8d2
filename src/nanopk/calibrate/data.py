"""The calibration's data: every usable organ point of a biodistribution collection, in %ID.

:func:`calibration_points` turns a collection of datasets (the NTUA database read by
:func:`nanopk.meta.read_ntua_database`, or any list of :class:`nanopk.data.Dataset`)
into two tables:

``instances``
    one row per dataset kept: ``name``, ``study`` (the grouping key of the
    cross-validation), ``species``, ``body_weight_g``, ``dose_ug``, ``tumour_g``
    (the sidecar's tumour weight, NaN when not given), ``perfused``, ``particle``
    (the dict :class:`nanopk.Particle` takes) and ``citation``;
``points``
    one row per observation kept: ``name``, ``study``, ``tissue`` (an observable of
    the model), ``time_h``, ``pid`` (%ID of the whole organ, > 0).

Nothing is dropped silently: the third table, ``refused``, lists every dataset or
group of points left out with ``name``, ``study``, ``level`` (``dataset`` or
``points``), ``reason`` and ``n_points``.  Reasons: a species or route the
calibration does not model (IV mouse only), a particle :class:`nanopk.Particle`
refuses, rows that cannot be converted to %ID (no organ mass, no dose), tissues the
model has no observable for, censored or zero values (no logarithm), and studies the
caller holds out (``exclude_studies``).
"""
from __future__ import annotations

import math
import re
import warnings

import numpy as np
import pandas as pd

from ..errors import NanopkError
from ..particle import Particle

__all__ = ["calibration_points", "study_key", "HELD_OUT_AUTHORS", "CALIBRATION_TISSUES"]

#: Tissues the calibration compares (observables of ``mouse_tumour_full``).
CALIBRATION_TISSUES = ("blood", "liver", "spleen", "kidney", "lung", "tumour", "brain", "muscle")

#: DOIs of the studies bundled in ``datasets/`` (Arnida 2010 ×2 papers, Cho 2010, Liu 2013,
#: Hirn 2011, Kreyling 2017, Li 2014): the fully held-out set, never part of a
#: calibration judged by them.  NTUA holds Cho 2010 (study 8), Liu 2013 (14), Arnida
#: 2010 (17) and Li 2014 (44).
HELD_OUT_DOIS = {
    "10.1016/j.ejpb.2010.11.010": "Arnida 2010 (rods/spheres)",
    "10.1016/j.ejpb.2010.12.029": "Arnida 2010 (spheres)",
    "10.1016/j.taap.2010.02.013": "Cho 2010",
    "10.1002/anie.201304465": "Liu 2013",
    "10.1080/17435390.2017.1306892": "Kreyling 2017",
    "10.2147/IJN.S66591": "Li 2014",
    "10.3109/17435390.2010.524353": "Hirn 2011",
}
HELD_OUT_AUTHORS = HELD_OUT_DOIS  # the name the module docstring used first
#: PEG molecular weight (Da) assumed when a PEG coating has none: the calibration's
#: documented default (2 kDa and 5 kDa are the two usual PEGs; 2 kDa is the more common
#: in the NTUA rows that give one).  Counted in ``refused`` as a ``note``.
ASSUMED_PEG_MW_DA = 2000.0
#: Mass dose (µg) simulated for a dose given only as radioactivity (a tracer): small
#: enough that no phagocyte saturates, so %ID does not depend on it.  Counted as a ``note``.
TRACER_DOSE_UG = 1e-3


def study_key(ds) -> str:
    """The study a dataset belongs to: the NTUA ``study`` number, else its DOI, else its citation, else its name."""
    meta = ds.meta
    ntua = meta.get("ntua") or {}
    sid = ntua.get("study") if isinstance(ntua, dict) else None
    if sid is None:
        m = re.match(r"ntua_s(\d+)_i", ds.name)
        sid = m.group(1) if m else None
    if sid is not None:
        return f"ntua_s{int(sid)}"
    return str(ds.doi or ds.citation or ds.name)


def _author_year(ds) -> tuple[str, int | None]:
    ntua = ds.meta.get("ntua") or {}
    author = str(ntua.get("author") or ntua.get("Author") or ds.citation or "")
    first = re.split(r"[\s,.;]+", author.strip())[0].lower() if author.strip() else ""
    year = None
    for text in (str(ntua.get("date") or ntua.get("Date") or ""), ds.citation or ""):
        m = re.search(r"(19|20)\d\d", text)
        if m:
            year = int(m.group(0))
            break
    return first, year


def is_held_out(ds, held_out: dict = HELD_OUT_DOIS) -> bool:
    """Whether ``ds`` is one of the bundled studies (its DOI in ``held_out``)."""
    return str(ds.doi or "").strip().lower() in {d.lower() for d in held_out}


def calibration_points(collection, tissues=CALIBRATION_TISSUES, species=("mouse",), routes=("iv",),
                       exclude_studies=(), exclude_held_out: bool = True):
    """Instances, points and refusals of a collection (see the module docstring).

    Parameters
    ----------
    collection : sequence of nanopk.data.Dataset
    tissues : sequence of str
        Tissues kept (the model's observables).
    species, routes : sequence of str
        Kept species and routes.
    exclude_studies : sequence of str
        Study keys (:func:`study_key`) to leave out.
    exclude_held_out : bool
        Leave out the bundled studies (:data:`HELD_OUT_AUTHORS`).

    Returns
    -------
    (pandas.DataFrame, pandas.DataFrame, pandas.DataFrame)
        ``instances``, ``points``, ``refused``.

    Raises
    ------
    NanopkError
        If nothing is left to calibrate on.
    """
    inst, pts, refused = [], [], []
    exclude_studies = set(exclude_studies)
    for ds in collection:
        study = study_key(ds)

        def refuse(reason, n=len(ds), level="dataset", _ds=ds, _study=study):
            refused.append({"name": _ds.name, "study": _study, "level": level, "reason": reason, "n_points": int(n)})

        if study in exclude_studies:
            refuse("study excluded by the caller")
            continue
        if exclude_held_out and is_held_out(ds):
            refuse("a bundled study (held out: datasets/ has it)")
            continue
        if ds.species not in species:
            refuse(f"species {ds.species!r} (calibrated: {', '.join(species)})")
            continue
        if ds.route not in routes:
            refuse(f"route {ds.route!r} (calibrated: {', '.join(routes)})")
            continue
        pdict = ds.particle_dict
        if pdict.get("coating") == "PEG" and pdict.get("coating_mw_da") is None:
            pdict["coating_mw_da"] = ASSUMED_PEG_MW_DA
            refuse(f"note: PEG without a molecular weight, {ASSUMED_PEG_MW_DA:g} Da assumed", 0, "note")
        if (pdict.get("hydrodynamic_diameter_nm") or math.inf) < (pdict.get("core_diameter_nm") or 0):
            refuse("note: hydrodynamic diameter below the core diameter; hydrodynamic diameter left out", 0, "note")
            pdict.pop("hydrodynamic_diameter_nm")
        try:
            particle = Particle(**pdict)
        except (NanopkError, TypeError, ValueError) as exc:
            problems = getattr(exc, "problems", None) or [str(exc).splitlines()[0]]
            refuse(f"particle refused: {'; '.join(str(p).split(';')[0] for p in problems)}")
            continue
        if ds.body_weight_g is None:
            refuse("no body weight")
            continue
        dose = ds.dose_ug
        unit = str((ds.meta.get("dose") or {}).get("unit") or "")
        if dose is None and re.search(r"(Bq|Ci)", unit):
            dose = TRACER_DOSE_UG
            refuse(f"note: dose in {unit} (activity), simulated as a tracer ({TRACER_DOSE_UG:g} µg)", 0, "note")
        if dose is None or not dose > 0:
            refuse("no dose as a mass or activity")
            continue
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            table = ds.percent_id(skip_unconvertible=True)
        n_lost = len(ds) - len(table)
        if n_lost:
            refuse("rows not convertible to %ID (no organ mass or dose)", n_lost, "points")
        other = ~table["tissue"].isin(tissues)
        if other.any():
            for tissue, n in table.loc[other, "tissue"].value_counts().items():
                refuse(f"tissue {tissue!r} not calibrated", n, "points")
        table = table[~other]
        value = table["value_pid"].to_numpy(float)
        bad = ~(np.isfinite(value) & (value > 0))
        if "lloq" in table:
            bad |= table["lloq"].notna().to_numpy() & (table["value"].to_numpy(float) <= 0)
        if bad.any():
            refuse("censored, zero or non-finite value (no logarithm)", int(bad.sum()), "points")
        table = table[~bad]
        if table.empty:
            refuse("no calibratable point left", 0)
            continue
        tumour = (ds.meta.get("tumour") or {})
        inst.append({"name": ds.name, "study": study, "species": ds.species, "body_weight_g": float(ds.body_weight_g),
                     "dose_ug": float(dose), "tumour_g": float(tumour["weight_g"]) if tumour.get("weight_g") else math.nan,
                     "has_tumour": bool(tumour), "perfused": ds.perfused, "particle": particle.to_dict(),
                     "citation": ds.citation or ""})
        grouped = table.groupby(["tissue", "time_h"], sort=True)["value_pid"]
        # Several groups at one time (e.g. replicate rows) are one point: their geometric mean.
        for (tissue, t), vals in grouped:
            pts.append({"name": ds.name, "study": study, "tissue": tissue, "time_h": float(t),
                        "pid": float(np.exp(np.mean(np.log(vals.to_numpy(float)))))})
    if not inst:
        raise NanopkError(f"no dataset left to calibrate on ({len(refused)} refused; species {species}, routes {routes})")
    return pd.DataFrame(inst), pd.DataFrame(pts), pd.DataFrame(refused, columns=["name", "study", "level", "reason", "n_points"])
