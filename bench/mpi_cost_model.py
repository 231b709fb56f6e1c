"""Cost model of data-parallel training over MPI: the efficiency to expect at 8, 16 and 64
ranks for S3-S5, from figures measured here (bench/mpi_speed.py writes them) and stated
network assumptions.

    PYTHONPATH=python python bench/mpi_speed.py            # measures, writes bench/mpi_measured.json
    PYTHONPATH=python python bench/mpi_cost_model.py       # the tables (markdown) from that file

A step on p ranks costs compute + Allreduce (no overlap: the gradients are reduced after the
whole backward, as fit does). The Allreduce of `bytes` over a ring of p ranks takes
    2 (p - 1) / p * bytes / bandwidth + 2 (p - 1) * latency
(reduce-scatter then all-gather: each rank sends and receives 2 (p-1)/p of the buffer in
2 (p-1) messages); the additions are left out (memory-bound, ~10x faster than a 100 Gbit/s
link). Two ways to use p ranks:
  weak scaling   each rank keeps the shape's batch B (the global batch grows to p B):
                 efficiency = compute(B) / (compute(B) + allreduce(p))
  strong scaling the global batch stays B, each rank takes B / p rows:
                 efficiency = compute(B) / (p (compute(B / p) + allreduce(p)))
                 (small per-rank batches run the kernels less efficiently, measured here)
"""
from __future__ import annotations

import argparse
import json
import pathlib

ROOT = pathlib.Path(__file__).resolve().parent.parent

# Stated assumptions, not measurements: usable bandwidth (bytes/s) and per-message latency (s)
NETWORKS = {
    "10 Gbit/s Ethernet (TCP)": (1.25e9 * 0.9, 25e-6),     # 90% of line rate, 25 us per message
    "100 Gbit/s InfiniBand": (12.5e9 * 0.9, 2e-6),        # 90% of line rate, 2 us per message
}
RANKS = (8, 16, 64)
# A rank on a whole 16-core node instead of one core: the step times at 16 threads measured on
# the lent Xeon (bench/RESULTS.md, "Thread scaling on 16 cores", 2026-11-30), full batch.
NODE_STEP_16_THREADS = {"S3": 0.05031, "S4": 0.44121, "S5": 0.44406}


def ring_allreduce(nbytes, p, bandwidth, latency):
    return 2 * (p - 1) / p * nbytes / bandwidth + 2 * (p - 1) * latency


def tables(m):
    from lstm_native.benchmark import SHAPES
    lines = []
    ar = m["allreduce"]
    lines.append("Inputs measured on this machine (1 thread per rank; medians): compute of a training step "
                 "at the per-rank batch, Allreduce at 2 ranks (shared memory) for the real gradient sizes.\n")
    lines.append("| shape | gradient MB | compute at B ms | at B/2 | at B/8 | at B/16 | at B/64 "
                 "| Allreduce 2 ranks ms |")
    lines.append("|---|---|---|---|---|---|---|---|")
    for sid in ("S3", "S4", "S5"):
        B = SHAPES[sid][1]
        c = m["compute"][sid]
        cells = [f"{c[str(max(1, B // d))] * 1e3:.1f}" if str(max(1, B // d)) in c else "" for d in (1, 2, 8, 16, 64)]
        lines.append(f"| {sid} (B{B}) | {ar[sid]['floats'] * 4 / 1e6:.2f} | " + " | ".join(cells)
                     + f" | {ar[sid]['seconds'] * 1e3:.2f} |")
    lines.append("")
    if "steps" in m and "2 ranks x 1 thread" in m["steps"]:
        lines.append("The model at p = 2 against the 2-rank step measured by bench/mpi_speed.py: "
                     + "; ".join(_check_two_ranks(m, sid) for sid in m["steps"]["2 ranks x 1 thread"]) + ".\n")
    for title, compute_of in (("one core per rank (1 thread, this machine)", None),
                              ("one 16-core node per rank (16 threads, the lent Xeon's step times; weak scaling only)",
                               NODE_STEP_16_THREADS)):
        lines.append(f"Predicted efficiency, {title}:\n")
        head = "| shape | network | " + " | ".join(f"weak p={p}" for p in RANKS)
        if compute_of is None:
            head += " | " + " | ".join(f"strong p={p}" for p in RANKS)
        lines.append(head + " |")
        lines.append("|---" * (2 + len(RANKS) * (2 if compute_of is None else 1)) + "|")
        for sid in ("S3", "S4", "S5"):
            B = SHAPES[sid][1]
            nbytes = ar[sid]["floats"] * 4
            full = compute_of[sid] if compute_of else m["compute"][sid][str(B)]
            for net, (bw, lat) in NETWORKS.items():
                weak = [full / (full + ring_allreduce(nbytes, p, bw, lat)) for p in RANKS]
                row = f"| {sid} | {net} | " + " | ".join(f"{e:.0%}" for e in weak)
                if compute_of is None:
                    strong = []
                    for p in RANKS:
                        share = m["compute"][sid].get(str(max(1, B // p)))
                        strong.append(full / (p * (share + ring_allreduce(nbytes, p, bw, lat))) if share else None)
                    row += " | " + " | ".join("" if e is None else f"{e:.0%}" for e in strong)
                lines.append(row + " |")
        lines.append("")
    lines.append("Assumptions: " + "; ".join(f"{k}: {bw / 1e9:.2f} GB/s usable, {lat * 1e6:.0f} us per message"
                                              for k, (bw, lat) in NETWORKS.items())
                 + "; a flat ring over all ranks (ranks sharing a node would reduce over shared memory first, "
                   "which only helps); the Allreduce after the whole backward (no overlap).")
    return "\n".join(lines)


def _check_two_ranks(m, sid):
    from lstm_native.benchmark import SHAPES
    import statistics
    B = SHAPES[sid][1]
    measured = statistics.median(m["steps"]["2 ranks x 1 thread"][sid])
    best = min(m["steps"]["2 ranks x 1 thread"][sid])
    half = m["compute"][sid].get(str(B // 2))
    if half is None:
        return f"{sid} measured {measured * 1e3:.1f} ms"
    predicted = half + m["allreduce"][sid]["seconds"]
    return f"{sid} predicted {predicted * 1e3:.1f} ms, measured {measured * 1e3:.1f} ms (best step {best * 1e3:.1f})"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--json", default=str(ROOT / "bench" / "mpi_measured.json"), help="written by bench/mpi_speed.py")
    args = p.parse_args(argv)
    with open(args.json) as f:
        print(tables(json.load(f)))


if __name__ == "__main__":
    import sys
    sys.path.insert(0, str(ROOT / "python"))
    main()
