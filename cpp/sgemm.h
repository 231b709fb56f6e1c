// Single-precision GEMM with a register-blocked micro-kernel, written once with GCC vector
// extensions so that each build (SSE2, AVX2, AVX-512) gets its widest registers.
//
//   C (m x n, row-major) = alpha * op(A) op(B) + beta * C   [+ a bias row]
//
// Loops follow Goto/BLIS: op(B) is packed into panels nr columns wide, op(A) into panels mr
// rows tall, and the micro-kernel keeps an mr x nr tile of C in registers. PackedB lets a
// caller pack a weight matrix once and reuse it for every time step of a sequence, which is
// where a recurrent layer spends its time: per step only the small h_{t-1} is packed.
//
// An AVX-512 build carries a 16-lane and an 8-lane kernel and keeps whichever does more
// multiply-adds per second on this CPU (timed once, at first use): on CPUs that split 512-bit
// operations in two (AMD Zen 4) the 8-lane kernel can win. Both sum in the same order, so
// results do not depend on the choice.
#pragma once

#include "common.h"

#include <cstdlib>
#include <memory>
#include <string>

namespace lstm_native::sgemm {

// Memory for packed panels: 64-byte aligned so the kernel's vector loads are aligned.
struct AlignedFree {
  void operator()(float* p) const { std::free(p); }
};
using Buffer = std::unique_ptr<float[], AlignedFree>;
Buffer allocate(Index floats);

// op(B) (k x n) packed once, for any number of products with different A.
class PackedB {
 public:
  // op(B) = B (k x n, row stride ldb) or, when trans, the transpose of B (n x k, row stride ldb).
  void pack(bool trans, const float* b, Index ldb, Index k, Index n) {
    reserve(k, n);
    pack_part(trans, b, ldb, 0, 1);
  }
  // The same in two phases, so that a team can share the work: reserve() on one thread,
  // then pack_part(..., part, parts) on each member (parts in all), then a barrier.
  void reserve(Index k, Index n);
  void pack_part(bool trans, const float* b, Index ldb, int part, int parts);
  Index rows() const { return k_; }
  Index cols() const { return n_; }
  const float* data() const { return data_.get(); }
  bool narrow() const { return narrow_; }  // which kernel's panel layout data() holds

 private:
  Buffer data_;
  Index k_ = 0, n_ = 0, capacity_ = 0;
  bool narrow_ = false;
};

// C = alpha * op(A) B_packed + beta * C (+ bias[j] on every row, when bias is given) on the
// calling thread; op(A) is m x b.rows().
void gemm_packed(Index m, bool trans_a, const float* a, Index lda, const PackedB& b, float alpha, float beta,
                 float* c, Index ldc, const float* bias = nullptr);

// C = alpha * op(A) op(B) + beta * C on the calling thread, packing both as it goes.
void gemm(bool trans_a, bool trans_b, Index m, Index n, Index k, float alpha, const float* a, Index lda,
          const float* b, Index ldb, float beta, float* c, Index ldc);

// The kernel in use ("16 lanes, 14x32 tile", ...), for benchmarks and reports.
const char* kernel_name();

// "auto" (the timed choice), "wide" or "narrow": forces the AVX-512 build's kernel, to compare
// the two on one machine. Products already packed keep the kernel they were packed for.
void set_tile(const std::string& choice);

// For tests: C = alpha op(A) op(B) + beta C through one named tile shape whatever this build
// picks, "16x14" (AVX-512's), "8x6" (AVX2's) or "4x6" (SSE2's), by gemm() into c and by
// op(B) packed in `parts` pieces then gemm_packed() with bias (may be null) into c_packed
// (both n columns wide). A build without the shape's registers runs it on narrower vectors
// (slow, same arithmetic), so every shape's tiling is tested on any CPU.
void products_with_tile(const std::string& tile, bool trans_a, bool trans_b, Index m, Index n, Index k, float alpha,
                        const float* a, Index lda, const float* b, Index ldb, float beta, float* c, float* c_packed,
                        const float* bias, int parts);

// Columns of C per micro-kernel tile (8, 16 or 32): C's width is padded to a multiple of it.
Index panel_width();

}  // namespace lstm_native::sgemm
