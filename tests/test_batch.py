"""Batched simulation gives exactly the serial results, in order."""
import numpy as np

import nanopk
from nanopk.batch import simulate_many


def test_parallel_batch_equals_serial_simulations():
    """Two worker processes reproduce one-by-one simulate() to the last bit, in order."""
    model = nanopk.load_model("mouse_pbpk")
    times = np.linspace(0.0, 168.0, 25)
    sets = [{"Kmax_liver": k, "PAC_spleen": 0.05 + 0.01 * i} for i, k in enumerate(np.linspace(0.1, 1.0, 7))]
    batch = simulate_many(model, times, sets, workers=2)
    assert batch.shape == (7, 25, len(model.observables))
    for i, params in enumerate(sets):
        serial = model.simulate(times, params=params)
        np.testing.assert_array_equal(batch[i], serial[list(model.observables)].to_numpy())
    liver = list(model.observables).index("liver")
    assert np.all(np.diff(batch[:, -1, liver]) > 0)  # faster Kupffer uptake, more liver at 168 h
