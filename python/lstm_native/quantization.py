"""Dynamic int8 quantisation for inference: ``qmodel = ln.quantize_dynamic(model)``.

Linear, LSTM, GRU and RNN layers are replaced by versions holding int8 weights with one float
scale per output row (symmetric: w ~ w_q * scale, w_q in [-127, 127]). Inputs to every
product are quantised at run time, per row, to 7-bit unsigned integers with a zero point
(asymmetric, the range always holding 0); the products accumulate exactly in int32 and are
dequantised to float32, biases added in float. Seven-bit activations are what the AVX2 kernel
multiplies without int16 saturation; every kernel computes the same integers (cpp/qgemm.h).

Recurrent layers quantise the input projection of all time steps in one int8 GEMM and, at
each step, the hidden state before its product with W_hh (as PyTorch's dynamic LSTM does);
the cell math stays float. The quantised model is inference-only: ``backward`` and ``fit``
raise. ``predict``, ``stream``, ``save`` and ``ln.load`` work, and files keep the int8 form.
"""
from __future__ import annotations

import numpy as np

from ._backend import core
from ._checks import float_array, lengths_array, require_finite, require_shape, sequence_batch
from .layers import Linear
from .module import Module
from .recurrent import GRU, LSTM, RNN, RecurrentBase

INFERENCE_ONLY = ("quantised models are inference-only: train the float model, then quantise it again "
                  "with ln.quantize_dynamic")


