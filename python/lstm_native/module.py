"""The Module base class every layer and model derives from.

A Module holds Parameters (NumPy ``data`` and ``grad`` arrays, updated in place) and child
Modules, registered by plain attribute assignment as in PyTorch, so names, ``state_dict()``
keys and ``grads`` keys follow PyTorch's. There is no autograd: every layer writes its own
backward. The model-level conveniences (fit, evaluate, predict, save, stream) live here too
and call the training loop, the file format and the stream, which sit below this module
(none of them imports it).
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Iterator

import numpy as np

from . import io, registry, streaming, training
from ._checks import to_numpy
from .parameter import Parameter

__all__ = ["Module", "Parameter", "module_structure_version"]

# Bumped whenever any module gains or loses a parameter or child, so that parameters() can
# keep its list between calls (a training step asks for it in zero_grad and clipping).
_structure_version = 0


def module_structure_version() -> int:
    """Changes whenever any module gains, loses or replaces a parameter or child."""
    return _structure_version


class Module:
    """Base class: parameters, children, train/eval mode, state dicts and gradients.

    The layer contract. A layer implements some of these run paths; the base class supplies
    the rest from them:

    ``forward(x, ...)`` / ``backward(grad, need_input_grad=True)``
        The user's pair. forward keeps what backward needs unless ``ln.no_grad()`` is on;
        each forward serves one backward. backward accumulates parameter gradients into
        ``p.grad`` and returns the gradient w.r.t. forward's input, or None when
        ``need_input_grad`` is False (which every layer honours, skipping that work) or when
        the input has none (Embedding's integer ids). Layers with extra inputs or outputs
        (recurrent states, an attention query) return tuples, as their docstrings say.
    ``seq_forward(x, lengths=None)`` / ``seq_backward(grad, need_input_grad=True)``
        How a container (Sequential, Residual) runs a layer on a padded batch: one array in,
        one array out, the gradient of that array back. The defaults call forward/backward;
        ``lengths`` (B,) is passed to forward only when the class sets ``takes_lengths``.
        Layers whose forward returns more (recurrent layers drop their states) override them.
        seq_backward may return a lazy gradient (LastTimestep's LastStepGradient) that the
        layer below accepts or turns dense with ``np.asarray``.
    ``output_lengths(lengths)``
        The lengths after this layer: the same by default; shrunk by convolutions and
        pooling; None after layers that drop the time axis.
    ``seq_forward_state(x, state, lengths=None)`` -> (y, state)
        A whole sequence from a carried state (predict with ``initial_state``). Stateless
        layers take and return None; an LSTM's state is (h, c), a GRU's h, a container's a
        list with one entry per child.
    ``stream_step(x_t, state)`` -> (y_t, state)
        One time step of a stream (``model.stream()``). Layers acting on each step alone set
        ``stream_pointwise`` and get forward(x_t); recurrent layers carry their state; the
        rest need the whole sequence and raise from ``stream_check``.

    Every array a call returns belongs to the caller: no later call writes into it.
    """

    takes_lengths = False     # forward(x, lengths=...) accepts a padded batch's lengths
    stream_pointwise = False  # acts on each time step alone (streams call forward on x_t)
    carried_state = None      # the state a stateful fit ended with (see reset_states)

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        registry.register(cls)   # so that ln.load can rebuild any module by name

    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)

    # -- registration -------------------------------------------------------------
    def __setattr__(self, name, value):
        own = self.__dict__
        if "_parameters" not in own:
            raise AttributeError(f"{type(self).__name__}.__init__ must call super().__init__() first")
        if isinstance(value, (Parameter, Module)) or name in own["_parameters"] or name in own["_modules"]:
            global _structure_version
            _structure_version += 1
            # A replacement keeps its place (state_dict order, as PyTorch); anything else moves.
            if not (isinstance(value, Parameter) and name in own["_parameters"]):
                self._parameters.pop(name, None)
            if not (isinstance(value, Module) and name in own["_modules"]):
                self._modules.pop(name, None)
            if isinstance(value, Parameter):
                self._parameters[name] = value
            elif isinstance(value, Module):
                self._modules[name] = value
        object.__setattr__(self, name, value)

    def __delattr__(self, name):
        global _structure_version
        _structure_version += 1
        self._parameters.pop(name, None)
        self._modules.pop(name, None)
        object.__delattr__(self, name)

    def add_module(self, name: str, module: "Module") -> None:
        setattr(self, name, module)

    # -- traversal ----------------------------------------------------------------
    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Parameter]]:
        for name, p in self._parameters.items():
            yield prefix + name, p
        for name, child in self._modules.items():
            yield from child.named_parameters(prefix + name + ".")

    def parameters(self) -> list[Parameter]:
        cached = self.__dict__.get("_parameter_list")
        if cached is None or cached[0] != _structure_version:
            cached = (_structure_version, [p for _, p in self.named_parameters()])
            object.__setattr__(self, "_parameter_list", cached)
        return list(cached[1])

    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, "Module"]]:
        yield prefix.rstrip("."), self
        for name, child in self._modules.items():
            yield from child.named_modules(prefix + name + ".")

    def children(self) -> list["Module"]:
        return list(self._modules.values())

    # -- state ----------------------------------------------------------------------
    def state_dict(self) -> "OrderedDict[str, np.ndarray]":
        """Copies of every parameter, keyed by PyTorch-style dotted names."""
        return OrderedDict((name, p.array.copy()) for name, p in self.named_parameters())

    def load_state_dict(self, state: dict, strict: bool = True) -> None:
        """Copies arrays (or anything np.asarray takes, torch tensors included) into the
        parameters; every entry is checked before any is copied, so a bad one changes nothing."""
        own = OrderedDict(self.named_parameters())
        if strict:
            missing = [k for k in own if k not in state]
            unexpected = [k for k in state if k not in own]
            if missing or unexpected:
                raise KeyError(f"state_dict mismatch: missing {missing}, unexpected {unexpected}")
        values = {}
        for name, p in own.items():
            if name not in state:
                continue
            value = to_numpy(state[name], f"state_dict[{name!r}]")
            if value.shape != p.shape:
                raise ValueError(f"state_dict[{name!r}] has shape {value.shape}, the parameter has {p.shape}")
            if value.dtype.kind not in "fiu":
                raise TypeError(f"state_dict[{name!r}] must be numeric, got dtype {value.dtype}")
            values[name] = value
        for name, value in values.items():
            np.copyto(own[name].data, value, casting="unsafe")

    @property
    def grads(self) -> "OrderedDict[str, np.ndarray]":
        """The accumulated gradients, keyed like state_dict()."""
        return OrderedDict((name, p.grad) for name, p in self.named_parameters())

    def zero_grad(self) -> None:
        for p in self.parameters():
            p.zero_grad()

    def train(self, mode: bool = True) -> "Module":
        for _, m in self.named_modules():
            object.__setattr__(m, "training", mode)
        return self

    def eval(self) -> "Module":
        return self.train(False)

    def num_parameters(self) -> int:
        return int(sum(p.array.size for p in self.parameters()))

    # -- the run paths (see the class docstring) ---------------------------------------
    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} has no forward")

    def backward(self, grad, need_input_grad: bool = True):
        raise NotImplementedError(f"{type(self).__name__} has no backward")

    def seq_forward(self, x, lengths=None):
        if lengths is not None and self.takes_lengths:
            return self.forward(x, lengths=lengths)
        return self.forward(x)

    def seq_backward(self, grad, need_input_grad: bool = True):
        return self.backward(grad, need_input_grad=need_input_grad)

    def output_lengths(self, lengths):
        return lengths

    def seq_forward_state(self, x, state, lengths=None):
        """Whole-sequence forward from ``state``: (y, final state). Stateless layers: state None."""
        if state is not None:
            raise ValueError(f"{type(self).__name__} holds no state, but was given {type(state).__name__}")
        return self.seq_forward(x, lengths), None

    def stream_check(self) -> None:
        """Raises TypeError if this module cannot run one time step at a time."""
        if not self.stream_pointwise and type(self).stream_step is Module.stream_step:
            raise TypeError(f"{type(self).__name__} needs the whole sequence, so a model holding it cannot stream")

    def stream_step(self, x_t, state):
        """One time step of a stream: x_t (batch, features) -> (y_t, new state)."""
        self.stream_check()
        return self.forward(x_t), None

    # -- the model-level conveniences --------------------------------------------------
    def stream(self, initial_state=None):
        """An online predictor: ``s = model.stream(); y_t = s.step(x_t)`` gives the model's output
        for the series so far, as a whole-sequence call would, with O(1) work per step."""
        return streaming.Stream(self, initial_state)

    def fit(self, X, y, **kwargs):
        """Trains on (X, y) with batches along the first axis; returns a History. Arguments:
        loss ("mse", "mae", "cross_entropy", "bce_with_logits" or a function), optimizer
        (default Adam 1e-3), epochs, batch_size, clip_grad_norm, clip_grad_value,
        validation_data=(Xv, yv[, lengths_v]) or validation_split, lengths, callbacks,
        shuffle, verbose (0 silent, 1 progress bar, 2 a line per epoch), seed, scheduler,
        loss_kwargs (e.g. class weights), resume_from (a checkpoint path), metrics (names such as
        "mae", "rmse", "accuracy" or functions; see ln.metrics), stateful=True with tbptt_steps=k
        (long series in k-step chunks, state carried, gradients cut; see ln.tbptt), distributed
        (True: data-parallel over the MPI ranks when launched by mpiexec/srun; see ln.distributed)."""
        return training.fit(self, X, y, **kwargs)

    def reset_states(self) -> None:
        """Forgets the state a stateful fit left in ``carried_state`` (the next stateful epoch
        starts from zeros anyway)."""
        self.carried_state = None

    def evaluate(self, X, y, **kwargs) -> dict:
        return training.evaluate(self, X, y, **kwargs)

    def predict(self, X, lengths=None, batch_size=None, initial_state=None, return_state=False):
        """Outputs for X in eval mode. With initial_state (a state returned before) the
        sequences continue from it; return_state=True returns (outputs, final state), so a long
        series can be fed in chunks with the same result as one call."""
        return training.predict(self, X, lengths=lengths, batch_size=batch_size, initial_state=initial_state,
                                return_state=return_state)

    def save(self, path, include_optimizer: bool = True) -> None:
        """Writes architecture, weights and (after fit) optimizer state and history to one file;
        include_optimizer=False leaves the optimizer state out (a file for inference only)."""
        history = getattr(self, "history", None)
        io.save(self, path, getattr(self, "optimizer", None) if include_optimizer else None, None,
                None if history is None else {"epoch": len(history.epoch), "history": history.to_dict()})

    # -- description and persistence --------------------------------------------------
    def get_config(self) -> dict:
        """The constructor arguments that rebuild this module (used by save/load)."""
        return {}

    def to_config(self) -> dict:
        """The architecture as JSON-able data; containers override to include their children."""
        return {"class": registry.class_key(type(self)), "config": self.get_config()}

    @classmethod
    def from_config(cls, config: dict) -> "Module":
        return cls(**config.get("config", {}))

    @staticmethod
    def build(config: dict) -> "Module":
        """Rebuilds a module (with fresh weights) from to_config()'s output."""
        return registry.build(config)

    def buffers(self) -> dict:
        """Arrays besides parameters that define this module (the int8 weights of quantised
        layers); saved and loaded with the model."""
        return {}

    def load_buffers(self, arrays: dict) -> None:
        pass

    def get_extra_state(self):
        """State besides parameters that a resumed run needs (random generators); JSON-able or None."""
        return None

    def set_extra_state(self, state) -> None:
        pass

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())

    def __repr__(self) -> str:
        if not self._modules:
            return f"{type(self).__name__}({self.extra_repr()})"
        lines = [f"{type(self).__name__}("]
        for name, child in self._modules.items():
            lines.append("  (" + name + "): " + repr(child).replace("\n", "\n  "))
        lines.append(")")
        return "\n".join(lines)
