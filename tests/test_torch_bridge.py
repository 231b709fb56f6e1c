"""lstm_native.torch: nn.LSTM / nn.GRU on our kernels, checked against torch's own modules on the
same weights (outputs, states, input, state and parameter gradients within 1e-5 relative),
autograd's gradcheck in float64, what is kept for backward, conversion in place, state_dicts,
threads and DataLoader workers."""
import copy
import io
import itertools
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

import lstm_native as ln
import lstm_native.torch as lnt
from conftest import child_env, rel_err

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(autouse=True)
def torch_threads():
    """One thread unless a test says otherwise (our kernels follow torch's count): these shapes
    are tiny, and on a shared machine a second thread mostly waits for a core."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
I, H, T, B, P = 6, 16, 7, 5, 5
# case -> torch class, its options, our class
TORCH = {"lstm": (torch.nn.LSTM, {}, lnt.LSTM), "gru": (torch.nn.GRU, {}, lnt.GRU),
         "rnn_tanh": (torch.nn.RNN, {"nonlinearity": "tanh"}, lnt.RNN),
         "rnn_relu": (torch.nn.RNN, {"nonlinearity": "relu"}, lnt.RNN),
         "lstm_proj": (torch.nn.LSTM, {"proj_size": P}, lnt.LSTM)}
CELLS = list(TORCH)


def has_cell_state(cell):
    return cell.startswith("lstm")


def pair(cell, dtype=torch.float32, **kw):
    """A stock torch module and a converted copy of it (the same weights, its own Parameters)."""
    torch.manual_seed(0)
    cls, options = TORCH[cell][:2]
    stock = cls(I, H, **options, **kw).to(dtype)
    return stock, lnt.convert(copy.deepcopy(stock))


def inputs(cell, layers, bidirectional, batch_first, with_hx, packing, dtype=torch.float32, seed=0):
    """(x, hx, lengths or None, output weights): leaves that require grad, and the weights of
    the loss sum(w * out) + sum(w_h * h_n) [+ sum(w_c * c_n)] that exercises every gradient."""
    g = torch.Generator().manual_seed(seed)
    D = 2 if bidirectional else 1
    x = torch.randn((B, T, I) if batch_first else (T, B, I), generator=g, dtype=dtype, requires_grad=True)
    S = P if cell == "lstm_proj" else H                 # h's width; c's is H
    widths = (S, H) if has_cell_state(cell) else (S,)
    hx = None
    if with_hx:
        states = [torch.randn(layers * D, B, width, generator=g, dtype=dtype, requires_grad=True)
                  for width in widths]
        hx = tuple(states) if has_cell_state(cell) else states[0]
    lengths = None
    if packing == "sorted":
        lengths = torch.tensor([7, 7, 5, 2, 1])
    elif packing == "unsorted":
        lengths = torch.tensor([3, 7, 1, 6, 7])
    w = [torch.randn(layers * D, B, width, generator=g, dtype=dtype) for width in (S, H)]
    return x, hx, lengths, w


def run(model, x, hx, lengths, w, batch_first):
    """Forward + backward; every result and gradient as float64 NumPy, by name."""
    for t in [x, *(hx if isinstance(hx, tuple) else (hx,)), *model.parameters()]:
        if t is not None:
            t.grad = None
    inp = x
    if lengths is not None:
        inp = pack_padded_sequence(x, lengths, batch_first=batch_first, enforce_sorted=bool(
            torch.all(lengths[:-1] >= lengths[1:])))
    out, hidden = model(inp, hx)
    if lengths is not None:
        assert isinstance(out, PackedSequence)
        assert torch.equal(out.batch_sizes, inp.batch_sizes)
        out, _ = pad_packed_sequence(out, batch_first=batch_first, total_length=T)
    h_n, c_n = hidden if isinstance(hidden, tuple) else (hidden, None)
    wo = torch.linspace(-1, 1, out.numel(), dtype=out.dtype).reshape(out.shape)
    loss = (out * wo).sum() + (h_n * w[0]).sum() + (0 if c_n is None else (c_n * w[1]).sum())
    loss.backward()
    res = {"out": out, "h_n": h_n, "dx": x.grad}
    if c_n is not None:
        res["c_n"] = c_n
    if hx is not None:
        for name, t in zip(("dh0", "dc0"), hx if isinstance(hx, tuple) else (hx,)):
            res[name] = t.grad
    res.update({"grad_" + k: p.grad for k, p in model.named_parameters()})
    return {k: v.detach().double().numpy() for k, v in res.items()}


def assert_same(ours, theirs, tol=1e-5):
    assert ours.keys() == theirs.keys()
    for key in theirs:
        assert rel_err(ours[key], theirs[key]) < tol, key


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("layers,bidirectional,batch_first,with_hx,packing", list(itertools.product(
    [1, 2, 3], [False, True], [False, True], [False, True], [None, "sorted", "unsorted"])))
def test_matches_torch(cell, layers, bidirectional, batch_first, with_hx, packing):
    # dropout is set but eval mode turns it off, as in torch
    stock, ours = pair(cell, num_layers=layers, bidirectional=bidirectional, batch_first=batch_first,
                       dropout=0.3 if layers > 1 else 0.0)
    stock.eval(), ours.eval()
    assert type(ours) is TORCH[cell][2]
    args = inputs(cell, layers, bidirectional, batch_first, with_hx, packing, seed=layers)
    assert_same(run(ours, *args, batch_first), run(stock, *args, batch_first))


@pytest.mark.parametrize("cell", CELLS)
def test_matches_torch_without_bias_at_a_larger_size(cell):
    torch.set_num_threads(2)                      # both directions at once, the team split inside each
    torch.manual_seed(1)
    cls, options = TORCH[cell][:2]
    stock = cls(40, 72, num_layers=2, bias=False, bidirectional=True, batch_first=True,
                **dict(options, proj_size=24) if "proj_size" in options else options)
    ours = lnt.convert(copy.deepcopy(stock))
    x = torch.randn(9, 30, 40, requires_grad=True)
    lengths = torch.tensor([30, 1, 17, 30, 4, 22, 9, 30, 12])
    res = []
    for m in (ours, stock):
        x.grad = None
        out, h = m(pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False))
        h = h[0] if isinstance(h, tuple) else h
        (out.data.square().sum() + h.sum()).backward()
        res.append([out.data, h, x.grad] + [p.grad for p in m.parameters()])
    for a, b in zip(*res):
        assert rel_err(a.detach().numpy(), b.detach().numpy()) < 1e-5


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("packing", [None, "unsorted"])
def test_train_mode_dropout_draws_torchs_masks(cell, packing):
    """Train mode: the same draws from torch's generator as nn.LSTM, so the same units drop."""
    stock, ours = pair(cell, num_layers=3, dropout=0.4, batch_first=True)
    args = inputs(cell, 3, False, True, True, packing)
    torch.manual_seed(7)
    theirs = run(stock, *args, True)
    torch.manual_seed(7)
    mine = run(ours, *args, True)
    assert_same(mine, theirs)
    torch.manual_seed(8)                      # another seed drops other units
    assert rel_err(run(ours, *args, True)["out"], theirs["out"]) > 1e-3


