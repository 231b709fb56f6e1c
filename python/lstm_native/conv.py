"""Convolution and pooling over time for batch-first sequences (B, T, C): the front end of
the textbook's CNN-LSTM. ``Conv1d`` runs forward and backward in C++ (cpp/kernels/conv1d.h:
one GEMM over all positions); ``MaxPool1d`` is NumPy. Both shrink ``lengths`` as the
convolution arithmetic says, so a Sequential(Conv1d, ReLU, LSTM, ...) trains on padded
variable-length batches with the same results as on each sequence alone.
"""
from __future__ import annotations

import math

import numpy as np

from . import seeding
from ._backend import core
from ._checks import (float_array, float_dtype, float_input, gradient, lengths_array, positive_int, require_forward,
                      shape_text)
from ._grad_mode import is_grad_enabled
from .module import Module, Parameter


def _non_negative(name, value):
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{name} must be an integer >= 0, got {value!r}")
    return int(value)


def conv_output_length(length, kernel_size, stride=1, padding=0, dilation=1):
    """torch's output length: floor((L + 2p - d(k-1) - 1) / s) + 1 (works on arrays)."""
    return (np.asarray(length) + 2 * padding - dilation * (kernel_size - 1) - 1) // stride + 1


def _check_sequences(module, x, channels):
    if x.ndim != 3:
        raise ValueError(f"{type(module).__name__}: x must be 3-D (batch, time, channels), got shape {x.shape}")
    if x.shape[2] != channels:
        raise ValueError(f"{type(module).__name__}: x must have {channels} in_channels in its last axis, "
                         f"got shape {x.shape}")
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"{type(module).__name__}: x is empty (shape {x.shape})")


def _shrunk_lengths(module, lengths, steps, batch):
    """Lengths after the layer; every sequence must keep at least one step."""
    if lengths is None:
        return None
    lengths = lengths_array(lengths, batch, steps)
    out = module.output_lengths(lengths)
    return out


class Conv1d(Module):
    """``y = conv(x)`` on (B, T, C_in) -> (B, T_out, C_out), as torch.nn.Conv1d on (B, C, T):
    ``weight`` (C_out, C_in, kernel_size) and ``bias`` (C_out,), both ~ U(-1/sqrt(C_in k),
    1/sqrt(C_in k)); T_out = floor((T + 2 padding - dilation (k - 1) - 1) / stride) + 1."""

    takes_lengths = True

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, padding: int = 0,
                 dilation: int = 1, bias: bool = True, seed=None, dtype=np.float32):
        super().__init__()
        self.in_channels = positive_int("in_channels", in_channels)
        self.out_channels = positive_int("out_channels", out_channels)
        self.kernel_size = positive_int("kernel_size", kernel_size)
        self.stride = positive_int("stride", stride)
        self.padding = _non_negative("padding", padding)
        self.dilation = positive_int("dilation", dilation)
        dtype = float_dtype(dtype)
        rng = seeding.generator(seed)
        bound = 1.0 / math.sqrt(in_channels * kernel_size)
        self.weight = Parameter(rng.uniform(-bound, bound, (out_channels, in_channels, kernel_size)).astype(dtype))
        self.bias = Parameter(rng.uniform(-bound, bound, out_channels).astype(dtype)) if bias else None
        self._ctx = None

    def output_lengths(self, lengths):
        if lengths is None:
            return None
        lengths = np.asarray(lengths)
        out = conv_output_length(lengths, self.kernel_size, self.stride, self.padding, self.dilation)
        if out.size and out.min() < 1:
            i = int(np.argmin(out))
            raise ValueError(f"lengths[{i}] = {int(lengths[i])} is too short for Conv1d's kernel "
                             f"(kernel_size {self.kernel_size}, dilation {self.dilation}, padding {self.padding}): "
                             "the sequence would have no output steps")
        return out.astype(np.int64)

    def forward(self, x, lengths=None):
        x = float_array(x, "x", self.weight.dtype)
        _check_sequences(self, x, self.in_channels)
        B, T, _ = x.shape
        if conv_output_length(T, self.kernel_size, self.stride, self.padding, self.dilation) < 1:
            raise ValueError(f"Conv1d: kernel_size {self.kernel_size} (dilation {self.dilation}) is longer than x's "
                             f"padded sequence of {T + 2 * self.padding} steps")
        out_lengths = _shrunk_lengths(self, lengths, T, B)
        inside = None
        if lengths is not None:
            # Steps past a sequence's end must read as zeros (the padding a lone sequence has).
            inside = (np.arange(T)[None, :] < np.asarray(lengths)[:, None])[:, :, None]
            x = np.where(inside, x, 0).astype(x.dtype)
        y = core.conv1d_forward(x, self.weight.array, None if self.bias is None else self.bias.array,
                                self.stride, self.padding, self.dilation)
        if out_lengths is not None:
            y[np.arange(y.shape[1])[None, :] >= out_lengths[:, None]] = 0
        self._ctx = (x, out_lengths, inside, y.shape) if is_grad_enabled() else None
        return y

    def backward(self, grad, need_input_grad: bool = True):
        x, out_lengths, inside, shape = require_forward(self, self._ctx)
        g = float_array(grad, "grad", self.weight.dtype)
        if g.shape != shape:    # before the mask below indexes it (an IndexError otherwise)
            raise ValueError(f"grad must have shape {shape_text(shape)}, got {shape_text(g.shape)}")
        if out_lengths is not None:
            g = g.copy()
            g[np.arange(g.shape[1])[None, :] >= out_lengths[:, None]] = 0   # those outputs were set to 0
        dx = core.conv1d_backward(x, self.weight.array, g, self.stride, self.padding, self.dilation, self.weight.grad,
                                  None if self.bias is None else self.bias.grad, bool(need_input_grad))
        self._ctx = None
        if dx is not None and inside is not None:
            dx *= inside                    # those inputs were replaced by zeros: no gradient
        return dx

    def get_config(self):
        return dict(in_channels=self.in_channels, out_channels=self.out_channels, kernel_size=self.kernel_size,
                    stride=self.stride, padding=self.padding, dilation=self.dilation, bias=self.bias is not None,
                    dtype=self.weight.dtype.name)


