#include "quantized_recurrent.h"

#include "kernels/natural_cells.h"
#include "qgemm.h"
#include "step_loop.h"
#include "threads.h"

#include <algorithm>
#include <vector>

namespace lstm_native {
namespace {

// Steps rows [b0, b1) through the whole sequence. Called by one thread on its own rows (the
// kernels below then run on that thread alone), or by the caller for all rows, when the
// kernels split each step's work over the team themselves.
void step_rows(const QuantizedRecurrentArgs& a, Index b0, Index b1) {
  const Index rows = b1 - b0, H = a.hidden, GH = (a.lstm ? 4 : 3) * H, kp = qgemm::padded_depth(H);
  if (rows <= 0) return;
  std::vector<uint8_t> h_q(static_cast<size_t>(rows * kp)), active(static_cast<size_t>(rows));
  std::vector<float> h_scale(static_cast<size_t>(rows)), gh(static_cast<size_t>(rows * GH));
  std::vector<int32_t> h_zero(static_cast<size_t>(rows));
  float* h = a.h + b0 * H;
  float* c = a.c ? a.c + b0 * H : nullptr;
  for (Index s = 0; s < a.steps; ++s) {
    const Index t = a.reverse ? a.steps - 1 - s : s;
    for (Index r = 0; r < rows; ++r) active[r] = !a.lengths || t < a.lengths[b0 + r];
    qgemm::quantize_activations(h, rows, H, H, h_q.data(), h_scale.data(), h_zero.data());
    qgemm::gemm_dequantize(rows, GH, kp, h_q.data(), h_scale.data(), h_zero.data(), a.w_q, a.w_scale, a.w_row_sum,
                           a.bias, gh.data(), GH, false);
    const float* gx = a.gx + b0 * a.gx_row + t * a.gx_step;
    float* out = a.out + b0 * a.out_row + t * a.out_step;
    run_team(threads_for(20.0 * rows * H, 2e5), [&](int id, int size) {
      Index r0, r1;
      share(rows, id, size, &r0, &r1);
      natural_cell_step(a.lstm, r1 - r0, H, gx + r0 * a.gx_row, a.gx_row, gh.data() + r0 * GH, h + r0 * H,
                        c ? c + r0 * H : nullptr, active.data() + r0);
      for (Index r = r0; r < r1; ++r) {
        float* o = out + r * a.out_row;
        if (active[r]) std::copy_n(h + r * H, H, o);
        else std::fill_n(o, H, 0.f);
      }
    });
  }
}

}  // namespace

void quantized_recurrent(const QuantizedRecurrentArgs& a) {
  const Index B = a.batch, H = a.hidden, GH = (a.lstm ? 4 : 3) * H;
  // Rows are independent sequences: with enough of them each thread takes its own share
  // through every step, and no thread waits for another until the end (as the float layers'
  // batch split, step_loop.h). Otherwise every step's product is split by weight rows.
  // (Tests force either split through step_split_override(), as for the float layers.)
  const StepSplit forced = step_split_override();
  const int by_rows = forced == StepSplit::kUnits ? 1
                      : static_cast<int>(std::min<Index>(get_num_threads(),
                                                          forced == StepSplit::kBatch ? B : B / StepPlan::kMinRows));
  const int worth = threads_for(2.0 * B * GH * qgemm::padded_depth(H), 4e6);
  if (by_rows >= 2 && worth >= 2) {
    run_team(std::min(by_rows, worth), [&](int id, int size) {
      Index b0, b1;
      share(B, id, size, &b0, &b1);
      step_rows(a, b0, b1);
    });
  } else {
    step_rows(a, 0, B);
  }
}

}  // namespace lstm_native
