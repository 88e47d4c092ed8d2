"""Aggregation: Brownian kernel numbers, Smoluchowski closed form, half-life, mass conservation, stability."""
from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

import nanopk
from nanopk.errors import SpecError
from nanopk.mechanisms.aggregation import (
    brownian_kernel,
    brownian_kernel_equal,
    electrostatic_stability_ratio,
    plasma_aggregation,
    rapid_coagulation_constant,
    rapid_coagulation_half_life,
    smoluchowski_constant_kernel,
    total_number_constant_kernel,
)
from nanopk.mechanisms.base import BuildContext
from nanopk.model import Model

S_PER_H = 3600.0
#: Water: 25 °C, 0.890 mPa·s; 37 °C, 0.691 mPa·s (SCIENCE.md §4).
WATER_25C = (298.15, 0.890e-3)
WATER_37C = (310.15, 0.691e-3)
#: Rapid coagulation, W = 1: ionic strength far above a tiny CCC makes (CCC/I)^β ≈ 2.5e-9.
RAPID = {"ionic_strength": 2000.0, "CCC": 0.1, "T_medium": WATER_25C[0], "mu_medium": WATER_25C[1]}


def test_rapid_coagulation_constant_in_water():
    """k_f = 4kT/(3μ): 6.17e-18 m³/s at 25 °C and 8.26e-18 m³/s at 37 °C in water (SCIENCE.md §4; Elimelech et al. 1995)."""
    assert rapid_coagulation_constant(*WATER_25C) == pytest.approx(6.17e-18, rel=1e-3)
    assert rapid_coagulation_constant(*WATER_37C) == pytest.approx(8.26e-18, rel=1e-3)
    assert brownian_kernel_equal(*WATER_25C) == pytest.approx(2 * 6.17e-18, rel=1e-3)


def test_brownian_kernel_is_minimal_for_equal_sizes():
    """β_ij = (2kT/3μ)(1/r_i + 1/r_j)(r_i + r_j): 8kT/3μ for r_i = r_j, ×(2 + 2 + 1/2)/4 = 9/8 for r_j = 2 r_i."""
    T, mu = WATER_25C
    assert brownian_kernel(5.0, 5.0, T, mu) == pytest.approx(brownian_kernel_equal(T, mu), rel=1e-14)
    assert brownian_kernel(5.0, 10.0, T, mu) == pytest.approx(9 / 8 * brownian_kernel_equal(T, mu), rel=1e-14)


def test_rapid_coagulation_half_life_at_1e12_per_ml():
    """N halves in W/(k_f N₀) = 0.16 s at N₀ = 1e12 /mL in water at 25 °C (SCIENCE.md §4)."""
    assert rapid_coagulation_half_life(1e12 * 1e6, *WATER_25C) == pytest.approx(0.162, abs=0.001)


def _in_vitro(particle, K, kernel, name="aggregation_test"):
    ctx = BuildContext(particle=particle)
    return Model(name, [plasma_aggregation(ctx, K=K, kernel=kernel)], "plasma_particles").validate()


@pytest.fixture(scope="module")
def constant_kernel_model():
    return _in_vitro(nanopk.Particle(material="Au", core_diameter_nm=15), K=10, kernel="constant", name="smoluchowski_constant")


def test_sectional_model_reproduces_constant_kernel_closed_form(constant_kernel_model):
    """n_k(t) = N₀τ^(k−1)/(1+τ)^(k+1) (Smoluchowski 1917) for k = 1…9 at τ ≤ 0.1, within 20 tolerance units.

    With K = 10 classes the mass beyond the absorbing class is < τ^9 ≈ 1e-9 of the dose
    at τ = 0.1, below the requested tolerance.
    """
    model = constant_kernel_model
    rtol, atol = 1e-9, 1e-12
    p = {**RAPID, "dose": 34.1}
    m_p = model.parameters["m_particle"].value
    volume = model.parameters["V_medium"].value
    n0 = 34.1 / m_p / volume  # per litre
    W = 1 / (1 / electrostatic_stability_ratio(RAPID["ionic_strength"], RAPID["CCC"], 2.0) + 1e-12)
    beta = brownian_kernel_equal(*WATER_25C, W=W) * 1000.0 * S_PER_H  # L/h
    taus = np.array([0.0, 0.01, 0.03, 0.05, 0.1])
    t_h = 2 * taus / (beta * n0)
    sim = model.simulate(t_h, params=p, states=True, rtol=rtol, atol=atol)
    names = ["plasma_particles"] + [f"plasma_aggregates_{k}" for k in range(2, 10)]
    worst = 0.0
    for k, name in enumerate(names, start=1):
        n_model = sim[f"state:{name}"].to_numpy() / (k * m_p * volume)
        n_exact = smoluchowski_constant_kernel(n0, beta, t_h, k)
        # the mass atol (atol·dose) is atol·N₀·m_p/k in number for class k
        err = np.abs(n_model - n_exact) / (atol * n0 / k + rtol * np.abs(n_exact))
        worst = max(worst, float(err.max()))
    assert worst < 20
    np.testing.assert_allclose(sim["number_fraction"], total_number_constant_kernel(1.0, beta * n0, t_h), rtol=1e-7)


