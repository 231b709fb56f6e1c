"""The training loop's behaviour: errors, callbacks, logs, progress output, schedules."""
import csv
import json

import numpy as np
import pytest

import lstm_native as ln


def data(n=64, steps=8, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, steps, 2)).astype(np.float32)
    return X, X[:, -1, :1].copy()


def small(seed=0):
    return ln.Sequential(ln.LSTM(2, 8, batch_first=True, seed=seed), ln.LastTimestep(), ln.Linear(8, 1, seed=seed))


def test_nonfinite_loss_names_epoch_and_batch():
    X, y = data()
    y[40] = np.nan   # batch 3 of 16 samples without shuffling
    with pytest.raises(ln.NonFiniteLossError, match="the loss became nan at epoch 1, batch 3"):
        small().fit(X, y, epochs=2, batch_size=16, shuffle=False, verbose=0)


def test_nan_in_inputs_names_epoch_and_batch():
    X, y = data()
    X[20, 3, 1] = np.inf   # batch 2 of 16 samples without shuffling
    with pytest.raises(ln.NonFiniteLossError, match="x contains NaN or infinity at epoch 1, batch 2"):
        small().fit(X, y, epochs=1, batch_size=16, shuffle=False, verbose=0)


def test_diverging_training_is_stopped_with_a_clear_error():
    X, y = data()
    model = small()
    with pytest.raises(ln.NonFiniteLossError, match=r"at epoch \d+, batch \d+"):
        model.fit(X, y * 1e30, epochs=50, batch_size=16, verbose=0, optimizer=ln.optim.SGD(model.parameters(), lr=1e6))


def test_early_stopping_restores_the_best_weights():
    X, y = data(128)
    Xv = np.random.default_rng(5).standard_normal((64, 8, 2)).astype(np.float32)
    yv = np.random.default_rng(6).standard_normal((64, 1)).astype(np.float32) * 5   # unlearnable: val loss wanders
    model = small()
    snapshots = []
    stopper = ln.callbacks.EarlyStopping(patience=2)
    keep = ln.callbacks.LambdaCallback(on_epoch_end=lambda e, logs: snapshots.append(model.state_dict()))
    h = model.fit(X, y, epochs=40, batch_size=16, validation_data=(Xv, yv), verbose=0, seed=0,
                  optimizer=ln.optim.Adam(model.parameters(), 3e-2), callbacks=[keep, stopper])
    val = h.history["val_loss"]
    assert len(val) < 40 and stopper.stopped_epoch == len(val) - 1
    best = int(np.argmin(val))
    assert stopper.best_epoch == best
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(value, snapshots[best][name])


def test_early_stopping_needs_the_metric_it_monitors():
    X, y = data()
    with pytest.raises(ValueError, match="monitors 'val_loss', which this fit does not report"):
        small().fit(X, y, epochs=2, verbose=0, callbacks=[ln.callbacks.EarlyStopping()])


def test_checkpoint_and_loggers(tmp_path):
    X, y = data()
    model = small()
    model.fit(X, y, epochs=3, batch_size=16, validation_split=0.25, verbose=0, seed=0,
              callbacks=[ln.callbacks.ModelCheckpoint(tmp_path / "best.lnz", save_best_only=True),
                         ln.callbacks.ModelCheckpoint(tmp_path / "e{epoch}.lnz", save_best_only=False),
                         ln.callbacks.CSVLogger(tmp_path / "log.csv"), ln.callbacks.JSONLogger(tmp_path / "h.json")])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.lnz", "e1.lnz", "e2.lnz", "e3.lnz", "h.json", "log.csv"]
    rows = list(csv.DictReader(open(tmp_path / "log.csv")))
    assert [r["epoch"] for r in rows] == ["1", "2", "3"] and {"loss", "val_loss", "lr"} <= set(rows[0])
    assert json.load(open(tmp_path / "h.json"))["history"]["loss"] == model.history.history["loss"]
    assert ln.load(tmp_path / "e3.lnz").optimizer.steps == model.optimizer.steps


def test_verbosity(capsys):
    X, y = data()
    small().fit(X, y, epochs=2, verbose=0)
    assert capsys.readouterr().out == ""
    small().fit(X, y, epochs=2, verbose=2)
    out = capsys.readouterr().out
    assert out.count("Epoch") == 2 and "loss=" in out
    small().fit(X, y, epochs=1, verbose=1)
    assert "Epoch 1/1" in capsys.readouterr().out   # the tqdm bar


def test_validation_split_takes_the_last_samples_and_reports_accuracy():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((100, 5, 3)).astype(np.float32)
    y = (X[:, :, 0].sum(1) > 0).astype(np.int64)
    model = ln.Sequential(ln.LSTM(3, 8, batch_first=True, seed=0), ln.LastTimestep(), ln.Linear(8, 2, seed=0))
    h = model.fit(X, y, loss="cross_entropy", epochs=2, validation_split=0.2, verbose=0)
    assert set(h.history) == {"loss", "accuracy", "val_loss", "val_accuracy", "lr"}
    expected = model.evaluate(X[80:], y[80:], loss="cross_entropy")
    assert abs(expected["loss"] - h.history["val_loss"][-1]) < 1e-6


def test_scheduler_changes_the_rate():
    X, y = data()
    model = small()
    opt = ln.optim.SGD(model.parameters(), lr=0.1)
    h = model.fit(X, y, epochs=4, optimizer=opt, scheduler=ln.optim.StepLR(opt, step_size=2, gamma=0.1), verbose=0)
    np.testing.assert_allclose(h.history["lr"], [0.1, 0.1, 0.01, 0.01])


def test_fit_checks_its_arguments():
    X, y = data()
    with pytest.raises(ValueError, match="same number of samples"):
        small().fit(X, y[:10], verbose=0)
    with pytest.raises(ValueError, match="with batch_first=True"):
        ln.Sequential(ln.LSTM(2, 4), ln.Linear(4, 1)).fit(X, y, verbose=0)
    with pytest.raises(ValueError, match=r"lengths must have shape \(64,\)"):
        small().fit(X, y, lengths=[3, 4], verbose=0)
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        small().fit(X, y, batch_size=0, verbose=0)
    with pytest.raises(TypeError, match="X must hold numbers"):
        small().fit(X.astype(str), y, verbose=0)


def test_predict_is_batched_in_eval_mode_and_restores_the_mode():
    X, _ = data()
    model = ln.Sequential(ln.LSTM(2, 8, num_layers=2, dropout=0.5, batch_first=True, seed=0), ln.LastTimestep())
    out = model.predict(X)
    np.testing.assert_array_equal(out, model.predict(X, batch_size=7))   # dropout off, deterministic
    assert model.training
