"""Optimizers with torch.optim's arithmetic, each step one fused C++ update over all
parameters. An optimizer holds Parameters (or a Module's parameters) and per-parameter state
buffers; ``lr`` is a plain attribute that schedulers change."""
from __future__ import annotations

import numpy as np

from .._backend import core
from ..parameter import parameter_list


class Optimizer:
    """Base class: parameters, their state buffers, zero_grad(), step(), state dicts."""

    buffers: tuple = ()       # names of per-parameter state buffers

    def __init__(self, params, lr: float):
        self.params = parameter_list(params, "an optimizer")
        if not self.params:
            raise ValueError("the optimizer got no parameters")
        dtypes = {p.dtype for p in self.params}
        if len(dtypes) != 1:
            raise TypeError(f"all parameters must share one dtype, got {sorted(map(str, dtypes))}")
        self.lr = _nonnegative("lr", lr)
        self.steps = 0
        self.state = {name: [np.zeros_like(p.array) for p in self.params] for name in self.buffers}

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad[...] = 0

    def step(self) -> None:
        self.steps += 1
        self._update([p.data for p in self.params], [p.grad for p in self.params])

    def _update(self, params, grads):
        raise NotImplementedError

    def hyperparameters(self) -> dict:
        raise NotImplementedError

    def state_dict(self) -> dict:
        """Hyperparameters, step count and state buffers (copies), for checkpoints."""
        return {"class": type(self).__name__, "hyperparameters": dict(self.hyperparameters(), lr=self.lr),
                "steps": self.steps, "buffers": {k: [b.copy() for b in v] for k, v in self.state.items()}}

    def load_state_dict(self, state: dict) -> None:
        if state["class"] != type(self).__name__:
            raise ValueError(f"this state is a {state['class']}'s, not a {type(self).__name__}'s")
        for name, arrays in state["buffers"].items():
            if name not in self.state or len(arrays) != len(self.params):
                raise ValueError(f"optimizer state buffer {name!r} does not fit these {len(self.params)} parameters")
            for mine, saved in zip(self.state[name], arrays):
                if mine.shape != np.shape(saved):
                    raise ValueError(f"optimizer state {name!r} has shape {np.shape(saved)}, expected {mine.shape}")
                np.copyto(mine, saved)
        self.steps = int(state["steps"])
        for key, value in state["hyperparameters"].items():
            setattr(self, key, value)

    def __repr__(self):
        hp = ", ".join(f"{k}={v!r}" for k, v in dict(lr=self.lr, **self.hyperparameters()).items())
        return f"{type(self).__name__}({hp})"


def _nonnegative(name, value):
    value = float(value)
    if not value >= 0:
        raise ValueError(f"{name} must be >= 0, got {value!r}")
    return value


def _fraction(name, value):
    value = float(value)
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {value!r}")
    return value


class SGD(Optimizer):
    """Stochastic gradient descent with optional momentum (dampening, Nesterov) and weight decay."""

    buffers = ("momentum_buffer",)

    def __init__(self, params, lr: float = 1e-3, momentum: float = 0.0, dampening: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False):
        self.momentum = _nonnegative("momentum", momentum)
        self.dampening = float(dampening)
        self.weight_decay = _nonnegative("weight_decay", weight_decay)
        self.nesterov = bool(nesterov)
        if self.nesterov and (self.momentum <= 0 or self.dampening != 0):
            raise ValueError("nesterov needs momentum > 0 and dampening = 0")
        if self.momentum == 0:
            self.buffers = ()
        super().__init__(params, lr)

    def _update(self, params, grads):
        core.sgd_step(params, grads, self.state.get("momentum_buffer"), self.lr, self.momentum, self.dampening,
                      self.weight_decay, self.nesterov, self.steps == 1)

    def hyperparameters(self):
        return dict(momentum=self.momentum, dampening=self.dampening, weight_decay=self.weight_decay,
                    nesterov=self.nesterov)


