"""ONNX export without PyTorch: ``ln.onnx.export(model, "model.onnx")`` (extra ``[onnx]``).

The graph is written with onnx's own helper API from the weights we hold, so that the runtimes
people serve with (onnxruntime, and others that read ONNX) run our models:

    input    "input"   float32 (batch, time, features), or int64 ids (batch, time) when the
                       model starts with an Embedding
    lengths  "lengths" int64 (batch,) with ``lengths=True``: fed to every recurrent node's
                       sequence_lens and to every mask (attention, convolution, last step)
    output   "output"  what ``model.predict(x, lengths)`` returns
    batch and time are dynamic axes.

``step=True`` writes one step of ``model.stream()`` instead: "input" (batch, features),
the carried states as inputs "state_in_<k>" and outputs "state_out_<k>" (an LSTM holds two,
h then c, each (num_layers, batch, hidden), h proj_size wide with proj_size; a GRU one),
numbered in the model's layer order;
a server starts them at zeros and feeds each step's state_out back as the next state_in.

Float LSTM, GRU and RNN layers become ONNX LSTM / GRU / RNN nodes (layout 0, transposes around
them, gate blocks permuted once here: LSTM i, o, f, c; GRU z, r, h with linear_before_reset=1,
or 0 for the textbook GRU (reset_after=False); RNN with its Tanh or Relu activation). An LSTM
with proj_size, which ONNX's LSTM node cannot express, runs as a Scan over the steps.
Models from ``ln.quantize_dynamic`` keep their int8 weights: every product quantises its input
per row exactly as our kernels do (7 bits, written out in standard ops) and runs as
MatMulInteger; the int8 recurrence is a Scan over the steps.

The model is exported in eval mode (Dropout is the identity). Each layer type has one small
function in a dispatch table (``register``), so new layers add one function each.
"""
from __future__ import annotations

import os
import tempfile
from collections import namedtuple

import numpy as np

from .attention import Attention
from .conv import Conv1d, MaxPool1d
from .layers import (Dropout, Embedding, LastTimestep, LayerNorm, Linear, ReLU, Residual, Sigmoid, Tanh,
                     TimeDistributed)
from .module import Module
from .multihead_attention import MultiheadAttention
from .quantization import QuantizedLinear, QuantizedRecurrent
from .recurrent import GRU, LSTM, RNN
from .sequential import Sequential

DEFAULT_OPSET = 17          # the lowest opset with LayerNormalization; onnxruntime >= 1.14 runs it
MIN_OPSET = 17

__all__ = ["export", "build", "register", "DEFAULT_OPSET"]

# A tensor of the graph being built: its name, shape (ints, dim names, None for unknown) and
# element type ("float" or "int64").
Value = namedtuple("Value", "name shape dtype")


def _require_onnx():
    try:
        import onnx
    except ImportError:
        raise ImportError("ln.onnx needs the onnx package: pip install 'lstm_native[onnx]'") from None
    return onnx


# -- the graph builder ---------------------------------------------------------------------------
class _Graph:
    """Nodes of one graph (the model's, or a Scan body sharing the model's initializers and names)."""

    def __init__(self, onnx, root=None):
        self.onnx, self.nodes = onnx, []
        self.root = root or self
        if root is None:
            self.initializers, self.used, self.consts, self.scope, self.opset = [], set(), {}, "", 0

    def fresh(self, hint: str) -> str:
        root = self.root
        base = f"{root.scope}/{hint}" if root.scope else hint
        name, k = base, 1
        while name in root.used:
            name, k = f"{base}_{k}", k + 1
        root.used.add(name)
        return name

    def const(self, array, hint: str = "const", share: bool = False) -> str:
        """An initializer; shared constants (shapes, axes, scalars) are written once."""
        array = np.asarray(array)
        if not array.flags.c_contiguous:
            array = array.copy(order="C")       # (np.ascontiguousarray would make a scalar 1-D)
        root = self.root
        key = None
        if share:
            key = (array.dtype.str, array.shape, array.tobytes())
            if key in root.consts:
                return root.consts[key]
        if key is None:
            name = self.fresh(hint)
        else:                                   # shared: one unscoped name
            scope, root.scope = root.scope, ""
            try:
                name = self.fresh("const")
            finally:
                root.scope = scope
        root.initializers.append(self.onnx.numpy_helper.from_array(array, name))
        if key is not None:
            root.consts[key] = name
        return name

    def int64(self, values) -> str:
        return self.const(np.asarray(values, np.int64), share=True)

    def float(self, value) -> str:
        return self.const(np.asarray(value, np.float32), share=True)

    def op(self, op_type: str, inputs, outputs=1, hint=None, **attrs):
        """Adds a node; returns its output name (or the list of them when outputs > 1).
        ``outputs`` may also be the list of names to give the outputs."""
        if isinstance(outputs, int):
            outputs = [self.fresh(hint or op_type) for _ in range(outputs)]
        inputs = list(inputs)
        while inputs and inputs[-1] == "":          # absent optional inputs at the end
            inputs.pop()
        self.nodes.append(self.onnx.helper.make_node(op_type, list(inputs), list(outputs), **attrs))
        return outputs[0] if len(outputs) == 1 else outputs

    def shape(self, x: str, start: int, end: int) -> str:
        return self.op("Shape", [x], start=start, end=end)


