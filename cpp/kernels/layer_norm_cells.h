// Layer-normalised LSTM and GRU (Ba et al. 2016; the formulation of lmnt-com/haste's
// LayerNormLSTM and LayerNormGRU), our own kernels:
//
//   LSTM  a = LN(x W_ih^T) * g_x + LN(h W_hh^T) * g_h + b_ih + b_hh        (gates i, f, g, o)
//         c_t = f * c_{t-1} + i * g      h_t = o * tanh(LN(c_t) * g_c + b_c)
//   GRU   ax = LN(x W_ih^T) * g_x + b_ih,  ah = LN(h W_hh^T) * g_h + b_hh   (gates r, z, n)
//         r = sigma(ax_r + ah_r)  z = sigma(ax_z + ah_z)  n = tanh(ax_n + r * ah_n)
//         h_t = (1 - z) * n + z * h_{t-1}
//
// LN(v) = (v - mean v) / sqrt(var v + 1e-5) over the whole vector (all G*H gate values, or H
// cell units). Statistics need whole rows, so these cells are row-local (cell_base.h). The
// input projection comes out of its GEMM without bias (kNormalizesInput) and the recurrent
// product into its own buffer; the cell normalises both rows of a step where they are hot in
// cache, and adds the biases.
//
// Per packed row the cells keep (`extra`, gate-shaped parts in the gates' own column order):
//   [x_hat (GH) | h_hat (GH) | LSTM: c_hat (H), scratch (H) | rstd_x, rstd_h (, rstd_c)]
// Backward leaves d loss / d (h W_hh^T) in the gates (for dh_{t-1} and dW_hh) and d loss /
// d (x W_ih^T) where h_hat was, from where the loop reads it for dW_ih and dx
// (kInputGradientsInExtra): no pass over all rows after the loop.
// Their own parameters (natural order): g_x (GH), g_h (GH) and, LSTM, g_c (H), b_c (H).
#pragma once

#include "activations.h"
#include "cell_base.h"
#include "gate_layout.h"
#include "step.h"

#include <cmath>
#include <type_traits>

