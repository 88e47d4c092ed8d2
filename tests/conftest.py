"""Suite-wide rules.

In CI (``CI=true``, as ``.ci/run`` runs) no test may be skipped: a test that needs the
shared raw data (``../shared/datasets/raw``) or an optional extra skips on a developer's
machine without them, but in CI a skip would hide a missing install step or a missing
data folder behind a green run.  So a CI run with any skipped test fails, listing them.
"""
import os

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