class _Export:
    """What one export carries from layer to layer: the graph, the mode and the states."""

    def __init__(self, graph: _Graph, step: bool):
        self.g, self.step = graph, step
        self.states = []            # step mode: (state_in Value, state_out name) in order
        self._masks = {}

    def lengths_int32(self, lengths):
        """sequence_lens for a recurrent node ("" when there are no lengths)."""
        if lengths is None:
            return ""
        key = ("int32", lengths)
        if key not in self._masks:
            self._masks[key] = self.g.op("Cast", [lengths], to=self.g.onnx.TensorProto.INT32, hint="seq_lens")
        return self._masks[key]

    def mask(self, lengths: str, x: str) -> str:
        """(batch, time) bool, True where t < lengths[b]; time is x's axis 1."""
        key = ("mask", lengths)
        if key not in self._masks:
            g = self.g
            steps = g.op("Squeeze", [g.shape(x, 1, 2), g.int64([0])])
            t = g.op("Range", [g.int64(0), steps, g.int64(1)])
            col = g.op("Unsqueeze", [lengths, g.int64([1])])
            self._masks[key] = g.op("Less", [g.op("Unsqueeze", [t, g.int64([0])]), col], hint="mask")
        return self._masks[key]

    def mask3(self, lengths: str, x: str) -> str:
        """(batch, time, 1) bool, for masking features."""
        key = ("mask3", lengths)
        if key not in self._masks:
            self._masks[key] = self.g.op("Unsqueeze", [self.mask(lengths, x), self.g.int64([2])])
        return self._masks[key]

    def new_state(self, shape) -> tuple:
        """Step mode: a carried state's input Value and the name its output must take."""
        k = len(self.states)
        state = Value(f"state_in_{k}", tuple(shape), "float")
        self.states.append((state, f"state_out_{k}"))
        return state, f"state_out_{k}"


# -- dispatch --------------------------------------------------------------------------------------
_EXPORTERS = {}         # exact module class -> (function, config keys it understands)


def register(*classes, options=None):
    """Decorator: ``fn(ex, module, x, lengths, path) -> (Value, lengths)`` writes one layer type.
    ``options`` names the config keys the function handles (default: all the class has now);
    any other key a later version adds must keep its default (0, False, None) to export."""
    def decorator(fn):
        for cls in classes:
            _EXPORTERS[cls] = (fn, None if options is None else frozenset(options))
        return fn
    return decorator


def _where(path: str) -> str:
    return f"layer {path}" if path else "the model"


def _emit(ex: _Export, m: Module, x: Value, lengths, path: str):
    entry = _EXPORTERS.get(type(m))
    if entry is None:
        supported = ", ".join(sorted({c.__name__ for c in _EXPORTERS}))
        raise TypeError(f"ln.onnx.export: {_where(path)} is a {type(m).__name__}, which has no ONNX export "
                        f"(supported: {supported})")
    fn, options = entry
    if options is not None:
        for key, value in m.get_config().items():
            if key not in options and value not in (0, False, None):
                raise ValueError(f"ln.onnx.export: {_where(path)} ({type(m).__name__}) has {key}={value!r}, "
                                 "which the ONNX export does not write (it would change the served output)")
    g = ex.g.root
    scope, g.scope = g.scope, path
    try:
        return fn(ex, m, x, lengths, path)
    finally:
        g.scope = scope


def _features(x: Value, expected: int, m, path: str):
    if x.dtype != "float":
        raise TypeError(f"ln.onnx.export: {_where(path)} ({type(m).__name__}) needs float input, but gets "
                        "integer ids (only an Embedding takes ids, as the first layer)")
    if isinstance(x.shape[-1], int) and x.shape[-1] != expected:
        raise ValueError(f"ln.onnx.export: {_where(path)} ({type(m).__name__}) expects {expected} features, "
                         f"the layer before gives {x.shape[-1]}")


def _sequence(ex: _Export, x: Value, m, path: str):
    if ex.step:
        raise TypeError(f"ln.onnx.export(step=True): {_where(path)} ({type(m).__name__}) needs the whole "
                        "sequence, so it cannot run one step at a time")
    if len(x.shape) != 3:
        raise ValueError(f"ln.onnx.export: {_where(path)} ({type(m).__name__}) needs (batch, time, features), "
                         f"gets a tensor of rank {len(x.shape)}")


def _f32(a) -> np.ndarray:
    return np.ascontiguousarray(a, np.float32)


# -- containers ---------------------------------------------------------------------------------------
@register(Sequential)
def _sequential(ex, m, x, lengths, path):
    for name, layer in m._modules.items():
        x, lengths = _emit(ex, layer, x, lengths, f"{path}.{name}" if path else name)
    return x, lengths


@register(Residual)
def _residual(ex, m, x, lengths, path):
    y, _ = _emit(ex, m.layer, x, lengths, f"{path}.layer" if path else "layer")
    if y.shape[-1] != x.shape[-1] or len(y.shape) != len(x.shape):
        raise ValueError(f"ln.onnx.export: {_where(path)} (Residual) wraps a layer that changes the shape")
    return Value(ex.g.op("Add", [x.name, y.name]), x.shape, x.dtype), lengths