def test_non_contiguous_and_unbatched_inputs():
    stock, ours = pair("lstm", num_layers=2)
    base = torch.randn(B, T, I)
    x = base.transpose(0, 1)                  # (T, B, I), not contiguous: copied once
    assert not x.is_contiguous()
    for m in (stock, ours):
        m.eval()
    assert rel_err(ours(x)[0].detach().numpy(), stock(x)[0].detach().numpy()) < 1e-5
    x1 = torch.randn(T, I)                    # unbatched, with an unbatched state
    h = (torch.randn(2, H), torch.randn(2, H))
    (a, (ha, ca)), (b, (hb, cb)) = ours(x1, h), stock(x1, h)
    assert a.shape == b.shape == (T, H) and ha.shape == (2, H)
    for p, q in ((a, b), (ha, hb), (ca, cb)):
        assert rel_err(p.detach().numpy(), q.detach().numpy()) < 1e-5
    g_stock, g_ours = pair("gru")
    assert rel_err(g_ours(x1)[1].detach().numpy(), g_stock(x1)[1].detach().numpy()) < 1e-5


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("packed", [False, True])
def test_gradcheck_float64(cell, packed):
    torch.manual_seed(2)
    cls, options, ours = TORCH[cell]
    options = dict(options, proj_size=2) if "proj_size" in options else options
    m = ours(2, 3, num_layers=2, bidirectional=True, batch_first=True, **options).double()
    x = torch.randn(3, 4, 2, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(4, 3, 2 if "proj_size" in options else 3, dtype=torch.float64, requires_grad=True)
    c0 = torch.randn(4, 3, 3, dtype=torch.float64, requires_grad=True)
    lstm = has_cell_state(cell)
    lengths = torch.tensor([2, 4, 1])

    def f(x, h0, c0, *params):                # params are the module's own: gradcheck perturbs them in place
        inp = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False) if packed else x
        out, hidden = m(inp, (h0, c0) if lstm else h0)
        out = out.data if packed else out
        return (out,) + (hidden if lstm else (hidden,))

    args = (x, h0) + ((c0,) if lstm else (torch.zeros(1, dtype=torch.float64),)) + tuple(m.parameters())
    assert torch.autograd.gradcheck(f, args, eps=1e-6, atol=1e-6, rtol=1e-4)