def test_sectional_model_halves_in_016_s_at_1e12_per_ml(constant_kernel_model):
    """Rapid coagulation of 1e12 /mL in water at 25 °C: N/N₀ = 0.5 at 0.162 s (SCIENCE.md §4).

    At τ = 1 about 0.1 % of the mass is beyond the absorbing class (K = 10), whose
    number mass/(K·m_p) is then approximate: hence 1e-3.
    """
    model = constant_kernel_model
    m_p = model.parameters["m_particle"].value
    dose = 1e12 * 1e3 * m_p * model.parameters["V_medium"].value  # 1e12 /mL = 1e15 /L
    t_half = rapid_coagulation_half_life(1e18, *WATER_25C)
    sim = model.simulate([0.0, t_half / S_PER_H], params={**RAPID, "dose": dose}, rtol=1e-9, atol=1e-12)
    assert sim["number_fraction"].iloc[-1] == pytest.approx(0.5, rel=1e-3)


def test_coagulation_conserves_mass_exactly():
    """Σ over classes of d(mass)/dt is identically 0 (the flux graph), and total = 100 %ID to 1e-10 while 99 % aggregates."""
    model = _in_vitro(nanopk.Particle(material="Au", core_diameter_nm=15), K=6, kernel="brownian", name="mass_balance")
    rhs = dict(zip(model.state_names, model.rhs_expressions()))
    assert sp.simplify(sp.Add(*[rhs[s] for s in model.mass_states])) == 0
    sim = model.simulate([0.0, 1e-5, 1e-4, 1e-3, 0.1, 24.0], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(sim["total"], 100.0, rtol=1e-10)
    assert sim["aggregated"].iloc[-1] > 99.0


def test_critical_coagulation_concentration_sets_electrostatic_stability():
    """W_el = 1 + (CCC/I)²: CCC 40 mM NaCl for bare/citrate Ag (Li et al. 2010) → W = 1.071 in plasma (150 mM), 17 at 10 mM."""
    assert electrostatic_stability_ratio(150.0, 40.0, 2.0) == pytest.approx(1 + (40 / 150) ** 2, rel=1e-14)
    assert electrostatic_stability_ratio(150.0, 40.0, 2.0) == pytest.approx(1.071, abs=5e-4)
    assert electrostatic_stability_ratio(10.0, 40.0, 2.0) == pytest.approx(17.0, rel=1e-14)


def test_peg_coating_prevents_aggregation_in_plasma():
    """Steric PEG (W = 1e12, SCIENCE.md §4) aggregates 2τ = 2·k_f·N₀·t/W ≈ 4e-7 of its mass in 24 h; bare gold > 99 % in 10 s.

    Plasma at 37 °C (1.2 mPa·s), N₀ = 17 µg / m_p per mL.
    """
    times = [0.0, 10.0 / S_PER_H, 24.0]
    bare_model = nanopk.load_model("aggregation_plasma")
    peg_model = nanopk.load_model("aggregation_plasma", particle=nanopk.Particle(material="Au", core_diameter_nm=15, coating="PEG",
                                                                                coating_mw_da=5000))
    bare, peg = bare_model.simulate(times), peg_model.simulate(times)
    assert bare["aggregated"].iloc[1] > 99.0
    n0 = peg["primary_number_concentration"].iloc[0] * 1000.0  # 1/m³
    tau = rapid_coagulation_constant(310.15, 1.2e-3) * n0 * 24 * S_PER_H / 1e12
    assert peg["aggregated"].iloc[-1] == pytest.approx(100 * (1 - 1 / (1 + tau) ** 2), rel=1e-3)


def test_invalid_number_of_classes_is_rejected():
    """K must be an integer ≥ 2."""
    with pytest.raises(SpecError, match=r"option `K` must be an integer ≥ 2 \(got 1\)"):
        plasma_aggregation(BuildContext(particle=nanopk.Particle()), K=1)


def _pairwise_smoluchowski(pools, aggregates, V, gamma, shape):
    """d(mass)/dt of every state, one collision pair at a time (the textbook form).

    ``pools``: [(A_p, V_p)] of monomers; ``aggregates``: A_2 … A_K in volume V (class K
    absorbs).  Rates of collisions R_ij = β_ij n_i n_j V (½ for i = j) with
    n_k = A_k/(k m_p V) and β_ij = γ m_p c_ij; every collision moves the mass of both
    partners to class min(i + j, K).  Independent of the mechanism's flux layout.
    """
    K = len(aggregates) + 1
    d_pool = np.zeros(len(pools))
    d_agg = np.zeros(K + 1)  # index = class
    A = {k: aggregates[k - 2] for k in range(2, K + 1)}

    def move(mass, source_class, target_class):
        target_class = min(target_class, K)
        if source_class != target_class:
            d_agg[source_class] -= mass
            d_agg[target_class] += mass

    for p, (A_p, V_p) in enumerate(pools):
        pair = 0.5 * gamma * A_p**2 / V_p  # ½ β n² V_p, in units of m_p: mass of one side
        d_pool[p] -= 2 * pair
        d_agg[min(2, K)] += 2 * pair
        for j in range(2, K + 1):
            R = gamma * shape(1, j) * A_p * A[j] / (j * V)  # β n_p n_j V_p · m_p
            d_pool[p] -= R
            d_agg[min(1 + j, K)] += R
            move(j * R, j, 1 + j)
    for i in range(2, K + 1):
        for j in range(i, K + 1):
            R = gamma * shape(i, j) * A[i] * A[j] / (i * j * V) * (0.5 if i == j else 1.0)
            move(i * R, i, i + j)
            move(j * R, j, i + j)
    return d_pool, d_agg[2:]


@pytest.mark.parametrize("K", [2, 3, 9, 16])
@pytest.mark.parametrize("kernel", ["brownian", "constant"])
@pytest.mark.parametrize("n_pools", [1, 2])
def test_fluxes_through_the_absorbing_class_are_smoluchowski_pair_by_pair(K, kernel, n_pools):
    """The mechanism's 2(K − 1) fluxes (losses to class K, gains from it, via the kernel's
    moments) give every state the d(mass)/dt of the collision-by-collision balance, to
    1e-12 relative, at random amounts; one pool is the in-vitro medium, two are venous
    and arterial blood around a plasma pool of aggregates."""
    from nanopk.mechanisms.aggregation import _coagulation, kernel_shape
    from nanopk.parts import symbol

    D_f = 1.85
    rng = np.random.default_rng(K * 10 + n_pools)
    pools = [(f"pool_{p}", f"V_pool_{p}") for p in range(n_pools)]
    agg = [f"agg_{k}" for k in range(2, K + 1)]
    moments, fluxes = _coagulation(pools, agg, "V_agg", K, kernel, D_f, "test")
    gamma = 3.7
    values = {symbol("coagulation_constant"): gamma, symbol("V_agg"): 0.8}
    values.update({symbol(v): rng.uniform(0.1, 2.0) for _, v in pools})
    values.update({symbol(s): rng.uniform(0.0, 5.0) for s, _ in pools})
    values.update({symbol(a): rng.uniform(0.0, 5.0) * rng.choice([1e-6, 1.0]) for a in agg})
    for m in moments:
        values[symbol(m.name)] = float(sp.sympify(m.expr).xreplace(values))
    net = dict.fromkeys([s for s, _ in pools] + agg, 0.0)
    for f in fluxes:
        rate = float(sp.sympify(f.rate).xreplace(values))
        net[f.source] -= rate
        net[f.target] += rate
    shape = (lambda i, j: 1.0) if kernel == "constant" else (lambda i, j: kernel_shape(i, j, D_f))
    d_pool, d_agg = _pairwise_smoluchowski([(values[symbol(s)], values[symbol(v)]) for s, v in pools],
                                           [values[symbol(a)] for a in agg], 0.8, gamma, shape)
    expected = np.concatenate([d_pool, d_agg])
    got = np.array([net[s] for s, _ in pools] + [net[a] for a in agg])
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12 * np.abs(expected).max())
    assert len(fluxes) == n_pools + 2 * (K - 2)