namespace lstm_native {

namespace layer_norm {

constexpr double kEps = 1e-5;

// sum of f(v[j]) over n contiguous values, in an order fixed by n alone: 16 running sums (one
// vector register's worth), then across them. (Eigen's own sum of a dynamic-size map starts its
// vectors at the first aligned address, so its rounding would depend on where the buffer lies;
// a cast to double would not vectorise at all.)
template <class T, class F>
T fixed_order_sum(const T* v, Index n, F&& f) {
  using Chunk = Eigen::Array<T, 16, 1>;
  Chunk acc = Chunk::Zero();
  Index j = 0;
  for (; j + 16 <= n; j += 16) acc += f(Eigen::Map<const Chunk>(v + j));
  T tail = 0;
  for (; j < n; ++j) tail += f(Eigen::Array<T, 1, 1>::Constant(v[j]))(0);
  return acc.sum() + tail;
}

// mean and 1 / sqrt(var + eps) of n contiguous values (two passes).
template <class T>
void stats(const T* v, Index n, T* mean, T* rstd) {
  const T m = fixed_order_sum(v, n, [](const auto& x) { return x; }) / T(n);
  const T var = fixed_order_sum(v, n, [m](const auto& x) { return (x - m).square(); }) / T(n);
  *mean = m;
  *rstd = T(1) / std::sqrt(var + T(kEps));
}

// A copy of a step's arguments moved to its i-th row, as a one-row step.
template <class T>
StepForward<T> one_row(const StepForward<T>& s, Index i, const GateLayout& layout) {
  const Index r = i * s.row_step, GH = layout.columns(), H = layout.hidden;
  StepForward<T> one = s;
  one.rows = 1;
  one.row_step = 1;
  one.gates += r * GH;
  one.recurrent += r * GH;
  one.h_prev += r * s.h_prev_stride;
  one.h_next += r * s.h_next_stride;
  one.aux += r * H;
  if (one.aux_next) one.aux_next += r * H;
  one.extra += r * s.extra_stride;
  return one;
}

// (param_size: the cell's own parameters, whose gradients have a slot per row like the bias's
// when bias_per_row.)
template <class T>
StepBackward<T> one_row(const StepBackward<T>& s, Index i, const GateLayout& layout, Index param_size) {
  const Index r = i * s.row_step, GH = layout.columns(), H = layout.hidden;
  StepBackward<T> one = s;
  one.rows = 1;
  one.row_step = 1;
  one.gates += r * GH;
  one.h_prev += r * s.h_prev_stride;
  one.aux += r * H;
  if (one.aux_next) one.aux_next += r * H;
  one.extra += r * s.extra_stride;
  one.dh += r * H;
  if (one.dc) one.dc += r * H;
  if (s.bias_per_row) {  // the row's own slots (laid out as the gates, and as params)
    if (one.bias_grad) one.bias_grad += r * GH;
    if (one.input_bias_grad) one.input_bias_grad += r * GH;
    if (one.param_grad) one.param_grad += r * param_size;
  }
  return one;
}

// The gate-shaped slice of a row (one block's gate g), at the gates' own columns.
template <class At, class T>
auto gate_of(const At& at, T* row, int g) {
  using A = typename At::Array;
  using Map = std::conditional_t<std::is_const_v<T>, Eigen::Map<const A>, Eigen::Map<A>>;
  return Map(row + at.column + g * at.gate_step, at.width);
}

// A natural-order vector's slice for a block (gate g of a G*H vector, or g = 0 for an H one).
template <class At, class T>
auto unit_of(const At& at, T* vec, int g, Index hidden) {
  using A = typename At::Array;
  using Map = std::conditional_t<std::is_const_v<T>, Eigen::Map<const A>, Eigen::Map<A>>;
  return Map(vec + g * hidden + at.unit, at.width);
}

// Sums in double across blocks (each block's 16 in T): the backward's means of products
// cancel against their terms, where float32 alone loses digits.
// A narrow last block (Eigen::Dynamic) is summed one value at a time, in order, for the same
// reason as fixed_order_sum.
struct Sums {
  double a = 0, b = 0;
  template <class X>
  static double total(const X& x) {
    if constexpr (X::SizeAtCompileTime != Eigen::Dynamic) {
      return double(x.sum());
    } else {
      double t = 0;
      for (Index j = 0; j < x.size(); ++j) t += double(x(j));
      return t;
    }
  }
  template <class X, class Y>
  void add(const X& x, const Y& y) {
    a += total(x);
    b += total(x * y);
  }
};

}  // namespace layer_norm

struct LayerNormLstmCell : CellBase {
  static constexpr int kGates = 4;
  static constexpr bool kCellState = true;
  static constexpr bool kRecurrentIntoGates = false;   // h W_hh^T is normalised before it joins
  static constexpr bool kDirectStateGradient = false;
  static constexpr bool kInputGradientsDiffer = true;  // the two products' normalisations differ
  static constexpr bool kInputGradientsInExtra = true;
  static constexpr bool kRowLocal = true;
  static constexpr bool kNormalizesInput = true;
  static constexpr int kParamArrays = 4;
  static constexpr const char* kName = "LayerNormLSTM";

  static Index param_array_size(int k, Index H) { return k < 2 ? kGates * H : H; }
  static Index extra_width(Index H) { return 2 * kGates * H + 2 * H + 3; }
  static Index input_gradient_offset(Index H) { return kGates * H; }
  // Offsets in a row of extra.
  static Index c_hat(Index H) { return 2 * kGates * H; }
  static Index scratch(Index H) { return 2 * kGates * H + H; }
  static Index rstd(Index H, int k) { return 2 * kGates * H + 2 * H + k; }  // k: 0 x, 1 h, 2 c

  template <class T>
  static void input_bias(const T* b_ih, const T* b_hh, Index hidden, T* out) {
    for (Index j = 0; j < kGates * hidden; ++j) out[j] = (b_ih ? b_ih[j] : T(0)) + (b_hh ? b_hh[j] : T(0));
  }
  template <class T>
  static const T* recurrent_bias(const T*, Index) { return nullptr; }

