// One recurrent layer (one or two directions) over a whole padded batch: the sequence
// loop that LSTM and GRU share. The cell (kernels/lstm_cell.h, kernels/gru_cell.h)
// supplies the gate math; everything else lives here:
//
// forward   1. input projection of every step at once: gates = X W_ih^T + bias (one GEMM)
//           2. per step: h_{t-1} W_hh^T (each thread its own gate columns), the cell's
//              gate math on its own units, one team barrier
// backward  1. per step: the cell's gradient math on own units, a barrier, then
//              dh_{t-1} = dG_t W_hh (each thread its own units)
//           2. weight gradients as one GEMM each over all steps:
//              dW_hh = dG^T H_prev, dW_ih = dG^T X, db = column sums, dX = dG W_ih
//
// Buffers are packed (schedule.h) and kept in a RecurrentWorkspace between forward and
// backward: gate activations, each row's incoming h (and the cell's aux state). Nothing is
// allocated per step, and the workspace's buffers are reused from call to call.
#pragma once

#include "common.h"
#include "gemm.h"
#include "kernels/gate_layout.h"
#include "kernels/step.h"
#include "schedule.h"
#include "threads.h"

#include <algorithm>
#include <cstdint>
#include <mutex>
#include <vector>

namespace lstm_native {

// A direction's parameters in PyTorch's layout; biases may be null.
template <class T>
struct DirectionWeights {
  const T* w_ih = nullptr;  // G*H x I
  const T* w_hh = nullptr;  // G*H x H
  const T* b_ih = nullptr;  // G*H
  const T* b_hh = nullptr;  // G*H
};

// Where a direction's parameter gradients accumulate (PyTorch's layout); null = skip.
template <class T>
struct DirectionGrads {
  T* w_ih = nullptr;
  T* w_hh = nullptr;
  T* b_ih = nullptr;
  T* b_hh = nullptr;
};

struct LayerShape {
  SequenceShape sequence;
  Index input = 0, hidden = 0;
  int directions = 1;
};

template <class T>
struct ForwardArgs {
  LayerShape shape;
  const T* x = nullptr;                // sequence layout, I features
  const std::int64_t* lengths = nullptr;  // B lengths in [0, T], or null: all T
  DirectionWeights<T> weights[2];
  const T* h0 = nullptr;               // D x B x H, or null: zeros
  const T* c0 = nullptr;               // D x B x H (cells with a cell state), or null: zeros
  T* out = nullptr;                    // sequence layout, D*H features; zero past each length
  T* h_n = nullptr;                    // D x B x H
  T* c_n = nullptr;                    // D x B x H, cells with a cell state
};

template <class T>
struct BackwardArgs {
  const T* x = nullptr;      // the forward's input
  const T* d_out = nullptr;  // like out, or null
  const T* dh_n = nullptr;   // D x B x H, or null
  const T* dc_n = nullptr;   // D x B x H, or null
  DirectionGrads<T> grads[2];
  T* dx = nullptr;           // like x, or null: the input gradient is not needed
  T* dh0 = nullptr;          // D x B x H
  T* dc0 = nullptr;          // D x B x H, cells with a cell state
};

// What a forward keeps for its backward, and the scratch both reuse between calls.
template <class T>
struct RecurrentWorkspace {
  struct Direction {
    std::vector<T> w_ih, w_hh;  // interleaved copies of the weights the forward ran with
    std::vector<T> gates;       // rows x G*H: activations, then gradients
    std::vector<T> h_prev;      // (rows + B) x H: the h each packed row started from
    std::vector<T> aux;         // (rows + B) x H: the cell's per-row state
    std::vector<T> recurrent;   // B x G*H: h W_hh^T for cells that keep it apart
    std::vector<T> h_final, c_final;  // B x H in schedule order
    std::vector<T> dh, dc;      // B x H carries of the backward loop
    std::vector<T> grad_w_ih, grad_w_hh, grad_bias;  // interleaved weight gradients
  };
  LayerShape shape;
  int cell_gates = 0;          // the cell the forward ran (its gate count)
  Schedule schedule;
  Direction dir[2];
  std::vector<T> packed;       // rows x I: gathered inputs, then input gradients
  bool ready_for_backward = false;
  std::mutex busy;             // one call at a time per workspace
};

namespace detail {

// A team member's work in the step loop: one direction's unit blocks [block_begin, block_end).
struct Share {
  int direction;
  Index block_begin, block_end;
};

// Splits directions x unit blocks over the team; with one thread it does everything.
inline int step_loop_shares(int id, int size, int directions, Index blocks, Share* out) {
  if (size == 1) {
    for (int d = 0; d < directions; ++d) out[d] = {d, 0, blocks};
    return directions;
  }
  const int per_direction = size / directions;  // team sizes are multiples of `directions`
  const int d = id / per_direction;
  Index b, e;
  share(blocks, id % per_direction, per_direction, &b, &e);
  out[0] = {d, b, e};
  return 1;
}

// Team size for the step loop: enough threads for the per-step work, at most one per
// unit block, and a multiple of the direction count.
inline int step_loop_threads(const LayerShape& shape, Index gate_columns, Index blocks) {
  const double flops = 2.0 * shape.directions * shape.sequence.batch * shape.hidden * gate_columns;
  int threads = std::min<Index>(threads_for(flops, 1.5e5), shape.directions * blocks);
  if (shape.directions == 2 && threads > 1) threads -= threads % 2;
  return std::max(1, threads);
}

template <class T>
void column_sums_accumulate(const T* a, Index rows, Index cols, T* out) {
  const int threads = threads_for(double(rows) * cols, 2e5);
  run_team(threads, [&](int id, int size) {
    Index c0, c1;
    share(cols, id, size, &c0, &c1);
    if (c0 == c1) return;
    auto acc = view(out + c0, 1, c1 - c0, cols);
    for (Index r = 0; r < rows; ++r) acc += view(a + r * cols + c0, 1, c1 - c0, cols);
  });
}

// packed (schedule order) <- rows of the user's sequence array (width `cols`).
template <class T>
void gather_rows(const T* src, const LayerShape& shape, const Schedule& sc, int direction, Index cols, T* packed) {
  const int threads = threads_for(double(sc.rows()) * cols, 5e5);
  run_team(threads, [&](int id, int size) {
    Index s0, s1;
    share(sc.steps, id, size, &s0, &s1);
    for (Index s = s0; s < s1; ++s)
      for (Index k = 0; k < sc.batch[s]; ++k) {
        const Index row = shape.sequence.row(sc.time(direction, s, k), sc.order[k]);
        std::copy_n(src + row * cols, cols, packed + (sc.offset[s] + k) * cols);
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

template <class T>
void copy_units(const T* src, T* dst, Index u0, Index u1) {
  std::copy(src + u0, src + u1, dst + u0);
}

}  // namespace detail

template <class Cell, class T>
void recurrent_forward(const ForwardArgs<T>& a, RecurrentWorkspace<T>& ws, bool keep_for_backward) {
  std::lock_guard<std::mutex> lock(ws.busy);
  const LayerShape& shape = a.shape;
  const Index B = shape.sequence.batch, I = shape.input, H = shape.hidden;
  const int D = shape.directions;
  const GateLayout layout{H, Cell::kGates};
  const Index GH = layout.columns(), blocks = layout.blocks();
  const Index out_cols = D * H;

  ws.ready_for_backward = false;
  ws.shape = shape;
  ws.cell_gates = Cell::kGates;
  ws.schedule = Schedule::make(shape.sequence.steps, B, a.lengths);
  const Schedule& sc = ws.schedule;
  const Index N = sc.rows();
  ws.packed.resize(N * I);

  // 1. Every direction's input projection, one GEMM each, plus the folded biases.
  const T* recurrent_bias[2] = {nullptr, nullptr};
  for (int d = 0; d < D; ++d) {
    auto& W = ws.dir[d];
    const DirectionWeights<T>& w = a.weights[d];
    W.w_ih.resize(GH * I);
    W.w_hh.resize(GH * H);
    layout.interleave_rows(w.w_ih, I, W.w_ih.data());
    layout.interleave_rows(w.w_hh, H, W.w_hh.data());
    recurrent_bias[d] = Cell::recurrent_bias(w.b_hh, H);
    W.gates.resize(N * GH);
    W.h_prev.resize((N + B) * H);
    W.aux.resize((N + B) * H);
    if (!Cell::kRecurrentIntoGates) W.recurrent.resize(B * GH);
    W.h_final.resize(B * H);
    W.c_final.resize(Cell::kCellState ? B * H : 0);

    std::vector<T> natural_bias(GH), bias(GH);
    Cell::input_bias(w.b_ih, w.b_hh, H, natural_bias.data());
    layout.interleave_rows(natural_bias.data(), 1, bias.data());
    detail::gather_rows(a.x, shape, sc, d, I, ws.packed.data());
    gemm_parallel<T>(false, true, N, GH, I, T(1), ws.packed.data(), I, W.w_ih.data(), I, T(0), W.gates.data(), GH);
    run_team(threads_for(double(N) * GH, 5e5), [&](int id, int size) {
      Index r0, r1;
      share(N, id, size, &r0, &r1);
      const auto b = view(static_cast<const T*>(bias.data()), 1, GH, GH);
      for (Index r = r0; r < r1; ++r) view(W.gates.data() + r * GH, 1, GH, GH) += b;
    });

    // Initial states, in schedule order; sequences of length 0 end where they start.
    for (Index k = 0; k < B; ++k) {
      const Index user = sc.order[k];
      T* h_start = k < sc.batch[0] ? W.h_prev.data() + k * H : W.h_final.data() + k * H;
      if (a.h0) std::copy_n(a.h0 + (d * B + user) * H, H, h_start); else std::fill_n(h_start, H, T(0));
      if (Cell::kCellState) {
        T* c_start = k < sc.batch[0] ? W.aux.data() + k * H : W.c_final.data() + k * H;
        if (a.c0) std::copy_n(a.c0 + (d * B + user) * H, H, c_start); else std::fill_n(c_start, H, T(0));
      }
    }
  }

  // Outputs past a sequence's end are zero.
  for (Index k = 0; k < B; ++k)
    for (Index t = sc.length[k]; t < shape.sequence.steps; ++t)
      std::fill_n(a.out + shape.sequence.row(t, sc.order[k]) * out_cols, out_cols, T(0));

  // 2. The step loop.
  const int threads = detail::step_loop_threads(shape, GH, blocks);
  run_team(threads, [&](int id, int size) {
    detail::Share shares[2];
    const int n_shares = detail::step_loop_shares(id, size, D, blocks, shares);
    for (Index s = 0; s < sc.steps; ++s) {
      const Index rows = sc.batch[s], rows_next = sc.batch[s + 1];
      for (int i = 0; i < n_shares; ++i) {
        const detail::Share& my = shares[i];
        if (my.block_begin == my.block_end) continue;
        auto& W = ws.dir[my.direction];
        const Index c0 = layout.column(my.block_begin);
        const Index c1 = my.block_end == blocks ? GH : layout.column(my.block_end);
        const Index u0 = layout.first_unit(my.block_begin), u1 = std::min(H, layout.first_unit(my.block_end));
        T* gates = W.gates.data() + sc.offset[s] * GH;
        T* recurrent = Cell::kRecurrentIntoGates ? gates : W.recurrent.data();
        const T* h_prev = W.h_prev.data() + sc.offset[s] * H;
        T* h_next = W.h_prev.data() + sc.offset[s + 1] * H;  // rows past rows_next spill; copied out below
        gemm<T>(false, true, rows, c1 - c0, H, T(1), h_prev, H, W.w_hh.data() + c0 * H, H,
                Cell::kRecurrentIntoGates ? T(1) : T(0), recurrent + c0, GH);
        StepForward<T> step{rows, gates, recurrent, h_prev, h_next,
                            W.aux.data() + sc.offset[s] * H, W.aux.data() + sc.offset[s + 1] * H,
                            recurrent_bias[my.direction]};
        Cell::forward(step, layout, my.block_begin, my.block_end);
        for (Index k = 0; k < rows; ++k) {
          const Index row = shape.sequence.row(sc.time(my.direction, s, k), sc.order[k]);
          detail::copy_units(h_next + k * H, a.out + row * out_cols + my.direction * H, u0, u1);
        }
        for (Index k = rows_next; k < rows; ++k) {  // sequences ending at this step
          detail::copy_units(h_next + k * H, W.h_final.data() + k * H, u0, u1);
          if (Cell::kCellState) detail::copy_units(step.aux_next + k * H, W.c_final.data() + k * H, u0, u1);
        }
      }
      team_barrier();
    }
  });

  for (int d = 0; d < D; ++d)
    for (Index k = 0; k < B; ++k) {
      const Index user = sc.order[k];
      std::copy_n(ws.dir[d].h_final.data() + k * H, H, a.h_n + (d * B + user) * H);
      if (Cell::kCellState) std::copy_n(ws.dir[d].c_final.data() + k * H, H, a.c_n + (d * B + user) * H);
    }
  ws.ready_for_backward = keep_for_backward;
}

template <class Cell, class T>
void recurrent_backward(const BackwardArgs<T>& a, RecurrentWorkspace<T>& ws) {
  std::lock_guard<std::mutex> lock(ws.busy);
  require(ws.ready_for_backward, "backward needs a forward first (each forward's results serve one backward)");
  require(ws.cell_gates == Cell::kGates, std::string("this workspace holds another cell's forward, not ") + Cell::kName);
  ws.ready_for_backward = false;
  const LayerShape& shape = ws.shape;
  const Schedule& sc = ws.schedule;
  const Index B = shape.sequence.batch, I = shape.input, H = shape.hidden, N = sc.rows();
  const int D = shape.directions;
  const GateLayout layout{H, Cell::kGates};
  const Index GH = layout.columns(), blocks = layout.blocks();
  const Index out_cols = D * H;

  for (int d = 0; d < D; ++d) {
    ws.dir[d].dh.resize(B * H);
    ws.dir[d].dc.resize(Cell::kCellState ? B * H : 0);
  }

  // 1. The step loop, last step first.
  const int threads = detail::step_loop_threads(shape, GH, blocks);
  run_team(threads, [&](int id, int size) {
    detail::Share shares[2];
    const int n_shares = detail::step_loop_shares(id, size, D, blocks, shares);
    for (Index s = sc.steps - 1; s >= 0; --s) {
      const Index rows = sc.batch[s], rows_next = sc.batch[s + 1];
      for (int i = 0; i < n_shares; ++i) {
        const detail::Share& my = shares[i];
        if (my.block_begin == my.block_end) continue;
        auto& W = ws.dir[my.direction];
        const int d = my.direction;
        const Index u0 = layout.first_unit(my.block_begin), u1 = std::min(H, layout.first_unit(my.block_end));
        T* aux_next = W.aux.data() + sc.offset[s + 1] * H;
        for (Index k = rows_next; k < rows; ++k) {  // sequences whose last step this is
          const Index user = sc.order[k];
          T* dh = W.dh.data() + k * H;
          if (a.dh_n) detail::copy_units(a.dh_n + (d * B + user) * H, dh, u0, u1); else std::fill(dh + u0, dh + u1, T(0));
          if (Cell::kCellState) {
            T* dc = W.dc.data() + k * H;
            if (a.dc_n) detail::copy_units(a.dc_n + (d * B + user) * H, dc, u0, u1); else std::fill(dc + u0, dc + u1, T(0));
            // c_t of an ending row was overwritten in forward; bring it back from c_final.
            detail::copy_units(W.c_final.data() + k * H, aux_next + k * H, u0, u1);
          }
        }
        if (a.d_out)
          for (Index k = 0; k < rows; ++k) {
            const Index row = shape.sequence.row(sc.time(d, s, k), sc.order[k]);
            const T* g = a.d_out + row * out_cols + d * H;
            T* dh = W.dh.data() + k * H;
            for (Index u = u0; u < u1; ++u) dh[u] += g[u];
          }
        StepBackward<T> step{rows, W.gates.data() + sc.offset[s] * GH, W.h_prev.data() + sc.offset[s] * H,
                             W.aux.data() + sc.offset[s] * H, aux_next, W.dh.data(),
                             Cell::kCellState ? W.dc.data() : nullptr};
        Cell::backward(step, layout, my.block_begin, my.block_end);
      }
      team_barrier();  // every unit's gate gradients of step s are in place
      for (int i = 0; i < n_shares; ++i) {
        const detail::Share& my = shares[i];
        if (my.block_begin == my.block_end) continue;
        auto& W = ws.dir[my.direction];
        const Index u0 = layout.first_unit(my.block_begin), u1 = std::min(H, layout.first_unit(my.block_end));
        gemm<T>(false, false, rows, u1 - u0, GH, T(1), W.gates.data() + sc.offset[s] * GH, GH,
                W.w_hh.data() + u0, H, Cell::kDirectStateGradient ? T(1) : T(0), W.dh.data() + u0, H);
      }
    }
  });

  // Gradients w.r.t. the initial states; sequences of length 0 pass theirs straight through.
  for (int d = 0; d < D; ++d) {
    auto& W = ws.dir[d];
    for (Index k = 0; k < B; ++k) {
      const Index user = sc.order[k];
      T* dh0 = a.dh0 + (d * B + user) * H;
      if (k < sc.batch[0]) std::copy_n(W.dh.data() + k * H, H, dh0);
      else if (a.dh_n) std::copy_n(a.dh_n + (d * B + user) * H, H, dh0);
      else std::fill_n(dh0, H, T(0));
      if (Cell::kCellState) {
        T* dc0 = a.dc0 + (d * B + user) * H;
        if (k < sc.batch[0]) std::copy_n(W.dc.data() + k * H, H, dc0);
        else if (a.dc_n) std::copy_n(a.dc_n + (d * B + user) * H, H, dc0);
        else std::fill_n(dc0, H, T(0));
      }
    }
  }

  // 2. Weight and input gradients, one GEMM each over all steps.
  if (a.dx) std::fill_n(a.dx, shape.sequence.steps * B * I, T(0));
  for (int d = 0; d < D; ++d) {
    auto& W = ws.dir[d];
    const DirectionGrads<T>& g = a.grads[d];
    W.grad_w_hh.resize(GH * H);
    W.grad_w_ih.resize(GH * I);
    W.grad_bias.assign(GH, T(0));
    gemm_parallel<T>(true, false, GH, H, N, T(1), W.gates.data(), GH, W.h_prev.data(), H, T(0), W.grad_w_hh.data(), H);
    if (g.w_hh) layout.accumulate_natural_rows(W.grad_w_hh.data(), H, g.w_hh);
    if (g.b_hh) {
      detail::column_sums_accumulate(W.gates.data(), N, GH, W.grad_bias.data());
      layout.accumulate_natural_rows(W.grad_bias.data(), 1, g.b_hh);
    }
    run_team(threads_for(double(N) * H, 5e5), [&](int id, int size) {
      Index r0, r1;
      share(N, id, size, &r0, &r1);
      Cell::to_input_gradients(W.gates.data() + r0 * GH, W.aux.data() + r0 * H, r1 - r0, layout);
    });
    if (g.b_ih) {
      if (!g.b_hh || Cell::kInputGradientsDiffer) {  // else the column sums are already there
        std::fill(W.grad_bias.begin(), W.grad_bias.end(), T(0));
        detail::column_sums_accumulate(W.gates.data(), N, GH, W.grad_bias.data());
      }
      layout.accumulate_natural_rows(W.grad_bias.data(), 1, g.b_ih);
    }
    detail::gather_rows(a.x, shape, sc, d, I, ws.packed.data());
    gemm_parallel<T>(true, false, GH, I, N, T(1), W.gates.data(), GH, ws.packed.data(), I, T(0), W.grad_w_ih.data(), I);
    if (g.w_ih) layout.accumulate_natural_rows(W.grad_w_ih.data(), I, g.w_ih);
    if (a.dx) {
      gemm_parallel<T>(false, false, N, I, GH, T(1), W.gates.data(), GH, W.w_ih.data(), I, T(0), ws.packed.data(), I);
      detail::scatter_add_rows(ws.packed.data(), shape, sc, d, I, a.dx);
    }
  }
}

}  // namespace lstm_native
