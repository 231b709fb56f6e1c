"""Plain NumPy (float64) recurrent cells: forward and backpropagation through time.

This is the oracle the compiled kernels are tested against, so it is written for the
reader, not for speed: each sequence of a batch runs alone over its own length, one step
at a time, straight from the textbook equations. Parameters are a dict with PyTorch's
names and shapes (a layer's ``state_dict()``). The cells (``CELLS``): "lstm" (with torch's
proj_size when the params hold weight_hr), "gru" (torch's, reset gate after the product),
"gru_reset_before" (the textbook's), "rnn_tanh", "rnn_relu", "ln_lstm" and "ln_gru"
(layer-normalised); recurrent dropout masks and zoneout as the layers apply them.

    out, h_n, c_n, cache = lstm_forward(x, params, num_layers=1)
    dx, dh0, dc0, grads = lstm_backward(cache, dout, dh_n, dc_n)
    out, h_n, cache = gru_forward(x, params); dx, dh0, grads = gru_backward(cache, dout, dh_n)
    losses, params = train(params, X, y, loss="mse", steps=20, lr=1e-2, clip_grad_norm_to=1.0)

``train`` is the whole training loop (loss, backward, clipping, Adam) in NumPy alone: the
from-scratch version of what ``fit`` does, to read beside it and to test it against.
"""
from __future__ import annotations

import numpy as np


def sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


LN_EPS = 1e-5   # layer norm's epsilon, as torch.nn.LayerNorm and haste


def layer_norm(v, gain, bias=None):
    """(v - mean) / sqrt(var + eps) * gain + bias over the whole vector; returns y and what
    the backward needs."""
    mean = v.mean()
    rstd = 1.0 / np.sqrt(((v - mean) ** 2).mean() + LN_EPS)
    xhat = (v - mean) * rstd
    return xhat * gain + (0.0 if bias is None else bias), (xhat, rstd)


def layer_norm_backward(dy, gain, saved):
    """d loss / d v, d gain, d bias from d loss / d y."""
    xhat, rstd = saved
    dxhat = dy * gain
    dv = rstd * (dxhat - dxhat.mean() - xhat * (dxhat * xhat).mean())
    return dv, dy * xhat, dy


# ----------------------------------------------------------------------------------
# The cells. Each forward takes the step's input x, h_rec (the h that feeds the recurrent
# product: h_{t-1}, times the recurrent dropout mask when there is one), h_prev (h_{t-1}
# itself, for cells whose new state mixes in the old: GRU), c_prev and the direction's
# parameters p; it returns h_t, c_t (None without a cell state) and what its backward needs.
# Each backward takes d loss / d h_t and d loss / d c_t and returns dx, d h_rec, the part of
# d h_prev that bypasses the recurrent product, d c_prev and the parameter gradients.
# ----------------------------------------------------------------------------------

# LSTM: gates i, f, g, o stacked in that order in W_ih (4H, I), W_hh (4H, S), b (4H); with a
# projection (torch's proj_size P) h_t = W_hr (o * tanh(c_t)), W_hr (P, H), so S = P, else S = H.
def lstm_cell_forward(x, h_rec, h_prev, c_prev, p):
    H = c_prev.shape[0]
    a = p["W_ih"] @ x + p["b_ih"] + p["W_hh"] @ h_rec + p["b_hh"]
    i = sigmoid(a[0:H])            # input gate: how much of the candidate enters the cell
    f = sigmoid(a[H:2 * H])        # forget gate: how much of the old cell state stays
    g = np.tanh(a[2 * H:3 * H])    # candidate cell state
    o = sigmoid(a[3 * H:4 * H])    # output gate
    c = f * c_prev + i * g         # C_t
    m = o * np.tanh(c)             # h_t, before the projection
    h = p["W_hr"] @ m if "W_hr" in p else m
    return h, c, (x, h_rec, c_prev, i, f, g, o, c, m)


