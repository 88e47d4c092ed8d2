"""The web page's callbacks (nanopk.web.logic), its upload limit and `nanopk serve`'s bad input.

The page itself, in a real browser, is tested in tests/test_web_browser.py.
"""
import asyncio
import json
import math
import shutil
import socket
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("shiny", reason="the web extra (pip install 'nanopk[web]') is not installed")

import nanopk  # noqa: E402
from nanopk.calibrate.predict import parse_particle, predict  # noqa: E402
from nanopk.calibrate.store import load_calibration  # noqa: E402
from nanopk.cli import main  # noqa: E402
from nanopk.data.reader import resolve_path  # noqa: E402
from nanopk.errors import DataError, NanopkError  # noqa: E402
from nanopk.web import logic  # noqa: E402
from nanopk.web.app import UploadLimit  # noqa: E402

BAD_CSV = "time,tissue,value\n1.0,tumour,7.9\n12.0,tumor_core,8.3\n24.0,liver,abc\n"


def _info(path: Path, name: str | None = None) -> dict:
    """What Shiny hands a callback for an uploaded file."""
    return {"name": name or path.name, "size": path.stat().st_size, "type": "", "datapath": str(path)}


@pytest.fixture
def bad_study(tmp_path):
    """A broken CSV (unknown tissue in row 3, text in row 4) with a valid sidecar, in its own folder."""
    folder = tmp_path / "user"
    folder.mkdir()
    (folder / "bad_study.csv").write_text(BAD_CSV)
    shutil.copyfile(resolve_path("liu2013_peg_au_2nm").with_suffix(".json"), folder / "bad_study.json")
    return folder / "bad_study.csv"


def test_upload_error_is_the_cli_message(bad_study, tmp_path, monkeypatch, capsys):
    """A staged upload's DataError, shown without the session folder, is exactly what `nanopk fit FILE` prints."""
    work = tmp_path / "session"
    staged = logic.stage_upload(work, _info(bad_study), _info(bad_study.with_suffix(".json")))
    with pytest.raises(DataError, match=r"unknown tissue 'tumor_core' in column tissue, row 3") as err:
        logic.run_fit(staged, "mouse_tumour", figures=False)
    shown = logic.error_text(err.value, work)
    monkeypatch.chdir(bad_study.parent)
    assert main(["fit", "bad_study.csv", "--model", "mouse_tumour"]) == 2
    cli = capsys.readouterr().err
    assert cli == f"nanopk fit: error: {shown}\n"
    assert shown.startswith("2 problem(s) in bad_study.csv:")
    assert "row 4 (got 'abc')" in shown


def test_stage_upload_refuses_large_and_foreign_files(tmp_path):
    """Uploads over 10 MB, data files that are not .csv/.xlsx and non-.json sidecars are refused by name."""
    big = tmp_path / "big.csv"
    big.write_bytes(b"x" * (logic.MAX_UPLOAD_BYTES + 1))
    with pytest.raises(logic.UploadError, match=r"^big.csv: the data file has 10,000,001 bytes; the page takes files of "
                                                r"at most 10,000,000 bytes \(10 MB; use `nanopk fit` for larger ones\)$"):
        logic.stage_upload(tmp_path / "w", _info(big))
    pdf = tmp_path / "study.pdf"
    pdf.write_bytes(b"%PDF")
    with pytest.raises(logic.UploadError, match=r"study.pdf: nanopk reads .csv or .xlsx files .* not .pdf"):
        logic.stage_upload(tmp_path / "w", _info(pdf))
    ok = tmp_path / "ok.csv"
    ok.write_text(BAD_CSV)
    with pytest.raises(logic.UploadError, match=r"notes.txt: the sidecar is a .json file .* e.g. ok.json"):
        logic.stage_upload(tmp_path / "w", _info(ok), _info(ok, name="notes.txt"))


@settings(max_examples=40, deadline=None)
@given(name=st.text(min_size=1, max_size=40))
def test_stage_upload_stays_in_its_folder(tmp_path_factory, name):
    """Whatever name the browser sends (../, slashes, dots), the upload lands inside the session folder."""
    src = tmp_path_factory.mktemp("src") / "data.csv"
    src.write_text(BAD_CSV)
    work = tmp_path_factory.mktemp("work")
    try:
        staged = logic.stage_upload(work, _info(src, name=name + ".csv"))
    except logic.UploadError as exc:  # only for a name whose suffix is not .csv after cleaning
        assert "nanopk reads .csv or .xlsx" in str(exc)
        return
    assert staged.parent == work and staged.read_text() == BAD_CSV


