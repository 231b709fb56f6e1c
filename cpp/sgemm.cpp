#include "sgemm.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#if defined(__x86_64__) || defined(__SSE__)
#include <immintrin.h>
#endif

namespace lstm_native::sgemm {
namespace {

// GCC vector types of 4, 8 and 16 floats (a vector_size that depends on a template parameter
// is not honoured, so each width is spelled out).
template <int Lanes> struct VecOf;
template <> struct VecOf<4> { typedef float type __attribute__((vector_size(16))); };
template <> struct VecOf<8> { typedef float type __attribute__((vector_size(32))); };
template <> struct VecOf<16> { typedef float type __attribute__((vector_size(64))); };

// A micro-kernel shape: Lanes floats per vector, MR rows x NV vectors in registers, and a
// shorter tile of SmallMR rows for what is left of a block's rows (see big_rows()).
template <int Lanes, int MR, int NV, int SmallMR>
struct Kernel {
  static constexpr int kLanes = Lanes, kMR = MR, kNV = NV, kNR = NV * Lanes, kSmallMR = SmallMR;
  static constexpr Index kKC = 384;        // most depth per packed block: panels stay in L1/L2
  static constexpr Index kMC = MR * 24;    // rows of a packed A block: stays in L2
  static constexpr Index kNC = kNR * 128;  // columns of a packed B block: stays in L3
  using Vec = typename VecOf<Lanes>::type;

  static Vec load(const float* p) {
    Vec v;
    std::memcpy(&v, p, sizeof v);
    return v;
  }
  static void store(float* p, Vec v) { std::memcpy(p, &v, sizeof v); }
  // x in every lane: one broadcast (`Vec{} + x` would cost an add, as 0 + x may differ from
  // x, and a lane-by-lane fill compiles to inserts).
  static Vec splat(const float* x) {
    if constexpr (Lanes == 16) {
#if defined(__AVX512F__)
      return _mm512_set1_ps(*x);
#endif
    } else if constexpr (Lanes == 8) {
#if defined(__AVX__)
      return _mm256_broadcast_ss(x);
#endif
    } else if constexpr (Lanes == 4) {
#if defined(__SSE__)
      return _mm_set1_ps(*x);
#endif
    }
    Vec v;
    for (int i = 0; i < Lanes; ++i) v[i] = *x;
    return v;
  }

  // How many of a block's mc rows go in MR-row panels; SmallMR-row panels take the rest (the
  // last one zero-padded). Chosen to pad the fewest rows: with 6 and 4 on AVX2, the 8 or 16
  // rows of a thread's share of a small batch run as 4 + 4 or 6 + 6 + 4 instead of 6 + 6 or
  // 6 + 6 + 6 (33% or 11% of the products on padding rows).
  static Index big_rows(Index mc) {
    Index best = (mc + MR - 1) / MR * MR, best_big = best;  // MR panels only
    for (Index big = mc / MR * MR; big >= 0; big -= MR) {
      const Index padded = big + (mc - big + SmallMR - 1) / SmallMR * SmallMR;
      if (padded < best) best = padded, best_big = big;
      if (mc - big >= MR * SmallMR) break;  // more small panels only pad more
    }
    return std::min(best_big, mc);
  }
  static int panel_height(Index r, Index big) { return r < big ? MR : SmallMR; }

