"""The Keras-like training loop over PyTorch-like parts: ``fit``, ``evaluate``, ``predict``.

Sequences are batch-first (samples along the first axis of X, as ``fit`` batches them), so
recurrent layers used with ``fit`` are built with ``batch_first=True``.
"""
from __future__ import annotations

import math
import sys

import numpy as np

from . import io, losses, ops
from ._checks import NonFiniteError, to_numpy
from ._grad_mode import no_grad
from .clip import clip_grad_norm_, clip_grad_value_
from .module import Module


class NonFiniteLossError(FloatingPointError):
    """Training produced a NaN or infinite loss or gradient."""


class History:
    """Per-epoch metrics: ``history["loss"]``, ``history["val_loss"]``, ``history["accuracy"]``..."""

    def __init__(self):
        self.history: dict[str, list] = {}
        self.epoch: list[int] = []

    def append(self, epoch: int, logs: dict) -> None:
        self.epoch.append(epoch)
        for key, value in logs.items():
            self.history.setdefault(key, []).append(value)

    def to_dict(self) -> dict:
        return {"epoch": list(self.epoch), "history": {k: list(v) for k, v in self.history.items()}}

    @classmethod
    def from_dict(cls, d: dict) -> "History":
        h = cls()
        h.epoch = list(d["epoch"])
        h.history = {k: list(v) for k, v in d["history"].items()}
        return h

    def __repr__(self):
        return f"History(epochs={len(self.epoch)}, metrics={sorted(self.history)})"


def _model_dtype(model):
    params = model.parameters()
    return params[0].data.dtype if params else np.dtype(np.float32)


def _inputs(X, model, name="X"):
    X = to_numpy(X, name)
    if X.dtype.kind == "f":
        X = np.ascontiguousarray(X, dtype=_model_dtype(model))
    elif X.dtype.kind not in "iu":
        raise TypeError(f"{name} must hold numbers (floats, or integer ids for an Embedding), got dtype {X.dtype}")
    if X.ndim == 0 or len(X) == 0:
        raise ValueError(f"{name} is empty")
    return X


def _check_batch_first(model):
    for name, m in model.named_modules():
        if getattr(m, "batch_first", None) is False:
            raise ValueError(f"fit/predict batch along the first axis of X: build {name or 'the'} "
                             f"{type(m).__name__} with batch_first=True")


def _mask_for(out, lengths):
    """A (B, T) mask when the output keeps a time axis and lengths are known."""
    if lengths is None or np.ndim(out) < 3:
        return None
    return ops.length_mask(lengths, out.shape[0], out.shape[1])


def _batches(n, batch_size, order):
    return [order[i:i + batch_size] for i in range(0, n, batch_size)]


class Fit:
    """The state of a running fit, seen by callbacks (``callback.fit``)."""

    def __init__(self, model, optimizer, scheduler, seed, history, epochs):
        self.model, self.optimizer, self.scheduler = model, optimizer, scheduler
        self.seed, self.history, self.epochs = seed, history, epochs
        self.epoch = 0   # epochs completed

    def training_state(self) -> dict:
        return {"epoch": self.epoch, "seed": self.seed, "history": self.history.to_dict()}

    def save_checkpoint(self, path) -> None:
        io.save(self.model, path, self.optimizer, self.scheduler, self.training_state())


