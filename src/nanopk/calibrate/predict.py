"""A priori prediction from the particle alone, with the calibrated constants and a population interval.

:func:`predict` loads ``mouse_tumour_full`` with the particle, sets the calibrated
constants (``calibrated.json``, :mod:`nanopk.calibrate.store`), the dose and the body
weight, and returns organ %ID at the requested times and DE24 / DE168 / DEmax (as
:func:`nanopk.delivery.pk_metrics` defines them).  The population interval is the
spread a *new study* of this particle would show, log-normal on log10 %ID with

    value = 10^μ · f_k(θ̂),   s_k² = τ² + σ² + SE(μ)² + s_θ,k²,   interval = value × 10^(± z·s_k)

where f_k is the model's output k and μ the calibration's mean study offset
(``offset_log10``): the studies report 10^μ of what the mass-balanced model holds, so a
new study's reported %ID is predicted at that level (records without μ: μ = 0);

(upper end capped at 100 %ID: an organ cannot hold more than the dose), where τ and σ
are the calibration's between-study and residual SDs and s_θ,k is the spread that the
uncertainty of the calibrated constants themselves gives output k: the SD of log10 of
output k over ``parameter_draws`` simulations with the constants drawn log-normally
around their estimates (with the record's ``covariance_log10`` when it has one, else
independently from each constant's ``se_log10``, which ignores their correlation).  A
constant the calibration did not identify (no finite SE) is held at its estimate and
listed in ``held_constants``: its uncertainty is not in the interval.
"""
from __future__ import annotations

import math
import re
from statistics import NormalDist

import numpy as np

from ..errors import NanopkError, suggest
from ..particle import Particle

__all__ = ["parse_particle", "parse_dose", "predict", "constant_draws", "interval_note", "PARTICLE_ALIASES", "MATERIAL_ALIASES"]

#: Short field names accepted by ``--particle`` (``core_nm=50,peg_mw=5000``).
PARTICLE_ALIASES = {"core_nm": "core_diameter_nm", "core": "core_diameter_nm", "size_nm": "core_diameter_nm",
                    "d_nm": "core_diameter_nm", "hydrodynamic_nm": "hydrodynamic_diameter_nm",
                    "dh_nm": "hydrodynamic_diameter_nm", "peg_mw": "coating_mw_da", "mw": "coating_mw_da",
                    "coating_mw": "coating_mw_da", "zeta": "zeta_mV"}
#: Material names accepted beside the Particle's symbols.
MATERIAL_ALIASES = {"gold": "Au", "silver": "Ag", "silica": "SiO2", "titania": "TiO2", "iron_oxide": "Fe3O4",
                    "iron oxide": "Fe3O4", "magnetite": "Fe3O4", "zinc_oxide": "ZnO", "liposome": "lipid",
                    "polymeric": "polymer"}
#: Species the calibration covers.
SPECIES = ("mouse",)
MODEL = "mouse_tumour_full"


def parse_particle(text: str) -> Particle:
    """``"material=gold,core_nm=50,coating=PEG,peg_mw=5000"`` → :class:`~nanopk.Particle`.

    Accepts the Particle's own field names and the short forms of
    :data:`PARTICLE_ALIASES` and :data:`MATERIAL_ALIASES`.

    Raises
    ------
    NanopkError
        Naming the field that is wrong and the valid names or values.
    """
    if not isinstance(text, str) or not text.strip():
        raise NanopkError("--particle is empty; give e.g. material=gold,core_nm=50,coating=PEG,peg_mw=5000")
    fields: dict = {}
    known = set(Particle.__dataclass_fields__) if hasattr(Particle, "__dataclass_fields__") else set()
    for item in (s.strip() for s in text.split(",") if s.strip()):
        if "=" not in item:
            raise NanopkError(f"--particle field {item!r} must be NAME=VALUE (e.g. core_nm=50)")
        key, value = (s.strip() for s in item.split("=", 1))
        key = PARTICLE_ALIASES.get(key.lower(), key)
        if known and key not in known:
            raise NanopkError(f"--particle field {key!r} is unknown{suggest(key, sorted(known | set(PARTICLE_ALIASES)))}; "
                              f"valid: {', '.join(sorted(known))} (or {', '.join(sorted(PARTICLE_ALIASES))})")
        if key == "material":
            value = MATERIAL_ALIASES.get(value.lower(), value)
        if key in ("core_diameter_nm", "hydrodynamic_diameter_nm", "coating_mw_da", "zeta_mV"):
            try:
                value = float(value)
            except ValueError:
                raise NanopkError(f"--particle field {key}: {value!r} is not a number") from None
        fields[key] = value
    try:
        return Particle(**fields)
    except NanopkError as exc:
        problems = getattr(exc, "problems", None) or [str(exc)]
        raise NanopkError(f"--particle: {'; '.join(problems)}") from None


