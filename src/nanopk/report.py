"""Text that both front ends show — the command line and the web page — written once.

``parse_params`` reads ``NAME=VALUE`` settings as a user types them; ``fit_delivery``
adds DE24/DE168/DEmax to a fit of a tumour model; ``delivery_lines`` formats a delivery
result as ``nanopk fit`` and ``nanopk delivery`` print it (and the page shows it).
A leaf below :mod:`nanopk.cli` and :mod:`nanopk.web`, so neither imports the other.
"""
from __future__ import annotations

from .errors import NanopkError

__all__ = ["parse_params", "fit_delivery", "delivery_lines"]


def parse_params(items) -> dict:
    """``--param`` values: each ``NAME=VALUE`` or a comma-separated list of them."""
    out = {}
    for item in (part for group in items or [] for part in group.split(",") if part.strip()):
        if "=" not in item:
            raise NanopkError(f"--param {item!r} must be NAME=VALUE (e.g. --param Kmax_liver=0.5)")
        name, value = item.split("=", 1)
        try:
            out[name.strip()] = float(value)
        except ValueError:
            raise NanopkError(f"--param {name}: {value!r} is not a number") from None
    return out


def fit_delivery(result):
    """DE24/DE168/DEmax of a fit of a model with a tumour (``None`` without one); the fit keeps
    the result in its JSON (DESIGN.md fit JSON)."""
    if "tumour" not in result.model.observable_names:
        return None
    return result.delivery()


def delivery_lines(de: dict) -> list[str]:
    """The lines ``nanopk fit``/``delivery`` print for a delivery dict (the web page shows the same)."""
    from .delivery import DESCRIPTIONS

    lines = []
    status = de.get("fit_status") or {}
    if status and not status.get("success", True):
        state = ("did NOT CONVERGE" if status.get("converged") is False
                 else f"has no covariance ({status.get('covariance')})")
        lines.append(f"  *** FIT FAILED: these figures come from a fit that {state}: {status.get('message')}; "
                     "they are not estimates to report ***")
    for key, item in de.items():
        # A value without one says why (its note); a note flags extrapolation or where a half-life was read.
        if isinstance(item, dict) and "value" in item and (item["value"] is not None or item.get("note")):
            ci = item.get("ci95")
            value = f"{item['value']:.4g} {item.get('unit', '')}" if item["value"] is not None else "n/a"
            ci_text = f"[{ci[0]:.3g}, {ci[1]:.3g}]" if ci else ""
            note = f" ({item['note']})" if item.get("note") else ""
            lines.append(f"  {key:<18} {value:<20} {ci_text:<20} {DESCRIPTIONS.get(key, '')}{note}".rstrip())
    if (de.get("uncertainty") or {}).get("note"):
        lines.append(f"  intervals: {de['uncertainty']['note']}")
    return lines