def test_a_new_upload_replaces_the_previous_and_its_sidecar(tmp_path, bad_study):
    """Staging a second file removes the first and its sidecar, so an old sidecar never joins a new table."""
    work = tmp_path / "w"
    logic.stage_upload(work, _info(bad_study), _info(bad_study.with_suffix(".json")))
    other = tmp_path / "other.csv"
    other.write_text(BAD_CSV)
    logic.stage_upload(work, _info(other))
    assert sorted(p.name for p in work.iterdir()) == ["other.csv"]


def test_error_text_strips_only_the_session_folder():
    """The session folder leaves the message; a bug is shown as such, with its type."""
    err = NanopkError("1 problem(s) in /tmp/nanopk-web-abc/fit/x.csv:\n  - bad")
    assert logic.error_text(err, "/tmp/nanopk-web-abc/fit") == "1 problem(s) in x.csv:\n  - bad"
    assert logic.error_text(KeyError("k")) == ("internal error (KeyError: 'k'); please report it with the input "
                                               "that caused it")


def test_form_overrides_pass_only_what_the_user_changed():
    """An unchanged or blank form passes nothing; a changed dose, particle or tumour field is merged into the sidecar's."""
    meta = json.loads(resolve_path("arnida2010_peg_au_sphere_50nm").with_suffix(".json").read_text())
    form = logic.read_sidecar_form(meta)
    assert form == {"species": "mouse", "body_weight_g": 20, "dose_value": 60, "dose_unit": "ug", "material": "Au",
                    "core_diameter_nm": 50, "coating": "PEG", "coating_mw_da": 5000, "tumour_weight_g": None}
    assert logic.form_overrides(form, meta) == {}
    assert logic.form_overrides({k: None for k in form}, meta) == {}
    changed = {**form, "dose_value": 30.0, "tumour_weight_g": 0.2, "body_weight_g": 20.0}
    out = logic.form_overrides(changed, meta)
    assert out == {"dose": {"value": 30.0, "unit": "ug"},
                   "tumour": {"model": "orthotopic ovarian (left ovarian bursa)", "cell_line": "A2780", "weight_g": 0.2}}


def test_form_override_reaches_the_reader(tmp_path):
    """A tumour weight typed in the form is the dataset's tumour weight, as a sidecar key would be."""
    meta = json.loads(resolve_path("arnida2010_peg_au_sphere_50nm").with_suffix(".json").read_text())
    over = logic.form_overrides({**logic.read_sidecar_form(meta), "tumour_weight_g": 0.25}, meta)
    with logic.quiet():
        ds = nanopk.read_dataset("arnida2010_peg_au_sphere_50nm", **over)
    assert ds.meta["tumour"]["weight_g"] == 0.25


def test_bad_vary_is_the_cli_message(capsys):
    """A misspelt --vary name on the page raises what the CLI prints for it."""
    with pytest.raises(NanopkError) as err:
        logic.run_fit("liu2013_peg_au_2nm", "mouse_tumour", vary="Kmax_tumor", figures=False)
    assert main(["fit", "liu2013_peg_au_2nm", "--model", "mouse_tumour", "--vary", "Kmax_tumor"]) == 2
    assert capsys.readouterr().err == f"nanopk fit: error: {err.value}\n"
    assert "Kmax_tumour" in str(err.value)  # the suggestion


PEG_GOLD = {"material": "Au", "core_diameter_nm": 15, "coating": "PEG", "coating_mw_da": 5000, "dose_mg_kg": 2.0}
BARE_GOLD = {"material": "Au", "core_diameter_nm": 15, "coating": "none", "coating_mw_da": 5000, "dose_mg_kg": 2.0}


def _predict_cli(capsys, particle: str, dose: str) -> str:
    """What `nanopk predict --particle PARTICLE --dose DOSE` prints."""
    capsys.readouterr()
    assert main(["predict", "--particle", particle, "--dose", dose]) == 0
    return capsys.readouterr().out


def test_design_is_nanopk_predict(capsys):
    """The design page's DE24/DE168/DEmax and 90 % population intervals are `nanopk predict`'s lines for the same particle."""
    out = logic.design(**PEG_GOLD)
    assert out["particle"] == "material=Au,core_diameter_nm=15,coating=PEG,coating_mw_da=5000" and out["dose"] == "2mg/kg"
    assert out["command"] == f"nanopk predict --particle {out['particle']} --dose 2mg/kg"
    printed = _predict_cli(capsys, out["particle"], out["dose"]).splitlines()
    de_lines = [line for line in printed if line.startswith(("DE24 =", "DE168 =", "DEmax ="))]
    assert len(de_lines) == 3 and out["de_lines"] == de_lines  # the page shows these lines, digit for digit
    # and the same notes on what the interval holds: the between-study spread and the constants' draws
    notes = [line[2:] for line in printed if line.startswith(("# values as a study reports them", "# 90 % population interval",
                                                              "# combined with", "# held at"))]
    assert len(notes) == 4 and out["notes"] == notes and out["lines"] == notes + de_lines
    rec = load_calibration()
    between = 10 ** (1.6448536269514722 * math.hypot(rec["tau_log10"], rec["sigma_log10"], rec["offset_se_log10"]))
    assert f"× {10 ** rec['offset_log10']:.3g} (the calibration studies' mean offset" in notes[0]
    assert f"× / ÷ {between:.3g} (between-study" in notes[1] and "100 draws" in notes[2]
    api = predict("material=Au,core_nm=15,coating=PEG,peg_mw=5000", dose="2mg/kg")
    for k in ("DE24", "DE168", "DEmax"):
        assert out["prediction"]["delivery"][k] == pytest.approx(api["delivery"][k], rel=1e-12)
    # the time courses are predict's organs at the page's 60 times, and the tumour stays inside its interval
    tumour = out["prediction"]["organs"]["tumour"]
    assert len(tumour) == 60 and all(r["low"] <= r["value"] <= r["high"] <= 100.0 for r in tumour)


