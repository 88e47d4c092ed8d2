"""Population priors by default (issue 21, build 1): the bundled table, the default, ``--no-prior``, shrinkage.

The table's tumour rows are the between-study distribution of the Chou et al. 2023 fits
of the 378 Nano-Tumor Database datasets (UFPBPK/Nano-AI-PBPK-G1 ``Model_dataset.xlsx``,
J Control Release 2023;361:53, doi:10.1016/j.jconrel.2023.07.040); SCIENCE.md §2 gives
their medians.  Tests that read the raw workbook skip when the shared data
(``../shared/datasets/raw`` beside the clone) is absent.
"""
import csv
import importlib.util
import json
import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import nanopk
from nanopk import FitError
from nanopk.cli import main
from nanopk.fit import FitWarning
from nanopk.fit.priors import Z95, population_priors, population_table

ROOT = Path(__file__).resolve().parents[1]
RAW = ROOT.parent / "shared" / "datasets" / "raw"
WORKBOOK = RAW / "UFPBPK__Nano-AI-PBPK-G1" / "Model_dataset.xlsx"
TABLE = ROOT / "src" / "nanopk" / "data" / "population_priors.csv"
needs_raw = pytest.mark.skipif(not WORKBOOK.is_file(), reason=f"shared Model_dataset.xlsx not found at {WORKBOOK}")

#: Medians of the Lin-lab tumour parameters over the 378 datasets, as SCIENCE.md §2 states them (rounded).
SCIENCE_MEDIANS = {"Kmax_tumour": 0.29, "K50_tumour": 12.0, "n_tumour": 1.9, "Krelease_tumour": 0.097,
                   "PATC_tumour": 0.003, "P_tumour": 0.08}


@needs_raw
def test_table_is_the_database_spread():
    """Each row's median and ln-SD are recomputed from Model_dataset.xlsx here (pandas, not the tool's code
    path) over the 371 datasets outside the bundled studies (the bundled fits are judged with these priors):
    median to 1e-5, ln-SD to 1e-4, ln_sd = max(raw, 0.5). Over all 378 the medians are SCIENCE.md §2's (2 %)."""
    frame = pd.read_excel(WORKBOOK)
    table = population_table()
    bundled = _tool().database_frame(RAW)["bundled"].to_numpy()
    assert len(frame) == 378 and len(table) == 9 and bundled.sum() == 7
    kept = frame[~bundled]
    for name, row in table.items():
        v = pd.to_numeric(kept[row["database_column"]], errors="coerce")
        logs = np.log(v[v > 0].to_numpy())
        assert row["n_datasets"] == logs.size == 371
        assert row["median"] == pytest.approx(math.exp(np.median(logs)), rel=1e-5)
        assert row["ln_sd_raw"] == pytest.approx(np.std(logs, ddof=1), abs=1e-4)
        assert row["ln_sd"] == pytest.approx(max(np.std(logs, ddof=1), 0.5), abs=1e-4)
        assert "10.1016/j.jconrel.2023.07.040" in row["source"] and "left out" in row["source"]
    for name, median in SCIENCE_MEDIANS.items():
        column = table[name]["database_column"]
        v = pd.to_numeric(frame[column], errors="coerce")
        assert math.exp(np.median(np.log(v[v > 0]))) == pytest.approx(median, rel=0.02)


@needs_raw
def test_tool_writes_the_bundled_table():
    """tools/population_priors.py, run on the shared workbook where it lies, gives the bundled CSV's rows (its
    --with-mps rows need the NTUA refits, minutes: their aggregation is tested on given fits below)."""
    tool = _tool()
    with open(TABLE, encoding="utf-8") as fh:
        bundled = list(csv.DictReader(fh))
    assert [{k: str(v) for k, v in r.items()} for r in tool.table(RAW)] == bundled and len(bundled) == 9


