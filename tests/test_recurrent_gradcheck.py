"""Bar: finite-difference gradient checks of the NumPy reference and the C++ float64 path."""
import numpy as np
import pytest

from conftest import random_lengths, rel_err
from recurrent_cases import make_layer, random_case
from lstm_native import reference

EPS = 1e-6


def scalar_loss(cell, out, h_n, c_n, w):
    loss = np.sum(out * w["dout"]) + np.sum(h_n * w["dh_n"])
    if cell == "lstm":
        loss += np.sum(c_n * w["dc_n"])
    return loss


def probe_indices(rng, arr, count=4):
    flat = rng.choice(arr.size, size=min(count, arr.size), replace=False)
    return [np.unravel_index(i, arr.shape) for i in flat]


def check(cell, rng, forward, analytic, tensors):
    """Central differences of forward() at a few entries of every tensor vs analytic grads."""
    numeric_all, analytic_all = [], []
    for name, arr in tensors.items():
        for idx in probe_indices(rng, arr):
            saved = arr[idx]
            arr[idx] = saved + EPS
            up = forward()
            arr[idx] = saved - EPS
            down = forward()
            arr[idx] = saved
            numeric_all.append((up - down) / (2 * EPS))
            analytic_all.append(analytic[name][idx])
    return rel_err(numeric_all, analytic_all)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("with_lengths", [False, True])
def test_reference_gradients_match_finite_differences(cell, bidirectional, with_lengths):
    rng = np.random.default_rng(5)
    layer = make_layer(cell, 3, 5, num_layers=2, bidirectional=bidirectional, dtype=np.float64, seed=5)
    lengths = random_lengths(rng, 3, 4) if with_lengths else None
    case = random_case(rng, cell, layer, 4, 3, True, lengths, dtype=np.float64)
    params = layer.state_dict()
    L, D = layer.num_layers, layer.num_directions

    def forward():
        out, h_n, c_n, _ = reference.rnn_forward(cell, case["x"], params, L, bidirectional, case["h0"],
                                                 case.get("c0"), lengths)
        return scalar_loss(cell, out, h_n, c_n, case)

    _, _, _, cache = reference.rnn_forward(cell, case["x"], params, L, bidirectional, case["h0"], case.get("c0"), lengths)
    dx, dh0, dc0, grads = reference.rnn_backward(cache, case["dout"], case["dh_n"], case.get("dc_n"))
    tensors = dict(params, x=case["x"], h0=case["h0"])
    analytic = dict(grads, x=dx, h0=dh0)
    if cell == "lstm":
        tensors["c0"], analytic["c0"] = case["c0"], dc0
    assert check(cell, rng, forward, analytic, tensors) < 1e-6


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("batch_first", [False, True])
def test_compiled_float64_gradients_match_finite_differences(cell, bidirectional, batch_first, threads):
    rng = np.random.default_rng(6)
    layer = make_layer(cell, 3, 18, num_layers=2, bidirectional=bidirectional, batch_first=batch_first,
                       dtype=np.float64, seed=6)
    lengths = random_lengths(rng, 3, 5)
    case = random_case(rng, cell, layer, 5, 3, True, lengths, dtype=np.float64)
    hx = (case["h0"], case["c0"]) if cell == "lstm" else case["h0"]

    def forward():
        out, state = layer(case["x"], hx, lengths=lengths)
        h_n, c_n = state if cell == "lstm" else (state, None)
        return scalar_loss(cell, out, h_n, c_n, case)

    layer.zero_grad()
    forward()
    if cell == "lstm":
        dx, (dh0, dc0) = layer.backward(case["dout"], case["dh_n"], case["dc_n"])
    else:
        dx, dh0 = layer.backward(case["dout"], case["dh_n"])
    analytic = dict({k: v.copy() for k, v in layer.grads.items()}, x=dx, h0=dh0)
    tensors = dict({name: p.data for name, p in layer.named_parameters()}, x=case["x"], h0=case["h0"])
    if cell == "lstm":
        tensors["c0"], analytic["c0"] = case["c0"], dc0
    assert check(cell, rng, forward, analytic, tensors) < 1e-6
