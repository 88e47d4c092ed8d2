"""The nano-ADME mechanism library: one module per mechanism family.

Each variant is a function ``variant(ctx: BuildContext, **options) -> Part``; a model
spec names it as ``"family.variant"`` (e.g. ``"circulation.whole_body"``).  Mechanisms
return parts, never whole models.
"""
from .base import BuildContext, resolve_mechanism

__all__ = ["BuildContext", "resolve_mechanism"]
