"""Small numeric helpers the layers share. Matrix products go through the compiled core so
that every GEMM runs on the kernels' one thread pool (never NumPy's BLAS threads)."""
from __future__ import annotations

import numpy as np

from ._backend import core


def matmul(a, b, trans_a=False, trans_b=False, out=None, accumulate=False):
    """op(a) @ op(b) for 2-D arrays or batches (3-D); into out (added when accumulate)."""
    a = np.ascontiguousarray(a)
    b = np.ascontiguousarray(b, dtype=a.dtype)
    return core.matmul(a, b, trans_a, trans_b, out, accumulate)


def rows(x: np.ndarray) -> np.ndarray:
    """x (..., F) as a C-contiguous (N, F) matrix."""
    return np.ascontiguousarray(x).reshape(-1, x.shape[-1])


def sigmoid(x):
    # exp of a non-positive argument only: no overflow warnings, exact limits
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


def log_softmax(x, axis=-1):
    shifted = x - np.max(x, axis=axis, keepdims=True)
    return shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))


def softmax(x, axis=-1):
    shifted = x - np.max(x, axis=axis, keepdims=True)
    e = np.exp(shifted)
    return e / np.sum(e, axis=axis, keepdims=True)


def length_mask(lengths, batch: int, steps: int):
    """(batch, steps) bool: True where t < lengths[b]; None when lengths is None."""
    if lengths is None:
        return None
    return np.arange(steps)[None, :] < np.asarray(lengths)[:, None]
