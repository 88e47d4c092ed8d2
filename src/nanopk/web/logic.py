"""What the web page's callbacks do, as plain functions (no Shiny here, so tests call them).

Every function here calls the same public API as the command line -- ``read_dataset``,
``nanopk.fit`` with the CLI's delivery step, ``nanopk.compare``, ``predict_delivery``,
``load_model`` -- and raises the same :class:`~nanopk.errors.NanopkError` the CLI would;
the page shows ``str(err)``.  The only difference is the path of an uploaded file: it
lives in the session's own temporary folder, and :func:`error_text` removes that folder
from the message, so the page shows what ``nanopk fit study.csv`` prints when run in the
folder that holds ``study.csv``.
"""
from __future__ import annotations

import base64
import contextlib
import io
import json
import math
import re
import shutil
import warnings
from pathlib import Path
from typing import Callable, Mapping

from ..errors import NanopkError

__all__ = [
    "MAX_UPLOAD_BYTES", "DATA_SUFFIXES", "UploadError", "error_text", "stage_upload", "read_sidecar_form",
    "form_overrides", "run_fit", "run_compare", "design", "design_scan", "model_table", "model_info", "flux_svg",
    "figure_png", "data_uri",
]

#: Largest upload accepted (bytes): a biodistribution table is kilobytes; 10 MB leaves room
#: for a workbook with pictures while keeping one user from filling the server's disk.
MAX_UPLOAD_BYTES = 10_000_000
#: Data files the readers take (``nanopk.read_dataset``).
DATA_SUFFIXES = (".csv", ".xlsx")

#: Form fields of the sidecar (DESIGN.md, "Datasets") and where each lives in the JSON.
FORM_FIELDS = {
    "species": ("species",),
    "body_weight_g": ("body_weight_g",),
    "dose_value": ("dose", "value"),
    "dose_unit": ("dose", "unit"),
    "material": ("particle", "material"),
    "core_diameter_nm": ("particle", "core_diameter_nm"),
    "coating": ("particle", "coating"),
    "coating_mw_da": ("particle", "coating_mw_da"),
    "tumour_weight_g": ("tumour", "weight_g"),
}


class UploadError(NanopkError, ValueError):
    """An uploaded file the page refuses before any reader sees it (too large, wrong type)."""


def error_text(exc: BaseException, workdir: str | Path | None = None) -> str:
    """The message the page shows for ``exc``: ``str(exc)``, without the session folder.

    A :class:`NanopkError` is the CLI's message (``nanopk fit: error: <this>``); an
    ImportError (a missing extra) is its own text, as the CLI prints it; anything else is
    a bug, shown as its type and text so the user can report it (the server goes on).
    """
    if isinstance(exc, (NanopkError, ImportError)):
        text = str(exc)
    else:
        text = f"internal error ({type(exc).__name__}: {exc}); please report it with the input that caused it"
    if workdir:
        folder = str(Path(workdir))
        text = text.replace(folder + "/", "").replace(folder, ".")
    return text


def _safe_name(name: str) -> str:
    """A file name without folders or characters a shell would trip on."""
    base = Path(str(name).replace("\\", "/")).name
    base = re.sub(r"[^A-Za-z0-9._ +()-]", "_", base).strip() or "upload"
    return base.lstrip(".") or "upload"


