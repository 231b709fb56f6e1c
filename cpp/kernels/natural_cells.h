// One time step of the LSTM / GRU cell math on gate pre-activations in PyTorch's natural
// order (LSTM i, f, g, o; GRU r, z, n), for the quantised layers: their products come from
// the int8 GEMM, already dequantised, so only the cell remains. Rows whose sequence has
// ended (active[b] == 0) keep their state.
#pragma once

#include "../common.h"
#include "activations.h"

#include <cstdint>

namespace lstm_native {

// gx: x W_ih^T + b_ih (batch rows gx_stride floats apart); gh: h W_hh^T + b_hh (B x G*H);
// h, c: B x H, updated in place. Rows with active[b] == 0 keep their state. Each update is
// one Eigen expression, so nothing is allocated per row.
inline void natural_cell_step(bool lstm, Index B, Index H, const float* gx, Index gx_stride, const float* gh,
                              float* h, float* c, const uint8_t* active) {
  using Array = Eigen::Array<float, 1, Eigen::Dynamic>;
  using Map = Eigen::Map<Array>;
  using ConstMap = Eigen::Map<const Array>;
  const Index G = lstm ? 4 : 3;
  for (Index b = 0; b < B; ++b) {
    if (active && !active[b]) continue;
    const float* x = gx + b * gx_stride;
    const float* r = gh + b * G * H;
    auto input = [&](int gate) { return ConstMap(x + gate * H, H); };
    auto hidden = [&](int gate) { return ConstMap(r + gate * H, H); };
    Map hb(h + b * H, H);
    if (lstm) {
      Map cb(c + b * H, H);
      cb = sigmoid(input(1) + hidden(1)) * cb + sigmoid(input(0) + hidden(0)) * (input(2) + hidden(2)).tanh();
      hb = sigmoid(input(3) + hidden(3)) * cb.tanh();
    } else {   // n = tanh(x_n + r * (W_hn h + b_hn)); h = (1 - z) n + z h
      const auto update = sigmoid(input(1) + hidden(1));
      hb = (1.f - update) * (input(2) + sigmoid(input(0) + hidden(0)) * hidden(2)).tanh() + update * hb;
    }
  }
}

}  // namespace lstm_native
