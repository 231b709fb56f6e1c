"""Weight initialisers with torch.nn.init's names and formulas: ``ln.init.orthogonal_(w)``.

Each takes an ln Parameter or a float NumPy array, fills it in place (a Parameter through its
``.data``) and returns what it was given, as torch's functions return their tensor. The random
numbers come from ``generator`` (a NumPy Generator or an integer seed) or, without one, from
``ln.manual_seed``'s stream (fresh entropy when that is not set either): the formulas, bounds and
standard deviations are torch's, the random streams are NumPy's.

    lstm = ln.LSTM(8, 64)
    for name, p in lstm.named_parameters():
        if name.startswith("weight_hh"):
            ln.init.orthogonal_(p)          # every (H, H) gate block of W_hh: see orthogonal_
"""
from __future__ import annotations

import math

import numpy as np

from . import seeding
from .parameter import Parameter

__all__ = ["calculate_gain", "uniform_", "normal_", "zeros_", "ones_", "constant_", "xavier_uniform_",
           "xavier_normal_", "kaiming_uniform_", "kaiming_normal_", "orthogonal_"]


def _target(tensor, who: str) -> np.ndarray:
    """The array to fill in place: a Parameter's data, or the float array itself."""
    arr = tensor.data if isinstance(tensor, Parameter) else tensor
    if not isinstance(arr, np.ndarray):
        raise TypeError(f"ln.init.{who} takes an ln Parameter or a NumPy array, got {type(tensor).__name__}")
    if arr.dtype.kind != "f":
        raise TypeError(f"ln.init.{who} fills float arrays, got dtype {arr.dtype}")
    if not arr.flags.writeable:
        raise ValueError(f"ln.init.{who}: the array is read-only")
    return arr


def _rng(generator) -> np.random.Generator:
    if isinstance(generator, np.random.Generator):
        return generator
    if generator is None or (isinstance(generator, (int, np.integer)) and not isinstance(generator, bool)):
        return seeding.generator(generator)
    raise TypeError(f"generator must be a numpy.random.Generator, an integer seed or None, got "
                    f"{type(generator).__name__}")


def _number(value, name: str, who: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not math.isfinite(value):
        raise ValueError(f"ln.init.{who}: {name} must be a finite number, got {value!r}")
    return float(value)


def calculate_gain(nonlinearity: str, param=None) -> float:
    """torch.nn.init.calculate_gain: the gain that keeps a layer's output scale."""
    linear = ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
              "conv_transpose3d", "sigmoid")
    if nonlinearity in linear:
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else param
        if isinstance(slope, bool) or not isinstance(slope, (int, float)):
            raise ValueError(f"negative_slope {slope!r} is not a valid number")
        return math.sqrt(2.0 / (1 + slope ** 2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"unsupported nonlinearity {nonlinearity!r} (linear, sigmoid, tanh, relu, leaky_relu, selu)")


def _fans(arr: np.ndarray, who: str):
    """torch's fan_in and fan_out: dims 1 and 0, times the receptive field of the rest."""
    if arr.ndim < 2:
        raise ValueError(f"ln.init.{who}: fan in and fan out need an array of at least 2 dimensions, "
                         f"got shape {arr.shape}")
    receptive = int(np.prod(arr.shape[2:])) if arr.ndim > 2 else 1
    return arr.shape[1] * receptive, arr.shape[0] * receptive


def _fill(tensor, arr, values):
    arr[...] = values
    return tensor


def uniform_(tensor, a: float = 0.0, b: float = 1.0, generator=None):
    """U(a, b)."""
    arr = _target(tensor, "uniform_")
    a, b = _number(a, "a", "uniform_"), _number(b, "b", "uniform_")
    if a > b:
        raise ValueError(f"ln.init.uniform_: a ({a}) must not exceed b ({b})")
    return _fill(tensor, arr, _rng(generator).uniform(a, b, arr.shape))


def normal_(tensor, mean: float = 0.0, std: float = 1.0, generator=None):
    """N(mean, std^2)."""
    arr = _target(tensor, "normal_")
    mean, std = _number(mean, "mean", "normal_"), _number(std, "std", "normal_")
    if std < 0:
        raise ValueError(f"ln.init.normal_: std must be >= 0, got {std}")
    return _fill(tensor, arr, _rng(generator).normal(mean, std, arr.shape))


def constant_(tensor, val: float):
    arr = _target(tensor, "constant_")
    return _fill(tensor, arr, _number(val, "val", "constant_"))


def zeros_(tensor):
    return _fill(tensor, _target(tensor, "zeros_"), 0.0)


def ones_(tensor):
    return _fill(tensor, _target(tensor, "ones_"), 1.0)


def xavier_uniform_(tensor, gain: float = 1.0, generator=None):
    """U(-a, a) with a = gain * sqrt(6 / (fan_in + fan_out)) (Glorot & Bengio 2010)."""
    arr = _target(tensor, "xavier_uniform_")
    fan_in, fan_out = _fans(arr, "xavier_uniform_")
    a = math.sqrt(3.0) * _number(gain, "gain", "xavier_uniform_") * math.sqrt(2.0 / (fan_in + fan_out))
    return _fill(tensor, arr, _rng(generator).uniform(-a, a, arr.shape))


def xavier_normal_(tensor, gain: float = 1.0, generator=None):
    """N(0, std^2) with std = gain * sqrt(2 / (fan_in + fan_out))."""
    arr = _target(tensor, "xavier_normal_")
    fan_in, fan_out = _fans(arr, "xavier_normal_")
    std = _number(gain, "gain", "xavier_normal_") * math.sqrt(2.0 / (fan_in + fan_out))
    return _fill(tensor, arr, _rng(generator).normal(0.0, std, arr.shape))


def _kaiming_std(arr, a, mode, nonlinearity, who):
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"ln.init.{who}: mode must be 'fan_in' or 'fan_out', got {mode!r}")
    fan_in, fan_out = _fans(arr, who)
    fan = fan_in if mode == "fan_in" else fan_out
    if fan == 0:
        raise ValueError(f"ln.init.{who}: the array has a zero-sized dimension")
    return calculate_gain(nonlinearity, _number(a, "a", who)) / math.sqrt(fan)


