"""PyTorch drop-in: ``torch.nn.LSTM`` / ``GRU`` / ``RNN`` running on lstm_native's kernels.

    import lstm_native.torch as lnt
    lnt.convert(model)                  # every nn.LSTM / nn.GRU / nn.RNN inside now runs our kernels
    lnt.convert(model, revert=True)     # and back

``lnt.LSTM``, ``lnt.GRU`` and ``lnt.RNN`` subclass ``nn.LSTM`` / ``nn.GRU`` / ``nn.RNN``: the same constructor,
the same ``nn.Parameter`` objects (names, shapes, initialisation), the same ``state_dict``,
``forward(input, hx=None)`` with a tensor or a ``PackedSequence``, returning the same types;
only the computation differs. ``convert`` swaps the class of each module in place, so the
Parameter objects, hooks and every reference to the module stay as they were and an optimizer
built before the conversion keeps working.

How a call runs: one ``torch.autograd.Function`` per module call covers the whole stack; its
forward and backward call the C++ core once per layer (all time steps and both directions in
one call, the GIL released) on NumPy views of the tensors' own memory. Contiguous CPU float32
and float64 tensors are used without copies; a non-contiguous input, state or incoming
gradient is copied once to contiguous memory. A ``PackedSequence`` is padded (one copy of its
data) and run with native per-sequence lengths, and the output packed back (one copy); the
padded batch keeps the packed (length-sorted) order and ``sorted_indices`` /
``unsorted_indices`` are applied to the states as torch does, so ``enforce_sorted`` True and
False both work.

What runs torch's own implementation instead (``super().forward``, with a
``FallbackWarning`` once per reason): tensors on another device than the CPU, dtypes other
than float32/float64 (float16, bfloat16), CPU autocast, and inputs whose dtype or device disagree with the weights (torch then raises its own
error).

Dropout between layers (train mode): the masks are drawn exactly as ``nn.LSTM`` draws them on
the CPU: one ``bernoulli_(1 - p)`` from torch's default generator over each inner layer's
output in time-major layout (T, B, D*H) -- over the packed data (N, D*H) for a PackedSequence --
divided by 1 - p, in layer order. Under the same ``torch.manual_seed`` a converted and a stock
module drop the same units, and their outputs and gradients agree to rounding in train mode too.

Gradients and memory: under ``torch.no_grad()`` / ``torch.inference_mode()``, or when nothing
requires a gradient, the forward keeps nothing for backward. With gradients, each module call
holds a set of per-layer workspaces (gate activations, states) until its backward, so a module
may be called several times before one backward (an encoder applied twice, a decoder loop).
``backward`` through a retained graph a second time (``retain_graph=True``) recomputes the
forward first; double backward (gradients of gradients) is not supported and raises.

Threads: inside these modules our kernels run on ``torch.get_num_threads()`` threads (set
with ``torch.set_num_threads``); both libraries then share one OpenMP pool. DataLoader worker
processes get one thread from torch, and so from us.

Not supported: ``torch.jit.script`` / ``torch.compile`` / ONNX export of a converted module
(revert first: ``lnt.convert(model, revert=True)``), forward-mode AD and ``torch.func``
transforms. NaN or infinity in the input or the incoming gradient raises ``ValueError``
(``lstm_native.NonFiniteError``) where torch would propagate it.

``nn.RNN`` (tanh and relu) runs on the core's RNN cells, and ``nn.LSTM(proj_size=P)`` on its
projected LSTM (``weight_hr_l{k}``: h and the output P wide, c hidden_size wide), as torch.
"""
from __future__ import annotations

import warnings
import weakref

try:
    import torch
    from torch import nn
    from torch.nn.utils.rnn import PackedSequence
except ImportError as exc:   # pragma: no cover - exercised in a subprocess without torch
    raise ImportError("lstm_native.torch needs PyTorch: install the extra with "
                      "`pip install \"lstm_native[torch]\"` (or `pip install torch`)") from exc

import numpy as np

from ._backend import core

__all__ = ["LSTM", "GRU", "RNN", "convert", "FallbackWarning"]

_DTYPES = (torch.float32, torch.float64)
_MAX_FREE_WORKSPACE_SETS = 2    # per module: enough for a training loop whose last graph is still alive


