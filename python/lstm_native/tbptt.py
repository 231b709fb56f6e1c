"""Stateful training on long series: ``fit(X, y, stateful=True, tbptt_steps=k)``.

Truncated backpropagation through time. X (B, T_long, F) holds B long series; each epoch
walks them in consecutive k-step chunks X[:, 0:k], X[:, k:2k], ... (the last may be shorter).
Each chunk is one optimizer step: forward from the state the previous chunk left (the
model's ``seq_forward_state``), backward within the chunk only (the carried state is a
constant, so gradients stop at chunk boundaries). What training keeps is one chunk's worth
(k steps), whatever T_long is.

The targets y are either
* per step, (B, T_long, ...): chunked alongside X, for a model whose output keeps the time
  axis (e.g. LSTM then Linear on every step), or
* per chunk, (B, n_chunks, ...) with n_chunks = ceil(T_long / k): y[:, j] is chunk j's target,
  for a model that gives one output per chunk (e.g. ending in LastTimestep).

Rows are independent series: with batch_size < B they are taken batch_size rows at a time,
each group from its start. Every epoch (and every group) starts from a zero state; the state
at the end of an epoch stays on the model as ``model.carried_state`` (continue with
``model.predict(X_next, initial_state=model.carried_state)``), and ``model.reset_states()``
forgets it. Time order is kept: shuffle and lengths do not apply. validation_data is another
series (X_val, y_val) walked the same way (no gradients), from a zero state.
"""
from __future__ import annotations

import math
import numbers

import numpy as np

from . import metrics as metrics_
from ._checks import to_numpy
from ._grad_mode import no_grad


class Series:
    """X (B, T_long, F) and its targets, cut into consecutive k-step chunks."""

    def __init__(self, X, y, k, name="X"):
        if X.ndim < 2:
            raise ValueError(f"stateful fit: {name} must be (batch, time, features), got shape {X.shape}")
        B, T = X.shape[:2]
        self.X, self.y, self.k = X, y, k
        self.n_chunks = math.ceil(T / k)
        if y.ndim < 2 or len(y) != B or y.shape[1] not in (T, self.n_chunks):
            raise ValueError(f"stateful fit: y must be per step ({B}, {T}, ...) or per chunk ({B}, {self.n_chunks}, ...) "
                             f"for {name} {X.shape} in chunks of {k} steps, got {y.shape}")
        self.per_step = y.shape[1] == T

    def __len__(self):
        return len(self.X)

    def num_batches(self, batch_size):
        return math.ceil(len(self) / batch_size) * self.n_chunks

    def chunk(self, rows, j):
        """Chunk j of the given rows: (x, target, weight); weight counts its steps."""
        sl = slice(j * self.k, (j + 1) * self.k)
        x = self.X[rows, sl]
        return x, (self.y[rows, sl] if self.per_step else self.y[rows, j]), x.shape[0] * (x.shape[1] if self.per_step else 1)

    def chunks(self, batch_size, carry):
        """Batches (x, y, None, weight) for fit: each row group's chunks in order, the state
        carried from one to the next and kept on the model at the end."""
        finals = []
        for start in range(0, len(self), batch_size):
            rows = slice(start, start + batch_size)
            carry.state = None
            for j in range(self.n_chunks):
                x, target, weight = self.chunk(rows, j)
                yield x, target, None, weight
            finals.append(carry.state)
        carry.model.carried_state = finals[0] if len(finals) == 1 else _concat(finals)


class Carry:
    """The state carried from chunk to chunk while a stateful fit runs."""

    def __init__(self, model):
        self.model, self.state = model, None

    def forward(self, x):
        out, self.state = self.model.seq_forward_state(x, self.state)
        return out


def _concat(states):
    first = states[0]
    if first is None:
        return None
    if isinstance(first, (list, tuple)):
        return type(first)(_concat([s[i] for s in states]) for i in range(len(first)))
    return np.concatenate(states, axis=1)   # state arrays are (layers, batch, hidden)


def series(X, y, tbptt_steps, lengths, validation_data, validation_split, prepare):
    """The checked training Series and validation Series (or None) for a stateful fit."""
    if not isinstance(tbptt_steps, numbers.Integral) or tbptt_steps < 1:
        raise ValueError(f"stateful=True needs tbptt_steps, a positive number of steps per chunk, got {tbptt_steps!r}")
    if lengths is not None:
        raise ValueError("stateful fit walks whole series: lengths does not apply")
    if validation_split:
        raise ValueError("stateful fit: give validation_data=(X_val, y_val), another series (validation_split "
                         "does not apply)")
    val = None
    if validation_data is not None:
        if len(validation_data) != 2:
            raise ValueError("stateful fit: validation_data must be (X_val, y_val)")
        val = Series(prepare(validation_data[0]), to_numpy(validation_data[1], "y_val"), int(tbptt_steps), "X_val")
    return Series(X, y, int(tbptt_steps), "X"), val


def evaluate_series(model, val, loss_fn, loss_kwargs, metric_specs):
    """Mean loss and metrics over a validation Series, chunk by chunk with the state carried."""
    tracker = metrics_.MetricSet(metric_specs, loss_fn)
    total = seen = 0.0
    was_training = model.training
    model.eval()
    try:
        with no_grad():
            state = None
            for j in range(val.n_chunks):
                x, target, weight = val.chunk(slice(None), j)
                out, state = model.seq_forward_state(x, state)
                value, _ = loss_fn(out, target, mask=None, **loss_kwargs)
                total, seen = total + value * weight, seen + weight
                tracker.update(out, target, None)
    finally:
        model.train(was_training)
    return {"loss": total / seen, **tracker.results()}
