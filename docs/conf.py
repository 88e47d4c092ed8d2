"""Sphinx configuration of nanopk's documentation (``sphinx-build -W docs docs/_build``)."""
from __future__ import annotations

import nanopk

project = "nanopk"
author = "nanopk developers"
copyright = "2026, nanopk developers"  # noqa: A001 (Sphinx's name)
release = nanopk.__version__
version = release

extensions = [
    "myst_parser",            # the README and CHANGELOG are Markdown: included, not copied
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "numpydoc",               # nanopk's docstrings are numpydoc
    "sphinx.ext.mathjax",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build"]
autosummary_generate = True
autodoc_typehints = "none"          # numpydoc's Parameters sections carry the types
numpydoc_show_class_members = False
numpydoc_validation_checks = set()
myst_heading_anchors = 3
suppress_warnings = ["myst.xref_missing"]  # README links to files of the repository, not to pages
html_theme = "alabaster"
html_title = f"nanopk {release}"
