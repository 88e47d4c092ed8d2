"""Sensitivity analysis: which parameter drives DE24, blood AUC or liver %ID at 24 h.

Outputs are functionals of the simulated observables on the time grid of
:func:`nanopk.delivery.delivery_grid` (so ``DE24`` here is the ``DE24`` of
:func:`nanopk.delivery_efficiency`):

    DE24  = (1/24)  ∫₀²⁴  tumour dt,   DE168 = (1/168) ∫₀¹⁶⁸ tumour dt,
    DEmax = max₀≤t≤168 tumour(t),      AUC_<obs>[@T h] = ∫₀^T obs dt  (T = 168 h by default),
    <obs>@<T>h = obs(T)                (e.g. ``liver@24h``, ``blood@1h``),

all in %ID (AUCs in %ID·h), each a weighted sum ``y = Σ_i w_i·obs(t_i)`` of grid values
(trapezoid weights; the arg-max for ``DEmax``).

**Local** (:func:`local_sensitivity`): the normalised sensitivity coefficient

    S_p = ∂ ln y / ∂ ln p = (p / y)·∂y/∂p,     ∂y/∂p = Σ_i w_i (∂h/∂x·s(t_i) + ∂h/∂p),

from the exact forward sensitivities s = ∂x/∂p that CVODE integrates beside the states
(the compiled library of ``jacobian="sensitivity"`` fits), checked against central
finite differences in ln p.  S_p = 0.5 means +1 % in p gives +0.5 % in y.

**Global** (:func:`morris`, :func:`sobol`): with SALib, over ranges of the parameters
(their bounds by default, or ``factor`` around the values, or given ranges), all
simulations run through :func:`nanopk.simulate_many` on all cores.  Morris screening
reports the mean absolute elementary effect μ* (with its 95 % bootstrap interval) and σ;
Sobol reports first-order S1 = V[E(y|p)]/V(y) and total-order ST = E[V(y|p~)]/V(y)
(Saltelli 2010 estimators) with 95 % bootstrap half-widths.  Without ``parameters``
the global methods screen the 8 parameters with the largest local abs(S_p) first.

References
----------
1. Saltelli A et al. Variance based sensitivity analysis of model output. Design and
   estimator for the total sensitivity index. Comput Phys Commun 2010;181:259-270.
2. Morris MD. Factorial sampling plans for preliminary computational experiments.
   Technometrics 1991;33:161-174; Campolongo F et al. Environ Model Softw 2007;22:1509.
3. Herman J, Usher W. SALib: an open-source Python library for sensitivity analysis.
   J Open Source Softw 2017;2:97.
4. Hindmarsh AC et al. SUNDIALS. ACM Trans Math Softw 2005;31:363 (forward sensitivities).
"""
from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from .batch import simulate_many
from .compile import compile_model
from .delivery import T_END_H, delivery_grid
from .dosing import Dosing
from .errors import NanopkError, suggest
from .progress import get_logger, progress_bar

__all__ = ["SensitivityError", "Output", "parse_outputs", "evaluate_outputs", "output_grid", "local_sensitivity",
           "morris", "sobol", "sobol_design", "sobol_table", "sensitivity", "parameter_ranges", "METHODS",
           "REGIMEN_PARAMETERS"]

_LOG = get_logger("sensitivity")

#: The methods of :func:`sensitivity` (and ``nanopk sensitivity --method``).
METHODS = ("local", "morris", "sobol")
#: Parameters that describe the dosing regimen, not the body or the particle: vary the
#: dose with ``nanopk scan --dose`` instead.
REGIMEN_PARAMETERS = ("dose", "infusion_rate")
#: How many parameters the global methods screen when none are named.
DEFAULT_SCREENED = 8
#: Solver tolerances of the global runs: those of :func:`nanopk.delivery.pk_metrics`.
GLOBAL_RTOL, GLOBAL_ATOL = 1e-7, 1e-10
#: Simulations per call of simulate_many: the observables of a batch are held in memory
#: (n × ~500 grid times × n_observables floats).
BATCH = 256
#: Where forward sensitivities start when ∂f/∂p is undefined at t = 0 (h).
_EPSILON_H = 1e-9

_OUTPUT_FORMS = "DE24, DE168, DEmax, AUC_<observable>[@<hours>h] or <observable>@<hours>h"


class SensitivityError(NanopkError, ValueError):
    """A sensitivity or scan request names something that does not exist or cannot be used.

    ``field`` is the argument (``outputs``, ``parameters``, ``ranges['k10']``, ``--size``),
    ``value`` what was given and ``expected`` what would be accepted.
    """

    def __init__(self, field: str, value, expected: str, hint: str = ""):
        self.field, self.value, self.expected = field, value, expected
        super().__init__(f"{field}: {value!r} {hint or 'is not valid'}; expected {expected}")


