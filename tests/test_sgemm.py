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


# -- every tile shape, whichever this CPU runs -------------------------------------------------
# The AVX-512 build times its two kernels and keeps one; an AVX2 or SSE2 machine runs neither
# 16-lane code. sgemm_products_with_tile runs a named shape's tiling on any CPU (on narrower
# vectors where needed), by both paths: packing as it goes, and op(B) packed in pieces with bias.
TILES = ["16x14", "8x6", "4x6"]
TILE_SHAPES = [  # (m, n, k): rows around each tile's full and short heights and its 24-panel A
                 # block (336 / 144), columns around 8 / 16 / 32 panels, depths around 384
    (1, 1, 1), (4, 8, 3), (6, 16, 5), (7, 17, 9), (8, 31, 33), (13, 32, 64), (14, 33, 100), (15, 48, 129),
    (22, 65, 383), (29, 7, 385), (30, 100, 17), (144, 40, 20), (145, 24, 50), (336, 33, 12), (337, 70, 770),
]


@pytest.mark.parametrize("tile", TILES)
@pytest.mark.parametrize("m,n,k", TILE_SHAPES)
def test_each_tile_shape_matches_float64(tile, m, n, k):
    for ta, tb, alpha, beta, with_bias, parts in [(False, False, 1.0, 0.0, True, 1), (True, True, 0.5, 2.0, False, 3),
                                                  (False, True, -1.5, 1.0, True, 2), (True, False, 1.0, 0.0, False, 5)]:
        a, b, product = operands(m, n, k, ta, tb, seed=m * 31 + n * 7 + k)
        rng = np.random.default_rng(k)
        c0 = rng.standard_normal((m, n)).astype(np.float32)
        bias = rng.standard_normal(n).astype(np.float32) if with_bias else None
        c, c_packed = core.sgemm_products_with_tile(tile, a, b, ta, tb, alpha, beta, c0, bias, parts)
        check(c, alpha * product + beta * c0.astype(np.float64), k)
        # gemm_packed: bias replaces beta * C (the recurrent layers' gates = x W^T + b)
        expected = alpha * product + (bias.astype(np.float64) if with_bias else beta * c0.astype(np.float64))
        check(c_packed, expected, k)


@pytest.mark.parametrize("m,n,k", [(14, 32, 384), (37, 70, 500), (300, 129, 40)])
def test_tile_shapes_sum_in_the_same_order(m, n, k):
    """Every shape adds the k products of an element in the same order, so the kernel the
    AVX-512 build picks by timing cannot change a result (alpha 1, no beta: the edge tiles'
    scalar stores round the same way as the full tiles' vector stores)."""
    a, b, _ = operands(m, n, k, False, True, seed=5)
    zeros = np.zeros((m, n), np.float32)
    bias = np.random.default_rng(1).standard_normal(n).astype(np.float32)
    results = [core.sgemm_products_with_tile(t, a, b, False, True, 1.0, 0.0, zeros, bias, 2) for t in TILES]
    for c, c_packed in results[1:]:
        np.testing.assert_array_equal(c, results[0][0])
        np.testing.assert_array_equal(c_packed, results[0][1])


def test_forced_tile_keeps_results_and_packed_weights_their_kernel():
    """set_sgemm_tile switches the AVX-512 build's kernel (a no-op elsewhere); a recurrent
    layer's output does not depend on it."""
    x = np.random.default_rng(2).standard_normal((5, 9, 12)).astype(np.float32)
    lstm = ln.LSTM(12, 40, batch_first=True, seed=3)
    try:
        outs = []
        for choice in ("wide", "narrow", "auto"):
            core.set_sgemm_tile(choice)
            assert core.sgemm_kernel() in ("16 lanes, 14x32 tile", "8 lanes, 6x16 tile", "4 lanes, 6x8 tile")
            outs.append(lstm.predict(x))
        np.testing.assert_array_equal(outs[0], outs[1])
        np.testing.assert_array_equal(outs[0], outs[2])
    finally:
        core.set_sgemm_tile("auto")
    with pytest.raises(ValueError, match="'auto', 'wide' or 'narrow'"):
        core.set_sgemm_tile("fastest")


def test_tile_entry_checks_its_arguments():
    a = np.ones((3, 4), np.float32)
    with pytest.raises(ValueError, match="tile must be"):
        core.sgemm_products_with_tile("9x9", a, a.T.copy(), False, False, 1.0, 0.0, np.zeros((3, 3), np.float32), None, 1)
    with pytest.raises(ValueError, match="inner dimensions"):
        core.sgemm_products_with_tile("8x6", a, a, False, False, 1.0, 0.0, np.zeros((3, 4), np.float32), None, 1)
    with pytest.raises(TypeError, match="float32"):
        core.sgemm_products_with_tile("8x6", a.astype(np.float64), a.T.copy(), False, False, 1.0, 0.0,
                                      np.zeros((3, 3), np.float32), None, 1)
