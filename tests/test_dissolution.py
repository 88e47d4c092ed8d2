"""Dissolution: the Hixson–Crowell law, proton promotion, inert gold, a published release fraction."""
from __future__ import annotations

import numpy as np
import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st

import nanopk
from nanopk.errors import SpecError
from nanopk.materials import DISSOLUTION
from nanopk.mechanisms.base import BuildContext
from nanopk.mechanisms.dissolution import (
    EPSILON,
    _cube_root_law,
    critical_time_h,
    cube_root_rate,
    hixson_crowell_remaining,
    hixson_crowell_time_fraction,
    medium_dissolution,
    phagolysosomal_dissolution,
    recession_velocity,
)
from nanopk.model import Model


def _medium(particle, pH):
    ctx = BuildContext(particle=particle)
    return Model("dissolution_test", [medium_dissolution(ctx, pH=pH)], "medium_particles").validate()


def test_hixson_crowell_half_and_ninety_percent_times():
    """m/m₀ = (1 − t/t_c)³: 50 % dissolved at 0.206 t_c, 90 % at 0.536 t_c (SCIENCE.md §5; Hixson & Crowell 1931)."""
    assert hixson_crowell_time_fraction(0.5) == pytest.approx(0.206, abs=5e-4)
    assert hixson_crowell_time_fraction(0.9) == pytest.approx(0.536, abs=5e-4)
    assert hixson_crowell_remaining(0.206, 1.0) == pytest.approx(0.5, abs=2e-3)


def test_closed_medium_follows_hixson_crowell_in_tolerance_units():
    """15 nm Ag at lysosomal pH (t_c = r₀/v = 1000 h): dissolved %ID = 100(1 − (1 − t/t_c)³), within 5 tolerance units."""
    model = _medium(nanopk.Particle(material="Ag", core_diameter_nm=15), pH=DISSOLUTION["Ag"].pH_ref)
    t_c = critical_time_h(7.5, DISSOLUTION["Ag"].v_ref_nm_h)
    assert t_c == pytest.approx(1000.0)
    t = t_c * np.array([0.0, 0.1, 0.206, 0.3, 0.536, 0.8, 0.95])
    rtol, atol = 1e-9, 1e-12
    sim = model.simulate(t, rtol=rtol, atol=atol)
    exact = 100.0 * (1.0 - hixson_crowell_remaining(t, t_c))
    err = np.abs(sim["dissolved"].to_numpy() - exact) / (100.0 * atol + rtol * np.abs(exact))
    assert err.max() < 5
    assert sim["dissolved"].iloc[2] == pytest.approx(50.0, abs=0.1)
    assert sim["dissolved"].iloc[4] == pytest.approx(90.0, abs=0.1)


def test_dissolution_rises_with_acidity_as_h_plus_to_the_n():
    """Proton-promoted release (Liu & Hurt 2010: Ag⁺ release falls with pH): 168 h release at pH 4.5 > 5 > 6 > 7.4, each as [H⁺]^n predicts."""
    model = _medium(nanopk.Particle(material="Ag", core_diameter_nm=15), pH=4.5)
    kin = DISSOLUTION["Ag"]
    released = []
    for pH in (4.5, 5.0, 6.0, 7.4):
        got = model.simulate([0.0, 168.0], params={"pH_medium": pH}, rtol=1e-9, atol=1e-12)["dissolved"].iloc[-1]
        v = recession_velocity(kin.v_ref_nm_h, pH, kin.pH_ref, kin.order_H)
        assert got == pytest.approx(100 * (1 - hixson_crowell_remaining(168.0, 7.5 / v)), rel=1e-6)
        released.append(got)
    assert released[0] > released[1] > released[2] > released[3] > 0


def test_gold_releases_nothing():
    """Gold is inert (SCIENCE.md §5): no ions at any pH or time."""
    model = _medium(nanopk.Particle(material="Au", core_diameter_nm=15), pH=4.5)
    sim = model.simulate([0.0, 24.0, 1000.0])
    assert (sim["dissolved"] == 0).all()
    np.testing.assert_allclose(sim["total"], 100.0, rtol=1e-12)


