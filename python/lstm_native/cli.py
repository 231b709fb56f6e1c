"""The ``lstm-native`` command (also ``python -m lstm_native``).

    lstm-native demo                       forecast a noisy sine wave, print errors, write 2 PNGs
    lstm-native train CONFIG.toml|json     train a forecaster on a CSV/NPY file (see recipes.py)
    lstm-native predict MODEL DATA         forecasts from every window of DATA (CSV to stdout or --out)
    lstm-native predict MODEL DATA --future N   the N steps after the end of DATA
    lstm-native info MODEL                 architecture, parameters, training summary
    lstm-native export MODEL OUT.onnx      the model as an ONNX graph (--lengths, --step; needs onnx)
    lstm-native bench [...]                the PyTorch comparison (needs torch)

Errors print one line naming the field or file and exit with status 2.
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np

from ._argparse import OneLineParser, positive_int


def _demo(args) -> int:
    from .demo import run_demo
    result = run_demo(epochs=args.epochs, out_dir=args.out_dir, plots=not args.no_plots, seed=args.seed,
                      verbose=0 if args.quiet else 1)
    return 0 if np.isfinite(result["test_mse"]) else 1


def _train(args) -> int:
    from .recipes import train_from_config
    train_from_config(args.config)
    return 0


def _load_model(path):
    from .io import load
    try:
        return load(path)
    except FileNotFoundError:
        raise CommandError(f"{path}: no such model file") from None
    except (ValueError, KeyError) as exc:
        raise CommandError(f"{path}: not a usable lstm_native model ({str(exc).splitlines()[0]})") from None


def _predict(args) -> int:
    from .recipes import forecast_future, predict_table
    model = _load_model(args.model)
    say = lambda msg: print(msg, file=sys.stderr)   # noqa: E731  (stdout may be the forecasts)
    if args.future is not None:
        stamps, pred = forecast_future(model, args.data, args.future, say=say)
        meta = model.metadata
        time_name = meta["time"]["name"] if meta.get("time") else None
        header = ["step"] + ([time_name] if stamps else []) + [meta["columns"][meta["target"]]]
        cells = [[str(i + 1)] + ([stamps[i]] if stamps else []) + [f"{v:.9g}"] for i, v in enumerate(pred)]
    else:
        rows, pred, stamps = predict_table(model, args.data, say=say)
        header = ["window_end_row"] + (["window_end_time"] if stamps else []) + \
            [f"forecast_t+{h + 1}" for h in range(pred.shape[1])]
        cells = [[str(r)] + ([stamps[i]] if stamps else []) + [f"{v:.9g}" for v in p]
                 for i, (r, p) in enumerate(zip(rows, pred))]
    if args.out and args.out.endswith(".npy"):
        np.save(args.out, pred)
    else:
        lines = [",".join(header)] + [",".join(c) for c in cells]
        text = "\n".join(lines) + "\n"
        if args.out:
            with open(args.out, "w", encoding="utf-8") as f:
                f.write(text)
        else:
            sys.stdout.write(text)
    if args.out:
        print(f"wrote {len(pred)} forecasts to {args.out}", file=sys.stderr)
    return 0


def _info(args) -> int:
    model = _load_model(args.model)
    print(f"model file: {args.model} ({os.path.getsize(args.model) / 1024:.1f} KiB)")
    print(model)
    print(f"parameters: {model.num_parameters():,}")
    for name, p in model.named_parameters():
        print(f"  {name:32s} {str(p.array.shape):16s} {p.array.dtype}")
    history = getattr(model, "history", None)
    if history is not None and history.epoch:
        last = {k: v[-1] for k, v in history.history.items()}
        print(f"trained {len(history.epoch)} epochs; last: " + ", ".join(f"{k} {v:.6g}" for k, v in last.items()
                                                                         if isinstance(v, (int, float))))
    meta = getattr(model, "metadata", None)
    if isinstance(meta, dict) and meta.get("kind") == "forecaster":
        print(f"forecaster: columns {meta['columns']}, target {meta['columns'][meta['target']]!r}, "
              f"lookback {meta['lookback']}, horizon {meta['horizon']}, trained on {meta['trained_on']}")
        if meta.get("transform"):
            time = meta.get("time") or {}
            print(f"transform {meta['transform']}, missing values: {meta.get('missing')}, time index: "
                  + (f"{time['name']!r} ({time['kind']})" if time else "none"))
        test = meta.get("test", {})
        if test.get("test_mse") is not None:
            line = f"test MSE {test['test_mse']:.6g} (naive {test['naive_test_mse']:.6g}"
            if test.get("seasonal_naive_test_mse") is not None:
                line += f", seasonal naive ({test['season']}) {test['seasonal_naive_test_mse']:.6g}"
            print(line + ")")
            if test.get("advice"):
                print(f"worse than the {test['best_baseline'].replace('_', '-')} forecast; likeliest fix: {test['advice']}")
    return 0


def _export(args) -> int:
    model = _load_model(args.model)
    from . import onnx as ln_onnx
    try:
        ln_onnx.export(model, args.out, lengths=args.lengths, opset=args.opset, step=args.step)
    except ImportError as exc:                 # onnx not installed: say which extra brings it
        raise CommandError(str(exc)) from None
    print(f"wrote {args.out} ({os.path.getsize(args.out) / 1024:.1f} KiB)", file=sys.stderr)
    return 0


def _bench(args) -> int:
    from .benchmark import main as bench_main   # its own options, --help, and the torch check
    return bench_main(args.bench_args) or 0


class CommandError(Exception):
    """An error to report in one line."""


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="lstm-native", description="Fast CPU LSTM/GRU training: demo, train, "
                           "predict, info, export, bench.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)
    sub.required = True
    demo = sub.add_parser("demo", help="forecast a noisy sine wave and compare with the naive baseline")
    demo.add_argument("--epochs", type=positive_int, default=60, help="at most this many epochs (early stopping)")
    demo.add_argument("--out-dir", default=".", help="where to write demo_loss.png and demo_forecast.png")
    demo.add_argument("--no-plots", action="store_true", help="skip the PNGs")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--quiet", action="store_true", help="no progress bar")
    demo.set_defaults(run=_demo)
    train = sub.add_parser("train", help="train a forecaster described in a TOML/JSON config")
    train.add_argument("config")
    train.set_defaults(run=_train)
    predict = sub.add_parser("predict", help="forecast from every window of a CSV/NPY file")
    predict.add_argument("model")
    predict.add_argument("data")
    predict.add_argument("--out", default=None, help="a .csv or .npy file (default: CSV on stdout)")
    predict.add_argument("--future", type=int, default=None, metavar="N",
                         help="forecast the N steps after the end of DATA instead (with their time stamps "
                              "when DATA has a time column; iterated past the model's horizon)")
    predict.set_defaults(run=_predict)
    info = sub.add_parser("info", help="describe a saved model")
    info.add_argument("model")
    info.set_defaults(run=_info)
    export = sub.add_parser("export", help="write a saved model as an ONNX file (onnxruntime serves it)")
    export.add_argument("model")
    export.add_argument("out", help="the .onnx file to write")
    export.add_argument("--lengths", action="store_true", help='add the int64 "lengths" input (padded batches)')
    export.add_argument("--step", action="store_true", help="one step of a stream, states in and out")
    export.add_argument("--opset", type=positive_int, default=None, help="ONNX opset (default: ln.onnx.DEFAULT_OPSET)")
    export.set_defaults(run=_export)
    # Every option after `bench` goes to the benchmark's own parser (lstm_native/benchmark.py).
    bench = sub.add_parser("bench", help="benchmark against PyTorch (options: lstm-native bench --help)",
                           add_help=False)
    bench.set_defaults(run=_bench)
    parser.subcommands = sub.choices
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if args.command == "bench":
        args.bench_args = extra
    elif extra:
        parser.subcommands[args.command].error(f"unrecognized arguments: {' '.join(extra)}")
    from .recipes import ConfigError
    from . import distributed
    try:
        return args.run(args)
    except (CommandError, ConfigError) as exc:
        distributed.report_once(f"lstm-native {args.command}: error: {exc}", exc)
        return 2
    except (ValueError, TypeError, OSError) as exc:
        distributed.report_once(f"lstm-native {args.command}: error: "
                                f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}", exc)
        return 2
    except KeyboardInterrupt:
        print(f"lstm-native {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
