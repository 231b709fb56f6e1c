"""lstm_native against PyTorch on the same machine, in the same run.

For each shape, a full training step (forward, MSE on a Linear head over the last step,
backward, clip_grad_norm 1.0, Adam) runs in both libraries, interleaved A B B A so that
drift in the machine's speed hits both alike; the table gives median times, the ratio
torch / ours, GFLOP/s, and the sgemm GFLOP/s of this machine measured in the same run (the
physical limit). Inference (forward only) and peak memory (fresh processes) are measured
too. Run ``python bench/compare_torch.py`` or ``lstm-native bench``; torch must be installed.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time

import numpy as np

from ._argparse import OneLineParser, positive_int

SHAPES = {
    # id: (cell, B, T, I, H, L, bidirectional, note)
    "S1": ("LSTM", 16, 20, 1, 64, 1, False, "sine-wave forecasting"),
    "S2": ("LSTM", 32, 50, 32, 128, 1, False, "small"),
    "S3": ("LSTM", 64, 100, 128, 256, 1, False, "medium"),
    "S4": ("LSTM", 64, 100, 256, 512, 2, False, "stacked"),
    "S5": ("LSTM", 128, 50, 512, 1024, 1, False, "GEMM-bound"),
    "S6": ("GRU", 64, 100, 128, 256, 1, False, "GRU"),
    "S7": ("LSTM", 32, 50, 64, 128, 1, True, "bidirectional"),
}
STREAM_SHAPE = ("S8", 1, 64, 256)   # one step at a time with carried state: B, I, H
MEMORY_SHAPES = ("S3", "S5")


def training_flops(cell, B, T, I, H, L, bidirectional):
    """Multiply-adds x 2 of a training step: forward 2TB(I+H)GH per layer and direction,
    backward twice that, less the input gradient of the first layer (not needed)."""
    G = 4 if cell == "LSTM" else 3
    D = 2 if bidirectional else 1
    total = 0.0
    for layer in range(L):
        inp = I if layer == 0 else D * H
        forward = 2.0 * T * B * (inp + H) * G * H * D
        total += 3 * forward - (2.0 * T * B * inp * G * H * D if layer == 0 else 0)
    return total


def inference_flops(cell, B, T, I, H, L, bidirectional):
    G = 4 if cell == "LSTM" else 3
    D = 2 if bidirectional else 1
    return sum(2.0 * T * B * ((I if l == 0 else D * H) + H) * G * H * D for l in range(L))


# -- the two implementations of one training step --------------------------------------------
def make_ours(cell, B, T, I, H, L, bidirectional, seed=0, ln=None):
    """(model, train_step, infer) of the bench's model; `ln` another build of the package
    (bench/ab_compare.py), this one by default."""
    if ln is None:
        import lstm_native as ln
    rnn = (ln.LSTM if cell == "LSTM" else ln.GRU)(I, H, num_layers=L, batch_first=True,
                                                  bidirectional=bidirectional, seed=seed)
    model = ln.Sequential(rnn, ln.LastTimestep(), ln.Linear(H * (2 if bidirectional else 1), 1, seed=seed))
    params = model.parameters()
    opt = ln.optim.Adam(params, lr=1e-3)

    def train_step(x, y):
        out = model(x)
        _, grad = ln.losses.mse(out, y)
        model.zero_grad()
        model.backward(grad)
        ln.clip_grad_norm_(params, 1.0)
        opt.step()

    def infer(x):
        with ln.no_grad():
            return model(x)

    return model, train_step, infer


def make_torch(ours_model, cell, B, T, I, H, L, bidirectional):
    """The same model in PyTorch, with ours' weights (or its own, when ours_model is None)."""
    import torch
    cls = torch.nn.LSTM if cell == "LSTM" else torch.nn.GRU
    rnn = cls(I, H, num_layers=L, batch_first=True, bidirectional=bidirectional)
    head = torch.nn.Linear(H * (2 if bidirectional else 1), 1)
    if ours_model is not None:
        rnn.load_state_dict({k: torch.from_numpy(v) for k, v in ours_model[0].state_dict().items()})
        head.load_state_dict({k: torch.from_numpy(v) for k, v in ours_model[2].state_dict().items()})
    params = list(rnn.parameters()) + list(head.parameters())
    opt = torch.optim.Adam(params, lr=1e-3)

    def train_step(x, y):
        out, _ = rnn(x)
        loss = torch.nn.functional.mse_loss(head(out[:, -1]), y)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()

    def infer(x):
        with torch.no_grad():
            out, _ = rnn(x)
            return head(out[:, -1])

    return train_step, infer