# --------------------------------------------------------------------------- outputs
@dataclass(frozen=True)
class Output:
    """One scalar output: ``kind`` ``"average"``, ``"auc"``, ``"max"`` or ``"at"`` of
    ``observable`` up to (or at) ``t_h`` hours; ``name`` as it appears in tables."""

    name: str
    observable: str
    kind: str
    t_h: float

    def weights(self, t: np.ndarray, values: np.ndarray | None = None) -> np.ndarray:
        """``w`` with ``y = w @ obs(t)``: trapezoid weights up to ``t_h``, an indicator at
        ``t_h`` (or at the arg-max of ``values`` for ``"max"``)."""
        w = np.zeros(t.size)
        keep = np.nonzero(t <= self.t_h * (1 + 1e-12))[0]
        if self.kind == "at":
            w[keep[-1]] = 1.0
            return w
        if self.kind == "max":
            w[keep[int(np.argmax(values[keep]))]] = 1.0
            return w
        dt = np.diff(t[keep])
        w[keep[:-1]] += dt / 2
        w[keep[1:]] += dt / 2
        return w / self.t_h if self.kind == "average" else w


def _hours(text: str) -> float | None:
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(h|hr|hours?)?\s*", text)
    return float(match.group(1)) if match else None


def parse_outputs(outputs: str | Sequence[str], observables: Sequence[str], field: str = "outputs") -> list[Output]:
    """Outputs from names such as ``"DE24,liver@24h,AUC_blood"`` (see the module docstring).

    Raises
    ------
    SensitivityError
        For a name that is none of the forms, an unknown observable (with the nearest
        names) or a time that is not a positive number of hours.
    """
    names = [o.strip() for o in (outputs.split(",") if isinstance(outputs, str) else outputs) if str(o).strip()]
    if not names:
        raise SensitivityError(field, outputs, _OUTPUT_FORMS, "names no output")
    observables = list(observables)
    examples = ["DE24", "DE168", "DEmax"] + [f"{o}@24h" for o in observables[:3]] + ["AUC_blood"]
    out = []
    for name in names:
        if name in ("DE24", "DE168", "DEmax"):
            if "tumour" not in observables:
                raise SensitivityError(field, name, f"an output of a model with a tumour, or one of {_OUTPUT_FORMS} "
                                       f"with <observable> in {', '.join(observables)}", "needs a 'tumour' observable")
            kind, t = ("max", T_END_H) if name == "DEmax" else ("average", float(name[2:]))
            out.append(Output(name, "tumour", kind, t))
            continue
        auc = name.startswith("AUC_")
        body = name[4:] if auc else name
        obs, _, when = body.partition("@")
        if not auc and not when:
            hint = suggest(name, ["DE24", "DE168", "DEmax"] + [f"AUC_{o}" for o in observables]) or \
                suggest(f"{name}@24h", [f"{o}@24h" for o in observables])
            raise SensitivityError(field, name, f"{_OUTPUT_FORMS}, e.g. {', '.join(examples)}",
                                   "is not an output" + hint)
        if obs not in observables:
            close = suggest(obs, observables)
            raise SensitivityError(field, name, f"<observable> one of {', '.join(observables)}",
                                   f"names no observable {obs!r}" + close)
        t = _hours(when) if when else T_END_H
        if t is None or not (t > 0 and math.isfinite(t)):
            raise SensitivityError(field, name, "a time in hours after '@', > 0, e.g. liver@24h or blood@0.5h",
                                   f"has no valid time {when!r}")
        label = f"AUC_{obs}" + (f"@{t:g}h" if when else "") if auc else f"{obs}@{t:g}h"
        out.append(Output(label, obs, "auc" if auc else "at", t))
    return out


def output_grid(outputs: Sequence[Output]) -> np.ndarray:
    """The delivery grid (:func:`nanopk.delivery.delivery_grid`) with every output time
    on it, up to the last time an output needs."""
    t_end = max(o.t_h for o in outputs)
    grid = np.concatenate([delivery_grid(T_END_H), [o.t_h for o in outputs]])
    if t_end > T_END_H:
        grid = np.concatenate([grid, np.arange(T_END_H, t_end, 0.5)])
    grid = np.unique(grid)
    return grid[grid <= t_end]


