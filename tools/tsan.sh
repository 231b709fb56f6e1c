#!/usr/bin/env bash
# ThreadSanitizer over the OpenMP kernels (issue 15; run by hand, not in CI). GCC's libgomp is not
# instrumented, so TSan takes its barriers for races: this uses clang with LLVM's OpenMP runtime
# and its TSan tool Archer (Debian: apt-get install clang libomp-dev), and a Python with a shared
# libpython. It builds the core with -fsanitize=thread -fopenmp=libomp into build/tsan, and a
# python-tsan launcher (Python's main linked with TSan's static runtime: preloading LLVM 14's
# shared runtime into python crashes at start), then runs the multi-threaded tests with 4 threads
# and every parallel path forced on (grain 0). Any report fails the run.
# Use, in a virtual environment with the test extra: tools/tsan.sh [pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS
build=build/tsan
logs=$build/reports
cxx=${TSAN_CXX:-clang++}

python -m pip install --quiet "cmake>=3.18" ninja "pybind11>=2.12" "cmeel-eigen>=3.4"
CXX=$cxx cmake -S . -B "$build" -G Ninja -DLSTM_NATIVE_SANITIZE=thread -DLSTM_NATIVE_TARGET=native \
  -DPython_EXECUTABLE="$(command -v python)" -Dpybind11_DIR="$(python -m pybind11 --cmakedir)" > /dev/null
ninja -C "$build" | tail -1
rm -rf "$build/pkg" "$logs" && mkdir -p "$build/pkg" "$logs"
cp -r python/lstm_native "$build/pkg/"
rm -rf "$build/pkg/lstm_native/__pycache__" "$build/pkg/lstm_native"/_core*.so
cp "$build"/_core*.so "$build/pkg/lstm_native/"

read -r include libdir version site < <(python -c "import site, sysconfig as s; print(s.get_paths()['include'], \
  s.get_config_var('LIBDIR'), s.get_config_var('LDVERSION'), site.getsitepackages()[0])")
printf '#include <Python.h>\nint main(int argc, char** argv) { return Py_BytesMain(argc, argv); }\n' > "$build/launcher.c"
"$cxx" -x c -fsanitize=thread -O1 "$build/launcher.c" -I"$include" -L"$libdir" -lpython"$version" \
  -Wl,-rpath,"$libdir" -o "$build/python-tsan"
# A pytest plugin: 4 threads and grain 0 for the whole run (the `threads` fixture restores these).
printf 'import lstm_native as ln\n\ndef pytest_configure(config):\n    ln.set_num_threads(4)\n    ln._core.set_grain(0.0)\n' \
  > "$build/tsan_threads.py"
echo "tsan: built in $((SECONDS - start)) s"

omp=$(sed -n 's/^OpenMP_omp_LIBRARY:FILEPATH=//p' "$build/CMakeCache.txt")
export OMP_TOOL_LIBRARIES="$(dirname "$omp")/libarcher.so"   # OpenMP's synchronisation, told to TSan
export TSAN_OPTIONS="ignore_noninstrumented_modules=1:halt_on_error=0:log_path=$PWD/$logs/tsan"
export PYTHONPATH="$PWD/$build:$PWD/$build/pkg:$site"
[ -f "$OMP_TOOL_LIBRARIES" ] || { echo "tsan: no $OMP_TOOL_LIBRARIES (LLVM's Archer)" >&2; exit 1; }
symbols=$(nm -D "$build"/_core*.so)
grep -q __tsan_read <<< "$symbols" || { echo "tsan: the core is not instrumented" >&2; exit 1; }

# Canaries: an unsynchronised counter must be reported, and slots written before an OpenMP barrier
# and read after it (what the kernels do) must not be (they are, without Archer).
cat > "$build/canary.c" <<'C'
#include <omp.h>
static int counter; static float slot[4];
int racy(void) {
#pragma omp parallel num_threads(4)
  counter++;
  return counter;
}
float synchronised(void) {
  float total = 0;
#pragma omp parallel num_threads(4)
  {
    slot[omp_get_thread_num()] = 1;
#pragma omp barrier
#pragma omp master
    for (int i = 0; i < 4; ++i) total += slot[i];
  }
  return total;
}
C
"$cxx" -x c -fsanitize=thread -fopenmp=libomp -O1 -g -fPIC -shared "$build/canary.c" -o "$build/canary.so"
canary() { "$build/python-tsan" -c "import ctypes; f = ctypes.CDLL('$PWD/$build/canary.so').$1; [f() for _ in range(20)]"; }
canary synchronised
ls "$logs"/* > /dev/null 2>&1 && { cat "$logs"/* >&2; echo "tsan: a false report on OpenMP's barrier" >&2; exit 1; }
canary racy || true   # exits 66, TSan's status after a report
ls "$logs"/* > /dev/null 2>&1 || { echo "tsan: the canary race was not caught" >&2; exit 1; }
rm -f "$logs"/*

tests=(tests/test_sgemm.py tests/test_recurrent_reference.py tests/test_recurrent_gradcheck.py
       tests/test_recurrent_torch.py tests/test_recurrent_bad_inputs.py tests/test_conv1d.py
       tests/test_conv_attention.py tests/test_multihead_attention.py tests/test_quantization.py
       tests/test_optim_torch.py tests/test_layers_gradcheck.py tests/test_streaming.py
       tests/test_save_load.py tests/test_layer_contract.py tests/test_fit.py)
[ $# -gt 0 ] && tests=("$@")
status=0
"$build/python-tsan" -m pytest -q -p no:cacheprovider -p tsan_threads "${tests[@]}" || status=$?
if ls "$logs"/* > /dev/null 2>&1; then
  cat "$logs"/* >&2
  echo "tsan: $(ls "$logs" | wc -l) process(es) with ThreadSanitizer reports, above" >&2
  exit 1
fi
echo "tsan: no ThreadSanitizer reports; $((SECONDS - start)) s in all"
exit $status
