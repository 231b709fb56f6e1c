"""The cells beyond plain LSTM/GRU (issue 21; issue 22 bar 7): layer factories, random cases with
recurrent dropout / zoneout masks, and runs through our layers and the NumPy reference."""
import numpy as np

import lstm_native as ln
from lstm_native import reference

# name: (factory(input_size, hidden, **kw), reference cell)
CELLS = {
    "rnn_tanh": (lambda i, h, **kw: ln.RNN(i, h, **kw), "rnn_tanh"),
    "rnn_relu": (lambda i, h, **kw: ln.RNN(i, h, nonlinearity="relu", **kw), "rnn_relu"),
    "lstm_proj": (lambda i, h, **kw: ln.LSTM(i, h, proj_size=max(1, h // 2 - 1), **kw), "lstm"),
    "gru_reset_before": (lambda i, h, **kw: ln.GRU(i, h, reset_after=False, **kw), "gru_reset_before"),
    "ln_lstm": (lambda i, h, **kw: ln.LayerNormLSTM(i, h, **kw), "ln_lstm"),
    "ln_gru": (lambda i, h, **kw: ln.LayerNormGRU(i, h, **kw), "ln_gru"),
    "lstm": (lambda i, h, **kw: ln.LSTM(i, h, **kw), "lstm"),
    "gru": (lambda i, h, **kw: ln.GRU(i, h, **kw), "gru"),
}


def make(name, input_size, hidden, rng=None, **kw):
    """A layer; layer-norm gains and shifts made random (they start at 1 and 0)."""
    layer = CELLS[name][0](input_size, hidden, **kw)
    rng = rng or np.random.default_rng(0)
    for pname, p in layer.named_parameters():
        if pname.startswith("ln_"):
            p.data[...] = (1.0 if "weight" in pname else 0.0) + 0.3 * rng.standard_normal(p.data.shape)
    return layer


def case(rng, layer, steps, batch, with_states, lengths, dtype=np.float32):
    L, D, H, S = layer.num_layers, layer.num_directions, layer.hidden_size, layer.state_size
    shape = (batch, steps, layer.input_size) if layer.batch_first else (steps, batch, layer.input_size)
    out_shape = shape[:2] + (D * S,)
    c = dict(x=rng.standard_normal(shape).astype(dtype), lengths=lengths,
             dout=rng.standard_normal(out_shape).astype(dtype),
             dh_n=rng.standard_normal((L * D, batch, S)).astype(dtype))
    c["h0"] = (rng.standard_normal((L * D, batch, S)) * 0.5).astype(dtype) if with_states else None
    if layer.has_cell_state:
        c["dc_n"] = rng.standard_normal((L * D, batch, H)).astype(dtype)
        c["c0"] = (rng.standard_normal((L * D, batch, H)) * 0.5).astype(dtype) if with_states else None
    return c


def run_ours(layer, c):
    """Forward and backward; every result in one dict, plus the masks the layer drew."""
    layer.zero_grad()
    if layer.has_cell_state:
        hx = None if c["h0"] is None else (c["h0"], c["c0"])
        out, (h_n, c_n) = layer(c["x"], hx, lengths=c["lengths"])
        dx, (dh0, dc0) = layer.backward(c["dout"], c["dh_n"], c["dc_n"])
        res = dict(out=out, h_n=h_n, c_n=c_n, dx=dx, dh0=dh0, dc0=dc0)
    else:
        out, h_n = layer(c["x"], c["h0"], lengths=c["lengths"])
        dx, dh0 = layer.backward(c["dout"], c["dh_n"])
        res = dict(out=out, h_n=h_n, dx=dx, dh0=dh0)
    res.update({"grad_" + k: v.copy() for k, v in layer.grads.items()})
    return res


def layer_masks(layer):
    """The recurrent dropout and zoneout masks of the layer's last forward, as the reference takes
    them (None where there were none; zoneout: the keep probability in eval)."""
    rec = getattr(layer, "_last_recurrent_masks", None) or [None]
    rec = None if rec[0] is None else np.concatenate(rec)
    keeps = getattr(layer, "_last_zoneout_masks", None) or [None]
    if keeps[0] is not None:
        zoneout = [k.astype(np.float64) for k in keeps]
    else:
        zoneout = layer.zoneout if (layer.zoneout and not layer.training) else None
    return rec, zoneout


def run_reference(name, layer, c, dropout_masks=None):
    params = {k: v.astype(np.float64) for k, v in layer.state_dict().items()}
    rec, zoneout = layer_masks(layer)
    out, h_n, c_n, cache = reference.rnn_forward(
        CELLS[name][1], c["x"], params, layer.num_layers, layer.bidirectional, c["h0"], c.get("c0"), c["lengths"],
        layer.batch_first, dropout_masks, rec, zoneout)
    dx, dh0, dc0, grads = reference.rnn_backward(cache, c["dout"], c["dh_n"], c.get("dc_n"))
    res = dict(out=out, h_n=h_n, dx=dx, dh0=dh0)
    if layer.has_cell_state:
        res.update(c_n=c_n, dc0=dc0)
    res.update({"grad_" + k: v for k, v in grads.items()})
    return res
