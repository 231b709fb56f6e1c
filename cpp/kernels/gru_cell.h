// GRU gate math for one step (PyTorch's formulation, gate order r, z, n):
//   r = sigma(a_r + h W_hr^T)   z = sigma(a_z + h W_hz^T)
//   n = tanh(a_n + r * (h W_hn^T + b_hn))      h_t = (1 - z) * n + z * h_{t-1}
// where a = x W_ih^T + b_ih (+ b_hr, b_hz folded in). The reset gate applies after the
// recurrent GEMM ("linear before reset"), so one GEMM h W_hh^T serves all three gates.
#pragma once

#include "activations.h"
#include "cell_base.h"
#include "gate_layout.h"
#include "step.h"

namespace lstm_native {

struct GruCell : CellBase {
  static constexpr int kGates = 3;
  static constexpr bool kCellState = false;
  static constexpr bool kRecurrentIntoGates = false;  // h W_hh^T goes to its own buffer
  static constexpr bool kDirectStateGradient = true;  // h_t depends on h_{t-1} through z too
  static constexpr bool kInputGradientsDiffer = true; // the n gate's differ by the factor r
  static constexpr const char* kName = "GRU";

  template <class T>
  static void input_bias(const T* b_ih, const T* b_hh, Index hidden, T* out) {
    for (Index j = 0; j < kGates * hidden; ++j) {
      const bool folded = j < 2 * hidden;  // b_hr and b_hz add like input biases; b_hn does not
      out[j] = (b_ih ? b_ih[j] : T(0)) + (folded && b_hh ? b_hh[j] : T(0));
    }
  }
  template <class T>
  static const T* recurrent_bias(const T* b_hh, Index hidden) { return b_hh ? b_hh + 2 * hidden : nullptr; }

  // Layout: GateLayout, or NaturalGateLayout for the int8 layers.
  template <class T, class Layout>
  static void forward(const StepForward<T>& s, const Layout& layout, Index block_begin, Index block_end) {
    for_each_unit_block<T>(layout, s.rows, s.row_step, block_begin, block_end, [&](const auto& at) {
      auto r = at.gate(s.gates, 0), z = at.gate(s.gates, 1), cand = at.gate(s.gates, 2);
      auto hn = at.row(s.aux), h = at.row(s.h_next, s.h_next_stride);
      r = sigmoid(r + at.gate(s.recurrent, 0));
      z = sigmoid(z + at.gate(s.recurrent, 1));
      if (s.recurrent_bias)
        hn = at.gate(s.recurrent, 2) + at.vector(s.recurrent_bias);
      else
        hn = at.gate(s.recurrent, 2);
      cand = (cand + r * hn).tanh();
      h = cand + z * (at.row(s.h_prev, s.h_prev_stride) - cand);
    });
  }

  template <class T>
  static void backward(const StepBackward<T>& s, const GateLayout& layout, Index block_begin, Index block_end) {
    for_each_unit_block<T>(layout, s.rows, s.row_step, block_begin, block_end, [&](const auto& at) {
      using A = typename std::decay_t<decltype(at)>::Array;
      auto r = at.gate(s.gates, 0), z = at.gate(s.gates, 1), cand = at.gate(s.gates, 2);
      auto hn = at.row(s.aux), dh = at.row(s.dh);
      const A d_cand = dh * (T(1) - z) * (T(1) - cand * cand);  // w.r.t. n's pre-activation
      const A d_r = d_cand * hn * r * (T(1) - r);
      const A d_z = dh * (at.row(s.h_prev, s.h_prev_stride) - cand) * z * (T(1) - z);
      dh = dh * z;
      cand = d_cand * r;  // w.r.t. h W_hn^T + b_hn
      r = d_r;
      z = d_z;
      hn = d_cand;  // w.r.t. x W_in^T + b_in, swapped in by to_input_gradients
      if (s.bias_grad) {
        at.bias_slot(s.bias_grad, 0, s.bias_per_row) += d_r;
        at.bias_slot(s.bias_grad, 1, s.bias_per_row) += d_z;
        at.bias_slot(s.bias_grad, 2, s.bias_per_row) += cand;
        at.bias_slot(s.input_bias_grad, 0, s.bias_per_row) += d_r;
        at.bias_slot(s.input_bias_grad, 1, s.bias_per_row) += d_z;
        at.bias_slot(s.input_bias_grad, 2, s.bias_per_row) += d_cand;
      }
    });
  }

  // After the loop the gate buffer holds gradients w.r.t. h W_hh^T (+ b_hh); the input
  // projection's differ in the n gate only: put d a_n (kept in aux) there.
  template <class T>
  static void to_input_gradients(const InputGradients<T>& p, const GateLayout& layout) {
    for_each_unit_block<T>(layout, p.rows, 1, 0, layout.blocks(), [&](const auto& at) { at.gate(p.gates, 2) = at.row(p.aux); });
  }
};

}  // namespace lstm_native
