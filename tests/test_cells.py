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


# -- torch where torch has the cell: nn.RNN (tanh, relu) and nn.LSTM(proj_size) ------------------------
def torch_twin(layer):
    import torch
    common = dict(num_layers=layer.num_layers, bias=layer.bias, batch_first=layer.batch_first,
                  bidirectional=layer.bidirectional)
    if isinstance(layer, ln.RNN):
        model = torch.nn.RNN(layer.input_size, layer.hidden_size, nonlinearity=layer.nonlinearity, **common)
    else:
        model = torch.nn.LSTM(layer.input_size, layer.hidden_size, proj_size=layer.proj_size, **common)
    model.load_state_dict({k: torch.from_numpy(v) for k, v in layer.state_dict().items()})
    return model


def run_torch(layer, c):
    import torch
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
    model = torch_twin(layer)
    x = torch.tensor(c["x"], requires_grad=True)
    h0 = None if c["h0"] is None else torch.tensor(c["h0"], requires_grad=True)
    c0 = torch.tensor(c["c0"], requires_grad=True) if layer.has_cell_state and h0 is not None else None
    hx = (h0, c0) if c0 is not None else h0
    if c["lengths"] is not None:
        steps = x.shape[1] if layer.batch_first else x.shape[0]
        packed = pack_padded_sequence(x, torch.tensor(c["lengths"]), batch_first=layer.batch_first,
                                      enforce_sorted=False)
        out, state = model(packed, hx)
        out, _ = pad_packed_sequence(out, batch_first=layer.batch_first, total_length=steps)
    else:
        out, state = model(x, hx)
    h_n, c_n = state if layer.has_cell_state else (state, None)
    loss = (out * torch.from_numpy(c["dout"])).sum() + (h_n * torch.from_numpy(c["dh_n"])).sum()
    if c_n is not None:
        loss = loss + (c_n * torch.from_numpy(c["dc_n"])).sum()
    loss.backward()
    res = dict(out=out, h_n=h_n, dx=x.grad)
    if c_n is not None:
        res["c_n"] = c_n
    if h0 is not None:
        res["dh0"] = h0.grad
        if c0 is not None:
            res["dc0"] = c0.grad
    res.update({"grad_" + k: p.grad for k, p in model.named_parameters()})
    return {k: v.detach().numpy() for k, v in res.items()}


@pytest.mark.parametrize("name", ["rnn_tanh", "rnn_relu", "lstm_proj"])
@pytest.mark.parametrize("layers,bidirectional,batch_first,with_states,packed",
                         list(itertools.product([1, 2], [False, True], [False, True], [False, True], [False, True])))
def test_matches_torch(name, layers, bidirectional, batch_first, with_states, packed):
    rng = np.random.default_rng(seed_of(name, layers, bidirectional, batch_first, with_states, packed))
    steps, batch = 7, 5
    layer = make(name, 6, 24, rng, num_layers=layers, bidirectional=bidirectional, batch_first=batch_first, seed=3)
    c = case(rng, layer, steps, batch, with_states, random_lengths(rng, batch, steps) if packed else None)
    ours, theirs = run_ours(layer, c), run_torch(layer, c)
    assert set(theirs) <= set(ours)
    for key in theirs:
        assert rel_err(ours[key], theirs[key]) < 1e-5, key


@pytest.mark.parametrize("name", ["rnn_tanh", "rnn_relu", "lstm_proj"])
def test_matches_torch_without_bias_at_a_larger_size_and_narrow_input(name):
    rng = np.random.default_rng(seed_of(name, "large"))
    for input_size, hidden, steps, batch in ((40, 72, 30, 9), (1, 64, 20, 16)):   # (1, 64): x joins the product
        layer = make(name, input_size, hidden, rng, num_layers=2, bias=input_size > 1, bidirectional=True, seed=4)
        c = case(rng, layer, steps, batch, True, random_lengths(rng, batch, steps))
        ours, theirs = run_ours(layer, c), run_torch(layer, c)
        for key in theirs:
            assert rel_err(ours[key], theirs[key]) < 1e-5, (key, input_size)


