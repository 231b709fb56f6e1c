// One direction of one int8-quantised recurrent layer over a whole sequence: per step, h is
// quantised, multiplied by the int8 W_hh (qgemm.h), and the float cell runs on the result.
// The input projection x W_ih^T + b_ih of every step comes in precomputed (one int8 GEMM by
// the caller), in the caller's layout.
#pragma once

#include "common.h"

#include <cstdint>

namespace lstm_native {

enum class QuantizedCell { kLstm, kGru, kRnnTanh, kRnnRelu };

struct QuantizedRecurrentArgs {
  QuantizedCell cell = QuantizedCell::kLstm;
  Index batch = 0, steps = 0, hidden = 0;
  const float* gx = nullptr;           // step t of row b at gx + b * gx_row + t * gx_step (G*H floats)
  Index gx_row = 0, gx_step = 0;
  const int8_t* w_q = nullptr;         // W_hh, G*H rows of padded_depth(hidden) bytes
  const float* w_scale = nullptr;      // G*H
  const int32_t* w_row_sum = nullptr;  // G*H
  const float* bias = nullptr;         // b_hh (G*H) or null
  float* h = nullptr;                  // batch x hidden: initial state in, final state out
  float* c = nullptr;                  // the same for the LSTM's cell state; null for GRU
  const int64_t* lengths = nullptr;    // per row, in [0, steps]; null: all `steps` long
  bool reverse = false;                // run t = steps-1 .. 0
  float* out = nullptr;                // h_t of row b at out + b * out_row + t * out_step (hidden floats)
  Index out_row = 0, out_step = 0;     //   zero where t >= lengths[b]
};

void quantized_recurrent(const QuantizedRecurrentArgs& a);

}  // namespace lstm_native
