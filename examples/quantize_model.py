"""Quantise a trained model to int8 for inference: accuracy, file size and speed, before and after.

Trains a sequence classifier (a 2-layer LSTM over noisy waveforms: sine, square, sawtooth,
triangle) and a one-step forecaster (the demo's noisy sine), then runs ``ln.quantize_dynamic``
on each and reports both models' metric, file size and inference time in float32 and int8.

FIGURES

The gain in speed needs large layers: the int8 product wins on big matrices (bench/RESULTS.md,
Q1, a 1024-unit LSTM), while these small models spend their time in the per-step loop, where
int8 is no faster than float. Their accuracy and file size are what quantisation buys here.

    python examples/quantize_model.py [--quick]
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np

import lstm_native as ln


def waveforms(n, steps=40, seed=0):
    """(X (n, steps, 1), labels): four wave shapes at random frequency, phase and noise."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 4, n)
    t = np.arange(steps)[None, :]
    freq = rng.uniform(0.04, 0.12, (n, 1))
    phase = rng.uniform(0, 1, (n, 1))
    cycle = (t * freq + phase) % 1.0
    shapes = [np.sin(2 * np.pi * cycle), np.sign(np.sin(2 * np.pi * cycle)), 2 * cycle - 1,
              4 * np.abs(cycle - 0.5) - 1]
    X = np.choose(labels[:, None], shapes) + 0.25 * rng.standard_normal((n, steps))
    return X[:, :, None].astype(np.float32), labels


def timed(fn, reps=5):
    fn()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def file_size(model):
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "m.npz")
        model.save(path, include_optimizer=False)     # weights only: what inference ships
        return os.path.getsize(path)


def compare(model, X, metric):
    """Metric, file size and predict time of the float model and of its int8 version."""
    q = ln.quantize_dynamic(model)
    row = {}
    for name, m in (("float32", model), ("int8", q)):
        row[name] = {"metric": metric(m.predict(X)), "bytes": file_size(m), "seconds": timed(lambda: m.predict(X))}
    return row


def run(quick: bool = False, seed: int = 0) -> dict:
    n = 1200 if quick else 3000
    hidden = 64
    X, labels = waveforms(n, seed=seed)
    split = int(0.8 * n)
    clf = ln.Sequential(ln.LSTM(1, hidden, num_layers=2, batch_first=True, seed=seed), ln.LastTimestep(),
                        ln.Linear(hidden, 4, seed=seed))
    clf.fit(X[:split], labels[:split], loss="cross_entropy", epochs=10 if quick else 12, batch_size=32,
            clip_grad_norm=1.0, optimizer=ln.optim.Adam(clf.parameters(), lr=3e-3), verbose=0, seed=seed)
    accuracy = lambda logits: float(np.mean(logits.argmax(axis=1) == labels[split:]))   # noqa: E731
    results = {"classifier": compare(clf, X[split:], accuracy)}

    series = ln.data.noisy_sine(2000, seed=seed)
    Xf, yf = ln.data.sliding_windows(series, 20)
    cut = int(0.8 * len(Xf))
    fc = ln.Sequential(ln.LSTM(1, hidden, batch_first=True, seed=seed), ln.LastTimestep(), ln.Linear(hidden, 1, seed=seed))
    fc.fit(Xf[:cut], yf[:cut], epochs=6 if quick else 15, batch_size=32, clip_grad_norm=1.0,
           optimizer=ln.optim.Adam(fc.parameters(), lr=5e-3), verbose=0, seed=seed)
    mse = lambda pred: float(np.mean((pred - yf[cut:]) ** 2))   # noqa: E731
    results["forecaster"] = compare(fc, Xf[cut:], mse)
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller models and fewer epochs")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    results = run(quick=args.quick, seed=args.seed)
    print(f"{'model':12s}{'metric':>18s}{'float32':>10s}{'int8':>10s}{'file KiB':>18s}{'predict ms':>20s}")
    for name, metric in (("classifier", "accuracy"), ("forecaster", "test MSE")):
        f, q = results[name]["float32"], results[name]["int8"]
        print(f"{name:12s}{metric:>18s}{f['metric']:10.5f}{q['metric']:10.5f}"
              f"{f['bytes'] / 1024:9.0f} ->{q['bytes'] / 1024:6.0f}"
              f"{f['seconds'] * 1e3:11.1f} ->{q['seconds'] * 1e3:6.1f}")
    print("(int8: weights per-row int8, activations quantised per row at run time; inference only)")


if __name__ == "__main__":
    main()
