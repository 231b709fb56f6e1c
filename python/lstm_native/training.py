"""The Keras-like training loop over PyTorch-like parts: ``fit``, ``evaluate``, ``predict``.

Sequences are batch-first (samples along the first axis of X, as ``fit`` batches them), so
recurrent layers used with ``fit`` are built with ``batch_first=True``. This module works on
any object with the Module interface; it never imports the Module class (module.py calls it).
"""
from __future__ import annotations

import contextlib
import math
import signal
import sys
import threading

import numpy as np

from . import distributed as _distributed
from . import io, losses, metrics as metrics_, ops, optim, seeding, tbptt
from ._checks import NonFiniteError, to_numpy
from ._grad_mode import no_grad
from .clip import clip_grad_norm_, clip_grad_value_
from .history import History

__all__ = ["fit", "evaluate", "predict", "History", "NonFiniteLossError", "Fit"]


class NonFiniteLossError(FloatingPointError):
    """Training produced a NaN or infinite loss or gradient."""


def _model_dtype(model):
    params = model.parameters()
    return params[0].array.dtype if params else np.dtype(np.float32)   # .array: reading .data counts as a write


def _inputs(X, model, name="X"):
    X = to_numpy(X, name)
    if X.dtype.kind == "f":
        X = np.asarray(X, dtype=_model_dtype(model), order="C")   # (ascontiguousarray makes a scalar 1-d)
    elif X.dtype.kind not in "iu":
        raise TypeError(f"{name} must hold numbers (floats, or integer ids for an Embedding), got dtype {X.dtype}")
    if X.ndim == 0 or len(X) == 0:
        raise ValueError(f"{name} is empty")
    if X.ndim == 1 and X.dtype.kind == "f":
        # samples of no features: a batch's slice (b,) would reach a Linear(b, ...) as one
        # feature vector, so the outcome depended on batch_size (ids (N,) for an Embedding are fine)
        raise ValueError(f"{name} must have a samples axis and a features axis (2-D or more), got shape {X.shape}")
    return X


def _sample_lengths(lengths, n):
    """None, or one length per sample: the batches take slices of it, so a longer array passed
    a batch's shape check (predict of one sample with two lengths took the first)."""
    if lengths is None:
        return None
    lengths = to_numpy(lengths, "lengths")
    if lengths.shape != (n,):
        raise ValueError(f"lengths must have shape ({n},), one per sample, got {lengths.shape}")
    return lengths


def _targets(y):
    y = to_numpy(y, "y")
    if y.ndim == 0:
        raise ValueError("y must hold one target per sample (at least 1-D), got a scalar")
    return y


def _check_batch_first(model):
    for name, m in model.named_modules():
        if getattr(m, "batch_first", None) is False:
            raise ValueError(f"fit/predict batch along the first axis of X: build {name or 'the'} "
                             f"{type(m).__name__} with batch_first=True")


def _check_trainable(model):
    for _, m in model.named_modules():
        reason = getattr(m, "inference_only", None)
        if reason:
            raise RuntimeError(reason)


def _mask_for(out, lengths):
    """A (B, T) mask when the output keeps a time axis and lengths are known."""
    if lengths is None or np.ndim(out) < 3:
        return None
    return ops.length_mask(lengths, out.shape[0], out.shape[1])


def _forward(model, xb, yb, lb):
    """(output, loss mask) for a batch. A model that takes its targets as inputs (Seq2Seq's
    teacher forcing sets ``takes_targets``) sees yb too and gives its own mask."""
    if getattr(model, "takes_targets", False):
        return model.forward_with_targets(xb, yb, lb)
    out = model.seq_forward(xb, lb)
    return out, _mask_for(out, lb)


class InterruptAtBatchEnd:
    """While a fit runs in the main thread, Ctrl-C (SIGINT) asks it to stop at the end of the
    current batch instead of wherever it happens to be (in the middle of a checkpoint, say); a
    second Ctrl-C interrupts at once. Elsewhere (other threads, a foreign handler) it does nothing."""

    def __init__(self):
        self.requested, self._previous = False, None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread() and \
                signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
        return False