def evaluate_outputs(outputs: Sequence[Output], t: np.ndarray, obs: np.ndarray, observable_names: Sequence[str]) -> np.ndarray:
    """Output values from observables ``obs`` (``(…, len(t), n_observables)``): shape ``(…, len(outputs))``."""
    obs = np.asarray(obs, dtype=float)
    index = {n: i for i, n in enumerate(observable_names)}
    cols = []
    for o in outputs:
        series = obs[..., index[o.observable]]
        if o.kind == "max":
            keep = t <= o.t_h * (1 + 1e-12)
            cols.append(series[..., keep].max(axis=-1))
        else:
            cols.append(series @ o.weights(t))
    return np.stack(cols, axis=-1)


# --------------------------------------------------------------------------- parameters
def _check_parameters(model, parameters, field="parameters") -> list[str]:
    names = model.parameter_names
    out = []
    for p in parameters:
        if p not in names:
            raise SensitivityError(field, p, "a parameter of model " + repr(model.name) + " (see `nanopk simulate` or "
                                   "model.parameter_names)", "is not a parameter" + suggest(p, names))
        if p in REGIMEN_PARAMETERS:
            raise SensitivityError(field, p, "a parameter of the body or the particle",
                                   "is the dosing regimen (vary the dose with `nanopk scan --dose`)")
        out.append(p)
    if len(set(out)) != len(out):
        dup = sorted({p for p in out if out.count(p) > 1})
        raise SensitivityError(field, ",".join(dup), "each parameter once", "names a parameter twice")
    return out


def _free_parameters(model) -> list[str]:
    """Every parameter that can vary: not the regimen, and not a constant (equal bounds)."""
    return [n for n, p in model.parameters.items() if n not in REGIMEN_PARAMETERS and p.bounds[0] < p.bounds[1]]


def parameter_ranges(model, parameters: Sequence[str], ranges: Mapping | str | float | None = None,
                     values: Mapping[str, float] | None = None) -> dict[str, tuple[float, float]]:
    """``{name: (low, high)}`` for the global methods.

    ``ranges`` is ``None`` or ``"bounds"`` (each parameter's bounds), a number ``F > 1``
    (``value/F`` to ``value·F``, clipped to the bounds), or a dict ``{name: (low, high)}``
    for some parameters (the others as ``None``: their bounds).

    Raises
    ------
    SensitivityError
        For a range that is not ``low < high`` inside the parameter's bounds, an
        unbounded one, a factor ≤ 1, or a range for a parameter not analysed.
    """
    values = dict(values or {})
    given: Mapping = {}
    factor = None
    if isinstance(ranges, Mapping):
        given = ranges
        extra = [n for n in given if n not in parameters]
        if extra:
            raise SensitivityError("ranges", extra[0], f"a range for one of the analysed parameters ({', '.join(parameters)})",
                                   "is not among the parameters analysed" + suggest(extra[0], parameters))
    elif isinstance(ranges, (int, float)) and not isinstance(ranges, bool):
        factor = float(ranges)
        if not (factor > 1 and math.isfinite(factor)):
            raise SensitivityError("factor", ranges, "a number > 1 (2: from value/2 to value·2)", "is not a factor > 1")
    elif ranges not in (None, "bounds"):
        raise SensitivityError("ranges", ranges, "'bounds', a factor > 1, or {name: (low, high)}")
    out = {}
    for name in parameters:
        par = model.parameters[name]
        lo_b, hi_b = par.bounds
        value = float(values.get(name, par.value))
        if name in given:
            try:
                lo, hi = (float(v) for v in given[name])
            except (TypeError, ValueError):
                raise SensitivityError(f"ranges[{name!r}]", given[name], "two numbers (low, high)") from None
            field = f"ranges[{name!r}]"
        elif factor is not None:
            if value <= 0:
                raise SensitivityError(f"factor for {name!r}", factor, f"a range given for {name!r} (its value is {value:g}: "
                                       "a factor around 0 is no range)", "cannot scale a parameter whose value is ≤ 0")
            lo, hi = max(value / factor, lo_b), min(value * factor, hi_b)
            field = f"factor for {name!r}"
        else:
            lo, hi = lo_b, hi_b
            field = f"bounds of {name!r}"
        if not (math.isfinite(lo) and math.isfinite(hi)):
            raise SensitivityError(field, (lo, hi), f"a finite range; give ranges={{{name!r}: (low, high)}} "
                                   f"(--range {name}=LOW:HIGH) or a factor", "is unbounded")
        if not (lo < hi and lo >= lo_b - 1e-12 * abs(lo_b) and hi <= hi_b + 1e-12 * abs(hi_b)):
            raise SensitivityError(field, (lo, hi), f"low < high inside the bounds [{lo_b:g}, {hi_b:g}] {par.unit}",
                                   "is not a range")
        out[name] = (lo, hi)
    return out


