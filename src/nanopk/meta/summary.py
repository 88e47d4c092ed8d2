"""Summaries of a meta-analysis store: medians of DE24, DE168 and DEmax by NP class.

Medians are over the datasets whose fit finished (status ``ok``).  Classes follow
Cheng et al., ACS Nano 2020 (PMID 32078303): NP type (inorganic/organic), core
material (gold, liposomes, polymeric, …), targeting (active/passive) and tumour
model (xenograft/allograft, hetero-/orthotopic).  NP type uses the summary-table
classification (Lin et al., Int J Nanomedicine 2022, which files "hybrid" particles as
inorganic or organic) when the reader matched the dataset to it, and the
``Model_dataset.xlsx`` type otherwise.

A store holds the rows of one set of fit settings (:func:`nanopk.meta.run_meta`
refuses to add rows of others); the summary names them (``settings_key``,
``settings``).  Rows without a settings key (a store from an earlier nanopk) are
summarised with ``settings`` ``None`` and a ``settings_note`` saying their settings
cannot be verified; a store whose rows carry different keys is refused.

Where the store holds the source's own values (the Nano-Tumor Database's PBPK-derived
DE24/DE168/DEmax), their medians over the same datasets are reported beside ours, with
the agreement per dataset (median ratio, R² of log values).
"""
from __future__ import annotations

import json
import math
import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import DataError

__all__ = ["summarise", "results_frame", "CLASSES", "format_summary"]

#: Descriptor → the class column in the summary.
CLASSES = ("np_type", "material", "targeting", "tumour_model")
_DE = ("DE24", "DE168", "DEmax")


def _json(text) -> dict:
    """A stored JSON column; NULL (read as None or NaN) is an empty dict."""
    return json.loads(text) if isinstance(text, str) and text else {}


def results_frame(store) -> pd.DataFrame:
    """The store's results, one row per dataset, descriptors and published values as columns."""
    path = Path(store)
    if not path.exists():
        raise DataError(path, [{"message": f"no results store at {str(path)!r}; run nanopk.meta.run_meta first"}])
    con = sqlite3.connect(str(path))
    try:
        df = pd.read_sql_query("SELECT * FROM results", con)
    except (sqlite3.DatabaseError, pd.errors.DatabaseError) as exc:
        raise DataError(path, [{"message": f"{str(path)!r} is not a nanopk meta store ({exc})"}]) from None
    finally:
        con.close()
    if df.empty:
        return df
    desc = pd.DataFrame([_json(d) for d in df["descriptors"]], index=df.index)
    pub = pd.DataFrame([_json(p) for p in df["published"]], index=df.index)
    pub = pub[[c for c in _DE if c in pub]].add_prefix("published_")
    df = pd.concat([df.drop(columns=["descriptors", "published"]), desc, pub], axis=1)
    if "type" in df:
        st = df["summary_type"] if "summary_type" in df else pd.Series(None, index=df.index, dtype=object)
        df["np_type"] = st.where(st.notna(), df["type"])
    df["converged"] = df["converged"].astype(bool)
    df["params"] = [_json(p) for p in df["params"]]
    key = pd.to_numeric(df["id"], errors="coerce")
    df = df.iloc[np.lexsort((df["id"].astype(str).to_numpy(), key.fillna(np.inf).to_numpy()))].reset_index(drop=True)
    return df


def _median(x) -> float | None:
    v = pd.to_numeric(pd.Series(x), errors="coerce").dropna()
    return float(v.median()) if len(v) else None


def _runs(store) -> pd.DataFrame:
    con = sqlite3.connect(str(store))
    try:
        return pd.read_sql_query("SELECT * FROM runs", con)
    except (sqlite3.DatabaseError, pd.errors.DatabaseError):
        return pd.DataFrame()
    finally:
        con.close()


