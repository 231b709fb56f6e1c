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
// input side is normalised for every step at once before the loop (prepare_inputs); per step
// the recurrent product lands in its own buffer and the cell normalises it.
//
// Per packed row the cells keep (`extra`, interleaved like the gates where gate-shaped):
//   [x_hat (GH) | h_hat (GH) | LSTM: c_hat (H), scratch (H) | rstd_x, rstd_h (, rstd_c)]
// Backward turns the gates into d loss / d (h W_hh^T) (for dh_{t-1} and dW_hh) and leaves
// d loss / d (normalised input) where h_hat was, for to_input_gradients() after the loop.
// Their own parameters (natural order): g_x (GH), g_h (GH) and, LSTM, g_c (H), b_c (H).
#pragma once

#include "activations.h"
#include "cell_base.h"
#include "gate_layout.h"
#include "step.h"

#include <cmath>

namespace lstm_native {

namespace layer_norm {

constexpr double kEps = 1e-5;

// mean and 1 / sqrt(var + eps) of n contiguous values.
// (In double whatever T: float32's rounding in these sums is what layer norm amplifies.)
template <class T>
void stats(const T* v, Index n, T* mean, T* rstd) {
  const Eigen::Map<const Eigen::Array<T, Eigen::Dynamic, 1>> a(v, n);
  const double m = a.template cast<double>().mean();
  *mean = T(m);
  *rstd = T(1.0 / std::sqrt((a.template cast<double>() - m).square().mean() + kEps));
}

// A copy of a step's arguments moved to its i-th row, as a one-row step.
template <class Step>
Step one_row(const Step& s, Index i, const GateLayout& layout) {
  const Index r = i * s.row_step, GH = layout.columns(), H = layout.hidden;
  Step one = s;
  one.rows = 1;
  one.row_step = 1;
  one.gates += r * GH;
  one.h_prev += r * s.h_prev_stride;
  one.aux += r * H;
  one.extra += r * s.extra_stride;
  if constexpr (std::is_same_v<Step, StepForward<std::remove_pointer_t<decltype(s.gates)>>>) {
    one.recurrent += r * GH;
    one.h_next += r * s.h_next_stride;
    if (one.aux_next) one.aux_next += r * H;
  } else {
    if (one.aux_next) one.aux_next += r * H;
    one.dh += r * H;
    if (one.dc) one.dc += r * H;
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

// Normalises each of `p.rows` rows of the input projection (x_hat into extra[0, GH), rstd_x
// into extra[rstd]) and makes it g_x * x_hat + bias.
template <class T>
void prepare_inputs(const PrepareInputs<T>& p, const GateLayout& layout, Index rstd_at) {
  const Index GH = layout.columns(), H = layout.hidden;
  for (Index r = 0; r < p.rows; ++r) {
    T* gates = p.gates + r * GH;
    T* extra = p.extra + r * p.extra_stride;
    T mean, rstd;
    stats(gates, GH, &mean, &rstd);
    extra[rstd_at] = rstd;
    for_each_unit_block<T>(layout, 1, 1, 0, layout.blocks(), [&](const auto& at) {
      for (int g = 0; g < layout.gates; ++g) {
        auto xhat = gate_of(at, extra, g);
        auto a = gate_of(at, gates, g);
        xhat = (a - mean) * rstd;
        a = xhat * unit_of(at, p.params, g, H) + gate_of(at, p.bias, g);
      }
    });
  }
}

// Gates <- d loss / d (x W_ih^T) from d loss / d x_hat-side output kept in extra[GH, 2GH).
template <class T>
void input_gradients(const InputGradients<T>& p, const GateLayout& layout, Index rstd_at) {
  const Index GH = layout.columns(), H = layout.hidden;
  for (Index r = 0; r < p.rows; ++r) {
    T* gates = p.gates + r * GH;
    const T* extra = p.extra + r * p.extra_stride;
    double sum = 0, sum_x = 0;
    for_each_unit_block<T>(layout, 1, 1, 0, layout.blocks(), [&](const auto& at) {
      for (int g = 0; g < layout.gates; ++g) {
        const auto dy = (gate_of(at, extra + GH, g) * unit_of(at, p.params, g, H)).eval();
        sum += dy.sum();
        sum_x += (dy * gate_of(at, extra, g)).sum();
      }
    });
    const T rstd = extra[rstd_at], m1 = T(sum / GH), m2 = T(sum_x / GH);
    for_each_unit_block<T>(layout, 1, 1, 0, layout.blocks(), [&](const auto& at) {
      for (int g = 0; g < layout.gates; ++g)
        gate_of(at, gates, g) =
            rstd * (gate_of(at, extra + GH, g) * unit_of(at, p.params, g, H) - m1 - gate_of(at, extra, g) * m2);
    });
  }
}

}  // namespace layer_norm

struct LayerNormLstmCell : CellBase {
  static constexpr int kGates = 4;
  static constexpr bool kCellState = true;
  static constexpr bool kRecurrentIntoGates = false;   // h W_hh^T is normalised before it joins
  static constexpr bool kDirectStateGradient = false;
  static constexpr bool kInputGradientsDiffer = true;  // the two products' normalisations differ
  static constexpr bool kRowLocal = true;
  static constexpr bool kNormalizesInput = true;
  static constexpr int kParamArrays = 4;
  static constexpr const char* kName = "LayerNormLSTM";

  static Index param_array_size(int k, Index H) { return k < 2 ? kGates * H : H; }
  static Index extra_width(Index H) { return 2 * kGates * H + 2 * H + 3; }
  // Offsets in a row of extra, and in params.
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
  static void prepare_inputs(const PrepareInputs<T>& p, const GateLayout& layout) {
    layer_norm::prepare_inputs(p, layout, rstd(layout.hidden, 0));
  }

  template <class T>
  static void forward(const StepForward<T>& s, const GateLayout& layout, Index, Index) {
    using namespace layer_norm;
    const Index H = layout.hidden, GH = layout.columns();
    const T* g_h = s.params + GH;
    const T* g_c = s.params + 2 * GH;
    const T* b_c = g_c + H;
    for (Index i = 0; i < s.rows; ++i) {
      const StepForward<T> o = one_row(s, i, layout);
      T mean, rstd_h, mean_c, rstd_c;
      stats(o.recurrent, GH, &mean, &rstd_h);
      o.extra[rstd(H, 1)] = rstd_h;
      for_each_unit_block<T>(layout, 1, 1, 0, layout.blocks(), [&](const auto& at) {
        for (int g = 0; g < kGates; ++g) {
          auto h_hat = gate_of(at, o.extra + GH, g);
          h_hat = (gate_of(at, o.recurrent, g) - mean) * rstd_h;
          at.gate(o.gates, g) += h_hat * unit_of(at, g_h, g, H);
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
    const T* g_h = s.params + GH;
    const T* g_c = s.params + 2 * GH;
    const T* b_c = g_c + H;
    for (Index i = 0; i < s.rows; ++i) {
      const StepBackward<T> o = one_row(s, i, layout);
      // 1. through h = o * tanh(LN(c) g_c + b_c): d o, and d LN(c)'s input side sums
      double s1 = 0, s2 = 0;
      for_each_unit_block<T>(layout, 1, 1, 0, layout.blocks(), [&](const auto& at) {
        using A = typename std::decay_t<decltype(at)>::Array;
        auto og = at.gate(o.gates, 3);
        const auto c_hat_ = unit_of(at, (const T*)o.extra + c_hat(H), 0, H);
        const A tc = (c_hat_ * unit_of(at, g_c, 0, H) + unit_of(at, b_c, 0, H)).tanh();
        const auto dh = at.row(o.dh);
        const A dy = dh * og * (T(1) - tc * tc);
        if (o.param_grad) {
          unit_of(at, o.param_grad + 2 * GH, 0, H) += dy * c_hat_;
          unit_of(at, o.param_grad + 2 * GH + H, 0, H) += dy;
        }
        auto dxh = unit_of(at, o.extra + scratch(H), 0, H);
        dxh = dy * unit_of(at, g_c, 0, H);
        s1 += dxh.sum();
        s2 += (dxh * c_hat_).sum();
        og = dh * tc * og * (T(1) - og);
      });
      // 2. the cell update and the gates; sums for LN(h W_hh^T)'s backward
      const T rstd_c = o.extra[rstd(H, 2)], m1 = T(s1 / H), m2 = T(s2 / H);
      double t1 = 0, t2 = 0;
      for_each_unit_block<T>(layout, 1, 1, 0, layout.blocks(), [&](const auto& at) {
        using A = typename std::decay_t<decltype(at)>::Array;
        auto ig = at.gate(o.gates, 0), f = at.gate(o.gates, 1), gg = at.gate(o.gates, 2);
        auto dc = at.row(o.dc);
        const A dc_total = dc + rstd_c * (unit_of(at, (const T*)o.extra + scratch(H), 0, H) - m1 -
                                          unit_of(at, (const T*)o.extra + c_hat(H), 0, H) * m2);
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
            at.column_vector(o.bias_grad, g) += da;
            at.column_vector(o.input_bias_grad, g) += da;
          }
          const auto h_hat = gate_of(at, (const T*)o.extra + GH, g);
          if (o.param_grad) {
            unit_of(at, o.param_grad, g, H) += da * gate_of(at, (const T*)o.extra, g);
            unit_of(at, o.param_grad + GH, g, H) += da * h_hat;
          }
          const A dy = da * unit_of(at, g_h, g, H);
          t1 += dy.sum();
          t2 += (dy * h_hat).sum();
        }
      });
      // 3. gates <- d (h W_hh^T); d a kept where h_hat was, for the input side
      const T rstd_h = o.extra[rstd(H, 1)], n1 = T(t1 / GH), n2 = T(t2 / GH);
      for_each_unit_block<T>(layout, 1, 1, 0, layout.blocks(), [&](const auto& at) {
        using A = typename std::decay_t<decltype(at)>::Array;
        for (int g = 0; g < kGates; ++g) {
          auto da = at.gate(o.gates, g);
          auto slot = gate_of(at, o.extra + GH, g);
          const A keep = da;
          da = rstd_h * (keep * unit_of(at, g_h, g, H) - n1 - slot * n2);
          slot = keep;
        }
      });
    }
  }

  template <class T>
  static void to_input_gradients(const InputGradients<T>& p, const GateLayout& layout) {
    layer_norm::input_gradients(p, layout, rstd(layout.hidden, 0));
  }
};

struct LayerNormGruCell : CellBase {
  static constexpr int kGates = 3;
  static constexpr bool kCellState = false;
  static constexpr bool kRecurrentIntoGates = false;
  static constexpr bool kDirectStateGradient = true;
  static constexpr bool kInputGradientsDiffer = true;
  static constexpr bool kRowLocal = true;
  static constexpr bool kNormalizesInput = true;
  static constexpr int kParamArrays = 2;
  static constexpr const char* kName = "LayerNormGRU";

  static Index param_array_size(int, Index H) { return kGates * H; }
  static Index extra_width(Index H) { return 2 * kGates * H + 2; }
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
  static void prepare_inputs(const PrepareInputs<T>& p, const GateLayout& layout) {
    layer_norm::prepare_inputs(p, layout, rstd(layout.hidden, 0));
  }

  template <class T>
  static void forward(const StepForward<T>& s, const GateLayout& layout, Index, Index) {
    using namespace layer_norm;
    const Index H = layout.hidden, GH = layout.columns();
    const T* g_h = s.params + GH;
    for (Index i = 0; i < s.rows; ++i) {
      const StepForward<T> o = one_row(s, i, layout);
      T mean, rstd_h;
      stats(o.recurrent, GH, &mean, &rstd_h);
      o.extra[rstd(H, 1)] = rstd_h;
      for_each_unit_block<T>(layout, 1, 1, 0, layout.blocks(), [&](const auto& at) {
        using A = typename std::decay_t<decltype(at)>::Array;
        A rh[kGates];
        for (int g = 0; g < kGates; ++g) {
          auto h_hat = gate_of(at, o.extra + GH, g);
          h_hat = (gate_of(at, o.recurrent, g) - mean) * rstd_h;
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
    const T* g_h = s.params + GH;
    for (Index i = 0; i < s.rows; ++i) {
      const StepBackward<T> o = one_row(s, i, layout);
      // 1. GRU's gradients: w.r.t. ah (dah, into the gates) and ax (dax: r, z as dah, n's in aux)
      double t1 = 0, t2 = 0;
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
          for (int g = 0; g < kGates; ++g) at.column_vector(o.bias_grad, g) += at.gate(o.gates, g);
          at.column_vector(o.input_bias_grad, 0) += d_r;
          at.column_vector(o.input_bias_grad, 1) += d_z;
          at.column_vector(o.input_bias_grad, 2) += d_cand;
        }
        for (int g = 0; g < kGates; ++g) {
          const auto dah = at.gate(o.gates, g);
          const auto h_hat = gate_of(at, (const T*)o.extra + GH, g);
          if (o.param_grad) {
            unit_of(at, o.param_grad, g, H) += (g == 2 ? A(d_cand) : A(dah)) * gate_of(at, (const T*)o.extra, g);
            unit_of(at, o.param_grad + GH, g, H) += dah * h_hat;
          }
          const A dy = dah * unit_of(at, g_h, g, H);
          t1 += dy.sum();
          t2 += (dy * h_hat).sum();
        }
      });
      // 2. gates <- d (h W_hh^T); dax kept where h_hat was, for the input side
      const T rstd_h = o.extra[rstd(H, 1)], n1 = T(t1 / GH), n2 = T(t2 / GH);
      for_each_unit_block<T>(layout, 1, 1, 0, layout.blocks(), [&](const auto& at) {
        for (int g = 0; g < kGates; ++g) {
          auto dah = at.gate(o.gates, g);
          auto slot = gate_of(at, o.extra + GH, g);
          const typename std::decay_t<decltype(at)>::Array dax = g == 2 ? at.row(o.aux) : dah;
          dah = rstd_h * (dah * unit_of(at, g_h, g, H) - n1 - slot * n2);
          slot = dax;
        }
      });
    }
  }

  template <class T>
  static void to_input_gradients(const InputGradients<T>& p, const GateLayout& layout) {
    layer_norm::input_gradients(p, layout, rstd(layout.hidden, 0));
  }
};

}  // namespace lstm_native