  // C[0..Rows, 0..NR) = alpha * A_panel B_panel + (beta * C | bias) over depth kc, writing only
  // rows < rows and columns < cols. a: kc x Rows (k-major), b: kc x NR (k-major), both aligned.
  // (kBias is a template parameter: a runtime test would cost registers the tile needs.)
  template <bool kBias, int Rows>
  static void micro(Index kc, const float* __restrict a, const float* __restrict b, float* c, Index ldc,
                    float alpha, float beta, const float* bias, Index rows, Index cols) {
#pragma GCC unroll 16
    for (int i = 0; i < Rows; ++i) __builtin_prefetch(c + i * ldc, 1);
    Vec acc[Rows][NV];
#pragma GCC unroll 16
    for (int i = 0; i < Rows; ++i)
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[i][v] = Vec{};
#pragma GCC unroll 4
    for (Index p = 0; p < kc; ++p) {
      Vec bv[NV];
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) bv[v] = *reinterpret_cast<const Vec*>(b + p * kNR + v * Lanes);
#pragma GCC unroll 16
      for (int i = 0; i < Rows; ++i) {
        const Vec av = splat(a + p * Rows + i);
#pragma GCC unroll 4
        for (int v = 0; v < NV; ++v) acc[i][v] += av * bv[v];
      }
    }
    if (rows == Rows && cols == kNR) {
#pragma GCC unroll 16
      for (int i = 0; i < Rows; ++i)
#pragma GCC unroll 4
        for (int v = 0; v < NV; ++v) {
          float* out = c + i * ldc + v * Lanes;
          Vec r = acc[i][v] * alpha;
          if constexpr (kBias) r += load(bias + v * Lanes);
          else if (beta != 0.f) r += load(out) * beta;
          store(out, r);
        }
      return;
    }
    alignas(64) float tile[Rows][kNR];
#pragma GCC unroll 16
    for (int i = 0; i < Rows; ++i)
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) store(&tile[i][v * Lanes], acc[i][v]);  // (unrolled: acc stays in registers)
    for (Index i = 0; i < rows; ++i)
      for (Index j = 0; j < cols; ++j) {
        float& out = c[i * ldc + j];
        if constexpr (kBias) out = alpha * tile[i][j] + bias[j];
        else out = alpha * tile[i][j] + (beta != 0.f ? beta * out : 0.f);
      }
  }

  // op(A) rows [i0, i0 + mc) x depth [p0, p0 + kc) as panels of MR, then SmallMR, rows
  // (big_rows()), zero-padded.
  static void pack_a(bool trans, const float* a, Index lda, Index i0, Index mc, Index p0, Index kc, float* out) {
    const Index big = big_rows(mc);
    if (trans) {  // op(A)(i, p) = a[p * lda + i]
      // Row by row of a: each is read once, front to back, and dealt out to the panels. (Panel
      // by panel instead read 56 bytes per row of a, 4 KB apart: the weight gradients' dG^T
      // spent more time in those cache misses than in packing.)
      for (Index p = 0; p < kc; ++p) {
        const float* src = a + (p0 + p) * lda + i0;
        for (Index r = 0, h; r < mc; r += h) {
          h = panel_height(r, big);
          float* dst = out + r * kc + p * h;
          if (h == MR && r + MR <= mc) {
            std::memcpy(dst, src + r, MR * sizeof(float));
          } else if (h == SmallMR && r + SmallMR <= mc) {
            std::memcpy(dst, src + r, SmallMR * sizeof(float));
          } else {
            const Index rows = std::min<Index>(h, mc - r);
            Index i = 0;
            for (; i < rows; ++i) dst[i] = src[r + i];
            for (; i < h; ++i) dst[i] = 0.f;
          }
        }
      }
      return;
    }
    for (Index r = 0, h; r < mc; r += h) {  // op(A)(i, p) = a[i * lda + p]
      h = panel_height(r, big);
      const Index rows = std::min<Index>(h, mc - r);
      float* panel = out + r * kc;
      for (Index i = 0; i < rows; ++i) {
        const float* src = a + (i0 + r + i) * lda + p0;
        for (Index p = 0; p < kc; ++p) panel[p * h + i] = src[p];
      }
      for (Index i = rows; i < h; ++i)
        for (Index p = 0; p < kc; ++p) panel[p * h + i] = 0.f;
    }
  }

