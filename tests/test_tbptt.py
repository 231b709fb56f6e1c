"""fit(stateful=True, tbptt_steps=k): a long series in k-step chunks, state carried, gradients
cut at chunk boundaries; the same as the hand-written loop with hx; memory bounded by k."""
import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import lstm_native as ln
from conftest import child_env


def _model(cell=ln.LSTM, head_last=False, seed=0):
    layers = [cell(2, 6, batch_first=True, seed=seed, dtype=np.float64)]
    if head_last:
        layers.append(ln.LastTimestep())
    layers.append(ln.Linear(6, 1, seed=seed + 1, dtype=np.float64))
    return ln.Sequential(*layers)


def _series(B=3, T=23, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((B, T, 2))
    y = np.cumsum(X[:, :, :1], axis=1) * 0.3          # needs memory beyond one chunk
    return X, y


@pytest.mark.parametrize("cell", [ln.LSTM, ln.GRU])
def test_stateful_fit_equals_the_hand_loop_with_hx(cell):
    X, y = _series()
    k = 5                                               # 23 steps: chunks of 5, 5, 5, 5, 3
    model, hand = _model(cell), _model(cell)
    h = model.fit(X, y, stateful=True, tbptt_steps=k, epochs=2, batch_size=8, verbose=0, clip_grad_norm=1.0,
                  optimizer=ln.optim.Adam(model.parameters(), lr=1e-2), metrics=["mae"])

    rnn, head = hand[0], hand[1]
    opt = ln.optim.Adam(hand.parameters(), lr=1e-2)
    for epoch in range(2):
        hx, total, seen, abs_err = None, 0.0, 0, 0.0
        for s in range(0, X.shape[1], k):
            out, hx_new = rnn(X[:, s:s + k], hx=hx)     # from the state the last chunk left
            pred = head(out)
            loss, grad = ln.losses.mse(pred, y[:, s:s + k])
            hand.zero_grad()
            rnn.backward(head.backward(grad))           # no dh_n: the gradient stops here
            ln.clip_grad_norm_(hand.parameters(), 1.0)
            opt.step()
            hx = hx_new
            steps = out.shape[1]
            total, seen = total + loss * steps, seen + steps
            abs_err += np.abs(pred - y[:, s:s + k]).sum()
        assert h.history["loss"][epoch] == pytest.approx(total / seen, rel=1e-6, abs=1e-6)
        assert h.history["mae"][epoch] == pytest.approx(abs_err / y.size, rel=1e-6)
    for name, value in hand.state_dict().items():
        np.testing.assert_allclose(model.state_dict()[name], value, rtol=0, atol=1e-6, err_msg=name)
    # the final state stays on the model, for predictions that continue the series
    got = model.carried_state[0]                        # the LSTM's (h, c) or the GRU's h
    for a, b in zip(*((got, hx) if cell is ln.LSTM else ([got], [hx]))):
        np.testing.assert_allclose(a, b, atol=1e-6)
    model.reset_states()
    assert model.carried_state is None


def test_per_chunk_targets_row_groups_and_validation():
    X, y = _series(B=5, T=20)
    k = 4
    y_chunk = y[:, k - 1::k]                            # (B, 5, 1): one target per chunk (its last step)
    model = _model(head_last=True)
    h = model.fit(X, y_chunk, stateful=True, tbptt_steps=k, epochs=3, batch_size=2, verbose=0,
                  optimizer=ln.optim.Adam(model.parameters(), lr=1e-2), validation_data=(X[:2], y_chunk[:2]))
    assert set(h.history) == {"loss", "val_loss", "lr"}
    assert h.history["loss"][-1] < h.history["loss"][0]
    assert [s.shape for s in model.carried_state[0]] == [(1, 5, 6), (1, 5, 6)]   # 3 row groups joined
    # validation walks the series from zeros, carrying the state, as predict does in one call
    preds, state = [], None
    for j in range(5):
        out, state = model.predict(X[:2, j * k:(j + 1) * k], initial_state=state, return_state=True)
        preds.append(out)
    val = np.mean((np.stack(preds, 1) - y_chunk[:2]) ** 2)
    assert h.history["val_loss"][-1] == pytest.approx(val, rel=1e-6)


def test_stateful_arguments_are_checked():
    X, y = _series()
    model = _model()
    with pytest.raises(ValueError, match="tbptt_steps"):
        model.fit(X, y, stateful=True, verbose=0)
    with pytest.raises(ValueError, match="stateful=True"):
        model.fit(X, y, tbptt_steps=5, verbose=0)
    with pytest.raises(ValueError, match="per step"):
        model.fit(X, y[:, :7], stateful=True, tbptt_steps=5, verbose=0)
    with pytest.raises(ValueError, match="lengths"):
        model.fit(X, y, stateful=True, tbptt_steps=5, lengths=np.array([23, 23, 23]), verbose=0)
    with pytest.raises(ValueError, match="validation_split"):
        model.fit(X, y, stateful=True, tbptt_steps=5, validation_split=0.2, verbose=0)


_PEAK = textwrap.dedent("""
    import json, sys
    import numpy as np
    import lstm_native as ln

    def hwm():
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM"):
                return int(line.split()[1]) * 1024
    T = int(sys.argv[1])
    ln.set_num_threads(1)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((4, T, 1)).astype(np.float32)
    y = np.roll(X, 1, axis=1)
    model = ln.Sequential(ln.LSTM(1, 64, batch_first=True, seed=0), ln.Linear(64, 1, seed=1))
    model.fit(X[:, :100], y[:, :100], stateful=True, tbptt_steps=50, epochs=1, verbose=0)   # warm up
    before = hwm()
    h = model.fit(X, y, stateful=True, tbptt_steps=50, epochs=1, verbose=0,
                  optimizer=ln.optim.Adam(model.parameters(), lr=1e-2))
    print(json.dumps({"growth": hwm() - before, "loss": h.history["loss"][0]}))
""")


def test_a_1e5_step_series_trains_in_memory_bounded_by_the_chunk():
    # Keeping what BPTT needs for all 10^5 steps (B 4, H 64: gates, cells, outputs) would take
    # ~ 10^5 * 4 * 64 * 4 B * 8 ~ 800 MB; chunks of 50 steps keep ~ 0.4 MB.
    runs = {}
    for T in (10_000, 100_000):
        out = subprocess.run([sys.executable, "-c", _PEAK, str(T)], capture_output=True, text=True, timeout=600,
                             env=child_env())
        assert out.returncode == 0, out.stderr
        runs[T] = json.loads(out.stdout.strip().splitlines()[-1])
    assert np.isfinite(runs[100_000]["loss"])
    assert runs[100_000]["loss"] < 0.5                  # it learns (y is x one step back; var 1)
    # peak memory grows by (almost) nothing with 10x the steps: under 24 MB, against ~800 MB
    assert runs[100_000]["growth"] < runs[10_000]["growth"] + 24 * 2**20, runs
