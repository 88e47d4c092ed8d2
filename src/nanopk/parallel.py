"""What the resumable, parallel runs share (``nanopk meta``, ``nanopk calibrate``).

- :func:`dask_client`: a ``distributed.Client`` from a scheduler address, a client or a
  cluster object; without dask installed, :class:`ParallelDependencyError` naming
  ``pip install "nanopk[parallel]"``.
- :class:`StopOnSigterm` / :class:`Terminated`: SIGTERM becomes an exception in the main
  thread, so a run can end its workers and leave its store consistent;
  :class:`RunInterrupted` is what the run then raises (the CLI exits 128 + signal).
- :func:`init_worker`: a worker process ends with its parent and leaves signals to it.
- :func:`open_sqlite`, :func:`plain`, :func:`settings_diff`: a results store, the
  JSON form of settings and the one-line-per-setting difference a store that refuses
  to resume with other settings prints.
"""
from __future__ import annotations

import ctypes
import json
import os
import signal
import sqlite3
import sys
import threading
import time

from .errors import NanopkError

__all__ = ["ParallelDependencyError", "SchedulerUnreachable", "require_distributed", "dask_client", "RunInterrupted", "Terminated", "StopOnSigterm", "init_worker", "open_sqlite",
           "plain", "settings_diff"]

#: Seconds to wait for a Dask scheduler to answer (distributed's own default is 30).
CONNECT_TIMEOUT_S = 20
#: The install command every "needs dask" message names.
INSTALL_PARALLEL = 'pip install "nanopk[parallel]"'


class ParallelDependencyError(NanopkError, ImportError):
    """A Dask scheduler was asked for but dask.distributed is not installed."""


def require_distributed(what: str = "running on a Dask cluster", scheduler=None):
    """The ``distributed`` module, or :class:`ParallelDependencyError` naming the install command."""
    try:
        import distributed
    except ImportError:
        raise ParallelDependencyError(f"{what} (scheduler {scheduler!r}) needs dask.distributed, which is not "
                                      f"installed: {INSTALL_PARALLEL}, or run without a scheduler") from None
    return distributed


def dask_client(scheduler, what: str = "running on a Dask cluster"):
    """``(client, owned)`` for ``scheduler``: an address (``"tcp://host:8786"``), a
    ``distributed.Client`` (used as is, ``owned`` False) or a cluster object (a
    ``LocalCluster``...); close the client when ``owned``.

    Raises
    ------
    ParallelDependencyError
        dask.distributed is not installed (the message names the install command).
    SchedulerUnreachable
        No scheduler answers at the address (the message names it and what to check).
    """
    distributed = require_distributed(what, scheduler)
    if isinstance(scheduler, distributed.Client):
        return scheduler, False
    target = scheduler if hasattr(scheduler, "scheduler_address") else str(scheduler)  # a LocalCluster... or an address
    try:
        return distributed.Client(target, timeout=f"{CONNECT_TIMEOUT_S}s"), True
    except (OSError, TimeoutError) as exc:  # distributed raises OSError (or TimeoutError) when no scheduler answers
        raise SchedulerUnreachable(f"no Dask scheduler answers at {str(target)!r} for {what} ({exc}); start one "
                                   "(`dask scheduler`, then `dask worker ADDRESS` on each machine) and give its "
                                   "address as tcp://HOST:PORT, or run without --scheduler") from None


class SchedulerUnreachable(NanopkError):
    """No Dask scheduler answered at the address given."""


class RunInterrupted(NanopkError, RuntimeError):
    """The run was stopped by a signal; the store is consistent and the same call resumes.

    Attributes
    ----------
    signum : int
        The signal (``signal.SIGTERM`` or ``signal.SIGINT``).
    store : str
        The results store.
    n_fitted : int
        Results this run wrote before it stopped (``unit`` says of what).
    """

    def __init__(self, signum: int, store: str, n_fitted: int, unit: str = "new row(s)"):
        self.signum, self.store, self.n_fitted = int(signum), str(store), int(n_fitted)
        name = signal.Signals(self.signum).name
        super().__init__(f"stopped by {name} after {n_fitted} {unit}; the workers are ended and the store "
                         f"{self.store!r} is consistent: run the same command again to resume")


