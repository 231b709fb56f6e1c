"""What the property-based tests (test_fuzz.py) share: hypothesis profiles, the forms an array
argument can take, and the checks every case ends in.

Every fuzzed call must end in one of two ways: a result that agrees with an oracle (the same
call on the argument's plain C-contiguous float copy, a NumPy reference, or both), or a
ValueError/TypeError whose message names the argument. Anything else fails: another exception
type, a message naming none of the arguments, a different result for an equivalent argument,
a hang (the watchdog below aborts the process with every thread's traceback) or a crash
(pytest dies loudly, with faulthandler's traceback).

Profiles (LSTM_NATIVE_FUZZ): "ci" (the default) runs FUZZ_EXAMPLES examples per target;
"long" runs 10^4 per target. LSTM_NATIVE_FUZZ_EXAMPLES=N overrides the count of either.
"""
from __future__ import annotations

import faulthandler
import functools
import os
import re

import numpy as np
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st

PROFILE = os.environ.get("LSTM_NATIVE_FUZZ", "ci")
_COUNTS = {"ci": 200, "long": 10_000}
if PROFILE not in _COUNTS:
    raise ValueError(f"LSTM_NATIVE_FUZZ must be one of {sorted(_COUNTS)}, got {PROFILE!r}")
FUZZ_EXAMPLES = int(os.environ.get("LSTM_NATIVE_FUZZ_EXAMPLES", _COUNTS[PROFILE]))
_QUIET = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much,
          HealthCheck.function_scoped_fixture]
for _name in _COUNTS:
    settings.register_profile(f"lstm_native_{_name}", max_examples=FUZZ_EXAMPLES, deadline=None,
                              suppress_health_check=_QUIET, print_blob=True,
                              phases=[p for p in Phase if p != Phase.explain])
settings.load_profile(f"lstm_native_{PROFILE}")

HANG_SECONDS = 120   # one example running this long is a hang: abort with every thread's stack


def watchdog(fn):
    """Aborts the process (with tracebacks) if one example runs past HANG_SECONDS."""
    @functools.wraps(fn)
    def run(*args, **kwargs):
        faulthandler.dump_traceback_later(HANG_SECONDS, exit=True)
        try:
            return fn(*args, **kwargs)
        finally:
            faulthandler.cancel_dump_traceback_later()
    return run


# -- outcomes -----------------------------------------------------------------------------
class Raised:
    """A call that raised a ValueError/TypeError naming its argument."""

    def __init__(self, exc):
        self.exc = exc

    def __repr__(self):
        return f"Raised({type(self.exc).__name__}: {self.exc})"


def names_one_of(message: str, names) -> bool:
    return any(re.search(r"(?<![A-Za-z0-9_])" + re.escape(n) + r"(?![A-Za-z0-9_])", message) for n in names)


def outcome(fn, *names):
    """fn()'s result, or Raised for a ValueError/TypeError whose message names one of `names`.
    Any other exception, or one naming none of them, fails the test."""
    try:
        return fn()
    except (ValueError, TypeError) as exc:
        assert names_one_of(str(exc), names), f"{type(exc).__name__}({str(exc)!r}) names none of {names}"
        return Raised(exc)


def raises(fn, *names, kind=(ValueError, TypeError)):
    """fn() must raise (a `kind` of) ValueError/TypeError naming one of `names`."""
    result = outcome(fn, *names)
    assert isinstance(result, Raised), f"expected an error naming one of {names}, got a result"
    assert isinstance(result.exc, kind), f"expected {kind}, got {result!r}"
    return result.exc


def assert_same(got, expected, path="result", exact=True, rtol=0.0, atol=0.0):
    """Equal outcomes: both raised the same exception type, or equal results (arrays: same
    shape and dtype, native byte order; equal values, NaN where NaN; nested tuples/lists/dicts)."""
    if isinstance(expected, np.generic):    # NumPy gives a scalar for a 0-d operation's result
        expected = np.asarray(expected)
    if isinstance(got, np.generic):
        got = np.asarray(got)
    if isinstance(expected, Raised) or isinstance(got, Raised):
        assert isinstance(got, Raised) and isinstance(expected, Raised), f"{path}: {got!r} vs {expected!r}"
        assert type(got.exc) is type(expected.exc), f"{path}: {got!r} vs {expected!r}"
        return
    if isinstance(expected, np.ndarray):
        assert isinstance(got, np.ndarray), f"{path}: {type(got).__name__}, expected an ndarray"
        assert got.shape == expected.shape, f"{path}: shape {got.shape} vs {expected.shape}"
        assert got.dtype == expected.dtype, f"{path}: dtype {got.dtype} vs {expected.dtype}"
        assert got.dtype.isnative, f"{path}: non-native byte order {got.dtype.str}"
        if exact:
            np.testing.assert_array_equal(got, expected, err_msg=path)
        else:
            np.testing.assert_allclose(got, expected, rtol=rtol, atol=atol, err_msg=path)
        return
    if isinstance(expected, (tuple, list)):
        assert isinstance(got, (tuple, list)) and len(got) == len(expected), f"{path}: {got!r} vs {expected!r}"
        for i, (g, e) in enumerate(zip(got, expected)):
            assert_same(g, e, f"{path}[{i}]", exact, rtol, atol)
        return
    if isinstance(expected, dict):
        assert isinstance(got, dict) and list(got) == list(expected), f"{path}: keys {list(got)} vs {list(expected)}"
        for k in expected:
            assert_same(got[k], expected[k], f"{path}[{k!r}]", exact, rtol, atol)
        return
    if isinstance(expected, float) and np.isnan(expected):
        assert isinstance(got, float) and np.isnan(got), f"{path}: {got!r} vs nan"
        return
    assert got == expected, f"{path}: {got!r} vs {expected!r}"


