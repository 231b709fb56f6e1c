"""Reproducible runs: ln.manual_seed makes every later initialisation, dropout mask and
shuffle the same from run to run."""
import os

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


def train_six_steps(threads, split="auto"):
    """Six Adam steps with clipping on a model with every kind of reduction; weights, outputs."""
    before = ln.get_num_threads(), ln._core.get_grain()
    ln.set_num_threads(threads)
    ln._core.set_grain(0.0)            # every parallel path with the whole team, at any size
    ln._core.set_step_split(split)
    try:
        model = ln.Sequential(ln.Conv1d(3, 8, 3, padding=1, seed=0),
                              ln.LSTM(8, 24, num_layers=2, batch_first=True, bidirectional=True, seed=1),
                              ln.MultiheadAttention(48, 4, seed=2), ln.GRU(48, 16, batch_first=True, seed=3),
                              ln.LastTimestep(), ln.Linear(16, 2, seed=4))
        rng = np.random.default_rng(0)
        X = rng.standard_normal((40, 12, 3)).astype(np.float32)
        y = rng.standard_normal((40, 2)).astype(np.float32)
        lengths = rng.integers(3, 13, size=40)
        model.fit(X, y, epochs=2, batch_size=16, lengths=lengths, clip_grad_norm=0.5, verbose=0, seed=0,
                  optimizer=ln.optim.Adam(model.parameters(), lr=1e-2))
        return model.state_dict(), model.predict(X, lengths=lengths)
    finally:
        ln.set_num_threads(before[0])
        ln._core.set_grain(before[1])
        ln._core.set_step_split("auto")


def test_training_and_inference_are_the_same_bits_for_any_thread_count():
    assert ln.is_deterministic()
    runs = {(1, "auto"): train_six_steps(1), (2, "auto"): train_six_steps(2), (3, "batch"): train_six_steps(3, "batch"),
            (4, "units"): train_six_steps(4, "units"), (os.cpu_count() or 1, "auto"): train_six_steps(os.cpu_count() or 1)}
    (weights, out) = runs[(1, "auto")]
    for key, (w, o) in runs.items():
        np.testing.assert_array_equal(o, out, err_msg=str(key))
        for name in weights:
            np.testing.assert_array_equal(w[name], weights[name], err_msg=f"{key} {name}")
    again = train_six_steps(2)     # and from run to run
    for name in weights:
        np.testing.assert_array_equal(again[0][name], weights[name])


def test_without_determinism_the_thread_count_moves_the_last_bits():
    ln.set_deterministic(False)
    try:
        assert not ln.is_deterministic()
        w1, _ = train_six_steps(1)
        w4, _ = train_six_steps(4, "batch")
    finally:
        ln.set_deterministic(True)
    assert any(not np.array_equal(w4[name], w1[name]) for name in w1)    # the switch does something
    for name in w1:    # six Adam steps at lr 1e-2 amplify the bias sums' last bits, not more
        np.testing.assert_allclose(w4[name], w1[name], rtol=0, atol=1e-3)


@pytest.mark.parametrize("cell", [ln.LSTM, ln.GRU])
def test_a_sequence_gives_the_same_bits_alone_and_in_a_batch(cell):
    """One row through the few-row product and through the tiles of a batch: each element sums
    its depth in the same order either way."""
    layer = cell(5, 40, num_layers=2, batch_first=True, seed=0)
    rng = np.random.default_rng(1)
    batch = rng.standard_normal((11, 9, 5)).astype(np.float32)
    threads = ln.get_num_threads()
    ln.set_num_threads(1)
    try:
        with ln.no_grad():
            together = layer(batch)[0]
            for b in (0, 4, 10):
                alone = layer(batch[b:b + 1])[0]
                np.testing.assert_array_equal(alone[0], together[b])
    finally:
        ln.set_num_threads(threads)
