"""Sequential: layers applied in order, with lengths threaded through to those that use them."""
from __future__ import annotations

from .module import Module


class Sequential(Module):
    """``Sequential(ln.LSTM(1, 64, batch_first=True), ln.LastTimestep(), ln.Linear(64, 1))``.

    Indexable (``model[0]``); state_dict keys are prefixed with the index (``0.weight_ih_l0``).
    ``forward(x, lengths=None)`` hands lengths to each layer that uses them (recurrent layers,
    LastTimestep, attention, masking); ``backward(grad)`` runs the layers in reverse. The
    first layer's input gradient is skipped unless ``need_input_grad=True``.
    """

    takes_lengths = True

    def __init__(self, *layers: Module):
        super().__init__()
        for layer in layers:
            self.append(layer)

    def append(self, layer: Module) -> "Sequential":
        if not isinstance(layer, Module):
            raise TypeError(f"Sequential takes Modules, got {type(layer).__name__}")
        setattr(self, str(len(self._modules)), layer)
        return self

    def __getitem__(self, index):
        layers = list(self._modules.values())
        if isinstance(index, slice):
            return Sequential(*layers[index])
        return layers[index]

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def forward(self, x, lengths=None):
        for layer in self:
            x = layer.seq_forward(x, lengths)
            lengths = layer.output_lengths(lengths)
        return x

    def backward(self, grad, need_input_grad: bool = False):
        layers = list(self)
        for i in reversed(range(len(layers))):
            grad = layers[i].seq_backward(grad, need_input_grad=i > 0 or need_input_grad)
            if grad is None and i > 0:
                raise ValueError(f"layer {i} ({type(layers[i]).__name__}) gives no input gradient, "
                                 "so it can only be the first layer")
        return grad

    def output_lengths(self, lengths):
        for layer in self:
            lengths = layer.output_lengths(lengths)
        return lengths

    def stream_check(self):
        for layer in self:
            layer.stream_check()

    def stream_step(self, x_t, state):
        state = [None] * len(self) if state is None else state
        new_state = []
        for layer, s in zip(self, state):
            x_t, s = layer.stream_step(x_t, s)
            new_state.append(s)
        return x_t, new_state

    def seq_forward_state(self, x, state, lengths=None):
        if state is None:
            state = [None] * len(self)
        elif not isinstance(state, (list, tuple)) or len(state) != len(self):
            raise ValueError(f"state must be a list of {len(self)} entries (one per layer, None for stateless "
                             f"layers), got {type(state).__name__}" + (f" of {len(state)}" if isinstance(state, (list, tuple)) else ""))
        new_state = []
        for layer, s in zip(self, state):
            x, s = layer.seq_forward_state(x, s, lengths)
            lengths = layer.output_lengths(lengths)
            new_state.append(s)
        return x, new_state

    def to_config(self):
        return {"class": "Sequential", "layers": [layer.to_config() for layer in self]}

    @classmethod
    def from_config(cls, config):
        return cls(*(Module.build(c) for c in config["layers"]))
