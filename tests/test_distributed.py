"""Data-parallel training over MPI: ``mpiexec -n 2`` and ``-n 4`` on this machine give the
parameters one process computes with the same global batch and seed; failures end every rank
quickly with one message; checkpoints move between rank counts; one process never touches MPI.

The MPI runs are subprocesses (tests/mpi_worker.py) with timeouts; mpiexec comes with the
test extra (mpich from pip). Each rank runs its kernels on one thread."""
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

import lstm_native as ln
from lstm_native import distributed, losses, ops

ROOT = pathlib.Path(__file__).resolve().parent.parent
WORKER = ROOT / "tests" / "mpi_worker.py"
sys.path.insert(0, str(ROOT / "tests"))
import mpi_worker  # noqa: E402

# relative error bar of the issue: max |distributed - one process| / max |one process| per tensor
TOLERANCE = 1e-5


def mpiexec():
    here = pathlib.Path(sys.executable).parent / "mpiexec"
    found = str(here) if here.exists() else shutil.which("mpiexec")
    assert found, "mpiexec not found: install the test extra (pip install '.[test]' brings mpi4py and mpich)"
    return found


def launch_env():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PMI_", "OMPI_", "MPI_", "HYDRA_"))}
    env.update(PYTHONPATH=str(ROOT / "python"), OMP_NUM_THREADS="1")
    return env


def run_mpi(n, *args, timeout=120, cwd=None):
    """(completed process, seconds) of `mpiexec -n n python args...`."""
    start = time.perf_counter()
    proc = subprocess.run([mpiexec(), "-n", str(n), sys.executable, *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, env=launch_env(), cwd=cwd or ROOT)
    return proc, time.perf_counter() - start


def relative_error(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(a)), 1e-30)) if a.size else 0.0


@pytest.fixture
def one_thread():
    before = ln.get_num_threads()
    ln.set_num_threads(1)
    yield
    ln.set_num_threads(before)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """One process: every case, the first epoch's checkpoint and its continuation."""
    before = ln.get_num_threads()
    ln.set_num_threads(1)
    folder = tmp_path_factory.mktemp("one_process")
    mpi_worker.checkpoint(folder / "epoch1.npz")
    mpi_worker.equality(folder / "ref.npz", resume_from=folder / "epoch1.npz")
    ln.set_num_threads(before)
    return folder, dict(np.load(folder / "ref.npz"))


def assert_matches(ref, got, ranks):
    assert int(got["size"]) == ranks
    checked = set()
    for key, value in ref.items():
        if key == "size":
            continue
        err = relative_error(value, got[key])
        assert err <= TOLERANCE, f"{key} on {ranks} ranks: relative error {err:.2e}"
        checked.add(key.split("/")[0])
    assert checked == set(mpi_worker.CASES) | {"resumed", "hand"}


# -- one process: nothing changes, mpi4py never imported -----------------------------------------
def test_import_and_one_process_fit_never_import_mpi4py():
    code = ("import sys, numpy as np, lstm_native as ln\n"
            "assert 'mpi4py' not in sys.modules\n"
            "assert ln.distributed.size() == 1 and ln.distributed.rank() == 0\n"
            "m = ln.Sequential(ln.LSTM(2, 4, batch_first=True), ln.LastTimestep(), ln.Linear(4, 1))\n"
            "ln.distributed.broadcast_parameters(m); ln.distributed.allreduce_gradients(m)\n"
            "m.fit(np.zeros((8, 3, 2), np.float32), np.zeros((8, 1), np.float32), verbose=0, distributed=True)\n"
            "with ln.distributed.together(): pass\n"
            "assert 'mpi4py' not in sys.modules, 'mpi4py was imported'\n")
    env = launch_env()
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr


