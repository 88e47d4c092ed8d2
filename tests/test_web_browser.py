"""The web page (`nanopk serve`) in a real headless browser: Debian's chromium driven by Playwright.

A module fixture starts `python -m nanopk serve` on a free localhost port in a subprocess
and one headless chromium (``/usr/bin/chromium``, installed by .ci/run; Playwright's own
browser download is never used).  Each test saves a screenshot of its page into its
``tmp_path`` (run with ``--basetemp DIR`` to keep them).
"""
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import warnings
from pathlib import Path

import pytest

pytest.importorskip("shiny", reason="the web extra (pip install 'nanopk[web]') is not installed")
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (the test extra) is not installed")

import nanopk  # noqa: E402
from nanopk.calibrate.predict import predict  # noqa: E402
from nanopk.cli import main  # noqa: E402
from nanopk.data.reader import resolve_path  # noqa: E402

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
if not Path(CHROMIUM).exists():
    pytest.skip("Debian's chromium is not installed (apt-get install chromium; .ci/run does)", allow_module_level=True)

#: A quick fit of a tumour model (one parameter): the page's DE24 is compared with the API's.
FIT_DATASET, FIT_MODEL, FIT_VARY = "liu2013_peg_au_2nm", "mouse_tumour", "Kmax_tumour"
BAD_CSV = "time,tissue,value\n1.0,tumour,7.9\n12.0,tumor_core,8.3\n24.0,liver,abc\n"
SLOW = 240_000  # ms: a fit on a loaded 2-core machine


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`nanopk serve` on a free port; its URL.  Stopped (and its log shown on failure) at the end."""
    port = _free_port()
    log = tmp_path_factory.mktemp("server") / "serve.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "nanopk", "serve", "--port", str(port)], stdout=out,
                                stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 180
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                if r.status == 200:
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"nanopk serve did not start (exit {proc.poll()}):\n{log.read_text()}")
        time.sleep(0.5)
    yield url
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
    text = log.read_text()
    assert "Traceback" not in text, f"the server logged an exception:\n{text}"


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser, server):
    """A fresh browser context (its own Shiny session) on the page."""
    context = browser.new_context(viewport={"width": 1300, "height": 1000})
    pg = context.new_page()
    pg.set_default_timeout(60_000)
    pg.goto(server)
    pg.wait_for_selector("#fit_run")
    yield pg
    context.close()


def _upload(pg, data: Path, sidecar: Path | None):
    pg.check("input[name=fit_source][value=upload]")
    pg.set_input_files("#fit_file", str(data))
    if sidecar is not None:
        pg.set_input_files("#fit_sidecar", str(sidecar))
        pg.wait_for_function("document.querySelector('#fit_upload_status').innerText.includes('with sidecar')")
    else:
        pg.wait_for_function(f"document.querySelector('#fit_upload_status').innerText.includes('{data.name}')")
    pg.wait_for_timeout(500)  # let the prefilled form's values reach the server


def _fit_in_page(pg, model: str, vary: str) -> str:
    """Choose the model and vary list, run the fit, wait for DE24; the DE24 text shown."""
    pg.select_option("#fit_model", model)
    pg.fill("#fit_vary", vary)
    pg.wait_for_timeout(500)
    pg.click("#fit_run")
    pg.wait_for_selector("#de24-value", timeout=SLOW)
    return pg.inner_text("#de24-value")


def test_fit_uploaded_dataset_shows_the_api_de24(page, tmp_path):
    """A bundled dataset uploaded through the file input and fitted in the page shows nanopk.fit's DE24 to the printed 4 digits."""
    csv = resolve_path(FIT_DATASET)
    api = {}

    def api_fit():  # the API's number, computed while the page fits (two cores)
        from nanopk.data import DataWarning
        from nanopk.fit import FitWarning

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FitWarning)
            warnings.simplefilter("ignore", DataWarning)
            result = nanopk.fit(nanopk.load_model(FIT_MODEL), nanopk.read_dataset(FIT_DATASET), vary=[FIT_VARY])
            api["de"] = nanopk.delivery_efficiency(result)

    worker = threading.Thread(target=api_fit)
    worker.start()
    page.screenshot(path=str(tmp_path / "fit_page_empty.png"), full_page=True)
    t0 = time.monotonic()
    _upload(page, csv, csv.with_suffix(".json"))
    # the sidecar's fields prefill the form (Liu 2013: 1.4 mg to 23 g mice, 2.3 nm PEG-1k gold)
    form = {k: page.input_value(f"#f_{k}") for k in ("species", "body_weight_g", "dose_value", "dose_unit",
                                                        "material", "core_diameter_nm", "coating", "coating_mw_da")}
    assert form == {"species": "mouse", "body_weight_g": "23", "dose_value": "1.4", "dose_unit": "mg", "material": "Au",
                    "core_diameter_nm": "2.3", "coating": "PEG", "coating_mw_da": "1000"}
    shown = _fit_in_page(page, FIT_MODEL, FIT_VARY)
    elapsed = time.monotonic() - t0
    page.screenshot(path=str(tmp_path / "fit_page.png"), full_page=True)
    worker.join()
    assert shown == f"{api['de']['DE24']['value']:.4g}"
    report = page.inner_text(".nanopk-report")
    assert f"nanopk fit of model '{FIT_MODEL}' to {FIT_DATASET}" in report
    assert re.search(r"DE24\s+" + re.escape(shown) + r" %ID", page.inner_text(".nanopk-delivery"))
    assert page.locator("#fit_figure img").count() == 1
    print(f"upload to DE24 in the page: {elapsed:.1f} s")


