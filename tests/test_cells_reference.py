"""Issue 21 / issue 22 bar 7: the NumPy float64 reference of every new cell, with recurrent
dropout and zoneout, against finite differences (the oracle the C++ is then held to)."""
import zlib

import numpy as np
import pytest

from cell_cases import CELLS, case, make
from conftest import random_lengths
from lstm_native import reference
from test_recurrent_gradcheck import check

NEW = ["rnn_tanh", "rnn_relu", "lstm_proj", "gru_reset_before", "ln_lstm", "ln_gru"]


def loss_of(layer, out, h_n, c_n, c):
    loss = np.sum(out * c["dout"]) + np.sum(h_n * c["dh_n"])
    if layer.has_cell_state:
        loss += np.sum(c_n * c["dc_n"])
    return loss


REGULARISERS = ["none", "recurrent_dropout", "zoneout_train", "zoneout_eval", "both"]
# zoneout with proj_size is refused by the layer (h and c differ in width)
COMBOS = [(n, r) for n in NEW + ["lstm", "gru"] for r in REGULARISERS
          if not (n == "lstm_proj" and r not in ("none", "recurrent_dropout"))]


@pytest.mark.parametrize("name,regulariser", COMBOS)
@pytest.mark.parametrize("bidirectional", [False, True])
def test_reference_matches_finite_differences(name, regulariser, bidirectional):
    rng = np.random.default_rng(zlib.crc32(f"{name} {regulariser} {bidirectional}".encode()))
    layer = make(name, 3, 5, rng, num_layers=2, bidirectional=bidirectional, dtype=np.float64, seed=5)
    T, B = 4, 3
    lengths = random_lengths(rng, B, T)
    c = case(rng, layer, T, B, True, lengths, dtype=np.float64)
    L, D, S = layer.num_layers, layer.num_directions, layer.state_size
    rec = zoneout = None
    if regulariser in ("recurrent_dropout", "both"):
        rec = (rng.random((L * D, B, S)) < 0.7) / 0.7
    if regulariser in ("zoneout_train", "both"):
        zoneout = [(rng.random((T, B, D * S)) < 0.4).astype(np.float64) for _ in range(L)]
    if regulariser == "zoneout_eval":
        zoneout = 0.3
    params = layer.state_dict()
    cell = CELLS[name][1]

    def run():
        return reference.rnn_forward(cell, c["x"], params, L, bidirectional, c["h0"], c.get("c0"), lengths,
                                     recurrent_masks=rec, zoneout=zoneout)

    def forward():
        out, h_n, c_n, _ = run()
        return loss_of(layer, out, h_n, c_n, c)

    *_, cache = run()
    dx, dh0, dc0, grads = reference.rnn_backward(cache, c["dout"], c["dh_n"], c.get("dc_n"))
    assert set(grads) == set(params)
    tensors = dict(params, x=c["x"], h0=c["h0"])
    analytic = dict(grads, x=dx, h0=dh0)
    if layer.has_cell_state:
        tensors["c0"], analytic["c0"] = c["c0"], dc0
    assert check(cell, rng, forward, analytic, tensors) < 1e-6
