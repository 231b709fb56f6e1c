"""Streaming and carried state: layer.step, model.stream(), predict(initial_state, return_state).
Every path must equal the whole-sequence computation (1e-6 relative in float32)."""
import numpy as np
import pytest

import lstm_native as ln

from conftest import rel_err

TOL = 1e-6


def series(B, T, I, seed=0):
    return np.random.default_rng(seed).standard_normal((B, T, I)).astype(np.float32)


@pytest.mark.parametrize("cls", [ln.LSTM, ln.GRU])
@pytest.mark.parametrize("layers, B", [(1, 1), (2, 4), (3, 2)])
def test_layer_step_equals_forward(cls, layers, B):
    rnn = cls(5, 12, num_layers=layers, batch_first=True, seed=1)
    x = series(B, 25, 5)
    full, _ = rnn(x)
    state, outs = None, []
    for t in range(x.shape[1]):
        h_t, state = rnn.step(x[:, t], state)
        outs.append(h_t.copy())
    assert rel_err(np.stack(outs, 1), full) < TOL


def test_step_hands_out_new_arrays_and_takes_unbatched_input():
    lstm = ln.LSTM(4, 8, seed=0)
    x = series(1, 6, 4)[0]
    h_t, (h, c) = lstm.step(x[0])
    assert h_t.shape == (8,)
    collected, states = [h_t], [(h, c)]
    for t in range(1, 6):
        h_t, (h, c) = lstm.step(x[t], (h, c))
        assert not np.shares_memory(h, states[-1][0]) and not np.shares_memory(c, states[-1][1])
        collected.append(h_t)
        states.append((h, c))
    full, _ = lstm(x[:, None, :])
    np.testing.assert_allclose(np.stack(collected), full[:, 0], rtol=0, atol=1e-6)   # no copy needed


@pytest.mark.parametrize("make", [
    lambda: ln.Sequential(ln.LSTM(3, 16, batch_first=True, seed=0), ln.LastTimestep(), ln.Linear(16, 2, seed=1)),
    lambda: ln.Sequential(ln.GRU(3, 16, num_layers=2, batch_first=True, seed=0),
                          ln.TimeDistributed(ln.Linear(16, 2, seed=1))),
    lambda: ln.Sequential(ln.Linear(3, 16, seed=2), ln.Tanh(), ln.Residual(ln.LSTM(16, 16, batch_first=True, seed=0)),
                          ln.LayerNorm(16), ln.Dropout(0.3, seed=0), ln.LSTM(16, 8, batch_first=True, seed=3),
                          ln.LastTimestep(), ln.ReLU(), ln.Linear(8, 1, seed=4)),
])
def test_stream_gives_the_whole_sequence_output_so_far(make):
    model = make()
    x = series(3, 20, 3)
    stream = model.stream()
    got = np.stack([stream.step(x[:, t]) for t in range(20)], 1)
    full = model.predict(x)
    if full.ndim == 3:                       # per-step outputs: all of them at once
        assert rel_err(got, full) < TOL
    else:                                    # last-step outputs: each prefix on its own
        for t in (0, 7, 19):
            assert rel_err(got[:, t], model.predict(x[:, :t + 1])) < TOL
    assert model.training                    # streaming leaves the mode alone (dropout skipped)
    stream.reset()
    again = np.stack([stream.step(x[:, t]) for t in range(20)], 1)
    np.testing.assert_array_equal(again, got)


def test_stream_with_embedding_ids():
    model = ln.Sequential(ln.Embedding(10, 6, seed=0), ln.LSTM(6, 8, batch_first=True, seed=1),
                          ln.TimeDistributed(ln.Linear(8, 10, seed=2)))
    ids = np.random.default_rng(0).integers(0, 10, (2, 9))
    stream = model.stream()
    got = np.stack([stream.step(ids[:, t]) for t in range(9)], 1)
    assert rel_err(got, model.predict(ids)) < TOL


def test_two_streams_on_one_model_are_independent():
    model = ln.Sequential(ln.LSTM(2, 8, batch_first=True, seed=0), ln.LastTimestep(), ln.Linear(8, 1, seed=0))
    a, b = series(1, 10, 2, seed=1), series(1, 10, 2, seed=2)
    sa, sb = model.stream(), model.stream()
    for t in range(10):
        ya, yb = sa.step(a[:, t]), sb.step(b[:, t])
    assert rel_err(ya, model.predict(a)) < TOL and rel_err(yb, model.predict(b)) < TOL


