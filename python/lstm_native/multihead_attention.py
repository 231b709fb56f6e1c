"""Multi-head self-attention over a batch-first sequence, as
torch.nn.MultiheadAttention(embed_dim, num_heads, batch_first=True) called with
query = key = value = x and a key padding mask from ``lengths``:

    q, k, v = split(x W_in^T + b_in)                    per head of size d = E / h
    A = softmax(q k^T / sqrt(d), keys past each length masked out)
    y = concat_heads(A v) W_out^T + b_out               rows past each length set to 0

Parameters have torch's names and shapes (``in_proj_weight`` (3E, E), ``in_proj_bias`` (3E,),
``out_proj.weight`` (E, E), ``out_proj.bias`` (E,)) so weights load from torch. All products
go through the core's batched GEMM; backward is written out below.
"""
from __future__ import annotations

import math

import numpy as np

from . import ops, seeding
from ._checks import float_array, float_dtype, lengths_array, positive_int, require_forward, sequence_batch
from ._grad_mode import is_grad_enabled
from .layers import Linear
from .module import Module, Parameter


class MultiheadAttention(Module):
    """``y = mha(x, lengths=None)``: self-attention (B, T, E) -> (B, T, E); ``last_weights``
    holds the attention weights (B, num_heads, T, T) of the last call."""

    takes_lengths = True

    def __init__(self, embed_dim: int, num_heads: int, bias: bool = True, seed=None, dtype=np.float32):
        super().__init__()
        self.embed_dim = positive_int("embed_dim", embed_dim)
        self.num_heads = positive_int("num_heads", num_heads)
        if embed_dim % num_heads:
            raise ValueError(f"embed_dim ({embed_dim}) must be divisible by num_heads ({num_heads})")
        self.head_dim = embed_dim // num_heads
        dtype = float_dtype(dtype)
        rng = seeding.generator(seed)
        bound = math.sqrt(6.0 / (embed_dim + 3 * embed_dim))        # xavier_uniform on (3E, E), as torch
        self.in_proj_weight = Parameter(rng.uniform(-bound, bound, (3 * embed_dim, embed_dim)).astype(dtype))
        self.in_proj_bias = Parameter(np.zeros(3 * embed_dim, dtype)) if bias else None
        self.out_proj = Linear(embed_dim, embed_dim, bias=bias, seed=rng.integers(2**31), dtype=dtype)
        if bias:
            self.out_proj.bias.data[...] = 0                         # torch zeroes both biases
        self.last_weights = None
        self._ctx = None

    def _heads(self, a, B, T):
        """(B, T, E) -> (B*h, T, d), contiguous."""
        return np.ascontiguousarray(a.reshape(B, T, self.num_heads, self.head_dim).transpose(0, 2, 1, 3)
                                    ).reshape(B * self.num_heads, T, self.head_dim)

    def _merge(self, a, B, T):
        """(B*h, T, d) -> (B, T, E)."""
        return np.ascontiguousarray(a.reshape(B, self.num_heads, T, self.head_dim).transpose(0, 2, 1, 3)
                                    ).reshape(B, T, self.embed_dim)

    def forward(self, x, lengths=None):
        dtype = self.in_proj_weight.dtype
        x = float_array(x, "x", dtype)
        if x.ndim != 3 or x.shape[2] != self.embed_dim:
            raise ValueError(f"x must have shape (batch, time, {self.embed_dim}), got {x.shape}")
        x = sequence_batch(x, "x", self.embed_dim, dtype, batch_first=True)   # and not empty
        B, T, E = x.shape
        lengths = lengths_array(lengths, B, T)
        if lengths is not None and lengths.min() < 1:
            raise ValueError("lengths must be >= 1 for attention (a sequence needs a key to attend to)")
        qkv = ops.matmul(ops.rows(x), self.in_proj_weight.array, trans_b=True)
        if self.in_proj_bias is not None:
            qkv += self.in_proj_bias.array
        qkv = qkv.reshape(B, T, 3 * E)
        q, k, v = (self._heads(qkv[:, :, i * E:(i + 1) * E], B, T) for i in range(3))
        scale = dtype.type(1.0 / math.sqrt(self.head_dim))
        scores = ops.matmul(q, k, trans_b=True) * scale                             # (B*h, T, T)
        if lengths is not None:
            key_pad = np.arange(T)[None, :] >= lengths[:, None]                      # (B, T) keys to hide
            scores = scores.reshape(B, self.num_heads, T, T)
            scores[np.broadcast_to(key_pad[:, None, None, :], scores.shape)] = -np.inf
            scores = scores.reshape(B * self.num_heads, T, T)
        weights = ops.softmax(scores, axis=-1).astype(dtype)
        context = self._merge(ops.matmul(weights, v), B, T)                         # (B, T, E)
        y = self.out_proj.forward(context)
        valid = None
        if lengths is not None:
            valid = (np.arange(T)[None, :] < lengths[:, None])[:, :, None]
            y = np.where(valid, y, 0).astype(dtype)
        self.last_weights = weights.reshape(B, self.num_heads, T, T)
        self._ctx = (x, q, k, v, weights, valid, scale) if is_grad_enabled() else None
        return y

    def backward(self, grad, need_input_grad: bool = True):
        x, q, k, v, weights, valid, scale = require_forward(self, self._ctx)
        dtype = self.in_proj_weight.dtype
        B, T, E = x.shape
        g = float_array(grad, "grad", dtype)
        if g.shape != (B, T, E):
            raise ValueError(f"grad must have shape {(B, T, E)}, got {g.shape}")
        if valid is not None:
            g = np.where(valid, g, 0).astype(dtype)                               # those outputs were zeroed
        d_context = self._heads(self.out_proj.backward(g), B, T)                   # (B*h, T, d)
        d_weights = ops.matmul(d_context, v, trans_b=True)                         # (B*h, T, T)
        dv = ops.matmul(weights, d_context, trans_a=True)
        # softmax backward: dS = A * (dA - rowsum(dA * A)); masked keys have A = 0
        d_scores = weights * (d_weights - np.sum(d_weights * weights, axis=-1, keepdims=True)) * scale
        dq = ops.matmul(d_scores, k)
        dk = ops.matmul(d_scores, q, trans_a=True)
        d_qkv = np.concatenate([self._merge(d, B, T) for d in (dq, dk, dv)], axis=2).reshape(B * T, 3 * E)
        ops.matmul(d_qkv, ops.rows(x), trans_a=True, out=self.in_proj_weight.grad, accumulate=True)
        if self.in_proj_bias is not None:
            self.in_proj_bias.grad += d_qkv.sum(axis=0)
        self._ctx = None
        if not need_input_grad:
            return None
        return ops.matmul(d_qkv, self.in_proj_weight.array).reshape(B, T, E)

    def get_config(self):
        return dict(embed_dim=self.embed_dim, num_heads=self.num_heads, bias=self.in_proj_bias is not None,
                    dtype=self.in_proj_weight.dtype.name)

    # quantize_dynamic swaps out_proj for an int8 layer: the file names it, so that ln.load
    # rebuilds that layer (with the plain config, the int8 buffers found no layer to go to)
    def to_config(self):
        config = super().to_config()
        if type(self.out_proj) is not Linear:
            config["out_proj"] = self.out_proj.to_config()
        return config

    @classmethod
    def from_config(cls, config):
        module = cls(**config.get("config", {}))
        if "out_proj" in config:
            module.out_proj = Module.build(config["out_proj"])
        return module
