// Compiled instances of the sequence loop for the Elman RNN cells (tanh, relu).
#include "kernels/rnn_cell.h"
#include "recurrent.h"
#include "recurrent_step.h"

namespace lstm_native {
template void recurrent_forward<RnnTanhCell, float>(const ForwardArgs<float>&, RecurrentWorkspace<float>&, bool);
template void recurrent_backward<RnnTanhCell, float>(const BackwardArgs<float>&, RecurrentWorkspace<float>&);
template void recurrent_step<RnnTanhCell, float>(const StepArgs<float>&, StepScratch<float>&);
template void recurrent_forward<RnnTanhCell, double>(const ForwardArgs<double>&, RecurrentWorkspace<double>&, bool);
template void recurrent_backward<RnnTanhCell, double>(const BackwardArgs<double>&, RecurrentWorkspace<double>&);
template void recurrent_step<RnnTanhCell, double>(const StepArgs<double>&, StepScratch<double>&);
template void recurrent_forward<RnnReluCell, float>(const ForwardArgs<float>&, RecurrentWorkspace<float>&, bool);
template void recurrent_backward<RnnReluCell, float>(const BackwardArgs<float>&, RecurrentWorkspace<float>&);
template void recurrent_step<RnnReluCell, float>(const StepArgs<float>&, StepScratch<float>&);
template void recurrent_forward<RnnReluCell, double>(const ForwardArgs<double>&, RecurrentWorkspace<double>&, bool);
template void recurrent_backward<RnnReluCell, double>(const BackwardArgs<double>&, RecurrentWorkspace<double>&);
template void recurrent_step<RnnReluCell, double>(const StepArgs<double>&, StepScratch<double>&);
}  // namespace lstm_native