class Samples:
    """Training samples (X, y and optional lengths) and the batches an epoch takes from them."""

    def __init__(self, X, y, lengths=None):
        self.X, self.y, self.lengths = X, y, lengths

    def __len__(self):
        return len(self.X)

    def num_batches(self, batch_size):
        return math.ceil(len(self) / batch_size)

    def batches(self, batch_size, order, share=None):
        """(xb, yb, lengths or None, weight) for consecutive slices of `order`; an epoch's
        loss is the mean of the batches' losses weighted by `weight` (the global batch's rows).
        share(idx) picks this rank's rows of each batch when training is distributed."""
        for i in range(0, len(order), batch_size):
            idx = order[i:i + batch_size]
            rows = len(idx)
            if share is not None:
                idx = share(idx)
            yield self.X[idx], self.y[idx], None if self.lengths is None else self.lengths[idx], rows


def _samples(model, X, y, lengths, validation_data, validation_split):
    """The checked training Samples and the validation tuple (X, y[, lengths]) or None."""
    X = _inputs(X, model)
    y = _targets(y)
    n = len(X)
    if len(y) != n:
        raise ValueError(f"X and y must have the same number of samples, got {n} and {len(y)}")
    lengths = _sample_lengths(lengths, n)
    if not 0.0 <= validation_split < 1.0:
        raise ValueError(f"validation_split must be in [0, 1), got {validation_split!r}")
    if validation_data is None and validation_split > 0:
        cut = n - int(round(n * validation_split))   # the last samples, as Keras: time order is kept
        if cut < 1 or cut == n:
            raise ValueError(f"validation_split {validation_split} leaves no training or no validation samples")
        validation_data = (X[cut:], y[cut:]) + (() if lengths is None else (lengths[cut:],))
        X, y, lengths = X[:cut], y[:cut], None if lengths is None else lengths[:cut]
    if validation_data is not None and len(validation_data) not in (2, 3):
        raise ValueError("validation_data must be (X_val, y_val) or (X_val, y_val, lengths_val)")
    return Samples(X, y, lengths), validation_data


def _optimizer_for(model, optimizer):
    if optimizer is None:
        return getattr(model, "optimizer", None) or optim.Adam(model.parameters(), lr=1e-3)
    if isinstance(optimizer, str):
        return optim.get(optimizer, model.parameters())
    return optimizer


