"""Population priors: the between-study distribution a single-study fit starts from.

A lab's 20–40 points rarely pin down a tumour sub-model on their own (issue 21: fitted
by maximum likelihood, tumour uptake ran to its bound in three of four unseen studies).
The modeller's standard remedy is to place the between-study distribution of each
parameter as a prior and report the maximum a posteriori estimate, with how far the data
moved each parameter from its prior.  :func:`nanopk.fit` does this by default
(``priors="population"``) for every varied parameter that has a row in the bundled table
``nanopk/data/population_priors.csv``:

- ``parameter``, ``median``, ``ln_sd``, ``unit``: the log-normal prior
  ``ln θ ~ N(ln median, ln_sd²)`` of the model parameter of that name (applied only when
  the model gives the parameter the same unit);
- ``ln_sd_raw``, ``n_datasets``, ``database_column``, ``source``: where it comes from;
- ``models`` (may be blank): the models the row applies to, space-separated; blank means
  every model with a parameter of that name and unit.  The tool's MPS rows name
  ``mouse_pbpk`` and ``mouse_tumour`` (estimated with ``mouse_pbpk`` on mouse data, so a
  rat model's ``Kmax_liver`` would not get them).

The table holds the Lin-lab tumour sub-model (``Kmax_tumour``, ``K50_tumour``,
``n_tumour``, ``Krelease_tumour``, ``PATC_tumour``, ``P_tumour``, ``f_Q_tumour``,
``f_B_tumour``, ``f_V_tumour``): medians and ln-SDs of the Chou et al. 2023 fits of the
378 Nano-Tumor Database datasets, computed by ``tools/population_priors.py`` with the
estimator ``nanopk meta`` uses for its empirical prior (ln-SD floored at 0.5).  No public
table gives a between-study spread for the mononuclear-phagocyte (MPS) uptake;
``tools/population_priors.py --with-mps`` estimates one from the NTUA biodistribution
database (ML ``mouse_pbpk`` fits per study), but the bundled table leaves those rows out
because they made the default fits of the bundled tumour studies worse (the tool's
docstring gives the figures).  So the MPS uptake, the other organs' partition and
permeability and the excretion rates get **no prior**: they are fitted by maximum
likelihood and the report lists them as such.

**Priors conditional on the particle.**  Where the particle's descriptors predict a tumour
parameter better than its marginal median on studies left out of the estimate, the prior
is the particle's: ``conditional_priors.csv`` holds, per parameter, an OLS regression
``ln θ = b0 + Σ b_j·term_j`` on the :data:`TERMS` a sidecar's ``particle`` gives (written by
``tools/population_priors.py`` from the same Chou et al. 2023 fits, with the bundled
studies left out), and the regression's residual SD is the prior's ln-SD.  Of the six
Lin-lab tumour parameters only ``Krelease_tumour`` earns one (on ln(hydrodynamic diameter /
100 nm): leave-study-out RMSE of ln θ 2.528 against 2.610 for the marginal median; the
tool's docstring gives every parameter's figures); the others keep the marginal row.  A
dataset whose particle lacks a descriptor the regression needs (e.g. no measured
``hydrodynamic_diameter_nm``) gets the marginal prior, and the fit's report says which
descriptor was missing; the report's ``prior of <name>:`` line gives the regression, the
descriptor values and the resulting median for every conditional-table parameter fitted.

``priors=None`` (or ``False``; ``--no-prior`` on the command line) is the plain
maximum-likelihood fit; a dict ``{name: (median, ln_sd)}`` gives exactly those priors
(as before this default existed).  :func:`population_priors` returns the table.
"""
from __future__ import annotations

import csv
import math
from functools import lru_cache
from importlib import resources

import numpy as np

from ..errors import FitError, suggest

__all__ = ["POPULATION", "population_priors", "population_table", "resolve_priors", "prior_rows", "prior_summary",
           "Z95", "conditional_table", "conditional_prior", "particle_terms", "TERMS"]

#: The ``priors`` value that selects the bundled population priors (the default of :func:`nanopk.fit`).
POPULATION = "population"
#: Two-sided 95 % normal quantile.
Z95 = 1.959963984540054
_TABLE = "population_priors.csv"