# --------------------------------------------------------------------------- local
def _observation_derivatives(compiled):
    """∂h/∂x, ∂h/∂p and ∂x(0)/∂p, lambdified once per compiled model.

    The cache entry (and its layout) is shared with the fits' ``SensitivityJacobian``
    (:mod:`nanopk.fit.objective`), so a model used by both derives them once.
    """
    cached = compiled.__dict__.get("_observation_derivatives")
    if cached is None:
        import sympy as sp

        system = compiled.system
        h = sp.Matrix(system.observables)
        args = (system.t, system.y, system.p)
        cached = (
            sp.lambdify(args, h.jacobian(system.y), modules="numpy", cse=True),
            sp.lambdify(args, h.jacobian(system.p), modules="numpy", cse=True),
            sp.lambdify((system.p,), sp.Matrix(system.initial).jacobian(system.p), modules="numpy"),
        )
        compiled.__dict__["_observation_derivatives"] = cached
    return cached


def _bolus_at_zero(model, dose, p) -> float:
    regimen = Dosing.coerce(dose, model, p)
    if regimen.infusions or any(t != 0 for t, _ in regimen.boluses):
        raise SensitivityError("dose", dose, "one IV bolus at t = 0 (a number in µg or a string such as '5 mg/kg')",
                               "is not a single bolus at t = 0, which local sensitivities need")
    return float(regimen.total_ug)


def _forward(model, compiled, outputs, grid, names, params, dose, rtol, atol, max_steps):
    """Output values and ∂y/∂p (len(outputs) × len(names)) from forward sensitivities."""
    from .parts import DEPOT

    dh_dy, dh_dp, dy0_dp = _observation_derivatives(compiled)
    pnames = list(compiled.system.parameter_names)
    indices = [pnames.index(n) for n in names]
    p = model.parameter_vector(params)
    dose_ug = _bolus_at_zero(model, dose, p)
    p[pnames.index("dose")] = dose_ug
    y0 = compiled.initial_state(p)
    y0[model.state_names.index(DEPOT)] = 0.0
    y0[model.state_names.index(model.dose_target)] += dose_ug
    s0 = np.asarray(dy0_dp(p), dtype=float)[:, indices]
    atol_vec = np.array([atol * dose_ug if s.is_mass else atol for s in model.states])
    later = grid[grid > 0]
    res = compiled.solve_sensitivities(0.0, y0, s0, p, later, rtol, atol_vec, max_steps, indices)
    if not res.success and res.t_reached == 0.0:
        # ∂f/∂p can be 0·∞ at t = 0 alone: a Hill exponent n of t^n or of an amount that
        # is still 0 (∂(x^n)/∂n = x^n ln x).  Start the sensitivities a moment later: the
        # states from a plain solve, s(ε) = s0 + O(ε), far below the solver tolerance.
        start = compiled.solve(0.0, y0, p, np.array([_EPSILON_H]), rtol, atol_vec, max_steps)
        if start.success:
            _LOG.info("∂f/∂p is undefined at t = 0 for model %s; the forward sensitivities start at t = %g h",
                      model.name, _EPSILON_H)
            res = compiled.solve_sensitivities(_EPSILON_H, start.y[-1], s0, p, later, rtol, atol_vec, max_steps, indices)
    if not res.success:
        from .errors import SolverError

        raise SolverError(f"forward sensitivity solve of model {model.name!r} failed at t = {res.t_reached:g} h: "
                          f"{res.message}; try other parameter values or method='fd'", res.t_reached)
    Y = np.vstack([y0[None, :], res.y]) if grid[0] == 0 else res.y
    S = np.concatenate([s0[None], res.s]) if grid[0] == 0 else res.s
    obs = compiled.observe(grid, Y, p)
    obs_index = {n: i for i, n in enumerate(compiled.observable_names)}
    rows = sorted({obs_index[o.observable] for o in outputs})
    dobs = np.empty((grid.size, len(rows), len(indices)))  # ∂h/∂p along the grid, wanted observables only
    # Observables not asked for may be 0/0 at t = 0 (a coverage ratio of an empty pool):
    # their rows are dropped; the rows used must be finite.
    with np.errstate(all="ignore"):
        for k, t in enumerate(grid):
            y_t = list(Y[k])
            a = np.asarray(dh_dy(t, y_t, p), dtype=float)[rows]
            b = np.asarray(dh_dp(t, y_t, p), dtype=float)[np.ix_(rows, indices)]
            dobs[k] = a @ S[k] + b
    if not np.isfinite(dobs).all():
        k = int(np.nonzero(~np.isfinite(dobs).all(axis=(1, 2)))[0][0])
        raise NanopkError(f"the derivatives of the observables of model {model.name!r} are not finite at t = {grid[k]:g} h; "
                          "choose outputs at other times or another parameter set")
    values, derivs = [], []
    for o in outputs:
        j = obs_index[o.observable]
        w = o.weights(grid, obs[:, j])
        values.append(float(w @ obs[:, j]))
        derivs.append(w @ dobs[:, rows.index(j), :])
    return np.array(values), np.array(derivs), p[indices]


