"""Bar: every bad input gets a clear TypeError/ValueError naming the argument, or is handled."""
import numpy as np
import pytest

import lstm_native as ln
from lstm_native import _core

CELLS = [ln.LSTM, ln.GRU]


def layer_and_x(cls, **kw):
    layer = cls(3, 5, num_layers=2, **kw)
    x = np.random.default_rng(0).standard_normal((4, 2, 3)).astype(np.float32)
    return layer, x


def state_for(layer, h0):
    return (h0, np.zeros_like(h0)) if isinstance(layer, ln.LSTM) else h0


@pytest.mark.parametrize("cls", CELLS)
@pytest.mark.parametrize("x,error,words", [
    (np.zeros((4, 3), np.float32), ValueError, "x must be 3-D"),
    (np.zeros((4, 2, 3, 1), np.float32), ValueError, "x must be 3-D"),
    (np.zeros((4, 2, 7), np.float32), ValueError, "3 features"),
    (np.zeros((4, 2, 3), np.int64), TypeError, "x must be a floating-point array"),
    (np.zeros((4, 2, 3), np.complex64), TypeError, "x must be a floating-point array"),
    (np.array([[["a", "b", "c"]]]), TypeError, "x must be a floating-point array"),
    (np.zeros((4, 0, 3), np.float32), ValueError, "batch is empty"),
    (np.zeros((0, 2, 3), np.float32), ValueError, "no time steps"),
    (np.full((4, 2, 3), np.nan, np.float32), ValueError, "x contains NaN"),
    (np.full((4, 2, 3), np.inf, np.float32), ValueError, "x contains NaN or infinity"),
])
def test_bad_x(cls, x, error, words):
    layer = cls(3, 5)
    with pytest.raises(error, match=words):
        layer(x)


@pytest.mark.parametrize("cls", CELLS)
def test_non_contiguous_and_fortran_inputs_are_copied_and_correct(cls):
    layer, x = layer_and_x(cls)
    expected = layer(x)[0]
    strided = np.zeros((4, 2, 6), np.float32)
    strided[:, :, ::2] = x
    np.testing.assert_array_equal(layer(strided[:, :, ::2])[0], expected)
    np.testing.assert_array_equal(layer(np.asfortranarray(x))[0], expected)
    np.testing.assert_allclose(layer(x.astype(np.float64))[0], expected)   # other float widths are cast


@pytest.mark.parametrize("cls", CELLS)
@pytest.mark.parametrize("lengths,error,words", [
    ([4, 4, 4], ValueError, r"lengths must have shape \(2,\)"),
    ([[4, 4]], ValueError, r"lengths must have shape \(2,\)"),
    ([5, 2], ValueError, r"lengths\[0\] = 5 is outside \[0, 4\]"),
    ([2, -1], ValueError, r"lengths\[1\] = -1 is outside"),
    ([2.0, 3.0], TypeError, "lengths must hold integers"),
    (["2", "3"], TypeError, "lengths must hold integers"),
])
def test_bad_lengths(cls, lengths, error, words):
    layer, x = layer_and_x(cls)
    with pytest.raises(error, match=words):
        layer(x, lengths=lengths)


@pytest.mark.parametrize("cls", CELLS)
def test_lengths_in_any_order_and_zero_are_accepted(cls):
    layer, x = layer_and_x(cls)
    out = layer(x, lengths=np.array([1, 4], np.int32))[0]
    assert np.all(out[1:, 0] == 0) and np.all(out[:, 1] != 0)
    out = layer(x, lengths=[0, 3])[0]
    assert np.all(out[:, 0] == 0)


@pytest.mark.parametrize("cls", CELLS)
def test_bad_initial_state(cls):
    layer, x = layer_and_x(cls)
    with pytest.raises(ValueError, match=r"h0 must have shape \(2, 2, 5\)"):
        layer(x, state_for(layer, np.zeros((1, 2, 5), np.float32)))
    with pytest.raises(ValueError, match=r"h0 must have shape"):
        layer(x, state_for(layer, np.zeros((2, 3, 5), np.float32)))
    with pytest.raises(TypeError, match="h0 must be a floating-point array"):
        layer(x, state_for(layer, np.zeros((2, 2, 5), np.int32)))
    with pytest.raises(ValueError, match="h0 contains NaN"):
        layer(x, state_for(layer, np.full((2, 2, 5), np.nan, np.float32)))
    if isinstance(layer, ln.LSTM):
        with pytest.raises(TypeError, match=r"hx must be a tuple \(h0, c0\)"):
            layer(x, np.zeros((2, 2, 5), np.float32))
        with pytest.raises(ValueError, match=r"c0 must have shape"):
            layer(x, (np.zeros((2, 2, 5), np.float32), np.zeros((2, 2, 4), np.float32)))


@pytest.mark.parametrize("cls", CELLS)
def test_backward_misuse(cls):
    layer, x = layer_and_x(cls)
    with pytest.raises(ValueError, match="backward needs a forward first"):
        layer.backward(np.zeros((4, 2, 5), np.float32))
    out = layer(x)[0]
    with pytest.raises(ValueError, match=r"dout must have shape \(4, 2, 5\)"):
        layer.backward(np.zeros((4, 2, 6), np.float32))
    with pytest.raises(ValueError, match="dout contains NaN"):   # a rejected call leaves the forward usable
        layer.backward(np.full_like(out, np.nan))
    layer(x)
    layer.backward(np.ones_like(out))
    with pytest.raises(ValueError, match="backward needs a forward first"):   # one backward per forward
        layer.backward(np.ones_like(out))
    with ln.no_grad():
        layer(x)
    with pytest.raises(ValueError, match="backward needs a forward first"):
        layer.backward(np.ones_like(out))
    layer(x)
    with pytest.raises(ValueError, match=r"dh_n must have shape"):
        layer.backward(None, np.zeros((1, 2, 5), np.float32))