def parse_dose(text: str, body_weight_g: float) -> float:
    """``"1mg/kg"``, ``"1 mg/kg"`` or ``"20ug"`` → µg.

    Raises
    ------
    NanopkError
        If the value or unit cannot be read as a mass or a mass per body mass.
    """
    from ..data.convert import dose_in_ug

    m = re.fullmatch(r"\s*([0-9.eE+-]+)\s*([^\s].*)\s*", str(text))
    if not m:
        raise NanopkError(f"--dose {text!r}: give a number and a unit, e.g. 1mg/kg or 20ug")
    try:
        value = float(m.group(1))
    except ValueError:
        raise NanopkError(f"--dose {text!r}: {m.group(1)!r} is not a number; e.g. 1mg/kg or 20ug") from None
    if not value > 0:
        raise NanopkError(f"--dose {text!r}: the dose must be > 0")
    ug, reason = dose_in_ug(value, m.group(2), body_weight_g)
    if ug is None:
        raise NanopkError(f"--dose {text!r}: {reason}; expected a mass (ug, mg) or a mass per body mass (mg/kg)")
    return ug


def predict(particle: Particle | str | dict, dose="1mg/kg", times=(1.0, 4.0, 24.0, 168.0), species: str = "mouse",
            body_weight_g: float = 20.0, calibration=None, level: float = 0.9, organs=None,
            parameter_draws: int = 100, seed: int = 0) -> dict:
    """Organ %ID at ``times`` and DE24/DE168/DEmax for ``particle``, with population intervals.

    Parameters
    ----------
    particle : Particle, str or dict
        The particle (a string as :func:`parse_particle` reads it).
    dose : str or float
        ``"1mg/kg"``, ``"20ug"``, or a number of µg.
    times : sequence of float
        Hours after the IV bolus, > 0.
    species : str
        ``"mouse"`` (the only species calibrated).
    body_weight_g : float
    calibration : dict or path, optional
        A calibration record (default: the shipped ``calibrated.json``).
    level : float
        Coverage of the population interval, in (0, 1).
    parameter_draws : int
        Draws of the calibrated constants for their share of the interval (0: leave it
        out, the interval is the between-study spread alone).
    seed : int
        Seed of those draws (the same seed gives the same interval).

    Returns
    -------
    dict
        ``particle``, ``dose_ug``, ``constants``, ``offset_log10`` (μ), ``sd_log10``
        (√(τ² + σ² + SE(μ)²), the between-study part), ``level``, ``organs`` (``{organ: [{"time_h", "value",
        "low", "high", "sd_log10", "sd_parameter_log10"}]}``), ``delivery``
        (``{DE24|DE168|DEmax: {...the same keys}}``), ``parameter_draws`` (used),
        ``failed_draws`` (draws whose simulation failed, left out and counted),
        ``parameter_uncertainty`` (how the constants were drawn) and ``held_constants``.

    Raises
    ------
    NanopkError
        For an unknown species, a bad particle, dose, time, body weight or level (each names the field).
    """
    from ..delivery import pk_metrics
    from ..simulate import simulate
    from ..spec import load_model
    from .store import calibrated_values, load_calibration

    if species not in SPECIES:
        raise NanopkError(f"--species {species!r}: the calibration covers {', '.join(SPECIES)} only"
                          f"{suggest(str(species), SPECIES)}")
    if not (isinstance(body_weight_g, (int, float)) and math.isfinite(body_weight_g) and body_weight_g > 0):
        raise NanopkError(f"--body-weight {body_weight_g!r}: give a body weight in g > 0 (e.g. 20)")
    if not (isinstance(level, float) and 0 < level < 1):
        raise NanopkError(f"--level {level!r}: give the interval's coverage between 0 and 1 (e.g. 0.9)")
    times = np.asarray(times, float)
    if times.size == 0 or not np.all(np.isfinite(times) & (times > 0)):
        shown = ",".join(f"{t:g}" for t in times)
        raise NanopkError(f"--times {shown!r}: give hours after the dose, each > 0 (e.g. 1,4,24,168)")
    if isinstance(particle, str):
        particle = parse_particle(particle)
    elif isinstance(particle, dict):
        particle = Particle(**particle)
    if not (isinstance(parameter_draws, int) and parameter_draws >= 0):
        raise NanopkError(f"parameter_draws {parameter_draws!r}: give a whole number ≥ 0 (e.g. 100; 0 leaves the "
                          "constants' uncertainty out)")
    dose_ug = float(dose) if isinstance(dose, (int, float)) else parse_dose(dose, body_weight_g)
    record = calibration if isinstance(calibration, dict) else load_calibration(calibration)
    constants = calibrated_values(record)
    offset = float(record.get("offset_log10") or 0.0)
    sd = math.hypot(float(record["tau_log10"]), float(record["sigma_log10"]), float(record.get("offset_se_log10") or 0.0))
    scale = reported_scale(record)  # as a new study would report it (module docstring)
    z = NormalDist().inv_cdf(0.5 + level / 2)
    model = load_model(record.get("model", MODEL), particle=particle)
    grid = np.unique(times)
    if organs is not None:  # asked for by name: an unknown one is an error, not a silent omission
        unknown = [o for o in organs if o not in model.observable_names]
        if unknown:
            raise NanopkError("organs " + ", ".join(f"{o!r}{suggest(str(o), model.observable_names)}" for o in unknown)
                              + f": not observables of {model.name}; valid: {', '.join(model.observable_names)}")
    organs = [o for o in (organs or ("blood", "liver", "spleen", "kidney", "lung", "tumour", "brain", "muscle", "urine",
                                     "faeces")) if o in model.observable_names]
    base = {"BW": body_weight_g / 1000.0, "dose": dose_ug}

    def outputs(values: dict) -> dict:
        params = {**values, **base}
        sim = simulate(model, grid, params=params)
        metrics = pk_metrics(model, params, blood_states=False)
        out = {(organ, float(t)): scale * float(v) for organ in organs for t, v in zip(sim.index, sim[organ])}
        out.update({(k, None): scale * float(metrics[k]) for k in ("DE24", "DE168", "DEmax") if metrics.get(k) is not None})
        return out

    central = outputs(constants)
    draws, how, held = constant_draws(record, parameter_draws, seed,
                                      bounds={k: model.parameters[k].bounds for k in constants if k in model.parameters})
    logs, failed = [], 0
    for values in draws:
        try:
            got = outputs(values)
        except NanopkError:  # a solver failure at an extreme draw: counted, not hidden
            failed += 1
            continue
        logs.append({key: math.log10(v) for key, v in got.items() if v > 0})

    def interval(key) -> dict:
        value = central[key]
        spread = [d[key] for d in logs if key in d]
        s_theta = float(np.std(spread, ddof=1)) if len(spread) >= 2 else 0.0
        s_total = math.hypot(sd, s_theta)
        factor = 10 ** (z * s_total)
        return {"value": value, "low": value / factor, "high": min(value * factor, 100.0), "sd_log10": s_total,
                "sd_parameter_log10": s_theta}

    out_organs = {organ: [{"time_h": float(t), **interval((organ, float(t)))} for t in grid] for organ in organs}
    delivery = {k: interval((k, None)) for k in ("DE24", "DE168", "DEmax") if (k, None) in central}
    return {"particle": particle.to_dict(), "model": model.name, "structure_hash": model.structure_hash, "species": species, "body_weight_g": body_weight_g,
            "dose_ug": dose_ug, "constants": constants, "offset_log10": offset, "sd_log10": sd, "level": level,
            "organs": out_organs,
            "delivery": delivery, "parameter_draws": len(draws), "failed_draws": failed, "parameter_uncertainty": how,
            "held_constants": held, "calibration": {k: record.get(k) for k in ("date", "database", "benchmark", "n_studies",
                                                                             "n_points", "tau_log10", "sigma_log10")}}


