"""Bars for MultiheadAttention: output and every gradient within 1e-5 of
torch.nn.MultiheadAttention(batch_first=True) on the same weights, with and without a key
padding mask from lengths (valid query rows compared, ours zero elsewhere); float64 finite
differences within 1e-6; clear errors; save/load and training in a Sequential."""
import numpy as np
import pytest
import torch

import lstm_native as ln
from conftest import rel_err
from test_layers_gradcheck import check_module

F64 = np.float64


def torch_mha(layer, randomise_biases=True, seed=0):
    """torch's layer with our weights; biases made nonzero (torch and we init them to 0) so
    their gradients and effects are tested, then copied back into ours."""
    mha = torch.nn.MultiheadAttention(layer.embed_dim, layer.num_heads, bias=layer.in_proj_bias is not None,
                                      batch_first=True)
    mha.load_state_dict({k: torch.from_numpy(v) for k, v in layer.state_dict().items()})
    if randomise_biases and layer.in_proj_bias is not None:
        gen = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            mha.in_proj_bias.copy_(0.5 * torch.randn(mha.in_proj_bias.shape, generator=gen))
            mha.out_proj.bias.copy_(0.5 * torch.randn(mha.out_proj.bias.shape, generator=gen))
        layer.load_state_dict(mha.state_dict())
    return mha


def run_torch(mha, x, dy, lengths):
    xt = torch.tensor(x, requires_grad=True)
    mask = None if lengths is None else torch.from_numpy(np.arange(x.shape[1])[None, :] >= lengths[:, None])
    y, _ = mha(xt, xt, xt, key_padding_mask=mask)
    valid = np.ones(x.shape[:2], bool) if lengths is None else ~mask.numpy()
    # only valid query rows carry gradient (torch's rows past a length are not meaningful)
    (y * torch.from_numpy(dy * valid[..., None])).sum().backward()
    grads = {name: p.grad.numpy() for name, p in mha.named_parameters()}
    return y.detach().numpy(), xt.grad.numpy(), grads, valid


@pytest.mark.parametrize("embed_dim,num_heads", [(8, 1), (8, 2), (16, 4), (12, 4)])
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("bias", [True, False])
def test_matches_torch(embed_dim, num_heads, masked, bias):
    rng = np.random.default_rng(embed_dim * 10 + num_heads + 2 * masked + bias)
    layer = ln.MultiheadAttention(embed_dim, num_heads, bias=bias, seed=1)
    mha = torch_mha(layer, seed=embed_dim)
    B, T = 4, 9
    lengths = np.array([9, 3, 6, 1]) if masked else None
    x = rng.standard_normal((B, T, embed_dim)).astype(np.float32)
    dy = rng.standard_normal((B, T, embed_dim)).astype(np.float32)
    y = layer(x, lengths=lengths)
    dx = layer.backward(dy)
    y_t, dx_t, grads_t, valid = run_torch(mha, x, dy, lengths)
    assert rel_err(y[valid], y_t[valid]) < 1e-5
    assert not y[~valid].any()
    assert rel_err(dx, dx_t) < 1e-5
    assert list(layer.grads) == list(grads_t) == list(layer.state_dict())
    for name in grads_t:
        assert rel_err(layer.grads[name], grads_t[name]) < 1e-5, name
    assert layer.last_weights.shape == (B, num_heads, T, T)


def test_parameters_and_init_follow_torch():
    layer = ln.MultiheadAttention(16, 4, seed=0)
    mha = torch.nn.MultiheadAttention(16, 4, batch_first=True)
    assert [(k, v.shape) for k, v in layer.state_dict().items()] == \
           [(k, tuple(v.shape)) for k, v in mha.state_dict().items()]
    bound = np.sqrt(6 / (16 + 48))
    w = layer.in_proj_weight.data
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.8 * bound
    assert not layer.in_proj_bias.data.any() and not layer.out_proj.bias.data.any()
    assert np.abs(layer.out_proj.weight.data).max() <= 1 / np.sqrt(16)
    layer.load_state_dict(mha.state_dict())    # torch tensors load directly
    np.testing.assert_array_equal(layer.in_proj_weight.data, mha.in_proj_weight.detach().numpy())
    no_bias = ln.MultiheadAttention(8, 2, bias=False)
    assert list(no_bias.state_dict()) == ["in_proj_weight", "out_proj.weight"]