def _finite_differences(model, outputs, grid, names, params, dose, step, rtol, atol, workers):
    """Central differences of y in ln p (one-sided at a bound): ``∂y/∂ln p``, NaN where p = 0,
    and which parameters had a one-sided difference."""
    base = {**dict(params or {})}
    sets, steps, one_sided = [], [], []
    for name in names:
        par = model.parameters[name]
        v = float(base.get(name, par.value))
        if v == 0:
            steps.append(None)
            one_sided.append(False)
            continue
        lo, hi = par.bounds
        up, down = v * math.exp(step), v * math.exp(-step)
        if not (lo <= up <= hi):
            up = v
        if not (lo <= down <= hi):
            down = v
        one_sided.append(up == v or down == v)
        steps.append(math.log(up / down) if v > 0 else math.log(down / up))
        sets += [{**base, name: up}, {**base, name: down}]
    obs = simulate_many(model, grid, sets, dose=dose, rtol=rtol, atol=atol, workers=workers) if sets else None
    ys = evaluate_outputs(outputs, grid, obs, model.observable_names) if sets else None
    out = np.full((len(outputs), len(names)), np.nan)
    k = 0
    for j, h in enumerate(steps):
        if h is None:
            continue
        out[:, j] = (ys[2 * k] - ys[2 * k + 1]) / h if h else np.nan
        k += 1
    return out, np.array(one_sided, dtype=bool)