def test_nothing_kept_for_backward_without_gradients():
    m = lnt.LSTM(I, H, num_layers=2)
    x = torch.randn(T, B, I)

    def ready():
        return [ws.ready_for_backward for free in lnt._POOLS.get(m, []) for ws in free]

    for mode in (torch.no_grad, torch.inference_mode):
        with mode():
            out, (h, c) = m(x)
        assert out.grad_fn is None and not out.requires_grad
        assert ready() and not any(ready())      # the workspaces the call used hold nothing for backward
    m.requires_grad_(False)                        # nothing requires a gradient: the same
    out, _ = m(x)
    assert out.grad_fn is None and not any(ready())
    m.requires_grad_(True)
    out, _ = m(x)                                  # with gradients: one set held until the backward
    held = out.grad_fn.lease.workspaces
    assert all(ws.ready_for_backward for ws in held) and not any(ws in free for free in lnt._POOLS[m] for ws in held)
    out.sum().backward()                           # consumes them and gives them back to the module
    assert not any(ws.ready_for_backward for ws in held)
    assert any(free is held for free in lnt._POOLS[m])


def test_several_calls_before_one_backward_and_retained_graphs():
    """A module applied twice in one graph, and a graph backpropagated twice (retain_graph)."""
    stock, ours = pair("lstm", num_layers=2, batch_first=True)
    x1, x2 = torch.randn(B, T, I), torch.randn(B, T, I)
    grads = []
    for m in (ours, stock):
        m.zero_grad()
        (_, (h1, _)), (out2, _) = m(x1), m(x2)
        loss = (h1 * h1).sum() + out2.sum()
        loss.backward(retain_graph=True)
        (2 * loss).backward()                      # recomputes our forward: the first backward used it up
        grads.append([p.grad.clone() for p in m.parameters()])
    for a, b in zip(*grads):
        assert rel_err(a.numpy(), b.numpy()) < 1e-5
    out, _ = ours(x1)
    out.sum().backward()                           # without retain_graph: freed, as torch's graphs are
    with pytest.raises(RuntimeError, match="second time"):
        out.sum().backward()


def test_input_changed_in_place_before_backward_is_caught_like_torch():
    x = torch.randn(T, B, I, requires_grad=True)
    for m in pair("gru", num_layers=2):
        y = x * 1.0
        out, _ = m(y)
        with torch.no_grad():
            y.add_(1.0)
        with pytest.raises(RuntimeError, match="modified by an inplace operation"):
            out.sum().backward()


def test_convert_in_place_keeps_parameters_and_optimizer():
    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.enc = torch.nn.LSTM(I, H, batch_first=True)
            self.blocks = torch.nn.ModuleList([torch.nn.GRU(H, H, batch_first=True)])
            self.head = torch.nn.Linear(H, 1)

        def forward(self, x):
            out, _ = self.enc(x)
            out, _ = self.blocks[0](out)
            return self.head(out[:, -1])

    torch.manual_seed(0)
    stock = Net()
    model = copy.deepcopy(stock)
    params = {k: p for k, p in model.named_parameters()}
    opts = [torch.optim.Adam(m.parameters(), lr=1e-2) for m in (stock, model)]   # built before converting
    with warnings.catch_warnings():
        warnings.simplefilter("error")             # everything convertible: no warning
        assert lnt.convert(model) is model
    assert type(model.enc) is lnt.LSTM and type(model.blocks[0]) is lnt.GRU
    assert all(p is params[k] for k, p in model.named_parameters())
    x, y = torch.randn(B, T, I), torch.randn(B, 1)
    for _ in range(3):
        for m, opt in zip((stock, model), opts):
            opt.zero_grad()
            torch.nn.functional.mse_loss(m(x), y).backward()
            torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
            opt.step()
    for (k, a), b in zip(stock.named_parameters(), model.parameters()):
        assert rel_err(b.detach().numpy(), a.detach().numpy()) < 1e-5, k
        assert not torch.equal(a, params[k].new_zeros(a.shape))
    assert lnt.convert(model, revert=True) is model
    assert type(model.enc) is torch.nn.LSTM and type(model.blocks[0]) is torch.nn.GRU
    assert all(p is params[k] for k, p in model.named_parameters())


