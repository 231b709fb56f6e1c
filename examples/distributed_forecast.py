"""Data-parallel training over MPI: one forecaster for a fleet of sensors, trained on several ranks.

Each of many sensors records a daily cycle of its own (amplitude, phase, level) plus a slow
drift and noise; one LSTM learns to forecast the next 4 hours of any sensor from its last 24.
All windows of all sensors are pooled; ``fit(..., distributed=True)`` splits every global batch
over the MPI ranks, so N ranks train the same model one process would, N times as fast where
compute dominates (see README "Training on several machines" and bench/RESULTS.md).

    python examples/distributed_forecast.py --quick                       # one process
    mpiexec -n 2 python examples/distributed_forecast.py --quick          # two ranks, same model
    srun -n 64 python examples/distributed_forecast.py                    # a cluster

Every rank builds the same data and model; rank 0 alone prints, and writes the checkpoint of
the best epoch (``--checkpoint``). The figures are those of the trained model, the same on every
rank, and the same for any number of ranks (the global batch is 64 windows quick, 256 full,
whatever the number of ranks).

Measured on the shared 2-core machine (one kernel thread per rank, ~14 other runnable
processes on its 2 cores during the runs):
    quick (24 sensors x 20 days, 12 epochs): MSE 4.5x, 6.8x, 5.3x below the naive last value
        (seeds 0-2); 1 process 1.8-2.4 s; 2 ranks the same model (equal test MSE), 8.4 s
    full (96 sensors x 60 days, early stopping after 20 of 30 epochs): MSE 14.5x below naive;
        1 process 124 s, 2 ranks 129 s, the same test MSE to 7 digits
The ranks agree after every step, so on a machine whose cores are busy with other work
each waits for the other to be scheduled: this small model gained nothing there. The larger
shapes of bench/RESULTS.md (data-parallel section) gained 1.4-1.8x on the same busy machine.
"""
from __future__ import annotations

import argparse
import json
import math
import time

import numpy as np

import lstm_native as ln
from lstm_native import data

LOOKBACK, HORIZON = 24, 4


