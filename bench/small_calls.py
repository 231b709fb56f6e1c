"""The fixed cost of a call (issue 17, bar 2): a layer call and `predict` on a (1, 1, I) input
against `LSTM.step` and torch's nn.LSTM on the same input, and `predict` on B=1, T=10 against
ten `stream.step` calls. One process, each pair interleaved (lstm_native.benchmark.interleaved),
medians in microseconds. Bars: the (1, 1, I) layer call and predict within 2x of `LSTM.step`
and >= 4x faster than torch; predict (1, 10, I) within 1.5x of ten stream steps.

    python bench/small_calls.py [--threads 2] [--input 64] [--hidden 256]
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np

try:
    import lstm_native as ln
except ImportError:   # run from a checkout without installing: the in-tree package
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "python"))
    import lstm_native as ln

from lstm_native.benchmark import interleaved, machine_description


def main(argv=None):
    import torch
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--input", type=int, default=64)
    parser.add_argument("--hidden", type=int, default=256)
    args = parser.parse_args(argv)
    ln.set_num_threads(args.threads)
    torch.set_num_threads(args.threads)
    I, H = args.input, args.hidden
    lstm = ln.LSTM(I, H, batch_first=True, seed=0)
    model = ln.Sequential(ln.LSTM(I, H, batch_first=True, seed=0), ln.LastTimestep(), ln.Linear(H, 1, seed=0))
    theirs = torch.nn.LSTM(I, H, batch_first=True)
    theirs.load_state_dict({k: torch.from_numpy(v) for k, v in lstm.state_dict().items()})
    rng = np.random.default_rng(0)
    x1 = rng.standard_normal((1, 1, I)).astype(np.float32)
    x10 = rng.standard_normal((1, 10, I)).astype(np.float32)
    t1 = torch.from_numpy(x1)

    def layer_call():
        with ln.no_grad():
            lstm(x1)

    def layer_step():
        with ln.no_grad():
            lstm.step(x1[0])

    def torch_call():
        with torch.no_grad():
            theirs(t1)

    def predict_1():
        model.predict(x1)

    def predict_10():
        model.predict(x10)

    def ten_stream_steps():
        stream = model.stream()
        for t in range(10):
            stream.step(x10[:, t])

    print(machine_description(args.threads))
    print(f"LSTM I{I} H{H}, {args.threads} thread(s), medians of interleaved blocks (us)\n")
    rows = []
    call, step, _ = interleaved(layer_call, layer_step, 30, 20)
    call_t, torch_t, _ = interleaved(layer_call, torch_call, 30, 20)
    pred, step2, _ = interleaved(predict_1, layer_step, 30, 20)
    pred10, stream10, _ = interleaved(predict_10, ten_stream_steps, 30, 20)
    rows.append(("layer call (1, 1, I)", call, f"{call / step:.2f}x LSTM.step ({step * 1e6:.1f} us); "
                 f"torch nn.LSTM {torch_t * 1e6:.1f} us: **{torch_t / call_t:.1f}x** faster"))
    rows.append(("predict (1, 1, I) (LSTM + Linear head)", pred, f"{pred / step2:.2f}x LSTM.step; torch/this "
                 f"**{torch_t / pred:.1f}x**"))
    rows.append(("predict (1, 10, I)", pred10, f"{pred10 / stream10:.2f}x ten stream.step ({stream10 * 1e6:.1f} us)"))
    print("| call | us | against |")
    print("|---|---|---|")
    for name, t, note in rows:
        print(f"| {name} | {t * 1e6:.1f} | {note} |")


if __name__ == "__main__":
    main()
