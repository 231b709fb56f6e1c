"""Dynamic int8 quantisation: the integer GEMM exactly against NumPy, the quantised layers
against a NumPy simulation of the same arithmetic, the error against float and against
PyTorch's quantize_dynamic, save/load in int8 form, and inference-only errors."""
import os
import warnings

import numpy as np
import pytest
import torch

import lstm_native as ln
from conftest import rel_err

core = ln._core


def rand(*shape, seed=0, scale=1.0):
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(np.float32)


# -- the integer kernel --------------------------------------------------------------------------
@pytest.mark.parametrize("m, n, k", [(1, 1, 1), (5, 7, 33), (2, 4, 32), (3, 9, 64), (130, 37, 100), (64, 260, 1024),
                                     (300, 8, 7), (1, 1030, 2049)])
def test_int8_gemm_is_exact(m, n, k):
    x, w = rand(m, k, seed=1, scale=3), rand(n, k, seed=2)
    x_q, x_scale, x_zero = core.quantize_activations(x)
    w_q, w_scale, w_sum = core.quantize_weights(w)
    assert x_q.dtype == np.uint8 and w_q.dtype == np.int8 and x_q.shape[1] % 32 == 0
    assert x_q.max() <= 127 and w_q.min() >= -127          # 7-bit activations, symmetric weights
    expected = x_q.astype(np.int64) @ w_q.astype(np.int64).T
    np.testing.assert_array_equal(core.gemm_u8s8(x_q, w_q), expected)
    np.testing.assert_array_equal(w_sum, w_q.astype(np.int64).sum(axis=1))
    # the quantisation itself, written out in NumPy
    s = np.maximum(np.abs(w).max(axis=1), 1e-30) / 127
    np.testing.assert_array_equal(w_q[:, :k], np.clip(np.rint(w / s[:, None]), -127, 127))
    lo, hi = np.minimum(x.min(axis=1), 0), np.maximum(x.max(axis=1), 0)
    np.testing.assert_array_equal(x_scale, ((hi - lo) / np.float32(127)).astype(np.float32))
    np.testing.assert_array_equal(x_zero, np.clip(np.rint(-lo / x_scale), 0, 127))
    inv = (np.float32(1) / x_scale)[:, None]
    np.testing.assert_array_equal(x_q[:, :k], np.clip(np.rint(x * inv) + x_zero[:, None].astype(np.float32), 0, 127))
    assert not x_q[:, k:].any()                                 # zero padding up to the kernel's depth step
    # dequantised product = the simulation in float64
    y = core.quantized_linear(x, w_q, w_scale, w_sum, None, k)
    sim = (expected - x_zero[:, None].astype(np.int64) * w_sum[None, :]) * x_scale[:, None].astype(np.float64) \
        * w_scale[None, :]
    np.testing.assert_allclose(y, sim, rtol=1e-5, atol=1e-5 * np.abs(sim).max())


def test_activation_quantisation_of_awkward_rows():
    k = 70                                   # two vector blocks and a scalar tail
    x = np.zeros((5, k), np.float32)         # row 0: all zeros
    x[1] = 2.5                               # constant, positive: range [0, 2.5]
    x[2] = -1e-30                            # tiny negative range
    x[3, :] = 1e-3
    x[3, 5] = 3e38                           # one enormous value beside small ones
    x[4] = np.linspace(-7, 3, k)
    x_q, x_scale, x_zero = core.quantize_activations(x)
    inv = (np.float32(1) / x_scale)[:, None]
    np.testing.assert_array_equal(x_q[:, :k], np.clip(np.rint(x * inv) + x_zero[:, None].astype(np.float32), 0, 127))
    assert not x_q[0].any() and x_zero[0] == 0 and x_q[1, 0] == 127 and x_q[3, 5] == 127
    dequantised = (x_q[:, :k].astype(np.float64) - x_zero[:, None]) * x_scale[:, None]
    assert np.abs(dequantised[4] - x[4]).max() <= x_scale[4] / 2 * 1.0001


def cpu_has_vnni():
    from lstm_native import _backend
    return {"avx512_vnni", "avx512vl"} <= _backend.cpu_flags()


def test_kernel_choice_matches_the_build_and_the_cpu():
    if ln.backend_isa() == "baseline":
        assert core.qgemm_kernel() == "portable"
    else:
        assert core.qgemm_kernel() == ("avx512-vnni" if cpu_has_vnni() else "avx2")


