"""Losses. Each returns ``(value, gradient)``: the mean loss as a float and its gradient with
respect to the prediction (same shape and dtype). ``mask`` (a bool array over the leading
axes of the prediction, such as (B, T) for per-step outputs) restricts a loss to valid
positions; ``ops.length_mask(lengths, B, T)`` builds one from sequence lengths."""
from __future__ import annotations

import numpy as np

from . import ops
from ._checks import float_input, to_numpy


def _prepare(pred, target, mask, name):
    try:
        pred = float_input(pred, "pred")     # native byte order, so that the gradient is too
    except TypeError:
        raise TypeError(f"{name}: pred must be floating-point, got dtype {to_numpy(pred, 'pred').dtype}") from None
    # C order: NumPy sums in memory order, so a Fortran-ordered or strided prediction gave a
    # loss differing in the last bit from its contiguous copy's
    pred = np.asarray(pred, order="C")
    target = np.asarray(to_numpy(target, "target"), order="C")
    if target.dtype.kind not in "fiub":   # objects and strings went on to astype(float64)
        raise TypeError(f"{name}: target must be numeric, got dtype {target.dtype}")
    if mask is not None:
        mask = np.asarray(mask, bool)
        if mask.shape != pred.shape[:mask.ndim]:
            raise ValueError(f"{name}: mask must cover the leading axes of pred {pred.shape}, got shape {mask.shape}")
        mask = mask.reshape(mask.shape + (1,) * (pred.ndim - mask.ndim))
    return pred, target, mask


def _same_shape(target, pred):
    """target reshaped to pred's shape when they differ only by axes of size 1 ((N,) vs (N, 1))."""
    if target.shape != pred.shape and target.size == pred.size and \
            tuple(d for d in target.shape if d != 1) == tuple(d for d in pred.shape if d != 1):
        return target.reshape(pred.shape)
    return target


def _gradient(grad64, pred, name):
    """The float64 gradient in pred's dtype; a value past that dtype's range (float16 holds up
    to 65504) would become inf there and every parameter behind it NaN, so it is refused."""
    with np.errstate(over="ignore"):       # an overflow is reported below, as an error
        grad = grad64.astype(pred.dtype, copy=False)
    if grad.dtype != np.float64 and not np.isfinite(grad).all() and np.isfinite(grad64).all():
        raise ValueError(f"{name}: the gradient overflows pred's dtype {pred.dtype} (|gradient| up to "
                         f"{np.max(np.abs(grad64)):.3g}, {pred.dtype} holds up to {np.finfo(pred.dtype).max:.3g}): "
                         f"pass pred as float32 or float64, or scale the target")
    return grad


def _elementwise(pred, target, mask, name, value_fn, grad_fn):
    pred, target, mask = _prepare(pred, target, mask, name)
    target = _same_shape(target, pred)
    if target.shape != pred.shape:
        raise ValueError(f"{name}: target must have the prediction's shape {pred.shape}, got {target.shape}")
    diff = pred.astype(np.float64) - target.astype(np.float64)   # the mean in double: no overflow, exact sums
    if mask is None:
        count = diff.size
        weight = 1.0
    else:
        weight = np.broadcast_to(mask, diff.shape)
        count = int(weight.sum())
    if count == 0:
        return 0.0, np.zeros_like(pred)
    value = float(np.sum(value_fn(diff) * weight) / count)
    # times (weight / count), as mse's fast path scales by 2 / n: the same bits either way
    return value, _gradient(grad_fn(diff) * (weight / count), pred, name)


def mse(pred, target, mask=None):
    """Mean squared error (torch.nn.MSELoss)."""
    if mask is None and type(pred) is np.ndarray and type(target) is np.ndarray and pred.shape == target.shape \
            and pred.dtype.kind == "f" and pred.dtype.isnative and target.dtype.kind in "fiub" and pred.size \
            and pred.flags.c_contiguous and target.flags.c_contiguous:
        # The common case in a few NumPy calls (the general path costs ~12 us on a small batch).
        diff = pred.astype(np.float64)
        diff -= target
        value = float(np.square(diff).sum() / diff.size)
        diff *= 2.0 / diff.size
        return value, _gradient(diff, pred, "mse")
    return _elementwise(pred, target, mask, "mse", lambda d: d * d, lambda d: 2 * d)


