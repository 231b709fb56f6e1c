#!/usr/bin/env bash
# Issue 5, bar 4: the table at 16 threads and the S3/S5 thread-scaling curve, on the lent
# 16-core machine, in one call (its time is scarce). Through the device tool, from the repo root:
#   carry [".whl"] (the cmeel-eigen wheel: `pip download --no-deps -d .whl cmeel-eigen`),
#   command "bash bench/device_run.sh". Its image has python3, torch, numpy, cmake, ninja,
#   pybind11 and pytest. Results land in $OUT (scaling.md, table16.md, their JSON, lscpu.txt).
set -uo pipefail
OUT=${OUT:-/tmp/device-out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
stamp() { echo "== $(date +%T) $*"; }

python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD/python   # cmeel.prefix (Eigen) for CMake, then our package
lscpu > "$OUT/lscpu.txt"
grep -E "Model name|^CPU\(s\)|Thread\(s\) per core|Socket|NUMA node\(s\)|L3" "$OUT/lscpu.txt"

stamp build
cmake -S . -B build/device -G Ninja -DCMAKE_BUILD_TYPE=Release -DLSTM_NATIVE_TARGET=native \
  -DPython_EXECUTABLE="$(command -v python3)" -Dpybind11_DIR="$(python3 -m pybind11 --cmakedir)" > "$OUT/build.log" 2>&1 &&
  ninja -C build/device >> "$OUT/build.log" 2>&1 || { tail -30 "$OUT/build.log"; exit 1; }
cp build/device/_core*.so python/lstm_native/
python3 -c "import lstm_native as ln, torch; print('isa', ln.backend_isa(), 'threads', ln.get_num_threads(), 'torch', torch.__version__, torch.get_num_threads())"

stamp "sgemm tiles (the timed choice, then each forced) at 1 and 16 threads"
python3 - <<'PY'
import time, numpy as np, lstm_native as ln
core, a = ln._core, np.random.default_rng(0).standard_normal((2048, 2048)).astype(np.float32)
print("timed choice:", core.sgemm_kernel())
for threads in (1, 16):
    ln.set_num_threads(threads)
    for tile in ("wide", "narrow", "wide", "narrow"):
        core.set_sgemm_tile(tile)
        times = []
        for _ in range(4):
            t0 = time.perf_counter()
            core.matmul(a, a)
            times.append(time.perf_counter() - t0)
        print(f"{threads:2d} threads {tile:6s} ({core.sgemm_kernel()}): {2 * 2048**3 / min(times[1:]) / 1e9:.1f} GFLOP/s")
core.set_sgemm_tile("auto")
PY

stamp scaling
timeout 260 python3 bench/compare_torch.py --scaling --shapes S3,S5 --thread-counts 1,2,4,8,16 --reps 5 \
  --out "$OUT/scaling.md" --json "$OUT/scaling.json"
stamp table at 16 threads
timeout 200 python3 bench/compare_torch.py --threads 16 --reps 10 --no-quant \
  --out "$OUT/table16.md" --json "$OUT/table16.json" 2>&1 | tee "$OUT/table16.log"
stamp correctness at 16 threads
timeout 90 python3 -m pytest -q -x -p no:cacheprovider tests/test_recurrent_reference.py \
  tests/test_recurrent_torch.py tests/test_sgemm.py 2>&1 | tail -4
stamp done