class FallbackWarning(UserWarning):
    """A converted module ran torch's own implementation (the message says why)."""


# -- workspaces ---------------------------------------------------------------------------------
# Per module, the free sets of per-layer C++ workspaces. Kept outside the module so that a
# converted module pickles, deep-copies and reverts exactly like torch's.
_POOLS: "weakref.WeakKeyDictionary[nn.Module, list]" = weakref.WeakKeyDictionary()


class _Lease:
    """One set of per-layer workspaces, held from a forward to its backward."""

    __slots__ = ("pool", "workspaces", "consumed")

    def __init__(self, module, layers: int):
        pool = _POOLS.get(module)
        if pool is None:
            pool = _POOLS[module] = []
        self.pool = pool
        self.workspaces = pool.pop() if pool else [core.RecurrentWorkspace() for _ in range(layers)]
        self.consumed = False

    def release(self):
        """Back to the module's pool (the buffers are reused by its next call)."""
        if not self.consumed:
            self.consumed = True
            if len(self.pool) < _MAX_FREE_WORKSPACE_SETS:
                self.pool.append(self.workspaces)

    def __del__(self):    # a graph dropped without backward: its buffers serve the next call
        try:
            self.release()
        except Exception:  # pragma: no cover - interpreter shutdown
            pass


# -- tensors <-> NumPy --------------------------------------------------------------------------
def _np(t):
    """A NumPy view of a CPU tensor's memory (a contiguous copy first when it is strided)."""
    if t is None:
        return None
    t = t.detach()
    if not t.is_contiguous():
        t = t.contiguous()
    return t.numpy()


class _Threads:
    """Our kernels run on torch's intra-op thread count inside a call; ours is restored after."""

    __slots__ = ("saved",)

    def __enter__(self):
        want = torch.get_num_threads()
        self.saved = core.get_num_threads()
        if want != self.saved:
            core.set_num_threads(want)

    def __exit__(self, *exc):
        if core.get_num_threads() != self.saved:
            core.set_num_threads(self.saved)
        return False


class _Call:
    """What one module call needs besides tensors: the stack's shape and its variable lengths."""

    __slots__ = ("module", "cell", "layers", "directions", "per_direction", "projected", "batch_first", "lengths",
                 "batch_sizes", "dropout", "keep", "state_size")

    def __init__(self, module, cell, batch_first, lengths, batch_sizes, dropout, keep):
        self.module = module
        self.cell = cell
        self.layers = module.num_layers
        self.directions = 2 if module.bidirectional else 1
        self.projected = getattr(module, "proj_size", 0) > 0
        self.per_direction = (4 if module.bias else 2) + self.projected   # torch's flat order: ..., w_hr last
        self.state_size = module.proj_size if self.projected else module.hidden_size   # h's width
        self.batch_first = batch_first
        self.lengths = lengths            # int64 NumPy (B,) or None
        self.batch_sizes = batch_sizes    # the PackedSequence's, for its dropout masks; else None
        self.dropout = dropout            # the probability, 0 outside train mode
        self.keep = keep                  # whether the forward keeps what backward needs

    def layer_weights(self, weights, layer: int):
        """Per direction, (w_ih, w_hh, b_ih, b_hh[, w_hr]) NumPy arrays (biases None without bias)."""
        k, D = self.per_direction, self.directions
        out = []
        for d in range(D):
            w = weights[(layer * D + d) * k:(layer * D + d + 1) * k]
            biases = (w[2], w[3]) if self.module.bias else (None, None)
            out.append((w[0], w[1]) + biases + ((w[-1],) if self.projected else ()))
        return out

    def dropout_mask(self, out):
        """The mask nn.LSTM would draw for this inner layer's output: a tensor, time-major (T, B, D*H)."""
        p = self.dropout
        dtype = _TORCH_DTYPE[out.dtype]
        if self.batch_sizes is not None:     # torch drops on the packed data: draw there, then pad
            noise = torch.empty((int(self.batch_sizes.sum()), out.shape[2]), dtype=dtype)
            noise.bernoulli_(1 - p).div_(1 - p)
            return torch._pad_packed_sequence(noise, self.batch_sizes, False, 0.0, out.shape[0])[0]
        steps, batch = (out.shape[1], out.shape[0]) if self.batch_first else out.shape[:2]
        noise = torch.empty((steps, batch, out.shape[2]), dtype=dtype)
        return noise.bernoulli_(1 - p).div_(1 - p)   # time-major, as torch's layer outputs are

    def in_layout(self, mask):
        """A time-major mask tensor as a NumPy view in the layers' layout."""
        m = mask.numpy()
        return m.transpose(1, 0, 2) if self.batch_first else m


