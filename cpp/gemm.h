// The one place matrix products are computed: C = alpha * op(A) op(B) + beta * C over
// row-major buffers (BLAS argument order). Kernels call these and never Eigen's product
// directly, so the GEMM engine and its threading are chosen here alone.
#pragma once

#include "common.h"
#include "threads.h"

namespace lstm_native {

// op(A) is m x k: A is m x k (lda) or, transposed, k x m. op(B) is k x n likewise.
// Runs on the calling thread.
template <class T>
void gemm(bool trans_a, bool trans_b, Index m, Index n, Index k, T alpha, const T* a, Index lda,
          const T* b, Index ldb, T beta, T* c, Index ldc) {
  if (m <= 0 || n <= 0) return;
  auto out = view(c, m, n, ldc);
  if (k <= 0) {
    if (beta == T(0)) out.setZero(); else out *= beta;
    return;
  }
  if (beta == T(0)) {
    out.setZero();
  } else if (beta != T(1)) {
    out *= beta;
  }
  const auto a_plain = view(a, trans_a ? k : m, trans_a ? m : k, lda);
  const auto b_plain = view(b, trans_b ? n : k, trans_b ? k : n, ldb);
  if (!trans_a && !trans_b) out.noalias() += alpha * a_plain * b_plain;
  else if (!trans_a && trans_b) out.noalias() += alpha * a_plain * b_plain.transpose();
  else if (trans_a && !trans_b) out.noalias() += alpha * a_plain.transpose() * b_plain;
  else out.noalias() += alpha * a_plain.transpose() * b_plain.transpose();
}

// The same product split across the pool (by rows of C, or columns when C is wide),
// each thread running gemm() on its share. Single-threaded inside a running team.
template <class T>
void gemm_parallel(bool trans_a, bool trans_b, Index m, Index n, Index k, T alpha, const T* a,
                   Index lda, const T* b, Index ldb, T beta, T* c, Index ldc) {
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