def test_iron_oxide_default_reproduces_godymchuk_lung_fluid_release():
    """α-Fe₂O₃ 2.3 % dissolved in 24 h in lung-fluid simulant (Godymchuk et al. 2022), with the r₀ = 25 nm the default assumes."""
    model = _medium(nanopk.Particle(material="Fe3O4", core_diameter_nm=50), pH=7.4)
    assert model.simulate([0.0, 24.0])["dissolved"].iloc[-1] == pytest.approx(2.3, abs=0.05)


def test_whole_body_dissolution_needs_the_circulation():
    """The phagolysosomal variant attaches to organs the circulation built."""
    with pytest.raises(SpecError, match=r"dissolution.phagolysosomal_dissolution requires 'circulation', which no "
                                        r"mechanism listed before it provides; list circulation.whole_body before it"):
        phagolysosomal_dissolution(BuildContext(particle=nanopk.Particle(material="Ag")))


# ---------------------------------------------------------------------- the regularised law
# Subnormal amounts (< 2.2e-308) would underflow to a rate of exactly 0.
_AMOUNTS = st.floats(-1e3, 1e3, allow_nan=False, allow_subnormal=False)


@settings(max_examples=200, deadline=None)
@given(m=_AMOUNTS, m0=_AMOUNTS)
def test_cube_root_rate_is_finite_zero_at_zero_and_pulls_back_an_undershoot(m, m0):
    """For every amount (negative ones included, as the solver's trial states are) the rate is finite, 0 at m = 0,
    ≥ 0 for m ≥ 0 and ≤ 0 for m < 0 (it pulls an undershoot back to zero, like a first-order flux)."""
    rate = float(cube_root_rate(2.0, m, m0, 1e-9))
    assert np.isfinite(rate)
    assert np.sign(rate) == np.sign(m)


@settings(max_examples=200, deadline=None)
@given(m=st.floats(1e-6, 1e3), fraction=st.floats(1e-3, 1.0))
def test_cube_root_rate_is_hixson_crowell_away_from_zero(m, fraction):
    """For m, m₀ ≫ ε the rate is k·m^(2/3)·m₀^(1/3) (Hixson & Crowell 1931) to a relative (ε/m)²/6 + (ε/m₀)²/6."""
    eps, m0 = 1e-9, m / fraction
    exact = 2.0 * m ** (2 / 3) * m0 ** (1 / 3)
    bound = (eps / m) ** 2 / 6 + (eps / m0) ** 2 / 6 + 1e-14
    assert float(cube_root_rate(2.0, m, m0, eps)) == pytest.approx(exact, rel=bound)


def test_numpy_and_sympy_twins_of_the_cube_root_law_agree():
    """cube_root_rate (NumPy) and the flux's SymPy rate give the same numbers (1e-12 relative), ε = EPSILON·dose,
    for amounts from −dose to dose, including zero and amounts within ε of it."""
    k, m, m0, dose = sp.symbols("k m m0 dose", real=True)
    expr = _cube_root_law(k, m, m0).subs(sp.Symbol("dose", real=True), dose)
    f = sp.lambdify((k, m, m0, dose), expr, "numpy")
    amounts = 20.0 * np.array([-1.0, -1e-3, -1e-9, -1e-12, 0.0, 1e-12, 1e-9, 1e-6, 1e-3, 0.5, 1.0])
    for initial in (0.0, 1e-9 * 20, 5.0, 20.0, -1e-6):
        got = f(3.0, amounts, initial, 20.0)
        np.testing.assert_allclose(got, cube_root_rate(3.0, amounts, initial, EPSILON * 20.0), rtol=1e-12, atol=0)


def test_small_fast_dissolving_core_dissolves_completely_without_going_negative():
    """1 nm ZnO at lysosomal pH (t_c ≈ 0.75 h) to 1000 h (~1300 t_c): all of it dissolved (100 %ID to 1e-6), the
    particle amount never below −1e-9 of the dose, and total = 100 %ID (mass balance by the flux graph)."""
    model = _medium(nanopk.Particle(material="ZnO", core_diameter_nm=1), pH=4.75)
    sim = model.simulate(np.linspace(0.0, 1000.0, 201))
    assert sim["dissolved"].iloc[-1] == pytest.approx(100.0, rel=1e-6)
    assert sim["remaining"].min() >= -100 * 1e-9
    np.testing.assert_allclose(sim["total"], 100.0, rtol=1e-9)
