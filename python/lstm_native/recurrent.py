"""LSTM and GRU layers with PyTorch's parameters, semantics and weight layout.

Each layer of the stack is one C++ call per forward and one per backward, covering all
time steps and both directions (running concurrently) with the GIL released. Variable-length
batches are handled natively from ``lengths`` (no packing): outputs past a sequence's end
are zero and the final states are those at each sequence's last valid step.
"""
from __future__ import annotations

import math

import numpy as np

from . import seeding
from ._backend import core
from ._checks import float_array, float_dtype, lengths_array, positive_int, probability, require_finite, \
    require_shape, sequence_batch
from ._grad_mode import is_grad_enabled
from .layers import LastStepGradient
from .module import Module, Parameter, module_structure_version

_WEIGHT_NAMES = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")   # per layer, + "_l{k}" [+ "_reverse"]


def _same_last_steps(a, b) -> bool:
    """Whether two per-sequence last steps agree (None: every sequence ends at T - 1)."""
    if a is None or b is None:
        return a is None and b is None
    return np.array_equal(a, b)


class RecurrentBase(Module):
    """The machinery LSTM and GRU share; subclasses name the cell."""

    takes_lengths = True

    cell = ""           # the C++ cell: "lstm" or "gru"
    gates = 0           # gates per hidden unit
    has_cell_state = False

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 seed=None, dtype=np.float32):
        super().__init__()
        self.input_size = positive_int("input_size", input_size)
        self.hidden_size = positive_int("hidden_size", hidden_size)
        self.num_layers = positive_int("num_layers", num_layers)
        dropout = probability("dropout", dropout)
        dtype = float_dtype(dtype)
        self.bias = bool(bias)
        self.batch_first = bool(batch_first)
        self.dropout = float(dropout)
        self.bidirectional = bool(bidirectional)
        self.dtype = dtype

        # PyTorch's initialisation: every parameter ~ U(-1/sqrt(H), 1/sqrt(H)).
        rng = seeding.generator(seed)
        bound = 1.0 / math.sqrt(hidden_size)
        rows = self.gates * hidden_size
        for layer in range(num_layers):
            layer_input = input_size if layer == 0 else hidden_size * self.num_directions
            for suffix in self._suffixes(layer):
                setattr(self, "weight_ih" + suffix, Parameter(rng.uniform(-bound, bound, (rows, layer_input)).astype(dtype)))
                setattr(self, "weight_hh" + suffix, Parameter(rng.uniform(-bound, bound, (rows, hidden_size)).astype(dtype)))
                if bias:
                    setattr(self, "bias_ih" + suffix, Parameter(rng.uniform(-bound, bound, rows).astype(dtype)))
                    setattr(self, "bias_hh" + suffix, Parameter(rng.uniform(-bound, bound, rows).astype(dtype)))
        self._dropout_rng = np.random.default_rng(rng.integers(2**63))
        self._workspaces = [core.RecurrentWorkspace() for _ in range(num_layers)]
        self._ctx = None

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    def _suffixes(self, layer: int):
        return [f"_l{layer}"] + ([f"_l{layer}_reverse"] if self.bidirectional else [])

    def _layer_parameters(self, layer: int):
        """Per direction, the (w_ih, w_hh, b_ih, b_hh) Parameters (None for absent biases)."""
        cached = self.__dict__.get("_parameter_objects")   # the Parameters by layer, kept until any module changes
        if cached is None or cached[0] != module_structure_version():
            cached = (module_structure_version(),
                      [[tuple(getattr(self, name + suffix, None) for name in _WEIGHT_NAMES)
                        for suffix in self._suffixes(k)] for k in range(self.num_layers)])
            self._parameter_objects = cached
        return cached[1][layer]

    def _layer_params(self, layer: int, attr: str):
        """Per direction, the (w_ih, w_hh, b_ih, b_hh) arrays of Parameter attribute `attr`."""
        return [tuple(None if p is None else getattr(p, attr) for p in ps) for ps in self._layer_parameters(layer)]

    def _layer_forward(self, layer, layer_input, lengths, h0, c0, keep):
        """One layer of the stack through the core, which keeps what it prepares from the
        weights (packed matrices) for the next call while their version stays the same and no
        reference to them is held outside their Parameters (parameter.py)."""
        params = [p for ps in self._layer_parameters(layer) for p in ps if p is not None]
        version = -1 if any(p.shared() for p in params) else max(p.version for p in params)
        return core.recurrent_forward(self.cell, layer_input, self.batch_first, lengths,
                                      self._layer_params(layer, "array"), h0, c0, self._workspaces[layer], keep,
                                      version)

    def _state(self, value, name: str, batch: int):
        if value is None:
            return None
        arr = float_array(value, name, self.dtype)
        require_shape(arr, name, (self.num_layers * self.num_directions, batch, self.hidden_size),
                      "(num_layers * num_directions, batch, hidden_size)")
        return arr

    def _run(self, x, h0, c0, lengths):
        """Forward through the stack; returns (out, h_n, c_n or None)."""
        x = sequence_batch(x, "x", self.input_size, self.dtype, self.batch_first)
        steps, batch = (x.shape[1], x.shape[0]) if self.batch_first else (x.shape[0], x.shape[1])
        lengths = lengths_array(lengths, batch, steps)
        h0 = self._state(h0, "h0", batch)
        c0 = self._state(c0, "c0", batch)
        keep = is_grad_enabled()
        D, H = self.num_directions, self.hidden_size
        h_n = np.empty((self.num_layers * D, batch, H), self.dtype)
        c_n = np.empty_like(h_n) if self.has_cell_state else None
        inputs, masks = [], []
        layer_input = x
        for layer in range(self.num_layers):
            sl = slice(layer * D, (layer + 1) * D)
            out, h, c = self._layer_forward(layer, layer_input, lengths, None if h0 is None else h0[sl],
                                            None if c0 is None else c0[sl], keep)
            h_n[sl] = h
            if c_n is not None:
                c_n[sl] = c
            inputs.append(layer_input)
            if self.dropout > 0 and self.training and layer < self.num_layers - 1:
                keep_prob = 1.0 - self.dropout
                mask = (self._dropout_rng.random(out.shape) < keep_prob).astype(self.dtype) / self.dtype.type(keep_prob)
                out *= mask
                masks.append(mask)
            else:
                masks.append(None)
            layer_input = out
        self._last_masks = masks  # the dropout masks used (None: no dropout)
        last_steps = None if lengths is None else lengths - 1   # None: every sequence ends at T - 1
        self._ctx = dict(inputs=inputs, masks=masks, batch=batch, out_shape=layer_input.shape,
                         last_steps=last_steps) if keep else None
        return layer_input, h_n, c_n

    def _run_backward(self, dout, dh_n, dc_n, need_input_grad):
        ctx = self._ctx
        if ctx is None:
            raise ValueError(f"{type(self).__name__}.backward needs a forward first (outside no_grad); "
                             "each forward serves one backward")
        D, H, L, batch = self.num_directions, self.hidden_size, self.num_layers, ctx["batch"]
        grad = last_grad = None
        if isinstance(dout, LastStepGradient) and self.batch_first and dout.shape == ctx["out_shape"] \
                and _same_last_steps(dout.last, ctx["last_steps"]):
            last_grad = float_array(dout.grad, "dout", self.dtype)   # only the last steps: no dense array
            require_finite(last_grad, "dout")    # (the core would name its own argument, dout_last)
            dout = None
        if dout is not None:
            grad = float_array(dout, "dout", self.dtype)
            require_shape(grad, "dout", ctx["out_shape"], "(the forward's output shape)")
        state_shape = (L * D, batch, H)
        if dh_n is not None:
            dh_n = float_array(dh_n, "dh_n", self.dtype)
            require_shape(dh_n, "dh_n", state_shape)
        if dc_n is not None:
            dc_n = float_array(dc_n, "dc_n", self.dtype)
            require_shape(dc_n, "dc_n", state_shape)
        self._ctx = None  # the arguments are good: this backward consumes the forward
        dh0 = np.empty(state_shape, self.dtype)
        dc0 = np.empty(state_shape, self.dtype) if self.has_cell_state else None
        dx = None
        for layer in reversed(range(L)):
            sl = slice(layer * D, (layer + 1) * D)
            dx, dh, dc = core.recurrent_backward(
                self.cell, self._workspaces[layer], ctx["inputs"][layer], grad,
                None if dh_n is None else dh_n[sl], None if dc_n is None else dc_n[sl],
                self._layer_params(layer, "grad"), layer > 0 or need_input_grad,
                last_grad if layer == L - 1 else None)
            dh0[sl] = dh
            if dc0 is not None:
                dc0[sl] = dc
            if layer > 0:
                grad = dx
                mask = ctx["masks"][layer - 1]
                if mask is not None:
                    grad *= mask
        return dx, dh0, dc0

    def _step(self, x_t, h0, c0):
        """One time step through the stack from (h0, c0) (None: zeros), into new state arrays
        that belong to the caller: a later step never writes into what an earlier one returned."""
        if self.bidirectional:
            raise ValueError("step() runs a unidirectional layer one step at a time; a bidirectional layer "
                             "needs the whole sequence")
        x, unbatched = self._step_input(x_t)
        shape = (self.num_layers, x.shape[0], self.hidden_size)
        h = self._fresh_state(h0, "h0", shape)
        c = self._fresh_state(c0, "c0", shape) if self.has_cell_state else None
        self._advance(x, h, c)
        return (h[-1, 0] if unbatched else h[-1]), h, c

    def _fresh_state(self, given, name, shape):
        """A new C-contiguous state array: zeros, or a checked copy of `given`."""
        if given is None:
            return np.zeros(shape, self.dtype)
        if type(given) is np.ndarray and given.shape == shape and given.dtype == self.dtype:
            return given.copy()          # the common case, a state a step returned: one copy
        arr = float_array(given, name, self.dtype)
        require_shape(arr, name, shape, "(num_layers, batch, hidden_size)")
        return arr.copy()                # (the core checks that the state is finite)

    def _step_input(self, x_t):
        """x_t as a (batch, input_size) array of the layer's dtype, and whether it came unbatched."""
        x = x_t if (type(x_t) is np.ndarray and x_t.dtype == self.dtype and x_t.flags.c_contiguous) \
            else float_array(x_t, "x_t", self.dtype)
        unbatched = x.ndim == 1
        if unbatched:
            x = x[None]
        if x.ndim != 2 or x.shape[1] != self.input_size:
            raise ValueError(f"x_t must have shape (batch, {self.input_size}) or ({self.input_size},), "
                             f"got {np.shape(x_t)}")
        return x, unbatched

    def _advance(self, x, h, c):
        """One step through the stack; the core updates h and c (num_layers, batch, hidden) in place."""
        params = self.__dict__    # parameters are plain attributes (Module.__setattr__); direct reads save ~2 us a step
        for layer in range(self.num_layers):
            weights = tuple(None if (p := params.get(f"{name}_l{layer}")) is None else p.array for name in _WEIGHT_NAMES)
            core.recurrent_step(self.cell, x if layer == 0 else h[layer - 1], weights,
                                h[layer], None if c is None else c[layer])

    # Streams and stateful predict carry the state: (h, c) for an LSTM, h for a GRU.
    def _split_state(self, state):
        if not self.has_cell_state:
            return state, None
        if state is None:
            return None, None
        if not isinstance(state, (tuple, list)) or len(state) != 2:
            raise TypeError(f"an LSTM's state must be a tuple (h, c), got {type(state).__name__}")
        return state

    def stream_check(self):
        if self.bidirectional:
            raise TypeError("a bidirectional layer needs the whole sequence, so a model holding it cannot stream")

    def stream_step(self, x_t, state):
        # The stream's own state arrays are updated in place by the core (so two streams on
        # one model never share buffers); checks are kept to attribute tests on the hot path.
        h, c = self._split_state(state)
        x, unbatched = self._step_input(x_t)
        shape = (self.num_layers, x.shape[0], self.hidden_size)
        if h is None:
            h = np.zeros(shape, self.dtype)
            c = np.zeros(shape, self.dtype) if self.has_cell_state else None
        elif self.has_cell_state and c is None:
            raise ValueError("an LSTM's state needs both h and c")

        def own(given, name):   # the stream's own C-contiguous copy, checked
            if type(given) is np.ndarray and given.shape == shape and given.dtype == self.dtype \
                    and given.flags.c_contiguous:
                return given
            arr = float_array(given, name, self.dtype)
            require_shape(arr, name, shape, "(num_layers, batch, hidden_size)")
            return arr.copy()

        h = own(h, "h0")
        c = None if c is None else own(c, "c0")
        self._advance(x, h, c)
        return (h[-1, 0] if unbatched else h[-1]), ((h, c) if self.has_cell_state else h)

    def seq_forward_state(self, x, state, lengths=None):
        return self.forward(x, hx=state, lengths=lengths)

    # Sequential runs recurrent layers on their output sequence alone.
    def seq_forward(self, x, lengths=None):
        return self.forward(x, lengths=lengths)[0]

    def seq_backward(self, grad, need_input_grad: bool = True):
        return self.backward(grad, need_input_grad=need_input_grad)[0]

    def get_config(self) -> dict:
        return dict(input_size=self.input_size, hidden_size=self.hidden_size, num_layers=self.num_layers,
                    bias=self.bias, batch_first=self.batch_first, dropout=self.dropout,
                    bidirectional=self.bidirectional, dtype=self.dtype.name)

    def get_extra_state(self):
        return {"dropout_rng": self._dropout_rng.bit_generator.state}

    def set_extra_state(self, state) -> None:
        self._dropout_rng.bit_generator.state = state["dropout_rng"]

    def release_buffers(self) -> None:
        """Frees the buffers kept between calls (they come back on the next forward)."""
        for ws in self._workspaces:
            ws.release()
        self._ctx = None


