// lstm_native's compiled core, lstm_native._core (or _core_avx2, _core_avx512: one module
// per instruction set, cpp/../CMakeLists.txt): declares the module and binds each kernel
// family from its own file.
#include "bindings.h"

#ifndef LSTM_NATIVE_MODULE
#define LSTM_NATIVE_MODULE _core
#endif
#ifndef LSTM_NATIVE_ISA
#define LSTM_NATIVE_ISA "native"
#endif

PYBIND11_MODULE(LSTM_NATIVE_MODULE, m) {
  using namespace lstm_native;
  m.doc() = "lstm_native's compiled core (" LSTM_NATIVE_ISA " build)";
  m.attr("isa") = LSTM_NATIVE_ISA;
  py::register_exception<NonFiniteInput>(m, "NonFiniteError", PyExc_ValueError);
  bind_threads(m);
  bind_recurrent(m);
  bind_quantized(m);
  bind_linalg(m);
  bind_optim(m);
}
