// One recurrent layer (one or two directions) over a whole padded batch: the sequence
// loop that LSTM and GRU share. The cell (kernels/lstm_cell.h, kernels/gru_cell.h)
// supplies the gate math; everything else lives here:
//
// forward   1. input projection of every step at once: gates = X W_ih^T + bias (one GEMM)
//           2. per step: h_{t-1} W_hh^T with W_hh packed once per call, then the cell's gate
//              math; the team divides the steps' rows or units as step_loop.h says
//           An LSTM with a narrow input (S1: I = 1) skips 1. and takes x into each step's
//           product instead: [h_{t-1} | x_t] [W_hh | W_ih]^T + bias (see fuse_input()).
// backward  1. per step: the cell's gradient math (which also sums the bias gradients),
//              then dh_{t-1} = dG_t W_hh
//           2. weight gradients as one GEMM each over all steps:
//              dW_hh = dG^T H_prev, dW_ih = dG^T X, dX = dG W_ih
//
// Buffers are packed (schedule.h) and kept in a RecurrentWorkspace between forward and
// backward: gate activations, each row's incoming h (and the cell's aux state), and the
// final states of sequences as they end. Nothing is allocated per step, and the
// workspace's buffers are reused from call to call.
//
// Beyond that shape, generic to every cell (each a no-op when unused):
//  - the cell's own hooks and storage (kernels/cell_base.h): row-local cells, a second
//    recurrent product within the step (the textbook GRU), an input normalisation (layer
//    norm), the cell's own parameters and per-row storage;
//  - a projection of h (torch's proj_size): h_t = m_t W_hr^T, m_t being the cell's output,
//    so h is S = proj_size wide while c stays H; one more product per step;
//  - recurrent dropout: the h that feeds the recurrent product is h * mask (one mask per
//    sequence); hx then holds the masked h and hp the true one, for cells that read it;
//  - zoneout: after the cell, h_t = k h_{t-1} + (1 - k) h_new and c likewise, k a 0/1 mask
//    per step and unit in training or the probability p in evaluation.
#pragma once

#include "common.h"
#include "gemm.h"
#include "kernels/cell_base.h"
#include "kernels/gate_layout.h"
#include "kernels/step.h"
#include "schedule.h"
#include "step_loop.h"
#include "threads.h"

#include <algorithm>
#include <cstdint>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace lstm_native {

constexpr int kMaxCellParams = 4;  // a cell's own parameter arrays (cell_base.h)

// A direction's parameters in PyTorch's layout; biases may be null.
template <class T>
struct DirectionWeights {
  const T* w_ih = nullptr;  // G*H x I
  const T* w_hh = nullptr;  // G*H x S
  const T* b_ih = nullptr;  // G*H
  const T* b_hh = nullptr;  // G*H
  const T* w_hr = nullptr;  // S x H: the projection of h (torch's weight_hr), or null: none
  const T* params[kMaxCellParams] = {};  // the cell's own (Cell::param_array_size each)
};

// Where a direction's parameter gradients accumulate (PyTorch's layout); null = skip.
template <class T>
struct DirectionGrads {
  T* w_ih = nullptr;
  T* w_hh = nullptr;
  T* b_ih = nullptr;
  T* b_hh = nullptr;
  T* w_hr = nullptr;
  T* params[kMaxCellParams] = {};
};

struct LayerShape {
  SequenceShape sequence;
  Index input = 0, hidden = 0;
  int directions = 1;
  Index projection = 0;  // S when h is projected to S < H values (torch's proj_size), else 0
  Index state() const { return projection ? projection : hidden; }  // the width of h
};

template <class T>
struct ForwardArgs {
  LayerShape shape;
  std::int64_t weights_version = -1;   // changes whenever any weight may have changed; >= 0 lets the
                                       // workspace keep what it prepares from them (-1: prepare anew)
  const T* x = nullptr;                // sequence layout, I features
  const std::int64_t* lengths = nullptr;  // B lengths in [0, T], or null: all T
  DirectionWeights<T> weights[2];
  const T* h0 = nullptr;               // D x B x S, or null: zeros
  const T* c0 = nullptr;               // D x B x H (cells with a cell state), or null: zeros
  T* out = nullptr;                    // sequence layout, D*S features; zero past each length
  T* h_n = nullptr;                    // D x B x S
  T* c_n = nullptr;                    // D x B x H, cells with a cell state
  const T* recurrent_mask = nullptr;   // D x B x S: recurrent dropout (scaled), or null: none
  const std::uint8_t* zoneout_mask = nullptr;  // like out: 1 where a unit keeps its state (training)
  double zoneout = 0;                  // without a mask: the evaluation mix p (0: no zoneout)
};

template <class T>
struct BackwardArgs {
  const T* x = nullptr;      // the forward's input
  const T* d_out = nullptr;  // like out, or null
  const T* d_last = nullptr; // B x D*S: gradient w.r.t. each sequence's output at its last step
                             // (a sparse d_out, as LastTimestep gives), or null
  const T* dh_n = nullptr;   // D x B x S, or null
  const T* dc_n = nullptr;   // D x B x H, or null
  DirectionGrads<T> grads[2];
  T* dx = nullptr;           // like x, or null: the input gradient is not needed
  T* dh0 = nullptr;          // D x B x S
  T* dc0 = nullptr;          // D x B x H, cells with a cell state
};

// What a forward prepared from the weights (interleaved copies, folded biases, packed
// matrices): kept for the next forward while the weights' version, the shapes and the team's
// plan are the same. A backward repacks the shared matrices for its own products, and so
// clears it.
struct PreparedWeights {
  std::int64_t version = -1;
  Index input = -1, hidden = -1;
  int directions = 0, gates = 0;
  bool fused = false;
  StepPlan plan;
  Index state = -1;            // the width of h (a projection's)
  const char* cell = nullptr;  // the cell's name
  bool fits(std::int64_t v, Index i, Index h, int d, int g, bool f, const StepPlan& p) const {
    return v >= 0 && version == v && input == i && hidden == h && directions == d && gates == g && fused == f &&
           plan == p;
  }
};