  // op(B) depth [p0, p0 + kc) x columns [j0, j0 + nc) as NR-column panels, zero-padded.
  static void pack_b(bool trans, const float* b, Index ldb, Index p0, Index kc, Index j0, Index nc, float* out) {
    for (Index j = 0; j < nc; j += kNR) {
      const Index cols = std::min<Index>(kNR, nc - j);
      float* panel = out + j * kc;
      if (!trans) {  // op(B)(p, j) = b[p * ldb + j]
        for (Index p = 0; p < kc; ++p) {
          const float* src = b + (p0 + p) * ldb + j0 + j;
          float* dst = panel + p * kNR;
          Index q = 0;
          for (; q < cols; ++q) dst[q] = src[q];
          for (; q < kNR; ++q) dst[q] = 0.f;
        }
      } else {       // op(B)(p, j) = b[j * ldb + p]
        for (Index q = 0; q < cols; ++q) {
          const float* src = b + (j0 + j + q) * ldb + p0;
          for (Index p = 0; p < kc; ++p) panel[p * kNR + q] = src[p];
        }
        for (Index q = cols; q < kNR; ++q)
          for (Index p = 0; p < kc; ++p) panel[p * kNR + q] = 0.f;
      }
    }
  }

  // A packed A block (mc rows) times nc columns of packed B panels (depth kc).
  static void macro(Index mc, Index nc, Index kc, const float* a_packed, const float* b_panels, float alpha,
                    float beta, const float* bias, float* c, Index ldc) {
    const Index big = big_rows(mc);
    for (Index j = 0; j < nc; j += kNR)
      for (Index i = 0, h; i < mc; i += h) {
        h = panel_height(i, big);
        const Index rows = std::min<Index>(h, mc - i), cols = std::min<Index>(kNR, nc - j);
        const float* a = a_packed + i * kc;
        const float* b = b_panels + j * kc;
        float* out = c + i * ldc + j;
        if (h == MR) {
          if (bias) micro<true, MR>(kc, a, b, out, ldc, alpha, beta, bias + j, rows, cols);
          else micro<false, MR>(kc, a, b, out, ldc, alpha, beta, nullptr, rows, cols);
        } else {
          if (bias) micro<true, SmallMR>(kc, a, b, out, ldc, alpha, beta, bias + j, rows, cols);
          else micro<false, SmallMR>(kc, a, b, out, ldc, alpha, beta, nullptr, rows, cols);
        }
      }
  }

  // Depth blocks of equal size, at most kKC (K = 512 gives 2 x 256, not 384 + a thin 128).
  static Index depth_block(Index k) {
    const Index blocks = std::max<Index>(1, (k + kKC - 1) / kKC);
    return (k + blocks - 1) / blocks;
  }
  // Layout of a fully packed op(B): depth blocks of depth_block(k) rows, each holding all
  // column panels.
  static Index packed_size(Index k, Index n) {
    const Index kc = depth_block(k);
    return ((k + kc - 1) / kc) * kc * ((n + kNR - 1) / kNR) * kNR;
  }
  static Index block_offset(Index p0, Index n) { return p0 * ((n + kNR - 1) / kNR) * kNR; }

  static void pack_all(bool trans, const float* b, Index ldb, Index k, Index n, float* out) { pack_panels(trans, b, ldb, k, n, 0, 1, out); }

  // Panels [part / parts of them] of every depth block.
  static void pack_panels(bool trans, const float* b, Index ldb, Index k, Index n, int part, int parts, float* out) {
    const Index panels = (n + kNR - 1) / kNR;
    const Index first = panels * part / parts, last = panels * (part + 1) / parts;
    if (first >= last) return;
    const Index j0 = first * kNR, j1 = std::min(n, last * kNR);
    const Index kc = depth_block(k);
    for (Index p0 = 0; p0 < k; p0 += kc) {
      const Index depth = std::min(kc, k - p0);
      pack_b(trans, b, ldb, p0, depth, j0, j1 - j0, out + block_offset(p0, n) + j0 * depth);
    }
  }

