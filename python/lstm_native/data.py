"""Data tools: windows for forecasting, scalers, padding, time-ordered splits, vocabularies,
and the small built-in datasets the demo and the examples use (generated, no downloads).

Everything takes and returns NumPy arrays; sequence batches are batch-first (N, T, F), as
``fit`` expects.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from ._checks import to_numpy


def _count(name, value, low=1) -> int:
    """An integer >= low; bools, floats and strings are refused (they were truncated or failed
    inside NumPy with messages naming nothing)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__} {value!r}")
    if value < low:
        raise ValueError(f"{name} must be >= {low}, got {value!r}")
    return int(value)


def _real(name, value, low=-math.inf, low_open=False) -> float:
    """A finite real number (above low)."""
    if isinstance(value, (bool, str, bytes)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__} {value!r}")
    value = float(value)
    if not math.isfinite(value) or (value <= low if low_open else value < low):
        raise ValueError(f"{name} must be a finite number {'>' if low_open else '>='} {low}, got {value!r}")
    return value


# -- forecasting windows --------------------------------------------------------------------
def _as_series(series, name="series") -> np.ndarray:
    s = to_numpy(series, name)
    if s.dtype.kind not in "fiu":
        raise TypeError(f"{name} must be numeric, got dtype {s.dtype}")
    if s.ndim == 1:
        s = s[:, None]
    if s.ndim != 2:
        raise ValueError(f"{name} must have shape (T,) or (T, features), got {s.shape}")
    return s


def _columns(columns, n_features, name):
    if columns is None:
        return list(range(n_features)), False
    single = isinstance(columns, (int, np.integer)) and not isinstance(columns, bool)
    if not single and (isinstance(columns, (str, bytes)) or not hasattr(columns, "__iter__")):
        raise TypeError(f"{name} must be a column index or a list of them, got {columns!r}")
    cols = [columns] if single else list(columns)
    for c in cols:
        if isinstance(c, bool) or not isinstance(c, (int, np.integer)):   # int("a") raised a bare ValueError
            raise TypeError(f"{name} columns must be integers, got {c!r}")
    cols = [int(c) for c in cols]
    if not cols:
        raise ValueError(f"{name} must name at least one column")
    for c in cols:
        if not -n_features <= c < n_features:
            raise ValueError(f"{name} column {c} is out of range for {n_features} features")
    return [c % n_features for c in cols], single


def sliding_windows(series, lookback: int, horizon: int = 1, stride: int = 1, target=None,
                    dtype=np.float32):
    """Input windows and the values that follow them.

    series: (T,) or (T, F). Returns X (N, lookback, F) and y, the next ``horizon`` values of
    the ``target`` column(s) (default: all): (N, horizon) for one column (an int, or a 1-D
    series), (N, horizon, n_targets) for several. Window i starts at i * stride.
    """
    s = _as_series(series)
    for name, v in (("lookback", lookback), ("horizon", horizon), ("stride", stride)):
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
    try:
        dtype = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"dtype must be a NumPy dtype, got {dtype!r}") from None
    if dtype.kind not in "fiu":
        raise TypeError(f"dtype must be a numeric dtype, got {dtype}")
    T, F = s.shape
    n = (T - lookback - horizon) // stride + 1
    if n < 1:
        raise ValueError(f"series of length {T} is too short for lookback {lookback} + horizon {horizon}")
    cols, single = _columns(target, F, "target")
    single = single or (target is None and F == 1)
    starts = np.arange(n) * stride
    X = s[starts[:, None] + np.arange(lookback)[None, :]].astype(dtype)
    y = s[(starts + lookback)[:, None] + np.arange(horizon)[None, :]][:, :, cols].astype(dtype)
    return X, (y[:, :, 0] if single else y)


def naive_forecast(X, horizon: int = 1, target=None):
    """The last-value baseline for windows from sliding_windows: each of the ``horizon`` steps
    predicted as the window's last value of the target column(s); shaped like y."""
    X = to_numpy(X, "X")
    if X.ndim != 3 or X.shape[1] == 0:
        raise ValueError(f"X must have shape (N, lookback, features), got {X.shape}")
    horizon = _count("horizon", horizon)
    cols, single = _columns(target, X.shape[2], "target")
    single = single or (target is None and X.shape[2] == 1)
    last = X[:, -1, cols]
    y = np.repeat(last[:, None, :], horizon, axis=1)
    return y[:, :, 0] if single else y