class LSTM(RecurrentBase):
    """Long short-term memory layer(s), as torch.nn.LSTM (gate order i, f, g, o).

    ``out, (h_n, c_n) = lstm(x, hx=None, lengths=None)`` with x of shape (T, B, I), or (B, T, I)
    when batch_first; ``hx = (h0, c0)`` each (num_layers * num_directions, B, H).
    ``dx, (dh0, dc0) = lstm.backward(dout, dh_n=None, dc_n=None)``; parameter gradients
    accumulate in ``lstm.grads``.
    """

    cell = "lstm"
    gates = 4
    has_cell_state = True

    def forward(self, x, hx=None, lengths=None):
        h0 = c0 = None
        if hx is not None:
            if not isinstance(hx, (tuple, list)) or len(hx) != 2:
                raise TypeError("hx must be a tuple (h0, c0) for an LSTM")
            h0, c0 = hx
        out, h_n, c_n = self._run(x, h0, c0, lengths)
        return out, (h_n, c_n)

    def backward(self, dout=None, dh_n=None, dc_n=None, need_input_grad: bool = True):
        dx, dh0, dc0 = self._run_backward(dout, dh_n, dc_n, need_input_grad)
        return dx, (dh0, dc0)

    def step(self, x_t, hx=None):
        """One time step, for streaming inference: ``h_t, (h, c) = lstm.step(x_t, hx)`` with x_t
        (B, I) or (I,). hx=None starts from zeros; pass back the (h, c) a step returned to
        carry the state on. The returned arrays are new and belong to the caller (collect
        h_t in a list as it is); ``model.stream()`` is the faster way to run many steps."""
        h0 = c0 = None
        if hx is not None:
            if not isinstance(hx, (tuple, list)) or len(hx) != 2:
                raise TypeError("hx must be a tuple (h, c) for an LSTM")
            h0, c0 = hx
            if (h0 is None) != (c0 is None):
                raise ValueError("give both h and c, or neither")
        h_t, h, c = self._step(x_t, h0, c0)
        return h_t, (h, c)


class GRU(RecurrentBase):
    """Gated recurrent unit layer(s), as torch.nn.GRU (gate order r, z, n;
    n = tanh(W_in x + b_in + r * (W_hn h + b_hn))).

    ``out, h_n = gru(x, hx=None, lengths=None)``; ``dx, dh0 = gru.backward(dout, dh_n=None)``.
    """

    cell = "gru"
    gates = 3
    has_cell_state = False

    def forward(self, x, hx=None, lengths=None):
        out, h_n, _ = self._run(x, hx, None, lengths)
        return out, h_n

    def backward(self, dout=None, dh_n=None, need_input_grad: bool = True):
        dx, dh0, _ = self._run_backward(dout, dh_n, None, need_input_grad)
        return dx, dh0

    def step(self, x_t, hx=None):
        """One time step: ``h_t, h = gru.step(x_t, hx)``; see LSTM.step."""
        h_t, h, _ = self._step(x_t, hx, None)
        return h_t, h
