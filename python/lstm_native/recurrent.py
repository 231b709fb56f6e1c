"""LSTM, GRU and RNN layers with PyTorch's parameters, semantics and weight layout, and the
cells beyond torch's: layer-normalised LSTM/GRU, recurrent dropout and zoneout.

Each layer of the stack is one C++ call per forward and one per backward, covering all
time steps and both directions (running concurrently) with the GIL released. Variable-length
batches are handled natively from ``lengths`` (no packing): outputs past a sequence's end
are zero and the final states are those at each sequence's last valid step.

Regularisers inside the step loop (training mode only; masks drawn here from the layer's
generator, so ``seed=`` and ``ln.manual_seed`` reproduce them, and applied in C++):
``recurrent_dropout=p`` drops units of the h that feeds the recurrent product with one mask
per sequence (variational dropout, Gal & Ghahramani 2016; Keras' recurrent_dropout);
``zoneout=p`` lets every unit keep its previous h and c with probability p at each step
(Krueger et al. 2017), and in evaluation mixes them by p (h = p h_prev + (1 - p) h_new, as
lmnt-com/haste).
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
    """The machinery every recurrent layer shares; subclasses name the cell."""

    takes_lengths = True

    cell = ""           # the C++ cell ("lstm", "gru", "gru_reset_before", "rnn_tanh", "rnn_relu", "ln_lstm", "ln_gru")
    gates = 0           # gates per hidden unit
    has_cell_state = False
    layer_norm = False  # layer-normalised products (and cell state): gains per layer and direction

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 seed=None, dtype=np.float32, *, recurrent_dropout: float = 0.0, zoneout: float = 0.0,
                 proj_size: int = 0, forget_bias: float = 0.0):
        super().__init__()
        self.input_size = positive_int("input_size", input_size)
        self.hidden_size = positive_int("hidden_size", hidden_size)
        self.num_layers = positive_int("num_layers", num_layers)
        dropout = probability("dropout", dropout)
        self.recurrent_dropout = probability("recurrent_dropout", recurrent_dropout)
        self.zoneout = probability("zoneout", zoneout)
        if isinstance(proj_size, bool) or not isinstance(proj_size, (int, np.integer)) or proj_size < 0:
            raise ValueError(f"proj_size must be an integer >= 0, got {proj_size!r}")
        if proj_size >= hidden_size:
            raise ValueError(f"proj_size must be smaller than hidden_size ({hidden_size}), got {proj_size}")
        if proj_size and self.zoneout:
            raise ValueError("zoneout with proj_size is not supported: h (proj_size) and c (hidden_size) "
                             "would need masks of two widths")
        if isinstance(forget_bias, bool) or not isinstance(forget_bias, (int, float, np.integer, np.floating)) \
                or not math.isfinite(forget_bias):
            raise ValueError(f"forget_bias must be a finite number, got {forget_bias!r}")
        if forget_bias and not bias:
            raise ValueError("forget_bias needs bias=True (it is added to the forget gate's bias)")
        dtype = float_dtype(dtype)
        self.bias = bool(bias)
        self.batch_first = bool(batch_first)
        self.dropout = dropout
        self.bidirectional = bool(bidirectional)
        self.dtype = dtype
        self.proj_size = int(proj_size)
        self.forget_bias = float(forget_bias)

        # PyTorch's initialisation: every weight and bias ~ U(-1/sqrt(H), 1/sqrt(H)), drawn in
        # torch's order (w_ih, w_hh, b_ih, b_hh, w_hr per direction); layer-norm gains 1, shifts 0.
        rng = seeding.generator(seed)
        bound = 1.0 / math.sqrt(hidden_size)
        H, S, rows = hidden_size, self.state_size, self.gates * hidden_size
        for layer in range(num_layers):
            layer_input = input_size if layer == 0 else S * self.num_directions
            for suffix in self._suffixes(layer):
                setattr(self, "weight_ih" + suffix, Parameter(rng.uniform(-bound, bound, (rows, layer_input)).astype(dtype)))
                setattr(self, "weight_hh" + suffix, Parameter(rng.uniform(-bound, bound, (rows, S)).astype(dtype)))
                if bias:
                    b_ih = rng.uniform(-bound, bound, rows)
                    b_ih[H:2 * H] += self.forget_bias      # LSTM's forget gate (Keras' unit_forget_bias: 1.0)
                    setattr(self, "bias_ih" + suffix, Parameter(b_ih.astype(dtype)))
                    setattr(self, "bias_hh" + suffix, Parameter(rng.uniform(-bound, bound, rows).astype(dtype)))
                if self.proj_size:
                    setattr(self, "weight_hr" + suffix, Parameter(rng.uniform(-bound, bound, (S, H)).astype(dtype)))
                if self.layer_norm:
                    setattr(self, "ln_weight_ih" + suffix, Parameter(np.ones(rows, dtype)))
                    setattr(self, "ln_weight_hh" + suffix, Parameter(np.ones(rows, dtype)))
                    if self.has_cell_state:
                        setattr(self, "ln_weight_c" + suffix, Parameter(np.ones(H, dtype)))
                        setattr(self, "ln_bias_c" + suffix, Parameter(np.zeros(H, dtype)))
        self._dropout_rng = np.random.default_rng(rng.integers(2**63))
        self._workspaces = [core.RecurrentWorkspace() for _ in range(num_layers)]
        self._ctx = None

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def state_size(self) -> int:
        """The width of h (and of each direction's output): proj_size when projected, else hidden_size."""
        return self.proj_size or self.hidden_size

    @property
    def _param_names(self):
        """A direction's parameters in the order the core takes them."""
        names = _WEIGHT_NAMES + (("weight_hr",) if self.proj_size else ())
        if self.layer_norm:
            names += ("ln_weight_ih", "ln_weight_hh") + (("ln_weight_c", "ln_bias_c") if self.has_cell_state else ())
        return names

    def _suffixes(self, layer: int):
        return [f"_l{layer}"] + ([f"_l{layer}_reverse"] if self.bidirectional else [])

    def _layer_parameters(self, layer: int):
        """Per direction, the (w_ih, w_hh, b_ih, b_hh[, extras]) Parameters (None for absent biases)."""
        cached = self.__dict__.get("_parameter_objects")   # the Parameters by layer, kept until any module changes
        if cached is None or cached[0] != module_structure_version():
            names = self._param_names
            cached = (module_structure_version(),
                      [[tuple(getattr(self, name + suffix, None) for name in names)
                        for suffix in self._suffixes(k)] for k in range(self.num_layers)])
            self._parameter_objects = cached
        return cached[1][layer]

    def _layer_params(self, layer: int, attr: str):
        """Per direction, the (w_ih, w_hh, b_ih, b_hh[, extras]) arrays of Parameter attribute `attr`."""
        return [tuple(None if p is None else getattr(p, attr) for p in ps) for ps in self._layer_parameters(layer)]

    def _layer_forward(self, layer, layer_input, lengths, h0, c0, keep, rec_mask=None, keep_mask=None, zoneout=0.0):
        """One layer of the stack through the core, which keeps what it prepares from the
        weights (packed matrices) for the next call while their version stays the same and no
        reference to them is held outside their Parameters (parameter.py). rec_mask, keep_mask,
        zoneout: this layer's recurrent dropout and zoneout (_regularisers)."""
        params = [p for ps in self._layer_parameters(layer) for p in ps if p is not None]
        version = -1 if any(p.shared() for p in params) else max(p.version for p in params)
        return core.recurrent_forward(self.cell, layer_input, self.batch_first, lengths,
                                      self._layer_params(layer, "array"), h0, c0, self._workspaces[layer], keep,
                                      version, rec_mask, keep_mask, zoneout)

    def _state(self, value, name: str, batch: int, width: int):
        if value is None:
            return None
        arr = float_array(value, name, self.dtype)
        size = "hidden_size" if width == self.hidden_size else "proj_size"
        require_shape(arr, name, (self.num_layers * self.num_directions, batch, width),
                      f"(num_layers * num_directions, batch, {size})")
        return arr

    def _regularisers(self, out_shape, batch):
        """This layer's recurrent dropout mask (D, B, S) and zoneout keep mask (like its output,
        uint8) for one forward in training, or the zoneout probability in evaluation."""
        rng, D, S = self._dropout_rng, self.num_directions, self.state_size
        rec_mask = keep_mask = None
        if not self.training:
            return rec_mask, keep_mask, self.zoneout
        if self.recurrent_dropout:
            keep = 1.0 - self.recurrent_dropout
            rec_mask = (rng.random((D, batch, S), dtype=np.float32) < keep).astype(self.dtype) / self.dtype.type(keep)
        if self.zoneout:
            keep_mask = (rng.random(out_shape, dtype=np.float32) < self.zoneout).view(np.uint8)
        return rec_mask, keep_mask, 0.0

    def _run(self, x, h0, c0, lengths):
        """Forward through the stack; returns (out, h_n, c_n or None)."""
        x = sequence_batch(x, "x", self.input_size, self.dtype, self.batch_first)
        steps, batch = (x.shape[1], x.shape[0]) if self.batch_first else (x.shape[0], x.shape[1])
        lengths = lengths_array(lengths, batch, steps)
        D, H, S = self.num_directions, self.hidden_size, self.state_size
        h0 = self._state(h0, "h0", batch, S)
        c0 = self._state(c0, "c0", batch, H)
        keep = is_grad_enabled()
        h_n = np.empty((self.num_layers * D, batch, S), self.dtype)
        c_n = np.empty((self.num_layers * D, batch, H), self.dtype) if self.has_cell_state else None
        inputs, masks, rec_masks, keep_masks = [], [], [], []
        out_shape = x.shape[:2] + (D * S,)
        layer_input = x
        for layer in range(self.num_layers):
            sl = slice(layer * D, (layer + 1) * D)
            rec_mask, keep_mask, zoneout = self._regularisers(out_shape, batch)
            rec_masks.append(rec_mask)
            keep_masks.append(keep_mask)
            out, h, c = self._layer_forward(layer, layer_input, lengths, None if h0 is None else h0[sl],
                                            None if c0 is None else c0[sl], keep, rec_mask, keep_mask, zoneout)
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
        self._last_recurrent_masks, self._last_zoneout_masks = rec_masks, keep_masks   # per layer, likewise
        last_steps = None if lengths is None else lengths - 1   # None: every sequence ends at T - 1
        self._ctx = dict(inputs=inputs, masks=masks, batch=batch, out_shape=layer_input.shape,
                         last_steps=last_steps) if keep else None
        return layer_input, h_n, c_n

    def _run_backward(self, dout, dh_n, dc_n, need_input_grad):
        ctx = self._ctx
        if ctx is None:
            raise ValueError(f"{type(self).__name__}.backward needs a forward first (outside no_grad); "
                             "each forward serves one backward")
        D, H, S, L, batch = self.num_directions, self.hidden_size, self.state_size, self.num_layers, ctx["batch"]
        grad = last_grad = None
        if isinstance(dout, LastStepGradient) and self.batch_first and dout.shape == ctx["out_shape"] \
                and _same_last_steps(dout.last, ctx["last_steps"]):
            last_grad = float_array(dout.grad, "dout", self.dtype)   # only the last steps: no dense array
            require_finite(last_grad, "dout")    # (the core would name its own argument, dout_last)
            dout = None
        if dout is not None:
            grad = float_array(dout, "dout", self.dtype)
            require_shape(grad, "dout", ctx["out_shape"], "(the forward's output shape)")
        h_shape, c_shape = (L * D, batch, S), (L * D, batch, H)
        if dh_n is not None:
            dh_n = float_array(dh_n, "dh_n", self.dtype)
            require_shape(dh_n, "dh_n", h_shape)
        if dc_n is not None:
            dc_n = float_array(dc_n, "dc_n", self.dtype)
            require_shape(dc_n, "dc_n", c_shape)
        self._ctx = None  # the arguments are good: this backward consumes the forward
        dh0 = np.empty(h_shape, self.dtype)
        dc0 = np.empty(c_shape, self.dtype) if self.has_cell_state else None
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
        shape = (self.num_layers, x.shape[0], self.state_size)
        h = self._fresh_state(h0, "h0", shape)
        c = self._fresh_state(c0, "c0", shape[:2] + (self.hidden_size,)) if self.has_cell_state else None
        self._advance(x, h, c)
        return (h[-1, 0] if unbatched else h[-1]), h, c

    def _fresh_state(self, given, name, shape):
        """A new C-contiguous state array: zeros, or a checked copy of `given`."""
        if given is None:
            return np.zeros(shape, self.dtype)
        if type(given) is np.ndarray and given.shape == shape and given.dtype == self.dtype:
            return given.copy()          # the common case, a state a step returned: one copy
        arr = float_array(given, name, self.dtype)
        require_shape(arr, name, shape, "(num_layers, batch, hidden_size)" if shape[2] == self.hidden_size
                      else "(num_layers, batch, proj_size)")
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
        """One step through the stack, with evaluation's semantics (no recurrent dropout, zoneout's
        expectation); the core updates h and c (num_layers, batch, hidden) in place."""
        params = self.__dict__    # parameters are plain attributes (Module.__setattr__); direct reads save ~2 us a step
        names = self._param_names
        for layer in range(self.num_layers):
            weights = tuple(None if (p := params.get(f"{name}_l{layer}")) is None else p.array for name in names)
            core.recurrent_step(self.cell, x if layer == 0 else h[layer - 1], weights,
                                h[layer], None if c is None else c[layer], self.zoneout)

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
        shape = (self.num_layers, x.shape[0], self.state_size)
        c_shape = shape[:2] + (self.hidden_size,)
        if h is None:
            h = np.zeros(shape, self.dtype)
            c = np.zeros(c_shape, self.dtype) if self.has_cell_state else None
        elif self.has_cell_state and c is None:
            raise ValueError("an LSTM's state needs both h and c")

        def own(given, name, shape):   # the stream's own C-contiguous copy, checked
            if type(given) is np.ndarray and given.shape == shape and given.dtype == self.dtype \
                    and given.flags.c_contiguous:
                return given
            arr = float_array(given, name, self.dtype)
            require_shape(arr, name, shape, "(num_layers, batch, hidden_size)" if shape[2] == self.hidden_size
                          else "(num_layers, batch, proj_size)")
            return arr.copy()

        h = own(h, "h0", shape)
        c = None if c is None else own(c, "c0", c_shape)
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
                    bidirectional=self.bidirectional, dtype=self.dtype.name,
                    recurrent_dropout=self.recurrent_dropout, zoneout=self.zoneout)

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

    Beyond torch.nn.LSTM's arguments: ``proj_size`` (torch's, so h_n and the output are
    proj_size wide: h_t = W_hr (o * tanh(c_t)), weight_hr_l{k} (proj_size, H)),
    ``recurrent_dropout`` and ``zoneout`` (see the module's docstring; train mode only, zoneout's
    expectation in eval) and ``forget_bias`` (added to the forget gate's bias_ih at
    initialisation; Keras' unit_forget_bias is 1.0).
    """

    cell = "lstm"
    gates = 4
    has_cell_state = True

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 seed=None, dtype=np.float32, *, proj_size: int = 0, recurrent_dropout: float = 0.0,
                 zoneout: float = 0.0, forget_bias: float = 0.0):
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, seed,
                         dtype, recurrent_dropout=recurrent_dropout, zoneout=zoneout, proj_size=proj_size,
                         forget_bias=forget_bias)

    def get_config(self) -> dict:
        return dict(super().get_config(), proj_size=self.proj_size, forget_bias=self.forget_bias)

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
    """Gated recurrent unit layer(s), as torch.nn.GRU (gate order r, z, n).

    ``reset_after=True`` (the default) is torch's (and cuDNN's, and Keras 2's default)
    formulation: the reset gate applies after the recurrent product,
    n = tanh(W_in x + b_in + r * (W_hn h + b_hn)). ``reset_after=False`` is the textbook's
    (Cho et al. 2014; Keras' reset_after=False): it applies to h before the product,
    n = tanh(W_in x + b_in + W_hn (r * h) + b_hn). Same parameters either way; the two
    train equally well but compute different functions, so weights do not move between them.

    ``out, h_n = gru(x, hx=None, lengths=None)``; ``dx, dh0 = gru.backward(dout, dh_n=None)``.
    ``recurrent_dropout`` and ``zoneout`` as LSTM's.
    """

    gates = 3
    has_cell_state = False

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 seed=None, dtype=np.float32, *, reset_after: bool = True, recurrent_dropout: float = 0.0,
                 zoneout: float = 0.0):
        if not isinstance(reset_after, (bool, np.bool_)):
            raise ValueError(f"reset_after must be True or False, got {reset_after!r}")
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, seed,
                         dtype, recurrent_dropout=recurrent_dropout, zoneout=zoneout)
        self.reset_after = bool(reset_after)

    @property
    def cell(self) -> str:
        return "gru" if self.reset_after else "gru_reset_before"

    def get_config(self) -> dict:
        return dict(super().get_config(), reset_after=self.reset_after)

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


class RNN(RecurrentBase):
    """Elman RNN layer(s), as torch.nn.RNN: h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh) with
    act ``nonlinearity`` = "tanh" or "relu"; weight_ih_l0 (H, I), weight_hh_l0 (H, H) ...

    ``out, h_n = rnn(x, hx=None, lengths=None)``; ``dx, dh0 = rnn.backward(dout, dh_n=None)``;
    ``recurrent_dropout`` and ``zoneout`` as LSTM's.
    """

    gates = 1
    has_cell_state = False

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, nonlinearity: str = "tanh",
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 seed=None, dtype=np.float32, *, recurrent_dropout: float = 0.0, zoneout: float = 0.0):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, seed,
                         dtype, recurrent_dropout=recurrent_dropout, zoneout=zoneout)
        self.nonlinearity = nonlinearity

    @property
    def cell(self) -> str:
        return "rnn_" + self.nonlinearity

    def get_config(self) -> dict:
        return dict(super().get_config(), nonlinearity=self.nonlinearity)

    forward = GRU.forward
    backward = GRU.backward

    def step(self, x_t, hx=None):
        """One time step: ``h_t, h = rnn.step(x_t, hx)``; see LSTM.step."""
        h_t, h, _ = self._step(x_t, hx, None)
        return h_t, h


class LayerNormLSTM(LSTM):
    """LSTM with layer normalisation (Ba et al. 2016; as lmnt-com/haste's LayerNormLSTM):

        a = LN(W_ih x) * ln_weight_ih + LN(W_hh h) * ln_weight_hh + b_ih + b_hh
        c_t = f * c_{t-1} + i * g          h_t = o * tanh(LN(c_t) * ln_weight_c + ln_bias_c)

    each LN over its whole vector (4H gate values, or H), eps 1e-5; the gate biases are the two
    products' shifts. Parameters: LSTM's, plus ln_weight_ih_l{k}, ln_weight_hh_l{k} (4H,),
    ln_weight_c_l{k}, ln_bias_c_l{k} (H,), initialised to 1 and 0. Same calls as LSTM
    (no proj_size).
    """

    cell = "ln_lstm"
    layer_norm = True

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 seed=None, dtype=np.float32, *, recurrent_dropout: float = 0.0, zoneout: float = 0.0,
                 forget_bias: float = 0.0):
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, seed,
                         dtype, recurrent_dropout=recurrent_dropout, zoneout=zoneout, forget_bias=forget_bias)

    def get_config(self) -> dict:
        config = super().get_config()
        del config["proj_size"]
        return config


class LayerNormGRU(GRU):
    """GRU with layer normalisation (as lmnt-com/haste's LayerNormGRU): torch's GRU on
    ax = LN(W_ih x) * ln_weight_ih + b_ih and ah = LN(W_hh h) * ln_weight_hh + b_hh, so
    n = tanh(ax_n + r * ah_n). Parameters: GRU's, plus ln_weight_ih_l{k}, ln_weight_hh_l{k}
    (3H,), initialised to 1. Same calls as GRU (reset after the product only).
    """

    layer_norm = True

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 seed=None, dtype=np.float32, *, recurrent_dropout: float = 0.0, zoneout: float = 0.0):
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, seed,
                         dtype, recurrent_dropout=recurrent_dropout, zoneout=zoneout)

    @property
    def cell(self) -> str:
        return "ln_gru"

    def get_config(self) -> dict:
        config = super().get_config()
        del config["reset_after"]
        return config
