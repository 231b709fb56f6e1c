// Shared vocabulary of the C++ core: index type, row-major Eigen views over flat
// buffers, and the error type the bindings turn into a Python ValueError.
#pragma once

#include <Eigen/Core>

#include <cstddef>
#include <stdexcept>
#include <string>

namespace lstm_native {

using Index = std::ptrdiff_t;

template <class T>
using RowMatrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <class T>
using MatrixView = Eigen::Map<RowMatrix<T>, Eigen::Unaligned, Eigen::OuterStride<>>;
template <class T>
using ConstMatrixView = Eigen::Map<const RowMatrix<T>, Eigen::Unaligned, Eigen::OuterStride<>>;

// A rows x cols row-major block starting at p whose rows are `stride` elements apart.
template <class T>
inline MatrixView<T> view(T* p, Index rows, Index cols, Index stride) {
  return MatrixView<T>(p, rows, cols, Eigen::OuterStride<>(stride));
}
template <class T>
inline ConstMatrixView<T> view(const T* p, Index rows, Index cols, Index stride) {
  return ConstMatrixView<T>(p, rows, cols, Eigen::OuterStride<>(stride));
}

// Thrown for arguments the kernels cannot accept; the bindings map it to ValueError.
struct ArgumentError : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

inline void require(bool ok, const std::string& message) {
  if (!ok) throw ArgumentError(message);
}

}  // namespace lstm_native
