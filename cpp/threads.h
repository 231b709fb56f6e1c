// The one thread pool (OpenMP) every kernel uses, and the floating-point mode kernels run in.
//
// All parallel work goes through run_team(): it sizes the team from set_num_threads(),
// and each member flushes denormals to zero while it runs (saturated sigmoids produce
// denormals that slow x86 arithmetic many-fold), restoring its previous mode afterwards.
#pragma once

#include "common.h"

#include <algorithm>

#ifdef _OPENMP
#include <omp.h>
#endif
#if defined(__SSE__) || defined(__x86_64__)
#include <xmmintrin.h>
#define LSTM_NATIVE_HAS_MXCSR 1
#endif

namespace lstm_native {

int get_num_threads();
void set_num_threads(int n);  // n <= 0 restores the default (all available cores)

// Deterministic mode (default on): every reduction sums in an order that does not depend on
// the team's size, so results are the same bits for any thread count. Off, the recurrent
// backward sums bias gradients per thread instead of per sequence (a few percent less memory
// traffic; see bench/RESULTS.md for what it measures).
bool deterministic();
void set_deterministic(bool on);

// Scales every work-per-thread threshold below (default 1). Tests set 0 to run every
// parallel path with the full team, whatever the problem size.
double get_grain();
void set_grain(double scale);

// Sets flush-to-zero and denormals-are-zero for the calling thread while in scope.
class DenormalsFlushed {
 public:
#ifdef LSTM_NATIVE_HAS_MXCSR
  DenormalsFlushed() : saved_(_mm_getcsr()) { _mm_setcsr(saved_ | 0x8040u); }
  ~DenormalsFlushed() { _mm_setcsr(saved_); }

 private:
  unsigned saved_;
#else
  DenormalsFlushed() {}
#endif
  DenormalsFlushed(const DenormalsFlushed&) = delete;
  DenormalsFlushed& operator=(const DenormalsFlushed&) = delete;
};

// Runs body(thread_id, team_size) on `threads` threads (1 = the calling thread only).
// body may use `#pragma omp barrier`; it then synchronises the whole team.
template <class Body>
void run_team(int threads, Body&& body) {
  threads = std::max(1, threads);
#ifdef _OPENMP
  if (threads > 1 && !omp_in_parallel()) {
#pragma omp parallel num_threads(threads)
    {
      DenormalsFlushed flushed;
      body(omp_get_thread_num(), omp_get_num_threads());
    }
    return;
  }
#endif
  DenormalsFlushed flushed;
  body(0, 1);
}

inline void team_barrier() {
#ifdef _OPENMP
#pragma omp barrier
#endif
}

// The contiguous share [begin, end) of n items that member `id` of a `size`-strong team owns.
inline void share(Index n, int id, int size, Index* begin, Index* end) {
  const Index base = n / size, extra = n % size;
  *begin = id * base + std::min<Index>(id, extra);
  *end = *begin + base + (id < extra ? 1 : 0);
}

// How many threads work of `flops` floating-point operations deserves: about one
// thread per `flops_per_thread`, at most the pool size.
inline int threads_for(double flops, double flops_per_thread = 2e5) {
  const double grain = flops_per_thread * get_grain();
  const double want = grain > 0 ? flops / grain : 1e30;
  return static_cast<int>(std::max(1.0, std::min<double>(get_num_threads(), want)));
}

}  // namespace lstm_native
