"""Bar (issue 21, 5): ln.init has torch.nn.init's formulas; forget_bias on LSTM."""
import math

import numpy as np
import pytest
import torch

import lstm_native as ln

SHAPES = [(256, 128), (96, 512), (64, 16, 3)]


@pytest.mark.parametrize("name,param", [("linear", None), ("sigmoid", None), ("tanh", None), ("relu", None),
                                        ("leaky_relu", None), ("leaky_relu", 0.2), ("selu", None), ("conv1d", None)])
def test_calculate_gain_is_torchs(name, param):
    assert ln.init.calculate_gain(name, param) == pytest.approx(torch.nn.init.calculate_gain(name, param), rel=1e-12)


def _both(fn_ours, fn_torch, shape, **kw):
    ours = np.empty(shape, np.float32)
    fn_ours(ours, generator=0, **kw)
    theirs = torch.empty(shape)
    torch.manual_seed(0)
    fn_torch(theirs, **kw)
    return ours.astype(np.float64), theirs.numpy().astype(np.float64)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("fn,kw", [("xavier_uniform_", {}), ("xavier_uniform_", {"gain": 5 / 3}),
                                   ("kaiming_uniform_", {}), ("kaiming_uniform_", {"a": math.sqrt(5)}),
                                   ("kaiming_uniform_", {"mode": "fan_out", "nonlinearity": "relu"}),
                                   ("uniform_", {"a": -0.3, "b": 0.7})])
def test_uniform_bounds_are_torchs(shape, fn, kw):
    """65k+ draws: both maxima sit within 0.1% of the bound, so equal bounds agree to 0.2%."""
    ours, theirs = _both(getattr(ln.init, fn), getattr(torch.nn.init, fn), shape, **kw)
    assert ours.max() == pytest.approx(theirs.max(), rel=2e-3, abs=2e-3 * abs(theirs.min()))
    assert ours.min() == pytest.approx(theirs.min(), rel=2e-3, abs=2e-3 * abs(theirs.max()))


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("fn,kw", [("xavier_normal_", {}), ("xavier_normal_", {"gain": 2.0}),
                                   ("kaiming_normal_", {"nonlinearity": "relu"}), ("normal_", {"mean": 0.5, "std": 0.2})])
def test_normal_moments_are_torchs(shape, fn, kw):
    ours, theirs = _both(getattr(ln.init, fn), getattr(torch.nn.init, fn), shape, **kw)
    assert ours.std() == pytest.approx(theirs.std(), rel=0.03)
    assert ours.mean() == pytest.approx(theirs.mean(), abs=0.03 * theirs.std())


@pytest.mark.parametrize("shape", [(12, 5), (5, 12), (8, 8), (6, 2, 3)])
@pytest.mark.parametrize("gain", [1.0, 0.5])
def test_orthogonal_is_torchs_on_the_same_sample(shape, gain):
    rows = shape[0]
    cols = int(np.prod(shape)) // rows
    torch.manual_seed(3)
    sample = torch.empty(rows, cols).normal_(0, 1)
    torch.manual_seed(3)
    theirs = torch.nn.init.orthogonal_(torch.empty(shape), gain=gain)
    ours = ln.init.orthogonal_from(sample.numpy(), gain).reshape(shape)
    np.testing.assert_allclose(ours, theirs.numpy(), atol=1e-5)
    w = ln.init.orthogonal_(np.empty(shape), gain=gain).reshape(rows, cols)
    small = min(rows, cols)
    gram = w @ w.T if rows <= cols else w.T @ w
    np.testing.assert_allclose(gram, gain ** 2 * np.eye(small), atol=1e-10)


def test_constants_and_in_place_on_parameters_and_views():
    p = ln.Parameter(np.ones((4, 3), np.float32))
    assert ln.init.zeros_(p) is p and not p.data.any()
    assert ln.init.constant_(p, 0.25) is p and np.all(p.data == 0.25)
    assert ln.init.ones_(p.data) is p.data and np.all(p.data == 1)
    lstm = ln.LSTM(3, 4, seed=0)
    w = lstm.weight_hh_l0.data
    before = w.copy()
    for k in range(4):                 # each gate's block orthogonal, through views of .data
        ln.init.orthogonal_(w[4 * k:4 * (k + 1)], generator=k)
    assert not np.array_equal(w, before)
    np.testing.assert_allclose(w[4:8] @ w[4:8].T, np.eye(4), atol=1e-6)