def same_model_both_libraries(sid):
    """Shape sid's model in both libraries with the same weights, on the same random batch:
    (ours training step, torch's, ours inference, torch's), each a call without arguments."""
    import torch
    cell, B, T, I, H, L, bi, _ = SHAPES[sid]
    rng = np.random.default_rng(1)
    x = rng.standard_normal((B, T, I)).astype(np.float32)
    y = rng.standard_normal((B, 1)).astype(np.float32)
    model, ours_step, ours_infer = make_ours(cell, B, T, I, H, L, bi)
    torch_step, torch_infer = make_torch(model, cell, B, T, I, H, L, bi)
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)
    return (lambda: ours_step(x, y)), (lambda: torch_step(tx, ty)), (lambda: ours_infer(x)), (lambda: torch_infer(tx))


def interleaved(fn_a, fn_b, reps, budget_s, block_s=0.02):
    """Median seconds of one call of fn_a and of fn_b, run in blocks A B B A ... for reps
    rounds or budget_s seconds; returns (median a, median b, rounds).

    A call shorter than block_s runs in blocks of enough calls to fill block_s, plus one
    first call whose time is dropped: right after the other library ran, its worker threads
    are still spinning (torch's OpenMP, our pool) and the caches hold its data, which costs the
    next call a few hundred microseconds that a training loop, calling one library over and
    over, never pays. Both libraries get the same treatment. Longer calls run one per block."""
    def calls_per_block(fn):
        t = time.perf_counter()
        fn()
        once = time.perf_counter() - t
        return (1, 0) if once >= block_s else (max(2, math.ceil(block_s / max(once, 1e-6))), 1)

    plans = {id(fn_a): calls_per_block(fn_a), id(fn_b): calls_per_block(fn_b)}
    a, b = [], []
    start = time.perf_counter()
    rounds = 0
    for r in range(reps):
        pair = [(fn_a, a), (fn_b, b)] if r % 2 == 0 else [(fn_b, b), (fn_a, a)]
        for fn, out in pair:
            calls, dropped = plans[id(fn)]
            for i in range(calls + dropped):
                t = time.perf_counter()
                fn()
                if i >= dropped:
                    out.append(time.perf_counter() - t)
        rounds += 1
        if r >= 4 and time.perf_counter() - start > budget_s:
            break
    return statistics.median(a), statistics.median(b), rounds


def sgemm_rates(size=2048, reps=5):
    """GFLOP/s of a square single-precision GEMM: torch's (MKL) and ours (the kernels' engine)."""
    import torch
    import lstm_native as ln
    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size)).astype(np.float32)
    b = rng.standard_normal((size, size)).astype(np.float32)
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    out = np.empty_like(a)
    ours, theirs, _ = interleaved(lambda: ln._core.matmul(a, b, False, False, out, False),
                                  lambda: torch.mm(ta, tb), reps, 30)
    flops = 2.0 * size ** 3
    return flops / ours / 1e9, flops / theirs / 1e9