def test_distributed_true_in_one_process_is_the_plain_fit(one_thread):
    for case in ("lstm", "classes"):
        model, history = mpi_worker.train(case)                    # distributed=True, not launched
        X, y, lengths = mpi_worker.data(classes=case == "classes")
        plain = mpi_worker.model_for(case)
        opt = ln.optim.Adam(plain.parameters(), lr=0.01)
        kw = dict(loss="cross_entropy", loss_kwargs={"weight": [1.0, 2.0, 0.5]}, lengths=lengths[:80]) \
            if case == "classes" else {}
        val = (X[80:], y[80:]) + ((lengths[80:],) if case == "classes" else ())
        h = plain.fit(X[:80], y[:80], epochs=2, batch_size=10, optimizer=opt, clip_grad_norm=1.0, seed=3,
                      verbose=0, validation_data=val, scheduler=ln.optim.StepLR(opt, step_size=1, gamma=0.5),
                      callbacks=[ln.callbacks.EarlyStopping(patience=5)], **kw)
        for k, v in plain.state_dict().items():
            np.testing.assert_array_equal(model.state_dict()[k], v)
        assert h.history == history.history


@pytest.mark.parametrize("loss, kwargs, shape, classes", [
    ("mse", {}, (6, 5, 2), False), ("mae", {}, (6, 5, 2), False), ("bce_with_logits", {}, (6, 5, 2), False),
    ("cross_entropy", {}, (6, 5, 3), True), ("cross_entropy", {"weight": [0.5, 2.0, 1.0]}, (6, 5, 3), True),
    ("cross_entropy", {"ignore_index": 1}, (6, 5, 3), True)])
@pytest.mark.parametrize("masked", [False, True])
def test_shares_weighted_by_loss_weight_give_the_global_mean_and_gradient(loss, kwargs, shape, classes, masked):
    """What each rank contributes: its loss and gradient times loss_weight, summed and divided by
    the sum of the weights, is the loss and gradient of the whole batch (any split, masks included)."""
    rng = np.random.default_rng(0)
    fn = losses.get(loss)
    pred = rng.standard_normal(shape)
    target = rng.integers(0, shape[-1], shape[:-1]) if classes else (
        (rng.random(shape) > 0.5).astype(float) if loss == "bce_with_logits" else rng.standard_normal(shape))
    mask = ops.length_mask(np.array([5, 1, 3, 4, 2, 5]), 6, 5) if masked else None
    whole_value, whole_grad = fn(pred, target, mask=mask, **kwargs)
    for cut in (1, 2, 4):
        parts = [slice(0, cut), slice(cut, 6)]
        total = value = 0.0
        grads = []
        for rows in parts:
            m = None if mask is None else mask[rows]
            v, g = fn(pred[rows], target[rows], mask=m, **kwargs)
            w = distributed.loss_weight(fn, pred[rows], target[rows], m, kwargs)
            total, value = total + w, value + v * w
            grads.append(g * w)
        np.testing.assert_allclose(value / total, whole_value, rtol=1e-12)
        np.testing.assert_allclose(np.concatenate(grads) / total, whole_grad, rtol=1e-12, atol=1e-15)


# -- several ranks: the parameters of one process ------------------------------------------------
def test_two_ranks_match_one_process_and_resume_its_checkpoint(reference, tmp_path):
    folder, ref = reference
    proc, _ = run_mpi(2, WORKER, "equality", tmp_path / "two.npz", folder / "epoch1.npz")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert_matches(ref, np.load(tmp_path / "two.npz"), 2)


