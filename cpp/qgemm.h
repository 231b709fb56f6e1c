// Dynamic int8 quantisation: the integer GEMM and the (de)quantisation around it.
//
// Weights: symmetric int8 per output row, w ~ w_q * w_scale[n], w_q in [-127, 127].
// Activations: asymmetric per row, quantised at run time to 7 bits, x ~ (x_q - zero[m]) *
// scale[m], x_q in [0, 127]. Seven bits because the AVX2 kernel multiplies u8 x s8 pairs into
// saturating int16 (vpmaddubsw): 127 * 127 * 2 = 32258 fits, 255 * 127 * 2 would not. Every
// path uses the same operands, so all of them give the same exact int32 products.
//
//   y[m][n] = scale[m] * w_scale[n] * (sum_k x_q[m][k] w_q[n][k] - zero[m] * sum_k w_q[n][k]) + bias[n]
//
// Rows are padded to a multiple of kDepthStep bytes (zeros in the weights), so kernels run
// whole vectors.
#pragma once

#include "common.h"

#include <cstdint>

namespace lstm_native {
namespace qgemm {

constexpr Index kDepthStep = 32;
constexpr int kActivationMax = 127;

inline Index padded_depth(Index k) { return (k + kDepthStep - 1) / kDepthStep * kDepthStep; }

// Which integer kernel runs: "avx512-vnni" (an AVX2 or wider build on a CPU with AVX-512
// VNNI), "avx2" or "portable".
const char* kernel_name();

// Turns the VNNI kernel off (or back on where the CPU has it), to compare both paths on one
// machine; returns whether the CPU and this build have it. Not while products are running.
bool set_vnni(bool enabled);

// w (n x k, row stride ldw) -> w_q (n x padded_depth(k)), scale (n), row_sum (n).
void quantize_weights(const float* w, Index n, Index k, Index ldw, int8_t* w_q, float* scale, int32_t* row_sum);

// x (m x k, row stride ldx) -> x_q (m x padded_depth(k)), scale (m), zero (m).
void quantize_activations(const float* x, Index m, Index k, Index ldx, uint8_t* x_q, float* scale, int32_t* zero);

// c (m x n, int32) = x_q w_q^T exactly; kp = padded depth.
void gemm_u8s8(Index m, Index n, Index kp, const uint8_t* x_q, const int8_t* w_q, int32_t* c);

// out (m x n, row stride ldo) = dequantised x_q w_q^T + bias (+ out when accumulate).
void gemm_dequantize(Index m, Index n, Index kp, const uint8_t* x_q, const float* x_scale, const int32_t* x_zero,
                     const int8_t* w_q, const float* w_scale, const int32_t* w_row_sum, const float* bias, float* out,
                     Index ldo, bool accumulate);

}  // namespace qgemm
}  // namespace lstm_native
