"""A priori prediction from the particle alone, with the calibrated constants and a population interval.

:func:`predict` loads ``mouse_tumour_full`` with the particle, sets the calibrated
constants (``calibrated.json``, :mod:`nanopk.calibrate.store`), the dose and the body
weight, and returns organ %ID at the requested times and DE24 / DE168 / DEmax (as
:func:`nanopk.delivery.pk_metrics` defines them).  The population interval is the
spread a *new study* of this particle would show: log-normal with the calibration's
between-study SD τ and residual SD σ (log10 %ID), ``value × 10^(± z·√(τ² + σ²))``,
its upper end capped at 100 %ID (an organ cannot hold more than the dose).
The uncertainty of the constants themselves (their SE in ``calibrated.json``) is not
propagated; on the calibration's data it is much smaller than τ and σ.
"""
from __future__ import annotations

import math
import re
from statistics import NormalDist

import numpy as np

from ..errors import NanopkError, suggest
from ..particle import Particle

__all__ = ["parse_particle", "parse_dose", "predict", "PARTICLE_ALIASES", "MATERIAL_ALIASES"]

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
            body_weight_g: float = 20.0, calibration=None, level: float = 0.9, organs=None) -> dict:
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

    Returns
    -------
    dict
        ``particle``, ``dose_ug``, ``constants``, ``sd_log10``, ``level``, ``organs``
        (``{organ: [{"time_h", "value", "low", "high"}]}``) and ``delivery``
        (``{DE24|DE168|DEmax: {"value", "low", "high"}}``).

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
    dose_ug = float(dose) if isinstance(dose, (int, float)) else parse_dose(dose, body_weight_g)
    record = calibration if isinstance(calibration, dict) else load_calibration(calibration)
    constants = calibrated_values(record)
    sd = math.hypot(float(record["tau_log10"]), float(record["sigma_log10"]))
    factor = 10 ** (NormalDist().inv_cdf(0.5 + level / 2) * sd)
    model = load_model(record.get("model", MODEL), particle=particle)
    params = {**constants, "BW": body_weight_g / 1000.0, "dose": dose_ug}
    sim = simulate(model, np.unique(times), params=params)
    organs = list(organs or ("blood", "liver", "spleen", "kidney", "lung", "tumour", "brain", "muscle", "urine", "faeces"))
    out_organs = {}
    for organ in organs:
        if organ not in sim.columns:
            continue
        out_organs[organ] = [{"time_h": float(t), "value": float(v), "low": float(v) / factor,
                              "high": min(float(v) * factor, 100.0)}
                             for t, v in zip(sim.index, sim[organ])]
    metrics = pk_metrics(model, params, blood_states=False)
    delivery = {k: {"value": float(metrics[k]), "low": float(metrics[k]) / factor, "high": min(float(metrics[k]) * factor, 100.0)}
                for k in ("DE24", "DE168", "DEmax") if metrics.get(k) is not None}
    return {"particle": particle.to_dict(), "model": model.name, "structure_hash": model.structure_hash, "species": species, "body_weight_g": body_weight_g,
            "dose_ug": dose_ug, "constants": constants, "sd_log10": sd, "level": level, "organs": out_organs,
            "delivery": delivery, "calibration": {k: record.get(k) for k in ("date", "database", "benchmark", "n_studies",
                                                                             "n_points", "tau_log10", "sigma_log10")}}
