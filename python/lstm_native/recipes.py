"""Training from a config file (``lstm-native train``) and predicting on a data file
(``lstm-native predict``): a forecaster over a CSV or NPY series.

A config (TOML or JSON) has four sections; everything but ``data.path`` has a default:

    [data]
    path = "series.csv"        # CSV (header row optional) or .npy (T,) / (T, F); relative to the config
    columns = ["load", "temp"] # input features: header names or 0-based indices (default: all
                               # numeric columns but the time column)
    target = "load"            # the column to forecast (default: the first of columns)
    time = "date"              # the time index (default: recognised, see tables.py; false: none)
    missing = "interpolate"    # blanks/NA: "interpolate", "ffill", "drop" or "error"
    transform = "auto"         # what the model learns: "none" (levels), "diff", "log_diff",
                               # "pct_change"; "auto" decides on the training part (transforms.py)
    season = 52                # the period for the seasonal-naive baseline (default: detected; 0: none)
    lookback = 30              # window length
    horizon = 1                # steps ahead to forecast
    stride = 1                 # between training windows
    scale = "standard"         # "standard", "minmax" or "none" (fitted on the training part)
    val = 0.15                 # time-ordered fractions for validation and test
    test = 0.15

    [model]
    cell = "lstm"              # "lstm", "gru" or "rnn"
    hidden_size = 64
    num_layers = 1
    dropout = 0.0              # between stacked layers
    bidirectional = false
    recurrent_dropout = 0.0    # variational dropout on the h feeding the recurrent product (training)
    zoneout = 0.0              # units keep their previous state with this probability (training)
    layer_norm = false         # LayerNormLSTM / LayerNormGRU
    forget_bias = 0.0          # lstm: added to the forget gate's bias at initialisation (Keras: 1.0)
    proj_size = 0              # lstm: torch's projection of h (0: none; below hidden_size)
    reset_after = true         # gru: torch's GRU (true) or the textbook's, reset before the product
    nonlinearity = "tanh"      # rnn: "tanh" or "relu"

    [training]
    epochs = 200               # at most; early stopping (patience) ends most runs long before.
                               # 30 left short real series undertrained (examples/real_series.py)
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

import json
import os
import time as _time

import numpy as np

from . import callbacks, data, distributed, optim, tables, transforms
from .layers import LastTimestep, Linear
from .recurrent import GRU, LSTM, RNN, LayerNormGRU, LayerNormLSTM
from .sequential import Sequential


class ConfigError(ValueError):
    """A config or data file that cannot be used; the message names the field or file."""


_POS_INT, _NONNEG_INT, _FRACTION, _POS_FLOAT, _NONNEG_FLOAT = "pos_int", "nonneg_int", "fraction", "pos_float", "nonneg_float"
_NUMBER = "number"
SCHEMA = {
    "data": {"path": (str, None), "columns": ("columns", None), "target": ("column", None),
             "lookback": (_POS_INT, 30), "horizon": (_POS_INT, 1), "stride": (_POS_INT, 1),
             "scale": (("standard", "minmax", "none"), "standard"), "val": (_FRACTION, 0.15),
             "test": (_FRACTION, 0.15), "time": ("time", None),
             "missing": (tables.MISSING_MODES, "interpolate"),
             "transform": (("auto",) + transforms.TRANSFORMS, "auto"), "season": ("season", None)},
    "model": {"cell": (("lstm", "gru", "rnn"), "lstm"), "hidden_size": (_POS_INT, 64), "num_layers": (_POS_INT, 1),
              "dropout": (_FRACTION, 0.0), "bidirectional": (bool, False),
              "recurrent_dropout": (_FRACTION, 0.0), "zoneout": (_FRACTION, 0.0), "layer_norm": (bool, False),
              "forget_bias": (_NUMBER, 0.0), "proj_size": (_NONNEG_INT, 0), "reset_after": (bool, True),
              "nonlinearity": (("tanh", "relu"), "tanh")},
    "training": {"epochs": (_POS_INT, 200), "batch_size": (_POS_INT, 32),
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
    elif kind == _NUMBER and not (is_num and np.isfinite(value)):
        fail("a number")
    elif kind == "column" and not (isinstance(value, str) or is_int):
        fail("a column name or index")
    elif kind == "time" and not (value is False or isinstance(value, str) or is_int):
        fail("a column name or index, or false")
    elif kind == "season" and not (is_int and (value == 0 or value >= 2)):
        fail("0 (none) or a period >= 2")
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
    _check_model(config["model"])
    d = config["data"]
    if d["val"] + d["test"] >= 1:
        raise ConfigError(f"data.val + data.test: must be below 1, got {d['val'] + d['test']}")
    folder = os.path.dirname(os.path.abspath(path))
    d["path"] = os.path.join(folder, d["path"])
    for key in ("model", "history"):
        config["output"][key] = os.path.join(folder, config["output"][key])
    return config


def _check_model(m):
    """The model options that only some cells take, checked against the cell."""
    def fail(field, why):
        raise ConfigError(f"model.{field}: {why}")

    cell = m["cell"]
    if m["proj_size"]:
        if cell != "lstm" or m["layer_norm"]:
            fail("proj_size", f"only a plain lstm has a projection (cell is {cell!r}"
                 + (", layer_norm = true)" if m["layer_norm"] else ")"))
        if m["proj_size"] >= m["hidden_size"]:
            fail("proj_size", f"must be below hidden_size ({m['hidden_size']}), got {m['proj_size']}")
        if m["zoneout"]:
            fail("zoneout", "cannot be combined with proj_size")
    if m["forget_bias"] and cell != "lstm":
        fail("forget_bias", f"only an lstm has a forget gate (cell is {cell!r})")
    if m["layer_norm"] and cell == "rnn":
        fail("layer_norm", "is for lstm and gru (LayerNormLSTM, LayerNormGRU)")
    if not m["reset_after"] and (cell != "gru" or m["layer_norm"]):
        fail("reset_after", "false is the textbook gru's (cell = \"gru\", layer_norm = false)")
    if m["nonlinearity"] != "tanh" and cell != "rnn":
        fail("nonlinearity", f"is the rnn cell's (cell is {cell!r})")


def recurrent_layer(m, input_size, seed):
    """The recurrent layer a config's [model] section describes (batch-first)."""
    kw = dict(num_layers=m["num_layers"], batch_first=True, dropout=m["dropout"], bidirectional=m["bidirectional"],
              seed=seed, recurrent_dropout=m["recurrent_dropout"], zoneout=m["zoneout"])
    if m["cell"] == "rnn":
        return RNN(input_size, m["hidden_size"], nonlinearity=m["nonlinearity"], **kw)
    if m["cell"] == "gru":
        if m["layer_norm"]:
            return LayerNormGRU(input_size, m["hidden_size"], **kw)
        return GRU(input_size, m["hidden_size"], reset_after=m["reset_after"], **kw)
    if m["layer_norm"]:
        return LayerNormLSTM(input_size, m["hidden_size"], forget_bias=m["forget_bias"], **kw)
    return LSTM(input_size, m["hidden_size"], proj_size=m["proj_size"], forget_bias=m["forget_bias"], **kw)