def local_sensitivity(model, outputs, parameters: Sequence[str] | None = None, params: Mapping[str, float] | None = None,
                      dose=None, check: bool = True, fd_step: float = 1e-3, rtol: float = 1e-8, atol: float = 1e-12,
                      backend: str = "auto", workers: int | None = None, max_steps: int = 500_000) -> pd.DataFrame:
    """Normalised local sensitivity coefficients ``S_p = ∂ ln y/∂ ln p`` of each output.

    .. math:: S_p = \\frac{p}{y}\\frac{\\partial y}{\\partial p}, \\qquad
              \\frac{\\partial y}{\\partial p} = \\sum_i w_i \\Big(\\frac{\\partial h}{\\partial x} s(t_i)
              + \\frac{\\partial h}{\\partial p}\\Big),\\quad \\dot s = J s + \\frac{\\partial f}{\\partial p}

    with the forward sensitivities ``s = ∂x/∂p`` integrated by CVODE beside the states
    (exact up to the solver tolerance), and, with ``check``, central finite differences
    ``(y(p·e^h) − y(p·e^−h)) / (2h·y)`` (h = ``fd_step``) beside them.

    Parameters
    ----------
    model : Model
    outputs : str or list of str
        e.g. ``"DE24,liver@24h,AUC_blood"`` (module docstring).
    parameters : list of str, optional
        Default: every parameter that can vary (not ``dose``/``infusion_rate``, not a
        constant with equal bounds).  The first use of a set of parameters compiles a
        sensitivity library (cached on disk; ~20 s for all 137 of ``mouse_tumour_full``).
    params : dict, optional
        Parameter values to take the derivatives at (default: the model's).
    dose : optional
        One IV bolus at t = 0 (a number in µg or ``"5 mg/kg"``); default the model's.
    check : bool
        Also compute the finite-difference coefficients (2 simulations per parameter, on all cores).

    Returns
    -------
    pandas.DataFrame
        One row per output and parameter, sorted by output then ``|coefficient|``:
        ``output``, ``parameter``, ``rank`` (1 = largest |S_p|), ``output_value``,
        ``parameter_value``, ``derivative`` (∂y/∂p, output units per parameter unit),
        ``coefficient`` (S_p), ``coefficient_fd`` and ``fd_difference`` (NaN without
        ``check``, and where p = 0, for which S_p = 0 and ``derivative`` is NaN: such
        parameters stay out of the sensitivity solve), ``fd_one_sided`` (the parameter
        sits at a bound, so its difference is one-sided, accurate to O(h) only).

    Raises
    ------
    SensitivityError
        Unknown output or parameter, a regimen parameter, or a dose that is not one bolus.
    NanopkError
        The backend has no forward sensitivities (use ``backend="cvode"``).

    References
    ----------
    Hindmarsh AC et al. SUNDIALS. ACM Trans Math Softw 2005;31:363 (CVODES forward sensitivities).
    """
    outs = parse_outputs(outputs, model.observable_names)
    names = _check_parameters(model, parameters) if parameters is not None else _free_parameters(model)
    if params:
        model.check_parameter_values(params)
    compiled = compile_model(model, backend)
    if not hasattr(compiled, "solve_sensitivities"):
        raise NanopkError(f"local sensitivities need forward sensitivities, which the {compiled.backend!r} backend does not "
                          "provide; use backend='cvode' (needs a C compiler and scikit-sundae)")
    grid = output_grid(outs)
    t0 = time.perf_counter()
    current = model.parameter_vector(params)
    index = model._parameter_index()
    # S_p = 0 at p = 0 whatever ∂y/∂p is; and ∂f/∂p can be undefined there (p^a, log p),
    # which would stop the whole sensitivity solve: such parameters stay out of it.
    solved = [n for n in names if current[index[n]] != 0]
    values, solved_derivs, _ = _forward(model, compiled, outs, grid, solved, params, dose, rtol, atol, max_steps)
    derivs = np.full((len(outs), len(names)), np.nan)
    derivs[:, [names.index(n) for n in solved]] = solved_derivs
    pvals = np.array([current[index[n]] for n in names])
    _LOG.info("forward sensitivities of %d output(s) to %d parameter(s) of %s in %.2f s (%d at 0, S = 0 without a solve)",
              len(outs), len(solved), model.name, time.perf_counter() - t0, len(names) - len(solved))
    with np.errstate(divide="ignore", invalid="ignore"):
        coeff = derivs * pvals[None, :] / values[:, None]
    coeff[:, pvals == 0] = 0.0
    fd = np.full_like(coeff, np.nan)
    one_sided = np.zeros(len(names), dtype=bool)
    if check:
        t0 = time.perf_counter()
        fd_dlnp, one_sided = _finite_differences(model, outs, grid, names, params, dose, fd_step, rtol, atol, workers)
        with np.errstate(divide="ignore", invalid="ignore"):
            fd = fd_dlnp / values[:, None]
        worst = np.nanmax(np.abs(fd - coeff)) if np.isfinite(fd - coeff).any() else float("nan")
        _LOG.info("finite-difference check (%d simulations) in %.2f s: largest |S_fd - S| = %.2g",
                  2 * int(np.sum(pvals != 0)), time.perf_counter() - t0, worst)
    rows = []
    for i, o in enumerate(outs):
        for j, n in enumerate(names):
            rows.append({"output": o.name, "parameter": n, "output_value": values[i], "parameter_value": float(pvals[j]),
                         "derivative": float(derivs[i, j]), "coefficient": float(coeff[i, j]),
                         "coefficient_fd": float(fd[i, j]), "fd_difference": float(fd[i, j] - coeff[i, j]),
                         "fd_one_sided": bool(one_sided[j])})
    return _ranked(pd.DataFrame(rows), "coefficient", [o.name for o in outs])


def _ranked(table: pd.DataFrame, key: str, order: Sequence[str]) -> pd.DataFrame:
    """Sort within each output by |key| (largest first) and number the ranks."""
    table = table.assign(_abs=table[key].abs().fillna(-1.0), _o=table["output"].map({n: i for i, n in enumerate(order)}))
    table = table.sort_values(["_o", "_abs"], ascending=[True, False], kind="stable").drop(columns=["_abs", "_o"])
    table.insert(2, "rank", table.groupby("output", sort=False).cumcount() + 1)
    return table.reset_index(drop=True)


# --------------------------------------------------------------------------- global
def _require_salib():
    try:
        import SALib  # noqa: F401
    except ImportError:
        raise ImportError("Morris and Sobol sensitivity need SALib: pip install 'nanopk[sensitivity]'") from None


def _screen(model, outs, params, dose, n: int = DEFAULT_SCREENED) -> list[str]:
    """The ``n`` free parameters with the largest local |S_p| over the outputs."""
    local = local_sensitivity(model, [o.name for o in outs], params=params, dose=dose, check=False)
    score = local.assign(a=local["coefficient"].abs()).groupby("parameter")["a"].max().sort_values(ascending=False)
    chosen = list(score.index[:n])
    _LOG.info("screened by local |S_p|: %s", ", ".join(chosen))
    return chosen


def _problem(model, outs, parameters, ranges, params, dose):
    names = _check_parameters(model, parameters) if parameters is not None else _screen(model, outs, params, dose)
    if len(names) < 2 and parameters is not None:
        raise SensitivityError("parameters", ",".join(names), "at least two parameters", "is too few for a global method")
    bounds = parameter_ranges(model, names, ranges, params)
    return names, {"num_vars": len(names), "names": names, "bounds": [list(bounds[n]) for n in names]}


