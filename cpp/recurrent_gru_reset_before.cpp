// Compiled instances of the sequence loop for the textbook GRU (reset before the product).
#include "kernels/gru_reset_before_cell.h"
#include "recurrent.h"
#include "recurrent_step.h"

namespace lstm_native {
template void recurrent_forward<GruResetBeforeCell, float>(const ForwardArgs<float>&, RecurrentWorkspace<float>&, bool);
template void recurrent_backward<GruResetBeforeCell, float>(const BackwardArgs<float>&, RecurrentWorkspace<float>&);
template void recurrent_step<GruResetBeforeCell, float>(const StepArgs<float>&, StepScratch<float>&);
template void recurrent_forward<GruResetBeforeCell, double>(const ForwardArgs<double>&, RecurrentWorkspace<double>&, bool);
template void recurrent_backward<GruResetBeforeCell, double>(const BackwardArgs<double>&, RecurrentWorkspace<double>&);
template void recurrent_step<GruResetBeforeCell, double>(const StepArgs<double>&, StepScratch<double>&);
}  // namespace lstm_native
