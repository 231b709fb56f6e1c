"""ln.Attention's Luong scores and ln.Seq2Seq: gradients against finite differences and torch,
teacher-forced training by fit, greedy and beam decoding, save/load."""
import itertools

import numpy as np
import pytest
import torch

import lstm_native as ln

PAD, BOS, EOS = 0, 1, 2


def _fd(f, x, eps=1e-6):
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        old = x[i]
        x[i] = old + eps
        up = f()
        x[i] = old - eps
        g[i] = (up - f()) / (2 * eps)
        x[i] = old
    return g


# -- attention scores -------------------------------------------------------------------------
@pytest.mark.parametrize("score", ["dot", "general", "additive"])
def test_attention_scores_match_finite_differences(score):
    rng = np.random.default_rng(0)
    B, T, Tq, H, Q = 2, 4, 3, 5, (5 if score == "dot" else 3)
    att = ln.Attention(H, query_size=Q, score=score, seed=0, dtype=np.float64)
    h, q = rng.standard_normal((B, T, H)), rng.standard_normal((B, Tq, Q))
    lengths = np.array([4, 2])
    w = rng.standard_normal((B, Tq, H))

    def loss():
        return float(np.sum(w * att(h, q, lengths=lengths)))

    loss()
    assert np.all(att.last_weights[1, :, 2:] == 0)          # no weight on padding
    att.zero_grad()
    dh, dq = att.backward(w)
    np.testing.assert_allclose(dh, _fd(loss, h), atol=1e-7)
    np.testing.assert_allclose(dq, _fd(loss, q), atol=1e-7)
    for name, p in att.named_parameters():
        np.testing.assert_allclose(p.grad, _fd(loss, p.data), atol=1e-7, err_msg=name)
    assert [n for n, _ in att.named_parameters()] == {"dot": [], "general": ["W_a"],
                                                     "additive": ["W_h", "W_s", "bias", "v"]}[score]


def test_luong_dot_attention_equals_torch_scaled_dot_product_at_scale_1():
    rng = np.random.default_rng(1)
    B, T, Tq, H = 3, 6, 4, 8
    h, q = rng.standard_normal((B, T, H)), rng.standard_normal((B, Tq, H))
    lengths = np.array([6, 3, 1])
    att = ln.Attention(H, query_size=H, score="dot", dtype=np.float64)
    g = rng.standard_normal((B, Tq, H))
    ctx = att(h, q, lengths=lengths)
    dh, dq = att.backward(g)
    th, tq = torch.tensor(h, requires_grad=True), torch.tensor(q, requires_grad=True)
    mask = torch.tensor(np.arange(T)[None, None, :] < lengths[:, None, None])
    ref = torch.nn.functional.scaled_dot_product_attention(tq, th, th, attn_mask=mask, scale=1.0)
    ref.backward(torch.tensor(g))
    np.testing.assert_allclose(ctx, ref.detach().numpy(), atol=1e-12)
    np.testing.assert_allclose(dh, th.grad.numpy(), atol=1e-12)
    np.testing.assert_allclose(dq, tq.grad.numpy(), atol=1e-12)


def test_attention_score_arguments_are_checked():
    with pytest.raises(ValueError, match="score must be"):
        ln.Attention(4, 4, score="cosine")
    with pytest.raises(ValueError, match="query_size"):
        ln.Attention(4, score="dot")
    with pytest.raises(ValueError, match="query_size == hidden_size"):
        ln.Attention(4, 3, score="dot")