@register(TimeDistributed)
def _time_distributed(ex, m, x, lengths, path):
    inner = f"{path}.layer" if path else "layer"
    if ex.step:                                  # a step is already (batch, ...)
        return _emit(ex, m.layer, x, None, inner)[0], lengths
    g = ex.g
    rest = x.shape[2:]
    if any(not isinstance(d, int) for d in rest):
        raise ValueError(f"ln.onnx.export: {_where(path)} (TimeDistributed) needs static feature sizes")
    rows = Value(g.op("Reshape", [x.name, g.int64([-1] + list(rest))]), (None,) + rest, x.dtype)
    y, _ = _emit(ex, m.layer, rows, None, inner)
    if any(not isinstance(d, int) for d in y.shape[1:]):
        raise ValueError(f"ln.onnx.export: {_where(path)} (TimeDistributed) needs static feature sizes")
    shape = g.op("Concat", [g.shape(x.name, 0, 2), g.int64(list(y.shape[1:]))], axis=0)
    return Value(g.op("Reshape", [y.name, shape]), x.shape[:2] + y.shape[1:], y.dtype), lengths


# -- feed-forward layers ---------------------------------------------------------------------------------
@register(Dropout)
def _identity(ex, m, x, lengths, path):
    return x, lengths


@register(ReLU, Tanh, Sigmoid)
def _activation(ex, m, x, lengths, path):
    _features(x, x.shape[-1], m, path)
    op = {ReLU: "Relu", Tanh: "Tanh", Sigmoid: "Sigmoid"}[type(m)]
    return Value(ex.g.op(op, [x.name]), x.shape, x.dtype), lengths


def _linear(g: _Graph, x: str, weight, bias) -> str:
    y = g.op("MatMul", [x, g.const(_f32(weight.T), "weight_t")])
    return y if bias is None else g.op("Add", [y, g.const(_f32(bias), "bias")])


@register(Linear)
def _linear_layer(ex, m, x, lengths, path):
    _features(x, m.in_features, m, path)
    y = _linear(ex.g, x.name, m.weight.data, None if m.bias is None else m.bias.data)
    return Value(y, x.shape[:-1] + (m.out_features,), "float"), lengths


@register(Embedding)
def _embedding(ex, m, x, lengths, path):
    if x.dtype != "int64":
        raise TypeError(f"ln.onnx.export: {_where(path)} (Embedding) takes integer ids, so it must be the "
                        "model's first layer")
    y = ex.g.op("Gather", [ex.g.const(_f32(m.weight.data), "weight"), x.name], axis=0)
    return Value(y, x.shape + (m.embedding_dim,), "float"), lengths


@register(LayerNorm)
def _layer_norm(ex, m, x, lengths, path):
    _features(x, m.normalized_shape, m, path)
    g, n = ex.g, m.normalized_shape
    scale = np.ones(n, np.float32) if m.weight is None else m.weight.data
    shift = np.zeros(n, np.float32) if m.bias is None else m.bias.data
    y = g.op("LayerNormalization", [x.name, g.const(_f32(scale), "weight"), g.const(_f32(shift), "bias")],
             axis=-1, epsilon=m.eps)
    return Value(y, x.shape, "float"), lengths


@register(LastTimestep)
def _last_timestep(ex, m, x, lengths, path):
    if ex.step:
        return x, None                  # in a stream the current step is the last one
    _sequence(ex, x, m, path)
    g = ex.g
    if lengths is None:
        y = g.op("Gather", [x.name, g.int64(-1)], axis=1)
    else:
        last = g.op("Reshape", [g.op("Sub", [lengths, g.int64(1)]), g.int64([-1, 1, 1])])
        index = g.op("Expand", [last, g.op("Concat", [g.int64([1, 1]), g.shape(x.name, 2, 3)], axis=0)])
        y = g.op("Squeeze", [g.op("GatherElements", [x.name, index], axis=1), g.int64([1])])
    return Value(y, (x.shape[0], x.shape[2]), x.dtype), None


# -- convolution and pooling over time ----------------------------------------------------------------
def _shrink(g: _Graph, lengths: str, kernel_span: int, stride: int, padding: int) -> str:
    """Lengths after a window: (L + 2p - span) // s + 1 (lengths >= span, so truncation is floor)."""
    n = g.op("Add", [lengths, g.int64(2 * padding - kernel_span)])
    return g.op("Add", [g.op("Div", [n, g.int64(stride)]), g.int64(1)], hint="lengths")


def _over_time(ex, x: Value, lengths, fill: float, op: str, inputs, out_features: int, span: int, stride: int,
               padding: int, **attrs):
    """A Conv or MaxPool on (B, T, C): steps past each length read as ``fill``, outputs past
    the shrunk lengths are zero (as our layers do)."""
    g = ex.g
    name = x.name
    if lengths is not None:
        name = g.op("Where", [ex.mask3(lengths, x.name), name, g.float(fill)])
    channels_first = g.op("Transpose", [name], perm=[0, 2, 1])
    y = g.op("Transpose", [g.op(op, [channels_first] + inputs, **attrs)], perm=[0, 2, 1])
    new_lengths = None
    if lengths is not None:
        new_lengths = _shrink(g, lengths, span, stride, padding)
        y = g.op("Where", [ex.mask3(new_lengths, y), y, g.float(0.0)])
    return Value(y, (x.shape[0], None, out_features), "float"), new_lengths