# -- scalers --------------------------------------------------------------------------------
class _Scaler:
    """Per-feature affine scaling over the last axis: transform(x) = (x - shift) / scale."""

    def __init__(self):
        self.shift_ = None
        self.scale_ = None

    def _check_fitted(self):
        if self.shift_ is None:
            raise ValueError(f"{type(self).__name__} is not fitted: call fit(data) first")

    def _data(self, x, name="x"):
        x = to_numpy(x, name)
        if x.dtype.kind not in "fiu":
            raise TypeError(f"{name} must be numeric, got dtype {x.dtype}")
        return x

    def _check_features(self, x, name):
        if x.ndim == 0 or (x.shape[-1] != self.shift_.shape[0] and not (x.ndim == 1 and self.shift_.shape[0] == 1)):
            raise ValueError(f"{name} must have {self.shift_.shape[0]} features in its last axis, got shape {x.shape}")

    def fit_transform(self, x):
        return self.fit(x).transform(x)

    def transform(self, x):
        self._check_fitted()
        x = self._data(x)
        self._check_features(x, "x")
        out = (x - self.shift_) / self.scale_      # (F,) broadcasts over the last axis
        return out.astype(x.dtype if x.dtype.kind == "f" else np.float64)

    def inverse_transform(self, x, columns=None):
        """Back to the original units; ``columns`` selects which fitted features x holds
        (e.g. the target column of a multivariate fit)."""
        self._check_fitted()
        x = self._data(x)
        shift, scale = self.shift_, self.scale_
        if columns is not None:
            cols, _ = _columns(columns, shift.shape[0], "columns")
            shift, scale = shift[cols], scale[cols]
        if x.ndim >= 1 and x.shape[-1] == shift.shape[0]:
            out = x * scale + shift
        elif shift.shape[0] == 1:
            out = x * scale[0] + shift[0]
        else:
            raise ValueError(f"x must have {shift.shape[0]} features in its last axis, got shape {x.shape}")
        return out.astype(x.dtype if x.dtype.kind == "f" else np.float64)

    def _features(self, x):
        x = self._data(x, "data")
        if x.ndim == 0:
            raise ValueError("data must be at least 1-D (samples, or samples x features)")
        x = x[:, None] if x.ndim == 1 else x.reshape(-1, x.shape[-1])
        if x.shape[0] == 0:
            raise ValueError("data must not be empty")
        if not np.all(np.isfinite(x)):
            raise ValueError("data contains NaN or inf")
        return x.astype(np.float64)

    def state(self) -> dict:
        self._check_fitted()
        return {"class": type(self).__name__, "shift": self.shift_.tolist(), "scale": self.scale_.tolist()}

    @staticmethod
    def from_state(state: dict) -> "_Scaler":
        cls = {"MinMaxScaler": MinMaxScaler, "StandardScaler": StandardScaler}[state["class"]]
        s = cls()
        s.shift_ = np.asarray(state["shift"], np.float64)
        s.scale_ = np.asarray(state["scale"], np.float64)
        return s


class MinMaxScaler(_Scaler):
    """Scales each feature to ``feature_range`` (default [0, 1]) using the fitted min and max."""

    def __init__(self, feature_range=(0.0, 1.0)):
        super().__init__()
        if not isinstance(feature_range, (tuple, list)) or len(feature_range) != 2:
            raise TypeError(f"feature_range must be a pair (low, high), got {feature_range!r}")
        lo, hi = (_real("feature_range", v) for v in feature_range)   # (0, inf) scaled every value to 0
        if not hi > lo:
            raise ValueError(f"feature_range must be (low, high) with low < high, got {feature_range}")
        self.feature_range = (lo, hi)

    def fit(self, data) -> "MinMaxScaler":
        x = self._features(data)
        lo, hi = self.feature_range
        dmin, dmax = x.min(axis=0), x.max(axis=0)
        span = np.where(dmax > dmin, dmax - dmin, 1.0)      # constant features map to `lo`
        self.scale_ = span / (hi - lo)
        self.shift_ = dmin - lo * self.scale_
        return self


class StandardScaler(_Scaler):
    """Zero mean, unit variance per feature (population standard deviation)."""

    def fit(self, data) -> "StandardScaler":
        x = self._features(data)
        std = x.std(axis=0)
        self.shift_ = x.mean(axis=0)
        self.scale_ = np.where(std > 0, std, 1.0)
        return self


