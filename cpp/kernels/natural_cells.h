// One time step of the LSTM / GRU cell math on gate pre-activations in PyTorch's natural
// order (LSTM i, f, g, o; GRU r, z, n), for the quantised layers: their products come from
// the int8 GEMM, already dequantised, so only the cell remains. Rows whose sequence has
// ended (active[b] == 0) keep their state.
#pragma once

#include "../common.h"
#include "activations.h"

#include <cstdint>

namespace lstm_native {

// gx: x W_ih^T + b_ih; gh: h W_hh^T + b_hh; both B x (G*H). h, c: B x H, updated in place.
inline void natural_cell_step(bool lstm, Index B, Index H, const float* gx, const float* gh, float* h, float* c,
                              const uint8_t* active) {
  using Array = Eigen::Array<float, 1, Eigen::Dynamic>;
  using Map = Eigen::Map<Array>;
  using ConstMap = Eigen::Map<const Array>;
  const Index G = lstm ? 4 : 3;
  for (Index b = 0; b < B; ++b) {
    if (active && !active[b]) continue;
    const float* x = gx + b * G * H;
    const float* r = gh + b * G * H;
    Map hb(h + b * H, H);
    if (lstm) {
      Map cb(c + b * H, H);
      const Array i = sigmoid(ConstMap(x, H) + ConstMap(r, H));
      const Array f = sigmoid(ConstMap(x + H, H) + ConstMap(r + H, H));
      const Array g = (ConstMap(x + 2 * H, H) + ConstMap(r + 2 * H, H)).tanh();
      const Array o = sigmoid(ConstMap(x + 3 * H, H) + ConstMap(r + 3 * H, H));
      cb = f * cb + i * g;
      hb = o * cb.tanh();
    } else {
      const Array reset = sigmoid(ConstMap(x, H) + ConstMap(r, H));
      const Array update = sigmoid(ConstMap(x + H, H) + ConstMap(r + H, H));
      const Array n = (ConstMap(x + 2 * H, H) + reset * ConstMap(r + 2 * H, H)).tanh();
      hb = (1.f - update) * n + update * hb;
    }
  }
}

}  // namespace lstm_native