@lru_cache(maxsize=1)
def _rows() -> tuple:
    text = resources.files("nanopk.data").joinpath(_TABLE).read_text(encoding="utf-8")
    rows = []
    for r in csv.DictReader(text.splitlines()):
        rows.append({**r, "models": (r.get("models") or "").split(),
                     "median": float(r["median"]), "ln_sd": float(r["ln_sd"]), "ln_sd_raw": float(r["ln_sd_raw"]),
                     "n_datasets": int(r["n_datasets"])})
    return tuple(rows)


def population_table() -> dict:
    """``{parameter: row}`` of the bundled table (see the module docstring)."""
    return {r["parameter"]: dict(r) for r in _rows()}


def population_priors(model=None, names=None) -> tuple[dict, dict]:
    """The population priors of ``names`` (default: every table row) in ``model``.

    Parameters
    ----------
    model : nanopk.Model or str, optional
        Only parameters the model has, with the table's unit, get a prior.
    names : iterable of str, optional
        Model parameter names (e.g. the varied ones).

    Returns
    -------
    (priors, without)
        ``priors`` maps names to ``(median, ln_sd)`` as :func:`nanopk.fit` takes them;
        ``without`` maps each name given that gets none to the reason.
    """
    if isinstance(model, str):
        from ..spec import load_model

        model = load_model(model)
    table = population_table()
    names = list(table) if names is None else list(dict.fromkeys(names))
    priors, without = {}, {}
    for name in names:
        row = table.get(name)
        if row is None:
            without[name] = "no population prior in the bundled table (fitted by maximum likelihood)"
            continue
        if model is not None:
            if name not in model.parameters:
                without[name] = f"model {model.name!r} has no parameter {name!r}"
                continue
            if row["models"] and model.name not in row["models"]:
                without[name] = (f"the table's prior for {name!r} is of model(s) {', '.join(row['models'])} only, "
                                 f"not {model.name!r} (fitted by maximum likelihood)")
                continue
            unit = str(model.parameters[name].unit)
            if unit != row["unit"]:
                without[name] = f"the model's unit {unit!r} differs from the table's {row['unit']!r}"
                continue
        priors[name] = (row["median"], row["ln_sd"])
    return priors, without


def resolve_priors(priors, model, specs, datasets=None) -> tuple[dict | None, dict]:
    """``priors`` as :func:`nanopk.fit` takes it -> ``(dict or None, info)``.

    ``"population"`` becomes the table's priors of the varied model parameters; ``None``
    and ``False`` no priors; a dict is kept as given.  ``info`` records the kind
    (``"population"``, ``"given"``, ``"none"``), the table's sources and, for the
    population kind, ``without``: ``{varied name: why it has no prior}``.

    With ``datasets`` (the fit's ``FitData``), a parameter with a row in the
    particle-conditional table (:func:`conditional_table`) gets the prior its dataset's
    particle predicts (:func:`conditional_prior`); ``info["basis"]`` says, per fitted name,
    whether it is conditional on the particle or the marginal prior, and why.  A parameter
    shared by datasets whose particles predict different priors keeps the marginal prior
    (said in ``basis``); a per-dataset copy gets its own dataset's.

    Raises
    ------
    FitError
        For any other value (named, with what is valid).
    """
    if priors is None or priors is False:
        return None, {"kind": "none"}
    if isinstance(priors, str):
        if priors != POPULATION:
            raise FitError(f"`priors` must be 'population' (the bundled population priors, the default), None or False "
                           f"(no priors: maximum likelihood) or a dict {{name: (median, ln_sd)}} (got {priors!r})")
        varied = list(dict.fromkeys(s.model_name for s in specs))
        chosen, without = population_priors(model, varied)
        sources = {n: population_table()[n]["source"] for n in chosen}
        basis = _conditional_priors(chosen, sources, specs, datasets) if datasets is not None else {}
        return chosen or None, {"kind": POPULATION, "without": without, "sources": sources, "basis": basis}
    if isinstance(priors, dict):
        return priors, {"kind": "given"}
    raise FitError(f"`priors` must be 'population', None, False or a dict {{name: (median, ln_sd)}} "
                   f"(got {type(priors).__name__})")


