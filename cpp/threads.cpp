#include "threads.h"

#include "step_loop.h"

#include <atomic>

namespace lstm_native {
namespace {

int default_threads() {
#ifdef _OPENMP
  return std::max(1, omp_get_max_threads());  // honours OMP_NUM_THREADS, else all cores
#else
  return 1;
#endif
}

std::atomic<int>& configured_threads() {
  static std::atomic<int> n{default_threads()};
  return n;
}

std::atomic<double>& grain_scale() {
  static std::atomic<double> g{1.0};
  return g;
}

std::atomic<bool>& deterministic_mode() {
  static std::atomic<bool> on{true};
  return on;
}

std::atomic<int>& split_override() {
  static std::atomic<int> s{0};
  return s;
}

}  // namespace

int get_num_threads() { return configured_threads().load(std::memory_order_relaxed); }

void set_num_threads(int n) { configured_threads().store(n > 0 ? n : default_threads()); }

bool deterministic() { return deterministic_mode().load(std::memory_order_relaxed); }

void set_deterministic(bool on) { deterministic_mode().store(on); }

double get_grain() { return grain_scale().load(std::memory_order_relaxed); }

void set_grain(double scale) { grain_scale().store(scale < 0 ? 0.0 : scale); }

StepSplit step_split_override() { return static_cast<StepSplit>(split_override().load(std::memory_order_relaxed)); }

void set_step_split_override(StepSplit split) { split_override().store(static_cast<int>(split)); }

}  // namespace lstm_native
