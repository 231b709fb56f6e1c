"""Bar: save -> load -> predict gives identical outputs; an interrupted run resumed from its
checkpoint ends with the same weights as an uninterrupted one; files are written atomically."""
import os

import numpy as np
import pytest

import lstm_native as ln


def toy_data(n=96, steps=10, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, steps, 2)).astype(np.float32)
    y = X[:, -3:, 0].sum(axis=1, keepdims=True).astype(np.float32)
    return X, y, rng.integers(4, steps + 1, n)


def build(seed=0):
    return ln.Sequential(
        ln.LSTM(2, 16, num_layers=2, dropout=0.2, batch_first=True, seed=seed),
        ln.Residual(ln.GRU(16, 16, batch_first=True, seed=seed + 1)),
        ln.LayerNorm(16),
        ln.Dropout(0.1, seed=seed + 2),
        ln.Attention(16, seed=seed + 3),
        ln.Linear(16, 1, seed=seed + 4))


def test_save_load_predict_is_identical(tmp_path):
    X, y, lengths = toy_data()
    model = build()
    model.fit(X, y, epochs=2, batch_size=32, verbose=0, lengths=lengths, seed=0)
    path = tmp_path / "model.lnz"
    model.save(path)
    loaded = ln.load(path)
    np.testing.assert_array_equal(loaded.predict(X, lengths=lengths), model.predict(X, lengths=lengths))
    assert repr(loaded) == repr(model)
    assert loaded.history.history["loss"] == model.history.history["loss"]
    assert type(loaded.optimizer) is ln.optim.Adam and loaded.optimizer.steps == model.optimizer.steps
    for a, b in zip(loaded.optimizer.state["exp_avg"], model.optimizer.state["exp_avg"]):
        np.testing.assert_array_equal(a, b)
    assert [f for f in os.listdir(tmp_path) if f != "model.lnz"] == []   # no temporary left behind


def test_interrupted_and_resumed_run_ends_with_the_same_weights(tmp_path):
    X, y, lengths = toy_data()
    Xv, yv, lv = toy_data(32, seed=1)

    def run(model, epochs, **kw):
        opt = ln.optim.Adam(model.parameters(), lr=3e-3)
        sched = ln.optim.StepLR(opt, step_size=2, gamma=0.5)
        return model.fit(X, y, optimizer=opt, scheduler=sched, epochs=epochs, batch_size=16, lengths=lengths,
                         validation_data=(Xv, yv, lv), clip_grad_norm=1.0, verbose=0, seed=42, **kw)

    straight = build(seed=0)
    history = run(straight, 5)

    interrupted = build(seed=0)
    checkpoint = tmp_path / "ckpt.lnz"
    run(interrupted, 3, callbacks=[ln.callbacks.ModelCheckpoint(checkpoint, save_best_only=False)])
    resumed = build(seed=123)   # a fresh model: everything comes from the checkpoint
    resumed_history = run(resumed, 5, resume_from=checkpoint)

    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        np.testing.assert_array_equal(a, b, err_msg=name)
    assert resumed_history.history == history.history
    assert resumed_history.epoch == [0, 1, 2, 3, 4]


def test_a_failed_save_leaves_the_previous_file(tmp_path, monkeypatch):
    model = ln.Sequential(ln.Linear(2, 1))
    path = tmp_path / "m.lnz"
    model.save(path)
    before = path.read_bytes()

    def broken(*args, **kwargs):
        raise OSError("disk full")
    monkeypatch.setattr(np, "savez", broken)
    with pytest.raises(OSError, match="disk full"):
        model.save(path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["m.lnz"]


def test_load_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no model file at"):
        ln.load(tmp_path / "missing.lnz")
    bogus = tmp_path / "bogus.lnz"
    bogus.write_text("not a model")
    with pytest.raises(ValueError, match="is not an lstm_native model file"):
        ln.load(bogus)
    other = tmp_path / "other.npz"
    np.savez(other, a=np.zeros(3))
    with pytest.raises(ValueError, match="is not an lstm_native model file"):
        ln.load(other)


class Doubler(ln.Module):
    """A user-defined module: saved by its import path, rebuilt on load."""

    def __init__(self, size=3):
        super().__init__()
        self.size = size
        self.scale = ln.Parameter(np.full(size, 2.0, np.float32))

    def forward(self, x):
        return x * self.scale.data

    def get_config(self):
        return {"size": self.size}


def test_user_modules_round_trip(tmp_path):
    model = ln.Sequential(Doubler(3), ln.Linear(3, 2))
    model.save(tmp_path / "m.lnz")
    loaded = ln.load(tmp_path / "m.lnz")
    assert isinstance(loaded[0], Doubler)
    x = np.ones((4, 3), np.float32)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