  // One row of op(A) (contiguous over the depth) times the panels of a depth block, c[0..nc) =
  // alpha * a b + (beta * c | bias): for products of fewer rows than the small tile (a lone
  // sequence's step), which a tile would run on mostly zero padding. Four panels at a time keep
  // four independent FMA chains in flight; each element still sums its depth in order, as the
  // tiles do, so the result does not depend on which path a row took.
  static void row_times_panels(Index kc, Index nc, const float* a, const float* b_panels, float alpha, float beta,
                               const float* bias, float* c) {
    constexpr int kPanels = 4;
    for (Index j = 0; j < nc; j += kPanels * kNR) {
      const int panels = static_cast<int>(std::min<Index>(kPanels, (nc - j + kNR - 1) / kNR));
      Vec acc[kPanels][NV];
#pragma GCC unroll 4
      for (int q = 0; q < kPanels; ++q)
#pragma GCC unroll 4
        for (int v = 0; v < NV; ++v) acc[q][v] = Vec{};
      const float* b = b_panels + j * kc;
      if (panels == kPanels) {
        for (Index p = 0; p < kc; ++p) {
          const Vec av = splat(a + p);
#pragma GCC unroll 4
          for (int q = 0; q < kPanels; ++q)
#pragma GCC unroll 4
            for (int v = 0; v < NV; ++v) acc[q][v] += av * load(b + q * kNR * kc + p * kNR + v * Lanes);
        }
      } else {
        for (Index p = 0; p < kc; ++p) {
          const Vec av = splat(a + p);
          for (int q = 0; q < panels; ++q)
#pragma GCC unroll 4
            for (int v = 0; v < NV; ++v) acc[q][v] += av * load(b + q * kNR * kc + p * kNR + v * Lanes);
        }
      }
      for (int q = 0; q < panels; ++q) {
        alignas(64) float row[kNR];
#pragma GCC unroll 4
        for (int v = 0; v < NV; ++v) store(row + v * Lanes, acc[q][v]);
        const Index j0 = j + q * kNR, cols = std::min<Index>(kNR, nc - j0);
        for (Index jj = 0; jj < cols; ++jj) {
          float& out = c[j0 + jj];
          if (bias) out = alpha * row[jj] + bias[j0 + jj];
          else out = alpha * row[jj] + (beta != 0.f ? beta * out : 0.f);
        }
      }
    }
  }

  static void gemm_packed(Index m, Index k, Index n, bool trans_a, const float* a, Index lda, const float* packed,
                          float alpha, float beta, float* c, Index ldc, const float* bias, float* a_packed) {
    if (m < SmallMR && !trans_a) {   // a row or a few: no tile, no packing of A
      const Index block = depth_block(k);
      for (Index i = 0; i < m; ++i)
        for (Index p0 = 0; p0 < k; p0 += block) {
          const bool first = p0 == 0;
          row_times_panels(std::min(block, k - p0), n, a + i * lda + p0, packed + block_offset(p0, n), alpha,
                           first ? beta : 1.f, first ? bias : nullptr, c + i * ldc);
        }
      return;
    }
    for (Index ic = 0; ic < m; ic += kMC) {
      const Index mc = std::min(kMC, m - ic);
      const Index block = depth_block(k);
      for (Index p0 = 0; p0 < k; p0 += block) {
        const Index kc = std::min(block, k - p0);
        pack_a(trans_a, a, lda, ic, mc, p0, kc, a_packed);
        const bool first = p0 == 0;
        macro(mc, n, kc, a_packed, packed + block_offset(p0, n), alpha, first ? beta : 1.f, first ? bias : nullptr,
              c + ic * ldc, ldc);
      }
    }
  }

  static void gemm(bool trans_a, bool trans_b, Index m, Index n, Index k, float alpha, const float* a, Index lda,
                   const float* b, Index ldb, float beta, float* c, Index ldc, float* a_packed, float* b_packed) {
    for (Index jc = 0; jc < n; jc += kNC) {
      const Index nc = std::min(kNC, n - jc);
      const Index block = depth_block(k);
      for (Index p0 = 0; p0 < k; p0 += block) {
        const Index kc = std::min(block, k - p0);
        pack_b(trans_b, b, ldb, p0, kc, jc, nc, b_packed);
        for (Index ic = 0; ic < m; ic += kMC) {
          const Index mc = std::min(kMC, m - ic);
          pack_a(trans_a, a, lda, ic, mc, p0, kc, a_packed);
          macro(mc, nc, kc, a_packed, b_packed, alpha, p0 == 0 ? beta : 1.f, nullptr, c + ic * ldc + jc, ldc);
        }
      }
    }
  }
};

