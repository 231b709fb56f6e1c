"""Bar: every layer and loss passes a finite-difference gradient check (float64)."""
import numpy as np
import pytest
import torch

import lstm_native as ln
from conftest import rel_err

F64 = np.float64
EPS = 1e-6


def numeric_grad(f, arr, idx):
    saved = arr[idx]
    arr[idx] = saved + EPS
    up = f()
    arr[idx] = saved - EPS
    down = f()
    arr[idx] = saved
    return (up - down) / (2 * EPS)


def check_module(module, x, forward=None, backward=None, probes=6, seed=0, check_input=True):
    """sum(forward(x) * R) vs its analytic gradients w.r.t. x and every parameter."""
    rng = np.random.default_rng(seed)
    forward = forward or (lambda: module(x))
    R = rng.standard_normal(np.shape(forward()))
    module.zero_grad()
    forward()
    dx = (backward or module.backward)(R)
    tensors = {name: p.data for name, p in module.named_parameters()}
    analytic = dict(module.grads)
    if check_input:
        tensors["x"], analytic["x"] = x, dx
    loss = lambda: float(np.sum(forward() * R))
    for name, arr in tensors.items():
        picks = rng.choice(arr.size, size=min(probes, arr.size), replace=False)
        idxs = [np.unravel_index(i, arr.shape) for i in picks]
        num = [numeric_grad(loss, arr, i) for i in idxs]
        ana = [analytic[name][i] for i in idxs]
        assert rel_err(num, ana) < 1e-6, name


def randn(*shape, seed=1):
    return np.random.default_rng(seed).standard_normal(shape)


def test_linear():
    check_module(ln.Linear(5, 3, dtype=F64), randn(4, 5))
    check_module(ln.Linear(5, 3, dtype=F64), randn(2, 4, 5))   # any leading axes
    check_module(ln.Linear(5, 3, bias=False, dtype=F64), randn(4, 5))
    check_module(ln.Linear(40, 30, dtype=F64), randn(2, 15, 40))  # above the small-product size: the core's GEMM


def test_linear_small_and_large_products_agree():
    """Tiny heads multiply through NumPy, the rest through the core: same values, same gradients."""
    layer = ln.Linear(64, 8, seed=0)
    x = randn(3, 64).astype(np.float32)     # 3 x 64 x 8: NumPy's product
    big = np.concatenate([x] * 30)           # 90 rows: the core's product
    g = randn(3, 8, seed=5).astype(np.float32)
    small_out = layer(x)
    small_dx = layer.backward(g)
    small_dw = layer.weight.grad.copy()
    layer.zero_grad()
    big_out = layer(big)
    big_dx = layer.backward(np.concatenate([g] + [np.zeros_like(g)] * 29))
    assert rel_err(big_out[:3], small_out) < 1e-6 and rel_err(big_dx[:3], small_dx) < 1e-6
    assert rel_err(layer.weight.grad, small_dw) < 1e-6


def test_layer_norm():
    layer = ln.LayerNorm(6, dtype=F64)
    layer.weight.data[:] = randn(6, seed=3)
    layer.bias.data[:] = randn(6, seed=4)
    check_module(layer, randn(3, 4, 6))


@pytest.mark.parametrize("cls", [ln.ReLU, ln.Tanh, ln.Sigmoid])
def test_activations(cls):
    x = randn(4, 5)
    x[np.abs(x) < 0.01] = 0.5   # keep away from ReLU's kink
    check_module(cls(), x)


def test_last_timestep_with_lengths():
    layer = ln.LastTimestep()
    x = randn(3, 5, 2)
    check_module(layer, x, forward=lambda: layer(x, lengths=[5, 2, 3]))


def test_last_timestep_without_lengths():
    layer = ln.LastTimestep()
    x = randn(3, 5, 2)
    check_module(layer, x)
    out = layer(x)
    assert np.array_equal(out, x[:, -1]) and out.flags.c_contiguous
    out[:] = 7                               # a copy: the input sequence is untouched
    assert not np.any(x == 7)
    dense = np.asarray(layer.seq_backward(np.ones((3, 2))))
    assert np.all(dense[:, -1] == 1) and np.all(dense[:, :-1] == 0)


def test_time_distributed():
    check_module(ln.TimeDistributed(ln.Linear(4, 2, dtype=F64)), randn(3, 5, 4))