def close(got, expected, dtype, path="result", scale=1.0):
    """got (a layer's output in `dtype`) against a float64 oracle, at that dtype's precision."""
    tol = (2e-4 if np.dtype(dtype) == np.float32 else 1e-9) * scale
    got = np.asarray(got)
    assert got.shape == np.shape(expected), f"{path}: shape {got.shape} vs {np.shape(expected)}"
    np.testing.assert_allclose(got.astype(np.float64), expected, rtol=tol, atol=tol, equal_nan=True, err_msg=path)


def finite_result(value, path="result"):
    """A result computed from finite arguments must be finite."""
    if isinstance(value, (tuple, list)):
        for i, v in enumerate(value):
            finite_result(v, f"{path}[{i}]")
    elif isinstance(value, np.ndarray):
        assert np.isfinite(value).all(), f"{path}: finite arguments gave NaN or inf"
    elif isinstance(value, float):
        assert np.isfinite(value), f"{path}: finite arguments gave {value}"


# -- the forms of an array argument ----------------------------------------------------------
# Equivalent forms: the call must give exactly the result it gives on plain(form, dtype).
FLOAT_FORMS = ("c", "float64", "float16", "big_endian", "strided", "reversed", "fortran", "list")
# Forms that are not floating point: the call must raise a TypeError naming the argument.
NON_FLOAT_FORMS = ("int32", "int64", "uint8", "bool", "object", "complex", "str")


def strided(x: np.ndarray, reverse: bool = False) -> np.ndarray:
    """A non-contiguous view holding x's values (every second element of a bigger buffer)."""
    if x.ndim == 0:
        return x.copy()
    big = np.zeros(tuple(2 * s + 1 for s in x.shape), x.dtype)
    step = -2 if reverse else 2
    view = big[tuple(slice(None, None, step) if reverse else slice(1, None, step) for _ in x.shape)]
    view = view[tuple(slice(0, s) for s in x.shape)]
    view[...] = x
    return view


def make_form(x: np.ndarray, form: str):
    """x (a float array) in the given form."""
    if form == "c":
        return x.copy()
    if form == "float64":
        return x.astype(np.float64)
    if form == "float32":
        return x.astype(np.float32)
    if form == "float16":
        with np.errstate(over="ignore"):
            return x.astype(np.float16)
    if form == "big_endian":
        return x.astype(">f4") if x.dtype.itemsize == 4 else x.astype(">f8")
    if form == "strided":
        return strided(x)
    if form == "reversed":
        return strided(x, reverse=True)
    if form == "fortran":
        return np.asfortranarray(x)
    if form == "list":
        return x.tolist()
    if form in ("int32", "int64", "uint8"):
        with np.errstate(invalid="ignore"):
            return np.nan_to_num(x).astype(form)
    if form == "bool":
        return x > 0
    if form == "object":
        return x.astype(object)
    if form == "complex":
        return x.astype(np.complex64)
    if form == "str":
        return x.astype(str)
    raise AssertionError(form)


def plain(value, dtype):
    """The C-contiguous array of `dtype` a float argument stands for (a list as NumPy reads it)."""
    arr = np.asarray(value)
    return np.asarray(arr, dtype=dtype, order="C") if arr.dtype.kind == "f" else arr


def is_float_form(form: str) -> bool:
    return form in FLOAT_FORMS or form == "float32"


# -- values ---------------------------------------------------------------------------------
SPECIALS = (np.nan, np.inf, -np.inf)


@st.composite
def float_arrays(draw, shape, specials=True, scale=1.0, dtype=np.float32):
    """A float array of `shape` (random normal values, sometimes extreme ones), and whether
    every value is finite."""
    seed = draw(st.integers(0, 2**32 - 1))
    x = np.asarray(np.random.default_rng(seed).standard_normal(shape) * scale).astype(dtype)
    finite = True
    if x.size and draw(st.integers(0, 9)) == 0:     # a big or tiny value somewhere
        x.flat[draw(st.integers(0, x.size - 1))] = draw(st.sampled_from([1e4, -1e4, 1e-40, 0.0]))
    if specials and x.size and draw(st.integers(0, 9)) == 0:
        x.flat[draw(st.integers(0, x.size - 1))] = draw(st.sampled_from(SPECIALS))
        finite = False
    return x, finite


def forms(allow_non_float=True):
    choices = FLOAT_FORMS + (NON_FLOAT_FORMS if allow_non_float else ())
    # the plain form most often, so that deeper checks run on it
    return st.one_of(st.just("c"), st.sampled_from(choices))


layer_dtypes = st.sampled_from([np.float32, np.float64])
seeds = st.integers(0, 2**31 - 1)


def plain_any(value):
    """For layers without a dtype of their own: the argument as a native-order C array of its
    own float width (a list as NumPy reads it: float64)."""
    arr = np.asarray(value)
    if arr.dtype.kind == "f":
        return np.asarray(arr, dtype=arr.dtype.newbyteorder("="), order="C")
    return arr


def paired(make, call, plain_args, form_args, names):
    """Two identical layers from make(): a called on the plain arguments, b on their drawn forms.
    The outcomes must agree; returns (a, b, b's outcome)."""
    a, b = make(), make()
    expected = outcome(lambda: call(a, *plain_args), *names)
    got = outcome(lambda: call(b, *form_args), *names)
    assert_same(got, expected)
    return a, b, got


def check_validity(valid, got):
    """A valid call must give a result, an invalid one an error (already checked to name its argument)."""
    assert valid == (not isinstance(got, Raised)), f"valid={valid}, got {got!r}"
