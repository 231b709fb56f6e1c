"""Metrics for ``fit(metrics=[...])`` and ``evaluate``: reported per epoch beside the loss.

A metric is a name ("mae", "mse", "rmse", "accuracy", "binary_accuracy") or a function
``fn(pred, target, mask)`` called on every batch, where mask is None or a bool array over the
leading axes of pred (the valid steps of a padded batch, as the losses take it). The function
returns either

* a number: the epoch value is its mean over batches weighted by batch size, or
* a pair ``(total, count)``: the epoch value is sum(total) / sum(count) over the batches, the
  exact mean over elements however the batches fall (the built-in metrics work so).

A function's name in ``history`` is its ``name`` attribute or else its ``__name__``; with
validation data, ``val_<name>`` too. Keras's aliases ("acc", "mean_absolute_error") work.
"""
from __future__ import annotations

import math

import numpy as np

from . import losses

__all__ = ["get", "MetricSet", "mae", "mse", "rmse", "accuracy", "binary_accuracy"]


def _diff(pred, target, mask):
    pred = np.asarray(pred, np.float64)
    target = losses._same_shape(np.asarray(target, np.float64), pred)
    if target.shape != pred.shape:
        raise ValueError(f"metric: target must have the prediction's shape {pred.shape}, got {target.shape}")
    diff = pred - target
    if mask is None:
        return diff.reshape(-1)
    keep = np.broadcast_to(np.asarray(mask, bool).reshape(np.shape(mask) + (1,) * (diff.ndim - np.ndim(mask))),
                           diff.shape)
    return diff[keep]


def mae(pred, target, mask=None):
    """Mean absolute error, as (sum, count)."""
    d = _diff(pred, target, mask)
    return float(np.abs(d).sum()), d.size


def mse(pred, target, mask=None):
    """Mean squared error, as (sum, count)."""
    d = _diff(pred, target, mask)
    return float(np.square(d).sum()), d.size


def binary_accuracy(pred, target, mask=None, threshold=0.5):
    """Share of predictions on the right side of threshold (0.5 for probabilities), as (hits, count)."""
    pred = np.asarray(pred)
    target = losses._same_shape(np.asarray(target), pred)
    hits = (pred > threshold) == (target > 0.5)
    if mask is not None:
        hits = hits[np.broadcast_to(np.asarray(mask, bool).reshape(np.shape(mask) + (1,) * (hits.ndim - np.ndim(mask))),
                                    hits.shape)]
    return int(hits.sum()), int(hits.size)


def categorical_accuracy(pred, target, mask=None):
    """Share of argmax predictions equal to integer labels (negative labels, such as
    cross_entropy's ignore_index -100, do not count), as (hits, count)."""
    target = np.asarray(target)
    valid = target >= 0
    if mask is not None:
        valid = valid & np.broadcast_to(np.asarray(mask, bool).reshape(np.shape(mask) + (1,) * (valid.ndim - np.ndim(mask))),
                                        valid.shape)
    hits = (np.argmax(pred, axis=-1) == target) & valid
    return int(hits.sum()), int(valid.sum())


def accuracy(pred, target, mask=None):
    """Categorical (argmax) accuracy for integer labels one axis short of pred; binary
    (threshold 0.5) accuracy otherwise."""
    target = np.asarray(target)
    if target.dtype.kind in "iu" and np.ndim(pred) == target.ndim + 1 and np.shape(pred)[-1] > 1:
        return categorical_accuracy(pred, target, mask)
    return binary_accuracy(pred, target, mask)


def _logit_accuracy(pred, target, mask=None):
    return binary_accuracy(pred, target, mask, threshold=0.0)


class _RootMean:
    """rmse: the root of the epoch's mean squared error (not a mean of per-batch roots)."""
    name = "rmse"
    root = True

    def __call__(self, pred, target, mask=None):
        return mse(pred, target, mask)


rmse = _RootMean()

_NAMES = {"mae": mae, "mean_absolute_error": mae, "mse": mse, "mean_squared_error": mse, "rmse": rmse,
          "root_mean_squared_error": rmse, "accuracy": accuracy, "acc": accuracy,
          "binary_accuracy": binary_accuracy, "categorical_accuracy": categorical_accuracy}
_ACCURACIES = {"accuracy", "binary_accuracy", "categorical_accuracy"}
_SHORT = {"mean_absolute_error": "mae", "mean_squared_error": "mse", "root_mean_squared_error": "rmse", "acc": "accuracy"}


def get(metric, loss_fn=None):
    """(name, function) for a metric name or function; "accuracy" follows the loss (argmax
    after cross_entropy, sign of the logit after bce_with_logits, 0.5 after bce)."""
    if isinstance(metric, str):
        if metric not in _NAMES:
            raise ValueError(f"metrics: unknown metric {metric!r}; use one of {sorted(_NAMES)} or a function "
                             "fn(pred, target, mask)")
        name, fn = _SHORT.get(metric, metric), _NAMES[metric]
        if fn in (accuracy, binary_accuracy):
            if loss_fn is losses.bce_with_logits:
                fn = _logit_accuracy
            elif loss_fn is losses.cross_entropy and fn is accuracy:
                fn = categorical_accuracy
        return name, fn
    if callable(metric):
        name = getattr(metric, "name", None) or getattr(metric, "__name__", None)
        if not name or name == "<lambda>":
            raise ValueError("metrics: give a metric function a name (def it, or set fn.name)")
        return name, metric
    raise TypeError(f"metrics must hold names or functions fn(pred, target, mask), got {type(metric).__name__}")


class MetricSet:
    """The metrics of one fit or evaluate, summed over batches: ``update`` on each batch,
    ``results()`` for the values so far, ``reset()`` between epochs."""

    def __init__(self, metrics=(), loss_fn=None):
        if isinstance(metrics, (str, bytes)) or callable(metrics):
            metrics = [metrics]
        self.items = [get(m, loss_fn) for m in (metrics or ())]
        if loss_fn in losses.CLASSIFICATION and not {n for n, _ in self.items} & _ACCURACIES:
            self.items.insert(0, get("accuracy", loss_fn))   # classification losses always report accuracy
        names = [n for n, _ in self.items]
        if len(set(names)) != len(names) or "loss" in names:
            raise ValueError(f"metrics: names must be distinct and not 'loss', got {names}")
        self.reset()

    def reset(self) -> None:
        self.totals = {name: [0.0, 0] for name, _ in self.items}

    def update(self, pred, target, mask=None) -> None:
        for name, fn in self.items:
            value = fn(pred, target, mask)
            if isinstance(value, tuple):
                total, count = value
            else:
                count = len(pred)
                total = float(value) * count
            self.totals[name][0] += float(total)
            self.totals[name][1] += count

    def results(self) -> dict:
        out = {}
        for name, fn in self.items:
            total, count = self.totals[name]
            if count:
                value = total / count
                out[name] = math.sqrt(value) if getattr(fn, "root", False) else value
        return out