def test_residual_lstm_stack_with_lengths():
    block = ln.Residual(ln.LSTM(4, 4, batch_first=True, dtype=F64, seed=0))
    x = randn(3, 5, 4)
    check_module(block, x, forward=lambda: block.seq_forward(x, np.array([5, 3, 1])))


def test_embedding_with_padding():
    ids = np.array([[1, 2, 0], [2, 6, 6]])
    check_module(ln.Embedding(7, 3, dtype=F64), ids, check_input=False)
    layer = ln.Embedding(7, 3, padding_idx=0, dtype=F64)   # as torch: the padding row gets no gradient
    assert np.all(layer.weight.data[0] == 0)
    layer(ids)
    layer.backward(np.ones((2, 3, 3)))
    assert np.all(layer.weight.grad[0] == 0) and np.all(layer.weight.grad[6] == 2)


def test_dropout_backward_uses_the_forward_mask():
    layer = ln.Dropout(0.3, seed=0)
    x = randn(50, 40) + 3.0
    y = layer(x)
    mask = y / x
    assert set(np.round(np.unique(mask), 6)) <= {0.0, round(1 / 0.7, 6)}
    assert 0.2 < np.mean(mask == 0) < 0.4
    np.testing.assert_allclose(layer.backward(np.ones_like(x)), mask)
    layer.eval()
    np.testing.assert_array_equal(layer(x), x)


@pytest.mark.parametrize("with_lengths", [False, True])
def test_attention_without_query(with_lengths):
    layer = ln.Attention(4, attention_size=5, dtype=F64, seed=0)
    h = randn(3, 6, 4)
    lengths = np.array([6, 2, 4]) if with_lengths else None
    check_module(layer, h, forward=lambda: layer(h, lengths=lengths))
    if with_lengths:
        assert np.all(layer.last_weights[1, 2:] == 0)
        np.testing.assert_allclose(layer.last_weights.sum(axis=1), 1)


@pytest.mark.parametrize("query_steps", [None, 3])
def test_attention_with_queries(query_steps):
    layer = ln.Attention(4, query_size=2, dtype=F64, seed=1)
    h = randn(3, 6, 4)
    q = randn(3, 2, seed=5) if query_steps is None else randn(3, query_steps, 2, seed=5)
    lengths = np.array([6, 2, 4])
    fwd = lambda: layer(h, q, lengths)
    check_module(layer, h, forward=fwd, backward=lambda g: layer.backward(g)[0])
    # the query's gradient too
    R = randn(*fwd().shape, seed=7)
    layer(h, q, lengths)
    _, dq = layer.backward(R)
    idx = (1, 0) if query_steps is None else (1, 2, 0)
    assert abs(numeric_grad(lambda: float(np.sum(fwd() * R)), q, idx) - dq[idx]) < 1e-6 * max(1, abs(dq[idx]))


def test_sequential_of_everything():
    model = ln.Sequential(ln.LSTM(3, 8, batch_first=True, bidirectional=True, dtype=F64, seed=0),
                          ln.LayerNorm(16, dtype=F64), ln.Attention(16, dtype=F64, seed=1),
                          ln.Linear(16, 2, dtype=F64, seed=2), ln.Tanh())
    x = randn(3, 5, 3)
    lengths = np.array([5, 2, 4])
    check_module(model, x, forward=lambda: model(x, lengths),
                 backward=lambda g: model.backward(g, need_input_grad=True))


# -- losses -----------------------------------------------------------------------------
def check_loss(fn, pred, *args, **kwargs):
    value, grad = fn(pred, *args, **kwargs)
    rng = np.random.default_rng(0)
    for i in rng.choice(pred.size, size=min(8, pred.size), replace=False):
        idx = np.unravel_index(i, pred.shape)
        num = numeric_grad(lambda: fn(pred, *args, **kwargs)[0], pred, idx)
        assert abs(num - grad[idx]) <= 1e-6 * max(1.0, np.abs(grad).max()), (idx, num, grad[idx])
    return value, grad


MASK = np.array([[1, 1, 1, 0], [1, 1, 0, 0], [1, 1, 1, 1]], bool)