def kaiming_uniform_(tensor, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu",
                     generator=None):
    """U(-bound, bound) with bound = gain * sqrt(3 / fan) (He et al. 2015)."""
    arr = _target(tensor, "kaiming_uniform_")
    bound = math.sqrt(3.0) * _kaiming_std(arr, a, mode, nonlinearity, "kaiming_uniform_")
    return _fill(tensor, arr, _rng(generator).uniform(-bound, bound, arr.shape))


def kaiming_normal_(tensor, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu",
                    generator=None):
    """N(0, std^2) with std = gain / sqrt(fan)."""
    arr = _target(tensor, "kaiming_normal_")
    std = _kaiming_std(arr, a, mode, nonlinearity, "kaiming_normal_")
    return _fill(tensor, arr, _rng(generator).normal(0.0, std, arr.shape))


def orthogonal_from(gaussian: np.ndarray, gain: float = 1.0) -> np.ndarray:
    """torch's orthogonal_ applied to a given standard-normal sample (rows, cols): the Q of its QR
    decomposition (of its transpose when rows < cols), columns signed so that R's diagonal is
    positive, times gain. Split out so that tests can feed torch's own sample."""
    flat = np.asarray(gaussian, np.float64)
    rows, cols = flat.shape
    if rows < cols:
        flat = flat.T
    q, r = np.linalg.qr(flat)
    q = q * np.sign(np.diag(r))
    if rows < cols:
        q = q.T
    return gain * q


def orthogonal_(tensor, gain: float = 1.0, generator=None):
    """A (semi-)orthogonal matrix (Saxe et al. 2013): the rows (or columns, whichever are fewer)
    orthonormal, times gain. Arrays of more than 2 dimensions are flattened after the first.

    A recurrent layer's W_hh stacks G gate blocks of (H, H); torch (and this function) make the
    whole (G*H, H) matrix have orthonormal columns, so no single block is orthogonal. Keras'
    Orthogonal initialiser on its (H, G*H) kernel does the same. To make each gate's block
    orthogonal, call it on each block: ``for k in range(G): ln.init.orthogonal_(w[k*H:(k+1)*H])``
    (a view of ``p.data``) — what haste does.
    """
    arr = _target(tensor, "orthogonal_")
    if arr.ndim < 2:
        raise ValueError(f"ln.init.orthogonal_: needs an array of at least 2 dimensions, got shape {arr.shape}")
    if arr.size == 0:
        return tensor
    rows = arr.shape[0]
    cols = arr.size // rows
    q = orthogonal_from(_rng(generator).standard_normal((rows, cols)), _number(gain, "gain", "orthogonal_"))
    return _fill(tensor, arr, q.reshape(arr.shape))
