// What every binding does with the arrays it is handed: check them (NumPy array, dtype, C
// order, shape, finite values), raising TypeError/ValueError that name the argument, and
// pick the float or double kernels by their dtype.
//
// The Python package checks first with friendlier messages; these checks are what keeps a
// wrong call from crashing the process. The files of cpp/bindings/ are the only ones that
// include pybind11.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cmath>
#include <cstdint>
#include <sstream>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "../common.h"
#include "../threads.h"

namespace lstm_native {
namespace py = pybind11;

inline std::string shape_text(const std::vector<Index>& shape) {
  std::ostringstream os;
  os << "(";
  for (size_t i = 0; i < shape.size(); ++i) os << (i ? ", " : "") << (shape[i] < 0 ? std::string("*") : std::to_string(shape[i]));
  os << (shape.size() == 1 ? ",)" : ")");
  return os.str();
}

template <class T>
bool has_dtype(const py::array& a) {
  const char kind = std::is_floating_point_v<T> ? 'f' : std::is_signed_v<T> ? 'i' : 'u';
  return a.dtype().kind() == kind && a.dtype().itemsize() == static_cast<py::ssize_t>(sizeof(T));
}

template <class T>
const char* dtype_label() {
  if constexpr (std::is_same_v<T, float>) return "float32";
  else if constexpr (std::is_same_v<T, double>) return "float64";
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

// The same for an array of any number of dimensions.
template <class T>
py::array checked_any_shape(const py::handle& obj, const char* name) {
  const Index ndim = py::isinstance<py::array>(obj) ? py::reinterpret_borrow<py::array>(obj).ndim() : 0;
  return checked<T>(obj, name, std::vector<Index>(ndim, -1));
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
const T* optional_input(const py::handle& obj, const char* name, const std::vector<Index>& shape,
                        std::vector<py::array>& keep) {
  if (obj.is_none()) return nullptr;
  py::array a = checked<T>(obj, name, shape);
  require_finite<T>(a, name);
  keep.push_back(a);
  return data_of<T>(a);
}

// The float/double dispatch, the one place it is written: calls f(T()) with T = double when
// `first` (an array, or a list whose first item decides) holds float64, else with T = float,
// whose checks then reject anything but float32.
inline bool holds_float64(const py::handle& first) {
  if (py::isinstance<py::list>(first)) {
    const auto list = py::reinterpret_borrow<py::list>(first);
    return list.size() > 0 && holds_float64(list[0]);
  }
  return py::isinstance<py::array>(first) && has_dtype<double>(py::reinterpret_borrow<py::array>(first));
}

template <class F>
auto by_dtype(const py::handle& first, F&& f) {
  if (holds_float64(first)) return f(double());
  return f(float());
}

}  // namespace lstm_native