def lstm_cell_backward(dh, dc_next, step, p):
    x, h_rec, c_prev, i, f, g, o, c, m = step
    grads = {}
    if "W_hr" in p:
        grads["W_hr"] = np.outer(dh, m)
        dh = p["W_hr"].T @ dh
    tanh_c = np.tanh(c)
    do = dh * tanh_c
    dc = dc_next + dh * o * (1.0 - tanh_c ** 2)
    di = dc * g
    df = dc * c_prev
    dg = dc * i
    da = np.concatenate([di * i * (1 - i), df * f * (1 - f), dg * (1 - g ** 2), do * o * (1 - o)])
    grads.update(W_ih=np.outer(da, x), W_hh=np.outer(da, h_rec), b_ih=da, b_hh=da)
    return p["W_ih"].T @ da, p["W_hh"].T @ da, 0.0, dc * f, grads


# GRU, torch's formulation (reset after the product, Keras' reset_after=True): gates r, z, n
# stacked in W_ih (3H, I), W_hh (3H, H), b (3H); n = tanh(W_in x + b_in + r * (W_hn h + b_hn)).
def gru_cell_forward(x, h_rec, h_prev, _c_prev, p):
    H = h_prev.shape[0]
    ax = p["W_ih"] @ x + p["b_ih"]
    ah = p["W_hh"] @ h_rec + p["b_hh"]
    r = sigmoid(ax[0:H] + ah[0:H])                 # reset gate
    z = sigmoid(ax[H:2 * H] + ah[H:2 * H])         # update gate
    n = np.tanh(ax[2 * H:] + r * ah[2 * H:])       # candidate state
    h = (1 - z) * n + z * h_prev
    return h, None, (x, h_rec, h_prev, r, z, n, ah[2 * H:])


def gru_cell_backward(dh, _dc_next, step, p):
    x, h_rec, h_prev, r, z, n, hn = step
    dan = dh * (1 - z) * (1 - n ** 2)            # w.r.t. n's pre-activation
    dar = dan * hn * r * (1 - r)
    daz = dh * (h_prev - n) * z * (1 - z)
    dax = np.concatenate([dar, daz, dan])        # w.r.t. W_ih x + b_ih
    dah = np.concatenate([dar, daz, dan * r])    # w.r.t. W_hh h + b_hh
    grads = dict(W_ih=np.outer(dax, x), W_hh=np.outer(dah, h_rec), b_ih=dax, b_hh=dah)
    return p["W_ih"].T @ dax, p["W_hh"].T @ dah, dh * z, None, grads


# GRU, the textbook's formulation (Cho et al. 2014; Keras' reset_after=False, ONNX's
# linear_before_reset=0): the reset gate applies to h before its product with W_hn:
# n = tanh(W_in x + b_in + W_hn (r * h) + b_hn). Same parameters as above.
def gru_reset_before_cell_forward(x, h_rec, h_prev, _c_prev, p):
    H = h_prev.shape[0]
    W_hh, b_hh = p["W_hh"], p["b_hh"]
    ax = p["W_ih"] @ x + p["b_ih"]
    r = sigmoid(ax[0:H] + W_hh[0:H] @ h_rec + b_hh[0:H])
    z = sigmoid(ax[H:2 * H] + W_hh[H:2 * H] @ h_rec + b_hh[H:2 * H])
    q = r * h_rec                                                    # the reset state
    n = np.tanh(ax[2 * H:] + W_hh[2 * H:] @ q + b_hh[2 * H:])
    h = (1 - z) * n + z * h_prev
    return h, None, (x, h_rec, h_prev, r, z, n, q)


def gru_reset_before_cell_backward(dh, _dc_next, step, p):
    x, h_rec, h_prev, r, z, n, q = step
    H = h_prev.shape[0]
    W_hh = p["W_hh"]
    dan = dh * (1 - z) * (1 - n ** 2)
    daz = dh * (h_prev - n) * z * (1 - z)
    dq = W_hh[2 * H:].T @ dan
    dar = dq * h_rec * r * (1 - r)
    da = np.concatenate([dar, daz, dan])          # w.r.t. every gate's pre-activation
    dW_hh = np.concatenate([np.outer(da[:2 * H], h_rec), np.outer(dan, q)])
    grads = dict(W_ih=np.outer(da, x), W_hh=dW_hh, b_ih=da, b_hh=da)
    dh_rec = W_hh[:2 * H].T @ da[:2 * H] + dq * r
    return p["W_ih"].T @ da, dh_rec, dh * z, None, grads


