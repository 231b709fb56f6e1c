"""ln.data: windows, scalers, splits, padding, vocabularies, built-in datasets."""
import numpy as np
import pytest

import lstm_native as ln
from lstm_native import data


def test_sliding_windows_univariate():
    s = np.arange(10, dtype=np.float32)
    X, y = data.sliding_windows(s, lookback=3, horizon=2, stride=2)
    assert X.shape == (3, 3, 1) and y.shape == (3, 2)
    np.testing.assert_array_equal(X[:, :, 0], [[0, 1, 2], [2, 3, 4], [4, 5, 6]])
    np.testing.assert_array_equal(y, [[3, 4], [5, 6], [7, 8]])


def test_sliding_windows_multivariate_targets():
    s = np.stack([np.arange(8), 10 * np.arange(8), 100 * np.arange(8)], axis=1).astype(np.float64)
    X, y = data.sliding_windows(s, lookback=4, horizon=1, target=1)
    assert X.shape == (4, 4, 3) and y.shape == (4, 1)
    np.testing.assert_array_equal(y[:, 0], [40, 50, 60, 70])
    X, y = data.sliding_windows(s, lookback=4, horizon=2, target=[0, 2])
    assert y.shape == (3, 2, 2)
    np.testing.assert_array_equal(y[0], [[4, 400], [5, 500]])
    X, y = data.sliding_windows(s, lookback=4)          # all columns
    assert y.shape == (4, 1, 3)
    naive = data.naive_forecast(X, 1)
    np.testing.assert_array_equal(naive[:, 0], X[:, -1])


@pytest.mark.parametrize("kwargs, match", [
    (dict(lookback=0), "lookback"), (dict(lookback=3, horizon=0), "horizon"), (dict(lookback=3, stride=-1), "stride"),
    (dict(lookback=9, horizon=2), "too short"), (dict(lookback=3, target=5), "target"),
])
def test_sliding_windows_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        data.sliding_windows(np.zeros((10, 2)), **kwargs)


@pytest.mark.parametrize("scaler", [data.MinMaxScaler(), data.MinMaxScaler((-1, 1)), data.StandardScaler()])
def test_scalers_round_trip(scaler):
    rng = np.random.default_rng(0)
    x = rng.normal(5, 3, (200, 3)).astype(np.float32)
    x[:, 2] = 7.0                                      # a constant column must not divide by zero
    z = scaler.fit_transform(x)
    assert z.dtype == np.float32
    if isinstance(scaler, data.MinMaxScaler):
        lo, hi = scaler.feature_range
        assert np.allclose(z[:, :2].min(0), lo, atol=1e-6) and np.allclose(z[:, :2].max(0), hi, atol=1e-6)
    else:
        assert np.allclose(z[:, :2].mean(0), 0, atol=1e-5) and np.allclose(z[:, :2].std(0), 1, atol=1e-5)
    np.testing.assert_allclose(scaler.inverse_transform(z), x, rtol=1e-5, atol=1e-5)
    # windows (N, T, F) scale the same way, and one column comes back with columns=
    X, _ = data.sliding_windows(x, 5)
    np.testing.assert_allclose(scaler.inverse_transform(scaler.transform(X)), X, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(scaler.inverse_transform(z[:, 1], columns=1), x[:, 1], rtol=1e-5, atol=1e-5)
    restored = data._Scaler.from_state(scaler.state())
    np.testing.assert_allclose(restored.transform(x), z, rtol=1e-6, atol=1e-6)


def test_scaler_errors():
    with pytest.raises(ValueError, match="not fitted"):
        data.StandardScaler().transform(np.zeros((3, 2)))
    s = data.StandardScaler().fit(np.zeros((3, 2)))
    with pytest.raises(ValueError, match="2 features"):
        s.transform(np.zeros((3, 4)))
    with pytest.raises(ValueError, match="NaN"):
        data.MinMaxScaler().fit(np.array([1.0, np.nan]))
    with pytest.raises(ValueError, match="feature_range"):
        data.MinMaxScaler((1, 0))


def test_time_split_keeps_order():
    a, b = np.arange(100), np.arange(100) * 2
    (atr, ava, ate), (btr, bva, bte) = data.time_split(a, b, val=0.1, test=0.2)
    assert (len(atr), len(ava), len(ate)) == (70, 10, 20)
    assert atr.max() < ava.min() and ava.max() < ate.min()
    np.testing.assert_array_equal(bte, ate * 2)
    with pytest.raises(ValueError, match="rows"):
        data.time_split(a, b[:5])
    with pytest.raises(ValueError, match="val"):
        data.time_split(a, val=0.6, test=0.5)


def test_pad_sequences_feeds_lengths_to_a_layer():
    seqs = [np.ones((3, 2)), np.ones((5, 2)) * 2, np.ones((1, 2)) * 3]
    X, lengths = data.pad_sequences(seqs)
    assert X.shape == (3, 5, 2) and X.dtype == np.float32
    np.testing.assert_array_equal(lengths, [3, 5, 1])
    assert np.all(X[0, 3:] == 0) and np.all(X[2, 0] == 3)
    lstm = ln.LSTM(2, 4, batch_first=True, seed=0)
    out, _ = lstm(X, lengths=lengths)
    assert np.all(out[0, 3:] == 0)
    ids, lens = data.pad_sequences([[1, 2, 3], [4]], maxlen=2, truncating="pre")
    assert ids.dtype == np.int64
    np.testing.assert_array_equal(ids, [[2, 3], [4, 0]])
    np.testing.assert_array_equal(lens, [2, 1])
    with pytest.raises(ValueError, match="sequence 1 is empty"):
        data.pad_sequences([[1], []])
    with pytest.raises(ValueError, match="truncating"):
        data.pad_sequences([[1]], truncating="middle")


@pytest.mark.parametrize("level, text", [("char", "hello world"), ("word", "the cat saw the dog")])
def test_vocabulary_round_trip(level, text):
    vocab = data.Vocabulary.from_text(text, level=level)
    ids = vocab.encode(text)
    assert ids.dtype == np.int64 and ids.min() >= 2
    assert vocab.decode(ids) == text
    assert vocab.encode("zzz" if level == "char" else "zebra")[0] == 1          # unknown
    again = data.Vocabulary.from_state(vocab.state())
    assert again.itos == vocab.itos
    with pytest.raises(ValueError, match="ids"):
        vocab.decode([len(vocab)])
    with pytest.raises(TypeError, match="text"):
        vocab.encode(3)


def test_builtin_datasets_are_deterministic():
    a, b = data.noisy_sine(500, seed=1), data.noisy_sine(500, seed=1)
    np.testing.assert_array_equal(a, b)
    assert a.dtype == np.float32 and abs(a.std() - np.sqrt(0.5)) < 0.05
    text = data.sample_text()
    assert text == data.sample_text() and 8_000 < len(text) < 40_000 and text.isascii()
