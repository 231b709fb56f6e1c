"""Parameter: a trainable NumPy array, the gradient that backward passes accumulate into, and a
version that changes whenever the array may have been written.

Layers prepare things from their weights once and keep them across calls (a recurrent layer's
packed matrices); the version says when to prepare again. Every write goes through ``.data``:
the library's (optimizer steps, load_state_dict, the initialisers) and the user's, so reading
``p.data`` counts as a possible write and moves the version on. A reference kept from an
earlier ``p.data`` could still write later without passing here again: while any such
reference is alive (``shared()``, which counts them), layers prepare anew on every call. The
library's own reads go through ``p.array``, a read-only view that changes nothing.
"""
from __future__ import annotations

import itertools
import sys

import numpy as np

_versions = itertools.count(1)   # one counter for all parameters: a layer's max version only grows


class Parameter:
    """A trainable array (``data``), its gradient (``grad``) and its version."""

    __slots__ = ("_data", "grad", "_version", "_read_only")

    def __init__(self, data: np.ndarray):
        self._data = np.ascontiguousarray(data)
        self._read_only = None
        self.grad = np.zeros_like(self._data)
        self._version = next(_versions)

    @property
    def data(self) -> np.ndarray:
        """The array, writeable (any write through it is seen by the layers' prepared copies)."""
        self.touch()
        return self._data

    @data.setter
    def data(self, value) -> None:
        self._data = value
        self._read_only = None
        self._version = next(_versions)

    @property
    def array(self) -> np.ndarray:
        """A read-only view of the array: no version change (the library's hot paths use this).
        Made once per array and kept: a stream step reads six of them (a new view each was 0.6 us)."""
        view = self._read_only
        if view is None:
            view = self._read_only = self._data.view()
            view.flags.writeable = False
        return view

    @property
    def version(self) -> int:
        return self._version

    def touch(self) -> None:
        """Marks the array as (possibly) written: a new version."""
        self._version = next(_versions)

    def shared(self) -> bool:
        """Whether anything besides this Parameter holds the array (a reference or a view kept
        from ``p.data``, an array given to the constructor), so could write it unseen."""
        own = 2 if self._read_only is None else 3  # this object's slot, the call's own reference, the view
        return sys.getrefcount(self._data) > own

    def __getstate__(self):
        # copies and pickles carry the array, not the cached view (a deep copy of a view is a
        # separate array that would no longer show writes to the copied one)
        return {"_data": self._data, "grad": self.grad, "_version": self._version}

    def __setstate__(self, state):
        for name, value in state.items():
            setattr(self, name, value)
        self._read_only = None

    @property
    def shape(self):
        return self._data.shape

    @property
    def dtype(self):
        return self._data.dtype

    def zero_grad(self) -> None:
        self.grad[...] = 0

    def __repr__(self) -> str:
        return f"Parameter(shape={self._data.shape}, dtype={self._data.dtype})"


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
