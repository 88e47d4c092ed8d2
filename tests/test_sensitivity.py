"""nanopk.sensitivity: local coefficients against closed forms, Sobol and Morris on models whose answer is known."""
import math

import numpy as np
import pandas as pd
import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st

import nanopk
from nanopk.cli import main
from nanopk.errors import NanopkError
from nanopk.sensitivity import SensitivityError, local_sensitivity, morris, parse_outputs, sensitivity, sobol

#: A two-compartment model at t = 1e-3 h is linear in k10 and k12 to ~1e-6:
#: central = 100·(1 − (k10 + k12)·t) + O(t²); k21 enters only at O(t²).
SHORT = "central@0.001h"
RANGES = {"k10": (0.1, 0.3), "k12": (0.1, 0.5), "k21": (0.1, 1.0)}


@pytest.fixture(scope="module")
def one():
    return nanopk.load_model("one_compartment_iv")


@pytest.fixture(scope="module")
def two():
    return nanopk.load_model("two_compartment_iv")


@settings(max_examples=12, deadline=None)
@given(k=st.floats(0.01, 0.4), t=st.sampled_from([0.5, 1.0, 4.0, 24.0]))
def test_one_compartment_coefficient_is_minus_k_t(one, k, t):
    """C = C0·e^(−k t) gives d ln C/d ln k = −k·t and d ln C/d ln V = 0 (to 1e-6, for k·t ≤ 9.6: C ≥ 7e-3 %ID)."""
    table = local_sensitivity(one, f"central@{t:g}h", params={"k10": k}, check=False, rtol=1e-10, atol=1e-14)
    row = table.set_index("parameter").loc["k10"]
    assert row["coefficient"] == pytest.approx(-k * t, abs=1e-6)
    assert row["output_value"] == pytest.approx(100 * math.exp(-k * t), rel=1e-7)
    assert table.set_index("parameter").loc["V1", "coefficient"] == 0.0


def _two_compartment_closed_form(t_h: float) -> dict:
    """d ln central(t)/d ln k of the bi-exponential solution (Gibaldi & Perrier 1982, ch. 2), differentiated by SymPy."""
    k10, k12, k21, t = sp.symbols("k10 k12 k21 t", positive=True)
    s, p = k10 + k12 + k21, k10 * k21
    alpha, beta = (s + sp.sqrt(s**2 - 4 * p)) / 2, (s - sp.sqrt(s**2 - 4 * p)) / 2
    central = 100 * ((alpha - k21) * sp.exp(-alpha * t) + (k21 - beta) * sp.exp(-beta * t)) / (alpha - beta)
    at = {k10: 0.2, k12: 0.5, k21: 0.1, t: t_h}
    return {str(k): float((sp.diff(sp.log(central), k) * k).subs(at)) for k in (k10, k12, k21)}


def test_two_compartment_coefficients_match_the_closed_form(two):
    """All three normalised coefficients of central(24 h) equal the differentiated bi-exponential to 1e-6."""
    table = local_sensitivity(two, "central@24h", check=False, rtol=1e-10, atol=1e-14).set_index("parameter")
    for name, expected in _two_compartment_closed_form(24.0).items():
        assert table.loc[name, "coefficient"] == pytest.approx(expected, abs=1e-6)


def test_forward_sensitivities_agree_with_finite_differences(two):
    """Exact and central-difference coefficients agree to 1e-5 for point, average and AUC outputs."""
    table = local_sensitivity(two, "central@1h,AUC_central,peripheral@24h,AUC_eliminated@24h")
    assert len(table) == 4 * 4
    assert table["fd_difference"].abs().max() < 1e-5
    assert not table["fd_one_sided"].any()
    ranks = table[table["output"] == "central@1h"]["parameter"].tolist()
    assert ranks[-1] == "V1"  # %ID does not depend on the volume: ranked last with S = 0


def test_one_sided_difference_at_a_bound_is_flagged(two):
    """A parameter at its upper bound gets a one-sided difference, flagged, still within O(h) of the exact value."""
    table = local_sensitivity(two, "central@4h", parameters=["k10"], params={"k10": 100.0}).iloc[0]
    assert table["fd_one_sided"]
    assert table["coefficient_fd"] == pytest.approx(table["coefficient"], rel=2e-3)


