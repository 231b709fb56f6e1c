"""What ln.set_deterministic(True) costs: the S1-S7 training step with it on and off, in one
process, interleaved A B B A, medians and on/off (inference does not change: only the
backward's bias sums do).

    python bench/deterministic_cost.py [--shapes S1,S3] [--reps 10] [--threads 2] [--one-thread]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "python"))


def main(argv=None):
    import lstm_native as ln
    from lstm_native.benchmark import SHAPES, make_ours
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shapes", default="S1,S2,S3,S4,S5,S6,S7")
    parser.add_argument("--reps", type=int, default=10)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--one-thread", action="store_true")
    args = parser.parse_args(argv)
    threads = 1 if args.one_thread else args.threads
    ln.set_num_threads(threads)
    clock = time.thread_time if args.one_thread else time.perf_counter
    print(f"{threads} thread(s), {'thread CPU time' if args.one_thread else 'wall time'}, {args.reps} rounds")
    print("| id | deterministic ms | per-thread sums ms | on/off |")
    print("|---|---|---|---|")
    for sid in args.shapes.split(","):
        cell, B, T, I, H, L, bi, _ = SHAPES[sid]
        rng = np.random.default_rng(1)
        x = rng.standard_normal((B, T, I)).astype(np.float32)
        y = rng.standard_normal((B, 1)).astype(np.float32)
        _, step, _ = make_ours(cell, B, T, I, H, L, bi)
        times = {True: [], False: []}
        for on in (True, False):
            ln.set_deterministic(on)
            step(x, y)
        for rep in range(args.reps):
            for on in ((True, False, False, True) if rep % 2 == 0 else (False, True, True, False)):
                ln.set_deterministic(on)
                t = clock()
                step(x, y)
                times[on].append(clock() - t)
        ln.set_deterministic(True)
        a, b = statistics.median(times[True]), statistics.median(times[False])
        print(f"| {sid} | {a * 1e3:.2f} | {b * 1e3:.2f} | **{a / b:.3f}** |", flush=True)


if __name__ == "__main__":
    main()