_TORCH_DTYPE = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}


def _forward_stack(call, x, h0, c0, weights, workspaces):
    """The stack's forward on NumPy arrays: (out, h_n, c_n or None, each layer's input, the
    dropout mask tensors after each layer, None where none)."""
    L, D = call.layers, call.directions
    batch = x.shape[0] if call.batch_first else x.shape[1]
    h_n = np.empty((L * D, batch, call.state_size), x.dtype)
    c_n = np.empty((L * D, batch, call.module.hidden_size), x.dtype) if call.cell == "lstm" else None
    inputs, masks = [], []
    layer_input = x
    for layer in range(L):
        sl = slice(layer * D, (layer + 1) * D)
        out, h, c = core.recurrent_forward(
            call.cell, layer_input, call.batch_first, call.lengths, call.layer_weights(weights, layer),
            None if h0 is None else h0[sl], None if c0 is None else c0[sl], workspaces[layer], call.keep)
        h_n[sl] = h
        if c_n is not None:
            c_n[sl] = c
        inputs.append(layer_input)
        mask = None
        if call.dropout > 0 and layer < L - 1:
            mask = call.dropout_mask(out)
            out *= call.in_layout(mask)
        masks.append(mask)
        layer_input = out
    return layer_input, h_n, c_n, inputs, masks


class _RecurrentFunction(torch.autograd.Function):
    """A whole LSTM/GRU stack: inputs (call, x, h0, c0, *flat_weights), outputs (out, h_n[, c_n])."""

    @staticmethod
    def forward(ctx, call, x, h0, c0, *weights):
        ctx.set_materialize_grads(False)      # unused outputs give None: no zero arrays to read
        lease = _Lease(call.module, call.layers)
        xs = _np(x)
        with _Threads():
            out, h_n, c_n, inputs, masks = _forward_stack(
                call, xs, _np(h0), _np(c0), [_np(w) for w in weights], lease.workspaces)
        # Everything backward reads is saved through torch: torch checks that no input changed in
        # place before the backward, and frees it all after one unless the graph is retained.
        x_copy = [] if x.is_contiguous() else [torch.from_numpy(xs)]
        ctx.save_for_backward(x, h0, c0, *weights, *x_copy, *(torch.from_numpy(a) for a in inputs[1:]),
                              *(m for m in masks if m is not None))
        ctx.call, ctx.lease = call, lease
        ctx.layout = (len(weights), bool(x_copy), [m is not None for m in masks])
        result = (torch.from_numpy(out), torch.from_numpy(h_n))
        return result + ((torch.from_numpy(c_n),) if c_n is not None else ())

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, d_out, dh_n, dc_n=None):
        call, L, D = ctx.call, ctx.call.layers, ctx.call.directions
        n_weights, x_copied, has_mask = ctx.layout
        saved = ctx.saved_tensors
        x, h0, c0 = saved[:3]
        weights = saved[3:3 + n_weights]
        rest = iter(saved[3 + n_weights:])
        inputs = [_np(next(rest) if x_copied else x)] + [_np(next(rest)) for _ in range(L - 1)]
        masks = [call.in_layout(next(rest)) if m else None for m in has_mask]
        lease = ctx.lease
        if lease.consumed:   # a second backward through a retained graph: recompute the forward
            lease = ctx.lease = _Lease(call.module, L)
            w = [_np(t) for t in weights]
            h0n, c0n = _np(h0), _np(c0)
            with _Threads():
                for layer in range(L):
                    sl = slice(layer * D, (layer + 1) * D)
                    core.recurrent_forward(call.cell, inputs[layer], call.batch_first, call.lengths,
                                           call.layer_weights(w, layer), None if h0n is None else h0n[sl],
                                           None if c0n is None else c0n[sl], lease.workspaces[layer], True)
        grad = _np(d_out)
        dh_n, dc_n = _np(dh_n), _np(dc_n)
        batch = x.shape[0] if call.batch_first else x.shape[1]
        dh0 = np.empty((L * D, batch, call.state_size), inputs[0].dtype)
        dc0 = np.empty((L * D, batch, call.module.hidden_size), inputs[0].dtype) if call.cell == "lstm" else None
        param_grads = [np.zeros(w.shape, dh0.dtype) for w in weights]   # the core accumulates into them
        need_dx = ctx.needs_input_grad[1]
        dx = None
        with _Threads():
            for layer in reversed(range(L)):
                sl = slice(layer * D, (layer + 1) * D)
                dx, dh, dc = core.recurrent_backward(
                    call.cell, lease.workspaces[layer], inputs[layer], grad,
                    None if dh_n is None else dh_n[sl], None if dc_n is None else dc_n[sl],
                    call.layer_weights(param_grads, layer), layer > 0 or need_dx, None)
                dh0[sl] = dh
                if dc0 is not None:
                    dc0[sl] = dc
                if layer > 0:
                    grad = dx
                    if masks[layer - 1] is not None:
                        grad *= masks[layer - 1]
        lease.release()
        needs = ctx.needs_input_grad
        result = [None,
                  torch.from_numpy(dx) if need_dx else None,
                  torch.from_numpy(dh0) if needs[2] else None,
                  torch.from_numpy(dc0) if dc0 is not None and needs[3] else None]
        result += [torch.from_numpy(g) if needs[4 + i] else None for i, g in enumerate(param_grads)]
        return tuple(result)