# -- data files -----------------------------------------------------------------------------
def read_table(path):
    """(values (T, F) float64 with NaN where a value is missing, column names) of the numeric
    columns of a CSV (header optional) or .npy file, the time column left out."""
    try:
        table = tables.load_table(path)
    except tables.DataError as exc:
        raise ConfigError(str(exc)) from None
    keep = [j for j, n in enumerate(table.names) if n != table.time_name]
    return table.values[:, keep], [table.names[j] for j in keep]


def _column_index(spec, names, field, path, skipped=()):
    if isinstance(spec, str):
        if spec in names:
            return names.index(spec)
        if spec in skipped and skipped[spec] is None:
            raise ConfigError(f"{field}: column {spec!r} of {path} has no values (all blank or NA)")
        if spec in skipped:
            raise ConfigError(f"{field}: column {spec!r} of {path} is not numeric (line {skipped[spec][0]}: "
                              f"{skipped[spec][1]!r})")
        raise ConfigError(f"{field}: column {spec!r} is not among the numeric columns of {path} ({', '.join(names)})")
    if not -len(names) <= spec < len(names):
        raise ConfigError(f"{field}: column index {spec} is out of range for {len(names)} columns in {path}")
    return spec % len(names)


def select_columns(names, data_cfg, path, time_name=None, skipped=()):
    """(feature column indices, index of the target among them): data.columns or every
    numeric column but the time index."""
    if data_cfg["columns"] is not None:
        cols = [_column_index(c, names, "data.columns", path, skipped) for c in data_cfg["columns"]]
    else:
        cols = [j for j, n in enumerate(names) if n != time_name]
    target = (_column_index(data_cfg["target"], names, "data.target", path, skipped)
              if data_cfg["target"] is not None else cols[0])
    if target not in cols:
        raise ConfigError(f"data.target: column {names[target]!r} must also be one of data.columns")
    return cols, cols.index(target)


def _load(path, time, say):
    try:
        table = tables.load_table(path, time=time)
    except tables.DataError as exc:
        raise ConfigError(str(exc)) from None
    for note in table.notes:
        say(note)
    return table