// What a forward keeps for its backward, and the scratch both reuse between calls.
template <class T>
struct RecurrentWorkspace {
  struct Direction {
    std::vector<T> w_ih, w_hh;  // interleaved copies of the weights the forward ran with
    std::vector<T> w_hx;        // G*H x (H + I): [W_hh | W_ih] rows side by side, when x joins the step's product
    std::vector<T> gates;       // rows x G*H: activations, then gradients
    std::vector<T> hx;          // rows x (H + I): the h each packed row started from, then its x
                                // (side by side, so dW_hh and dW_ih are one GEMM over dG)
    std::vector<T> aux;         // rows x H: the cell's per-row state (LSTM: the c it started from)
    std::vector<T> recurrent;   // B x G*H: h W_hh^T for cells that keep it apart
    std::vector<T> h_final, c_final;  // B x H in schedule order
    std::vector<T> dh, dc;      // B x H carries of the backward loop
    std::vector<T> grad_w;      // G*H x (H + I): interleaved [dW_hh | dW_ih], or its transpose
    std::vector<T> grad_bias, grad_input_bias;  // interleaved column sums, accumulated by the cell: a slice per
                                                // sequence (deterministic mode) or per member, added up after
    std::vector<T> bias;        // G*H interleaved: both biases folded for the input projection
    PackedMatrix<T> input_weights;  // W_ih^T (forward) or W_ih (backward), packed once per call
    // Only for the features that need them (see the top of this file):
    std::vector<T> hp;          // rows x S: the true h each row started from (recurrent dropout)
    std::vector<T> extra;       // rows x Cell::extra_width(H): the cell's own storage
    std::vector<T> params;      // the cell's own parameters, concatenated
    std::vector<T> param_grad;  // their gradients, a slice per sequence or member (as the bias's)
    std::vector<T> second;      // rows x H: the second product's input (r * h)
    std::vector<T> w_hr;        // S x H: the projection the forward ran with
    std::vector<T> proj_in;     // rows x H: the cell's output m_t before the projection
    std::vector<T> d_proj;      // rows x S: d loss / d h_t, for dW_hr
    std::vector<T> dm, d_second, dh_rec, dz, dzc;  // B x H / S scratch of the backward loop
    PackedMatrix<T> second_weights;  // W_hn^T (forward) or W_hn (backward)
    PackedMatrix<T> proj_weights;    // W_hr^T (forward) or W_hr (backward)
  };
  LayerShape shape;
  int cell_gates = 0;          // the cell the forward ran (its gate count)
  const char* cell_name = "";  // and its name
  Schedule schedule;
  Direction dir[2];
  std::vector<T> packed;       // rows x I: input gradients
  std::vector<PackedMatrix<T>> step_weights;  // W_hh packed once per call: per direction, or per member's slice
  std::vector<T> recurrent_mask;           // D x B x S, as given (empty: none)
  std::vector<std::uint8_t> zoneout_mask;  // like out, as given (empty: none)
  double zoneout = 0;
  PreparedWeights prepared;    // whether the weights' preparation above can serve the next forward
  bool ready_for_backward = false;
  std::mutex busy;             // one call at a time per workspace
};

