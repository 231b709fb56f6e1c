// The Python face of the C++ core: the only file that includes pybind11.
//
// Each function checks every array it is handed (dtype, C order, shape, finite values)
// and raises ValueError/TypeError naming the argument, then releases the GIL for the
// computation. The Python package checks first with friendlier messages; these checks
// are what keeps a wrong call from crashing the process.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cmath>
#include <cstdint>
#include <type_traits>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "gemm.h"
#include "kernels/conv1d.h"
#include "qgemm.h"
#include "quantized_recurrent.h"
#include "optim.h"
#include "recurrent_instances.h"
#include "step_loop.h"
#include "threads.h"

#ifndef LSTM_NATIVE_MODULE
#define LSTM_NATIVE_MODULE _core
#endif
#ifndef LSTM_NATIVE_ISA
#define LSTM_NATIVE_ISA "native"
#endif

namespace py = pybind11;
using namespace lstm_native;

namespace {

std::string shape_text(const std::vector<Index>& shape) {
  std::ostringstream os;
  os << "(";
  for (size_t i = 0; i < shape.size(); ++i) os << (i ? ", " : "") << (shape[i] < 0 ? std::string("*") : std::to_string(shape[i]));
  os << (shape.size() == 1 ? ",)" : ")");
  return os.str();
}

template <class T>
const char* dtype_name() { return sizeof(T) == 4 ? "float32" : "float64"; }

template <class T>
bool has_dtype(const py::array& a) {
  const char kind = std::is_floating_point_v<T> ? 'f' : std::is_signed_v<T> ? 'i' : 'u';
  return a.dtype().kind() == kind && a.dtype().itemsize() == static_cast<py::ssize_t>(sizeof(T));
}

template <class T>
const char* dtype_label() {
  if constexpr (std::is_floating_point_v<T>) return dtype_name<T>();
  else if constexpr (std::is_same_v<T, int8_t>) return "int8";
  else if constexpr (std::is_same_v<T, uint8_t>) return "uint8";
  else if constexpr (std::is_same_v<T, int32_t>) return "int32";
  else return "int64";
}

// The argument itself (never a copy, so results written into it stay), after checking
// it is a NumPy array of dtype T in C order with the expected shape (-1: any size).
template <class T>
py::array checked(const py::handle& obj, const char* name, const std::vector<Index>& shape) {
  if (!py::isinstance<py::array>(obj))
    throw py::type_error(std::string(name) + " must be a NumPy array of " + dtype_label<T>());
  py::array arr = py::reinterpret_borrow<py::array>(obj);
  if (!has_dtype<T>(arr))
    throw py::type_error(std::string(name) + " must have dtype " + dtype_label<T>() + ", got " +
                         py::str(arr.dtype()).cast<std::string>());
  if (!(arr.flags() & py::array::c_style))
    throw py::value_error(std::string(name) + " must be C-contiguous (use numpy.ascontiguousarray)");
  bool ok = arr.ndim() == static_cast<py::ssize_t>(shape.size());
  for (size_t i = 0; ok && i < shape.size(); ++i) ok = shape[i] < 0 || arr.shape(i) == shape[i];
  if (!ok) {
    std::vector<Index> got(arr.shape(), arr.shape() + arr.ndim());
    throw py::value_error(std::string(name) + " must have shape " + shape_text(shape) + ", got " + shape_text(got));
  }
  return arr;
}

template <class T>
const T* data_of(const py::array& a) { return static_cast<const T*>(a.data()); }

template <class T>
T* output_of(py::array& a, const char* name) {
  if (!a.writeable()) throw py::value_error(std::string(name) + " is read-only");
  return static_cast<T*>(a.mutable_data());
}

// NaN or infinity where a finite number is needed: Python's NonFiniteError (a ValueError).
struct NonFiniteInput : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

template <class T>
bool all_finite(const T* p, Index n) {
  bool finite = true;
  run_team(threads_for(double(n), 1e6), [&](int id, int size) {
    Index b, e;
    share(n, id, size, &b, &e);
    bool mine = true;
    for (Index i = b; i < e; ++i) mine &= std::isfinite(p[i]);
    if (!mine) {
#pragma omp atomic write
      finite = false;
    }
  });
  return finite;
}

template <class T>
void require_finite(const py::array& a, const char* name) {
  const T* p = data_of<T>(a);
  const Index n = a.size();
  bool ok;
  {
    py::gil_scoped_release release;
    ok = all_finite(p, n);
  }
  if (!ok) throw NonFiniteInput(std::string(name) + " contains NaN or infinity");
}

// An optional array argument (None -> null): checked, finite, and kept alive in `keep`.
template <class T>
const T* optional_input(const py::object& obj, const char* name, const std::vector<Index>& shape,
                        std::vector<py::array>& keep) {
  if (obj.is_none()) return nullptr;
  py::array a = checked<T>(obj, name, shape);
  require_finite<T>(a, name);
  keep.push_back(a);
  return data_of<T>(a);
}

// Holds a layer's workspace for whichever dtype it runs in.
struct Workspace {
  std::unique_ptr<RecurrentWorkspace<float>> f32;
  std::unique_ptr<RecurrentWorkspace<double>> f64;
  RecurrentWorkspace<float>& get(float*) { if (!f32) f32.reset(new RecurrentWorkspace<float>); return *f32; }
  RecurrentWorkspace<double>& get(double*) { if (!f64) f64.reset(new RecurrentWorkspace<double>); return *f64; }
  bool ready() const { return (f32 && f32->ready_for_backward) || (f64 && f64->ready_for_backward); }
  void release() { f32.reset(); f64.reset(); }
};

struct CellInfo {
  int gates;
  bool cell_state;
};

CellInfo cell_info(const std::string& cell) {
  if (cell == "lstm") return {LstmCell::kGates, true};
  if (cell == "gru") return {GruCell::kGates, false};
  throw py::value_error("cell must be 'lstm' or 'gru', got '" + cell + "'");
}

template <class T>
py::tuple forward_typed(const std::string& cell, const py::array& x_obj, bool batch_first, const py::object& lengths_obj,
                        const py::list& weights, const py::object& h0_obj, const py::object& c0_obj, Workspace& workspace,
                        bool keep_for_backward) {
  const CellInfo info = cell_info(cell);
  auto x = checked<T>(x_obj, "x", {-1, -1, -1});
  const Index T_ = batch_first ? x.shape(1) : x.shape(0), B = batch_first ? x.shape(0) : x.shape(1), I = x.shape(2);
  const int D = static_cast<int>(weights.size());
  if (D != 1 && D != 2) throw py::value_error("weights must hold one tuple per direction (1 or 2)");
  if (B == 0) throw py::value_error("x: the batch is empty");
  if (T_ == 0) throw py::value_error("x: the sequences have no time steps");
  if (I == 0) throw py::value_error("x: input size is 0");
  require_finite<T>(x, "x");

  ForwardArgs<T> args;
  std::vector<py::array> keep;  // keeps every checked array alive while the GIL is released
  Index H = -1;
  for (int d = 0; d < D; ++d) {
    py::tuple w = weights[d].cast<py::tuple>();
    if (w.size() != 4) throw py::value_error("each direction's weights are (w_ih, w_hh, b_ih, b_hh)");
    auto w_hh = checked<T>(w[1], "weight_hh", {-1, -1});
    if (H < 0) H = w_hh.shape(1);
    const Index GH = info.gates * H;
    if (H == 0) throw py::value_error("hidden size is 0");
    w_hh = checked<T>(w[1], "weight_hh", {GH, H});
    auto w_ih = checked<T>(w[0], "weight_ih", {GH, I});
    keep.push_back(w_ih);
    keep.push_back(w_hh);
    args.weights[d].w_ih = data_of<T>(w_ih);
    args.weights[d].w_hh = data_of<T>(w_hh);
    if (!w[2].is_none()) { auto b = checked<T>(w[2], "bias_ih", {GH}); keep.push_back(b); args.weights[d].b_ih = data_of<T>(b); }
    if (!w[3].is_none()) { auto b = checked<T>(w[3], "bias_hh", {GH}); keep.push_back(b); args.weights[d].b_hh = data_of<T>(b); }
  }
  args.shape = LayerShape{SequenceShape{T_, B, batch_first}, I, H, D};
  args.x = data_of<T>(x);

  py::array lengths;
  if (!lengths_obj.is_none()) {
    lengths = checked<std::int64_t>(lengths_obj, "lengths", {B});
    const std::int64_t* l = data_of<std::int64_t>(lengths);
    for (Index b = 0; b < B; ++b)
      if (l[b] < 0 || l[b] > T_)
        throw py::value_error("lengths[" + std::to_string(b) + "] = " + std::to_string(l[b]) +
                              " is outside [0, " + std::to_string(T_) + "]");
    args.lengths = l;
  }
  if (!c0_obj.is_none() && !info.cell_state) throw py::value_error("c0 is only for LSTM");
  args.h0 = optional_input<T>(h0_obj, "h0", {D, B, H}, keep);
  args.c0 = optional_input<T>(c0_obj, "c0", {D, B, H}, keep);

  std::vector<py::ssize_t> out_shape = batch_first ? std::vector<py::ssize_t>{B, T_, D * H}
                                                   : std::vector<py::ssize_t>{T_, B, D * H};
  py::array_t<T> out(out_shape), h_n({Index(D), B, H});
  py::object c_n = py::none();
  args.out = out.mutable_data();
  args.h_n = h_n.mutable_data();
  if (info.cell_state) {
    py::array_t<T> c(std::vector<py::ssize_t>{D, B, H});
    args.c_n = c.mutable_data();
    c_n = c;
  }
  auto& ws = workspace.get(static_cast<T*>(nullptr));
  {
    py::gil_scoped_release release;
    if (info.cell_state) recurrent_forward<LstmCell, T>(args, ws, keep_for_backward);
    else recurrent_forward<GruCell, T>(args, ws, keep_for_backward);
  }
  return py::make_tuple(out, h_n, c_n);
}

// One step of a unidirectional layer: h (and c) updated in place.
template <class T>
void step_typed(const std::string& cell, const py::array& x_obj, const py::tuple& w, const py::object& h_obj,
                const py::object& c_obj) {
  const CellInfo info = cell_info(cell);
  py::array x = checked<T>(x_obj, "x_t", {-1, -1});
  const Index B = x.shape(0), I = x.shape(1);
  if (B == 0) throw py::value_error("x_t: the batch is empty");
  require_finite<T>(x, "x_t");
  if (w.size() != 4) throw py::value_error("weights are (w_ih, w_hh, b_ih, b_hh)");
  py::array w_hh = checked<T>(w[1], "weight_hh", {-1, -1});
  const Index H = w_hh.shape(1), GH = info.gates * H;
  if (H == 0) throw py::value_error("hidden size is 0");
  w_hh = checked<T>(w[1], "weight_hh", {GH, H});
  py::array w_ih = checked<T>(w[0], "weight_ih", {GH, I});
  StepArgs<T> args;
  std::vector<py::array> keep{x, w_hh, w_ih};
  args.batch = B, args.input = I, args.hidden = H;
  args.x = data_of<T>(x);
  args.weights.w_ih = data_of<T>(w_ih);
  args.weights.w_hh = data_of<T>(w_hh);
  if (!w[2].is_none()) { auto b = checked<T>(w[2], "bias_ih", {GH}); keep.push_back(b); args.weights.b_ih = data_of<T>(b); }
  if (!w[3].is_none()) { auto b = checked<T>(w[3], "bias_hh", {GH}); keep.push_back(b); args.weights.b_hh = data_of<T>(b); }
  py::array h = checked<T>(h_obj, "h", {B, H});
  require_finite<T>(h, "h0");  // the state the step starts from: NaN in it gave NaN out, unreported
  args.h = output_of<T>(h, "h");
  py::array c;
  if (info.cell_state) {
    c = checked<T>(c_obj, "c", {B, H});
    require_finite<T>(c, "c0");
    args.c = output_of<T>(c, "c");
  }
  // Per OS thread, not per layer: streams on one shared model may step from several threads
  // at once (each with its own state), and a stream of steps still allocates nothing.
  thread_local StepScratch<T> scratch;
  py::gil_scoped_release release;
  if (info.cell_state) recurrent_step<LstmCell, T>(args, scratch);
  else recurrent_step<GruCell, T>(args, scratch);
}

void recurrent_step_py(const std::string& cell, const py::object& x, const py::tuple& weights, const py::object& h,
                       const py::object& c) {
  if (!py::isinstance<py::array>(x)) throw py::type_error("x_t must be a NumPy array");
  py::array arr = py::reinterpret_borrow<py::array>(x);
  if (has_dtype<double>(arr)) step_typed<double>(cell, arr, weights, h, c);
  else step_typed<float>(cell, arr, weights, h, c);
}

py::tuple recurrent_forward_py(const std::string& cell, const py::object& x, bool batch_first, const py::object& lengths,
                               const py::list& weights, const py::object& h0, const py::object& c0, Workspace& workspace,
                               bool keep_for_backward) {
  if (!py::isinstance<py::array>(x)) throw py::type_error("x must be a NumPy array");
  py::array arr = py::reinterpret_borrow<py::array>(x);
  if (has_dtype<double>(arr))
    return forward_typed<double>(cell, arr, batch_first, lengths, weights, h0, c0, workspace, keep_for_backward);
  return forward_typed<float>(cell, arr, batch_first, lengths, weights, h0, c0, workspace, keep_for_backward);
}

template <class T>
py::tuple backward_typed(const std::string& cell, Workspace& workspace, const py::array& x_obj, const py::object& d_out_obj,
                         const py::object& dh_n_obj, const py::object& dc_n_obj, const py::list& grads, bool need_dx,
                         const py::object& d_last_obj) {
  const CellInfo info = cell_info(cell);
  auto& ws = workspace.get(static_cast<T*>(nullptr));
  if (!ws.ready_for_backward)
    throw py::value_error("backward needs a forward first (each forward's results serve one backward)");
  const LayerShape& s = ws.shape;
  const Index T_ = s.sequence.steps, B = s.sequence.batch, I = s.input, H = s.hidden;
  const int D = s.directions;
  const Index GH = info.gates * H;
  const std::vector<Index> seq = s.sequence.batch_first ? std::vector<Index>{B, T_} : std::vector<Index>{T_, B};
  auto x = checked<T>(x_obj, "x", {seq[0], seq[1], I});
  BackwardArgs<T> args;
  std::vector<py::array> keep;
  args.x = data_of<T>(x);
  if (!dc_n_obj.is_none() && !info.cell_state) throw py::value_error("dc_n is only for LSTM");
  args.d_out = optional_input<T>(d_out_obj, "dout", {seq[0], seq[1], D * H}, keep);
  args.d_last = optional_input<T>(d_last_obj, "dout_last", {B, D * H}, keep);
  args.dh_n = optional_input<T>(dh_n_obj, "dh_n", {D, B, H}, keep);
  args.dc_n = optional_input<T>(dc_n_obj, "dc_n", {D, B, H}, keep);
  if (static_cast<int>(grads.size()) != D) throw py::value_error("grads must hold one tuple per direction");
  for (int d = 0; d < D; ++d) {
    py::tuple g = grads[d].cast<py::tuple>();
    if (g.size() != 4) throw py::value_error("each direction's grads are (w_ih, w_hh, b_ih, b_hh)");
    auto g_ih = checked<T>(g[0], "grad weight_ih", {GH, I});
    auto g_hh = checked<T>(g[1], "grad weight_hh", {GH, H});
    keep.push_back(g_ih);
    keep.push_back(g_hh);
    args.grads[d].w_ih = output_of<T>(g_ih, "grads");
    args.grads[d].w_hh = output_of<T>(g_hh, "grads");
    if (!g[2].is_none()) { auto b = checked<T>(g[2], "grad bias_ih", {GH}); keep.push_back(b); args.grads[d].b_ih = output_of<T>(b, "grads"); }
    if (!g[3].is_none()) { auto b = checked<T>(g[3], "grad bias_hh", {GH}); keep.push_back(b); args.grads[d].b_hh = output_of<T>(b, "grads"); }
  }
  py::object dx = py::none();
  if (need_dx) {
    py::array_t<T> a(std::vector<py::ssize_t>{seq[0], seq[1], I});
    args.dx = a.mutable_data();
    dx = a;
  }
  py::array_t<T> dh0(std::vector<py::ssize_t>{D, B, H});
  args.dh0 = dh0.mutable_data();
  py::object dc0 = py::none();
  if (info.cell_state) {
    py::array_t<T> a(std::vector<py::ssize_t>{D, B, H});
    args.dc0 = a.mutable_data();
    dc0 = a;
  }
  {
    py::gil_scoped_release release;
    if (info.cell_state) recurrent_backward<LstmCell, T>(args, ws);
    else recurrent_backward<GruCell, T>(args, ws);
  }
  return py::make_tuple(dx, dh0, dc0);
}

py::tuple recurrent_backward_py(const std::string& cell, Workspace& workspace, const py::object& x, const py::object& d_out,
                                const py::object& dh_n, const py::object& dc_n, const py::list& grads, bool need_dx,
                                const py::object& d_last) {
  if (!py::isinstance<py::array>(x)) throw py::type_error("x must be a NumPy array");
  py::array arr = py::reinterpret_borrow<py::array>(x);
  if (has_dtype<double>(arr))
    return backward_typed<double>(cell, workspace, arr, d_out, dh_n, dc_n, grads, need_dx, d_last);
  return backward_typed<float>(cell, workspace, arr, d_out, dh_n, dc_n, grads, need_dx, d_last);
}

// ---------------------------------------------------------------------------------------
// Optimizers and clipping: lists of tensors, updated in place.

// Every array in `list` checked (dtype T, C order, writeable, and the shape of the
// matching entry of `like` when given).
template <class T>
TensorList<T> tensor_list(const py::list& list, const char* name, const TensorList<T>* like = nullptr,
                          std::vector<py::array>* keep = nullptr) {
  TensorList<T> out;
  if (like && list.size() != like->data.size())
    throw py::value_error(std::string(name) + " must hold one array per parameter");
  for (size_t i = 0; i < list.size(); ++i) {
    const std::string item = std::string(name) + "[" + std::to_string(i) + "]";
    py::array a = checked<T>(list[i], item.c_str(), std::vector<Index>(py::array(list[i]).ndim(), -1));
    if (like && a.size() != like->size[i]) throw py::value_error(item + " does not match its parameter's size");
    out.data.push_back(output_of<T>(a, item.c_str()));
    out.size.push_back(a.size());
    if (keep) keep->push_back(a);
  }
  return out;
}

bool is_float64_list(const py::list& list) {
  return list.size() > 0 && py::isinstance<py::array>(list[0]) && has_dtype<double>(py::array(list[0]));
}

template <class T>
struct OptimizerCall {
  std::vector<py::array> keep;
  TensorList<T> params, grads;
  OptimizerCall(const py::list& p, const py::list& g) {
    params = tensor_list<T>(p, "params", nullptr, &keep);
    grads = tensor_list<T>(g, "grads", &params, &keep);
  }
  // A state list, or an empty one when the update does not use it.
  TensorList<T> state(const py::object& list, const char* name, bool used) {
    if (!used) return {};
    if (list.is_none()) throw py::value_error(std::string(name) + " is needed by this configuration");
    return tensor_list<T>(list.cast<py::list>(), name, &params, &keep);
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
  auto g = tensor_list<T>(grads, "grads", nullptr, &keep);
  py::gil_scoped_release release;
  const double norm = total_norm<T>(g, infinity);
  const double coef = max_norm / (norm + 1e-6);
  if (coef < 1.0) scale_all<T>(g, coef);  // torch multiplies by min(coef, 1): the same
  return norm;
}

template <class T>
double clip_value_typed(const py::list& grads, double limit) {
  std::vector<py::array> keep;
  auto g = tensor_list<T>(grads, "grads", nullptr, &keep);
  py::gil_scoped_release release;
  const double norm = total_norm<T>(g, false);
  clamp_all<T>(g, limit);
  return norm;
}

template <class T>
double norm_typed(const py::list& grads, bool infinity) {
  std::vector<py::array> keep;
  auto g = tensor_list<T>(grads, "grads", nullptr, &keep);
  py::gil_scoped_release release;
  return total_norm<T>(g, infinity);
}

// ---------------------------------------------------------------------------------------
// matmul: C (+)= op(A) op(B) for 2-D operands or batches of them, on the kernels' pool.

template <class T>
py::array matmul_typed(const py::array& a_obj, const py::object& b_obj, bool trans_a, bool trans_b,
                       const py::object& out_obj, bool accumulate) {
  py::array a = checked<T>(a_obj, "a", std::vector<Index>(a_obj.ndim(), -1));
  py::array b = checked<T>(b_obj, "b", std::vector<Index>(py::array(b_obj).ndim(), -1));
  if (a.ndim() < 2 || a.ndim() > 3 || b.ndim() < 2 || b.ndim() > 3)
    throw py::value_error("matmul takes 2-D or 3-D (batched) arrays");
  const Index batch = a.ndim() == 3 ? a.shape(0) : (b.ndim() == 3 ? b.shape(0) : 1);
  if (a.ndim() == 3 && b.ndim() == 3 && b.shape(0) != batch) throw py::value_error("a and b have different batch sizes");
  if (a.ndim() == 2 && b.ndim() == 3) throw py::value_error("a 3-D b needs a 3-D a");
  const Index ar = a.shape(a.ndim() - 2), ac = a.shape(a.ndim() - 1);
  const Index br = b.shape(b.ndim() - 2), bc = b.shape(b.ndim() - 1);
  const Index m = trans_a ? ac : ar, k = trans_a ? ar : ac, kb = trans_b ? bc : br, n = trans_b ? br : bc;
  if (k != kb)
    throw py::value_error("matmul: inner sizes differ (" + std::to_string(k) + " vs " + std::to_string(kb) + ")");
  std::vector<Index> out_shape = a.ndim() == 3 ? std::vector<Index>{batch, m, n} : std::vector<Index>{m, n};
  py::array out;
  if (out_obj.is_none()) {
    if (accumulate) throw py::value_error("accumulate needs out");
    out = py::array_t<T>(std::vector<py::ssize_t>(out_shape.begin(), out_shape.end()));
  } else {
    out = checked<T>(out_obj, "out", out_shape);
  }
  const T* pa = data_of<T>(a);
  const T* pb = data_of<T>(b);
  T* pc = output_of<T>(out, "out");
  const Index a_step = a.ndim() == 3 ? ar * ac : 0, b_step = b.ndim() == 3 ? br * bc : 0, c_step = m * n;
  const T beta = accumulate ? T(1) : T(0);
  {
    py::gil_scoped_release release;
    if (batch == 1) {
      gemm_parallel<T>(trans_a, trans_b, m, n, k, T(1), pa, ac, pb, bc, beta, pc, n);
    } else {
      run_team(threads_for(2.0 * batch * m * n * k, 4e6), [&](int id, int team) {
        Index b0, b1;
        share(batch, id, team, &b0, &b1);
        for (Index i = b0; i < b1; ++i)
          gemm<T>(trans_a, trans_b, m, n, k, T(1), pa + i * a_step, ac, pb + i * b_step, bc, beta, pc + i * c_step, n);
      });
    }
  }
  return out;
}

// Both products of one tile shape (sgemm::products_with_tile), starting from c's values.
py::tuple sgemm_products_with_tile_py(const std::string& tile, const py::object& a_in, const py::object& b_in,
                                      bool trans_a, bool trans_b, float alpha, float beta, const py::object& c_in,
                                      const py::object& bias_in, int parts) {
  py::array a = checked<float>(a_in, "a", {-1, -1}), b = checked<float>(b_in, "b", {-1, -1});
  const Index m = trans_a ? a.shape(1) : a.shape(0), k = trans_a ? a.shape(0) : a.shape(1);
  const Index n = trans_b ? b.shape(0) : b.shape(1);
  if ((trans_b ? b.shape(1) : b.shape(0)) != k) throw py::value_error("a and b: inner dimensions differ");
  py::array c_start = checked<float>(c_in, "c", {m, n});
  std::vector<py::array> keep;
  const float* bias = optional_input<float>(bias_in, "bias", {n}, keep);
  py::array_t<float> c({m, n}), c_packed({m, n});
  std::copy_n(data_of<float>(c_start), m * n, c.mutable_data());
  std::copy_n(data_of<float>(c_start), m * n, c_packed.mutable_data());
  sgemm::products_with_tile(tile, trans_a, trans_b, m, n, k, alpha, data_of<float>(a), a.shape(1), data_of<float>(b),
                            b.shape(1), beta, c.mutable_data(), c_packed.mutable_data(), bias, parts);
  return py::make_tuple(c, c_packed);
}

py::array matmul_py(const py::object& a, const py::object& b, bool trans_a, bool trans_b, const py::object& out,
                    bool accumulate) {
  if (!py::isinstance<py::array>(a)) throw py::type_error("a must be a NumPy array");
  py::array arr = py::reinterpret_borrow<py::array>(a);
  if (has_dtype<double>(arr)) return matmul_typed<double>(arr, b, trans_a, trans_b, out, accumulate);
  return matmul_typed<float>(arr, b, trans_a, trans_b, out, accumulate);
}

// -- Conv1d ------------------------------------------------------------------------------
template <class T>
Conv1dShape conv1d_shape(const py::array& x, const py::array& weight, Index stride, Index padding, Index dilation) {
  if (stride < 1) throw py::value_error("stride must be >= 1");
  if (padding < 0) throw py::value_error("padding must be >= 0");
  if (dilation < 1) throw py::value_error("dilation must be >= 1");
  if (x.ndim() != 3) throw py::value_error("x must be 3-D (batch, time, in_channels)");
  if (weight.ndim() != 3) throw py::value_error("weight must be 3-D (out_channels, in_channels, kernel_size)");
  Conv1dShape s{x.shape(0), x.shape(1), x.shape(2), weight.shape(0), weight.shape(2), stride, padding, dilation};
  if (weight.shape(1) != s.in_channels)
    throw py::value_error("x has " + std::to_string(s.in_channels) + " channels, weight expects " +
                          std::to_string(weight.shape(1)));
  if (s.out_steps() < 1)
    throw py::value_error("kernel_size " + std::to_string(s.kernel) + " with dilation " + std::to_string(dilation) +
                          " reaches past the padded sequence of " + std::to_string(s.steps + 2 * padding) + " steps");
  return s;
}

template <class T>
py::array conv1d_forward_typed(const py::array& x_in, const py::object& weight_in, const py::object& bias_in,
                               Index stride, Index padding, Index dilation) {
  py::array x = checked<T>(x_in, "x", {-1, -1, -1});
  py::array weight = checked<T>(weight_in, "weight", {-1, -1, -1});
  const Conv1dShape s = conv1d_shape<T>(x, weight, stride, padding, dilation);
  require_finite<T>(x, "x");
  std::vector<py::array> keep;
  const T* bias = optional_input<T>(bias_in, "bias", {s.out_channels}, keep);
  py::array_t<T> y({s.batch, s.out_steps(), s.out_channels});
  T* py_ = y.mutable_data();
  {
    py::gil_scoped_release release;
    std::vector<T> cols;
    conv1d_forward(s, data_of<T>(x), data_of<T>(weight), bias, py_, cols);
  }
  return y;
}

template <class T>
py::object conv1d_backward_typed(const py::array& x_in, const py::object& weight_in, const py::object& dy_in,
                                 Index stride, Index padding, Index dilation, const py::object& dweight_in,
                                 const py::object& dbias_in, bool need_input_grad) {
  py::array x = checked<T>(x_in, "x", {-1, -1, -1});
  py::array weight = checked<T>(weight_in, "weight", {-1, -1, -1});
  const Conv1dShape s = conv1d_shape<T>(x, weight, stride, padding, dilation);
  py::array dy = checked<T>(dy_in, "grad", {s.batch, s.out_steps(), s.out_channels});
  require_finite<T>(dy, "grad");
  py::array dweight = checked<T>(dweight_in, "weight.grad", {s.out_channels, s.in_channels, s.kernel});
  T* dw = output_of<T>(dweight, "weight.grad");
  T* db = nullptr;
  py::array dbias;
  if (!dbias_in.is_none()) {
    dbias = checked<T>(dbias_in, "bias.grad", {s.out_channels});
    db = output_of<T>(dbias, "bias.grad");
  }
  py::array_t<T> dx;
  T* pdx = nullptr;
  if (need_input_grad) {
    dx = py::array_t<T>({s.batch, s.steps, s.in_channels});
    pdx = dx.mutable_data();
  }
  {
    py::gil_scoped_release release;
    std::vector<T> cols;
    conv1d_backward(s, data_of<T>(x), data_of<T>(weight), data_of<T>(dy), dw, db, pdx, cols);
  }
  if (!need_input_grad) return py::none();
  return dx;
}

py::array conv1d_forward_py(const py::object& x, const py::object& weight, const py::object& bias, Index stride,
                            Index padding, Index dilation) {
  if (!py::isinstance<py::array>(x)) throw py::type_error("x must be a NumPy array");
  py::array arr = py::reinterpret_borrow<py::array>(x);
  if (has_dtype<double>(arr)) return conv1d_forward_typed<double>(arr, weight, bias, stride, padding, dilation);
  return conv1d_forward_typed<float>(arr, weight, bias, stride, padding, dilation);
}

py::object conv1d_backward_py(const py::object& x, const py::object& weight, const py::object& dy, Index stride,
                              Index padding, Index dilation, const py::object& dweight, const py::object& dbias,
                              bool need_input_grad) {
  if (!py::isinstance<py::array>(x)) throw py::type_error("x must be a NumPy array");
  py::array arr = py::reinterpret_borrow<py::array>(x);
  if (has_dtype<double>(arr))
    return conv1d_backward_typed<double>(arr, weight, dy, stride, padding, dilation, dweight, dbias, need_input_grad);
  return conv1d_backward_typed<float>(arr, weight, dy, stride, padding, dilation, dweight, dbias, need_input_grad);
}

// -- int8 dynamic quantisation ----------------------------------------------------------
py::tuple quantize_weights_py(const py::object& w_in) {
  py::array w = checked<float>(w_in, "weight", {-1, -1});
  require_finite<float>(w, "weight");
  const Index n = w.shape(0), k = w.shape(1), kp = qgemm::padded_depth(k);
  py::array_t<int8_t> q({n, kp});
  py::array_t<float> scale(n);
  py::array_t<int32_t> row_sum(n);
  {
    py::gil_scoped_release release;
    qgemm::quantize_weights(data_of<float>(w), n, k, k, q.mutable_data(), scale.mutable_data(), row_sum.mutable_data());
  }
  return py::make_tuple(q, scale, row_sum);
}

py::tuple quantize_activations_py(const py::object& x_in) {
  py::array x = checked<float>(x_in, "x", {-1, -1});
  require_finite<float>(x, "x");
  const Index m = x.shape(0), k = x.shape(1), kp = qgemm::padded_depth(k);
  py::array_t<uint8_t> q({m, kp});
  py::array_t<float> scale(m);
  py::array_t<int32_t> zero(m);
  {
    py::gil_scoped_release release;
    qgemm::quantize_activations(data_of<float>(x), m, k, k, q.mutable_data(), scale.mutable_data(), zero.mutable_data());
  }
  return py::make_tuple(q, scale, zero);
}

py::array gemm_u8s8_py(const py::object& x_in, const py::object& w_in) {
  py::array x = checked<uint8_t>(x_in, "x_q", {-1, -1});
  const Index m = x.shape(0), kp = x.shape(1);
  if (kp % qgemm::kDepthStep) throw py::value_error("x_q's depth must be a multiple of 32 (use quantize_activations)");
  py::array w = checked<int8_t>(w_in, "w_q", {-1, kp});
  const Index n = w.shape(0);
  py::array_t<int32_t> c({m, n});
  {
    py::gil_scoped_release release;
    qgemm::gemm_u8s8(m, n, kp, static_cast<const uint8_t*>(x.data()), static_cast<const int8_t*>(w.data()),
                     c.mutable_data());
  }
  return c;
}

// y = x W^T + bias with W given quantised: x is quantised per row here, then the int8 GEMM.
py::array quantized_linear_py(const py::object& x_in, const py::object& w_in, const py::object& scale_in,
                              const py::object& row_sum_in, const py::object& bias_in, Index in_features,
                              const py::object& out_in, bool accumulate) {
  py::array x = checked<float>(x_in, "x", {-1, in_features});
  require_finite<float>(x, "x");
  const Index m = x.shape(0), kp = qgemm::padded_depth(in_features);
  py::array w = checked<int8_t>(w_in, "weight_q", {-1, kp});
  const Index n = w.shape(0);
  py::array scale = checked<float>(scale_in, "weight_scale", {n});
  py::array row_sum = checked<int32_t>(row_sum_in, "weight_row_sum", {n});
  std::vector<py::array> keep;
  const float* bias = optional_input<float>(bias_in, "bias", {n}, keep);
  py::array out = out_in.is_none() ? py::array(py::array_t<float>({m, n})) : checked<float>(out_in, "out", {m, n});
  float* po = output_of<float>(out, "out");
  {
    py::gil_scoped_release release;
    std::vector<uint8_t> x_q(static_cast<size_t>(m * kp));
    std::vector<float> x_scale(static_cast<size_t>(m));
    std::vector<int32_t> x_zero(static_cast<size_t>(m));
    qgemm::quantize_activations(data_of<float>(x), m, in_features, in_features, x_q.data(), x_scale.data(),
                                x_zero.data());
    qgemm::gemm_dequantize(m, n, kp, x_q.data(), x_scale.data(), x_zero.data(), static_cast<const int8_t*>(w.data()),
                           data_of<float>(scale), static_cast<const int32_t*>(row_sum.data()), bias, po, n,
                           accumulate);
  }
  return out;
}

// One direction of one quantised recurrent layer over the whole sequence, in one call:
// per step, h is quantised, multiplied by the int8 W_hh, and the cell runs on the result.
// gx: (T, B, G*H), or (B, T, G*H) when batch_first, = x W_ih^T + b_ih for every step (one
// int8 GEMM beforehand, in the caller's layout: no transposes); h, c: (B, H) initial states,
// updated in place to the final ones; returns out (T, B, H) or (B, T, H), zero past lengths.
py::array quantized_recurrent_py(const std::string& cell, const py::object& gx_in, const py::object& w_in,
                                 const py::object& scale_in, const py::object& row_sum_in, const py::object& bias_in,
                                 const py::object& h_in, const py::object& c_in, const py::object& lengths_in,
                                 bool reverse, bool batch_first) {
  if (cell != "lstm" && cell != "gru") throw py::value_error("cell must be 'lstm' or 'gru'");
  const bool lstm = cell == "lstm";
  const Index G = lstm ? 4 : 3;
  py::array h = checked<float>(h_in, "h", {-1, -1});
  const Index B = h.shape(0), H = h.shape(1), kp = qgemm::padded_depth(H);
  py::array gx = batch_first ? checked<float>(gx_in, "gx", {B, -1, G * H}) : checked<float>(gx_in, "gx", {-1, B, G * H});
  const Index T = gx.shape(batch_first ? 1 : 0);
  py::array w = checked<int8_t>(w_in, "weight_hh_q", {G * H, kp});
  py::array scale = checked<float>(scale_in, "weight_hh_scale", {G * H});
  py::array row_sum = checked<int32_t>(row_sum_in, "weight_hh_row_sum", {G * H});
  std::vector<py::array> keep;
  const float* bias = optional_input<float>(bias_in, "bias_hh", {G * H}, keep);
  float* pc = nullptr;
  py::array c;
  if (lstm) {
    c = checked<float>(c_in, "c", {B, H});
    pc = output_of<float>(c, "c");
  }
  std::vector<Index> lengths(static_cast<size_t>(B), T);
  if (!lengths_in.is_none()) {
    py::array l = checked<int64_t>(lengths_in, "lengths", {B});
    for (Index b = 0; b < B; ++b) {
      lengths[b] = data_of<int64_t>(l)[b];
      if (lengths[b] < 0 || lengths[b] > T) throw py::value_error("lengths must be in [0, T]");
    }
  }
  py::array_t<float> out(batch_first ? std::vector<py::ssize_t>{B, T, H} : std::vector<py::ssize_t>{T, B, H});
  QuantizedRecurrentArgs args;
  args.lstm = lstm;
  args.batch = B, args.steps = T, args.hidden = H;
  // Where step t of batch row b lives in gx (G*H floats) and out (H floats).
  args.gx = data_of<float>(gx);
  args.gx_row = batch_first ? T * G * H : G * H, args.gx_step = batch_first ? G * H : B * G * H;
  args.w_q = data_of<int8_t>(w), args.w_scale = data_of<float>(scale), args.w_row_sum = data_of<int32_t>(row_sum);
  args.bias = bias;
  args.h = output_of<float>(h, "h"), args.c = pc;
  args.lengths = lengths.data();
  args.reverse = reverse;
  args.out = out.mutable_data();
  args.out_row = batch_first ? T * H : H, args.out_step = batch_first ? H : B * H;
  {
    py::gil_scoped_release release;
    quantized_recurrent(args);
  }
  return out;
}

}  // namespace

PYBIND11_MODULE(LSTM_NATIVE_MODULE, m) {
  m.doc() = "lstm_native's compiled core (" LSTM_NATIVE_ISA " build)";
  m.attr("isa") = LSTM_NATIVE_ISA;
  py::register_exception<NonFiniteInput>(m, "NonFiniteError", PyExc_ValueError);
  m.def("get_num_threads", &get_num_threads, "Threads the kernels use.");
  m.def("set_num_threads", &set_num_threads, py::arg("n"), "Threads the kernels use; n <= 0 restores all cores.");
  m.def("get_grain", &get_grain);
  m.def("set_step_split", [](const std::string& mode) {
    if (mode == "auto") set_step_split_override(StepSplit::kAuto);
    else if (mode == "batch") set_step_split_override(StepSplit::kBatch);
    else if (mode == "units") set_step_split_override(StepSplit::kUnits);
    else throw py::value_error("mode must be 'auto', 'batch' or 'units'");
  }, py::arg("mode"), "How the step loop's team divides work (tests force each way; 'auto' by default).");
  m.def("set_grain", &set_grain, py::arg("scale"),
        "Scales the work each thread must have before another is used (0: always the full team; for tests).");

  py::class_<Workspace>(m, "RecurrentWorkspace", "Buffers a recurrent layer keeps from forward to backward.")
      .def(py::init<>())
      .def_property_readonly("ready_for_backward", &Workspace::ready)
      .def("release", &Workspace::release, "Frees the buffers.");

  m.def("recurrent_forward", &recurrent_forward_py, py::arg("cell"), py::arg("x"), py::arg("batch_first"),
        py::arg("lengths"), py::arg("weights"), py::arg("h0"), py::arg("c0"), py::arg("workspace"),
        py::arg("keep_for_backward"),
        "One recurrent layer (all directions) over a padded batch. Returns (out, h_n, c_n or None).");
  m.def("recurrent_step", &recurrent_step_py, py::arg("cell"), py::arg("x_t"), py::arg("weights"), py::arg("h"),
        py::arg("c"),
        "One time step of one direction of a layer: x_t (B, I); h (B, H) and, for LSTM, c updated in place.");
  m.def("recurrent_backward", &recurrent_backward_py, py::arg("cell"), py::arg("workspace"), py::arg("x"),
        py::arg("dout"), py::arg("dh_n"), py::arg("dc_n"), py::arg("grads"), py::arg("need_dx"),
        py::arg("dout_last") = py::none(),
        "Backpropagation through time for the workspace's last forward; parameter gradients accumulate into "
        "grads. dout_last (B, D*H) is a gradient at each sequence's last step only. Returns (dx or None, dh0, "
        "dc0 or None).");
  m.def("conv1d_forward", &conv1d_forward_py, py::arg("x"), py::arg("weight"), py::arg("bias"), py::arg("stride"),
        py::arg("padding"), py::arg("dilation"), "Conv1d over time on (B, T, C_in): one GEMM over all positions.");
  m.def("conv1d_backward", &conv1d_backward_py, py::arg("x"), py::arg("weight"), py::arg("grad"), py::arg("stride"),
        py::arg("padding"), py::arg("dilation"), py::arg("weight_grad"), py::arg("bias_grad"),
        py::arg("need_input_grad"), "Accumulates weight/bias gradients; returns dx (or None).");
  m.def("qgemm_kernel", [] { return std::string(qgemm::kernel_name()); },
        "The int8 product kernel in use: 'avx512-vnni', 'avx2' or 'portable'.");
  m.def("set_qgemm_vnni", &qgemm::set_vnni, py::arg("enabled"),
        "Turns the VNNI int8 kernel off or back on (for comparisons); returns whether the CPU has it.");
  m.def("quantize_weights", &quantize_weights_py, py::arg("weight"),
        "Symmetric per-row int8: (w_q (n, padded k), scale (n,), row_sum (n,)).");
  m.def("quantize_activations", &quantize_activations_py, py::arg("x"),
        "Asymmetric per-row 7-bit: (x_q uint8 (m, padded k), scale (m,), zero (m,)).");
  m.def("gemm_u8s8", &gemm_u8s8_py, py::arg("x_q"), py::arg("w_q"), "Exact int32 x_q w_q^T.");
  m.def("quantized_linear", &quantized_linear_py, py::arg("x"), py::arg("weight_q"), py::arg("weight_scale"),
        py::arg("weight_row_sum"), py::arg("bias"), py::arg("in_features"), py::arg("out") = py::none(),
        py::arg("accumulate") = false, "x W^T + bias with x quantised per row at run time and W int8.");
  m.def("quantized_recurrent", &quantized_recurrent_py, py::arg("cell"), py::arg("gx"), py::arg("weight_hh_q"),
        py::arg("weight_hh_scale"), py::arg("weight_hh_row_sum"), py::arg("bias_hh"), py::arg("h"), py::arg("c"),
        py::arg("lengths"), py::arg("reverse"), py::arg("batch_first") = false,
        "One direction of a quantised LSTM/GRU layer over the sequence.");
  m.def("matmul", &matmul_py, py::arg("a"), py::arg("b"), py::arg("trans_a") = false, py::arg("trans_b") = false,
        py::arg("out") = py::none(), py::arg("accumulate") = false,
        "op(a) @ op(b) for 2-D arrays or batches (3-D); written to out (added when accumulate).");

  m.def("sgemm_kernel", [] { return std::string(sgemm::kernel_name()); },
        "The float32 GEMM kernel in use (the first call times the candidates).");
  m.def("set_sgemm_tile", &sgemm::set_tile, py::arg("choice"),
        "'auto' (timed), 'wide' or 'narrow': forces the AVX-512 build's GEMM kernel, for comparisons.");
  m.def("sgemm_products_with_tile", &sgemm_products_with_tile_py, py::arg("tile"), py::arg("a"), py::arg("b"),
        py::arg("trans_a"), py::arg("trans_b"), py::arg("alpha"), py::arg("beta"), py::arg("c"), py::arg("bias"),
        py::arg("parts"),
        "Tests: (gemm, packed gemm with bias) through one tile shape, '16x14', '8x6' or '4x6', on any CPU.");

  m.def("sgd_step", [](const py::list& p, const py::list& g, const py::object& buf, double lr, double momentum,
                       double dampening, double weight_decay, bool nesterov, bool first_step) {
    const SgdConfig c{lr, momentum, dampening, weight_decay, nesterov, first_step};
    if (is_float64_list(p)) sgd_typed<double>(p, g, buf, c); else sgd_typed<float>(p, g, buf, c);
  });
  m.def("adam_step", [](const py::list& p, const py::list& g, const py::list& m1, const py::list& m2,
                        const py::object& mx, double lr, double beta1, double beta2, double eps, double weight_decay,
                        bool decoupled, bool amsgrad, long long step) {
    const AdamConfig c{lr, beta1, beta2, eps, weight_decay, decoupled, amsgrad, step};
    if (is_float64_list(p)) adam_typed<double>(p, g, m1, m2, mx, c); else adam_typed<float>(p, g, m1, m2, mx, c);
  });
  m.def("rmsprop_step", [](const py::list& p, const py::list& g, const py::list& sq, const py::object& ga,
                           const py::object& buf, double lr, double alpha, double eps, double weight_decay,
                           double momentum, bool centered) {
    const RmspropConfig c{lr, alpha, eps, weight_decay, momentum, centered};
    if (is_float64_list(p)) rmsprop_typed<double>(p, g, sq, ga, buf, c); else rmsprop_typed<float>(p, g, sq, ga, buf, c);
  });
  m.def("adagrad_step", [](const py::list& p, const py::list& g, const py::list& sum, double lr, double lr_decay,
                           double weight_decay, double eps, long long step) {
    const AdagradConfig c{lr, lr_decay, weight_decay, eps, step};
    if (is_float64_list(p)) adagrad_typed<double>(p, g, sum, c); else adagrad_typed<float>(p, g, sum, c);
  });
  m.def("clip_grad_norm", [](const py::list& g, double max_norm, bool infinity) {
    return is_float64_list(g) ? clip_norm_typed<double>(g, max_norm, infinity) : clip_norm_typed<float>(g, max_norm, infinity);
  }, "Scales the gradients so their joint norm is at most max_norm; returns the norm before.");
  m.def("clip_grad_value", [](const py::list& g, double limit) {
    return is_float64_list(g) ? clip_value_typed<double>(g, limit) : clip_value_typed<float>(g, limit);
  }, "Clamps every gradient element to [-limit, limit]; returns the joint 2-norm before.");
  m.def("grad_norm", [](const py::list& g, bool infinity) {
    return is_float64_list(g) ? norm_typed<double>(g, infinity) : norm_typed<float>(g, infinity);
  }, "The joint norm (2 or infinity) of a list of arrays.");
}
