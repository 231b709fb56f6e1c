// The int8 GEMM of dynamic quantisation (see qgemm.h for the number formats).
//
// Dot-product form: both operands are row-major with the depth contiguous, so a tile of
// 2 activation rows x 4 weight rows keeps 8 vector accumulators and reads each 32-byte chunk
// of those 6 rows once. AVX2: vpmaddubsw (u8 x s8 -> pairs summed into int16, which 7-bit
// activations keep from saturating), vpmaddwd by ones (-> int32), vpaddd; on CPUs with
// AVX-512 VNNI the one vpdpbusd that does all three (qgemm_vnni.cpp). Elsewhere plain loops,
// the same exact integers.
#include "qgemm.h"

#include "qgemm_vnni.h"
#include "threads.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>

#if defined(__AVX2__)
#include <immintrin.h>
#endif

namespace lstm_native {
namespace qgemm {

namespace {
// 1: the CPU has AVX-512 VNNI and VL and this build compiled the kernels for them; 0: not, or
// turned off by set_vnni(false) (to compare the two paths on one machine).
std::atomic<int> vnni_state{-1};

bool use_vnni() {
  int state = vnni_state.load(std::memory_order_relaxed);
  if (state < 0) {
#if defined(__AVX2__) && defined(__GNUC__)
    state = vnni::compiled() && __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512vl");
#else
    state = 0;
#endif
    vnni_state.store(state, std::memory_order_relaxed);
  }
  return state == 1;
}
}  // namespace

bool set_vnni(bool enabled) {
  vnni_state.store(-1);
  const bool available = use_vnni();
  vnni_state.store(available && enabled ? 1 : 0);
  return available;
}

const char* kernel_name() {
#if defined(__AVX2__)
  return use_vnni() ? "avx512-vnni" : "avx2";
#else
  return "portable";
#endif
}

void quantize_weights(const float* w, Index n, Index k, Index ldw, int8_t* w_q, float* scale, int32_t* row_sum) {
  const Index kp = padded_depth(k);
  for (Index r = 0; r < n; ++r) {
    const float* row = w + r * ldw;
    float amax = 0.f;
    for (Index j = 0; j < k; ++j) amax = std::max(amax, std::fabs(row[j]));
    const float s = amax > 0.f ? amax / 127.f : 1.f;
    int32_t sum = 0;
    int8_t* q = w_q + r * kp;
    for (Index j = 0; j < k; ++j) {
      const int v = static_cast<int>(std::nearbyint(row[j] / s));
      q[j] = static_cast<int8_t>(std::clamp(v, -127, 127));
      sum += q[j];
    }
    std::fill(q + k, q + kp, int8_t(0));
    scale[r] = s;
    row_sum[r] = sum;
  }
}

namespace {

// One row's range, which always holds 0 (so 0 is exact: zero padding, ReLU outputs).
inline void row_range(const float* row, Index k, float* lo_out, float* hi_out) {
  float lo = 0.f, hi = 0.f;
  Index j = 0;
#if defined(__AVX2__)
  __m256 vlo = _mm256_setzero_ps(), vhi = vlo;
  for (; j + 8 <= k; j += 8) {
    const __m256 v = _mm256_loadu_ps(row + j);
    vlo = _mm256_min_ps(vlo, v);
    vhi = _mm256_max_ps(vhi, v);
  }
  alignas(32) float l[8], h[8];
  _mm256_store_ps(l, vlo);
  _mm256_store_ps(h, vhi);
  for (int i = 0; i < 8; ++i) lo = std::min(lo, l[i]), hi = std::max(hi, h[i]);
#endif
  for (; j < k; ++j) lo = std::min(lo, row[j]), hi = std::max(hi, row[j]);
  *lo_out = lo;
  *hi_out = hi;
}

// q = clamp(round_half_even(x * inv) + zero, 0, 127), all in float before the one conversion
// (no int overflow for any finite x); the AVX2 and scalar forms do the same IEEE operations.
inline uint8_t quantize_one(float x, float inv, float zero) {
  const float v = std::nearbyint(x * inv) + zero;
  return static_cast<uint8_t>(std::min(std::max(v, 0.f), float(kActivationMax)));
}

inline void quantize_row(const float* row, Index k, float inv, float zero, uint8_t* q) {
  Index j = 0;
#if defined(__AVX2__)
  const __m256 vinv = _mm256_set1_ps(inv), vzero = _mm256_set1_ps(zero), vmax = _mm256_set1_ps(kActivationMax);
  const __m256 vmin = _mm256_setzero_ps();
  auto eight = [&](const float* p) {
    const __m256 r = _mm256_round_ps(_mm256_mul_ps(_mm256_loadu_ps(p), vinv), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    return _mm256_cvttps_epi32(_mm256_min_ps(_mm256_max_ps(_mm256_add_ps(r, vzero), vmin), vmax));
  };
  const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);   // undoes the packs' lane interleave
  for (; j + 32 <= k; j += 32) {
    const __m256i ab = _mm256_packs_epi32(eight(row + j), eight(row + j + 8));
    const __m256i cd = _mm256_packs_epi32(eight(row + j + 16), eight(row + j + 24));
    const __m256i bytes = _mm256_permutevar8x32_epi32(_mm256_packus_epi16(ab, cd), order);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(q + j), bytes);
  }
#endif
  for (; j < k; ++j) q[j] = quantize_one(row[j], inv, zero);
}

}  // namespace

void quantize_activations(const float* x, Index m, Index k, Index ldx, uint8_t* x_q, float* scale, int32_t* zero) {
  const Index kp = padded_depth(k);
  // Rows are independent: split them over the pool (two vector passes over each input).
  run_team(threads_for(1.0 * m * k, 1e6), [&](int id, int size) {
    Index r0, r1;
    share(m, id, size, &r0, &r1);
    for (Index r = r0; r < r1; ++r) {
      const float* row = x + r * ldx;
      float lo, hi;
      row_range(row, k, &lo, &hi);
      const float s = hi > lo ? (hi - lo) / kActivationMax : 1.f;
      const int z = std::clamp(static_cast<int>(std::nearbyint(-lo / s)), 0, kActivationMax);
      uint8_t* q = x_q + r * kp;
      quantize_row(row, k, 1.f / s, static_cast<float>(z), q);
      std::fill(q + k, q + kp, uint8_t(0));
      scale[r] = s;
      zero[r] = z;
    }
  });
}

namespace {

#if defined(__AVX2__)
inline int32_t horizontal_sum(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(1, 0, 3, 2)));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
  return _mm_cvtsi128_si32(s);
}

