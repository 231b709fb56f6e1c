"""Soak (issue 15, bar 6): many predict calls, fit batches and stream steps on a small model do not
grow resident memory. A leak of one buffer per call (a prepared-weights copy, a workspace, a
history entry) would grow it by far more than the bound: 10^4 calls x a 4 KiB buffer is 40 MiB.

The counts are the issue's full run (10^4 predict calls, 10^3 fit batches): on a small model they
take a few seconds. LSTM_NATIVE_SOAK_SCALE=0.1 runs a tenth (a slow sanitizer build)."""
import gc
import os
import resource
import sys

import numpy as np
import pytest

import lstm_native as ln

SCALE = float(os.environ.get("LSTM_NATIVE_SOAK_SCALE", "1"))
BOUND = 5 * 2**20    # bytes of resident memory a soak may add after its warm-up
PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def resident_bytes() -> int:
    """The process's resident set now (Linux), else its peak so far (which a leak grows too)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * PAGE
    except OSError:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024


def growth(work, warmup: int, count: int) -> int:
    """Resident bytes added by `count` calls of work(i) after `warmup` calls (caches, pools and
    the allocator's arenas settle in the warm-up)."""
    for i in range(warmup):
        work(i)
    gc.collect()
    before = resident_bytes()
    for i in range(count):
        work(i)
    gc.collect()
    return resident_bytes() - before


def small_model(cell="LSTM"):
    layer = ln.LSTM if cell == "LSTM" else ln.GRU
    return ln.Sequential(layer(6, 32, batch_first=True, seed=0), ln.LastTimestep(), ln.Linear(32, 2, seed=1))


def counted(n):
    return max(1, int(n * SCALE))


@pytest.mark.parametrize("cell", ["LSTM", "GRU"])
def test_ten_thousand_predict_calls_keep_memory_flat(cell):
    rng = np.random.default_rng(0)
    model = small_model(cell)
    batches = [rng.standard_normal((b, 10, 6)).astype(np.float32) for b in (1, 3, 16)]
    lengths = [rng.integers(1, 11, len(x)) for x in batches]
    outputs = []

    def work(i):
        k = i % 3
        out = model.predict(batches[k], lengths=lengths[k] if i % 2 else None)
        outputs.append(out[0, 0])       # the caller keeps a scalar: results must not pin buffers
        if len(outputs) > 100:
            outputs.clear()

    added = growth(work, warmup=300, count=counted(10_000))
    assert added < BOUND, f"{counted(10_000)} predict calls added {added / 2**20:.2f} MiB"


def test_a_thousand_fit_batches_keep_memory_flat():
    rng = np.random.default_rng(1)
    model = small_model()
    X = rng.standard_normal((200, 10, 6)).astype(np.float32)
    y = rng.standard_normal((200, 2)).astype(np.float32)
    optimizer = ln.optim.Adam(model.parameters(), lr=1e-3)

    def work(i):    # one epoch of 25 batches of 8, a changing learning rate and clipping
        model.fit(X, y, optimizer=optimizer, epochs=1, batch_size=8, verbose=0, clip_grad_norm=1.0,
                  lengths=rng.integers(1, 11, len(X)))

    epochs = counted(1_000) // 25 + 1
    added = growth(work, warmup=4, count=epochs)
    assert added < BOUND, f"{epochs * 25} fit batches added {added / 2**20:.2f} MiB"
    assert np.isfinite(model.predict(X)).all()


def test_ten_thousand_stream_steps_and_quantised_predictions_keep_memory_flat():
    rng = np.random.default_rng(2)
    model = small_model()
    int8 = ln.quantize_dynamic(model)
    stream = model.stream()
    x_t = rng.standard_normal((2, 6)).astype(np.float32)
    x = rng.standard_normal((4, 10, 6)).astype(np.float32)

    def work(i):
        stream.step(x_t)
        if i % 10 == 0:
            int8.predict(x)
        if i % 1000 == 999:
            stream.reset()

    added = growth(work, warmup=500, count=counted(10_000))
    assert added < BOUND, f"{counted(10_000)} stream steps added {added / 2**20:.2f} MiB"
