// Elman RNN gate math for one step (torch.nn.RNN): h_t = act(a), act tanh or relu, where
// a = x W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh (one gate: the recurrent GEMM accumulates
// straight onto it). The gate buffer keeps h_t, from which both derivatives follow.
#pragma once

#include "activations.h"
#include "cell_base.h"
#include "gate_layout.h"
#include "step.h"

namespace lstm_native {

enum class RnnActivation { kTanh, kRelu };

template <RnnActivation Act>
struct RnnCell : CellBase {
  static constexpr int kGates = 1;
  static constexpr bool kCellState = false;
  static constexpr bool kRecurrentIntoGates = true;
  static constexpr bool kDirectStateGradient = false;
  static constexpr bool kInputGradientsDiffer = false;
  static constexpr const char* kName = Act == RnnActivation::kTanh ? "RNN_TANH" : "RNN_RELU";

  template <class T>
  static void input_bias(const T* b_ih, const T* b_hh, Index hidden, T* out) {
    for (Index j = 0; j < hidden; ++j) out[j] = (b_ih ? b_ih[j] : T(0)) + (b_hh ? b_hh[j] : T(0));
  }
  template <class T>
  static const T* recurrent_bias(const T*, Index) { return nullptr; }

  // Layout: GateLayout, or NaturalGateLayout for the int8 layers.
  template <class T, class Layout>
  static void forward(const StepForward<T>& s, const Layout& layout, Index block_begin, Index block_end) {
    for_each_unit_block<T>(layout, s.rows, s.row_step, block_begin, block_end, [&](const auto& at) {
      auto a = at.gate(s.gates, 0);
      if constexpr (Act == RnnActivation::kTanh) a = a.tanh();
      else a = a.max(T(0));
      at.row(s.h_next, s.h_next_stride) = a;
    });
  }

  template <class T>
  static void backward(const StepBackward<T>& s, const GateLayout& layout, Index block_begin, Index block_end) {
    for_each_unit_block<T>(layout, s.rows, s.row_step, block_begin, block_end, [&](const auto& at) {
      using A = typename std::decay_t<decltype(at)>::Array;
      auto h = at.gate(s.gates, 0);
      A d;
      if constexpr (Act == RnnActivation::kTanh) d = at.row(s.dh) * (T(1) - h * h);
      else d = at.row(s.dh) * (h > T(0)).template cast<T>();
      h = d;
      if (s.bias_grad) at.bias_slot(s.bias_grad, 0, s.bias_per_row) += d;
    });
  }

  template <class T>
  static void to_input_gradients(const InputGradients<T>&, const GateLayout&) {}
};

using RnnTanhCell = RnnCell<RnnActivation::kTanh>;
using RnnReluCell = RnnCell<RnnActivation::kRelu>;

}  // namespace lstm_native
