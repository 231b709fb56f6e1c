// The compiled instances of recurrent.h (recurrent_lstm.cpp, recurrent_gru.cpp, recurrent_rnn.cpp,
// recurrent_gru_reset_before.cpp, recurrent_layer_norm.cpp), declared
// so that other files link against them instead of compiling the loop again.
#pragma once

#include "kernels/gru_cell.h"
#include "kernels/gru_reset_before_cell.h"
#include "kernels/layer_norm_cells.h"
#include "kernels/lstm_cell.h"
#include "kernels/rnn_cell.h"
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
LSTM_NATIVE_DECLARE_RECURRENT(RnnTanhCell, float)
LSTM_NATIVE_DECLARE_RECURRENT(RnnTanhCell, double)
LSTM_NATIVE_DECLARE_RECURRENT(RnnReluCell, float)
LSTM_NATIVE_DECLARE_RECURRENT(RnnReluCell, double)
LSTM_NATIVE_DECLARE_RECURRENT(GruResetBeforeCell, float)
LSTM_NATIVE_DECLARE_RECURRENT(GruResetBeforeCell, double)
LSTM_NATIVE_DECLARE_RECURRENT(LayerNormLstmCell, float)
LSTM_NATIVE_DECLARE_RECURRENT(LayerNormLstmCell, double)
LSTM_NATIVE_DECLARE_RECURRENT(LayerNormGruCell, float)
LSTM_NATIVE_DECLARE_RECURRENT(LayerNormGruCell, double)
#undef LSTM_NATIVE_DECLARE_RECURRENT
}  // namespace lstm_native
