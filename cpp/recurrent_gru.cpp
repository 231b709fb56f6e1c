// Compiled instances of the sequence loop for the GRU cell.
#include "kernels/gru_cell.h"
#include "recurrent.h"
#include "recurrent_step.h"

namespace lstm_native {
template void recurrent_forward<GruCell, float>(const ForwardArgs<float>&, RecurrentWorkspace<float>&, bool);
template void recurrent_forward<GruCell, double>(const ForwardArgs<double>&, RecurrentWorkspace<double>&, bool);
template void recurrent_backward<GruCell, float>(const BackwardArgs<float>&, RecurrentWorkspace<float>&);
template void recurrent_backward<GruCell, double>(const BackwardArgs<double>&, RecurrentWorkspace<double>&);
template void recurrent_step<GruCell, float>(const StepArgs<float>&, StepScratch<float>&);
template void recurrent_step<GruCell, double>(const StepArgs<double>&, StepScratch<double>&);
}  // namespace lstm_native
