"""The bugs the property-based tests (test_fuzz.py) found, one plain test each, so that they
stay fixed whatever the fuzzer draws next time. tests/FUZZ.md lists them."""
import numpy as np
import pytest

import lstm_native as ln


def test_a_scalar_is_not_taken_for_a_one_feature_vector():
    # float_array used np.ascontiguousarray, which makes a 0-d array 1-d: a scalar x_t passed
    # step's (batch, I) or (I,) check as one series of one feature, and Linear(1, k) took a scalar.
    lstm = ln.LSTM(1, 3)
    with pytest.raises(ValueError, match=r"x_t must have shape"):
        lstm.step(np.float32(0.5))
    with pytest.raises(ValueError, match=r"x must have 1 features"):
        ln.Linear(1, 2)(np.float64(0.5))
    with pytest.raises(ValueError, match="X"):
        ln.Sequential(ln.Linear(1, 1)).predict(np.float32(1.0))