def test_a_checkpoint_of_two_ranks_resumes_on_four_and_on_one(reference, tmp_path, one_thread):
    """Checkpoint written by 2 ranks after epoch 1 -> epoch 2 on 4 ranks and in one process:
    both continue as one process would. Also: only rank 0 prints and runs rank_zero_only callbacks."""
    folder, ref = reference
    ckpt = tmp_path / "epoch1.npz"
    proc, _ = run_mpi(2, WORKER, "checkpoint", ckpt, tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("Epoch 1/1") == 1                      # verbose=2: one line per epoch, rank 0's
    assert sorted(p.name for p in tmp_path.glob("written_by_rank_*")) == ["written_by_rank_0"]
    saved, original = ln.load(ckpt).state_dict(), ln.load(folder / "epoch1.npz").state_dict()
    for k in original:
        assert relative_error(original[k], saved[k]) <= TOLERANCE, k

    proc, _ = run_mpi(4, WORKER, "equality", tmp_path / "four.npz", ckpt, timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert_matches(ref, np.load(tmp_path / "four.npz"), 4)

    model, history = mpi_worker.train("lstm", resume_from=ckpt)     # M = 1
    for k, v in model.state_dict().items():
        assert relative_error(ref[f"resumed/{k}"], v) <= TOLERANCE, k


# -- failures: every rank ends, within 60 s, the error printed once ---------------------------------
@pytest.mark.parametrize("kind, message", [
    ("bad-data", "NonFiniteLossError: x contains NaN or infinity at epoch 1, batch 2"),
    ("nan-loss", "NonFiniteLossError: the loss became nan at epoch 1, batch 2"),
    ("raise", "KeyError: \"rank 1's loss failed\""),
    ("callback", "RuntimeError: rank 1's callback failed"),
    ("other-data", "ValueError: distributed fit needs the same data, model and settings on every rank "
                   "(each rank takes its own rows of every batch): samples is 50 on rank 0 but 60 on rank 1")])
def test_a_failure_on_one_rank_ends_every_rank(kind, message):
    proc, _ = run_mpi(2, WORKER, "fault", kind, timeout=60)       # a hang fails here (measured: 1-2 s)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output
    assert output.count(message) == 1, output
    assert "fit returned" not in output
    if kind in ("bad-data", "nan-loss", "raise"):                   # agreed: the one rank's traceback
        assert "(raised on rank 1 of 2; every rank stopped)" in output and "Abort" not in output
    elif kind == "callback":                                        # not agreed: MPI Abort ends all
        assert "failed alone; aborting every rank" in output


# -- the command line under mpiexec -----------------------------------------------------------------
def write_config(folder, distributed=True):
    t = np.arange(600)
    series = np.sin(t / 9.0) + 0.1 * np.cos(t / 3.0)
    np.savetxt(folder / "series.csv", series[:, None], delimiter=",", header="load", comments="")
    (folder / "config.toml").write_text(
        '[data]\npath = "series.csv"\nlookback = 12\n\n[model]\nhidden_size = 8\n\n'
        f'[training]\nepochs = 3\nbatch_size = 16\nverbose = 2\ndistributed = {str(distributed).lower()}\n')
    return folder / "config.toml"


def test_cli_train_under_mpiexec_matches_one_process(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir(), two.mkdir()
    proc = subprocess.run([sys.executable, "-m", "lstm_native", "train", write_config(one)], capture_output=True,
                          text=True, timeout=120, env=launch_env())
    assert proc.returncode == 0, proc.stderr
    proc, _ = run_mpi(2, "-m", "lstm_native", "train", write_config(two))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("saved the model") == 1
    a, b = ln.load(one / "model.npz").state_dict(), ln.load(two / "model.npz").state_dict()
    for k in a:
        assert relative_error(a[k], b[k]) <= TOLERANCE, k
    ha, hb = (json.loads((d / "history.json").read_text()) for d in (one, two))
    assert relative_error(ha["history"]["val_loss"], hb["history"]["val_loss"]) <= TOLERANCE


def test_cli_config_error_under_mpiexec_is_printed_once(tmp_path):
    config = write_config(tmp_path)
    config.write_text(config.read_text().replace("epochs = 3", "epochs = 0"))
    proc, _ = run_mpi(2, "-m", "lstm_native", "train", config, timeout=60)
    assert proc.returncode != 0
    assert proc.stderr.count("training.epochs: expected a positive integer") == 1, proc.stderr


# -- the example ------------------------------------------------------------------------------------
def test_distributed_example_quick_on_two_ranks_is_the_one_process_model(tmp_path, one_thread):
    import importlib.util
    spec = importlib.util.spec_from_file_location("distributed_forecast", ROOT / "examples" / "distributed_forecast.py")
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    alone = example.run(quick=True)
    assert alone["ranks"] == 1
    assert alone["lstm_mse"] * 3 <= alone["naive_mse"]
    proc, _ = run_mpi(2, ROOT / "examples" / "distributed_forecast.py", "--quick", "--json", tmp_path / "r.json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    together = json.loads((tmp_path / "r.json").read_text())
    assert together["ranks"] == 2
    assert together["epochs_run"] == alone["epochs_run"]
    assert relative_error(alone["lstm_mse"], together["lstm_mse"]) <= 1e-4
    assert re.search(r"2 ranks", proc.stdout)
