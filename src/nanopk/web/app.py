"""The Shiny app: four pages (Fit, Compare coatings, Design, Models) over :mod:`nanopk.web.logic`.

Each browser tab is a Shiny session with its own reactive state and its own temporary
folder for uploads (removed when the tab closes), so one user's upload or error is never
seen by another.  Long work (a fit, a comparison, a scan) runs in a worker thread, so the
server keeps answering other sessions; every callback catches what it raises and shows
it in the page, so no input crashes the server.
"""
from __future__ import annotations

import asyncio
import logging
import shutil
import tempfile
import traceback
from pathlib import Path

from shiny import App, reactive, render, ui

from . import logic

log = logging.getLogger("nanopk.web")

_DOSE_UNITS = ["ug", "mg/kg", "ug/kg", "mg", "ng"]


def _choices():
    from ..data import list_datasets
    from ..materials import MATERIALS
    from ..particle import COATINGS
    from ..spec import list_models

    return {"datasets": list(list_datasets()["name"]), "models": list_models(), "materials": list(MATERIALS),
            "coatings": list(COATINGS)}


def _error_box(text: str):
    return ui.div(ui.pre(text, class_="nanopk-error-text", style="white-space: pre-wrap"),
                  class_="alert alert-danger nanopk-error", role="alert")


def _fit_panel(c):
    form = [
        ui.input_text("f_species", "species"),
        ui.input_numeric("f_body_weight_g", "body weight (g)", value=None),
        ui.layout_columns(ui.input_numeric("f_dose_value", "dose", value=None),
                          ui.input_text("f_dose_unit", "dose unit (ug, mg/kg)")),
        ui.layout_columns(ui.input_text("f_material", "material"), ui.input_numeric("f_core_diameter_nm", "core (nm)", value=None)),
        ui.layout_columns(ui.input_text("f_coating", "coating"), ui.input_numeric("f_coating_mw_da", "coating MW (Da)", value=None)),
        ui.input_numeric("f_tumour_weight_g", "tumour weight (g)", value=None),
    ]
    sidebar = ui.sidebar(
        ui.input_radio_buttons("fit_source", "data", {"bundled": "bundled dataset", "upload": "upload a file"}, selected="bundled"),
        ui.panel_conditional("input.fit_source === 'bundled'",
                             ui.input_select("fit_dataset", "bundled dataset", c["datasets"],
                                             selected="arnida2010_peg_au_sphere_50nm")),
        ui.panel_conditional(
            "input.fit_source === 'upload'",
            ui.input_file("fit_file", "data (.csv or .xlsx, long or wide, ≤ 10 MB)", accept=[".csv", ".xlsx"]),
            ui.input_file("fit_sidecar", "sidecar (.json, optional: prefills the form)", accept=[".json"]),
            ui.input_text("fit_sheet", "worksheet of an .xlsx (name or 0-based index)"),
        ),
        ui.output_text("fit_upload_status"),
        ui.input_select("fit_model", "model", c["models"], selected="mouse_tumour"),
        ui.input_text("fit_vary", "vary (comma-separated; empty: nanopk chooses)"),
        ui.input_text("fit_param", "hold (NAME=VALUE, comma-separated)"),
        ui.accordion(ui.accordion_panel("sidecar fields", *form), open=False),
        ui.input_action_button("fit_run", "Run fit", class_="btn-primary"),
        width=360,
    )
    return ui.nav_panel(
        "Fit",
        ui.layout_sidebar(
            sidebar,
            ui.output_ui("fit_error"),
            ui.output_ui("fit_status"),
            ui.output_ui("fit_delivery"),
            ui.output_ui("fit_report"),
            ui.output_ui("fit_figure"),
            ui.output_ui("fit_downloads"),
        ),
        value="fit",
    )


