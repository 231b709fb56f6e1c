// The optimizer and clipping kernels declared in optim.h. Built with -ffp-contract=off
// (CMakeLists.txt): a*b + c rounds twice, as in torch's own kernels.
#include "optim.h"

#include "threads.h"

#include <algorithm>
#include <cmath>

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


template <class T>
void sgd_step(TensorList<T>& p, const TensorList<T>& g, TensorList<T>& buf, const SgdConfig& c) {
  for_each_element_range(p.size, 6, [&](size_t t, Index b, Index e) {
    T* w = p.data[t];
    const T* gr = g.data[t];
    T* m = c.momentum != 0 ? buf.data[t] : nullptr;
    for (Index i = b; i < e; ++i) {
      T d = gr[i] + T(c.weight_decay) * w[i];
      if (m) {
        m[i] = c.first_step ? d : T(c.momentum) * m[i] + T(1 - c.dampening) * d;
        d = c.nesterov ? d + T(c.momentum) * m[i] : m[i];
      }
      w[i] -= T(c.lr) * d;
    }
  });
}


template <class T>
void adam_step(TensorList<T>& p, const TensorList<T>& g, TensorList<T>& m, TensorList<T>& v, TensorList<T>& v_max,
               const AdamConfig& c) {
  const double bias1 = 1 - std::pow(c.beta1, double(c.step));
  const double bias2_sqrt = std::sqrt(1 - std::pow(c.beta2, double(c.step)));
  const T step_size = T(c.lr / bias1), decay = T(1 - c.lr * c.weight_decay);
  const T b1 = T(1 - c.beta1), b2 = T(c.beta2), one_minus_b2 = T(1 - c.beta2);
  for_each_element_range(p.size, 14, [&](size_t t, Index b, Index e) {
    T* w = p.data[t];
    const T* gr = g.data[t];
    T* m1 = m.data[t];
    T* m2 = v.data[t];
    T* mx = c.amsgrad ? v_max.data[t] : nullptr;
    for (Index i = b; i < e; ++i) {
      T d = gr[i];
      if (c.decoupled_weight_decay) w[i] *= decay;
      else d += T(c.weight_decay) * w[i];
      m1[i] += b1 * (d - m1[i]);  // torch's lerp
      m2[i] = b2 * m2[i] + one_minus_b2 * d * d;
      T second = m2[i];
      if (mx) second = mx[i] = std::max(mx[i], m2[i]);
      const T denom = std::sqrt(second) / T(bias2_sqrt) + T(c.eps);
      w[i] -= step_size * m1[i] / denom;
    }
  });
}


template <class T>
void rmsprop_step(TensorList<T>& p, const TensorList<T>& g, TensorList<T>& square_avg, TensorList<T>& grad_avg,
                  TensorList<T>& buf, const RmspropConfig& c) {
  for_each_element_range(p.size, 12, [&](size_t t, Index b, Index e) {
    T* w = p.data[t];
    const T* gr = g.data[t];
    T* sq = square_avg.data[t];
    T* ga = c.centered ? grad_avg.data[t] : nullptr;
    T* mb = c.momentum > 0 ? buf.data[t] : nullptr;
    for (Index i = b; i < e; ++i) {
      const T d = gr[i] + T(c.weight_decay) * w[i];
      sq[i] = T(c.alpha) * sq[i] + T(1 - c.alpha) * d * d;
      T avg;
      if (ga) {
        ga[i] += T(1 - c.alpha) * (d - ga[i]);
        avg = std::sqrt(sq[i] - ga[i] * ga[i]) + T(c.eps);
      } else {
        avg = std::sqrt(sq[i]) + T(c.eps);
      }
      if (mb) {
        mb[i] = T(c.momentum) * mb[i] + d / avg;
        w[i] -= T(c.lr) * mb[i];
      } else {
        w[i] -= T(c.lr) * d / avg;
      }
    }
  });
}


template <class T>
void adagrad_step(TensorList<T>& p, const TensorList<T>& g, TensorList<T>& sum, const AdagradConfig& c) {
  const T clr = T(c.lr / (1 + double(c.step - 1) * c.lr_decay));
  for_each_element_range(p.size, 8, [&](size_t t, Index b, Index e) {
    T* w = p.data[t];
    const T* gr = g.data[t];
    T* s = sum.data[t];
    for (Index i = b; i < e; ++i) {
      const T d = gr[i] + T(c.weight_decay) * w[i];
      s[i] += d * d;
      w[i] -= clr * d / (std::sqrt(s[i]) + T(c.eps));
    }
  });
}

// The norm of all tensors together (norm_type 2, or infinity); accumulated in double.
template <class T>
double total_norm(const TensorList<T>& g, bool infinity) {
  std::vector<double> partial(std::max(1, get_num_threads()) * 8, 0.0);  // one slot per member, padded
  int used = 1;
  Index total = 0;
  for (Index s : g.size) total += s;
  run_team(threads_for(double(total) * 2, 2e5), [&](int id, int team) {
    if (id == 0) used = team;
    Index begin, end;
    share(total, id, team, &begin, &end);
    double acc = 0;
    Index offset = 0;
    for (size_t t = 0; t < g.size.size() && offset < end; ++t) {
      const Index lo = std::max(begin, offset), hi = std::min(end, offset + g.size[t]);
      for (Index i = lo; i < hi; ++i) {
        const double x = g.data[t][i - offset];
        acc = infinity ? std::max(acc, std::abs(x)) : acc + x * x;
        if (std::isnan(x)) acc = x;  // NaN must survive max()
      }
      offset += g.size[t];
    }
    partial[id * 8] = acc;
  });
  double result = 0;
  for (int id = 0; id < used; ++id) {
    const double x = partial[id * 8];
    result = infinity ? (std::isnan(x) || std::isnan(result) ? x + result : std::max(result, x)) : result + x;
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
