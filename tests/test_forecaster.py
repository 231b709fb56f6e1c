"""The forecaster on real-looking files (issue 23): missing values, time columns, learning
changes and turning them back into levels, the baselines and the line that says when the
model loses to them, forecasts past the end of the file. Models are tiny and trained for a
few epochs: these check the plumbing; examples/real_series.py checks the learning."""
import datetime as dt
import importlib.util
import json
import os
import pathlib
import subprocess
import sys
import warnings

import numpy as np
import pytest

import lstm_native as ln
from lstm_native import io, recipes, tables, transforms

PYTHON_DIR = os.path.dirname(os.path.dirname(os.path.abspath(recipes.__file__)))
EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"


def run_cli(*args, cwd):
    env = dict(os.environ, PYTHONPATH=PYTHON_DIR + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "lstm_native", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)


@pytest.fixture(autouse=True)
def one_thread():
    before = ln.get_num_threads()
    ln.set_num_threads(1)
    yield
    ln.set_num_threads(before)


def write(path, header, rows):
    path.write_text(header + "\n" + "\n".join(",".join(str(c) for c in r) for r in rows) + "\n")
    return path


def trend_series(n=260, seed=0):
    """A positive trending series with an annual cycle (weekly steps) and noise."""
    t = np.arange(n)
    rng = np.random.default_rng(seed)
    return 100 + 0.15 * t + 3 * np.sin(2 * np.pi * t / 52) + 0.1 * rng.standard_normal(n)


def weekly(n, start=dt.date(2001, 1, 6)):
    return [start + dt.timedelta(weeks=i) for i in range(n)]


def train(tmp_path, data_cfg, epochs=3, hidden=8, **training):
    cfg = {"data": dict({"lookback": 12}, **data_cfg), "model": {"hidden_size": hidden},
           "training": dict({"epochs": epochs, "verbose": 0, "lr": 0.01}, **training),
           "output": {"model": "m.npz", "history": "h.json"}}
    (tmp_path / "cfg.json").write_text(json.dumps(cfg))
    lines = []
    result = recipes.train_from_config(tmp_path / "cfg.json", say=lines.append)
    return result, lines


# -- 1. missing values ----------------------------------------------------------------------
def test_na_spellings_are_missing_values_of_a_numeric_column(tmp_path):
    cells = ["1.5", "", "NA", "N/A", "NaN", "null", "None", "-", "?", "#N/A", " na ", "2.5"]
    p = write(tmp_path / "s.csv", "label,value", [(f"x{i}", c) for i, c in enumerate(cells)])
    t = tables.load_table(p)
    assert t.names == ["value"] and t.skipped == {"label": (2, "x0")}
    assert t.values[0, 0] == 1.5 and t.values[-1, 0] == 2.5 and np.isnan(t.values[1:-1, 0]).all()


def test_blank_values_do_not_hide_the_target_column(tmp_path):
    """The issue's first failure: a numeric column with blanks was called non-numeric."""
    dates = weekly(200)
    x = trend_series(200)
    rows = [(d.strftime("%Y%m%d"), "" if i % 17 == 5 else f"{v:.4f}") for i, (d, v) in enumerate(zip(dates, x))]
    write(tmp_path / "s.csv", "date,value", rows)
    result, lines = train(tmp_path, {"path": "s.csv", "target": "value"}, epochs=1)
    assert "missing values: 12 of 200 values in 'value': linearly interpolated" in lines
    assert io.load(tmp_path / "m.npz").metadata["columns"] == ["value"]     # not the date


def _table_with_gaps(tmp_path, time=True):
    rows = [("2020-01-01", "1", "10"), ("2020-01-02", "", "11"), ("2020-01-03", "3", "NA"),
            ("2020-01-05", "", "13"), ("2020-01-06", "6", "14"), ("2020-01-07", "", "15")]
    p = write(tmp_path / "g.csv", "day,a,b" if time else "a,b", rows if time else [r[1:] for r in rows])
    return tables.load_table(p)