def reported_scale(record: dict | None = None) -> float:
    """10^μ: the factor from the mass-balanced model's %ID to what a new study reports (1 without μ).

    :func:`predict` applies it to every organ value and to DE24/DE168/DEmax; anything else
    that shows predict's numbers from a direct simulation (the web page's scans) must too."""
    from .store import load_calibration

    record = record if record is not None else load_calibration()
    return 10 ** float(record.get("offset_log10") or 0.0)


def interval_note(out) -> list[str]:
    """What a prediction's population interval is made of, as ``nanopk predict`` and the web page print it."""
    pct = int(round(100 * out["level"]))
    between = 10 ** (out["sd_log10"] * NormalDist().inv_cdf(0.5 + out["level"] / 2))
    lines = []
    if out.get("offset_log10"):
        lines.append(f"values as a study reports them: the model's %ID × {10 ** out['offset_log10']:.3g} (the calibration "
                     f"studies' mean offset μ = {out['offset_log10']:+.3g} log10: their measured organs hold less than the "
                     "mass-balanced model; CALIBRATION.md)")
    lines.append(f"{pct} % population interval (log-normal; upper end capped at 100 %ID): a new study's spread, × / ÷ "
                 f"{between:.3g} (between-study τ and residual σ of the calibration, and the uncertainty of μ)")
    if out.get("parameter_draws"):
        de = out["delivery"].get("DE24") or next(iter(out["delivery"].values()), None)
        widened = f"; it widens DE24 to × / ÷ {de['high'] / de['value']:.3g}" if de and de["high"] < 100.0 else ""
        lines.append(f"combined with the calibrated constants' uncertainty: {out['parameter_draws']} draws, "
                     f"{out['parameter_uncertainty']}{widened}")
        if out.get("failed_draws"):
            lines.append(f"{out['failed_draws']} of the draws failed to simulate and are left out of the interval")
        if out.get("held_constants"):
            lines.append(f"held at their estimate (not identified by the calibration, their uncertainty not included): "
                         f"{', '.join(out['held_constants'])}")
    else:
        lines.append("the calibrated constants' own uncertainty is not included (parameter_draws=0)")
    return lines