# Elman RNN, as torch.nn.RNN: h = act(W_ih x + b_ih + W_hh h + b_hh), act tanh or relu.
def _rnn_cell(act, act_grad):
    def forward(x, h_rec, h_prev, _c_prev, p):
        h = act(p["W_ih"] @ x + p["b_ih"] + p["W_hh"] @ h_rec + p["b_hh"])
        return h, None, (x, h_rec, h)

    def backward(dh, _dc_next, step, p):
        x, h_rec, h = step
        da = dh * act_grad(h)
        grads = dict(W_ih=np.outer(da, x), W_hh=np.outer(da, h_rec), b_ih=da, b_hh=da)
        return p["W_ih"].T @ da, p["W_hh"].T @ da, 0.0, None, grads
    return forward, backward


rnn_tanh_cell_forward, rnn_tanh_cell_backward = _rnn_cell(np.tanh, lambda h: 1 - h ** 2)
rnn_relu_cell_forward, rnn_relu_cell_backward = _rnn_cell(lambda a: np.maximum(a, 0), lambda h: (h > 0) * 1.0)


# Layer-normalised LSTM (Ba et al. 2016; lmnt-com/haste's LayerNormLSTM): the input and the
# recurrent products are each normalised over their 4H gate values (gains ln_ih, ln_hh; the
# gate biases act as their shifts), and so is the cell state before its tanh (gain ln_c_w,
# bias ln_c_b); c itself is carried unnormalised.
def ln_lstm_cell_forward(x, h_rec, h_prev, c_prev, p):
    H = c_prev.shape[0]
    nx, sx = layer_norm(p["W_ih"] @ x, p["ln_ih"])
    nh, sh = layer_norm(p["W_hh"] @ h_rec, p["ln_hh"])
    a = nx + nh + p["b_ih"] + p["b_hh"]
    i, f, g, o = sigmoid(a[0:H]), sigmoid(a[H:2 * H]), np.tanh(a[2 * H:3 * H]), sigmoid(a[3 * H:])
    c = f * c_prev + i * g
    cn, sc = layer_norm(c, p["ln_c_w"], p["ln_c_b"])
    h = o * np.tanh(cn)
    return h, c, (x, h_rec, c_prev, i, f, g, o, cn, sx, sh, sc)


def ln_lstm_cell_backward(dh, dc_next, step, p):
    x, h_rec, c_prev, i, f, g, o, cn, sx, sh, sc = step
    tanh_cn = np.tanh(cn)
    do = dh * tanh_cn
    dc_ln, d_ln_c_w, d_ln_c_b = layer_norm_backward(dh * o * (1 - tanh_cn ** 2), p["ln_c_w"], sc)
    dc = dc_next + dc_ln
    da = np.concatenate([dc * g * i * (1 - i), dc * c_prev * f * (1 - f), dc * i * (1 - g ** 2), do * o * (1 - o)])
    dux, d_ln_ih, _ = layer_norm_backward(da, p["ln_ih"], sx)
    duh, d_ln_hh, _ = layer_norm_backward(da, p["ln_hh"], sh)
    grads = dict(W_ih=np.outer(dux, x), W_hh=np.outer(duh, h_rec), b_ih=da, b_hh=da, ln_ih=d_ln_ih,
                 ln_hh=d_ln_hh, ln_c_w=d_ln_c_w, ln_c_b=d_ln_c_b)
    return p["W_ih"].T @ dux, p["W_hh"].T @ duh, 0.0, dc * f, grads


# Layer-normalised GRU (haste's LayerNormGRU): torch's GRU on normalised products,
# ax = LN(W_ih x) * ln_ih + b_ih, ah = LN(W_hh h) * ln_hh + b_hh.
def ln_gru_cell_forward(x, h_rec, h_prev, _c_prev, p):
    H = h_prev.shape[0]
    nx, sx = layer_norm(p["W_ih"] @ x, p["ln_ih"])
    nh, sh = layer_norm(p["W_hh"] @ h_rec, p["ln_hh"])
    ax, ah = nx + p["b_ih"], nh + p["b_hh"]
    r = sigmoid(ax[0:H] + ah[0:H])
    z = sigmoid(ax[H:2 * H] + ah[H:2 * H])
    n = np.tanh(ax[2 * H:] + r * ah[2 * H:])
    h = (1 - z) * n + z * h_prev
    return h, None, (x, h_rec, h_prev, r, z, n, ah[2 * H:], sx, sh)


