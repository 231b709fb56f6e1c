"""ln.losses.bce against torch.nn.BCELoss, and fit(metrics=[...]) / evaluate's metrics."""
import csv
import json

import numpy as np
import pytest
import torch

import lstm_native as ln


# -- bce -------------------------------------------------------------------------------------
@pytest.mark.parametrize("weighted", [False, True])
def test_bce_equals_torch_bceloss_with_its_gradient(weighted):
    rng = np.random.default_rng(0)
    p = rng.uniform(0, 1, (6, 5))
    p[0, :3] = [0.0, 1.0, 1e-30]                 # the clamped ends: log clamped at -100
    y = rng.integers(0, 2, (6, 5)).astype(np.float64)
    y[0, :3] = [1.0, 0.0, 1.0]
    y[1, 0] = 0.3                                # soft targets too
    w = rng.uniform(0.5, 2, (5,)) if weighted else None
    value, grad = ln.losses.bce(p, y, weight=w)
    tp = torch.tensor(p, requires_grad=True)
    ref = torch.nn.BCELoss(weight=None if w is None else torch.tensor(w))(tp, torch.tensor(y))
    ref.backward()
    assert abs(value - ref.item()) <= 1e-6 * max(1.0, abs(ref.item()))
    np.testing.assert_allclose(grad, tp.grad.numpy(), rtol=1e-6, atol=1e-9)


def test_bce_float32_mask_and_name():
    rng = np.random.default_rng(1)
    p = rng.uniform(0.01, 0.99, (3, 4, 1)).astype(np.float32)
    y = rng.integers(0, 2, (3, 4, 1)).astype(np.float32)
    mask = np.array([[1, 1, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0]], bool)
    value, grad = ln.losses.get("bce")(p, y, mask=mask)
    assert grad.dtype == np.float32 and np.all(grad[~mask] == 0)
    tp = torch.tensor(p[mask], dtype=torch.float64, requires_grad=True)
    ref = torch.nn.functional.binary_cross_entropy(tp, torch.tensor(y[mask], dtype=torch.float64))
    ref.backward()
    assert abs(value - ref.item()) <= 1e-6
    np.testing.assert_allclose(grad[mask], tp.grad.numpy(), rtol=1e-5)


def test_bce_rejects_values_outside_0_1():
    with pytest.raises(ValueError, match="probabilities"):
        ln.losses.bce(np.array([0.5, 1.5]), np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match="shape"):
        ln.losses.bce(np.array([0.5, 0.5]), np.array([0.0, 1.0, 1.0]))


def test_fit_with_loss_bce_learns_and_reports_accuracy():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((128, 6, 2)).astype(np.float32)
    y = (X[:, :, 0].sum(1) > 0).astype(np.float32)[:, None]
    model = ln.Sequential(ln.LSTM(2, 12, batch_first=True, seed=0), ln.LastTimestep(), ln.Linear(12, 1, seed=1),
                          ln.Sigmoid())
    h = model.fit(X, y, loss="bce", optimizer=ln.optim.Adam(model.parameters(), lr=1e-2), epochs=15, verbose=0,
                  seed=0)
    assert h.history["loss"][-1] < 0.4 * h.history["loss"][0]
    assert h.history["accuracy"][-1] > 0.9


# -- metrics ---------------------------------------------------------------------------------
def _regression(n=50):
    rng = np.random.default_rng(2)
    X = rng.standard_normal((n, 5, 2)).astype(np.float32)
    y = X[:, -1, :1] * 0.5
    model = ln.Sequential(ln.LSTM(2, 8, batch_first=True, seed=0), ln.LastTimestep(), ln.Linear(8, 1, seed=1))
    return X, y, model


def test_metrics_in_history_loggers_and_evaluate(tmp_path, capsys):
    X, y, model = _regression()

    def max_error(pred, target, mask):          # a plain function: mean over batches by size
        return float(np.max(np.abs(pred - target)))

    def within(pred, target, mask):             # the (total, count) protocol: an exact mean
        ok = np.abs(pred - target) < 0.1
        return int(ok.sum()), ok.size

    h = model.fit(X, y, epochs=3, batch_size=16, verbose=2, seed=0, validation_data=(X[:20], y[:20]),
                  metrics=["mae", "mse", "rmse", max_error, within],
                  callbacks=[ln.callbacks.CSVLogger(tmp_path / "log.csv"), ln.callbacks.JSONLogger(tmp_path / "h.json")])
    keys = {"loss", "mae", "mse", "rmse", "max_error", "within", "lr"}
    assert set(h.history) == keys | {"val_" + k for k in keys - {"lr"}}
    np.testing.assert_allclose(h.history["mse"], h.history["loss"], rtol=1e-6)   # loss is the mse
    np.testing.assert_allclose(h.history["rmse"], np.sqrt(h.history["mse"]), rtol=1e-12)
    np.testing.assert_allclose(h.history["val_mse"], h.history["val_loss"], rtol=1e-6)
    printed = capsys.readouterr().out
    assert "mae=" in printed and "val_rmse=" in printed and "within=" in printed
    rows = list(csv.DictReader(open(tmp_path / "log.csv")))
    assert float(rows[-1]["val_mae"]) == pytest.approx(h.history["val_mae"][-1])
    assert json.load(open(tmp_path / "h.json"))["history"]["max_error"] == h.history["max_error"]

    # evaluate returns them, exact over elements whatever the batch size
    pred = model.predict(X[:20])
    for bs in (7, 256):
        r = model.evaluate(X[:20], y[:20], metrics=["mae", "rmse", within], batch_size=bs)
        assert r["mae"] == pytest.approx(float(np.mean(np.abs(pred - y[:20]))), rel=1e-6)
        assert r["rmse"] == pytest.approx(float(np.sqrt(np.mean((pred - y[:20]) ** 2))), rel=1e-6)
        assert r["within"] == pytest.approx(float(np.mean(np.abs(pred - y[:20]) < 0.1)))
    assert r["mae"] == pytest.approx(h.history["val_mae"][-1], rel=1e-6)


def test_accuracy_metrics_follow_the_loss_and_the_mask():
    logits = np.array([[[2.0, 0.1], [0.1, 2.0], [3.0, 0.0]]])      # (1, 3, 2)
    labels = np.array([[0, 0, -100]])                               # the ignored label does not count
    assert ln.metrics.get("accuracy", ln.losses.cross_entropy)[1](logits, labels, None) == (1, 2)
    mask = np.array([[True, False, False]])
    assert ln.metrics.get("accuracy", ln.losses.cross_entropy)[1](logits, labels, mask) == (1, 1)
    # binary: 0.5 on probabilities, 0 on logits
    p, y = np.array([[0.4], [0.6]]), np.array([[0.0], [0.0]])
    assert ln.metrics.get("binary_accuracy", ln.losses.bce)[1](p, y, None) == (1, 2)
    assert ln.metrics.get("binary_accuracy", ln.losses.bce_with_logits)[1](p, y, None) == (0, 2)
    assert ln.metrics.get("acc")[0] == "accuracy"


def test_bad_metrics_are_named():
    X, y, model = _regression(8)
    with pytest.raises(ValueError, match="unknown metric 'f1'"):
        model.fit(X, y, metrics=["f1"], verbose=0)
    with pytest.raises(ValueError, match="name"):
        model.fit(X, y, metrics=[lambda p, t, m: 0.0], verbose=0)
    with pytest.raises(ValueError, match="distinct"):
        model.fit(X, y, metrics=["mae", "mean_absolute_error"], verbose=0)