  template <class T>
  static void forward(const StepForward<T>& s, const GateLayout& layout, Index, Index) {
    using namespace layer_norm;
    const Index H = layout.hidden, GH = layout.columns();
    const T* g_x = s.params;
    const T* g_h = s.params + GH;
    const T* g_c = s.params + 2 * GH;
    const T* b_c = g_c + H;
    for (Index i = 0; i < s.rows; ++i) {
      const StepForward<T> o = one_row(s, i, layout);
      T mean_x, rstd_x, mean_h, rstd_h, mean_c, rstd_c;
      stats(o.gates, GH, &mean_x, &rstd_x);
      stats(o.recurrent, GH, &mean_h, &rstd_h);
      o.extra[rstd(H, 0)] = rstd_x;
      o.extra[rstd(H, 1)] = rstd_h;
      for_each_unit_block<T>(layout, 1, 1, 0, layout.blocks(), [&](const auto& at) {
        for (int g = 0; g < kGates; ++g) {
          auto x_hat = gate_of(at, o.extra, g), h_hat = gate_of(at, o.extra + GH, g);
          auto a = at.gate(o.gates, g);
          x_hat = (a - mean_x) * rstd_x;
          h_hat = (gate_of(at, o.recurrent, g) - mean_h) * rstd_h;
          a = x_hat * unit_of(at, g_x, g, H) + h_hat * unit_of(at, g_h, g, H) + gate_of(at, o.input_bias, g);
        }
        auto ig = at.gate(o.gates, 0), f = at.gate(o.gates, 1), gg = at.gate(o.gates, 2), og = at.gate(o.gates, 3);
        ig = sigmoid(ig);
        f = sigmoid(f);
        gg = gg.tanh();
        og = sigmoid(og);
        at.row(o.aux_next) = f * at.row(o.aux) + ig * gg;
      });
      stats(o.aux_next, H, &mean_c, &rstd_c);
      o.extra[rstd(H, 2)] = rstd_c;
      for_each_unit_block<T>(layout, 1, 1, 0, layout.blocks(), [&](const auto& at) {
        auto c_hat_ = unit_of(at, o.extra + c_hat(H), 0, H);
        c_hat_ = (at.row(o.aux_next) - mean_c) * rstd_c;
        at.row(o.h_next, o.h_next_stride) =
            at.gate(o.gates, 3) * (c_hat_ * unit_of(at, g_c, 0, H) + unit_of(at, b_c, 0, H)).tanh();
      });
    }
  }

  template <class T>
  static void backward(const StepBackward<T>& s, const GateLayout& layout, Index, Index) {
    using namespace layer_norm;
    const Index H = layout.hidden, GH = layout.columns();
    const T* g_x = s.params;
    const T* g_h = s.params + GH;
    const T* g_c = s.params + 2 * GH;
    const T* b_c = g_c + H;
    for (Index i = 0; i < s.rows; ++i) {
      const StepBackward<T> o = one_row(s, i, layout, cell_param_size<LayerNormLstmCell>(H));
      const T* extra = o.extra;
      // 1. through h = o * tanh(LN(c) g_c + b_c): d o, and LN(c)'s backward sums
      Sums sc;
      for_each_unit_block<T>(layout, 1, 1, 0, layout.blocks(), [&](const auto& at) {
        using A = typename std::decay_t<decltype(at)>::Array;
        auto og = at.gate(o.gates, 3);
        const auto c_hat_ = unit_of(at, extra + c_hat(H), 0, H);
        const A tc = (c_hat_ * unit_of(at, g_c, 0, H) + unit_of(at, b_c, 0, H)).tanh();
        const auto dh = at.row(o.dh);
        const A dy = dh * og * (T(1) - tc * tc);
        if (o.param_grad) {
          unit_of(at, o.param_grad + 2 * GH, 0, H) += dy * c_hat_;
          unit_of(at, o.param_grad + 2 * GH + H, 0, H) += dy;
        }
        auto dxh = unit_of(at, o.extra + scratch(H), 0, H);
        dxh = dy * unit_of(at, g_c, 0, H);
        sc.add(dxh, c_hat_);
        og = dh * tc * og * (T(1) - og);
      });
      // 2. the cell update and the gates (d a); both products' backward sums
      const T rstd_c = extra[rstd(H, 2)], m1 = T(sc.a / H), m2 = T(sc.b / H);
      Sums sh, sx;
      for_each_unit_block<T>(layout, 1, 1, 0, layout.blocks(), [&](const auto& at) {
        using A = typename std::decay_t<decltype(at)>::Array;
        auto ig = at.gate(o.gates, 0), f = at.gate(o.gates, 1), gg = at.gate(o.gates, 2);
        auto dc = at.row(o.dc);
        const A dc_total = dc + rstd_c * (unit_of(at, extra + scratch(H), 0, H) - m1 -
                                          unit_of(at, extra + c_hat(H), 0, H) * m2);
        const A d_i = dc_total * gg * ig * (T(1) - ig);
        const A d_f = dc_total * at.row(o.aux) * f * (T(1) - f);
        const A d_g = dc_total * ig * (T(1) - gg * gg);
        dc = dc_total * f;
        ig = d_i;
        f = d_f;
        gg = d_g;
        for (int g = 0; g < kGates; ++g) {
          const auto da = at.gate(o.gates, g);
          if (o.bias_grad) {
            at.bias_slot(o.bias_grad, g, o.bias_per_row) += da;
            at.bias_slot(o.input_bias_grad, g, o.bias_per_row) += da;
          }
          const auto x_hat = gate_of(at, extra, g), h_hat = gate_of(at, extra + GH, g);
          if (o.param_grad) {
            unit_of(at, o.param_grad, g, H) += da * x_hat;
            unit_of(at, o.param_grad + GH, g, H) += da * h_hat;
          }
          sh.add((da * unit_of(at, g_h, g, H)).eval(), h_hat);
          sx.add((da * unit_of(at, g_x, g, H)).eval(), x_hat);
        }
      });
      // 3. gates <- d (h W_hh^T); d (x W_ih^T) where h_hat was
      const T rstd_h = extra[rstd(H, 1)], h1 = T(sh.a / GH), h2 = T(sh.b / GH);
      const T rstd_x = extra[rstd(H, 0)], x1 = T(sx.a / GH), x2 = T(sx.b / GH);
      for_each_unit_block<T>(layout, 1, 1, 0, layout.blocks(), [&](const auto& at) {
        for (int g = 0; g < kGates; ++g) {
          auto da = at.gate(o.gates, g);
          auto slot = gate_of(at, o.extra + GH, g);
          const auto x_hat = gate_of(at, extra, g);
          const typename std::decay_t<decltype(at)>::Array dax = rstd_x * (da * unit_of(at, g_x, g, H) - x1 - x_hat * x2);
          da = rstd_h * (da * unit_of(at, g_h, g, H) - h1 - slot * h2);
          slot = dax;
        }
      });
    }
  }