@pytest.mark.parametrize("mode", tables.MISSING_MODES)
def test_each_missing_mode(tmp_path, mode):
    t = _table_with_gaps(tmp_path)
    if mode == "error":
        with pytest.raises(tables.DataError, match=r"column 'a' has 3 missing value\(s\).*line\(s\) 3, 5, 7"):
            tables.fill_missing(t, [0, 1], mode)
        return
    out, message = tables.fill_missing(t, [0, 1], mode)
    assert message.startswith("4 of 12 values (3 in 'a', 1 in 'b')")
    if mode == "interpolate":          # linear in time: 01-05 is 4 days after 01-01 between 3 (01-03) and 6 (01-06)
        np.testing.assert_allclose(out.values[:, 0], [1, 2, 3, 5, 6, 6])
        np.testing.assert_allclose(out.values[:, 1], [10, 11, 11 + 2 / 3, 13, 14, 15])
        assert "linearly interpolated" in message
    elif mode == "ffill":
        np.testing.assert_allclose(out.values[:, 0], [1, 1, 3, 3, 6, 6])
        np.testing.assert_allclose(out.values[:, 1], [10, 11, 11, 13, 14, 15])
    else:                               # drop: rows 1 and 5 remain, with their lines and times
        np.testing.assert_allclose(out.values[:, :2], [[1, 10], [6, 14]])
        assert out.lines.tolist() == [2, 6] and "dropped 4 row(s)" in message
        assert tables.format_time(out.time, out.time_kind, out.time_style) == ["2020-01-01", "2020-01-06"]
    assert np.isnan(t.values[1, 0])          # the input table is not modified


def test_interpolation_without_a_time_index_is_by_row(tmp_path):
    out, _ = tables.fill_missing(_table_with_gaps(tmp_path, time=False), [0], "interpolate")
    np.testing.assert_allclose(out.values[:, 0], [1, 2, 3, 4.5, 6, 6])


def test_missing_error_mode_through_the_command(tmp_path):
    rows = [(f"2020-01-{d:02d}", "" if d in (4, 9) else d) for d in range(1, 29)]
    write(tmp_path / "s.csv", "date,load", rows)
    (tmp_path / "cfg.json").write_text(json.dumps({"data": {"path": "s.csv", "lookback": 3, "missing": "error"}}))
    proc = run_cli("train", "cfg.json", cwd=tmp_path)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert "column 'load' has 2 missing value(s)" in proc.stderr and "line(s) 5, 10" in proc.stderr


def test_a_column_without_values_is_named(tmp_path):
    write(tmp_path / "s.csv", "a,b", [(i, "NA") for i in range(40)])
    (tmp_path / "cfg.json").write_text(json.dumps({"data": {"path": "s.csv", "target": "b", "columns": ["a", "b"]}}))
    with pytest.raises(recipes.ConfigError, match="data.columns: column 'b' of .* has no values"):
        recipes.train_from_config(tmp_path / "cfg.json", say=lambda *a: None)


# -- 2. time columns ------------------------------------------------------------------------
FORMATS = [
    ("iso", "date", [f"2021-03-{d:02d}" for d in range(1, 9)], "1 day"),
    ("iso", "when", [f"2021-03-01T{h:02d}:00:00" for h in range(8)], "1 hour"),
    ("iso", "when", [f"2021-03-01 {h:02d}:30" for h in range(8)], "1 hour"),
    ("iso", "month", [f"20{y:02d}-{m:02d}" for y in (20, 21) for m in (1, 4, 7, 10)], "3 months (quarterly)"),
    ("yyyymmdd", "d", [(dt.date(2021, 1, 2) + dt.timedelta(weeks=i)).strftime("%Y%m%d") for i in range(8)], "1 week"),
    ("unix", "ts", [str(1_600_000_000 + 3600 * i) for i in range(8)], "1 hour"),
    ("unix", "x", [str(1_600_000_020 + 900 * i) for i in range(8)], "15 minutes"),   # named plainly, whole minutes
    ("year", "Year", [str(1990 + i) for i in range(8)], "1 year"),
]


