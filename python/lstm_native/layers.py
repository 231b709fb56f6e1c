"""Feed-forward layers: Linear, Embedding, Dropout, activations, LayerNorm, LastTimestep,
TimeDistributed and Residual. Each has forward and backward; parameter gradients
accumulate in ``.grad`` (and ``grads``) like the recurrent layers'. Sequence tensors are
batch-first (B, T, F), as ``fit`` batches along the first axis.
"""
from __future__ import annotations

import math

import numpy as np

from . import ops, seeding
from ._backend import core
from ._checks import float_array, float_dtype, float_input, gradient, lengths_array, positive_int, probability, \
    real_number, require_forward, to_numpy
from ._grad_mode import is_grad_enabled
from .module import Module, Parameter


class Linear(Module):
    """y = x W^T + b over the last axis of x (any leading axes), as torch.nn.Linear:
    ``weight`` (out_features, in_features), ``bias`` (out_features,), both ~ U(-1/sqrt(in), 1/sqrt(in))."""

    stream_pointwise = True   # acts on each time step alone

    def __init__(self, in_features: int, out_features: int, bias: bool = True, seed=None, dtype=np.float32):
        super().__init__()
        self.in_features = positive_int("in_features", in_features)
        self.out_features = positive_int("out_features", out_features)
        dtype = float_dtype(dtype)
        rng = seeding.generator(seed)
        bound = 1.0 / math.sqrt(in_features)
        self.weight = Parameter(rng.uniform(-bound, bound, (out_features, in_features)).astype(dtype))
        self.bias = Parameter(rng.uniform(-bound, bound, out_features).astype(dtype)) if bias else None
        self._x = None

    def forward(self, x):
        x = float_array(x, "x", self.weight.dtype)
        if x.ndim == 0 or x.shape[-1] != self.in_features:
            raise ValueError(f"x must have {self.in_features} features in its last axis, got shape {x.shape}")
        x2 = ops.rows(x)
        if self._small(x2.shape[0]):
            y = np.dot(x2, self.weight.array.T)
        else:
            y = ops.matmul(x2, self.weight.array, trans_b=True)
        if self.bias is not None:
            y += self.bias.array
        self._x = x if is_grad_enabled() else None
        return y.reshape(x.shape[:-1] + (self.out_features,))

    def _small(self, rows: int) -> bool:
        # A head over a small batch (S1: 16 x 64 x 1) costs ~2 us through NumPy against ~8 us
        # through the core's GEMM, which packs its operands; NumPy's BLAS runs products this
        # small on the calling thread, so no second thread pool wakes up.
        return rows * self.in_features * self.out_features <= 32768

    def stream_step(self, x_t, state):
        # One small product per step: skip forward's bookkeeping. NumPy's dot costs ~2 us
        # here against ~8 us through the core's GEMM (which packs); Stream.step checks that
        # the model's output is finite.
        if type(x_t) is np.ndarray and x_t.ndim == 2 and x_t.dtype == self.weight.dtype \
                and x_t.shape[1] == self.in_features and x_t.shape[0] <= 4:
            y = np.dot(x_t, self.weight.array.T)
            if self.bias is not None:
                y += self.bias.array
            return y, None
        return self.forward(x_t), None

    def backward(self, grad, need_input_grad: bool = True):
        x = require_forward(self, self._x)
        g = ops.rows(gradient(grad, "grad", x.shape[:-1] + (self.out_features,), self.weight.dtype))
        small = self._small(g.shape[0])
        if small:
            self.weight.grad += np.dot(g.T, ops.rows(x))
        else:
            ops.matmul(g, ops.rows(x), trans_a=True, out=self.weight.grad, accumulate=True)
        if self.bias is not None:
            self.bias.grad += g.sum(axis=0)
        self._x = None
        if not need_input_grad:
            return None
        return (np.dot(g, self.weight.array) if small else ops.matmul(g, self.weight.array)).reshape(x.shape)

    def get_config(self):
        return dict(in_features=self.in_features, out_features=self.out_features, bias=self.bias is not None,
                    dtype=self.weight.dtype.name)


