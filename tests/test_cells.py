"""Issue 21 (bars 1-4, 6) and issue 22 bar 7: the new cells through the C++ step loop, against
the float64 NumPy reference (float32 and float64, every way the team splits the work), finite
differences, torch where torch has the cell, and the layers' contract (step, stream, seeds,
save/load, errors)."""
import itertools
import zlib

import numpy as np
import pytest

import lstm_native as ln
from cell_cases import CELLS, case, make, run_ours, run_reference
from conftest import random_lengths, rel_err
from test_recurrent_gradcheck import check

NEW = ["rnn_tanh", "rnn_relu", "lstm_proj", "gru_reset_before", "ln_lstm", "ln_gru"]
REGULARISED = ["lstm", "gru", "gru_reset_before", "rnn_tanh", "ln_lstm", "ln_gru"]


def tolerance(name, dtype):
    # layer norm divides by each row's spread, so float32's rounding grows a little more there
    return 1e-12 if dtype == np.float64 else (3e-5 if name.startswith("ln_") else 1e-5)


def seed_of(*parts):
    return zlib.crc32(" ".join(map(str, parts)).encode())


def compare(name, layer, c, dtype):
    ours, ref = run_ours(layer, c), run_reference(name, layer, c)
    assert ours.keys() == ref.keys()
    for key in ref:
        assert rel_err(ours[key], ref[key]) < tolerance(name, dtype), key


@pytest.mark.parametrize("name", NEW)
@pytest.mark.parametrize("batch_first,with_states", [(False, True), (True, False)])
def test_new_cells_match_reference(name, batch_first, with_states, threads):
    rng = np.random.default_rng(seed_of(name, batch_first, with_states))
    layer = make(name, 3, 20, rng, num_layers=2, bidirectional=True, batch_first=batch_first, seed=1)
    c = case(rng, layer, 6, 5, with_states, random_lengths(rng, 5, 6))
    compare(name, layer, c, np.float32)


@pytest.mark.parametrize("name", NEW)
@pytest.mark.parametrize("layers,bidirectional,lengths", [(1, False, False), (3, False, True), (1, True, False)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_new_cells_shapes_and_dtypes(name, layers, bidirectional, lengths, dtype):
    rng = np.random.default_rng(seed_of(name, layers, bidirectional, lengths))
    layer = make(name, 4, 33, rng, num_layers=layers, bidirectional=bidirectional, dtype=dtype, seed=2)
    c = case(rng, layer, 5, 3, True, random_lengths(rng, 3, 5, allow_zero=True) if lengths else None, dtype)
    compare(name, layer, c, dtype)


# zoneout with proj_size is refused (test_bad_options)
REGULARISER_CASES = [(n, r) for n in REGULARISED for r in ("recurrent_dropout", "zoneout", "zoneout_eval", "both")] \
    + [("lstm_proj", "recurrent_dropout")]


@pytest.mark.parametrize("name,regulariser", REGULARISER_CASES)
def test_regularisers_match_reference_given_the_masks(name, regulariser, threads):
    """The masks the layer drew (from its own generator) fed to the reference: exact."""
    rng = np.random.default_rng(seed_of(name, regulariser))
    kw = {}
    if regulariser in ("recurrent_dropout", "both"):
        kw["recurrent_dropout"] = 0.4
    if regulariser != "recurrent_dropout":
        kw["zoneout"] = 0.3
    layer = make(name, 3, 18, rng, num_layers=2, bidirectional=True, batch_first=True, seed=3, **kw)
    if regulariser == "zoneout_eval":
        layer.eval()
    c = case(rng, layer, 7, 5, True, random_lengths(rng, 5, 7))
    compare(name, layer, c, np.float32)
    if regulariser != "zoneout_eval":
        assert all(m is not None for m in (layer._last_recurrent_masks if "dropout" in regulariser or
                                           regulariser == "both" else layer._last_zoneout_masks))


@pytest.mark.parametrize("name", NEW + ["lstm", "gru"])
@pytest.mark.parametrize("regulariser", ["none", "both"])
def test_compiled_float64_matches_finite_differences(name, regulariser):
    rng = np.random.default_rng(seed_of(name, regulariser, "fd"))
    kw = {}
    if regulariser == "both":
        kw = dict(recurrent_dropout=0.3) if name == "lstm_proj" else dict(recurrent_dropout=0.3, zoneout=0.3)
    layer = make(name, 3, 18, rng, num_layers=2, bidirectional=True, dtype=np.float64, seed=6, **kw)
    c = case(rng, layer, 5, 3, True, random_lengths(rng, 3, 5), np.float64)
    run_ours(layer, c)            # draws the masks; the finite differences reuse them
    masks = (layer._last_recurrent_masks, layer._last_zoneout_masks)
    layer._regularisers = lambda out_shape, batch, _it=itertools.cycle(zip(*masks)): (*next(_it), 0.0)
    layer.zero_grad()
    analytic = run_ours(layer, c)
    grads = {k[5:]: v for k, v in analytic.items() if k.startswith("grad_")}

    def forward():
        if layer.has_cell_state:
            out, (h_n, c_n) = layer(c["x"], (c["h0"], c["c0"]), lengths=c["lengths"])
        else:
            (out, h_n), c_n = layer(c["x"], c["h0"], lengths=c["lengths"]), None
        loss = np.sum(out * c["dout"]) + np.sum(h_n * c["dh_n"])
        return loss + (np.sum(c_n * c["dc_n"]) if c_n is not None else 0.0)

    tensors = dict({n: p.data for n, p in layer.named_parameters()}, x=c["x"], h0=c["h0"])
    expected = dict(grads, x=analytic["dx"], h0=analytic["dh0"])
    if layer.has_cell_state:
        tensors["c0"], expected["c0"] = c["c0"], analytic["dc0"]
    assert check(name, rng, forward, expected, tensors) < 1e-6
