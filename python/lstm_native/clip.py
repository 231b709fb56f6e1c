"""Gradient clipping over many parameters at once (one C++ pass), as torch.nn.utils."""
from __future__ import annotations

import math
import numbers

import numpy as np

from ._backend import core
from .parameter import parameter_list


def _grads(parameters):
    grads = [p.grad for p in parameter_list(parameters, "clipping")]
    dtypes = {g.dtype for g in grads}
    if len(dtypes) > 1:
        raise TypeError("all gradients must share one dtype")
    return grads


def _limit(name, value) -> float:
    """A number > 0 (infinity allowed): float() took strings and True, gave None a bare
    float() error; a norm_type of 0 divided by zero, a negative one raised the wrong error."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {type(value).__name__} {value!r}")
    value = float(value)
    if not value > 0:
        raise ValueError(f"{name} must be > 0, got {value}")
    return value


def clip_grad_norm_(parameters, max_norm: float, norm_type: float = 2.0, error_if_nonfinite: bool = False) -> float:
    """Scales all gradients together so their joint norm is at most max_norm; returns the
    norm before clipping (as torch.nn.utils.clip_grad_norm_)."""
    max_norm = _limit("max_norm", max_norm)
    norm_type = _limit("norm_type", norm_type)
    grads = _grads(parameters)
    if not grads:
        return 0.0
    if norm_type in (2.0, math.inf):
        if error_if_nonfinite:
            total = core.grad_norm(grads, norm_type == math.inf)
        else:
            return core.clip_grad_norm(grads, max_norm, norm_type == math.inf)
    else:
        total = float(sum(np.sum(np.abs(g.astype(np.float64)) ** norm_type) for g in grads) ** (1 / norm_type))
    if not math.isfinite(total) and error_if_nonfinite:
        raise FloatingPointError(f"the total {norm_type}-norm of the gradients is {total}")
    coef = max_norm / (total + 1e-6)
    if coef < 1:
        for g in grads:
            g *= coef
    return total


def clip_grad_value_(parameters, clip_value: float) -> float:
    """Clamps every gradient element to [-clip_value, clip_value]; returns the joint 2-norm before."""
    clip_value = _limit("clip_value", clip_value)
    grads = _grads(parameters)
    return core.clip_grad_value(grads, clip_value) if grads else 0.0
