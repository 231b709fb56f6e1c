// Optimizer updates and gradient clipping, fused over all of a model's parameters in one
// call: the Python optimizer hands over every tensor at once and the pool splits the
// combined elements evenly. Each update follows torch.optim's arithmetic (single-tensor
// implementations), rounding every operation as torch does (optim.cpp is compiled without
// FMA contraction), so that results agree to float precision.
#pragma once

#include "common.h"

#include <vector>

namespace lstm_native {

// A list of same-shaped tensors, one per parameter (params, grads, or a state buffer).
template <class T>
struct TensorList {
  std::vector<T*> data;
  std::vector<Index> size;
};

struct SgdConfig {
  double lr, momentum, dampening, weight_decay;
  bool nesterov, first_step;  // first_step: the momentum buffer starts as the gradient
};

struct AdamConfig {
  double lr, beta1, beta2, eps, weight_decay;
  bool decoupled_weight_decay, amsgrad;  // decoupled: AdamW
  long long step;                        // after incrementing: 1 on the first update
};

struct RmspropConfig {
  double lr, alpha, eps, weight_decay, momentum;
  bool centered;
};

struct AdagradConfig {
  double lr, lr_decay, weight_decay, eps;
  long long step;  // after incrementing
};

template <class T>
void sgd_step(TensorList<T>& p, const TensorList<T>& g, TensorList<T>& buf, const SgdConfig& c);
template <class T>
void adam_step(TensorList<T>& p, const TensorList<T>& g, TensorList<T>& m, TensorList<T>& v, TensorList<T>& v_max,
               const AdamConfig& c);
template <class T>
void rmsprop_step(TensorList<T>& p, const TensorList<T>& g, TensorList<T>& square_avg, TensorList<T>& grad_avg,
                  TensorList<T>& buf, const RmspropConfig& c);
template <class T>
void adagrad_step(TensorList<T>& p, const TensorList<T>& g, TensorList<T>& sum, const AdagradConfig& c);
// The norm of all tensors together (norm_type 2, or infinity); accumulated in double.
template <class T>
double total_norm(const TensorList<T>& g, bool infinity);
template <class T>
void scale_all(TensorList<T>& g, double factor);
template <class T>
void clamp_all(TensorList<T>& g, double limit);

}  // namespace lstm_native