def stage_upload(workdir: str | Path, data: Mapping, sidecar: Mapping | None = None) -> Path:
    """Copy an upload (Shiny's file info: ``name``, ``size``, ``datapath``) into ``workdir``.

    The data file keeps its own name; a sidecar is saved beside it as ``<stem>.json``, so
    ``read_dataset`` finds it exactly as the CLI would.

    Raises
    ------
    UploadError
        A file larger than :data:`MAX_UPLOAD_BYTES`, or a data file that is not .csv or
        .xlsx, or a sidecar that is not .json.
    """
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    name = _safe_name(data["name"])
    suffix = Path(name).suffix.lower()
    if suffix not in DATA_SUFFIXES:
        raise UploadError(f"{name}: nanopk reads {' or '.join(DATA_SUFFIXES)} files (a long or wide biodistribution "
                          f"table), not {suffix or 'a file without extension'}; save the table as CSV or .xlsx")
    for item, what in ((data, "data file"), (sidecar, "sidecar")):
        if item is not None:
            size = int(item.get("size") or Path(item["datapath"]).stat().st_size)
            if size > MAX_UPLOAD_BYTES:
                raise UploadError(f"{_safe_name(item['name'])}: the {what} has {size:,} bytes; the page takes files of "
                                  f"at most {MAX_UPLOAD_BYTES:,} bytes (10 MB; use `nanopk fit` for larger ones)")
    for old in workdir.iterdir():  # one upload at a time: a new one replaces the previous and its sidecar
        if old.is_file():
            old.unlink()
    target = workdir / name
    shutil.copyfile(data["datapath"], target)
    if sidecar is not None:
        side_name = _safe_name(sidecar["name"])
        if Path(side_name).suffix.lower() != ".json":
            raise UploadError(f"{side_name}: the sidecar is a .json file (DESIGN.md, 'Datasets'); "
                              f"e.g. {Path(name).stem}.json")
        shutil.copyfile(sidecar["datapath"], target.with_suffix(".json"))
    return target


def read_sidecar_form(meta: Mapping | None) -> dict:
    """The form's values from a sidecar dict (missing fields are ``None``)."""
    out = {}
    for key, where in FORM_FIELDS.items():
        value = meta if isinstance(meta, Mapping) else {}
        for part in where:
            value = value.get(part) if isinstance(value, Mapping) else None
        out[key] = value
    return out


def load_json_quietly(path: Path) -> dict | None:
    """A sidecar's dict for prefilling the form, or ``None`` when it is not a JSON object.

    Only the form uses this; the reader itself validates the file and reports any problem.
    """
    try:
        meta = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) else None


def _same(a, b) -> bool:
    if a in (None, "") and b in (None, ""):
        return True
    try:
        return math.isclose(float(a), float(b))
    except (TypeError, ValueError):
        return str(a) == str(b)


def form_overrides(form: Mapping, prefill: Mapping | None) -> dict:
    """Sidecar keys for ``read_dataset(**meta)``: the form fields the user changed.

    Fields left as the sidecar gave them are not passed, so an unchanged form reads the
    files exactly as the CLI does.  A changed particle or tumour field is merged into the
    sidecar's dict (the other fields of it kept); a changed dose gives both its parts.
    """
    prefill = dict(prefill or {})
    base = read_sidecar_form(prefill)
    # A blank field is "not given", never "delete the sidecar's value": an unchanged or
    # cleared form reads the files exactly as the CLI does.
    changed = {k for k in FORM_FIELDS if form.get(k) not in (None, "") and not _same(form.get(k), base.get(k))}
    meta: dict = {}
    for key in changed & {"species", "body_weight_g"}:
        meta[key] = form[key]
    if changed & {"dose_value", "dose_unit"}:
        meta["dose"] = {"value": form.get("dose_value"), "unit": form.get("dose_unit")}
    for group, keys in (("particle", ("material", "core_diameter_nm", "coating", "coating_mw_da")),
                        ("tumour", ("tumour_weight_g",))):
        if changed & set(keys):
            merged = dict(prefill.get(group) or {})
            for k in keys:
                merged[FORM_FIELDS[k][1]] = form.get(k)
            meta[group] = {k: v for k, v in merged.items() if v not in (None, "")}
    return meta


@contextlib.contextmanager
def quiet():
    """Fit and data warnings are part of the report (as in the CLI): not Python warnings too."""
    from ..data import DataWarning
    from ..fit import FitWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitWarning)
        warnings.simplefilter("ignore", DataWarning)
        yield


def _names(text) -> list[str] | None:
    if not text:
        return None
    return [v.strip() for v in str(text).split(",") if v.strip()] or None


