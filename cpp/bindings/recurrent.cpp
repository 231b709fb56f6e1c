// The float recurrent layers (recurrent.h, recurrent_step.h): a whole layer forward and
// backward over a padded batch, one step for streaming, and the workspace a layer keeps
// between its forward and backward.
#include "bindings.h"
#include "recurrent_args.h"

#include "../recurrent_instances.h"

#include <memory>

namespace lstm_native {
namespace {

// Holds a layer's workspace for whichever dtype it runs in.
struct Workspace {
  std::unique_ptr<RecurrentWorkspace<float>> f32;
  std::unique_ptr<RecurrentWorkspace<double>> f64;

  template <class T>
  RecurrentWorkspace<T>& get() {
    std::unique_ptr<RecurrentWorkspace<T>>* ws;
    if constexpr (std::is_same_v<T, float>) ws = &f32; else ws = &f64;
    if (!*ws) ws->reset(new RecurrentWorkspace<T>);
    return **ws;
  }
  bool ready() const { return (f32 && f32->ready_for_backward) || (f64 && f64->ready_for_backward); }
  std::int64_t prepared_version() const {
    return f32 ? f32->prepared.version : (f64 ? f64->prepared.version : std::int64_t(-1));
  }
  void release() { f32.reset(); f64.reset(); }
};

template <class T>
py::tuple forward_typed(const std::string& cell, const py::object& x_obj, bool batch_first, const py::object& lengths_obj,
                        const py::list& weights, const py::object& h0_obj, const py::object& c0_obj, Workspace& workspace,
                        bool keep_for_backward, std::int64_t weights_version) {
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
  const Index H = hidden_size_of<T>(weights[0]);
  for (int d = 0; d < D; ++d) args.weights[d] = direction_params<DirectionWeights<T>>(weights[d], "", info, I, H, keep);
  args.shape = LayerShape{SequenceShape{T_, B, batch_first}, I, H, D};
  args.weights_version = weights_version;
  args.x = data_of<T>(x);
  args.lengths = lengths_of(lengths_obj, B, T_, keep);
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
  auto& ws = workspace.get<T>();
  {
    py::gil_scoped_release release;
    if (info.cell_state) recurrent_forward<LstmCell, T>(args, ws, keep_for_backward);
    else recurrent_forward<GruCell, T>(args, ws, keep_for_backward);
  }
  return py::make_tuple(out, h_n, c_n);
}

// One step of a unidirectional layer: h (and c) updated in place.
template <class T>
void step_typed(const std::string& cell, const py::object& x_obj, const py::tuple& w, const py::object& h_obj,
                const py::object& c_obj) {
  const CellInfo info = cell_info(cell);
  py::array x = checked<T>(x_obj, "x_t", {-1, -1});
  const Index B = x.shape(0), I = x.shape(1);
  if (B == 0) throw py::value_error("x_t: the batch is empty");
  require_finite<T>(x, "x_t");
  StepArgs<T> args;
  std::vector<py::array> keep{x};
  const Index H = hidden_size_of<T>(w);
  args.batch = B, args.input = I, args.hidden = H;
  args.x = data_of<T>(x);
  args.weights = direction_params<DirectionWeights<T>>(w, "", info, I, H, keep);
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

template <class T>
py::tuple backward_typed(const std::string& cell, Workspace& workspace, const py::object& x_obj, const py::object& d_out_obj,
                         const py::object& dh_n_obj, const py::object& dc_n_obj, const py::list& grads, bool need_dx,
                         const py::object& d_last_obj) {
  const CellInfo info = cell_info(cell);
  auto& ws = workspace.get<T>();
  if (!ws.ready_for_backward)
    throw py::value_error("backward needs a forward first (each forward's results serve one backward)");
  const LayerShape& s = ws.shape;
  const Index T_ = s.sequence.steps, B = s.sequence.batch, I = s.input, H = s.hidden;
  const int D = s.directions;
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
  for (int d = 0; d < D; ++d) args.grads[d] = direction_params<DirectionGrads<T>>(grads[d], "grad ", info, I, H, keep);
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

}  // namespace

void bind_recurrent(py::module_& m) {
  py::class_<Workspace>(m, "RecurrentWorkspace", "Buffers a recurrent layer keeps from forward to backward.")
      .def(py::init<>())
      .def_property_readonly("ready_for_backward", &Workspace::ready)
      .def_property_readonly("prepared_version", &Workspace::prepared_version,
                             "The weights' version whose preparation the next forward may reuse (-1: none).")
      .def("release", &Workspace::release, "Frees the buffers.");

  m.def("recurrent_forward",
        [](const std::string& cell, const py::object& x, bool batch_first, const py::object& lengths,
           const py::list& weights, const py::object& h0, const py::object& c0, Workspace& workspace,
           bool keep_for_backward, std::int64_t weights_version) {
          return by_dtype(x, [&](auto t) {
            return forward_typed<decltype(t)>(cell, x, batch_first, lengths, weights, h0, c0, workspace,
                                              keep_for_backward, weights_version);
          });
        },
        py::arg("cell"), py::arg("x"), py::arg("batch_first"), py::arg("lengths"), py::arg("weights"), py::arg("h0"),
        py::arg("c0"), py::arg("workspace"), py::arg("keep_for_backward"), py::arg("weights_version") = -1,
        "One recurrent layer (all directions) over a padded batch. Returns (out, h_n, c_n or None). "
        "weights_version >= 0 (one that changes whenever a weight may have) lets the workspace keep what it "
        "prepares from the weights for the next call with the same version.");
  m.def("recurrent_step",
        [](const std::string& cell, const py::object& x, const py::tuple& weights, const py::object& h,
           const py::object& c) {
          by_dtype(x, [&](auto t) { step_typed<decltype(t)>(cell, x, weights, h, c); });
        },
        py::arg("cell"), py::arg("x_t"), py::arg("weights"), py::arg("h"), py::arg("c"),
        "One time step of one direction of a layer: x_t (B, I); h (B, H) and, for LSTM, c updated in place.");
  m.def("recurrent_backward",
        [](const std::string& cell, Workspace& workspace, const py::object& x, const py::object& d_out,
           const py::object& dh_n, const py::object& dc_n, const py::list& grads, bool need_dx,
           const py::object& d_last) {
          return by_dtype(x, [&](auto t) {
            return backward_typed<decltype(t)>(cell, workspace, x, d_out, dh_n, dc_n, grads, need_dx, d_last);
          });
        },
        py::arg("cell"), py::arg("workspace"), py::arg("x"), py::arg("dout"), py::arg("dh_n"), py::arg("dc_n"),
        py::arg("grads"), py::arg("need_dx"), py::arg("dout_last") = py::none(),
        "Backpropagation through time for the workspace's last forward; parameter gradients accumulate into "
        "grads. dout_last (B, D*H) is a gradient at each sequence's last step only. Returns (dx or None, dh0, "
        "dc0 or None).");
}

}  // namespace lstm_native
