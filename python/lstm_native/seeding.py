"""One switch for a reproducible run: ``ln.manual_seed(s)``.

Every layer built without its own ``seed``, every dropout mask such a layer draws, and every
``fit`` without a ``seed`` then take their randomness from one root generator seeded by s,
dealt out in the order they ask for it: the same program run twice builds and trains the
same model, bit for bit. Without manual_seed they draw fresh entropy, as before; an explicit
``seed=`` argument always wins.
"""
from __future__ import annotations

import threading

import numpy as np

_lock = threading.Lock()
_root: np.random.Generator | None = None


def manual_seed(seed: int) -> None:
    """Seeds every later initialisation, dropout mask and shuffle that has no seed of its own."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    global _root
    with _lock:
        _root = np.random.default_rng(int(seed))


def generator(seed=None) -> np.random.Generator:
    """A new generator: from `seed` when given, else the next one manual_seed deals out,
    else fresh entropy."""
    if seed is not None:
        if isinstance(seed, (bool, float, str, bytes)):     # default_rng would truncate nothing, but say nothing either
            raise TypeError(f"seed must be a non-negative integer (or None), got {seed!r}")
        try:
            return np.random.default_rng(seed)
        except (TypeError, ValueError) as exc:   # NumPy's "expected non-negative integer" names nothing
            raise type(exc)(f"seed must be a non-negative integer (or None), got {seed!r}") from None
    return np.random.default_rng(new_seed())


def new_seed() -> int | None:
    """The next seed manual_seed deals out (None without one: the caller uses fresh entropy)."""
    with _lock:
        return None if _root is None else int(_root.integers(2**63))