class MaxPool1d(Module):
    """Maximum over windows of time on (B, T, C), as torch.nn.MaxPool1d on (B, C, T):
    T_out = floor((T + 2 padding - kernel_size) / stride) + 1, stride defaulting to kernel_size;
    padded steps (and steps past a sequence's length) never win."""

    takes_lengths = True

    def __init__(self, kernel_size: int, stride=None, padding: int = 0):
        super().__init__()
        self.kernel_size = positive_int("kernel_size", kernel_size)
        self.stride = self.kernel_size if stride is None else positive_int("stride", stride)
        self.padding = _non_negative("padding", padding)
        if self.padding > self.kernel_size // 2:
            raise ValueError(f"padding must be at most half of kernel_size ({self.kernel_size // 2}), got {padding}")
        self._ctx = None

    def output_lengths(self, lengths):
        if lengths is None:
            return None
        lengths = np.asarray(lengths)
        out = conv_output_length(lengths, self.kernel_size, self.stride, self.padding)
        if out.size and out.min() < 1:
            i = int(np.argmin(out))
            raise ValueError(f"lengths[{i}] = {int(lengths[i])} is too short for MaxPool1d's kernel_size "
                             f"{self.kernel_size}")
        return out.astype(np.int64)

    def forward(self, x, lengths=None):
        x = float_input(x, "x")
        if x.ndim != 3:
            raise ValueError(f"MaxPool1d: x must be 3-D (batch, time, channels), got shape {x.shape}")
        B, T, C = x.shape
        T_out = int(conv_output_length(T, self.kernel_size, self.stride, self.padding))
        if T_out < 1:
            raise ValueError(f"MaxPool1d: kernel_size {self.kernel_size} is longer than x's padded sequence "
                             f"of {T + 2 * self.padding} steps")
        if T == 0:     # a window of padding alone gave -inf, and its gradient went to index -1
            raise ValueError(f"MaxPool1d: x has no time steps (shape {x.shape})")
        out_lengths = _shrunk_lengths(self, lengths, T, B)
        if out_lengths is not None and B and np.min(lengths_array(lengths, B, T)) < 1:
            i = int(np.argmin(lengths_array(lengths, B, T)))
            raise ValueError(f"lengths[{i}] = 0: MaxPool1d needs a step in every sequence (an empty one "
                             "pools padding alone, -inf)")
        padded = np.full((B, T + 2 * self.padding, C), -np.inf, dtype=x.dtype)
        padded[:, self.padding:self.padding + T] = x
        if lengths is not None:
            beyond = np.arange(T + 2 * self.padding)[None, :] >= (np.asarray(lengths) + self.padding)[:, None]
            padded[beyond] = -np.inf
        index = np.arange(T_out)[:, None] * self.stride + np.arange(self.kernel_size)[None, :]   # (T_out, k)
        windows = padded[:, index]                                                              # (B, T_out, k, C)
        arg = windows.argmax(axis=2)                                                            # (B, T_out, C)
        y = np.take_along_axis(windows, arg[:, :, None, :], axis=2)[:, :, 0]
        if out_lengths is not None:
            y[np.arange(T_out)[None, :] >= out_lengths[:, None]] = 0
        source = index[np.arange(T_out)[None, :, None], arg] - self.padding                     # input step won
        self._ctx = (x.shape, x.dtype, source, out_lengths) if is_grad_enabled() else None
        return y

    def backward(self, grad, need_input_grad: bool = True):
        shape, dtype, source, out_lengths = require_forward(self, self._ctx)
        B, T_out, C = source.shape
        g = gradient(grad, "grad", (B, T_out, C), dtype)
        self._ctx = None
        if not need_input_grad:
            return None
        if out_lengths is not None:
            g = np.where((np.arange(T_out)[None, :] < out_lengths[:, None])[:, :, None], g, 0)
        dx = np.zeros(shape, dtype)
        b = np.broadcast_to(np.arange(B)[:, None, None], source.shape)
        c = np.broadcast_to(np.arange(C)[None, None, :], source.shape)
        np.add.at(dx, (b, source, c), g)     # overlapping windows may pick the same step
        return dx

    def get_config(self):
        return dict(kernel_size=self.kernel_size, stride=self.stride, padding=self.padding)