class Fit:
    """A running fit: the model, its optimizer and schedule, the loss, the history; callbacks
    see it as ``callback.fit``. ``fit()`` drives it one epoch and one batch at a time."""

    def __init__(self, model, optimizer, scheduler=None, loss="mse", loss_kwargs=None, seed=None, epochs=1,
                 callbacks=(), clip_grad_norm=None, clip_grad_value=None, metrics=(), stateful=False):
        self.model, self.optimizer, self.scheduler = model, optimizer, scheduler
        self.loss_fn, self.loss_kwargs = losses.get(loss), dict(loss_kwargs or {})
        self.metric_specs, self.metrics = metrics, metrics_.MetricSet(metrics, self.loss_fn)
        self.carry = tbptt.Carry(model) if stateful else None   # the state carried across chunks
        if seed is None:
            seed = seeding.new_seed()
        self.seed = int(np.random.SeedSequence().entropy % (2**63)) if seed is None else seed
        self.epochs, self.history, self.epoch = epochs, History(), 0   # epochs completed
        self.clip_norm, self.clip_value = clip_grad_norm, clip_grad_value
        self.callbacks = list(callbacks or ())
        self.params = model.parameters()
        self.interrupt = None   # an InterruptAtBatchEnd while fit runs
        self.dist = None        # a distributed.DataParallel when training over several MPI ranks

    def training_state(self) -> dict:
        return {"epoch": self.epoch, "seed": self.seed, "history": self.history.to_dict()}

    def save_checkpoint(self, path) -> None:
        io.save(self.model, path, self.optimizer, self.scheduler, self.training_state())

    def resume(self, path) -> None:
        """Continues a checkpointed run: weights, optimizer, schedule, epoch, seed and history."""
        meta, arrays = io.read(path)
        training = meta.get("training") or {}
        try:
            epoch, seed = int(training.get("epoch", 0)), training.get("seed", self.seed)
            history = History.from_dict(training["history"]) if "history" in training else self.history
        except (TypeError, ValueError, KeyError) as exc:
            raise io.ModelFileError(f"{path}: its training progress is damaged ({exc})") from None
        io.restore(self.model, meta, arrays, path, self.optimizer, self.scheduler)
        self.epoch, self.seed, self.history = epoch, seed, history

    def begin(self) -> None:
        model = self.model
        model.optimizer, model.stop_training, model.history = self.optimizer, False, self.history
        for cb in self.callbacks:
            cb.model, cb.fit = model, self
            cb.on_train_begin({})

    def train_epoch(self, epoch, samples, batch_size, shuffle, bar):
        """One pass over the samples; returns the epoch's mean loss and metrics, or None
        when Ctrl-C stopped it at a batch boundary."""
        self.model.train()
        for cb in self.callbacks:
            cb.on_epoch_begin(epoch, {})
        self.metrics.reset()
        total, seen = 0.0, 0
        for b, (xb, yb, lb, weight) in enumerate(self.epoch_batches(epoch, samples, batch_size, shuffle)):
            try:
                value = self.train_step(xb, yb, lb)
            except NonFiniteError as exc:
                raise NonFiniteLossError(f"{exc} at epoch {epoch + 1}, batch {b + 1}: lower the learning rate, "
                                         "clip gradients or check the data") from exc
            total, seen = total + value * weight, seen + weight
            for cb in self.callbacks:
                cb.on_batch_end(b, {"loss": value})
            bar.step(value, self.metrics.results())
            if self.interrupted():
                bar.close({"loss": total / seen})
                self.say_interrupted(f"in epoch {epoch + 1} after batch {b + 1}")
                return None
        if self.dist is not None:
            self.dist.sum_metrics(self.metrics)     # each rank summed its own rows' metrics
        return {"loss": total / seen, **self.metrics.results()}

    def epoch_batches(self, epoch, samples, batch_size, shuffle):
        """The epoch's batches (xb, yb, lengths, weight): shuffled samples, or with
        stateful=True a long series' consecutive chunks (tbptt.py)."""
        if self.carry is not None:
            return samples.chunks(batch_size, self.carry)
        n = len(samples)
        order = np.random.default_rng([self.seed, epoch]).permutation(n) if shuffle else np.arange(n)
        return samples.batches(batch_size, order, None if self.dist is None else self.dist.share)

    def forward(self, xb, yb, lb):
        """(output, loss mask); with stateful=True from the state the last chunk left."""
        if self.carry is not None:
            return self.carry.forward(xb), None
        return _forward(self.model, xb, yb, lb)

    def train_step(self, xb, yb, lb):
        """Forward, loss, backward, clipping, optimizer step, metrics; returns the loss (of the
        global batch when distributed: this rank's share, gradients averaged over the ranks)."""
        if self.dist is None:
            value, _ = self.forward_backward(xb, yb, lb)
        else:
            value = self.dist.step(xb, yb, lb)
        self.clip_gradients()
        self.optimizer.step()
        return value

    def forward_backward(self, xb, yb, lb, weight_of=None):
        """Forward, loss, backward and metrics of one batch: (loss, weight). weight_of(out, yb,
        mask), when given (distributed), is this batch's weight in the global mean; the loss
        gradient is multiplied by it."""
        out, mask = self.forward(xb, yb, lb)
        value, grad = self.loss_fn(out, yb, mask=mask, **self.loss_kwargs)
        if not math.isfinite(value) or not np.isfinite(grad).all():
            raise NonFiniteError(f"the loss became {value}" if not math.isfinite(value)
                                 else "the loss gradient overflowed")
        weight = 1.0
        if weight_of is not None:
            weight = weight_of(out, yb, mask)
            grad = grad * grad.dtype.type(weight)
        self.model.zero_grad()
        self.model.seq_backward(grad, need_input_grad=False)
        self.metrics.update(out, yb, mask)
        return value, weight

    def clip_gradients(self) -> None:
        if self.clip_norm is not None:
            norm = clip_grad_norm_(self.params, self.clip_norm)
            if not math.isfinite(norm):
                raise NonFiniteError(f"the gradient norm became {norm}")
        if self.clip_value is not None:
            clip_grad_value_(self.params, self.clip_value)

    def validate(self, validation_data, batch_size) -> dict:
        if self.carry is not None:
            val = tbptt.evaluate_series(self.model, validation_data, self.loss_fn, self.loss_kwargs,
                                        self.metric_specs)
            return {"val_" + k: v for k, v in val.items()}
        X, y = validation_data[:2]
        lengths = validation_data[2] if len(validation_data) == 3 else None
        batch_size = max(batch_size, 256)

        def mean(rows=slice(None)):
            return evaluate(self.model, X[rows], y[rows], loss=self.loss_fn, batch_size=batch_size,
                            lengths=None if lengths is None else lengths[rows], loss_kwargs=self.loss_kwargs,
                            metrics=self.metric_specs)
        # distributed: each rank takes a block of the batches and the means are combined
        val = mean() if self.dist is None else self.dist.mean_over_ranks(mean, len(X), batch_size)
        return {"val_" + k: v for k, v in val.items()}

    def end_epoch(self, epoch, logs, bar) -> None:
        """Records the epoch (learning rate, schedule, history), closes its progress bar, and
        tells the callbacks."""
        logs["lr"] = self.optimizer.lr
        if self.scheduler is not None:
            self.scheduler.step(logs.get("val_loss", logs["loss"]))
        self.history.append(epoch, logs)
        self.epoch = epoch + 1
        bar.close(logs)
        for cb in self.callbacks:
            cb.on_epoch_end(epoch, logs)

    def end(self) -> None:
        for cb in self.callbacks:
            cb.on_train_end({})

    def interrupted(self) -> bool:
        if self.dist is not None:
            return self.dist.interrupted     # as all ranks agreed at the last reduction
        return self.interrupt is not None and self.interrupt.requested

    def together(self):
        """A block every rank leaves the same way (errors, stop, Ctrl-C agreed); plain in one process."""
        return contextlib.nullcontext() if self.dist is None else self.dist.together()

    def say_interrupted(self, where: str) -> None:
        self.history.interrupted = True
        if self.dist is not None and self.dist.rank != 0:
            return
        print(f"fit: interrupted (Ctrl-C) {where}; the model holds the weights of that point, the last "
              f"checkpoint those after epoch {self.epoch}", file=sys.stderr, flush=True)