namespace detail {

// packed (schedule order, rows `stride` apart) <- rows of the user's sequence array (width `cols`).
template <class T>
void gather_rows(const T* src, const LayerShape& shape, const Schedule& sc, int direction, Index cols, T* packed,
                 Index stride) {
  const int threads = threads_for(double(sc.rows()) * cols, 5e5);
  run_team(threads, [&](int id, int size) {
    Index s0, s1;
    share(sc.steps, id, size, &s0, &s1);
    for (Index s = s0; s < s1; ++s)
      for (Index k = 0; k < sc.batch[s]; ++k) {
        const Index row = shape.sequence.row(sc.time(direction, s, k), sc.order[k]);
        std::copy_n(src + row * cols, cols, packed + (sc.offset[s] + k) * stride);
      }
  });
}

// user rows += packed rows (width `cols`); both directions add into the same input gradient.
template <class T>
void scatter_add_rows(const T* packed, const LayerShape& shape, const Schedule& sc, int direction, Index cols, T* dst) {
  const int threads = threads_for(double(sc.rows()) * cols, 5e5);
  run_team(threads, [&](int id, int size) {
    Index s0, s1;
    share(sc.steps, id, size, &s0, &s1);  // distinct steps of one direction touch distinct rows
    for (Index s = s0; s < s1; ++s)
      for (Index k = 0; k < sc.batch[s]; ++k) {
        const Index row = shape.sequence.row(sc.time(direction, s, k), sc.order[k]);
        const T* p = packed + (sc.offset[s] + k) * cols;
        T* d = dst + row * cols;
        for (Index j = 0; j < cols; ++j) d[j] += p[j];
      }
  });
}

// Whether the forward takes x_t into each step's product rather than projecting every step's
// input at once. The one-off projection is a separate, serial-ish pass over all N x G*H gate
// values; when I is small next to H it costs more than the few extra columns of depth it
// saves each step (S1, I = 1: a 16 us pass against +1/64 on each step's product). Cells
// that keep h W_hh^T apart from the input part (GRU's n gate) cannot merge the two.
template <class Cell>
bool fuse_input(Index input, Index hidden) {
  return Cell::kRecurrentIntoGates && Cell::kSecondProductGates == 0 && input * 8 <= hidden;
}

// The gate columns of the step's first product (all but a second product's, cell_base.h).
template <class Cell>
Index first_product_columns(Index hidden) {
  return (Cell::kGates - Cell::kSecondProductGates) * hidden;
}

// dst[units] = mask * src[units]: the h that feeds the recurrent product.
template <class T>
void mask_units(const T* src, const T* mask, T* dst, Index u0, Index u1) {
  for (Index u = u0; u < u1; ++u) dst[u] = mask[u] * src[u];
}

// Zoneout after a step: h = k h_prev + (1 - k) h over units [u0, u1), k from a 0/1 mask or p.
template <class T>
void zoneout_units(T* h, const T* h_prev, const std::uint8_t* keep, T p, Index u0, Index u1) {
  if (keep) {
    for (Index u = u0; u < u1; ++u)
      if (keep[u]) h[u] = h_prev[u];
  } else {
    for (Index u = u0; u < u1; ++u) h[u] = p * h_prev[u] + (T(1) - p) * h[u];
  }
}

template <class T>
void copy_units(const T* src, T* dst, Index u0, Index u1) {
  std::copy(src + u0, src + u1, dst + u0);
}

// W_hh packed once per call for the step loop's products: W_hh^T for the forward's
// h W_hh^T (its columns are gate columns), W_hh for the backward's dG W_hh (its columns are
// units). When the team splits the batch each direction's whole matrix is shared: reserved
// here, then packed by the direction's members together. Otherwise each member packs the
// columns of its own share into its own slot.
// The depth of the forward's product is S (the width of h), or S + I when x joins it (w_hx);
// its columns are the first product's gate columns GC (all G*H but a second product's).
template <class T>
void reserve_step_weights(RecurrentWorkspace<T>& ws, const StepPlan& plan, int directions, bool forward, Index GC,
                          bool fused = false) {
  const Index S = ws.shape.state(), K = fused ? S + ws.shape.input : S;
  ws.step_weights.resize(plan.split_batch ? directions : 2 * plan.threads);
  if (plan.split_batch)
    for (int d = 0; d < directions; ++d) {
      if (forward) ws.step_weights[d].reserve(true, fused ? ws.dir[d].w_hx.data() : ws.dir[d].w_hh.data(), K, K, GC);
      else ws.step_weights[d].reserve(false, ws.dir[d].w_hh.data(), S, GC, S);
    }
}

// The step weights a previous forward packed for the same plan (see pack_step_weights).
template <class T>
const PackedMatrix<T>* prepared_step_weights(const RecurrentWorkspace<T>& ws, const StepPlan& plan,
                                             const StepShare& my, int slot) {
  return plan.split_batch ? &ws.step_weights[my.direction] : &ws.step_weights[slot];
}

template <class T, class Layout>
const PackedMatrix<T>& pack_step_weights(RecurrentWorkspace<T>& ws, const StepPlan& plan, const Layout& layout,
                                         const StepShare& my, int slot, bool forward, Index GC, bool fused = false) {
  const Index S = ws.shape.state();
  const T* w_hh = ws.dir[my.direction].w_hh.data();
  if (plan.split_batch) {
    ws.step_weights[my.direction].pack_part(my.member, my.members);
    return ws.step_weights[my.direction];
  }
  if (forward) {
    const Index c0 = layout.column(my.block_begin);
    const Index c1 = my.block_end == layout.blocks() ? GC : layout.column(my.block_end);
    const Index K = fused ? S + ws.shape.input : S;
    const T* w = fused ? ws.dir[my.direction].w_hx.data() : w_hh;
    ws.step_weights[slot].pack(true, w + c0 * K, K, K, c1 - c0);
  } else {  // members splitting units have S = H
    const Index u0 = layout.first_unit(my.block_begin), u1 = std::min(S, layout.first_unit(my.block_end));
    ws.step_weights[slot].pack(false, w_hh + u0, S, GC, u1 - u0);
  }
  return ws.step_weights[slot];
}

}  // namespace detail