def _run(model, outs, names, X, params, dose, workers, progress, what):
    """Outputs at each row of ``X`` (n × len(names)), in batches on all cores."""
    grid = output_grid(outs)
    base = dict(params or {})
    sets = [{**base, **dict(zip(names, map(float, row)))} for row in X]
    Y = np.empty((len(sets), len(outs)))
    t0 = time.perf_counter()
    with progress_bar(len(sets), f"{what} ({model.name})", "sim", progress) as bar:
        for a in range(0, len(sets), BATCH):
            chunk = sets[a:a + BATCH]
            obs = simulate_many(model, grid, chunk, dose=dose, rtol=GLOBAL_RTOL, atol=GLOBAL_ATOL, workers=workers,
                                progress=False)  # this loop's bar counts them
            Y[a:a + len(chunk)] = evaluate_outputs(outs, grid, obs, model.observable_names)
            bar.update(len(chunk))
    elapsed = time.perf_counter() - t0
    _LOG.info("%s: %d simulations of %s in %.2f s", what, len(sets), model.name, elapsed)
    return Y, elapsed


def morris(model, outputs, parameters: Sequence[str] | None = None, ranges=None, trajectories: int = 32,
           levels: int = 4, params: Mapping[str, float] | None = None, dose=None, seed: int = 0,
           workers: int | None = None, progress: bool | None = None) -> pd.DataFrame:
    """Morris elementary-effects screening of each output over parameter ranges.

    .. math:: EE_i = \\frac{y(x + Δ e_i) − y(x)}{Δ},\\qquad μ^*_i = E|EE_i|,\\qquad σ_i = SD(EE_i)

    on ``trajectories`` one-at-a-time paths through a ``levels``-level grid of the
    ranges scaled to [0, 1] (so μ* is in output units per whole range):
    ``trajectories × (k + 1)`` simulations.  μ* ranks influence; σ flags
    non-linearity or interaction.

    Parameters
    ----------
    parameters : list of str, optional
        Default: the 8 with the largest local |S_p| (:func:`local_sensitivity`).
    ranges : None, "bounds", float or dict
        See :func:`parameter_ranges` (default: each parameter's bounds).
    params : dict, optional
        Values of the other parameters (and the centre of a ``factor`` range).

    Returns
    -------
    pandas.DataFrame
        ``output``, ``parameter``, ``rank`` (by μ*), ``mu``, ``mu_star``,
        ``mu_star_conf`` (95 % bootstrap half-width), ``sigma``, ``low``, ``high``;
        ``.attrs``: ``n_simulations``, ``seconds``, ``method``.

    References
    ----------
    Morris MD. Technometrics 1991;33:161; Campolongo F et al. Environ Model Softw 2007;22:1509;
    Herman J, Usher W. SALib. J Open Source Softw 2017;2:97.
    """
    _require_salib()
    from SALib.analyze import morris as analyze
    from SALib.sample import morris as sample

    outs = parse_outputs(outputs, model.observable_names)
    if not (isinstance(trajectories, int) and trajectories >= 2):
        raise SensitivityError("trajectories", trajectories, "an integer ≥ 2 (e.g. 32)")
    if not (isinstance(levels, int) and levels >= 2 and levels % 2 == 0):
        raise SensitivityError("levels", levels, "an even integer ≥ 2 (e.g. 4)")
    names, problem = _problem(model, outs, parameters, ranges, params, dose)
    X = sample.sample(problem, trajectories, num_levels=levels, seed=seed)
    Y, elapsed = _run(model, outs, names, X, params, dose, workers, progress, "Morris")
    rows = []
    for i, o in enumerate(outs):
        res = analyze.analyze(problem, X, Y[:, i], num_levels=levels, seed=seed)
        for j, n in enumerate(names):
            rows.append({"output": o.name, "parameter": n, "mu": float(res["mu"][j]), "mu_star": float(res["mu_star"][j]),
                         "mu_star_conf": float(res["mu_star_conf"][j]), "sigma": float(res["sigma"][j]),
                         "low": problem["bounds"][j][0], "high": problem["bounds"][j][1]})
    table = _ranked(pd.DataFrame(rows), "mu_star", [o.name for o in outs])
    table.attrs.update(method="morris", n_simulations=len(X), seconds=elapsed)
    return table