def fit(model: Module, X, y, loss="mse", optimizer=None, epochs: int = 1, batch_size: int = 32,
        clip_grad_norm=None, clip_grad_value=None, validation_data=None, validation_split: float = 0.0,
        lengths=None, callbacks=(), shuffle: bool = True, verbose: int = 1, seed=None, scheduler=None,
        loss_kwargs=None, resume_from=None) -> History:
    """Trains model on (X, y); see Module.fit."""
    for _, m in model.named_modules():
        if getattr(m, "inference_only", False):
            from .quantization import INFERENCE_ONLY
            raise RuntimeError(INFERENCE_ONLY)
    _check_batch_first(model)
    X = _inputs(X, model)
    y = to_numpy(y, "y")
    n = len(X)
    if len(y) != n:
        raise ValueError(f"X and y must have the same number of samples, got {n} and {len(y)}")
    if lengths is not None:
        lengths = to_numpy(lengths, "lengths")
        if lengths.shape != (n,):
            raise ValueError(f"lengths must have shape ({n},), one per sample, got {lengths.shape}")
    if not isinstance(epochs, (int, np.integer)) or epochs < 0:
        raise ValueError(f"epochs must be a non-negative integer, got {epochs!r}")
    if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if not 0.0 <= validation_split < 1.0:
        raise ValueError(f"validation_split must be in [0, 1), got {validation_split!r}")
    if validation_data is None and validation_split > 0:
        cut = n - int(round(n * validation_split))   # the last samples, as Keras: time order is kept
        if cut < 1 or cut == n:
            raise ValueError(f"validation_split {validation_split} leaves no training or no validation samples")
        validation_data = (X[cut:], y[cut:]) + (() if lengths is None else (lengths[cut:],))
        X, y, lengths = X[:cut], y[:cut], None if lengths is None else lengths[:cut]
        n = cut
    if validation_data is not None and len(validation_data) not in (2, 3):
        raise ValueError("validation_data must be (X_val, y_val) or (X_val, y_val, lengths_val)")

    loss_fn = losses.get(loss)
    loss_kwargs = dict(loss_kwargs or {})
    if optimizer is None:
        from .optim import Adam
        optimizer = getattr(model, "optimizer", None) or Adam(model.parameters(), lr=1e-3)
    elif isinstance(optimizer, str):
        from . import optim
        optimizer = optim.get(optimizer, model.parameters())
    object.__setattr__(model, "optimizer", optimizer)

    history = History()
    if seed is None:
        seed = int(np.random.SeedSequence().entropy % (2**63))
    start_epoch = 0
    if resume_from is not None:
        meta, arrays = io.read(resume_from)
        io.restore_weights(model, meta, arrays)
        if meta.get("optimizer"):
            io.restore_optimizer(optimizer, meta, arrays)
        if scheduler is not None and meta.get("scheduler"):
            scheduler.load_state_dict(meta["scheduler"]["state"])
        training = meta.get("training") or {}
        start_epoch = int(training.get("epoch", 0))
        seed = training.get("seed", seed)
        if "history" in training:
            history = History.from_dict(training["history"])

    state = Fit(model, optimizer, scheduler, seed, history, epochs)
    state.epoch = start_epoch
    callbacks = list(callbacks or ())
    for cb in callbacks:
        cb.model, cb.fit = model, state
    object.__setattr__(model, "stop_training", False)
    object.__setattr__(model, "history", history)
    params = model.parameters()
    for cb in callbacks:
        cb.on_train_begin({})

    progress = _progress_factory(verbose)
    for epoch in range(start_epoch, epochs):
        model.train()
        for cb in callbacks:
            cb.on_epoch_begin(epoch, {})
        order = np.random.default_rng([seed, epoch]).permutation(n) if shuffle else np.arange(n)
        batches = _batches(n, batch_size, order)
        total_loss, correct, counted = 0.0, 0, 0
        bar = progress(len(batches), f"Epoch {epoch + 1}/{epochs}")
        for b, idx in enumerate(batches):
            xb, yb = X[idx], y[idx]
            lb = None if lengths is None else lengths[idx]
            try:
                out = model.seq_forward(xb, lb)
                mask = _mask_for(out, lb)
                value, grad = loss_fn(out, yb, mask=mask, **loss_kwargs)
                if not math.isfinite(value) or not np.isfinite(grad).all():
                    what = f"the loss became {value}" if not math.isfinite(value) else "the loss gradient overflowed"
                    raise NonFiniteError(what)
                model.zero_grad()
                model.seq_backward(grad, need_input_grad=False)
            except NonFiniteError as exc:
                raise NonFiniteLossError(f"{exc} at epoch {epoch + 1}, batch {b + 1}: lower the learning rate, "
                                         "clip gradients or check the data") from exc
            if clip_grad_norm is not None:
                norm = clip_grad_norm_(params, clip_grad_norm)
                if not math.isfinite(norm):
                    raise NonFiniteLossError(f"the gradient norm became {norm} at epoch {epoch + 1}, batch {b + 1}")
            if clip_grad_value is not None:
                clip_grad_value_(params, clip_grad_value)
            optimizer.step()
            total_loss += value * len(idx)
            acc = losses.accuracy(out, yb, loss_fn, mask)
            if acc is not None:
                correct, counted = correct + acc[0], counted + acc[1]
            batch_logs = {"loss": value}
            for cb in callbacks:
                cb.on_batch_end(b, batch_logs)
            bar.step(value)
        logs = {"loss": total_loss / n}
        if counted:
            logs["accuracy"] = correct / counted
        if validation_data is not None:
            val = evaluate(model, *validation_data[:2], loss=loss_fn, batch_size=max(batch_size, 256),
                           lengths=validation_data[2] if len(validation_data) == 3 else None, loss_kwargs=loss_kwargs)
            logs.update({"val_" + k: v for k, v in val.items()})
        logs["lr"] = optimizer.lr
        if scheduler is not None:
            scheduler.step(logs.get("val_loss", logs["loss"]))
        history.append(epoch, logs)
        state.epoch = epoch + 1
        bar.close(logs)
        for cb in callbacks:
            cb.on_epoch_end(epoch, logs)
        if model.stop_training:
            break
    for cb in callbacks:
        cb.on_train_end({})
    return history


