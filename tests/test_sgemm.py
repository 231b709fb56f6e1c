"""Our float32 GEMM (cpp/sgemm.cpp) against float64 NumPy on the shapes where its tiling
changes: rows that fill the big register tile, the short tile and padded panels (every m from
1 to 40 and around the 144-row block), columns around the panel width, depths around the
depth block, transposed operands, accumulation, and every thread split."""
import numpy as np
import pytest

import lstm_native as ln

core = ln._core


def operands(m, n, k, trans_a, trans_b, seed):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((k, m) if trans_a else (m, k)).astype(np.float32)
    b = rng.standard_normal((n, k) if trans_b else (k, n)).astype(np.float32)
    exact = (a.T if trans_a else a).astype(np.float64) @ (b.T if trans_b else b).astype(np.float64)
    return a, b, exact


def check(got, exact, k):
    # float32 sums of k products: error grows with sqrt(k) times the size of the terms
    assert got.dtype == np.float32
    assert np.abs(got - exact).max() <= 2e-6 * np.sqrt(k) * max(1.0, np.abs(exact).max())


@pytest.mark.parametrize("m", list(range(1, 41)) + [95, 143, 144, 145, 146, 150, 290])
def test_every_row_count(m, threads):
    for n, k, ta, tb in [(16, 64, False, False), (33, 129, True, False), (7, 5, False, True)]:
        a, b, exact = operands(m, n, k, ta, tb, seed=m)
        check(core.matmul(a, b, trans_a=ta, trans_b=tb), exact, k)


@pytest.mark.parametrize("n", [1, 15, 16, 17, 31, 32, 48, 65, 200])
@pytest.mark.parametrize("k", [1, 383, 384, 385, 1000])
def test_columns_and_depths(n, k):
    for m, ta, tb in [(8, False, False), (22, True, True), (6, False, True)]:
        a, b, exact = operands(m, n, k, ta, tb, seed=n * 7 + k)
        check(core.matmul(a, b, trans_a=ta, trans_b=tb), exact, k)


def test_accumulates_into_out():
    a, b, exact = operands(10, 20, 30, False, False, seed=3)
    out = np.full((10, 20), 0.5, np.float32)
    core.matmul(a, b, out=out, accumulate=True)
    check(out, exact + 0.5, 30)
