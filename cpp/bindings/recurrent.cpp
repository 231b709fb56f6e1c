// The float recurrent layers (recurrent.h, recurrent_step.h): a whole layer forward and
// backward over a padded batch, one step for streaming, and the workspace a layer keeps
// between its forward and backward.
//
// A direction's parameters come as one tuple in PyTorch's order: (w_ih (G*H, I),
// w_hh (G*H, S), b_ih (G*H,) or None, b_hh or None), then an LSTM's w_hr (S, H) when h is
// projected (S = proj_size < H; else S = H), then the cell's own arrays (layer norm's gains,
// kernels/cell_base.h). Gradients come as tuples of the same shape.
#include "bindings.h"
#include "recurrent_args.h"

#include "../recurrent_instances.h"

#include <cstdint>
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

// Calls f(Cell()) for the cell a layer names.
template <class F>
auto with_cell(const std::string& cell, F&& f) {
  if (cell == "lstm") return f(LstmCell());
  if (cell == "gru") return f(GruCell());
  if (cell == "gru_reset_before") return f(GruResetBeforeCell());
  if (cell == "rnn_tanh") return f(RnnTanhCell());
  if (cell == "rnn_relu") return f(RnnReluCell());
  if (cell == "ln_lstm") return f(LayerNormLstmCell());
  if (cell == "ln_gru") return f(LayerNormGruCell());
  throw py::value_error("cell must be 'lstm', 'gru', 'gru_reset_before', 'rnn_tanh', 'rnn_relu', 'ln_lstm' or "
                        "'ln_gru', got '" + cell + "'");
}

template <class Cell, class T>
py::tuple forward_typed(const py::object& x_obj, bool batch_first, const py::object& lengths_obj,
                        const py::list& weights, const py::object& h0_obj, const py::object& c0_obj,
                        Workspace& workspace, bool keep_for_backward, std::int64_t weights_version,
                        const py::object& mask_obj, const py::object& zoneout_mask_obj, double zoneout) {
  auto x = checked<T>(x_obj, "x", {-1, -1, -1});
  const Index T_ = batch_first ? x.shape(1) : x.shape(0), B = batch_first ? x.shape(0) : x.shape(1), I = x.shape(2);
  const int D = static_cast<int>(weights.size());
  if (D != 1 && D != 2) throw py::value_error("weights must hold one tuple per direction (1 or 2)");
  if (B == 0) throw py::value_error("x: the batch is empty");
  if (T_ == 0) throw py::value_error("x: the sequences have no time steps");
  if (I == 0) throw py::value_error("x: input size is 0");
  if (!(zoneout >= 0 && zoneout < 1)) throw py::value_error("zoneout must be in [0, 1)");
  require_finite<T>(x, "x");

  ForwardArgs<T> args;
  std::vector<py::array> keep;  // keeps every checked array alive while the GIL is released
  const DirectionSizes sizes = direction_sizes<Cell, T>(weights[0]);
  const Index H = sizes.hidden, S = sizes.state;
  for (int d = 0; d < D; ++d) args.weights[d] = direction_arrays<Cell, DirectionWeights<T>>(weights[d], "", I, sizes, keep);
  args.shape = LayerShape{SequenceShape{T_, B, batch_first}, I, H, D, sizes.projected ? S : 0};
  args.weights_version = weights_version;
  args.x = data_of<T>(x);
  args.lengths = lengths_of(lengths_obj, B, T_, keep);
  if (!c0_obj.is_none() && !Cell::kCellState) throw py::value_error(std::string("c0 is only for LSTM, not ") + Cell::kName);
  args.h0 = optional_input<T>(h0_obj, "h0", {D, B, S}, keep);
  args.c0 = optional_input<T>(c0_obj, "c0", {D, B, H}, keep);
  args.recurrent_mask = optional_input<T>(mask_obj, "recurrent_mask", {D, B, S}, keep);
  const std::vector<Index> seq = batch_first ? std::vector<Index>{B, T_} : std::vector<Index>{T_, B};
  if (!zoneout_mask_obj.is_none()) {
    py::array m = checked<std::uint8_t>(zoneout_mask_obj, "zoneout_mask", {seq[0], seq[1], D * S});
    keep.push_back(m);
    args.zoneout_mask = data_of<std::uint8_t>(m);
  }
  args.zoneout = zoneout;
  if (sizes.projected && (args.zoneout_mask || zoneout > 0))
    throw py::value_error("zoneout with a projection of h (proj_size) is not supported");

  py::array_t<T> out(std::vector<py::ssize_t>{seq[0], seq[1], D * S}), h_n({Index(D), B, S});
  py::object c_n = py::none();
  args.out = out.mutable_data();
  args.h_n = h_n.mutable_data();
  if (Cell::kCellState) {
    py::array_t<T> c(std::vector<py::ssize_t>{D, B, H});
    args.c_n = c.mutable_data();
    c_n = c;
  }
  auto& ws = workspace.get<T>();
  {
    py::gil_scoped_release release;
    recurrent_forward<Cell, T>(args, ws, keep_for_backward);
  }
  return py::make_tuple(out, h_n, c_n);
}