@pytest.mark.parametrize("batch_size", [None, 2])
def test_chunked_predict_with_carried_state_equals_one_call(batch_size):
    model = ln.Sequential(ln.LSTM(3, 10, num_layers=2, batch_first=True, seed=0), ln.GRU(10, 6, batch_first=True, seed=1),
                          ln.TimeDistributed(ln.Linear(6, 2, seed=2)))
    x = series(5, 40, 3)
    full = model.predict(x)
    state, parts = None, []
    for lo, hi in ((0, 7), (7, 8), (8, 33), (33, 40)):
        out, state = model.predict(x[:, lo:hi], initial_state=state, return_state=True, batch_size=batch_size)
        parts.append(out)
    assert rel_err(np.concatenate(parts, 1), full) < TOL
    # a stream can take over from a state predict returned
    head, state = model.predict(x[:, :30], return_state=True)
    stream = model.stream(initial_state=state)
    tail = np.stack([stream.step(x[:, t]) for t in range(30, 40)], 1)
    assert rel_err(tail, full[:, 30:]) < TOL


def test_return_state_respects_lengths():
    lstm = ln.LSTM(3, 7, batch_first=True, seed=0)
    model = ln.Sequential(lstm, ln.LastTimestep())
    x, lengths = series(3, 12, 3), np.array([12, 5, 9])
    out, state = model.predict(x, lengths=lengths, return_state=True)
    (h, c), _ = state
    np.testing.assert_allclose(h[-1], out, rtol=0, atol=1e-7)          # h_n is each sequence's last valid step
    for b, n in enumerate(lengths):
        _, (hb, cb) = lstm(x[b:b + 1, :n])
        assert rel_err(cb[:, 0], c[:, b]) < TOL


def test_streaming_errors():
    bi = ln.Sequential(ln.LSTM(2, 4, batch_first=True, bidirectional=True), ln.LastTimestep())
    with pytest.raises(TypeError, match="bidirectional"):
        bi.stream()
    att = ln.Sequential(ln.LSTM(2, 4, batch_first=True), ln.Attention(4))
    with pytest.raises(TypeError, match="Attention needs the whole sequence"):
        att.stream()
    model = ln.Sequential(ln.LSTM(2, 4, batch_first=True), ln.LastTimestep())
    with pytest.raises(ValueError, match="state must be a list of 2"):
        model.predict(series(1, 3, 2), initial_state=[None])
    with pytest.raises(TypeError, match=r"tuple \(h0, c0\)"):
        model.predict(series(1, 3, 2), initial_state=[np.zeros((1, 1, 4)), None])
    with pytest.raises(ValueError, match="h0"):
        model.stream(initial_state=[(np.zeros((2, 1, 4), np.float32), np.zeros((2, 1, 4), np.float32)), None]).step(
            np.zeros((1, 2), np.float32))
    with pytest.raises(ValueError, match="x_t"):
        model.stream().step(np.zeros((1, 3), np.float32))


def test_stream_refuses_non_finite_input_and_output():
    nan_step = np.array([[np.nan, 0.0]], np.float32)
    lstm_first = ln.Sequential(ln.LSTM(2, 4, batch_first=True), ln.LastTimestep(), ln.Linear(4, 1))
    stream = lstm_first.stream()
    stream.step(np.ones((1, 2), np.float32))
    state_before = [np.copy(a) for a in stream.state[0]]
    with pytest.raises(ValueError, match="x_t"):
        stream.step(nan_step)
    for before, after in zip(state_before, stream.state[0]):
        np.testing.assert_array_equal(before, after)      # the refused step changed nothing
    linear_first = ln.Sequential(ln.Linear(2, 2), ln.Tanh(), ln.Linear(2, 1))
    with pytest.raises(ValueError, match="not finite"):
        linear_first.stream().step(nan_step)
    lstm_first[2].weight.data[0, 0] = np.inf            # a broken head: announced, not returned
    with pytest.raises(ValueError, match="not finite"):
        lstm_first.stream().step(np.ones((1, 2), np.float32))