def _conditional_priors(chosen: dict, sources: dict, specs, datasets) -> dict:
    """Replace marginal priors in ``chosen`` by the particle's (in place); ``{fitted name: basis}``."""
    table = conditional_table()
    particles = dataset_particles(datasets)
    basis = {}

    def take(key, name, cond):
        if cond[2]["kind"] == "particle":
            chosen[key] = cond[:2]
            sources[key] = table[name]["source"]
        basis[key] = cond[2]

    for spec in specs:
        name = spec.model_name
        if name not in chosen or name not in table:
            continue
        marginal = chosen[name]
        if spec.dataset is not None:  # a per-dataset copy: its own dataset's particle
            take(spec.name, name, conditional_prior(name, particles.get(spec.dataset), marginal))
            continue
        conds = {n: conditional_prior(name, p, marginal) for n, p in particles.items()}
        if len({c[:2] for c in conds.values()}) == 1:
            take(name, name, next(iter(conds.values())))
        else:
            shown = "; ".join(f"{n}: {c[0]:.4g}" for n, c in conds.items())
            basis[name] = {"kind": "marginal", "terms": {}, "missing": [],
                           "text": f"marginal prior: {name} is shared by datasets whose particles predict different "
                                   f"prior medians ({shown}); vary it per dataset (shared=...) for each its own"}
    return basis


def prior_summary(result) -> dict:
    """Per fitted parameter: prior, estimate and how far the data moved it (the report's table).

    For a parameter with prior ``(m, s)`` fitted on the log scale (``x = ln θ``):

    - ``prior_ci95`` = ``m·exp(∓1.96 s)``;
    - ``z`` = ``(x̂ − ln m)/s``: the estimate's distance from the prior median in prior SDs;
    - ``posterior_sd`` = the standard error of ``x̂`` (Laplace approximation of the
      posterior at the MAP estimate);
    - ``shrinkage`` = ``1 − posterior_sd/s``: 0 when the data added nothing (the posterior
      is the prior), near 1 when the data alone determine the parameter.

    A normal prior (parameter on the natural scale) uses ``θ`` for ``x``.  Parameters
    without a prior have ``prior: None`` and the reason when the population table has none.
    """
    obj = result.objective
    info = getattr(obj, "prior_info", None) or {"kind": "given" if obj.priors else "none"}
    without = dict(info.get("without", {}))
    rows = {}
    for k, spec in enumerate(obj.specs):
        p = result.params[spec.name]
        entry = {"estimate": float(p.value), "ci95": result.ci95(spec.name), "unit": spec.unit}
        prior = obj.priors.get(spec.name)
        if prior is None or math.isinf(prior[1]):
            entry.update(prior=None, reason=without.get(spec.model_name, "no prior given"))
            rows[spec.name] = entry
            continue
        m, s = prior
        x = float(result.x[k])
        se = result.covariance.stderr[k] if result.covariance.stderr is not None else math.nan
        se = float(se) if se is not None and math.isfinite(se) else None
        if spec.log:
            center, lo, hi = math.log(m), m * math.exp(-Z95 * s), m * math.exp(Z95 * s)
        else:
            center, lo, hi = m, m - Z95 * s, m + Z95 * s
        sources, basis = info.get("sources", {}), info.get("basis", {})
        entry.update(prior={"median" if spec.log else "mean": m, "ln_sd" if spec.log else "sd": s,
                            "distribution": "lognormal" if spec.log else "normal", "ci95": [lo, hi],
                            "source": sources.get(spec.name, sources.get(spec.model_name)),
                            "basis": basis.get(spec.name)},
                     z=(x - center) / s, posterior_sd=se, shrinkage=None if se is None else 1.0 - se / s)
        rows[spec.name] = entry
    return {"kind": info["kind"], "parameters": rows,
            "without_prior": {n: w for n, w in without.items()}}


