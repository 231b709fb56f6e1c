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
};

}  // namespace lstm_native