@pytest.mark.parametrize("kind, name, stamps, step", FORMATS)
def test_time_columns_are_recognised_and_not_features(tmp_path, kind, name, stamps, step):
    p = write(tmp_path / "s.csv", f"{name},load,temp", [(s, i, 2 * i) for i, s in enumerate(stamps)])
    t = tables.load_table(p)
    assert t.time_name == name and t.time_kind == kind
    assert tables.format_time(t.time, t.time_kind, t.time_style) == stamps       # written back as read
    cols, target = recipes.select_columns(t.names, {"columns": None, "target": None}, p, t.time_name)
    assert [t.names[c] for c in cols] == ["load", "temp"] and target == 0
    note = tables.spacing_note(t)
    assert note == f"time index: column {name!r} ({kind}), {stamps[0]} .. {stamps[-1]}, step {step}"
    # listed in data.columns, the time column is a feature after all
    cols, _ = recipes.select_columns(t.names, {"columns": ["load", name], "target": "load"}, p, t.time_name)
    assert [t.names[c] for c in cols] == ["load", name]


def test_numbers_that_only_look_like_times_stay_features(tmp_path):
    # increasing integers in the Unix range but not whole minutes, nor named like a time; years in a
    # column not named year; 8-digit numbers that are not dates
    rows = [(300_000_007 + 13 * i, 1990 + i, 20219999 + i, i) for i in range(10)]
    t = tables.load_table(write(tmp_path / "s.csv", "count,y,code,v", rows))
    assert t.time is None and t.names == ["count", "y", "code", "v"]


def test_data_time_names_the_column_or_turns_detection_off(tmp_path):
    rows = [(f"2021-01-{d:02d}", 10 * d, d) for d in range(1, 11)]
    p = write(tmp_path / "s.csv", "date,t,v", rows)
    assert tables.load_table(p).time_name == "date"
    t = tables.load_table(p, time="t")                                    # increasing numbers: an index
    assert t.time_name == "t" and t.time_kind == "number" and tables.spacing_note(t).endswith("step 10")
    assert tables.load_table(p, time=False).time is None
    with pytest.raises(tables.DataError, match="data.time: column 'v' .* does not read as time stamps"):
        write(tmp_path / "u.csv", "date,v", [("2021-01-01", "a"), ("2021-01-02", "b")])
        tables.load_table(tmp_path / "u.csv", time="v")


def test_irregular_spacing_is_reported_in_one_line(tmp_path):
    days = [1, 2, 3, 4, 8, 9, 10, 12]
    t = tables.load_table(write(tmp_path / "s.csv", "date,v", [(f"2021-05-{d:02d}", d) for d in days]))
    note = tables.spacing_note(t)
    assert "\n" not in note and "irregular spacing, 2 of 7 steps differ from the usual 1 day" in note
    assert "largest gap before line 6" in note


def test_rows_in_reverse_time_order_are_reversed(tmp_path):
    t = tables.load_table(write(tmp_path / "s.csv", "date,v", [(f"2021-05-{d:02d}", d) for d in range(9, 0, -1)]))
    assert t.values[:, 0].tolist() == list(range(1, 10)) and "reverse time order" in t.notes[0]


def test_month_end_and_calendar_steps_continue_into_the_future():
    t = np.array(["2020-11-30", "2020-12-31", "2021-01-31", "2021-02-28"], dtype="datetime64[s]")
    step = tables.time_step(t, "iso")
    assert step == ("months", 1)
    got = tables.format_time(tables.future_times(t, "iso", step, 3), "iso", "date")
    assert got == ["2021-03-31", "2021-04-30", "2021-05-31"]


# -- 3. transforms --------------------------------------------------------------------------
@pytest.mark.parametrize("kind", transforms.TRANSFORMS)
def test_each_transform_round_trips_multi_step_paths(kind):
    x = trend_series(60)
    z = transforms.forward(x, kind)
    origins, H = np.arange(5, 50), 4
    future_changes = z[origins[:, None] + np.arange(1, H + 1)]
    back = transforms.invert(x[origins], future_changes, kind)     # accumulated from the last level
    np.testing.assert_allclose(back, x[origins[:, None] + np.arange(1, H + 1)], rtol=1e-12)