def mae(pred, target, mask=None):
    """Mean absolute error (torch.nn.L1Loss)."""
    return _elementwise(pred, target, mask, "mae", np.abs, np.sign)


def cross_entropy(logits, target, weight=None, ignore_index: int = -100, mask=None):
    """Softmax cross-entropy of logits (N, C) or (B, T, C) against integer labels (N,) or (B, T),
    as torch.nn.CrossEntropyLoss: optional class weights (C,) give the weighted mean;
    labels equal to ignore_index, or masked out, do not count. Stable (log-sum-exp)."""
    if mask is not None and np.ndim(mask) >= np.ndim(logits):   # a mask is per position, never per class
        raise ValueError(f"cross_entropy: mask must cover the leading axes of target (the logits' shape without "
                         f"the class axis), got shape {np.shape(mask)} for logits {np.shape(logits)}")
    logits, target, mask = _prepare(logits, target, mask, "cross_entropy")
    if logits.ndim < 2:
        raise ValueError(f"cross_entropy: logits must be (N, C) or (B, T, C), got shape {logits.shape}")
    if target.dtype.kind not in "iu":
        raise TypeError(f"cross_entropy: target must hold integer class labels, got dtype {target.dtype}")
    C = logits.shape[-1]
    if C == 0:
        raise ValueError(f"cross_entropy: logits must have at least one class in the last axis, got shape {logits.shape}")
    if target.shape != logits.shape[:-1]:
        raise ValueError(f"cross_entropy: target must have shape {logits.shape[:-1]}, got {target.shape}")
    flat_logits = logits.reshape(-1, C)
    labels = target.reshape(-1).astype(np.int64)
    valid = labels != ignore_index
    if mask is not None:
        valid &= np.broadcast_to(mask[..., 0], target.shape).reshape(-1)
    bad = valid & ((labels < 0) | (labels >= C))
    if bad.any():
        raise ValueError(f"cross_entropy: target labels must be in [0, {C}), found {int(labels[bad][0])}")
    safe = np.where(valid, labels, 0)
    w = np.ones(C, np.float64) if weight is None else to_numpy(weight, "weight")
    if w.dtype.kind not in "fiu":      # strings and objects went on to a bare "could not convert"
        raise TypeError(f"cross_entropy: weight must be numeric, got dtype {w.dtype}")
    w = w.astype(np.float64)
    if w.shape != (C,):
        raise ValueError(f"cross_entropy: weight must have shape ({C},), got {w.shape}")
    sample_w = np.where(valid, w[safe], 0.0)
    total = sample_w.sum()
    if total == 0:
        return 0.0, np.zeros_like(logits)
    log_p = ops.log_softmax(flat_logits.astype(np.float64))
    rows = np.arange(labels.size)
    value = float(-(sample_w * log_p[rows, safe]).sum() / total)
    grad = np.exp(log_p)
    grad[rows, safe] -= 1
    grad *= (sample_w / total)[:, None]
    return value, grad.reshape(logits.shape).astype(logits.dtype)


