"""Before/after in one process: this checkout's lstm_native against another build of it (an
older commit, built by bench/build_commit.sh), the S1-S7 training step and inference
interleaved A B B A, medians and new/old (below 1: the new code is faster).

    python bench/ab_compare.py --old /tmp/lstm-native-abc1234/python [--shapes S1,S3] [--reps 10]
        [--threads 2] [--one-thread]

--one-thread runs both on one thread and times each call by the thread's CPU time, which
other processes on a shared machine disturb much less than wall time.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "python"))


def load_old(path):
    """The package under `path` imported as lstm_native_old (it imports itself relatively)."""
    link_dir = tempfile.mkdtemp(prefix="ab-")
    os.symlink(os.path.join(os.path.abspath(path), "lstm_native"), os.path.join(link_dir, "lstm_native_old"))
    sys.path.insert(0, link_dir)
    import lstm_native_old
    return lstm_native_old


def step_and_infer(ln, cell, B, T, I, H, L, bi):
    """The bench's training step and inference (lstm_native.benchmark.make_ours) on build `ln`."""
    from lstm_native.benchmark import make_ours
    _, train, infer = make_ours(cell, B, T, I, H, L, bi, ln=ln)
    return train, lambda x, y: infer(x)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--old", required=True, help="folder holding the other build's lstm_native package")
    parser.add_argument("--shapes", default="S1,S2,S3,S4,S5,S6,S7")
    parser.add_argument("--reps", type=int, default=10)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--one-thread", action="store_true")
    args = parser.parse_args(argv)
    old = load_old(args.old)
    import lstm_native as new
    from lstm_native.benchmark import SHAPES
    threads = 1 if args.one_thread else args.threads
    old.set_num_threads(threads)
    new.set_num_threads(threads)
    clock = time.thread_time if args.one_thread else time.perf_counter
    print(f"{threads} thread(s), {'thread CPU time' if args.one_thread else 'wall time'}, {args.reps} rounds; "
          f"old {args.old}")
    print("| id | train old ms | train new ms | new/old | infer old ms | infer new ms | new/old |")
    print("|---|---|---|---|---|---|---|")
    for sid in args.shapes.split(","):
        cell, B, T, I, H, L, bi, _ = SHAPES[sid]
        rng = np.random.default_rng(1)
        x = rng.standard_normal((B, T, I)).astype(np.float32)
        y = rng.standard_normal((B, 1)).astype(np.float32)
        fns = {"old": step_and_infer(old, cell, B, T, I, H, L, bi), "new": step_and_infer(new, cell, B, T, I, H, L, bi)}
        cells = []
        for kind in (0, 1):
            for f in fns.values():
                f[kind](x, y)
                f[kind](x, y)
            times = {"old": [], "new": []}
            for rep in range(args.reps):
                for k in (("old", "new", "new", "old") if rep % 2 == 0 else ("new", "old", "old", "new")):
                    t = clock()
                    fns[k][kind](x, y)
                    times[k].append(clock() - t)
            o, n = statistics.median(times["old"]), statistics.median(times["new"])
            cells += [f"{o * 1e3:.2f}", f"{n * 1e3:.2f}", f"**{n / o:.3f}**"]
        print(f"| {sid} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