def test_adf_statistic_matches_statsmodels():
    from statsmodels.tsa.stattools import adfuller
    rng = np.random.default_rng(1)
    for x in (np.cumsum(rng.standard_normal(300)), rng.standard_normal(200),
              np.sin(np.arange(400) / 5) + 0.3 * rng.standard_normal(400)):
        ours, lags = transforms.adf_tstat(x)
        with warnings.catch_warnings():                # its return type is changing; the tuple is fine
            warnings.simplefilter("ignore", FutureWarning)
            ref = adfuller(x, regression="c", autolag="BIC")
        assert lags == ref[2] and ours == pytest.approx(ref[0], rel=1e-8)


def test_the_auto_rule():
    rng = np.random.default_rng(0)
    ar1 = np.zeros(500)
    for i in range(1, 500):
        ar1[i] = 0.7 * ar1[i - 1] + rng.standard_normal()
    assert transforms.choose(ar1)[0] == "none"
    assert transforms.choose(np.cumsum(rng.standard_normal(500)))[0] == "diff"              # random walk
    assert transforms.choose(np.cumsum(rng.standard_normal(500)) + 0.1 * np.arange(500))[0] == "diff"
    assert transforms.choose(50 * np.exp(0.01 * np.arange(300) + 0.02 * rng.standard_normal(300)))[0] == "log_diff"


def test_season_detection_and_seasonal_naive():
    rng = np.random.default_rng(0)
    x = np.sin(2 * np.pi * np.arange(400) / 12) + 0.1 * rng.standard_normal(400)
    assert transforms.detect_season(np.diff(x)) == 12
    assert transforms.detect_season(np.diff(np.cumsum(rng.standard_normal(400)))) == 0
    levels = np.arange(30.0)
    np.testing.assert_array_equal(transforms.seasonal_naive(levels, [20], 5, 3), [[18, 19, 20, 18, 19]])


@pytest.mark.parametrize("kind", transforms.TRANSFORMS)
def test_train_and_predict_agree_in_original_units(tmp_path, kind):
    """For each transform, horizon 3: the test MSE train reports is the one predict's level
    forecasts give on the same windows, and the forecasts are in the series' units."""
    x = trend_series(240)
    write(tmp_path / "s.csv", "date,value", [(d.isoformat(), f"{v:.6f}") for d, v in zip(weekly(240), x)])
    result, lines = train(tmp_path, {"path": "s.csv", "transform": kind, "horizon": 3}, epochs=2)
    assert f"transform: {kind} (" in "\n".join(lines)
    model = io.load(tmp_path / "m.npz")
    rows, pred = recipes.predict_file(model, tmp_path / "s.csv")
    assert rows[0] == 11 + (kind != "none") and pred.shape == (len(rows), 3)
    origins = np.arange(12, 240 - 3)
    test = origins[len(origins) - int(round(len(origins) * 0.15)):]
    got = pred[np.searchsorted(rows, test)]
    truth = x[test[:, None] + np.arange(1, 4)]
    assert np.mean((got - truth) ** 2) == pytest.approx(result["test_mse"], rel=1e-4)
    if kind != "none":          # changes keep even a 2-epoch model near the level
        assert np.max(np.abs(got - truth)) < 10


def test_auto_learns_changes_on_a_trend_and_beats_naive(tmp_path):
    x = trend_series(400)
    write(tmp_path / "s.csv", "date,value", [(d.strftime("%Y%m%d"), f"{v:.5f}") for d, v in zip(weekly(400), x)])
    result, lines = train(tmp_path, {"path": "s.csv"}, epochs=30, hidden=16)
    text = "\n".join(lines)
    assert "transform: diff (auto: ADF t = " in text and "the model learns changes" in text
    assert "season: 52 steps" in text
    assert result["test_mse"] < 0.5 * result["naive_test_mse"], text   # measured 0.016 vs 0.098 (seeds 0-2)