def fit(model, X, y, loss="mse", optimizer=None, epochs: int = 1, batch_size: int = 32,
        clip_grad_norm=None, clip_grad_value=None, validation_data=None, validation_split: float = 0.0,
        lengths=None, callbacks=(), shuffle: bool = True, verbose: int = 1, seed=None, scheduler=None,
        loss_kwargs=None, resume_from=None, metrics=(), stateful: bool = False, tbptt_steps=None,
        distributed: bool = False) -> History:
    """Trains model on (X, y); see Module.fit."""
    _check_trainable(model)
    _check_batch_first(model)
    if not isinstance(epochs, (int, np.integer)) or epochs < 0:
        raise ValueError(f"epochs must be a non-negative integer, got {epochs!r}")
    if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    for name, limit in (("clip_grad_norm", clip_grad_norm), ("clip_grad_value", clip_grad_value)):
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, (int, float, np.number))
                                  or not 0 < limit < math.inf):   # else the first batch fails, naming max_norm
            raise ValueError(f"{name} must be a positive number or None, got {limit!r}")
    if stateful:
        samples, validation_data = tbptt.series(_inputs(X, model), to_numpy(y, "y"), tbptt_steps, lengths,
                                                validation_data, validation_split, lambda v: _inputs(v, model, "X_val"))
    elif tbptt_steps is not None:
        raise ValueError("tbptt_steps needs stateful=True")
    else:
        samples, validation_data = _samples(model, X, y, lengths, validation_data, validation_split)
    run = Fit(model, _optimizer_for(model, optimizer), scheduler, loss, loss_kwargs, seed, epochs, callbacks,
              clip_grad_norm, clip_grad_value, metrics, stateful)
    if distributed and _distributed.size() > 1:      # data-parallel over the MPI ranks
        if stateful:
            raise ValueError("stateful=True trains one long series in order: it cannot be distributed")
        run.dist = _distributed.DataParallel(run)
        run.callbacks = run.dist.callbacks_here(run.callbacks)
        verbose = verbose if run.dist.rank == 0 else 0
    progress = _progress_factory(verbose)
    with InterruptAtBatchEnd() as run.interrupt, \
            (contextlib.nullcontext() if run.dist is None else run.dist.guard()):
        if resume_from is not None:
            with run.together():
                run.resume(resume_from)
        if run.dist is not None:
            run.dist.start(samples=len(samples), batch_size=batch_size, epochs=epochs, shuffle=shuffle,
                           validation=None if validation_data is None else len(validation_data[0]))
        with run.together():
            run.begin()
        for epoch in range(run.epoch, epochs):
            bar = progress(samples.num_batches(batch_size), f"Epoch {epoch + 1}/{epochs}")
            logs = run.train_epoch(epoch, samples, batch_size, shuffle, bar)
            if logs is None:
                break
            if validation_data is not None:
                logs.update(run.validate(validation_data, batch_size))
            with run.together():
                run.end_epoch(epoch, logs, bar)
            if run.interrupted():
                run.say_interrupted(f"at the end of epoch {epoch + 1}")
                break
            if model.stop_training:
                break
        with run.together():
            run.end()
    return run.history


