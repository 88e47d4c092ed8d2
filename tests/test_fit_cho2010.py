"""mouse_pbpk fitted to the bundled Cho 2010 PEG-Au biodistribution data (13 and 100 nm).

Cho WS et al., Size-dependent tissue kinetics of PEG-coated gold nanoparticles.
Toxicol Appl Pharmacol 2010;245:116 (doi:10.1016/j.taap.2010.02.013) — the data Lin et
al. (Nanotoxicology 2016;10:162) calibrated the Lin-lab mouse nano-PBPK on.  The fitted
parameters and goodness of fit are printed (``pytest -s``).

What these data allow.  The bundled tables (digitised by the NTUA database; see the
sidecars' notes) do not conserve mass at the stated dose, 0.85 mg/kg in a 20 g mouse:

- 13 nm: the modelled organs sum to 93, 84, 113, 289, 269, 232 and 129 %ID at 0.5 h …
  180 d (liver alone 247 %ID at 7 d), so no mass-conserving model comes within 2-fold
  of liver at 7, 30 and 90 d.  Ordinary (log-scale) least squares still puts 77 % of
  the points within 2-fold.
- 100 nm: the modelled organs hold only 18–39 %ID at every time from 30 min to 180 d,
  liver flat at 15–35 %ID for six months, and blood jumps 12-fold and back between 30,
  90 and 180 d (0.04 → 0.48 → 0.06 %ID).  mouse_pbpk has no phagocytic reservoir outside
  the measured organs (SCIENCE.md §1: in the Lin-lab structure every organ but brain has
  one), so the unmeasured dose must sit in rest-of-body and muscle tissue.  Least
  squares lets the erratic blood points pull every organ (best found by a global
  search: 63 % within 2-fold); a Cauchy loss (f_scale = 0.3 log units) treats them as
  the outliers they are and fits the organs: 71 % within 2-fold.

Start values come from an offline global search (differential evolution, 30 000–40 000
evaluations per parameter set, then least squares), refined locally again when ``blood``
became whole blood (arterial, venous and capillary; nanopk.mechanisms.circulation); the
fits here are that final local refinement, so each test runs in seconds.
"""
import pytest

import nanopk
from nanopk.fit import FitWarning

#: 13 nm: phagocytic uptake of liver, spleen, lung; distribution into spleen, kidney and
#: brain tissue and brain permeability (the early organ %ID).  Liver release is fixed at 0
#: (:data:`FIXED_13NM`): since ``blood`` is whole blood (arterial, venous and capillary;
#: nanopk.mechanisms.circulation) the data drive it to its lower bound, where it is not
#: estimable.
VARY_13NM = {
    "Kmax_liver": 0.5082, "K50_liver": 19.4, "Kmax_spleen": 3.717, "K50_spleen": 33.25,
    "P_spleen": 1.073, "P_kidney": 1.33, "Kmax_lung": 4.205, "P_brain": 1.454, "PAC_brain": 3.52e-5,
}
FIXED_13NM = {"Krelease_liver": 0.0}

#: 100 nm: immediate phagocytic uptake (Lin 2016: large PEG-Au is taken up at once from
#: blood) with release, in liver and spleen; rest-of-body and muscle tissue as the
#: reservoir of the unmeasured dose; kidney uptake.
VARY_100NM = {
    "Kmax_liver": 99.98, "K50_liver": 0.3213, "Krelease_liver": 0.4218, "Kmax_spleen": 96.84, "K50_spleen": 0.1853,
    "Krelease_spleen": 0.09264, "PAC_rest": 0.00868, "P_rest": 10.0, "PAC_muscle": 0.03026, "P_muscle": 10.0,
    "Kmax_kidney": 0.001,
}


@pytest.fixture(scope="module")
def mouse():
    return nanopk.load_model("mouse_pbpk")


def _fit(mouse, name, start, fixed=None, **options):
    ds = nanopk.read_dataset(name)
    model = mouse.with_parameters(fixed) if fixed else mouse
    with pytest.warns(FitWarning, match=r"excluded 7 row\(s\) of 'lymph_node'.*has no observable 'lymph_node'") as record:
        result = nanopk.fit(model, ds, vary=list(start), start=start, **options)
    text = str(record[0].message)
    assert "'heart'" in text  # every excluded tissue is named
    print("\n" + result.report())
    return result


@pytest.fixture(scope="module")
def fit13(mouse):
    return _fit(mouse, "cho2010_peg_au_13nm", VARY_13NM, FIXED_13NM)


@pytest.fixture(scope="module")
def fit100(mouse):
    return _fit(mouse, "cho2010_peg_au_100nm", VARY_100NM, loss="cauchy", f_scale=0.3)


def test_cho2010_13nm_within_two_fold(fit13):
    """13 nm PEG-Au: the fit converges and ≥ 70 % of the 39 points are within 2-fold."""
    m = fit13.metrics
    assert fit13.success, fit13.message
    assert m["n_points"] == 39
    assert m["frac_within_2fold"] >= 0.70
    assert m["frac_within_3fold"] >= 0.85
    # The three liver points the data put above 200 %ID are the ones no model can reach.
    liver = fit13.predictions.query("tissue == 'liver' and time_h in [168.0, 720.0, 2160.0]")
    assert (liver["observed"] > 200).all() and (liver["fold"] < 0.5).all()


def test_cho2010_13nm_delayed_uptake(fit13):
    """Lin 2016: 13 nm particles reach the liver's phagocytes with a delay of hours (K50 ≫ 1 h)."""
    assert fit13.params["K50_liver"].value > 5.0


def test_cho2010_100nm_within_two_fold(fit100):
    """100 nm PEG-Au (Cauchy loss): the fit converges and ≥ 70 % of the 35 points are within 2-fold."""
    m = fit100.metrics
    assert fit100.success, fit100.message
    assert m["n_points"] == 35 and m["loss"] == "cauchy"
    assert m["frac_within_2fold"] >= 0.70


def test_cho2010_100nm_immediate_uptake(fit100):
    """Lin 2016: 100 nm particles are taken up at once — liver and spleen uptake half-maximal
    within the first half hour (before the first sample at 0.5 h), at the largest admitted rate."""
    assert fit100.params["K50_liver"].value < 0.5
    assert fit100.params["K50_spleen"].value < 0.5
    assert ("Kmax_liver", "upper") in fit100.flags["at_bound"]


def test_size_dependence_of_uptake(fit13, fit100):
    """Liver uptake starts earlier and faster for 100 nm than for 13 nm particles (Lin 2016)."""
    assert fit100.params["K50_liver"].value < fit13.params["K50_liver"].value
    assert fit100.params["Kmax_liver"].value > fit13.params["Kmax_liver"].value
