"""Bars for Conv1d and MaxPool1d: outputs and every gradient within 1e-5 of torch on the same
weights; float64 finite differences within 1e-6; lengths behave as running each sequence
alone; bad inputs get clear errors; a CNN-LSTM saves, loads and trains with lengths."""
import numpy as np
import pytest
import torch

import lstm_native as ln
from conftest import rel_err
from test_layers_gradcheck import check_module

F64 = np.float64

# (in_channels, out_channels, kernel_size, stride, padding, dilation, bias)
CONV_CONFIGS = [
    (3, 5, 3, 1, 0, 1, True),
    (4, 2, 3, 2, 1, 1, True),     # stride and padding
    (3, 6, 3, 1, 2, 2, True),     # dilation
    (5, 5, 1, 1, 0, 1, True),     # k = 1: a per-step Linear
    (2, 7, 5, 3, 2, 1, False),    # no bias, stride > 1 with padding
    (6, 3, 4, 1, 3, 3, True),     # even kernel, large dilation
]


def torch_conv(layer):
    conv = torch.nn.Conv1d(layer.in_channels, layer.out_channels, layer.kernel_size, stride=layer.stride,
                           padding=layer.padding, dilation=layer.dilation, bias=layer.bias is not None)
    conv.load_state_dict({k: torch.from_numpy(v) for k, v in layer.state_dict().items()})
    return conv


def run_torch(module, x, dy):
    """torch's (B, C, T) module on our (B, T, C) layout: output, dx and parameter gradients."""
    xt = torch.tensor(x, requires_grad=True)
    y = module(xt.transpose(1, 2)).transpose(1, 2)
    (y * torch.from_numpy(dy)).sum().backward()
    grads = {name: p.grad.numpy() for name, p in module.named_parameters()}
    return y.detach().numpy(), xt.grad.numpy(), grads


@pytest.mark.parametrize("config", CONV_CONFIGS)
def test_conv1d_matches_torch(config):
    c_in, c_out, k, stride, padding, dilation, bias = config
    rng = np.random.default_rng(sum(config))
    layer = ln.Conv1d(c_in, c_out, k, stride=stride, padding=padding, dilation=dilation, bias=bias, seed=1)
    x = rng.standard_normal((4, 13, c_in)).astype(np.float32)
    y = layer(x)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx = layer.backward(dy)
    y_t, dx_t, grads_t = run_torch(torch_conv(layer), x, dy)
    assert y.shape == y_t.shape
    assert rel_err(y, y_t) < 1e-5
    assert rel_err(dx, dx_t) < 1e-5
    assert list(layer.grads) == list(grads_t) == list(layer.state_dict())
    for name in grads_t:
        assert rel_err(layer.grads[name], grads_t[name]) < 1e-5, name


def test_conv1d_parallel_paths_match_torch(threads):
    # every parallel path of the kernels (im2col rows, col2im sequences, split GEMMs) forced on
    layer = ln.Conv1d(6, 10, 3, stride=2, padding=1, dilation=2, seed=2)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((7, 31, 6)).astype(np.float32)
    y = layer(x)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx = layer.backward(dy)
    y_t, dx_t, grads_t = run_torch(torch_conv(layer), x, dy)
    assert rel_err(y, y_t) < 1e-5 and rel_err(dx, dx_t) < 1e-5
    for name in grads_t:
        assert rel_err(layer.grads[name], grads_t[name]) < 1e-5, name


def test_conv1d_init_and_torch_weights():
    layer = ln.Conv1d(4, 8, 3, seed=0)
    bound = 1 / np.sqrt(4 * 3)
    assert layer.weight.shape == (8, 4, 3) and layer.bias.shape == (8,)
    assert np.abs(layer.weight.data).max() <= bound and np.abs(layer.bias.data).max() <= bound
    assert np.abs(layer.weight.data).max() > 0.8 * bound   # uniform over the whole range
    conv = torch.nn.Conv1d(4, 8, 3)
    layer.load_state_dict(conv.state_dict())
    np.testing.assert_array_equal(layer.weight.data, conv.weight.detach().numpy())
    assert ln.Conv1d(4, 8, 3, seed=5).weight.data.tolist() == ln.Conv1d(4, 8, 3, seed=5).weight.data.tolist()