  template <class T>
  static void to_input_gradients(const InputGradients<T>&, const GateLayout&) {}  // already in extra
};

struct LayerNormGruCell : CellBase {
  static constexpr int kGates = 3;
  static constexpr bool kCellState = false;
  static constexpr bool kRecurrentIntoGates = false;
  static constexpr bool kDirectStateGradient = true;
  static constexpr bool kInputGradientsDiffer = true;
  static constexpr bool kInputGradientsInExtra = true;
  static constexpr bool kRowLocal = true;
  static constexpr bool kNormalizesInput = true;
  static constexpr int kParamArrays = 2;
  static constexpr const char* kName = "LayerNormGRU";

  static Index param_array_size(int, Index H) { return kGates * H; }
  static Index extra_width(Index H) { return 2 * kGates * H + 2; }
  static Index input_gradient_offset(Index H) { return kGates * H; }
  static Index rstd(Index H, int k) { return 2 * kGates * H + k; }  // k: 0 x, 1 h

  // As GRU: b_hr and b_hz add like input biases; b_hn stays inside r * (...).
  template <class T>
  static void input_bias(const T* b_ih, const T* b_hh, Index hidden, T* out) {
    for (Index j = 0; j < kGates * hidden; ++j)
      out[j] = (b_ih ? b_ih[j] : T(0)) + (j < 2 * hidden && b_hh ? b_hh[j] : T(0));
  }
  template <class T>
  static const T* recurrent_bias(const T* b_hh, Index hidden) { return b_hh ? b_hh + 2 * hidden : nullptr; }

  template <class T>
  static void forward(const StepForward<T>& s, const GateLayout& layout, Index, Index) {
    using namespace layer_norm;
    const Index H = layout.hidden, GH = layout.columns();
    const T* g_x = s.params;
    const T* g_h = s.params + GH;
    for (Index i = 0; i < s.rows; ++i) {
      const StepForward<T> o = one_row(s, i, layout);
      T mean_x, rstd_x, mean_h, rstd_h;
      stats(o.gates, GH, &mean_x, &rstd_x);
      stats(o.recurrent, GH, &mean_h, &rstd_h);
      o.extra[rstd(H, 0)] = rstd_x;
      o.extra[rstd(H, 1)] = rstd_h;
      for_each_unit_block<T>(layout, 1, 1, 0, layout.blocks(), [&](const auto& at) {
        using A = typename std::decay_t<decltype(at)>::Array;
        A rh[kGates];
        for (int g = 0; g < kGates; ++g) {
          auto x_hat = gate_of(at, o.extra, g), h_hat = gate_of(at, o.extra + GH, g);
          auto a = at.gate(o.gates, g);
          x_hat = (a - mean_x) * rstd_x;
          h_hat = (gate_of(at, o.recurrent, g) - mean_h) * rstd_h;
          a = x_hat * unit_of(at, g_x, g, H) + gate_of(at, o.input_bias, g);
          rh[g] = h_hat * unit_of(at, g_h, g, H);
        }
        auto r = at.gate(o.gates, 0), z = at.gate(o.gates, 1), cand = at.gate(o.gates, 2);
        auto hn = at.row(o.aux);
        r = sigmoid(r + rh[0]);
        z = sigmoid(z + rh[1]);
        if (o.recurrent_bias) hn = rh[2] + at.vector(o.recurrent_bias);
        else hn = rh[2];
        cand = (cand + r * hn).tanh();
        at.row(o.h_next, o.h_next_stride) = cand + z * (at.row(o.h_prev, o.h_prev_stride) - cand);
      });
    }
  }

