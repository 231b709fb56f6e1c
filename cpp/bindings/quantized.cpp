// Dynamic int8 quantisation (qgemm.h): quantising weights and activations, the int8 GEMM,
// the quantised Linear, and one direction of a quantised LSTM/GRU (quantized_recurrent.h).
#include "bindings.h"
#include "recurrent_args.h"

#include "../qgemm.h"
#include "../quantized_recurrent.h"

namespace lstm_native {
namespace {

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
    qgemm::gemm_u8s8(m, n, kp, data_of<uint8_t>(x), data_of<int8_t>(w), c.mutable_data());
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
    qgemm::gemm_dequantize(m, n, kp, x_q.data(), x_scale.data(), x_zero.data(), data_of<int8_t>(w),
                           data_of<float>(scale), data_of<int32_t>(row_sum), bias, po, n, accumulate);
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
  const CellInfo info = cell_info(cell);
  py::array h = checked<float>(h_in, "h", {-1, -1});
  const Index B = h.shape(0), H = h.shape(1), GH = info.gates * H, kp = qgemm::padded_depth(H);
  py::array gx = batch_first ? checked<float>(gx_in, "gx", {B, -1, GH}) : checked<float>(gx_in, "gx", {-1, B, GH});
  const Index T = gx.shape(batch_first ? 1 : 0);
  std::vector<py::array> keep;
  QuantizedRecurrentArgs args;
  args.w_q = data_of<int8_t>(gate_rows<int8_t>(w_in, "weight_hh_q", info, H, keep, kp));
  args.w_scale = data_of<float>(gate_rows<float>(scale_in, "weight_hh_scale", info, H, keep));
  args.w_row_sum = data_of<int32_t>(gate_rows<int32_t>(row_sum_in, "weight_hh_row_sum", info, H, keep));
  args.bias = optional_input<float>(bias_in, "bias_hh", {GH}, keep);
  if (info.cell_state) {
    py::array c = checked<float>(c_in, "c", {B, H});
    keep.push_back(c);
    args.c = output_of<float>(c, "c");
  }
  args.lengths = lengths_of(lengths_in, B, T, keep);
  py::array_t<float> out(batch_first ? std::vector<py::ssize_t>{B, T, H} : std::vector<py::ssize_t>{T, B, H});
  args.cell = cell == "lstm"       ? QuantizedCell::kLstm
             : cell == "gru"      ? QuantizedCell::kGru
             : cell == "rnn_tanh" ? QuantizedCell::kRnnTanh
                                  : QuantizedCell::kRnnRelu;
  args.batch = B, args.steps = T, args.hidden = H;
  // Where step t of batch row b lives in gx (G*H floats) and out (H floats).
  args.gx = data_of<float>(gx);
  args.gx_row = batch_first ? T * GH : GH, args.gx_step = batch_first ? GH : B * GH;
  args.h = output_of<float>(h, "h");
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

void bind_quantized(py::module_& m) {
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
        "One direction of a quantised LSTM/GRU/RNN layer over the sequence.");
}

}  // namespace lstm_native
