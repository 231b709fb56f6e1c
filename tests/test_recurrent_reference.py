"""Bar: the compiled layers (float32 and float64) agree with the NumPy float64 reference."""
import itertools

import numpy as np
import pytest

from conftest import random_lengths, rel_err
from recurrent_cases import make_layer, random_case, run_ours, run_reference

CELLS = ["lstm", "gru"]
MATRIX = list(itertools.product([1, 2, 3], [False, True], [False, True], [False, True], [False, True]))


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("layers,bidirectional,batch_first,with_states,with_lengths", MATRIX)
def test_float32_matches_reference(cell, layers, bidirectional, batch_first, with_states, with_lengths, threads):
    rng = np.random.default_rng(layers * 16 + bidirectional * 8 + batch_first * 4 + with_states * 2 + with_lengths)
    steps, batch, input_size, hidden = 6, 4, 3, 20   # hidden 20: one full unit block and a partial one
    layer = make_layer(cell, input_size, hidden, num_layers=layers, bidirectional=bidirectional,
                       batch_first=batch_first, seed=1)
    lengths = random_lengths(rng, batch, steps) if with_lengths else None
    case = random_case(rng, cell, layer, steps, batch, with_states, lengths)
    ours, ref = run_ours(cell, layer, case), run_reference(cell, layer, case)
    assert ours.keys() == ref.keys()
    for key in ref:
        assert rel_err(ours[key], ref[key]) < 1e-5, key


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("steps,batch,input_size,hidden,lengths", [
    (1, 1, 4, 7, None),             # T = 1, batch 1
    (5, 1, 2, 33, None),            # batch 1; 33 units: two full blocks and a 1-wide one
    (1, 3, 5, 16, [1, 1, 1]),       # T = 1 with lengths
    (7, 3, 8, 48, [3, 7, 5]),       # several full blocks, unsorted lengths
    (4, 5, 3, 6, [0, 4, 2, 0, 1]),  # zero-length sequences: output 0, final state = initial
])
def test_edge_shapes_match_reference(cell, steps, batch, input_size, hidden, lengths, threads):
    rng = np.random.default_rng(steps * 100 + batch)
    for bidirectional in (False, True):
        layer = make_layer(cell, input_size, hidden, num_layers=2, bidirectional=bidirectional, seed=2)
        case = random_case(rng, cell, layer, steps, batch, True, None if lengths is None else np.array(lengths))
        ours, ref = run_ours(cell, layer, case), run_reference(cell, layer, case)
        for key in ref:
            assert rel_err(ours[key], ref[key]) < 1e-5, (key, bidirectional)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("input_size,hidden", [(1, 24), (2, 16), (3, 20)])
@pytest.mark.parametrize("with_lengths", [False, True])
def test_narrow_inputs_match_reference(cell, input_size, hidden, with_lengths, threads):
    """An LSTM whose input is narrow (8 I <= H) takes x_t into each step's product instead of
    projecting all steps first; (3, 20) stays on the projection path, as a control."""
    rng = np.random.default_rng(input_size * 10 + with_lengths)
    steps, batch = 9, 8
    for bidirectional in (False, True):
        layer = make_layer(cell, input_size, hidden, num_layers=2, bidirectional=bidirectional, batch_first=True,
                           seed=5)
        lengths = random_lengths(rng, batch, steps) if with_lengths else None
        case = random_case(rng, cell, layer, steps, batch, True, lengths)
        ours, ref = run_ours(cell, layer, case), run_reference(cell, layer, case)
        for key in ref:
            assert rel_err(ours[key], ref[key]) < 1e-5, (key, bidirectional)


@pytest.mark.parametrize("cell", CELLS)
def test_zero_length_sequences_pass_state_through(cell):
    layer = make_layer(cell, 3, 5, seed=0)
    rng = np.random.default_rng(0)
    case = random_case(rng, cell, layer, 4, 3, True, np.array([0, 4, 2]))
    ours = run_ours(cell, layer, case)
    assert np.all(ours["out"][:, 0] == 0)
    np.testing.assert_array_equal(ours["h_n"][:, 0], case["h0"][:, 0])
    np.testing.assert_array_equal(ours["dh0"][:, 0], case["dh_n"][:, 0])
    assert np.all(ours["out"][2:, 2] == 0)   # past the length of sequence 2


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("bidirectional", [False, True])
def test_float64_path_matches_reference_tightly(cell, bidirectional, threads):
    rng = np.random.default_rng(3)
    layer = make_layer(cell, 4, 20, num_layers=2, bidirectional=bidirectional, dtype=np.float64, seed=3)
    case = random_case(rng, cell, layer, 6, 4, True, random_lengths(rng, 4, 6), dtype=np.float64)
    ours, ref = run_ours(cell, layer, case), run_reference(cell, layer, case)
    for key in ref:
        assert ours[key].dtype == np.float64
        assert rel_err(ours[key], ref[key]) < 1e-12, key


@pytest.mark.parametrize("cell", CELLS)
def test_dropout_between_layers_matches_reference_with_same_masks(cell):
    rng = np.random.default_rng(4)
    layer = make_layer(cell, 3, 20, num_layers=3, bidirectional=True, dropout=0.4, seed=4)
    case = random_case(rng, cell, layer, 5, 3, False, np.array([5, 2, 4]))
    ours = run_ours(cell, layer, case)
    masks = [m for m in layer.__dict__["_last_masks"] if m is not None]
    assert len(masks) == 2 and all(set(np.unique(m)) <= {0.0, np.float32(1 / 0.6)} for m in masks)
    ref = run_reference(cell, layer, case, dropout_masks=masks)
    for key in ref:
        assert rel_err(ours[key], ref[key]) < 1e-5, key


@pytest.mark.parametrize("cell", CELLS)
def test_dropout_is_reproducible_with_seed_and_off_in_eval(cell):
    x = np.random.default_rng(0).standard_normal((6, 2, 3)).astype(np.float32)
    a = make_layer(cell, 3, 8, num_layers=2, dropout=0.5, seed=7)
    b = make_layer(cell, 3, 8, num_layers=2, dropout=0.5, seed=7)
    np.testing.assert_array_equal(a(x)[0], b(x)[0])
    assert not np.array_equal(a(x)[0], a(x)[0])        # fresh masks each call in training
    a.eval()
    np.testing.assert_array_equal(a(x)[0], a(x)[0])    # no dropout in eval
