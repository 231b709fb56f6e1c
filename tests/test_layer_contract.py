"""The layer contract (Module's docstring), held against every layer: backward takes
need_input_grad and honours it (None back, the same parameter gradients), seq_backward
likewise, and a layer that takes lengths says so."""
import inspect

import numpy as np
import pytest

import lstm_native as ln

B, T, F = 3, 5, 4
rng = np.random.default_rng(0)
X = rng.standard_normal((B, T, F)).astype(np.float32)
LENGTHS = np.array([5, 2, 4])
IDS = rng.integers(0, 7, size=(B, T))

# name: (factory, input, uses lengths)
CASES = {
    "LSTM": (lambda: ln.LSTM(F, 6, batch_first=True, seed=0), X, True),
    "GRU": (lambda: ln.GRU(F, 6, num_layers=2, batch_first=True, bidirectional=True, seed=0), X, True),
    "RNN": (lambda: ln.RNN(F, 6, num_layers=2, batch_first=True, bidirectional=True, seed=0), X, True),
    "LayerNormLSTM": (lambda: ln.LayerNormLSTM(F, 6, batch_first=True, seed=0, zoneout=0.2), X, True),
    "LayerNormGRU": (lambda: ln.LayerNormGRU(F, 6, batch_first=True, seed=0, recurrent_dropout=0.2), X, True),
    "Linear": (lambda: ln.Linear(F, 3, seed=0), X, False),
    "Embedding": (lambda: ln.Embedding(7, 3, seed=0), IDS, False),
    "Dropout": (lambda: ln.Dropout(0.3, seed=0), X, False),
    "ReLU": (ln.ReLU, X, False),
    "Tanh": (ln.Tanh, X, False),
    "Sigmoid": (ln.Sigmoid, X, False),
    "LayerNorm": (lambda: ln.LayerNorm(F), X, False),
    "LastTimestep": (ln.LastTimestep, X, True),
    "TimeDistributed": (lambda: ln.TimeDistributed(ln.Linear(F, 2, seed=0)), X, False),
    "Residual": (lambda: ln.Residual(ln.LSTM(F, F, batch_first=True, seed=0)), X, True),
    "Attention": (lambda: ln.Attention(F, seed=0), X, True),
    "MultiheadAttention": (lambda: ln.MultiheadAttention(F, 2, seed=0), X, True),
    "Conv1d": (lambda: ln.Conv1d(F, 3, 2, seed=0), X, True),
    "MaxPool1d": (lambda: ln.MaxPool1d(2), X, True),
    "Sequential": (lambda: ln.Sequential(ln.LSTM(F, 6, batch_first=True, seed=0), ln.LastTimestep(),
                                         ln.Linear(6, 2, seed=0)), X, True),
}


def run(layer, x, need_input_grad, lengths, via_seq):
    """Forward then backward with an all-ones gradient; (input gradient, parameter gradients)."""
    layer.zero_grad()
    if via_seq:
        y = layer.seq_forward(x, lengths)
    else:
        y = layer(x, lengths=lengths) if lengths is not None else layer(x)
        y = y[0] if isinstance(y, tuple) else y
    grad = np.ones_like(y)
    if via_seq:
        dx = layer.seq_backward(grad, need_input_grad=need_input_grad)
    else:   # recurrent layers also return their state gradients: (dx, states)
        dx = layer.backward(grad, need_input_grad=need_input_grad)
        dx = dx[0] if isinstance(dx, tuple) else dx
    return dx, {k: v.copy() for k, v in layer.grads.items()}


def test_every_public_layer_is_held_to_the_contract():
    public = {name for name in ln.__all__ if inspect.isclass(getattr(ln, name))
              and issubclass(getattr(ln, name), ln.Module) and name != "Module"}
    # models that take their targets as inputs (Seq2Seq's teacher forcing) cannot sit in a
    # Sequential; their gradients are checked in test_seq2seq.py
    with_targets = {name for name in public if getattr(getattr(ln, name), "takes_targets", False)}
    assert with_targets == {"Seq2Seq"}
    assert public - with_targets == set(CASES)


@pytest.mark.parametrize("via_seq", [False, True], ids=["backward", "seq_backward"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_backward_honours_need_input_grad(name, via_seq):
    factory, x, uses_lengths = CASES[name]
    layer = factory()
    lengths = LENGTHS if uses_lengths else None
    gen = getattr(layer, "_rng" if name == "Dropout" else "_dropout_rng", None)   # layers that draw masks
    rng_state = gen.bit_generator.state if gen is not None else None
    dx_full, grads_full = run(layer, x, True, lengths, via_seq)
    if rng_state:     # Dropout (recurrent dropout, zoneout) draws the same masks again
        gen.bit_generator.state = rng_state
    dx_none, grads_none = run(layer, x, False, lengths, via_seq)
    assert dx_none is None
    if name != "Embedding":
        assert dx_full is not None and np.asarray(dx_full).shape[:2] == np.shape(x)[:2]
    assert grads_full.keys() == grads_none.keys()
    for key in grads_full:
        np.testing.assert_array_equal(grads_full[key], grads_none[key], err_msg=key)


@pytest.mark.parametrize("name", sorted(CASES))
def test_takes_lengths_matches_forward(name):
    layer = CASES[name][0]()
    takes = "lengths" in inspect.signature(type(layer).forward).parameters
    assert layer.takes_lengths == takes