class Adam(Optimizer):
    """Adam (Kingma & Ba) with bias correction; weight_decay adds to the gradient (L2), as torch.optim.Adam."""

    buffers = ("exp_avg", "exp_avg_sq")
    decoupled = False

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.0,
                 amsgrad: bool = False):
        self.betas = (_fraction("betas[0]", betas[0]), _fraction("betas[1]", betas[1]))
        self.eps = _nonnegative("eps", eps)
        self.weight_decay = _nonnegative("weight_decay", weight_decay)
        self.amsgrad = bool(amsgrad)
        if self.amsgrad:
            self.buffers = self.buffers + ("max_exp_avg_sq",)
        super().__init__(params, lr)

    def _update(self, params, grads):
        core.adam_step(params, grads, self.state["exp_avg"], self.state["exp_avg_sq"],
                       self.state.get("max_exp_avg_sq"), self.lr, self.betas[0], self.betas[1], self.eps,
                       self.weight_decay, self.decoupled, self.amsgrad, self.steps)

    def hyperparameters(self):
        return dict(betas=list(self.betas), eps=self.eps, weight_decay=self.weight_decay, amsgrad=self.amsgrad)

    def load_state_dict(self, state):
        super().load_state_dict(state)
        self.betas = tuple(self.betas)


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter), as torch.optim.AdamW."""

    decoupled = True

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8, weight_decay: float = 1e-2,
                 amsgrad: bool = False):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad)


class RMSprop(Optimizer):
    """RMSprop with optional momentum and centering, as torch.optim.RMSprop."""

    def __init__(self, params, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8, weight_decay: float = 0.0,
                 momentum: float = 0.0, centered: bool = False):
        self.alpha = _fraction("alpha", alpha)
        self.eps = _nonnegative("eps", eps)
        self.weight_decay = _nonnegative("weight_decay", weight_decay)
        self.momentum = _nonnegative("momentum", momentum)
        self.centered = bool(centered)
        self.buffers = ("square_avg",) + (("grad_avg",) if self.centered else ()) + \
            (("momentum_buffer",) if self.momentum > 0 else ())
        super().__init__(params, lr)

    def _update(self, params, grads):
        core.rmsprop_step(params, grads, self.state["square_avg"], self.state.get("grad_avg"),
                          self.state.get("momentum_buffer"), self.lr, self.alpha, self.eps, self.weight_decay,
                          self.momentum, self.centered)

    def hyperparameters(self):
        return dict(alpha=self.alpha, eps=self.eps, weight_decay=self.weight_decay, momentum=self.momentum,
                    centered=self.centered)


class Adagrad(Optimizer):
    """Adagrad with optional learning-rate decay, as torch.optim.Adagrad."""

    buffers = ("sum",)

    def __init__(self, params, lr: float = 1e-2, lr_decay: float = 0.0, weight_decay: float = 0.0,
                 initial_accumulator_value: float = 0.0, eps: float = 1e-10):
        self.lr_decay = _nonnegative("lr_decay", lr_decay)
        self.weight_decay = _nonnegative("weight_decay", weight_decay)
        self.eps = _nonnegative("eps", eps)
        self.initial_accumulator_value = _nonnegative("initial_accumulator_value", initial_accumulator_value)
        super().__init__(params, lr)
        for s in self.state["sum"]:
            s[...] = self.initial_accumulator_value

    def _update(self, params, grads):
        core.adagrad_step(params, grads, self.state["sum"], self.lr, self.lr_decay, self.weight_decay, self.eps,
                          self.steps)

    def hyperparameters(self):
        return dict(lr_decay=self.lr_decay, weight_decay=self.weight_decay, eps=self.eps,
                    initial_accumulator_value=self.initial_accumulator_value)


OPTIMIZERS = {cls.__name__: cls for cls in (SGD, Adam, AdamW, RMSprop, Adagrad)}


def get(name: str, params, **kwargs) -> Optimizer:
    """An optimizer from its name ("adam", "sgd", ...)."""
    lookup = {k.lower(): v for k, v in OPTIMIZERS.items()}
    try:
        return lookup[name.lower()](params, **kwargs)
    except KeyError:
        raise ValueError(f"optimizer must be one of {sorted(OPTIMIZERS)}, got {name!r}") from None