@pytest.mark.parametrize("cls", CELLS)
@pytest.mark.parametrize("kwargs,words", [
    (dict(input_size=0, hidden_size=5), "input_size must be a positive integer"),
    (dict(input_size=3, hidden_size=-2), "hidden_size must be a positive integer"),
    (dict(input_size=3, hidden_size=2.5), "hidden_size must be a positive integer"),
    (dict(input_size=3, hidden_size=5, num_layers=0), "num_layers must be a positive integer"),
    (dict(input_size=3, hidden_size=5, dropout=1.0), r"dropout must be in \[0, 1\)"),
])
def test_bad_constructor_arguments(cls, kwargs, words):
    with pytest.raises(ValueError, match=words):
        cls(**kwargs)


def test_bad_load_state_dict():
    layer = ln.LSTM(3, 5)
    state = layer.state_dict()
    with pytest.raises(KeyError, match="missing"):
        layer.load_state_dict({k: v for k, v in state.items() if k != "bias_hh_l0"})
    with pytest.raises(ValueError, match="has shape"):
        layer.load_state_dict(dict(state, weight_hh_l0=np.zeros((5, 5))))


# -- the compiled core checks what it is handed, whatever the Python layer did --------------
def core_args(dtype=np.float32, H=5, I=3, gates=4):
    w = (np.zeros((gates * H, I), dtype), np.zeros((gates * H, H), dtype), None, None)
    return np.zeros((4, 2, I), dtype), [w]


@pytest.mark.parametrize("mutate,error,words", [
    (lambda a: a.update(x=np.zeros((4, 2, 3), np.float16)), TypeError, "x must have dtype float32"),
    (lambda a: a.update(x=np.zeros((4, 2, 6), np.float32)[:, :, ::2]), ValueError, "x must be C-contiguous"),
    (lambda a: a.update(x=[[1.0]]), TypeError, "x must be a NumPy array"),
    (lambda a: a.update(x=np.zeros((4, 2), np.float32)), ValueError, "x must have shape"),
    (lambda a: a.update(weights=[(np.zeros((20, 4), np.float32), np.zeros((20, 5), np.float32), None, None)]),
     ValueError, r"weight_ih must have shape \(20, 3\)"),
    (lambda a: a.update(weights=[(np.zeros((20, 3), np.float32), np.zeros((19, 5), np.float32), None, None)]),
     ValueError, r"weight_hh must have shape \(20, 5\)"),
    (lambda a: a.update(weights=[(np.zeros((20, 3)), np.zeros((20, 5)), None, None)]), TypeError, "dtype float32"),
    (lambda a: a.update(weights=[]), ValueError, "one tuple per direction"),
    (lambda a: a.update(lengths=np.array([1, 2], np.int32)), TypeError, "lengths must have dtype int64"),
    (lambda a: a.update(lengths=np.array([1, 9])), ValueError, r"lengths\[1\] = 9 is outside \[0, 4\]"),
    (lambda a: a.update(h0=np.zeros((2, 2, 5), np.float32)), ValueError, r"h0 must have shape \(1, 2, 5\)"),
    (lambda a: a.update(cell="rnn"), ValueError, "cell must be 'lstm', 'gru'"),
])
def test_core_forward_checks_its_arguments(mutate, error, words):
    x, weights = core_args()
    args = dict(cell="lstm", x=x, batch_first=False, lengths=None, weights=weights, h0=None, c0=None,
                workspace=_core.RecurrentWorkspace(), keep_for_backward=True)
    mutate(args)
    with pytest.raises(error, match=words):
        _core.recurrent_forward(**args)


def test_core_backward_checks_its_arguments():
    x, weights = core_args()
    ws = _core.RecurrentWorkspace()
    grads = [(np.zeros((20, 3), np.float32), np.zeros((20, 5), np.float32), None, None)]
    with pytest.raises(ValueError, match="backward needs a forward first"):
        _core.recurrent_backward("lstm", ws, x, None, None, None, grads, True)
    _core.recurrent_forward("lstm", x, False, None, weights, None, None, ws, True)
    with pytest.raises(ValueError, match="another cell's forward"):
        _core.recurrent_backward("gru", ws, x, None, None, None,
                                 [(np.zeros((15, 3), np.float32), np.zeros((15, 5), np.float32), None, None)], True)
    _core.recurrent_forward("lstm", x, False, None, weights, None, None, ws, True)
    readonly = np.zeros((20, 5), np.float32)
    readonly.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        _core.recurrent_backward("lstm", ws, x, None, None, None, [(grads[0][0], readonly, None, None)], True)
    with pytest.raises(ValueError, match=r"x must have shape \(4, 2, 3\)"):
        _core.recurrent_backward("lstm", ws, np.zeros((5, 2, 3), np.float32), None, None, None, grads, True)
    with pytest.raises(ValueError, match=r"dout must have shape \(4, 2, 5\)"):
        _core.recurrent_backward("lstm", ws, x, np.zeros((4, 2, 4), np.float32), None, None, grads, True)
