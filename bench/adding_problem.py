"""The adding problem at T=100 (ln.data.adding_problem): how orthogonal recurrent weights with
forget bias 1 change an LSTM's learning against the default (torch's) initialisation.

    PYTHONPATH=python python bench/adding_problem.py [--seeds 0 1 2] [--epochs 100]

Prints, per seed and initialisation, the epoch at which the training loss first falls below
0.05 (predicting the mean scores 1/6), the loss at a few epochs and the final test MSE; and the
gradient that reaches the first step relative to the last one at initialisation.
"""
import argparse
import time

import numpy as np

import lstm_native as ln


def build(init, H, seed):
    rnn = ln.LSTM(2, H, batch_first=True, seed=seed, forget_bias=1.0 if init == "orthogonal+fb1" else 0.0)
    if init == "orthogonal+fb1":
        w = rnn.weight_hh_l0.data
        for k in range(4):          # each gate's (H, H) block orthogonal
            ln.init.orthogonal_(w[k * H:(k + 1) * H], generator=seed + k)
    return ln.Sequential(rnn, ln.LastTimestep(), ln.Linear(H, 1, seed=seed))


def gradient_reach(model, X, y):
    """mean |d loss / d x_0| / mean |d loss / d x_{T-1}| at the model's current weights."""
    out = model(X)
    _, grad = ln.losses.mse(out, y)
    model.zero_grad()
    dx = np.asarray(model.backward(grad, need_input_grad=True))
    return float(np.abs(dx[:, 0, 0]).mean() / np.abs(dx[:, -1, 0]).mean())


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--epochs", type=int, default=100)
    p.add_argument("--hidden", type=int, default=32)
    p.add_argument("--lr", type=float, default=3e-3)
    args = p.parse_args(argv)
    X, y = ln.data.adding_problem(2048, 100, seed=1)
    Xt, yt = ln.data.adding_problem(512, 100, seed=2)
    print(f"LSTM({args.hidden}), Adam lr {args.lr}, batch 64, clip 1.0, 2048 training sequences of 100 steps")
    for seed in args.seeds:
        for init in ("default", "orthogonal+fb1"):
            model = build(init, args.hidden, seed)
            reach = gradient_reach(model, X[:256], y[:256])
            t = time.time()
            hist = model.fit(X, y, loss="mse", optimizer=ln.optim.Adam(model.parameters(), lr=args.lr),
                             epochs=args.epochs, batch_size=64, clip_grad_norm=1.0, verbose=0, seed=seed)
            loss = hist.history["loss"]
            solved = next((i + 1 for i, v in enumerate(loss) if v < 0.05), None)
            test = float(np.mean((model.predict(Xt) - yt) ** 2))
            marks = ", ".join(f"{e}: {loss[e - 1]:.4f}" for e in (10, 25, 50, 75, 100) if e <= len(loss))
            print(f"seed {seed} {init:15s} grad reach {reach:.2e}  below 0.05 at epoch {solved}  "
                  f"loss {marks}  test {test:.4f}  ({time.time() - t:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