def figure_png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    return buf.getvalue()


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _held_model(model: str, params, vary):
    """The page's model with its "hold" values set, after the CLI's checks of --param against --vary."""
    from ..data.checks import check_fit_arguments
    from ..report import parse_params
    from ..spec import load_model

    fixed = parse_params([params]) if params else {}
    check_fit_arguments(_names(vary), fixed)
    m = load_model(model)
    if fixed:
        m.check_parameter_names(fixed)
        m = m.with_parameters(fixed)
    return m


def _sheet(sheet):
    """A worksheet field as read_dataset takes it: an index when all digits, a name, or None when empty."""
    return int(sheet) if sheet not in (None, "") and str(sheet).isdigit() else (sheet or None)


def run_fit(source, model: str, *, sheet=None, vary=None, params=None, meta: Mapping | None = None,
            progress: Callable[[int, str], None] | None = None, figures: bool = True) -> dict:
    """Fit as ``nanopk fit`` does: the same steps, the same report and delivery lines.

    Parameters
    ----------
    source : str or Path
        Bundled dataset name or a staged upload.
    model : str
        Bundled model name.
    sheet : str, optional
        Worksheet of an .xlsx (name or 0-based index as text).
    vary : str, optional
        Comma-separated parameter names (the CLI's ``--vary``); empty: nanopk chooses.
    params : str, optional
        ``NAME=VALUE,...`` held fixed (the CLI's ``--param``).
    meta : dict, optional
        Sidecar overrides from the form (:func:`form_overrides`).
    progress : callable, optional
        Called with ``(step, message)`` at each of the four steps.

    Returns
    -------
    dict
        ``result`` (FitResult), ``report`` (text), ``delivery`` (dict or None),
        ``delivery_lines``, ``wall_s``, ``success``, ``png`` (the fit figure, or None
        without matplotlib: ``plot_error`` says why).
    """
    import time

    from ..data import read_dataset
    from ..fit import fit
    from ..report import delivery_lines, fit_delivery

    step = progress or (lambda i, m: None)
    with quiet():
        m = _held_model(model, params, vary)
        step(1, "reading the data")
        ds = read_dataset(source, sheet=_sheet(sheet), **dict(meta or {}))
        step(2, "fitting the model")
        t0 = time.perf_counter()
        result = fit(m, ds, vary=_names(vary))
        wall = time.perf_counter() - t0
        step(3, "tumour delivery (DE24, DE168, DEmax)")
        de = fit_delivery(result)
        out = {"result": result, "report": result.report(), "delivery": de,
               "delivery_lines": delivery_lines(de) if de else [], "wall_s": wall, "success": result.success,
               "png": None, "plot_error": None}
        if figures:
            step(4, "drawing the figures")
            try:
                out["png"] = figure_png(result.plot())
            except ImportError as exc:
                out["plot_error"] = str(exc)
        return out


def run_compare(source_a, source_b, model: str, *, sheet=None, vary=None, shared=None, params=None,
                progress: Callable[[int, str], None] | None = None, figures: bool = True) -> dict:
    """Compare two groups as ``nanopk compare`` does; ``report``, ``comparison``, ``png``."""
    from ..compare import compare, same_data
    from ..data import read_dataset

    step = progress or (lambda i, m: None)
    with quiet():
        m = _held_model(model, params, vary)
        step(1, "reading both datasets")
        a, b = read_dataset(source_a, sheet=_sheet(sheet)), read_dataset(source_b, sheet=_sheet(sheet))
        note = None
        if a.name == b.name:
            if same_data(a, b):
                raise NanopkError(f"{str(source_a)!r} and {str(source_b)!r} are the same dataset ({a.name!r}): "
                                  "compare needs two different groups (e.g. PEG-coated and bare particles)")
            names = (f"{a.name}_A", f"{b.name}_B")
            note = f"note: both datasets are named {a.name!r}; they are the groups {names[0]!r} and {names[1]!r}"
        else:
            names = (a.name, b.name)
        step(2, "fitting each group and the joint model")
        cmp = compare(m, dict(zip(names, (a, b))), vary=_names(vary), shared=_names(shared))
        out = {"comparison": cmp, "report": (note + "\n" if note else "") + cmp.report(), "success": cmp.success,
               "png": None, "plot_error": None}
        if figures:
            step(3, "drawing the figure")
            try:
                out["png"] = figure_png(cmp.plot())
            except ImportError as exc:
                out["plot_error"] = str(exc)
        return out


