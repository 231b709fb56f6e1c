"""The PyTorch drop-in against PyTorch itself: a stock torch training loop with and without
``lstm_native.torch.convert``, and the bridge's overhead over our native API.

    python bench/torch_dropin.py [--threads 2] [--budget 60] [--out bench/torch_dropin.md]

Training loop (both sides the same code, the same weights and batch): ``opt.zero_grad()``,
the recurrent layer (batch_first), a Linear head on the last step (``out[:, -1]``; for a
PackedSequence the last valid step, ``h_n[-1]``), MSE, ``backward()``, ``clip_grad_norm_(1.0)``,
Adam. Cases: S3 (LSTM B64 T100 I128 H256), S6 (GRU, same sizes), S3 packed (lengths uniform in
[50, 100], ``pack_padded_sequence(enforce_sorted=False)`` inside the step on both sides).

Bridge overhead on S3: forward + backward of the recurrent layer alone with the same dense
output gradient, ``lnt.LSTM`` (tensors in, ``out.backward(dout)``) against ``ln.LSTM``
(``lstm(x)``, ``lstm.backward(dout)``); and the whole training step, the converted torch loop
against the same model trained with our native API (``ln.Sequential`` + ``ln.optim.Adam``,
its Linear head on the last step given a sparse gradient).

One process, A B B A interleaving (``lstm_native.benchmark.interleaved``), medians; ratio =
time without / time with (above 1: the drop-in is faster).
"""
from __future__ import annotations

import argparse
import copy
import os
import sys

import numpy as np
import torch   # first, as in a torch script: torch's OpenMP runtime is the one both libraries share

try:
    import lstm_native as ln
except ImportError:   # run from a checkout without installing: the in-tree package
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "python"))
    import lstm_native as ln

from torch.nn.utils.rnn import pack_padded_sequence

import lstm_native.torch as lnt
from lstm_native.benchmark import interleaved, machine_description

CASES = {
    # id: (cell, B, T, I, H, packed)
    "S3": ("LSTM", 64, 100, 128, 256, False),
    "S6": ("GRU", 64, 100, 128, 256, False),
    "S3 packed": ("LSTM", 64, 100, 128, 256, True),
}
BARS = {"S3": 1.3, "S6": 1.6, "S3 packed": 3.0}


class Net(torch.nn.Module):
    def __init__(self, cell, I, H):
        super().__init__()
        self.rnn = getattr(torch.nn, cell)(I, H, batch_first=True)
        self.head = torch.nn.Linear(H, 1)

    def forward(self, x):
        if isinstance(x, torch.nn.utils.rnn.PackedSequence):
            _, h = self.rnn(x)
            h = h[0] if isinstance(h, tuple) else h
            return self.head(h[-1])        # each sequence's last valid step
        out, _ = self.rnn(x)
        return self.head(out[:, -1])


