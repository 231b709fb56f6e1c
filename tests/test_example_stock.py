"""examples/stock_forecast.py learns the momentum its generated series has, read from a CSV."""
import importlib.util
import os

import pytest

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")


def load_example(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(EXAMPLES, name + ".py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_stock_example_beats_the_random_walk_on_momentum_prices(tmp_path):
    stock = load_example("stock_forecast")
    dates, closes = stock.generate_prices(1500, seed=0)
    path = tmp_path / "prices.csv"
    with open(path, "w") as f:
        f.write("Date,Open,Close\n")
        for d, c in zip(dates, closes):
            f.write(f"{d},{c:.4f},{c:.4f}\n")
    r = stock.run(quick=True, seed=0, csv_path=str(path))
    # AR(1) returns with phi 0.4: at best 1 - 0.16 = 0.84 of the random walk's MSE
    assert r["mse_ratio"] < 0.95, r
    assert r["direction_accuracy"] > 0.55, r
    assert r["price_rmse_model"] < r["price_rmse_random_walk"], r


def test_stock_example_rejects_a_csv_without_close(tmp_path):
    stock = load_example("stock_forecast")
    path = tmp_path / "bad.csv"
    path.write_text("date,open\n2020-01-01,3\n")
    with pytest.raises(ValueError, match="'date' and 'close'"):
        stock.load_prices(str(path))