def _settings(store, df: pd.DataFrame) -> dict:
    """The settings of the store's rows: ``settings_key``, ``settings`` (the key's record)
    and, for rows without a key, ``settings_note``; rows of several keys are refused."""
    keys = df["settings_key"] if "settings_key" in df else pd.Series(None, index=df.index, dtype=object)
    distinct = sorted(keys.dropna().unique())
    n_legacy = int(keys.isna().sum())
    if len(distinct) + (n_legacy > 0) > 1:
        counts = ", ".join([f"{(keys == k).sum()} with key {k}" for k in distinct] +
                           ([f"{n_legacy} without a key"] if n_legacy else []))
        raise DataError(store, [{"message": f"the results in {str(store)!r} were fitted with different settings "
                                            f"({counts}); their medians would mix them. Rerun into a new store "
                                            f"(nanopk meta ... --store NEW.sqlite) or with --overwrite",
                                 "column": "settings_key"}])
    if n_legacy or not distinct:
        out = {"settings_key": None, "settings": None}
        if n_legacy:
            out["settings_note"] = (f"{n_legacy} row(s) were written by a nanopk without settings keys: the model, "
                                    f"prior and fit options they were fitted with cannot be verified")
        return out
    con = sqlite3.connect(str(store))
    try:
        row = con.execute("SELECT record FROM settings WHERE key = ?", (distinct[0],)).fetchone()
    except sqlite3.DatabaseError:
        row = None
    finally:
        con.close()
    return {"settings_key": distinct[0], "settings": json.loads(row[0]) if row else None}


def _prior(store) -> dict | None:
    con = sqlite3.connect(str(store))
    try:
        row = con.execute("SELECT value FROM info WHERE key = 'prior'").fetchone()
        return json.loads(row[0]) if row else None
    except sqlite3.DatabaseError:
        return None
    finally:
        con.close()


def summarise(store, classes=CLASSES) -> dict:
    """Summarise a meta-analysis store.

    Returns
    -------
    dict
        ``n_datasets``, ``n_ok``, ``n_failed``, ``n_skipped``, ``n_converged``,
        ``fraction_converged`` (of all datasets), ``wall_time_s`` (summed over runs),
        ``fit_time_s`` (summed over datasets), ``runs``, ``prior`` (the prior the fits
        used: kind, centres and ln-SDs, σ); ``settings_key`` and ``settings`` (what the
        rows were fitted with; see :mod:`nanopk.meta.runner`), ``settings_note`` for
        rows from before settings keys;
        ``medians`` and ``means`` of DE24, DE168, DEmax (%ID) over fitted datasets;
        ``published_medians`` (the source's values, same datasets) and
        ``agreement`` (per metric: median ratio ours/published, R² of log10 values);
        ``by_class``: ``{class: {level: {"n", "DE24", "DE168", "DEmax",
        "published_DE24"}}}``; ``datasets``: one record per dataset; ``failures``:
        ``{id: error}``.

    Raises
    ------
    DataError
        No store at ``store``, not a meta store, or its rows were fitted with
        different settings.
    """
    df = results_frame(store)
    runs = _runs(store)
    out: dict = {"store": str(store), "n_datasets": int(len(df)), **_settings(store, df), "prior": _prior(store)}
    if df.empty:
        out.update(n_ok=0, n_failed=0, n_skipped=0, n_converged=0, fraction_converged=None, medians={}, datasets=[])
        return out
    ok = df[df["status"] == "ok"]
    out.update(
        n_ok=int(len(ok)), n_failed=int((df["status"] == "failed").sum()), n_skipped=int((df["status"] == "skipped").sum()),
        n_converged=int(df["converged"].sum()), fraction_converged=float(df["converged"].mean()),
        wall_time_s=float(runs["wall_s"].fillna(0).sum()) if not runs.empty else None,
        fit_time_s=float(df["wall_s"].fillna(0).sum()),
        runs=[{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items() if k != "settings"}
              for r in runs.to_dict("records")] if not runs.empty else [],
        medians={m: _median(ok[m]) for m in _DE},
        means={m: (float(pd.to_numeric(ok[m]).mean()) if ok[m].notna().any() else None) for m in _DE},
    )
    pub_cols = [f"published_{m}" for m in _DE if f"published_{m}" in ok]
    if pub_cols:
        out["published_medians"] = {c.removeprefix("published_"): _median(ok[c]) for c in pub_cols}
        agreement = {}
        for c in pub_cols:
            m = c.removeprefix("published_")
            both = ok[[m, c]].apply(pd.to_numeric, errors="coerce").dropna()
            both = both[(both > 0).all(axis=1)]
            if len(both) >= 3:
                a, b = np.log10(both[m].to_numpy()), np.log10(both[c].to_numpy())
                r2 = 1 - np.sum((a - b) ** 2) / np.sum((b - b.mean()) ** 2)
                agreement[m] = {"n": int(len(both)), "median_ratio": float(np.median(10 ** (a - b))), "r2_log10": float(r2)}
        out["agreement"] = agreement
    by_class = {}
    for cls in classes:
        if cls not in ok:
            continue
        levels = {}
        for level, g in ok.groupby(ok[cls].fillna("unknown").astype(str)):
            entry = {"n": int(len(g))}
            entry.update({m: _median(g[m]) for m in _DE})
            for c in pub_cols:
                entry[c] = _median(g[c])
            levels[level] = entry
        by_class[cls] = levels
    out["by_class"] = by_class
    out["failures"] = {r["id"]: r["error"] for _, r in df[df["status"] != "ok"].iterrows()}
    cols = [c for c in ("id", "status", "converged", "DE24", "DE168", "DEmax", "t_max_h", "tumour_24h", "tumour_168h",
                        "rmse_log", "n_points", "nfev", "wall_s", "np_type", "material", "targeting", "tumour_model",
                        *pub_cols, "params", "error") if c in df]
    out["datasets"] = _records(df[cols])
    return out


