"""The exception hierarchy and the one formula every error message follows.

Each error names the thing, what was expected, what was got and -- for names -- the
nearest valid choices.  Exceptions subclass the built-in a caller would naturally catch
(``ValueError`` for bad input, ``RuntimeError`` for a failed computation) and carry the
structured fields a program needs (``.problems``, ``.column``, ``.rows``).
"""
from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence

__all__ = [
    "NanopkError",
    "ModelError",
    "SpecError",
    "DataError",
    "FitError",
    "SolverError",
    "ExportError",
    "BackendError",
    "FitWarning",
    "DataWarning",
    "suggest",
    "format_rows",
]


class NanopkError(Exception):
    """Base class of every error raised by nanopk."""


class ModelError(NanopkError, ValueError):
    """A model is inconsistent; ``.problems`` lists every problem found."""

    def __init__(self, message: str, problems: Sequence[str] = ()):
        self.problems = list(problems)
        if self.problems:
            message = message + "\n" + "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(message)


class SpecError(ModelError):
    """A model specification (``models/*.toml``) is invalid."""


class DataError(NanopkError, ValueError):
    """A dataset is invalid; ``.problems`` holds one entry per problem.

    Each problem is a dict with ``message`` and, where they apply, ``column`` and
    ``rows`` (1-based data rows as a user sees them in a spreadsheet, header = row 1).
    """

    def __init__(self, path, problems: Sequence[dict]):
        self.path = str(path)
        self.problems = list(problems)
        lines = [f"{len(self.problems)} problem(s) in {self.path}:"]
        lines += [f"  - {p['message']}" for p in self.problems]
        super().__init__("\n".join(lines))

    @property
    def column(self):
        """Column of the first problem (convenience for single-problem errors)."""
        return self.problems[0].get("column") if self.problems else None

    @property
    def rows(self):
        """Rows of the first problem (convenience for single-problem errors)."""
        return self.problems[0].get("rows") if self.problems else None


class FitError(NanopkError, RuntimeError):
    """A fit could not be set up or carried out."""


class SolverError(NanopkError, RuntimeError):
    """The ODE solver failed; the message names the time reached and the parameters."""

    def __init__(self, message: str, t_reached: float | None = None, params: dict | None = None):
        self.t_reached = t_reached
        self.params = dict(params or {})
        super().__init__(message)


class ExportError(NanopkError, RuntimeError):
    """A model could not be exported to the requested format."""


class BackendError(NanopkError, RuntimeError):
    """A numerical backend cannot run here (no C compiler, a model libroadrunner cannot load ...)."""


# The two warnings live here, not in nanopk.fit and nanopk.data (which re-export them), so
# the command line can silence them without importing lmfit, pandas and pint first.
class FitWarning(UserWarning):
    """Something about a fit the user must know: rows left out, a parameter at a
    bound, strongly correlated parameters, a singular covariance, no convergence."""


class DataWarning(UserWarning):
    """Rows of a dataset were left out of a computation (listed in the message)."""


def suggest(name: str, valid: Iterable[str], n: int = 3) -> str:
    """Return ``"; did you mean 'x'?"`` for the nearest valid names, or ``""``."""
    close = difflib.get_close_matches(str(name), list(valid), n=n, cutoff=0.6)
    if not close:
        return ""
    return "; did you mean " + " or ".join(repr(c) for c in close) + "?"


def format_rows(rows: Sequence[int], limit: int = 12) -> str:
    """``"rows 4, 9, 12"`` (1-based), shortened with a count past ``limit``."""
    rows = list(rows)
    word = "row" if len(rows) == 1 else "rows"
    if len(rows) <= limit:
        return f"{word} " + ", ".join(str(r) for r in rows)
    shown = ", ".join(str(r) for r in rows[:limit])
    return f"{word} {shown} … ({len(rows)} in all)"
