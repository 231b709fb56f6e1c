"""Argument checks shared by the layers: each raises TypeError/ValueError naming the argument."""
from __future__ import annotations

import numpy as np

from ._backend import core

NonFiniteError = core.NonFiniteError   # a ValueError: NaN or infinity where numbers must be finite


def to_numpy(value, name: str) -> np.ndarray:
    """NumPy view of an array-like (torch tensors included, without importing torch)."""
    if isinstance(value, np.ndarray):
        return value
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # a torch.Tensor
        value = value.detach().cpu().numpy()
    try:
        return np.asarray(value)
    except Exception as exc:  # pragma: no cover - exotic objects
        raise TypeError(f"{name} must be array-like, got {type(value).__name__}") from exc


def float_array(value, name: str, dtype) -> np.ndarray:
    """value as a C-contiguous array of the layer's float dtype (floats of other widths are cast);
    a scalar stays 0-d (np.ascontiguousarray would make it 1-d, and so pass a shape check)."""
    arr = to_numpy(value, name)
    if arr.dtype.kind != "f":
        raise TypeError(f"{name} must be a floating-point array ({np.dtype(dtype).name}), got dtype {arr.dtype}")
    return np.asarray(arr, dtype=dtype, order="C")


def float_input(value, name: str) -> np.ndarray:
    """value as a floating-point array of its own width, in native byte order: the input of a
    layer without a dtype of its own (activations, Dropout, pooling, LastTimestep)."""
    arr = to_numpy(value, name)
    if arr.dtype.kind != "f":
        raise TypeError(f"{name} must be a floating-point array, got dtype {arr.dtype}")
    if not arr.dtype.isnative:
        arr = arr.astype(arr.dtype.newbyteorder("="))
    return arr


def gradient(value, name: str, shape, dtype) -> np.ndarray:
    """A backward's incoming gradient: floats cast to the forward's dtype, exactly the shape of
    the forward's output (a transposed or flattened gradient of the same size would otherwise
    be taken silently)."""
    g = float_array(value, name, dtype)
    if g.shape != tuple(shape):
        raise ValueError(f"{name} must have the forward output's shape {shape_text(shape)}, got {shape_text(g.shape)}")
    return g


def shape_text(shape) -> str:
    return "(" + ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"


def require_shape(arr: np.ndarray, name: str, expected: tuple, meaning: str = "") -> None:
    """expected holds sizes or None (any)."""
    ok = arr.ndim == len(expected) and all(e is None or e == s for e, s in zip(expected, arr.shape))
    if not ok:
        want = shape_text(["*" if e is None else e for e in expected])
        extra = f" {meaning}" if meaning else ""
        raise ValueError(f"{name} must have shape {want}{extra}, got {shape_text(arr.shape)}")


def sequence_batch(x, name: str, features: int, dtype, batch_first: bool) -> np.ndarray:
    """A padded batch of sequences: 3-D, `features` wide, non-empty."""
    arr = float_array(x, name, dtype)
    layout = "(batch, time, features)" if batch_first else "(time, batch, features)"
    if arr.ndim != 3:
        raise ValueError(f"{name} must be 3-D {layout}, got shape {shape_text(arr.shape)}")
    if arr.shape[2] != features:
        raise ValueError(f"{name} must have {features} features in its last axis {layout}, got shape {shape_text(arr.shape)}")
    steps, batch = (arr.shape[1], arr.shape[0]) if batch_first else (arr.shape[0], arr.shape[1])
    if batch == 0:
        raise ValueError(f"{name}: the batch is empty (shape {shape_text(arr.shape)})")
    if steps == 0:
        raise ValueError(f"{name}: the sequences have no time steps (shape {shape_text(arr.shape)})")
    return arr


def lengths_array(lengths, batch: int, steps: int, name: str = "lengths"):
    """None, or int64 lengths (batch,) each in [0, steps]; any order."""
    if lengths is None:
        return None
    arr = to_numpy(lengths, name)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"{name} must hold integers, got dtype {arr.dtype}")
    if arr.shape != (batch,):
        raise ValueError(f"{name} must have shape ({batch},), one length per sequence, got {shape_text(arr.shape)}")
    bad = np.flatnonzero((arr < 0) | (arr > steps))
    if bad.size:
        i = int(bad[0])
        raise ValueError(f"{name}[{i}] = {int(arr[i])} is outside [0, {steps}] (the padded length)")
    return np.ascontiguousarray(arr, dtype=np.int64)


def require_finite(arr: np.ndarray, name: str) -> None:
    if not np.isfinite(arr).all():
        raise NonFiniteError(f"{name} contains NaN or infinity")


# -- what layers check about themselves ---------------------------------------------------------
def float_dtype(dtype) -> np.dtype:
    """A layer's dtype: float32 or float64 (np.dtype(None) is float64, and np.dtype("nope") or
    np.dtype(0) raise errors naming no argument)."""
    original = dtype
    try:
        dtype = np.dtype(dtype) if dtype is not None else None
    except TypeError:
        dtype = None
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"dtype must be float32 or float64, got {original!r}")
    return dtype


def real_number(name: str, value) -> float:
    """A real number as a float (not a bool or a string: float() took "0.5" and gave None a
    bare error); NaN and infinity are left to the caller's range check."""
    if isinstance(value, (bool, str, bytes)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__} {value!r}")
    return float(value)


def probability(name: str, value) -> float:
    """A dropout rate: a number in [0, 1)."""
    value = real_number(name, value)
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {value!r}")
    return value


def positive_int(name: str, value) -> int:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def require_forward(module, ctx):
    """What a forward kept for backward, or ValueError when there is none."""
    if ctx is None:
        raise ValueError(f"{type(module).__name__}.backward needs a forward first (outside no_grad)")
    return ctx
