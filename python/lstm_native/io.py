"""One-file persistence: architecture, weights, module random states, optimizer and scheduler
state, and training progress, in a NumPy .npz archive (no pickle).

Writing is atomic: a temporary file in the same folder, flushed to disk, then renamed over the
old one (and the folder synced), so a crash or a SIGKILL at any moment leaves the old file or
the new one, never half of one. Reading checks everything before anything is used: a
truncated, corrupted, empty, foreign or newer file raises ModelFileError naming the file and
what is wrong, and restoring into a live model (``fit(resume_from=...)``) is all or nothing.
"""
from __future__ import annotations

import copy
import json
import os
import tempfile

import numpy as np

from . import optim, registry
from .history import History

FORMAT = "lstm_native"
VERSION = 1
_ZIP_MAGIC = b"PK\x03\x04"


class ModelFileError(ValueError):
    """A model or checkpoint file that cannot be used; the message names the file and the fault."""


def save(model, path, optimizer=None, scheduler=None, training=None) -> None:
    """Writes model (and, when given, optimizer, scheduler and training progress) to path."""
    path = os.fspath(path)
    meta = {"format": FORMAT, "version": VERSION, "model": model.to_config(),
            "extra_state": {name: s for name, m in model.named_modules() if (s := m.get_extra_state()) is not None},
            "optimizer": None, "scheduler": None, "training": training,
            "metadata": getattr(model, "metadata", None)}   # the user's JSON-able notes (e.g. scalers)
    arrays = {"param/" + name: p.array for name, p in model.named_parameters()}
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
    _write_atomically(path, lambda f: np.savez(f, **arrays))


def _write_atomically(path: str, write) -> None:
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    try:   # the rename itself reaches the disk (a power cut, not a kill, could otherwise lose it)
        dir_fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