def test_design_errors_are_the_predict_messages(capsys):
    """A bad material or dose on the design page raises exactly what `nanopk predict` prints for it."""
    for fields, pattern in (({**PEG_GOLD, "material": "Gold2"}, r"^--particle: material 'Gold2' is unknown; valid: Au, "),
                            ({**PEG_GOLD, "dose_mg_kg": -1}, r"^--dose '-1mg/kg': the dose must be > 0$"),
                            ({**PEG_GOLD, "dose_mg_kg": None}, r"^--dose '': give a number and a unit, e.g. 1mg/kg")):
        with pytest.raises(NanopkError, match=pattern) as err:
            logic.design(**fields)
        particle = logic.particle_text(fields["material"], fields["core_diameter_nm"], fields["coating"],
                                       fields["coating_mw_da"])
        capsys.readouterr()
        assert main(["predict", "--particle", particle, "--dose=" + logic.dose_text(fields["dose_mg_kg"])]) == 2
        assert capsys.readouterr().err == f"nanopk predict: error: {err.value}\n"


@settings(max_examples=30, deadline=None)
@given(material=st.sampled_from(["Au", "Ag", "SiO2", "lipid"]), size=st.floats(1, 300, allow_nan=False),
       coating=st.sampled_from(["none", "PEG", "citrate", "PEG-PLA", "dextran"]), mw=st.floats(300, 20000))
def test_particle_text_is_the_forms_particle(material, size, coating, mw):
    """The --particle text the page builds reads back (nanopk predict's parser) as the form's particle; MW only for PEG."""
    text = logic.particle_text(material, size, coating, mw)
    got = parse_particle(text).to_dict()
    assert got["material"] == material and got["coating"] == coating
    assert got["core_diameter_nm"] == pytest.approx(size, rel=1e-12)
    if coating in ("PEG", "PEG-PLA"):
        assert got["coating_mw_da"] == pytest.approx(mw, rel=1e-12)
    else:
        assert "coating_mw_da" not in text


def test_design_scan_cells_are_predict_values():
    """Each cell of the design scan is nanopk predict's DE24 for that particle (to the printed 3 digits, rel 1e-3)."""
    table = logic.design_scan(material="Au", sizes=[15, 50], coatings=["PEG", "none"], coating_mw_da=5000, dose_mg_kg=2.0)
    assert len(table) == 4
    for row in table.itertuples():
        fields = {**PEG_GOLD, "coating": row.coating, "core_diameter_nm": row.core_diameter_nm}
        de24 = logic.design(**fields, times_h=[24])["prediction"]["delivery"]["DE24"]["value"]
        assert row.DE24 == pytest.approx(de24, rel=1e-3) and f"{row.DE24:.3g}" == f"{de24:.3g}"
    with pytest.raises(NanopkError, match=r"^--dose '': give a number and a unit"):
        logic.design_scan(material="Au", sizes=[15], coatings=["PEG"], dose_mg_kg=None)