// The three tile shapes, one per register width (accumulators + B vectors + one broadcast).
using Tile512 = Kernel<16, 14, 2, 8>;  // 28 + 2 + 1 of 32 registers
using Tile256 = Kernel<8, 6, 2, 4>;    // 12 + 2 + 1 of 16 registers; 4 rows: 8 + 2 + 1
using Tile128 = Kernel<4, 6, 2, 4>;

#if defined(__AVX512F__)
using Wide = Tile512;
using Narrow = Tile256;
#elif defined(__AVX__)
using Wide = Tile256;
using Narrow = Wide;
#else
using Wide = Tile128;
using Narrow = Wide;
#endif

// Per-thread scratch for packed A and B blocks, grown on demand and kept.
struct Scratch {
  Buffer a, b;
  Index a_size = 0, b_size = 0;
  float* get(Buffer& buf, Index& size, Index floats) {
    if (floats > size) {
      buf = allocate(floats);
      size = floats;
    }
    return buf.get();
  }
};
thread_local Scratch scratch;

// Seconds for one product shaped like a recurrent step's, the calls that dominate training:
// 32 rows (a thread's share of a batch of 64) x 512 columns (4 gates of 128) x depth 256,
// op(B) packed beforehand, the same product for both kernels. (Timing each kernel on its own
// block size instead compared 336 x 512 against 144 x 256 products and always picked the
// smaller: the 8-lane kernel, half the speed of the 16-lane one on CPUs with two 512-bit FMA units.)
template <class K>
double time_step_product() {
  const Index m = 32, n = 512, k = 256;
  std::vector<float> a(m * k, 0.5f), b(k * n, 0.25f), c(m * n);
  Buffer pa = allocate(K::kMC * K::kKC), pb = allocate(K::packed_size(k, n));
  K::pack_all(false, b.data(), n, k, n, pb.get());
  double best = 1e30;
  for (int rep = 0; rep < 20; ++rep) {
    const auto t0 = std::chrono::steady_clock::now();
    K::gemm_packed(m, k, n, false, a.data(), k, pb.get(), 1.f, 0.f, c.data(), n, nullptr, pa.get());
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return best;
}

bool narrow_is_faster() {
  static const bool narrow = [] {
    if constexpr (std::is_same_v<Wide, Narrow>) return false;
    time_step_product<Wide>();  // warm up caches and clocks
    return time_step_product<Narrow>() < 0.97 * time_step_product<Wide>();
  }();
  return narrow;
}

std::atomic<int> forced_tile{0};  // 0: timed choice, 1: wide, 2: narrow (set_tile())

bool use_narrow() {
  const int forced = forced_tile.load(std::memory_order_relaxed);
  return forced == 0 ? narrow_is_faster() : forced == 2;
}

template <class Fn>
decltype(auto) dispatch(bool narrow, Fn&& fn) {
  if (narrow) return fn(Narrow{});
  return fn(Wide{});
}
template <class Fn>
decltype(auto) dispatch(Fn&& fn) {
  return dispatch(use_narrow(), std::forward<Fn>(fn));
}

}  // namespace

Buffer allocate(Index floats) {
  const std::size_t bytes = ((std::max<Index>(floats, 1) * sizeof(float) + 63) / 64) * 64;
  float* p = static_cast<float*>(std::aligned_alloc(64, bytes));
  if (!p) throw std::bad_alloc();
  return Buffer(p);
}

const char* kernel_name() {
  return dispatch([](auto k) {
    using K = decltype(k);
    return K::kLanes == 16 ? "16 lanes, 14x32 tile" : K::kLanes == 8 ? "8 lanes, 6x16 tile" : "4 lanes, 6x8 tile";
  });
}

void set_tile(const std::string& choice) {
  if (choice == "auto") forced_tile = 0;
  else if (choice == "wide") forced_tile = 1;
  else if (choice == "narrow") forced_tile = 2;
  else throw std::invalid_argument("sgemm tile must be 'auto', 'wide' or 'narrow', got '" + choice + "'");
}

Index panel_width() {
  return dispatch([](auto k) { return Index(decltype(k)::kNR); });
}