template <class Cell, class T>
void recurrent_forward(const ForwardArgs<T>& a, RecurrentWorkspace<T>& ws, bool keep_for_backward) {
  std::lock_guard<std::mutex> lock(ws.busy);
  const LayerShape& shape = a.shape;
  const Index B = shape.sequence.batch, I = shape.input, H = shape.hidden, S = shape.state();
  const int D = shape.directions;
  const auto layout = cell_layout<Cell>(H);
  const Index GH = layout.columns(), blocks = layout.blocks();
  const Index GC = detail::first_product_columns<Cell>(H);  // the first product's columns
  const Index out_cols = D * S;
  const bool projected = shape.projection > 0;
  const bool dropout = a.recurrent_mask != nullptr;
  const bool zoneout = a.zoneout_mask != nullptr || a.zoneout > 0;
  const Index E = Cell::extra_width(H), P = cell_param_size<Cell>(H);

  require(!(projected && zoneout), "zoneout with a projection of h is not supported");
  ws.ready_for_backward = false;
  ws.shape = shape;
  ws.cell_gates = Cell::kGates;
  ws.cell_name = Cell::kName;
  ws.schedule = Schedule::make(shape.sequence.steps, B, a.lengths);
  const Schedule& sc = ws.schedule;
  const Index N = sc.rows(), HX = S + I;
  const bool fused = detail::fuse_input<Cell>(I, H);
  if (dropout) ws.recurrent_mask.assign(a.recurrent_mask, a.recurrent_mask + D * B * S); else ws.recurrent_mask.clear();
  const Index mask_size = shape.sequence.steps * B * out_cols;
  if (a.zoneout_mask) ws.zoneout_mask.assign(a.zoneout_mask, a.zoneout_mask + mask_size); else ws.zoneout_mask.clear();
  ws.zoneout = a.zoneout_mask ? 0 : a.zoneout;
  const StepPlan plan = StepPlan::make(D, B, H, GH, blocks, Cell::kRowLocal || projected);
  // The same weights as last time (same version, shapes, cell and team): nothing to prepare.
  const bool prepared = ws.prepared.fits(a.weights_version, I, H, D, Cell::kGates, fused, plan) &&
                        ws.prepared.state == S && ws.prepared.cell == Cell::kName;
  ws.prepared.version = -1;   // valid again only once this forward has prepared everything

  // 1. Every direction's input projection, one GEMM each, plus the folded biases.
  const T* recurrent_bias[2] = {nullptr, nullptr};
  for (int d = 0; d < D; ++d) {
    auto& dir = ws.dir[d];
    const DirectionWeights<T>& w = a.weights[d];
    if (!prepared) {
      dir.w_ih.resize(GH * I);
      dir.w_hh.resize(GH * S);
      layout.interleave_rows(w.w_ih, I, dir.w_ih.data());
      layout.interleave_rows(w.w_hh, S, dir.w_hh.data());
      std::vector<T> natural_bias(GH);
      dir.bias.resize(GH);
      Cell::input_bias(w.b_ih, w.b_hh, H, natural_bias.data());
      layout.interleave_rows(natural_bias.data(), 1, dir.bias.data());
      if (fused) {
        dir.w_hx.resize(GH * HX);
        for (Index r = 0; r < GH; ++r) {
          std::copy_n(dir.w_hh.data() + r * S, S, dir.w_hx.data() + r * HX);
          std::copy_n(dir.w_ih.data() + r * I, I, dir.w_hx.data() + r * HX + S);
        }
      } else {
        dir.input_weights.pack(true, dir.w_ih.data(), I, I, GH);  // W_ih^T
      }
      dir.params.resize(P);
      for (int k = 0, at = 0; k < Cell::kParamArrays; at += Cell::param_array_size(k, H), ++k)
        std::copy_n(w.params[k], Cell::param_array_size(k, H), dir.params.data() + at);
      if (Cell::kSecondProductGates) dir.second_weights.pack(true, dir.w_hh.data() + GC * S, S, S, GH - GC);  // W_hn^T
      if (projected) {
        dir.w_hr.assign(w.w_hr, w.w_hr + S * H);
        dir.proj_weights.pack(true, dir.w_hr.data(), H, H, S);  // W_hr^T
      }
    }
    recurrent_bias[d] = Cell::recurrent_bias(w.b_hh, H);
    dir.gates.resize(N * GH);
    dir.hx.resize(N * HX);
    dir.aux.resize(N * H);
    if (!Cell::kRecurrentIntoGates) dir.recurrent.resize(B * GH);
    dir.h_final.resize(B * S);
    dir.c_final.resize(Cell::kCellState ? B * H : 0);
    dir.hp.resize(dropout ? N * S : 0);
    dir.extra.resize(N * E);
    dir.second.resize(Cell::kSecondProductGates ? N * H : 0);
    dir.proj_in.resize(projected ? N * H : 0);

    detail::gather_rows(a.x, shape, sc, d, I, dir.hx.data() + S, HX);
    if (!fused)
      dir.input_weights.multiply_parallel(N, false, dir.hx.data() + S, HX, T(1), T(0), dir.gates.data(), GH,
                                        Cell::kNormalizesInput ? nullptr : dir.bias.data());

    // Initial states, in schedule order; sequences of length 0 end where they start.
    for (Index k = 0; k < B; ++k) {
      const Index user = sc.order[k];
      const bool starts = k < sc.batch[0];
      T* h_start = !starts ? dir.h_final.data() + k * S : dropout ? dir.hp.data() + k * S : dir.hx.data() + k * HX;
      if (a.h0) std::copy_n(a.h0 + (d * B + user) * S, S, h_start); else std::fill_n(h_start, S, T(0));
      if (starts && dropout) detail::mask_units(h_start, a.recurrent_mask + (d * B + user) * S, dir.hx.data() + k * HX, 0, S);
      if (Cell::kCellState) {
        T* c_start = starts ? dir.aux.data() + k * H : dir.c_final.data() + k * H;
        if (a.c0) std::copy_n(a.c0 + (d * B + user) * H, H, c_start); else std::fill_n(c_start, H, T(0));
      }
    }
  }

  // Outputs past a sequence's end are zero.
  for (Index k = 0; k < B; ++k)
    for (Index t = sc.length[k]; t < shape.sequence.steps; ++t)
      std::fill_n(a.out + shape.sequence.row(t, sc.order[k]) * out_cols, out_cols, T(0));

  // 2. The step loop (step_loop.h says how the team divides it). W_hh^T is packed once:
  // shared per direction when members split the batch, else each member its columns.
  if (!prepared) detail::reserve_step_weights(ws, plan, D, true, GC, fused);
  run_team(plan.threads, [&](int id, int size) {
    StepShare shares[2];
    const PackedMatrix<T>* step_w[2];  // packed W_hh^T, or [W_hh | W_ih]^T when fused
    const int n_shares = step_shares(plan, id, D, blocks, shares);
    for (int i = 0; i < n_shares; ++i)
      step_w[i] = prepared ? detail::prepared_step_weights(ws, plan, shares[i], 2 * id + i)
                           : &detail::pack_step_weights(ws, plan, layout, shares[i], 2 * id + i, true, GC, fused);
    if (!prepared && plan.split_batch && size > 1) team_barrier();  // the shared packed weights are complete
    for (Index s = 0; s < sc.steps; ++s) {
      const Index rows = sc.batch[s], rows_next = sc.batch[s + 1];
      for (int i = 0; i < n_shares; ++i) {
        const StepShare& my = shares[i];
        const Index mine = my.rows_of(rows), f = my.first_row, st = my.row_step;
        if (mine == 0 || my.block_begin == my.block_end) continue;
        auto& dir = ws.dir[my.direction];
        const int d = my.direction;
        const Index c0 = layout.column(my.block_begin);
        const Index u0 = layout.first_unit(my.block_begin), u1 = std::min(H, layout.first_unit(my.block_end));
        const Index su1 = projected ? S : u1;  // my units of h (a projected h is row-local: all of it)
        T* gates = dir.gates.data() + (sc.offset[s] + f) * GH;
        T* recurrent = Cell::kRecurrentIntoGates ? gates : dir.recurrent.data() + f * GH;
        const T* h_rec = dir.hx.data() + (sc.offset[s] + f) * HX;  // what the product takes
        if (fused)  // gates = [h | x] [W_hh | W_ih]^T + bias
          step_w[i]->multiply(mine, false, h_rec, st * HX, T(1), T(0), gates + c0, st * GH, dir.bias.data() + c0);
        else
          step_w[i]->multiply(mine, false, h_rec, st * HX, T(1), Cell::kRecurrentIntoGates ? T(1) : T(0),
                              recurrent + c0, st * GH);
        // The true h_{t-1} of packed row k (hx's, unless recurrent dropout masked that).
        const auto h_prev_of = [&](Index k) -> const T* {
          return dropout ? dir.hp.data() + (sc.offset[s] + k) * S : dir.hx.data() + (sc.offset[s] + k) * HX;
        };
        const Index h_prev_stride = dropout ? S : HX;
        // The gate math for `count` of my rows from row k0, writing the new states to h_to/c_to.
        auto gate_math = [&](Index k0, Index count, T* h_to, Index h_to_stride, T* c_to) {
          if (count == 0) return;
          const Index row0 = sc.offset[s] + k0;
          T* cell_out = projected ? dir.proj_in.data() + row0 * H : h_to;  // the cell's output m_t
          StepForward<T> step{count, st, gates + (k0 - f) * GH, recurrent + (k0 - f) * GH, h_prev_of(k0),
                              cell_out, dir.aux.data() + row0 * H, c_to, recurrent_bias[d],
                              h_prev_stride, projected ? H : h_to_stride};
          step.h_rec = h_rec + (k0 - f) * HX;
          step.h_rec_stride = HX;
          step.extra = dir.extra.data() + row0 * E;
          step.extra_stride = E;
          step.params = dir.params.data();
          step.input_bias = dir.bias.data();
          if (Cell::kSecondProductGates) {
            step.second = dir.second.data() + row0 * H;
            Cell::forward_first(step, layout, my.block_begin, my.block_end);
            dir.second_weights.multiply(count, false, step.second, st * H, T(1), T(1), step.gates + GC, st * GH);
          }
          Cell::forward(step, layout, my.block_begin, my.block_end);
          if (projected)  // h_t = m_t W_hr^T
            dir.proj_weights.multiply(count, false, cell_out, st * H, T(1), T(0), h_to, st * h_to_stride);
          if (zoneout)
            for (Index j = 0; j < count; ++j) {
              const Index k = k0 + j * st;
              const std::uint8_t* keep = nullptr;
              if (a.zoneout_mask)
                keep = a.zoneout_mask + shape.sequence.row(sc.time(d, s, k), sc.order[k]) * out_cols + d * S;
              detail::zoneout_units(h_to + j * st * h_to_stride, h_prev_of(k), keep, T(a.zoneout), u0, u1);
              if (Cell::kCellState)
                detail::zoneout_units(c_to + j * st * H, dir.aux.data() + (sc.offset[s] + k) * H, keep, T(a.zoneout),
                                      u0, u1);
            }
        };
        // Rows that go on store their state for the next step (hp's when the product takes a
        // masked h); rows that end here, in the finals.
        const Index going_on = my.rows_of(rows_next), ending_from = my.first_row_from(rows_next);
        T* next_h = dropout ? dir.hp.data() + (sc.offset[s + 1] + f) * S : dir.hx.data() + (sc.offset[s + 1] + f) * HX;
        gate_math(f, going_on, next_h, dropout ? S : HX, dir.aux.data() + (sc.offset[s + 1] + f) * H);
        gate_math(ending_from, mine - going_on, dir.h_final.data() + ending_from * S, S,
                  Cell::kCellState ? dir.c_final.data() + ending_from * H : nullptr);
        for (Index k = f; k < rows; k += st) {
          const T* h_new = k >= rows_next ? dir.h_final.data() + k * S
                           : dropout     ? dir.hp.data() + (sc.offset[s + 1] + k) * S
                                         : dir.hx.data() + (sc.offset[s + 1] + k) * HX;
          const Index row = shape.sequence.row(sc.time(d, s, k), sc.order[k]);
          detail::copy_units(h_new, a.out + row * out_cols + d * S, u0, su1);
          if (dropout && k < rows_next)
            detail::mask_units(h_new, a.recurrent_mask + (d * B + sc.order[k]) * S,
                               dir.hx.data() + (sc.offset[s + 1] + k) * HX, u0, su1);
        }
      }
      if (plan.synchronised()) team_barrier();
    }
  });

  for (int d = 0; d < D; ++d)
    for (Index k = 0; k < B; ++k) {
      const Index user = sc.order[k];
      std::copy_n(ws.dir[d].h_final.data() + k * S, S, a.h_n + (d * B + user) * S);
      if (Cell::kCellState) std::copy_n(ws.dir[d].c_final.data() + k * H, H, a.c_n + (d * B + user) * H);
    }
  ws.prepared = {a.weights_version, I, H, D, Cell::kGates, fused, plan, S, Cell::kName};
  ws.ready_for_backward = keep_for_backward;
}

