"""Bar: an installed build runs on an x86-64 CPU without AVX-512 (forcing the baseline
kernels at run time) and picks the widest kernels the CPU has."""
import json
import subprocess
import sys

import numpy as np
import pytest

import lstm_native as ln
from conftest import child_env
from lstm_native import _backend

AVX2 = {"avx", "avx2", "fma", "bmi1", "bmi2", "f16c", "movbe", "abm"}
AVX512 = AVX2 | {"avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"}
ALL = ["baseline", "avx2", "avx512"]


@pytest.mark.parametrize("flags,expected", [(AVX512, "avx512"), (AVX2, "avx2"), ({"sse2"}, "baseline"),
                                            (AVX2 | {"avx512f"}, "avx2")])   # partial AVX-512 is not enough
def test_choose_picks_the_widest_supported_build(flags, expected):
    assert _backend.choose(flags, ALL, machine="x86_64") == expected


def test_choose_on_other_machines_and_forced_builds():
    assert _backend.choose(AVX512, ALL, machine="aarch64") == "baseline"
    assert _backend.choose(AVX512, ALL, forced="baseline", machine="x86_64") == "baseline"
    with pytest.raises(ImportError, match="this CPU lacks the instructions"):
        _backend.choose(AVX2, ALL, forced="avx512", machine="x86_64")
    with pytest.raises(ImportError, match="has no _core_avx2 module"):
        _backend.choose(AVX2, ["baseline"], forced="avx2", machine="x86_64")
    with pytest.raises(ImportError, match="LSTM_NATIVE_ISA must be one of"):
        _backend.choose(AVX2, ALL, forced="sse9", machine="x86_64")


SCRIPT = """
import json, numpy as np, lstm_native as ln
rng = np.random.default_rng(0)
m = ln.Sequential(ln.LSTM(5, 40, num_layers=2, batch_first=True, bidirectional=True, seed=1), ln.LastTimestep(),
                  ln.Linear(80, 3, seed=2))
x = rng.standard_normal((33, 12, 5)).astype(np.float32)
y = rng.integers(0, 3, 33)
m.fit(x, y, loss="cross_entropy", epochs=2, batch_size=8, verbose=0, seed=0)
q = ln.quantize_dynamic(m)
x_q = ln._core.quantize_activations(rng.standard_normal((7, 77)).astype(np.float32) * 3)[0]
print(json.dumps({"isa": ln.backend_isa(), "out": m.predict(x).tolist(), "int8_out": q.predict(x).tolist(),
                  "x_q": x_q.tolist()}))
"""


def run_with(isa):
    env = child_env()
    env.pop("LSTM_NATIVE_ISA", None)
    if isa:
        env["LSTM_NATIVE_ISA"] = isa
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_every_installed_build_that_this_cpu_runs_trains_alike():
    flags = _backend.cpu_flags()
    builds = [isa for isa in _backend.installed() if _backend.supported(isa, flags)]
    default = run_with(None)
    if ln.backend_isa() == "native":   # a build for the building machine: one module, nothing to force
        assert builds == ["baseline"] and default["isa"] == "native"
        return
    assert "baseline" in builds and default["isa"] == _backend.choose(flags, builds)
    reference = np.array(default["out"])
    for isa in builds:
        result = run_with(isa)
        assert result["isa"] == isa
        # different vector widths round differently; training stays the same to float precision
        np.testing.assert_allclose(np.array(result["out"]), reference, rtol=1e-3, atol=1e-4)
        # int8: the same quantised activations bit for bit (scalar and vector forms do the same
        # IEEE operations) and exact integer products...
        assert result["x_q"] == default["x_q"]
        # ...but each build quantises the weights it trained, which differ in the last bits (FMA or
        # not), and a weight or an h on a rounding boundary of its int8 grid moves by one step of
        # 1/127 of its row's range: the quantised models agree to well inside their own error
        # against float (1.5-1.6% of the output range here; seen: baseline vs FMA builds 0.5%).
        out, int8_out = np.array(result["out"]), np.array(result["int8_out"])
        int8_ref = np.array(default["int8_out"])
        scale = np.abs(out).max()
        assert np.abs(int8_out - out).max() <= 0.03 * scale, isa
        assert np.abs(int8_out - int8_ref).max() <= 0.015 * scale, isa
