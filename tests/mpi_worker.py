"""What tests/test_distributed.py runs under ``mpiexec -n N python tests/mpi_worker.py MODE ...``
(and in one process, for the reference). Not a test module itself.

    equality OUT.npz [RESUME_FROM]  the CASES, 20 steps each (plus, with RESUME_FROM, the second
                                    epoch of the checkpoint case from that file); rank 0 writes
                                    every parameter and history to OUT.npz
    checkpoint PATH [FOLDER]        the first epoch of the lstm case, checkpointed to PATH
    fault KIND                      a failure on rank 1 only: bad-data, nan-loss, raise, callback,
                                    other-data
"""
from __future__ import annotations

import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
import lstm_native as ln  # noqa: E402

N, T, I = 95, 6, 3          # 95 samples in batches of 10: shares of 5/5 or 2/3/2/3 rows, a last batch of 5


def data(seed=0, classes=False):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((N, T, I)).astype(np.float32)
    lengths = rng.integers(2, T + 1, N)
    if classes:
        return X, rng.integers(0, 3, (N, T)), lengths
    return X, rng.standard_normal((N, 2)).astype(np.float32), lengths


def model_for(case):
    if case == "lstm":
        return ln.Sequential(ln.LSTM(I, 8, batch_first=True, seed=1), ln.LastTimestep(), ln.Linear(8, 2, seed=2))
    if case == "gru":
        return ln.Sequential(ln.GRU(I, 8, num_layers=2, batch_first=True, seed=1), ln.LastTimestep(),
                             ln.Linear(8, 2, seed=2))
    if case == "bidirectional":
        return ln.Sequential(ln.LSTM(I, 8, batch_first=True, bidirectional=True, seed=1), ln.LastTimestep(),
                             ln.Linear(16, 2, seed=2))
    if case == "lengths":          # per-step outputs under a mask: ranks' shares weigh by their valid steps
        return ln.Sequential(ln.LSTM(I, 8, batch_first=True, seed=1), ln.TimeDistributed(ln.Linear(8, 2, seed=2)))
    if case == "classes":          # weighted cross-entropy per step, with lengths and accuracy
        return ln.Sequential(ln.GRU(I, 8, batch_first=True, seed=1), ln.TimeDistributed(ln.Linear(8, 3, seed=2)))
    raise ValueError(case)


CASES = ("lstm", "gru", "bidirectional", "lengths", "classes")


def train(case, epochs=2, callbacks=(), resume_from=None, verbose=0):
    """2 epochs of 10 batches = 20 steps, with validation, clipping, a schedule and early stopping."""
    X, y, lengths = data(classes=case == "classes")
    if case == "lengths":
        y = np.random.default_rng(5).standard_normal((N, T, 2)).astype(np.float32)
    use_lengths = case in ("lengths", "classes")
    model = model_for(case)
    opt = ln.optim.Adam(model.parameters(), lr=0.01)
    kw = dict(loss="cross_entropy", loss_kwargs={"weight": [1.0, 2.0, 0.5]}) if case == "classes" else dict(loss="mse")
    history = model.fit(X[:80], y[:80], epochs=epochs, batch_size=10, optimizer=opt, clip_grad_norm=1.0,
                        lengths=lengths[:80] if use_lengths else None, seed=3, verbose=verbose,
                        validation_data=(X[80:], y[80:]) + ((lengths[80:],) if use_lengths else ()),
                        scheduler=ln.optim.StepLR(opt, step_size=1, gamma=0.5),
                        callbacks=[ln.callbacks.EarlyStopping(patience=5)] + list(callbacks),
                        resume_from=resume_from, distributed=True, **kw)
    return model, history


def same_on_every_rank(model) -> bool:
    """The parameters are bit for bit the same on every rank (the Allreduce gives all the same sums)."""
    import hashlib
    from mpi4py import MPI
    digest = hashlib.sha256(b"".join(p.data.tobytes() for p in model.parameters())).hexdigest()
    return len(set(MPI.COMM_WORLD.allgather(digest))) == 1