def _fill(table, cols, mode, say):
    try:
        table, message = tables.fill_missing(table, cols, mode)
    except tables.DataError as exc:
        raise ConfigError(str(exc)) from None
    if message:
        say("missing values: " + message)
    return table


def _scaler(kind):
    return {"standard": data.StandardScaler, "minmax": data.MinMaxScaler}[kind]() if kind != "none" else None


def _windows(feats, origins, lookback):
    """Input windows (N, lookback, F) float32 ending at each origin row."""
    return feats[np.asarray(origins)[:, None] + np.arange(1 - lookback, 1)[None, :]].astype(np.float32)


def _features(values, target, transform):
    """The model's view of the data: the target column as changes (row 0 NaN), others as levels."""
    feats = values.copy()
    feats[:, target] = transforms.forward(values[:, target], transform)
    return feats


def _likeliest_fix(r, d, t, n_train, train_levels, test_levels):
    """One hint for a model that loses to a baseline: the first of these that applies (the
    order is what the real series in examples/real_series.py showed to matter most)."""
    lo, hi = float(np.min(train_levels)), float(np.max(train_levels))
    margin = 0.05 * (hi - lo)
    if r["transform"] == "none" and (np.max(test_levels) > hi + margin or np.min(test_levels) < lo - margin):
        return 'set data.transform = "diff": the test part leaves the range of levels seen in training'
    if r.get("best_baseline") == "seasonal_naive" and d["lookback"] < r["season"]:
        return f"set data.lookback >= {r['season']} so that each window holds a full season"
    if r["epochs_run"] >= t["epochs"]:
        return "more epochs (training.epochs): early stopping never fired, the validation loss was still falling"
    if n_train < 300:
        return (f"more data: only {n_train} training windows (on so few, results vary with training.seed; "
                f"a smaller model.hidden_size may help)")
    if r["transform"] == "none":
        return 'try data.transform = "diff": the series may be close to a random walk'
    return "none obvious: the series may be close to a random walk, where the last value is the best forecast"


