"""`lstm-native train` with its default config on real series, beside the naive forecasts.

Each series ships inside statsmodels (BSD-3-Clause; `pip install statsmodels`), as
``statsmodels.datasets.<name>``; the data themselves are public domain (each dataset's COPYRIGHT
note; sources: Scripps/CDIAC, NOAA, FRED, Eurostat, Cobb 1978 for the Nile). The script
writes each one to a CSV the way such files come (a date column in the format given below,
blanks where the source has gaps), writes a config naming only the file (plus the output paths
and a silent progress bar), runs ``train_from_config`` and reads the figures it prints and saves: the transform "auto" chose, the test MSE (last 15% of windows, in
the series' own units) and those of the naive and seasonal-naive forecasts.

    python examples/real_series.py                 # all six series (about 15 s on one thread)
    python examples/real_series.py --quick         # co2 and sunspots (CI)
    python examples/real_series.py --series nile,elnino --verbose 1

The figures (seed 0) are in examples/README.md.
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

import numpy as np

import lstm_native as ln
from lstm_native import recipes


def _statsmodels(name):
    try:
        import importlib
        return importlib.import_module(f"statsmodels.datasets.{name}").load_pandas().data
    except ImportError:
        raise ImportError("the real series ship inside statsmodels: pip install statsmodels") from None


def _iso(stamps, fmt):
    return [s.strftime(fmt) for s in stamps]


def co2():
    """Weekly CO2 at Mauna Loa (ppm), 1958-2001: trend + annual cycle, 59 weeks blank (Scripps/CDIAC)."""
    df = _statsmodels("co2")
    return "date", _iso(df.index, "%Y%m%d"), "co2", df["co2"].to_numpy()


def elnino():
    """Monthly sea surface temperature off South America (deg C), 1950-2010: annual cycle."""
    df = _statsmodels("elnino")
    months = [f"{int(y)}-{m:02d}" for y in df["YEAR"] for m in range(1, 13)]
    return "month", months, "sst", df.iloc[:, 1:].to_numpy().ravel()


def sunspots():
    """Yearly sunspot numbers, 1700-2008: an ~11-year cycle of varying height."""
    df = _statsmodels("sunspots")
    return "year", [str(int(y)) for y in df["YEAR"]], "sunspots", df["SUNACTIVITY"].to_numpy()


def realgdp():
    """US real GDP (billions of 2005 dollars), quarterly 1959-2009: growth (macrodata)."""
    df = _statsmodels("macrodata")
    dates = [f"{int(y)}-{3 * int(q) - 2:02d}-01" for y, q in zip(df["year"], df["quarter"])]
    return "date", dates, "realgdp", df["realgdp"].to_numpy()


def elec_equip():
    """Euro-area electrical equipment orders (index), monthly 1995-2016: cycle and the 2009 drop."""
    df = _statsmodels("elec_equip")
    return "date", _iso(df.index, "%Y-%m-%d"), "orders", df.iloc[:, 0].to_numpy()


def nile():
    """Yearly Nile flow at Aswan (10^8 m^3), 1871-1970: 100 values, a level shift in 1899."""
    df = _statsmodels("nile")
    return "year", [str(int(y)) for y in df["year"]], "volume", df["volume"].to_numpy()


SERIES = {f.__name__: f for f in (co2, elnino, sunspots, realgdp, elec_equip, nile)}
QUICK = ("co2", "sunspots")


def write_csv(path, time_name, stamps, value_name, values):
    with open(path, "w", encoding="utf-8") as f:
        f.write(f"{time_name},{value_name}\n")
        for s, v in zip(stamps, values):
            f.write(f"{s},{'' if not np.isfinite(v) else repr(float(v))}\n")


def train_one(name, folder, seed=0, verbose=0, overrides=None):
    time_name, stamps, value_name, values = SERIES[name]()
    csv_path = os.path.join(folder, f"{name}.csv")
    write_csv(csv_path, time_name, stamps, value_name, values)
    cfg = os.path.join(folder, f"{name}.json")
    config = {"data": {"path": f"{name}.csv"}, "training": {"verbose": 0, "seed": seed},
              "output": {"model": f"{name}.npz", "history": f"{name}.history.json"}}
    for key, value in (overrides or {}).items():          # "section.field": value
        section, field = key.split(".")
        config.setdefault(section, {})[field] = value
    with open(cfg, "w", encoding="utf-8") as f:
        json.dump(config, f)
    lines = []
    say = (lambda msg: (lines.append(msg), print(f"  {msg}"))) if verbose else lines.append
    start = time.perf_counter()
    r = recipes.train_from_config(cfg, say=say)
    r.update(series=name, length=len(values), missing_values=int(np.sum(~np.isfinite(values))),
             seconds=time.perf_counter() - start, log=lines)
    return r


def run(quick: bool = False, seed: int = 0, series=None, verbose: int = 0, overrides=None) -> dict:
    """Trains each series (default: all; quick: those in QUICK) with the default config,
    changed only by ``overrides`` ({"training.epochs": 50, ...}); returns each one's figures."""
    names = list(series or (QUICK if quick else SERIES))
    out = {}
    with tempfile.TemporaryDirectory() as folder:
        for name in names:
            if verbose:
                print(name)
            out[name] = train_one(name, folder, seed=seed, verbose=verbose, overrides=overrides)
    out["beats_naive"] = sum(out[n]["test_mse"] < out[n]["naive_test_mse"] for n in names)
    out["series"] = names
    return out


def table(r) -> str:
    rows = ["| series | length (blank) | transform (auto) | season | test MSE | naive | seasonal naive "
            "| vs best baseline | time |", "|---|---|---|---|---|---|---|---|---|"]
    for n in r["series"]:
        s = r[n]
        seasonal = f"{s['seasonal_naive_test_mse']:.4g}" if "seasonal_naive_test_mse" in s else "-"
        rows.append(f"| {n} | {s['length']} ({s['missing_values']}) | {s['transform']} | {s['season'] or '-'} | "
                    f"{s['test_mse']:.4g} | {s['naive_test_mse']:.4g} | {seasonal} | "
                    f"{s['vs_best_baseline']:.2f}x | {s['seconds']:.0f} s |")
    return "\n".join(rows)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help=f"{' and '.join(QUICK)} only")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--series", default=None, help=f"comma-separated, of {', '.join(SERIES)}")
    p.add_argument("--threads", type=int, default=0, help="kernel threads (0: the library's default)")
    p.add_argument("--verbose", type=int, default=0, help="1: what train prints, per series")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.FIELD=JSON",
                   help="change the default config, e.g. --set training.epochs=60 --set data.transform='\"diff\"'")
    a = p.parse_args(argv)
    ln.set_num_threads(a.threads)
    overrides = {k: json.loads(v) for k, v in (s.split("=", 1) for s in a.set)}
    r = run(quick=a.quick, seed=a.seed, series=a.series.split(",") if a.series else None, verbose=a.verbose,
            overrides=overrides)
    print(table(r))
    print(f"\nthe default config beats the naive forecast on {r['beats_naive']} of {len(r['series'])} series "
          f"(\"vs best baseline\" > 1: the model's test MSE is that many times lower)")
    return r


if __name__ == "__main__":
    main()