def _particle_inputs(key: str, c, coating: str, title: str):
    """One particle's fields on the compare page (ids ``cp_<key>_...``)."""
    return ui.TagList(
        ui.h6(title),
        ui.layout_columns(ui.input_select(f"cp_{key}_material", "material", c["materials"], selected="Au"),
                          ui.input_numeric(f"cp_{key}_size", "core (nm)", value=15, min=0)),
        ui.layout_columns(ui.input_select(f"cp_{key}_coating", "coating", c["coatings"], selected=coating),
                          ui.input_numeric(f"cp_{key}_mw", "PEG MW (Da)", value=5000, min=0)),
        ui.input_numeric(f"cp_{key}_dose", "dose (mg/kg)", value=1.0, min=0),
    )


def _compare_panel(c):
    datasets = ui.panel_conditional(
        "input.cmp_mode === 'data'",
        ui.input_select("cmp_a", "group A (bundled)", c["datasets"], selected="li2014_go_peg"),
        ui.input_file("cmp_file_a", "or upload A (.csv/.xlsx)", accept=[".csv", ".xlsx"]),
        ui.input_file("cmp_side_a", "A's sidecar (.json)", accept=[".json"]),
        ui.input_select("cmp_b", "group B (bundled)", c["datasets"], selected="li2014_go_bare"),
        ui.input_file("cmp_file_b", "or upload B (.csv/.xlsx)", accept=[".csv", ".xlsx"]),
        ui.input_file("cmp_side_b", "B's sidecar (.json)", accept=[".json"]),
        ui.input_select("cmp_model", "model", c["models"], selected="mouse_pbpk"),
        ui.input_text("cmp_vary", "vary (per group)", value="Kmax_liver"),
        ui.input_text("cmp_shared", "shared (of vary)"),
        ui.input_text("cmp_param", "hold (NAME=VALUE,...)", value="K50_liver=0.1,n_liver=1"),
        ui.input_action_button("cmp_run", "Compare", class_="btn-primary"),
    )
    particles = ui.panel_conditional(
        "input.cmp_mode === 'particles'",
        _particle_inputs("a", c, "PEG", "particle A (reference)"),
        _particle_inputs("b", c, "none", "particle B"),
        ui.input_action_button("cmpp_run", "Compare particles", class_="btn-primary"),
    )
    sidebar = ui.sidebar(
        ui.input_radio_buttons("cmp_mode", "compare", {"data": "two datasets (fit both)",
                                                       "particles": "two particles (prediction, no data)"},
                               selected="data"),
        datasets, particles, width=360,
    )
    main = [ui.panel_conditional("input.cmp_mode === 'data'", ui.output_ui("cmp_error"), ui.output_ui("cmp_report"),
                                 ui.output_ui("cmp_figure")),
            ui.panel_conditional("input.cmp_mode === 'particles'", ui.output_ui("cmpp_error"),
                                 ui.output_ui("cmpp_delivery"), ui.output_ui("cmpp_figure"), ui.output_ui("cmpp_report"))]
    return ui.nav_panel("Compare coatings", ui.layout_sidebar(sidebar, *main), value="compare")


def _design_panel(c):
    sidebar = ui.sidebar(
        ui.input_select("d_material", "material", c["materials"], selected="Au"),
        ui.input_slider("d_size", "core diameter (nm)", min=2, max=200, value=15, step=1),
        ui.input_select("d_coating", "coating", c["coatings"], selected="PEG"),
        ui.input_numeric("d_mw", "PEG MW (Da)", value=5000, min=100),
        ui.input_numeric("d_dose", "dose (mg/kg)", value=1.0, min=0),
        ui.hr(),
        ui.input_text("d_scan_sizes", "scan: sizes (nm)", value="5,15,50,100"),
        ui.input_checkbox_group("d_scan_coatings", "scan: coatings", c["coatings"], selected=["none", "PEG"]),
        ui.input_action_button("d_scan_run", "Run size × coating scan"),
        width=340,
    )
    return ui.nav_panel("Design",
                        ui.layout_sidebar(sidebar,
                                          ui.p("A priori prediction from the particle alone, as `nanopk predict` makes it: "
                                               "mouse_tumour_full with the constants calibrated on the NTUA database, "
                                               "a 20 g mouse, IV bolus. The interval is the spread a new study of this "
                                               "particle would show.", class_="text-muted"),
                                          ui.output_ui("d_error"), ui.output_ui("d_delivery"),
                                          ui.output_ui("d_figure"), ui.h4("Size × coating scan"), ui.output_ui("d_scan")),
                        value="design")