  template <class T>
  static void backward(const StepBackward<T>& s, const GateLayout& layout, Index, Index) {
    using namespace layer_norm;
    const Index H = layout.hidden, GH = layout.columns();
    const T* g_x = s.params;
    const T* g_h = s.params + GH;
    for (Index i = 0; i < s.rows; ++i) {
      const StepBackward<T> o = one_row(s, i, layout, cell_param_size<LayerNormGruCell>(H));
      const T* extra = o.extra;
      // 1. GRU's gradients: w.r.t. ah (dah, into the gates) and ax (dax: r, z as dah, n's in aux);
      // both products' backward sums
      Sums sh, sx;
      for_each_unit_block<T>(layout, 1, 1, 0, layout.blocks(), [&](const auto& at) {
        using A = typename std::decay_t<decltype(at)>::Array;
        auto r = at.gate(o.gates, 0), z = at.gate(o.gates, 1), cand = at.gate(o.gates, 2);
        auto hn = at.row(o.aux), dh = at.row(o.dh);
        const A d_cand = dh * (T(1) - z) * (T(1) - cand * cand);
        const A d_r = d_cand * hn * r * (T(1) - r);
        const A d_z = dh * (at.row(o.h_prev, o.h_prev_stride) - cand) * z * (T(1) - z);
        dh = dh * z;
        cand = d_cand * r;
        r = d_r;
        z = d_z;
        hn = d_cand;
        if (o.bias_grad) {
          for (int g = 0; g < kGates; ++g) at.bias_slot(o.bias_grad, g, o.bias_per_row) += at.gate(o.gates, g);
          at.bias_slot(o.input_bias_grad, 0, o.bias_per_row) += d_r;
          at.bias_slot(o.input_bias_grad, 1, o.bias_per_row) += d_z;
          at.bias_slot(o.input_bias_grad, 2, o.bias_per_row) += d_cand;
        }
        for (int g = 0; g < kGates; ++g) {
          const auto dah = at.gate(o.gates, g);
          const A dax = g == 2 ? d_cand : A(dah);
          const auto x_hat = gate_of(at, extra, g), h_hat = gate_of(at, extra + GH, g);
          if (o.param_grad) {
            unit_of(at, o.param_grad, g, H) += dax * x_hat;
            unit_of(at, o.param_grad + GH, g, H) += dah * h_hat;
          }
          sh.add((dah * unit_of(at, g_h, g, H)).eval(), h_hat);
          sx.add((dax * unit_of(at, g_x, g, H)).eval(), x_hat);
        }
      });
      // 2. gates <- d (h W_hh^T); d (x W_ih^T) where h_hat was
      const T rstd_h = extra[rstd(H, 1)], h1 = T(sh.a / GH), h2 = T(sh.b / GH);
      const T rstd_x = extra[rstd(H, 0)], x1 = T(sx.a / GH), x2 = T(sx.b / GH);
      for_each_unit_block<T>(layout, 1, 1, 0, layout.blocks(), [&](const auto& at) {
        using A = typename std::decay_t<decltype(at)>::Array;
        for (int g = 0; g < kGates; ++g) {
          auto dah = at.gate(o.gates, g);
          auto slot = gate_of(at, o.extra + GH, g);
          const A dax = g == 2 ? A(at.row(o.aux)) : A(dah);
          const A dux = rstd_x * (dax * unit_of(at, g_x, g, H) - x1 - gate_of(at, extra, g) * x2);
          dah = rstd_h * (dah * unit_of(at, g_h, g, H) - h1 - slot * h2);
          slot = dux;
        }
      });
    }
  }

  template <class T>
  static void to_input_gradients(const InputGradients<T>&, const GateLayout&) {}  // already in extra
};

}  // namespace lstm_native