def ln_gru_cell_backward(dh, _dc_next, step, p):
    x, h_rec, h_prev, r, z, n, hn, sx, sh = step
    dan = dh * (1 - z) * (1 - n ** 2)
    dar = dan * hn * r * (1 - r)
    daz = dh * (h_prev - n) * z * (1 - z)
    dax = np.concatenate([dar, daz, dan])
    dah = np.concatenate([dar, daz, dan * r])
    dux, d_ln_ih, _ = layer_norm_backward(dax, p["ln_ih"], sx)
    duh, d_ln_hh, _ = layer_norm_backward(dah, p["ln_hh"], sh)
    grads = dict(W_ih=np.outer(dux, x), W_hh=np.outer(duh, h_rec), b_ih=dax, b_hh=dah, ln_ih=d_ln_ih, ln_hh=d_ln_hh)
    return p["W_ih"].T @ dux, p["W_hh"].T @ duh, dh * z, None, grads


# name: (forward, backward, gates, has a cell state)
CELLS = {"lstm": (lstm_cell_forward, lstm_cell_backward, 4, True),
         "gru": (gru_cell_forward, gru_cell_backward, 3, False),
         "gru_reset_before": (gru_reset_before_cell_forward, gru_reset_before_cell_backward, 3, False),
         "rnn_tanh": (rnn_tanh_cell_forward, rnn_tanh_cell_backward, 1, False),
         "rnn_relu": (rnn_relu_cell_forward, rnn_relu_cell_backward, 1, False),
         "ln_lstm": (ln_lstm_cell_forward, ln_lstm_cell_backward, 4, True),
         "ln_gru": (ln_gru_cell_forward, ln_gru_cell_backward, 3, False)}

# Parameters besides W_ih, W_hh, b_ih, b_hh: state_dict name -> the name the cells use.
EXTRA_PARAMS = {"weight_hr": "W_hr", "ln_weight_ih": "ln_ih", "ln_weight_hh": "ln_hh", "ln_weight_c": "ln_c_w",
                "ln_bias_c": "ln_c_b"}


# ----------------------------------------------------------------------------------
# One sequence through one direction of one layer, with the regularisers the layers apply
# in training:
#   recurrent dropout (variational, Gal & Ghahramani 2016): one mask per sequence on the h
#     that feeds the recurrent product (mask: S values, already scaled by 1 / (1 - p));
#   zoneout (Krueger et al. 2017): after each step every unit keeps its previous h and c where
#     the step's keep mask is 1 (training), or mixes them by the keep probability p
#     (evaluation, haste's expectation): h_t = k h_{t-1} + (1 - k) h_new, c_t likewise.
# ----------------------------------------------------------------------------------
def sequence_forward(cell, xs, h0, c0, p, rec_mask=None, keeps=None):
    """keeps: None, or one keep value (a float) or mask (H,) per step."""
    forward = CELLS[cell][0]
    h, c, hs, steps = h0, c0, [], []
    for t, x in enumerate(xs):
        h_rec = h if rec_mask is None else h * rec_mask
        h_new, c_new, step = forward(x, h_rec, h, c, p)
        if keeps is not None:
            k = keeps[t]
            h_new = k * h + (1 - k) * h_new
            if c_new is not None:
                c_new = k * c + (1 - k) * c_new
        h, c = h_new, c_new
        hs.append(h)
        steps.append(step)
    return hs, h, c, steps


def sequence_backward(cell, dhs, dh_last, dc_last, steps, p, grads, rec_mask=None, keeps=None):
    backward = CELLS[cell][1]
    dh_next, dc_next, dxs = dh_last, dc_last, [None] * len(steps)
    for t in reversed(range(len(steps))):
        dh = dhs[t] + dh_next
        k = 0.0 if keeps is None else keeps[t]
        dxs[t], dh_rec, dh_direct, dc_prev, g = backward((1 - k) * dh, None if dc_next is None else (1 - k) * dc_next,
                                                          steps[t], p)
        dh_next = (dh_rec if rec_mask is None else dh_rec * rec_mask) + dh_direct + k * dh
        dc_next = None if dc_prev is None else dc_prev + k * dc_next
        for name in g:
            grads[name] += g[name]
    return dxs, dh_next, dc_next