# -- step and stream, evaluation's semantics -----------------------------------------------------------
@pytest.mark.parametrize("name", NEW + ["lstm", "gru"])
@pytest.mark.parametrize("zoneout", [0.0, 0.25])
def test_step_and_stream_equal_the_sequence_in_eval(name, zoneout):
    if name == "lstm_proj" and zoneout:
        zoneout = 0.0          # refused with proj_size; the projection's step is still checked
    rng = np.random.default_rng(seed_of(name, zoneout, "step"))
    layer = make(name, 3, 20, rng, num_layers=2, batch_first=True, seed=5, zoneout=zoneout,
                 recurrent_dropout=0.3)
    layer.eval()
    x = rng.standard_normal((4, 6, 3)).astype(np.float32)
    out, _ = layer(x)
    state = None
    for t in range(6):
        y_t, state = layer.step(x[:, t], state)
        np.testing.assert_allclose(y_t, out[:, t], rtol=1e-5, atol=1e-6)
    model = ln.Sequential(layer)
    stream = model.stream()
    for t in range(6):
        np.testing.assert_allclose(stream.step(x[:, t]), out[:, t], rtol=1e-5, atol=1e-6)


# -- training mode only, reproducible -----------------------------------------------------------------
@pytest.mark.parametrize("cls", [ln.LSTM, ln.GRU, ln.RNN, ln.LayerNormLSTM, ln.LayerNormGRU])
def test_regularisers_act_in_training_only_and_reproduce_under_a_seed(cls):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((3, 9, 4)).astype(np.float32)
    plain = cls(4, 12, batch_first=True, seed=11)
    reg = cls(4, 12, batch_first=True, seed=11, recurrent_dropout=0.4, zoneout=0.3)
    twin = cls(4, 12, batch_first=True, seed=11, recurrent_dropout=0.4, zoneout=0.3)
    for m in (plain, reg, twin):
        m.eval()
    # eval: recurrent dropout is the identity, zoneout its expectation (not the plain cell)
    reg_no_zoneout = cls(4, 12, batch_first=True, seed=11, recurrent_dropout=0.4)
    reg_no_zoneout.eval()
    np.testing.assert_array_equal(reg_no_zoneout(x)[0], plain(x)[0])
    assert not np.allclose(reg(x)[0], plain(x)[0])
    for m in (plain, reg, twin):
        m.train()
    a, b = reg(x)[0], twin(x)[0]
    np.testing.assert_array_equal(a, b)                       # same seed: same masks
    assert not np.array_equal(reg(x)[0], a)                   # a new call draws new masks
    assert not np.allclose(a, plain(x)[0])
    ln.manual_seed(5)
    m1 = cls(4, 12, batch_first=True, recurrent_dropout=0.4, zoneout=0.3)
    y1 = m1(x)[0]
    ln.manual_seed(5)
    m2 = cls(4, 12, batch_first=True, recurrent_dropout=0.4, zoneout=0.3)
    np.testing.assert_array_equal(m2(x)[0], y1)


def test_recurrent_dropout_mask_is_one_per_sequence_and_zoneout_per_step():
    layer = ln.LSTM(2, 16, num_layers=2, bidirectional=True, batch_first=True, seed=0, recurrent_dropout=0.5,
                    zoneout=0.25)
    layer(np.ones((64, 30, 2), np.float32))
    rec, keep = layer._last_recurrent_masks[0], layer._last_zoneout_masks[0]
    assert rec.shape == (2, 64, 16) and set(np.unique(rec)) == {0.0, 2.0}
    assert keep.shape == (64, 30, 32) and keep.dtype == np.uint8
    assert abs(rec.astype(bool).mean() - 0.5) < 0.05 and abs(keep.mean() - 0.25) < 0.02