README_DATASET = "arnida2010_peg_au_sphere_50nm"  # the README's main job: nanopk fit ... --model mouse_tumour


def test_readme_job_in_the_page_shows_the_cli_de24(page, tmp_path):
    """The README's main job through the page (its dataset and sidecar uploaded, mouse_tumour, vary left
    empty so nanopk chooses, population priors as in the CLI) shows nanopk.fit's default DE24 to the
    printed 4 digits; the time from upload to DE24 is printed (issue 24's must-show)."""
    csv = resolve_path(README_DATASET)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = nanopk.delivery_efficiency(nanopk.fit(nanopk.load_model("mouse_tumour"), nanopk.read_dataset(README_DATASET)))
    t0 = time.monotonic()
    _upload(page, csv, csv.with_suffix(".json"))
    shown = _fit_in_page(page, "mouse_tumour", "")
    elapsed = time.monotonic() - t0
    page.screenshot(path=str(tmp_path / "fit_page_readme.png"), full_page=True)
    assert shown == f"{expected['DE24']['value']:.4g}"
    assert f"nanopk fit of model 'mouse_tumour' to {README_DATASET}" in page.inner_text(".nanopk-report")
    print(f"README job, upload to DE24 in the page: {elapsed:.1f} s (DE24 {shown} %ID)")


@pytest.fixture
def bad_study(tmp_path):
    folder = tmp_path / "user"
    folder.mkdir()
    (folder / "bad_study.csv").write_text(BAD_CSV)
    shutil.copyfile(resolve_path(FIT_DATASET).with_suffix(".json"), folder / "bad_study.json")
    return folder / "bad_study.csv"


def test_bad_upload_shows_the_cli_message(page, bad_study, tmp_path, monkeypatch, capsys):
    """A broken CSV uploaded in the page shows exactly the message `nanopk fit` prints, naming the rows."""
    _upload(page, bad_study, bad_study.with_suffix(".json"))
    page.click("#fit_run")
    page.wait_for_selector(".nanopk-error-text", timeout=SLOW)
    shown = page.inner_text(".nanopk-error-text")
    page.screenshot(path=str(tmp_path / "fit_page_error.png"), full_page=True)
    monkeypatch.chdir(bad_study.parent)
    assert main(["fit", "bad_study.csv", "--model", FIT_MODEL]) == 2
    assert capsys.readouterr().err == f"nanopk fit: error: {shown}\n"
    assert "unknown tissue 'tumor_core' in column tissue, row 3; did you mean 'tumour'?" in shown
    assert "non-numeric value in column value, row 4 (got 'abc')" in shown


