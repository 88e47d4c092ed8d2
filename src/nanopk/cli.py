"""The ``nanopk`` command line.

    nanopk models
    nanopk simulate MODEL [--param NAME=VALUE ...] [--particle ...] [--times ...] [--out sim.csv] [--json sim.json]
    nanopk fit DATASET --model MODEL [--vary A,B,...] [--no-prior] [--json fit.json] [--plot fit.png]
    nanopk fit --petab problem.yaml [--json fit.json] [--plot fit.png]
    nanopk compare DATASET_A DATASET_B --model MODEL [--vary ...] [--shared ...] [--param NAME=VALUE ...]
                   [--json cmp.json] [--plot cmp.png]
    nanopk export MODEL (--sbml out.xml | --c outdir/ | --json model.json | --FORMAT PATH of a registered exporter)
    nanopk delivery (DATASET --model MODEL | FIT.json) [--json de.json]
    nanopk meta COLLECTION --model MODEL [--scheduler ADDRESS] [--json meta.json]
    nanopk datasets
    nanopk serve [--port 8050] [--host 127.0.0.1]
    nanopk calibrate [--database PATH] [--folds K] [--workers N] [--output FILE] [--report FILE.md]
    nanopk predict --particle material=gold,core_nm=50,coating=PEG,peg_mw=5000 [--dose 1mg/kg] [--times ...]
                   [--species mouse] [--calibration FILE] [--json FILE]
    nanopk check DATASET [--model MODEL] [--particle ...] [--vary ...] [--param ...] [--json check.json]
    nanopk sensitivity MODEL --output DE24,liver@24h [--method local|morris|sobol] [--params A,B] [--range A=LO:HI]
                       [--factor F] [--samples N] [--out sens.csv] [--json sens.json]
    nanopk scan MODEL --size 10,50,100 --coating none,PEG [--dose 1,5] [--output DE24,liver@24h] [--out scan.csv]
    nanopk --version

Every command takes ``-v`` (log lines on stderr; ``-vv`` debug), ``-q`` (errors only)
and ``--progress``/``--no-progress`` (progress bars, by default only on a terminal).

Errors a user can cause (unknown model, bad parameter, bad data) are printed as one
clear message with exit status 2; they never end in a traceback.

Exit status of ``fit``, ``delivery`` and ``compare`` (scripts can rely on it):

- 0: every fit converged and its covariance step succeeded (intervals are from the
  covariance).  The adequacy verdict (``poor``: the model misses the data or a
  parameter is unidentifiable) is printed in the report header but does not change
  the status: a converged fit of a wrong model is a result.
- 1: the command ran, but a fit did not converge or its covariance step failed
  (singular or no finite Jacobian).  Everything is still printed, under a
  ``*** NOT CONVERGED ***`` / ``*** no covariance ***`` banner; delivery figures from
  such a fit are printed under ``*** FIT FAILED ***``.  For ``compare``: any group's
  own fit, the joint fit, or a reduced fit of a test did not converge, or a group's or
  the joint fit's covariance failed.  ``delivery FIT.json`` follows the ``success`` the
  JSON records.
- 2: bad input (one-line error on stderr, nothing computed).
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sqlite3
import sys
import time
import warnings
from pathlib import Path

from .errors import NanopkError
from .report import delivery_lines, fit_delivery, parse_params

DEFAULT_TIMES = "1,4,24,168"


def _parse_times(text: str):
    """``"1,4,24,168"`` or ``"0:168:50"`` (start:stop:count) as an array of hours."""
    import numpy as np  # not at the top: `nanopk --help` needs no NumPy

    try:
        if ":" in text:
            a, b, n = text.split(":")
            return np.linspace(float(a), float(b), int(n))
        return np.array([float(x) for x in text.split(",") if x.strip()])
    except ValueError:
        raise NanopkError(f"--times {text!r}: give comma-separated hours (1,4,24) or start:stop:count (0:168:50)") from None


def _load(args, fixed: bool = False):
    """The model of ``--model``/``--particle``; with ``fixed``, ``--param`` values set in it."""
    from .spec import load_model

    model = load_model(args.model, particle=getattr(args, "particle", None))
    values = parse_params(getattr(args, "param", None)) if fixed else {}
    if values:
        model.check_parameter_names(values)
        model = model.with_parameters(values)
    return model


def _names(text):
    return [v.strip() for v in text.split(",") if v.strip()] if text else None


def _vary(args):
    return _names(getattr(args, "vary", None))


def _write_outputs(result, args):
    """``--json`` and ``--plot`` for a fit or a comparison."""
    if args.json:
        result.to_json(args.json)
        print(f"wrote {args.json}")
    if args.plot:
        from .fit.plot import save_figures
        from .fit.result import FitResult

        # a fit writes its figure set (fit, goodness of fit, profiles); a comparison its one figure
        if isinstance(result, FitResult):
            paths = save_figures(result, args.plot)
        else:
            result.plot(args.plot)
            paths = [args.plot]
        for path in paths:
            print(f"wrote {path}")


def _write_json(path, payload, model=None):
    """``payload`` as JSON with :func:`nanopk._json.provenance` (version, ``model``'s structure hash)."""
    from ._json import json_safe, stamped  # NaN would be written as the invalid token NaN; JSON's is null

    Path(path).write_text(json.dumps(json_safe(stamped(payload, model)), indent=2, allow_nan=False) + "\n")
    print(f"wrote {path}")


def cmd_models(args):
    from .spec import list_models, load_model

    rows = []
    for name in list_models():
        m = load_model(name)
        rows.append({"name": name, "states": len(m.states), "parameters": len(m.parameters), "species": m.metadata["species"],
                     "description": " ".join(m.description.split()), "structure_hash": m.structure_hash})
    for r in rows:
        print(f"{r['name']:<22} {r['states']:>4} states  {r['parameters']:>4} params  {r['species']:<6} {r['description'][:70]}")
    if args.json:
        _write_json(args.json, rows)


def cmd_simulate(args):
    import numpy as np

    model = _load(args)
    times = _parse_times(args.times)
    t0 = time.perf_counter()
    sim = model.simulate(times, params=parse_params(args.param), backend=args.backend)
    elapsed = time.perf_counter() - t0
    with_units = sim.rename(columns=lambda c: f"{c} [%ID]" if sim.attrs["units"].get(c) == "percent_ID" else c)
    print(f"# {model.name}: {len(model.states)} states, backend {sim.attrs['backend']}, dose {sim.attrs['dose_ug']:.4g} µg, {elapsed*1000:.1f} ms")
    print(with_units.to_string(float_format=lambda v: f"{v:.4g}"))
    if args.out:
        sim.to_csv(args.out)
        print(f"wrote {args.out}")
    if args.json:
        _write_json(args.json, {
            "model": model.name, "backend": sim.attrs["backend"], "dose_ug": sim.attrs["dose_ug"],
            "units": sim.attrs["units"], "time_h": list(sim.index),
            "observables": {c: sim[c].tolist() for c in sim.columns},
            "max_total_deviation_pct": float(np.max(np.abs(sim["total"] - 100.0))),
        }, model)


def cmd_datasets(args):
    from .data import list_datasets

    table = list_datasets()
    print(table.to_string(index=False))
    if args.json:
        _write_json(args.json, table.to_dict(orient="records"))


def cmd_check(args):
    """``nanopk check DATASET [--model M]``: print every plausibility rule (OK ones too).

    Exit status 0 when no rule is FAIL (WARN allowed), 1 when one is -- the checks ran
    and the report is printed, as for a fit that ran and failed; 2 (one-line error)
    when they could not run (unreadable dataset, unknown model).
    """
    from .data import read_dataset
    from .data.checks import check_dataset

    if args.particle and not args.model:
        raise NanopkError("--particle describes the model's particle: give --model too (e.g. --model mouse_tumour_full)")
    ds = read_dataset(args.dataset)
    model = _load(args) if args.model else None
    report = check_dataset(ds, model, vary=_vary(args), fixed=parse_params(args.param) if args.param else None,
                           particle=args.particle)
    print(report)
    if args.json:
        _write_json(args.json, report.to_dict(), model)
    return 1 if report.failed else 0


def cmd_fit(args):
    from .data import read_dataset
    from .data.checks import check_fit_arguments
    from .fit import fit

    t0 = time.perf_counter()
    if args.petab:  # the PEtab problem is the model, the data and the likelihood
        result = _fit_petab(args)
    else:
        if not args.dataset:
            raise NanopkError("nanopk fit needs a DATASET (bundled name or CSV path) or --petab problem.yaml")
        check_fit_arguments(_vary(args), parse_params(args.param))  # --param and --vary naming one parameter: refuse
        model = _load(args, fixed=True)
        ds = read_dataset(args.dataset, sheet=args.sheet)
        t0 = time.perf_counter()
        # Population priors on the varied parameters that have one (nanopk.fit.priors); --no-prior: maximum likelihood.
        result = fit(model, ds, vary=_vary(args), multistart=args.multistart, jacobian=args.jacobian,
                     priors=None if args.no_prior else "population")
    if args.mcmc:  # posterior samples: delivery's intervals and the figures then use them
        result.mcmc(steps=args.mcmc, seed=0)
    wall = time.perf_counter() - t0
    de = fit_delivery(result)
    print(result.report())
    if de:
        print("\nTumour delivery (%ID in the whole tumour; 95 % intervals from the fit's covariance, "
              "or the prediction profile where noted):")
        _print_delivery(de)
    print(f"wall time {wall:.2f} s")
    _write_outputs(result, args)
    return _exit_status(result.success)


def _fit_petab(args):
    """``nanopk fit --petab problem.yaml``: the fit of a PEtab problem (nanopk.petab_import)."""
    from .petab_import import fit_petab

    given = [f"--{o}" for o in ("sheet", "vary", "param", "particle") if getattr(args, o, None)]
    if args.dataset:
        given.insert(0, f"DATASET {args.dataset!r}")
    if args.model != "mouse_pbpk":
        given.append(f"--model {args.model}")
    if given:
        raise NanopkError(f"--petab {args.petab}: the PEtab problem gives the model, the data and the varied parameters; "
                          f"leave out {', '.join(given)} (edit the problem's tables instead)")
    result = fit_petab(args.petab, multistart=args.multistart, jacobian=args.jacobian)
    for note in result.petab_notes:
        print(f"PEtab import: {note}")
    return result


def _exit_status(success: bool) -> int:
    """The exit-code policy of fit, delivery and compare (module docstring): 0 or 1."""
    return 0 if success else 1


def cmd_compare(args):
    from .compare import compare
    from .data import read_dataset
    from .data.checks import check_fit_arguments

    check_fit_arguments(_vary(args), parse_params(args.param))  # --param and --vary naming one parameter: refuse
    model = _load(args, fixed=True)
    a, b = read_dataset(args.dataset_a, sheet=args.sheet), read_dataset(args.dataset_b, sheet=args.sheet)
    if a.name == b.name:
        from .compare import same_data

        if same_data(a, b):
            raise NanopkError(f"{args.dataset_a!r} and {args.dataset_b!r} are the same dataset ({a.name!r}): "
                              "compare needs two different groups (e.g. PEG-coated and bare particles)")
        names = (f"{a.name}_A", f"{b.name}_B")  # two different tables under one name: keep both, told apart
        print(f"note: both datasets are named {a.name!r}; they are the groups {names[0]!r} and {names[1]!r}")
    else:
        names = (a.name, b.name)
    cmp = compare(model, dict(zip(names, (a, b))), vary=_vary(args), shared=_names(args.shared))
    print(cmp.report())
    _write_outputs(cmp, args)
    return _exit_status(cmp.success)


def cmd_export(args):
    from .export import export, exporters, registry_problems

    found = exporters()
    chosen = [(name, getattr(args, _export_dest(name), None)) for name in found]
    chosen = [(name, path) for name, path in chosen if path]
    if not chosen:
        options = [f"--{name} {e.target}" for name, e in found.items()]
        refused = "".join(f"; {p}" for p in registry_problems())
        raise NanopkError(f"nanopk export needs one of {', '.join(options[:-1])} or {options[-1]}{refused}")
    stray = [f"--{o.replace('_', '-')}" for o in ("data", "vary", "error_model") if getattr(args, o, None)]
    if stray and "petab" not in dict(chosen):
        raise NanopkError(f"{', '.join(stray)} set(s) the fit problem of --petab DIR, which was not given; "
                          "add --petab DIR or leave them out")
    model = _load(args)
    for name, path in chosen:
        for written in export(model, name, path, **_export_options(name, args)):
            print(f"wrote {written}")


def _export_options(name: str, args) -> dict:
    """The command line's options of format ``name``: the fit problem of ``--petab``."""
    if name != "petab":
        return {}
    if not args.data:
        raise NanopkError("nanopk export --petab DIR needs --data DATASET (a bundled dataset name or a CSV path): "
                          "the PEtab problem is the fit of the model to that dataset")
    from .data import read_dataset

    return {"data": read_dataset(args.data), "vary": _vary(args), "error_model": args.error_model or "log"}


def _export_dest(name: str) -> str:
    """argparse destination of ``--<format>``: the built-ins keep theirs (``args.sbml``)."""
    return name if name in ("sbml", "c", "json") else f"export_{name}"


def cmd_delivery(args):
    from .delivery import delivery_efficiency

    source = Path(args.source)
    if source.suffix == ".json" and source.exists() and not source.with_suffix(".csv").exists():
        if args.plot:  # refused before anything is read: a fit JSON holds no parameter draws to plot from
            raise NanopkError("--plot needs the fit itself: give the dataset with --model, not a fit JSON")
        try:
            payload = json.loads(source.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise NanopkError(f"{source} is not a fit JSON that nanopk wrote ({exc}); give a dataset with --model, "
                              "or the --json file of `nanopk fit`") from None
        if not isinstance(payload, dict) or "delivery" not in payload:
            raise NanopkError(f"{source} holds no 'delivery' entry; fit a model with a tumour (e.g. --model mouse_tumour)")
        de = dict(payload["delivery"])
        model_ref = payload.get("structure_hash")  # the fit's equations (absent from a fit JSON written before the stamp)
        if "success" in payload and "fit_status" not in de:  # a fit JSON: its status travels with its DE
            de["fit_status"] = _fit_status_of_json(payload)
    else:
        if not args.model:
            raise NanopkError("nanopk delivery DATASET needs --model MODEL")
        from .data import read_dataset
        from .fit import fit

        result = fit(_load(args), read_dataset(args.source, sheet=args.sheet), vary=_vary(args))
        de = delivery_efficiency(result)
        model_ref = result.model
        if args.plot:
            from .delivery import plot_delivery

            plot_delivery(result, path=args.plot)
            print(f"wrote {args.plot}")
    _print_delivery(de)
    if args.json:
        _write_json(args.json, de, model_ref)
    return _exit_status((de.get("fit_status") or {}).get("success", True))


def _fit_status_of_json(payload: dict) -> dict:
    """``fit_status`` (as :func:`nanopk.delivery_efficiency` gives it) from a fit JSON."""
    status = payload.get("status") or {}
    opt, cov = status.get("optimizer") or {}, status.get("covariance") or {}
    converged = opt.get("converged", (payload.get("flags") or {}).get("converged"))
    return {"success": bool(payload["success"]), "converged": converged, "covariance": cov.get("state"),
            "message": payload.get("message")}


def _print_delivery(de: dict) -> None:
    for line in delivery_lines(de):
        print(line)


def cmd_meta(args):
    from .meta import run_meta, summarise
    from .meta.runner import MetaInterrupted

    store = args.store or "meta.sqlite"
    try:
        run_meta(args.collection, model=args.model, scheduler=args.scheduler, store=store, limit=args.limit,
                 workers=args.workers, progress=not args.no_progress, prior=args.prior,
                 informative_t_h=args.informative_t_h, overwrite=args.overwrite)
    except MetaInterrupted as exc:  # the shell's convention for a signal: 128 + its number
        print(f"nanopk meta: {exc}", file=sys.stderr)
        return 128 + exc.signum
    summary = summarise(store)
    printable = {k: v for k, v in summary.items() if k != "datasets"}
    print(json.dumps(printable, indent=2, default=float))
    if args.json:
        from .spec import load_model

        _write_json(args.json, summary, load_model(args.model))  # the model every dataset was fitted with


def _dose_value(text: str):
    """``--dose`` item: a number is mg/kg (as ``predict_delivery``), anything else a dose with its unit."""
    try:
        return float(text)
    except ValueError:
        return text.strip()


def _print_top(table, columns, top: int) -> None:
    """The ``top`` rows of each output of a sensitivity table (all of them in --out)."""
    for output, rows in table.groupby("output", sort=False):
        print(f"\n{output}:")
        print(rows.head(top)[["rank", "parameter", *columns]].to_string(index=False, float_format=lambda v: f"{v:.4g}"))
        if len(rows) > top:
            print(f"  ... {len(rows) - top} more parameter(s) (all in --out/--json)")
        if "fd_one_sided" in rows and rows.head(top)["fd_one_sided"].any():
            names = ", ".join(rows.head(top).loc[rows.head(top)["fd_one_sided"], "parameter"])
            print(f"  coefficient_fd of {names}: one-sided (the parameter sits at a bound), accurate to O(h) only")


def cmd_sensitivity(args):
    """``nanopk sensitivity MODEL --output DE24,liver@24h [--method local|morris|sobol]``."""
    from .sensitivity import SensitivityError, local_sensitivity, morris, sobol

    model = _load(args)
    params = parse_params(args.param)
    ranges = None
    if args.range:
        ranges = {}
        for item in (part for group in args.range for part in group.split(",") if part.strip()):
            name, _, span = item.partition("=")
            low, sep, high = span.partition(":")
            try:
                ranges[name.strip()] = (float(low), float(high))
            except ValueError:
                raise SensitivityError("--range", item, "NAME=LOW:HIGH, e.g. --range Kmax_liver=0.1:1") from None
            if not sep:
                raise SensitivityError("--range", item, "NAME=LOW:HIGH, e.g. --range Kmax_liver=0.1:1")
        if args.factor:
            raise SensitivityError("--factor", args.factor, "either --range or --factor, not both")
    elif args.factor is not None:
        ranges = args.factor
    if args.method == "local" and (ranges is not None or args.samples is not None):
        raise SensitivityError("--method", "local", "morris or sobol with --range/--factor/--samples "
                               "(a local analysis has no ranges or samples)", "takes no ranges or samples")
    dose = _dose_value(args.dose) if args.dose else None
    if isinstance(dose, float):
        dose = f"{dose:g} mg/kg"
    common = dict(parameters=_names(args.params), params=params or None, dose=dose)
    t0 = time.perf_counter()
    if args.method == "local":
        table = local_sensitivity(model, args.output, check=not args.no_check, **common)
        shown = ["output_value", "parameter_value", "coefficient"] + ([] if args.no_check else ["coefficient_fd"])
        what = "normalised local sensitivity S = d ln y / d ln p (forward sensitivities" + \
               ("" if args.no_check else "; finite differences beside them") + ")"
    elif args.method == "morris":
        table = morris(model, args.output, ranges=ranges, trajectories=args.samples or 32, seed=args.seed, **common)
        shown, what = ["mu_star", "mu_star_conf", "sigma", "low", "high"], "Morris screening (mu_star: mean |elementary effect| over the range)"
    else:
        table = sobol(model, args.output, ranges=ranges, samples=args.samples or 256, seed=args.seed, **common)
        shown, what = ["S1", "S1_conf", "ST", "ST_conf", "low", "high"], "Sobol indices (first order S1, total ST; _conf: 95 % half-width)"
    wall = time.perf_counter() - t0
    sims = table.attrs.get("n_simulations")
    print(f"# {model.name}: {what}")
    print(f"# {sims} simulations, " if sims else "# ", end="")
    print(f"wall time {wall:.2f} s")
    _print_top(table, shown, args.top)
    if args.out:
        table.to_csv(args.out, index=False)
        print(f"wrote {args.out}")
    if args.plot:
        from .plots import plot_sensitivity

        plot_sensitivity(table, path=args.plot, **({"top": args.top} if args.method == "local" else {}))
        print(f"wrote {args.plot} (first output: {table['output'].iloc[0]})")
    if args.json:
        _write_json(args.json, {"model": model.name, "method": args.method, "n_simulations": sims, "seconds": wall,
                                "rows": table.to_dict(orient="records")}, model)


def cmd_population(args):
    """``nanopk population MODEL --spread Kmax_liver=0.5 [--n 200] --output DE24 [--plot band.png]``."""
    from .population import population_band, virtual_population
    from .sensitivity import SensitivityError

    spread = {}
    for item in (part for part in (args.spread or "").split(",") if part.strip()):
        name, _, value = item.partition("=")
        try:
            spread[name.strip()] = float(value)
        except ValueError:
            raise SensitivityError("--spread", item, "NAME=SD of ln p, e.g. Kmax_liver=0.5") from None
    model = _load(args, fixed=True)
    table = virtual_population(model, spread, outputs=_names(args.output), n=args.n, seed=args.seed)
    print(f"# {model.name}: {len(table)} virtual animals; ln p ~ N(ln p̂, s²) for "
          + ", ".join(f"{k} (s {v:g})" for k, v in spread.items()))
    for name, q in table.attrs["summary"].items():
        print(f"  {name:<16} median {q['median']:.4g}  5–95 %: {q['p5']:.4g}–{q['p95']:.4g}")
    if args.out:
        table.to_csv(args.out, index=False)
        print(f"wrote {args.out}")
    if args.plot:
        from .plots import plot_population

        band = population_band(model, table, _parse_times(args.times))
        plot_population(band, observables=[o for o in ("blood", "liver", "spleen", "tumour") if o in model.observable_names],
                        path=args.plot)
        print(f"wrote {args.plot}")
    if args.json:
        _write_json(args.json, {"model": model.name, "spread": spread, "summary": table.attrs["summary"],
                                "rows": table.to_dict(orient="records")}, model)


def cmd_scan(args):
    """``nanopk scan MODEL --size 10,50,100 --coating none,PEG --dose 1,5 --output DE24,liver@24h``."""
    from .particle import Particle
    from .scan import scan
    from .sensitivity import SensitivityError

    grid = {}
    if args.size:
        try:
            grid["size"] = [float(v) for v in args.size.split(",") if v.strip()]
        except ValueError:
            raise SensitivityError("--size", args.size, "comma-separated core diameters in nm, e.g. 10,50,100") from None
    if args.coating:
        grid["coating"] = _names(args.coating)
    if args.dose:
        grid["dose"] = [_dose_value(v) for v in args.dose.split(",") if v.strip()]
    if not grid:
        raise NanopkError("nanopk scan needs at least one of --size, --coating, --dose (e.g. --size 10,50,100 --coating none,PEG)")
    base = Particle.parse(args.particle).to_dict() if args.particle else None
    table = scan(args.model, grid, outputs=args.output, base=base, params=parse_params(args.param) or None)
    shown = [c for c in ("material", "core_diameter_nm", "coating", "coating_mw_da", "dose", "d_h")
             if c in table and table[c].notna().any()] + table.attrs["outputs"]  # no column of Nones (no --dose)
    print(f"# {args.model}: {len(table)} particle(s), {table.attrs['seconds']:.2f} s; outputs in %ID (AUC: %ID·h), d_h in nm")
    print(table[shown].to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    if args.out:
        table.to_csv(args.out, index=False)
        print(f"wrote {args.out}")
    if args.plot:
        from pathlib import Path

        from .plots import plot_scan, plot_scan_heatmap

        first = table.attrs["outputs"][0]
        plot_scan(table, output=first, path=args.plot)
        heat = Path(args.plot).with_name(f"{Path(args.plot).stem}-heatmap{Path(args.plot).suffix}")
        plot_scan_heatmap(table, output=first, path=heat)
        print(f"wrote {args.plot} and {heat} ({first})")
    if args.json:
        # each particle's model has its own equations (a material adds dissolution): a hash per row
        rows = [{**r, "structure_hash": h} for r, h in zip(table.to_dict(orient="records"), table.attrs["structure_hashes"])]
        _write_json(args.json, {"model": args.model, "outputs": table.attrs["outputs"], "rows": rows})


def build_parser() -> argparse.ArgumentParser:
    from ._version import __version__

    parser = argparse.ArgumentParser(prog="nanopk", description="Nanoparticle pharmacokinetics: simulate, fit, compare, export.")
    parser.add_argument("--version", action="version", version=f"nanopk {__version__}")
    _add_verbosity(parser, top=True)
    sub = parser.add_subparsers(dest="command", required=True)

    def model_args(p, positional=True):
        if positional:
            p.add_argument("model", help="bundled model name (see `nanopk models`) or path to a .toml spec")
        else:
            p.add_argument("--model", required=False, default="mouse_pbpk", help="model name or spec path (default mouse_pbpk)")
        p.add_argument("--particle", help="e.g. material=Au,core_diameter_nm=15,coating=PEG,coating_mw_da=5000")

    p = sub.add_parser("models", help="list the bundled models")
    p.add_argument("--json")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("datasets", help="list the bundled datasets")
    p.add_argument("--json")
    p.set_defaults(func=cmd_datasets)

    p = sub.add_parser("check", help="plausibility rules of a dataset (and model): every rule with OK/WARN/FAIL",
                       description="Run the named plausibility rules of nanopk.data.checks and print every rule with "
                                   "its id, severity and rows. Exit status 0 when no rule is FAIL, 1 when one is, "
                                   "2 when the checks cannot run.")
    p.add_argument("dataset", help="bundled dataset name or path to a CSV (with its JSON sidecar)")
    p.add_argument("--model", help="model name or spec path (without it the model rules are SKIP)")
    p.add_argument("--particle", help="the particle given to the model, e.g. material=Au,core_diameter_nm=15")
    p.add_argument("--vary", help="comma-separated parameters a fit would vary")
    p.add_argument("--param", action="append", help="NAME=VALUE[,NAME=VALUE...]: parameters a fit would hold")
    p.add_argument("--json", help="write the report as JSON")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("simulate", help="simulate a model; observables in %%ID")
    model_args(p)
    p.add_argument("--param", action="append", help="NAME=VALUE (repeatable)")
    p.add_argument("--times", default=DEFAULT_TIMES, help="hours: 1,4,24,168 or start:stop:count")
    p.add_argument("--backend", default="auto", choices=["auto", "cvode", "roadrunner", "reference"])
    p.add_argument("--out", help="write the table as CSV")
    p.add_argument("--json")
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("fit", help="fit a model to a dataset")
    p.add_argument("dataset", nargs="?", help="bundled dataset name or path to a CSV (with its JSON sidecar)")
    p.add_argument("--petab", metavar="PROBLEM.yaml", help="fit a PEtab problem instead (its SBML model, data and "
                   "parameter table; needs the petab extra); without DATASET, --model, --vary, --param")
    model_args(p, positional=False)
    p.add_argument("--sheet", help="worksheet of an .xlsx dataset (name or 0-based index); needed when the workbook has several")
    p.add_argument("--vary", help="comma-separated parameter names")
    p.add_argument("--param", action="append", help="NAME=VALUE[,NAME=VALUE...]: hold model parameters at these values (repeatable)")
    p.add_argument("--multistart", type=int, default=0)
    p.add_argument("--mcmc", type=int, metavar="STEPS", help="after the fit, sample the posterior with emcee for STEPS "
                   "steps (the mcmc extra); delivery intervals then come from the chain, and --plot adds its trace "
                   "(and corner plot)")
    p.add_argument("--jacobian", default="fd", choices=["fd", "sensitivity"],
                   help="fit gradients: finite differences on all cores (default) or exact forward "
                        "sensitivities (fewer model evaluations; compiles a sensitivity library once)")
    p.add_argument("--no-prior", action="store_true",
                   help="plain maximum-likelihood fit; by default the varied parameters that have a population prior "
                        "(the tumour parameters, from the Nano-Tumor Database fits) get it, and the report shows each "
                        "prior, estimate and shrinkage")
    p.add_argument("--json")
    p.add_argument("--plot", metavar="PATH", help="write the fit figure at PATH and its goodness-of-fit panels (and "
                   "profiles, when computed) beside it, as PATH-gof.EXT, PATH-profiles.EXT; PNG, SVG or PDF by the suffix")
    p.set_defaults(func=cmd_fit)

    p = sub.add_parser("compare", help="compare two groups (e.g. PEG vs bare)")
    p.add_argument("dataset_a")
    p.add_argument("dataset_b")
    model_args(p, positional=False)
    p.add_argument("--sheet", help="worksheet of an .xlsx dataset (name or 0-based index); needed when the workbook has several")
    p.add_argument("--vary", help="comma-separated parameters fitted per group")
    p.add_argument("--shared", help="comma-separated parameters of --vary common to both groups (default: none; the others are tested)")
    p.add_argument("--param", action="append", help="NAME=VALUE[,NAME=VALUE...]: hold model parameters at these values (repeatable)")
    p.add_argument("--json")
    p.add_argument("--plot", metavar="PATH", help="both groups overlaid per tissue and the forest plot of the ratios (PNG, SVG or PDF)")
    p.set_defaults(func=cmd_compare)

    from .export import exporters

    formats = exporters()  # the export registry: nanopk's formats and installed packages'
    p = sub.add_parser("export", help=f"export a model ({', '.join(formats)})")
    model_args(p)
    for name, exporter in formats.items():
        p.add_argument(f"--{name}", dest=_export_dest(name), metavar=exporter.target,
                       help=f"{exporter.description} [{exporter.origin}]")
    p.add_argument("--data", metavar="DATASET", help="--petab: the dataset of the fit problem (bundled name or CSV path)")
    p.add_argument("--vary", help="--petab: comma-separated parameters to estimate (default: those nanopk fit would choose)")
    p.add_argument("--error-model", choices=["log", "additive", "combined"],
                   help="--petab: the fit's error model, as PEtab noise model (default log)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("delivery", help="tumour delivery efficiency (DE24, DE168, DEmax)")
    p.add_argument("source", help="a dataset (with --model) or a fit JSON")
    model_args(p, positional=False)
    p.add_argument("--sheet", help="worksheet of an .xlsx dataset (name or 0-based index); needed when the workbook has several")
    p.add_argument("--vary")
    p.add_argument("--json")
    p.add_argument("--plot", metavar="PATH", help="tumour %%ID over 0-168 h with its band, DE24/DE168/DEmax and the "
                   "measured tumour points (PNG, SVG or PDF)")
    p.set_defaults(func=cmd_delivery)

    p = sub.add_parser("meta", help="meta-analysis of a collection (Nano-Tumor Database or a folder of datasets)")
    p.add_argument("collection")
    p.add_argument("--model", default="mouse_tumour")
    p.add_argument("--scheduler", help="Dask scheduler address (default: local processes)")
    p.add_argument("--store", help="SQLite results store (resumable with the same settings; default meta.sqlite)")
    p.add_argument("--overwrite", action="store_true",
                   help="discard the rows already in --store (needed to reuse a store with other settings)")
    p.add_argument("--limit", type=int, help="fit at most N datasets in this call (run again to resume)")
    p.add_argument("--workers", type=int, help="local worker processes (default: all cores)")
    p.add_argument("--prior", default="empirical", choices=["empirical", "published"],
                   help="prior for the tumour parameters: fitted to the long (>= --informative-t-h) datasets, or the published medians")
    p.add_argument("--informative-t-h", type=float, default=168.0, help="datasets measured to this time (h) set the empirical prior")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--json")
    p.set_defaults(func=cmd_meta)

    p = sub.add_parser("sensitivity", help="which parameters drive an output (local, Morris or Sobol)",
                       description="Sensitivity of outputs such as DE24, liver@24h (organ %%ID at a time) or AUC_blood: "
                                   "normalised local coefficients d ln y/d ln p from forward sensitivities, or global "
                                   "Morris / Sobol indices over parameter ranges (SALib).")
    model_args(p)
    p.add_argument("--output", required=True, help="comma-separated: DE24, DE168, DEmax, AUC_<observable>, <observable>@<hours>h")
    p.add_argument("--method", default="local", choices=["local", "morris", "sobol"])
    p.add_argument("--params", help="comma-separated parameters (default: all for local; the 8 with the largest local "
                                    "|S| for morris/sobol)")
    p.add_argument("--param", action="append", help="NAME=VALUE[,NAME=VALUE...]: parameter values to analyse at")
    p.add_argument("--range", action="append", help="NAME=LOW:HIGH (repeatable): range of a parameter for morris/sobol "
                                                    "(default: its bounds)")
    p.add_argument("--factor", type=float, help="ranges value/F to value*F (clipped to the bounds) instead of the bounds")
    p.add_argument("--samples", type=int, help="Morris trajectories (default 32) or Sobol base samples, a power of 2 (default 256)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dose", help="one bolus: a number in mg/kg or a dose with its unit ('20 ug'); default the model's")
    p.add_argument("--no-check", action="store_true", help="local: skip the finite-difference check")
    p.add_argument("--top", type=int, default=10, help="parameters printed per output (default 10)")
    p.add_argument("--out", help="write the whole table as CSV")
    p.add_argument("--plot", metavar="PATH", help="the figure of the first output: tornado (local), μ*–σ (morris) or "
                   "Sobol bars (PNG, SVG or PDF by the suffix)")
    p.add_argument("--json")
    p.set_defaults(func=cmd_sensitivity)

    p = sub.add_parser("scan", aliases=["design"], help="outputs over a grid of particle sizes, coatings and doses",
                       description="Design scan: each combination of --size, --coating and --dose is a particle; "
                                   "prints a table of the outputs (default DE24, DE168, DEmax) and writes it as CSV.")
    model_args(p)
    p.add_argument("--size", help="core diameters in nm, e.g. 10,50,100")
    p.add_argument("--coating", help="coatings, e.g. none,PEG,PEG2k (PEG with its molecular weight: PEG5k, PEG2000; PEG alone is 5 kDa)")
    p.add_argument("--dose", help="doses: numbers in mg/kg or with a unit ('20 ug'), comma-separated")
    p.add_argument("--output", default="DE24,DE168,DEmax", help="comma-separated outputs as for `nanopk sensitivity`")
    p.add_argument("--param", action="append", help="NAME=VALUE[,NAME=VALUE...]: parameter overrides for every particle")
    p.add_argument("--out", help="write the table as CSV")
    p.add_argument("--plot", metavar="PATH", help="the first output against hydrodynamic diameter per coating at PATH, "
                   "and its heat map (coating × size) at PATH-heatmap (PNG, SVG or PDF)")
    p.add_argument("--json")
    p.set_defaults(func=cmd_scan)

    p = sub.add_parser("population", help="a virtual population: outputs and prediction bands over drawn parameters",
                       description="Draws N parameter sets, ln p = ln p̂ + s·z per parameter named in --spread (the SD s "
                                   "of ln p is yours to state), simulates them all and prints each output's median and "
                                   "5th–95th percentiles; --plot draws the prediction band of the time courses.")
    model_args(p)
    p.add_argument("--spread", required=True, help="NAME=S[,NAME=S...]: the SD of ln p of each varied parameter")
    p.add_argument("--n", type=int, default=200, help="virtual animals (default 200)")
    p.add_argument("--output", default="DE24", help="comma-separated outputs as for `nanopk sensitivity` (default DE24)")
    p.add_argument("--param", action="append", help="NAME=VALUE[,NAME=VALUE...]: the centres p̂ other than the model's")
    p.add_argument("--times", default="0.1:168:60", help="times of the band (h): 1,4,24 or start:stop:count")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="write each animal's parameters and outputs as CSV")
    p.add_argument("--plot", metavar="PATH", help="the 5–95 %% prediction band and median of blood, liver, spleen and tumour")
    p.add_argument("--json")
    p.set_defaults(func=cmd_population)

    p = sub.add_parser("serve", help="the web page: fit, compare coatings, design a particle, browse the models",
                       description="Start the local web application (Shiny for Python; needs the web extra, "
                                   "pip install 'nanopk[web]'). It binds 127.0.0.1 unless --host says otherwise.")
    p.add_argument("--port", type=int, default=8050, help="TCP port (default 8050)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.set_defaults(func=cmd_serve)

    from .calibrate.commands import add_parsers as add_calibration_parsers  # calibrate, predict

    add_calibration_parsers(sub)
    for p in set(sub.choices.values()):  # -v/-q/--progress also after the command (nanopk fit ... -v)
        _add_verbosity(p, top=False)
    return parser


def _add_verbosity(p, top: bool) -> None:
    """``-v/--verbose`` (INFO; twice: DEBUG), ``-q/--quiet`` (errors only), ``--progress``/``--no-progress``."""
    default = {} if top else {"default": argparse.SUPPRESS}  # after the command: only when given
    if top:
        p.set_defaults(verbose=0, quiet=False, progress=None)
    taken = p._option_string_actions  # a command's own option of the same name wins (meta's --no-progress)
    if "-v" not in taken and "--verbose" not in taken:
        p.add_argument("-v", "--verbose", action="count", help="log what nanopk does on stderr (-vv: debug)", **default)
    if "-q" not in taken and "--quiet" not in taken:
        p.add_argument("-q", "--quiet", action="store_true", help="log errors only", **default)
    if "--progress" not in taken:
        p.add_argument("--progress", action="store_const", const=True, dest="progress",
                       help="progress bars on stderr even when it is not a terminal", **default)
    if "--no-progress" not in taken:
        p.add_argument("--no-progress", action="store_const", const=False, dest="progress",
                       help="no progress bars", **default)


class _LogHandler(logging.StreamHandler):
    """Log lines on stderr (``nanopk: INFO nanopk.batch: ...``)."""

    def __init__(self):
        super().__init__(sys.stderr)
        self.setFormatter(logging.Formatter("nanopk: %(levelname)s %(name)s: %(message)s"))


def _configure_logging(args):
    """The ``nanopk`` logger's level and handler for one command; returns what undoes it."""
    from .progress import set_progress

    level = logging.ERROR if args.quiet else {0: logging.WARNING, 1: logging.INFO}.get(args.verbose or 0, logging.DEBUG)
    logger = logging.getLogger("nanopk")
    handler = _LogHandler()
    previous = logger.level, logger.propagate
    logger.setLevel(level)
    logger.addHandler(handler)
    logger.propagate = False  # one line per record, not a second one from a root handler
    progress = args.progress if args.progress is not None else (False if getattr(args, "no_progress", False) else None)
    set_progress(progress)

    def undo():
        logger.removeHandler(handler)
        logger.setLevel(previous[0])
        logger.propagate = previous[1]
        set_progress(None)

    return undo


def cmd_serve(args):
    """``nanopk serve``: run the web page until interrupted (see :mod:`nanopk.web`)."""
    from .web import serve

    serve(host=args.host, port=args.port)


#: Options that name a file or folder the command writes, and whether it is a folder.
_OUTPUTS = {"json": False, "plot": False, "out": False, "sbml": False, "c": True, "store": False}


def _check_outputs(args) -> None:
    """Refuse, before any work, an output path whose folder is missing or not writable.

    A fit can take a minute; finding out afterwards that ``--json results/fit.json``
    cannot be written loses it.
    """
    for option, is_folder in _OUTPUTS.items():
        value = getattr(args, option, None)
        if not value:
            continue
        path = Path(value)
        if path.is_dir() and not is_folder:
            raise NanopkError(f"--{option} {value}: is a folder; give a file name, e.g. {path / ('out.' + option)}")
        folder = path if is_folder and path.is_dir() else path.parent
        if not folder.exists():
            raise NanopkError(f"--{option} {value}: the folder {str(folder)!r} does not exist; create it or choose another path")
        if not os.access(folder, os.W_OK) or (path.exists() and not path.is_dir() and not os.access(path, os.W_OK)):
            raise NanopkError(f"--{option} {value}: {'the folder ' + repr(str(folder)) if not os.access(folder, os.W_OK) else 'the file'} "
                              "is not writable; choose another path")


def _os_error(exc: OSError) -> str:
    """One line for an I/O error: what could not be done to which path, and why."""
    target = f" {exc.filename!r}" if exc.filename else ""
    reason = exc.strerror or str(exc)
    return f"cannot read or write{target}: {reason}"


def main(argv=None) -> int:
    """Run the command line; the exit status (0 ok, 1 ran but a fit failed, 2 bad input)."""
    args = build_parser().parse_args(argv)
    from .errors import DataWarning, FitWarning  # not from .data/.fit: those import pandas, pint and lmfit

    undo_logging = _configure_logging(args)
    try:
        _check_outputs(args)
        with warnings.catch_warnings():
            # Fit and data warnings are part of the printed report (and of --json); do not
            # repeat them on stderr as Python warnings.
            warnings.simplefilter("ignore", FitWarning)
            warnings.simplefilter("ignore", DataWarning)
            status = args.func(args)
    except NanopkError as exc:
        print(f"nanopk {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except ImportError as exc:
        print(f"nanopk {args.command}: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a path a user gave: missing, unreadable, read-only, full
        print(f"nanopk {args.command}: error: {_os_error(exc)}", file=sys.stderr)
        return 2
    except sqlite3.Error as exc:  # --store names a file that is not nanopk's results store
        print(f"nanopk {args.command}: error: cannot use the results store {getattr(args, 'store', None) or 'meta.sqlite'!r}: "
              f"{exc}; give --store a new file name or a store nanopk wrote", file=sys.stderr)
        return 2
    finally:
        undo_logging()
    return int(status or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