# -- Seq2Seq ----------------------------------------------------------------------------------
def _model(attention=None, cell=ln.LSTM, V=7, E=4, H=5, layers=1, dtype=np.float64, seed=0, tf=1.0):
    enc = ln.Sequential(ln.Embedding(V, E, padding_idx=0, seed=seed, dtype=dtype),
                        cell(E, H, num_layers=layers, batch_first=True, seed=seed + 1, dtype=dtype))
    head_in = H * (2 if attention else 1)
    dec = ln.Sequential(ln.Embedding(V, E, padding_idx=0, seed=seed + 2, dtype=dtype),
                        cell(E, H, num_layers=layers, batch_first=True, seed=seed + 3, dtype=dtype),
                        ln.Linear(head_in, V, seed=seed + 4, dtype=dtype))
    return ln.Seq2Seq(enc, dec, attention=attention, bos_id=BOS, eos_id=EOS, teacher_forcing=tf, seed=seed)


def _batch():
    src = np.array([[3, 4, 5, 6], [4, 3, 0, 0]])                 # the second source is padded
    tgt = np.array([[6, 5, 4, EOS], [5, EOS, 0, 0]])             # targets end in eos, then padding
    return src, tgt


@pytest.mark.parametrize("attention,cell,layers", [(None, ln.LSTM, 1), ("bahdanau", ln.LSTM, 1),
                                                    ("luong", ln.GRU, 1), ("general", ln.LSTM, 2)])
def test_every_seq2seq_gradient_matches_finite_differences(attention, cell, layers):
    model = _model(attention, cell, layers=layers)
    src, tgt = _batch()

    def loss():
        logits, mask = model.forward_with_targets(src, tgt)
        return ln.losses.cross_entropy(logits, tgt, mask=mask)[0]

    logits, mask = model.forward_with_targets(src, tgt)
    assert mask.tolist() == [[1, 1, 1, 1], [1, 1, 0, 0]]
    _, grad = ln.losses.cross_entropy(logits, tgt, mask=mask)
    model.zero_grad()
    assert model.backward(grad) is None
    names = [n for n, _ in model.named_parameters()]
    assert any(n.startswith("encoder.") for n in names) and any(n.startswith("decoder.") for n in names)
    assert any(n.startswith("attention.") for n in names) == (attention in ("bahdanau", "general"))
    for name, p in model.named_parameters():
        np.testing.assert_allclose(p.grad, _fd(loss, p.data), atol=1e-7, rtol=1e-5, err_msg=name)
    # the encoder's own gradient is not zero: it arrives through the state (and the attention)
    assert np.abs(model.encoder[1].weight_hh_l0.grad).sum() > 0


def _reverse_task(n, rng, V=8, max_len=5):
    """Token strings 3..V-1 of length 2..max_len, to be written backwards."""
    src, tgt = [], []
    for L in rng.integers(2, max_len + 1, n):
        s = rng.integers(3, V, L)
        src.append(s)
        tgt.append(np.r_[s[::-1], EOS])
    return ln.data.pad_sequences(src), ln.data.pad_sequences(tgt)[0]


def test_seq2seq_trains_with_fit_and_decodes_greedy_and_beam(tmp_path):
    rng = np.random.default_rng(0)
    (src, src_len), tgt = _reverse_task(600, rng)
    model = _model("luong", V=8, E=16, H=32, dtype=np.float32)
    schedule = ln.callbacks.TeacherForcingSchedule(lambda epoch: 1.0 if epoch < 8 else 0.8)
    h = model.fit(src, tgt, lengths=src_len, loss="cross_entropy", epochs=12, batch_size=32, verbose=0, seed=0,
                  optimizer=ln.optim.Adam(model.parameters(), lr=1e-2), validation_data=(src[:100], tgt[:100]),
                  callbacks=[schedule])
    assert model.teacher_forcing == 0.8
    assert h.history["accuracy"][-1] > 0.95                   # per target token, padding not counted
    assert h.history["val_accuracy"][-1] > 0.95
    (s2, l2), t2 = _reverse_task(200, np.random.default_rng(1))
    ids, lengths = model.generate(s2, max_len=7, lengths=l2)
    assert ids.shape == (200, 7) and np.all(lengths == l2 + 1)    # the eos counted
    exact = np.mean([np.array_equal(i[:n], t[:n]) for i, n, t in zip(ids, lengths, t2)])
    assert exact > 0.9
    beam, beam_len = model.generate(s2, max_len=7, lengths=l2, beam_size=3)
    assert np.mean([np.array_equal(i[:n], t[:n]) for i, n, t in zip(beam, beam_len, t2)]) >= exact - 0.02
    assert np.all(ids[np.arange(200), lengths - 1] == EOS) and np.all(ids[np.arange(7) >= lengths[:, None]] == PAD)
    # save and load: the same weights, attention and decoding
    model.save(tmp_path / "s2s.lnm")
    back = ln.load(tmp_path / "s2s.lnm")
    assert isinstance(back, ln.Seq2Seq) and back.attention.score == "dot" and back.eos_id == EOS
    np.testing.assert_array_equal(back.generate(s2, 7, lengths=l2, beam_size=3)[0], beam)
    with pytest.raises(TypeError, match="generate"):
        model.predict(s2)