def evaluate(model, X, y, loss="mse", batch_size: int = 256, lengths=None, loss_kwargs=None, metrics=()) -> dict:
    """Mean loss and metrics (accuracy too for classification losses) over (X, y), in eval mode."""
    loss_fn = losses.get(loss)
    tracker = metrics_.MetricSet(metrics, loss_fn)
    X = _inputs(X, model)
    y = _targets(y)
    if len(y) != len(X):
        raise ValueError(f"X and y must have the same number of samples, got {len(X)} and {len(y)}")
    lengths = _sample_lengths(lengths, len(X))
    total, n = 0.0, len(X)
    was_training = model.training
    model.eval()
    try:
        with no_grad():
            for start in range(0, n, batch_size):
                sl = slice(start, start + batch_size)
                lb = None if lengths is None else lengths[sl]
                out, mask = _forward(model, X[sl], y[sl], lb)
                value, _ = loss_fn(out, y[sl], mask=mask, **(loss_kwargs or {}))
                total += value * len(X[sl])
                tracker.update(out, y[sl], mask)
    finally:
        model.train(was_training)
    return {"loss": total / n, **tracker.results()}


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


def predict(model, X, lengths=None, batch_size=None, initial_state=None, return_state=False):
    """The model's outputs for X in eval mode, in batches (all at once by default); from
    ``initial_state`` and returning the final state too when asked (see Module.predict)."""
    _check_batch_first(model)
    X = _inputs(X, model)
    n = len(X)
    lengths = _sample_lengths(lengths, n)
    if batch_size is None:
        batch_size = n
    elif not isinstance(batch_size, (int, np.integer)) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")   # int() took 2.5 and "2"
    stateful = initial_state is not None or return_state
    was_training = model.training
    model.eval()
    outs, states = [], []
    try:
        with no_grad():
            for i in range(0, n, batch_size):
                rows = slice(i, i + batch_size)
                lb = None if lengths is None else lengths[rows]
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

    def step(self, value, metrics=None):
        if self.bar is not None:
            self.running, self.count = self.running + value, self.count + 1
            text = " ".join([f"loss={self.running / self.count:.4g}"] +
                            [f"{k}={v:.4g}" for k, v in (metrics or {}).items()])
            self.bar.set_postfix_str(text, refresh=False)
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
