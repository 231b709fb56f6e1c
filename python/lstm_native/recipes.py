"""Training from a config file (``lstm-native train``) and predicting on a data file
(``lstm-native predict``): a forecaster over a CSV or NPY series.

A config (TOML or JSON) has four sections; everything but ``data.path`` has a default:

    [data]
    path = "series.csv"        # CSV (header row optional) or .npy (T,) / (T, F); relative to the config
    columns = ["load", "temp"] # input features: header names or 0-based indices (default: all)
    target = "load"            # the column to forecast (default: the first of columns)
    lookback = 30              # window length
    horizon = 1                # steps ahead to forecast
    stride = 1                 # between training windows
    scale = "standard"         # "standard", "minmax" or "none" (fitted on the training part)
    val = 0.15                 # time-ordered fractions for validation and test
    test = 0.15

    [model]
    cell = "lstm"              # or "gru"
    hidden_size = 64
    num_layers = 1
    dropout = 0.0
    bidirectional = false

    [training]
    epochs = 30
    batch_size = 32
    optimizer = "adam"         # adam, adamw, sgd, rmsprop
    lr = 0.001
    clip_grad_norm = 1.0
    patience = 10              # early stopping on validation loss (0: off)
    seed = 0
    distributed = true         # under mpiexec/srun with several ranks: one model trained data-parallel
                               # over them, rank 0 printing and writing the outputs (false: each alone)

    [output]
    model = "model.npz"        # relative to the config
    history = "history.json"

Errors in the config name the field (``training.epochs: expected a positive integer``).
"""
from __future__ import annotations

import csv
import json
import os

import numpy as np

from . import callbacks, data, distributed, optim
from .layers import LastTimestep, Linear
from .recurrent import GRU, LSTM
from .sequential import Sequential


class ConfigError(ValueError):
    """A config or data file that cannot be used; the message names the field or file."""


_POS_INT, _NONNEG_INT, _FRACTION, _POS_FLOAT, _NONNEG_FLOAT = "pos_int", "nonneg_int", "fraction", "pos_float", "nonneg_float"
SCHEMA = {
    "data": {"path": (str, None), "columns": ("columns", None), "target": ("column", None),
             "lookback": (_POS_INT, 30), "horizon": (_POS_INT, 1), "stride": (_POS_INT, 1),
             "scale": (("standard", "minmax", "none"), "standard"), "val": (_FRACTION, 0.15),
             "test": (_FRACTION, 0.15)},
    "model": {"cell": (("lstm", "gru"), "lstm"), "hidden_size": (_POS_INT, 64), "num_layers": (_POS_INT, 1),
              "dropout": (_FRACTION, 0.0), "bidirectional": (bool, False)},
    "training": {"epochs": (_POS_INT, 30), "batch_size": (_POS_INT, 32),
                 "optimizer": (("adam", "adamw", "sgd", "rmsprop"), "adam"), "lr": (_POS_FLOAT, 1e-3),
                 "clip_grad_norm": (_NONNEG_FLOAT, 1.0), "patience": (_NONNEG_INT, 10), "seed": (_NONNEG_INT, 0),
                 "verbose": (_NONNEG_INT, 1), "distributed": (bool, True)},
    "output": {"model": (str, "model.npz"), "history": (str, "history.json")},
}


def _check_value(field, kind, value):
    def fail(expected):
        raise ConfigError(f"{field}: expected {expected}, got {value!r}")

    is_int = isinstance(value, int) and not isinstance(value, bool)
    is_num = isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is str:
        if not isinstance(value, str) or not value:
            fail("a non-empty string")
    elif kind is bool:
        if not isinstance(value, bool):
            fail("true or false")
    elif isinstance(kind, tuple):
        if value not in kind:
            fail("one of " + ", ".join(repr(k) for k in kind))
    elif kind == _POS_INT and not (is_int and value >= 1):
        fail("a positive integer")
    elif kind == _NONNEG_INT and not (is_int and value >= 0):
        fail("an integer >= 0")
    elif kind == _FRACTION and not (is_num and 0 <= value < 1):
        fail("a number in [0, 1)")
    elif kind == _POS_FLOAT and not (is_num and value > 0):
        fail("a positive number")
    elif kind == _NONNEG_FLOAT and not (is_num and value >= 0):
        fail("a number >= 0")
    elif kind == "column" and not (isinstance(value, str) or is_int):
        fail("a column name or index")
    elif kind == "columns" and not (isinstance(value, list) and value
                                    and all(isinstance(v, str) or (isinstance(v, int) and not isinstance(v, bool))
                                            for v in value)):
        fail("a non-empty list of column names or indices")
    return value