# ----------------------------------------------------------------------------------
# A stack of (bi)directional layers over a padded batch
# ----------------------------------------------------------------------------------
def _sizes(cell, params):
    """(gates, hidden H, state S): S is the projection's size when there is one."""
    gates = CELLS[cell][2]
    H = params["weight_hh_l0"].shape[0] // gates
    S = params["weight_hr_l0"].shape[0] if "weight_hr_l0" in params else H
    return gates, H, S


def _direction_params(params, layer, reverse, gates, hidden):
    s = f"_l{layer}" + ("_reverse" if reverse else "")
    zero = np.zeros(gates * hidden)
    p = dict(W_ih=np.asarray(params["weight_ih" + s], np.float64),
             W_hh=np.asarray(params["weight_hh" + s], np.float64),
             b_ih=np.asarray(params.get("bias_ih" + s, zero), np.float64),
             b_hh=np.asarray(params.get("bias_hh" + s, zero), np.float64))
    for name, key in EXTRA_PARAMS.items():
        if name + s in params:
            p[key] = np.asarray(params[name + s], np.float64)
    return p


def rnn_forward(cell, x, params, num_layers=1, bidirectional=False, h0=None, c0=None, lengths=None,
                batch_first=False, dropout_masks=None, recurrent_masks=None, zoneout=None):
    """x (T, B, I) or (B, T, I); returns out, h_n, c_n (None without a cell state), cache.

    cell: a key of CELLS. dropout_masks[k], if given, multiplies layer k's output
    (k < num_layers - 1). recurrent_masks (num_layers * D, B, S), if given, is each sequence's
    recurrent dropout mask. zoneout: None; a keep probability (evaluation: every step mixes
    old and new states by it); or one keep mask per layer, each shaped like that layer's
    output (T, B, D*S) (batch-first: (B, T, D*S)) in 0/1.
    """
    x = np.asarray(x, np.float64)
    if not batch_first:
        x = x.transpose(1, 0, 2)                      # work batch-first: (B, T, I)
    B, T, _ = x.shape
    gates, H, S = _sizes(cell, params)
    has_c = CELLS[cell][3]
    D = 2 if bidirectional else 1
    lengths = np.full(B, T) if lengths is None else np.asarray(lengths)
    h0 = np.zeros((num_layers * D, B, S)) if h0 is None else np.asarray(h0, np.float64)
    c0 = np.zeros((num_layers * D, B, H)) if c0 is None else np.asarray(c0, np.float64)
    h_n, c_n = np.zeros_like(h0), np.zeros_like(c0)
    layer_input, cache = x, []
    for layer in range(num_layers):
        out = np.zeros((B, T, D * S))
        layer_cache = {}
        keep_layer = None
        if zoneout is not None and not np.isscalar(zoneout):
            keep_layer = np.asarray(zoneout[layer], np.float64)
            keep_layer = keep_layer if batch_first else keep_layer.transpose(1, 0, 2)
        for d in range(D):
            p = _direction_params(params, layer, d == 1, gates, H)
            for b in range(B):
                n = int(lengths[b])
                order = list(range(n))[::-1] if d == 1 else list(range(n))   # reverse reads backwards
                xs = [layer_input[b, t] for t in order]
                mask = None if recurrent_masks is None else np.asarray(recurrent_masks[layer * D + d, b], np.float64)
                if zoneout is None:
                    keeps = None
                elif keep_layer is None:
                    keeps = [float(zoneout)] * n
                else:
                    keeps = [keep_layer[b, t, d * S:(d + 1) * S] for t in order]
                hs, h, c, steps = sequence_forward(cell, xs, h0[layer * D + d, b], c0[layer * D + d, b] if has_c else None,
                                                   p, mask, keeps)
                for t, h_t in zip(order, hs):
                    out[b, t, d * S:(d + 1) * S] = h_t
                h_n[layer * D + d, b] = h
                if c is not None:
                    c_n[layer * D + d, b] = c
                layer_cache[d, b] = (order, steps, mask, keeps)
        if dropout_masks is not None and layer < num_layers - 1:
            mask = np.asarray(dropout_masks[layer], np.float64)
            out = out * (mask if batch_first else mask.transpose(1, 0, 2))
        cache.append(layer_cache)
        layer_input = out
    result = layer_input if batch_first else layer_input.transpose(1, 0, 2)
    meta = dict(cell=cell, params=params, num_layers=num_layers, D=D, H=H, S=S, B=B, T=T, lengths=lengths,
                batch_first=batch_first, dropout_masks=dropout_masks, input_size=x.shape[2])
    return result, h_n, (c_n if has_c else None), (meta, cache)


