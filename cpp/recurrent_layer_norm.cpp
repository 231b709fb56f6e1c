// Compiled instances of the sequence loop for the layer-normalised LSTM and GRU.
#include "kernels/layer_norm_cells.h"
#include "recurrent.h"
#include "recurrent_step.h"

namespace lstm_native {
template void recurrent_forward<LayerNormLstmCell, float>(const ForwardArgs<float>&, RecurrentWorkspace<float>&, bool);
template void recurrent_backward<LayerNormLstmCell, float>(const BackwardArgs<float>&, RecurrentWorkspace<float>&);
template void recurrent_step<LayerNormLstmCell, float>(const StepArgs<float>&, StepScratch<float>&);
template void recurrent_forward<LayerNormLstmCell, double>(const ForwardArgs<double>&, RecurrentWorkspace<double>&, bool);
template void recurrent_backward<LayerNormLstmCell, double>(const BackwardArgs<double>&, RecurrentWorkspace<double>&);
template void recurrent_step<LayerNormLstmCell, double>(const StepArgs<double>&, StepScratch<double>&);
template void recurrent_forward<LayerNormGruCell, float>(const ForwardArgs<float>&, RecurrentWorkspace<float>&, bool);
template void recurrent_backward<LayerNormGruCell, float>(const BackwardArgs<float>&, RecurrentWorkspace<float>&);
template void recurrent_step<LayerNormGruCell, float>(const StepArgs<float>&, StepScratch<float>&);
template void recurrent_forward<LayerNormGruCell, double>(const ForwardArgs<double>&, RecurrentWorkspace<double>&, bool);
template void recurrent_backward<LayerNormGruCell, double>(const BackwardArgs<double>&, RecurrentWorkspace<double>&);
template void recurrent_step<LayerNormGruCell, double>(const StepArgs<double>&, StepScratch<double>&);
}  // namespace lstm_native