def load_config(path) -> dict:
    """Reads and validates a TOML or JSON config; returns it with defaults filled in and
    paths made absolute (relative ones are taken from the config's folder)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ConfigError(f"{path}: no such config file")
    try:
        if path.endswith(".toml"):
            import tomllib
            with open(path, "rb") as f:
                raw = tomllib.load(f)
        elif path.endswith(".json"):
            with open(path, encoding="utf-8") as f:
                raw = json.load(f)
        else:
            raise ConfigError(f"{path}: a config must be a .toml or .json file")
    except ConfigError:
        raise
    except ImportError:
        raise ConfigError(f"{path}: TOML configs need Python 3.11+; use a .json config") from None
    except Exception as exc:
        raise ConfigError(f"{path}: cannot parse: {str(exc).splitlines()[0]}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the top level must be a table of sections")
    for section in raw:
        if section not in SCHEMA:
            raise ConfigError(f"{section}: unknown section (expected {', '.join(SCHEMA)})")
    config = {}
    for section, fields in SCHEMA.items():
        given = raw.get(section, {})
        if not isinstance(given, dict):
            raise ConfigError(f"{section}: expected a section (table), got {given!r}")
        for key in given:
            if key not in fields:
                raise ConfigError(f"{section}.{key}: unknown field (expected one of {', '.join(fields)})")
        config[section] = {}
        for key, (kind, default) in fields.items():
            if key in given:
                config[section][key] = _check_value(f"{section}.{key}", kind, given[key])
            elif default is None and key == "path":
                raise ConfigError("data.path: missing (the CSV or NPY file to train on)")
            else:
                config[section][key] = default
    d = config["data"]
    if d["val"] + d["test"] >= 1:
        raise ConfigError(f"data.val + data.test: must be below 1, got {d['val'] + d['test']}")
    folder = os.path.dirname(os.path.abspath(path))
    d["path"] = os.path.join(folder, d["path"])
    for key in ("model", "history"):
        config["output"][key] = os.path.join(folder, config["output"][key])
    return config


# -- data files -----------------------------------------------------------------------------
def read_table(path):
    """(values (T, F) float64, column names) from a CSV (header optional) or an .npy file."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ConfigError(f"{path}: no such data file")
    if path.endswith(".npy"):
        try:
            values = np.load(path, allow_pickle=False)
        except Exception as exc:
            raise ConfigError(f"{path}: not a readable .npy file ({exc})") from None
        if values.dtype.kind not in "fiu" or values.ndim not in (1, 2):
            raise ConfigError(f"{path}: expected a numeric array of shape (T,) or (T, F), got {values.dtype} {values.shape}")
        values = values.astype(np.float64).reshape(len(values), -1)
        names = [str(i) for i in range(values.shape[1])]
    else:
        try:
            with open(path, newline="", encoding="utf-8") as f:
                rows = [r for r in csv.reader(f) if r and any(c.strip() for c in r)]
        except (UnicodeDecodeError, csv.Error) as exc:
            raise ConfigError(f"{path}: not a readable CSV file ({exc})") from None
        if not rows:
            raise ConfigError(f"{path}: the file is empty")

        def numeric(cell):
            try:
                float(cell)
                return True
            except ValueError:
                return False

        header = None if all(numeric(c) for c in rows[0]) else [c.strip() for c in rows[0]]
        body = rows[1:] if header else rows
        width = len(rows[0])
        names = header or [str(i) for i in range(width)]
        # Columns that are not numbers (dates, labels) are kept out; the rest must parse.
        numeric_cols = [j for j in range(width) if body and all(j < len(r) and numeric(r[j]) for r in body)]
        if not numeric_cols:
            raise ConfigError(f"{path}: no numeric columns")
        for i, r in enumerate(body):
            if len(r) != width:
                raise ConfigError(f"{path}: line {i + 1 + bool(header)} has {len(r)} fields, expected {width}")
        values = np.array([[float(r[j]) for j in numeric_cols] for r in body], dtype=np.float64)
        names = [names[j] for j in numeric_cols]
    if not np.all(np.isfinite(values)):
        raise ConfigError(f"{path}: contains NaN or infinite values")
    return values, names


