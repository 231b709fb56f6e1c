"""Conv1d, MaxPool1d and MultiheadAttention: torch parity (outputs and every gradient within
1e-5 relative, padding masks included), float64 finite differences, bad inputs, and the
CNN-LSTM trained with fit on variable-length batches."""
import numpy as np
import pytest
import torch

import lstm_native as ln
from conftest import rel_err
from test_layers_gradcheck import check_module

TOL = 1e-5


def rand(*shape, seed=0, dtype=np.float32):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def torch_state(module):
    return {k: torch.tensor(v) for k, v in module.state_dict().items()}


# -- Conv1d ------------------------------------------------------------------------------------
CONV_CASES = [  # in, out, kernel, stride, padding, dilation, bias
    (3, 5, 3, 1, 0, 1, True), (4, 2, 5, 2, 2, 2, True), (3, 3, 1, 1, 0, 1, True), (6, 4, 4, 3, 1, 1, False),
    (1, 8, 7, 1, 3, 1, True),
]


@pytest.mark.parametrize("cin, cout, k, stride, padding, dilation, bias", CONV_CASES)
def test_conv1d_matches_torch(cin, cout, k, stride, padding, dilation, bias):
    conv = ln.Conv1d(cin, cout, k, stride, padding, dilation, bias=bias, seed=1)
    ref = torch.nn.Conv1d(cin, cout, k, stride, padding, dilation, bias=bias)
    ref.load_state_dict(torch_state(conv))
    x = rand(3, 19, cin)
    y = conv(x)
    tx = torch.tensor(x.transpose(0, 2, 1), requires_grad=True)
    ty = ref(tx).transpose(1, 2)
    assert rel_err(y, ty.detach().numpy()) < TOL
    g = rand(*y.shape, seed=2)
    ty.backward(torch.tensor(g))
    dx = conv.backward(g)
    assert rel_err(dx, tx.grad.numpy().transpose(0, 2, 1)) < TOL
    grads = conv.grads
    assert list(grads) == list(conv.state_dict())
    for name, p in ref.named_parameters():
        assert rel_err(grads[name], p.grad.numpy()) < TOL, name


def test_conv1d_default_init_matches_torch_bounds():
    conv = ln.Conv1d(4, 64, 3, seed=0)
    bound = 1 / np.sqrt(4 * 3)
    for p in (conv.weight.data, conv.bias.data):
        assert p.min() >= -bound and p.max() <= bound and p.max() > 0.8 * bound


@pytest.mark.parametrize("padding, stride", [(0, 1), (2, 2)])
def test_conv1d_with_lengths_equals_each_sequence_alone(padding, stride):
    conv = ln.Conv1d(3, 4, 3, stride=stride, padding=padding, seed=0)
    x, lengths = rand(3, 12, 3), np.array([12, 5, 8])
    x[1, 5:] = 99.0                                  # padding garbage must not leak in
    y = conv(x, lengths=lengths)
    out_lengths = conv.output_lengths(lengths)
    g = rand(*y.shape, seed=3)
    dx = conv.backward(g)
    dw = conv.weight.grad.copy()
    conv.zero_grad()
    for b, n in enumerate(lengths):
        alone = conv(x[b:b + 1, :n])
        assert alone.shape[1] == out_lengths[b]
        np.testing.assert_allclose(y[b, :out_lengths[b]], alone[0], rtol=1e-6, atol=1e-6)
        assert np.all(y[b, out_lengths[b]:] == 0)
        dxb = conv.backward(g[b:b + 1, :out_lengths[b]])
        np.testing.assert_allclose(dx[b, :n], dxb[0], rtol=1e-5, atol=1e-6)
        assert np.all(dx[b, n:] == 0)
    assert rel_err(conv.weight.grad, dw) < 1e-5      # the sum over sequences alone


