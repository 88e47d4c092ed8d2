"""``nanopk serve``: a local web page for fitting, comparing coatings, designing a particle
and browsing the bundled models, built with Shiny for Python (the ``web`` extra).

Start it with ``nanopk serve`` (default http://127.0.0.1:8050) or from Python::

    from nanopk.web import create_app, serve
    serve(port=8050)          # blocks; Ctrl-C stops it

The pages call the same functions as the command line (:mod:`nanopk.web.logic`) and show
the same error messages; the design page and the compare page's two-particle mode show
``nanopk predict``'s DE24/DE168/DEmax with its 90 % population interval; uploads (.csv/.xlsx with an optional .json sidecar, at most
10 MB) are read only by :func:`nanopk.read_dataset`, each browser tab in its own
temporary folder.
"""
from __future__ import annotations

__all__ = ["create_app", "serve"]


def _require_shiny():
    try:
        import shiny  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise ImportError(f"nanopk serve needs Shiny for Python ({exc}); install the web extra: "
                          "pip install 'nanopk[web]'") from None


def create_app():
    """The page as an ASGI application (for ``uvicorn`` or any ASGI server)."""
    _require_shiny()
    from .app import create_app as _create

    return _create()


def serve(host: str = "127.0.0.1", port: int = 8050) -> None:
    """Serve the page on ``host:port`` until interrupted.

    Raises
    ------
    nanopk.NanopkError
        A port outside 1-65535 or one already in use (with the way out).
    ImportError
        Without the web extra (the message says what to install).
    """
    import socket
    import warnings

    from ..data import DataWarning
    from ..errors import NanopkError
    from ..fit import FitWarning

    if not 0 < int(port) < 65536:
        raise NanopkError(f"--port {port}: give a TCP port between 1 and 65535 (default 8050)")
    _require_shiny()
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        try:
            probe.bind((host, int(port)))
        except OSError as exc:
            raise NanopkError(f"--host {host} --port {port}: cannot listen there ({exc.strerror or exc}); "
                              "choose another --port (e.g. --port 8051)") from None
    # The reports carry fit and data warnings (as the CLI prints them): not stderr too.
    warnings.simplefilter("ignore", FitWarning)
    warnings.simplefilter("ignore", DataWarning)
    import uvicorn

    app = create_app()
    print(f"nanopk serve: the page is at http://{host}:{port}/ (Ctrl-C stops it)", flush=True)
    uvicorn.run(app, host=host, port=int(port), log_level="warning")
