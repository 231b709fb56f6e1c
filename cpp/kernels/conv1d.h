// 1-D convolution over time on batch-first (B, T, C_in) buffers, as torch.nn.Conv1d
// (cross-correlation; weight (C_out, C_in, k)), written as one GEMM over all positions:
//
//   cols[(b, t), (c, j)] = x[b, t*stride - padding + j*dilation, c]   (0 outside the sequence)
//   y = cols W^T + bias                      W viewed as (C_out, C_in * k)
//   dW += dy^T cols,  db += column sums of dy,  dx = col2im(dy W)
//
// cols is rebuilt in backward rather than kept: it is k times the input, and cheap to gather.
#pragma once

#include "../common.h"
#include "../gemm.h"
#include "../threads.h"

#include <algorithm>
#include <vector>

namespace lstm_native {

struct Conv1dShape {
  Index batch, steps, in_channels, out_channels, kernel, stride, padding, dilation;

  // torch's formula; <= 0 when the (padded) sequence is shorter than the kernel's reach.
  Index out_steps() const { return (steps + 2 * padding - dilation * (kernel - 1) - 1) / stride + 1; }
  Index rows() const { return batch * out_steps(); }
  Index patch() const { return in_channels * kernel; }
};

// cols (rows x patch): the input patch under every output position.
template <class T>
void conv1d_im2col(const Conv1dShape& s, const T* x, T* cols) {
  const Index T_out = s.out_steps(), C = s.in_channels, K = s.kernel;
  run_team(threads_for(double(s.rows()) * s.patch(), 1e6), [&](int id, int size) {
    Index r0, r1;
    share(s.rows(), id, size, &r0, &r1);
    for (Index r = r0; r < r1; ++r) {
      const Index b = r / T_out, t = r % T_out;
      T* row = cols + r * s.patch();
      for (Index j = 0; j < K; ++j) {
        const Index src = t * s.stride - s.padding + j * s.dilation;
        const bool inside = src >= 0 && src < s.steps;
        const T* xs = x + (b * s.steps + src) * C;
        for (Index c = 0; c < C; ++c) row[c * K + j] = inside ? xs[c] : T(0);
      }
    }
  });
}

// dx += the patches' gradients scattered back to the positions they came from. Split by
// sequence so no two threads add into the same rows.
template <class T>
void conv1d_col2im_add(const Conv1dShape& s, const T* dcols, T* dx) {
  const Index T_out = s.out_steps(), C = s.in_channels, K = s.kernel;
  run_team(threads_for(double(s.rows()) * s.patch(), 1e6), [&](int id, int size) {
    Index b0, b1;
    share(s.batch, id, size, &b0, &b1);
    for (Index b = b0; b < b1; ++b)
      for (Index t = 0; t < T_out; ++t) {
        const T* row = dcols + (b * T_out + t) * s.patch();
        for (Index j = 0; j < K; ++j) {
          const Index dst = t * s.stride - s.padding + j * s.dilation;
          if (dst < 0 || dst >= s.steps) continue;
          T* xd = dx + (b * s.steps + dst) * C;
          for (Index c = 0; c < C; ++c) xd[c] += row[c * K + j];
        }
      }
  });
}

// y (rows x C_out) = cols W^T + bias. cols: scratch of rows x patch.
template <class T>
void conv1d_forward(const Conv1dShape& s, const T* x, const T* weight, const T* bias, T* y, std::vector<T>& cols) {
  cols.resize(static_cast<size_t>(s.rows() * s.patch()));
  conv1d_im2col(s, x, cols.data());
  gemm_parallel<T>(false, true, s.rows(), s.out_channels, s.patch(), T(1), cols.data(), s.patch(), weight, s.patch(),
                   T(0), y, s.out_channels);
  if (bias)
    for (Index r = 0; r < s.rows(); ++r)
      for (Index o = 0; o < s.out_channels; ++o) y[r * s.out_channels + o] += bias[o];
}

// Accumulates dweight (C_out x patch) and dbias; writes dx (B x T x C_in) when asked.
template <class T>
void conv1d_backward(const Conv1dShape& s, const T* x, const T* weight, const T* dy, T* dweight, T* dbias, T* dx,
                     std::vector<T>& cols) {
  cols.resize(static_cast<size_t>(s.rows() * s.patch()));
  conv1d_im2col(s, x, cols.data());
  gemm_parallel<T>(true, false, s.out_channels, s.patch(), s.rows(), T(1), dy, s.out_channels, cols.data(), s.patch(),
                   T(1), dweight, s.patch());
  if (dbias)
    for (Index r = 0; r < s.rows(); ++r)
      for (Index o = 0; o < s.out_channels; ++o) dbias[o] += dy[r * s.out_channels + o];
  if (!dx) return;
  // dcols = dy W reuses the cols buffer, then scatters into dx.
  gemm_parallel<T>(false, false, s.rows(), s.patch(), s.out_channels, T(1), dy, s.out_channels, weight, s.patch(),
                   T(0), cols.data(), s.patch());
  std::fill_n(dx, s.batch * s.steps * s.in_channels, T(0));
  conv1d_col2im_add(s, cols.data(), dx);
}

}  // namespace lstm_native
