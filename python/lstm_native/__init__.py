"""lstm_native: fast CPU training of LSTM and GRU networks.

A C++ core (Eigen, OpenMP) runs each recurrent layer over a whole sequence in one call;
this package wraps it in PyTorch-compatible layers and a Keras-like training loop.
"""
from ._backend import core as _core
from ._grad_mode import is_grad_enabled, no_grad
from .module import Module, Parameter
from .recurrent import GRU, LSTM

__version__ = "0.1.0"


def get_num_threads() -> int:
    """Threads the kernels use (default: all cores, or OMP_NUM_THREADS)."""
    return _core.get_num_threads()


def set_num_threads(n: int) -> None:
    """Sets the threads the kernels use; n <= 0 restores the default."""
    _core.set_num_threads(int(n))


def backend_isa() -> str:
    """The instruction set of the compiled core in use: baseline, avx2, avx512 or native."""
    return _core.isa


__all__ = ["LSTM", "GRU", "Module", "Parameter", "no_grad", "is_grad_enabled",
           "get_num_threads", "set_num_threads", "backend_isa"]
