// Optimizer updates and gradient clipping (optim.h): lists of tensors, updated in place, every
// list checked against the parameters'.
#include "bindings.h"

#include "../optim.h"

namespace lstm_native {
namespace {

// Every array in `list` checked (dtype T, C order, writeable, and the size of the
// matching entry of `like` when given).
template <class T>
TensorList<T> tensor_list(const py::list& list, const char* name, const TensorList<T>* like,
                          std::vector<py::array>& keep) {
  TensorList<T> out;
  if (like && list.size() != like->data.size())
    throw py::value_error(std::string(name) + " must hold one array per parameter");
  for (size_t i = 0; i < list.size(); ++i) {
    const std::string item = std::string(name) + "[" + std::to_string(i) + "]";
    py::array a = checked_any_shape<T>(list[i], item.c_str());
    if (like && a.size() != like->size[i]) throw py::value_error(item + " does not match its parameter's size");
    out.data.push_back(output_of<T>(a, item.c_str()));
    out.size.push_back(a.size());
    keep.push_back(a);
  }
  return out;
}

template <class T>
struct OptimizerCall {
  std::vector<py::array> keep;
  TensorList<T> params, grads;
  OptimizerCall(const py::list& p, const py::list& g) {
    params = tensor_list<T>(p, "params", nullptr, keep);
    grads = tensor_list<T>(g, "grads", &params, keep);
  }
  // A state list, or an empty one when the update does not use it.
  TensorList<T> state(const py::object& list, const char* name, bool used) {
    if (!used) return {};
    if (list.is_none()) throw py::value_error(std::string(name) + " is needed by this configuration");
    return tensor_list<T>(list.cast<py::list>(), name, &params, keep);
  }
};

template <class T>
void sgd_typed(const py::list& p, const py::list& g, const py::object& momentum_buffers, const SgdConfig& c) {
  OptimizerCall<T> call(p, g);
  auto buf = call.state(momentum_buffers, "momentum_buffers", c.momentum != 0);
  py::gil_scoped_release release;
  sgd_step<T>(call.params, call.grads, buf, c);
}

template <class T>
void adam_typed(const py::list& p, const py::list& g, const py::list& m, const py::list& v, const py::object& v_max,
                const AdamConfig& c) {
  OptimizerCall<T> call(p, g);
  auto m1 = call.state(m, "exp_avg", true), m2 = call.state(v, "exp_avg_sq", true);
  auto mx = call.state(v_max, "max_exp_avg_sq", c.amsgrad);
  py::gil_scoped_release release;
  adam_step<T>(call.params, call.grads, m1, m2, mx, c);
}

template <class T>
void rmsprop_typed(const py::list& p, const py::list& g, const py::list& sq, const py::object& ga, const py::object& buf,
                   const RmspropConfig& c) {
  OptimizerCall<T> call(p, g);
  auto s = call.state(sq, "square_avg", true), a = call.state(ga, "grad_avg", c.centered);
  auto b = call.state(buf, "momentum_buffer", c.momentum > 0);
  py::gil_scoped_release release;
  rmsprop_step<T>(call.params, call.grads, s, a, b, c);
}

template <class T>
void adagrad_typed(const py::list& p, const py::list& g, const py::list& sum, const AdagradConfig& c) {
  OptimizerCall<T> call(p, g);
  auto s = call.state(sum, "sum", true);
  py::gil_scoped_release release;
  adagrad_step<T>(call.params, call.grads, s, c);
}

template <class T>
double clip_norm_typed(const py::list& grads, double max_norm, bool infinity) {
  std::vector<py::array> keep;
  auto g = tensor_list<T>(grads, "grads", nullptr, keep);
  py::gil_scoped_release release;
  const double norm = total_norm<T>(g, infinity);
  const double coef = max_norm / (norm + 1e-6);
  if (coef < 1.0) scale_all<T>(g, coef);  // torch multiplies by min(coef, 1): the same
  return norm;
}

template <class T>
double clip_value_typed(const py::list& grads, double limit) {
  std::vector<py::array> keep;
  auto g = tensor_list<T>(grads, "grads", nullptr, keep);
  py::gil_scoped_release release;
  const double norm = total_norm<T>(g, false);
  clamp_all<T>(g, limit);
  return norm;
}

template <class T>
double norm_typed(const py::list& grads, bool infinity) {
  std::vector<py::array> keep;
  auto g = tensor_list<T>(grads, "grads", nullptr, keep);
  py::gil_scoped_release release;
  return total_norm<T>(g, infinity);
}

}  // namespace

void bind_optim(py::module_& m) {
  m.def("sgd_step", [](const py::list& p, const py::list& g, const py::object& buf, double lr, double momentum,
                       double dampening, double weight_decay, bool nesterov, bool first_step) {
    const SgdConfig c{lr, momentum, dampening, weight_decay, nesterov, first_step};
    by_dtype(p, [&](auto t) { sgd_typed<decltype(t)>(p, g, buf, c); });
  });
  m.def("adam_step", [](const py::list& p, const py::list& g, const py::list& m1, const py::list& m2,
                        const py::object& mx, double lr, double beta1, double beta2, double eps, double weight_decay,
                        bool decoupled, bool amsgrad, long long step) {
    const AdamConfig c{lr, beta1, beta2, eps, weight_decay, decoupled, amsgrad, step};
    by_dtype(p, [&](auto t) { adam_typed<decltype(t)>(p, g, m1, m2, mx, c); });
  });
  m.def("rmsprop_step", [](const py::list& p, const py::list& g, const py::list& sq, const py::object& ga,
                           const py::object& buf, double lr, double alpha, double eps, double weight_decay,
                           double momentum, bool centered) {
    const RmspropConfig c{lr, alpha, eps, weight_decay, momentum, centered};
    by_dtype(p, [&](auto t) { rmsprop_typed<decltype(t)>(p, g, sq, ga, buf, c); });
  });
  m.def("adagrad_step", [](const py::list& p, const py::list& g, const py::list& sum, double lr, double lr_decay,
                           double weight_decay, double eps, long long step) {
    const AdagradConfig c{lr, lr_decay, weight_decay, eps, step};
    by_dtype(p, [&](auto t) { adagrad_typed<decltype(t)>(p, g, sum, c); });
  });
  m.def("clip_grad_norm", [](const py::list& g, double max_norm, bool infinity) {
    return by_dtype(g, [&](auto t) { return clip_norm_typed<decltype(t)>(g, max_norm, infinity); });
  }, "Scales the gradients so their joint norm is at most max_norm; returns the norm before.");
  m.def("clip_grad_value", [](const py::list& g, double limit) {
    return by_dtype(g, [&](auto t) { return clip_value_typed<decltype(t)>(g, limit); });
  }, "Clamps every gradient element to [-limit, limit]; returns the joint 2-norm before.");
  m.def("grad_norm", [](const py::list& g, bool infinity) {
    return by_dtype(g, [&](auto t) { return norm_typed<decltype(t)>(g, infinity); });
  }, "The joint norm (2 or infinity) of a list of arrays.");
}

}  // namespace lstm_native