def _autocast_on() -> bool:
    try:
        return torch.is_autocast_enabled("cpu")
    except TypeError:   # pragma: no cover - torch before 2.4
        return torch.is_autocast_cpu_enabled()


class _NativeRecurrent:
    """forward() of nn.LSTM / nn.GRU on our kernels; mixed in before the torch class."""

    _cell = ""

    def _fallback_reason(self, input):
        if input.device.type != "cpu":
            return f"input on {input.device}"
        if input.dtype not in _DTYPES:
            return f"dtype {input.dtype} (lstm_native runs float32 and float64)"
        for w in self._flat_weights:
            if w.device.type != "cpu" or w.dtype != input.dtype:
                return "weights on another device or dtype than the input"
        if _autocast_on():
            return "CPU autocast is on"
        return None

    def forward(self, input, hx=None):
        if hasattr(self, "_update_flat_weights"):
            self._update_flat_weights()   # weights swapped since the last call (torch.func.functional_call)
        packed = isinstance(input, PackedSequence)
        data = input.data if packed else input
        reason = self._fallback_reason(data)
        if reason is not None:
            warnings.warn(f"lstm_native.torch.{type(self).__name__} ran torch's implementation: {reason}",
                          FallbackWarning, stacklevel=2)
            return super().forward(input, hx)
        lstm = self._cell == "lstm"
        batch_first = self.batch_first
        lengths = batch_sizes = sorted_indices = unsorted_indices = None
        unbatched = False
        if packed:
            data, batch_sizes, sorted_indices, unsorted_indices = input
            # Padded, time-major, in the packed (length-sorted) order; lengths from batch_sizes.
            x, lengths_t = torch._pad_packed_sequence(data, batch_sizes, False, 0.0, batch_sizes.shape[0])
            lengths = lengths_t.numpy()
            batch_first = False
            if hx is not None:
                self.check_forward_args(data, hx, batch_sizes)
                hx = self.permute_hidden(hx, sorted_indices)
            else:
                self.check_input(data, batch_sizes)
        else:
            if input.dim() not in (2, 3):
                raise ValueError(f"{self.mode}: Expected input to be 2D or 3D, got {input.dim()}D instead")
            x = input
            unbatched = input.dim() == 2
            if unbatched:
                x = input.unsqueeze(0 if batch_first else 1)
                if hx is not None:
                    hx = (hx[0].unsqueeze(1), hx[1].unsqueeze(1)) if lstm else hx.unsqueeze(1)
            if hx is not None:
                self.check_forward_args(x, hx, None)
            else:
                self.check_input(x, None)
        h0, c0 = (hx if lstm else (hx, None)) if hx is not None else (None, None)

        weights = self._flat_weights
        dropout = self.dropout if self.training and self.num_layers > 1 else 0.0
        need_grad = torch.is_grad_enabled() and (
            x.requires_grad or any(w.requires_grad for w in weights)
            or (h0 is not None and h0.requires_grad) or (c0 is not None and c0.requires_grad))
        call = _Call(self, self._cell, batch_first, lengths, batch_sizes, dropout, need_grad)
        if need_grad:
            result = _RecurrentFunction.apply(call, x, h0, c0, *weights)
        else:   # nothing will need a backward: the core keeps nothing, no graph is built
            lease = _Lease(self, self.num_layers)
            try:
                with _Threads():
                    out, h_n, c_n, _, _ = _forward_stack(call, _np(x), _np(h0), _np(c0),
                                                         [_np(w) for w in weights], lease.workspaces)
            finally:
                lease.release()
            result = (torch.from_numpy(out), torch.from_numpy(h_n)) + \
                ((torch.from_numpy(c_n),) if c_n is not None else ())
        out, hidden = result[0], (result[1], result[2]) if lstm else result[1]

        if packed:
            out_data, _ = torch._pack_padded_sequence(out, lengths_t, False)
            return PackedSequence(out_data, batch_sizes, sorted_indices, unsorted_indices), \
                self.permute_hidden(hidden, unsorted_indices)
        if unbatched:
            out = out.squeeze(0 if batch_first else 1)
            hidden = (hidden[0].squeeze(1), hidden[1].squeeze(1)) if lstm else hidden.squeeze(1)
        return out, hidden


