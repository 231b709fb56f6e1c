"""History: what ``fit`` returns, per-epoch metrics by name (``history["loss"]``, ``["val_loss"]`` ...)."""
from __future__ import annotations


class History:
    """Per-epoch metrics: ``history["loss"]``, ``history["val_loss"]``, ``history["accuracy"]``..."""

    def __init__(self):
        self.history: dict[str, list] = {}
        self.epoch: list[int] = []
        self.interrupted = False   # Ctrl-C stopped the fit that made it

    def append(self, epoch: int, logs: dict) -> None:
        self.epoch.append(epoch)
        for key, value in logs.items():
            self.history.setdefault(key, []).append(value)

    def to_dict(self) -> dict:
        return {"epoch": list(self.epoch), "history": {k: list(v) for k, v in self.history.items()}}

    @classmethod
    def from_dict(cls, d: dict) -> "History":
        h = cls()
        h.epoch = list(d["epoch"])
        h.history = {k: list(v) for k, v in d["history"].items()}
        return h

    def __repr__(self):
        return f"History(epochs={len(self.epoch)}, metrics={sorted(self.history)})"
