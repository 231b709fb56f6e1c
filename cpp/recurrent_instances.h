// The compiled instances of recurrent.h (recurrent_lstm.cpp, recurrent_gru.cpp), declared
// so that other files link against them instead of compiling the loop again.
#pragma once

#include "kernels/gru_cell.h"
#include "kernels/lstm_cell.h"
#include "recurrent.h"
#include "recurrent_step.h"

namespace lstm_native {
#define LSTM_NATIVE_DECLARE_RECURRENT(Cell, T)                                                     \
  extern template void recurrent_forward<Cell, T>(const ForwardArgs<T>&, RecurrentWorkspace<T>&, bool); \
  extern template void recurrent_backward<Cell, T>(const BackwardArgs<T>&, RecurrentWorkspace<T>&); \
  extern template void recurrent_step<Cell, T>(const StepArgs<T>&, StepScratch<T>&);
LSTM_NATIVE_DECLARE_RECURRENT(LstmCell, float)
LSTM_NATIVE_DECLARE_RECURRENT(LstmCell, double)
LSTM_NATIVE_DECLARE_RECURRENT(GruCell, float)
LSTM_NATIVE_DECLARE_RECURRENT(GruCell, double)
#undef LSTM_NATIVE_DECLARE_RECURRENT
}  // namespace lstm_native