def _models_panel(c):
    return ui.nav_panel("Models",
                        ui.output_ui("m_table"),
                        ui.input_select("m_model", "model", c["models"], selected="mouse_tumour"),
                        ui.output_ui("m_info"),
                        value="models")


def app_ui(request=None):
    c = _choices()
    return ui.page_navbar(
        _fit_panel(c), _compare_panel(c), _design_panel(c), _models_panel(c),
        title="nanopk", id="page", window_title="nanopk",
    )


def _table(rows, columns, class_="table table-sm nanopk-table"):
    head = ui.tags.tr(*[ui.tags.th(c) for c in columns])
    body = [ui.tags.tr(*[ui.tags.td("" if r.get(c) is None else (f"{r[c]:.4g}" if isinstance(r[c], float) else str(r[c])))
                         for c in columns]) for r in rows]
    return ui.tags.table(ui.tags.thead(head), ui.tags.tbody(*body), class_=class_)


def _interval(v: dict, pct: int) -> str:
    """``nanopk predict``'s interval text for one DE (same digits)."""
    return f"{pct} % population interval {v['low']:.3g}–{v['high']:.3g}"


def _delivery_cells(r: dict, prefix: str):
    """DE24/DE168/DEmax of a :func:`logic.design` result with their population intervals, and nanopk predict's lines."""
    out = r["prediction"]
    pct = int(round(100 * out["level"]))
    cells = [ui.div(ui.span(f"{k} "), ui.strong(f"{v['value']:.3g}", id=f"{prefix}-{k}"), ui.span(" %ID "),
                    ui.span(f"({_interval(v, pct)})", id=f"{prefix}-{k}-interval", class_="nanopk-interval"),
                    class_="fs-5")
             for k, v in out["delivery"].items()]
    return ui.TagList(*cells, ui.pre("\n".join(r["lines"]), class_=f"nanopk-predict {prefix}-lines"),
                      ui.p("the same from the command line: ", ui.code(r["command"]), class_="text-muted"))


