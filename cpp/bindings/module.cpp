// lstm_native's compiled core (CMakeLists.txt builds one module per instruction set: _core,
// _core_avx2, _core_avx512): declares the module and binds each kernel family from its file.
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
