"""Plots of training curves and predictions, written to PNG files.

matplotlib is optional (``pip install "lstm_native[plot]"``): ``have_matplotlib()`` says
whether it is there, and the functions raise ImportError with that hint when it is not.
"""
from __future__ import annotations

import numpy as np

HINT = 'plots need matplotlib: pip install "lstm_native[plot]" (or pip install matplotlib)'


def have_matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise ImportError(HINT) from None
    matplotlib.use("Agg")          # files only: works on servers without a display
    import matplotlib.pyplot as plt
    return plt


def plot_history(history, path, title: str = "Training loss", log_scale: bool = True) -> None:
    """Loss (and validation loss, and any other logged metric ending in 'loss') per epoch."""
    plt = _pyplot()
    logs = history.history if hasattr(history, "history") else dict(history)
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    for key in sorted(k for k in logs if k.endswith("loss")):
        values = logs[key]
        label = {"loss": "training loss", "val_loss": "validation loss"}.get(key, key.replace("_", " "))
        ax.plot(np.arange(1, len(values) + 1), values, label=label, linewidth=1.8)
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    if log_scale:
        ax.set_yscale("log")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_predictions(y_true, y_pred, path, baseline=None, title: str = "Test set: true vs predicted",
                     xlabel: str = "time step", ylabel: str = "value", max_points: int = 150,
                     label: str = "LSTM prediction", baseline_label: str = "naive (last value)") -> None:
    """The true series against the model's predictions (and a baseline's, when given)."""
    plt = _pyplot()
    n = min(len(y_true), max_points)
    t = np.arange(n)
    fig, ax = plt.subplots(figsize=(9, 4.2), dpi=110)
    ax.plot(t, np.asarray(y_true).reshape(len(y_true), -1)[:n, 0], label="true", color="black", linewidth=1.4)
    if baseline is not None:
        ax.plot(t, np.asarray(baseline).reshape(len(baseline), -1)[:n, 0], label=baseline_label,
                color="tab:gray", linestyle=":", linewidth=1.2)
    ax.plot(t, np.asarray(y_pred).reshape(len(y_pred), -1)[:n, 0], label=label, color="tab:orange",
            linestyle="--", linewidth=1.6)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