@register(Conv1d)
def _conv1d(ex, m, x, lengths, path):
    _sequence(ex, x, m, path)
    _features(x, m.in_channels, m, path)
    inputs = [ex.g.const(_f32(m.weight.data), "weight")]
    if m.bias is not None:
        inputs.append(ex.g.const(_f32(m.bias.data), "bias"))
    return _over_time(ex, x, lengths, 0.0, "Conv", inputs, m.out_channels, m.dilation * (m.kernel_size - 1) + 1,
                      m.stride, m.padding, kernel_shape=[m.kernel_size], strides=[m.stride],
                      pads=[m.padding, m.padding], dilations=[m.dilation])


@register(MaxPool1d)
def _max_pool1d(ex, m, x, lengths, path):
    _sequence(ex, x, m, path)
    _features(x, x.shape[-1], m, path)
    return _over_time(ex, x, lengths, -np.inf, "MaxPool", [], x.shape[-1], m.kernel_size, m.stride, m.padding,
                      kernel_shape=[m.kernel_size], strides=[m.stride], pads=[m.padding, m.padding])


# -- attention ----------------------------------------------------------------------------------------------
@register(Attention)
def _attention(ex, m, x, lengths, path):
    _sequence(ex, x, m, path)
    _features(x, m.hidden_size, m, path)
    if m.query_size is not None:
        raise ValueError(f"ln.onnx.export: {_where(path)} (Attention) was built with query_size, so it needs "
                         "a query; in a Sequential it has none")
    g = ex.g
    energy = g.op("Tanh", [_linear(g, x.name, m.W_h.data, m.bias.data)])             # (B, T, A)
    scores = g.op("MatMul", [energy, g.const(_f32(m.v.data[:, None]), "v")])          # (B, T, 1)
    if lengths is not None:
        scores = g.op("Where", [ex.mask3(lengths, x.name), scores, g.float(-np.inf)])
    alpha = g.op("Transpose", [g.op("Softmax", [scores], axis=1)], perm=[0, 2, 1])  # (B, 1, T)
    context = g.op("Squeeze", [g.op("MatMul", [alpha, x.name]), g.int64([1])])       # (B, H)
    return Value(context, (x.shape[0], m.hidden_size), "float"), None


@register(MultiheadAttention)
def _multihead_attention(ex, m, x, lengths, path):
    _sequence(ex, x, m, path)
    _features(x, m.embed_dim, m, path)
    g, E, heads, d = ex.g, m.embed_dim, m.num_heads, m.head_dim
    qkv = _linear(g, x.name, m.in_proj_weight.data, None if m.in_proj_bias is None else m.in_proj_bias.data)
    q, k, v = g.op("Split", [qkv, g.int64([E, E, E])], outputs=3, axis=2)
    q, k, v = (g.op("Transpose", [g.op("Reshape", [a, g.int64([0, 0, heads, d])])], perm=[0, 2, 1, 3])
               for a in (q, k, v))                                                     # (B, h, T, d)
    scores = g.op("Mul", [g.op("MatMul", [q, g.op("Transpose", [k], perm=[0, 1, 3, 2])]),
                          g.float(1.0 / np.sqrt(d))])                                 # (B, h, T, T)
    if lengths is not None:
        keys = g.op("Unsqueeze", [ex.mask(lengths, x.name), g.int64([1, 2])])         # (B, 1, 1, T)
        scores = g.op("Where", [keys, scores, g.float(-np.inf)])
    context = g.op("MatMul", [g.op("Softmax", [scores], axis=-1), v])
    context = g.op("Reshape", [g.op("Transpose", [context], perm=[0, 2, 1, 3]), g.int64([0, 0, E])])
    y, _ = _emit(ex, m.out_proj, Value(context, x.shape, "float"), None, f"{path}.out_proj" if path else "out_proj")
    if lengths is not None:                                                            # padded rows are zero
        y = Value(g.op("Where", [ex.mask3(lengths, x.name), y.name, g.float(0.0)]), y.shape, y.dtype)
    return y, lengths


# -- recurrent layers -------------------------------------------------------------------------------------
# ONNX's gate order from torch's: LSTM i, f, g, o -> i, o, f, c; GRU r, z, n -> z, r, h.
_ONNX_GATES = {"lstm": (0, 3, 1, 2), "gru": (1, 0, 2), "gru_reset_before": (1, 0, 2), "rnn_tanh": (0,),
               "rnn_relu": (0,)}
_ONNX_OP = {"lstm": "LSTM", "gru": "GRU", "gru_reset_before": "GRU", "rnn_tanh": "RNN", "rnn_relu": "RNN"}
# Options that change nothing in evaluation mode (recurrent_dropout acts in training, forget_bias
# at initialisation) or that the node expresses (reset_after, nonlinearity); proj_size runs as a
# Scan of the step in standard ops. zoneout (its evaluation mix) has no ONNX node attribute and
# refuses to export.
_RECURRENT_OPTIONS = ("input_size", "hidden_size", "num_layers", "bias", "batch_first", "dropout",
                      "bidirectional", "dtype", "recurrent_dropout", "forget_bias", "reset_after", "nonlinearity",
                      "proj_size")


