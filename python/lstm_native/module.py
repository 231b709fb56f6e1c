"""Parameters and the Module base class every layer derives from.

A Module holds Parameters (NumPy ``data`` and ``grad`` arrays, updated in place) and child
Modules, registered by plain attribute assignment as in PyTorch, so names, ``state_dict()``
keys and ``grads`` keys follow PyTorch's. Every layer implements ``forward`` and
``backward``; there is no autograd.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Iterator

import numpy as np

from ._checks import to_numpy


class Parameter:
    """A trainable array and the gradient that backward passes accumulate into."""

    __slots__ = ("data", "grad")

    def __init__(self, data: np.ndarray):
        self.data = np.ascontiguousarray(data)
        self.grad = np.zeros_like(self.data)

    @property
    def shape(self):
        return self.data.shape

    @property
    def dtype(self):
        return self.data.dtype

    def zero_grad(self) -> None:
        self.grad[...] = 0

    def __repr__(self) -> str:
        return f"Parameter(shape={self.data.shape}, dtype={self.data.dtype})"


class Module:
    """Base class: parameters, children, train/eval mode, state dicts and gradients."""

    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)

    # -- registration -------------------------------------------------------------
    def __setattr__(self, name, value):
        if "_parameters" not in self.__dict__:
            raise AttributeError(f"{type(self).__name__}.__init__ must call super().__init__() first")
        self._parameters.pop(name, None)
        self._modules.pop(name, None)
        if isinstance(value, Parameter):
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._modules[name] = value
        object.__setattr__(self, name, value)

    def __delattr__(self, name):
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
        return [p for _, p in self.named_parameters()]

    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, "Module"]]:
        yield prefix.rstrip("."), self
        for name, child in self._modules.items():
            yield from child.named_modules(prefix + name + ".")

    def children(self) -> list["Module"]:
        return list(self._modules.values())

    # -- state ----------------------------------------------------------------------
    def state_dict(self) -> "OrderedDict[str, np.ndarray]":
        """Copies of every parameter, keyed by PyTorch-style dotted names."""
        return OrderedDict((name, p.data.copy()) for name, p in self.named_parameters())

    def load_state_dict(self, state: dict, strict: bool = True) -> None:
        """Copies arrays (or anything np.asarray takes, torch tensors included) into the parameters."""
        own = OrderedDict(self.named_parameters())
        if strict:
            missing = [k for k in own if k not in state]
            unexpected = [k for k in state if k not in own]
            if missing or unexpected:
                raise KeyError(f"state_dict mismatch: missing {missing}, unexpected {unexpected}")
        for name, p in own.items():
            if name not in state:
                continue
            value = to_numpy(state[name], f"state_dict[{name!r}]")
            if value.shape != p.data.shape:
                raise ValueError(f"state_dict[{name!r}] has shape {value.shape}, the parameter has {p.data.shape}")
            if value.dtype.kind not in "fiu":
                raise TypeError(f"state_dict[{name!r}] must be numeric, got dtype {value.dtype}")
            np.copyto(p.data, value, casting="unsafe")

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
        return int(sum(p.data.size for p in self.parameters()))

    # -- computation --------------------------------------------------------------
    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} has no forward")

    def backward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} has no backward")

    # How a container (Sequential) runs this module on a padded batch: a tensor in, a
    # tensor out, lengths passed to those that use them. Recurrent layers override these
    # to drop their states; layers that change the time axis override output_lengths.
    def seq_forward(self, x, lengths=None):
        return self.forward(x)

    def seq_backward(self, grad, need_input_grad: bool = True):
        return self.backward(grad)

    def output_lengths(self, lengths):
        return lengths

    # -- description ----------------------------------------------------------------
    def get_config(self) -> dict:
        """The constructor arguments that rebuild this module (used by save/load)."""
        return {}

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
