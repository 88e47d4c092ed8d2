"""The optimised parameters of a fit: which model parameters vary, their scales, bounds and starts.

A varied parameter is fitted on the log scale (``x = ln θ``) whenever its lower bound
is ≥ 0 and its start value is positive, otherwise on the natural scale.  A lower bound
of 0 becomes ``start × 1e-6`` on the log scale (six decades below the start: a
log-parameter cannot reach 0, and one that runs to this floor is flagged as at a bound,
i.e. indistinguishable from zero); an infinite upper bound becomes ``start × 1e6``.
With several datasets a parameter is shared by all of them or, when left out of
``shared``, fitted once per dataset as ``NAME__<dataset>``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import FitError, suggest
from ._data import FitData

__all__ = ["FitParameter", "DEFAULT_VARY", "default_vary", "build_parameters"]

_ZERO_FLOOR_DECADES = 6.0


@dataclass
class FitParameter:
    """One optimised quantity.

    ``name`` is the lmfit name (``Kmax_liver`` or, per dataset,
    ``Kmax_liver__<dataset>``); ``model_name`` the model parameter it sets;
    ``dataset`` ``None`` when shared by every dataset.  ``lower``/``upper`` are
    natural-scale bounds, ``xmin``/``xmax`` the optimiser's (log when ``log``).
    """

    name: str
    model_name: str
    dataset: str | None
    log: bool
    start: float
    lower: float
    upper: float
    unit: str
    source: str

    @property
    def xmin(self) -> float:
        return math.log(self.lower) if self.log else self.lower

    @property
    def xmax(self) -> float:
        return math.log(self.upper) if self.log else self.upper

    @property
    def x0(self) -> float:
        return math.log(self.start) if self.log else self.start

    def to_natural(self, x: float) -> float:
        return math.exp(x) if self.log else float(x)

    def to_internal(self, value: float) -> float:
        if self.log:
            if not value > 0:
                raise FitError(f"parameter {self.name!r} is fitted on the log scale and needs a positive value (got {value!r})")
            return math.log(value)
        return float(value)


#: What ``vary=None`` fits, per measured organ (when the model has the parameter):
#: the phagocytic uptake that dominates nanoparticle biodistribution, and for a
#: tumour the four parameters identifiable from a few tumour time points.
DEFAULT_VARY = {
    "liver": ("Kmax_liver", "K50_liver"),
    "spleen": ("Kmax_spleen", "K50_spleen"),
    "kidney": ("Kmax_kidney",),
    "lung": ("Kmax_lung",),
    "tumour": ("PATC_tumour", "P_tumour", "Kmax_tumour", "Krelease_tumour"),
}


def default_vary(model, datasets: list[FitData]) -> list[str]:
    """Parameters fitted when ``vary`` is not given (see :data:`DEFAULT_VARY`)."""
    observed = {o for d in datasets for o in d.rows["observable"]}
    names = [n for organ, group in DEFAULT_VARY.items() if organ in observed for n in group if n in model.parameters]
    if not names:
        raise FitError(f"`vary` was not given and none of the default parameters ({', '.join(n for g in DEFAULT_VARY.values() for n in g)}) "
                       f"is in model {model.name!r} for the measured tissues; name the parameters to fit, e.g. vary=['Kmax_liver']")
    return names


def build_parameters(model, datasets: list[FitData], vary, shared, start, bounds) -> list[FitParameter]:
    """The optimised parameters: shared ones first, then per-dataset copies."""
    if vary is None:
        vary = default_vary(model, datasets)
    vary = [vary] if isinstance(vary, str) else list(vary)
    if not vary:
        raise FitError("`vary` is empty; name the model parameters to fit, e.g. vary=['Kmax_liver', 'Kmax_spleen']")
    known = model.parameters
    unknown = [v for v in vary if v not in known]
    if unknown:
        raise FitError("cannot vary unknown parameter(s): " + "; ".join(f"{u!r}{suggest(u, known)}" for u in unknown))
    dup = sorted({v for v in vary if vary.count(v) > 1})
    if dup:
        raise FitError(f"`vary` names {', '.join(map(repr, dup))} more than once")
    builtin = [v for v in vary if v in ("dose", "infusion_rate")]
    if builtin:
        raise FitError(f"{', '.join(map(repr, builtin))} is set by each dataset's dosing and cannot be fitted")
    if shared is None:
        shared_set = set(vary)
    else:
        shared = [shared] if isinstance(shared, str) else list(shared)
        stray = [s for s in shared if s not in vary]
        if stray:
            raise FitError(f"`shared` names {', '.join(map(repr, stray))}, which {'is' if len(stray) == 1 else 'are'} not in `vary`{suggest(stray[0], vary)}")
        shared_set = set(shared)
    if len(datasets) == 1:
        shared_set = set(vary)
    start = dict(start or {})
    bounds = dict(bounds or {})
    specs: list[FitParameter] = []
    for name in vary:
        copies = [(name, None)] if name in shared_set else [(f"{name}__{d.name}", d.name) for d in datasets]
        for pname, ds in copies:
            specs.append(_spec(known[name], pname, ds, start, bounds))
    names = {s.name for s in specs}
    stray = [k for k in list(start) + list(bounds) if k not in names and k not in vary]
    if stray:
        raise FitError("`start`/`bounds` name(s) not fitted: " + "; ".join(f"{s!r}{suggest(s, names)}" for s in stray))
    return specs


def _spec(param, pname: str, dataset, start: dict, bounds: dict) -> FitParameter:
    given = pname in start or param.name in start
    value = float(start.get(pname, start.get(param.name, param.value)))
    lo, hi = bounds.get(pname, bounds.get(param.name, param.bounds))
    lo, hi = float(lo), float(hi)
    if not given and hi > lo and not (lo <= value <= hi):
        # The model default lies outside bounds the user narrowed: start in the middle
        # (geometric for positive bounds).
        value = math.sqrt(lo * hi) if lo > 0 and math.isfinite(hi) else (lo + hi) / 2 if math.isfinite(hi) else lo
    if not (math.isfinite(value) and lo <= value <= hi):
        raise FitError(f"start value of {pname!r} must be finite and inside its bounds [{lo:g}, {hi:g}] (got {value!r})")
    log = lo >= 0 and value > 0
    if log:
        if lo <= 0:
            lo = value * 10 ** -_ZERO_FLOOR_DECADES
        if not math.isfinite(hi):
            hi = value * 10 ** _ZERO_FLOOR_DECADES
    elif not (math.isfinite(lo) and math.isfinite(hi)):
        if value == 0 and lo >= 0:
            raise FitError(f"cannot fit {pname!r} from a start value of 0 with bounds [{lo:g}, {hi:g}]: give a positive start, e.g. start={{{pname!r}: 1e-3}}")
    if not hi > lo:
        raise FitError(f"bounds of {pname!r} are empty: [{lo:g}, {hi:g}]")
    return FitParameter(pname, param.name, dataset, log, value, lo, hi, param.unit, param.source)
