"""The tutorials in docs/tutorials/ run as written and print what their pages say they print.

Each page's ``.. code-block:: python`` blocks are executed in order, in one namespace, in
a temporary directory.  A ``.. code-block:: text`` block right after a Python block (only
blank lines between) is that block's printed output: the test compares it line by line
with what the code printed, so every number a page shows is one the code printed (the
pages print rounded values, so the comparison's tolerance is the rounding shown).
Warnings the code raises are recorded, not errors (a tutorial shows a fit's warnings
as a user sees them); the suite's ``filterwarnings = error`` would otherwise stop it.

Run ``python tests/test_tutorials.py docs/tutorials/PAGE.rst`` to print each block's
output when writing a page.
"""
from __future__ import annotations

import contextlib
import io
import os
import re
import sys
import textwrap
import warnings
from pathlib import Path

import pytest

TUTORIALS = Path(__file__).resolve().parents[1] / "docs" / "tutorials"
PAGES = ["fit_your_data", "compare_coatings", "design_a_particle", "embed", "own_mechanism"]

_BLOCK = re.compile(r"^\.\. code-block:: (\w+)[ \t]*\n((?:[ \t]+:\w+:.*\n)*)\n((?:(?:[ \t]+.*)?\n)+)", re.M)


def blocks(text: str) -> list[tuple[str, str, int]]:
    """``(language, code, end offset)`` of every code block of an RST page, in order."""
    return [(m.group(1), textwrap.dedent(m.group(3)).strip("\n") + "\n", m.end()) for m in _BLOCK.finditer(text)]


def pairs(text: str) -> list[tuple[str, str | None]]:
    """``(python code, expected output or None)``: each Python block and the text block right after it."""
    found = blocks(text)
    out = []
    for k, (lang, code, end) in enumerate(found):
        if lang != "python":
            continue
        expected = None
        if k + 1 < len(found) and found[k + 1][0] == "text":
            start = text.index(".. code-block:: text", end)
            if not text[end:start].strip():
                expected = found[k + 1][1]
        out.append((code, expected))
    return out


def run_page(name: str, workdir: Path) -> list[tuple[str, str | None, str]]:
    """Execute page ``name``'s Python blocks in ``workdir``: ``(code, expected, printed)`` per block."""
    text = (TUTORIALS / f"{name}.rst").read_text(encoding="utf-8")
    namespace: dict = {"__name__": f"tutorial_{name}"}
    results = []
    from nanopk.mechanisms import base as mechanisms_base

    old = Path.cwd()
    os.chdir(workdir)
    path0, modules0 = list(sys.path), set(sys.modules)
    registered0 = dict(mechanisms_base._REGISTERED)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # shown to a reader on stderr; not part of the compared output
            for i, (code, expected) in enumerate(pairs(text)):
                buf = io.StringIO()
                with contextlib.redirect_stdout(buf):
                    exec(compile(code, f"{name}.rst[block {i + 1}]", "exec"), namespace)
                results.append((code, expected, buf.getvalue()))
    finally:
        # a page's own modules and registered families leave with it (test_entry_points
        # installs a family of its own; the same worker may run it next)
        os.chdir(old)
        sys.path[:] = path0
        for module in set(sys.modules) - modules0:
            if str(workdir) in str(getattr(sys.modules[module], "__file__", None) or ""):
                del sys.modules[module]
        mechanisms_base._REGISTERED.clear()
        mechanisms_base._REGISTERED.update(registered0)
        mechanisms_base.clear_registry_cache()
    return results


def _lines(text: str) -> list[str]:
    return [line.rstrip() for line in text.strip("\n").splitlines()]


@pytest.mark.parametrize("name", PAGES)
def test_tutorial_runs_and_prints_what_its_page_shows(name, tmp_path):
    """Every Python block of the page runs; each shown output equals what the block printed."""
    results = run_page(name, tmp_path)
    assert results, f"{name}.rst has no Python block"
    shown = [r for r in results if r[1] is not None]
    assert shown, f"{name}.rst shows no output: a tutorial states what its code prints"
    for code, expected, printed in shown:
        # dedented as RST dedents the page's block (a table's leading space is not kept)
        assert _lines(textwrap.dedent(printed)) == _lines(expected), f"{name}.rst, block\n{code}\nprinted\n{printed}"


def test_every_tutorial_page_is_tested_and_in_the_toctree():
    """Each page in docs/tutorials/ is run here and listed in the tutorials' toctree."""
    pages = sorted(p.stem for p in TUTORIALS.glob("*.rst") if p.stem != "index")
    assert pages == sorted(PAGES)
    index = (TUTORIALS / "index.rst").read_text(encoding="utf-8")
    assert all(f"\n   {p}\n" in index for p in PAGES)


def test_the_extractor_pairs_code_with_its_output():
    """A python block followed by a text block is a pair; prose between them unpairs it."""
    page = (".. code-block:: python\n\n   print(1)\n\n.. code-block:: text\n\n   1\n\n"
            ".. code-block:: python\n\n   x = 2\n\nSome prose.\n\n.. code-block:: text\n\n   not output\n")
    assert pairs(page) == [("print(1)\n", "1\n"), ("x = 2\n", None)]


if __name__ == "__main__":  # print each block's output, to write a page
    import tempfile

    page = Path(sys.argv[1]).stem
    with tempfile.TemporaryDirectory() as d:
        for code, _, printed in run_page(page, Path(d)):
            print(textwrap.indent(code, ">>> "))
            print(printed)
