"""Our SGEMM against torch's (MKL) on the products a training step runs (issue 17, bar 4): the
2048^3 square, and S3's and S5's input projection, per-step recurrent product and weight
gradients, each as the kernels call it (transposes included). One process, interleaved
(lstm_native.benchmark.interleaved), medians, GFLOP/s.

    python bench/sgemm_shapes.py [--threads 2]

Note: inside the recurrent layer a step's product is split over the team by rows or units and
runs on weights packed once per sequence; here the whole product is one call of the public
matmul, packing included, against torch.mm on the same operands.
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np

try:
    import lstm_native as ln
except ImportError:   # run from a checkout without installing: the in-tree package
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "python"))
    import lstm_native as ln

from lstm_native.benchmark import interleaved, machine_description


def shapes():
    """(name, m, k, n, trans_a, trans_b): C (m x n) = op(A) op(B), as the kernels use them."""
    out = [("square 2048^3", 2048, 2048, 2048, False, False)]
    for sid, B, T, I, H in (("S3", 64, 100, 128, 256), ("S5", 128, 50, 512, 1024)):
        G = 4 * H
        out += [(f"{sid} input projection X W_ih^T", B * T, I, G, False, True),
                (f"{sid} step product h W_hh^T", B, H, G, False, True),
                (f"{sid} weight gradient dG^T [H|X]", G, B * T, H + I, True, False)]
    return out


def main(argv=None):
    import torch
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    args = parser.parse_args(argv)
    ln.set_num_threads(args.threads)
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    print(machine_description(args.threads))
    print("\n| product | m x k x n | ours GFLOP/s | MKL GFLOP/s | ours/MKL |")
    print("|---|---|---|---|---|")
    for name, m, k, n, ta, tb in shapes():
        a = rng.standard_normal((k, m) if ta else (m, k)).astype(np.float32)
        b = rng.standard_normal((n, k) if tb else (k, n)).astype(np.float32)
        out = np.empty((m, n), np.float32)
        ta_t, tb_t = torch.from_numpy(a), torch.from_numpy(b)
        ta_op = ta_t.t() if ta else ta_t
        tb_op = tb_t.t() if tb else tb_t
        tout = torch.empty(m, n)
        ours, theirs, _ = interleaved(lambda: ln._core.matmul(a, b, ta, tb, out, False),
                                      lambda: torch.mm(ta_op, tb_op, out=tout), 30, 20)
        flops = 2.0 * m * k * n
        print(f"| {name} | {m} x {k} x {n} | {flops / ours / 1e9:.1f} | {flops / theirs / 1e9:.1f} | "
              f"**{theirs / ours:.2f}x** |", flush=True)


if __name__ == "__main__":
    main()