def stream_latency(B, I, H, steps=2000):
    """Median per-step latency (s) of online prediction with carried state: our
    ``model.stream().step`` (LSTM + Linear head) and bare ``LSTM.step`` against torch's nn.LSTM
    (+ nn.Linear) called on one step with its state. Returns (ours stream, ours layer, torch
    model, torch layer)."""
    import torch
    import lstm_native as ln
    model = ln.Sequential(ln.LSTM(I, H, batch_first=True, seed=0), ln.LastTimestep(), ln.Linear(H, 1, seed=0))
    lstm = model[0]
    tl, thead = torch.nn.LSTM(I, H), torch.nn.Linear(H, 1)
    tl.load_state_dict({k: torch.from_numpy(v) for k, v in lstm.state_dict().items()})
    thead.load_state_dict({k: torch.from_numpy(v) for k, v in model[2].state_dict().items()})
    x = np.random.default_rng(0).standard_normal((steps, 1, B, I)).astype(np.float32)
    tx = torch.from_numpy(x)

    def ours_stream():
        stream = model.stream()
        for t in range(steps):
            stream.step(x[t, 0])

    def ours_layer():
        state = None
        with ln.no_grad():
            for t in range(steps):
                _, state = lstm.step(x[t, 0], state)

    def theirs_model():
        state = None
        with torch.no_grad():
            for t in range(steps):
                out, state = tl(tx[t], state)
                thead(out[0])

    def theirs_layer():
        state = None
        with torch.no_grad():
            for t in range(steps):
                _, state = tl(tx[t], state)

    o_stream, t_model, _ = interleaved(ours_stream, theirs_model, 7, 20)
    o_layer, t_layer, _ = interleaved(ours_layer, theirs_layer, 7, 20)
    return o_stream / steps, o_layer / steps, t_model / steps, t_layer / steps


QUANT_SHAPE = ("Q1", 128, 50, 512, 1024)   # B, T, I, H: LSTM + Linear head on the last step, forward only


def quantized_inference(B, T, I, H, reps=15, budget_s=120):
    """Median seconds of one forward: ours float32, ours int8, torch float32, torch int8
    (torch.ao.quantization.quantize_dynamic), interleaved; and the output errors vs float."""
    import warnings
    import torch
    import lstm_native as ln
    model = ln.Sequential(ln.LSTM(I, H, batch_first=True, seed=0), ln.LastTimestep(), ln.Linear(H, 1, seed=0))
    qmodel = ln.quantize_dynamic(model)

    class TorchModel(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm, self.head = torch.nn.LSTM(I, H, batch_first=True), torch.nn.Linear(H, 1)

        def forward(self, x):
            return self.head(self.lstm(x)[0][:, -1])

    tmodel = TorchModel()
    tmodel.lstm.load_state_dict({k: torch.from_numpy(v) for k, v in model[0].state_dict().items()})
    tmodel.head.load_state_dict({k: torch.from_numpy(v) for k, v in model[2].state_dict().items()})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tq = torch.ao.quantization.quantize_dynamic(tmodel, {torch.nn.LSTM, torch.nn.Linear}, dtype=torch.qint8)
    x = np.random.default_rng(0).standard_normal((B, T, I)).astype(np.float32)
    tx = torch.from_numpy(x)
    runs = {"ours float32": lambda: model.predict(x), "ours int8": lambda: qmodel.predict(x)}

    def torch_run(m):
        def go():
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return m(tx).numpy()
        return go

    runs.update({"torch float32": torch_run(tmodel), "torch int8": torch_run(tq)})
    outs = {name: fn() for name, fn in runs.items()}       # warm up, and the outputs for the errors
    times = {name: [] for name in runs}
    start = time.perf_counter()
    for rep in range(reps):
        for name in (list(runs) if rep % 2 == 0 else list(runs)[::-1]):
            t = time.perf_counter()
            runs[name]()
            times[name].append(time.perf_counter() - t)
        if time.perf_counter() - start > budget_s and rep >= 2:
            break
    ref = np.abs(outs["ours float32"]).max()
    errors = {"ours int8": float(np.abs(outs["ours int8"] - outs["ours float32"]).max() / ref),
              "torch int8": float(np.abs(outs["torch int8"] - outs["torch float32"]).max() / ref)}
    return {name: statistics.median(v) for name, v in times.items()}, errors


def memory_probe(framework, shape_id, steps=3):
    """Runs in a fresh process: peak resident memory (MiB) of training steps above what the
    process held before building the model (imports and data excluded)."""
    cell, B, T, I, H, L, bi, _ = SHAPES[shape_id]
    rng = np.random.default_rng(0)
    x = rng.standard_normal((B, T, I)).astype(np.float32)
    y = rng.standard_normal((B, 1)).astype(np.float32)
    if framework == "torch":
        import torch
        torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "0")) or torch.get_num_threads())
        x, y = torch.from_numpy(x), torch.from_numpy(y)
        torch.nn.LSTM(2, 2)(torch.zeros(1, 1, 2))   # load lazily imported kernels before the baseline
    baseline = _rss_mib()
    if framework == "ours":
        step = make_ours(cell, B, T, I, H, L, bi)[1]
    else:
        step = make_torch(None, cell, B, T, I, H, L, bi)[0]
    for _ in range(steps):
        step(x, y)
    return _peak_rss_mib() - baseline


