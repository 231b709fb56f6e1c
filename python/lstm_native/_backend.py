"""Loads the compiled core built for the best instruction set this CPU has.

A portable build ships one extension per x86-64 level: ``_core`` (baseline SSE2),
``_core_avx2`` (x86-64-v3: AVX2, FMA) and ``_core_avx512`` (x86-64-v4); a host build (the
default of ``pip install .``) ships ``_core`` and the one level the building machine runs. A
build made with ``-DLSTM_NATIVE_TARGET=native`` ships only ``_core``, for the building machine.
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


def supported(isa: str, flags: set[str], machine: str | None = None) -> bool:
    """Whether a CPU with these flags runs the kernels built for isa."""
    if isa == "baseline":
        return True
    machine = (machine or platform.machine()).lower()
    return machine in ("x86_64", "amd64") and _REQUIRED_FLAGS[isa] <= flags


def installed() -> list[str]:
    """The kernel builds this installation holds."""
    return [isa for isa, name in _MODULES.items() if importlib.util.find_spec(f"{__package__}.{name}") is not None]


def choose(flags: set[str], present: list[str], forced: str = "", machine: str | None = None) -> str:
    """The build to load: the forced one (checked), else the widest the CPU runs."""
    forced = forced.strip().lower()
    if forced:
        if forced not in _MODULES:
            raise ImportError(f"LSTM_NATIVE_ISA must be one of {sorted(_MODULES)}, got {forced!r}")
        if not supported(forced, flags, machine):
            raise ImportError(f"LSTM_NATIVE_ISA={forced}: this CPU lacks the instructions it needs")
        if forced not in present:
            raise ImportError(f"LSTM_NATIVE_ISA={forced}: this installation has no {_MODULES[forced]} module "
                              "(a source build for the building machine holds only one)")
        return forced
    for isa in ("avx512", "avx2", "baseline"):
        if isa in present and supported(isa, flags, machine):
            return isa
    raise ImportError("lstm_native's compiled core is missing: reinstall with `pip install .`")


def _load():
    isa = choose(cpu_flags(), installed(), os.environ.get("LSTM_NATIVE_ISA", ""))
    module = importlib.import_module(f"{__package__}.{_MODULES[isa]}")
    if os.environ.get("LSTM_NATIVE_ISA") and module.isa not in (isa, "native"):
        raise ImportError(f"{_MODULES[isa]} holds {module.isa} kernels, not {isa}")
    return module


core = _load()
