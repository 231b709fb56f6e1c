// The textbook GRU (Cho et al. 2014; Keras' reset_after=False, ONNX's linear_before_reset=0),
// gate order r, z, n as PyTorch's parameters:
//   r = sigma(a_r + h W_hr^T)   z = sigma(a_z + h W_hz^T)
//   n = tanh(a_n + (r * h) W_hn^T)      h_t = (1 - z) * n + z * h_{t-1}
// where a = x W_ih^T + b_ih + b_hh (every bias simply adds here). The reset gate applies to h
// before the n gate's product, so one GEMM cannot serve all three gates: each step runs
// h W_h{r,z}^T onto the r and z columns, forward_first() makes r * h, the loop multiplies it
// by W_hn^T onto the n columns (the second product, cell_base.h), and forward() finishes.
// Backward mirrors it: backward() gives the n and z gradients, the loop multiplies n's by W_hn
// (d (r * h)), backward_first() gives r's and the direct part of d h_{t-1}.
// The columns of the r and z gates must be contiguous, so this cell works in PyTorch's gate
// order (natural layout) on whole rows.
#pragma once

#include "activations.h"
#include "cell_base.h"
#include "gate_layout.h"
#include "step.h"

namespace lstm_native {

struct GruResetBeforeCell : CellBase {
  static constexpr int kGates = 3;
  static constexpr bool kCellState = false;
  static constexpr bool kRecurrentIntoGates = true;    // both products add onto the gate buffer
  static constexpr bool kDirectStateGradient = true;   // h_t depends on h_{t-1} through z and r * h too
  static constexpr bool kInputGradientsDiffer = false; // every gate's pre-activation is a plain sum
  static constexpr bool kRowLocal = true;
  static constexpr bool kNaturalLayout = true;
  static constexpr int kSecondProductGates = 1;
  static constexpr const char* kName = "GRU (reset before)";

  template <class T>
  static void input_bias(const T* b_ih, const T* b_hh, Index hidden, T* out) {
    for (Index j = 0; j < kGates * hidden; ++j) out[j] = (b_ih ? b_ih[j] : T(0)) + (b_hh ? b_hh[j] : T(0));
  }
  template <class T>
  static const T* recurrent_bias(const T*, Index) { return nullptr; }

  // r and z from their pre-activations (input + h W_h{r,z}^T), and the second product's input r * h.
  template <class T>
  static void forward_first(const StepForward<T>& s, const NaturalGateLayout& layout, Index block_begin, Index block_end) {
    for_each_unit_block<T>(layout, s.rows, s.row_step, block_begin, block_end, [&](const auto& at) {
      auto r = at.gate(s.gates, 0), z = at.gate(s.gates, 1);
      r = sigmoid(r);
      z = sigmoid(z);
      at.row(s.second) = r * at.row(s.h_rec, s.h_rec_stride);
    });
  }

  template <class T>
  static void forward(const StepForward<T>& s, const NaturalGateLayout& layout, Index block_begin, Index block_end) {
    for_each_unit_block<T>(layout, s.rows, s.row_step, block_begin, block_end, [&](const auto& at) {
      auto z = at.gate(s.gates, 1), n = at.gate(s.gates, 2);
      n = n.tanh();
      at.row(s.h_next, s.h_next_stride) = n + z * (at.row(s.h_prev, s.h_prev_stride) - n);
    });
  }

  // In: activations, d loss / d h_t. Out: the n and z columns hold their pre-activations'
  // gradients, dh the part of d h_{t-1} through z.
  template <class T>
  static void backward(const StepBackward<T>& s, const NaturalGateLayout& layout, Index block_begin, Index block_end) {
    for_each_unit_block<T>(layout, s.rows, s.row_step, block_begin, block_end, [&](const auto& at) {
      using A = typename std::decay_t<decltype(at)>::Array;
      auto z = at.gate(s.gates, 1), n = at.gate(s.gates, 2);
      auto dh = at.row(s.dh);
      const A d_n = dh * (T(1) - z) * (T(1) - n * n);
      const A d_z = dh * (at.row(s.h_prev, s.h_prev_stride) - n) * z * (T(1) - z);
      dh = dh * z;
      z = d_z;
      n = d_n;
      if (s.bias_grad) {
        at.bias_slot(s.bias_grad, 1, s.bias_per_row) += d_z;
        at.bias_slot(s.bias_grad, 2, s.bias_per_row) += d_n;
      }
    });
  }

  // In: d_second = d loss / d (r * h). Out: r's pre-activation gradient; d_rec += the part of
  // d h_rec through r * h (d_rec is dh itself unless recurrent dropout keeps them apart).
  template <class T>
  static void backward_first(const StepBackward<T>& s, const NaturalGateLayout& layout, Index block_begin, Index block_end) {
    for_each_unit_block<T>(layout, s.rows, s.row_step, block_begin, block_end, [&](const auto& at) {
      using A = typename std::decay_t<decltype(at)>::Array;
      auto r = at.gate(s.gates, 0);
      const auto dq = at.row(s.d_second);
      const A d_r = dq * at.row(s.h_rec, s.h_rec_stride) * r * (T(1) - r);
      at.row(s.d_rec) += dq * r;
      r = d_r;
      if (s.bias_grad) at.bias_slot(s.bias_grad, 0, s.bias_per_row) += d_r;
    });
  }

  template <class T>
  static void to_input_gradients(const InputGradients<T>&, const NaturalGateLayout&) {}
};

}  // namespace lstm_native
