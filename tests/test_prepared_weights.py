"""No fixed cost per call: a recurrent layer keeps what it prepares from its weights (packed
matrices) across calls, and a weight written between calls is always seen, however it is
written (issue 17, bar 2)."""
import numpy as np
import pytest

import lstm_native as ln

rng = np.random.default_rng(0)
X = rng.standard_normal((3, 7, 4)).astype(np.float32)


def fresh_output(layer, x=X):
    """The output of a new layer holding a copy of `layer`'s weights (nothing cached)."""
    twin = type(layer)(layer.input_size, layer.hidden_size, num_layers=layer.num_layers, batch_first=True,
                       bidirectional=layer.bidirectional)
    twin.load_state_dict(layer.state_dict())
    with ln.no_grad():
        return twin(x)[0]


def run(layer, x=X):
    with ln.no_grad():
        return layer(x)[0]


@pytest.fixture(params=["lstm", "gru", "bi-lstm-2"])
def layer(request):
    if request.param == "lstm":
        return ln.LSTM(4, 16, batch_first=True, seed=0)
    if request.param == "gru":
        return ln.GRU(4, 16, batch_first=True, seed=0)
    return ln.LSTM(4, 16, num_layers=2, bidirectional=True, batch_first=True, seed=0)


def test_the_preparation_is_kept_while_nothing_writes(layer):
    run(layer)
    versions = [ws.prepared_version for ws in layer._workspaces]
    assert all(v >= 0 for v in versions)
    run(layer)
    assert [ws.prepared_version for ws in layer._workspaces] == versions
    np.testing.assert_array_equal(run(layer), fresh_output(layer))


WRITES = {
    "p.data[...] =": lambda layer: layer.weight_hh_l0.data.__setitem__((0, 0), 0.75),
    "p.data *=": lambda layer: layer.weight_ih_l0.data.__imul__(1.5),
    "p.data = new": lambda layer: setattr(layer.bias_ih_l0, "data", layer.bias_ih_l0.data + 0.25),
    "load_state_dict": lambda layer: layer.load_state_dict(
        {k: v * 0.5 for k, v in layer.state_dict().items()}),
    "a new Parameter": lambda layer: setattr(layer, "weight_hh_l0",
                                             ln.Parameter(layer.weight_hh_l0.data[::-1].copy())),
}


@pytest.mark.parametrize("write", sorted(WRITES))
def test_a_write_between_calls_is_seen(layer, write):
    before = run(layer)
    WRITES[write](layer)
    after = run(layer)
    assert not np.array_equal(after, before)
    np.testing.assert_array_equal(after, fresh_output(layer))


def test_a_reference_kept_from_before_the_first_call_writes_seen(layer):
    w = layer.weight_hh_l0.data            # held across calls
    before = run(layer)
    run(layer)
    w[3, 2] += 1.0
    after = run(layer)
    assert not np.array_equal(after, before)
    np.testing.assert_array_equal(after, fresh_output(layer))
    del w
    run(layer)
    assert all(ws.prepared_version >= 0 for ws in layer._workspaces)   # kept again once nothing can write


def test_an_optimizer_step_is_seen():
    model = ln.Sequential(ln.LSTM(4, 8, batch_first=True, seed=0), ln.LastTimestep(), ln.Linear(8, 1, seed=1))
    opt = ln.optim.SGD(model.parameters(), lr=0.5)
    y = np.ones((3, 1), np.float32)
    for _ in range(3):
        before = model.predict(X)
        out = model(X)
        model.zero_grad()
        model.backward(ln.losses.mse(out, y)[1])
        opt.step()
        after = model.predict(X)
        assert not np.array_equal(after, before)
        twin = ln.Sequential(ln.LSTM(4, 8, batch_first=True), ln.LastTimestep(), ln.Linear(8, 1))
        twin.load_state_dict(model.state_dict())
        np.testing.assert_array_equal(after, twin.predict(X))


def test_training_after_cached_inference_matches_a_fresh_layer(layer):
    run(layer)                                   # prepared for inference
    out, _ = layer(X)                            # a training forward on the same preparation
    grads = layer.backward(np.ones_like(out))[0]
    twin = type(layer)(4, 16, num_layers=layer.num_layers, batch_first=True, bidirectional=layer.bidirectional)
    twin.load_state_dict(layer.state_dict())
    twin_out, _ = twin(X)
    np.testing.assert_array_equal(out, twin_out)
    np.testing.assert_array_equal(grads, twin.backward(np.ones_like(twin_out))[0])
    np.testing.assert_array_equal(run(layer), fresh_output(layer))    # backward repacked: prepared again


def test_the_library_reads_weights_through_a_read_only_view():
    p = ln.LSTM(2, 3).weight_hh_l0
    with pytest.raises(ValueError, match="read-only"):
        p.array[0, 0] = 1.0
    v = p.version
    p.array
    assert p.version == v
    p.data
    assert p.version > v


def test_predict_fit_and_evaluate_read_no_weight_through_data():
    # predict read the first parameter's dtype through .data, which counts as a write: every
    # predict re-prepared the LSTM's weights (a (1, 1, 64) predict took 157 us, 6.5x LSTM.step)
    model = ln.Sequential(ln.LSTM(4, 16, batch_first=True, seed=0), ln.LastTimestep(), ln.Linear(16, 1, seed=1))
    params = model.parameters()
    model.predict(X)
    versions = [p.version for p in params]
    prepared = model[0]._workspaces[0].prepared_version
    model.predict(X)
    model.evaluate(X, np.zeros((3, 1), np.float32))
    assert [p.version for p in params] == versions
    assert model[0]._workspaces[0].prepared_version == prepared
    model.fit(X, np.zeros((3, 1), np.float32), epochs=0, verbose=0)   # setup alone writes nothing
    assert [p.version for p in params] == versions


def test_the_read_only_view_is_kept_and_copies_get_their_own():
    # p.array is made once per array (a stream step reads six: a new view each cost 0.6 us) and
    # is not counted as an outside reference; a copy or pickle of the Parameter gets a view of
    # its own array, never a stale copy of the original's view
    import copy
    import pickle
    p = ln.Parameter(np.ones(3, np.float32))
    assert p.array is p.array and not p.shared()
    held = p.data
    assert p.shared()
    del held
    assert not p.shared()
    for twin in (copy.deepcopy(p), pickle.loads(pickle.dumps(p))):
        twin.data[0] = 5.0
        assert twin.array[0] == 5.0 and p.array[0] == 1.0
    p.data = np.zeros(3, np.float32)          # a new array: a new view
    assert p.array[0] == 0.0