template <class Cell, class T>
void recurrent_backward(const BackwardArgs<T>& a, RecurrentWorkspace<T>& ws) {
  std::lock_guard<std::mutex> lock(ws.busy);
  require(ws.ready_for_backward, "backward needs a forward first (each forward's results serve one backward)");
  require(ws.cell_gates == Cell::kGates && std::string(ws.cell_name) == Cell::kName,
          std::string("this workspace holds another cell's forward, not ") + Cell::kName);
  ws.ready_for_backward = false;
  ws.prepared.version = -1;   // the packed matrices below are the backward's own
  const LayerShape& shape = ws.shape;
  const Schedule& sc = ws.schedule;
  const Index B = shape.sequence.batch, I = shape.input, H = shape.hidden, S = shape.state(), N = sc.rows();
  const Index HX = S + I;
  const int D = shape.directions;
  const auto layout = cell_layout<Cell>(H);
  const Index GH = layout.columns(), blocks = layout.blocks();
  const Index GC = detail::first_product_columns<Cell>(H);
  const Index out_cols = D * S;
  const bool projected = shape.projection > 0;
  const bool dropout = !ws.recurrent_mask.empty();
  const bool zoneout = !ws.zoneout_mask.empty() || ws.zoneout > 0;
  const T p_keep = T(ws.zoneout);
  const Index E = Cell::extra_width(H), P = cell_param_size<Cell>(H);
  const StepPlan plan = StepPlan::make(D, B, H, GH, blocks, Cell::kRowLocal || projected);
  const bool bias = a.grads[0].b_ih || a.grads[0].b_hh;
  bool params = false;
  for (int k = 0; k < Cell::kParamArrays; ++k) params |= a.grads[0].params[k] != nullptr;
  // Bias (and the cell's parameter) gradients are column sums over every row: summed per
  // sequence (each in step order, then the sequences in order) they come out the same for any
  // team; per member they are one slice fewer per sequence but depend on how the rows were shared.
  const bool per_sequence = deterministic();
  const Index slots = per_sequence ? B : (plan.threads == 1 ? 1 : plan.per_direction);
  // d loss / d h_{t-1} gathers the product's part (through W_hh, then masked), the cell's
  // direct part (GRU's z), zoneout's and backward_first()'s: whether dh already holds some.
  const bool dh_holds_direct = Cell::kDirectStateGradient || zoneout;
  for (int d = 0; d < D; ++d) {
    auto& dir = ws.dir[d];
    dir.dh.resize(B * S);
    dir.dc.resize(Cell::kCellState ? B * H : 0);
    dir.grad_bias.assign(bias ? slots * GH : 0, T(0));
    dir.grad_input_bias.assign(bias && Cell::kInputGradientsDiffer ? slots * GH : 0, T(0));
    dir.param_grad.assign(params ? slots * P : 0, T(0));
    dir.dm.resize(projected ? B * H : 0);
    dir.d_proj.resize(projected ? N * S : 0);
    dir.d_second.resize(Cell::kSecondProductGates ? B * H : 0);
    dir.dh_rec.resize(dropout ? B * S : 0);
    dir.dz.resize(zoneout ? B * S : 0);
    dir.dzc.resize(zoneout && Cell::kCellState ? B * H : 0);
    if (Cell::kSecondProductGates) dir.second_weights.pack(false, dir.w_hh.data() + GC * S, S, GH - GC, S);  // W_hn
    if (projected) dir.proj_weights.pack(false, dir.w_hr.data(), H, S, H);  // W_hr
  }

  // 1. The step loop, last step first; dh_{t-1} = dG_t W_hh with W_hh packed once (shared per
  // direction when members split the batch, else each member the columns of its units).
  detail::reserve_step_weights(ws, plan, D, false, GC);
  run_team(plan.threads, [&](int id, int size) {
    StepShare shares[2];
    const PackedMatrix<T>* w_hh[2];
    const int n_shares = step_shares(plan, id, D, blocks, shares);
    for (int i = 0; i < n_shares; ++i)
      w_hh[i] = &detail::pack_step_weights(ws, plan, layout, shares[i], 2 * id + i, false, GC);
    if (plan.split_batch && size > 1) team_barrier();  // the shared packed weights are complete
    for (Index s = sc.steps - 1; s >= 0; --s) {
      const Index rows = sc.batch[s], rows_next = sc.batch[s + 1];
      for (int i = 0; i < n_shares; ++i) {
        const StepShare& my = shares[i];
        const Index mine = my.rows_of(rows), f = my.first_row, st = my.row_step;
        if (mine == 0 || my.block_begin == my.block_end) continue;
        auto& dir = ws.dir[my.direction];
        const int d = my.direction;
        const Index u0 = layout.first_unit(my.block_begin), u1 = std::min(H, layout.first_unit(my.block_end));
        const Index su1 = projected ? S : u1;  // my units of h
        const Index going_on = my.rows_of(rows_next), ending_from = my.first_row_from(rows_next);
        for (Index k = ending_from; k < rows; k += st) {  // sequences whose last step this is
          const Index user = sc.order[k];
          T* dh = dir.dh.data() + k * S;
          if (a.dh_n) detail::copy_units(a.dh_n + (d * B + user) * S, dh, u0, su1); else std::fill(dh + u0, dh + su1, T(0));
          if (Cell::kCellState) {
            T* dc = dir.dc.data() + k * H;
            if (a.dc_n) detail::copy_units(a.dc_n + (d * B + user) * H, dc, u0, u1); else std::fill(dc + u0, dc + u1, T(0));
          }
        }
        if (a.d_out)
          for (Index k = f; k < rows; k += st) {
            const Index row = shape.sequence.row(sc.time(d, s, k), sc.order[k]);
            const T* g = a.d_out + row * out_cols + d * S;
            T* dh = dir.dh.data() + k * S;
            for (Index u = u0; u < su1; ++u) dh[u] += g[u];
          }
        if (a.d_last)
          for (Index k = f; k < rows; k += st) {
            if (sc.time(d, s, k) != sc.length[k] - 1) continue;
            const T* g = a.d_last + sc.order[k] * out_cols + d * S;
            T* dh = dir.dh.data() + k * S;
            for (Index u = u0; u < su1; ++u) dh[u] += g[u];
          }
        // Zoneout: the kept share of d h_t and d c_t goes straight to h_{t-1} and c_{t-1}.
        if (zoneout)
          for (Index k = f; k < rows; k += st) {
            const std::uint8_t* keep =
                ws.zoneout_mask.empty()
                    ? nullptr
                    : ws.zoneout_mask.data() + shape.sequence.row(sc.time(d, s, k), sc.order[k]) * out_cols + d * S;
            const auto split = [&](T* grad, T* kept) {
              for (Index u = u0; u < u1; ++u) {
                const T share = keep ? T(keep[u]) : p_keep;
                kept[u] = share * grad[u];
                grad[u] -= kept[u];
              }
            };
            split(dir.dh.data() + k * S, dir.dz.data() + k * S);
            if (Cell::kCellState) split(dir.dc.data() + k * H, dir.dzc.data() + k * H);
          }
        // A projected h: d m_t = d h_t W_hr, and d h_t kept for dW_hr.
        if (projected) {
          for (Index k = f; k < rows; k += st)
            std::copy_n(dir.dh.data() + k * S, S, dir.d_proj.data() + (sc.offset[s] + k) * S);
          dir.proj_weights.multiply(mine, false, dir.dh.data() + f * S, st * S, T(1), T(0), dir.dm.data() + f * H, st * H);
        }
        // The gradient math for `count` of my rows from row k0, whose c_t is at c_from.
        auto gradient_math = [&](Index k0, Index count, const T* c_from) {
          if (count == 0) return;
          const Index row0 = sc.offset[s] + k0;
          const Index slot = per_sequence ? k0 : my.member;
          StepBackward<T> step{count, st, dir.gates.data() + row0 * GH,
                               dropout ? dir.hp.data() + row0 * S : dir.hx.data() + row0 * HX, dir.aux.data() + row0 * H,
                               c_from, projected ? dir.dm.data() + k0 * H : dir.dh.data() + k0 * S,
                               Cell::kCellState ? dir.dc.data() + k0 * H : nullptr,
                               bias ? dir.grad_bias.data() + slot * GH : nullptr,
                               bias && Cell::kInputGradientsDiffer ? dir.grad_input_bias.data() + slot * GH : nullptr,
                               dropout ? S : HX, per_sequence};
          step.h_rec = dir.hx.data() + row0 * HX;
          step.h_rec_stride = HX;
          step.extra = dir.extra.data() + row0 * E;
          step.extra_stride = E;
          step.params = dir.params.data();
          step.param_grad = params ? dir.param_grad.data() + slot * P : nullptr;
          Cell::backward(step, layout, my.block_begin, my.block_end);
          if (Cell::kSecondProductGates) {  // d (r * h) = dG_n W_hn, then the first gates' part
            step.second = dir.second.data() + row0 * H;
            step.d_second = dir.d_second.data() + k0 * H;
            dir.second_weights.multiply(count, false, step.gates + GC, st * GH, T(1), T(0), dir.d_second.data() + k0 * H,
                                      st * H);
            step.d_rec = dropout ? dir.dh_rec.data() + k0 * S : dir.dh.data() + k0 * S;
            if (dropout)
              for (Index j = 0; j < count; ++j) std::fill_n(step.d_rec + j * st * S + u0, su1 - u0, T(0));
            Cell::backward_first(step, layout, my.block_begin, my.block_end);
          }
        };
        // c_t is the next step's stored state for rows that go on, the final one for rows that end.
        gradient_math(f, going_on, dir.aux.data() + (sc.offset[s + 1] + f) * H);
        gradient_math(ending_from, mine - going_on, Cell::kCellState ? dir.c_final.data() + ending_from * H : nullptr);
        if (zoneout)
          for (Index k = f; k < rows; k += st) {
            T* dh = dir.dh.data() + k * S;
            const T* kept = dir.dz.data() + k * S;
            for (Index u = u0; u < u1; ++u) dh[u] = (Cell::kDirectStateGradient ? dh[u] : T(0)) + kept[u];
            if (Cell::kCellState) {
              T* dc = dir.dc.data() + k * H;
              const T* kept_c = dir.dzc.data() + k * H;
              for (Index u = u0; u < u1; ++u) dc[u] += kept_c[u];
            }
          }
      }
      if (plan.synchronised()) team_barrier();  // every unit's gate gradients of step s are in place
      for (int i = 0; i < n_shares; ++i) {
        const StepShare& my = shares[i];
        const Index mine = my.rows_of(rows), f = my.first_row, st = my.row_step;
        if (mine == 0 || my.block_begin == my.block_end) continue;
        auto& dir = ws.dir[my.direction];
        const Index u0 = layout.first_unit(my.block_begin), u1 = std::min(H, layout.first_unit(my.block_end));
        const Index su1 = projected ? S : u1;
        const T* dG = dir.gates.data() + (sc.offset[s] + f) * GH;
        if (!dropout) {
          const bool add = dh_holds_direct || Cell::kSecondProductGates;
          w_hh[i]->multiply(mine, false, dG, st * GH, T(1), add ? T(1) : T(0), dir.dh.data() + f * S + u0, st * S);
        } else {  // d h_{t-1} (+)= mask * (dG W_hh [+ backward_first's part])
          w_hh[i]->multiply(mine, false, dG, st * GH, T(1), Cell::kSecondProductGates ? T(1) : T(0),
                            dir.dh_rec.data() + f * S + u0, st * S);
          for (Index k = f; k < rows; k += st) {
            const T* mask = ws.recurrent_mask.data() + (my.direction * B + sc.order[k]) * S;
            const T* rec = dir.dh_rec.data() + k * S;
            T* dh = dir.dh.data() + k * S;
            for (Index u = u0; u < su1; ++u) dh[u] = (dh_holds_direct ? dh[u] : T(0)) + mask[u] * rec[u];
          }
        }
      }
    }
  });

  // Add the bias (and the cell's parameter) gradients' slices (per sequence or per member) up, in order.
  for (int d = 0; d < D; ++d) {
    for (auto* sums : {&ws.dir[d].grad_bias, &ws.dir[d].grad_input_bias})
      for (Index m = 1; m < Index(sums->size()) / GH; ++m)
        for (Index j = 0; j < GH; ++j) (*sums)[j] += (*sums)[m * GH + j];
    auto& pg = ws.dir[d].param_grad;
    for (Index m = 1; P > 0 && m < Index(pg.size()) / P; ++m)
      for (Index j = 0; j < P; ++j) pg[j] += pg[m * P + j];
    for (int k = 0, at = 0; k < Cell::kParamArrays && !pg.empty(); at += Cell::param_array_size(k, H), ++k)
      if (T* g = a.grads[d].params[k])
        for (Index j = 0; j < Cell::param_array_size(k, H); ++j) g[j] += pg[at + j];
  }

  // Gradients w.r.t. the initial states; sequences of length 0 pass theirs straight through.
  for (int d = 0; d < D; ++d) {
    auto& dir = ws.dir[d];
    for (Index k = 0; k < B; ++k) {
      const Index user = sc.order[k];
      T* dh0 = a.dh0 + (d * B + user) * S;
      if (k < sc.batch[0]) std::copy_n(dir.dh.data() + k * S, S, dh0);
      else if (a.dh_n) std::copy_n(a.dh_n + (d * B + user) * S, S, dh0);
      else std::fill_n(dh0, S, T(0));
      if (Cell::kCellState) {
        T* dc0 = a.dc0 + (d * B + user) * H;
        if (k < sc.batch[0]) std::copy_n(dir.dc.data() + k * H, H, dc0);
        else if (a.dc_n) std::copy_n(a.dc_n + (d * B + user) * H, H, dc0);
        else std::fill_n(dc0, H, T(0));
      }
    }
  }

  // 2. Weight and input gradients: [dW_hh | dW_ih] = dG^T [H_prev | X] in one GEMM over all
  // steps (after the GRU's n-gate swap, dG is the input projection's gradient; dW_hh needs the
  // recurrent one, so GRU takes two), then dX = dG W_ih.
  // When S + I is a poor fit for the GEMM's column panels (S1: 65), the transposes
  // dW^T = [H_prev | X]^T dG are computed instead (grad_w then holds (S + I) x G*H).
  // A second product's rows of dW_hh are dG_n^T (R * H) instead; a projection's dW_hr = dH^T M.
  if (a.dx) std::fill_n(a.dx, shape.sequence.steps * B * I, T(0));
  ws.packed.resize(N * I);
  const bool transposed = transposed_product_pads_less<T>(GH, HX);
  // grad_w's columns [col, col + cols) (its rows, when transposed) = dG^T of hx's columns [col, col + cols);
  // dG: the gates, or for the input side of cells that leave it there, the cell's extra rows.
  const auto input_side = [&](typename RecurrentWorkspace<T>::Direction& dir, bool input) {
    return (input && Cell::kInputGradientsInExtra) ? std::pair<const T*, Index>{dir.extra.data() + Cell::input_gradient_offset(H), E}
                                                   : std::pair<const T*, Index>{dir.gates.data(), GH};
  };
  const auto weight_gradient = [&](typename RecurrentWorkspace<T>::Direction& dir, Index col, Index cols) {
    const auto [dG, ld] = input_side(dir, col >= S);
    if (transposed)
      gemm_parallel<T>(true, false, cols, GH, N, T(1), dir.hx.data() + col, HX, dG, ld, T(0),
                       dir.grad_w.data() + col * GH, GH);
    else
      gemm_parallel<T>(true, false, GH, cols, N, T(1), dG, ld, dir.hx.data() + col, HX, T(0),
                       dir.grad_w.data() + col, HX);
    if (Cell::kSecondProductGates && col == 0) {  // the second product's rows (natural layout)
      if (transposed)
        gemm_parallel<T>(true, false, S, GH - GC, N, T(1), dir.second.data(), H, dir.gates.data() + GC, GH, T(0),
                         dir.grad_w.data() + GC, GH);
      else
        gemm_parallel<T>(true, false, GH - GC, S, N, T(1), dir.gates.data() + GC, GH, dir.second.data(), H, T(0),
                         dir.grad_w.data() + GC * HX, HX);
    }
  };
  const auto accumulate = [&](const T* grad_w, Index col, Index cols, T* natural) {
    if (transposed) layout.accumulate_natural_rows_transposed(grad_w + col * GH, GH, cols, natural);
    else layout.accumulate_natural_rows(grad_w + col, HX, cols, natural);
  };
  for (int d = 0; d < D; ++d) {
    auto& dir = ws.dir[d];
    const DirectionGrads<T>& g = a.grads[d];
    dir.grad_w.resize(GH * HX);
    if (Cell::kInputGradientsDiffer) {
      weight_gradient(dir, 0, S);
      if (!Cell::kInputGradientsInExtra)
        run_team(threads_for(double(N) * GH, 5e5), [&](int id, int size) {
          Index r0, r1;
          share(N, id, size, &r0, &r1);
          Cell::to_input_gradients(InputGradients<T>{dir.gates.data() + r0 * GH, dir.aux.data() + r0 * H,
                                                     dir.extra.data() + r0 * E, E, dir.params.data(), r1 - r0},
                                   layout);
        });
      weight_gradient(dir, S, I);
    } else {
      weight_gradient(dir, 0, HX);
    }
    if (g.w_hh) accumulate(dir.grad_w.data(), 0, S, g.w_hh);
    if (g.w_ih) accumulate(dir.grad_w.data(), S, I, g.w_ih);
    if (g.b_hh) layout.accumulate_natural_rows(dir.grad_bias.data(), 1, 1, g.b_hh);
    if (g.b_ih)
      layout.accumulate_natural_rows(Cell::kInputGradientsDiffer ? dir.grad_input_bias.data() : dir.grad_bias.data(), 1,
                                     1, g.b_ih);
    if (projected && g.w_hr)  // dW_hr += dH^T M over all rows
      gemm_parallel<T>(true, false, S, H, N, T(1), dir.d_proj.data(), S, dir.proj_in.data(), H, T(1), g.w_hr, H);
    if (a.dx) {
      dir.input_weights.pack(false, dir.w_ih.data(), I, GH, I);  // W_ih
      const auto [dG, ld] = input_side(dir, true);
      dir.input_weights.multiply_parallel(N, false, dG, ld, T(1), T(0), ws.packed.data(), I);
      detail::scatter_add_rows(ws.packed.data(), shape, sc, d, I, a.dx);
    }
  }
}

}  // namespace lstm_native