def test_convert_warns_once_listing_what_stays_torchs():
    model = torch.nn.ModuleDict(dict(
        ok=torch.nn.LSTM(I, H), proj=torch.nn.LSTM(I, H, proj_size=4), f16=torch.nn.GRU(I, H).half(),
        rnn=torch.nn.RNN(I, H, nonlinearity="relu"), mine=type("MyLSTM", (torch.nn.LSTM,), {})(I, H),
        f64=torch.nn.RNN(I, H).double(), mixed=torch.nn.RNN(I, H)))
    model.mixed.weight_hh_l0.data = model.mixed.weight_hh_l0.data.double()
    with pytest.warns(lnt.FallbackWarning) as record:
        lnt.convert(model)
    assert len(record) == 1
    message = str(record[0].message)
    for name in ("f16", "mine", "mixed"):
        assert f"{name} (" in message
    for name in ("ok", "proj", "rnn", "f64"):
        assert f"{name} (" not in message
    assert type(model.ok) is lnt.LSTM and type(model.proj) is lnt.LSTM
    assert type(model.rnn) is lnt.RNN and type(model.f64) is lnt.RNN
    assert type(model.f16) is torch.nn.GRU and type(model.mixed) is torch.nn.RNN
    assert type(model.mine).__name__ == "MyLSTM"
    with pytest.raises(TypeError, match="torch.nn.Module"):
        lnt.convert(ln.LSTM(I, H))


def test_what_we_cannot_run_falls_back_to_torch():
    torch.manual_seed(0)
    m = lnt.LSTM(I, H).to(torch.bfloat16)           # constructed directly, in a dtype we lack
    ref = torch.nn.LSTM(I, H).to(torch.bfloat16)
    ref.load_state_dict(m.state_dict())
    x = torch.randn(T, B, I, dtype=torch.bfloat16)
    with pytest.warns(lnt.FallbackWarning, match="dtype torch.bfloat16"):
        out, _ = m(x)
    assert torch.equal(out, ref(x)[0])
    g = lnt.GRU(I, H).double()
    with pytest.raises(ValueError, match="dtype"):   # torch's own message: input and weights disagree
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", lnt.FallbackWarning)
            g(torch.randn(T, B, I))