# -- 4. baselines and honesty ---------------------------------------------------------------
def test_losing_to_a_baseline_is_said_in_one_line_with_a_fix(tmp_path):
    """Levels of a trending series: the model cannot follow the trend into the test years."""
    x = trend_series(400)
    write(tmp_path / "s.csv", "date,value", [(d.isoformat(), f"{v:.5f}") for d, v in zip(weekly(400), x)])
    result, lines = train(tmp_path, {"path": "s.csv", "transform": "none"}, epochs=3)
    scores = next(line for line in lines if line.startswith("test MSE"))
    assert "| naive (last value) " in scores and "| seasonal naive (52) " in scores
    verdict = [line for line in lines if line.startswith("the model is worse than")]
    assert len(verdict) == 1 and 'likeliest fix: set data.transform = "diff"' in verdict[0]
    assert result["best_baseline"] == "naive" and result["vs_best_baseline"] < 1
    # the figures stay with the model and in the history file
    history = json.loads((tmp_path / "h.json").read_text())
    for key in ("test_mse", "naive_test_mse", "seasonal_naive_test_mse", "season", "transform", "advice"):
        assert history["test"][key] == result[key]
    proc = run_cli("info", "m.npz", cwd=tmp_path)
    assert proc.returncode == 0
    assert f"seasonal naive (52) {result['seasonal_naive_test_mse']:.6g}" in proc.stdout
    assert 'likeliest fix: set data.transform = "diff"' in proc.stdout and "transform none" in proc.stdout


# -- 6. forecasts past the end --------------------------------------------------------------
def test_future_forecasts_iterate_and_carry_time_stamps(tmp_path):
    x = trend_series(200)
    write(tmp_path / "s.csv", "date,value", [(d.isoformat(), f"{v:.5f}") for d, v in zip(weekly(200), x)])
    train(tmp_path, {"path": "s.csv", "transform": "diff", "horizon": 2}, epochs=2)
    proc = run_cli("predict", "m.npz", "s.csv", "--future", "5", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    last = weekly(200)[-1]
    assert lines[0] == "step,date,value" and len(lines) == 6
    expected = [(last + dt.timedelta(weeks=k)).isoformat() for k in range(1, 6)]
    assert [line.split(",")[1] for line in lines[1:]] == expected
    got = np.array([float(line.split(",")[2]) for line in lines[1:]])
    # the first two steps are the model's horizon from the last window, the rest iterate on them
    model = io.load(tmp_path / "m.npz")
    rows, pred = recipes.predict_file(model, tmp_path / "s.csv")
    np.testing.assert_allclose(got[:2], pred[-1], rtol=1e-7)
    assert np.all(np.abs(got - x[-1]) < 10)
    # and the windows output carries the window ends' stamps
    proc = run_cli("predict", "m.npz", "s.csv", cwd=tmp_path)
    assert proc.stdout.splitlines()[0] == "window_end_row,window_end_time,forecast_t+1,forecast_t+2"
    assert proc.stdout.splitlines()[-1].startswith(f"199,{last.isoformat()},")


def test_future_with_extra_inputs_stops_at_the_horizon(tmp_path):
    t = np.arange(150)
    write(tmp_path / "s.csv", "a,b", [(np.sin(i / 4), np.cos(i / 4)) for i in t])
    train(tmp_path, {"path": "s.csv", "horizon": 2}, epochs=1)
    model = io.load(tmp_path / "m.npz")
    stamps, got = recipes.forecast_future(model, tmp_path / "s.csv", 2)
    assert stamps is None and got.shape == (2,)
    with pytest.raises(recipes.ConfigError, match="cannot be iterated; ask for at most 2"):
        recipes.forecast_future(model, tmp_path / "s.csv", 3)


# -- 5. real series -------------------------------------------------------------------------
def test_real_series_quick_mode():
    """The default config on two real series from statsmodels (examples/real_series.py)."""
    spec = importlib.util.spec_from_file_location("examples_real_series", EXAMPLES / "real_series.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    r = module.run(quick=True)
    co2, sun = r["co2"], r["sunspots"]
    # the series: 59 blanks, YYYYMMDD dates, a trend; learned as changes
    assert co2["missing_values"] == 59 and co2["transform"] == "diff" and co2["season"] == 52
    assert any("time index: column 'date' (yyyymmdd)" in line for line in co2["log"])
    assert co2["test_mse"] < 0.75 * co2["naive_test_mse"]        # measured 0.58-0.61x (seeds 0-2)
    assert co2["test_mse"] < 0.1 * co2["seasonal_naive_test_mse"]
    # a stationary cycle: levels, the ~11-year cycle found
    assert sun["transform"] == "none" and sun["season"] == 11
    assert sun["test_mse"] < 0.5 * sun["naive_test_mse"]         # measured 0.28-0.32x (seeds 0-2)
