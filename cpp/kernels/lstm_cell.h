// LSTM gate math for one step (PyTorch's formulation, gate order i, f, g, o):
//   i = sigma(a_i)  f = sigma(a_f)  g = tanh(a_g)  o = sigma(a_o)
//   c_t = f * c_{t-1} + i * g       h_t = o * tanh(c_t)
// where a = x W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh (the recurrent GEMM accumulates
// straight onto the gate buffer). Backward keeps only the activations and c.
#pragma once

#include "activations.h"
#include "cell_base.h"
#include "gate_layout.h"
#include "step.h"

namespace lstm_native {

struct LstmCell : CellBase {
  static constexpr int kGates = 4;
  static constexpr bool kCellState = true;          // carries c_t next to h_t
  static constexpr bool kRecurrentIntoGates = true; // h W_hh^T is added onto the gate buffer
  static constexpr bool kDirectStateGradient = false;  // d h_{t-1} comes only through W_hh
  static constexpr bool kInputGradientsDiffer = false; // d(x W_ih^T) = d(h W_hh^T)
  static constexpr const char* kName = "LSTM";

  // Bias folded into the input projection (natural order, G*H) and the one kept for the
  // step (none): both PyTorch biases simply add.
  template <class T>
  static void input_bias(const T* b_ih, const T* b_hh, Index hidden, T* out) {
    for (Index j = 0; j < kGates * hidden; ++j) out[j] = (b_ih ? b_ih[j] : T(0)) + (b_hh ? b_hh[j] : T(0));
  }
  template <class T>
  static const T* recurrent_bias(const T*, Index) { return nullptr; }

  // Layout: GateLayout, or NaturalGateLayout for the int8 layers.
  template <class T, class Layout>
  static void forward(const StepForward<T>& s, const Layout& layout, Index block_begin, Index block_end) {
    for_each_unit_block<T>(layout, s.rows, s.row_step, block_begin, block_end, [&](const auto& at) {
      auto i = at.gate(s.gates, 0), f = at.gate(s.gates, 1), g = at.gate(s.gates, 2), o = at.gate(s.gates, 3);
      auto c = at.row(s.aux_next), h = at.row(s.h_next, s.h_next_stride);
      i = sigmoid(i);
      f = sigmoid(f);
      g = g.tanh();
      o = sigmoid(o);
      c = f * at.row(s.aux) + i * g;
      h = o * c.tanh();
    });
  }

  template <class T>
  static void backward(const StepBackward<T>& s, const GateLayout& layout, Index block_begin, Index block_end) {
    for_each_unit_block<T>(layout, s.rows, s.row_step, block_begin, block_end, [&](const auto& at) {
      using A = typename std::decay_t<decltype(at)>::Array;
      auto i = at.gate(s.gates, 0), f = at.gate(s.gates, 1), g = at.gate(s.gates, 2), o = at.gate(s.gates, 3);
      const auto c_prev = at.row(s.aux);
      const A c = f * c_prev + i * g;  // c_t as the cell made it (zoneout may have stored another)
      auto dh = at.row(s.dh), dc = at.row(s.dc);
      const A tanh_c = c.tanh();
      const A dc_total = dc + dh * o * (T(1) - tanh_c * tanh_c);
      const A d_o = dh * tanh_c * o * (T(1) - o);
      const A d_i = dc_total * g * i * (T(1) - i);
      const A d_f = dc_total * c_prev * f * (T(1) - f);
      const A d_g = dc_total * i * (T(1) - g * g);
      dc = dc_total * f;
      i = d_i;
      f = d_f;
      g = d_g;
      o = d_o;
      if (s.bias_grad) {
        at.bias_slot(s.bias_grad, 0, s.bias_per_row) += d_i;
        at.bias_slot(s.bias_grad, 1, s.bias_per_row) += d_f;
        at.bias_slot(s.bias_grad, 2, s.bias_per_row) += d_g;
        at.bias_slot(s.bias_grad, 3, s.bias_per_row) += d_o;
      }
    });
  }

  // The gate gradients w.r.t. the input projection equal those w.r.t. h W_hh^T.
  template <class T>
  static void to_input_gradients(const InputGradients<T>&, const GateLayout&) {}
};

}  // namespace lstm_native