// One step of a unidirectional layer: h (and c) updated in place.
template <class Cell, class T>
void step_typed(const py::object& x_obj, const py::tuple& w, const py::object& h_obj, const py::object& c_obj,
                double zoneout) {
  py::array x = checked<T>(x_obj, "x_t", {-1, -1});
  const Index B = x.shape(0), I = x.shape(1);
  if (B == 0) throw py::value_error("x_t: the batch is empty");
  if (!(zoneout >= 0 && zoneout < 1)) throw py::value_error("zoneout must be in [0, 1)");
  require_finite<T>(x, "x_t");
  StepArgs<T> args;
  std::vector<py::array> keep{x};
  const DirectionSizes sizes = direction_sizes<Cell, T>(w);
  args.batch = B, args.input = I, args.hidden = sizes.hidden, args.projection = sizes.projected ? sizes.state : 0;
  args.x = data_of<T>(x);
  args.weights = direction_arrays<Cell, DirectionWeights<T>>(w, "", I, sizes, keep);
  args.zoneout = zoneout;
  py::array h = checked<T>(h_obj, "h", {B, sizes.state});
  require_finite<T>(h, "h0");  // the state the step starts from: NaN in it gave NaN out, unreported
  args.h = output_of<T>(h, "h");
  py::array c;
  if (Cell::kCellState) {
    c = checked<T>(c_obj, "c", {B, sizes.hidden});
    require_finite<T>(c, "c0");
    args.c = output_of<T>(c, "c");
  }
  // Per OS thread, not per layer: streams on one shared model may step from several threads
  // at once (each with its own state), and a stream of steps still allocates nothing.
  thread_local StepScratch<T> scratch;
  py::gil_scoped_release release;
  recurrent_step<Cell, T>(args, scratch);
}

