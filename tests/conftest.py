import os

import numpy as np
import pytest

import lstm_native as ln

# LSTM_NATIVE_RECORD_ERRORS=file appends every relative error measured to that file (test id,
# value), so the figures quoted in issue notes and bench/ come from the tests themselves.
_RECORD = os.environ.get("LSTM_NATIVE_RECORD_ERRORS")

# The folder holding the lstm_native these tests imported: site-packages after `pip install .`,
# python/ in a dev build. Child processes get it first on PYTHONPATH, so they run the same
# package; python/ of a checkout has no compiled core after a plain install.
PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(ln.__file__)))


def child_env(env=None, **extra):
    """Environment for a child Python (subprocess, mpiexec) that imports the lstm_native under test."""
    env = dict(os.environ if env is None else env)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (PACKAGE_PARENT, env.get("PYTHONPATH", "")) if p)
    env.update(extra)
    return env


def rel_err(a, b) -> float:
    """max |a - b| / max |b|: the relative error every bar is stated in."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    assert a.shape == b.shape, (a.shape, b.shape)
    scale = np.max(np.abs(b)) if b.size else 0.0
    diff = np.max(np.abs(a - b)) if b.size else 0.0
    err = diff / scale if scale > 0 else diff
    if _RECORD:
        with open(_RECORD, "a") as f:
            f.write(f"{os.environ.get('PYTEST_CURRENT_TEST', '?').split(' ')[0]}\t{err:.3e}\n")
    return err


@pytest.fixture(params=["serial", "units3", "units4", "batch3", "batch4"])
def threads(request):
    """Runs a test single-threaded, then with 3 and 4 threads forced onto every parallel path
    whatever the problem size, the step loop's team splitting the hidden units (uneven shares,
    barriers) or the batch (interleaved rows), both directions at once."""
    before_threads, before_grain = ln.get_num_threads(), ln._core.get_grain()
    if request.param == "serial":
        ln.set_num_threads(1)
    else:
        ln.set_num_threads(int(request.param[-1]))
        ln._core.set_grain(0.0)
        ln._core.set_step_split(request.param[:-1])
    yield request.param
    ln.set_num_threads(before_threads)
    ln._core.set_grain(before_grain)
    ln._core.set_step_split("auto")


def random_lengths(rng, batch, steps, allow_zero=False):
    """Unsorted lengths covering the full length, 1 and values between."""
    low = 0 if allow_zero else 1
    lengths = rng.integers(low, steps + 1, size=batch)
    lengths[rng.integers(batch)] = steps
    if batch > 2:
        lengths[(lengths.argmax() + 1) % batch] = low
    return lengths