@pytest.mark.parametrize("num_heads,lengths", [(1, None), (2, None), (2, [5, 2, 4]), (4, [1, 5, 3])])
def test_gradcheck(num_heads, lengths):
    layer = ln.MultiheadAttention(8, num_heads, seed=2, dtype=F64)
    rng = np.random.default_rng(3)
    for p in layer.parameters():
        p.data[:] = rng.standard_normal(p.shape) * 0.5
    x = rng.standard_normal((3, 5, 8))
    lengths = None if lengths is None else np.array(lengths)
    check_module(layer, x, forward=lambda: layer(x, lengths=lengths), probes=10)


def test_bad_inputs():
    with pytest.raises(ValueError, match=r"embed_dim \(10\) must be divisible by num_heads \(4\)"):
        ln.MultiheadAttention(10, 4)
    with pytest.raises(ValueError, match="num_heads must be a positive integer"):
        ln.MultiheadAttention(8, 0)
    layer = ln.MultiheadAttention(8, 2)
    with pytest.raises(ValueError, match=r"x must have shape \(batch, time, 8\)"):
        layer(np.zeros((2, 3, 6), np.float32))
    with pytest.raises(ValueError, match=r"x must have shape \(batch, time, 8\)"):
        layer(np.zeros((2, 8), np.float32))
    with pytest.raises(TypeError, match="x must be a floating-point array"):
        layer(np.zeros((2, 3, 8), np.int64))
    with pytest.raises(ValueError, match=r"lengths must have shape \(2,\)"):
        layer(np.zeros((2, 3, 8), np.float32), lengths=[1, 2, 3])
    with pytest.raises(ValueError, match=r"lengths\[1\] = 4 is outside \[0, 3\]"):
        layer(np.zeros((2, 3, 8), np.float32), lengths=[1, 4])
    with pytest.raises(ValueError, match="needs a forward first"):
        ln.MultiheadAttention(8, 2).backward(np.zeros((2, 3, 8), np.float32))
    layer(np.zeros((2, 3, 8), np.float32))
    with pytest.raises(ValueError, match=r"grad must have shape \(2, 3, 8\)"):
        layer.backward(np.zeros((2, 4, 8), np.float32))


def test_in_a_model_trains_with_lengths_and_round_trips(tmp_path):
    rng = np.random.default_rng(0)
    n, T = 96, 10
    X = rng.standard_normal((n, T, 2)).astype(np.float32)
    lengths = rng.integers(3, T + 1, n)
    y = np.array([X[i, :lengths[i], 0].max() for i in range(n)], np.float32)[:, None]
    model = ln.Sequential(ln.LSTM(2, 8, batch_first=True, seed=0), ln.MultiheadAttention(8, 2, seed=1),
                          ln.LastTimestep(), ln.Linear(8, 1, seed=2))
    assert list(model.grads) == list(model.state_dict())
    assert "1.out_proj.weight" in model.state_dict()
    before = model.evaluate(X, y, lengths=lengths)["loss"]
    model.fit(X, y, epochs=20, batch_size=32, lengths=lengths, verbose=0, seed=0,
              optimizer=ln.optim.Adam(model.parameters(), lr=1e-2))
    assert model.evaluate(X, y, lengths=lengths)["loss"] < 0.5 * before
    path = tmp_path / "mha.lnz"
    model.save(path)
    loaded = ln.load(path)
    assert repr(loaded) == repr(model)
    np.testing.assert_array_equal(loaded.predict(X, lengths=lengths), model.predict(X, lengths=lengths))