def test_two_sessions_do_not_see_each_others_upload(browser, server, bad_study, tmp_path):
    """One tab's upload and error stay in that tab: a second tab has no file and runs nothing of it."""
    tabs = []
    for _ in range(2):
        context = browser.new_context(viewport={"width": 1300, "height": 1000})
        pg = context.new_page()
        pg.set_default_timeout(60_000)
        pg.goto(server)
        pg.wait_for_selector("#fit_run")
        tabs.append((context, pg))
    (_, a), (_, b) = tabs
    secret = bad_study.with_name("session_a_only.csv")
    bad_study.rename(secret)
    bad_study.with_suffix(".json").rename(secret.with_suffix(".json"))
    _upload(a, secret, secret.with_suffix(".json"))
    a.click("#fit_run")
    a.wait_for_selector(".nanopk-error-text", timeout=SLOW)
    assert "session_a_only.csv" in a.inner_text(".nanopk-error-text")
    b.check("input[name=fit_source][value=upload]")
    b.wait_for_function("document.querySelector('#fit_upload_status').innerText.includes('no file uploaded')")
    b.click("#fit_run")
    b.wait_for_selector(".nanopk-error-text")
    assert b.inner_text(".nanopk-error-text") == "no data file: upload a .csv or .xlsx (or choose a bundled dataset)"
    assert "session_a_only" not in b.content()
    b.screenshot(path=str(tmp_path / "second_session.png"), full_page=True)
    for context, _ in tabs:
        context.close()


def test_design_page_shows_predict_with_its_interval(page, tmp_path):
    """The design page's DE24 and 90 % population interval for 15 nm PEG-gold at 2 mg/kg are `nanopk predict`'s, as is the scan's cell."""
    page.click("a[data-value=design]")
    page.wait_for_selector("#design-DE24", timeout=SLOW)
    page.fill("#d_dose", "2")
    page.select_option("#d_coating", "PEG")
    de = predict("material=Au,core_nm=15,coating=PEG,peg_mw=5000", dose="2mg/kg")["delivery"]["DE24"]
    expected = f"{de['value']:.3g}"
    page.wait_for_function(f"document.querySelector('#design-DE24') && "
                           f"document.querySelector('#design-DE24').innerText === '{expected}'", timeout=SLOW)
    interval = page.inner_text("#design-DE24-interval")
    assert interval == f"(90 % population interval {de['low']:.3g}–{de['high']:.3g})"
    assert f"DE24 = {expected} %ID {interval}" in page.inner_text(".design-lines")
    page.wait_for_selector("#d_figure img", timeout=SLOW)
    page.fill("#d_scan_sizes", "15,50")
    page.wait_for_timeout(500)
    page.click("#d_scan_run")
    page.wait_for_selector(".nanopk-scan", timeout=SLOW)
    rows = [[c.inner_text() for c in r.locator("td").all()] for r in page.locator(".nanopk-scan tbody tr").all()]
    header = [c.inner_text() for c in page.locator(".nanopk-scan th").all()]
    assert header == ["core (nm)", "PEG", "none"]
    assert [r[0] for r in rows] == ["15", "50"]
    assert rows[0][1] == expected
    page.screenshot(path=str(tmp_path / "design_page.png"), full_page=True)
    print(f"design page: DE24 {expected} %ID {interval}")