def server(input, output, session):
    workdir = Path(tempfile.mkdtemp(prefix="nanopk-web-"))
    cmp_dirs = {"a": workdir / "compare_a", "b": workdir / "compare_b"}
    fit_dir = workdir / "fit"

    def _cleanup():
        shutil.rmtree(workdir, ignore_errors=True)

    session.on_ended(_cleanup)

    def show(exc) -> str:
        if not isinstance(exc, (logic.NanopkError, ImportError)):
            log.error("nanopk web: %s", "".join(traceback.format_exception(exc)))
        return logic.error_text(exc, fit_dir if fit_dir.exists() else workdir)

    # ------------------------------------------------------------------ fit
    staged = reactive.value(None)          # Path of this session's upload
    upload_error = reactive.value(None)
    prefill = reactive.value({})           # the sidecar's values the form shows
    fit_out = reactive.value(None)
    fit_err = reactive.value(None)

    def _set_form(meta):
        values = logic.read_sidecar_form(meta)
        prefill.set(dict(meta or {}))
        for key, value in values.items():
            if key in ("body_weight_g", "dose_value", "core_diameter_nm", "coating_mw_da", "tumour_weight_g"):
                ui.update_numeric(f"f_{key}", value=value)
            else:
                ui.update_text(f"f_{key}", value="" if value is None else str(value))

    @reactive.effect
    @reactive.event(input.fit_file, input.fit_sidecar)
    def _stage():
        files = input.fit_file() if input.fit_file.is_set() else None
        upload_error.set(None)
        staged.set(None)
        if not files:
            return
        sidecars = input.fit_sidecar() if input.fit_sidecar.is_set() else None
        try:
            path = logic.stage_upload(fit_dir, files[0], sidecars[0] if sidecars else None)
        except Exception as exc:  # noqa: BLE001 - every failure is shown, none crashes the session
            upload_error.set(show(exc))
            return
        staged.set(path)
        side = path.with_suffix(".json")
        _set_form(logic.load_json_quietly(side) if side.exists() else {})

    @reactive.effect
    @reactive.event(input.fit_dataset, input.fit_source)
    def _prefill_bundled():
        if input.fit_source() != "bundled":
            return
        try:
            from ..data import read_dataset

            with logic.quiet():
                meta = read_dataset(input.fit_dataset()).meta
        except Exception:  # noqa: BLE001 - the run shows the error; the form just stays empty
            meta = {}
        _set_form(meta)

    @render.text
    def fit_upload_status():
        if upload_error.get():
            return "upload refused (see the message)"
        path = staged.get()
        if path is None:
            return "no file uploaded in this session" if input.fit_source() == "upload" else ""
        side = path.with_suffix(".json")
        return f"uploaded: {path.name}" + (f" with sidecar {side.name}" if side.exists() else " (no sidecar)")

    def _form():
        return {"species": input.f_species(), "body_weight_g": input.f_body_weight_g(),
                "dose_value": input.f_dose_value(), "dose_unit": input.f_dose_unit(),
                "material": input.f_material(), "core_diameter_nm": input.f_core_diameter_nm(),
                "coating": input.f_coating(), "coating_mw_da": input.f_coating_mw_da(),
                "tumour_weight_g": input.f_tumour_weight_g()}

    @reactive.effect
    @reactive.event(input.fit_run)
    async def _run_fit():
        fit_out.set(None)
        fit_err.set(None)
        if input.fit_source() == "upload":
            if upload_error.get():
                fit_err.set(upload_error.get())
                return
            if staged.get() is None:
                fit_err.set("no data file: upload a .csv or .xlsx (or choose a bundled dataset)")
                return
            source = staged.get()
        else:
            source = input.fit_dataset()
        meta = logic.form_overrides(_form(), prefill.get())
        args = dict(sheet=input.fit_sheet() if input.fit_source() == "upload" else None, vary=input.fit_vary(),
                    params=input.fit_param(), meta=meta)
        with ui.Progress(min=0, max=4) as bar:
            bar.set(0, message="Fit", detail="starting")
            loop = asyncio.get_running_loop()

            def step(i, msg):  # called from the worker thread
                loop.call_soon_threadsafe(bar.set, i, "Fit", msg)

            try:
                out = await asyncio.to_thread(logic.run_fit, source, input.fit_model(), progress=step, **args)
            except Exception as exc:  # noqa: BLE001
                fit_err.set(show(exc))
                return
        fit_out.set(out)

    @render.ui
    def fit_error():
        text = fit_err.get() or upload_error.get()
        return _error_box(text) if text else None

    @render.ui
    def fit_status():
        out = fit_out.get()
        if out is None:
            return ui.p("Choose data and a model, then Run fit.", class_="text-muted") if not fit_err.get() else None
        ok = out["success"]
        return ui.div(f"fit {'converged' if ok else 'FAILED (see the report)'} in {out['wall_s']:.2f} s",
                      class_=f"alert {'alert-success' if ok else 'alert-warning'} nanopk-fit-status")

    @render.ui
    def fit_delivery():
        out = fit_out.get()
        if out is None:
            return None
        if not out["delivery"]:
            return ui.p(f"model {out['result'].model.name!r} has no tumour observable: no delivery efficiency")
        de24 = out["delivery"]["DE24"]
        big = ui.div(ui.span("DE24 "), ui.strong(f"{de24['value']:.4g}", id="de24-value"), ui.span(f" {de24.get('unit', '')}"),
                     class_="fs-4") if de24.get("value") is not None else None
        return ui.TagList(ui.h4("Tumour delivery"), big, ui.pre("\n".join(out["delivery_lines"]), class_="nanopk-delivery"))

    @render.ui
    def fit_report():
        out = fit_out.get()
        return ui.TagList(ui.h4("Report"), ui.pre(out["report"], class_="nanopk-report")) if out else None

    @render.ui
    def fit_figure():
        out = fit_out.get()
        if out is None:
            return None
        if out["png"] is None:
            return ui.p(out["plot_error"] or "no figure")
        return ui.img(src=logic.data_uri(out["png"]), alt="fit: observed and predicted time courses; predicted vs observed",
                      style="max-width:100%")

    @render.ui
    def fit_downloads():
        if fit_out.get() is None:
            return None
        return ui.div(ui.download_button("dl_json", "fit JSON"), " ", ui.download_button("dl_png", "figure PNG"), " ",
                      ui.download_button("dl_sbml", "model SBML (fitted values)"))

    @render.download_button(filename="fit.json")
    def dl_json():
        yield fit_out.get()["result"].to_json() + "\n"

    @render.download_button(filename="fit.png")
    def dl_png():
        yield fit_out.get()["png"] or b""

    @render.download_button(filename="model.xml")
    def dl_sbml():
        out = fit_out.get()
        path = workdir / "model.xml"
        try:
            from ..export.sbml import to_sbml

            result = out["result"]
            to_sbml(result.model.with_parameters(result.values), path)
            yield path.read_bytes()
        except Exception as exc:  # noqa: BLE001 - the download then holds the reason
            yield f"nanopk: the SBML export failed: {show(exc)}\n"

    # ------------------------------------------------------------------ compare
    cmp_out = reactive.value(None)
    cmp_err = reactive.value(None)

    @reactive.effect
    @reactive.event(input.cmp_run)
    async def _run_compare():
        cmp_out.set(None)
        cmp_err.set(None)
        try:
            sources = []
            for key, file_id, side_id, select_id in (("a", "cmp_file_a", "cmp_side_a", "cmp_a"),
                                                     ("b", "cmp_file_b", "cmp_side_b", "cmp_b")):
                # An untouched file input has no value (reading it would silently end this effect).
                files = input[file_id]() if input[file_id].is_set() else None
                sides = input[side_id]() if input[side_id].is_set() else None
                if files:
                    sources.append(logic.stage_upload(cmp_dirs[key], files[0], sides[0] if sides else None))
                else:
                    sources.append(input[select_id]())
        except Exception as exc:  # noqa: BLE001
            cmp_err.set(show(exc))
            return
        with ui.Progress(min=0, max=3) as bar:
            bar.set(0, message="Compare", detail="starting")
            loop = asyncio.get_running_loop()

            def step(i, msg):
                loop.call_soon_threadsafe(bar.set, i, "Compare", msg)

            try:
                out = await asyncio.to_thread(logic.run_compare, sources[0], sources[1], input.cmp_model(),
                                              vary=input.cmp_vary(), shared=input.cmp_shared(), params=input.cmp_param(),
                                              progress=step)
            except Exception as exc:  # noqa: BLE001
                cmp_err.set(logic.error_text(exc, workdir))
                return
        cmp_out.set(out)

    @render.ui
    def cmp_error():
        return _error_box(cmp_err.get()) if cmp_err.get() else None

    @render.ui
    def cmp_report():
        out = cmp_out.get()
        if out is None:
            return ui.p("Choose two groups and Compare.", class_="text-muted") if not cmp_err.get() else None
        return ui.pre(out["report"], class_="nanopk-compare-report")

    @render.ui
    def cmp_figure():
        out = cmp_out.get()
        if out is None:
            return None
        if out["png"] is None:
            return ui.p(out["plot_error"] or "no figure")
        return ui.img(src=logic.data_uri(out["png"]), alt="comparison: both groups' fits and the ratios",
                      style="max-width:100%")

    # ------------------------------------------------------------------ compare two particles
    cmpp_out = reactive.value(None)
    cmpp_err = reactive.value(None)

    def _particle_form(key):
        return {"material": input[f"cp_{key}_material"](), "core_diameter_nm": input[f"cp_{key}_size"](),
                "coating": input[f"cp_{key}_coating"](), "coating_mw_da": input[f"cp_{key}_mw"](),
                "dose_mg_kg": input[f"cp_{key}_dose"]()}

    @reactive.effect
    @reactive.event(input.cmpp_run)
    async def _run_compare_particles():
        cmpp_out.set(None)
        cmpp_err.set(None)
        a, b = _particle_form("a"), _particle_form("b")
        with ui.Progress(min=0, max=1) as bar:
            bar.set(0, message="Compare particles", detail="predicting A and B")

            def work():
                with logic.quiet():
                    return logic.compare_particles(a, b)

            try:
                out = await asyncio.to_thread(work)
            except Exception as exc:  # noqa: BLE001
                cmpp_err.set(show(exc))
                return
        cmpp_out.set(out)

    @render.ui
    def cmpp_error():
        return _error_box(cmpp_err.get()) if cmpp_err.get() else None

    @render.ui
    def cmpp_delivery():
        out = cmpp_out.get()
        if out is None:
            return (ui.p("Set two particles and Compare particles: each is predicted as `nanopk predict` does "
                         "(no data needed).", class_="text-muted") if not cmpp_err.get() else None)
        pct = int(round(100 * out["a"]["prediction"]["level"]))
        rows = []
        for k in out["ratios"]:
            cells = [ui.tags.th(k)]
            for name in ("a", "b"):
                v = out[name]["prediction"]["delivery"][k]
                cells.append(ui.tags.td(ui.strong(f"{v['value']:.3g}", id=f"cmpp-{name.upper()}-{k}"), " %ID ",
                                        ui.span(f"({_interval(v, pct)})", class_="nanopk-interval")))
            ratio = out["ratios"][k]
            cells.append(ui.tags.td(ui.strong("—" if ratio is None else f"{ratio:.3g}", id=f"cmpp-ratio-{k}")))
            rows.append(ui.tags.tr(*cells))
        head = ui.tags.tr(*[ui.tags.th(h) for h in ("", "A", "B", "B/A")])
        # the particles under the table, not in its header: their --particle text would push B/A off the page
        which = ui.tags.ul(*[ui.tags.li(f"{name.upper()}: ", ui.code(out[name]["particle"]), f", {out[name]['dose']}")
                             for name in ("a", "b")], class_="nanopk-particle-list")
        return ui.TagList(ui.h4("Predicted tumour delivery"),
                          ui.tags.table(ui.tags.thead(head), ui.tags.tbody(*rows), class_="table table-sm nanopk-particles"),
                          which)

    @render.ui
    def cmpp_figure():
        out = cmpp_out.get()
        if out is None:
            return None
        try:
            png = logic.figure_png(logic.compare_particles_figure(out))
        except Exception as exc:  # noqa: BLE001 - no matplotlib: the numbers still stand
            return ui.p(show(exc))
        return ui.img(src=logic.data_uri(png), alt="both particles' predicted organ time courses, overlaid",
                      style="max-width:100%")

    @render.ui
    def cmpp_report():
        out = cmpp_out.get()
        return (ui.pre("\n".join(out["lines"]), class_="nanopk-particle-report", style="white-space: pre-wrap")
                if out else None)

    # ------------------------------------------------------------------ design
    @reactive.calc
    def design_result():
        try:
            with logic.quiet():
                return logic.design(material=input.d_material(), core_diameter_nm=input.d_size(),
                                    coating=input.d_coating(), coating_mw_da=input.d_mw(), dose_mg_kg=input.d_dose())
        except Exception as exc:  # noqa: BLE001
            return show(exc)

    @render.ui
    def d_error():
        r = design_result()
        return _error_box(r) if isinstance(r, str) else None

    @render.ui
    def d_delivery():
        r = design_result()
        if isinstance(r, str):
            return None
        return _delivery_cells(r, "design")

    @render.ui
    def d_figure():
        r = design_result()
        if isinstance(r, str):
            return None
        try:
            png = logic.figure_png(logic.design_figure(r["prediction"]))
        except Exception as exc:  # noqa: BLE001 - no matplotlib: the numbers above still stand
            return ui.p(show(exc))
        return ui.img(src=logic.data_uri(png), alt="predicted organ time courses", style="max-width:100%")

    scan_out = reactive.value(None)

    @reactive.effect
    @reactive.event(input.d_scan_run)
    async def _scan():
        scan_out.set(None)
        try:
            sizes = [float(v) for v in input.d_scan_sizes().split(",") if v.strip()]
        except ValueError:
            scan_out.set(f"scan sizes {input.d_scan_sizes()!r}: give comma-separated diameters in nm (e.g. 5,15,50)")
            return
        coatings = list(input.d_scan_coatings())
        if not sizes or not coatings:
            scan_out.set("the scan needs at least one size and one coating")
            return
        with ui.Progress(min=0, max=1) as bar:
            bar.set(0, message="Scan", detail=f"{len(sizes) * len(coatings)} particles")
            try:
                table = await asyncio.to_thread(logic.design_scan, material=input.d_material(),
                                                sizes=sizes, coatings=coatings, coating_mw_da=input.d_mw(),
                                                dose_mg_kg=input.d_dose())
            except Exception as exc:  # noqa: BLE001
                scan_out.set(show(exc))
                return
        scan_out.set(table)

    @render.ui
    def d_scan():
        out = scan_out.get()
        if out is None:
            return None
        if isinstance(out, str):
            return _error_box(out)
        pivot = out.pivot_table(index="core_diameter_nm", columns="coating", values="DE24")
        # 3 digits, as nanopk predict prints DE24 (and the design's DE24 above): a cell reads as that number
        rows = [{"core (nm)": f"{size:g}", **{c: f"{pivot.loc[size, c]:.3g}" for c in pivot.columns}} for size in pivot.index]
        return ui.TagList(ui.p("DE24 (%ID) by core diameter and coating (nanopk scan mouse_tumour_full with the "
                               "calibrated constants: each cell is nanopk predict's DE24, its population interval "
                               "as above)"),
                          _table(rows, ["core (nm)", *pivot.columns], class_="table table-sm nanopk-scan"))

    # ------------------------------------------------------------------ models
    @render.ui
    def m_table():
        try:
            rows = logic.model_table()
        except Exception as exc:  # noqa: BLE001
            return _error_box(show(exc))
        return ui.TagList(ui.h4("Bundled models"),
                          _table(rows, ["name", "states", "parameters", "species", "description"],
                                 class_="table table-sm nanopk-models"))

    @render.ui
    def m_info():
        try:
            info = logic.model_info(input.m_model())
        except Exception as exc:  # noqa: BLE001
            return _error_box(show(exc))
        return ui.TagList(
            ui.h4(info["name"]), ui.p(info["description"]),
            ui.p(f"{info['states']} states, {info['fluxes']} fluxes, species {info['species']}"),
            ui.h5("Mechanisms"), ui.tags.ul(*[ui.tags.li(m) for m in info["mechanisms"]]),
            ui.h5("Flux diagram (nodes: states; arrows: fluxes; dashed: non-mass states)"),
            ui.HTML(info["svg"]),
            ui.h5("Parameters"),
            _table(info["parameters"], ["name", "value", "unit", "bounds", "description", "source"]),
            ui.h5("Notes") if info["notes"] else None,
            ui.tags.ul(*[ui.tags.li(n) for n in info["notes"]]) if info["notes"] else None,
        )


class UploadLimit:
    """ASGI middleware: refuse (413) a request body larger than the upload limit.

    Shiny stores an upload before any callback sees it; this stops an oversized one at the
    door (by its Content-Length), and :func:`logic.stage_upload` checks the size again.
    """

    def __init__(self, app, limit: int = logic.MAX_UPLOAD_BYTES):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope.get("method") == "POST":
            length = dict(scope.get("headers") or []).get(b"content-length")
            if length is not None and length.isdigit() and int(length) > self.limit + 64 * 1024:
                body = (f"upload refused: {int(length):,} bytes; the page takes files of at most "
                        f"{self.limit:,} bytes").encode()
                await send({"type": "http.response.start", "status": 413,
                            "headers": [(b"content-type", b"text/plain; charset=utf-8")]})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)


def create_app():
    """The ASGI application (Shiny app behind the upload limit)."""
    return UploadLimit(App(app_ui, server))