def constant_draws(record: dict, n: int, seed: int = 0, bounds: dict | None = None) -> tuple[list[dict], str, list[str]]:
    """``n`` draws of a calibration's constants, log-normal around their estimates.

        log10 θ ~ N(log10 θ̂, Σ),  truncated to ``bounds``

    Σ is the record's ``covariance_log10`` (``{"names": [...], "matrix": [[...]]}``) when
    it has one, else diagonal with each identified constant's ``se_log10``.  Constants
    without a finite SE are held at their estimate.  ``bounds`` (``{constant: (low,
    high)}``, the model's) truncate the distribution by rejection: a constant cannot leave
    the range the model admits (e.g. ``n_recognition`` ≤ 6), and dropping the draws that
    do would bias the spread instead.

    Raises
    ------
    NanopkError
        If fewer than 1 in 1000 draws fall inside ``bounds`` (the estimate is far outside them).

    Returns
    -------
    draws : list of dict
        ``{constant: value}`` per draw (all constants, held ones at their estimate).
    how : str
        How the draws were made (for the report).
    held : list of str
        The constants held at their estimate.
    """
    values = {k: float(v["value"]) for k, v in record["constants"].items()}
    se = {k: v.get("se_log10") for k, v in record["constants"].items()}
    cov = record.get("covariance_log10")
    if cov:
        names = [k for k in cov["names"] if k in values]
        idx = [cov["names"].index(k) for k in names]
        sigma = np.asarray(cov["matrix"], float)[np.ix_(idx, idx)]
        how = f"log-normal with the calibration's covariance of {len(names)} constants"
    else:
        names = [k for k, s in se.items() if s is not None and math.isfinite(s) and s > 0 and
                 record["constants"][k].get("identified", True)]
        sigma = np.diag([float(se[k]) ** 2 for k in names])
        how = (f"log-normal, independent, with the SEs of {len(names)} constants "
               "(the calibration record stores no covariance)")
    held = sorted(set(values) - set(names))
    if n == 0 or not names:
        return [], "not propagated" if n == 0 else how, held
    rng = np.random.default_rng(seed)
    mean = np.log10([values[k] for k in names])
    lo = np.log10([max((bounds or {}).get(k, (0.0, math.inf))[0], 1e-300) for k in names])
    hi = np.log10([(bounds or {}).get(k, (0.0, math.inf))[1] for k in names])
    kept, tried = [], 0
    while len(kept) < n:
        x = rng.multivariate_normal(mean, sigma, size=n, method="eigh")
        tried += n
        kept.extend(row for row in x if np.all((row >= lo) & (row <= hi)))
        if len(kept) < n and tried >= 1000 * n:
            raise NanopkError(f"only {len(kept)} of {tried} draws of the calibrated constants lie inside the model's bounds; "
                              "check the calibration record's values against the model's parameter bounds")
    if bounds:
        how += ", truncated to the model's bounds"
    return [{**values, **dict(zip(names, map(float, 10 ** row)))} for row in kept[:n]], how, held