@pytest.mark.parametrize("m, n, k", [(1, 1, 1), (3, 9, 64), (129, 6, 200), (300, 37, 1024), (2, 1030, 2049)])
def test_vnni_and_avx2_products_are_the_same_exact_integers(m, n, k):
    """Where the CPU has AVX-512 VNNI both kernels run here (rows around the 2-row tile and the
    128-row block, columns around the 4-column tile); elsewhere the switch is refused and the
    one kernel is compared with itself and with NumPy."""
    x_q, x_scale, x_zero = core.quantize_activations(rand(m, k, seed=3, scale=2))
    w_q, w_scale, w_sum = core.quantize_weights(rand(n, k, seed=4))
    expected = x_q.astype(np.int64) @ w_q.astype(np.int64).T
    x, w = rand(m, k, seed=3, scale=2), rand(n, k, seed=4)
    try:
        results = {}
        for enabled in (True, False):
            available = core.set_qgemm_vnni(enabled)
            assert available == (cpu_has_vnni() and ln.backend_isa() != "baseline")
            results[enabled] = (core.gemm_u8s8(x_q, w_q), core.quantized_linear(x, w_q, w_scale, w_sum, None, k))
        np.testing.assert_array_equal(results[True][0], expected)
        np.testing.assert_array_equal(results[False][0], expected)
        np.testing.assert_array_equal(results[True][1], results[False][1])
    finally:
        core.set_qgemm_vnni(True)


def test_int8_gemm_rejects_bad_operands():
    x_q, _, _ = core.quantize_activations(rand(2, 40))
    w_q, _, _ = core.quantize_weights(rand(3, 40))
    with pytest.raises(TypeError, match="x_q must have dtype uint8"):
        core.gemm_u8s8(x_q.astype(np.int8), w_q)
    with pytest.raises(ValueError, match="w_q must have shape"):
        core.gemm_u8s8(x_q, w_q[:, :32].copy())
    with pytest.raises(ValueError, match="NaN"):
        core.quantize_weights(np.full((2, 3), np.nan, np.float32))


# -- layers against a NumPy simulation -----------------------------------------------------------
def simulate_linear(x, w, b):
    x_q, xs, xz = core.quantize_activations(np.ascontiguousarray(x))
    w_q, ws, wsum = core.quantize_weights(w)
    acc = x_q.astype(np.int64) @ w_q.astype(np.int64).T - xz[:, None].astype(np.int64) * wsum[None, :]
    return acc * xs[:, None].astype(np.float64) * ws[None, :] + (0 if b is None else b)


def simulate_recurrent(cell, x, params, H):
    """One unidirectional layer, time-major x, in float64 around the same quantised products."""
    sig = lambda v: 1 / (1 + np.exp(-v))     # noqa: E731
    T, B, _ = x.shape
    h, c = np.zeros((B, H)), np.zeros((B, H))
    gx = simulate_linear(x.reshape(T * B, -1), params["weight_ih_l0"], params["bias_ih_l0"]).reshape(T, B, -1)
    out = []
    for t in range(T):
        gh = simulate_linear(h.astype(np.float32), params["weight_hh_l0"], params["bias_hh_l0"])
        if cell in ("rnn_tanh", "rnn_relu"):
            a = gx[t] + gh
            h = np.tanh(a) if cell == "rnn_tanh" else np.maximum(a, 0)
        elif cell == "lstm":
            i, f, g, o = np.split(gx[t] + gh, 4, axis=1)
            c = sig(f) * c + sig(i) * np.tanh(g)
            h = sig(o) * np.tanh(c)
        else:
            xr, xz_, xn = np.split(gx[t], 3, axis=1)
            hr, hz, hn = np.split(gh, 3, axis=1)
            r, z = sig(xr + hr), sig(xz_ + hz)
            h = (1 - z) * np.tanh(xn + r * hn) + z * h
        out.append(h)
    return np.stack(out)


RNN_RELU = lambda *a, **kw: ln.RNN(*a, nonlinearity="relu", **kw)   # noqa: E731


@pytest.mark.parametrize("cls", [ln.LSTM, ln.GRU, ln.RNN, RNN_RELU])
def test_quantised_recurrent_equals_its_simulation(cls):
    rnn = cls(12, 16, seed=0)
    x = rand(9, 3, 12, seed=4)
    q = ln.quantize_dynamic(rnn)
    out = q(x)[0]
    sim = simulate_recurrent(rnn.cell, x, rnn.state_dict(), 16)
    assert rel_err(out, sim) < 1e-5


def test_quantised_linear_equals_its_simulation_and_keeps_shapes():
    lin = ln.Linear(20, 6, seed=1)
    x = rand(2, 5, 20, seed=5)
    q = ln.quantize_dynamic(lin)
    y = q(x)
    assert y.shape == (2, 5, 6)
    assert rel_err(y.reshape(10, 6), simulate_linear(x.reshape(10, 20), lin.weight.data, lin.bias.data)) < 1e-5


