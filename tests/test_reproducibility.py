"""Reproducible runs: ln.manual_seed makes every later initialisation, dropout mask and
shuffle the same from run to run."""
import numpy as np
import pytest

import lstm_native as ln


def build_and_fit():
    """A model with nothing seeded by hand: dropout inside and between layers, shuffling."""
    model = ln.Sequential(ln.Embedding(20, 6), ln.LSTM(6, 12, num_layers=2, dropout=0.3, batch_first=True),
                          ln.Dropout(0.2), ln.MultiheadAttention(12, 2), ln.Conv1d(12, 8, 3),
                          ln.GRU(8, 8, batch_first=True, bidirectional=True), ln.LastTimestep(), ln.Linear(16, 3))
    rng = np.random.default_rng(0)
    X = rng.integers(0, 20, size=(48, 10))
    y = rng.integers(0, 3, size=48)
    model.fit(X, y, loss="cross_entropy", epochs=2, batch_size=16, verbose=0)
    return model.state_dict()


def test_manual_seed_makes_builds_and_fits_bit_identical():
    ln.manual_seed(1234)
    first = build_and_fit()
    ln.manual_seed(1234)
    second = build_and_fit()
    ln.manual_seed(99)
    other = build_and_fit()
    assert first.keys() == second.keys()
    for key in first:
        np.testing.assert_array_equal(first[key], second[key], err_msg=key)
    assert any(not np.array_equal(first[k], other[k]) for k in first)


def test_an_explicit_seed_wins_over_the_manual_seed():
    ln.manual_seed(1)
    a = ln.Linear(3, 4, seed=7).weight.data
    ln.manual_seed(2)
    b = ln.Linear(3, 4, seed=7).weight.data
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("bad", [-1, 1.5, "3", True, None])
def test_manual_seed_takes_non_negative_integers(bad):
    with pytest.raises(ValueError, match="seed"):
        ln.manual_seed(bad)