def read(path):
    """(meta, arrays) of a saved file; ModelFileError for anything that is not one, whole."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no model file at {path!r}")
    if os.path.isdir(path):
        raise ModelFileError(f"{path}: is a folder, not a model file")
    with open(path, "rb") as f:
        head = f.read(4)
    if not head:
        raise ModelFileError(f"{path}: the file is empty")
    if head != _ZIP_MAGIC:
        raise ModelFileError(f"{path}: is not an lstm_native model file (those are .npz archives written by save)")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {k: archive[k] for k in archive.files}
    except Exception as exc:   # zipfile, zlib, EOF, struct, a size field pointing nowhere ...
        raise ModelFileError(f"{path}: truncated or corrupted ({type(exc).__name__}: {_first_line(exc)})") from None
    if "__meta__" not in arrays:
        raise ModelFileError(f"{path}: is not an lstm_native model file (an .npz archive without its metadata)")
    try:
        meta = json.loads(arrays.pop("__meta__").tobytes().decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise ModelFileError(f"{path}: its metadata is corrupted (not JSON)") from None
    _check_meta(meta, path)
    return meta, arrays


def _check_meta(meta, path) -> None:
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ModelFileError(f"{path}: is not an lstm_native model file")
    version = meta.get("version")
    if not isinstance(version, int):
        raise ModelFileError(f"{path}: its metadata has no format version")
    if version > VERSION:
        raise ModelFileError(f"{path}: written by a newer lstm_native (file format {version}; this one reads "
                             f"up to {VERSION}): upgrade lstm_native to load it")
    for key, kind in (("model", dict), ("extra_state", dict), ("optimizer", (dict, type(None))),
                      ("scheduler", (dict, type(None))), ("training", (dict, type(None)))):
        if not isinstance(meta.get(key, {} if key == "extra_state" else None), kind):
            raise ModelFileError(f"{path}: its metadata is damaged ({key!r} is {type(meta.get(key)).__name__})")
    if "model" not in meta:
        raise ModelFileError(f"{path}: its metadata has no architecture")


def _first_line(exc) -> str:
    text = str(exc)
    return text.splitlines()[0] if text else type(exc).__name__


def restore(model, meta, arrays, path, optimizer=None, scheduler=None) -> None:
    """Loads what a file holds into a live model (and optimizer, scheduler): all or nothing.
    On any mismatch everything is put back as it was and ModelFileError names the file."""
    before = _snapshot(model, optimizer, scheduler)
    try:
        restore_weights(model, meta, arrays)
        if optimizer is not None and meta.get("optimizer"):
            restore_optimizer(optimizer, meta, arrays)
        if scheduler is not None and meta.get("scheduler"):
            scheduler.load_state_dict(meta["scheduler"]["state"])
    except Exception as exc:
        _put_back(model, optimizer, scheduler, before)
        raise ModelFileError(f"{path}: does not fit this model ({_first_line(exc)})") from exc


def _snapshot(model, optimizer, scheduler):
    return (model.state_dict(),
            {name: copy.deepcopy(m.get_extra_state()) for name, m in model.named_modules()},
            {name: {k: np.array(v, copy=True) for k, v in m.buffers().items()} for name, m in model.named_modules()},
            None if optimizer is None else optimizer.state_dict(),
            None if scheduler is None else copy.deepcopy(scheduler.state_dict()))


def _put_back(model, optimizer, scheduler, before) -> None:
    params, extra, buffers, opt_state, sched_state = before
    model.load_state_dict(params)
    for name, m in model.named_modules():
        if extra[name] is not None:
            m.set_extra_state(extra[name])
        if buffers[name]:
            m.load_buffers(buffers[name])
    if optimizer is not None:
        optimizer.load_state_dict(opt_state)
    if scheduler is not None:
        scheduler.load_state_dict(sched_state)


def restore_weights(model, meta, arrays) -> None:
    """Loads saved parameters, buffers and module states into a model of the same architecture."""
    params = {k[len("param/"):]: v for k, v in arrays.items() if k.startswith("param/")}
    model.load_state_dict(params)     # checks every name and shape before copying any
    for name, module in model.named_modules():
        prefix = f"buffer/{name + '.' if name else ''}"
        own = {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix) and "." not in k[len(prefix):]}
        if own:
            module.load_buffers(own)
    modules = dict(model.named_modules())
    for name, state in meta.get("extra_state", {}).items():
        if name not in modules:
            raise KeyError(f"the file holds the state of a module {name!r} this model does not have")
        modules[name].set_extra_state(state)


def restore_optimizer(optimizer, meta, arrays) -> None:
    saved = meta["optimizer"]
    try:
        buffers = {name: [arrays[f"optim/{name}/{i}"] for i in range(len(optimizer.params))]
                   for name in saved["buffers"]}
    except KeyError as exc:
        raise KeyError(f"the optimizer state lacks {exc.args[0]}") from None
    optimizer.load_state_dict({"class": saved["class"], "hyperparameters": saved["hyperparameters"],
                               "steps": saved["steps"], "buffers": buffers})


def load(path):
    """Rebuilds a saved model; its optimizer (if saved) is ``model.optimizer`` and its training
    history ``model.history``."""
    meta, arrays = read(path)
    path = os.fspath(path)
    try:
        model = registry.build(meta["model"])
        optimizer = None
        if meta.get("optimizer"):
            cls = optim.optimizers.OPTIMIZERS[meta["optimizer"]["class"]]
            optimizer = cls(model.parameters(), **dict(meta["optimizer"]["hyperparameters"]))
        history = History.from_dict(meta["training"]["history"]) if "history" in (meta.get("training") or {}) \
            else None
    except Exception as exc:
        raise ModelFileError(f"{path}: cannot rebuild the model it describes ({_first_line(exc)})") from None
    restore(model, meta, arrays, path, optimizer)
    if optimizer is not None:
        model.optimizer = optimizer
    if meta.get("metadata") is not None:
        model.metadata = meta["metadata"]
    if history is not None:
        model.history = history
    return model