def rnn_backward(cache, dout=None, dh_n=None, dc_n=None):
    """Returns dx, dh0, dc0 (None without a cell state) and the parameter gradients keyed like params."""
    meta, layers = cache
    cell, D, H, S, B, T, L = meta["cell"], meta["D"], meta["H"], meta["S"], meta["B"], meta["T"], meta["num_layers"]
    gates, has_c = CELLS[cell][2], CELLS[cell][3]
    dout = np.zeros((T, B, D * S)) if dout is None else np.asarray(dout, np.float64)
    if not meta["batch_first"]:
        dout = dout.transpose(1, 0, 2)
    dh_n = np.zeros((L * D, B, S)) if dh_n is None else np.asarray(dh_n, np.float64)
    dc_n = np.zeros((L * D, B, H)) if dc_n is None else np.asarray(dc_n, np.float64)
    dh0, dc0 = np.zeros_like(dh_n), np.zeros_like(dc_n)
    grads = {}
    grad_out = dout
    names = dict(W_ih="weight_ih", W_hh="weight_hh", b_ih="bias_ih", b_hh="bias_hh",
                 **{v: k for k, v in EXTRA_PARAMS.items()})
    for layer in reversed(range(L)):
        in_size = meta["input_size"] if layer == 0 else D * S
        d_input = np.zeros((B, T, in_size))
        for d in range(D):
            s = f"_l{layer}" + ("_reverse" if d == 1 else "")
            p = _direction_params(meta["params"], layer, d == 1, gates, H)
            g = {k: np.zeros_like(v) for k, v in p.items()}
            for b in range(B):
                order, steps, mask, keeps = layers[layer][d, b]
                dhs = [grad_out[b, t, d * S:(d + 1) * S] for t in order]
                dxs, dh, dc = sequence_backward(cell, dhs, dh_n[layer * D + d, b],
                                                dc_n[layer * D + d, b] if has_c else None, steps, p, g, mask, keeps)
                for t, dx_t in zip(order, dxs):
                    d_input[b, t] += dx_t
                dh0[layer * D + d, b] = dh
                if dc is not None:
                    dc0[layer * D + d, b] = dc
            for key, value in g.items():
                grads[names[key] + s] = value
        if layer > 0 and meta["dropout_masks"] is not None:
            mask = np.asarray(meta["dropout_masks"][layer - 1], np.float64)
            d_input = d_input * (mask if meta["batch_first"] else mask.transpose(1, 0, 2))
        grad_out = d_input
    dx = grad_out if meta["batch_first"] else grad_out.transpose(1, 0, 2)
    grads = {k: v for k, v in grads.items() if k in meta["params"]}
    return dx, dh0, (dc0 if has_c else None), grads


def lstm_forward(x, params, num_layers=1, bidirectional=False, h0=None, c0=None, lengths=None,
                 batch_first=False, dropout_masks=None):
    return rnn_forward("lstm", x, params, num_layers, bidirectional, h0, c0, lengths, batch_first, dropout_masks)


def lstm_backward(cache, dout=None, dh_n=None, dc_n=None):
    return rnn_backward(cache, dout, dh_n, dc_n)


def gru_forward(x, params, num_layers=1, bidirectional=False, h0=None, lengths=None, batch_first=False,
                dropout_masks=None):
    out, h_n, _, cache = rnn_forward("gru", x, params, num_layers, bidirectional, h0, None, lengths,
                                     batch_first, dropout_masks)
    return out, h_n, cache


def gru_backward(cache, dout=None, dh_n=None):
    dx, dh0, _, grads = rnn_backward(cache, dout, dh_n, None)
    return dx, dh0, grads