def _tool():
    spec = importlib.util.spec_from_file_location("population_priors_tool", ROOT / "tools" / "population_priors.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    return tool


MPS = ["Kmax_liver", "K50_liver", "Kmax_spleen", "K50_spleen", "Kmax_kidney", "Kmax_lung"]


def test_bundled_table_has_no_mps_rows():
    """The bundled table holds the 9 tumour rows only (no ``models`` restriction): the NTUA MPS rows are written
    only with --with-mps, because they made the bundled tumour studies' default fits worse (tool docstring);
    every MPS parameter of mouse_tumour is reported as without a population prior."""
    table = population_table()
    assert len(table) == 9 and all(r["models"] == [] for r in table.values())
    priors, without = population_priors("mouse_tumour", MPS)
    assert priors == {} and list(without) == MPS
    assert all("no population prior in the bundled table" in w for w in without.values())


def test_a_row_with_models_applies_to_those_models_only(monkeypatch):
    """A row whose ``models`` column names mouse_pbpk and mouse_tumour (as the tool writes the MPS rows) gives
    those models its prior and refuses rat_pbpk's parameter of the same name and unit, saying why."""
    from nanopk.fit import priors as priors_module

    row = {"parameter": "Kmax_liver", "median": 1.31942, "ln_sd": 1.775, "ln_sd_raw": 1.775, "unit": "1/h",
           "n_datasets": 45, "database_column": "x", "source": "NTUA", "models": ["mouse_pbpk", "mouse_tumour"]}
    monkeypatch.setattr(priors_module, "_rows", lambda: (row,))
    assert population_priors("mouse_tumour", ["Kmax_liver"]) == ({"Kmax_liver": (1.31942, 1.775)}, {})
    priors, without = population_priors("rat_pbpk", ["Kmax_liver"])
    assert priors == {} and without == {"Kmax_liver": "the table's prior for 'Kmax_liver' is of model(s) mouse_pbpk, "
                                                      "mouse_tumour only, not 'rat_pbpk' (fitted by maximum likelihood)"}


def test_mps_aggregation_is_one_value_per_study():
    """tools/population_priors.mps_table on given instance fits: a non-converged fit and an at-bound estimate are
    left out (1 of 7 converged fits on a bound: under MAX_AT_BOUND), each study contributes the geometric median
    of its instances, and median / ln-SD are those of the per-study values (by hand: studies 1, 2, 3, 4, 5 at
    0.1, 0.2 (geo-median of 0.1 and 0.4), 0.4, 0.8, 1.6 ->
    median 0.4, ln-SD = SD(ln 2 · (−2, −1, 0, 1, 2)) = ln 2 · √2.5; 1e-4)."""
    tool = _tool()

    def fit(study, value, converged=True, at_bound=()):
        return {"name": f"s{study}", "study": study, "vary": ["Kmax_liver"], "converged": converged,
                "success": converged, "params": {"Kmax_liver": value}, "at_bound": list(at_bound), "error": None}

    fits = [fit(1, 0.1), fit(2, 0.1), fit(2, 0.4), fit(3, 0.4), fit(4, 0.8), fit(5, 1.6),
            fit(5, 100.0, converged=False), fit(6, 50.0, at_bound=["Kmax_liver"])]
    (row,) = tool.mps_table(fits)
    assert row["parameter"] == "Kmax_liver" and row["n_datasets"] == 5
    assert float(row["median"]) == pytest.approx(0.4, rel=1e-5)
    assert float(row["ln_sd_raw"]) == pytest.approx(math.log(2) * math.sqrt(2.5), abs=1e-4)
    assert "5 studies (6 mouse IV instances" in row["source"] and row["models"] == "mouse_pbpk mouse_tumour"
    assert tool.mps_table(fits[:4]) == []  # 3 studies < MIN_STUDIES: no row
    # 3 of the 9 converged fits on a bound (> MAX_AT_BOUND = 25 %): the kept ones are censored, no row.
    assert tool.mps_table(fits + [fit(7, 1e-9, at_bound=["Kmax_liver"]), fit(8, 1e-9, at_bound=["Kmax_liver"])]) == []


def test_table_agrees_with_meta_published_prior():
    """nanopk meta's published prior (POPULATION_PRIOR: all 378 datasets, for the Cheng 2020 reproduction)
    and the table (the 7 bundled datasets left out) differ only by those 7: medians to 3.5 % except n_tumour
    (1.70 vs meta's 1.9: the bundled Wang/Arnida/Liu fits have high n), ln-SDs to 0.03."""
    from nanopk.meta.runner import POPULATION_PRIOR

    table = population_table()
    for name, (median, sd) in POPULATION_PRIOR.items():
        assert table[name]["median"] == pytest.approx(median, rel=0.12 if name == "n_tumour" else 0.035)
        assert table[name]["ln_sd"] == pytest.approx(sd, abs=0.03)
    assert table["n_tumour"]["median"] == pytest.approx(1.70, rel=0.01)


def test_model_names_map_onto_the_table():
    """mouse_tumour's tumour parameters get the table's prior; its MPS uptake has none (named, with why);
    a model without the parameter gets none either."""
    priors, without = population_priors("mouse_tumour", ["Kmax_tumour", "Kmax_liver", "P_tumour"])
    assert priors == {"Kmax_tumour": (0.29, 1.5627), "P_tumour": (0.08, 1.3223)}
    assert list(without) == ["Kmax_liver"] and "no population prior in the bundled table" in without["Kmax_liver"]
    priors, without = population_priors("one_compartment_iv", ["Kmax_tumour"])
    assert priors == {} and without == {"Kmax_tumour": "model 'one_compartment_iv' has no parameter 'Kmax_tumour'"}


def test_a_wrong_priors_value_is_refused():
    """A misspelt 'population' and a non-dict are refused before fitting, saying what is valid."""
    one = nanopk.load_model("one_compartment_iv")
    df = pd.DataFrame({"time_h": [1.0, 2.0], "tissue": "central", "value": [80.0, 60.0]})
    df.attrs.update(name="a", dose_ug=100.0)
    with pytest.raises(FitError, match=r"`priors` must be 'population' .*None or False .*a dict .*got 'populaton'"):
        nanopk.fit(one, df, vary=["k10"], priors="populaton")
    with pytest.raises(FitError, match=r"`priors` must be 'population', None, False or a dict .*\(got int\)"):
        nanopk.fit(one, df, vary=["k10"], priors=3)


#: The README's study with the two tumour parameters varied: by maximum likelihood both are unidentifiable and
#: tumour uptake runs to its bound (issue 21's complaint on unseen studies); the priors keep both inside.
VARY = ["Kmax_tumour", "P_tumour"]


@pytest.fixture(scope="module")
def fits():
    """The Arnida 2010 sphere fit (2 tumour parameters) by default and with priors=None: (to_dict(), report())."""
    out = {}
    for mode, priors in (("prior", "population"), ("none", None)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FitWarning)
            result = nanopk.fit("mouse_tumour", "arnida2010_peg_au_sphere_50nm", vary=VARY, priors=priors)
        out[mode] = (json.loads(result.to_json()), result.report())
    return out


def test_default_fit_applies_the_population_priors(fits):
    """Default: the table's log-normal priors on Kmax_tumour and P_tumour; both estimates inside their bounds
    (Kmax_tumour 0.4139 /h [0.0232, 7.37], P_tumour 0.02027 [0.00202, 0.203], χ² 414.55, prior penalty 1.130;
    1 % on the estimates and penalty, 3 % on the interval ends, 1e-4 on χ²); the report shows prior,
    estimate, z and shrinkage, and z and shrinkage follow from the JSON's own figures (1e-9)."""
    payload, text = fits["prior"]
    assert payload["priors"] == {"Kmax_tumour": {"median": 0.29, "ln_sd": 1.5627, "distribution": "lognormal"},
                                 "P_tumour": {"median": 0.08, "ln_sd": 1.3223, "distribution": "lognormal"}}
    assert payload["options"]["prior_kind"] == "population" and payload["metrics"]["n_priors"] == 2
    params = payload["params"]
    assert params["Kmax_tumour"]["value"] == pytest.approx(0.4139, rel=0.01)
    assert params["Kmax_tumour"]["ci95"] == pytest.approx([0.0232, 7.37], rel=0.03)
    assert params["P_tumour"]["value"] == pytest.approx(0.02027, rel=0.01)
    assert params["P_tumour"]["ci95"] == pytest.approx([0.00202, 0.203], rel=0.03)
    assert payload["metrics"]["chisqr"] == pytest.approx(414.55, rel=1e-4)
    assert payload["metrics"]["prior_penalty"] == pytest.approx(1.130, rel=0.01)
    assert not payload["flags"]["at_bound"] and not payload["flags"]["unidentifiable"]
    summary = payload["prior_summary"]
    assert summary["kind"] == "population" and summary["without_prior"] == {}
    for name in VARY:
        e, p = summary["parameters"][name], params[name]
        m, s = payload["priors"][name]["median"], payload["priors"][name]["ln_sd"]
        assert e["z"] == pytest.approx((math.log(p["value"]) - math.log(m)) / s, rel=1e-9)
        assert e["shrinkage"] == pytest.approx(1 - p["stderr_log"] / s, rel=1e-9)
        assert e["prior"]["ci95"] == pytest.approx([m * math.exp(-Z95 * s), m * math.exp(Z95 * s)], rel=1e-12)
        assert 0 < e["shrinkage"] < 1
    assert "Population priors (MAP estimate" in text and "shrinkage = 1 − posterior SD/prior SD" in text
    z = summary["parameters"]["Kmax_tumour"]["z"]
    assert "0.29 [0.0136, 6.2]" in text and f"{z:+6.2f}" in text


def test_no_prior_is_the_maximum_likelihood_fit(fits):
    """priors=None: no prior rows (penalty 0), the report says so, and the fit is the one issue 21 complains of:
    Kmax_tumour on its upper bound 30 /h, both parameters unidentifiable, χ² 413.19 (1e-4) — below the
    prior fit's 414.52: the priors cost 1.3 in χ² and keep both parameters inside their bounds."""
    payload, text = fits["none"]
    assert payload["priors"] == {} and payload["options"]["prior_kind"] == "none"
    assert payload["metrics"]["prior_penalty"] == 0.0 and payload["metrics"]["n_priors"] == 0
    assert payload["prior_summary"]["parameters"]["Kmax_tumour"]["prior"] is None
    assert "No priors: maximum-likelihood fit" in text
    assert payload["params"]["Kmax_tumour"]["value"] == pytest.approx(30.0, rel=1e-6)
    assert {"name": "Kmax_tumour", "side": "upper"} in payload["flags"]["at_bound"]
    assert set(payload["flags"]["unidentifiable"]) == {"Kmax_tumour", "P_tumour"}
    assert payload["metrics"]["chisqr"] == pytest.approx(413.19, rel=1e-4)
    assert payload["metrics"]["chisqr"] < fits["prior"][0]["metrics"]["chisqr"]


class _Stop(nanopk.NanopkError):
    pass


def test_cli_passes_the_default_and_no_prior(monkeypatch, capsys):
    """nanopk fit gives fit() priors='population' by default and None with --no-prior (the fit itself is
    stopped after the call is recorded: the figures of both are pinned above)."""
    import nanopk.fit as fit_module

    calls = []

    def spy(*args, **kwargs):
        calls.append(kwargs.get("priors", "missing"))
        raise _Stop("recorded")

    monkeypatch.setattr(fit_module, "fit", spy)
    argv = ["fit", "arnida2010_peg_au_sphere_50nm", "--model", "mouse_tumour", "--vary", "Kmax_tumour"]
    assert main(argv) == 2 and main(argv + ["--no-prior"]) == 2
    assert calls == ["population", None]
    assert "recorded" in capsys.readouterr().err


def test_explicit_priors_still_win():
    """An explicit dict gives exactly those priors (kind 'given'), not the table's."""
    one = nanopk.load_model("one_compartment_iv")
    df = pd.DataFrame({"time_h": [1.0, 2.0, 4.0], "tissue": "central", "value": [80.0, 66.0, 45.0]})
    df.attrs.update(name="a", dose_ug=100.0)
    result = nanopk.fit(one, df, vary=["k10"], priors={"k10": (0.1, 0.5)}, warn=False)
    assert result.options["prior_kind"] == "given" and result.priors == {"k10": (0.1, 0.5)}
    plain = nanopk.fit(one, df, vary=["k10"], warn=False)  # default, but k10 has no population prior
    assert plain.options["prior_kind"] == "population" and plain.priors == {}
    assert "No population prior for the varied parameter(s)" in plain.report()


#: Truth of the synthetic study: inside the population priors (|z| < 1), away from the model's defaults.
TRUTH = {"Kmax_tumour": 0.6, "P_tumour": 0.15, "Krelease_tumour": 0.05, "Kmax_liver": 0.5}
TISSUES = ("blood", "liver", "spleen", "tumour")
TIMES = (1.0, 4.0, 24.0, 48.0, 168.0)
SIGMA = 0.15


N_SEEDS = 20


def synthetic_study(model, seed):
    """4 tissues × 5 times of the mouse_tumour model at :data:`TRUTH`, 15 % log-normal noise."""
    sim = model.with_parameters(TRUTH).simulate(list(TIMES))
    rng = np.random.default_rng(seed)
    rows = [(t, tissue, float(sim.loc[t, tissue]) * math.exp(SIGMA * rng.standard_normal()))
            for tissue in TISSUES for t in TIMES]
    df = pd.DataFrame(rows, columns=["time_h", "tissue", "value"])
    df.attrs.update(name=f"synthetic{seed}", dose_ug=float(model.parameters["dose"].value))
    return df


def test_synthetic_studies_are_recovered_inside_the_intervals():
    """20 synthetic lab studies from known parameters (4 tissues × 5 times, 15 % log-normal noise, seeds
    0–19), fitted with the default population priors on the three tumour parameters (none on Kmax_liver,
    which the report lists): every fit converges, ≥ 90 % of the 80 nominal-95 % intervals hold their truth
    (issue 21's coverage criterion), and each parameter's ≥ 80 %."""
    model = nanopk.load_model("mouse_tumour")
    covered = {name: 0 for name in TRUTH}
    for seed in range(N_SEEDS):
        result = nanopk.fit(model, synthetic_study(model, seed), vary=list(TRUTH), weighting="none",
                            error_params={"sigma": SIGMA}, scale_covar=False, warn=False)
        assert result.success and result.options["prior_kind"] == "population"
        assert set(result.priors) == {"Kmax_tumour", "P_tumour", "Krelease_tumour"}
        if seed == 0:
            assert result.prior_summary()["parameters"]["Kmax_liver"]["prior"] is None
            assert "no population prior in the bundled table" in result.report()
        for name, value in TRUTH.items():
            lo, hi = result.ci95(name)
            covered[name] += lo < value < hi
    assert sum(covered.values()) >= 0.9 * N_SEEDS * len(TRUTH), covered
    assert min(covered.values()) >= 0.8 * N_SEEDS, covered