class Embedding(Module):
    """Integer ids (any shape) -> vectors (..., embedding_dim), as torch.nn.Embedding:
    ``weight`` (num_embeddings, embedding_dim) ~ N(0, 1); the padding_idx row is zero and
    gets no gradient. The gradient is dense (rows of ids not seen stay zero)."""

    stream_pointwise = True   # acts on each time step alone

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx=None, seed=None, dtype=np.float32):
        super().__init__()
        self.num_embeddings = positive_int("num_embeddings", num_embeddings)
        self.embedding_dim = positive_int("embedding_dim", embedding_dim)
        if padding_idx is not None:
            if isinstance(padding_idx, bool) or not isinstance(padding_idx, (int, np.integer)):   # int() truncated 1.5
                raise TypeError(f"padding_idx must be an integer or None, got {padding_idx!r}")
            padding_idx = int(padding_idx)
            if not -num_embeddings <= padding_idx < num_embeddings:
                raise ValueError(f"padding_idx must be within the {num_embeddings} embeddings, got {padding_idx}")
            padding_idx %= num_embeddings
        self.padding_idx = padding_idx
        w = seeding.generator(seed).standard_normal((num_embeddings, embedding_dim)).astype(float_dtype(dtype))
        if padding_idx is not None:
            w[padding_idx] = 0
        self.weight = Parameter(w)
        self._ids = None

    def forward(self, ids):
        ids = to_numpy(ids, "ids")
        if ids.dtype.kind not in "iu":
            raise TypeError(f"ids must be an integer array, got dtype {ids.dtype}")
        if ids.size and (ids.min() < 0 or ids.max() >= self.num_embeddings):
            bad = ids.min() if ids.min() < 0 else ids.max()
            raise ValueError(f"ids must be in [0, {self.num_embeddings}), found {int(bad)}")
        self._ids = ids if is_grad_enabled() else None
        return self.weight.data[ids]

    def backward(self, grad, need_input_grad: bool = True):
        """Accumulates the rows' gradients; returns None (integer ids have no gradient)."""
        ids = require_forward(self, self._ids)
        g = gradient(grad, "grad", ids.shape + (self.embedding_dim,), self.weight.dtype).reshape(-1, self.embedding_dim)
        flat = ids.reshape(-1)
        if self.padding_idx is not None:
            keep = flat != self.padding_idx
            flat, g = flat[keep], g[keep]
        np.add.at(self.weight.grad, flat, g)
        self._ids = None
        return None  # ids have no gradient

    def get_config(self):
        return dict(num_embeddings=self.num_embeddings, embedding_dim=self.embedding_dim,
                    padding_idx=self.padding_idx, dtype=self.weight.dtype.name)


class Dropout(Module):
    """Zeroes each element with probability p in training (scaling the rest by 1/(1-p))."""

    stream_pointwise = True   # acts on each time step alone

    def __init__(self, p: float = 0.5, seed=None):
        super().__init__()
        self.p = probability("p", p)
        self._rng = seeding.generator(seed)
        self._mask = None

    def forward(self, x):
        x = float_input(x, "x")
        if not self.training or self.p == 0:
            self._mask = (x.shape, x.dtype, None)
            return x
        keep = 1.0 - self.p
        mask = (self._rng.random(x.shape) < keep).astype(x.dtype) / x.dtype.type(keep)
        self._mask = (x.shape, x.dtype, mask) if is_grad_enabled() else None
        return x * mask

    def stream_step(self, x_t, state):
        return x_t, None          # streams are inference: dropout is off

    def backward(self, grad, need_input_grad: bool = True):
        shape, dtype, mask = require_forward(self, self._mask)
        if not need_input_grad:
            return None
        g = gradient(grad, "grad", shape, dtype)
        return g.copy() if mask is None else g * mask

    def get_config(self):
        return dict(p=self.p)

    def get_extra_state(self):
        return {"rng": self._rng.bit_generator.state}

    def set_extra_state(self, state):
        self._rng.bit_generator.state = state["rng"]


class _Elementwise(Module):
    """An activation applied element by element; subclasses give f and f' (from f's output)."""

    stream_pointwise = True   # acts on each time step alone

    def forward(self, x):
        y = self.f(float_input(x, "x"))
        self._y = y if is_grad_enabled() else None
        return y

    def backward(self, grad, need_input_grad: bool = True):
        y = require_forward(self, getattr(self, "_y", None))
        if not need_input_grad:
            return None
        return gradient(grad, "grad", np.shape(y), y.dtype) * self.derivative(y)


class ReLU(_Elementwise):
    @staticmethod
    def f(x):
        return np.maximum(x, 0)

    @staticmethod
    def derivative(y):
        return (y > 0).astype(y.dtype)


class Tanh(_Elementwise):
    f = staticmethod(np.tanh)

    @staticmethod
    def derivative(y):
        return 1 - y * y


class Sigmoid(_Elementwise):
    f = staticmethod(ops.sigmoid)

    @staticmethod
    def derivative(y):
        return y * (1 - y)


