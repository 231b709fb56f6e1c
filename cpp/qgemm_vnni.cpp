// The int8 products with AVX-512 VNNI (AMD Zen 4 and later, Intel since Cascade Lake):
// vpdpbusd multiplies u8 x s8 pairs, sums them in fours and adds to int32 lanes in one
// instruction, where AVX2 needs three (vpmaddubsw, vpmaddwd, vpaddd). Same exact integers.
//
// This file alone is compiled with -mavx512f -mavx512vnni -mavx512vl (CMakeLists.txt) and qgemm.cpp calls
// it only on CPUs that have both. It holds plain functions over raw pointers and includes no
// header with inline C++ functions: an inline function compiled here with AVX-512 allowed could
// be the copy the linker keeps for every caller, including those on CPUs without it.
#include "qgemm_vnni.h"

#if defined(__AVX512VNNI__) && defined(__AVX512VL__) && defined(__AVX512F__)
#include <immintrin.h>

namespace lstm_native {
namespace qgemm {
namespace vnni {

bool compiled() { return true; }

static inline __m256i load(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }

static inline std::int32_t lane_sum(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(1, 0, 3, 2)));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
  return _mm_cvtsi128_si32(s);
}

// out[0..3] = the lane sums of a, b, c, d.
static inline void store_sums(__m256i a, __m256i b, __m256i c, __m256i d, std::int32_t* out) {
  const __m256i t = _mm256_hadd_epi32(_mm256_hadd_epi32(a, b), _mm256_hadd_epi32(c, d));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(out),
                   _mm_add_epi32(_mm256_castsi256_si128(t), _mm256_extracti128_si256(t, 1)));
}

// 512-bit halves summed into 256 bits (exact: integer lanes).
static inline __m512i load64(const void* p) { return _mm512_loadu_si512(p); }
static inline __m256i fold(__m512i v) {
  return _mm256_add_epi32(_mm512_castsi512_si256(v), _mm512_extracti64x4_epi64(v, 1));
}

// acc += the products of u8 x and s8 w in fours (512 bits).
static inline void dpbusd(__m512i& acc, __m512i x, __m512i w) { acc = _mm512_dpbusd_epi32(acc, x, w); }

// Depths are multiples of 32 (kDepthStep): 64-byte chunks in zmm registers, then at most one
// 32-byte chunk in ymm. A CPU with a full 512-bit path (Zen 5) runs twice the products per
// instruction; the sums are the same exact integers in any order.
std::int32_t dot(const std::uint8_t* a, const std::int8_t* b, std::ptrdiff_t kp) {
  __m512i wide = _mm512_setzero_si512();
  std::ptrdiff_t k = 0;
  for (; k + 64 <= kp; k += 64) dpbusd(wide, load64(a + k), load64(b + k));
  __m256i acc = fold(wide);
  if (k < kp) acc = _mm256_dpbusd_epi32(acc, load(a + k), load(b + k));
  return lane_sum(acc);
}

// Two rows of a against four weight rows: 8 accumulators, each chunk read once. (Four rows, 16
// accumulators and 8 loads per 16 products, measured 30% slower on Zen 5, as did arrays of
// accumulators, which GCC copied each iteration.)
void rows_x4(const std::uint8_t* a, std::ptrdiff_t rows, const std::int8_t* b, std::ptrdiff_t kp, std::int32_t* out) {
  std::ptrdiff_t r = 0;
  for (; r + 2 <= rows; r += 2) {
    const std::uint8_t* a0 = a + r * kp;
    const std::uint8_t* a1 = a0 + kp;
    __m512i z00 = _mm512_setzero_si512(), z01 = z00, z02 = z00, z03 = z00, z10 = z00, z11 = z00, z12 = z00,
            z13 = z00;
    std::ptrdiff_t k = 0;
#pragma GCC unroll 2
    for (; k + 64 <= kp; k += 64) {
      const __m512i x0 = load64(a0 + k), x1 = load64(a1 + k);
      __m512i w = load64(b + k);
      dpbusd(z00, x0, w), dpbusd(z10, x1, w);
      w = load64(b + kp + k);
      dpbusd(z01, x0, w), dpbusd(z11, x1, w);
      w = load64(b + 2 * kp + k);
      dpbusd(z02, x0, w), dpbusd(z12, x1, w);
      w = load64(b + 3 * kp + k);
      dpbusd(z03, x0, w), dpbusd(z13, x1, w);
    }
    __m256i c00 = fold(z00), c01 = fold(z01), c02 = fold(z02), c03 = fold(z03), c10 = fold(z10), c11 = fold(z11),
            c12 = fold(z12), c13 = fold(z13);
    if (k < kp) {  // the last 32-byte chunk of an odd count
      const __m256i x0 = load(a0 + k), x1 = load(a1 + k);
      __m256i w = load(b + k);
      c00 = _mm256_dpbusd_epi32(c00, x0, w), c10 = _mm256_dpbusd_epi32(c10, x1, w);
      w = load(b + kp + k);
      c01 = _mm256_dpbusd_epi32(c01, x0, w), c11 = _mm256_dpbusd_epi32(c11, x1, w);
      w = load(b + 2 * kp + k);
      c02 = _mm256_dpbusd_epi32(c02, x0, w), c12 = _mm256_dpbusd_epi32(c12, x1, w);
      w = load(b + 3 * kp + k);
      c03 = _mm256_dpbusd_epi32(c03, x0, w), c13 = _mm256_dpbusd_epi32(c13, x1, w);
    }
    store_sums(c00, c01, c02, c03, out + r * 4);
    store_sums(c10, c11, c12, c13, out + r * 4 + 4);
  }
  for (; r < rows; ++r)
    for (int j = 0; j < 4; ++j) out[r * 4 + j] = dot(a + r * kp, b + j * kp, kp);
}

}  // namespace vnni
}  // namespace qgemm
}  // namespace lstm_native

#else  // a build for a CPU family without VNNI, or not x86: never called (compiled() says so)

namespace lstm_native {
namespace qgemm {
namespace vnni {

bool compiled() { return false; }
std::int32_t dot(const std::uint8_t*, const std::int8_t*, std::ptrdiff_t) { return 0; }
void rows_x4(const std::uint8_t*, std::ptrdiff_t, const std::int8_t*, std::ptrdiff_t, std::int32_t*) {}

}  // namespace vnni
}  // namespace qgemm
}  // namespace lstm_native

#endif
