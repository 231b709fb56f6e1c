// Compiled instances of the sequence loop for the LSTM cell.
#include "kernels/lstm_cell.h"
#include "recurrent.h"
#include "recurrent_step.h"

namespace lstm_native {
template void recurrent_forward<LstmCell, float>(const ForwardArgs<float>&, RecurrentWorkspace<float>&, bool);
template void recurrent_forward<LstmCell, double>(const ForwardArgs<double>&, RecurrentWorkspace<double>&, bool);
template void recurrent_backward<LstmCell, float>(const BackwardArgs<float>&, RecurrentWorkspace<float>&);
template void recurrent_backward<LstmCell, double>(const BackwardArgs<double>&, RecurrentWorkspace<double>&);
template void recurrent_step<LstmCell, float>(const StepArgs<float>&, StepScratch<float>&);
template void recurrent_step<LstmCell, double>(const StepArgs<double>&, StepScratch<double>&);
}  // namespace lstm_native
