#include "quantized_recurrent.h"

#include "kernels/gate_layout.h"
#include "kernels/gru_cell.h"
#include "kernels/lstm_cell.h"
#include "kernels/rnn_cell.h"
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
//
// The float layers' cells do the gate math, in PyTorch's gate order (NaturalGateLayout),
// the order of the int8 W_hh's rows. The product h W_hh^T + b_hh lands in the gate buffer for
// a cell that takes it into its gates (LSTM: gx is then added), else in a buffer of its own
// (GRU: the gates are then a copy of gx). gx is added or copied row by row just before the
// row's gate math, which then finds its operands in L1 (adding gx in the product's epilogue
// reads its rows across, strided: Q1 3% slower on one thread).
template <class Cell>
void step_rows(const QuantizedRecurrentArgs& a, Index b0, Index b1) {
  const Index rows = b1 - b0, H = a.hidden, kp = qgemm::padded_depth(H);
  const NaturalGateLayout layout{H, Cell::kGates};
  const Index GH = layout.columns();
  if (rows <= 0) return;
  std::vector<uint8_t> h_q(static_cast<size_t>(rows * kp)), active(static_cast<size_t>(rows));
  std::vector<float> h_scale(static_cast<size_t>(rows)), gates(static_cast<size_t>(rows * GH));
  std::vector<float> recurrent(Cell::kRecurrentIntoGates ? 0 : static_cast<size_t>(rows * GH));
  std::vector<float> aux(Cell::kCellState ? 0 : static_cast<size_t>(rows * H));  // GRU: W_hn h + b_hn
  std::vector<int32_t> h_zero(static_cast<size_t>(rows));
  float* h = a.h + b0 * H;
  float* c = Cell::kCellState ? a.c + b0 * H : nullptr;
  for (Index s = 0; s < a.steps; ++s) {
    const Index t = a.reverse ? a.steps - 1 - s : s;
    for (Index r = 0; r < rows; ++r) active[r] = !a.lengths || t < a.lengths[b0 + r];
    qgemm::quantize_activations(h, rows, H, H, h_q.data(), h_scale.data(), h_zero.data());
    float* product = Cell::kRecurrentIntoGates ? gates.data() : recurrent.data();
    qgemm::gemm_dequantize(rows, GH, kp, h_q.data(), h_scale.data(), h_zero.data(), a.w_q, a.w_scale, a.w_row_sum,
                           a.bias, product, GH, false);
    const float* gx = a.gx + b0 * a.gx_row + t * a.gx_step;
    float* out = a.out + b0 * a.out_row + t * a.out_step;
    run_team(threads_for(20.0 * rows * H, 2e5), [&](int id, int size) {
      Index r0, r1;
      share(rows, id, size, &r0, &r1);
      for (Index r = r0; r < r1; ++r) {
        float* o = out + r * a.out_row;
        if (!active[r]) {  // the sequence has ended: its state stays
          std::fill_n(o, H, 0.f);
          continue;
        }
        float* g = gates.data() + r * GH;
        const float* x = gx + r * a.gx_row;
        if (Cell::kRecurrentIntoGates) for (Index j = 0; j < GH; ++j) g[j] += x[j];
        else std::copy_n(x, GH, g);
        if (r + 1 < r1)  // the next row's operands into L2 while this row's gate math runs
          for (Index j = 0; j < GH; j += 16) {
            __builtin_prefetch(product + (r + 1) * GH + j, 0, 2);
            __builtin_prefetch(x + a.gx_row + j, 0, 2);
          }
        float* c_row = c ? c + r * H : nullptr;
        const StepForward<float> step{1, 1, g, Cell::kRecurrentIntoGates ? nullptr : recurrent.data() + r * GH,
                                      h + r * H, h + r * H, Cell::kCellState ? c_row : aux.data() + r * H, c_row,
                                      /*recurrent_bias (in the product)=*/nullptr, H, H};
        Cell::forward(step, layout, 0, layout.blocks());
        std::copy_n(h + r * H, H, o);
      }
    });
  }
}

}  // namespace

void quantized_recurrent(const QuantizedRecurrentArgs& a) {
  using Rows = void (*)(const QuantizedRecurrentArgs&, Index, Index);
  Rows rows = &step_rows<LstmCell>;
  int gates = LstmCell::kGates;
  switch (a.cell) {
    case QuantizedCell::kLstm: break;
    case QuantizedCell::kGru: rows = &step_rows<GruCell>, gates = GruCell::kGates; break;
    case QuantizedCell::kRnnTanh: rows = &step_rows<RnnTanhCell>, gates = RnnTanhCell::kGates; break;
    case QuantizedCell::kRnnRelu: rows = &step_rows<RnnReluCell>, gates = RnnReluCell::kGates; break;
  }
  const Index B = a.batch, H = a.hidden, GH = gates * H;
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
      rows(a, b0, b1);
    });
  } else {
    rows(a, 0, B);
  }
}

}  // namespace lstm_native
