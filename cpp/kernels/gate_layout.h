// How gate columns are ordered inside the kernels.
//
// PyTorch stores a recurrent layer's G gates as G stacked blocks of H rows (LSTM: i, f, g, o;
// GRU: r, z, n). The kernels reorder them into blocks of 16 hidden units holding all G gates
// of those units side by side: [gate0 u0..u15 | gate1 u0..u15 | ... ][gate0 u16..u31 | ...].
// A thread that owns a range of unit blocks then owns one contiguous range of gate columns,
// so it computes its share of h W_hh^T with one GEMM and applies the gate math without
// waiting for any other thread. The last block may be narrower than 16.
//
// Some kernels keep PyTorch's order as it is (NaturalGateLayout): the int8 layers
// (quantized_recurrent.cpp), whose products come out of weights quantised row by row in that
// order, and the row-local cells that need a subset of gates contiguous (the textbook GRU).
// A block's gates are then H columns apart instead of side by side. Which order is a type,
// not a flag, so that the interleaved layers' gate math keeps its constant offsets (with a
// run-time flag S2/S7 inference ran 1.5-2% slower at one thread).
#pragma once

#include "../common.h"

#include <algorithm>

namespace lstm_native {

// H hidden units in blocks of 16 (the last may be narrower), G gates each.
struct UnitBlocks {
  static constexpr Index kBlock = 16;
  Index hidden;  // H
  int gates;     // G

  Index blocks() const { return (hidden + kBlock - 1) / kBlock; }
  Index first_unit(Index block) const { return block * kBlock; }
  Index width(Index block) const { return std::min(kBlock, hidden - block * kBlock); }
  Index columns() const { return gates * hidden; }
};

// Natural: PyTorch's order (G stacked runs of H columns); else interleaved blocks of 16.
template <bool Natural>
struct BasicGateLayout : UnitBlocks {
  static constexpr bool natural = Natural;

  // First interleaved column of a block; blocks before it are all full width.
  Index column(Index block) const { return gates * kBlock * block; }
  // Where a block's gate 0 starts in a row of G*H columns, and how far apart its gates are
  // (what for_each_unit_block asks every layout).
  Index gate_column(Index block) const { return natural ? first_unit(block) : column(block); }
  Index gate_step(Index block) const { return natural ? hidden : width(block); }
  // The interleaved position of PyTorch's row gate * H + unit (itself in the natural order).
  Index interleaved(int gate, Index unit) const {
    if constexpr (Natural) return gate * hidden + unit;
    const Index block = unit / kBlock;
    return column(block) + gate * width(block) + unit % kBlock;
  }

  // dst (G*H x cols, interleaved rows) <- src (G*H x cols, PyTorch's rows).
  template <class T>
  void interleave_rows(const T* src, Index cols, T* dst) const {
    for (int g = 0; g < gates; ++g)
      for (Index u = 0; u < hidden; ++u)
        std::copy_n(src + (g * hidden + u) * cols, cols, dst + interleaved(g, u) * cols);
  }
  // dst (PyTorch's rows, `cols` wide) += src (interleaved rows, `src_stride` apart).
  template <class T>
  void accumulate_natural_rows(const T* src, Index src_stride, Index cols, T* dst) const {
    for (int g = 0; g < gates; ++g)
      for (Index u = 0; u < hidden; ++u) {
        const T* s = src + interleaved(g, u) * src_stride;
        T* d = dst + (g * hidden + u) * cols;
        for (Index j = 0; j < cols; ++j) d[j] += s[j];
      }
  }
  // dst (PyTorch's rows, `cols` wide) += the transpose of src (cols x G*H, interleaved
  // columns, rows `src_stride` apart).
  // Tile by tile (one gate of one unit block: up to 16 contiguous columns of src) so that
  // each src row is read in one run and the tile's dst rows stay in L1.
  template <class T>
  void accumulate_natural_rows_transposed(const T* src, Index src_stride, Index cols, T* dst) const {
    for (Index k = 0; k < blocks(); ++k)
      for (int g = 0; g < gates; ++g) {
        const Index u0 = first_unit(k), w = width(k);
        const T* s = src + gate_column(k) + g * gate_step(k);
        T* d = dst + (g * hidden + u0) * cols;
        for (Index j = 0; j < cols; ++j)
          for (Index u = 0; u < w; ++u) d[u * cols + j] += s[j * src_stride + u];
      }
  }
};

using GateLayout = BasicGateLayout<false>;
using NaturalGateLayout = BasicGateLayout<true>;

// One row's block of up to 16 units, where a cell's gate math works. W is the block width
// at compile time: 16 (fixed-size Eigen arrays, fully unrolled) or Eigen::Dynamic for a
// narrower last block.
template <class T, int W>
struct UnitBlock {
  using Array = Eigen::Array<T, W, 1>;
  Index column;     // the block's first gate column
  Index gate_step;  // columns from one of its gates to the next
  Index gates;      // offset of that column in this row of a (rows x G*H) buffer
  Index units;      // offset of its first unit in a (rows x H) buffer
  Index unit;       // its first unit's index in 0..H-1
  Index width;      // units in the block
  Index row_index;  // the row's index in the step's buffers

  // Gate g of the block in a (rows x G*H) buffer.
  Eigen::Map<Array> gate(T* buffer, int g) const { return {buffer + gates + g * gate_step, width}; }
  Eigen::Map<const Array> gate(const T* buffer, int g) const { return {buffer + gates + g * gate_step, width}; }
  // The block's units in a (rows x H) buffer, or one whose rows are `stride` apart.
  Eigen::Map<Array> row(T* buffer) const { return {buffer + units, width}; }
  Eigen::Map<const Array> row(const T* buffer) const { return {buffer + units, width}; }
  Eigen::Map<Array> row(T* buffer, Index stride) const { return {buffer + row_index * stride + unit, width}; }
  Eigen::Map<const Array> row(const T* buffer, Index stride) const { return {buffer + row_index * stride + unit, width}; }
  // The block's units in a per-unit vector (H).
  Eigen::Map<const Array> vector(const T* buffer) const { return {buffer + unit, width}; }
  // Gate g of the block in a per-column vector (G*H), such as a bias gradient.
  Eigen::Map<Array> column_vector(T* buffer, int g) const { return {buffer + column + g * gate_step, width}; }
  // Where a bias gradient sum accumulates: the row's own slot (a buffer laid out as the gates)
  // or one vector for every row.
  Eigen::Map<Array> bias_slot(T* buffer, int g, bool per_row) const {
    return {buffer + (per_row ? gates : column) + g * gate_step, width};
  }
};

// Runs body(block) for rows 0, row_step, ... (rows of them) and unit blocks
// [block_begin, block_end).
template <class T, class Layout, class Body>
inline void for_each_unit_block(const Layout& layout, Index rows, Index row_step, Index block_begin,
                                Index block_end, Body&& body) {
  constexpr Index kFull = UnitBlocks::kBlock;
  const Index H = layout.hidden, GH = layout.columns();
  for (Index i = 0; i < rows; ++i)
    for (Index k = block_begin; k < block_end; ++k) {
      const Index r = i * row_step;
      const Index column = layout.gate_column(k), gate_step = layout.gate_step(k), gates = r * GH + column;
      const Index unit = layout.first_unit(k), units = r * H + unit, width = layout.width(k);
      if (width == kFull)
        body(UnitBlock<T, static_cast<int>(kFull)>{column, gate_step, gates, units, unit, width, r});
      else
        body(UnitBlock<T, Eigen::Dynamic>{column, gate_step, gates, units, unit, width, r});
    }
}

}  // namespace lstm_native
