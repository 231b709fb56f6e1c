// What a cell trait may declare beyond LSTM's and GRU's plain shape, with the defaults those
// two use. The step loop (recurrent.h, recurrent_step.h) reads these constants and calls these
// hooks for every cell; a cell overrides only what it needs:
//
//   kRowLocal           the gate math needs whole rows (layer norm's statistics, a second
//                       product that needs every unit of r * h): the team splits the batch
//                       or gives each direction one member, never the hidden units
//   kNaturalLayout      gate columns stay in PyTorch's order (NaturalGateLayout) instead of
//                       interleaved blocks of 16, so that the columns of a subset of gates are
//                       contiguous (row-local cells only)
//   kNormalizesInput    the input projection comes out of its GEMM without bias: the cell
//                       finishes it in forward() (normalises the row, adds `input_bias`)
//   kSecondProductGates the last kSecondProductGates gates take their recurrent product from
//                       a per-row vector forward_first() computes (r * h for the textbook
//                       GRU) rather than from h; the loop runs that second product between
//                       forward_first() and forward(), and in backward between backward()
//                       and backward_first() (natural layout only)
//   kParamArrays        parameters of the cell's own beyond W_ih, W_hh, b_ih, b_hh (layer
//                       norm's gains), each param_array_size(k, H) long; the loop hands them
//                       to the cell concatenated in order (natural unit order) as `params`,
//                       and sums their gradients from `param_grad`
//   extra_width(H)      values per packed row the cell keeps from forward to backward
//                       (`extra`), beside the gate activations and `aux`
//   kInputGradientsInExtra  backward leaves the input projection's gradients (G*H per row) in
//                       `extra` at input_gradient_offset(H), where the loop's GEMMs read them
//                       (instead of to_input_gradients() turning the gates into them)
#pragma once

#include "../common.h"
#include "gate_layout.h"
#include "step.h"

namespace lstm_native {

struct CellBase {
  static constexpr bool kRowLocal = false;
  static constexpr bool kNaturalLayout = false;
  static constexpr bool kNormalizesInput = false;
  static constexpr bool kInputGradientsInExtra = false;
  static Index input_gradient_offset(Index) { return 0; }
  static constexpr int kSecondProductGates = 0;
  static constexpr int kParamArrays = 0;
  static Index param_array_size(int, Index) { return 0; }
  static Index extra_width(Index) { return 0; }

  template <class T, class Layout>
  static void forward_first(const StepForward<T>&, const Layout&, Index, Index) {}
  template <class T, class Layout>
  static void backward_first(const StepBackward<T>&, const Layout&, Index, Index) {}
};

// The total size of a cell's own parameters.
template <class Cell>
Index cell_param_size(Index hidden) {
  Index n = 0;
  for (int k = 0; k < Cell::kParamArrays; ++k) n += Cell::param_array_size(k, hidden);
  return n;
}

// The gate layout a cell's kernels work in.
template <class Cell>
using CellLayout = BasicGateLayout<Cell::kNaturalLayout>;

template <class Cell>
CellLayout<Cell> cell_layout(Index hidden) {
  return CellLayout<Cell>{{hidden, Cell::kGates}};
}

}  // namespace lstm_native
