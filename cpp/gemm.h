// The one place matrix products are computed: C = alpha * op(A) op(B) + beta * C over
// row-major buffers (BLAS argument order). Kernels call these and never a GEMM library
// directly, so the engine and its threading are chosen here alone:
//   float  -> our packed GEMM (sgemm.h), the fast path
//   double -> Eigen, the reference path for gradient checks
// PackedMatrix holds an op(B) packed once for many products (a layer's weights, reused at
// every time step).
#pragma once

#include "common.h"
#include "sgemm.h"
#include "threads.h"

#include <type_traits>

namespace lstm_native {

namespace detail {
template <class T>
void eigen_gemm(bool trans_a, bool trans_b, Index m, Index n, Index k, T alpha, const T* a, Index lda, const T* b,
                Index ldb, T beta, T* c, Index ldc) {
  auto out = view(c, m, n, ldc);
  if (beta == T(0)) out.setZero();
  else if (beta != T(1)) out *= beta;
  if (k <= 0) return;
  const auto a_plain = view(a, trans_a ? k : m, trans_a ? m : k, lda);
  const auto b_plain = view(b, trans_b ? n : k, trans_b ? k : n, ldb);
  if (!trans_a && !trans_b) out.noalias() += alpha * a_plain * b_plain;
  else if (!trans_a && trans_b) out.noalias() += alpha * a_plain * b_plain.transpose();
  else if (trans_a && !trans_b) out.noalias() += alpha * a_plain.transpose() * b_plain;
  else out.noalias() += alpha * a_plain.transpose() * b_plain.transpose();
}
}  // namespace detail

// op(A) is m x k: A is m x k (lda) or, transposed, k x m. op(B) is k x n likewise.
// Runs on the calling thread.
template <class T>
void gemm(bool trans_a, bool trans_b, Index m, Index n, Index k, T alpha, const T* a, Index lda, const T* b,
          Index ldb, T beta, T* c, Index ldc) {
  if (m <= 0 || n <= 0) return;
  if constexpr (std::is_same_v<T, float>)
    sgemm::gemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  else
    detail::eigen_gemm<T>(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

// Whether C^T = op(B)^T op(A)^T is the cheaper way to a product whose C is m x n: our
// SGEMM pads C's width to whole column panels (16 columns on AVX2), so a narrow or odd
// width such as 65 wastes a fifth of the work, while its rows are padded only to 4 or 6.
template <class T>
bool transposed_product_pads_less(Index m, Index n) {
  if constexpr (std::is_same_v<T, float>) {
    const Index w = sgemm::panel_width();
    const auto waste = [w](Index cols) { return double((cols + w - 1) / w * w - cols) / double(cols); };
    return waste(m) + 0.05 < waste(n);
  } else {
    return false;  // Eigen (the double reference path): no preference
  }
}

// op(B) (k x n) prepared once for many products.
template <class T>
class PackedMatrix {
 public:
  void pack(bool trans, const T* b, Index ldb, Index k, Index n) {
    reserve(trans, b, ldb, k, n);
    pack_part(0, 1);
  }
  // The same in two phases for a team: reserve() once, then pack_part(member, members) on
  // each member, then a barrier before use.
  void reserve(bool trans, const T* b, Index ldb, Index k, Index n) {
    if constexpr (std::is_same_v<T, float>) packed_.reserve(k, n);
    trans_ = trans, b_ = b, ldb_ = ldb, k_ = k, n_ = n;
  }
  void pack_part(int part, int parts) {
    if constexpr (std::is_same_v<T, float>) packed_.pack_part(trans_, b_, ldb_, part, parts);
  }
  Index rows() const { return k_; }
  Index cols() const { return n_; }

  // C = alpha * op(A) op(B) + beta * C, plus bias[j] on every row when given (then beta
  // must be 0). op(A) is m x rows(). Runs on the calling thread.
  void multiply(Index m, bool trans_a, const T* a, Index lda, T alpha, T beta, T* c, Index ldc,
                const T* bias = nullptr) const {
    if (m <= 0 || n_ <= 0) return;
    if constexpr (std::is_same_v<T, float>) {
      sgemm::gemm_packed(m, trans_a, a, lda, packed_, alpha, beta, c, ldc, bias);
    } else {
      detail::eigen_gemm<T>(trans_a, trans_b_(), m, n_, k_, alpha, a, lda, b_, ldb_, beta, c, ldc);
      if (bias)
        for (Index i = 0; i < m; ++i)
          for (Index j = 0; j < n_; ++j) c[i * ldc + j] += bias[j];
    }
  }

  // The same product with the rows of C split across the pool.
  void multiply_parallel(Index m, bool trans_a, const T* a, Index lda, T alpha, T beta, T* c, Index ldc,
                         const T* bias = nullptr) const {
    run_team(threads_for(2.0 * m * n_ * k_, 4e6), [&](int id, int size) {
      Index begin, end;
      share(m, id, size, &begin, &end);
      multiply(end - begin, trans_a, trans_a ? a + begin : a + begin * lda, lda, alpha, beta, c + begin * ldc, ldc,
               bias);
    });
  }

 private:
  bool trans_b_() const { return trans_; }
  sgemm::PackedB packed_;  // unused for double
  bool trans_ = false;
  const T* b_ = nullptr;
  Index ldb_ = 0, k_ = 0, n_ = 0;
};

// gemm() split across the pool (by rows of C, or columns when C is wide), each thread
// packing what it needs. Single-threaded inside a running team.
template <class T>
void gemm_parallel(bool trans_a, bool trans_b, Index m, Index n, Index k, T alpha, const T* a, Index lda,
                   const T* b, Index ldb, T beta, T* c, Index ldc) {
  const int threads = threads_for(2.0 * m * n * k, 4e6);
  const bool split_rows = m >= n;
  run_team(threads, [&](int id, int size) {
    Index begin, end;
    if (split_rows) {
      share(m, id, size, &begin, &end);
      const T* a_part = trans_a ? a + begin : a + begin * lda;
      gemm(trans_a, trans_b, end - begin, n, k, alpha, a_part, lda, b, ldb, beta, c + begin * ldc, ldc);
    } else {
      share(n, id, size, &begin, &end);
      const T* b_part = trans_b ? b + begin * ldb : b + begin;
      gemm(trans_a, trans_b, m, end - begin, k, alpha, a, lda, b_part, ldb, beta, c + begin, ldc);
    }
  });
}

}  // namespace lstm_native