def _column_index(spec, names, field, path):
    if isinstance(spec, str):
        if spec in names:
            return names.index(spec)
        raise ConfigError(f"{field}: column {spec!r} is not among the numeric columns of {path} ({', '.join(names)})")
    if not -len(names) <= spec < len(names):
        raise ConfigError(f"{field}: column index {spec} is out of range for {len(names)} columns in {path}")
    return spec % len(names)


def select_columns(values, names, data_cfg, path):
    cols = ([_column_index(c, names, "data.columns", path) for c in data_cfg["columns"]]
            if data_cfg["columns"] is not None else list(range(len(names))))
    target = (_column_index(data_cfg["target"], names, "data.target", path)
              if data_cfg["target"] is not None else cols[0])
    if target not in cols:
        raise ConfigError(f"data.target: column {names[target]!r} must also be one of data.columns")
    return values[:, cols], [names[c] for c in cols], cols.index(target)


def _scaler(kind):
    return {"standard": data.StandardScaler, "minmax": data.MinMaxScaler}[kind]() if kind != "none" else None


# -- train and predict ----------------------------------------------------------------------
def train_from_config(config_path, say=print) -> dict:
    """Trains the configured forecaster, saves it (with what predict needs to prepare new
    data) and its history; returns the test figures."""
    with distributed.together():              # under mpiexec: a config error stops every rank alike
        cfg = load_config(config_path)
    if distributed.rank() != 0:               # only rank 0 speaks and writes the outputs
        say = lambda *args, **kwargs: None    # noqa: E731
    d, m, t = cfg["data"], cfg["model"], cfg["training"]
    values, names = read_table(d["path"])
    values, names, target = select_columns(values, names, d, d["path"])
    X, y = data.sliding_windows(values, d["lookback"], d["horizon"], d["stride"], target=target) \
        if len(values) >= d["lookback"] + d["horizon"] else (None, None)
    if X is None or len(X) < 3:
        raise ConfigError(f"data.lookback: {d['path']} has {len(values)} rows, too few for lookback "
                          f"{d['lookback']} + horizon {d['horizon']}")
    (Xtr, Xva, Xte), (ytr, yva, yte) = data.time_split(X, y, val=d["val"], test=d["test"])
    if len(Xva) == 0:
        raise ConfigError(f"data.val: leaves no validation windows out of {len(X)}")

    scaler = _scaler(d["scale"])
    if scaler is not None:
        scaler.fit(values[:(len(Xtr) - 1) * d["stride"] + d["lookback"]])   # the training part only
    scale_x = (lambda a: scaler.transform(a).astype(np.float32)) if scaler else (lambda a: a)
    scale_y = (lambda a: ((a - scaler.shift_[target]) / scaler.scale_[target]).astype(np.float32)) if scaler else (lambda a: a)
    unscale_y = (lambda a: a * scaler.scale_[target] + scaler.shift_[target]) if scaler else (lambda a: a)

    cell = LSTM if m["cell"] == "lstm" else GRU
    D = 2 if m["bidirectional"] else 1
    model = Sequential(cell(len(names), m["hidden_size"], num_layers=m["num_layers"], batch_first=True,
                            dropout=m["dropout"], bidirectional=m["bidirectional"], seed=t["seed"]),
                       LastTimestep(), Linear(D * m["hidden_size"], d["horizon"], seed=t["seed"]))
    opt = optim.get(t["optimizer"], model.parameters(), lr=t["lr"])
    cbs = [callbacks.EarlyStopping(patience=t["patience"])] if t["patience"] else []
    say(f"training {m['cell'].upper()}({m['hidden_size']}) x{m['num_layers']} on {len(Xtr)} windows of "
        f"{d['lookback']} steps x {len(names)} features from {d['path']}")
    history = model.fit(scale_x(Xtr), scale_y(ytr), loss="mse", optimizer=opt, epochs=t["epochs"],
                        batch_size=t["batch_size"], clip_grad_norm=t["clip_grad_norm"] or None,
                        validation_data=(scale_x(Xva), scale_y(yva)), callbacks=cbs, seed=t["seed"],
                        verbose=t["verbose"], distributed=t["distributed"])

    result = {"epochs_run": len(history.epoch)}
    if len(Xte):
        pred = unscale_y(model.predict(scale_x(Xte)))
        result["test_mse"] = float(np.mean((pred - yte) ** 2))
        result["naive_test_mse"] = float(np.mean((data.naive_forecast(Xte, d["horizon"], target=target) - yte) ** 2))
        say(f"test MSE {result['test_mse']:.6g} (naive last value: {result['naive_test_mse']:.6g})")
    model.metadata = {"kind": "forecaster", "columns": names, "target": target, "lookback": d["lookback"],
                      "horizon": d["horizon"], "scaler": scaler.state() if scaler else None,
                      "trained_on": os.path.basename(d["path"]), "test": result}
    if distributed.rank() == 0:
        for key in ("model", "history"):
            os.makedirs(os.path.dirname(cfg["output"][key]) or ".", exist_ok=True)
        model.save(cfg["output"]["model"])
        with open(cfg["output"]["history"], "w", encoding="utf-8") as f:
            json.dump(history.to_dict(), f, indent=1)
    say(f"saved the model to {cfg['output']['model']} and its history to {cfg['output']['history']}")
    result.update(model=cfg["output"]["model"], history=cfg["output"]["history"])
    return result