def test_generators_and_manual_seed_reproduce():
    a = ln.init.xavier_uniform_(np.empty((5, 7)), generator=np.random.default_rng(1))
    b = ln.init.xavier_uniform_(np.empty((5, 7)), generator=1)
    np.testing.assert_array_equal(a, b)
    ln.manual_seed(4)
    c = ln.init.orthogonal_(np.empty((6, 6)))
    ln.manual_seed(4)
    d = ln.init.orthogonal_(np.empty((6, 6)))
    np.testing.assert_array_equal(c, d)


def test_bad_arguments():
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        ln.init.xavier_uniform_(np.empty(5))
    with pytest.raises(TypeError, match="float"):
        ln.init.normal_(np.zeros((2, 2), np.int64))
    with pytest.raises(TypeError, match="Parameter or a NumPy array"):
        ln.init.zeros_([1.0, 2.0])
    with pytest.raises(ValueError, match="mode"):
        ln.init.kaiming_uniform_(np.empty((3, 3)), mode="fan")
    with pytest.raises(ValueError, match="nonlinearity"):
        ln.init.calculate_gain("swish")
    with pytest.raises(ValueError, match="std"):
        ln.init.normal_(np.empty((2, 2)), std=-1)
    with pytest.raises(TypeError, match="generator"):
        ln.init.uniform_(np.empty((2, 2)), generator="x")


def test_forget_bias_adds_to_the_forget_block():
    plain, biased = ln.LSTM(3, 5, num_layers=2, bidirectional=True, seed=7), \
        ln.LSTM(3, 5, num_layers=2, bidirectional=True, seed=7, forget_bias=1.0)
    for name, p in plain.named_parameters():
        delta = biased.state_dict()[name] - p.data
        if name.startswith("bias_ih"):
            np.testing.assert_allclose(delta[5:10], 1.0, atol=1e-6)
            assert not np.delete(delta, np.s_[5:10]).any()
        else:
            assert not delta.any(), name
    assert biased.get_config()["forget_bias"] == 1.0
    with pytest.raises(ValueError, match="forget_bias"):
        ln.LSTM(3, 5, bias=False, forget_bias=1.0)
    with pytest.raises(ValueError, match="forget_bias"):
        ln.LSTM(3, 5, forget_bias=float("nan"))


def test_adding_problem_orthogonal_with_forget_bias_keeps_the_gradient_alive(record_property):
    """The adding problem at T=100 (the figures over full training runs: bench/adding_problem.py).
    At initialisation the loss's gradient w.r.t. the first step's input, relative to the last
    step's, is ~1e-18 under torch's default initialisation (a forget gate near 0.5 halves it
    every step) and ~1e-4 with orthogonal W_hh blocks and forget bias 1; a short run records
    both loss curves."""
    import sys
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).parents[1] / "bench"))
    import adding_problem

    X, y = ln.data.adding_problem(256, 100, seed=1)
    reach, losses = {}, {}
    for init in ("default", "orthogonal+fb1"):
        model = adding_problem.build(init, 16, seed=0)
        reach[init] = adding_problem.gradient_reach(model, X[:64], y[:64])
        hist = model.fit(X, y, loss="mse", optimizer=ln.optim.Adam(model.parameters(), lr=3e-3), epochs=2,
                         batch_size=32, clip_grad_norm=1.0, verbose=0, seed=0)
        losses[init] = hist.history["loss"]
        record_property(f"adding_T100_{init}", {"grad_reach": reach[init], "loss": losses[init]})
    assert reach["orthogonal+fb1"] > 1e6 * reach["default"]
    for init, curve in losses.items():
        assert np.all(np.isfinite(curve)) and curve[-1] < curve[0], init
