// What one time step of one direction hands to a cell's gate math. Every pointer is the
// first row the cell works on; it handles `rows` rows, `row_step` rows apart in the step's
// buffers (a thread may own every P-th sequence of the batch), whose rows are `hidden`
// elements apart except gates/recurrent (G*hidden apart). The cell touches only the unit
// blocks it is given.
#pragma once

#include "../common.h"

namespace lstm_native {

template <class T>
struct StepForward {
  Index rows;              // rows to work on
  Index row_step;          // rows between them
  T* gates;                // in: pre-activations (input projection + bias); out: activations
  const T* recurrent;      // h_{t-1} W_hh^T, for cells that keep it apart from the gates
  const T* h_prev;         // h_{t-1}, rows h_prev_stride apart
  T* h_next;               // out: h_t, rows h_next_stride apart
  T* aux;                  // the cell's per-row state at this step (LSTM: c_{t-1}; GRU: out W_hn h + b_hn)
  T* aux_next;             // LSTM: out c_t
  const T* recurrent_bias; // GRU: b_hn (natural unit order)
  Index h_prev_stride, h_next_stride;
  // Beyond LSTM's and GRU's needs (cell_base.h):
  const T* h_rec = nullptr;   // h_{t-1} as it fed the recurrent product (times the recurrent dropout
  Index h_rec_stride = 0;     //   mask when there is one; else h_prev), rows h_rec_stride apart
  T* extra = nullptr;         // the cell's per-row storage for backward, rows extra_stride apart
  Index extra_stride = 0;
  const T* params = nullptr;  // the cell's own parameters, concatenated (natural unit order)
  T* second = nullptr;        // cells with a second product: its input, written by forward_first (rows H apart)
  const T* input_bias = nullptr;  // G*H, the gates' order: the bias kNormalizesInput cells add themselves
};

template <class T>
struct StepBackward {
  Index rows;
  Index row_step;
  T* gates;         // in: activations; out: d loss / d (recurrent pre-activations)
  const T* h_prev;  // h_{t-1}, rows h_prev_stride apart
  T* aux;           // LSTM: c_{t-1}; GRU: in W_hn h + b_hn, out d loss / d n pre-activation
  const T* aux_next;  // LSTM: c_t
  T* dh;            // in: d loss / d h_t; out: the part of d loss / d h_{t-1} not through W_hh
  T* dc;            // LSTM: in d loss / d c_t, out d loss / d c_{t-1}
  T* bias_grad;        // G*H: += column sums of the gradients w.r.t. h W_hh^T + b_hh (null: no bias)
  T* input_bias_grad;  // G*H: += those w.r.t. x W_ih^T + b_ih, for cells where they differ
  Index h_prev_stride;
  bool bias_per_row;   // the bias sums have a G*H slot per row (laid out as `gates`), not one for all
                       // rows: each sequence's sum then runs in step order whatever the team
  // Beyond LSTM's and GRU's needs (cell_base.h):
  const T* h_rec = nullptr;   // as in StepForward
  Index h_rec_stride = 0;
  T* extra = nullptr;
  Index extra_stride = 0;
  const T* params = nullptr;
  T* param_grad = nullptr;    // += the gradients of `params` (a slice per team member), or null
  const T* second = nullptr;  // cells with a second product: its input (rows H apart)
  const T* d_second = nullptr;  // d loss / d that input, for backward_first (rows H apart)
  T* d_rec = nullptr;         // backward_first: += d loss / d h_rec (dh itself without recurrent dropout)
};

// After the backward loop, for cells whose input projection's gradients differ from the
// recurrent product's (kInputGradientsDiffer): `rows` rows of gates (GH apart) to turn into
// the former, with the cell's aux (H apart) and extra rows beside them.
template <class T>
struct InputGradients {
  T* gates;
  const T* aux;
  T* extra;
  Index extra_stride;
  const T* params;
  Index rows;
};

}  // namespace lstm_native
