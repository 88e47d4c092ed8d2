"""Progress bars and the ``nanopk`` logger hierarchy, for long work (a leaf module).

Diagnostics of library code go through :mod:`logging`, never ``print``: each module
logs to ``logging.getLogger("nanopk.<module>")`` (``nanopk.batch``,
``nanopk.fit.uncertainty``, ``nanopk.sensitivity``, ``nanopk.scan``, and
``nanopk.solver`` for CVODE's own messages).  A library caller sees nothing unless it
configures logging; ``nanopk -v`` shows INFO lines on stderr, ``-vv`` DEBUG, ``-q``
only errors.  Silence everything with ``logging.getLogger("nanopk").setLevel(logging.ERROR)``.

Progress bars (tqdm) are drawn on stderr by profile likelihood, MCMC, batch runs,
global sensitivity analysis and design scans when

    enabled = (tqdm is installed) and (stderr is a terminal)        by default,

or always / never after :func:`set_progress` (``True`` / ``False``; the CLI's
``--progress`` / ``--no-progress``) or with ``progress=`` given to the call.
"""
from __future__ import annotations

import importlib.util
import logging
import sys

__all__ = ["get_logger", "progress_enabled", "progress_bar", "set_progress", "NoBar"]

#: None: automatic (tqdm installed and stderr a terminal); True/False: forced.
_SETTING: dict = {"progress": None}


def get_logger(name: str) -> logging.Logger:
    """The logger ``nanopk.<name>`` (``name`` may already start with ``nanopk``)."""
    return logging.getLogger(name if name == "nanopk" or name.startswith("nanopk.") else f"nanopk.{name}")


def set_progress(enabled: bool | None) -> None:
    """Force progress bars on (``True``), off (``False``) or back to automatic (``None``)."""
    _SETTING["progress"] = None if enabled is None else bool(enabled)


def progress_enabled(progress: bool | None = None) -> bool:
    """Whether to draw a bar: ``progress`` if given, else :func:`set_progress`'s, else automatic.

    Automatic means tqdm is installed and stderr is a terminal, so logs, pipes and CI
    stay clean.  A bar asked for explicitly without tqdm is refused (ImportError with
    the install command) rather than silently left out.
    """
    wanted = progress if progress is not None else _SETTING["progress"]
    installed = importlib.util.find_spec("tqdm") is not None
    if wanted is None:
        isatty = getattr(sys.stderr, "isatty", None)
        return installed and bool(isatty and isatty())
    if wanted and not installed:
        raise ImportError("the progress bar needs tqdm: pip install tqdm (or 'nanopk[mcmc]'), or run without --progress")
    return bool(wanted)


class NoBar:
    """What :func:`progress_bar` returns when no bar is drawn: the same calls, doing nothing."""

    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass

    def set_postfix_str(self, text: str) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def progress_bar(total: int, desc: str, unit: str = "it", progress: bool | None = None, mininterval: float = 0.1):
    """A tqdm bar on stderr (a context manager with ``update``), or one that draws nothing.

    ``mininterval`` (s) is tqdm's: the bar redraws at most that often (0 redraws on every
    update, for slow steps such as a calibration's whole-database evaluations)."""
    if not progress_enabled(progress):
        return NoBar()
    import tqdm as _tqdm
    from tqdm.auto import tqdm

    # No monitor thread: batch runs fork worker processes while a bar is open, and a
    # fork with another thread holding a lock can deadlock the child.
    _tqdm.tqdm.monitor_interval = 0
    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, leave=False, mininterval=mininterval)