# -- splits and padding ---------------------------------------------------------------------
def time_split(*arrays, val: float = 0.15, test: float = 0.15):
    """Splits arrays along their first axis in time order (no shuffling: the future never
    leaks into training). Returns (train, val, test) for one array, or a tuple of such triples
    in the order given for several."""
    if not arrays:
        raise ValueError("time_split needs at least one array")
    val, test = _real("val", val), _real("test", test)
    if not (0 <= val < 1 and 0 <= test < 1 and val + test < 1):
        raise ValueError(f"val and test must be fractions in [0, 1) with val + test < 1, got {val}, {test}")
    for i, a in enumerate(arrays):
        if isinstance(a, (str, bytes)) or not hasattr(a, "__len__") or np.ndim(a) == 0:
            raise TypeError(f"array {i} must be an array or list of rows, got {type(a).__name__}")
    n = len(arrays[0])
    for i, a in enumerate(arrays):
        if len(a) != n:
            raise ValueError(f"array {i} has {len(a)} rows, the first has {n}")
    n_test, n_val = int(round(n * test)), int(round(n * val))
    n_train = n - n_val - n_test
    if n_train < 1:
        raise ValueError(f"{n} rows leave nothing to train on with val={val}, test={test}")
    out = tuple((a[:n_train], a[n_train:n_train + n_val], a[n_train + n_val:]) for a in arrays)
    return out[0] if len(arrays) == 1 else out


def pad_sequences(sequences: Sequence, maxlen: int | None = None, value=0, dtype=None,
                  truncating: str = "post"):
    """Variable-length sequences (each (L,) or (L, F)) -> a padded batch-first array plus the
    ``lengths`` that fit/predict/the recurrent layers take. Padding goes after each sequence;
    ``truncating`` ('pre' or 'post') says which end of a sequence longer than maxlen is cut."""
    if truncating not in ("pre", "post"):
        raise ValueError(f"truncating must be 'pre' or 'post', got {truncating!r}")
    seqs = [np.asarray(s) for s in sequences]
    if not seqs:
        raise ValueError("sequences must not be empty")
    tail = seqs[0].shape[1:]
    for i, s in enumerate(seqs):
        if s.ndim not in (1, 2) or s.shape[1:] != tail:
            raise ValueError(f"sequence {i} has shape {s.shape}; all must be (L,) or all (L, {tail[0] if tail else 'F'})")
        if len(s) == 0:
            raise ValueError(f"sequence {i} is empty; every sequence needs at least one step")
    if maxlen is None:
        maxlen = max(len(s) for s in seqs)
    elif not isinstance(maxlen, (int, np.integer)) or isinstance(maxlen, bool) or maxlen < 1:
        raise ValueError(f"maxlen must be a positive integer, got {maxlen!r}")
    if dtype is None:
        dtype = np.result_type(*[s.dtype for s in seqs])
        dtype = np.int64 if dtype.kind in "iub" else (np.float32 if dtype.kind == "f" else dtype)
    out = np.full((len(seqs), maxlen) + tail, value, dtype=dtype)
    lengths = np.empty(len(seqs), np.int64)
    for i, s in enumerate(seqs):
        s = s[:maxlen] if truncating == "post" else s[-maxlen:]
        out[i, :len(s)] = s
        lengths[i] = len(s)
    return out, lengths


