"""Attention over a sequence of hidden states: additive (Bahdanau) or multiplicative (Luong).

    score[b, q, t] = v^T tanh(W_h h[b, t] + W_s s[b, q] + bias)    score="additive" (Bahdanau)
    score[b, q, t] = s[b, q] . h[b, t]                             score="dot" (Luong)
    score[b, q, t] = s[b, q] . (W_a h[b, t])                       score="general" (Luong)
    alpha[b, q, :] = softmax over the valid steps t < lengths[b]
    context[b, q]  = sum_t alpha[b, q, t] h[b, t]

Without a query (query_size=None) the W_s s term is absent: the layer learns which steps
matter by content alone and returns one context vector per sequence, the usual pooling
after a (Bi)LSTM for classification (additive score only). With queries (B, Q) or
(B, Tq, Q), such as a decoder's outputs, it returns one context per query; all queries are
handled at once. The dot score needs Q == H and has no parameters; general learns W_a (Q, H).
"""
from __future__ import annotations

import math

import numpy as np

from . import ops, seeding
from ._checks import float_array, float_dtype, gradient, lengths_array, positive_int, require_forward, sequence_batch
from ._grad_mode import is_grad_enabled
from .module import Module, Parameter


SCORES = ("additive", "dot", "general")


class Attention(Module):
    """``context = attention(h, query=None, lengths=None)``; the weights of the last call are in
    ``last_weights``. score="additive" (default; Bahdanau): parameters ``W_h`` (A, H), ``W_s``
    (A, Q) when query_size is given, ``bias`` (A,) and ``v`` (A,). score="dot" (Luong): none.
    score="general" (Luong): ``W_a`` (Q, H). Luong's scores need a query."""

    takes_lengths = True

    def __init__(self, hidden_size: int, query_size=None, attention_size=None, seed=None, dtype=np.float32,
                 score: str = "additive"):
        super().__init__()
        if score not in SCORES:
            raise ValueError(f"score must be one of {SCORES}, got {score!r}")
        self.score = score
        self.hidden_size = positive_int("hidden_size", hidden_size)
        self.query_size = None if query_size is None else positive_int("query_size", query_size)
        self.attention_size = hidden_size if attention_size is None else positive_int("attention_size", attention_size)
        self.dtype = float_dtype(dtype)
        rng = seeding.generator(seed)
        A = self.attention_size

        def uniform(fan_in, shape):
            bound = 1.0 / math.sqrt(fan_in)
            return Parameter(rng.uniform(-bound, bound, shape).astype(self.dtype))

        self.last_weights = None
        self._ctx = None
        if score != "additive":
            if self.query_size is None:
                raise ValueError(f"score={score!r} compares a query with each step: give query_size")
            if score == "dot" and self.query_size != self.hidden_size:
                raise ValueError(f"score='dot' needs query_size == hidden_size, got {self.query_size} and "
                                 f"{self.hidden_size} (score='general' maps between them)")
            if score == "general":
                self.W_a = uniform(hidden_size, (self.query_size, hidden_size))
            return
        self.W_h = uniform(hidden_size, (A, hidden_size))
        if self.query_size is not None:
            self.W_s = uniform(self.query_size, (A, self.query_size))
        self.bias = uniform(hidden_size, (A,))
        self.v = uniform(A, (A,))

    def forward(self, h, query=None, lengths=None):
        h = float_array(h, "h", self.dtype)
        if h.ndim != 3 or h.shape[2] != self.hidden_size:
            raise ValueError(f"h must have shape (batch, time, {self.hidden_size}), got {h.shape}")
        h = sequence_batch(h, "h", self.hidden_size, self.dtype, batch_first=True)   # and not empty
        B, T, H = h.shape
        if (query is None) != (self.query_size is None):
            raise ValueError("give a query exactly when the layer was built with query_size")
        single_query = False
        if query is not None:
            query = float_array(query, "query", self.dtype)
            single_query = query.ndim == 2
            if single_query:
                query = query[:, None, :]
            if query.ndim != 3 or query.shape[0] != B or query.shape[2] != self.query_size:
                raise ValueError(f"query must have shape ({B}, {self.query_size}) or ({B}, Tq, {self.query_size}), "
                                 f"got {query.shape}")
        mask = ops.length_mask(lengths_array(lengths, B, T), B, T)   # a length of 0 gives a zero context

        if self.score == "additive":
            pre = ops.matmul(ops.rows(h), self.W_h.array, trans_b=True).reshape(B, 1, T, -1) + self.bias.array
            if query is not None:
                Tq = query.shape[1]
                pre = pre + ops.matmul(ops.rows(query), self.W_s.array, trans_b=True).reshape(B, Tq, 1, self.attention_size)
            energy = np.tanh(pre)                                        # (B, Tq, T, A)
            scores = ops.matmul(ops.rows(energy), self.v.data[:, None]).reshape(energy.shape[:3])  # (B, Tq, T)
        else:
            energy = self._keys(h)                                       # (B, T, Q): h, or h W_a^T
            scores = ops.matmul(query, energy, trans_b=True)             # (B, Tq, T)
        alpha = _masked_softmax(scores, None if mask is None else mask[:, None, :])
        context = ops.matmul(alpha, h)                                   # (B, Tq, H)
        self.last_weights = alpha[:, 0] if query is None or single_query else alpha
        self._ctx = (h, query, energy, alpha, query is None or single_query) if is_grad_enabled() else None
        return context[:, 0] if query is None or single_query else context

    def _keys(self, h):
        if self.score == "dot":
            return h
        return ops.matmul(ops.rows(h), self.W_a.array, trans_b=True).reshape(h.shape[0], h.shape[1], -1)

    def backward(self, grad, need_input_grad: bool = True):
        """Returns dh, or (dh, dquery) when the forward had a query; None when need_input_grad
        is False (the parameter gradients still accumulate)."""
        h, query, energy, alpha, squeezed = require_forward(self, self._ctx)
        g = gradient(grad, "grad", (alpha.shape[0], alpha.shape[1], h.shape[2]) if not squeezed
                     else (h.shape[0], h.shape[2]), self.dtype)
        self._ctx = None
        if squeezed:
            g = g[:, None, :]
        B, T, H = h.shape
        d_alpha = ops.matmul(g, h, trans_b=True)                         # (B, Tq, T)
        d_scores = alpha * (d_alpha - np.sum(alpha * d_alpha, axis=-1, keepdims=True))
        if self.score != "additive":
            return self._multiplicative_backward(g, h, query, energy, alpha, d_scores, squeezed, need_input_grad)
        self.v.grad += np.einsum("bqt,bqta->a", d_scores, energy)
        d_pre = d_scores[..., None] * self.v.array * (1 - energy * energy)  # (B, Tq, T, A)
        self.bias.grad += d_pre.sum(axis=(0, 1, 2))
        d_hp = ops.rows(d_pre.sum(axis=1))                               # (B*T, A)
        ops.matmul(d_hp, ops.rows(h), trans_a=True, out=self.W_h.grad, accumulate=True)
        if query is not None:
            d_sp = ops.rows(d_pre.sum(axis=2))                           # (B*Tq, A)
            ops.matmul(d_sp, ops.rows(query), trans_a=True, out=self.W_s.grad, accumulate=True)
        if not need_input_grad:
            return None
        dh = ops.matmul(alpha, g, trans_a=True)                          # (B, T, H)
        dh += ops.matmul(d_hp, self.W_h.array).reshape(B, T, H)
        if query is None:
            return dh
        d_query = ops.matmul(d_sp, self.W_s.array).reshape(query.shape)
        return dh, (d_query[:, 0] if squeezed else d_query)

    def _multiplicative_backward(self, g, h, query, keys, alpha, d_scores, squeezed, need_input_grad):
        """Luong's scores = query keys^T, keys = h (dot) or h W_a^T (general)."""
        B, T, H = h.shape
        d_keys = ops.matmul(d_scores, query, trans_a=True)               # (B, T, Q)
        if self.score == "general":
            ops.matmul(ops.rows(d_keys), ops.rows(h), trans_a=True, out=self.W_a.grad, accumulate=True)
        if not need_input_grad:
            return None
        dh = ops.matmul(alpha, g, trans_a=True)                          # through context = alpha h
        dh += d_keys if self.score == "dot" else ops.matmul(ops.rows(d_keys), self.W_a.array).reshape(B, T, H)
        d_query = ops.matmul(d_scores, keys)                             # (B, Tq, Q)
        return dh, (d_query[:, 0] if squeezed else d_query)

    # In a Sequential: (B, T, H) with lengths -> one context per sequence.
    def seq_forward(self, x, lengths=None):
        return self.forward(x, None, lengths)

    def output_lengths(self, lengths):
        return None

    def get_config(self):
        return dict(hidden_size=self.hidden_size, query_size=self.query_size,
                    attention_size=self.attention_size, dtype=self.dtype.name, score=self.score)


def _masked_softmax(scores, mask):
    """Softmax over the last axis restricted to mask; all-masked rows give zeros."""
    if mask is None:
        return ops.softmax(scores)
    masked = np.where(mask, scores, -np.inf)
    top = np.max(masked, axis=-1, keepdims=True)
    top = np.where(np.isfinite(top), top, 0)
    e = np.where(mask, np.exp(masked - top), 0)
    total = e.sum(axis=-1, keepdims=True)
    return (e / np.where(total > 0, total, 1)).astype(scores.dtype)
