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
  Index projection = 0;          // S when h is projected (recurrent.h), else 0
  const T* x = nullptr;          // B x I
  DirectionWeights<T> weights;   // PyTorch's layout
  T* h = nullptr;                // B x S: h_{t-1} in, h_t out
  T* c = nullptr;                // B x H: c_{t-1} in, c_t out (cells with a cell state)
  double zoneout = 0;            // evaluation's zoneout mix p: h_t = p h_{t-1} + (1 - p) h_new
};

template <class T>
struct StepScratch {
  std::vector<T> natural, gates, recurrent, h_next, aux_next, input_bias, bias, extra, params, second, m;
};

template <class Cell, class T>
void recurrent_step(const StepArgs<T>& a, StepScratch<T>& s) {
  using Vector = Eigen::Matrix<T, 1, Eigen::Dynamic>;
  const Index B = a.batch, I = a.input, H = a.hidden, S = a.projection ? a.projection : H;
  const auto layout = cell_layout<Cell>(H);
  const Index GH = layout.columns(), GC = detail::first_product_columns<Cell>(H);
  const Index E = Cell::extra_width(H), P = cell_param_size<Cell>(H);
  s.natural.resize(2 * GH);
  s.gates.resize(B * GH);
  s.recurrent.resize(B * GH);
  s.h_next.resize(B * S);
  s.aux_next.resize(B * H);
  s.input_bias.resize(GH);
  s.bias.resize(GH);
  s.extra.resize(B * E);
  s.params.resize(P);
  s.second.resize(Cell::kSecondProductGates ? B * H : 0);
  s.m.resize(a.projection ? B * H : 0);
  Cell::input_bias(a.weights.b_ih, a.weights.b_hh, H, s.input_bias.data());
  layout.interleave_rows(s.input_bias.data(), 1, s.bias.data());
  for (int k = 0, at = 0; k < Cell::kParamArrays; at += Cell::param_array_size(k, H), ++k)
    std::copy_n(a.weights.params[k], Cell::param_array_size(k, H), s.params.data() + at);
  const auto w_ih = view(a.weights.w_ih, GH, I, I), w_hh = view(a.weights.w_hh, GH, S, S);
  const Eigen::Map<const Vector> bias(s.input_bias.data(), GH);
  DenormalsFlushed flushed;
  for (Index b = 0; b < B; ++b) {
    // Row-vector x matrix products: Eigen's GEMV kernel, no packing.
    Eigen::Map<Vector> gx(s.natural.data(), GH), gh(s.natural.data() + GH, GC);
    gx.noalias() = Eigen::Map<const Vector>(a.x + b * I, I) * w_ih.transpose();
    if (!Cell::kNormalizesInput) gx += bias;
    gh.noalias() = Eigen::Map<const Vector>(a.h + b * S, S) * w_hh.topRows(GC).transpose();
    if (Cell::kRecurrentIntoGates) gx.head(GC) += gh;
    for (int g = 0; g < Cell::kGates; ++g)
      for (Index u = 0; u < H; ++u) {
        const Index to = b * GH + layout.interleaved(g, u);
        s.gates[to] = gx[g * H + u];
        if (g * H < GC) s.recurrent[to] = gh[g * H + u];
      }
  }
  // LSTM: aux is c_{t-1} -> c_t; GRU: aux receives W_hn h + b_hn (not needed afterwards).
  T* aux = Cell::kCellState ? a.c : s.aux_next.data();
  T* out = a.projection ? s.m.data() : s.h_next.data();  // the cell's output
  StepForward<T> step{B, 1, s.gates.data(), s.recurrent.data(), a.h, out, aux, s.aux_next.data(),
                      Cell::recurrent_bias(a.weights.b_hh, H), /*h_prev_stride=*/S, /*h_next_stride=*/H};
  step.h_rec = a.h;
  step.h_rec_stride = S;
  step.extra = s.extra.data();
  step.extra_stride = E;
  step.params = s.params.data();
  step.input_bias = s.bias.data();
  if (Cell::kSecondProductGates) {  // natural layout: the n gate's columns are [GC, GH)
    step.second = s.second.data();
    Cell::forward_first(step, layout, 0, layout.blocks());
    const auto w_n = view(a.weights.w_hh + GC * S, GH - GC, S, S);
    for (Index b = 0; b < B; ++b)
      Eigen::Map<Vector>(s.gates.data() + b * GH + GC, GH - GC).noalias() +=
          Eigen::Map<const Vector>(s.second.data() + b * H, H) * w_n.transpose();
  }
  Cell::forward(step, layout, 0, layout.blocks());
  if (a.projection) {
    const auto w_hr = view(a.weights.w_hr, S, H, H);
    for (Index b = 0; b < B; ++b)
      Eigen::Map<Vector>(s.h_next.data() + b * S, S).noalias() = Eigen::Map<const Vector>(s.m.data() + b * H, H) *
                                                                  w_hr.transpose();
  }
  const T p = T(a.zoneout);
  if (p > 0) {  // the expectation of zoneout's mix
    for (Index j = 0; j < B * S; ++j) s.h_next[j] = p * a.h[j] + (T(1) - p) * s.h_next[j];
    if (Cell::kCellState)
      for (Index j = 0; j < B * H; ++j) s.aux_next[j] = p * a.c[j] + (T(1) - p) * s.aux_next[j];
  }
  std::copy_n(s.h_next.data(), B * S, a.h);
  if (Cell::kCellState) std::copy_n(s.aux_next.data(), B * H, a.c);
}

}  // namespace lstm_native