template <class Cell, class T>
py::tuple backward_typed(Workspace& workspace, const py::object& x_obj, const py::object& d_out_obj,
                         const py::object& dh_n_obj, const py::object& dc_n_obj, const py::list& grads, bool need_dx,
                         const py::object& d_last_obj) {
  auto& ws = workspace.get<T>();
  if (!ws.ready_for_backward)
    throw py::value_error("backward needs a forward first (each forward's results serve one backward)");
  if (std::string(ws.cell_name) != Cell::kName)
    throw py::value_error(std::string("this workspace holds another cell's forward (") + ws.cell_name + "), not " +
                          Cell::kName);
  const LayerShape& s = ws.shape;
  const Index T_ = s.sequence.steps, B = s.sequence.batch, I = s.input, H = s.hidden, S = s.state();
  const int D = s.directions;
  const std::vector<Index> seq = s.sequence.batch_first ? std::vector<Index>{B, T_} : std::vector<Index>{T_, B};
  auto x = checked<T>(x_obj, "x", {seq[0], seq[1], I});
  BackwardArgs<T> args;
  std::vector<py::array> keep;
  args.x = data_of<T>(x);
  if (!dc_n_obj.is_none() && !Cell::kCellState) throw py::value_error(std::string("dc_n is only for LSTM, not ") + Cell::kName);
  args.d_out = optional_input<T>(d_out_obj, "dout", {seq[0], seq[1], D * S}, keep);
  args.d_last = optional_input<T>(d_last_obj, "dout_last", {B, D * S}, keep);
  args.dh_n = optional_input<T>(dh_n_obj, "dh_n", {D, B, S}, keep);
  args.dc_n = optional_input<T>(dc_n_obj, "dc_n", {D, B, H}, keep);
  if (static_cast<int>(grads.size()) != D) throw py::value_error("grads must hold one tuple per direction");
  const DirectionSizes sizes{H, S, s.projection > 0};
  for (int d = 0; d < D; ++d) args.grads[d] = direction_arrays<Cell, DirectionGrads<T>>(grads[d], "grad ", I, sizes, keep);
  py::object dx = py::none();
  if (need_dx) {
    py::array_t<T> a(std::vector<py::ssize_t>{seq[0], seq[1], I});
    args.dx = a.mutable_data();
    dx = a;
  }
  py::array_t<T> dh0(std::vector<py::ssize_t>{D, B, S});
  args.dh0 = dh0.mutable_data();
  py::object dc0 = py::none();
  if (Cell::kCellState) {
    py::array_t<T> a(std::vector<py::ssize_t>{D, B, H});
    args.dc0 = a.mutable_data();
    dc0 = a;
  }
  {
    py::gil_scoped_release release;
    recurrent_backward<Cell, T>(args, ws);
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
      .def_property_readonly("prepared_version", &Workspace::prepared_version,
                             "The weights' version whose preparation the next forward may reuse (-1: none).")
      .def("release", &Workspace::release, "Frees the buffers.");

  m.def("recurrent_forward",
        [](const std::string& cell, const py::object& x, bool batch_first, const py::object& lengths,
           const py::list& weights, const py::object& h0, const py::object& c0, Workspace& workspace,
           bool keep_for_backward, std::int64_t weights_version, const py::object& recurrent_mask,
           const py::object& zoneout_mask, double zoneout) {
          return with_cell(cell, [&](auto c) {
            return by_dtype(x, [&](auto t) {
              return forward_typed<decltype(c), decltype(t)>(x, batch_first, lengths, weights, h0, c0, workspace,
                                                             keep_for_backward, weights_version, recurrent_mask,
                                                             zoneout_mask, zoneout);
            });
          });
        },
        py::arg("cell"), py::arg("x"), py::arg("batch_first"), py::arg("lengths"), py::arg("weights"), py::arg("h0"),
        py::arg("c0"), py::arg("workspace"), py::arg("keep_for_backward"), py::arg("weights_version") = -1,
        py::arg("recurrent_mask") = py::none(), py::arg("zoneout_mask") = py::none(), py::arg("zoneout") = 0.0,
        "One recurrent layer (all directions) over a padded batch. Returns (out, h_n, c_n or None). "
        "weights_version >= 0 (one that changes whenever a weight may have) lets the workspace keep what it "
        "prepares from the weights for the next call with the same version. "
        "recurrent_mask (D, B, S): recurrent dropout's mask, scaled; zoneout_mask (like out, uint8): 1 where a "
        "unit keeps its previous state (training); without one, zoneout > 0 mixes old and new states by it.");
  m.def("recurrent_step",
        [](const std::string& cell, const py::object& x, const py::tuple& weights, const py::object& h,
           const py::object& c, double zoneout) {
          with_cell(cell, [&](auto cl) {
            by_dtype(x, [&](auto t) { step_typed<decltype(cl), decltype(t)>(x, weights, h, c, zoneout); });
          });
        },
        py::arg("cell"), py::arg("x_t"), py::arg("weights"), py::arg("h"), py::arg("c"), py::arg("zoneout") = 0.0,
        "One time step of one direction of a layer: x_t (B, I); h (B, S) and, for LSTM, c (B, H) updated in "
        "place; zoneout mixes old and new states by its probability (evaluation's zoneout).");
  m.def("recurrent_backward",
        [](const std::string& cell, Workspace& workspace, const py::object& x, const py::object& d_out,
           const py::object& dh_n, const py::object& dc_n, const py::list& grads, bool need_dx,
           const py::object& d_last) {
          return with_cell(cell, [&](auto c) {
            return by_dtype(x, [&](auto t) {
              return backward_typed<decltype(c), decltype(t)>(workspace, x, d_out, dh_n, dc_n, grads, need_dx, d_last);
            });
          });
        },
        py::arg("cell"), py::arg("workspace"), py::arg("x"), py::arg("dout"), py::arg("dh_n"), py::arg("dc_n"),
        py::arg("grads"), py::arg("need_dx"), py::arg("dout_last") = py::none(),
        "Backpropagation through time for the workspace's last forward; parameter gradients accumulate into "
        "grads. dout_last (B, D*S) is a gradient at each sequence's last step only. Returns (dx or None, dh0, "
        "dc0 or None).");
}

}  // namespace lstm_native