def test_mse_and_mae_match_torch_and_finite_differences():
    pred, target = randn(3, 4, 2), randn(3, 4, 2, seed=2)
    for fn, tfn in [(ln.losses.mse, torch.nn.functional.mse_loss), (ln.losses.mae, torch.nn.functional.l1_loss)]:
        value, grad = check_loss(fn, pred, target)
        tp = torch.tensor(pred, requires_grad=True)
        tl = tfn(tp, torch.tensor(target))
        tl.backward()
        assert abs(value - tl.item()) < 1e-12 and rel_err(grad, tp.grad.numpy()) < 1e-12
        v_masked, g_masked = check_loss(fn, pred, target, mask=MASK)
        assert np.all(g_masked[~MASK] == 0)
        assert abs(v_masked - fn(pred[MASK], target[MASK])[0]) < 1e-12


def test_cross_entropy_matches_torch_with_weights_and_ignore_index():
    logits = randn(6, 4) * 3
    target = np.array([0, 3, 1, -100, 2, 3])
    weight = np.array([1.0, 2.0, 0.5, 1.5])
    value, grad = check_loss(ln.losses.cross_entropy, logits, target, weight=weight)
    tl = torch.tensor(logits, requires_grad=True)
    tv = torch.nn.functional.cross_entropy(tl, torch.tensor(target), weight=torch.tensor(weight))
    tv.backward()
    assert abs(value - tv.item()) < 1e-12 and rel_err(grad, tl.grad.numpy()) < 1e-12


def test_cross_entropy_per_step_with_padding_mask_is_stable():
    logits = randn(3, 4, 5) * 50   # large logits: log-sum-exp keeps it finite
    target = np.random.default_rng(3).integers(0, 5, (3, 4))
    value, grad = check_loss(ln.losses.cross_entropy, logits, target, mask=MASK)
    assert np.isfinite(value) and np.all(grad[~MASK] == 0)
    expected = ln.losses.cross_entropy(logits[MASK], target[MASK])[0]
    assert abs(value - expected) < 1e-9


def test_bce_with_logits_matches_torch_with_pos_weight_and_mask():
    logits = randn(3, 4) * 4
    target = (randn(3, 4, seed=9) > 0).astype(float)
    pos_weight = np.array([1.0, 3.0, 0.5, 2.0])
    value, grad = check_loss(ln.losses.bce_with_logits, logits, target, pos_weight=pos_weight)
    tl = torch.tensor(logits, requires_grad=True)
    tv = torch.nn.functional.binary_cross_entropy_with_logits(tl, torch.tensor(target),
                                                              pos_weight=torch.tensor(pos_weight))
    tv.backward()
    assert abs(value - tv.item()) < 1e-12 and rel_err(grad, tl.grad.numpy()) < 1e-12
    _, g = check_loss(ln.losses.bce_with_logits, logits, target, mask=MASK[:, :4])
    assert np.all(g[~MASK] == 0)


def test_loss_errors_name_the_argument():
    with pytest.raises(ValueError, match="target labels must be in"):
        ln.losses.cross_entropy(randn(2, 3), np.array([0, 3]))
    with pytest.raises(TypeError, match="integer class labels"):
        ln.losses.cross_entropy(randn(2, 3), np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match="target must have the prediction's shape"):
        ln.losses.mse(randn(2, 3), randn(3, 2, 1))
    with pytest.raises(ValueError, match="mask must cover"):
        ln.losses.mse(randn(2, 3), randn(2, 3), mask=np.ones(3, bool))
    with pytest.raises(ValueError, match="loss must be one of"):
        ln.losses.get("hinge")


@pytest.mark.parametrize("cls", [ln.LSTM, ln.GRU])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_recurrent_then_last_timestep_takes_the_sparse_gradient(cls, bidirectional):
    """LastTimestep hands recurrent layers a gradient at each sequence's last step only."""
    model = ln.Sequential(cls(3, 6, num_layers=2, batch_first=True, bidirectional=bidirectional, dtype=F64, seed=0),
                          ln.LastTimestep(), ln.Linear(12 if bidirectional else 6, 2, dtype=F64, seed=1))
    x = randn(4, 5, 3)
    lengths = np.array([5, 1, 3, 4])
    check_module(model, x, forward=lambda: model(x, lengths),
                 backward=lambda g: model.backward(g, need_input_grad=True))
    model(x, lengths)
    sparse = model[1].seq_backward(np.ones((4, 12 if bidirectional else 6)))
    assert isinstance(sparse, ln.layers.LastStepGradient)
    dense = np.asarray(sparse)
    assert dense.shape == (4, 5, 12 if bidirectional else 6) and np.all(dense[1, 1:] == 0)
