"""Learning-rate schedules, as torch.optim.lr_scheduler: call ``step()`` once per epoch
(``fit`` does), ``ReduceLROnPlateau.step(metric)`` with the monitored value."""
from __future__ import annotations

import math
import numbers

from .optimizers import _nonnegative, _number


def _count(name, value, low: int) -> int:
    """An integer >= low (not a bool, float or string: int() truncated 2.5, and "3" < 1 raised a
    bare TypeError)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__} {value!r}")
    if value < low:
        raise ValueError(f"{name} must be >= {low}, got {value!r}")
    return int(value)


def _factor(name, value, low_open: bool) -> float:
    value = _number(name, value)
    if not ((value > 0) if low_open else (value >= 0)) or value > 1:
        raise ValueError(f"{name} must be in {'(0' if low_open else '[0'}, 1], got {value!r}")
    return value


class LRScheduler:
    """Sets ``optimizer.lr`` from the base rate and the epoch count."""

    def __init__(self, optimizer):
        self.optimizer = optimizer
        self.base_lr = optimizer.lr
        self.last_epoch = 0
        self.optimizer.lr = self.lr_at(0)

    def lr_at(self, epoch: int) -> float:
        raise NotImplementedError

    def step(self, metric=None) -> None:
        self.last_epoch += 1
        self.optimizer.lr = self.lr_at(self.last_epoch)

    def get_last_lr(self) -> list:
        return [self.optimizer.lr]

    def state_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "optimizer"}

    def load_state_dict(self, state: dict) -> None:
        self.__dict__.update(state)
        self.optimizer.lr = self.lr_at(self.last_epoch) if not isinstance(self, ReduceLROnPlateau) else state["lr"]


class StepLR(LRScheduler):
    """lr = base_lr * gamma ** (epoch // step_size)."""

    def __init__(self, optimizer, step_size: int, gamma: float = 0.1):
        self.step_size, self.gamma = _count("step_size", step_size, 1), _nonnegative("gamma", gamma)
        super().__init__(optimizer)

    def lr_at(self, epoch):
        return self.base_lr * self.gamma ** (epoch // self.step_size)


class ExponentialLR(LRScheduler):
    """lr = base_lr * gamma ** epoch."""

    def __init__(self, optimizer, gamma: float):
        self.gamma = _nonnegative("gamma", gamma)
        super().__init__(optimizer)

    def lr_at(self, epoch):
        return self.base_lr * self.gamma ** epoch


class CosineAnnealingLR(LRScheduler):
    """lr = eta_min + (base_lr - eta_min) * (1 + cos(pi * epoch / T_max)) / 2."""

    def __init__(self, optimizer, T_max: int, eta_min: float = 0.0):
        self.T_max, self.eta_min = _count("T_max", T_max, 1), _nonnegative("eta_min", eta_min)
        super().__init__(optimizer)

    def lr_at(self, epoch):
        return self.eta_min + (self.base_lr - self.eta_min) * (1 + math.cos(math.pi * epoch / self.T_max)) / 2


class LinearLR(LRScheduler):
    """Scales base_lr linearly from start_factor to end_factor over total_iters epochs, then holds."""

    def __init__(self, optimizer, start_factor: float = 1 / 3, end_factor: float = 1.0, total_iters: int = 5):
        self.start_factor = _factor("start_factor", start_factor, low_open=True)
        self.end_factor = _factor("end_factor", end_factor, low_open=False)
        self.total_iters = _count("total_iters", total_iters, 0)   # negative ones gave negative rates
        super().__init__(optimizer)

    def lr_at(self, epoch):
        progress = min(epoch, self.total_iters) / max(self.total_iters, 1)
        return self.base_lr * (self.start_factor + (self.end_factor - self.start_factor) * progress)


class LinearWarmup(LinearLR):
    """Linear warmup from start_factor * lr to lr over warmup_epochs, then constant."""

    def __init__(self, optimizer, warmup_epochs: int, start_factor: float = 0.1):
        super().__init__(optimizer, start_factor, 1.0, _count("warmup_epochs", warmup_epochs, 0))


class ReduceLROnPlateau(LRScheduler):
    """Multiplies lr by factor when the metric has not improved for `patience` epochs."""

    def __init__(self, optimizer, mode: str = "min", factor: float = 0.1, patience: int = 10,
                 threshold: float = 1e-4, threshold_mode: str = "rel", cooldown: int = 0, min_lr: float = 0.0,
                 eps: float = 1e-8):
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        if threshold_mode not in ("rel", "abs"):
            raise ValueError(f"threshold_mode must be 'rel' or 'abs', got {threshold_mode!r}")
        factor = _number("factor", factor)
        if not 0 < factor < 1:
            raise ValueError(f"factor must be in (0, 1), got {factor}")
        self.mode, self.factor, self.patience = mode, factor, _count("patience", patience, 0)
        self.threshold, self.threshold_mode = _nonnegative("threshold", threshold), threshold_mode
        self.cooldown = _count("cooldown", cooldown, 0)
        self.min_lr, self.eps = _nonnegative("min_lr", min_lr), _nonnegative("eps", eps)
        self.best = math.inf if mode == "min" else -math.inf
        self.num_bad_epochs = 0
        self.cooldown_counter = 0
        self.optimizer = optimizer
        self.last_epoch = 0
        self.lr = optimizer.lr

    def _better(self, value):
        if self.mode == "min":
            bound = self.best * (1 - self.threshold) if self.threshold_mode == "rel" else self.best - self.threshold
            return value < bound
        bound = self.best * (1 + self.threshold) if self.threshold_mode == "rel" else self.best + self.threshold
        return value > bound

    def step(self, metric=None):
        if metric is None:
            raise ValueError("ReduceLROnPlateau.step needs the monitored metric")
        try:   # a number, a 0-d array or a one-element tensor; not a string ("0.5" would parse)
            if isinstance(metric, (str, bytes, bool)):
                raise TypeError
            metric = float(metric)     # NaN counts as no improvement, as in torch
        except (TypeError, ValueError):
            raise TypeError(f"metric must be a number, got {type(metric).__name__} {metric!r}") from None
        self.last_epoch += 1
        if self._better(metric):
            self.best, self.num_bad_epochs = metric, 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0
        if self.num_bad_epochs > self.patience:
            new_lr = max(self.optimizer.lr * self.factor, self.min_lr)
            if self.optimizer.lr - new_lr > self.eps:
                self.optimizer.lr = new_lr
            self.cooldown_counter, self.num_bad_epochs = self.cooldown, 0
        self.lr = self.optimizer.lr


SCHEDULERS = {cls.__name__: cls for cls in (StepLR, ExponentialLR, CosineAnnealingLR, LinearLR, LinearWarmup,
                                             ReduceLROnPlateau)}