class Terminated(BaseException):
    """Raised by the SIGTERM handler; a BaseException so that no ``except Exception`` of the
    work swallows it (the run turns it into a :class:`RunInterrupted` once its workers are down)."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


class StopOnSigterm:
    """While a run is on, SIGTERM raises :class:`Terminated` in the main thread, so the pool is
    ended and the run recorded before the process goes (the default action would leave the
    workers running and the run marked as still going).  Installed only from the main
    thread and only over the default action: a handler the caller set is left alone."""

    def __enter__(self):
        self._previous = None
        if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
            self._hit = False
            self._previous = signal.signal(signal.SIGTERM, self._handle)
        return self

    def _handle(self, signum, frame):
        if self._hit:  # already stopping: let the clean-up finish
            return
        self._hit = True
        raise Terminated(signum)

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)
        return False


#: Seconds between a worker's checks that its parent is still alive.
_PARENT_POLL_S = 0.5


def _die_with_parent(parent_pid: int) -> None:  # pragma: no cover - runs in child processes
    """End this worker when the process that started it is gone (SIGKILL leaves no chance to
    shut the pool down, and an orphaned worker would wait on its queue forever)."""
    if sys.platform.startswith("linux"):
        try:  # the kernel sends SIGKILL when the parent dies, even mid-fit with the GIL held
            ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL), 0, 0, 0)  # 1 = PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent_pid:  # died before the line above took effect
        os._exit(1)

    def watch():  # every platform: reparenting (to init or a subreaper) means the parent is gone
        while True:
            time.sleep(_PARENT_POLL_S)
            if os.getppid() != parent_pid:
                os._exit(1)

    threading.Thread(target=watch, name="nanopk-parent-watch", daemon=True).start()


def init_worker(parent_pid: int | None = None) -> None:  # pragma: no cover - runs in child processes
    """Initialise a local worker process: end it with ``parent_pid`` (when given); ignore
    Ctrl-C, which reaches the whole process group (the parent alone decides, and ends the
    pool); and take SIGTERM's default action, so a :class:`StopOnSigterm` handler
    inherited over ``fork`` does not raise in a worker the parent terminates."""
    if parent_pid is not None:
        _die_with_parent(parent_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def open_sqlite(path, schema: str, refuse, migrate=None) -> sqlite3.Connection:
    """Connect to ``path`` (creating it) and create ``schema``'s tables; ``migrate(con)`` then
    brings an older store up to date.  ``refuse(exc)`` makes the error raised when the file
    is not an SQLite file or cannot be written (read-only, missing folder)."""
    con = None
    try:
        con = sqlite3.connect(str(path), timeout=30)
        con.executescript(schema)
        if migrate is not None:
            migrate(con)
        con.commit()
    except sqlite3.DatabaseError as exc:  # OperationalError (read-only, missing folder) included
        if con is not None:
            con.close()
        raise refuse(exc) from None
    return con


def plain(value):
    """JSON-ready copy (tuples as lists, numpy scalars as floats) for hashing and storing."""
    return json.loads(json.dumps(value, default=float))


_UNSET = object()


def _show(value) -> str:
    return "(not set)" if value is _UNSET else json.dumps(value)


def settings_diff(old: dict, new: dict, prefix: str = "") -> list[str]:
    """One line per setting that differs (nested dicts by dotted name), in name order:
    ``"  name: stored <old>, now <new>"``."""
    out = []
    for k in sorted(set(old) | set(new)):
        a, b = old.get(k, _UNSET), new.get(k, _UNSET)
        if isinstance(a, dict) and isinstance(b, dict):
            out += settings_diff(a, b, f"{prefix}{k}.")
        elif a != b:
            out.append(f"  {prefix}{k}: stored {_show(a)}, now {_show(b)}")
    return out
