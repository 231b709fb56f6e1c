"""The examples learn: each runs in quick mode and must reach a stated figure on held-out
data (measured values and the seeds they were checked on are noted beside each bar).

Kernels run on one thread here: on a shared machine two OpenMP threads competing with other
processes were measured 3-13x slower than one for these small shapes, and the bars are
about learning, not speed."""
import importlib.util
import pathlib

import numpy as np
import pytest

import lstm_native as ln

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"


def load(name):
    spec = importlib.util.spec_from_file_location(f"examples_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True)
def one_thread():
    before = ln.get_num_threads()
    ln.set_num_threads(1)
    yield
    ln.set_num_threads(before)


def test_forecasting_beats_both_baselines():
    r = load("forecasting").run(quick=True)
    assert r["lstm_mse"] * 4 <= r["naive_mse"]          # measured 8.2-9.1x (seeds 0-2)
    assert r["lstm_mse"] * 2 <= r["seasonal_mse"]       # measured 3.4-4.3x (seeds 0-2)


def test_text_generation_reaches_low_bpc_and_writes_text():
    r = load("text_generation").run(quick=True, samples=60)
    # measured 0.37-0.41 (seeds 0-2); uniform guessing costs ~4.95 bits
    assert r["val_bpc"] <= 0.55
    for sample in r["samples"].values():
        assert sample.startswith("The ") and len(sample) == 64


def test_classification_of_variable_length_sequences():
    r = load("classification").run(quick=True)
    assert r["test_accuracy"] >= 0.92                   # measured 0.96-0.97 (seeds 0-2); chance is 0.25


def test_seq2seq_translates_held_out_dates():
    r = load("seq2seq").run(quick=True)
    assert r["exact_match"] >= 0.95                     # measured 0.997-1.0 (seeds 0-2)
    assert r["token_accuracy"] >= 0.99                  # measured 0.9995-1.0 (seeds 0-2)


def test_seq2seq_attention_backward_matches_finite_differences():
    s2s = load("seq2seq")
    rng = np.random.default_rng(0)
    B, Tq, S, H = 2, 3, 4, 5
    dec, enc = rng.standard_normal((B, Tq, H)), rng.standard_normal((B, S, H))
    mask = np.arange(S)[None, :] < np.array([4, 2])[:, None]       # the second source is padded
    weight = rng.standard_normal((B, Tq, H))                       # loss = sum(weight * context)

    def loss(d, e):
        return float(np.sum(weight * s2s.luong_attention(d, e, mask)[0]))

    _, alpha = s2s.luong_attention(dec, enc, mask)
    assert np.all(alpha[1, :, 2:] == 0)                            # no weight on padding
    d_dec, d_enc = s2s.luong_attention_backward(weight, dec, enc, alpha)
    for x, analytic in ((dec, d_dec), (enc, d_enc)):
        numeric = np.zeros_like(x)
        for i in np.ndindex(x.shape):
            old = x[i]
            x[i] = old + 1e-6
            up = loss(dec, enc)
            x[i] = old - 1e-6
            numeric[i] = (up - loss(dec, enc)) / 2e-6
            x[i] = old
        np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-8)
    assert np.all(d_enc[1, 2:] == 0)                               # padding gets no gradient


def test_seq2seq_whole_backward_matches_finite_differences():
    """The hand-written chain Linear -> attention -> decoder (dh0, dc0) -> encoder -> embeddings,
    checked on a few entries of every parameter, in float64."""
    s2s = load("seq2seq")
    rng = np.random.default_rng(1)
    V, B = 9, 3
    model = s2s.Seq2Seq(V, embed=4, hidden=5, seed=0, dtype=np.float64)
    src_len, dec_len = np.array([5, 3, 2]), np.array([4, 2, 3])
    src = np.where(np.arange(5) < src_len[:, None], rng.integers(2, V, (B, 5)), 0)
    dec_in = np.where(np.arange(4) < dec_len[:, None], rng.integers(2, V, (B, 4)), 0)
    target = rng.integers(2, V, (B, 4))
    mask = np.arange(4)[None, :] < dec_len[:, None]

    def loss():
        return ln.losses.cross_entropy(model.forward(src, src_len, dec_in, dec_len), target, mask=mask)

    model.zero_grad()
    model.backward(loss()[1])
    for name, p in model.named_parameters():
        for i in list(zip(*np.nonzero(p.grad)))[:4]:              # entries the loss depends on
            old = p.data[i]
            p.data[i] = old + 1e-6
            up = loss()[0]
            p.data[i] = old - 1e-6
            numeric = (up - loss()[0]) / 2e-6
            p.data[i] = old
            assert abs(p.grad[i] - numeric) <= 1e-6 + 1e-5 * abs(numeric), (name, i, p.grad[i], numeric)
        assert np.any(p.grad), name                                 # every parameter gets a gradient


def test_gru_and_lstm_both_beat_the_mean_on_the_adding_problem():
    r = load("gru_vs_lstm").run(quick=True)
    for cell in ("GRU", "LSTM"):
        assert r[cell]["test_mse"] * 20 <= r["baseline_mse"], cell   # measured 200-1300x (seeds 0-2)