class LayerNorm(Module):
    """Normalises the last axis to zero mean and unit variance, then scales and shifts, as
    torch.nn.LayerNorm over one axis: ``weight`` (ones) and ``bias`` (zeros), both (features,)."""

    stream_pointwise = True   # acts on each time step alone

    def __init__(self, normalized_shape: int, eps: float = 1e-5, elementwise_affine: bool = True, dtype=np.float32):
        super().__init__()
        if isinstance(normalized_shape, (tuple, list)):
            if len(normalized_shape) != 1:
                raise ValueError("LayerNorm normalises over the last axis only: give one size")
            normalized_shape = normalized_shape[0]
        self.normalized_shape = positive_int("normalized_shape", normalized_shape)
        self.eps = real_number("eps", eps)
        if not 0 < self.eps < np.inf:   # eps <= 0 divides by zero on a constant row
            raise ValueError(f"eps must be a positive number, got {eps!r}")
        dtype = float_dtype(dtype)
        self.weight = Parameter(np.ones(self.normalized_shape, dtype)) if elementwise_affine else None
        self.bias = Parameter(np.zeros(self.normalized_shape, dtype)) if elementwise_affine else None
        self._dtype = dtype
        self._ctx = None

    def forward(self, x):
        x = float_array(x, "x", self._dtype)
        if x.ndim == 0 or x.shape[-1] != self.normalized_shape:
            raise ValueError(f"x must have {self.normalized_shape} features in its last axis, got shape {x.shape}")
        mean = x.mean(axis=-1, keepdims=True)
        centered = x - mean
        inv_std = 1.0 / np.sqrt((centered * centered).mean(axis=-1, keepdims=True) + self.eps)
        x_hat = centered * inv_std
        self._ctx = (x_hat, inv_std) if is_grad_enabled() else None
        return x_hat * self.weight.array + self.bias.array if self.weight is not None else x_hat

    def backward(self, grad, need_input_grad: bool = True):
        x_hat, inv_std = require_forward(self, self._ctx)
        g = gradient(grad, "grad", x_hat.shape, self._dtype)
        if self.weight is not None:
            axes = tuple(range(g.ndim - 1))
            self.weight.grad += (g * x_hat).sum(axis=axes)
            self.bias.grad += g.sum(axis=axes)
            g = g * self.weight.array
        n = x_hat.shape[-1]
        self._ctx = None
        if not need_input_grad:
            return None
        return inv_std / n * (n * g - g.sum(axis=-1, keepdims=True) - x_hat * (g * x_hat).sum(axis=-1, keepdims=True))

    def get_config(self):
        return dict(normalized_shape=self.normalized_shape, eps=self.eps,
                    elementwise_affine=self.weight is not None, dtype=self._dtype.name)


class LastStepGradient:
    """The gradient LastTimestep passes back: nonzero only at each sequence's last valid step.
    Recurrent layers take it as it is (no (B, T, F) array of zeros is built); anything else
    sees the dense array (``np.asarray`` works on it)."""

    __slots__ = ("grad", "last", "shape", "dtype")

    def __init__(self, grad, last, shape, dtype):
        self.grad, self.last, self.shape, self.dtype = grad, last, shape, dtype

    def __array__(self, dtype=None, copy=None):
        dense = np.zeros(self.shape, self.dtype)
        if self.last is None:   # every sequence ends at the last step
            dense[:, -1] = self.grad
        else:
            dense[np.arange(self.shape[0]), self.last] = self.grad
        return dense if dtype is None else dense.astype(dtype, copy=False)


class LastTimestep(Module):
    """(B, T, F) -> (B, F): each sequence's output at its last valid step (T - 1 without lengths)."""

    takes_lengths = True

    def __init__(self):
        super().__init__()
        self._ctx = None

    def forward(self, x, lengths=None):
        x = float_input(x, "x")
        if x.ndim != 3:
            raise ValueError(f"x must be 3-D (batch, time, features), got shape {x.shape}")
        B, T = x.shape[:2]
        if T == 0:
            raise ValueError(f"x: the sequences have no time steps (shape {x.shape})")
        if lengths is None:    # last None: every sequence's last step is T - 1
            self._ctx = (x.shape, x.dtype, None) if is_grad_enabled() else None
            return np.ascontiguousarray(x[:, -1])
        last = lengths_array(lengths, B, T) - 1
        if B and last.min() < 0:
            raise ValueError(f"lengths must be >= 1 for LastTimestep (a sequence needs a last step), "
                             f"got lengths[{int(np.argmin(last))}] = 0")
        self._ctx = (x.shape, x.dtype, last) if is_grad_enabled() else None
        return x[np.arange(B), last]

    def backward(self, grad, need_input_grad: bool = True):
        """The dense (B, T, F) gradient (zero but at the last steps)."""
        lazy = self.seq_backward(grad, need_input_grad)
        return None if lazy is None else np.asarray(lazy)

    def seq_backward(self, grad, need_input_grad=True):
        shape, dtype, last = require_forward(self, self._ctx)
        grad = gradient(grad, "grad", (shape[0], shape[2]), dtype)
        self._ctx = None
        return LastStepGradient(grad, last, shape, dtype) if need_input_grad else None

    def output_lengths(self, lengths):
        return None  # no time axis after this layer

    def stream_step(self, x_t, state):
        return x_t, None          # in a stream the current step is the last one


