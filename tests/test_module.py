"""Module bookkeeping: parameters() is kept between calls, so it must follow every change of
a model's structure (layers added, parameters replaced or deleted)."""
import numpy as np

import lstm_native as ln


def test_parameters_follow_appended_layers_and_replaced_parameters():
    model = ln.Sequential(ln.LSTM(2, 4, batch_first=True, seed=0), ln.LastTimestep())
    first = model.parameters()
    assert len(first) == 4
    first.clear()                                     # the caller's list is a copy
    assert len(model.parameters()) == 4

    model.append(ln.Linear(4, 1, seed=0))
    params = model.parameters()
    assert len(params) == 6 and params[-2] is model[2].weight

    replacement = ln.Parameter(np.zeros((1, 4), np.float32))
    model[2].weight = replacement
    assert model.parameters()[-2] is replacement

    del model[2].bias
    assert len(model.parameters()) == 5


def test_recurrent_layer_uses_a_replaced_weight():
    lstm = ln.LSTM(3, 5, batch_first=True, seed=0)
    x = np.random.default_rng(0).standard_normal((2, 4, 3)).astype(np.float32)
    before, _ = lstm(x)
    lstm.weight_hh_l0 = ln.Parameter(np.zeros((20, 5), np.float32))
    lstm.weight_ih_l0 = ln.Parameter(np.zeros((20, 3), np.float32))
    after, _ = lstm(x)
    other, _ = lstm(x * 3)                           # with both weights zero, x no longer matters
    assert not np.allclose(before, after)
    assert np.array_equal(after, other)
    lstm.zero_grad()
    lstm.backward(np.ones_like(after))
    assert lstm.weight_hh_l0.grad.any()              # gradients land in the new Parameter