def batch(B, T, I, packed, seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, T, I, generator=g)
    y = torch.randn(B, 1, generator=g)
    lengths = torch.randint(T // 2, T + 1, (B,), generator=g) if packed else None
    return x, y, lengths


def training_step(model, x, y, lengths):
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    params = list(model.parameters())

    def step():
        opt.zero_grad()
        inp = x if lengths is None else pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        loss = torch.nn.functional.mse_loss(model(inp), y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
    return step


def convert_quietly(model):
    return lnt.convert(model)


def dropin_case(case, reps, budget_s):
    """(torch ms, converted ms, rounds) of one training step."""
    cell, B, T, I, H, packed = CASES[case] if isinstance(case, str) else case
    torch.manual_seed(0)
    stock = Net(cell, I, H)
    converted = convert_quietly(copy.deepcopy(stock))
    x, y, lengths = batch(B, T, I, packed)
    a, b, rounds = interleaved(training_step(stock, x, y, lengths), training_step(converted, x, y, lengths),
                               reps, budget_s)
    return a * 1e3, b * 1e3, rounds


def overhead_layer(B, T, I, H, reps, budget_s):
    """(native ms, bridge ms, rounds): LSTM forward + backward with the same dense gradient."""
    native = ln.LSTM(I, H, batch_first=True, seed=0)
    bridge = lnt.LSTM(I, H, batch_first=True)
    bridge.load_state_dict({k: torch.from_numpy(v) for k, v in native.state_dict().items()})
    rng = np.random.default_rng(2)
    x = rng.standard_normal((B, T, I)).astype(np.float32)
    dout = rng.standard_normal((B, T, H)).astype(np.float32)
    tx, tdout = torch.from_numpy(x), torch.from_numpy(dout)

    def ours():
        native.zero_grad()
        native(x)
        native.backward(dout, need_input_grad=False)

    def theirs():
        bridge.zero_grad()
        out, _ = bridge(tx)
        out.backward(tdout)

    a, b, rounds = interleaved(ours, theirs, reps, budget_s)
    return a * 1e3, b * 1e3, rounds


def overhead_training(B, T, I, H, reps, budget_s):
    """(native ms, converted torch loop ms, rounds): the whole training step of S3."""
    from lstm_native.benchmark import make_ours
    model, ours_step, _ = make_ours("LSTM", B, T, I, H, 1, False)
    net = Net("LSTM", I, H)
    net.rnn.load_state_dict({k: torch.from_numpy(v) for k, v in model[0].state_dict().items()})
    net.head.load_state_dict({k: torch.from_numpy(v) for k, v in model[2].state_dict().items()})
    convert_quietly(net)
    x, y, _ = batch(B, T, I, False)
    xn, yn = x.numpy(), y.numpy()
    a, b, rounds = interleaved(lambda: ours_step(xn, yn), training_step(net, x, y, None), reps, budget_s)
    return a * 1e3, b * 1e3, rounds


def run(threads=2, reps=30, budget_s=60.0, cases=tuple(CASES), overhead_shape=(64, 100, 128, 256)):
    """Measures and prints the Markdown tables; returns their rows. Thread counts restored after."""
    before = torch.get_num_threads(), ln.get_num_threads()
    torch.set_num_threads(threads)
    ln.set_num_threads(threads)
    lines = []
    say = lambda s="": (print(s, flush=True), lines.append(s))   # noqa: E731
    try:
        say(f"Machine: {machine_description(threads)}; torch {torch.__version__}")
        say()
        say("Stock torch training loop (Adam, clip_grad_norm_ 1.0, Linear head on the last step), "
            "without and with `lnt.convert(model)`:")
        say()
        say("| case | shape (cell B T I H) | torch ms | converted ms | speed-up | bar | runs |")
        say("|---|---|---|---|---|---|---|")
        rows = {}
        for case in cases:
            spec = CASES[case] if isinstance(case, str) else case
            t, c, n = dropin_case(spec, reps, budget_s)
            cell, B, T, I, H, packed = spec
            shape = f"{cell} {B} {T} {I} {H}" + (f" packed, lengths {T // 2}-{T}" if packed else "")
            bar = BARS.get(case, "")
            rows[str(case)] = (t, c, t / c)
            say(f"| {case} | {shape} | {t:.2f} | {c:.2f} | **{t / c:.2f}x** | {bar and f'{bar}x'} | {n} |")
        B, T, I, H = overhead_shape
        say()
        say(f"Bridge overhead over the native API (LSTM B{B} T{T} I{I} H{H}):")
        say()
        say("| what | native ms | bridge ms | overhead |")
        say("|---|---|---|---|")
        a, b, n = overhead_layer(B, T, I, H, reps, budget_s)
        rows["overhead layer"] = (a, b, b / a - 1)
        say(f"| layer forward + backward, same dense gradient ({n} runs) | {a:.2f} | {b:.2f} | **{100 * (b / a - 1):+.1f}%** |")
        a, b, n = overhead_training(B, T, I, H, reps, budget_s)
        rows["overhead training"] = (a, b, b / a - 1)
        say(f"| training step: ln.Sequential + ln.optim.Adam vs converted torch loop ({n} runs) | {a:.2f} | {b:.2f} "
            f"| **{100 * (b / a - 1):+.1f}%** |")
        return rows, lines
    finally:
        torch.set_num_threads(before[0])
        ln.set_num_threads(before[1])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--reps", type=int, default=30, help="interleaved rounds per measurement (at most)")
    p.add_argument("--budget", type=float, default=60.0, help="seconds per measurement (at least 5 rounds)")
    p.add_argument("--cases", default=",".join(CASES), help="comma-separated: " + ", ".join(CASES))
    p.add_argument("--out", default=None, help="also write the tables to this Markdown file")
    a = p.parse_args(argv)
    _, lines = run(a.threads, a.reps, a.budget, tuple(c.strip() for c in a.cases.split(",") if c.strip()))
    if a.out:
        with open(a.out, "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