def test_sobol_of_an_additive_model_gives_its_known_indices(two):
    """Linear additive y: S1 = ST = w_i²/Σw² (0.2, 0.8, 0) within 0.03, the 95 % half-widths cover the truth."""
    table = sobol(two, SHORT, parameters=["k10", "k12", "k21"], ranges=RANGES, samples=256, workers=1).set_index("parameter")
    expected = {"k10": 0.2, "k12": 0.8, "k21": 0.0}  # uniform widths 0.2, 0.4 (k21: none at first order)
    for name, value in expected.items():
        for index in ("S1", "ST"):
            assert table.loc[name, index] == pytest.approx(value, abs=0.03)
            assert abs(table.loc[name, index] - value) <= table.loc[name, f"{index}_conf"] + 1e-6
    assert table.attrs["n_simulations"] == 256 * (3 + 2)
    assert list(table["rank"]) == [1, 2, 3] and table.index[0] == "k12"


def test_morris_ranks_the_dominant_parameter_first(two):
    """Elementary effects of a linear y are exact: μ*(k12) = 2·μ*(k10) (twice the range), k21 ≈ 0."""
    table = morris(two, SHORT, parameters=["k10", "k12", "k21"], ranges=RANGES, trajectories=8, workers=1)
    assert list(table["parameter"]) == ["k12", "k10", "k21"]
    mu = table.set_index("parameter")["mu_star"]
    assert mu["k12"] / mu["k10"] == pytest.approx(2.0, rel=2e-3)
    assert mu["k12"] == pytest.approx(100 * 1e-3 * 0.4, rel=2e-3)  # a·(high − low), a = 100·t
    assert mu["k21"] < 1e-3 * mu["k10"]
    assert table.attrs["n_simulations"] == 8 * 4


def test_global_default_parameters_are_screened_locally(two):
    """Without `parameters`, Morris analyses the free parameters ordered by local |S| (V1 has S = 0, last)."""
    table = morris(two, "central@24h", ranges=2.0, trajectories=4, workers=1)
    assert set(table["parameter"]) == {"k10", "k12", "k21", "V1"}
    assert table.set_index("parameter").loc["V1", "mu_star"] == 0.0
    row = table.set_index("parameter").loc["k10"]
    assert (row["low"], row["high"]) == pytest.approx((0.1, 0.4))  # factor 2 around 0.2


@pytest.mark.parametrize("outputs, match", [
    ("centrl@24h", r"outputs: 'centrl@24h' names no observable 'centrl'; did you mean 'central'.*expected <observable> one of central"),
    ("central", r"outputs: 'central' is not an output.*expected DE24, DE168, DEmax"),
    ("central@-1h", r"has no valid time '-1h'; expected a time in hours"),
    ("DE24", r"'DE24' needs a 'tumour' observable"),
    ("", r"names no output"),
])
def test_bad_outputs_are_refused_with_the_valid_forms(two, outputs, match):
    """Each unusable output names the field, the value and what is expected."""
    with pytest.raises(SensitivityError, match=match):
        parse_outputs(outputs, two.observable_names)


def test_bad_parameters_and_ranges_are_refused(two):
    """Unknown parameters, regimen parameters, reversed ranges, factors ≤ 1 and odd sample sizes are errors naming the field."""
    with pytest.raises(SensitivityError, match=r"parameters: 'k01' is not a parameter; did you mean .*'k10'.*; expected a parameter of model 'two_compartment_iv'"):
        local_sensitivity(two, "central@1h", parameters=["k01"])
    with pytest.raises(SensitivityError, match=r"parameters: 'dose' is the dosing regimen"):
        local_sensitivity(two, "central@1h", parameters=["dose"])
    with pytest.raises(SensitivityError, match=r"ranges\['k10'\]: \(0.5, 0.1\) is not a range; expected low < high inside the bounds \[1e-06, 100\] 1/h"):
        morris(two, SHORT, parameters=["k10", "k12"], ranges={"k10": (0.5, 0.1)})
    with pytest.raises(SensitivityError, match=r"ranges: 'k2' is not among the parameters analysed; did you mean 'k12'"):
        morris(two, SHORT, parameters=["k10", "k12"], ranges={"k2": (0.1, 0.2)})
    with pytest.raises(SensitivityError, match=r"factor: 0.5 is not a factor > 1"):
        morris(two, SHORT, parameters=["k10", "k12"], ranges=0.5)
    with pytest.raises(SensitivityError, match=r"samples: 100 is not a power of 2; expected a power of 2 ≥ 2, e.g. 128"):
        sobol(two, SHORT, parameters=["k10", "k12"], samples=100)
    with pytest.raises(SensitivityError, match=r"method: 'sobel' is not a method; did you mean 'sobol'"):
        sensitivity(two, SHORT, method="sobel")
    with pytest.raises(SensitivityError, match=r"dose: .* is not a single bolus at t = 0"):
        local_sensitivity(two, "central@1h", dose=[nanopk.Bolus(10.0), nanopk.Bolus(10.0, time_h=2.0)])
    assert issubclass(SensitivityError, NanopkError)


