"""The lstm-native command: demo, train -> predict round trip, info, one-line errors."""
import json
import subprocess
import sys

import numpy as np
import pytest

from lstm_native import cli, data, io, recipes
from conftest import child_env



def run_cli(*args, cwd):
    env = child_env()
    return subprocess.run([sys.executable, "-m", "lstm_native", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)


def test_demo_beats_the_naive_baseline_and_writes_plots(tmp_path):
    pytest.importorskip("matplotlib")
    from lstm_native.demo import run_demo
    result = run_demo(out_dir=str(tmp_path), verbose=0, say=lambda *a: None)
    assert result["improvement"] >= 5.0, result
    assert result["test_mse"] < 2 * result["noise_floor_mse"], result
    for key in ("loss_png", "forecast_png"):
        with open(result[key], "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_demo_runs_as_a_command(tmp_path):
    proc = run_cli("demo", "--quiet", "--epochs", "3", "--no-plots", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "naive (last value)" in proc.stdout and "test MSE" in proc.stdout


def write_series_csv(path, n=900):
    t = np.arange(n)
    load = np.sin(2 * np.pi * t / 24) + 0.05 * np.random.default_rng(0).standard_normal(n)
    temp = np.cos(2 * np.pi * t / 24)
    with open(path, "w") as f:
        f.write("date,load,temp\n")
        for i in range(n):
            f.write(f"day{i},{load[i]:.6f},{temp[i]:.6f}\n")


CONFIG = {
    "data": {"path": "series.csv", "columns": ["load", "temp"], "target": "load", "lookback": 24, "horizon": 2,
             "scale": "minmax"},
    "model": {"cell": "gru", "hidden_size": 24},
    "training": {"epochs": 8, "lr": 0.01, "verbose": 0, "batch_size": 64},
    "output": {"model": "out/model.npz", "history": "out/history.json"},
}


def test_train_predict_info_round_trip(tmp_path):
    write_series_csv(tmp_path / "series.csv")
    (tmp_path / "cfg.json").write_text(json.dumps(CONFIG))
    proc = run_cli("train", "cfg.json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    model_path = tmp_path / "out" / "model.npz"
    history = json.loads((tmp_path / "out" / "history.json").read_text())
    assert len(history["history"]["loss"]) >= 1
    meta = io.load(model_path).metadata
    assert meta["test"]["test_mse"] < meta["test"]["naive_test_mse"] / 3      # it learned

    proc = run_cli("predict", "out/model.npz", "series.csv", "--out", "pred.csv", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = (tmp_path / "pred.csv").read_text().splitlines()
    assert lines[0] == "window_end_row,forecast_t+1,forecast_t+2"
    assert len(lines) == 1 + 900 - 24 + 1
    # the CLI's forecasts equal the library's on the same windows, in the data's units
    model = io.load(model_path)
    rows, pred = recipes.predict_file(model, tmp_path / "series.csv")
    got = np.loadtxt(tmp_path / "pred.csv", delimiter=",", skiprows=1)
    np.testing.assert_array_equal(got[:, 0], rows)
    np.testing.assert_allclose(got[:, 1:], pred, rtol=1e-6, atol=1e-6)
    # and they track the series: forecast t+1 of window ending at row r is row r+1's load
    values, _ = recipes.read_table(tmp_path / "series.csv")
    err = np.mean((got[:-1, 1] - values[rows[:-1] + 1, 0]) ** 2)
    assert err < 0.02

    proc = run_cli("info", "out/model.npz", cwd=tmp_path)
    assert proc.returncode == 0 and "GRU(input_size=2, hidden_size=24" in proc.stdout
    assert "lookback 24, horizon 2" in proc.stdout


def test_train_on_npy_with_toml(tmp_path):
    np.save(tmp_path / "s.npy", data.noisy_sine(600, seed=3))
    (tmp_path / "c.toml").write_text('[data]\npath = "s.npy"\nlookback = 20\n[training]\nepochs = 2\nverbose = 0\n')
    assert recipes.train_from_config(tmp_path / "c.toml", say=lambda *a: None)["epochs_run"] == 2
    rows, pred = recipes.predict_file(io.load(tmp_path / "model.npz"), tmp_path / "s.npy")
    assert pred.shape == (600 - 20 + 1, 1) and rows[0] == 19


@pytest.mark.parametrize("change, field", [
    ({"training": {"epochs": 0}}, "training.epochs"),
    ({"training": {"epoch": 3}}, "training.epoch: unknown field"),
    ({"model": {"cell": "transformer"}}, "model.cell"),
    ({"model": {"zoneout": 1.0}}, "model.zoneout"),
    ({"model": {"recurrent_dropout": -0.1}}, "model.recurrent_dropout"),
    ({"model": {"cell": "lstm", "proj_size": 64, "hidden_size": 32}}, "model.proj_size: must be below hidden_size"),
    ({"model": {"cell": "gru", "proj_size": 4}}, "model.proj_size: only a plain lstm"),
    ({"model": {"cell": "rnn", "nonlinearity": "sigmoid"}}, "model.nonlinearity"),
    ({"model": {"cell": "gru", "forget_bias": 1.0}}, "model.forget_bias"),
    ({"model": {"cell": "rnn", "layer_norm": True}}, "model.layer_norm"),
    ({"data": {"lookback": "ten"}}, "data.lookback"),
    ({"data": {"target": "price"}}, "data.target: column 'price'"),
    ({"data": {"columns": ["load", 7]}}, "data.columns"),
    ({"data": {"path": "missing.csv"}}, "missing.csv: no such data file"),
    ({"data": {"val": 0.6, "test": 0.5}}, "data.val"),
    ({"data": {"lookback": 5000}}, "data.lookback"),
    ({"optimiser": {}}, "optimiser: unknown section"),
])
def test_bad_configs_give_one_line_errors(tmp_path, change, field):
    write_series_csv(tmp_path / "series.csv", n=200)
    cfg = json.loads(json.dumps(CONFIG))
    for section, values in change.items():
        cfg.setdefault(section, {}).update(values)
    (tmp_path / "cfg.json").write_text(json.dumps(cfg))
    proc = run_cli("train", "cfg.json", cwd=tmp_path)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and field in lines[0], proc.stderr


@pytest.mark.parametrize("content, fragment", [
    ("date,load\nmon,x\n", "no numeric columns"),
    ("load,temp\n1,2\n3\n", "line 3 has 1 fields"),
    ("load,temp\n1,inf\n", "infinite values, at line(s) 2"),     # NaN is a missing value now
])
def test_bad_data_files_give_one_line_errors(tmp_path, content, fragment):
    (tmp_path / "bad.csv").write_text(content)
    cfg = {"data": {"path": "bad.csv", "lookback": 2}}
    (tmp_path / "cfg.json").write_text(json.dumps(cfg))
    proc = run_cli("train", "cfg.json", cwd=tmp_path)
    assert proc.returncode == 2 and fragment in proc.stderr and "bad.csv" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_bad_files_for_predict_and_info(tmp_path):
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    for args in (("info", "nothere.npz"), ("info", "junk.npz"), ("predict", "junk.npz", "x.csv")):
        proc = run_cli(*args, cwd=tmp_path)
        assert proc.returncode == 2 and args[1] in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    (tmp_path / "cfg.toml").write_text("[data\n")
    proc = run_cli("train", "cfg.toml", cwd=tmp_path)
    assert proc.returncode == 2 and "cfg.toml: cannot parse" in proc.stderr
    proc = run_cli("train", "cfg.yaml", cwd=tmp_path)
    assert proc.returncode == 2 and "cfg.yaml" in proc.stderr


SUBCOMMANDS = ["demo", "train", "predict", "info", "export", "bench"]


@pytest.mark.parametrize("command", SUBCOMMANDS + [None])
def test_every_help_works(command, capsys):
    with pytest.raises(SystemExit) as stop:
        cli.main(([command] if command else []) + ["--help"])
    assert stop.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: lstm-native" + (f" {command}" if command else ""))


@pytest.mark.parametrize("args", [
    [], ["frob"], ["demo", "--epochs", "-3"], ["demo", "--epochs", "x"], ["demo", "--bad"],
    ["train"], ["train", "a.toml", "extra"], ["predict", "model.npz"], ["predict", "m", "d", "--oops"], ["info"],
    ["export", "model.npz"], ["export", "m", "o", "--opset", "x"], ["export", "missing.npz", "o.onnx"],
    ["bench", "--reps", "x"], ["bench", "--reps", "0"], ["bench", "--threads", "-1"], ["bench", "--nonsense"], ["bench", "--shapes", "S9"],
    ["bench", "--scaling", "--thread-counts", "0"],
])
def test_bad_arguments_exit_2_with_one_line(args, tmp_path):
    proc = run_cli(*args, cwd=tmp_path)
    assert proc.returncode == 2, (args, proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lstm-native") and ": error: " in lines[0], proc.stderr


def test_bench_passes_every_option_through(tmp_path):
    out, js = tmp_path / "t.md", tmp_path / "t.json"
    proc = run_cli("bench", "--shapes", "S1", "--reps", "2", "--threads", "1", "--no-memory", "--no-stream",
                   "--no-quant", "--out", str(out), "--json", str(js), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "| S1 | LSTM 16 20 1 64 1 |" in out.read_text() and "S1" in json.loads(js.read_text())
    proc = run_cli("bench", "--scaling", "--shapes", "S1", "--thread-counts", "1", "--reps", "2", "--out", str(out),
                   cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert [line.split("|")[2].strip() for line in out.read_text().splitlines() if line.startswith("| S1 |")] == ["1"]
