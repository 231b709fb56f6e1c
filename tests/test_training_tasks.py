"""Bar: attention, LayerNorm, residual stacks, Embedding and masking each train a small model
to a stated loss (held-out data where it applies)."""
import numpy as np

import lstm_native as ln


def adam(model, lr=1e-2):
    return ln.optim.Adam(model.parameters(), lr=lr)


def adding_problem(n, steps, rng):
    """Two marked positions; the target is the sum of their values (Hochreiter & Schmidhuber)."""
    values = rng.random((n, steps))
    marks = np.zeros((n, steps))
    for i in range(n):
        marks[i, rng.choice(steps, 2, replace=False)] = 1
    return np.stack([values, marks], -1).astype(np.float32), (values * marks).sum(1, keepdims=True).astype(np.float32)


def noisy_sine_windows(rng, n=3000, window=20, noise=0.1):
    s = np.sin(np.linspace(0, 80, n)) + noise * rng.standard_normal(n)
    X = np.stack([s[i:i + window] for i in range(n - window)])[..., None].astype(np.float32)
    return X, s[window:, None].astype(np.float32)


def test_bilstm_attention_solves_the_adding_problem():
    rng = np.random.default_rng(0)
    X, y = adding_problem(1200, 20, rng)
    Xv, yv = adding_problem(300, 20, rng)
    model = ln.Sequential(ln.LSTM(2, 32, batch_first=True, bidirectional=True, seed=0), ln.Attention(64, seed=1),
                          ln.Linear(64, 1, seed=2))
    h = model.fit(X, y, epochs=25, batch_size=32, optimizer=adam(model), validation_data=(Xv, yv), verbose=0, seed=0)
    assert yv.var() > 0.15
    assert h.history["val_loss"][-1] < 0.01        # measured 7e-5; predicting the mean scores 0.157
    model.predict(Xv)
    weights = model[1].last_weights
    marked = Xv[:, :, 1] > 0
    assert weights[marked].mean() > 5 * weights[~marked].mean()   # it attends to the marked steps


def test_embedding_lstm_learns_a_character_pattern():
    ids = np.tile(np.arange(5), 200)
    X = np.stack([ids[i:i + 12] for i in range(0, len(ids) - 13, 3)])
    Y = np.stack([ids[i + 1:i + 13] for i in range(0, len(ids) - 13, 3)])
    model = ln.Sequential(ln.Embedding(5, 8, seed=0), ln.LSTM(8, 16, batch_first=True, seed=1), ln.Linear(16, 5, seed=2))
    h = model.fit(X, Y, loss="cross_entropy", epochs=20, batch_size=32, optimizer=adam(model), verbose=0, seed=0)
    assert h.history["loss"][-1] < 0.05            # measured 0.003 (uniform guessing: ln 5 = 1.61)
    assert h.history["accuracy"][-1] == 1.0


def test_masking_ignores_padding():
    rng = np.random.default_rng(1)

    def masked_mean(n, steps=15):
        lengths = rng.integers(2, steps + 1, n)
        X = np.full((n, steps, 1), 10.0, np.float32)   # padding that would wreck an unmasked mean
        for i in range(n):
            X[i, :lengths[i], 0] = rng.standard_normal(lengths[i])
        return X, np.array([X[i, :lengths[i], 0].mean() for i in range(n)], np.float32)[:, None], lengths

    X, y, lengths = masked_mean(1000)
    Xv, yv, lv = masked_mean(300)
    model = ln.Sequential(ln.LSTM(1, 32, batch_first=True, seed=0), ln.LastTimestep(), ln.Linear(32, 1, seed=2))
    h = model.fit(X, y, lengths=lengths, epochs=25, batch_size=32, optimizer=adam(model),
                  validation_data=(Xv, yv, lv), verbose=0, seed=0)
    assert h.history["val_loss"][-1] < 0.01        # measured 3e-4; the variance of the targets is 0.158


def test_masked_per_step_classification():
    rng = np.random.default_rng(2)
    n, steps = 600, 12
    lengths = rng.integers(3, steps + 1, n)
    X = rng.standard_normal((n, steps, 1)).astype(np.float32)
    Y = (np.cumsum(X[..., 0], axis=1) > 0).astype(np.int64)   # the sign of the running sum, per step
    for i in range(n):
        Y[i, lengths[i]:] = 7    # labels past the end are invalid and must be masked out
        X[i, lengths[i]:] = 0
    model = ln.Sequential(ln.LSTM(1, 24, batch_first=True, seed=0), ln.Linear(24, 2, seed=1))
    h = model.fit(X, Y, lengths=lengths, loss="cross_entropy", epochs=20, batch_size=32, optimizer=adam(model),
                  verbose=0, seed=0)
    assert h.history["accuracy"][-1] > 0.95        # measured over valid steps only


def test_residual_lstm_stack_forecasts_a_noisy_sine():
    X, y = noisy_sine_windows(np.random.default_rng(3))
    model = ln.Sequential(ln.LSTM(1, 16, batch_first=True, seed=0),
                          ln.Residual(ln.LSTM(16, 16, batch_first=True, seed=1)),
                          ln.Residual(ln.LSTM(16, 16, batch_first=True, seed=2)),
                          ln.LastTimestep(), ln.Linear(16, 1, seed=3))
    h = model.fit(X, y, epochs=8, batch_size=64, optimizer=adam(model), validation_split=0.2, verbose=0, seed=0)
    assert h.history["val_loss"][-1] < 0.03        # the noise variance is 0.01; the signal's is 0.5


def test_layer_norm_model_forecasts_a_noisy_sine():
    X, y = noisy_sine_windows(np.random.default_rng(4))
    model = ln.Sequential(ln.GRU(1, 24, batch_first=True, seed=0), ln.LayerNorm(24), ln.LastTimestep(),
                          ln.Linear(24, 1, seed=3))
    h = model.fit(X, y, epochs=8, batch_size=64, optimizer=adam(model), validation_split=0.2, verbose=0, seed=0)
    assert h.history["val_loss"][-1] < 0.03
    assert model[1].weight.grad.any()              # the LayerNorm parameters were trained
