"""``python -m nanopk``: the command-line interface (same as the ``nanopk`` command)."""
import sys

from .cli import main

sys.exit(main())
