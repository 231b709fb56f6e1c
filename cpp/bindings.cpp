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

#include "recurrent_instances.h"
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
  const char kind = std::is_floating_point_v<T> ? 'f' : 'i';
  return a.dtype().kind() == kind && a.dtype().itemsize() == static_cast<py::ssize_t>(sizeof(T));
}

template <class T>
const char* dtype_label() { return std::is_floating_point_v<T> ? dtype_name<T>() : "int64"; }

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
  if (!ok) throw py::value_error(std::string(name) + " contains NaN or infinity");
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

py::tuple recurrent_forward_py(const std::string& cell, const py::object& x, bool batch_first, const py::object& lengths,
                               const py::list& weights, const py::object& h0, const py::object& c0, Workspace& workspace,
                               bool keep_for_backward) {
  if (!py::isinstance<py::array>(x)) throw py::type_error("x must be a NumPy array");
  py::array arr = py::reinterpret_borrow<py::array>(x);
  if (arr.dtype().is(py::dtype::of<double>()))
    return forward_typed<double>(cell, arr, batch_first, lengths, weights, h0, c0, workspace, keep_for_backward);
  return forward_typed<float>(cell, arr, batch_first, lengths, weights, h0, c0, workspace, keep_for_backward);
}

template <class T>
py::tuple backward_typed(const std::string& cell, Workspace& workspace, const py::array& x_obj, const py::object& d_out_obj,
                         const py::object& dh_n_obj, const py::object& dc_n_obj, const py::list& grads, bool need_dx) {
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
                                const py::object& dh_n, const py::object& dc_n, const py::list& grads, bool need_dx) {
  if (!py::isinstance<py::array>(x)) throw py::type_error("x must be a NumPy array");
  py::array arr = py::reinterpret_borrow<py::array>(x);
  if (arr.dtype().is(py::dtype::of<double>()))
    return backward_typed<double>(cell, workspace, arr, d_out, dh_n, dc_n, grads, need_dx);
  return backward_typed<float>(cell, workspace, arr, d_out, dh_n, dc_n, grads, need_dx);
}

}  // namespace

PYBIND11_MODULE(LSTM_NATIVE_MODULE, m) {
  m.doc() = "lstm_native's compiled core (" LSTM_NATIVE_ISA " build)";
  m.attr("isa") = LSTM_NATIVE_ISA;
  m.def("get_num_threads", &get_num_threads, "Threads the kernels use.");
  m.def("set_num_threads", &set_num_threads, py::arg("n"), "Threads the kernels use; n <= 0 restores all cores.");
  m.def("get_grain", &get_grain);
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
  m.def("recurrent_backward", &recurrent_backward_py, py::arg("cell"), py::arg("workspace"), py::arg("x"),
        py::arg("dout"), py::arg("dh_n"), py::arg("dc_n"), py::arg("grads"), py::arg("need_dx"),
        "Backpropagation through time for the workspace's last forward; parameter gradients accumulate into "
        "grads. Returns (dx or None, dh0, dc0 or None).");
}