def _module(who: str, layer):
    """A wrapper's layer: a Module (anything else was kept as a plain attribute and failed later)."""
    if not isinstance(layer, Module):
        raise TypeError(f"{who} wraps a layer (a Module), got {type(layer).__name__}")
    return layer


class TimeDistributed(Module):
    """Applies a layer to every time step: (B, T, ...) -> layer on (B*T, ...) -> (B, T, ...)."""

    def __init__(self, layer: Module):
        super().__init__()
        self.layer = _module("TimeDistributed", layer)
        self._shape = None

    def forward(self, x):
        x = np.asarray(x)
        if x.ndim < 3:
            raise ValueError(f"x must have (batch, time, ...) axes, got shape {x.shape}")
        lead = x.shape[:2]
        y = self.layer.forward(x.reshape((lead[0] * lead[1],) + x.shape[2:]))   # (-1 fails on 0-sized arrays)
        y = y.reshape(lead + y.shape[1:])
        self._shape = (lead, y.shape, y.dtype)
        return y

    def backward(self, grad, need_input_grad: bool = True):
        lead, shape, dtype = require_forward(self, self._shape)
        grad = gradient(grad, "grad", shape, dtype)   # (B, T) swapped would pass the inner layer's check
        dx = self.layer.backward(grad.reshape((lead[0] * lead[1],) + grad.shape[2:]), need_input_grad=need_input_grad)
        return None if dx is None else dx.reshape(lead + dx.shape[1:])

    def stream_check(self):
        self.layer.stream_check()

    def stream_step(self, x_t, state):
        return self.layer.stream_step(x_t, state)

    def to_config(self):
        return {"class": "TimeDistributed", "layer": self.layer.to_config()}

    @classmethod
    def from_config(cls, config):
        return cls(Module.build(config["layer"]))


class Residual(Module):
    """y = x + layer(x): a skip connection around a layer (often a recurrent layer in a stack);
    the wrapped layer must keep the shape. Lengths pass through to it."""

    takes_lengths = True

    def __init__(self, layer: Module):
        super().__init__()
        self.layer = _module("Residual", layer)
        self._ctx = None

    def forward(self, x, lengths=None):
        y = self.layer.seq_forward(x, lengths)
        if np.shape(y) != np.shape(x):
            raise ValueError(f"Residual needs a layer that keeps the shape: {np.shape(x)} became {np.shape(y)}")
        self._ctx = (y.shape, y.dtype) if is_grad_enabled() else None
        return np.asarray(x, y.dtype) + y       # the layer's dtype, as its output (float64 x, float32 layer)

    def backward(self, grad, need_input_grad: bool = True):
        shape, dtype = require_forward(self, self._ctx)
        if not isinstance(grad, LastStepGradient):     # the lazy one goes to the layer as it is
            grad = gradient(grad, "grad", shape, dtype)
        elif grad.shape != shape:
            raise ValueError(f"grad must have the forward output's shape {shape}, got {grad.shape}")
        inner = self.layer.seq_backward(grad, need_input_grad)
        if not need_input_grad:
            return None
        return np.asarray(grad) + (0 if inner is None else np.asarray(inner))

    def stream_check(self):
        self.layer.stream_check()

    def stream_step(self, x_t, state):
        y, state = self.layer.stream_step(x_t, state)
        return x_t + y, state

    def seq_forward_state(self, x, state, lengths=None):
        y, state = self.layer.seq_forward_state(x, state, lengths)
        return x + y, state

    def to_config(self):
        return {"class": "Residual", "layer": self.layer.to_config()}

    @classmethod
    def from_config(cls, config):
        return cls(Module.build(config["layer"]))