class LSTM(_NativeRecurrent, nn.LSTM):
    """``torch.nn.LSTM`` on lstm_native's kernels: same constructor, parameters and forward."""

    _cell = "lstm"


class GRU(_NativeRecurrent, nn.GRU):
    """``torch.nn.GRU`` on lstm_native's kernels: same constructor, parameters and forward."""

    _cell = "gru"


class RNN(_NativeRecurrent, nn.RNN):
    """``torch.nn.RNN`` (tanh or relu) on lstm_native's kernels: same constructor, parameters and forward."""

    @property
    def _cell(self):
        return "rnn_" + self.nonlinearity      # nn.RNN checked it is "tanh" or "relu"


_NATIVE = {nn.LSTM: LSTM, nn.GRU: GRU, nn.RNN: RNN}          # torch's class -> ours
_TORCH = {ours: theirs for theirs, ours in _NATIVE.items()}


def _cannot_serve(module) -> str | None:
    """Why a torch recurrent module stays torch's, or None when ours can run it."""
    params = list(module.parameters(recurse=False))
    devices = {p.device.type for p in params}
    if devices - {"cpu"}:
        return "on " + ", ".join(sorted(devices - {"cpu"}))
    dtypes = {p.dtype for p in params}
    if not dtypes <= set(_DTYPES) or len(dtypes) > 1:
        return "dtype " + ", ".join(sorted(str(d) for d in dtypes))
    return None


def convert(model, revert: bool = False):
    """Swaps every ``nn.LSTM`` / ``nn.GRU`` / ``nn.RNN`` inside ``model`` (``model`` itself included)
    for ``lnt.LSTM`` / ``lnt.GRU`` / ``lnt.RNN`` in place and returns ``model``; ``revert=True``
    swaps them back.

    The swap changes each module's class only: its Parameter objects (an optimizer built
    before holds the same ones), buffers, hooks and state_dict are untouched. Modules we cannot
    run stay torch's, listed in one warning: on another device than the CPU, dtypes other than
    float32/float64, and user subclasses of the torch classes (their own code is kept)."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    left = []
    for name, module in model.named_modules():
        cls = type(module)
        if revert:
            if cls in _TORCH:
                module.__class__ = _TORCH[cls]
            continue
        if cls in _NATIVE:
            reason = _cannot_serve(module)
            if reason is None:
                module.__class__ = _NATIVE[cls]
            else:
                left.append(f"{name or '(the model)'} ({cls.__name__}: {reason})")
        elif isinstance(module, nn.RNNBase) and cls not in _TORCH:
            left.append(f"{name or '(the model)'} ({cls.__name__}: a subclass with its own code)")
    if left:
        warnings.warn("lstm_native.torch.convert left these modules to torch: " + "; ".join(left),
                      FallbackWarning, stacklevel=2)
    return model