def test_beam_search_with_a_wide_beam_finds_the_most_likely_sequence():
    model = _model("bahdanau", V=5, seed=3)                       # untrained: a spread-out distribution
    src = np.array([[3, 4, 3], [4, 4, 0]])
    max_len = 3
    ids, lengths = model.generate(src, max_len, beam_size=64, length_penalty=0.0)

    def log_prob(b, seq):
        logits = model.forward(src[b:b + 1], np.array([seq]))
        logp = ln.ops.log_softmax(logits[0].astype(np.float64))
        return float(sum(logp[t, tok] for t, tok in enumerate(seq)))

    for b in range(2):
        candidates = [list(seq) + [EOS] for L in range(max_len) for seq in itertools.product([1, 3, 4], repeat=L)]
        candidates += [list(seq) for seq in itertools.product([1, 2, 3, 4], repeat=max_len) if EOS not in seq[:-1]]
        best = max(candidates, key=lambda s: log_prob(b, s))
        assert ids[b, :lengths[b]].tolist() == best
    greedy = model.generate(src, max_len)                         # beam_size=1 is greedy
    first = model.forward(src, np.full((2, 1), EOS))              # the first step's logits
    assert greedy[0][:, 0].tolist() == [int(np.argmax(np.where(np.arange(5) == PAD, -np.inf, r))) for r in first[:, 0]]


def test_scheduled_sampling_feeds_the_models_own_predictions():
    model = _model("general", tf=0.0)
    src, tgt = _batch()
    logits, _ = model.forward_with_targets(src, tgt)             # train mode, ratio 0: all own predictions
    with ln.no_grad():
        pred = model.forward(src, tgt).argmax(-1)
    own_in = np.concatenate([np.full((2, 1), BOS), pred[:, :-1]], axis=1)
    model.teacher_forcing = 1.0
    np.testing.assert_allclose(logits, model._teacher_forced(src, (src != 0).sum(1), own_in, (tgt != 0).sum(1)))


def test_seq2seq_arguments_are_checked():
    with pytest.raises(ValueError, match="attention must be"):
        _model("cosine")
    enc = ln.Sequential(ln.Embedding(5, 3), ln.LSTM(3, 4, batch_first=True))
    with pytest.raises(ValueError, match="must match"):
        ln.Seq2Seq(enc, ln.Sequential(ln.Embedding(5, 3), ln.GRU(3, 4, batch_first=True), ln.Linear(4, 5)),
                   bos_id=1, eos_id=2)
    with pytest.raises(ValueError, match="after its last recurrent"):
        ln.Seq2Seq(enc, ln.Sequential(ln.Embedding(5, 3), ln.LSTM(3, 4, batch_first=True)), bos_id=1, eos_id=2)
    model = _model()
    with pytest.raises(TypeError, match="integer token ids"):
        model.forward(np.zeros((2, 3)), np.zeros((2, 3), np.int64))
    with pytest.raises(ValueError, match="beam_size"):
        model.generate(np.array([[3, 4]]), 3, beam_size=0)
