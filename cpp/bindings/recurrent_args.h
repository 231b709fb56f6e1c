// What the recurrent bindings, float (recurrent.cpp) and int8 (quantized.cpp), read from
// their arguments: the cell, a direction's parameters and the sequence lengths, each checked
// in one place.
#pragma once

#include "arrays.h"

#include "../kernels/gru_cell.h"
#include "../kernels/lstm_cell.h"
#include "../recurrent.h"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace lstm_native {

struct CellInfo {
  int gates;        // G: a direction's parameters have G*H rows, PyTorch's gates stacked
  bool cell_state;  // LSTM (c next to h); else GRU
};

inline CellInfo cell_info(const std::string& cell) {
  if (cell == "lstm") return {LstmCell::kGates, true};
  if (cell == "gru") return {GruCell::kGates, false};
  if (cell == "rnn_tanh" || cell == "rnn_relu") return {1, false};
  throw py::value_error("cell must be 'lstm', 'gru', 'rnn_tanh' or 'rnn_relu', got '" + cell + "'");
}

// One of a direction's arrays, dtype T: G*H rows, `cols` wide (a vector without cols). Kept
// alive in `keep` while the GIL is released.
template <class T>
py::array gate_rows(const py::handle& obj, const char* name, CellInfo cell, Index hidden, std::vector<py::array>& keep,
                    std::optional<Index> cols = std::nullopt) {
  const Index rows = cell.gates * hidden;
  py::array a = cols ? checked<T>(obj, name, {rows, *cols}) : checked<T>(obj, name, {rows});
  keep.push_back(a);
  return a;
}

// The hidden size a direction's weights (w_ih, w_hh, b_ih, b_hh) imply: W_hh's columns.
template <class T>
Index hidden_size_of(const py::handle& weights) {
  const py::tuple w = weights.cast<py::tuple>();
  if (w.size() != 4) throw py::value_error("each direction's weights are (w_ih, w_hh, b_ih, b_hh)");
  const Index H = checked<T>(w[1], "weight_hh", {-1, -1}).shape(1);
  if (H == 0) throw py::value_error("hidden size is 0");
  return H;
}

// A direction's parameters, or the gradients they accumulate into, as PyTorch lays them
// out: (w_ih (G*H, I), w_hh (G*H, H), b_ih (G*H,) or None, b_hh likewise). Params is
// DirectionWeights<T> (read) or DirectionGrads<T> (written into); `prefix` leads each
// array's name in errors ("" or "grad ").
template <class Params>
Params direction_params(const py::handle& tuple, const std::string& prefix, CellInfo cell, Index input,
                        Index hidden, std::vector<py::array>& keep) {
  using Pointer = decltype(Params::w_ih);
  using T = std::remove_const_t<std::remove_pointer_t<Pointer>>;
  const py::tuple w = tuple.cast<py::tuple>();
  if (w.size() != 4)
    throw py::value_error("each direction's " + std::string(prefix.empty() ? "weights" : "grads") +
                          " are (w_ih, w_hh, b_ih, b_hh)");
  const auto pointer = [&](int i, const char* what, std::optional<Index> cols) -> Pointer {
    if (i >= 2 && w[i].is_none()) return nullptr;
    const std::string name = prefix + what;
    py::array a = gate_rows<T>(w[i], name.c_str(), cell, hidden, keep, cols);
    if constexpr (std::is_const_v<std::remove_pointer_t<Pointer>>) return data_of<T>(a);
    else return output_of<T>(a, name.c_str());
  };
  Params p;
  p.w_ih = pointer(0, "weight_ih", input);
  p.w_hh = pointer(1, "weight_hh", hidden);
  p.b_ih = pointer(2, "bias_ih", std::nullopt);
  p.b_hh = pointer(3, "bias_hh", std::nullopt);
  return p;
}

// Per-sequence lengths (B,) in [0, steps], or null for None (every sequence is `steps` long).
inline const std::int64_t* lengths_of(const py::handle& obj, Index batch, Index steps, std::vector<py::array>& keep) {
  if (obj.is_none()) return nullptr;
  py::array lengths = checked<std::int64_t>(obj, "lengths", {batch});
  const std::int64_t* l = data_of<std::int64_t>(lengths);
  for (Index b = 0; b < batch; ++b)
    if (l[b] < 0 || l[b] > steps)
      throw py::value_error("lengths[" + std::to_string(b) + "] = " + std::to_string(l[b]) + " is outside [0, " +
                            std::to_string(steps) + "]");
  keep.push_back(lengths);
  return l;
}

}  // namespace lstm_native