# -- train and predict ----------------------------------------------------------------------
def train_from_config(config_path, say=print) -> dict:
    """Trains the configured forecaster, saves it (with what predict needs to prepare new
    data) and its history; returns the test figures (errors in the data's own units)."""
    with distributed.together():              # under mpiexec: a config error stops every rank alike
        cfg = load_config(config_path)
    if distributed.rank() != 0:               # only rank 0 speaks and writes the outputs
        say = lambda *args, **kwargs: None    # noqa: E731
    d, m, t = cfg["data"], cfg["model"], cfg["training"]
    start = _time.perf_counter()
    table = _load(d["path"], d["time"], say)
    cols, target = select_columns(table.names, d, d["path"], table.time_name, table.skipped)
    table = _fill(table, cols, d["missing"], say)
    note = tables.spacing_note(table)
    if note:
        say(note)
    values, names = table.values[:, cols], [table.names[c] for c in cols]
    levels = values[:, target]
    L, H = d["lookback"], d["horizon"]
    # Forecast origins (the last observed row of each window) start at `lookback`, so that every
    # transform has the row before its first window and all of them share the same windows.
    origins = np.arange(L, len(values) - H, d["stride"])
    if len(origins) < 3:
        raise ConfigError(f"data.lookback: {d['path']} has {len(values)} rows, too few for lookback "
                          f"{L} + horizon {H}")
    o_tr, o_va, o_te = data.time_split(origins, val=d["val"], test=d["test"])
    if len(o_va) == 0:
        raise ConfigError(f"data.val: leaves no validation windows out of {len(origins)}")
    train_end = int(o_tr[-1]) + H + 1                  # rows [0, train_end) are the training part

    transform, why = d["transform"], "set in the config"
    if transform == "auto":
        transform, why = transforms.choose(levels[:train_end])
        if transform == "log_diff" and levels.min() <= 0:
            transform, why = "diff", why + "; diff, as the file has values <= 0"
    try:
        transforms.check_domain(levels, transform, d["path"])
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    say(f"transform: {transform} ({d['transform']}: {why})")
    feats = _features(values, target, transform)

    step = tables.time_step(table.time, table.time_kind) if table.time is not None else None
    season = d["season"]
    if season is None:
        natural = transforms.NATURAL_SEASONS.get(step) if step else None
        season = transforms.detect_season(np.diff(levels[:train_end]), natural=natural)
        if season:
            say(f"season: {season} steps (detected in the changes of the training part; data.season sets it, "
                f"0 turns it off)")

    scaler = _scaler(d["scale"])
    if scaler is not None:
        scaler.fit(feats[int(o_tr[0]) - L + 1:train_end])    # the training part only
    sfeats = scaler.transform(feats) if scaler else feats
    scale_y = (lambda a: ((a - scaler.shift_[target]) / scaler.scale_[target]).astype(np.float32)) if scaler \
        else (lambda a: np.asarray(a, np.float32))
    unscale_y = (lambda a: a * scaler.scale_[target] + scaler.shift_[target]) if scaler else (lambda a: a)
    ahead = np.arange(1, H + 1)[None, :]
    XY = {k: (_windows(sfeats, o, L), scale_y(feats[o[:, None] + ahead, target])) for k, o in
          (("train", o_tr), ("val", o_va), ("test", o_te))}

    rnn = recurrent_layer(m, len(names), t["seed"])
    model = Sequential(rnn, LastTimestep(), Linear(rnn.num_directions * rnn.state_size, H, seed=t["seed"]))
    opt = optim.get(t["optimizer"], model.parameters(), lr=t["lr"])
    cbs = [callbacks.EarlyStopping(patience=t["patience"])] if t["patience"] else []
    say(f"training {m['cell'].upper()}({m['hidden_size']}) x{m['num_layers']} on {len(o_tr)} windows of "
        f"{L} steps x {len(names)} features from {d['path']}")
    history = model.fit(*XY["train"], loss="mse", optimizer=opt, epochs=t["epochs"],
                        batch_size=t["batch_size"], clip_grad_norm=t["clip_grad_norm"] or None,
                        validation_data=XY["val"], callbacks=cbs, seed=t["seed"], verbose=t["verbose"],
                        distributed=t["distributed"])

    result = {"epochs_run": len(history.epoch), "transform": transform, "transform_rule": why,
              "season": int(season), "rows": int(len(values)), "missing": d["missing"]}
    if len(o_te):
        truth = levels[o_te[:, None] + ahead]
        pred = transforms.invert(levels[o_te], unscale_y(np.asarray(model.predict(XY["test"][0]), np.float64)),
                                 transform)
        mse = lambda f: float(np.mean((f - truth) ** 2))          # noqa: E731
        result["test_mse"] = mse(pred)
        result["naive_test_mse"] = mse(transforms.naive(levels, o_te, H))
        line = f"test MSE {result['test_mse']:.6g} | naive (last value) {result['naive_test_mse']:.6g}"
        baselines = {"naive": result["naive_test_mse"]}
        if season >= 2 and int(o_te[0]) + 1 - season >= 0:
            result["seasonal_naive_test_mse"] = mse(transforms.seasonal_naive(levels, o_te, H, season))
            baselines["seasonal_naive"] = result["seasonal_naive_test_mse"]
            line += f" | seasonal naive ({season}) {result['seasonal_naive_test_mse']:.6g}"
        best = min(baselines, key=baselines.get)
        result["best_baseline"] = best
        ratio = baselines[best] / result["test_mse"] if result["test_mse"] > 0 else np.inf
        result["vs_best_baseline"] = float(ratio)
        say(line + (f" (in {names[target]}'s units; {ratio:.2f}x better than the best baseline)" if ratio >= 1
                    else ""))
        if ratio < 1:
            fix = _likeliest_fix(result, d, t, len(o_tr), levels[:train_end], truth)
            result["advice"] = fix
            say(f"the model is worse than the {best.replace('_', '-')} forecast ({result['test_mse']:.6g} vs "
                f"{baselines[best]:.6g}): likeliest fix: {fix}")
    result["seconds"] = round(_time.perf_counter() - start, 2)
    time_meta = None
    if table.time is not None:
        time_meta = {"name": table.time_name, "kind": table.time_kind, "style": table.time_style,
                     "step": list(step) if step else None}
    model.metadata = {"kind": "forecaster", "columns": names, "target": target, "lookback": L,
                      "horizon": H, "scaler": scaler.state() if scaler else None, "transform": transform,
                      "missing": d["missing"], "time": time_meta,
                      "trained_on": os.path.basename(d["path"]), "test": result}
    if distributed.rank() == 0:
        for key in ("model", "history"):
            os.makedirs(os.path.dirname(cfg["output"][key]) or ".", exist_ok=True)
        model.save(cfg["output"]["model"])
        with open(cfg["output"]["history"], "w", encoding="utf-8") as f:
            json.dump(dict(history.to_dict(), test=result), f, indent=1)
    say(f"saved the model to {cfg['output']['model']} and its history to {cfg['output']['history']}")
    result.update(model=cfg["output"]["model"], history=cfg["output"]["history"])
    return result