def _records(frame: pd.DataFrame) -> list[dict]:
    recs = frame.to_dict("records")
    for r in recs:
        for k, v in r.items():
            if isinstance(v, float) and not math.isfinite(v):
                r[k] = None
            elif isinstance(v, (np.bool_,)):
                r[k] = bool(v)
            elif isinstance(v, np.integer):
                r[k] = int(v)
    return recs


def format_summary(summary: dict, reference: dict | None = None) -> str:
    """Plain-text summary; ``reference`` = ``{metric or class level: published median}`` shown beside."""
    ref = reference or {}
    lines = [f"{summary['n_datasets']} datasets: {summary['n_ok']} fitted, {summary['n_failed']} failed, "
             f"{summary['n_skipped']} skipped; converged {100 * (summary['fraction_converged'] or 0):.1f} %; "
             f"wall time {summary.get('wall_time_s') or 0:.1f} s"]
    for m in _DE:
        v = summary["medians"].get(m)
        pub = summary.get("published_medians", {}).get(m)
        extra = f"   (Nano-Tumor DB values, same datasets: {pub:.3g})" if pub is not None else ""
        if m in ref:
            extra += f"   (published: {ref[m]})"
        lines.append(f"  median {m:<6} {v:.3g} %ID{extra}" if v is not None else f"  median {m}: n/a")
    for cls, levels in summary.get("by_class", {}).items():
        lines.append(f"  by {cls}:")
        for level, e in sorted(levels.items(), key=lambda kv: -kv[1]["n"]):
            r = f"   published {ref[level]}" if level in ref else ""
            de24 = e["DE24"]
            lines.append(f"    {level:<24} n={e['n']:<4} DE24 {de24:.3g}  DE168 {e['DE168']:.3g}  DEmax {e['DEmax']:.3g}{r}"
                         if de24 is not None else f"    {level:<24} n={e['n']}")
    return "\n".join(lines)
