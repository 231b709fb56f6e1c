// What the recurrent bindings, float (recurrent.cpp) and int8 (quantized.cpp), read from
// their arguments: the cell, a direction's parameters (one parser for forward, step and
// backward, weights and gradients alike; the int8 path checks its quantised rows with
// gate_rows) and the sequence lengths, each checked in one place.
#pragma once

#include "arrays.h"

#include "../kernels/gru_cell.h"
#include "../kernels/lstm_cell.h"
#include "../recurrent.h"

#include <cstdint>
#include <optional>
#include <string>
#include <type_traits>
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

// The sizes a direction's weights imply: H from W_hh's rows, S from its columns, and whether
// an LSTM's h is projected (a fifth array, w_hr).
struct DirectionSizes {
  Index hidden = 0, state = 0;
  bool projected = false;
};

template <class Cell, class T>
DirectionSizes direction_sizes(const py::handle& tuple) {
  const py::tuple w = tuple.cast<py::tuple>();
  const bool may_project = std::is_same_v<Cell, LstmCell>;
  const size_t base = 4 + Cell::kParamArrays;
  if (w.size() != base && !(may_project && w.size() == base + 1))
    throw py::value_error(std::string("each direction's weights are (w_ih, w_hh, b_ih, b_hh") +
                          (may_project ? "[, w_hr]" : "") +
                          (Cell::kParamArrays ? ", then the cell's " + std::to_string(Cell::kParamArrays) + " gain/shift arrays" : "") +
                          ") for " + Cell::kName);
  DirectionSizes s;
  s.projected = may_project && w.size() == base + 1 && !w[4].is_none();
  if (s.projected) {  // H and S from W_hr (S, H); W_hh must then be (4H, S)
    const py::array w_hr = checked<T>(w[4], "weight_hr", {-1, -1});
    s.state = w_hr.shape(0);
    s.hidden = w_hr.shape(1);
    if (s.state == 0 || s.state >= s.hidden)
      throw py::value_error("weight_hr must be (proj_size, hidden_size) with 0 < proj_size < hidden_size, got (" +
                            std::to_string(s.state) + ", " + std::to_string(s.hidden) + ")");
  } else {
    s.hidden = s.state = checked<T>(w[1], "weight_hh", {-1, -1}).shape(1);
  }
  if (s.hidden == 0) throw py::value_error("hidden size is 0");
  checked<T>(w[1], "weight_hh", {Cell::kGates * s.hidden, s.state});
  return s;
}

// A direction's arrays (weights, read; or gradients, written into: Params is DirectionWeights<T>
// or DirectionGrads<T>), each checked and kept alive in `keep`.
template <class Cell, class Params>
Params direction_arrays(const py::handle& tuple, const std::string& prefix, Index input, const DirectionSizes& s,
                        std::vector<py::array>& keep) {
  using Pointer = decltype(Params::w_ih);
  using T = std::remove_const_t<std::remove_pointer_t<Pointer>>;
  const py::tuple w = tuple.cast<py::tuple>();
  const Index GH = Cell::kGates * s.hidden;
  const bool base_size = w.size() == 4 + Cell::kParamArrays + (s.projected ? 1 : 0);
  if (!base_size)
    throw py::value_error("each direction's " + std::string(prefix.empty() ? "weights" : "grads") +
                          " must match the layer's (" + std::to_string(4 + Cell::kParamArrays + (s.projected ? 1 : 0)) +
                          " arrays)");
  const auto pointer = [&](int i, const std::string& what, const std::vector<Index>& shape, bool optional) -> Pointer {
    if (optional && w[i].is_none()) return nullptr;
    const std::string name = prefix + what;
    py::array a = checked<T>(w[i], name.c_str(), shape);
    keep.push_back(a);
    if constexpr (std::is_const_v<std::remove_pointer_t<Pointer>>) return data_of<T>(a);
    else return output_of<T>(a, name.c_str());
  };
  Params p;
  p.w_ih = pointer(0, "weight_ih", {GH, input}, false);
  p.w_hh = pointer(1, "weight_hh", {GH, s.state}, false);
  p.b_ih = pointer(2, "bias_ih", {GH}, true);
  p.b_hh = pointer(3, "bias_hh", {GH}, true);
  const int first_param = s.projected ? 5 : 4;
  if (s.projected) p.w_hr = pointer(4, "weight_hr", {s.state, s.hidden}, !prefix.empty());
  for (int k = 0; k < Cell::kParamArrays; ++k)
    p.params[k] = pointer(first_param + k, "cell parameter " + std::to_string(k),
                          {Cell::param_array_size(k, s.hidden)}, !prefix.empty());
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
