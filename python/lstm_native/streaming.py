"""Online prediction: feed a model one time step at a time with the state carried along.

    stream = model.stream()          # a Sequential of unidirectional recurrent layers and
    for x_t in live_feed:            # per-step layers (Linear, activations, LayerNorm, ...)
        y_t = stream.step(x_t)       # the output a whole-sequence call on x_1..x_t would give
    stream.reset()

Each step costs one step of each layer (O(1) in the length of the series so far).
"""
from __future__ import annotations

import numpy as np

from ._checks import NonFiniteError
from ._grad_mode import no_grad


def copy_state(state):
    """A deep copy of a model state (nested lists/tuples of arrays and None)."""
    if state is None:
        return None
    if isinstance(state, (list, tuple)):
        return type(state)(copy_state(s) for s in state)
    return np.array(state, copy=True)


def _finite(state) -> bool:
    if state is None:
        return True
    if isinstance(state, (list, tuple)):
        return all(_finite(s) for s in state)
    return state.dtype.kind not in "fc" or bool(np.isfinite(state).all())


class Stream:
    """Carries a model's state from one ``step`` to the next; see the module docstring."""

    def __init__(self, model, initial_state=None):
        model.stream_check()          # fail now, not at the first step, if a layer cannot stream
        self.model = model
        self.reset(initial_state)

    def reset(self, state=None) -> None:
        """Starts over from zeros, or from ``state`` (e.g. one returned by predict(..., return_state=True))."""
        self.state = copy_state(state)
        if not _finite(self.state):    # the steps update the state in place without checking it
            raise NonFiniteError("initial_state contains NaN or infinity")
        self.steps = 0

    def step(self, x_t):
        """x_t (batch, features) (or (features,) for one series; ids for an Embedding first
        layer) -> the model's output for this step, a new array."""
        with no_grad():     # nothing is kept for a backward pass
            y, self.state = self.model.stream_step(x_t, self.state)
        self.steps += 1
        y = np.array(y, copy=True)
        if not np.isfinite(y).all():   # one check of the output instead of one per layer
            raise ValueError(f"step {self.steps}: the model's output is not finite (NaN or inf); "
                             "check x_t and the model's weights")
        return y

    def __repr__(self) -> str:
        return f"Stream({type(self.model).__name__}, steps={self.steps})"