def summary_lines(result) -> list[str]:
    """The report's lines for :func:`prior_summary`."""
    summary = prior_summary(result)
    info = getattr(result.objective, "prior_info", None) or {}
    if summary["kind"] == "none":
        return ["", info.get("note") or "No priors: maximum-likelihood fit (priors=None, --no-prior)"]
    rows = summary["parameters"]
    if not result.objective.priors:  # the population default, but no varied parameter has one
        return ["", "No population prior for the varied parameter(s): maximum-likelihood fit ("
                + "; ".join(f"{n}: {e['reason']}" for n, e in rows.items()) + ")"]
    log = result._prior_on_log_scale()
    shown = ", ".join(f"{n} ~ {'LogNormal' if log[n] else 'Normal'}({mu:.4g}, {sd:.3g})"
                      for n, (mu, sd) in result.objective.priors.items())
    head = "Population priors" if summary["kind"] == POPULATION else "Priors"
    width = max(len("parameter"), *(len(n) for n in rows))
    lines = ["", f"{head} (MAP estimate; metrics above are of the data only): {shown}",
             f"  {'parameter':<{width}}  {'prior median [95 %]':<28}  {'estimate [95 %]':<30}  {'z':>6}  shrinkage"]

    def rng(ci):
        return "[" + ", ".join("open" if c is None else f"{c:.3g}" for c in ci) + "]" if ci else "(no CI)"

    for name, e in rows.items():
        est = f"{e['estimate']:.4g} {rng(e['ci95'])}"
        if e["prior"] is None:
            lines.append(f"  {name:<{width}}  {'no prior':<28}  {est:<30}  {'':>6}  ({e['reason']})")
            continue
        pr = e["prior"]
        centre = pr.get("median", pr.get("mean"))
        shrink = "n/a (no posterior SD)" if e["shrinkage"] is None else f"{e['shrinkage']:.2f}"
        prior_text = f"{centre:.4g} {rng(pr['ci95'])}"
        lines.append(f"  {name:<{width}}  {prior_text:<28}  {est:<30}  {e['z']:>+6.2f}  {shrink}")
    lines.append("  z = (estimate − prior median)/prior SD on the log scale; shrinkage = 1 − posterior SD/prior SD "
                 "(0: the data added nothing to the prior; near 1: the data alone determine it)")
    if summary["kind"] == POPULATION:
        for name, e in rows.items():  # where each conditional-table prior came from: the particle, or why not
            basis = (e.get("prior") or {}).get("basis")
            if basis:
                lines.append(f"  prior of {name}: {basis['text']}")
        sources = sorted({e["prior"]["source"] for e in rows.values() if e.get("prior") and e["prior"].get("source")})
        lines += [f"  source: {src}" for src in sources]
    lines.append(f"  prior penalty Σ((x − x̃)/s)² = {result.prior_penalty:.4g} over {result.metrics.get('n_priors', 0)} "
                 "prior row(s)")
    return lines


def check_priors_argument(priors) -> None:
    """Refuse a ``priors`` value :func:`resolve_priors` would refuse, before any fitting."""
    if priors is None or priors is False or priors == POPULATION or isinstance(priors, dict):
        return
    resolve_priors(priors, None, [])


# ------------------------------------------------------------------ explicit priors → residual rows
def prior_rows(priors, specs) -> tuple[dict, np.ndarray, np.ndarray, np.ndarray]:
    """Validate ``priors`` ({name: (median, sd)}) against the fitted parameters; one row per prior'd copy.

    The objective adds ``(x − x̃)/sd`` for each row (see :mod:`nanopk.fit.objective`).

    Returns ``({fitted name: (median, sd)}, spec indices, centres x̃, sds)``.  Every
    unknown name and every invalid value is collected before one FitError is raised.
    """
    empty = ({}, np.zeros(0, dtype=int), np.zeros(0), np.zeros(0))
    if priors is None:
        return empty
    if not isinstance(priors, dict):
        raise FitError(f"`priors` must be a dict {{name: (median, sd)}} (got {type(priors).__name__})")
    fitted = [s.name for s in specs]
    model_names = list(dict.fromkeys(s.model_name for s in specs))
    known = set(fitted) | set(model_names)
    unknown = [k for k in priors if k not in known]
    if unknown:
        raise FitError("`priors` name(s) not fitted: " + "; ".join(f"{u!r}{suggest(str(u), sorted(known))}" for u in unknown)
                       + f"; varied parameters: {', '.join(model_names)}")
    problems = []
    for name, value in priors.items():
        try:
            median, sd = (float(v) for v in value)
        except (TypeError, ValueError):
            problems.append(f"{name!r} must be a pair (median, sd) of numbers (got {value!r})")
            continue
        log = any(s.log for s in specs if name in (s.name, s.model_name))
        if not (sd > 0):  # also catches NaN
            problems.append(f"{name!r} needs sd > 0 (got {sd!r})")
        if log and not (median > 0 and math.isfinite(median)):
            problems.append(f"{name!r} is fitted on the log scale, so its prior median must be positive and finite "
                            f"(got {median!r})")
        elif not math.isfinite(median):
            problems.append(f"{name!r} needs a finite prior mean (got {median!r})")
    if problems:
        raise FitError("invalid prior(s): " + "; ".join(problems))
    resolved, index, center, sd = {}, [], [], []
    for k, s in enumerate(specs):
        if s.name in priors:  # a copy's own prior wins over its model name's
            median, spread = (float(v) for v in priors[s.name])
        elif s.model_name in priors:
            median, spread = (float(v) for v in priors[s.model_name])
        else:
            continue
        resolved[s.name] = (median, spread)
        if math.isinf(spread):
            continue  # flat: contributes nothing
        index.append(k)
        center.append(math.log(median) if s.log else median)
        sd.append(spread)
    return resolved, np.array(index, dtype=int), np.array(center, dtype=float), np.array(sd, dtype=float)