def test_conv1d_gradients_match_finite_differences():
    check_module(ln.Conv1d(3, 4, 3, stride=2, padding=1, dilation=2, seed=0, dtype=np.float64),
                 rand(2, 11, 3, dtype=np.float64), probes=8)
    conv = ln.Conv1d(2, 3, 2, seed=1, dtype=np.float64)
    x, lengths = rand(2, 7, 2, dtype=np.float64), np.array([7, 4])
    check_module(conv, x, forward=lambda: conv(x, lengths=lengths), probes=8)


def test_conv1d_bad_inputs():
    conv = ln.Conv1d(3, 4, 5)
    with pytest.raises(ValueError, match="3 in_channels"):
        conv(rand(2, 10, 4))
    with pytest.raises(ValueError, match="longer than x's padded sequence"):
        conv(rand(2, 4, 3))
    with pytest.raises(ValueError, match="3-D"):
        conv(rand(10, 3))
    with pytest.raises(TypeError, match="floating-point"):
        conv(np.zeros((2, 10, 3), np.int64))
    with pytest.raises(ValueError, match="NaN"):
        conv(np.full((1, 10, 3), np.nan, np.float32))
    with pytest.raises(ValueError, match="too short"):
        conv(rand(2, 10, 3), lengths=np.array([10, 3]))
    with pytest.raises(ValueError, match=r"lengths must have shape \(2,\)"):
        conv(rand(2, 10, 3), lengths=np.array([10, 3, 4]))
    with pytest.raises(ValueError, match="kernel_size"):
        ln.Conv1d(3, 4, 0)
    with pytest.raises(ValueError, match="needs a forward"):
        ln.Conv1d(3, 4, 2).backward(rand(1, 3, 4))
    y = conv(rand(2, 10, 3))
    with pytest.raises(ValueError, match="grad must have shape"):
        conv.backward(rand(2, 5, 4))
    assert y.shape == (2, 6, 4)


# -- MaxPool1d ---------------------------------------------------------------------------------
@pytest.mark.parametrize("k, stride, padding", [(2, None, 0), (3, 1, 1), (3, 2, 0), (4, 3, 2)])
def test_maxpool_matches_torch(k, stride, padding):
    pool, ref = ln.MaxPool1d(k, stride, padding), torch.nn.MaxPool1d(k, stride, padding)
    x = rand(2, 13, 3)
    y = pool(x)
    tx = torch.tensor(x.transpose(0, 2, 1), requires_grad=True)
    ty = ref(tx).transpose(1, 2)
    assert rel_err(y, ty.detach().numpy()) < TOL
    g = rand(*y.shape, seed=1)
    ty.backward(torch.tensor(g))
    assert rel_err(pool.backward(g), tx.grad.numpy().transpose(0, 2, 1)) < TOL


def test_maxpool_gradients_and_lengths():
    pool = ln.MaxPool1d(3, 2, 1)
    check_module(pool, rand(2, 9, 3, dtype=np.float64), probes=10)
    x, lengths = rand(2, 9, 2), np.array([9, 4])
    x[1, 4:] = 50.0                                 # beyond the length: must never win
    y = pool(x, lengths=lengths)
    alone = pool(x[1:, :4])
    n = pool.output_lengths(lengths)[1]
    np.testing.assert_array_equal(y[1, :n], alone[0])
    assert np.all(y[1, n:] == 0)
    with pytest.raises(ValueError, match="at most half of kernel_size"):
        ln.MaxPool1d(2, padding=2)
    with pytest.raises(ValueError, match="longer than x's padded sequence"):
        pool(rand(1, 1, 2)[:, :0])


