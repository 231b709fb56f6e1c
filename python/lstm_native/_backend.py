"""Loads the compiled core built for the best instruction set this CPU has.

A portable build ships one extension per x86-64 level: ``_core`` (baseline SSE2),
``_core_avx2`` (x86-64-v3: AVX2, FMA) and ``_core_avx512`` (x86-64-v4). A source build made
with ``-DLSTM_NATIVE_TARGET=native`` ships only ``_core``, built for the building machine.
Set ``LSTM_NATIVE_ISA=baseline|avx2|avx512`` to force one (for testing the portable path).
"""
from __future__ import annotations

import importlib
import importlib.util
import os
import platform

_MODULES = {"avx512": "_core_avx512", "avx2": "_core_avx2", "baseline": "_core"}
_REQUIRED_FLAGS = {
    "avx512": {"avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl", "avx2", "fma", "bmi2"},
    "avx2": {"avx", "avx2", "fma", "bmi1", "bmi2", "f16c", "movbe", "abm"},
    "baseline": set(),
}


def cpu_flags() -> set[str]:
    """The CPU feature flags the kernel reports (Linux); empty where unknown."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def _supported(isa: str, flags: set[str]) -> bool:
    if isa == "baseline":
        return True
    return platform.machine().lower() in ("x86_64", "amd64") and _REQUIRED_FLAGS[isa] <= flags


def _present(isa: str) -> bool:
    return importlib.util.find_spec(f"{__package__}.{_MODULES[isa]}") is not None


def _load():
    forced = os.environ.get("LSTM_NATIVE_ISA", "").strip().lower()
    flags = cpu_flags()
    if forced:
        if forced not in _MODULES:
            raise ImportError(f"LSTM_NATIVE_ISA must be one of {sorted(_MODULES)}, got {forced!r}")
        if not _supported(forced, flags):
            raise ImportError(f"LSTM_NATIVE_ISA={forced}: this CPU lacks the instructions it needs")
        if not _present(forced):
            raise ImportError(f"LSTM_NATIVE_ISA={forced}: this installation has no {_MODULES[forced]} module")
        return importlib.import_module(f"{__package__}.{_MODULES[forced]}")
    for isa in ("avx512", "avx2", "baseline"):
        if _supported(isa, flags) and _present(isa):
            return importlib.import_module(f"{__package__}.{_MODULES[isa]}")
    raise ImportError("lstm_native's compiled core is missing: reinstall with `pip install .`")


core = _load()
