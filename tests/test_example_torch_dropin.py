"""The PyTorch drop-in example: in quick mode the converted copy trains exactly like the stock
torch model (the same loss curve to float32 rounding) and both learn the series, far below the
seasonal-naive forecast. Times are printed by the example, never asserted.

One thread (torch's count, which the converted modules follow): on a shared 2-core machine a
second thread mostly waits for a core, and this test is about behaviour, not speed."""
import importlib.util
import pathlib

import pytest
import torch

EXAMPLE = pathlib.Path(__file__).resolve().parent.parent / "examples" / "torch_dropin.py"


def load_example():
    spec = importlib.util.spec_from_file_location("examples_torch_dropin", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_quick_mode_trains_like_torch_and_learns(one_thread, capsys):
    r = load_example().main(["--quick"])
    assert r["max_loss_rel_diff"] < 1e-4                       # measured 5.9e-08 (seed 0)
    assert abs(r["converted_test_mse"] / r["torch_test_mse"] - 1) < 1e-3
    assert r["converted_losses"][-1] < 0.3 * r["converted_losses"][0]      # measured 0.083 vs 0.435
    assert r["converted_test_mse"] * 2 < r["naive_test_mse"]  # measured 0.065 vs 0.165
    assert r["torch_seconds"] > 0 and r["converted_seconds"] > 0
    out = capsys.readouterr().out
    assert "faster with one line" in out and "loss curves agree" in out