def _meta(model):
    meta = getattr(model, "metadata", None)
    if not isinstance(meta, dict) or meta.get("kind") != "forecaster":
        raise ConfigError("MODEL: was not saved by `lstm-native train` (it lacks the data description predict needs)")
    return meta


def _prepare(meta, data_path, say):
    """The data file as the model saw its training file: table, feature values, levels."""
    time_meta = meta.get("time")
    table = _load(data_path, time_meta["name"] if time_meta else None, say)
    names = table.names
    missing = [c for c in meta["columns"] if c not in names]
    if missing and not all(c.isdigit() for c in meta["columns"]):
        raise ConfigError(f"{data_path}: lacks the column(s) {', '.join(missing)} the model was trained on")
    if missing:   # trained on a headerless file: columns are positions
        idx = [int(c) for c in meta["columns"]]
        if max(idx) >= len(names):
            raise ConfigError(f"{data_path}: has {len(names)} columns, the model needs column {max(idx)}")
    else:
        idx = [names.index(c) for c in meta["columns"]]
    table = _fill(table, idx, meta.get("missing", "error"), say)
    values = table.values[:, idx]
    transform = meta.get("transform", "none")
    try:
        transforms.check_domain(values[:, meta["target"]], transform, data_path)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    return table, values


def _forecast(model, meta, values, origins):
    """Level forecasts (N, horizon) from the windows ending at ``origins``."""
    t, transform = meta["target"], meta.get("transform", "none")
    feats = _features(values, t, transform)
    scaler = data._Scaler.from_state(meta["scaler"]) if meta["scaler"] else None
    X = _windows(scaler.transform(feats) if scaler else feats, origins, meta["lookback"])
    pred = np.asarray(model.predict(X), np.float64)
    if scaler:
        pred = pred * scaler.scale_[t] + scaler.shift_[t]
    return transforms.invert(values[origins, t], pred, transform)


def predict_file(model, data_path, say=lambda *a: None):
    """Forecasts from every window of a data file with a model saved by train_from_config.
    Returns (window_end rows (N,), predictions (N, horizon)) in the data's own units; window
    i covers rows i .. i+lookback-1 and forecasts the ``horizon`` rows after it (a model of
    changes needs one row more before its first window). Rows count the data after missing
    values were handled (``drop`` removes rows)."""
    rows, pred, _ = predict_table(model, data_path, say)
    return rows, pred


def predict_table(model, data_path, say=lambda *a: None):
    """predict_file plus the time stamps of the window ends (strings, or None without a time index)."""
    meta = _meta(model)
    table, values = _prepare(meta, data_path, say)
    lookback = meta["lookback"]
    first = lookback - 1 + (meta.get("transform", "none") != "none")
    if len(values) <= first:
        raise ConfigError(f"{data_path}: has {len(values)} rows, the model needs at least {first + 1} "
                          f"(its lookback{' + 1 for the changes' if first >= lookback else ''})")
    rows = np.arange(first, len(values))
    stamps = _stamps(table, table.time[rows]) if table.time is not None else None
    return rows, _forecast(model, meta, values, rows), stamps


def _stamps(table, times):
    return tables.format_time(times, table.time_kind, table.time_style)


def forecast_future(model, data_path, steps, say=lambda *a: None):
    """The ``steps`` values after the end of a data file: (time stamps or None, levels (steps,)).
    A model whose horizon is shorter is iterated, its forecasts fed back as observations, which
    needs the target to be its only input."""
    meta = _meta(model)
    if not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ConfigError(f"--future: expected a positive number of steps, got {steps!r}")
    H = meta["horizon"]
    if steps > H and len(meta["columns"]) > 1:
        raise ConfigError(f"--future {steps}: the model forecasts {H} step(s) and has inputs besides its target "
                          f"({', '.join(meta['columns'])}), so it cannot be iterated; ask for at most {H}")
    table, values = _prepare(meta, data_path, say)
    need = meta["lookback"] + (meta.get("transform", "none") != "none")
    if len(values) < need:
        raise ConfigError(f"{data_path}: has {len(values)} rows, the model needs at least {need}")
    out = []
    while len(out) < steps:
        path = _forecast(model, meta, values, np.array([len(values) - 1]))[0]
        out.extend(path.tolist())
        if len(out) < steps:                                          # only with the target as the one input
            values = np.concatenate([values, path[:, None]], axis=0)
    levels = np.array(out[:steps])
    if table.time is None or len(table.time) < 2:
        return None, levels
    step = tables.time_step(table.time, table.time_kind)
    return _stamps(table, tables.future_times(table.time, table.time_kind, step, steps)), levels
