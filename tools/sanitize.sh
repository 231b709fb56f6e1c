#!/usr/bin/env bash
# AddressSanitizer + UndefinedBehaviorSanitizer over the tests that reach the C++ core (issue 15).
# Builds the core with -DLSTM_NATIVE_SANITIZE=ON into build/sanitize and stages the package there
# (an installed or dev build is left alone), then runs the tests with the sanitizer runtime
# preloaded into the uninstrumented Python. Any report, from pytest or a subprocess, fails the run.
# Use, in a virtual environment with the test extra (pip install ".[test]"), with GCC:
#   tools/sanitize.sh                      # the default test selection below
#   tools/sanitize.sh tests/test_sgemm.py  # or any pytest arguments instead
# LSTM_NATIVE_TARGET=native builds one module instead of the host pair (half the build time).
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS
build=build/sanitize
logs=$build/reports

# What CMakeLists.txt needs to build outside pip's isolated build environment.
python -m pip install --quiet "cmake>=3.18" ninja "pybind11>=2.12" "cmeel-eigen>=3.4"
cmake -S . -B "$build" -G Ninja -DLSTM_NATIVE_SANITIZE=ON \
  -DLSTM_NATIVE_TARGET="${LSTM_NATIVE_TARGET:-host}" \
  -DPython_EXECUTABLE="$(command -v python)" -Dpybind11_DIR="$(python -m pybind11 --cmakedir)" > /dev/null
ninja -C "$build" | tail -1
for so in "$build"/_core*.so; do   # the option really instrumented every module
  symbols=$(nm -D "$so")
  grep -q __asan_report_store <<< "$symbols" && grep -q __ubsan_handle <<< "$symbols" \
    || { echo "sanitize: $so is not instrumented" >&2; exit 1; }
done
rm -rf "$build/pkg" "$logs" && mkdir -p "$build/pkg" "$logs"
cp -r python/lstm_native "$build/pkg/"
rm -rf "$build/pkg/lstm_native/__pycache__" "$build/pkg/lstm_native"/_core*.so
cp "$build"/_core*.so "$build/pkg/lstm_native/"
echo "sanitize: built in $((SECONDS - start)) s"

# Python is not instrumented, so the runtime is preloaded; libstdc++ with it, or ASan cannot find
# __cxa_throw when it starts and aborts at the core's first C++ exception. Python leaks by design:
# no leak checking. ASan writes its reports to files (a dying process's stderr would be lost in
# pytest's capture, and subprocesses' in their tests'); GCC's UBSan ignores log_path, so its
# reports go to stderr, which pytest leaves alone (--capture=sys), and are found in the log.
cxx=$(sed -n 's/^CMAKE_CXX_COMPILER:[A-Z]*=//p' "$build/CMakeCache.txt")
export LD_PRELOAD="$("$cxx" -print-file-name=libasan.so) $("$cxx" -print-file-name=libstdc++.so)"
export ASAN_OPTIONS="detect_leaks=0:detect_stack_use_after_return=1:strict_init_order=1:log_path=$PWD/$logs/asan"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
export PYTHONPATH="$PWD/$build/pkg"

# Canary: a write past a heap buffer (memset is intercepted) must leave a report here.
python -c "import ctypes, numpy as np; a = np.empty(1000, np.uint8); ctypes.memset(a.ctypes.data, 0, 1100)" \
  2> /dev/null && { echo "sanitize: the canary overflow was not caught" >&2; exit 1; }
ls "$logs"/asan.* > /dev/null 2>&1 || { echo "sanitize: the canary left no report" >&2; exit 1; }
rm -f "$logs"/*
python -c "import lstm_native as ln; assert ln.__file__.startswith('$PWD/$build/pkg/'), ln.__file__"

# The tests that reach C++ (every kernel, both module builds via test_portability, bad inputs);
# the slow example, CLI and benchmark tests only repeat these paths.
tests=(tests/test_sgemm.py tests/test_recurrent_reference.py tests/test_recurrent_torch.py
       tests/test_recurrent_gradcheck.py tests/test_recurrent_bad_inputs.py tests/test_conv1d.py
       tests/test_conv_attention.py tests/test_multihead_attention.py tests/test_quantization.py
       tests/test_optim_torch.py tests/test_layers_gradcheck.py tests/test_portability.py
       tests/test_streaming.py tests/test_save_load.py tests/test_layer_contract.py tests/test_fit.py
       tests/test_cells.py tests/test_prepared_weights.py tests/test_ownership.py tests/test_reproducibility.py
       tests/test_torch_bridge.py)
[ $# -gt 0 ] && tests=("$@")
status=0
python -m pytest -q -p no:cacheprovider --capture=sys "${tests[@]}" 2>&1 | tee "$build/pytest.log" || status=$?
reports=$(( $(ls "$logs" | wc -l) + $(grep -c "runtime error:" "$build/pytest.log" || true) ))
if [ "$reports" -gt 0 ]; then
  cat "$logs"/* >&2 2> /dev/null || true
  echo "sanitize: $reports sanitizer report(s): above, and in $build/pytest.log" >&2
  exit 1
fi
echo "sanitize: no sanitizer reports; $((SECONDS - start)) s in all"
exit $status