def bce_with_logits(logits, target, pos_weight=None, mask=None):
    """Binary cross-entropy on logits (torch.nn.BCEWithLogitsLoss), with optional pos_weight."""
    logits, target, mask = _prepare(logits, target, mask, "bce_with_logits")
    target = _same_shape(target, logits)
    if target.shape != logits.shape:
        raise ValueError(f"bce_with_logits: target must have the logits' shape {logits.shape}, got {target.shape}")
    x = logits.astype(np.float64)
    y = target.astype(np.float64)
    log_weight = 1.0
    if pos_weight is not None:
        pw = to_numpy(pos_weight, "pos_weight")
        if pw.dtype.kind not in "fiu":
            raise TypeError(f"bce_with_logits: pos_weight must be numeric, got dtype {pw.dtype}")
        try:
            fits = np.broadcast_shapes(pw.shape, x.shape) == x.shape
        except ValueError:
            fits = False
        if not fits:
            raise ValueError(f"bce_with_logits: pos_weight of shape {pw.shape} does not broadcast to the logits' "
                             f"shape {x.shape}")
        log_weight = 1.0 + (pw.astype(np.float64) - 1.0) * y
    softplus_neg = np.log1p(np.exp(-np.abs(x))) + np.maximum(-x, 0)     # log(1 + e^-x), stably
    loss = (1 - y) * x + log_weight * softplus_neg
    grad = (1 - y) - log_weight * ops.sigmoid(-x)
    if mask is None:
        weight, count = 1.0, loss.size
    else:
        weight = np.broadcast_to(mask, loss.shape)
        count = int(weight.sum())
    if count == 0:
        return 0.0, np.zeros_like(logits)
    return float(np.sum(loss * weight) / count), (grad * weight / count).astype(logits.dtype)


def bce(prob, target, weight=None, mask=None):
    """Binary cross-entropy on probabilities (after a Sigmoid), as torch.nn.BCELoss: each log
    is clamped at -100, so p = 0 or 1 gives a finite loss, and the gradient
    (p - y) / max(p (1 - p), 1e-12) is torch's. Optional weight broadcasts against prob."""
    prob, target, mask = _prepare(prob, target, mask, "bce")
    target = _same_shape(target, prob)
    if target.shape != prob.shape:
        raise ValueError(f"bce: target must have the prediction's shape {prob.shape}, got {target.shape}")
    p = prob.astype(np.float64)
    if p.size and not (p.min() >= 0 and p.max() <= 1):    # NaN fails too
        raise ValueError("bce: pred must hold probabilities in [0, 1] (put a Sigmoid last, or use "
                         "bce_with_logits on logits)")
    y = target.astype(np.float64)
    with np.errstate(divide="ignore"):
        loss = -(y * np.maximum(np.log(p), -100.0) + (1 - y) * np.maximum(np.log1p(-p), -100.0))
    grad = (p - y) / np.maximum(p * (1 - p), 1e-12)
    w = 1.0 if weight is None else np.broadcast_to(np.asarray(weight, np.float64), p.shape)
    if mask is None:
        keep, count = 1.0, loss.size
    else:
        keep = np.broadcast_to(mask, loss.shape)
        count = int(keep.sum())
    if count == 0:
        return 0.0, np.zeros_like(prob)
    return float(np.sum(w * loss * keep) / count), (w * grad * keep / count).astype(prob.dtype)


LOSSES = {"mse": mse, "mean_squared_error": mse, "mae": mae, "l1": mae, "mean_absolute_error": mae,
          "cross_entropy": cross_entropy, "bce_with_logits": bce_with_logits, "bce": bce,
          "binary_crossentropy": bce}
CLASSIFICATION = {cross_entropy, bce_with_logits, bce}


def get(loss):
    """A loss function from its name (or the function itself)."""
    if callable(loss):
        return loss
    try:
        return LOSSES[loss]
    except KeyError:
        raise ValueError(f"loss must be one of {sorted(LOSSES)} or a function, got {loss!r}") from None


def accuracy(pred, target, loss_fn, mask=None):
    """(correct, counted) for classification losses; None for others."""
    if loss_fn is cross_entropy:
        hits = np.argmax(pred, axis=-1) == target
        valid = np.ones(hits.shape, bool) if mask is None else np.broadcast_to(mask, hits.shape)
    elif loss_fn in (bce_with_logits, bce):
        threshold = 0.0 if loss_fn is bce_with_logits else 0.5     # logits or probabilities
        hits = (np.asarray(pred) > threshold) == (_same_shape(np.asarray(target), np.asarray(pred)) > 0.5)
        valid = np.ones(hits.shape, bool) if mask is None else np.broadcast_to(
            np.asarray(mask, bool).reshape(mask.shape + (1,) * (hits.ndim - np.ndim(mask))), hits.shape)
    else:
        return None
    return int((hits & valid).sum()), int(valid.sum())