# ------------------------------------------------------------------ priors conditional on the particle
_CONDITIONAL_TABLE = "conditional_priors.csv"
#: Reference hydrodynamic diameter (nm) of the ``ln_hd_100nm`` term: ln(HD/100 nm) is 0 at 100 nm.
HD_REFERENCE_NM = 100.0
#: The regression terms a conditional prior may use: ``{term: (what it is, the sidecar field it needs)}``.
#: Each is computed from a particle's *given* fields only (:func:`particle_terms`); the database side
#: (Model_dataset.xlsx columns) is in ``tools/population_priors.py``.
TERMS = {
    "inorganic": ("1 for an inorganic core (nanopk.materials: Au, Ag, ZnO, Fe3O4, CdSe, TiO2, SiO2), 0 for polymer "
                  "or lipid; database: Type Inorganic or Hybrid", "particle.material"),
    "ln_hd_100nm": ("ln(hydrodynamic diameter / 100 nm), the measured diameter; database: HD",
                    "particle.hydrodynamic_diameter_nm"),
    "active_targeting": ("1 for active targeting, 0 for passive; database: TS", "particle.targeting"),
    "nonspherical": ("1 for any shape but a sphere; database: Shape other than Spherical", "particle.shape"),
    "positive_zeta": ("1 for a positive zeta potential; database: Charge 1 (positive)", "particle.zeta_mV"),
}


def _given(particle, key):
    """A field of a sidecar ``particle`` dict (or an object with that attribute), None when not given."""
    if particle is None:
        return None
    value = particle.get(key) if isinstance(particle, dict) else getattr(particle, key, None)
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value


def particle_terms(particle) -> dict:
    """``{term: value or None}`` of :data:`TERMS` for a particle's given fields (None: not given).

    ``particle`` is a dataset sidecar's ``particle`` dict (or a :class:`nanopk.Particle`).  A
    field the sidecar does not give is ``None`` -- never the :class:`~nanopk.Particle` default
    (an unmeasured hydrodynamic diameter is not the core-plus-shell estimate the database never used).
    """
    from ..materials import MATERIALS

    material = _given(particle, "material")
    hd = _given(particle, "hydrodynamic_diameter_nm")
    targeting = _given(particle, "targeting")
    shape = _given(particle, "shape")
    zeta = _given(particle, "zeta_mV")
    inorganic = MATERIALS[material].inorganic if material in MATERIALS else None
    return {"inorganic": None if inorganic is None else float(bool(inorganic)),
            "ln_hd_100nm": math.log(float(hd) / HD_REFERENCE_NM) if hd is not None and float(hd) > 0 else None,
            "active_targeting": None if targeting is None else float(str(targeting).lower() == "active"),
            "nonspherical": None if shape is None else float(str(shape).lower() != "sphere"),
            "positive_zeta": None if zeta is None else float(float(zeta) > 0)}


