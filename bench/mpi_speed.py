"""Data-parallel speed on one machine: training steps of `fit` on 2 MPI ranks x 1 thread against
1 process x 1 thread (and 1 process x 2 threads), on the bench's S3 and S5 shapes; plus what
bench/mpi_cost_model.py needs: Allreduce times at 2 ranks for the real gradient sizes of S3-S5
and the compute of one step at the per-rank batches of 8, 16 and 64 ranks.

    PYTHONPATH=python python bench/mpi_speed.py [--shapes S3,S5] [--rounds 3] [--json bench/mpi_measured.json]

The configurations run as separate launches interleaved A B C A B C ... (round robin), so that
drift of a shared machine hits all of them; each launch times its steps with a callback
(after warm-up steps) and the table gives medians over launches and steps. The step is the
bench's (lstm_native/benchmark.py): LSTM, MSE on a Linear head over the last step, backward,
clip_grad_norm 1.0, Adam, here driven by ``fit`` (distributed=True on the ranks).
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import shutil
import statistics
import subprocess
import sys
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "python"))

STEPS = {"S3": (3, 8), "S4": (1, 3), "S5": (1, 4)}       # warm-up, timed steps per launch


def shape(sid):
    from lstm_native.benchmark import SHAPES
    return SHAPES[sid]


def model_for(sid):
    import lstm_native as ln
    cell, B, T, I, H, L, bi, _ = shape(sid)
    rnn = (ln.LSTM if cell == "LSTM" else ln.GRU)(I, H, num_layers=L, batch_first=True, bidirectional=bi, seed=0)
    return ln.Sequential(rnn, ln.LastTimestep(), ln.Linear(H * (2 if bi else 1), 1, seed=0))


def gradient_floats(sid) -> int:
    return sum(p.data.size for p in model_for(sid).parameters())


def time_steps(sid, batch=None, warmup=None, steps=None):
    """Seconds of each timed training step of fit; distributed over the ranks this process
    was launched with."""
    import lstm_native as ln
    cell, B, T, I, H, L, bi, _ = shape(sid)
    B = batch or B
    w, n = STEPS[sid]
    w, n = warmup if warmup is not None else w, steps or n
    rng = np.random.default_rng(1)
    X = rng.standard_normal(((w + n) * B, T, I)).astype(np.float32)
    y = rng.standard_normal(((w + n) * B, 1)).astype(np.float32)
    model = model_for(sid)
    stamps = []

    class Clock(ln.callbacks.Callback):
        def on_batch_end(self, batch, logs=None):
            stamps.append(time.perf_counter())

    start = time.perf_counter()
    model.fit(X, y, epochs=1, batch_size=B, optimizer=ln.optim.Adam(model.parameters(), lr=1e-3),
              clip_grad_norm=1.0, shuffle=False, verbose=0, callbacks=[Clock()], distributed=True)
    return [float(t) for t in np.diff([start] + stamps)[w:]]


def time_allreduce(floats, repeats=20) -> float:
    """Median seconds of one in-place Allreduce over `floats` float32 values (ranks aligned first)."""
    from mpi4py import MPI
    comm = MPI.COMM_WORLD
    buf = np.ones(floats, np.float32)
    times = []
    for _ in range(repeats):
        comm.Barrier()
        t = time.perf_counter()
        comm.Allreduce(MPI.IN_PLACE, buf)
        times.append(time.perf_counter() - t)
    return float(np.median(comm.allreduce(np.median(times), op=MPI.MAX)))


# -- what one launch measures (called under mpiexec or alone) --------------------------------
def worker(args):
    import lstm_native as ln
    ln.set_num_threads(args.threads)
    out = {"ranks": ln.distributed.size(), "threads": args.threads, "step": {}}
    for sid in args.shapes.split(","):
        out["step"][sid] = time_steps(sid)
    if args.allreduce and ln.distributed.size() > 1:
        out["allreduce"] = {sid: {"floats": gradient_floats(sid), "seconds": time_allreduce(gradient_floats(sid) + 16)}
                            for sid in ("S3", "S4", "S5")}
        out["allreduce"]["latency"] = {"floats": 8, "seconds": time_allreduce(8, 200)}
    if args.compute:                 # one process: a rank's compute at the per-rank batches of p ranks,
        times = {}                   # the batch sizes interleaved over 3 rounds
        for _ in range(3):
            for sid in ("S3", "S4", "S5"):
                B = shape(sid)[1]
                for b in sorted({B, B // 2, max(1, B // 8), max(1, B // 16), max(1, B // 64)}):
                    times.setdefault(sid, {}).setdefault(str(b), []).extend(
                        time_steps(sid, batch=b, warmup=1, steps=2 if b >= B // 2 else 4))
        out["compute"] = {sid: {b: float(np.median(t)) for b, t in bs.items()} for sid, bs in times.items()}
    if ln.distributed.rank() == 0:
        print("RESULT " + json.dumps(out), flush=True)


def launch(ranks, threads, shapes, extra=()):
    env = dict(os.environ, PYTHONPATH=str(ROOT / "python"), OMP_NUM_THREADS=str(threads))
    cmd = [sys.executable, __file__, "--worker", "--shapes", shapes, "--threads", str(threads), *extra]
    if ranks > 1:
        mpiexec = shutil.which("mpiexec", path=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
        cmd = [mpiexec, "-n", str(ranks)] + cmd
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=3600)
    if proc.returncode:
        raise RuntimeError(proc.stdout + proc.stderr)
    return json.loads(next(line[7:] for line in proc.stdout.splitlines() if line.startswith("RESULT ")))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shapes", default="S3,S5")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--json", default=str(ROOT / "bench" / "mpi_measured.json"))
    p.add_argument("--model-inputs-only", action="store_true",
                   help="keep the step times of --json, measure the cost model's inputs again")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--allreduce", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--compute", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        return worker(args)

    configs = {"1 process x 1 thread": (1, 1), "2 ranks x 1 thread": (2, 1), "1 process x 2 threads": (1, 2)}
    steps = {name: {sid: [] for sid in args.shapes.split(",")} for name in configs}
    if args.model_inputs_only:
        with open(args.json) as f:
            steps, args.rounds = json.load(f)["steps"], 0
    for r in range(args.rounds):
        for name, (ranks, threads) in configs.items():
            got = launch(ranks, threads, args.shapes)
            for sid, t in got["step"].items():
                steps[name][sid] += t
            print(f"round {r + 1}: {name}: " + ", ".join(f"{s} {statistics.median(t) * 1e3:.1f} ms"
                                                         for s, t in got["step"].items()), flush=True)
    extra = launch(2, 1, "S3", ["--allreduce"])
    compute = launch(1, 1, "S3", ["--compute"])
    result = {"machine": os.uname().nodename, "cores": os.cpu_count(), "load_average": os.getloadavg(),
              "steps": steps, "allreduce": extra["allreduce"], "compute": compute["compute"]}
    with open(args.json, "w") as f:
        json.dump(result, f, indent=1)

    print("\nMedians over all timed steps of all rounds (best step in brackets: the machine's quietest moments):\n")
    print("| shape | 1 process x 1 thread ms | 2 ranks x 1 thread ms | speed-up | 1 process x 2 threads ms "
          "| speed-up |")
    print("|---|---|---|---|---|---|")
    for sid in args.shapes.split(","):
        one, two, threads = (statistics.median(steps[n][sid]) for n in configs)
        b1, b2, bt = (min(steps[n][sid]) for n in configs)
        print(f"| {sid} | {one * 1e3:.1f} ({b1 * 1e3:.1f}) | {two * 1e3:.1f} ({b2 * 1e3:.1f}) | **{one / two:.2f}x** "
              f"({b1 / b2:.2f}x) | {threads * 1e3:.1f} ({bt * 1e3:.1f}) | {one / threads:.2f}x ({b1 / bt:.2f}x) |")
    print(f"\nAllreduce at 2 ranks (median): " + ", ".join(
        f"{k} {v['floats'] * 4 / 1e6:.2f} MB {v['seconds'] * 1e3:.2f} ms" for k, v in result["allreduce"].items()))
    print(f"load average during the run: {os.getloadavg()}; results in {args.json}")


if __name__ == "__main__":
    main()