# -- against float and against PyTorch ------------------------------------------------------------
def torch_quantised_error(rnn, x):
    ref = torch.nn.LSTM(rnn.input_size, rnn.hidden_size, batch_first=True)
    ref.load_state_dict({k: torch.tensor(v) for k, v in rnn.state_dict().items()})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tq = torch.ao.quantization.quantize_dynamic(torch.nn.Sequential(ref), {torch.nn.LSTM}, dtype=torch.qint8)
        with torch.no_grad():
            exact = ref(torch.tensor(x))[0].numpy()
            theirs = tq(torch.tensor(x))[0].numpy()
    return rel_err(theirs, exact), exact


def test_error_is_at_most_pytorchs_at_b32_t20_i64_h256():
    rnn = ln.LSTM(64, 256, batch_first=True, seed=0)
    x = rand(32, 20, 64, seed=6)
    torch_err, exact = torch_quantised_error(rnn, x)
    ours = ln.quantize_dynamic(rnn)(x)[0]
    our_err = rel_err(ours, exact)
    print(f"B32 T20 I64 H256: ours {our_err:.4f}, torch quantize_dynamic {torch_err:.4f}")
    assert our_err <= torch_err
    assert our_err < 0.03


@pytest.mark.parametrize("kw", [dict(num_layers=2), dict(bidirectional=True), dict(num_layers=2, bidirectional=True)])
def test_stacks_lengths_and_states_follow_the_float_layer(kw):
    rnn = ln.LSTM(10, 32, batch_first=True, seed=2, **kw)
    x, lengths = rand(4, 11, 10, seed=7), np.array([11, 3, 7, 1])
    L = rnn.num_layers * rnn.num_directions
    h0, c0 = rand(L, 4, 32, seed=8, scale=0.3), rand(L, 4, 32, seed=9, scale=0.3)
    q = ln.quantize_dynamic(rnn)
    out, (h, c) = rnn(x, (h0, c0), lengths=lengths)
    qout, (qh, qc) = q(x, (h0, c0), lengths=lengths)
    assert rel_err(qout, out) < 0.03 and rel_err(qh, h) < 0.03 and rel_err(qc, c) < 0.03
    valid = np.arange(11)[None, :] < lengths[:, None]
    assert np.all(qout[~valid] == 0)


def test_trained_forecaster_loses_under_2_percent():
    series = ln.data.noisy_sine(1200, seed=0)
    X, y = ln.data.sliding_windows(series, 20)
    model = ln.Sequential(ln.LSTM(1, 32, batch_first=True, seed=0), ln.LastTimestep(), ln.Linear(32, 1, seed=0))
    model.fit(X[:900], y[:900], epochs=6, batch_size=32, verbose=0, seed=0,
              optimizer=ln.optim.Adam(model.parameters(), lr=5e-3))
    mse = lambda m: float(np.mean((m.predict(X[900:]) - y[900:]) ** 2))   # noqa: E731
    before, after = mse(model), mse(ln.quantize_dynamic(model))
    print(f"forecaster test MSE float {before:.5f}, int8 {after:.5f}")
    assert abs(after - before) / before < 0.02


# -- persistence and errors ---------------------------------------------------------------------
def test_save_load_keeps_int8_and_is_much_smaller(tmp_path):
    model = ln.Sequential(ln.Embedding(50, 32, seed=0), ln.GRU(32, 128, num_layers=2, batch_first=True, seed=0),
                          ln.LastTimestep(), ln.Linear(128, 4, seed=0))
    q = ln.quantize_dynamic(model)
    assert isinstance(model[1], ln.GRU)                             # the original is untouched
    ids = np.random.default_rng(0).integers(0, 50, (6, 9))
    model.save(tmp_path / "f.npz")
    q.save(tmp_path / "q.npz")
    ratio = os.path.getsize(tmp_path / "f.npz") / os.path.getsize(tmp_path / "q.npz")
    assert ratio > 3.0                                              # the Embedding stays float here
    again = ln.load(tmp_path / "q.npz")
    np.testing.assert_array_equal(again.predict(ids), q.predict(ids))
    with np.load(tmp_path / "q.npz") as f:
        assert f["buffer/1.weight_hh_l1_q"].dtype == np.int8
    lstm = ln.Sequential(ln.LSTM(64, 256, batch_first=True, seed=0), ln.LastTimestep(), ln.Linear(256, 1))
    lstm.save(tmp_path / "f2.npz")
    ln.quantize_dynamic(lstm).save(tmp_path / "q2.npz")
    assert os.path.getsize(tmp_path / "f2.npz") / os.path.getsize(tmp_path / "q2.npz") >= 3.5