void PackedB::reserve(Index k, Index n) {
  narrow_ = use_narrow();  // packed for this kernel, multiplied by it even if the choice changes
  dispatch(narrow_, [&](auto kernel) {
    using K = decltype(kernel);
    k_ = k;
    n_ = n;
    const Index floats = K::packed_size(k, n);
    if (floats > capacity_) {
      data_ = allocate(floats);
      capacity_ = floats;
    }
  });
}

void PackedB::pack_part(bool trans, const float* b, Index ldb, int part, int parts) {
  dispatch(narrow_, [&](auto kernel) {
    decltype(kernel)::pack_panels(trans, b, ldb, k_, n_, part, parts, data_.get());
  });
}

void gemm_packed(Index m, bool trans_a, const float* a, Index lda, const PackedB& b, float alpha, float beta, float* c,
                 Index ldc, const float* bias) {
  const Index k = b.rows(), n = b.cols();
  if (m <= 0 || n <= 0) return;
  if (k <= 0) {
    for (Index i = 0; i < m; ++i)
      for (Index j = 0; j < n; ++j)
        c[i * ldc + j] = (bias ? bias[j] : 0.f) + (beta == 0.f ? 0.f : beta * c[i * ldc + j]);
    return;
  }
  dispatch(b.narrow(), [&](auto kernel) {
    using K = decltype(kernel);
    float* a_packed = scratch.get(scratch.a, scratch.a_size, K::kMC * K::kKC);
    K::gemm_packed(m, k, n, trans_a, a, lda, b.data(), alpha, beta, c, ldc, bias, a_packed);
  });
}

void gemm(bool trans_a, bool trans_b, Index m, Index n, Index k, float alpha, const float* a, Index lda, const float* b,
          Index ldb, float beta, float* c, Index ldc) {
  if (m <= 0 || n <= 0) return;
  if (k <= 0) {
    for (Index i = 0; i < m; ++i)
      for (Index j = 0; j < n; ++j) c[i * ldc + j] = beta == 0.f ? 0.f : beta * c[i * ldc + j];
    return;
  }
  dispatch([&](auto kernel) {
    using K = decltype(kernel);
    float* a_packed = scratch.get(scratch.a, scratch.a_size, K::kMC * K::kKC);
    float* b_packed = scratch.get(scratch.b, scratch.b_size, K::kKC * K::kNC);
    K::gemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, a_packed, b_packed);
  });
}

namespace {
// One tile shape's two paths on fresh buffers: gemm() packing as it goes, and op(B) packed
// whole (in `parts` pieces, as a team packs it) then gemm_packed() with the bias.
template <class K>
void products_with(bool trans_a, bool trans_b, Index m, Index n, Index k, float alpha, const float* a, Index lda,
                   const float* b, Index ldb, float beta, float* c, float* c_packed, const float* bias, int parts) {
  Buffer pa = allocate(K::kMC * K::kKC), pb = allocate(K::kKC * K::kNC);
  K::gemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, n, pa.get(), pb.get());
  Buffer whole = allocate(K::packed_size(k, n));
  for (int part = 0; part < parts; ++part) K::pack_panels(trans_b, b, ldb, k, n, part, parts, whole.get());
  K::gemm_packed(m, k, n, trans_a, a, lda, whole.get(), alpha, beta, c_packed, n, bias, pa.get());
}
}  // namespace

void products_with_tile(const std::string& tile, bool trans_a, bool trans_b, Index m, Index n, Index k, float alpha,
                        const float* a, Index lda, const float* b, Index ldb, float beta, float* c, float* c_packed,
                        const float* bias, int parts) {
  if (m <= 0 || n <= 0 || k <= 0 || parts < 1) throw std::invalid_argument("products_with_tile: empty product");
  if (tile == "16x14") products_with<Tile512>(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, c_packed, bias, parts);
  else if (tile == "8x6") products_with<Tile256>(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, c_packed, bias, parts);
  else if (tile == "4x6") products_with<Tile128>(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, c_packed, bias, parts);
  else throw std::invalid_argument("tile must be '16x14', '8x6' or '4x6', got '" + tile + "'");
}

}  // namespace lstm_native::sgemm