// out[0..3] = the lane sums of a, b, c, d (a tree of horizontal adds).
inline void store_sums(__m256i a, __m256i b, __m256i c, __m256i d, int32_t* out) {
  const __m256i t = _mm256_hadd_epi32(_mm256_hadd_epi32(a, b), _mm256_hadd_epi32(c, d));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(out),
                   _mm_add_epi32(_mm256_castsi256_si128(t), _mm256_extracti128_si256(t, 1)));
}

inline __m256i dot_chunk(__m256i acc, __m256i a, __m256i b, __m256i ones) {
  return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(a, b), ones));
}

// out[i * 4 + j] = row a_i . row b_j for 2 activation rows and 4 weight rows.
inline void tile_2x4(const uint8_t* a0, const uint8_t* a1, const int8_t* b, Index kp, int32_t* out) {
  const __m256i ones = _mm256_set1_epi16(1);
  __m256i c00 = _mm256_setzero_si256(), c01 = c00, c02 = c00, c03 = c00, c10 = c00, c11 = c00, c12 = c00,
          c13 = c00;
#pragma GCC unroll 4
  for (Index k = 0; k < kp; k += kDepthStep) {
    const __m256i x0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a0 + k));
    const __m256i x1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a1 + k));
    __m256i w = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + k));
    c00 = dot_chunk(c00, x0, w, ones);
    c10 = dot_chunk(c10, x1, w, ones);
    w = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + kp + k));
    c01 = dot_chunk(c01, x0, w, ones);
    c11 = dot_chunk(c11, x1, w, ones);
    w = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 2 * kp + k));
    c02 = dot_chunk(c02, x0, w, ones);
    c12 = dot_chunk(c12, x1, w, ones);
    w = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 3 * kp + k));
    c03 = dot_chunk(c03, x0, w, ones);
    c13 = dot_chunk(c13, x1, w, ones);
  }
  store_sums(c00, c01, c02, c03, out);
  store_sums(c10, c11, c12, c13, out + 4);
}

inline int32_t dot(const uint8_t* a, const int8_t* b, Index kp) {
  const __m256i ones = _mm256_set1_epi16(1);
  __m256i acc = _mm256_setzero_si256();
  for (Index k = 0; k < kp; k += kDepthStep)
    acc = dot_chunk(acc, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a + k)),
                    _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + k)), ones);
  return horizontal_sum(acc);
}
#else
inline int32_t dot(const uint8_t* a, const int8_t* b, Index kp) {
  int32_t acc = 0;
  for (Index k = 0; k < kp; ++k) acc += int32_t(a[k]) * int32_t(b[k]);
  return acc;
}

inline void tile_2x4(const uint8_t* a0, const uint8_t* a1, const int8_t* b, Index kp, int32_t* out) {
  for (int j = 0; j < 4; ++j) {
    out[j] = dot(a0, b + j * kp, kp);
    out[4 + j] = dot(a1, b + j * kp, kp);
  }
}
#endif