def _particle(material, core_diameter_nm, coating, coating_mw_da):
    fields = {"material": material, "core_diameter_nm": core_diameter_nm, "coating": coating}
    if coating_mw_da not in (None, "") and coating in ("PEG", "PEG-PLA"):
        fields["coating_mw_da"] = coating_mw_da
    return fields


def design(model: str, *, material, core_diameter_nm, coating, coating_mw_da=None, dose_mg_kg=1.0,
           times_h=None) -> dict:
    """Predicted DE24/DE168/DEmax (``predict_delivery``) and organ time courses of one particle.

    Returns ``row`` (predict_delivery's row as a dict), ``sim`` (the time courses, %ID,
    from ``load_model(model, particle=...)`` with the same dose) and ``particle``.
    """
    import numpy as np

    from ..delivery import predict_delivery
    from ..particle import Particle
    from ..spec import load_model

    fields = _particle(material, core_diameter_nm, coating, coating_mw_da)
    if dose_mg_kg is None or not float(dose_mg_kg) > 0:
        raise NanopkError(f"dose {dose_mg_kg!r} mg/kg: give a positive dose in mg/kg (e.g. 1)")
    table = predict_delivery(model, [{**fields, "dose": float(dose_mg_kg)}])
    row = table.iloc[0].to_dict()
    particle_fields = {k: v for k, v in fields.items()}
    if particle_fields.get("coating") in ("PEG", "PEG-PLA") and particle_fields.get("coating_mw_da") is None:
        particle_fields["coating_mw_da"] = 5000.0  # predict_delivery's default for a PEG coating
    particle = Particle.from_dict(particle_fields)
    times = np.asarray(times_h if times_h is not None else np.geomspace(0.1, 168, 60))
    sim = load_model(model, particle=particle).simulate(times, dose=f"{float(dose_mg_kg)} mg/kg")
    return {"row": row, "sim": sim, "particle": particle}


def design_scan(model: str, *, material, sizes, coatings, coating_mw_da=None, dose_mg_kg=1.0):
    """DE24 over a size × coating grid (``predict_delivery``'s grid), as a table."""
    base = {"material": material}
    if coating_mw_da not in (None, ""):
        base["coating_mw_da"] = coating_mw_da
    from ..delivery import predict_delivery

    rows = []
    for coating in coatings:  # coating_mw_da only for polymer coatings
        b = dict(base) if coating in ("PEG", "PEG-PLA") else {"material": material}
        rows.append(predict_delivery(model, {"size": list(sizes), "coating": [coating], "dose": [float(dose_mg_kg)]}, base=b))
    import pandas as pd

    return pd.concat(rows, ignore_index=True)


def design_figure(sim, organs=("blood", "liver", "spleen", "kidney", "lung", "tumour")):
    """Organ time courses (%ID, log time) of a design."""
    from ..delivery import _figure_class

    Figure = _figure_class()
    fig = Figure(figsize=(6.5, 3.8), layout="constrained")
    ax = fig.add_subplot(1, 1, 1)
    for organ in organs:
        if organ in sim:
            ax.plot(sim.index, sim[organ], label=organ)
    ax.set_xscale("log")
    ax.set_xlabel("time (h)")
    ax.set_ylabel("%ID")
    ax.legend(fontsize="small")
    return fig


