"""One-file persistence: architecture, weights, module random states, optimizer and scheduler
state, and training progress, in a NumPy .npz archive (no pickle) written atomically (a
temporary file in the same folder, then a rename), so a crash never leaves half a file."""
from __future__ import annotations

import json
import os
import tempfile

import numpy as np

from . import optim, registry
from .history import History

FORMAT = "lstm_native"
VERSION = 1


def save(model, path, optimizer=None, scheduler=None, training=None) -> None:
    """Writes model (and, when given, optimizer, scheduler and training progress) to path."""
    path = os.fspath(path)
    meta = {"format": FORMAT, "version": VERSION, "model": model.to_config(),
            "extra_state": {name: s for name, m in model.named_modules() if (s := m.get_extra_state()) is not None},
            "optimizer": None, "scheduler": None, "training": training,
            "metadata": getattr(model, "metadata", None)}   # the user's JSON-able notes (e.g. scalers)
    arrays = {"param/" + name: p.data for name, p in model.named_parameters()}
    for name, module in model.named_modules():
        arrays.update({f"buffer/{name + '.' if name else ''}{k}": v for k, v in module.buffers().items()})
    if optimizer is not None:
        state = optimizer.state_dict()
        meta["optimizer"] = {k: state[k] for k in ("class", "hyperparameters", "steps")}
        meta["optimizer"]["buffers"] = sorted(state["buffers"])
        for name, buffers in state["buffers"].items():
            arrays.update({f"optim/{name}/{i}": b for i, b in enumerate(buffers)})
    if scheduler is not None:
        meta["scheduler"] = {"class": type(scheduler).__name__, "state": scheduler.state_dict()}
    arrays["__meta__"] = np.frombuffer(json.dumps(meta).encode("utf-8"), np.uint8)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".npz", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def read(path):
    """(meta, arrays) of a saved file, with clear errors for missing or foreign files."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no model file at {path!r}")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {k: archive[k] for k in archive.files}
    except Exception as exc:
        raise ValueError(f"{path!r} is not an lstm_native model file ({exc})") from None
    if "__meta__" not in arrays:
        raise ValueError(f"{path!r} is not an lstm_native model file (no metadata)")
    meta = json.loads(arrays.pop("__meta__").tobytes().decode("utf-8"))
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path!r} is not an lstm_native model file")
    if meta.get("version", 0) > VERSION:
        raise ValueError(f"{path!r} was written by a newer lstm_native (format {meta['version']})")
    return meta, arrays


def restore_weights(model, meta, arrays) -> None:
    """Loads saved parameters and module states into a model of the same architecture."""
    params = {k[len("param/"):]: v for k, v in arrays.items() if k.startswith("param/")}
    for name, module in model.named_modules():
        prefix = f"buffer/{name + '.' if name else ''}"
        own = {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix) and "." not in k[len(prefix):]}
        if own:
            module.load_buffers(own)
    model.load_state_dict(params)
    modules = dict(model.named_modules())
    for name, state in meta.get("extra_state", {}).items():
        if name in modules:
            modules[name].set_extra_state(state)


def restore_optimizer(optimizer, meta, arrays) -> None:
    saved = meta["optimizer"]
    buffers = {name: [arrays[f"optim/{name}/{i}"] for i in range(len(optimizer.params))] for name in saved["buffers"]}
    optimizer.load_state_dict({"class": saved["class"], "hyperparameters": saved["hyperparameters"],
                               "steps": saved["steps"], "buffers": buffers})


def load(path):
    """Rebuilds a saved model; its optimizer (if saved) is ``model.optimizer`` and its training
    history ``model.history``."""
    meta, arrays = read(path)
    model = registry.build(meta["model"])
    restore_weights(model, meta, arrays)
    if meta.get("optimizer"):
        cls = optim.optimizers.OPTIMIZERS[meta["optimizer"]["class"]]
        hyper = dict(meta["optimizer"]["hyperparameters"])
        opt = cls(model.parameters(), **hyper)
        restore_optimizer(opt, meta, arrays)
        model.optimizer = opt
    if meta.get("metadata") is not None:
        model.metadata = meta["metadata"]
    training = meta.get("training") or {}
    if "history" in training:
        model.history = History.from_dict(training["history"])
    return model