def evaluate(model: Module, X, y, loss="mse", batch_size: int = 256, lengths=None, loss_kwargs=None) -> dict:
    """Mean loss (and accuracy for classification losses) over (X, y), in eval mode."""
    loss_fn = losses.get(loss)
    X = _inputs(X, model)
    y = to_numpy(y, "y")
    if len(y) != len(X):
        raise ValueError(f"X and y must have the same number of samples, got {len(X)} and {len(y)}")
    total, correct, counted, n = 0.0, 0, 0, len(X)
    was_training = model.training
    model.eval()
    try:
        with no_grad():
            for start in range(0, n, batch_size):
                sl = slice(start, start + batch_size)
                lb = None if lengths is None else np.asarray(lengths)[sl]
                out = model.seq_forward(X[sl], lb)
                mask = _mask_for(out, lb)
                value, _ = loss_fn(out, y[sl], mask=mask, **(loss_kwargs or {}))
                total += value * len(X[sl])
                acc = losses.accuracy(out, y[sl], loss_fn, mask)
                if acc is not None:
                    correct, counted = correct + acc[0], counted + acc[1]
    finally:
        model.train(was_training)
    result = {"loss": total / n}
    if counted:
        result["accuracy"] = correct / counted
    return result


def _state_rows(state, rows):
    """The batch rows ``rows`` (a slice) of a model state; state arrays are (layers, batch, hidden)."""
    if state is None:
        return None
    if isinstance(state, (list, tuple)):
        return type(state)(_state_rows(s, rows) for s in state)
    return np.asarray(state)[:, rows]


def _state_concat(states):
    first = states[0]
    if first is None:
        return None
    if isinstance(first, (list, tuple)):
        return type(first)(_state_concat([s[i] for s in states]) for i in range(len(first)))
    return np.concatenate(states, axis=1)


def predict(model: Module, X, lengths=None, batch_size=None, initial_state=None, return_state=False):
    """The model's outputs for X in eval mode, in batches (all at once by default); from
    ``initial_state`` and returning the final state too when asked (see Module.predict)."""
    _check_batch_first(model)
    X = _inputs(X, model)
    n = len(X)
    batch_size = n if batch_size is None else int(batch_size)
    if batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size}")
    stateful = initial_state is not None or return_state
    was_training = model.training
    model.eval()
    outs, states = [], []
    try:
        with no_grad():
            for i in range(0, n, batch_size):
                rows = slice(i, i + batch_size)
                lb = None if lengths is None else np.asarray(lengths)[rows]
                if stateful:
                    out, state = model.seq_forward_state(X[rows], _state_rows(initial_state, rows), lb)
                    states.append(state)
                else:
                    out = model.seq_forward(X[rows], lb)
                outs.append(out)
    finally:
        model.train(was_training)
    out = outs[0] if len(outs) == 1 else np.concatenate(outs)
    if return_state:
        return out, (states[0] if len(states) == 1 else _state_concat(states))
    return out


class _Progress:
    """tqdm progress bar for verbose=1, one line per epoch for verbose=2, nothing for 0."""

    def __init__(self, total, desc, verbose):
        self.verbose, self.desc, self.bar = verbose, desc, None
        if verbose == 1:
            from tqdm.auto import tqdm
            self.bar = tqdm(total=total, desc=desc, unit="batch", leave=True, file=sys.stdout, dynamic_ncols=True)
        self.running, self.count = 0.0, 0

    def step(self, value):
        if self.bar is not None:
            self.running, self.count = self.running + value, self.count + 1
            self.bar.set_postfix_str(f"loss={self.running / self.count:.4g}", refresh=False)
            self.bar.update(1)

    def close(self, logs):
        text = " ".join(f"{k}={v:.4g}" for k, v in logs.items())
        if self.bar is not None:
            self.bar.set_postfix_str(text, refresh=False)
            self.bar.close()
        elif self.verbose == 2:
            print(f"{self.desc}: {text}", flush=True)


def _progress_factory(verbose):
    return lambda total, desc: _Progress(total, desc, verbose)