def sobol(model, outputs, parameters: Sequence[str] | None = None, ranges=None, samples: int = 256,
          params: Mapping[str, float] | None = None, dose=None, seed: int = 0, workers: int | None = None,
          progress: bool | None = None) -> pd.DataFrame:
    """First- and total-order Sobol indices of each output over parameter ranges.

    .. math:: S1_i = \\frac{V[E(y\\,|\\,p_i)]}{V(y)},\\qquad ST_i = \\frac{E[V(y\\,|\\,p_{\\sim i})]}{V(y)}

    estimated from a Saltelli design (scrambled Sobol' sequence) of ``samples`` base
    points, ``samples × (k + 2)`` simulations, with the estimators of Saltelli et
    al. 2010 and 95 % bootstrap intervals (SALib).  S1 ≈ ST for an additive output;
    ST − S1 is the share due to interactions.

    Parameters
    ----------
    samples : int
        Base sample size N, a power of 2 (the Sobol' sequence's balance needs it).
    parameters, ranges, params, dose
        As :func:`morris`.

    Returns
    -------
    pandas.DataFrame
        ``output``, ``parameter``, ``rank`` (by ST), ``S1``, ``S1_conf``, ``ST``,
        ``ST_conf`` (95 % half-widths), ``low``, ``high``; ``.attrs``:
        ``n_simulations``, ``seconds``, ``method``.

    References
    ----------
    Saltelli A et al. Comput Phys Commun 2010;181:259; Herman J, Usher W. SALib. J Open
    Source Softw 2017;2:97.
    """
    _require_salib()
    outs = parse_outputs(outputs, model.observable_names)
    if not (isinstance(samples, int) and samples >= 2 and samples & (samples - 1) == 0):
        near = 2 ** max(1, round(math.log2(samples))) if isinstance(samples, (int, float)) and samples > 0 else 256
        raise SensitivityError("samples", samples, f"a power of 2 ≥ 2, e.g. {near}", "is not a power of 2")
    names, problem = _problem(model, outs, parameters, ranges, params, dose)
    X = sobol_design(problem, samples, seed)
    Y, elapsed = _run(model, outs, names, X, params, dose, workers, progress, "Sobol")
    table = sobol_table(problem, Y, [o.name for o in outs], seed)
    table.attrs.update(method="sobol", n_simulations=len(X), seconds=elapsed)
    return table


def sobol_design(problem: Mapping, samples: int, seed: int = 0) -> np.ndarray:
    """The Saltelli design :func:`sobol` simulates: ``samples × (k + 2)`` rows over ``problem``'s bounds.

    ``problem`` is SALib's dict (``num_vars``, ``names``, ``bounds``).  With
    :func:`sobol_table`, the two halves of :func:`sobol` for any function of the inputs
    (the tests check them on the Ishigami function).
    """
    _require_salib()
    from SALib.sample import sobol as sample

    return sample.sample(dict(problem), samples, calc_second_order=False, seed=seed)


def sobol_table(problem: Mapping, Y: np.ndarray, outputs: Sequence[str], seed: int = 0) -> pd.DataFrame:
    """First- and total-order indices with 95 % half-widths from the outputs ``Y`` (rows of the
    :func:`sobol_design`, one column per output name) — :func:`sobol`'s table."""
    _require_salib()
    from SALib.analyze import sobol as analyze

    Y = np.asarray(Y, dtype=float).reshape(len(Y), -1)
    names = list(problem["names"])
    rows = []
    for i, o in enumerate(outputs):
        y = Y[:, i]
        if np.ptp(y) == 0:  # no variance: every index is 0, not the 0/0 SALib would give
            res = {k: np.zeros(len(names)) for k in ("S1", "S1_conf", "ST", "ST_conf")}
            _LOG.warning("output %s does not vary over the ranges: its Sobol indices are 0", o)
        else:
            res = analyze.analyze(dict(problem), y, calc_second_order=False, seed=seed)
        for j, n in enumerate(names):
            rows.append({"output": o, "parameter": n, "S1": float(res["S1"][j]), "S1_conf": float(res["S1_conf"][j]),
                         "ST": float(res["ST"][j]), "ST_conf": float(res["ST_conf"][j]),
                         "low": problem["bounds"][j][0], "high": problem["bounds"][j][1]})
    return _ranked(pd.DataFrame(rows), "ST", list(outputs))


def sensitivity(model, outputs, method: str = "local", **options) -> pd.DataFrame:
    """:func:`local_sensitivity`, :func:`morris` or :func:`sobol` by name (``method``)."""
    functions = {"local": local_sensitivity, "morris": morris, "sobol": sobol}
    if method not in functions:
        raise SensitivityError("method", method, " or ".join(repr(m) for m in METHODS), "is not a method" + suggest(method, METHODS))
    return functions[method](model, outputs, **options)
