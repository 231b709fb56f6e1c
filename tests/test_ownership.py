"""Every array a public call returns belongs to the caller: results collected from several
calls without copying equal copies taken at the time (no later call writes into them), and
streams on one shared model run from several threads give the serial results."""
import threading

import numpy as np
import pytest

import lstm_native as ln

rng = np.random.default_rng(0)


def arrays_in(value):
    """Every ndarray inside nested tuples/lists/dicts (None and scalars skipped)."""
    if isinstance(value, np.ndarray):
        return [value]
    if isinstance(value, (tuple, list)):
        return [a for v in value for a in arrays_in(v)]
    if isinstance(value, dict):
        return [a for v in value.values() for a in arrays_in(v)]
    return []


def check_owned(calls):
    """Runs each call in turn, keeping its results and copies of them; afterwards the kept
    results must still equal their copies."""
    kept, copies = [], []
    for call in calls:
        result = arrays_in(call())
        assert result, "the call returned no array"
        kept.append(result)
        copies.append([a.copy() for a in result])
    for i, (got, want) in enumerate(zip(kept, copies)):
        for a, b in zip(got, want):
            np.testing.assert_array_equal(a, b, err_msg=f"call {i}'s result was overwritten by a later call")


def seq(B=3, T=6, I=4, dtype=np.float32):
    return [rng.standard_normal((B, T, I)).astype(dtype) for _ in range(4)]


@pytest.mark.parametrize("cls", [ln.LSTM, ln.GRU])
def test_layer_outputs_states_and_gradients(cls):
    layer = cls(4, 5, num_layers=2, batch_first=True, seed=0)
    xs = seq()
    check_owned([lambda x=x: layer(x) for x in xs])
    with ln.no_grad():
        check_owned([lambda x=x: layer(x, lengths=np.array([6, 2, 4])) for x in xs])

    def forward_backward(x):
        out, _ = layer(x)
        return layer.backward(np.ones_like(out))
    check_owned([lambda x=x: forward_backward(x) for x in xs])


@pytest.mark.parametrize("cls", [ln.LSTM, ln.GRU])
def test_step_results_can_be_collected(cls):
    layer = cls(4, 5, num_layers=2, seed=0)
    x = rng.standard_normal((8, 2, 4)).astype(np.float32)
    state = [None]

    def step(t):
        h_t, state[0] = layer.step(x[t], state[0])
        return h_t, state[0]
    check_owned([lambda t=t: step(t) for t in range(8)])


def model():
    return ln.Sequential(ln.LSTM(4, 6, batch_first=True, seed=0), ln.TimeDistributed(ln.Linear(6, 2, seed=1)))


def test_stream_predict_and_returned_states():
    m = model()
    x = rng.standard_normal((2, 9, 4)).astype(np.float32)
    stream = m.stream()
    check_owned([lambda t=t: stream.step(x[:, t]) for t in range(9)])
    check_owned([lambda: m.predict(x, return_state=True), lambda: m.predict(x[:, :4], return_state=True),
                 lambda: m.predict(x)])
    _, state = m.predict(x[:, :3], return_state=True)
    kept = [a.copy() for a in arrays_in(state)]
    m.predict(x[:, 3:], initial_state=state, return_state=True)
    m.stream(state).step(x[:, 3])
    for a, b in zip(arrays_in(state), kept):
        np.testing.assert_array_equal(a, b)     # a state handed in is not written either


def test_model_backward_and_losses():
    m = model()
    xs = seq()

    def step(x):
        out = m(x)
        loss, grad = ln.losses.mse(out, np.zeros_like(out))
        return grad, m.backward(grad, need_input_grad=True)
    check_owned([lambda x=x: step(x) for x in xs])
    logits = [rng.standard_normal((5, 3)).astype(np.float32) for _ in range(3)]
    check_owned([lambda z=z: ln.losses.cross_entropy(z, np.array([0, 1, 2, 1, 0]))[1] for z in logits])
    check_owned([lambda z=z: ln.losses.mae(z, np.zeros_like(z))[1] for z in logits])
    check_owned([lambda z=z: ln.losses.bce_with_logits(z, np.ones_like(z))[1] for z in logits])


def test_quantised_outputs():
    m = ln.Sequential(ln.LSTM(4, 6, batch_first=True, seed=0), ln.LastTimestep(), ln.Linear(6, 2, seed=1))
    q = ln.quantize_dynamic(m)
    xs = seq()
    check_owned([lambda x=x: q.predict(x) for x in xs])
    check_owned([lambda x=x: q.predict(x, return_state=True) for x in xs])
    stream = q.stream()
    check_owned([lambda t=t: stream.step(xs[0][:, t]) for t in range(6)])


@pytest.mark.parametrize("quantised", [False, True], ids=["float", "int8"])
def test_streams_on_one_shared_model_from_four_threads(quantised):
    m = ln.Sequential(ln.LSTM(4, 256, num_layers=2, batch_first=True, seed=0), ln.LastTimestep(),
                      ln.Linear(256, 1, seed=1))
    m = ln.quantize_dynamic(m) if quantised else m
    series = [rng.standard_normal((2, 200, 4)).astype(np.float32) for _ in range(4)]
    serial = [np.stack([s.step(x[:, t]) for s in [m.stream()] for t in range(200)]) for x in series]
    results = [None] * 4
    barrier = threading.Barrier(4)

    def run(i):
        stream = m.stream()
        barrier.wait()
        results[i] = np.stack([stream.step(series[i][:, t]) for t in range(200)])

    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for got, want in zip(results, serial):
        np.testing.assert_array_equal(got, want)
