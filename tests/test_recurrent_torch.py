"""Bar: parity with torch.nn.LSTM / torch.nn.GRU on the same weights, packed sequences included."""
import itertools

import numpy as np
import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from conftest import random_lengths, rel_err
from recurrent_cases import make_layer, random_case, run_ours

TORCH = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}


def run_torch(cell, layer, case):
    model = TORCH[cell](layer.input_size, layer.hidden_size, num_layers=layer.num_layers, bias=layer.bias,
                        batch_first=layer.batch_first, bidirectional=layer.bidirectional, dropout=0.0)
    model.load_state_dict({k: torch.from_numpy(v) for k, v in layer.state_dict().items()})
    x = torch.tensor(case["x"], requires_grad=True)
    h0 = None if case["h0"] is None else torch.tensor(case["h0"], requires_grad=True)
    hx = h0
    if cell == "lstm" and h0 is not None:
        c0 = torch.tensor(case["c0"], requires_grad=True)
        hx = (h0, c0)
    lengths = case["lengths"]
    if lengths is not None:
        steps = x.shape[1] if layer.batch_first else x.shape[0]
        packed = pack_padded_sequence(x, torch.tensor(lengths), batch_first=layer.batch_first, enforce_sorted=False)
        out_packed, state = model(packed, hx)
        out, _ = pad_packed_sequence(out_packed, batch_first=layer.batch_first, total_length=steps)
    else:
        out, state = model(x, hx)
    h_n, c_n = state if cell == "lstm" else (state, None)
    loss = (out * torch.from_numpy(case["dout"])).sum() + (h_n * torch.from_numpy(case["dh_n"])).sum()
    if cell == "lstm":
        loss = loss + (c_n * torch.from_numpy(case["dc_n"])).sum()
    loss.backward()
    res = dict(out=out, h_n=h_n, dx=x.grad)
    if cell == "lstm":
        res["c_n"] = c_n
    if h0 is not None:
        res["dh0"] = h0.grad
        if cell == "lstm":
            res["dc0"] = hx[1].grad
    res.update({"grad_" + k: p.grad for k, p in model.named_parameters()})
    return {k: v.detach().numpy() for k, v in res.items()}


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("layers,bidirectional,batch_first,with_states,packed",
                         list(itertools.product([1, 2], [False, True], [False, True], [False, True], [False, True])))
def test_matches_torch(cell, layers, bidirectional, batch_first, with_states, packed):
    rng = np.random.default_rng(layers * 16 + bidirectional * 8 + batch_first * 4 + with_states * 2 + packed)
    steps, batch = 7, 5
    layer = make_layer(cell, 6, 24, num_layers=layers, bidirectional=bidirectional, batch_first=batch_first, seed=3)
    lengths = random_lengths(rng, batch, steps) if packed else None
    case = random_case(rng, cell, layer, steps, batch, with_states, lengths)
    ours, theirs = run_ours(cell, layer, case), run_torch(cell, layer, case)
    for key in theirs:
        assert rel_err(ours[key], theirs[key]) < 1e-5, key


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_matches_torch_without_bias_and_at_larger_size(cell):
    rng = np.random.default_rng(11)
    layer = make_layer(cell, 40, 72, num_layers=2, bias=False, bidirectional=True, seed=4)
    case = random_case(rng, cell, layer, 30, 9, True, random_lengths(rng, 9, 30))
    ours, theirs = run_ours(cell, layer, case), run_torch(cell, layer, case)
    for key in theirs:
        assert rel_err(ours[key], theirs[key]) < 1e-5, key


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_matches_torch_at_the_sine_forecasting_shape(cell):
    """S1's shape (I = 1, H = 64): x joins each step's product, dW is computed transposed."""
    rng = np.random.default_rng(12)
    layer = make_layer(cell, 1, 64, batch_first=True, seed=6)
    case = random_case(rng, cell, layer, 20, 16, True, random_lengths(rng, 16, 20))
    ours, theirs = run_ours(cell, layer, case), run_torch(cell, layer, case)
    for key in theirs:
        assert rel_err(ours[key], theirs[key]) < 1e-5, key


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_default_initialisation_matches_torch_distribution(cell):
    layer = make_layer(cell, 10, 64, num_layers=2, bidirectional=True, seed=0)
    model = TORCH[cell](10, 64, num_layers=2, bidirectional=True)
    theirs = dict(model.named_parameters())
    bound = 1 / np.sqrt(64)
    for name, value in layer.state_dict().items():
        assert value.shape == tuple(theirs[name].shape), name
        assert value.dtype == np.float32
        assert np.abs(value).max() <= bound and np.abs(value).max() > 0.9 * bound
        std = bound / np.sqrt(3)                        # the std of U(-bound, bound)
        assert abs(value.mean()) < 4 * std / np.sqrt(value.size)
        assert abs(value.std() / std - 1) < 0.1