def model_table() -> list[dict]:
    """One row per bundled model, as ``nanopk models`` lists them."""
    from ..spec import list_models, load_model

    rows = []
    for name in list_models():
        m = load_model(name)
        rows.append({"name": name, "states": len(m.states), "parameters": len(m.parameters),
                     "species": m.metadata["species"], "description": " ".join(m.description.split())})
    return rows


def model_info(name: str) -> dict:
    """A bundled model's mechanisms (parts), parameters (value, unit, bounds, source), notes."""
    from ..spec import load_model

    m = load_model(name)
    params = [{"name": p.name, "value": p.value, "unit": p.unit, "bounds": f"[{p.bounds[0]:g}, {p.bounds[1]:g}]",
               "description": p.description, "source": p.source} for p in m.parameters.values()]
    return {"name": m.name, "description": " ".join(m.description.split()), "species": m.metadata.get("species"),
            "mechanisms": [p.name for p in m.parts], "parameters": params, "notes": list(m.notes),
            "states": len(m.states), "fluxes": len(m.fluxes), "svg": flux_svg(m)}


def _esc(text) -> str:
    return (str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;"))


def flux_svg(model, size: int = 760) -> str:
    """The model's flux graph as SVG: one node per state, one arrow per flux (source → target).

    States sit on a circle in the model's order (so an organ's capillary and tissue
    states are neighbours); mass states are boxes, other states (coverages, numbers)
    dashed boxes; a state without a flux is still drawn.  Each arrow's tooltip is the
    flux's name and description.
    """
    states = list(model.states)
    n = max(len(states), 1)
    cx = cy = size / 2
    radius = size / 2 - 90
    pos = {}
    for i, s in enumerate(states):
        angle = 2 * math.pi * i / n - math.pi / 2
        pos[s.name] = (cx + radius * math.cos(angle), cy + radius * math.sin(angle))
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="flux-diagram" width="{size}" height="{size}" '
             f'viewBox="0 0 {size} {size}" font-family="sans-serif" font-size="10">',
             '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="6" markerHeight="6" '
             'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#555"/></marker></defs>']
    for f in model.fluxes:
        if f.source not in pos or f.target not in pos:
            continue
        (x1, y1), (x2, y2) = pos[f.source], pos[f.target]
        dx, dy = x2 - x1, y2 - y1
        dist = math.hypot(dx, dy) or 1.0
        shrink = 14.0  # stop the arrow at the node's box
        x1s, y1s = x1 + dx / dist * shrink, y1 + dy / dist * shrink
        x2s, y2s = x2 - dx / dist * shrink, y2 - dy / dist * shrink
        # a slight curve keeps the two directions of an exchange apart
        mx, my = (x1s + x2s) / 2 - dy / dist * 12, (y1s + y2s) / 2 + dx / dist * 12
        parts.append(f'<path class="flux" data-source="{_esc(f.source)}" data-target="{_esc(f.target)}" '
                     f'd="M {x1s:.1f} {y1s:.1f} Q {mx:.1f} {my:.1f} {x2s:.1f} {y2s:.1f}" fill="none" stroke="#777" '
                     f'stroke-width="1" marker-end="url(#arrow)"><title>{_esc(f.name)}: {_esc(f.source)} → '
                     f'{_esc(f.target)}{(" — " + _esc(f.description)) if f.description else ""}</title></path>')
    mass = set(model.mass_states)
    for s in states:
        x, y = pos[s.name]
        w = 7 + 5.6 * len(s.name)
        dash = "" if s.name in mass else ' stroke-dasharray="3,2"'
        parts.append(f'<g class="state" data-state="{_esc(s.name)}"><rect x="{x - w / 2:.1f}" y="{y - 9:.1f}" '
                     f'width="{w:.1f}" height="18" rx="4" fill="#eef4fb" stroke="#3a6ea5"{dash}/>'
                     f'<text x="{x:.1f}" y="{y + 3.5:.1f}" text-anchor="middle">{_esc(s.name)}</text></g>')
    parts.append("</svg>")
    return "\n".join(parts)