def _check_recurrent(ex, m, x, path):
    if not m.batch_first:
        raise ValueError(f"ln.onnx.export: {_where(path)} ({type(m).__name__}) has batch_first=False; the graph "
                         "takes (batch, time, features), as fit and predict do: build it with batch_first=True")
    if ex.step and m.bidirectional:
        raise TypeError(f"ln.onnx.export(step=True): {_where(path)} ({type(m).__name__}) is bidirectional, so it "
                        "needs the whole sequence")
    if len(x.shape) != (2 if ex.step else 3):
        raise ValueError(f"ln.onnx.export: {_where(path)} ({type(m).__name__}) needs "
                         f"{'(batch, features)' if ex.step else '(batch, time, features)'}, gets rank {len(x.shape)}")
    _features(x, m.input_size, m, path)


def _permuted(a, cell: str, H: int) -> np.ndarray:
    return np.concatenate([a[k * H:(k + 1) * H] for k in _ONNX_GATES[cell]])


def _step_states(ex, m):
    """Step mode: the layer's carried state inputs (h, and c for an LSTM) and their output names;
    h is proj_size wide in an LSTM with proj_size, c hidden_size."""
    widths = [getattr(m, "state_size", m.hidden_size)] + ([m.hidden_size] if m.has_cell_state else [])
    return [ex.new_state((m.num_layers, "batch", width)) for width in widths]


@register(LSTM, GRU, RNN, options=_RECURRENT_OPTIONS)
def _recurrent(ex, m, x, lengths, path):
    _check_recurrent(ex, m, x, path)
    if getattr(m, "proj_size", 0):
        return _projected_lstm(ex, m, x, lengths)
    g, H, D = ex.g, m.hidden_size, m.num_directions
    op = _ONNX_OP[m.cell]
    attrs = dict(hidden_size=H, direction="bidirectional" if D == 2 else "forward", layout=0)
    if op == "GRU":
        attrs["linear_before_reset"] = 1 if m.cell == "gru" else 0
    if op == "RNN":
        attrs["activations"] = ["Tanh" if m.cell == "rnn_tanh" else "Relu"] * D
    seq_lens = ex.lengths_int32(lengths)
    if ex.step:
        X = g.op("Unsqueeze", [x.name, g.int64([0])])                   # (1, B, I)
        states = _step_states(ex, m)
    else:
        X = g.op("Transpose", [x.name], perm=[1, 0, 2])                 # (T, B, I)
    finals = [[] for _ in (states if ex.step else ())]
    for layer in range(m.num_layers):
        W, R, B = [], [], []
        for w_ih, w_hh, b_ih, b_hh in m._layer_params(layer, "data"):
            W.append(_permuted(w_ih, m.cell, H))
            R.append(_permuted(w_hh, m.cell, H))
            if b_ih is not None:
                B.append(np.concatenate([_permuted(b_ih, m.cell, H), _permuted(b_hh, m.cell, H)]))
        inputs = [X, g.const(_f32(np.stack(W)), f"W_l{layer}"), g.const(_f32(np.stack(R)), f"R_l{layer}"),
                  g.const(_f32(np.stack(B)), f"B_l{layer}") if B else "", seq_lens]
        if ex.step:                                                     # initial states: this layer's slice
            for state, _ in states:
                inputs.append(g.op("Slice", [state.name, g.int64([layer]), g.int64([layer + 1]), g.int64([0])]))
            outs = g.op(op, inputs, outputs=1 + len(states), **attrs)   # Y, Y_h[, Y_c]
            for k in range(len(states)):
                finals[k].append(outs[1 + k])
            X = g.op("Squeeze", [outs[0], g.int64([1])])                # (1, B, H)
        else:
            Y = g.op(op, inputs, **attrs)                               # (T, D, B, H)
            if layer < m.num_layers - 1:
                X = g.op("Reshape", [g.op("Transpose", [Y], perm=[0, 2, 1, 3]), g.int64([0, 0, -1])])
    if ex.step:
        for (_, out_name), parts in zip(states, finals):
            if len(parts) == 1:
                g.op("Identity", parts, outputs=[out_name])
            else:
                g.op("Concat", parts, outputs=[out_name], axis=0)
        return Value(g.op("Squeeze", [X, g.int64([0])]), (x.shape[0], H), "float"), None
    y = g.op("Reshape", [g.op("Transpose", [Y], perm=[2, 0, 1, 3]), g.int64([0, 0, D * H])])   # (B, T, D*H)
    return Value(y, x.shape[:2] + (D * H,), "float"), lengths


