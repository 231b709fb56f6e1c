// The binding families, one file each; module.cpp calls them all.
#pragma once

#include "arrays.h"

namespace lstm_native {

void bind_threads(py::module_& m);    // threads.cpp: the pool's size and grain, the step loop's split
void bind_recurrent(py::module_& m);  // recurrent.cpp: float LSTM/GRU layers forward, backward, step
void bind_quantized(py::module_& m);  // quantized.cpp: int8 quantisation, GEMM, Linear and LSTM/GRU
void bind_linalg(py::module_& m);     // linalg.cpp: matmul, the float32 GEMM's hooks, Conv1d
void bind_optim(py::module_& m);      // optim.cpp: optimizer updates, gradient clipping and norms

}  // namespace lstm_native