# ----------------------------------------------------------------------------------
# Training from scratch, in NumPy alone: a recurrent stack, a Linear head on the last
# step, a loss, gradient clipping and Adam (torch.optim.Adam's arithmetic)
# ----------------------------------------------------------------------------------
def mse_loss(pred, target):
    """Mean squared error and its gradient with respect to pred."""
    diff = pred - np.asarray(target, np.float64).reshape(pred.shape)
    return float(np.mean(diff ** 2)), 2.0 * diff / diff.size


def cross_entropy_loss(logits, labels):
    """Mean softmax cross-entropy of logits (N, C) against integer labels (N,), and its gradient."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    rows = np.arange(len(labels))
    grad = np.exp(log_p)
    grad[rows, labels] -= 1.0
    return float(-log_p[rows, labels].mean()), grad / len(labels)


def clip_grad_norm(grads, max_norm):
    """Scales all gradients (a dict) together so their joint 2-norm is at most max_norm; returns
    the norm before, as torch.nn.utils.clip_grad_norm_."""
    total = float(np.sqrt(sum(np.sum(g ** 2) for g in grads.values())))
    coef = max_norm / (total + 1e-6)
    if coef < 1:
        for g in grads.values():
            g *= coef
    return total


class Adam:
    """Adam with bias correction, as torch.optim.Adam (no weight decay)."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
        self.lr, self.betas, self.eps, self.t = lr, betas, eps, 0
        self.m = {k: np.zeros_like(v) for k, v in params.items()}
        self.v = {k: np.zeros_like(v) for k, v in params.items()}

    def step(self, params, grads):
        """Updates params (a dict of arrays) in place from grads (the same keys)."""
        self.t += 1
        b1, b2 = self.betas
        for k, g in grads.items():
            self.m[k] = b1 * self.m[k] + (1 - b1) * g
            self.v[k] = b2 * self.v[k] + (1 - b2) * g * g
            denom = np.sqrt(self.v[k]) / np.sqrt(1 - b2 ** self.t) + self.eps
            params[k] -= self.lr / (1 - b1 ** self.t) * self.m[k] / denom


def train(params, X, y, cell="lstm", num_layers=1, loss="mse", steps=20, lr=1e-3, betas=(0.9, 0.999),
          eps=1e-8, clip_grad_norm_to=None, batch_size=None):
    """Trains recurrent layers + a Linear head on the last step, returning the loss of each step.

    params: {name: array} with the recurrent layers' PyTorch names (weight_ih_l0, ...) and the
    head's "fc.weight" (out, H) and "fc.bias" (out,); copied to float64 and updated in place
    of the copies, which are returned: ``losses, params = train(params, X, y)``.
    X (B, T, I) batch-first; y (B, out) for loss="mse", integer labels (B,) for
    "cross_entropy". Each step takes the next batch_size rows in order (all rows by default),
    clips the joint gradient norm to clip_grad_norm_to if given, then takes one Adam step.
    """
    if loss not in ("mse", "cross_entropy"):
        raise ValueError(f"loss must be 'mse' or 'cross_entropy', got {loss!r}")
    params = {k: np.array(v, np.float64) for k, v in params.items()}
    X = np.asarray(X, np.float64)
    n = len(X)
    batch_size = batch_size or n
    opt, losses = Adam(params, lr, betas, eps), []
    for step in range(steps):
        rows = np.arange(step * batch_size, (step + 1) * batch_size) % n
        rnn = {k: v for k, v in params.items() if not k.startswith("fc.")}
        out, _, _, cache = rnn_forward(cell, X[rows], rnn, num_layers, batch_first=True)
        last = out[:, -1]
        pred = last @ params["fc.weight"].T + params["fc.bias"]
        value, d_pred = mse_loss(pred, y[rows]) if loss == "mse" else cross_entropy_loss(pred, np.asarray(y)[rows])
        losses.append(value)
        dout = np.zeros_like(out)
        dout[:, -1] = d_pred @ params["fc.weight"]
        _, _, _, grads = rnn_backward(cache, dout)
        grads["fc.weight"], grads["fc.bias"] = d_pred.T @ last, d_pred.sum(axis=0)
        if clip_grad_norm_to is not None:
            clip_grad_norm(grads, clip_grad_norm_to)
        opt.step(params, grads)
    return losses, params
