"""Collections of tumour time courses for meta-analysis.

Two sources give the same :class:`Collection` of :class:`MetaItem` (one per dataset:
tumour %ID against time, dose, body weight, tumour weight and NP class descriptors):

- the **Nano-Tumor Database as published** (Chou et al., J Control Release
  2023;361:53, repository UFPBPK/Nano-AI-PBPK-G1): ``Time-course pharmacokinetics
  data.xlsx`` (``ID, Time, Tumor, Tumor_g``; the ID is written on the first row of a
  dataset only, so it is forward-filled) joined on ``ID`` with ``Model_dataset.xlsx``
  (per-dataset ``Type, TS, HD, Zeta, Shape, TM, CT, TW, Dose`` (mg/kg), ``BW`` (g),
  the PBPK-derived ``DE24, DE168, Demax`` and the fitted tumour parameters; ``NA``
  strings).  The core material (gold, liposomes, polymeric, …) is not in those two
  files; when the 376-row summary table of Lin et al., Int J Nanomedicine 2022
  (UFPBPK/Nano-ML-AI ``data.csv``: ``MAT``, ``DE_24``, ``DE_168``, ``DE_Max``) is found
  too, each dataset takes the material and class of the summary row with the same
  three delivery efficiencies (all within 5 %); the others keep ``material = None``.
- a **folder of nanopk datasets** (CSV + JSON sidecar, :func:`nanopk.read_dataset`):
  every dataset with tumour observations in %ID (or %ID/g with a tumour weight).

Nothing is copied: the raw files are read from where the user keeps them.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import DataError

__all__ = ["MetaItem", "Collection", "read_nano_tumor_db", "read_dataset_folder",
           "TIMECOURSE_FILE", "DESCRIPTOR_FILE"]

TIMECOURSE_FILE = "Time-course pharmacokinetics data.xlsx"
DESCRIPTOR_FILE = "Model_dataset.xlsx"
SUMMARY_FILE = "data.csv"
_NA = ["NA", "N/A", "na", "n/a", "", "ΝΑ", "-"]

#: Model_dataset.xlsx column → descriptor name.
_DESCRIPTORS = {"Type": "type", "TS": "targeting", "HD": "d_h_nm", "Zeta": "zeta_mV", "Charge": "charge",
                "Shape": "shape", "TM": "tumour_model", "CT": "cancer_type", "TSz": "tumour_size_cm3"}
#: Model_dataset.xlsx fitted tumour parameters (Chou 2023 names) → nanopk names.
PUBLISHED_PARAMETERS = {"KTRESmax": "Kmax_tumour", "KTRES50": "K50_tumour", "KTRESn": "n_tumour",
                        "KTRESrelease": "Krelease_tumour", "PATC": "PATC_tumour", "PT": "P_tumour",
                        "QTC": "QTC", "VTC": "VTC", "BVT": "BVT"}
_MATERIALS = {"Gold": "gold", "Iron Oxide": "iron oxide", "Silica": "silica", "Other IM": "other inorganic",
              "Liposomes": "liposomes", "Polymeric": "polymeric", "Dendrimers": "dendrimers",
              "Hydrogels": "hydrogels", "Other OM": "other organic"}
_TM_CODES = {"XH": "Xenograft Heterotopic", "XO": "Xenograft Orthotopic", "AH": "Allograft Heterotopic",
             "AO": "Allograft Orthotopic"}


@dataclass(frozen=True)
class MetaItem:
    """One dataset of a meta-analysis: tumour %ID over time and what describes the NP.

    Attributes
    ----------
    id : str
        Dataset identifier (the database ID, or the dataset name).
    times_h, tumour_pct_id : numpy arrays
        Observation times (h) and whole-tumour amounts (%ID), same length.
    dose_mg_kg, body_weight_g, tumour_weight_g : float or None
        Dose, body weight and tumour weight when reported.
    descriptors : dict
        NP class descriptors: ``type`` (inorganic/organic/hybrid), ``material``,
        ``targeting`` (active/passive), ``tumour_model``, ``cancer_type``, ``shape``,
        ``d_h_nm``, ``zeta_mV`` (missing ones are ``None``).
    published : dict
        Values the source reports for the dataset (e.g. ``DE24``, ``DE168``,
        ``DEmax`` and fitted parameters) for side-by-side checks.
    source : str
        Where it came from.
    """

    id: str
    times_h: np.ndarray
    tumour_pct_id: np.ndarray
    dose_mg_kg: float | None = None
    body_weight_g: float | None = None
    tumour_weight_g: float | None = None
    descriptors: dict = field(default_factory=dict)
    published: dict = field(default_factory=dict)
    source: str = ""

    @property
    def n_points(self) -> int:
        return int(len(self.times_h))

    @property
    def dose_ug(self) -> float | None:
        """Dose in µg: mg/kg × body weight (g) — (mg/kg)·(g/1000)·(1000 µg/mg)."""
        if self.dose_mg_kg is None or self.body_weight_g is None:
            return None
        return float(self.dose_mg_kg) * float(self.body_weight_g)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["times_h"] = [float(x) for x in self.times_h]
        d["tumour_pct_id"] = [float(x) for x in self.tumour_pct_id]
        return d


class Collection(Sequence):
    """An ordered collection of :class:`MetaItem`, indexable by position or by id."""

    def __init__(self, items, name: str = "", source: str = ""):
        self.items = list(items)
        self.name = name
        self.source = source
        self._index = {it.id: i for i, it in enumerate(self.items)}
        if len(self._index) != len(self.items):
            dup = sorted({it.id for it in self.items if sum(j.id == it.id for j in self.items) > 1})
            raise DataError(source or name, [{"message": f"duplicate dataset id(s) {', '.join(dup)}", "column": "ID"}])

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, key):
        if isinstance(key, slice):
            return Collection(self.items[key], self.name, self.source)
        if isinstance(key, str):
            try:
                return self.items[self._index[key]]
            except KeyError:
                from ..errors import suggest

                raise KeyError(f"no dataset {key!r} in collection {self.name!r}{suggest(key, self._index)}") from None
        return self.items[key]

    def __repr__(self) -> str:
        return f"<nanopk.meta.Collection {self.name!r}: {len(self)} datasets>"

    @property
    def ids(self) -> list[str]:
        return [it.id for it in self.items]

    def subset(self, ids=None, n: int | None = None) -> "Collection":
        """The datasets named in ``ids`` (in that order), or the first ``n``."""
        items = [self[str(i)] for i in ids] if ids is not None else list(self.items)
        if n is not None:
            items = items[:n]
        return Collection(items, self.name, self.source)

    def to_frame(self) -> pd.DataFrame:
        """One row per dataset: id, n_points, dose, weights, descriptors, published DEs."""
        rows = []
        for it in self.items:
            row = {"id": it.id, "n_points": it.n_points, "t_last_h": float(np.max(it.times_h)) if it.n_points else None,
                   "dose_mg_kg": it.dose_mg_kg, "body_weight_g": it.body_weight_g, "tumour_weight_g": it.tumour_weight_g}
            row.update(it.descriptors)
            row.update({f"published_{k}": v for k, v in it.published.items() if k in ("DE24", "DE168", "DEmax")})
            rows.append(row)
        return pd.DataFrame(rows)

    def timecourses(self) -> pd.DataFrame:
        """Long table: ``id, time_h, tumour_pct_id``."""
        return pd.DataFrame(
            [{"id": it.id, "time_h": float(t), "tumour_pct_id": float(v)} for it in self.items
             for t, v in zip(it.times_h, it.tumour_pct_id)]
        )


# --------------------------------------------------------------------------- Nano-Tumor DB
def _num(x) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _text(x) -> str | None:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return None
    s = str(x).strip()
    return s or None


def _find(root: Path, filename: str) -> Path | None:
    if (root / filename).exists():
        return root / filename
    hits = sorted(root.rglob(filename))
    return hits[0] if hits else None


def _find_summary(root: Path) -> Path | None:
    for path in sorted(root.rglob(SUMMARY_FILE)):
        try:
            header = path.read_text(encoding="utf-8-sig").splitlines()[0].split(",")
        except (OSError, IndexError, UnicodeDecodeError):
            continue
        if {"MAT", "DE_24", "DE_168", "DE_Max"} <= {h.strip() for h in header}:
            return path
    return None


def _targeting(x) -> str | None:
    s = (_text(x) or "").lower()
    return s if s in ("active", "passive") else None


def read_nano_tumor_db(path, descriptors=None, summary=None) -> Collection:
    """Read the Nano-Tumor Database as published into a :class:`Collection`.

    Parameters
    ----------
    path : str or Path
        ``Time-course pharmacokinetics data.xlsx``, or a folder holding it (searched
        recursively, so the root of a download with several repositories works).
    descriptors : str or Path, optional
        ``Model_dataset.xlsx``; default: found next to, or under, ``path``.
    summary : str, Path or False, optional
        The Nano-ML-AI summary ``data.csv`` giving the core material; default: found
        under ``path`` if present (``False`` skips it).

    Returns
    -------
    Collection
        378 items for the published files, ids ``"1"`` … ``"378"``.  Descriptors are
        normalised: ``type`` inorganic/organic/hybrid, ``targeting`` active/passive
        (other entries → ``None``), ``material`` from the summary table.

    Raises
    ------
    DataError
        Listing every problem: missing file or column, non-numeric or negative
        values with their rows, datasets without descriptors.

    References
    ----------
    Cheng et al., ACS Nano 2020;14:3075 (PMID 32078303); Chou et al., J Control
    Release 2023;361:53 (doi:10.1016/j.jconrel.2023.07.040).
    """
    path = Path(path)
    if path.is_dir():
        root = path
        tc_path = _find(root, TIMECOURSE_FILE)
        if tc_path is None:
            raise DataError(path, [{"message": f"no {TIMECOURSE_FILE!r} under {path}"}])
    else:
        tc_path, root = path, path.parent
    if not tc_path.exists():
        raise DataError(tc_path, [{"message": f"file {str(tc_path)!r} does not exist"}])
    desc_path = Path(descriptors) if descriptors is not None else (_find(tc_path.parent, DESCRIPTOR_FILE) or _find(root, DESCRIPTOR_FILE))
    if desc_path is None or not desc_path.exists():
        raise DataError(tc_path, [{"message": f"no {DESCRIPTOR_FILE!r} next to or under {root}; pass descriptors=PATH"}])
    if summary is None:
        summary_path = _find_summary(root) or (_find_summary(root.parent) if root.parent != root else None)
    else:
        summary_path = Path(summary) if summary is not False else None

    tc = pd.read_excel(tc_path, na_values=_NA, keep_default_na=True)
    desc = pd.read_excel(desc_path, na_values=_NA, keep_default_na=True)
    problems: list[dict] = []
    for frame, where, cols in ((tc, tc_path.name, ("ID", "Time", "Tumor")),
                               (desc, desc_path.name, ("ID", "Type", "TS", "Dose", "BW", "TW"))):
        missing = [c for c in cols if c not in frame.columns]
        if missing:
            problems.append({"message": f"{where}: missing column(s) {', '.join(missing)} (have {', '.join(map(str, frame.columns))})"})
    if problems:
        raise DataError(tc_path, problems)

    tc = tc.copy()
    tc["ID"] = tc["ID"].ffill()
    rows = np.arange(len(tc)) + 2  # spreadsheet rows (header = row 1)
    for col in ("ID", "Time", "Tumor"):
        bad = rows[pd.to_numeric(tc[col], errors="coerce").isna().to_numpy()]
        if bad.size:
            from ..errors import format_rows

            problems.append({"message": f"{tc_path.name}: column {col} is empty or not a number in {format_rows(bad.tolist())}",
                             "column": col, "rows": bad.tolist()})
    if not problems:
        neg = rows[(tc["Time"] < 0).to_numpy() | (tc["Tumor"] < 0).to_numpy()]
        if neg.size:
            from ..errors import format_rows

            problems.append({"message": f"{tc_path.name}: negative Time or Tumor in {format_rows(neg.tolist())}",
                             "column": "Time/Tumor", "rows": neg.tolist()})
    ids_tc = pd.unique(tc["ID"].astype(int)) if not problems else []
    desc_by_id = {int(r["ID"]): r for _, r in desc.iterrows() if _num(r["ID"]) is not None}
    missing_desc = [int(i) for i in ids_tc if int(i) not in desc_by_id]
    if missing_desc:
        problems.append({"message": f"{desc_path.name}: no row for dataset ID(s) {', '.join(map(str, missing_desc))}", "column": "ID"})
    if problems:
        raise DataError(tc_path, problems)

    materials = _match_summary(desc, summary_path) if summary_path is not None else {}
    items = []
    for dataset_id, block in tc.groupby(tc["ID"].astype(int), sort=False):
        block = block.sort_values("Time", kind="stable")
        r = desc_by_id[int(dataset_id)]
        d = {name: (_num(r[col]) if name in ("d_h_nm", "zeta_mV", "charge", "tumour_size_cm3") else _text(r[col]))
             for col, name in _DESCRIPTORS.items() if col in desc.columns}
        d["type"] = (d.get("type") or "").lower() or None
        d["targeting"] = _targeting(r["TS"])
        d["material"], d["summary_type"] = materials.get(int(dataset_id), (None, None))
        published = {"DE24": _num(r.get("DE24")), "DE168": _num(r.get("DE168")), "DEmax": _num(r.get("Demax"))}
        published.update({nano: _num(r.get(col)) for col, nano in PUBLISHED_PARAMETERS.items() if col in desc.columns})
        items.append(MetaItem(
            id=str(int(dataset_id)),
            times_h=block["Time"].to_numpy(float),
            tumour_pct_id=block["Tumor"].to_numpy(float),
            dose_mg_kg=_num(r["Dose"]),
            body_weight_g=_num(r["BW"]),
            tumour_weight_g=_num(r["TW"]),
            descriptors=d,
            published=published,
            source=f"Nano-Tumor Database ({tc_path.name}, {desc_path.name}); Chou et al. 2023, doi:10.1016/j.jconrel.2023.07.040",
        ))
    return Collection(items, name="Nano-Tumor Database", source=str(tc_path))


def _match_summary(desc: pd.DataFrame, summary_path: Path) -> dict[int, tuple[str | None, str | None]]:
    """Dataset ID → (material, summary type), by the nearest (DE24, DE168, DEmax) triple.

    The summary's ``ID`` is the paper's, not the dataset's, so rows are matched on the
    three published delivery efficiencies: the match must agree within 5 % on all
    three (max |Δ ln DE| < 0.05); ties prefer the same targeting and type.
    """
    s = pd.read_csv(summary_path, encoding="utf-8-sig", na_values=_NA)
    need = ["DE_24", "DE_168", "DE_Max", "MAT"]
    if any(c not in s.columns for c in need):
        return {}
    s = s.dropna(subset=need)
    s = s[(s[["DE_24", "DE_168", "DE_Max"]] > 0).all(axis=1)]
    d = desc.dropna(subset=["DE24", "DE168", "Demax"])
    d = d[(d[["DE24", "DE168", "Demax"]] > 0).all(axis=1)]
    if s.empty or d.empty:
        return {}
    B = np.log(d[["DE24", "DE168", "Demax"]].to_numpy(float))
    S = np.log(s[["DE_24", "DE_168", "DE_Max"]].to_numpy(float))
    dist = np.abs(B[:, None, :] - S[None, :, :]).max(axis=2)
    same_ts = d["TS"].astype(str).str.lower().to_numpy()[:, None] == s["TS"].astype(str).str.lower().to_numpy()[None, :]
    same_type = d["Type"].astype(str).str.lower().to_numpy()[:, None] == s["Type"].astype(str).str.lower().to_numpy()[None, :]
    score = dist + 1e-3 * (~same_ts) + 1e-3 * (~same_type)
    j = score.argmin(axis=1)
    out = {}
    for k, (dataset_id, jj) in enumerate(zip(d["ID"].astype(int), j)):
        if dist[k, jj] < 0.05:
            mat = str(s["MAT"].iloc[jj]).strip()
            out[int(dataset_id)] = (_MATERIALS.get(mat, mat.lower()), str(s["Type"].iloc[jj]).strip().lower())
    return out


# --------------------------------------------------------------------------- nanopk datasets
def read_dataset_folder(folder, pattern: str = "*.csv") -> Collection:
    """Every nanopk dataset in ``folder`` with tumour observations, as a :class:`Collection`.

    Tumour rows are converted to %ID of the whole tumour by the data layer
    (:meth:`nanopk.data.Dataset.percent_id`: %ID/g × the sidecar's ``tumour.weight_g``,
    or the species table's tumour mass, recorded in ``descriptors["tumour_mass_source"]``).
    Datasets without tumour rows are skipped; a dataset with several groups gives one
    item per group (``name_group``).  Every problem of every file is reported together.
    """
    from ..data import read_dataset

    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(folder, [{"message": f"{str(folder)!r} is not a folder of datasets"}])
    items, problems = [], []
    for csv in sorted(folder.glob(pattern)):
        if not csv.with_suffix(".json").exists():
            continue
        try:
            items += _items_from_dataset(read_dataset(csv), csv)
        except DataError as exc:
            problems += [dict(p, message=f"{csv.name}: {p['message']}") for p in exc.problems]
    if problems:
        raise DataError(folder, problems)
    return Collection(items, name=folder.name, source=str(folder))


def _items_from_dataset(ds, csv: Path) -> list[MetaItem]:
    meta = ds.meta
    if "tumour" not in ds.tissues:
        return []
    table = ds.percent_id(tissues=["tumour"])
    table = table[~table["censored"].astype(bool)] if "censored" in table else table
    bw = ds.body_weight_g
    dose_ug = ds.dose_ug
    dose_mg_kg = dose_ug / bw if (dose_ug and bw) else None  # µg / g = mg/kg
    particle = meta.get("particle") or {}
    tumour_meta = meta.get("tumour") or {}
    material, np_type = _material_class(particle.get("material"))
    source = meta.get("source") or {}
    out = []
    for group, block in table.groupby("group", sort=False):
        block = block.sort_values("time_h", kind="stable")
        mass = pd.to_numeric(block["organ_mass_g"], errors="coerce").dropna()
        descriptors = {
            "type": np_type,
            "material": material,
            "coating": particle.get("coating"),
            "targeting": _targeting(particle.get("targeting")),
            "tumour_model": tumour_meta.get("model"),
            "cancer_type": tumour_meta.get("cell_line"),
            "shape": particle.get("shape"),
            "d_h_nm": _num(particle.get("hydrodynamic_diameter_nm")),
            "zeta_mV": _num(particle.get("zeta_mV")),
            "tumour_mass_source": str(block["mass_source"].iloc[0]) if "mass_source" in block and len(block) else None,
        }
        out.append(MetaItem(
            id=f"{ds.name}_{group}" if group else ds.name,
            times_h=block["time_h"].to_numpy(float), tumour_pct_id=block["value_pid"].to_numpy(float),
            dose_mg_kg=dose_mg_kg, body_weight_g=bw, tumour_weight_g=float(mass.iloc[0]) if len(mass) else None,
            descriptors=descriptors, published={},
            source=str(source.get("citation") or source.get("doi") or csv),
        ))
    return out


#: nanopk material names (nanopk.materials) → the meta-analysis classes (Cheng et al. 2020).
_NANOPK_MATERIALS = {"Au": ("gold", "inorganic"), "Ag": ("other inorganic", "inorganic"),
                     "SiO2": ("silica", "inorganic"), "Fe3O4": ("iron oxide", "inorganic"),
                     "ZnO": ("other inorganic", "inorganic"), "TiO2": ("other inorganic", "inorganic"),
                     "CdSe": ("other inorganic", "inorganic"), "lipid": ("liposomes", "organic"),
                     "polymer": ("polymeric", "organic")}


def _material_class(material) -> tuple[str | None, str | None]:
    if not material:
        return None, None
    return _NANOPK_MATERIALS.get(str(material), (str(material).lower(), None))
