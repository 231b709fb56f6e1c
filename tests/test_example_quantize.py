"""examples/quantize_model.py: int8 keeps the trained models' metrics and shrinks their files."""
import importlib.util
import os

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")


def test_quantised_models_keep_their_metrics_and_shrink():
    spec = importlib.util.spec_from_file_location("quantize_model", os.path.join(EXAMPLES, "quantize_model.py"))
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    r = example.run(quick=True, seed=0)
    clf, fc = r["classifier"], r["forecaster"]
    assert clf["float32"]["metric"] > 0.75, clf                      # it learned (chance: 0.25)
    assert abs(clf["int8"]["metric"] - clf["float32"]["metric"]) <= 0.02 * clf["float32"]["metric"]
    assert abs(fc["int8"]["metric"] - fc["float32"]["metric"]) <= 0.02 * fc["float32"]["metric"]
    # small models: per-row scales, float biases and the file's own overhead weigh more here than
    # in a large model (tests/test_quantization.py checks >= 3.5x on an LSTM of 256 units)
    assert clf["float32"]["bytes"] / clf["int8"]["bytes"] >= 3.0, clf
    assert fc["float32"]["bytes"] / fc["int8"]["bytes"] >= 2.8, fc