def test_models_page_lists_every_bundled_model(page, tmp_path):
    """The models page names every bundled model and draws the chosen model's states and fluxes."""
    page.click("a[data-value=models]")
    page.wait_for_selector(".nanopk-models", timeout=SLOW)
    names = [r.locator("td").first.inner_text() for r in page.locator(".nanopk-models tbody tr").all()]
    assert names == nanopk.list_models()
    page.wait_for_selector("svg.flux-diagram")
    model = nanopk.load_model("mouse_tumour")
    assert page.locator("svg.flux-diagram g.state").count() == len(model.states)
    assert page.locator("svg.flux-diagram path.flux").count() == len(model.fluxes)
    page.screenshot(path=str(tmp_path / "models_page.png"), full_page=True)


def test_compare_page_shows_the_cli_report(page, tmp_path, capsys):
    """Comparing PEG and bare graphene oxide (Li 2014) in the page shows the report `nanopk compare` prints, and its figure."""
    page.click("a[data-value=compare]")
    page.wait_for_selector("#cmp_run")
    assert page.input_value("#cmp_a") == "li2014_go_peg" and page.input_value("#cmp_b") == "li2014_go_bare"
    assert page.input_value("#cmp_vary") == "Kmax_liver" and page.input_value("#cmp_param") == "K50_liver=0.1,n_liver=1"
    page.wait_for_timeout(1000)  # the panel's inputs reach the server
    page.click("#cmp_run")
    page.wait_for_selector(".nanopk-compare-report", timeout=SLOW)
    shown = page.inner_text(".nanopk-compare-report")
    page.wait_for_selector("#cmp_figure img", timeout=SLOW)
    page.screenshot(path=str(tmp_path / "compare_page.png"), full_page=True)
    capsys.readouterr()
    status = main(["compare", "li2014_go_peg", "li2014_go_bare", "--model", "mouse_pbpk",
                   "--param", "K50_liver=0.1,n_liver=1", "--vary", "Kmax_liver"])
    assert status == 0
    assert shown.strip() == capsys.readouterr().out.strip()
    assert re.search(r"phagocytic uptake\s+df=1\s+Λ=\S+\s+p=\S+", shown)


def test_compare_page_two_particles(page, tmp_path):
    """Two particles without data: the page shows each one's `nanopk predict` DE24 with its interval, the ratio B/A, the overlay; a bad dose is predict's message."""
    page.click("a[data-value=compare]")
    page.check("input[name=cmp_mode][value=particles]")
    page.wait_for_selector("#cmpp_run", state="visible")
    page.fill("#cp_b_size", "50")
    page.wait_for_timeout(1000)  # the panel's inputs reach the server
    page.click("#cmpp_run")
    page.wait_for_selector(".nanopk-particle-report", timeout=SLOW)
    a = predict("material=Au,core_nm=15,coating=PEG,peg_mw=5000", dose="1mg/kg")["delivery"]
    b = predict("material=Au,core_nm=50,coating=none", dose="1mg/kg")["delivery"]
    assert page.inner_text("#cmpp-A-DE24") == f"{a['DE24']['value']:.3g}"
    assert page.inner_text("#cmpp-B-DE24") == f"{b['DE24']['value']:.3g}"
    assert page.inner_text("#cmpp-ratio-DE24") == f"{b['DE24']['value'] / a['DE24']['value']:.3g}"
    table = page.inner_text(".nanopk-particles")
    for de in (a["DE24"], b["DE24"]):
        assert f"(90 % population interval {de['low']:.3g}–{de['high']:.3g})" in table
    report = page.inner_text(".nanopk-particle-report")
    assert "nanopk predict --particle material=Au,core_diameter_nm=50,coating=none --dose 1mg/kg" in report
    page.wait_for_selector("#cmpp_figure img", timeout=SLOW)
    page.screenshot(path=str(tmp_path / "compare_particles_page.png"), full_page=True)
    print("compare page, two particles:\n" + table)
    page.fill("#cp_b_dose", "0")
    page.wait_for_timeout(1000)
    page.click("#cmpp_run")
    page.wait_for_selector("#cmpp_error .nanopk-error-text", timeout=SLOW)
    assert page.inner_text("#cmpp_error .nanopk-error-text") == "particle B: --dose '0mg/kg': the dose must be > 0"
