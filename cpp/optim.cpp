// The optimizer and clipping kernels declared in optim.h. Built with -ffp-contract=off
// (CMakeLists.txt): a*b + c rounds twice, as in torch's own kernels.
#include "optim.h"

#include "threads.h"

#include <Eigen/Core>

#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>

namespace lstm_native {

// Calls fn(tensor, begin, end) over every element of `sizes`, split evenly across the pool.
template <class Fn>
void for_each_element_range(const std::vector<Index>& sizes, double flops_per_element, Fn&& fn) {
  Index total = 0;
  for (Index s : sizes) total += s;
  run_team(threads_for(double(total) * flops_per_element, 2e5), [&](int id, int team) {
    Index begin, end;
    share(total, id, team, &begin, &end);
    Index offset = 0;
    for (size_t t = 0; t < sizes.size() && offset < end; ++t) {
      const Index lo = std::max(begin, offset), hi = std::min(end, offset + sizes[t]);
      if (lo < hi) fn(t, lo - offset, hi - offset);
      offset += sizes[t];
    }
  });
}


// Each update's configuration flags are template parameters: the element loops then have
// no branches and vectorise (with -fno-math-errno, sqrt too).
template <bool kBool>
using Flag = std::integral_constant<bool, kBool>;

template <class Fn>
void with_flags(bool a, bool b, Fn&& fn) {
  if (a) {
    if (b) fn(Flag<true>{}, Flag<true>{}); else fn(Flag<true>{}, Flag<false>{});
  } else {
    if (b) fn(Flag<false>{}, Flag<true>{}); else fn(Flag<false>{}, Flag<false>{});
  }
}

template <class T>
void sgd_step(TensorList<T>& p, const TensorList<T>& g, TensorList<T>& buf, const SgdConfig& c) {
  const T lr = T(c.lr), wd = T(c.weight_decay), mom = T(c.momentum), damp = T(1 - c.dampening);
  with_flags(c.momentum != 0, c.nesterov, [&](auto momentum, auto nesterov) {
    for_each_element_range(p.size, 6, [&](size_t t, Index b, Index e) {
      T* __restrict w = p.data[t];
      const T* __restrict gr = g.data[t];
      T* __restrict m = momentum ? buf.data[t] : nullptr;
      const T rate = lr, l2 = wd, mu = mom, keep = damp;  // locals: no aliasing
      const bool first = c.first_step;
      for (Index i = b; i < e; ++i) {
        T d = gr[i] + l2 * w[i];
        if constexpr (momentum) {
          const T next = first ? d : mu * m[i] + keep * d;
          m[i] = next;
          d = nesterov ? d + mu * next : next;
        }
        w[i] -= rate * d;
      }
    });
  });
}

template <class T>
void adam_step(TensorList<T>& p, const TensorList<T>& g, TensorList<T>& m, TensorList<T>& v, TensorList<T>& v_max,
               const AdamConfig& c) {
  const double bias1 = 1 - std::pow(c.beta1, double(c.step));
  const T bias2_sqrt = T(std::sqrt(1 - std::pow(c.beta2, double(c.step))));
  const T step_size = T(c.lr / bias1), decay = T(1 - c.lr * c.weight_decay), wd = T(c.weight_decay);
  const T b1 = T(1 - c.beta1), b2 = T(c.beta2), one_minus_b2 = T(1 - c.beta2), eps = T(c.eps);
  with_flags(c.decoupled_weight_decay, c.amsgrad, [&](auto decoupled, auto amsgrad) {
    for_each_element_range(p.size, 14, [&](size_t t, Index b, Index e) {
      T* __restrict w = p.data[t];
      const T* __restrict gr = g.data[t];
      T* __restrict m1 = m.data[t];
      T* __restrict m2 = v.data[t];
      T* __restrict mx = amsgrad ? v_max.data[t] : nullptr;
      // Locals, not the captured references: stores to w could otherwise alias them.
      const T lr_step = step_size, keep = decay, l2 = wd, mix = b1, beta2 = b2, mix2 = one_minus_b2;
      const T bias2 = bias2_sqrt, epsilon = eps;
      for (Index i = b; i < e; ++i) {
        T d = gr[i];
        if constexpr (decoupled) w[i] *= keep;
        else d += l2 * w[i];
        m1[i] += mix * (d - m1[i]);  // torch's lerp
        m2[i] = beta2 * m2[i] + mix2 * d * d;
        T second = m2[i];
        if constexpr (amsgrad) second = mx[i] = std::max(mx[i], m2[i]);
        const T denom = std::sqrt(second) / bias2 + epsilon;
        w[i] -= lr_step * m1[i] / denom;
      }
    });
  });
}

template <class T>
void rmsprop_step(TensorList<T>& p, const TensorList<T>& g, TensorList<T>& square_avg, TensorList<T>& grad_avg,
                  TensorList<T>& buf, const RmspropConfig& c) {
  const T alpha = T(c.alpha), one_minus_alpha = T(1 - c.alpha), eps = T(c.eps), lr = T(c.lr);
  const T wd = T(c.weight_decay), mom = T(c.momentum);
  with_flags(c.centered, c.momentum > 0, [&](auto centered, auto momentum) {
    for_each_element_range(p.size, 12, [&](size_t t, Index b, Index e) {
      T* __restrict w = p.data[t];
      const T* __restrict gr = g.data[t];
      T* __restrict sq = square_avg.data[t];
      T* __restrict ga = centered ? grad_avg.data[t] : nullptr;
      T* __restrict mb = momentum ? buf.data[t] : nullptr;
      const T a = alpha, a1 = one_minus_alpha, epsilon = eps, rate = lr, l2 = wd, mu = mom;  // locals: no aliasing
      for (Index i = b; i < e; ++i) {
        const T d = gr[i] + l2 * w[i];
        sq[i] = a * sq[i] + a1 * d * d;
        T avg;
        if constexpr (centered) {
          ga[i] += a1 * (d - ga[i]);
          // a variance, never below 0: rounding (an FMA, alpha = 0) made it -1 ulp and sqrt NaN
          avg = std::sqrt(std::max(sq[i] - ga[i] * ga[i], T(0))) + epsilon;
        } else {
          avg = std::sqrt(sq[i]) + epsilon;
        }
        if constexpr (momentum) {
          mb[i] = mu * mb[i] + d / avg;
          w[i] -= rate * mb[i];
        } else {
          w[i] -= rate * d / avg;
        }
      }
    });
  });
}

template <class T>
void adagrad_step(TensorList<T>& p, const TensorList<T>& g, TensorList<T>& sum, const AdagradConfig& c) {
  const T clr = T(c.lr / (1 + double(c.step - 1) * c.lr_decay)), wd = T(c.weight_decay), eps = T(c.eps);
  for_each_element_range(p.size, 8, [&](size_t t, Index b, Index e) {
    T* __restrict w = p.data[t];
    const T* __restrict gr = g.data[t];
    T* __restrict s = sum.data[t];
    const T rate = clr, l2 = wd, epsilon = eps;  // locals: no aliasing
    for (Index i = b; i < e; ++i) {
      const T d = gr[i] + l2 * w[i];
      s[i] += d * d;
      w[i] -= rate * d / (std::sqrt(s[i]) + epsilon);
    }
  });
}

// The norm (2 or infinity) of elements [begin, end) of the concatenated arrays.
template <class T>
double range_norm(const TensorList<T>& g, Index begin, Index end, bool infinity) {
  double acc = 0;
  Index offset = 0;
  for (size_t t = 0; t < g.size.size() && offset < end; ++t) {
    const Index lo = std::max(begin, offset), hi = std::min(end, offset + g.size[t]);
    if (lo < hi) {
      // Eigen's vectorised reductions; maxCoeff keeps NaN (sums keep it anyway).
      const auto x = Eigen::Map<const Eigen::Array<T, Eigen::Dynamic, 1>>(g.data[t] + lo - offset, hi - lo);
      if (infinity) {
        // std::max(acc, NaN) is acc: a NaN segment maximum must replace acc, not be compared
        const double top = double(x.abs().template maxCoeff<Eigen::PropagateNaN>());
        acc = std::isnan(top) ? top : std::max(acc, top);
      } else {  // float sums of 1024 squares (vectorised), accumulated in double
        for (Index j = 0; j < x.size(); j += 1024) acc += double(x.segment(j, std::min<Index>(1024, x.size() - j)).square().sum());
      }
      if (std::isnan(acc)) acc = std::numeric_limits<double>::quiet_NaN();
    }
    offset += g.size[t];
  }
  return acc;
}

// Chunks of fixed size, each reduced alone and combined in order: the same sums in the same
// order whatever the team's size, so the norm (and the clipping it decides) does not depend
// on the thread count.
template <class T>
double total_norm(const TensorList<T>& g, bool infinity) {
  constexpr Index kChunk = Index(1) << 15;
  Index total = 0;
  for (Index s : g.size) total += s;
  const Index chunks = (total + kChunk - 1) / kChunk;
  std::vector<double> partial(static_cast<size_t>(chunks), 0.0);
  run_team(threads_for(double(total) * 2, 2e5), [&](int id, int team) {
    Index c0, c1;
    share(chunks, id, team, &c0, &c1);
    for (Index c = c0; c < c1; ++c) partial[c] = range_norm(g, c * kChunk, std::min(total, (c + 1) * kChunk), infinity);
  });
  double result = 0;
  for (const double x : partial) {
    if (std::isnan(x) || std::isnan(result)) result = std::numeric_limits<double>::quiet_NaN();
    else result = infinity ? std::max(result, x) : result + x;
  }
  return infinity ? result : std::sqrt(result);
}

template <class T>
void scale_all(TensorList<T>& g, double factor) {
  for_each_element_range(g.size, 1, [&](size_t t, Index b, Index e) {
    for (Index i = b; i < e; ++i) g.data[t][i] *= T(factor);
  });
}

template <class T>
void clamp_all(TensorList<T>& g, double limit) {
  for_each_element_range(g.size, 2, [&](size_t t, Index b, Index e) {
    for (Index i = b; i < e; ++i) g.data[t][i] = std::clamp(g.data[t][i], T(-limit), T(limit));
  });
}


#define LSTM_NATIVE_OPTIM_INSTANCES(T)                                                                   \
  template void sgd_step<T>(TensorList<T>&, const TensorList<T>&, TensorList<T>&, const SgdConfig&);      \
  template void adam_step<T>(TensorList<T>&, const TensorList<T>&, TensorList<T>&, TensorList<T>&,        \
                             TensorList<T>&, const AdamConfig&);                                           \
  template void rmsprop_step<T>(TensorList<T>&, const TensorList<T>&, TensorList<T>&, TensorList<T>&,     \
                                TensorList<T>&, const RmspropConfig&);                                     \
  template void adagrad_step<T>(TensorList<T>&, const TensorList<T>&, TensorList<T>&, const AdagradConfig&); \
  template double total_norm<T>(const TensorList<T>&, bool);                                              \
  template void scale_all<T>(TensorList<T>&, double);                                                     \
  template void clamp_all<T>(TensorList<T>&, double);
LSTM_NATIVE_OPTIM_INSTANCES(float)
LSTM_NATIVE_OPTIM_INSTANCES(double)
#undef LSTM_NATIVE_OPTIM_INSTANCES

}  // namespace lstm_native