def _peak_rss_mib():
    # VmHWM belongs to this process image; ru_maxrss is not usable here because Linux carries
    # it across fork+exec, so a child of a large parent reports the parent's size.
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def _rss_mib():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def machine_description(threads):
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    import lstm_native as ln
    return (f"{model}, {os.cpu_count()} logical cores, {threads} threads, kernels: {ln.backend_isa()}, "
            f"sgemm tile: {ln._core.sgemm_kernel()}")


def run(shape_ids, threads, reps, out_path, memory=True, stream=True, quant=True):
    """Measures and prints the tables; both libraries' thread counts are restored afterwards
    (the caller may be a test or a notebook, not only the command line)."""
    import torch
    import lstm_native as ln
    before = ln.get_num_threads(), torch.get_num_threads()
    ln.set_num_threads(threads)
    torch.set_num_threads(threads)
    try:
        return _measure(shape_ids, threads, reps, out_path, memory, stream, quant)
    finally:
        ln.set_num_threads(before[0])
        torch.set_num_threads(before[1])


def _measure(shape_ids, threads, reps, out_path, memory, stream, quant):
    import torch
    import lstm_native as ln
    lines = []
    say = lambda s="": (print(s, flush=True), lines.append(s))
    ours_sgemm, torch_sgemm = sgemm_rates()
    peak = max(ours_sgemm, torch_sgemm)
    say(f"Machine: {machine_description(threads)}; torch {torch.__version__}, numpy {np.__version__}")
    say(f"sgemm 2048^3 in this run: ours (own packed sgemm) {ours_sgemm:.1f} GFLOP/s, torch (MKL) {torch_sgemm:.1f} GFLOP/s")
    say()
    say("Training step (forward, MSE on a Linear head over the last step, backward, clip_grad_norm 1.0, Adam):")
    say()
    say("| id | shape (cell B T I H L) | ours ms | torch ms | torch/ours | ours GFLOP/s | torch GFLOP/s | ours % of sgemm | runs |")
    say("|---|---|---|---|---|---|---|---|---|")
    results = {}
    for sid in shape_ids:
        cell, B, T, I, H, L, bi, note = SHAPES[sid]
        train_ours, train_torch, infer_ours, infer_torch = same_model_both_libraries(sid)
        for _ in range(2):
            train_ours()
            train_torch()
        flops = training_flops(cell, B, T, I, H, L, bi)
        budget = 60 if flops > 5e10 else 20
        o, t, n = interleaved(train_ours, train_torch, reps, budget)
        oi, ti, _ = interleaved(infer_ours, infer_torch, reps, budget / 2)
        results[sid] = dict(train_ours=o, train_torch=t, infer_ours=oi, infer_torch=ti, flops=flops)
        shape = f"{cell}{' bi' if bi else ''} {B} {T} {I} {H} {L}"
        say(f"| {sid} | {shape} | {o * 1e3:.2f} | {t * 1e3:.2f} | **{t / o:.2f}x** | {flops / o / 1e9:.1f} | "
            f"{flops / t / 1e9:.1f} | {100 * flops / o / 1e9 / peak:.0f}% | {n} |")
    say()
    say("Inference (forward only, no gradients kept):")
    say()
    say("| id | ours ms | torch ms | torch/ours | ours GFLOP/s |")
    say("|---|---|---|---|---|")
    for sid in shape_ids:
        r = results[sid]
        f = inference_flops(*SHAPES[sid][:7])
        say(f"| {sid} | {r['infer_ours'] * 1e3:.2f} | {r['infer_torch'] * 1e3:.2f} | "
            f"**{r['infer_torch'] / r['infer_ours']:.2f}x** | {f / r['infer_ours'] / 1e9:.1f} |")
    if stream:
        sid, B, I, H = STREAM_SHAPE
        o, ol, t, tl = stream_latency(B, I, H)
        results[sid] = dict(step_ours=o, step_torch=t, layer_step_ours=ol, layer_step_torch=tl)
        say()
        say(f"{sid} streaming inference, one step at a time with carried state (B{B} I{I} H{H}), per step:")
        say(f"- model (LSTM + Linear head): ours `stream.step` {o * 1e6:.1f} us, torch nn.LSTM+nn.Linear "
            f"{t * 1e6:.1f} us: **{t / o:.1f}x**")
        say(f"- layer alone: ours `LSTM.step` {ol * 1e6:.1f} us, torch nn.LSTM on one step {tl * 1e6:.1f} us: "
            f"**{tl / ol:.1f}x**")
    if quant:
        sid, B, T, I, H = QUANT_SHAPE
        q_times, q_errors = quantized_inference(B, T, I, H)
        results[sid] = dict(times=q_times, errors=q_errors)
        base = q_times["ours float32"]
        say()
        say(f"{sid} quantised inference (LSTM B{B} T{T} I{I} H{H} + Linear head, forward only; error = "
            f"max |int8 - float32| / max |float32| of the same library's outputs):")
        say()
        say("| model | ms | ours float32 / this | error vs float32 |")
        say("|---|---|---|---|")
        for name, t in q_times.items():
            err = q_errors.get(name)
            say(f"| {name} | {t * 1e3:.1f} | **{base / t:.2f}x** | {'' if err is None else f'{err:.4f}'} |")
        say(f"\nours int8 vs torch int8: **{q_times['torch int8'] / q_times['ours int8']:.2f}x**")
    if memory:
        say()
        say("Peak memory of training steps above the process's memory before the model was built (MiB, fresh processes):")
        say()
        say("| id | ours MiB | torch MiB | torch/ours |")
        say("|---|---|---|---|")
        for sid in MEMORY_SHAPES:
            mib = {}
            for fw in ("ours", "torch"):
                env = dict(os.environ, BENCH_THREADS=str(threads), OMP_NUM_THREADS=str(threads))
                cmd = [sys.executable, "-m", "lstm_native.benchmark", "--memory-probe", fw, sid]
                mib[fw] = float(subprocess.run(cmd, capture_output=True, text=True, env=env, check=True).stdout.strip())
            results[sid].update(memory_ours=mib["ours"], memory_torch=mib["torch"])
            say(f"| {sid} | {mib['ours']:.0f} | {mib['torch']:.0f} | {mib['torch'] / mib['ours']:.2f} |")
    if out_path:
        with open(out_path, "w") as f:
            f.write("\n".join(lines) + "\n")
    return results


