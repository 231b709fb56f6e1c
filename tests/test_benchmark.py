"""The benchmark's machinery (no timing assertions: what it runs and what it reports)."""
import time

import pytest

import lstm_native as ln
from lstm_native import benchmark


def test_interleaved_runs_blocks_and_drops_each_blocks_first_short_call():
    calls = {"fast": 0, "slow": 0}

    def fast():
        calls["fast"] += 1

    def slow():
        calls["slow"] += 1
        time.sleep(0.012)

    a, b, rounds = benchmark.interleaved(fast, slow, reps=5, budget_s=60, block_s=0.01)
    assert rounds == 5
    assert calls["slow"] == 1 + 5                  # calibration, then one call per round (longer than a block)
    assert calls["fast"] >= 1 + 5 * 3              # calibration, then >= 2 timed + 1 dropped per round
    assert a < 0.01 <= b


def test_training_flops_counts_forward_backward_and_skips_the_first_input_gradient():
    T, B, I, H = 3, 2, 5, 7
    forward = 2 * T * B * (I + H) * 4 * H
    assert benchmark.training_flops("LSTM", B, T, I, H, 1, False) == 3 * forward - 2 * T * B * I * 4 * H
    assert benchmark.training_flops("LSTM", B, T, I, H, 1, True) == 2 * benchmark.training_flops("LSTM", B, T, I, H, 1, False)


@pytest.mark.parametrize("sid", ["S1"])
def test_bench_command_writes_its_table(tmp_path, sid, capsys):
    import torch
    threads_before, torch_threads_before = ln.get_num_threads(), torch.get_num_threads()
    out = tmp_path / "results.md"
    benchmark.main(["--shapes", sid, "--reps", "5", "--threads", "1", "--no-memory", "--no-stream", "--no-quant",
                    "--out", str(out)])
    assert ln.get_num_threads() == threads_before and torch.get_num_threads() == torch_threads_before
    text = out.read_text()
    assert f"| {sid} | LSTM 16 20 1 64 1 |" in text and "sgemm 2048^3 in this run" in text
    row = next(line for line in text.splitlines() if line.startswith(f"| {sid} | LSTM"))
    ratio = float(row.split("**")[1].rstrip("x"))
    assert ratio > 0


def test_default_thread_counts_double_up_to_the_cores():
    assert benchmark.default_thread_counts(16) == [1, 2, 4, 8, 16]
    assert benchmark.default_thread_counts(6) == [1, 2, 4, 6]
    assert benchmark.default_thread_counts(1) == [1]


def test_scaling_command_writes_a_row_per_thread_count(tmp_path):
    import torch
    threads_before, torch_threads_before = ln.get_num_threads(), torch.get_num_threads()
    out = tmp_path / "scaling.md"
    assert benchmark.main(["--scaling", "--shapes", "S1", "--thread-counts", "1,2", "--reps", "5",
                           "--out", str(out)]) == 0
    assert ln.get_num_threads() == threads_before and torch.get_num_threads() == torch_threads_before
    rows = [line.split("|")[1:-1] for line in out.read_text().splitlines() if line.startswith("| S1 |")]
    assert [int(r[1]) for r in rows] == [1, 2]
    assert float(rows[0][7]) == 1.0 and float(rows[0][8]) == 1.0    # speedups relative to the first count
    assert all(float(r[2]) > 0 and float(r[3]) > 0 and float(r[9]) > 0 for r in rows)


def test_scaling_rejects_bad_thread_counts(capsys):
    assert benchmark.main(["--scaling", "--shapes", "S1", "--thread-counts", "0,2"]) == 2
    assert "--thread-counts" in capsys.readouterr().err
