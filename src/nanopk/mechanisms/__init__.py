"""The nano-ADME mechanism library: one module per mechanism family.

Each variant is a function ``variant(ctx: BuildContext, **options) -> Part``; a model
spec names it as ``"family.variant"`` (e.g. ``"circulation.whole_body"``).  Mechanisms
return parts, never whole models.

Families are discovered (:func:`families`): the modules of this package, plus any an
installed package declares in the entry-point group ``nanopk.mechanisms``
(:mod:`nanopk.mechanisms.base` says how).
"""
from .base import (ENTRY_POINT_GROUP, BuildContext, clear_registry_cache, declare, families, providers_of,
                   register_family, resolve_mechanism, variants)

__all__ = ["BuildContext", "resolve_mechanism", "families", "variants", "declare", "providers_of", "register_family",
           "clear_registry_cache", "ENTRY_POINT_GROUP"]