def default_thread_counts(cores=None):
    """1, 2, 4, ... up to the machine's cores, and the core count itself."""
    cores = cores or os.cpu_count() or 1
    counts = [1 << k for k in range(cores.bit_length()) if (1 << k) <= cores]
    return counts + ([cores] if counts[-1] != cores else [])


def scaling(shape_ids, thread_counts, reps, out_path):
    """Training-step time of both libraries at each thread count (interleaved as in run()),
    next to each library's sgemm rate at that count: the curve issue 5 asks for, and what it
    takes to read it (a kernel that scales like the machine's sgemm is limited by it)."""
    import torch
    import lstm_native as ln
    before = ln.get_num_threads(), torch.get_num_threads()
    out = open(out_path, "w") if out_path else None   # row by row: a run cut short keeps its rows

    def say(line=""):
        print(line, flush=True)
        if out:
            out.write(line + "\n")
            out.flush()

    say(f"Machine: {machine_description(max(thread_counts))}; torch {torch.__version__}, numpy {np.__version__}")
    say()
    say(f"Training step (as in the main table) at each thread count; speedup = the library's own time at "
        f"{thread_counts[0]} thread(s) over this one; sgemm = 2048^3 at this count:")
    say()
    say("| id | threads | ours ms | torch ms | torch/ours | ours GFLOP/s | torch GFLOP/s | ours speedup | "
        "torch speedup | sgemm ours GFLOP/s | sgemm torch GFLOP/s |")
    say("|---|---|---|---|---|---|---|---|---|---|---|")
    results = {}
    try:
        rates = {}
        for sid in shape_ids:
            train_ours, train_torch, _, _ = same_model_both_libraries(sid)
            flops = training_flops(*SHAPES[sid][:7])
            first = None
            for n in thread_counts:
                ln.set_num_threads(n)
                torch.set_num_threads(n)
                if n not in rates:
                    rates[n] = sgemm_rates(reps=3)
                train_ours()
                train_torch()
                o, t, rounds = interleaved(train_ours, train_torch, reps, 30)
                first = first or (o, t)
                results.setdefault(sid, {})[n] = dict(train_ours=o, train_torch=t, sgemm_ours=rates[n][0],
                                                      sgemm_torch=rates[n][1], rounds=rounds)
                say(f"| {sid} | {n} | {o * 1e3:.2f} | {t * 1e3:.2f} | **{t / o:.2f}x** | {flops / o / 1e9:.1f} | "
                    f"{flops / t / 1e9:.1f} | {first[0] / o:.2f} | {first[1] / t:.2f} | {rates[n][0]:.1f} | "
                    f"{rates[n][1]:.1f} |")
    finally:
        ln.set_num_threads(before[0])
        torch.set_num_threads(before[1])
        if out:
            out.close()
    return results