def _projected_lstm(ex, m, x, lengths):
    """An LSTM with proj_size: ONNX's LSTM node has no projection, so the steps run in a Scan
    (_scan_recurrent) whose body is the core's step in standard ops, gates in torch's order."""
    def products(g, X, layer, suffix):
        w_ih, w_hh, b_ih, b_hh, w_hr = m._layer_params(layer, "data")[suffix.endswith("_reverse")]
        bias = None if b_ih is None else _f32(b_ih) + _f32(b_hh)      # both biases added once, outside the loop
        gx = _linear(g, X, w_ih, bias)
        return gx, (lambda body, h: _linear(body, h, w_hh, None)), (lambda body, h: _linear(body, h, w_hr, None))

    return _scan_recurrent(ex, m, x, lengths, m.proj_size, products)


# -- int8 layers (ln.quantize_dynamic): our quantisation written out, MatMulInteger ---------------
def _quantize_rows(g: _Graph, x: str):
    """x (..., k) float -> (x_q uint8, scale, zero int32), per row (last axis), exactly as the
    core's quantize_activations: the range holding 0, 7 bits (x_q in [0, 127]), round half to
    even; a constant-zero row gets scale 1. The same IEEE operations, so the same integers."""
    reduce = {} if g.root.opset >= 18 else {"axes": [-1]}
    extra = [g.int64([-1])] if g.root.opset >= 18 else []
    zero, top = g.float(0.0), g.float(127.0)
    lo = g.op("Min", [g.op("ReduceMin", [x] + extra, keepdims=1, **reduce), zero])
    hi = g.op("Max", [g.op("ReduceMax", [x] + extra, keepdims=1, **reduce), zero])
    scale = g.op("Where", [g.op("Greater", [hi, lo]), g.op("Div", [g.op("Sub", [hi, lo]), top]), g.float(1.0)])
    point = g.op("Clip", [g.op("Round", [g.op("Div", [g.op("Neg", [lo]), scale])]), zero, top])
    inv = g.op("Div", [g.float(1.0), scale])
    q = g.op("Clip", [g.op("Add", [g.op("Round", [g.op("Mul", [x, inv])]), point]), zero, top])
    INT32, UINT8 = g.onnx.TensorProto.INT32, g.onnx.TensorProto.UINT8
    return g.op("Cast", [q], to=UINT8), scale, g.op("Cast", [point], to=INT32)


def _qmatmul(g: _Graph, x: str, weight, bias=None) -> str:
    """x (..., cols) float -> x W^T (+ bias) from W's int8 rows and row scales, as the core's
    gemm_dequantize: scale_x w_scale (x_q . w_q - zero_x sum(w_q)) + bias, the product in int32."""
    xq, x_scale, x_zero = _quantize_rows(g, x)
    root = g.root
    w_t = root.const(np.ascontiguousarray(weight.q[:, :weight.cols].T), "weight_q")     # int8 (cols, rows)
    acc = g.op("MatMulInteger", [xq, w_t])
    # sum(w_q) per row from the weights themselves (in the main graph, folded once at load): the
    # file holds int8 and the row scales only
    row_sum = root.op("ReduceSum", [root.op("Cast", [w_t], to=g.onnx.TensorProto.INT32), root.int64([0])],
                      keepdims=0)
    exact = g.op("Sub", [acc, g.op("Mul", [x_zero, row_sum])])
    scale = g.op("Mul", [x_scale, g.const(_f32(weight.scale), "weight_scale")])
    y = g.op("Mul", [g.op("Cast", [exact], to=g.onnx.TensorProto.FLOAT), scale])
    return y if bias is None else g.op("Add", [y, g.const(_f32(bias), "bias")])


@register(QuantizedLinear)
def _quantized_linear(ex, m, x, lengths, path):
    _features(x, m.in_features, m, path)
    return Value(_qmatmul(ex.g, x.name, m.weight, m.bias), x.shape[:-1] + (m.out_features,), "float"), lengths