def test_quantised_models_are_inference_only():
    model = ln.Sequential(ln.LSTM(3, 8, batch_first=True), ln.LastTimestep(), ln.Linear(8, 1))
    q = ln.quantize_dynamic(model)
    x = rand(2, 4, 3)
    y = q(x)
    with pytest.raises(RuntimeError, match="inference-only"):
        q.backward(np.ones_like(y))
    with pytest.raises(RuntimeError, match="inference-only"):
        q.fit(x, np.zeros((2, 1), np.float32), verbose=0)
    with pytest.raises(ValueError, match="int8"):
        ln.quantize_dynamic(model, dtype="int4")
    with pytest.raises(TypeError, match="Module"):
        ln.quantize_dynamic(object())
    with pytest.raises(TypeError, match="float32"):
        ln.quantize_dynamic(ln.LSTM(3, 4, dtype=np.float64))
    s = q.stream()                                                 # streaming works on int8 layers
    steps = [s.step(x[:, t]) for t in range(4)]
    assert rel_err(steps[-1], y) < 1e-6


@pytest.mark.parametrize("cls", [ln.LSTM, ln.GRU, ln.RNN])
def test_quantised_recurrent_rows_do_not_depend_on_the_thread_split(cls, threads):
    """Whether each thread takes its own batch rows through the whole sequence or every step's
    product is split by weight rows, each row's integers and float cell are the same: the
    outputs equal the single-threaded ones exactly, rows run alone equal rows in a batch, and
    all of it follows the float64 simulation of the same arithmetic."""
    rnn = cls(12, 40, batch_first=True, bidirectional=True, seed=3)
    q = ln.quantize_dynamic(rnn)
    x = rand(19, 9, 12, seed=11)
    lengths = np.random.default_rng(12).integers(0, 10, size=19)
    lengths[::4] = 9
    out, state = q(x, lengths=lengths)
    h_n = state[0] if rnn.cell == "lstm" else state
    before = ln.get_num_threads()
    ln.set_num_threads(1)
    try:
        serial, serial_state = q(x, lengths=lengths)
        alone = q(x[5:8], lengths=lengths[5:8])[0]
    finally:
        ln.set_num_threads(before)
    assert np.array_equal(out, serial)
    assert np.array_equal(h_n, serial_state[0] if rnn.cell == "lstm" else serial_state)
    assert np.array_equal(alone, out[5:8])
    full = lengths == 9    # the simulation runs whole sequences, forward direction
    assert full.sum() >= 5
    sim = simulate_recurrent(rnn.cell, x[full].transpose(1, 0, 2),
                             {k: v for k, v in rnn.state_dict().items() if not k.endswith("_reverse")}, 40)
    assert rel_err(out[full][:, :, :40].transpose(1, 0, 2), sim) < 1e-5


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
def test_quantised_rnn_follows_the_float_layer_and_saves(tmp_path, nonlinearity):
    rnn = ln.RNN(10, 32, num_layers=2, nonlinearity=nonlinearity, batch_first=True, bidirectional=True, seed=2)
    model = ln.Sequential(rnn, ln.LastTimestep(), ln.Linear(64, 1, seed=0))
    x, lengths = rand(4, 11, 10, seed=7), np.array([11, 3, 7, 1])
    q = ln.quantize_dynamic(model)
    assert type(q[0]).__name__ == "QuantizedRecurrent" and q[0].cell == "rnn_" + nonlinearity
    out, qout = model.predict(x, lengths=lengths), q.predict(x, lengths=lengths)
    assert rel_err(qout, out) < 0.03
    q.save(tmp_path / "q.npz")
    np.testing.assert_array_equal(ln.load(tmp_path / "q.npz").predict(x, lengths=lengths), qout)


@pytest.mark.parametrize("layer", [
    lambda: ln.LayerNormLSTM(6, 8, batch_first=True), lambda: ln.GRU(6, 8, batch_first=True, reset_after=False),
    lambda: ln.LSTM(6, 8, batch_first=True, proj_size=4), lambda: ln.LSTM(6, 8, batch_first=True, zoneout=0.2)])
def test_cells_without_an_int8_path_stay_float(layer):
    model = ln.Sequential(layer(), ln.LastTimestep())
    q = ln.quantize_dynamic(model)
    assert type(q[0]) is type(model[0])
    x = rand(3, 5, 6, seed=1)
    np.testing.assert_array_equal(q.predict(x), model.predict(x))