def main(argv=None):
    parser = OneLineParser(prog="lstm-native bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--shapes", default=",".join(SHAPES), help="comma-separated ids (default: all)")
    parser.add_argument("--threads", type=positive_int, default=os.cpu_count(), help="threads for both libraries")
    parser.add_argument("--reps", type=positive_int, default=30, help="rounds per shape (capped by a time budget)")
    parser.add_argument("--out", default=None, help="also write the tables (Markdown) to this file")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory measurement")
    parser.add_argument("--no-stream", action="store_true", help="skip the streaming-latency measurement")
    parser.add_argument("--no-quant", action="store_true", help="skip the quantised-inference measurement")
    parser.add_argument("--json", default=None, help="write the raw figures as JSON")
    parser.add_argument("--scaling", action="store_true",
                        help="instead of the tables: training-step time of --shapes at each of --thread-counts")
    parser.add_argument("--thread-counts", default=None,
                        help="comma-separated thread counts for --scaling (default: 1, 2, 4, ... up to all cores)")
    parser.add_argument("--memory-probe", nargs=2, metavar=("FRAMEWORK", "SHAPE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_probe:
        print(memory_probe(*args.memory_probe))
        return 0
    try:
        import torch  # noqa: F401
    except ImportError:
        print("lstm-native bench compares against PyTorch: pip install torch==2.13.0", file=sys.stderr)
        return 2
    ids = [s.strip().upper() for s in args.shapes.split(",") if s.strip() and s.strip().lower() != "none"]
    unknown = [s for s in ids if s not in SHAPES]
    if unknown:
        print(f"{parser.prog}: error: unknown shape ids {unknown}; choose from {list(SHAPES)}", file=sys.stderr)
        return 2
    if args.scaling:
        try:
            counts = [int(c) for c in args.thread_counts.split(",")] if args.thread_counts else default_thread_counts()
        except ValueError:
            counts = []
        if not counts or min(counts) < 1:
            print(f"{parser.prog}: error: --thread-counts must be positive integers separated by commas, "
                  f"got {args.thread_counts!r}",
                  file=sys.stderr)
            return 2
        results = scaling(ids, counts, args.reps, args.out)
    else:
        results = run(ids, args.threads, args.reps, args.out, memory=not args.no_memory,
                      stream=not args.no_stream, quant=not args.no_quant)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
