"""The demo behind ``lstm-native demo``: forecast a noisy sine wave one step ahead.

Window 20, an LSTM of 64 units and a Linear head, Adam with gradient clipping, early
stopping on a validation split; the test error is printed next to the naive last-value
baseline's, and two PNGs (loss curve, true vs predicted) are written when matplotlib is there.
"""
from __future__ import annotations

import os
import time

import numpy as np

from . import callbacks, data, optim, plotting
from .layers import LastTimestep, Linear
from .recurrent import LSTM
from .sequential import Sequential

LOOKBACK = 20
HIDDEN = 64


def run_demo(epochs: int = 60, out_dir: str = ".", plots: bool = True, seed: int = 0, verbose: int = 1,
             say=print) -> dict:
    """Trains and evaluates; returns the figures (MSEs in the series' own units, PNG paths)."""
    start = time.perf_counter()
    series = data.noisy_sine(n=2400, period=25.0, noise=0.05, seed=seed)
    X, y = data.sliding_windows(series, lookback=LOOKBACK, horizon=1)
    (X_train, X_val, X_test), (y_train, y_val, y_test) = data.time_split(X, y, val=0.15, test=0.15)

    # Scale with statistics of the training part only (the test part stays unseen).
    scaler = data.StandardScaler().fit(series[:len(X_train) + LOOKBACK])
    Xs = [scaler.transform(a) for a in (X_train, X_val, X_test)]
    ys = [scaler.transform(a) for a in (y_train, y_val)]

    model = Sequential(LSTM(1, HIDDEN, batch_first=True, seed=seed), LastTimestep(), Linear(HIDDEN, 1, seed=seed))
    opt = optim.Adam(model.parameters(), lr=5e-3)
    sched = optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=4)
    say(f"lstm-native demo: noisy sine, {len(X_train)} training windows of {LOOKBACK} steps, LSTM({HIDDEN})")
    history = model.fit(Xs[0], ys[0], loss="mse", optimizer=opt, epochs=epochs, batch_size=32, clip_grad_norm=1.0,
                        validation_data=(Xs[1], ys[1]), scheduler=sched, seed=seed, verbose=verbose,
                        callbacks=[callbacks.EarlyStopping(patience=8)])

    def mse(a, b):
        return float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))

    pred = {name: scaler.inverse_transform(model.predict(Xn)) for name, Xn in (("train", Xs[0]), ("test", Xs[2]))}
    naive_test = data.naive_forecast(X_test)
    result = {
        "train_mse": mse(pred["train"], y_train),
        "test_mse": mse(pred["test"], y_test),
        "naive_test_mse": mse(naive_test, y_test),
        "noise_floor_mse": 0.05 ** 2,
        "epochs_run": len(history.epoch),
        "loss_png": None, "forecast_png": None,
    }
    result["improvement"] = result["naive_test_mse"] / result["test_mse"]

    say("")
    say(f"  {'':26s}{'train MSE':>12s}{'test MSE':>12s}")
    say(f"  {'LSTM':26s}{result['train_mse']:12.5f}{result['test_mse']:12.5f}")
    say(f"  {'naive (last value)':26s}{mse(data.naive_forecast(X_train), y_train):12.5f}{result['naive_test_mse']:12.5f}")
    say(f"  {'noise floor (sigma^2)':26s}{result['noise_floor_mse']:12.5f}{result['noise_floor_mse']:12.5f}")
    say(f"  the LSTM's test MSE is {result['improvement']:.1f}x lower than the naive baseline's "
        f"({result['epochs_run']} epochs)")

    if plots and plotting.have_matplotlib():
        os.makedirs(out_dir, exist_ok=True)
        result["loss_png"] = os.path.join(out_dir, "demo_loss.png")
        result["forecast_png"] = os.path.join(out_dir, "demo_forecast.png")
        plotting.plot_history(history, result["loss_png"], title="Noisy sine: training and validation loss (MSE, scaled)")
        plotting.plot_predictions(y_test, pred["test"], result["forecast_png"], baseline=naive_test,
                                  title="Noisy sine, test set: one-step-ahead forecast", ylabel="value")
        say(f"  wrote {result['loss_png']} and {result['forecast_png']}")
    elif plots:
        say(f"  (no plots: {plotting.HINT})")
    result["seconds"] = time.perf_counter() - start
    say(f"  done in {result['seconds']:.1f} s")
    return result
