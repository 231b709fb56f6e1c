"""Parameter: a trainable NumPy array and the gradient that backward passes accumulate into."""
from __future__ import annotations

import numpy as np


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


def parameter_list(parameters, who: str) -> list:
    """A list of Parameters from a module (anything with ``parameters()``), one Parameter or
    an iterable of them; TypeError naming `who` for anything else."""
    if isinstance(parameters, Parameter):
        return [parameters]
    if hasattr(parameters, "parameters") and callable(parameters.parameters):
        parameters = parameters.parameters()
    params = list(parameters)
    for p in params:
        if not isinstance(p, Parameter):
            raise TypeError(f"{who} takes Parameters (model.parameters()), got {type(p).__name__}")
    return params
