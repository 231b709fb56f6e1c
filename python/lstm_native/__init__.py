"""lstm_native: fast CPU training of LSTM and GRU networks.

A C++ core (Eigen, OpenMP) runs each recurrent layer over a whole sequence in one call;
this package wraps it in PyTorch-compatible layers and a Keras-like training loop.
"""
from . import callbacks, data, distributed, init, losses, metrics, optim, plotting, reference, tbptt
from ._backend import core as _core
from ._checks import NonFiniteError
from ._grad_mode import is_grad_enabled, no_grad
from . import layers
from .attention import Attention
from .clip import clip_grad_norm_, clip_grad_value_
from .conv import Conv1d, MaxPool1d
from .io import load
from .layers import (Dropout, Embedding, LastTimestep, LayerNorm, Linear, ReLU, Residual, Sigmoid, Tanh,
                     TimeDistributed)
from .module import Module, Parameter
from .multihead_attention import MultiheadAttention
from .quantization import quantize_dynamic
from .recurrent import GRU, LSTM, RNN, LayerNormGRU, LayerNormLSTM
from .seeding import manual_seed
from .seq2seq import Seq2Seq
from .sequential import Sequential
from .training import History, NonFiniteLossError

__version__ = "0.1.0"


def __getattr__(name):
    # ln.onnx loads on first use: `import lstm_native` never imports onnx (nor does ln.onnx
    # itself until export is called)
    if name == "onnx":
        import importlib
        return importlib.import_module(".onnx", __name__)
    raise AttributeError(f"module 'lstm_native' has no attribute {name!r}")


def get_num_threads() -> int:
    """Threads the kernels use (default: all cores, or OMP_NUM_THREADS)."""
    return _core.get_num_threads()


def set_num_threads(n: int) -> None:
    """Sets the threads the kernels use; n <= 0 restores the default."""
    _core.set_num_threads(int(n))


def set_deterministic(on: bool = True) -> None:
    """On (the default): training and inference give the same bits for any thread count and
    from run to run (every reduction sums in a fixed order). Off: the recurrent backward sums
    bias gradients per thread instead, which the last bits then depend on."""
    _core.set_deterministic(bool(on))


def is_deterministic() -> bool:
    """Whether results are independent of the thread count (see set_deterministic)."""
    return _core.get_deterministic()


def backend_isa() -> str:
    """The instruction set of the compiled core in use: baseline, avx2, avx512 or native."""
    return _core.isa


__all__ = ["LSTM", "GRU", "RNN", "LayerNormLSTM", "LayerNormGRU", "init", "Linear", "Embedding", "Dropout", "ReLU", "Tanh", "Sigmoid", "LayerNorm", "LastTimestep",
           "TimeDistributed", "Residual", "Attention", "Seq2Seq", "Conv1d", "MaxPool1d", "MultiheadAttention", "Sequential", "Module", "Parameter", "History",
           "NonFiniteLossError", "NonFiniteError", "data", "plotting", "losses", "metrics", "tbptt", "optim", "callbacks", "reference", "clip_grad_norm_", "clip_grad_value_",
           "load", "distributed", "quantize_dynamic", "no_grad", "is_grad_enabled", "get_num_threads", "set_num_threads", "backend_isa", "manual_seed", "set_deterministic", "is_deterministic"]