# -- options: errors, config, save/load, info --------------------------------------------------------
@pytest.mark.parametrize("factory,words", [
    (lambda: ln.LSTM(3, 5, recurrent_dropout=1.0), r"recurrent_dropout must be in \[0, 1\)"),
    (lambda: ln.GRU(3, 5, zoneout=-0.1), r"zoneout must be in \[0, 1\)"),
    (lambda: ln.RNN(3, 5, zoneout="a lot"), r"zoneout must be a number"),
    (lambda: ln.LSTM(3, 5, proj_size=5), r"proj_size must be smaller than hidden_size \(5\)"),
    (lambda: ln.LSTM(3, 5, proj_size=-1), r"proj_size must be an integer >= 0"),
    (lambda: ln.LSTM(3, 5, proj_size=2, zoneout=0.1), "zoneout with proj_size"),
    (lambda: ln.RNN(3, 5, nonlinearity="sigmoid"), r"nonlinearity must be 'tanh' or 'relu'"),
    (lambda: ln.GRU(3, 5, reset_after="no"), "reset_after must be True or False"),
    (lambda: ln.LSTM(3, 5, forget_bias=1.0, bias=False), "forget_bias needs bias=True"),
])
def test_bad_options(factory, words):
    with pytest.raises((ValueError, TypeError), match=words):   # TypeError for a non-number
        factory()


@pytest.mark.parametrize("factory", [
    lambda: ln.RNN(3, 8, 2, "relu", batch_first=True, recurrent_dropout=0.2, zoneout=0.1),
    lambda: ln.LSTM(3, 8, batch_first=True, proj_size=4, forget_bias=1.0, recurrent_dropout=0.1),
    lambda: ln.GRU(3, 8, batch_first=True, reset_after=False, zoneout=0.2),
    lambda: ln.LayerNormLSTM(3, 8, batch_first=True, bidirectional=True, forget_bias=1.0, zoneout=0.1),
    lambda: ln.LayerNormGRU(3, 8, batch_first=True, recurrent_dropout=0.3),
])
def test_save_load_keeps_every_option(tmp_path, factory):
    model = ln.Sequential(factory(), ln.LastTimestep())
    model.eval()
    x = np.random.default_rng(0).standard_normal((2, 5, 3)).astype(np.float32)
    model.save(tmp_path / "m.npz")
    back = ln.load(tmp_path / "m.npz")
    assert back[0].get_config() == model[0].get_config() and type(back[0]) is type(model[0])
    np.testing.assert_array_equal(back.predict(x), model.predict(x))
    text = repr(model)   # what `lstm-native info` prints
    for key, value in model[0].get_config().items():
        assert f"{key}={value!r}" in text


def _train_new_cells(threads, split):
    """Four Adam steps on a model holding every new cell (with recurrent dropout and zoneout)."""
    before = ln.get_num_threads(), ln._core.get_grain()
    ln.set_num_threads(threads)
    ln._core.set_grain(0.0)
    ln._core.set_step_split(split)
    try:
        model = ln.Sequential(
            ln.RNN(3, 20, batch_first=True, bidirectional=True, seed=0, zoneout=0.2),
            ln.LayerNormLSTM(40, 18, batch_first=True, seed=1, recurrent_dropout=0.3, zoneout=0.1),
            ln.GRU(18, 17, batch_first=True, seed=2, reset_after=False, recurrent_dropout=0.2),
            ln.LayerNormGRU(17, 16, batch_first=True, seed=3, zoneout=0.2),
            ln.LSTM(16, 24, batch_first=True, proj_size=10, seed=4, recurrent_dropout=0.2),
            ln.LastTimestep(), ln.Linear(10, 2, seed=5))
        rng = np.random.default_rng(0)
        X = rng.standard_normal((24, 9, 3)).astype(np.float32)
        y = rng.standard_normal((24, 2)).astype(np.float32)
        lengths = rng.integers(2, 10, size=24)
        model.fit(X, y, epochs=1, batch_size=6, lengths=lengths, verbose=0, seed=0,
                  optimizer=ln.optim.Adam(model.parameters(), lr=1e-2))
        return model.state_dict(), model.predict(X, lengths=lengths)
    finally:
        ln.set_num_threads(before[0])
        ln._core.set_grain(before[1])
        ln._core.set_step_split("auto")


def test_new_cells_train_to_the_same_bits_for_any_thread_count():
    assert ln.is_deterministic()
    weights, out = _train_new_cells(1, "auto")
    for threads, split in ((2, "auto"), (3, "batch"), (4, "units")):
        w, o = _train_new_cells(threads, split)
        np.testing.assert_array_equal(o, out, err_msg=f"{threads} {split}")
        for name in weights:
            np.testing.assert_array_equal(w[name], weights[name], err_msg=f"{threads} {split} {name}")
