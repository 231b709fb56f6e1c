"""Serve a trained forecaster with onnxruntime: export to ONNX (no PyTorch), run, compare.

Trains a 2-layer LSTM forecaster on the library's noisy sine, then writes it three ways with
``ln.onnx.export`` and serves each through onnxruntime beside our own predict:
    whole windows with a "lengths" input   a padded batch of histories of different lengths
                                           (the case PyTorch's exporter gets wrong)
    one step at a time (step=True)         online prediction, the states fed back by the server
    int8 (ln.quantize_dynamic first)       a smaller file computing our int8 model's integers
and prints the largest difference of each from our output, the file sizes and both runtimes'
predict times (times are the machine's, not a claim).

    python examples/export_onnx.py            # full: 3000 steps, 20 epochs
    python examples/export_onnx.py --quick    # the small run CI uses

Measured on a shared 2-core machine (--threads 1):
    full  (seed 0, 9 s):  test MSE 0.00312 (naive 0.0359); onnxruntime vs predict on padded
                          histories 3.6e-7 of the largest output, 200 streamed steps 3.6e-7;
                          int8 graph vs our int8 model 2.4e-7, the same error against float
                          (8.2e-3); files 199 -> 65 KiB (3.1x)
    quick (seeds 0-2):    test MSE 6.3-9.5x below naive, differences <= 3.6e-7; the int8 graph's
                          error equal to ours (one rounding step apart at most: 3.5e-4 on seed 0)
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np

import lstm_native as ln


def median_time(fn, reps=5):
    fn()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def run(quick: bool = False, seed: int = 0) -> dict:
    import onnxruntime as ort       # the [test] extra; serving needs only onnxruntime, not lstm_native

    lookback, hidden = 24, 64
    series = ln.data.noisy_sine(1500 if quick else 3000, seed=seed)
    X, y = ln.data.sliding_windows(series, lookback=lookback, horizon=1)
    (X_tr, X_va, X_te), (y_tr, y_va, y_te) = ln.data.time_split(X, y, val=0.15, test=0.15)
    model = ln.Sequential(ln.LSTM(1, hidden, num_layers=2, batch_first=True, seed=seed), ln.LastTimestep(),
                          ln.Linear(hidden, 1, seed=seed))
    model.fit(X_tr, y_tr, epochs=8 if quick else 20, batch_size=32, clip_grad_norm=1.0, validation_data=(X_va, y_va),
              optimizer=ln.optim.Adam(model.parameters(), lr=5e-3), verbose=0, seed=seed)

    options = ort.SessionOptions()
    options.intra_op_num_threads = max(1, ln.get_num_threads())
    serve = lambda path: ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])  # noqa: E731
    r = {}
    with tempfile.TemporaryDirectory() as folder:
        # 1. whole windows, histories of different lengths padded into one batch
        path = ln.onnx.export(model, os.path.join(folder, "forecaster.onnx"), lengths=True)
        session = serve(path)
        lengths = np.random.default_rng(seed).integers(8, lookback + 1, len(X_te))
        padded = X_te.copy()
        for i, n in enumerate(lengths):          # each history is its first n steps, zeros after
            padded[i, n:] = 0
        ours = model.predict(padded, lengths=lengths)
        theirs = session.run(["output"], {"input": padded, "lengths": lengths.astype(np.int64)})[0]
        r["max_abs_diff"] = float(np.abs(theirs - ours).max())
        r["rel_diff"] = r["max_abs_diff"] / float(np.abs(ours).max())
        full = model.predict(X_te)
        r["test_mse"] = float(np.mean((full - y_te) ** 2))
        r["naive_mse"] = float(np.mean((X_te[:, -1] - y_te) ** 2))
        r["onnx_bytes"] = os.path.getsize(path)
        r["test_windows"] = len(X_te)
        feed = {"input": X_te, "lengths": np.full(len(X_te), lookback, np.int64)}
        r["ours_ms"] = 1e3 * median_time(lambda: model.predict(X_te))
        r["onnxruntime_ms"] = 1e3 * median_time(lambda: session.run(["output"], feed))

        # 2. one step at a time: the server keeps state_out_k and feeds it back as state_in_k
        step = serve(ln.onnx.export(model, os.path.join(folder, "step.onnx"), step=True))
        states = {i.name: np.zeros((i.shape[0], 1, i.shape[2]), np.float32)
                  for i in step.get_inputs() if i.name.startswith("state_in_")}
        names = [o.name for o in step.get_outputs()]
        stream, worst = model.stream(), 0.0
        for x_t in series[-200:].reshape(-1, 1, 1).astype(np.float32):
            out = dict(zip(names, step.run(None, {"input": x_t, **states})))
            states = {k.replace("state_out_", "state_in_"): v for k, v in out.items() if k.startswith("state_out_")}
            worst = max(worst, float(np.abs(out["output"] - stream.step(x_t)).max()))
        r["step_max_abs_diff"] = worst

        # 3. int8
        q = ln.quantize_dynamic(model)
        qpath = ln.onnx.export(q, os.path.join(folder, "forecaster_int8.onnx"))
        q_theirs = serve(qpath).run(["output"], {"input": X_te})[0]
        q_ours = q.predict(X_te)
        r["int8_bytes"] = os.path.getsize(qpath)
        r["int8_max_abs_diff"] = float(np.abs(q_theirs - q_ours).max())
        r["int8_error_ours"] = float(np.abs(q_ours - full).max())       # each against the float model
        r["int8_error_onnx"] = float(np.abs(q_theirs - full).max())
    return r


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="a small, fast run")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0, help="kernel threads (0: the library's default)")
    a = p.parse_args(argv)
    ln.set_num_threads(a.threads)
    r = run(quick=a.quick, seed=a.seed)
    print(f"test MSE {r['test_mse']:.5f} (naive {r['naive_mse']:.5f})")
    print(f"onnxruntime vs predict, padded histories of 8-24 steps: max |diff| {r['max_abs_diff']:.2e} "
          f"({r['rel_diff']:.2e} of the largest output)")
    print(f"one step at a time, 200 steps:                      max |diff| {r['step_max_abs_diff']:.2e}")
    print(f"int8: onnxruntime vs our int8 model max |diff| {r['int8_max_abs_diff']:.2e}; error against float "
          f"{r['int8_error_onnx']:.2e} (ours {r['int8_error_ours']:.2e})")
    print(f"files: float {r['onnx_bytes'] / 1024:.0f} KiB, int8 {r['int8_bytes'] / 1024:.0f} KiB "
          f"({r['onnx_bytes'] / r['int8_bytes']:.1f}x smaller)")
    print(f"predict on {r['test_windows']} test windows: ours {r['ours_ms']:.2f} ms, "
          f"onnxruntime {r['onnxruntime_ms']:.2f} ms")
    return r


if __name__ == "__main__":
    main()
