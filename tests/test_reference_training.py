"""ln.reference.train, the NumPy-only training loop, against the C++ path: one model (float64
layers), 20 steps, the same loss curve."""
import numpy as np
import pytest

import lstm_native as ln


def _reference_params(model):
    """The Sequential(rnn, LastTimestep, Linear) weights under reference.train's names."""
    sd = model.state_dict()
    params = {k[2:]: v for k, v in sd.items() if k.startswith("0.")}
    params["fc.weight"], params["fc.bias"] = sd["2.weight"], sd["2.bias"]
    return params


@pytest.mark.parametrize("cell,loss,num_layers", [("lstm", "mse", 1), ("gru", "mse", 2), ("lstm", "cross_entropy", 2)])
def test_numpy_training_loop_matches_the_cpp_path_for_20_steps(cell, loss, num_layers):
    rng = np.random.default_rng(0)
    B, T, I, H = 8, 6, 3, 5
    X = rng.standard_normal((B, T, I))
    out = 3 if loss == "cross_entropy" else 2
    y = rng.integers(0, 3, B) if loss == "cross_entropy" else rng.standard_normal((B, out))
    Cell = ln.LSTM if cell == "lstm" else ln.GRU
    model = ln.Sequential(Cell(I, H, num_layers=num_layers, batch_first=True, seed=1, dtype=np.float64),
                          ln.LastTimestep(), ln.Linear(H, out, seed=2, dtype=np.float64))
    params = _reference_params(model)

    # the C++ path: 20 full-batch steps of fit, Adam, the gradient norm clipped to 0.5
    h = model.fit(X, y, loss=loss, optimizer=ln.optim.Adam(model.parameters(), lr=2e-2), epochs=20,
                  batch_size=B, shuffle=False, clip_grad_norm=0.5, verbose=0)
    ref_losses, ref_params = ln.reference.train(params, X, y, cell=cell, num_layers=num_layers, loss=loss,
                                                steps=20, lr=2e-2, clip_grad_norm_to=0.5)
    np.testing.assert_allclose(h.history["loss"], ref_losses, rtol=0, atol=1e-5)
    assert ref_losses[-1] < 0.8 * ref_losses[0]                 # it trained
    for name, value in _reference_params(model).items():
        np.testing.assert_allclose(ref_params[name], value, atol=1e-6, err_msg=name)


def test_reference_loss_and_optimizer_pieces_match_the_library():
    rng = np.random.default_rng(3)
    logits, labels = rng.standard_normal((4, 3)), np.array([0, 2, 1, 2])
    for ref, lib, target in ((ln.reference.cross_entropy_loss, ln.losses.cross_entropy, labels),
                             (ln.reference.mse_loss, ln.losses.mse, rng.standard_normal((4, 3)))):
        v, g = ref(logits, target)
        v2, g2 = lib(logits, target)
        assert v == pytest.approx(v2, rel=1e-12)
        np.testing.assert_allclose(g, g2, rtol=1e-12)
    with pytest.raises(ValueError, match="loss"):
        ln.reference.train({}, np.zeros((1, 1, 1)), np.zeros((1, 1)), loss="mae")