def predict_file(model, data_path):
    """Forecasts from every window of a data file with a model saved by train_from_config.
    Returns (window_end rows (N,), predictions (N, horizon)) in the data's own units; window
    i covers rows i .. i+lookback-1 and forecasts the ``horizon`` rows after it."""
    meta = getattr(model, "metadata", None)
    if not isinstance(meta, dict) or meta.get("kind") != "forecaster":
        raise ConfigError("MODEL: was not saved by `lstm-native train` (it lacks the data description predict needs)")
    values, names = read_table(data_path)
    missing = [c for c in meta["columns"] if c not in names]
    if missing and not all(c.isdigit() for c in meta["columns"]):
        raise ConfigError(f"{data_path}: lacks the column(s) {', '.join(missing)} the model was trained on")
    if missing:   # trained on a headerless file: columns are positions
        idx = [int(c) for c in meta["columns"]]
        if max(idx) >= values.shape[1]:
            raise ConfigError(f"{data_path}: has {values.shape[1]} columns, the model needs column {max(idx)}")
    else:
        idx = [names.index(c) for c in meta["columns"]]
    values = values[:, idx]
    lookback = meta["lookback"]
    if len(values) < lookback:
        raise ConfigError(f"{data_path}: has {len(values)} rows, the model needs at least {lookback} (its lookback)")
    scaler = data._Scaler.from_state(meta["scaler"]) if meta["scaler"] else None
    scaled = scaler.transform(values) if scaler else values
    n = len(values) - lookback + 1
    X = scaled[np.arange(n)[:, None] + np.arange(lookback)[None, :]].astype(np.float32)
    pred = np.asarray(model.predict(X), np.float64)
    if scaler:
        t = meta["target"]
        pred = pred * scaler.scale_[t] + scaler.shift_[t]
    return np.arange(lookback - 1, len(values)), pred