// Calls emit(row, col, value) for every product of rows [m0, m1) x cols [n0, n1), or
// emit4(row, col, values) for four neighbouring columns at once.
template <class Emit, class Emit4>
void products(Index m0, Index m1, Index n0, Index n1, Index kp, const uint8_t* a, const int8_t* b, Emit&& emit,
              Emit4&& emit4) {
  constexpr Index kRowBlock = 128;   // activation rows kept in L2 while the weight rows pass
  if (use_vnni()) {
    int32_t block[kRowBlock * 4];
    for (Index mb = m0; mb < m1; mb += kRowBlock) {
      const Index me = std::min(m1, mb + kRowBlock);
      Index n = n0;
      for (; n + 4 <= n1; n += 4) {
        vnni::rows_x4(a + mb * kp, me - mb, b + n * kp, kp, block);
        for (Index m = mb; m < me; ++m) emit4(m, n, block + (m - mb) * 4);
      }
      for (; n < n1; ++n)
        for (Index m = mb; m < me; ++m) emit(m, n, vnni::dot(a + m * kp, b + n * kp, kp));
    }
    return;
  }
  int32_t tile[8];
  for (Index mb = m0; mb < m1; mb += kRowBlock) {
    const Index me = std::min(m1, mb + kRowBlock);
    Index n = n0;
    for (; n + 4 <= n1; n += 4) {
      Index m = mb;
      for (; m + 2 <= me; m += 2) {
        tile_2x4(a + m * kp, a + (m + 1) * kp, b + n * kp, kp, tile);
        emit4(m, n, tile);
        emit4(m + 1, n, tile + 4);
      }
      for (; m < me; ++m)
        for (int j = 0; j < 4; ++j) emit(m, n + j, dot(a + m * kp, b + (n + j) * kp, kp));
    }
    for (; n < n1; ++n)
      for (Index m = mb; m < me; ++m) emit(m, n, dot(a + m * kp, b + n * kp, kp));
  }
}

// Splits the product over the pool: by activation rows when there are many, else by
// weight rows (in fours, the tile width).
template <class Emit, class Emit4>
void products_parallel(Index m, Index n, Index kp, const uint8_t* a, const int8_t* b, Emit&& emit, Emit4&& emit4) {
  const int threads = threads_for(2.0 * m * n * kp, 4e6);
  run_team(threads, [&](int id, int size) {
    Index b0, b1;
    if (m >= 256 * size) {
      share(m, id, size, &b0, &b1);
      products(b0, b1, 0, n, kp, a, b, emit, emit4);
    } else {
      const Index quads = (n + 3) / 4;
      share(quads, id, size, &b0, &b1);
      products(0, m, b0 * 4, std::min(n, b1 * 4), kp, a, b, emit, emit4);
    }
  });
}

}  // namespace

void gemm_u8s8(Index m, Index n, Index kp, const uint8_t* x_q, const int8_t* w_q, int32_t* c) {
  products_parallel(
      m, n, kp, x_q, w_q, [&](Index i, Index j, int32_t v) { c[i * n + j] = v; },
      [&](Index i, Index j, const int32_t* v) { std::copy_n(v, 4, c + i * n + j); });
}

void gemm_dequantize(Index m, Index n, Index kp, const uint8_t* x_q, const float* x_scale, const int32_t* x_zero,
                     const int8_t* w_q, const float* w_scale, const int32_t* w_row_sum, const float* bias, float* out,
                     Index ldo, bool accumulate) {
  auto emit = [&](Index i, Index j, int32_t v) {
    float y = x_scale[i] * w_scale[j] * static_cast<float>(v - x_zero[i] * w_row_sum[j]);
    if (bias) y += bias[j];
    float& o = out[i * ldo + j];
    o = accumulate ? o + y : y;
  };
#if defined(__AVX2__)
  // Four columns of one row at once: the epilogue would otherwise cost as much as the products.
  auto emit4 = [&](Index i, Index j, const int32_t* v) {
    const __m128i corrected = _mm_sub_epi32(
        _mm_loadu_si128(reinterpret_cast<const __m128i*>(v)),
        _mm_mullo_epi32(_mm_set1_epi32(x_zero[i]), _mm_loadu_si128(reinterpret_cast<const __m128i*>(w_row_sum + j))));
    __m128 y = _mm_mul_ps(_mm_cvtepi32_ps(corrected), _mm_mul_ps(_mm_set1_ps(x_scale[i]), _mm_loadu_ps(w_scale + j)));
    if (bias) y = _mm_add_ps(y, _mm_loadu_ps(bias + j));
    float* o = out + i * ldo + j;
    if (accumulate) y = _mm_add_ps(y, _mm_loadu_ps(o));
    _mm_storeu_ps(o, y);
  };
#else
  auto emit4 = [&](Index i, Index j, const int32_t* v) {
    for (int q = 0; q < 4; ++q) emit(i, j + q, v[q]);
  };
#endif
  products_parallel(m, n, kp, x_q, w_q, emit, emit4);
}

}  // namespace qgemm
}  // namespace lstm_native
