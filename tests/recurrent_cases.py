"""Runs our recurrent layers and the NumPy reference on the same weights and inputs."""
import numpy as np

import lstm_native as ln
from lstm_native import reference

LAYERS = {"lstm": ln.LSTM, "gru": ln.GRU}


def make_layer(cell, input_size, hidden, **kw):
    return LAYERS[cell](input_size, hidden, **kw)


def random_case(rng, cell, layer, steps, batch, with_states, lengths, dtype=np.float32):
    """Inputs and upstream gradients for one forward/backward."""
    L, D, H = layer.num_layers, layer.num_directions, layer.hidden_size
    shape = (batch, steps, layer.input_size) if layer.batch_first else (steps, batch, layer.input_size)
    out_shape = shape[:2] + (D * H,)
    case = dict(x=rng.standard_normal(shape).astype(dtype), lengths=lengths,
                dout=rng.standard_normal(out_shape).astype(dtype),
                dh_n=rng.standard_normal((L * D, batch, H)).astype(dtype))
    case["h0"] = rng.standard_normal((L * D, batch, H)).astype(dtype) * 0.5 if with_states else None
    if cell == "lstm":
        case["dc_n"] = rng.standard_normal((L * D, batch, H)).astype(dtype)
        case["c0"] = rng.standard_normal((L * D, batch, H)).astype(dtype) * 0.5 if with_states else None
    return case


def run_ours(cell, layer, case):
    """Forward and backward through our layer; every result in one dict."""
    layer.zero_grad()
    if cell == "lstm":
        hx = None if case["h0"] is None else (case["h0"], case["c0"])
        out, (h_n, c_n) = layer(case["x"], hx, lengths=case["lengths"])
        dx, (dh0, dc0) = layer.backward(case["dout"], case["dh_n"], case["dc_n"])
        res = dict(out=out, h_n=h_n, c_n=c_n, dx=dx, dh0=dh0, dc0=dc0)
    else:
        out, h_n = layer(case["x"], case["h0"], lengths=case["lengths"])
        dx, dh0 = layer.backward(case["dout"], case["dh_n"])
        res = dict(out=out, h_n=h_n, dx=dx, dh0=dh0)
    res.update({"grad_" + k: v.copy() for k, v in layer.grads.items()})
    return res


def run_reference(cell, layer, case, dropout_masks=None):
    params = {k: v.astype(np.float64) for k, v in layer.state_dict().items()}
    out, h_n, c_n, cache = reference.rnn_forward(
        cell, case["x"], params, layer.num_layers, layer.bidirectional, case["h0"],
        case.get("c0"), case["lengths"], layer.batch_first, dropout_masks)
    dx, dh0, dc0, grads = reference.rnn_backward(cache, case["dout"], case["dh_n"], case.get("dc_n"))
    res = dict(out=out, h_n=h_n, dx=dx, dh0=dh0)
    if cell == "lstm":
        res.update(c_n=c_n, dc0=dc0)
    res.update({"grad_" + k: v for k, v in grads.items()})
    return res
