// The one thread pool (threads.h): its size, the work a thread must have before another
// joins, and how the recurrent step loop's team divides work (step_loop.h; tests force each).
#include "bindings.h"

#include "../step_loop.h"

namespace lstm_native {

void bind_threads(py::module_& m) {
  m.def("get_num_threads", &get_num_threads, "Threads the kernels use.");
  m.def("set_num_threads", &set_num_threads, py::arg("n"), "Threads the kernels use; n <= 0 restores all cores.");
  m.def("get_deterministic", &deterministic, "Whether results are the same bits for any thread count.");
  m.def("set_deterministic", &set_deterministic, py::arg("on"),
        "On (the default): reductions in an order independent of the thread count.");
  m.def("get_grain", &get_grain);
  m.def("set_grain", &set_grain, py::arg("scale"),
        "Scales the work each thread must have before another is used (0: always the full team; for tests).");
  m.def("set_step_split", [](const std::string& mode) {
    if (mode == "auto") set_step_split_override(StepSplit::kAuto);
    else if (mode == "batch") set_step_split_override(StepSplit::kBatch);
    else if (mode == "units") set_step_split_override(StepSplit::kUnits);
    else throw py::value_error("mode must be 'auto', 'batch' or 'units'");
  }, py::arg("mode"), "How the step loop's team divides work (tests force each way; 'auto' by default).");
}

}  // namespace lstm_native