# -- text -----------------------------------------------------------------------------------
class Vocabulary:
    """Characters or words <-> integer ids. Id 0 is padding and id 1 the unknown token, so a
    padded batch of ids and an Embedding(padding_idx=0) fit together."""

    PAD, UNK = "<pad>", "<unk>"

    def __init__(self, tokens: Sequence[str], level: str = "char"):
        if level not in ("char", "word"):
            raise ValueError(f"level must be 'char' or 'word', got {level!r}")
        self.level = level
        self.itos = [self.PAD, self.UNK] + [t for t in dict.fromkeys(tokens) if t not in (self.PAD, self.UNK)]
        self.stoi = {t: i for i, t in enumerate(self.itos)}

    @classmethod
    def from_text(cls, text: str, level: str = "char", min_count: int = 1) -> "Vocabulary":
        """Tokens in order of frequency (ties alphabetical), those seen at least min_count times."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        toks = list(text) if level == "char" else text.split()
        counts: dict[str, int] = {}
        for t in toks:
            counts[t] = counts.get(t, 0) + 1
        ordered = sorted((t for t, c in counts.items() if c >= min_count), key=lambda t: (-counts[t], t))
        return cls(ordered, level)

    def __len__(self) -> int:
        return len(self.itos)

    def tokenize(self, text: str) -> list[str]:
        return list(text) if self.level == "char" else text.split()

    def encode(self, text: str) -> np.ndarray:
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        return np.array([self.stoi.get(t, 1) for t in self.tokenize(text)], dtype=np.int64)

    def decode(self, ids) -> str:
        ids = to_numpy(ids, "ids").reshape(-1)
        if ids.dtype.kind not in "iu":    # floats failed as list indices, naming nothing
            raise TypeError(f"ids must be integers, got dtype {ids.dtype}")
        if ids.size and (ids.min() < 0 or ids.max() >= len(self)):
            raise ValueError(f"ids must be in [0, {len(self)}), found {int(ids.min() if ids.min() < 0 else ids.max())}")
        toks = [self.itos[i] for i in ids.tolist() if i != 0]
        return ("" if self.level == "char" else " ").join(toks)

    def state(self) -> dict:
        return {"level": self.level, "tokens": self.itos[2:]}

    @classmethod
    def from_state(cls, state: dict) -> "Vocabulary":
        return cls(state["tokens"], state["level"])


# -- built-in datasets ----------------------------------------------------------------------
def adding_problem(n: int = 1000, steps: int = 100, seed: int = 0):
    """The adding problem (Hochreiter & Schmidhuber 1997; Le et al. 2015), a test of memory over
    `steps` steps: X (n, steps, 2) float32 holds random values in [0, 1) and a marker channel
    with two ones, one in each half; y (n, 1) is the sum of the two marked values. Predicting
    the mean (1.0) scores an MSE of 1/6, the bar a model must beat."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 2:
        raise ValueError(f"steps must be an integer >= 2, got {steps!r}")
    rng = np.random.default_rng(seed)
    X = np.zeros((n, steps, 2), np.float32)
    X[:, :, 0] = rng.random((n, steps))
    half = steps // 2
    first, second = rng.integers(0, half, n), rng.integers(half, steps, n)
    rows = np.arange(n)
    X[rows, first, 1] = X[rows, second, 1] = 1.0
    y = (X[rows, first, 0] + X[rows, second, 0])[:, None].astype(np.float32)
    return X, y


def noisy_sine(n: int = 2000, period: float = 25.0, noise: float = 0.05, seed: int = 0) -> np.ndarray:
    """A sine wave of the given period (in samples) plus Gaussian noise: (n,) float32."""
    n = _count("n", n, 0)
    period = _real("period", period, low=0.0, low_open=True)   # 0 gave NaN, negative a mirrored wave
    noise = _real("noise", noise, low=0.0)
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    return (np.sin(2 * math.pi * t / period) + noise * rng.standard_normal(n)).astype(np.float32)


_SUBJECTS = ["the old sailor", "a young fox", "the quiet river", "my sister", "the baker", "a small bird",
             "the green train", "our teacher", "the night watchman", "a tired horse"]
_VERBS = ["watches", "follows", "remembers", "carries", "finds", "paints", "hears", "greets"]
_OBJECTS = ["the morning light", "a wooden boat", "the red kite", "an open door", "the winter sea",
            "a field of wheat", "the distant hills", "a silver coin"]
_ENDINGS = ["before the rain", "every evening", "near the harbour", "in the garden", "without a word",
            "at dawn", "under the bridge", "after supper"]


def sample_text(n_sentences: int = 400, seed: int = 0) -> str:
    """A few KB of simple English written by a small grammar (ours, no copyright): subject,
    verb, object, an ending. Regular enough for a character model to learn in seconds."""
    n_sentences = _count("n_sentences", n_sentences, 0)
    rng = np.random.default_rng(seed)
    pick = lambda words: words[rng.integers(len(words))]   # noqa: E731
    sentences = []
    for _ in range(n_sentences):
        s = f"{pick(_SUBJECTS)} {pick(_VERBS)} {pick(_OBJECTS)} {pick(_ENDINGS)}."
        sentences.append(s[0].upper() + s[1:])
    return " ".join(sentences) + "\n"


__all__ = ["sliding_windows", "naive_forecast", "MinMaxScaler", "StandardScaler", "time_split", "pad_sequences",
           "Vocabulary", "noisy_sine", "sample_text"]