@pytest.mark.parametrize("config", [(3, 4, 3, 1, 1, 1, True), (3, 4, 3, 2, 0, 2, True), (2, 3, 2, 3, 1, 1, False)])
def test_conv1d_lengths_match_each_sequence_alone(config):
    c_in, c_out, k, stride, padding, dilation, bias = config
    rng = np.random.default_rng(7)
    layer = ln.Conv1d(c_in, c_out, k, stride=stride, padding=padding, dilation=dilation, bias=bias, seed=3)
    B, T = 5, 14
    lengths = np.array([14, 9, 11, 6, 14])
    x = rng.standard_normal((B, T, c_in)).astype(np.float32)   # padding holds junk, not zeros
    y = layer(x, lengths=lengths)
    out_lengths = layer.output_lengths(lengths)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx = layer.backward(dy)
    conv = torch_conv(layer)
    want_grads = {name: 0 for name in layer.grads}
    for b in range(B):
        L, Lo = lengths[b], out_lengths[b]
        y_t, dx_t, grads_t = run_torch(conv, x[b:b + 1, :L], dy[b:b + 1, :Lo])
        conv.zero_grad()
        assert y_t.shape[1] == Lo
        assert rel_err(y[b, :Lo], y_t[0]) < 1e-5
        assert rel_err(dx[b, :L], dx_t[0]) < 1e-5
        assert not y[b, Lo:].any() and not dx[b, L:].any()   # clean padding both ways
        for name in grads_t:
            want_grads[name] = want_grads[name] + grads_t[name]
    for name in want_grads:
        assert rel_err(layer.grads[name], want_grads[name]) < 1e-5, name


def test_conv1d_output_lengths():
    layer = ln.Conv1d(1, 1, 3, stride=2, padding=1, dilation=2)
    T = np.arange(3, 20)
    expected = np.floor((T + 2 * 1 - 2 * 2 - 1) / 2) + 1
    np.testing.assert_array_equal(layer.output_lengths(T), expected)
    assert layer.output_lengths(None) is None
    for steps in (3, 8, 13):
        assert layer(np.zeros((1, steps, 1), np.float32)).shape[1] == expected[steps - 3]
    with pytest.raises(ValueError, match=r"lengths\[1\] = 2 is too short"):
        layer.output_lengths(np.array([5, 2]))


@pytest.mark.parametrize("config", CONV_CONFIGS)
def test_conv1d_gradcheck(config):
    c_in, c_out, k, stride, padding, dilation, bias = config
    layer = ln.Conv1d(c_in, c_out, k, stride=stride, padding=padding, dilation=dilation, bias=bias, seed=4, dtype=F64)
    x = np.random.default_rng(5).standard_normal((3, 12, c_in))
    check_module(layer, x, probes=8)


def test_conv1d_gradcheck_with_lengths():
    layer = ln.Conv1d(3, 4, 3, stride=2, padding=1, seed=4, dtype=F64)
    x = np.random.default_rng(6).standard_normal((3, 11, 3))
    lengths = np.array([11, 4, 7])
    check_module(layer, x, forward=lambda: layer(x, lengths=lengths), probes=12)


# -- MaxPool1d -------------------------------------------------------------------------

POOL_CONFIGS = [(2, None, 0), (3, 1, 1), (3, 2, 0), (4, 3, 2), (1, 1, 0), (5, 2, 2)]