def test_cli_local_writes_the_table(tmp_path, capsys):
    """`nanopk sensitivity MODEL --output ... --out F.csv` prints the ranked coefficients and writes every row."""
    out = tmp_path / "sens.csv"
    assert main(["sensitivity", "two_compartment_iv", "--output", "central@24h", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "normalised local sensitivity" in text and "k10" in text
    table = pd.read_csv(out)
    assert list(table["parameter"]) == ["k10", "k21", "k12", "V1"]
    assert table["coefficient"].iloc[0] == pytest.approx(_two_compartment_closed_form(24.0)["k10"], abs=1e-4)


def test_cli_morris_and_errors(tmp_path, capsys):
    """`--method morris --range` runs and reports its simulations; a misspelt output exits 2 with the suggestion."""
    argv = ["sensitivity", "two_compartment_iv", "--output", SHORT, "--method", "morris", "--params", "k10,k12",
            "--range", "k10=0.1:0.3,k12=0.1:0.5", "--samples", "4", "--json", str(tmp_path / "m.json")]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "# 12 simulations" in text and "mu_star" in text
    assert main(["sensitivity", "two_compartment_iv", "--output", "centrl@1h"]) == 2
    assert "did you mean 'central'" in capsys.readouterr().err
    assert main(["sensitivity", "two_compartment_iv", "--output", SHORT, "--method", "sobol", "--params", "k10,k12",
                 "--range", "k10=0.3"]) == 2
    assert "--range: 'k10=0.3' is not valid; expected NAME=LOW:HIGH" in capsys.readouterr().err
    assert main(["sensitivity", "two_compartment_iv", "--output", SHORT, "--factor", "2"]) == 2
    assert "takes no ranges or samples" in capsys.readouterr().err


def test_sobol_indices_of_the_ishigami_function():
    """Ishigami (a=7, b=0.1) over [-π, π]³ through sobol_design and sobol_table, the two halves of
    nanopk.sensitivity.sobol: S1 = (0.3139, 0.4424, 0) and ST = (0.5576, 0.4424, 0.2437) (Ishigami &
    Homma 1990; Saltelli et al. 2008 §4.1), each within 0.03 at N = 8192, and inside its 95 % interval
    widened by 0.01."""
    pytest.importorskip("SALib")
    from nanopk.sensitivity import sobol_design, sobol_table

    a, b = 7.0, 0.1
    problem = {"num_vars": 3, "names": ["x1", "x2", "x3"], "bounds": [[-math.pi, math.pi]] * 3}
    X = sobol_design(problem, 8192, seed=1)
    y = np.sin(X[:, 0]) + a * np.sin(X[:, 1]) ** 2 + b * X[:, 2] ** 4 * np.sin(X[:, 0])
    table = sobol_table(problem, y, ["ishigami"], seed=1).set_index("parameter")
    v = a**2 / 8 + b * math.pi**4 / 5 + b**2 * math.pi**8 / 18 + 0.5
    v1 = 0.5 * (1 + b * math.pi**4 / 5) ** 2
    v2 = a**2 / 8
    v13 = b**2 * math.pi**8 * (1 / 18 - 1 / 50)
    expected = {"x1": (v1 / v, (v1 + v13) / v), "x2": (v2 / v, v2 / v), "x3": (0.0, v13 / v)}
    assert expected["x1"][1] == pytest.approx(0.5576, abs=1e-4)  # the published values, from the closed form
    for name, (s1, st) in expected.items():
        row = table.loc[name]
        assert row["S1"] == pytest.approx(s1, abs=0.03) and row["ST"] == pytest.approx(st, abs=0.03)
        assert abs(row["S1"] - s1) <= row["S1_conf"] + 0.01 and abs(row["ST"] - st) <= row["ST_conf"] + 0.01