def results(model, history, prefix):
    out = {f"{prefix}/{k}": v for k, v in model.state_dict().items()}
    for k, v in history.history.items():
        out[f"{prefix}/history/{k}"] = np.asarray(v, np.float64)
    return out


def hand_written():
    """A hand-written step: rank 0's weights everywhere, each rank's equal share of 40 rows,
    gradients averaged: the gradient of the 40 rows in one process."""
    X, y, _ = data()
    model = model_for("gru")
    for p in model.parameters():         # other ranks start elsewhere: the broadcast must fix it
        p.data += ln.distributed.rank()
    ln.distributed.broadcast_parameters(model)
    r, n = ln.distributed.rank(), ln.distributed.size()
    rows = slice(r * 40 // n, (r + 1) * 40 // n)
    _, grad = ln.losses.mse(model(X[rows]), y[rows])
    model.zero_grad()
    model.backward(grad)
    ln.distributed.allreduce_gradients(model)
    return {f"hand/{k}": v.copy() for k, v in model.grads.items()}


def equality(path, resume_from=None):
    out = hand_written()
    for case in CASES:
        model, history = train(case)
        if ln.distributed.size() > 1:
            assert same_on_every_rank(model), case
        out.update(results(model, history, case))
    if resume_from:
        model, history = train("lstm", resume_from=resume_from)
        out.update(results(model, history, "resumed"))
    out["size"] = np.array(ln.distributed.size())
    if ln.distributed.rank() == 0:
        np.savez(path, **out)


class WhoWrites(ln.callbacks.Callback):
    rank_zero_only = True

    def __init__(self, folder):
        self.folder = folder

    def on_epoch_end(self, epoch, logs=None):
        open(os.path.join(self.folder, f"written_by_rank_{ln.distributed.rank()}"), "w").close()


def checkpoint(path, folder=None):
    """Epoch 1 of the lstm case, checkpointed to path; verbose=2 prints a line per epoch, and a
    rank_zero_only callback leaves a file named by its rank in folder."""
    folder = folder or os.path.dirname(os.path.abspath(path))
    train("lstm", epochs=1, callbacks=[ln.callbacks.ModelCheckpoint(path, monitor="loss"), WhoWrites(folder)],
          verbose=2)


def fault(kind):
    r = ln.distributed.rank()
    X, y, _ = data()
    model = model_for("lstm")
    callbacks, loss = [], "mse"
    if kind == "bad-data":         # an infinite input in a row of the second batch that rank 1 takes
        X[15] = np.inf
    elif kind == "nan-loss":       # a NaN target in a row of the second batch that rank 1 takes
        y[17] = np.nan
    elif kind == "raise":          # a loss function that fails on rank 1 in the third step
        calls = []

        def loss(out, target, mask=None):
            calls.append(1)
            if r == 1 and len(calls) == 3:
                raise KeyError("rank 1's loss failed")
            return ln.losses.mse(out, target, mask)
    elif kind == "other-data":     # each rank passes its own slice: the ranks must see the same X
        X, y = X[:50 + 10 * r], y[:50 + 10 * r]
    elif kind == "callback":       # an error where the ranks cannot agree: one rank's callback
        class Fails(ln.callbacks.Callback):
            def on_batch_end(self, batch, logs=None):
                if r == 1 and batch == 2:
                    raise RuntimeError("rank 1's callback failed")
        callbacks = [Fails()]
    model.fit(X, y, epochs=3, batch_size=10, loss=loss, callbacks=callbacks, seed=3, verbose=0, shuffle=False,
              distributed=True)
    print("fit returned", flush=True)


if __name__ == "__main__":
    ln.set_num_threads(1)
    mode, args = sys.argv[1], sys.argv[2:]
    {"equality": equality, "checkpoint": checkpoint, "fault": fault}[mode](*args)
