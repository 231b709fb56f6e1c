// The dense products on the kernels' pool: matmul (gemm.h), the float32 GEMM's test hooks
// (sgemm.h), and Conv1d (kernels/conv1d.h, one GEMM over all positions).
#include "bindings.h"

#include "../gemm.h"
#include "../kernels/conv1d.h"

#include <algorithm>

namespace lstm_native {
namespace {

// C (+)= op(A) op(B) for 2-D operands or batches of them.
template <class T>
py::array matmul_typed(const py::object& a_obj, const py::object& b_obj, bool trans_a, bool trans_b,
                       const py::object& out_obj, bool accumulate) {
  py::array a = checked_any_shape<T>(a_obj, "a");
  py::array b = checked_any_shape<T>(b_obj, "b");
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
py::array conv1d_forward_typed(const py::object& x_in, const py::object& weight_in, const py::object& bias_in,
                               Index stride, Index padding, Index dilation) {
  py::array x = checked<T>(x_in, "x", {-1, -1, -1});
  py::array weight = checked<T>(weight_in, "weight", {-1, -1, -1});
  const Conv1dShape s = conv1d_shape(x, weight, stride, padding, dilation);
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
py::object conv1d_backward_typed(const py::object& x_in, const py::object& weight_in, const py::object& dy_in,
                                 Index stride, Index padding, Index dilation, const py::object& dweight_in,
                                 const py::object& dbias_in, bool need_input_grad) {
  py::array x = checked<T>(x_in, "x", {-1, -1, -1});
  py::array weight = checked<T>(weight_in, "weight", {-1, -1, -1});
  const Conv1dShape s = conv1d_shape(x, weight, stride, padding, dilation);
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

}  // namespace

void bind_linalg(py::module_& m) {
  m.def("matmul",
        [](const py::object& a, const py::object& b, bool trans_a, bool trans_b, const py::object& out,
           bool accumulate) {
          return by_dtype(a, [&](auto t) { return matmul_typed<decltype(t)>(a, b, trans_a, trans_b, out, accumulate); });
        },
        py::arg("a"), py::arg("b"), py::arg("trans_a") = false, py::arg("trans_b") = false,
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

  m.def("conv1d_forward",
        [](const py::object& x, const py::object& weight, const py::object& bias, Index stride, Index padding,
           Index dilation) {
          return by_dtype(x, [&](auto t) {
            return conv1d_forward_typed<decltype(t)>(x, weight, bias, stride, padding, dilation);
          });
        },
        py::arg("x"), py::arg("weight"), py::arg("bias"), py::arg("stride"), py::arg("padding"), py::arg("dilation"),
        "Conv1d over time on (B, T, C_in): one GEMM over all positions.");
  m.def("conv1d_backward",
        [](const py::object& x, const py::object& weight, const py::object& dy, Index stride, Index padding,
           Index dilation, const py::object& dweight, const py::object& dbias, bool need_input_grad) {
          return by_dtype(x, [&](auto t) {
            return conv1d_backward_typed<decltype(t)>(x, weight, dy, stride, padding, dilation, dweight, dbias,
                                                      need_input_grad);
          });
        },
        py::arg("x"), py::arg("weight"), py::arg("grad"), py::arg("stride"), py::arg("padding"), py::arg("dilation"),
        py::arg("weight_grad"), py::arg("bias_grad"), py::arg("need_input_grad"),
        "Accumulates weight/bias gradients; returns dx (or None).");
}

}  // namespace lstm_native
