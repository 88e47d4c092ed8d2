"""The documentation site builds with no warning, and holds the API reference, the tutorial and the README."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("sphinx")
pytest.importorskip("numpydoc")
pytest.importorskip("myst_parser")

DOCS = Path(__file__).resolve().parents[1] / "docs"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    # built from a copy: autosummary writes its pages into the source tree, which a test must not touch
    root = tmp_path_factory.mktemp("repo")
    shutil.copytree(DOCS, root / "docs", ignore=shutil.ignore_patterns("_build", "generated"))
    for name in ("README.md", "CHANGELOG.md"):
        shutil.copy(DOCS.parent / name, root / name)
    out = tmp_path_factory.mktemp("html")
    doctrees = tmp_path_factory.mktemp("doctrees")
    # -W: a docstring that does not render (a bad numpydoc section, an undefined
    # substitution in an equation) fails the build instead of rendering as garbage.
    # A subprocess, as a user runs it: the suite's warnings-as-errors filter would turn the
    # extensions' own deprecation notices into failures that are not ours.
    proc = subprocess.run([sys.executable, "-m", "sphinx", "-W", "-q", "-b", "html", "-d", str(doctrees), str(root / "docs"),
                           str(out)], capture_output=True, text=True, timeout=600)
    return proc, out


def test_site_builds_without_warnings(site):
    """sphinx-build -W exits 0 on docs/ (warnings are errors)."""
    proc, _ = site
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_api_reference_documents_fit_with_its_parameters(site):
    """The generated page of nanopk.fit.fit renders its numpydoc Parameters section, including `vary`."""
    _, out = site
    page = (out / "generated" / "nanopk.fit.fit.html").read_text(encoding="utf-8")
    assert "Parameters" in page and "vary" in page


def test_tutorial_and_readme_are_pages(site):
    """The tutorial and the README (included, not copied) are pages of the site."""
    _, out = site
    assert "Compare two coatings" in (out / "tutorial.html").read_text(encoding="utf-8")
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    first_section = next(line[3:] for line in readme.splitlines() if line.startswith("## "))
    assert first_section in (out / "readme.html").read_text(encoding="utf-8")


def test_concepts_page_has_the_data_flow_picture_and_the_stages(site):
    """The concepts page shows the hand-written SVG (copied into the site) and names each stage's module."""
    _, out = site
    page = (out / "concepts.html").read_text(encoding="utf-8")
    assert "dataflow.svg" in page and (out / "_images" / "dataflow.svg").exists()
    for module in ("particle.py", "mechanisms/", "model.py", "compile.py", "backends/", "fit/", "delivery.py", "lloq"):
        assert module in page, module


def test_every_tutorial_is_a_page_of_the_site(site):
    """The five tutorials that tests/test_tutorials.py runs are pages, linked from the tutorials' index."""
    _, out = site
    index = (out / "tutorials" / "index.html").read_text(encoding="utf-8")
    for name in ("fit_your_data", "compare_coatings", "design_a_particle", "embed", "own_mechanism"):
        assert (out / "tutorials" / f"{name}.html").exists(), name
        assert f"{name}.html" in index, name
