"""examples/export_onnx.py: the trained forecaster served by onnxruntime gives our outputs."""
import importlib.util
import os

import lstm_native as ln

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")


def test_onnxruntime_serves_the_forecaster_as_we_predict():
    spec = importlib.util.spec_from_file_location("export_onnx", os.path.join(EXAMPLES, "export_onnx.py"))
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    before = ln.get_num_threads()
    ln.set_num_threads(1)
    try:
        r = example.run(quick=True, seed=0)
    finally:
        ln.set_num_threads(before)
    assert r["test_mse"] * 3 <= r["naive_mse"], r             # it learned (measured 8.5x, seeds 0-2: 6.3-9.5x)
    assert r["rel_diff"] < 1e-5, r                            # padded histories with lengths; measured 3.4e-7
    assert r["step_max_abs_diff"] < 1e-5, r                   # 200 streamed steps; measured 3.6e-7
    assert r["int8_error_onnx"] <= 1.5 * r["int8_error_ours"], r    # measured 1.00x
    assert r["onnx_bytes"] >= 3 * r["int8_bytes"], r          # measured 3.1x (199 -> 65 KiB)
