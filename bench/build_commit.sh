#!/usr/bin/env bash
# Builds lstm_native at another commit, beside this checkout, for bench/ab_compare.py:
#   bench/build_commit.sh COMMIT [DEST]      (DEST defaults to /tmp/lstm-native-COMMIT)
# prints the folder holding its Python package (native ISA build; the active venv must have
# cmake, ninja, pybind11 and cmeel-eigen, as the dev setup does).
set -euo pipefail
commit=$(git rev-parse --short "$1")
dest=${2:-/tmp/lstm-native-$commit}
if [ ! -d "$dest" ]; then
  git worktree add -q --detach "$dest" "$commit"
fi
cmake -S "$dest" -B "$dest/build/ab" -G Ninja -DCMAKE_BUILD_TYPE=Release -DLSTM_NATIVE_TARGET=native \
  -DPython_EXECUTABLE="$(command -v python)" -Dpybind11_DIR="$(python -m pybind11 --cmakedir)" > /dev/null
ninja -C "$dest/build/ab" > /dev/null
cp "$dest"/build/ab/_core*.so "$dest/python/lstm_native/"
echo "$dest/python"
