"""Training-step time of the cells of issue 21 against plain LSTM at one shape (default S3:
B64 T100 I128 H256, 2 threads): recurrent dropout, zoneout, layer norm, the textbook GRU, RNN,
proj_size. One process, every variant's step timed in turn (round robin, the order rotated
each round), medians and ratios to plain LSTM (or plain GRU for the GRU variants).

    PYTHONPATH=python python bench/cells_speed.py [--reps 15] [--threads 2] [--shape 64 100 128 256]

A step is what fit does per batch: forward, MSE on the last step through a Linear head,
backward, clip_grad_norm 1.0, Adam.
"""
import argparse
import statistics
import time

import numpy as np

import lstm_native as ln

VARIANTS = {   # name: (baseline, factory(I, H))
    "LSTM": (None, lambda I, H: ln.LSTM(I, H, batch_first=True, seed=0)),
    "LSTM recurrent_dropout=0.25": ("LSTM", lambda I, H: ln.LSTM(I, H, batch_first=True, seed=0,
                                                                recurrent_dropout=0.25)),
    "LSTM zoneout=0.1": ("LSTM", lambda I, H: ln.LSTM(I, H, batch_first=True, seed=0, zoneout=0.1)),
    "LSTM both": ("LSTM", lambda I, H: ln.LSTM(I, H, batch_first=True, seed=0, recurrent_dropout=0.25, zoneout=0.1)),
    "LayerNormLSTM": ("LSTM", lambda I, H: ln.LayerNormLSTM(I, H, batch_first=True, seed=0)),
    "LSTM proj_size=H/2": ("LSTM", lambda I, H: ln.LSTM(I, H, batch_first=True, seed=0, proj_size=H // 2)),
    "GRU": (None, lambda I, H: ln.GRU(I, H, batch_first=True, seed=0)),
    "GRU recurrent_dropout=0.25": ("GRU", lambda I, H: ln.GRU(I, H, batch_first=True, seed=0, recurrent_dropout=0.25)),
    "GRU zoneout=0.1": ("GRU", lambda I, H: ln.GRU(I, H, batch_first=True, seed=0, zoneout=0.1)),
    "GRU reset_after=False": ("GRU", lambda I, H: ln.GRU(I, H, batch_first=True, seed=0, reset_after=False)),
    "LayerNormGRU": ("GRU", lambda I, H: ln.LayerNormGRU(I, H, batch_first=True, seed=0)),
    "RNN tanh": ("LSTM", lambda I, H: ln.RNN(I, H, batch_first=True, seed=0)),
}


def make_step(factory, B, T, I, H, x, y):
    rnn = factory(I, H)
    model = ln.Sequential(rnn, ln.LastTimestep(), ln.Linear(rnn.state_size, 1, seed=0))
    params = model.parameters()
    opt = ln.optim.Adam(params, lr=1e-3)

    def step():
        out = model(x)
        _, grad = ln.losses.mse(out, y)
        model.zero_grad()
        model.backward(grad)
        ln.clip_grad_norm_(params, 1.0)
        opt.step()
    return step


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reps", type=int, default=15)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--shape", type=int, nargs=4, default=[64, 100, 128, 256], metavar=("B", "T", "I", "H"))
    p.add_argument("--only", nargs="*", help="variant names to run (default: all)")
    args = p.parse_args(argv)
    ln.set_num_threads(args.threads)
    B, T, I, H = args.shape
    rng = np.random.default_rng(0)
    x = rng.standard_normal((B, T, I)).astype(np.float32)
    y = rng.standard_normal((B, 1)).astype(np.float32)
    names = [n for n in VARIANTS if not args.only or n in args.only or VARIANTS[n][0] is None]
    steps = {n: make_step(VARIANTS[n][1], B, T, I, H, x, y) for n in names}
    for fn in steps.values():   # warm up: buffers, packing, first-call costs
        fn()
        fn()
    times = {n: [] for n in names}
    for r in range(args.reps):
        order = names[r % len(names):] + names[:r % len(names)]
        for n in order:
            t = time.perf_counter()
            steps[n]()
            times[n].append(time.perf_counter() - t)
    med = {n: statistics.median(v) for n, v in times.items()}
    print(f"B{B} T{T} I{I} H{H}, {args.threads} threads, {args.reps} rounds, median ms per training step")
    print(f"{'variant':32s} {'ms':>8s}  vs")
    for n in names:
        base = VARIANTS[n][0]
        ratio = f"{med[n] / med[base]:.3f}x {base}" if base in med else ""
        print(f"{n:32s} {1e3 * med[n]:8.1f}  {ratio}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