def test_bad_inputs_raise_like_torch():
    m = lnt.LSTM(I, H)
    with pytest.raises(ValueError, match="2D or 3D"):
        m(torch.randn(1, T, B, I))
    with pytest.raises(RuntimeError, match="input_size"):
        m(torch.randn(T, B, I + 1))
    with pytest.raises(RuntimeError, match="hidden"):
        m(torch.randn(T, B, I), (torch.randn(1, B + 1, H), torch.randn(1, B + 1, H)))
    x = torch.randn(T, B, I)
    x[2, 1, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        m(x)


def test_state_dicts_move_between_converted_and_stock(tmp_path):
    stock, ours = pair("gru", num_layers=2, bidirectional=True)
    with torch.no_grad():
        for p in ours.parameters():
            p.mul_(0.5)                           # different weights than stock's
    buf = io.BytesIO()
    torch.save(ours.state_dict(), buf)
    buf.seek(0)
    fresh = torch.nn.GRU(I, H, num_layers=2, bidirectional=True)
    fresh.load_state_dict(torch.load(buf))
    x = torch.randn(T, B, I)
    assert rel_err(fresh(x)[0].detach().numpy(), ours(x)[0].detach().numpy()) < 1e-5
    torch.save(stock.state_dict(), tmp_path / "stock.pt")
    back = lnt.GRU(I, H, num_layers=2, bidirectional=True)
    back.load_state_dict(torch.load(tmp_path / "stock.pt"))
    assert rel_err(back(x)[0].detach().numpy(), stock(x)[0].detach().numpy()) < 1e-5
    torch.save(ours, tmp_path / "whole.pt")        # the whole converted module pickles, and deep-copies
    whole = torch.load(tmp_path / "whole.pt", weights_only=False)
    assert type(whole) is lnt.GRU
    assert rel_err(whole(x)[0].detach().numpy(), ours(x)[0].detach().numpy()) == 0
    assert rel_err(copy.deepcopy(ours)(x)[0].detach().numpy(), ours(x)[0].detach().numpy()) == 0


def test_kernels_run_on_torchs_thread_count(monkeypatch):
    seen = []

    class Spy:
        def __getattr__(self, name):
            return getattr(ln._core, name)

        def recurrent_forward(self, *args):
            seen.append(ln._core.get_num_threads())
            return ln._core.recurrent_forward(*args)

    monkeypatch.setattr(lnt, "core", Spy())
    before = torch.get_num_threads(), ln.get_num_threads()
    try:
        ln.set_num_threads(3)
        for n in (1, 2):
            torch.set_num_threads(n)
            lnt.LSTM(I, H)(torch.randn(T, B, I))
            assert seen[-1] == n
            assert ln.get_num_threads() == 3         # ours restored after the call
    finally:
        torch.set_num_threads(before[0])
        ln.set_num_threads(before[1])


class _TrainsInWorker(torch.utils.data.Dataset):
    """Each item runs a converted model's forward and backward inside a DataLoader worker."""

    def __init__(self, model):
        self.model = model

    def __len__(self):
        return 4

    def __getitem__(self, i):
        x = torch.randn(3, 8, I, generator=torch.Generator().manual_seed(i))
        self.model.zero_grad()
        out, _ = self.model(x)
        out.sum().backward()
        return out.detach().sum(), self.model.weight_hh_l0.grad.sum(), torch.get_num_threads()


def test_works_in_dataloader_workers():
    model = lnt.LSTM(I, H, batch_first=True)
    model(torch.randn(4, T, I))[0].sum().backward()   # the parent has used the kernels (and its thread pool)
    expected = [_TrainsInWorker(model)[i][:2] for i in range(4)]
    loader = torch.utils.data.DataLoader(_TrainsInWorker(model), batch_size=None, num_workers=2, timeout=120)
    got = list(loader)
    assert len(got) == 4
    for (o, g, threads), (eo, eg) in zip(got, expected):
        assert threads == 1                            # torch gives each worker one thread, and so do we
        assert torch.allclose(o, eo) and torch.allclose(g, eg)


def test_import_needs_torch_only_for_the_bridge():
    code = ("import sys; import lstm_native; assert 'torch' not in sys.modules\n"
            "sys.modules['torch'] = None\n"
            "try:\n    import lstm_native.torch\nexcept ImportError as e:\n    print(e)\n")
    env = child_env()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert "lstm_native[torch]" in out.stdout


def test_bench_script_runs_on_a_tiny_shape(capsys):
    sys.path.insert(0, os.path.join(ROOT, "bench"))
    try:
        import torch_dropin
    finally:
        sys.path.pop(0)
    rows, lines = torch_dropin.run(threads=1, reps=2, budget_s=0.0, cases=(("LSTM", 4, 6, 3, 5, True),),
                                   overhead_shape=(4, 6, 3, 5))
    assert len(rows) == 3 and all(np.isfinite(v).all() for v in rows.values())
    table = [line for line in lines if line.startswith("| ")]
    assert len(table) == 5 and "LSTM 4 6 3 5 packed, lengths 3-6" in table[1]


def test_functional_call_runs_on_the_given_parameters():
    stock, ours = pair("lstm", num_layers=2)
    params = {k: torch.randn_like(v, requires_grad=True) for k, v in stock.named_parameters()}
    x = torch.randn(T, B, I)
    a = torch.func.functional_call(ours, params, (x,))[0]
    a.sum().backward()
    grads = {k: p.grad.clone() for k, p in params.items()}
    for p in params.values():
        p.grad = None
    b = torch.func.functional_call(stock, params, (x,))[0]
    b.sum().backward()
    assert rel_err(a.detach().numpy(), b.detach().numpy()) < 1e-5
    for k, p in params.items():
        assert rel_err(grads[k].numpy(), p.grad.numpy()) < 1e-5, k
    assert rel_err(ours(x)[0].detach().numpy(), stock(x)[0].detach().numpy()) < 1e-5   # its own weights again
