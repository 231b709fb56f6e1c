"""Plain NumPy (float64) LSTM and GRU: forward and backpropagation through time.

This is the oracle the compiled kernels are tested against, so it is written for the
reader, not for speed: each sequence of a batch runs alone over its own length, one step
at a time, straight from the textbook equations. Parameters are a dict with PyTorch's
names and shapes (a layer's ``state_dict()``).

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


# ----------------------------------------------------------------------------------
# LSTM cell: gates i, f, g, o stacked in that order in W_ih (4H, I), W_hh (4H, H), b (4H)
# ----------------------------------------------------------------------------------
def lstm_cell_forward(x, h_prev, c_prev, W_ih, W_hh, b_ih, b_hh):
    H = h_prev.shape[0]
    a = W_ih @ x + b_ih + W_hh @ h_prev + b_hh
    i = sigmoid(a[0:H])            # input gate: how much of the candidate enters the cell
    f = sigmoid(a[H:2 * H])        # forget gate: how much of the old cell state stays
    g = np.tanh(a[2 * H:3 * H])    # candidate cell state
    o = sigmoid(a[3 * H:4 * H])    # output gate
    c = f * c_prev + i * g         # C_t
    h = o * np.tanh(c)             # h_t
    return h, c, (x, h_prev, c_prev, i, f, g, o, c)


def lstm_cell_backward(dh, dc_next, step, W_ih, W_hh):
    """Given dL/dh_t (all paths) and dL/dc_t from later steps: the step's gradients."""
    x, h_prev, c_prev, i, f, g, o, c = step
    tanh_c = np.tanh(c)
    do = dh * tanh_c
    dc = dc_next + dh * o * (1.0 - tanh_c ** 2)
    di = dc * g
    df = dc * c_prev
    dg = dc * i
    da = np.concatenate([di * i * (1 - i), df * f * (1 - f), dg * (1 - g ** 2), do * o * (1 - o)])
    grads = dict(W_ih=np.outer(da, x), W_hh=np.outer(da, h_prev), b_ih=da, b_hh=da)
    return W_ih.T @ da, W_hh.T @ da, dc * f, grads   # dx, dh_prev, dc_prev, parameter gradients


# ----------------------------------------------------------------------------------
# GRU cell: gates r, z, n stacked in that order in W_ih (3H, I), W_hh (3H, H), b (3H)
# ----------------------------------------------------------------------------------
def gru_cell_forward(x, h_prev, _c_prev, W_ih, W_hh, b_ih, b_hh):
    H = h_prev.shape[0]
    ax = W_ih @ x + b_ih
    ah = W_hh @ h_prev + b_hh
    r = sigmoid(ax[0:H] + ah[0:H])                 # reset gate
    z = sigmoid(ax[H:2 * H] + ah[H:2 * H])         # update gate
    n = np.tanh(ax[2 * H:] + r * ah[2 * H:])       # candidate state
    h = (1 - z) * n + z * h_prev
    return h, None, (x, h_prev, r, z, n, ah[2 * H:])


def gru_cell_backward(dh, _dc_next, step, W_ih, W_hh):
    x, h_prev, r, z, n, hn = step
    dn = dh * (1 - z)
    dz = dh * (h_prev - n)
    dan = dn * (1 - n ** 2)          # w.r.t. n's pre-activation
    dr = dan * hn
    dar = dr * r * (1 - r)
    daz = dz * z * (1 - z)
    dax = np.concatenate([dar, daz, dan])        # w.r.t. W_ih x + b_ih
    dah = np.concatenate([dar, daz, dan * r])    # w.r.t. W_hh h + b_hh
    grads = dict(W_ih=np.outer(dax, x), W_hh=np.outer(dah, h_prev), b_ih=dax, b_hh=dah)
    return W_ih.T @ dax, W_hh.T @ dah + dh * z, None, grads


CELLS = {"lstm": (lstm_cell_forward, lstm_cell_backward, 4),
         "gru": (gru_cell_forward, gru_cell_backward, 3)}


# ----------------------------------------------------------------------------------
# One sequence through one direction of one layer
# ----------------------------------------------------------------------------------
def sequence_forward(cell, xs, h0, c0, p):
    forward, _, _ = CELLS[cell]
    h, c, hs, steps = h0, c0, [], []
    for x in xs:
        h, c, step = forward(x, h, c, p["W_ih"], p["W_hh"], p["b_ih"], p["b_hh"])
        hs.append(h)
        steps.append(step)
    return hs, h, c, steps


def sequence_backward(cell, dhs, dh_last, dc_last, steps, p, grads):
    _, backward, _ = CELLS[cell]
    dh_next, dc_next, dxs = dh_last, dc_last, [None] * len(steps)
    for t in reversed(range(len(steps))):
        dxs[t], dh_next, dc_next, g = backward(dhs[t] + dh_next, dc_next, steps[t], p["W_ih"], p["W_hh"])
        for k in grads:
            grads[k] += g[k]
    return dxs, dh_next, dc_next


# ----------------------------------------------------------------------------------
# A stack of (bi)directional layers over a padded batch
# ----------------------------------------------------------------------------------
def _direction_params(params, layer, reverse, gates, hidden):
    s = f"_l{layer}" + ("_reverse" if reverse else "")
    zero = np.zeros(gates * hidden)
    return dict(W_ih=np.asarray(params["weight_ih" + s], np.float64),
                W_hh=np.asarray(params["weight_hh" + s], np.float64),
                b_ih=np.asarray(params.get("bias_ih" + s, zero), np.float64),
                b_hh=np.asarray(params.get("bias_hh" + s, zero), np.float64))