def test_compare_particles_is_two_predictions_and_their_ratio(capsys):
    """Two particles without data: each one's `nanopk predict` lines, B/A of their DEs, and an attribution whose DE24s are theirs."""
    out = logic.compare_particles(PEG_GOLD, BARE_GOLD, times_h=[1, 24, 168])
    a, b = out["a"]["prediction"]["delivery"], out["b"]["prediction"]["delivery"]
    for k in ("DE24", "DE168", "DEmax"):
        assert out["ratios"][k] == pytest.approx(b[k]["value"] / a[k]["value"], rel=1e-12)
    printed_b = _predict_cli(capsys, "material=Au,core_diameter_nm=15,coating=none", "2mg/kg")
    assert out["b"]["particle"] == "material=Au,core_diameter_nm=15,coating=none"  # no MW on a bare particle
    for line in out["b"]["de_lines"]:
        assert line in printed_b.splitlines() and f"  {line}" in out["lines"]
    assert f"  DE24 B/A = {out['ratios']['DE24']:.3g}" in out["lines"]
    att = out["attribution"]
    assert set(att["group"]) == {"B"} and "steric_coating" in set(att["parameter"])
    assert att["metric_reference"].iloc[0] == pytest.approx(a["DE24"]["value"], rel=1e-9)
    assert att["metric_group"].iloc[0] == pytest.approx(b["DE24"]["value"], rel=1e-9)
    assert "dose" not in set(att["parameter"])  # same dose: not a difference
    twice = logic.compare_particles(PEG_GOLD, {**PEG_GOLD, "dose_mg_kg": 4.0}, times_h=[24])
    assert list(twice["attribution"]["parameter"]) == ["dose"]
    with pytest.raises(NanopkError, match=r"^particle B: --particle: material 'Gold2' is unknown; valid: Au"):
        logic.compare_particles(PEG_GOLD, {**BARE_GOLD, "material": "Gold2"})
    with pytest.raises(NanopkError, match=r"^particle A: --dose '0mg/kg': the dose must be > 0$"):
        logic.compare_particles({**PEG_GOLD, "dose_mg_kg": 0}, BARE_GOLD)


def test_prediction_figures_draw_every_organ_and_the_interval():
    """The design figure has a line per organ and the tumour's band; the comparison's has A and B of each organ."""
    pytest.importorskip("matplotlib")
    design = logic.design(**PEG_GOLD, times_h=[1, 24, 168])
    fig = logic.design_figure(design["prediction"])
    ax = fig.axes[0]
    assert [line.get_label() for line in ax.get_lines()] == ["blood", "liver", "spleen", "kidney", "lung", "tumour"]
    assert len(ax.collections) == 1  # the tumour's population interval
    cmp = logic.compare_particles(PEG_GOLD, BARE_GOLD, times_h=[1, 24, 168])
    left, right = logic.compare_particles_figure(cmp).axes
    assert [line.get_label() for line in left.get_lines()] == ["blood A", "liver A", "spleen A", "blood B", "liver B",
                                                                "spleen B"]
    assert [line.get_label() for line in right.get_lines()] == ["tumour A", "tumour B"]
    assert list(right.get_lines()[1].get_ydata()) == [r["value"] for r in cmp["b"]["prediction"]["organs"]["tumour"]]
    assert logic.figure_png(fig)[:8] == b"\x89PNG\r\n\x1a\n"


def test_models_page_lists_every_model_and_draws_every_flux():
    """The models table has every bundled model; the flux SVG is valid XML with one node per state and one arrow per flux."""
    assert [r["name"] for r in logic.model_table()] == nanopk.list_models()
    model = nanopk.load_model("mouse_tumour")
    info = logic.model_info("mouse_tumour")
    root = ET.fromstring(info["svg"])
    ns = "{http://www.w3.org/2000/svg}"
    nodes = [g.get("data-state") for g in root.iter(f"{ns}g") if g.get("class") == "state"]
    edges = [(p.get("data-source"), p.get("data-target")) for p in root.iter(f"{ns}path") if p.get("class") == "flux"]
    assert nodes == model.state_names
    assert edges == [(f.source, f.target) for f in model.fluxes]
    assert info["mechanisms"] == [p.name for p in model.parts]
    assert {p["name"] for p in info["parameters"]} == set(model.parameter_names)


def _asgi_post(app, length: int):
    sent = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/session/x/upload/y",
             "headers": [(b"content-length", str(length).encode())]}
    asyncio.run(app(scope, receive, send))
    return sent


def test_upload_limit_refuses_a_large_body_at_the_door():
    """A POST over the limit gets 413 and a message before Shiny sees it; a small one passes through."""
    passed = []

    async def inner(scope, receive, send):
        passed.append(scope["path"])

    app = UploadLimit(inner, limit=1000)
    sent = _asgi_post(app, 2_000_000)
    assert sent[0]["status"] == 413 and passed == []
    assert sent[1]["body"].decode() == "upload refused: 2,000,000 bytes; the page takes files of at most 1,000 bytes"
    assert _asgi_post(app, 500) == [] and passed == ["/session/x/upload/y"]


def test_serve_refuses_a_bad_or_busy_port(capsys):
    """`nanopk serve` with a port out of range or in use exits 2 with one line saying what to change."""
    assert main(["serve", "--port", "70000"]) == 2
    assert capsys.readouterr().err == "nanopk serve: error: --port 70000: give a TCP port between 1 and 65535 (default 8050)\n"
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["serve", "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"nanopk serve: error: --host 127.0.0.1 --port {port}: cannot listen there (")
    assert err.endswith("choose another --port (e.g. --port 8051)\n")