@lru_cache(maxsize=1)
def conditional_table() -> dict:
    """``{parameter: {"coefficients": {term: b}, "ln_sd", "n_datasets", "n_studies", "rmse", "source"}}``.

    The bundled ``conditional_priors.csv`` (written by ``tools/population_priors.py``): one row
    per term of each parameter's regression ``ln θ = b0 + Σ b_j·term_j`` (``intercept`` is
    ``b0``), ``ln_sd`` the residual SD (the prior SD), and the leave-study-out RMSEs (ln scale)
    of the marginal median, of the between-study mean and of the regression that earned it
    its place (see the tool's docstring).
    """
    try:
        text = resources.files("nanopk.data").joinpath(_CONDITIONAL_TABLE).read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    out = {}
    for r in csv.DictReader(text.splitlines()):
        entry = out.setdefault(r["parameter"], {
            "coefficients": {}, "ln_sd": float(r["ln_sd"]), "unit": r["unit"], "n_datasets": int(r["n_datasets"]),
            "n_studies": int(r["n_studies"]), "source": r["source"],
            "rmse": {k: float(r[f"loso_rmse_{k}"]) for k in ("marginal", "mean", "conditional", "nested")}})
        entry["coefficients"][r["term"]] = float(r["coefficient"])
    return out


def conditional_prior(name: str, particle, marginal: tuple[float, float] | None = None):
    """The prior of ``name`` for ``particle``: ``(median, ln_sd, basis)``, or None without a conditional row.

    With every descriptor its regression needs, the prior is ``exp(b0 + Σ b_j·term_j)``
    with the regression's residual SD.  Without one (e.g. no measured hydrodynamic diameter)
    the parameter falls back to its marginal prior ``marginal`` (the population table's row),
    and ``basis`` says which descriptor was missing: never silently.

    Returns
    -------
    (median, ln_sd, basis) or None
        ``basis``: ``{"kind": "particle" | "marginal", "text": ..., "terms": {term: value}}``.
    """
    row = conditional_table().get(name)
    if row is None:
        return None
    coef = row["coefficients"]
    values = particle_terms(particle)
    needed = [t for t in coef if t != "intercept"]
    missing = [t for t in needed if values.get(t) is None]
    if missing:
        if marginal is None:
            return None
        fields = ", ".join(TERMS[t][1] for t in missing)
        text = (f"marginal prior: the dataset's particle gives no {fields}, which the particle-conditional prior of "
                f"{name} needs (ln {name} = {_formula(coef)}), so the marginal between-study prior is used")
        return marginal[0], marginal[1], {"kind": "marginal", "text": text, "terms": {}, "missing": missing}
    ln_median = coef.get("intercept", 0.0) + sum(coef[t] * values[t] for t in needed)
    given = ", ".join(f"{TERMS[t][1]} = {_given(particle, TERMS[t][1].split('.', 1)[1])}" for t in needed)
    shown = ", ".join(f"{t} = {values[t]:.4g}" for t in needed)
    text = (f"conditional on the particle's descriptors ({given}): ln {name} = {_formula(coef)} with {shown} "
            f"-> median {math.exp(ln_median):.4g} {row['unit']}, ln-SD {row['ln_sd']:.3g} (the regression's residual "
            f"SD); leave-study-out RMSE (ln) {row['rmse']['nested']:.3f} vs {row['rmse']['marginal']:.3f} for the "
            f"marginal median")
    return math.exp(ln_median), row["ln_sd"], {"kind": "particle", "text": text,
                                               "terms": {t: values[t] for t in needed}, "missing": []}


def _formula(coef: dict) -> str:
    parts = [f"{coef.get('intercept', 0.0):.4g}"]
    parts += [f"{'+' if b >= 0 else '−'} {abs(b):.4g}·{t}" for t, b in coef.items() if t != "intercept"]
    return " ".join(parts)


def dataset_particles(datasets) -> dict:
    """``{dataset name: sidecar particle dict or None}`` of the fit's datasets (``FitData``)."""
    out = {}
    for d in datasets or ():
        meta = getattr(d, "meta", None) or {}
        particle = meta.get("particle") if isinstance(meta, dict) else None
        out[getattr(d, "name", str(len(out)))] = particle if isinstance(particle, dict) else None
    return out