@pytest.mark.parametrize("kernel,stride,padding", POOL_CONFIGS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_maxpool_matches_torch(kernel, stride, padding, dtype):
    rng = np.random.default_rng(kernel * 10 + padding)
    x = rng.standard_normal((3, 13, 4)).astype(dtype)
    pool = ln.MaxPool1d(kernel, stride, padding)
    y = pool(x)
    assert y.dtype == dtype
    dy = rng.standard_normal(y.shape).astype(dtype)
    dx = pool.backward(dy)
    y_t, dx_t, _ = run_torch(torch.nn.MaxPool1d(kernel, stride, padding), x, dy)
    assert y.shape == y_t.shape
    assert rel_err(y, y_t) < 1e-12 and rel_err(dx, dx_t) < 1e-6


def test_maxpool_ties_and_lengths():
    pool = ln.MaxPool1d(3, stride=1, padding=1)
    x = np.ones((1, 4, 1), np.float32)    # ties: the gradient goes to the first maximum, as torch's
    y = pool(x)
    dx = pool.backward(np.ones_like(y))
    _, dx_t, _ = run_torch(torch.nn.MaxPool1d(3, 1, 1), x, np.ones_like(y))
    np.testing.assert_array_equal(dx, dx_t)

    rng = np.random.default_rng(0)
    pool = ln.MaxPool1d(2)
    x = rng.standard_normal((3, 9, 2)).astype(np.float32)
    x[:, 5:] = 100.0                      # junk in the padding must never win
    lengths = np.array([9, 5, 3])
    y = pool(x, lengths=lengths)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx = pool.backward(dy)
    out_lengths = pool.output_lengths(lengths)
    np.testing.assert_array_equal(out_lengths, [4, 2, 1])
    for b in (1, 2):
        L, Lo = lengths[b], out_lengths[b]
        y_t, dx_t, _ = run_torch(torch.nn.MaxPool1d(2), x[b:b + 1, :L], dy[b:b + 1, :Lo])
        np.testing.assert_array_equal(y[b, :Lo], y_t[0])
        np.testing.assert_array_equal(dx[b, :L], dx_t[0])
        assert not y[b, Lo:].any() and not dx[b, L:].any()


def test_maxpool_gradcheck():
    pool = ln.MaxPool1d(3, stride=2, padding=1)
    x = np.random.default_rng(8).standard_normal((2, 11, 3))   # distinct values: no ties within EPS
    check_module(pool, x, probes=20)
    check_module(pool, x, forward=lambda: pool(x, lengths=np.array([11, 6])), probes=20)


# -- bad inputs ----------------------------------------------------------------------

@pytest.mark.parametrize("x,error,words", [
    (np.zeros((2, 9, 4), np.float32), ValueError, r"x must have 3 in_channels"),
    (np.zeros((2, 9), np.float32), ValueError, r"x must be 3-D"),
    (np.zeros((2, 9, 3, 1), np.float32), ValueError, r"x must be 3-D"),
    (np.zeros((2, 9, 3), np.int32), TypeError, r"x must be a floating-point array"),
    (np.zeros((2, 3, 3), np.float32), ValueError, r"kernel_size 5 .* longer than x's padded sequence"),
    (np.zeros((0, 9, 3), np.float32), ValueError, r"x is empty"),
])
def test_conv1d_bad_inputs(x, error, words):
    with pytest.raises(error, match=words):
        ln.Conv1d(3, 2, 5)(x)


def test_conv1d_bad_arguments():
    layer = ln.Conv1d(3, 2, 3, padding=1)
    x = np.zeros((2, 6, 3), np.float32)
    with pytest.raises(ValueError, match=r"lengths must have shape \(2,\)"):
        layer(x, lengths=[3, 4, 5])
    with pytest.raises(TypeError, match="lengths must hold integers"):
        layer(x, lengths=np.array([3.0, 4.0]))
    with pytest.raises(ValueError, match=r"lengths\[0\] = 7 is outside \[0, 6\]"):
        layer(x, lengths=[7, 4])
    with pytest.raises(ValueError, match=r"lengths\[1\] = 0 is too short"):
        layer(x, lengths=[3, 0])
    with pytest.raises(ValueError, match="needs a forward first"):
        ln.Conv1d(3, 2, 3).backward(np.zeros((2, 4, 2), np.float32))
    layer(x)
    with pytest.raises(ValueError, match=r"grad must have shape \(2, 6, 2\)"):
        layer.backward(np.zeros((2, 5, 2), np.float32))
    for name, kwargs in [("in_channels", dict(in_channels=0)), ("kernel_size", dict(kernel_size=0)),
                         ("stride", dict(stride=0)), ("padding", dict(padding=-1)), ("dilation", dict(dilation=0))]:
        args = dict(in_channels=3, out_channels=2, kernel_size=3) | kwargs
        with pytest.raises(ValueError, match=name):
            ln.Conv1d(**args)
    with pytest.raises(TypeError, match="dtype must be float32 or float64"):
        ln.Conv1d(3, 2, 3, dtype=np.int32)
    with pytest.raises(ValueError, match="padding must be at most half of kernel_size"):
        ln.MaxPool1d(2, padding=2)
    with pytest.raises(ValueError, match="kernel_size 4 .* longer than x's padded sequence"):
        ln.MaxPool1d(4)(np.zeros((1, 3, 2), np.float32))


def cnn_lstm(seed=0):
    return ln.Sequential(ln.Conv1d(2, 8, 3, padding=1, seed=seed), ln.ReLU(), ln.MaxPool1d(2),
                         ln.LSTM(8, 16, batch_first=True, seed=seed + 1), ln.LastTimestep(),
                         ln.Linear(16, 1, seed=seed + 2))


def toy_data(n=128, steps=16, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, steps, 2)).astype(np.float32)
    lengths = rng.integers(6, steps + 1, n)
    # the target: the sum of the last 4 valid steps of channel 0 (local, so the conv helps)
    y = np.array([X[i, lengths[i] - 4:lengths[i], 0].sum() for i in range(n)], np.float32)[:, None]
    return X, y, lengths


def test_cnn_lstm_fits_with_lengths_and_round_trips(tmp_path):
    X, y, lengths = toy_data()
    model = cnn_lstm()
    assert list(model.grads) == list(model.state_dict())
    assert "0.weight" in model.state_dict() and "3.weight_ih_l0" in model.state_dict()
    before = model.evaluate(X, y, lengths=lengths)["loss"]
    hist = model.fit(X, y, epochs=15, batch_size=32, lengths=lengths, verbose=0, seed=0,
                     optimizer=ln.optim.Adam(model.parameters(), lr=1e-2))
    after = model.evaluate(X, y, lengths=lengths)["loss"]
    assert hist.history["loss"][-1] < hist.history["loss"][0]
    assert after < 0.5 * before, (before, after)

    path = tmp_path / "cnn_lstm.lnz"
    model.save(path)
    loaded = ln.load(path)
    assert repr(loaded) == repr(model)
    np.testing.assert_array_equal(loaded.predict(X, lengths=lengths), model.predict(X, lengths=lengths))


def test_padding_does_not_change_predictions():
    # the same sequences with junk (not zeros) past their lengths predict the same
    X, _, lengths = toy_data(n=16)
    model = cnn_lstm(seed=3)
    junk = X.copy()
    for i, L in enumerate(lengths):
        junk[i, L:] = 50.0
    np.testing.assert_allclose(model.predict(junk, lengths=lengths), model.predict(X, lengths=lengths), rtol=0, atol=1e-6)