def _cell_body(g: _Graph, cell: str, H: int, recurrent, masked: bool, project=None, S=None):
    """The Scan body of one recurrent direction (the int8 layers, the LSTM with proj_size):
    states (h[, c]) and this step's input projection gx (and mask) in; new states and the
    step's output out. ``recurrent(body, h)`` is h's product with W_hh (+ b_hh);
    ``project(body, h)`` is h W_hr^T, which makes h and the output S wide (c stays H)."""
    helper, FLOAT, BOOL = g.onnx.helper, g.onnx.TensorProto.FLOAT, g.onnx.TensorProto.BOOL
    body = _Graph(g.onnx, root=g.root)
    G, S = {"lstm": 4, "gru": 3}.get(cell, 1), S or H
    h, gx = body.fresh("h"), body.fresh("gx")
    c = body.fresh("c") if cell == "lstm" else None
    m = body.fresh("m") if masked else None
    gh = recurrent(body, h)                                             # (B, G*H)
    pre = body.op("Split", [body.op("Add", [gx, gh]), body.int64([H] * G)], outputs=G, axis=1) if G > 1 \
        else [body.op("Add", [gx, gh])]
    if cell in ("rnn_tanh", "rnn_relu"):        # h = act(x W_ih^T + b_ih + h W_hh^T + b_hh)
        h_new, c_new = body.op("Tanh" if cell == "rnn_tanh" else "Relu", [pre[0]]), None
    elif cell == "lstm":                          # the core's order: c = s(f) c + s(i) tanh(g); h = s(o) tanh(c)
        i, f, gg, o = pre
        c_new = body.op("Add", [body.op("Mul", [body.op("Sigmoid", [f]), c]),
                                body.op("Mul", [body.op("Sigmoid", [i]), body.op("Tanh", [gg])])])
        h_new = body.op("Mul", [body.op("Sigmoid", [o]), body.op("Tanh", [c_new])])
        if project is not None:                   # torch's proj_size: h = (s(o) tanh(c)) W_hr^T
            h_new = project(body, h_new)
    else:                                       # torch's GRU, reset after the product: n = tanh(x_n + r hn)
        xn = body.op("Split", [gx, body.int64([2 * H, H])], outputs=2, axis=1)[1]
        hn = body.op("Split", [gh, body.int64([2 * H, H])], outputs=2, axis=1)[1]
        r, z = body.op("Sigmoid", [pre[0]]), body.op("Sigmoid", [pre[1]])
        n = body.op("Tanh", [body.op("Add", [xn, body.op("Mul", [r, hn])])])
        h_new = body.op("Add", [body.op("Mul", [body.op("Sub", [body.float(1.0), z]), n]), body.op("Mul", [z, h])])
        c_new = None
    outs = [h_new] + ([c_new] if c else [])
    if masked:                                  # past a sequence's end: states kept, output zero
        outs = [body.op("Where", [m, new, old]) for new, old in zip(outs, [h, c] if c else [h])]
        y = body.op("Where", [m, h_new, body.float(0.0)])
    else:
        y = body.op("Identity", [h_new])
    vi = helper.make_tensor_value_info
    inputs = [vi(h, FLOAT, [None, S])] + ([vi(c, FLOAT, [None, H])] if c else []) + [vi(gx, FLOAT, [None, G * H])]
    if masked:
        inputs.append(vi(m, BOOL, [None, 1]))
    outputs = [vi(outs[0], FLOAT, [None, S])] + ([vi(outs[1], FLOAT, [None, H])] if c else []) \
        + [vi(y, FLOAT, [None, S])]
    return helper.make_graph(body.nodes, g.fresh("cell"), inputs, outputs)


def _scan_recurrent(ex, m, x, lengths, S, products):
    """A recurrent stack as one Scan per layer and direction, the steps in the loop: for the
    int8 layers and the LSTM with proj_size, which have no ONNX node. ``products(g, X, layer,
    suffix)`` gives (gx, recurrent, project): the input projection of every step (T, B, G*H),
    and the body's functions (_cell_body). A reverse direction scans from the last step; with
    lengths, the steps past a sequence's end keep the (zero) state and give zeros, so each
    sequence starts at its own last step, as the core's does."""
    g, H, D = ex.g, m.hidden_size, m.num_directions
    lstm = m.cell == "lstm"
    if ex.step:
        X = g.op("Unsqueeze", [x.name, g.int64([0])])                   # (1, B, I)
        states = _step_states(ex, m)
        finals = [[] for _ in states]
    else:
        X = g.op("Transpose", [x.name], perm=[1, 0, 2])                 # (T, B, I)
        zeros = {width: g.op("ConstantOfShape", [g.op("Concat", [g.shape(X, 1, 2), g.int64([width])], axis=0)],
                             value=g.onnx.helper.make_tensor("zero", g.onnx.TensorProto.FLOAT, [1], [0.0]))
                 for width in dict.fromkeys((S, H) if lstm else (S,))}
    mask = None
    if lengths is not None:                                             # (T, B, 1), step-major as X
        mask = g.op("Unsqueeze", [g.op("Transpose", [ex.mask(lengths, x.name)], perm=[1, 0]), g.int64([2])])
    for layer in range(m.num_layers):
        outs = []
        for d, suffix in enumerate(m._suffixes(layer)):
            gx, recurrent, project = products(g, X, layer, suffix)     # gx: one product for all steps
            if ex.step:
                init = [g.op("Gather", [state.name, g.int64(layer)], axis=0) for state, _ in states]
            else:
                init = [zeros[S]] + ([zeros[H]] if lstm else [])
            body = _cell_body(g, m.cell, H, recurrent, mask is not None, project, S)
            scans = [gx] + ([mask] if mask is not None else [])
            results = g.op("Scan", init + scans, outputs=len(init) + 1, body=body, num_scan_inputs=len(scans),
                           scan_input_directions=[d] * len(scans), scan_output_directions=[d])
            if ex.step:
                for k in range(len(init)):
                    finals[k].append(g.op("Unsqueeze", [results[k], g.int64([0])]))
            outs.append(results[-1])                                    # (T, B, S)
        X = outs[0] if D == 1 else g.op("Concat", outs, axis=2)
    if ex.step:
        for (_, out_name), parts in zip(states, finals):
            g.op("Identity" if len(parts) == 1 else "Concat", parts, outputs=[out_name],
                 **({} if len(parts) == 1 else {"axis": 0}))
        return Value(g.op("Squeeze", [X, g.int64([0])]), (x.shape[0], S), "float"), None
    return Value(g.op("Transpose", [X], perm=[1, 0, 2]), x.shape[:2] + (D * S,), "float"), lengths


