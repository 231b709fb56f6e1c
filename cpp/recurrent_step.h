// One time step of a unidirectional recurrent layer, for streaming inference.
//
// The sequence loop (recurrent.h) front-loads work that pays off over many steps: weights
// copied into the interleaved gate layout and packed, a schedule, the input projection of
// all steps at once. For one step at a time none of that pays: here the gate
// pre-activations come from matrix-vector products on the weights as they are (PyTorch's
// layout, so nothing cached can go stale when they change), are placed in the interleaved
// layout the cells expect, and the cell's gate math runs on them. The state is updated in
// place and the scratch is reused, so a stream of steps allocates nothing.
#pragma once

#include "common.h"
#include "kernels/gate_layout.h"
#include "kernels/step.h"
#include "recurrent.h"

#include <vector>

namespace lstm_native {

template <class T>
struct StepArgs {
  Index batch = 0, input = 0, hidden = 0;
  const T* x = nullptr;          // B x I
  DirectionWeights<T> weights;   // PyTorch's layout
  T* h = nullptr;                // B x H: h_{t-1} in, h_t out
  T* c = nullptr;                // B x H: c_{t-1} in, c_t out (cells with a cell state)
};

template <class T>
struct StepScratch {
  std::vector<T> natural, gates, recurrent, h_next, aux_next, input_bias;
};

template <class Cell, class T>
void recurrent_step(const StepArgs<T>& a, StepScratch<T>& s) {
  using Vector = Eigen::Matrix<T, 1, Eigen::Dynamic>;
  const Index B = a.batch, I = a.input, H = a.hidden;
  const GateLayout layout{H, Cell::kGates};
  const Index GH = layout.columns();
  s.natural.resize(2 * GH);
  s.gates.resize(B * GH);
  s.recurrent.resize(B * GH);
  s.h_next.resize(B * H);
  s.aux_next.resize(B * H);
  s.input_bias.resize(GH);
  Cell::input_bias(a.weights.b_ih, a.weights.b_hh, H, s.input_bias.data());
  const auto w_ih = view(a.weights.w_ih, GH, I, I), w_hh = view(a.weights.w_hh, GH, H, H);
  const Eigen::Map<const Vector> bias(s.input_bias.data(), GH);
  DenormalsFlushed flushed;
  for (Index b = 0; b < B; ++b) {
    // Row-vector x matrix products: Eigen's GEMV kernel, no packing.
    Eigen::Map<Vector> gx(s.natural.data(), GH), gh(s.natural.data() + GH, GH);
    gx.noalias() = Eigen::Map<const Vector>(a.x + b * I, I) * w_ih.transpose();
    gx += bias;
    gh.noalias() = Eigen::Map<const Vector>(a.h + b * H, H) * w_hh.transpose();
    if (Cell::kRecurrentIntoGates) gx += gh;
    for (int g = 0; g < Cell::kGates; ++g)
      for (Index u = 0; u < H; ++u) {
        const Index to = b * GH + layout.interleaved(g, u);
        s.gates[to] = gx[g * H + u];
        s.recurrent[to] = gh[g * H + u];
      }
  }
  // LSTM: aux is c_{t-1} -> c_t; GRU: aux receives W_hn h + b_hn (not needed afterwards).
  T* aux = Cell::kCellState ? a.c : s.aux_next.data();
  StepForward<T> step{B, 1, s.gates.data(), s.recurrent.data(), a.h, s.h_next.data(), aux, s.aux_next.data(),
                      Cell::recurrent_bias(a.weights.b_hh, H), /*h_prev_stride=*/H, /*h_next_stride=*/H};
  Cell::forward(step, layout, 0, layout.blocks());
  std::copy_n(s.h_next.data(), B * H, a.h);
  if (Cell::kCellState) std::copy_n(s.aux_next.data(), B * H, a.c);
}

}  // namespace lstm_native
