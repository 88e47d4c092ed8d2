"""What the web page's callbacks do, as plain functions (no Shiny here, so tests call them).

Every function here calls the same public API as the command line -- ``read_dataset``,
``nanopk.fit`` with the CLI's delivery step, ``nanopk.compare``, ``nanopk predict``'s
:func:`nanopk.calibrate.predict.predict` (the design page and the two-particle comparison,
with the ``--particle``/``--dose`` text the form stands for), ``nanopk scan`` with the
calibrated constants, :func:`nanopk.compare.particle_attribution`, ``load_model`` -- and
raises the same :class:`~nanopk.errors.NanopkError` the CLI would; the page shows ``str(err)``.  The only difference is the path of an uploaded file: it
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
    "form_overrides", "run_fit", "run_compare", "particle_text", "dose_text", "predict_lines", "design", "design_scan",
    "compare_particles", "design_figure", "compare_particles_figure", "model_table", "model_info", "flux_svg",
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
    # A molecular weight only for polymer coatings: the form keeps its PEG MW when the
    # coating is switched to "none", and a bare particle must not carry it.
    if coating_mw_da not in (None, "") and coating in ("PEG", "PEG-PLA"):
        fields["coating_mw_da"] = coating_mw_da
    return fields


def _number(value) -> str:
    """A form number as the command line would be typed: 15, 0.5, 5000 (the full value when %g would round it)."""
    v = float(value)
    return f"{v:g}" if float(f"{v:g}") == v else repr(v)


def particle_text(material, core_diameter_nm, coating, coating_mw_da=None) -> str:
    """The particle as ``nanopk predict --particle`` takes it (blank fields left out, as the CLI would)."""
    items = []
    for key, value in _particle(material, core_diameter_nm, coating, coating_mw_da).items():
        if value in (None, ""):
            continue
        if key in ("core_diameter_nm", "coating_mw_da"):
            try:
                value = _number(value)
            except (TypeError, ValueError):
                pass  # passed on as typed: parse_particle names the field and the bad value
        items.append(f"{key}={value}")
    return ",".join(items)


def dose_text(dose_mg_kg) -> str:
    """The dose field (mg/kg) as ``nanopk predict --dose`` takes it; empty stays empty (the CLI's message says so)."""
    if dose_mg_kg in (None, ""):
        return ""
    try:
        return f"{_number(dose_mg_kg)}mg/kg"
    except (TypeError, ValueError):
        return f"{dose_mg_kg}mg/kg"


def predict_lines(out: Mapping) -> tuple[list[str], list[str]]:
    """What ``nanopk predict`` prints for a prediction (same format, so the same digits):
    the notes on what its interval is made of, and the DE24/DE168/DEmax lines."""
    from ..calibrate.predict import interval_note

    pct = int(round(100 * out["level"]))
    return interval_note(out), [f"{k} = {v['value']:.3g} %ID ({pct} % population interval {v['low']:.3g}–{v['high']:.3g})"
                                for k, v in out["delivery"].items()]


def design(*, material, core_diameter_nm, coating, coating_mw_da=None, dose_mg_kg=1.0, times_h=None,
           level: float = 0.9) -> dict:
    """A priori DE24/DE168/DEmax with their population interval and the organ time courses of one particle.

    The prediction is ``nanopk predict``'s (:func:`nanopk.calibrate.predict.predict`:
    ``mouse_tumour_full`` with the calibrated constants, a 20 g mouse), called with the
    ``--particle`` and ``--dose`` text the form stands for, so a bad field raises the
    message the CLI prints for it.

    Returns
    -------
    dict
        ``prediction`` (predict's dict; its ``organs`` at ``times_h``, default 60 times
        from 0.1 to 168 h), ``particle`` and ``dose`` (the CLI arguments), ``command``
        (the equivalent ``nanopk predict`` call), ``notes`` and ``de_lines`` (:func:`predict_lines`)
        and ``lines`` (the two together, as the page shows them).

    Raises
    ------
    NanopkError
        What ``nanopk predict`` raises for the same arguments (``--particle: ...``, ``--dose ...``).
    """
    import numpy as np

    from ..calibrate.predict import predict

    particle = particle_text(material, core_diameter_nm, coating, coating_mw_da)
    dose = dose_text(dose_mg_kg)
    times = np.asarray(times_h if times_h is not None else np.geomspace(0.1, 168, 60), float)
    out = predict(particle, dose=dose, times=times, level=level)
    notes, de_lines = predict_lines(out)
    return {"prediction": out, "particle": particle, "dose": dose, "notes": notes, "de_lines": de_lines,
            "lines": notes + de_lines,
            "command": f"nanopk predict --particle {particle} --dose {dose}"}


def scan_params(record: dict | None = None) -> dict:
    """The parameters ``nanopk predict`` sets besides the particle and dose: the calibrated constants (of ``record``,
    default the shipped calibration), a 20 g mouse."""
    from ..calibrate.store import calibrated_values, load_calibration

    return {**calibrated_values(record if record is not None else load_calibration()), "BW": 0.020}


def design_scan(*, material, sizes, coatings, coating_mw_da=None, dose_mg_kg=1.0):
    """DE24, DE168, DEmax over a size × coating grid: ``nanopk scan mouse_tumour_full`` with the calibrated constants,
    times the calibration's 10^μ (:func:`nanopk.calibrate.predict.reported_scale`).

    So each cell is the DE24 that ``nanopk predict`` (and the design page) gives the same
    particle; the population interval of every cell is that of :func:`design`.
    """
    import pandas as pd

    from ..calibrate.predict import MODEL, parse_dose, reported_scale
    from ..calibrate.store import load_calibration
    from ..scan import scan

    parse_dose(dose_text(dose_mg_kg), 20.0)  # a missing or bad dose: nanopk predict's --dose message
    record = load_calibration()  # read once: the constants and 10^μ come from it
    params = scan_params(record)
    rows = []
    for coating in coatings:  # coating_mw_da only for polymer coatings
        base = {"material": material}
        if coating in ("PEG", "PEG-PLA") and coating_mw_da not in (None, ""):
            base["coating_mw_da"] = float(coating_mw_da)
        rows.append(scan(MODEL, {"size": [float(s) for s in sizes], "coating": [coating], "dose": [float(dose_mg_kg)]},
                         base=base, params=params))
    table = pd.concat(rows, ignore_index=True)
    delivery = [c for c in ("DE24", "DE168", "DEmax") if c in table]
    table[delivery] = table[delivery] * reported_scale(record)  # %ID as a study reports it, as predict gives it
    return table


def compare_particles(a: Mapping, b: Mapping, *, level: float = 0.9, times_h=None) -> dict:
    """Two particles without data: each one's ``nanopk predict``, the ratios B/A, and what explains the DE24 difference.

    Parameters
    ----------
    a, b : dict
        :func:`design`'s keywords (``material``, ``core_diameter_nm``, ``coating``,
        ``coating_mw_da``, ``dose_mg_kg``); A is the reference of the ratios.

    Returns
    -------
    dict
        ``a``, ``b`` (:func:`design`'s dicts), ``ratios`` (``{DE24|DE168|DEmax: B/A}``),
        ``attribution`` (:func:`nanopk.compare.particle_attribution` of the two calibrated
        models: which particle-derived parameter, or the dose, moves A's DE24 to B's) and
        ``lines`` (the text the page shows).

    Raises
    ------
    NanopkError
        ``particle A: `` or ``particle B: `` followed by what ``nanopk predict`` says.
    """
    from ..compare import particle_attribution
    from ..particle import Particle
    from ..spec import load_model

    designs = {}
    for name, fields in (("A", a), ("B", b)):
        try:
            designs[name] = design(**fields, level=level, times_h=times_h)
        except NanopkError as exc:
            raise type(exc)(f"particle {name}: {exc}") from None
    pa, pb = designs["A"]["prediction"], designs["B"]["prediction"]
    ratios = {k: (pb["delivery"][k]["value"] / pa["delivery"][k]["value"] if pa["delivery"][k]["value"] > 0 else None)
              for k in pa["delivery"] if k in pb["delivery"]}
    # The models predict() simulated (same constants, body weight and dose), so the
    # attribution's DE24 of A and B are the two predictions' DE24.
    models = {name: load_model(d["prediction"]["model"], particle=Particle(**d["prediction"]["particle"]))
              .with_parameters({**d["prediction"]["constants"], "BW": d["prediction"]["body_weight_g"] / 1000.0,
                                "dose": d["prediction"]["dose_ug"]})
              for name, d in designs.items()}
    attribution = particle_attribution(models, ["A", "B"])
    # The attribution simulates the mass-balanced model; predict's DE24s are those × 10^μ, the factor the two
    # predictions carry (the shares do not change).
    scaled = ["metric_reference", "metric_group", "metric_swapped"]  # a failed swap's None becomes NaN here
    attribution[scaled] = attribution[scaled].astype(float) * 10 ** pa["offset_log10"]
    lines = [f"{pa['model']} with the calibrated constants (nanopk predict), {pa['species']} {pa['body_weight_g']:g} g"]
    for name, d in designs.items():
        lines += ["", f"particle {name}: {d['particle']}; dose {d['dose']} ({d['prediction']['dose_ug']:.4g} µg IV)",
                  f"  {d['command']}"]
        lines += [f"  {line}" for line in d["de_lines"]]
    lines += [""] + designs["A"]["notes"] + ["ratio B/A of the predictions (the population interval is of one "
              "particle in a new study, not of the ratio):"]
    lines += [f"  {k} B/A = {r:.3g}" if r is not None else f"  {k} B/A: not defined (A's {k} is 0)"
              for k, r in ratios.items()]
    if len(attribution):
        lines += ["", "what makes B's DE24 differ from A's (one parameter of A set to B's value at a time; "
                      "shares need not sum to 1):"]
        for row in attribution.itertuples():
            if row.share is None or row.share != row.share:  # None or NaN: B's DE24 equals A's, or a swap failed
                share = "share not defined"
            else:
                share = f"{round(100 * row.share) or 0:.0f} % of the difference"  # `or 0`: no "-0 %"
            failed = row.metric_swapped is None or row.metric_swapped != row.metric_swapped  # None or NaN
            moved = "no solution" if failed else f"DE24 {row.metric_swapped:.3g}"
            lines.append(f"  {row.parameter}: {row.reference_value:.4g} → {row.value:.4g}: {moved} ({share})")
    else:
        lines += ["", "A and B give the model the same parameter values: the same prediction"]
    return {"a": designs["A"], "b": designs["B"], "ratios": ratios, "attribution": attribution, "lines": lines}


def _organ_lines(ax, organs: Mapping, names, style="-", label_suffix="", colours=None):
    import numpy as np

    for i, organ in enumerate(names):
        if organ not in organs:
            continue
        rows = organs[organ]
        t = np.array([r["time_h"] for r in rows])
        v = np.array([r["value"] for r in rows])
        colour = (colours or {}).get(organ, f"C{i}")
        ax.plot(t, v, style, color=colour, label=f"{organ}{label_suffix}")


def design_figure(prediction: Mapping, organs=("blood", "liver", "spleen", "kidney", "lung", "tumour")):
    """Organ time courses (%ID, log time) of a design, with the tumour's population interval shaded."""
    from ..delivery import _figure_class

    Figure = _figure_class()
    fig = Figure(figsize=(6.5, 3.8), layout="constrained")
    ax = fig.add_subplot(1, 1, 1)
    colours = {o: f"C{i}" for i, o in enumerate(organs)}
    _organ_lines(ax, prediction["organs"], organs, colours=colours)
    if "tumour" in prediction["organs"]:
        rows = prediction["organs"]["tumour"]
        pct = int(round(100 * prediction["level"]))
        ax.fill_between([r["time_h"] for r in rows], [r["low"] for r in rows], [r["high"] for r in rows],
                        color=colours["tumour"], alpha=0.15, label=f"tumour, {pct} % population interval")
    ax.set_xscale("log")
    ax.set_yscale("log")
    values = [r["value"] for o in organs if o in prediction["organs"] for r in prediction["organs"][o] if r["value"] > 0]
    if values:  # log axis: from 2 decades under the smallest shown value to the dose
        ax.set_ylim(max(min(values) / 3, 1e-3), 150)
    ax.set_xlabel("time (h)")
    ax.set_ylabel("%ID")
    ax.legend(fontsize="small", ncols=2)
    return fig


def compare_particles_figure(result: Mapping, organs=("blood", "liver", "spleen", "tumour")):
    """Both particles' organ time courses overlaid (A solid, B dashed), and their tumour curves with the intervals."""
    from ..delivery import _figure_class

    Figure = _figure_class()
    fig = Figure(figsize=(9.5, 3.8), layout="constrained")
    left, right = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    colours = {o: f"C{i}" for i, o in enumerate(organs)}
    others = [o for o in organs if o != "tumour"]
    for key, style in (("a", "-"), ("b", "--")):
        _organ_lines(left, result[key]["prediction"]["organs"], others, style=style, label_suffix=f" {key.upper()}",
                     colours=colours)
    for key, style, colour in (("a", "-", "C3"), ("b", "--", "C4")):
        rows = result[key]["prediction"]["organs"].get("tumour")
        if not rows:
            continue
        t = [r["time_h"] for r in rows]
        right.plot(t, [r["value"] for r in rows], style, color=colour, label=f"tumour {key.upper()}")
        right.fill_between(t, [r["low"] for r in rows], [r["high"] for r in rows], color=colour, alpha=0.12)
    pct = int(round(100 * result["a"]["prediction"]["level"]))
    left.set_title("organs (A solid, B dashed)", fontsize="medium")
    right.set_title(f"tumour, with the {pct} % population interval", fontsize="medium")
    for ax in (left, right):
        ax.set_xscale("log")
        ax.set_yscale("log")
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