class QuantizedWeight:
    """A weight matrix (rows, cols) as int8 rows (padded to 32 bytes), row scales and row sums."""

    __slots__ = ("q", "scale", "row_sum", "cols")

    def __init__(self, q, scale, row_sum, cols):
        self.q, self.scale, self.row_sum, self.cols = q, scale, row_sum, int(cols)

    @classmethod
    def from_float(cls, w):
        q, scale, row_sum = core.quantize_weights(np.ascontiguousarray(w, dtype=np.float32))
        return cls(q, scale, row_sum, w.shape[1])

    def dequantized(self) -> np.ndarray:
        return self.q[:, :self.cols].astype(np.float32) * self.scale[:, None]

    def apply(self, x, bias=None, out=None):
        """x (m, cols) float32 -> x W^T + bias (m, rows), x quantised per row; written into
        ``out`` (float32 (m, rows)) when given."""
        return core.quantized_linear(x, self.q, self.scale, self.row_sum, bias, self.cols, out)

    def arrays(self, prefix):
        """What a file holds: the int8 rows without their padding, and the scales."""
        return {prefix + "_q": self.q[:, :self.cols], prefix + "_scale": self.scale}

    @classmethod
    def from_arrays(cls, arrays, prefix, cols):
        stored = np.asarray(arrays[prefix + "_q"])
        if stored.dtype != np.int8 or stored.ndim != 2 or stored.shape[1] != cols:
            raise ValueError(f"{prefix}_q must be int8 of shape (rows, {cols}), got {stored.dtype} {stored.shape}")
        q = np.zeros((stored.shape[0], -(-cols // 32) * 32), np.int8)   # padded rows, as the kernel reads them
        q[:, :cols] = stored
        return cls(q, np.ascontiguousarray(arrays[prefix + "_scale"], np.float32),
                   q.astype(np.int32).sum(axis=1, dtype=np.int32), cols)


class _Quantized(Module):
    """What the quantised layers share: no parameters, int8 buffers, no backward."""

    inference_only = INFERENCE_ONLY    # what fit says when asked to train one

    def backward(self, *args, **kwargs):
        raise RuntimeError(INFERENCE_ONLY)

    def seq_backward(self, grad, need_input_grad=True):
        raise RuntimeError(INFERENCE_ONLY)


class QuantizedLinear(_Quantized):
    """Linear with int8 weights; y = x W^T + b over the last axis of x."""

    stream_pointwise = True

    def __init__(self, in_features: int, out_features: int, bias: bool = True):
        super().__init__()
        self.in_features, self.out_features = int(in_features), int(out_features)
        cols = self.in_features
        self.weight = QuantizedWeight.from_float(np.zeros((out_features, cols), np.float32))
        self.bias = np.zeros(out_features, np.float32) if bias else None

    @classmethod
    def from_float(cls, linear: Linear) -> "QuantizedLinear":
        q = cls(linear.in_features, linear.out_features, linear.bias is not None)
        q.weight = QuantizedWeight.from_float(linear.weight.data)
        if linear.bias is not None:
            q.bias = linear.bias.data.astype(np.float32).copy()
        return q

    def forward(self, x):
        x = float_array(x, "x", np.float32)
        if x.ndim == 0 or x.shape[-1] != self.in_features:
            raise ValueError(f"x must have {self.in_features} features in its last axis, got shape {x.shape}")
        y = self.weight.apply(x.reshape(-1, self.in_features), self.bias)
        return y.reshape(x.shape[:-1] + (self.out_features,))

    def buffers(self):
        out = self.weight.arrays("weight")
        if self.bias is not None:
            out["bias"] = self.bias
        return out

    def load_buffers(self, arrays):
        self.weight = QuantizedWeight.from_arrays(arrays, "weight", self.in_features)
        if self.bias is not None:
            self.bias = np.ascontiguousarray(arrays["bias"], np.float32)

    def get_config(self):
        return dict(in_features=self.in_features, out_features=self.out_features, bias=self.bias is not None)


_GATES = {"lstm": 4, "gru": 3, "rnn_tanh": 1, "rnn_relu": 1}


class QuantizedRecurrent(_Quantized):
    """An LSTM, GRU or RNN stack with int8 weights: same call signature, outputs and states as
    the float layer (``out, (h_n, c_n) = qlstm(x, hx, lengths)``; GRU and RNN ``out, h_n``)."""

    def __init__(self, cell: str, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, bidirectional: bool = False):
        super().__init__()
        if cell not in _GATES:
            raise ValueError(f"cell must be one of {', '.join(map(repr, _GATES))}, got {cell!r}")
        self.cell, self.input_size, self.hidden_size = cell, int(input_size), int(hidden_size)
        self.num_layers, self.bias, self.batch_first = int(num_layers), bool(bias), bool(batch_first)
        self.bidirectional = bool(bidirectional)
        self.has_cell_state = cell == "lstm"
        self._spare_gx = []     # the input projection's buffer between calls (see _direction)
        G, H = _GATES[cell], self.hidden_size
        self.weights = {}
        for layer in range(self.num_layers):
            cols = self.input_size if layer == 0 else H * self.num_directions
            for suffix in self._suffixes(layer):
                self.weights["weight_ih" + suffix] = QuantizedWeight.from_float(np.zeros((G * H, cols), np.float32))
                self.weights["weight_hh" + suffix] = QuantizedWeight.from_float(np.zeros((G * H, H), np.float32))
                if self.bias:
                    self.weights["bias_ih" + suffix] = np.zeros(G * H, np.float32)
                    self.weights["bias_hh" + suffix] = np.zeros(G * H, np.float32)

    num_directions = property(lambda self: 2 if self.bidirectional else 1)
    _suffixes = RecurrentBase._suffixes

    @classmethod
    def from_float(cls, rnn: RecurrentBase) -> "QuantizedRecurrent":
        q = cls(rnn.cell, rnn.input_size, rnn.hidden_size, rnn.num_layers, rnn.bias, rnn.batch_first,
                rnn.bidirectional)
        for name, p in rnn.named_parameters():
            q.weights[name] = (QuantizedWeight.from_float(p.data) if name.startswith("weight")
                               else p.data.astype(np.float32).copy())
        return q

    def _direction(self, x, suffix, reverse, h, c, lengths):
        """One direction of one layer over x (T, B, I), or (B, T, I) when batch_first; h, c
        updated in place."""
        w_ih, w_hh = self.weights["weight_ih" + suffix], self.weights["weight_hh" + suffix]
        b_ih, b_hh = self.weights.get("bias_ih" + suffix), self.weights.get("bias_hh" + suffix)
        # The input projection of every step (one int8 GEMM) goes into a buffer kept from the
        # last call: a fresh one (105 MB at B128 T50 H1024) costs its page faults every call
        # (~10 ms), as the float layers' workspace does not. Taken out while in use, so that
        # calls from two threads never share it.
        rows, cols = x.shape[0] * x.shape[1], w_ih.q.shape[0]
        try:
            gx = self._spare_gx.pop()          # (list.pop is atomic)
        except IndexError:
            gx = None
        if gx is None or gx.shape != (rows, cols):
            gx = np.empty((rows, cols), np.float32)
        try:
            w_ih.apply(x.reshape(rows, -1), b_ih, out=gx)
            # the step loop (quantise h, int8 W_hh product, cell) is one C++ call
            return core.quantized_recurrent(self.cell, gx.reshape(x.shape[:2] + (-1,)), w_hh.q, w_hh.scale,
                                            w_hh.row_sum, b_hh, h, c, lengths, reverse, self.batch_first)
        finally:
            self._spare_gx[:] = [gx]

    def forward(self, x, hx=None, lengths=None):
        x = np.ascontiguousarray(sequence_batch(x, "x", self.input_size, np.float32, self.batch_first))
        B, T = x.shape[:2] if self.batch_first else x.shape[1::-1]    # the caller's layout throughout
        lengths = lengths_array(lengths, B, T)
        LD, H = self.num_layers * self.num_directions, self.hidden_size
        h0, c0 = (hx if self.has_cell_state and hx is not None else (hx, None))
        shape = (LD, B, H)
        h_n = np.zeros(shape, np.float32) if h0 is None else float_array(h0, "h0", np.float32).copy()
        require_shape(h_n, "h0", shape, "(num_layers * num_directions, batch, hidden_size)")
        if h0 is not None:     # the int8 step quantises a NaN row into finite garbage: no error, a wrong output
            require_finite(h_n, "h0")
        c_n = None
        if self.has_cell_state:
            c_n = np.zeros(shape, np.float32) if c0 is None else float_array(c0, "c0", np.float32).copy()
            require_shape(c_n, "c0", shape, "(num_layers * num_directions, batch, hidden_size)")
            if c0 is not None:
                require_finite(c_n, "c0")
        for layer in range(self.num_layers):
            outs = []
            for d, suffix in enumerate(self._suffixes(layer)):
                i = layer * self.num_directions + d
                outs.append(self._direction(x, suffix, d == 1, h_n[i], None if c_n is None else c_n[i], lengths))
            x = outs[0] if len(outs) == 1 else np.concatenate(outs, axis=2)
        out = x
        return (out, (h_n, c_n)) if self.has_cell_state else (out, h_n)

    def seq_forward(self, x, lengths=None):
        return self.forward(x, lengths=lengths)[0]

    def seq_forward_state(self, x, state, lengths=None):
        return self.forward(x, hx=state, lengths=lengths)

    def stream_check(self):
        if self.bidirectional:
            raise TypeError("a bidirectional layer needs the whole sequence, so a model holding it cannot stream")

    def stream_step(self, x_t, state):
        x = float_array(x_t, "x_t", np.float32)
        seq = x[None, :, :] if x.ndim == 2 else x[None, None, :]
        out, new_state = self.forward(seq if not self.batch_first else seq.transpose(1, 0, 2), hx=state)
        y = out[-1] if not self.batch_first else out[:, -1]
        return (y if x.ndim == 2 else y[0]), new_state

    def buffers(self):
        out = {}
        for name, w in self.weights.items():
            out.update(w.arrays(name) if isinstance(w, QuantizedWeight) else {name: w})
        return out

    def load_buffers(self, arrays):
        for name, w in list(self.weights.items()):
            if isinstance(w, QuantizedWeight):
                self.weights[name] = QuantizedWeight.from_arrays(arrays, name, w.cols)
            else:
                self.weights[name] = np.ascontiguousarray(arrays[name], np.float32)

    def get_config(self):
        return dict(cell=self.cell, input_size=self.input_size, hidden_size=self.hidden_size,
                    num_layers=self.num_layers, bias=self.bias, batch_first=self.batch_first,
                    bidirectional=self.bidirectional)


def _quantizable(module) -> bool:
    """The recurrent layers the int8 path runs: torch's LSTM, GRU and RNN cells, without the
    options it does not implement (a projection of h; zoneout, whose evaluation mix the int8 step
    leaves out). The others (layer-normalised cells, the textbook GRU) stay in float."""
    return (type(module) in (LSTM, GRU, RNN) and module.cell in _GATES and not getattr(module, "proj_size", 0)
            and not module.zoneout)


def _quantized(module: Module):
    if isinstance(module, Linear):
        if module.weight.dtype != np.float32:
            raise TypeError("quantize_dynamic takes float32 models; this Linear is " + module.weight.dtype.name)
        return QuantizedLinear.from_float(module)
    if _quantizable(module):
        if module.dtype != np.float32:
            raise TypeError(f"quantize_dynamic takes float32 models; this {type(module).__name__} is "
                            f"{module.dtype.name}")
        return QuantizedRecurrent.from_float(module)
    return None


def quantize_dynamic(model: Module, dtype: str = "int8") -> Module:
    """A new model (the original is untouched) whose Linear, LSTM, GRU and RNN layers, wherever
    they sit, hold int8 weights; everything else is copied as it is (layer-normalised cells, the
    textbook GRU, and LSTMs with proj_size or zoneout stay in float). Inference only."""
    if dtype not in ("int8", np.int8):
        raise ValueError(f"dtype must be 'int8' (the only quantised type), got {dtype!r}")
    if not isinstance(model, Module):
        raise TypeError(f"quantize_dynamic takes an lstm_native Module, got {type(model).__name__}")
    clone = Module.build(model.to_config())                 # same architecture, then the same weights
    clone.load_state_dict(model.state_dict())
    clone.eval()
    replaced = _quantized(clone)
    if replaced is not None:
        return replaced

    def swap(parent):
        for name, child in list(parent._modules.items()):
            q = _quantized(child)
            if q is not None:           # in place, keeping the children's order
                setattr(parent, name, q)
            else:
                swap(child)

    swap(clone)
    return clone