@register(QuantizedRecurrent)
def _quantized_recurrent(ex, m, x, lengths, path):
    _check_recurrent(ex, m, x, path)
    w = m.weights

    def products(g, X, layer, suffix):
        gx = _qmatmul(g, X, w["weight_ih" + suffix], w.get("bias_ih" + suffix))
        w_hh, b_hh = w["weight_hh" + suffix], w.get("bias_hh" + suffix)
        return gx, (lambda body, h: _qmatmul(body, h, w_hh, b_hh)), None

    return _scan_recurrent(ex, m, x, lengths, m.hidden_size, products)


# -- the model ----------------------------------------------------------------------------------------------
def _first_leaf(m: Module):
    while isinstance(m, (Sequential, Residual, TimeDistributed)):
        children = list(m._modules.values())
        if not children:
            return None
        m = children[0]
    return m


def _input_features(m: Module):
    """The feature count the model's input must have, where its first layers say it."""
    for _, module in m.named_modules():
        if isinstance(module, (Sequential, Residual, TimeDistributed)):
            continue
        for attr in ("input_size", "in_features", "in_channels", "normalized_shape", "embed_dim", "hidden_size"):
            if isinstance(getattr(module, attr, None), int):
                return getattr(module, attr)
        if not isinstance(module, (Dropout, ReLU, Tanh, Sigmoid, LastTimestep, MaxPool1d)):
            return None
    return None


def build(model: Module, lengths: bool = False, opset=None, step: bool = False):
    """The ``onnx.ModelProto`` that ``export`` writes (checked with onnx's full checker)."""
    onnx = _require_onnx()
    if not isinstance(model, Module):
        raise TypeError(f"ln.onnx.export takes an lstm_native model, got {type(model).__name__}")
    if opset is None:
        opset = DEFAULT_OPSET
    newest = onnx.defs.onnx_opset_version()
    if not isinstance(opset, (int, np.integer)) or isinstance(opset, bool) or not MIN_OPSET <= opset <= newest:
        raise ValueError(f"opset must be an integer in [{MIN_OPSET}, {newest}] (this onnx's newest), got {opset!r}")
    if step and lengths:
        raise ValueError("lengths=True needs whole sequences; a step=True graph runs one step of each sequence")
    if step:
        try:
            model.stream_check()
        except TypeError as exc:
            raise TypeError(f"ln.onnx.export(step=True): {exc}") from None

    g = _Graph(onnx)
    g.opset = int(opset)
    ex = _Export(g, bool(step))
    ids = isinstance(_first_leaf(model), Embedding)
    axes = ("batch",) if step else ("batch", "time")
    x = Value("input", axes if ids else axes + (_input_features(model) or "features",), "int64" if ids else "float")
    lengths_name = "lengths" if lengths else None
    y, _ = _emit(ex, model, x, lengths_name, "")
    if y.dtype != "float":
        raise ValueError("ln.onnx.export: the model returns its integer input unchanged; nothing to export")

    # The result takes the name "output" (an Identity when it is a graph input, e.g. a lone Dropout).
    if y.name in ("input", "lengths") or y.name.startswith("state_in_"):
        g.op("Identity", [y.name], outputs=["output"])
    else:
        for node in g.nodes:
            node.input[:] = ["output" if n == y.name else n for n in node.input]
            node.output[:] = ["output" if n == y.name else n for n in node.output]
    helper, T = onnx.helper, onnx.TensorProto
    inputs = [helper.make_tensor_value_info("input", T.INT64 if ids else T.FLOAT, list(x.shape))]
    if lengths:
        inputs.append(helper.make_tensor_value_info("lengths", T.INT64, ["batch"]))
    inputs += [helper.make_tensor_value_info(s.name, T.FLOAT, list(s.shape)) for s, _ in ex.states]
    outputs = [helper.make_tensor_value_info("output", T.FLOAT, list(y.shape))]
    outputs += [helper.make_tensor_value_info(out, T.FLOAT, list(s.shape)) for s, out in ex.states]
    graph = helper.make_graph(g.nodes, "lstm_native", inputs, outputs, initializer=g.initializers)
    opsets = [helper.make_opsetid("", int(opset))]
    from . import __version__
    proto = helper.make_model(graph, opset_imports=opsets, producer_name="lstm_native", producer_version=__version__,
                              ir_version=helper.find_min_ir_version_for(opsets))
    onnx.checker.check_model(proto, full_check=True)
    return proto


def export(model: Module, path, lengths: bool = False, opset=None, step: bool = False) -> str:
    """Writes ``model`` as an ONNX file at ``path`` (see the module docstring for the graph's
    inputs and outputs); returns the path. ``lengths=True`` adds the "lengths" input;
    ``opset`` defaults to DEFAULT_OPSET; ``step=True`` writes one step of ``model.stream()``.
    The file appears whole or not at all (written beside it, then renamed)."""
    path = os.fspath(path)
    data = build(model, lengths=lengths, opset=opset, step=step).SerializeToString()
    folder = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".onnx", dir=folder)
    except OSError as exc:
        raise OSError(f"cannot write the ONNX file {path!r}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise OSError(f"cannot write the ONNX file {path!r}: {exc.strerror or exc}") from None
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path