def sensors(count: int, hours: int, seed: int = 0) -> np.ndarray:
    """(count, hours) float32 readings: a daily cycle per sensor, a drift and noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(hours)
    amplitude = rng.uniform(0.5, 2.0, (count, 1))
    phase = rng.uniform(0, 2 * math.pi, (count, 1))
    level = rng.normal(0, 1, (count, 1))
    drift = np.cumsum(rng.normal(0, 0.05, (count, hours)), axis=1)
    daily = amplitude * np.sin(2 * math.pi * t / 24 + phase) + 0.3 * amplitude * np.sin(4 * math.pi * t / 24 + phase)
    return (level + daily + drift + rng.normal(0, 0.1, (count, hours))).astype(np.float32)


def windows(series: np.ndarray):
    """All (lookback, 1) windows of every sensor and their next HORIZON readings, in time order per sensor."""
    X, y = zip(*(data.sliding_windows(s[:, None], LOOKBACK, HORIZON) for s in series))
    return np.concatenate(X), np.concatenate(y)


def run(quick: bool = False, seed: int = 0, epochs=None, hidden=None, checkpoint=None, verbose: int = 0) -> dict:
    """Trains on however many ranks this process was launched with (1 without mpiexec)."""
    start = time.perf_counter()
    count, days = (24, 20) if quick else (96, 60)
    epochs = epochs or (12 if quick else 30)
    hidden = hidden or (32 if quick else 64)
    batch = 64 if quick else 256                     # the global batch, whatever the number of ranks
    readings = sensors(count, 24 * days, seed)
    cut_val, cut_test = int(readings.shape[1] * 0.7), int(readings.shape[1] * 0.85)
    (X_train, y_train), (X_val, y_val), (X_test, y_test) = (
        windows(readings[:, a:b]) for a, b in ((0, cut_val), (cut_val, cut_test), (cut_test, None)))
    # each sensor scaled by its training part's statistics: the model sees comparable shapes
    mean = readings[:, :cut_val].mean(axis=1, keepdims=True)
    std = readings[:, :cut_val].std(axis=1, keepdims=True)

    def scaled(X, y, part):
        n = readings[:, part].shape[1] - LOOKBACK - HORIZON + 1           # windows per sensor
        m, s = np.repeat(mean, n, axis=0), np.repeat(std, n, axis=0)
        return ((X - m[:, :, None]) / s[:, :, None]).astype(np.float32), ((y - m) / s).astype(np.float32), m, s

    Xs_train, ys_train, _, _ = scaled(X_train, y_train, slice(0, cut_val))
    Xs_val, ys_val, _, _ = scaled(X_val, y_val, slice(cut_val, cut_test))
    Xs_test, _, m_test, s_test = scaled(X_test, y_test, slice(cut_test, None))

    model = ln.Sequential(ln.LSTM(1, hidden, batch_first=True, seed=seed), ln.LastTimestep(),
                          ln.Linear(hidden, HORIZON, seed=seed + 1))
    opt = ln.optim.Adam(model.parameters(), lr=3e-3)
    callbacks = [ln.callbacks.EarlyStopping(patience=4, restore_best_weights=True)]
    if checkpoint:   # written by rank 0 only
        callbacks.append(ln.callbacks.ModelCheckpoint(checkpoint, monitor="val_loss", save_best_only=True))
    history = model.fit(Xs_train, ys_train, epochs=epochs, batch_size=batch, optimizer=opt, clip_grad_norm=1.0,
                        validation_data=(Xs_val, ys_val), callbacks=callbacks, seed=seed, verbose=verbose,
                        scheduler=ln.optim.ReduceLROnPlateau(opt, factor=0.5, patience=2), distributed=True)

    pred = model.predict(Xs_test) * s_test + m_test
    naive = np.repeat(X_test[:, -1], HORIZON, axis=1)
    res = {"ranks": ln.distributed.size(), "sensors": count, "train_windows": len(X_train),
           "epochs_run": len(history.epoch), "lstm_mse": float(np.mean((pred - y_test) ** 2)),
           "naive_mse": float(np.mean((naive - y_test) ** 2))}
    res["gain_vs_naive"] = res["naive_mse"] / res["lstm_mse"]
    res["seconds"] = time.perf_counter() - start
    return res


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="a small, fast run")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--hidden", type=int, default=None, help="LSTM units (32 quick, 64 full)")
    p.add_argument("--epochs", type=int, default=None, help="at most this many (early stopping on validation)")
    p.add_argument("--checkpoint", default=None, help="save the best epoch here (rank 0 writes it)")
    p.add_argument("--threads", type=int, default=0, help="kernel threads per rank (0: cores / ranks on the machine)")
    p.add_argument("--json", default=None, help="also write the results to this JSON file (rank 0)")
    p.add_argument("--verbose", type=int, default=0, help="0 silent, 1 progress bar, 2 a line per epoch")
    a = p.parse_args(argv)
    if a.threads:
        ln.set_num_threads(a.threads)
    r = run(quick=a.quick, seed=a.seed, epochs=a.epochs, hidden=a.hidden, checkpoint=a.checkpoint, verbose=a.verbose)
    if ln.distributed.rank() == 0:
        print(f"{r['sensors']} sensors, {r['train_windows']} training windows, trained on {r['ranks']} "
              f"rank{'s' if r['ranks'] > 1 else ''} for {r['epochs_run']} epochs in {r['seconds']:.1f} s")
        print(f"  test MSE: LSTM {r['lstm_mse']:.4f}, naive (last value) {r['naive_mse']:.4f}: "
              f"{r['gain_vs_naive']:.1f}x better")
        if a.json:
            with open(a.json, "w") as f:
                json.dump(r, f, indent=1)
    return r


if __name__ == "__main__":
    main()