def rnn_forward(cell, x, params, num_layers=1, bidirectional=False, h0=None, c0=None, lengths=None,
                batch_first=False, dropout_masks=None):
    """x (T, B, I) or (B, T, I); returns out, h_n, c_n (None for GRU), cache.

    dropout_masks[k], if given, multiplies layer k's output (k < num_layers - 1).
    """
    x = np.asarray(x, np.float64)
    if not batch_first:
        x = x.transpose(1, 0, 2)                      # work batch-first: (B, T, I)
    B, T, _ = x.shape
    gates = CELLS[cell][2]
    H = params["weight_hh_l0"].shape[1]
    D = 2 if bidirectional else 1
    lengths = np.full(B, T) if lengths is None else np.asarray(lengths)
    h0 = np.zeros((num_layers * D, B, H)) if h0 is None else np.asarray(h0, np.float64)
    c0 = np.zeros((num_layers * D, B, H)) if c0 is None else np.asarray(c0, np.float64)
    h_n, c_n = np.zeros_like(h0), np.zeros_like(c0)
    layer_input, cache = x, []
    for layer in range(num_layers):
        out = np.zeros((B, T, D * H))
        layer_cache = {}
        for d in range(D):
            p = _direction_params(params, layer, d == 1, gates, H)
            for b in range(B):
                n = int(lengths[b])
                order = list(range(n))[::-1] if d == 1 else list(range(n))   # reverse reads backwards
                xs = [layer_input[b, t] for t in order]
                hs, h, c, steps = sequence_forward(cell, xs, h0[layer * D + d, b], c0[layer * D + d, b], p)
                for t, h_t in zip(order, hs):
                    out[b, t, d * H:(d + 1) * H] = h_t
                h_n[layer * D + d, b] = h
                if c is not None:
                    c_n[layer * D + d, b] = c
                layer_cache[d, b] = (order, steps)
        if dropout_masks is not None and layer < num_layers - 1:
            mask = np.asarray(dropout_masks[layer], np.float64)
            out = out * (mask if batch_first else mask.transpose(1, 0, 2))
        cache.append(layer_cache)
        layer_input = out
    result = layer_input if batch_first else layer_input.transpose(1, 0, 2)
    meta = dict(cell=cell, params=params, num_layers=num_layers, D=D, H=H, B=B, T=T, lengths=lengths,
                batch_first=batch_first, dropout_masks=dropout_masks, input_size=x.shape[2])
    return result, h_n, (c_n if cell == "lstm" else None), (meta, cache)


def rnn_backward(cache, dout=None, dh_n=None, dc_n=None):
    """Returns dx, dh0, dc0 (None for GRU) and the parameter gradients keyed like params."""
    meta, layers = cache
    cell, D, H, B, T, L = meta["cell"], meta["D"], meta["H"], meta["B"], meta["T"], meta["num_layers"]
    gates = CELLS[cell][2]
    dout = np.zeros((T, B, D * H)) if dout is None else np.asarray(dout, np.float64)
    if not meta["batch_first"]:
        dout = dout.transpose(1, 0, 2)
    dh_n = np.zeros((L * D, B, H)) if dh_n is None else np.asarray(dh_n, np.float64)
    dc_n = np.zeros((L * D, B, H)) if dc_n is None else np.asarray(dc_n, np.float64)
    dh0, dc0 = np.zeros_like(dh_n), np.zeros_like(dc_n)
    grads = {}
    grad_out = dout
    for layer in reversed(range(L)):
        in_size = meta["input_size"] if layer == 0 else D * H
        d_input = np.zeros((B, T, in_size))
        for d in range(D):
            s = f"_l{layer}" + ("_reverse" if d == 1 else "")
            p = _direction_params(meta["params"], layer, d == 1, gates, H)
            g = {k: np.zeros_like(v) for k, v in p.items()}
            for b in range(B):
                order, steps = layers[layer][d, b]
                dhs = [grad_out[b, t, d * H:(d + 1) * H] for t in order]
                dxs, dh, dc = sequence_backward(cell, dhs, dh_n[layer * D + d, b], dc_n[layer * D + d, b], steps, p, g)
                for t, dx_t in zip(order, dxs):
                    d_input[b, t] += dx_t
                dh0[layer * D + d, b] = dh
                if dc is not None:
                    dc0[layer * D + d, b] = dc
            grads["weight_ih" + s], grads["weight_hh" + s] = g["W_ih"], g["W_hh"]
            grads["bias_ih" + s], grads["bias_hh" + s] = g["b_ih"], g["b_hh"]
        if layer > 0 and meta["dropout_masks"] is not None:
            mask = np.asarray(meta["dropout_masks"][layer - 1], np.float64)
            d_input = d_input * (mask if meta["batch_first"] else mask.transpose(1, 0, 2))
        grad_out = d_input
    dx = grad_out if meta["batch_first"] else grad_out.transpose(1, 0, 2)
    grads = {k: v for k, v in grads.items() if k in meta["params"]}
    return dx, dh0, (dc0 if cell == "lstm" else None), grads


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
