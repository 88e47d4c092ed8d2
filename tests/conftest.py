"""Suite-wide rules.

In CI (``CI=true``, as ``.ci/run`` runs) no test may be skipped: a test that needs the
shared raw data (``../shared/datasets/raw``) or an optional extra skips on a developer's
machine without them, but in CI a skip would hide a missing install step or a missing
data folder behind a green run.  So a CI run with any skipped test fails, listing them.
"""
import os
from pathlib import Path

import pytest

IN_CI = os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session, exitstatus):
    if not IN_CI:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter else []
    if skipped and session.exitstatus == 0:
        lines = [f"  {report.nodeid}: {report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr}"
                 for report in skipped]
        reporter.ensure_newline()
        reporter.write_line(f"CI: {len(skipped)} test(s) skipped; in CI every test must run "
                            "(install the extras, put ../shared beside the clone):", red=True)
        for line in lines:
            reporter.write_line(line)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


#: The NTUA nanomaterial biodistribution workbook, read where it lies (never copied).
NTUA_WORKBOOK = (Path(__file__).resolve().parents[2] / "shared" / "datasets" / "raw"
                 / "ntua-unit-of-control-and-informatics__NM-biodistribution-prediction" / "Biodistribution_data"
                 / "NMs_Database.xlsx")


@pytest.fixture(scope="session")
def ntua_sheets():
    """The three wide sheets of the NTUA workbook, {sheet: {(study, instance): cells}}, read once per worker."""
    openpyxl = pytest.importorskip("openpyxl")
    if not NTUA_WORKBOOK.is_file():
        pytest.skip(f"shared NTUA workbook not found at {NTUA_WORKBOOK}")
    wb = openpyxl.load_workbook(NTUA_WORKBOOK, read_only=True)
    out = {name: {(r[0], r[1]): [x for x in r[2:] if x is not None] for r in wb[name].iter_rows(values_only=True)}
           for name in ("Time_points", "Tissues", "Concentrations")}
    wb.close()
    return out


@pytest.fixture
def rerun_tool(tmp_path):
    """``rerun_tool("make_ntua_pair.py")``: run a tools/ script's ``build`` into tmp_path, return the paths written."""
    import importlib.util

    def run(script: str):
        spec = importlib.util.spec_from_file_location(Path(script).stem, Path(__file__).resolve().parents[1] / "tools" / script)
        tool = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(tool)
        return tool.build(tmp_path)

    return run