# -- MultiheadAttention ------------------------------------------------------------------------
@pytest.mark.parametrize("heads, bias, masked", [(1, True, False), (2, True, True), (4, True, True), (2, False, True)])
def test_multihead_attention_matches_torch(heads, bias, masked):
    E, T = 8, 7
    mha = ln.MultiheadAttention(E, heads, bias=bias, seed=3)
    ref = torch.nn.MultiheadAttention(E, heads, bias=bias, batch_first=True)
    ref.load_state_dict(torch_state(mha))
    x = rand(4, T, E, seed=4)
    lengths = np.array([7, 3, 1, 5]) if masked else None
    y = mha(x, lengths=lengths)
    tx = torch.tensor(x, requires_grad=True)
    mask = None if lengths is None else torch.tensor(np.arange(T)[None, :] >= lengths[:, None])
    ty, tw = ref(tx, tx, tx, key_padding_mask=mask, average_attn_weights=False)
    valid = np.ones((4, T), bool) if lengths is None else np.arange(T)[None, :] < lengths[:, None]
    assert rel_err(y[valid], ty.detach().numpy()[valid]) < TOL
    assert np.all(y[~valid] == 0)
    assert rel_err(mha.last_weights.transpose(0, 2, 1, 3)[valid], tw.detach().numpy().transpose(0, 2, 1, 3)[valid]) < TOL
    g = rand(*y.shape, seed=5) * valid[:, :, None]
    (ty * torch.tensor(g)).sum().backward()
    dx = mha.backward(g)
    assert rel_err(dx, tx.grad.numpy()) < TOL
    grads = mha.grads
    assert list(grads) == list(mha.state_dict()) == [n for n, _ in ref.named_parameters()]
    for name, p in ref.named_parameters():
        assert rel_err(grads[name], p.grad.numpy()) < TOL, name


def test_multihead_attention_finite_differences_and_errors():
    mha = ln.MultiheadAttention(6, 3, seed=0, dtype=np.float64)
    mha.in_proj_bias.data[:] = rand(18, seed=9, dtype=np.float64) * 0.1
    x, lengths = rand(2, 5, 6, dtype=np.float64), np.array([5, 2])
    check_module(mha, x, probes=8)
    check_module(mha, x, forward=lambda: mha(x, lengths=lengths), probes=8)
    with pytest.raises(ValueError, match="divisible by num_heads"):
        ln.MultiheadAttention(10, 3)
    with pytest.raises(ValueError, match=r"shape \(batch, time, 6\)"):
        mha(rand(2, 5, 4))
    with pytest.raises(ValueError, match="lengths"):
        mha(x, lengths=np.array([5, 0]))
    with pytest.raises(ValueError, match="lengths"):
        mha(x, lengths=np.array([5]))


# -- the CNN-LSTM ------------------------------------------------------------------------------
def cnn_lstm(seed=0):
    return ln.Sequential(ln.Conv1d(2, 8, 3, padding=1, seed=seed), ln.ReLU(), ln.MaxPool1d(2),
                         ln.LSTM(8, 16, batch_first=True, seed=seed), ln.MultiheadAttention(16, 2, seed=seed),
                         ln.LastTimestep(), ln.Linear(16, 1, seed=seed))


def test_cnn_lstm_trains_with_lengths_and_round_trips(tmp_path):
    rng = np.random.default_rng(0)
    n, T = 256, 24
    X = rng.standard_normal((n, T, 2)).astype(np.float32)
    lengths = rng.integers(8, T + 1, n)
    y = np.array([X[i, :lengths[i], 0].mean() + 0.5 * X[i, :lengths[i], 1].max() for i in range(n)],
                 np.float32)[:, None]
    model = cnn_lstm()
    first = model.evaluate(X, y, lengths=lengths)["loss"]
    model.fit(X, y, epochs=15, batch_size=32, lengths=lengths, verbose=0, seed=0,
              optimizer=ln.optim.Adam(model.parameters(), lr=5e-3))
    last = model.evaluate(X, y, lengths=lengths)["loss"]
    assert last < 0.4 * first, (first, last)
    path = tmp_path / "cnn_lstm.npz"
    model.save(path)
    again = ln.load(path)
    np.testing.assert_array_equal(again.predict(X, lengths=lengths), model.predict(X, lengths=lengths))
    with pytest.raises(TypeError, match="Conv1d needs the whole sequence"):
        model.stream()
