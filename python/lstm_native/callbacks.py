"""Callbacks for ``fit``: early stopping, checkpoints, history logs. A callback sees the
model (``self.model``) and the running fit (``self.fit``: optimizer, scheduler, epoch...)."""
from __future__ import annotations

import csv
import json
import math
import os


class Callback:
    model = None
    fit = None
    rank_zero_only = False    # True: in distributed training only rank 0 runs it (files, printing)

    def on_train_begin(self, logs=None): ...
    def on_epoch_begin(self, epoch, logs=None): ...
    def on_batch_end(self, batch, logs=None): ...
    def on_epoch_end(self, epoch, logs=None): ...
    def on_train_end(self, logs=None): ...


def _monitored(logs, monitor, who):
    if monitor not in logs:
        raise ValueError(f"{who} monitors {monitor!r}, which this fit does not report (it reports {sorted(logs)}); "
                         "pass validation data or monitor='loss'")
    return float(logs[monitor])


def _improves(mode, monitor):
    if mode == "auto":
        mode = "max" if "acc" in monitor else "min"
    if mode not in ("min", "max"):
        raise ValueError(f"mode must be 'min', 'max' or 'auto', got {mode!r}")
    return mode


class EarlyStopping(Callback):
    """Stops when `monitor` has not improved by min_delta for `patience` epochs, and (by default)
    puts back the weights of the best epoch."""

    def __init__(self, monitor: str = "val_loss", patience: int = 10, min_delta: float = 0.0, mode: str = "auto",
                 restore_best_weights: bool = True):
        self.monitor, self.patience, self.min_delta = monitor, int(patience), abs(float(min_delta))
        self.mode = _improves(mode, monitor)
        self.restore_best_weights = restore_best_weights
        self.best = math.inf if self.mode == "min" else -math.inf
        self.best_epoch, self.wait, self.stopped_epoch, self.best_weights = None, 0, None, None

    def on_train_begin(self, logs=None):
        self.best = math.inf if self.mode == "min" else -math.inf
        self.best_epoch, self.wait, self.stopped_epoch, self.best_weights = None, 0, None, None

    def on_epoch_end(self, epoch, logs=None):
        value = _monitored(logs, self.monitor, "EarlyStopping")
        better = value < self.best - self.min_delta if self.mode == "min" else value > self.best + self.min_delta
        if better:
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best_weights:
                self.best_weights = self.model.state_dict()
        else:
            self.wait += 1
            if self.wait >= self.patience:
                self.stopped_epoch = epoch
                self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.restore_best_weights and self.best_weights is not None and self.best_epoch is not None:
            self.model.load_state_dict(self.best_weights)


class ModelCheckpoint(Callback):
    """Saves the model with its optimizer and training progress at the end of each epoch (or
    only when `monitor` improves), so that ``fit(..., resume_from=path)`` continues from it.
    The path may contain ``{epoch}``."""

    rank_zero_only = True

    def __init__(self, path, monitor: str = "val_loss", save_best_only: bool = False, mode: str = "auto"):
        self.path, self.monitor, self.save_best_only = os.fspath(path), monitor, save_best_only
        self.mode = _improves(mode, monitor)
        self.best = math.inf if self.mode == "min" else -math.inf

    def on_epoch_end(self, epoch, logs=None):
        if self.save_best_only:
            value = _monitored(logs, self.monitor, "ModelCheckpoint")
            if not (value < self.best if self.mode == "min" else value > self.best):
                return
            self.best = value
        self.fit.save_checkpoint(self.path.format(epoch=epoch + 1))


class CSVLogger(Callback):
    """Writes one row of metrics per epoch to a CSV file (appending to it when resuming)."""

    rank_zero_only = True

    def __init__(self, path, append: bool = False):
        self.path, self.append = os.fspath(path), append

    def on_train_begin(self, logs=None):
        if not self.append and os.path.exists(self.path):
            os.unlink(self.path)

    def on_epoch_end(self, epoch, logs=None):
        row = {"epoch": epoch + 1, **logs}
        header = not os.path.exists(self.path)
        with open(self.path, "a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(row))
            if header:
                writer.writeheader()
            writer.writerow(row)


class JSONLogger(Callback):
    """Rewrites the whole history as JSON after each epoch."""

    rank_zero_only = True

    def __init__(self, path):
        self.path = os.fspath(path)

    def on_epoch_end(self, epoch, logs=None):
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.fit.history.to_dict(), f, indent=1)
        os.replace(tmp, self.path)


class LambdaCallback(Callback):
    """A callback from plain functions, e.g. ``LambdaCallback(on_batch_end=lambda b, logs: ...)``."""

    def __init__(self, **hooks):
        for name, fn in hooks.items():
            if not hasattr(Callback, name):
                raise ValueError(f"unknown callback hook {name!r}")
            setattr(self, name, fn)


class TeacherForcingSchedule(Callback):
    """Sets ``model.teacher_forcing`` (a Seq2Seq's share of decoder inputs taken from the
    target) to ``schedule(epoch)`` as each epoch begins, e.g.
    ``TeacherForcingSchedule(lambda epoch: max(0.5, 1.0 - 0.05 * epoch))``."""

    def __init__(self, schedule):
        if not callable(schedule):
            raise TypeError("schedule must be a function of the epoch (0-based) giving a ratio in [0, 1]")
        self.schedule = schedule

    def on_epoch_begin(self, epoch, logs=None):
        ratio = float(self.schedule(epoch))
        if not 0.0 <= ratio <= 1.0:
            raise ValueError(f"the teacher-forcing schedule gave {ratio} at epoch {epoch}; it must be in [0, 1]")
        self.model.teacher_forcing = ratio
