"""ONNX export (ln.onnx, no torch): onnxruntime runs every layer as model.predict does, for
dynamic batch and time, with and without lengths; one-step graphs as model.stream(); int8
models with their own integers; clear errors and no partial files."""
import os
import subprocess
import sys

import numpy as np
import onnx
import onnxruntime as ort
import pytest

import lstm_native as ln
from conftest import child_env, random_lengths, rel_err

BATCHES = (1, 7, 32)
STEPS = (1, 13, 50)
BF = dict(batch_first=True)


@pytest.fixture(autouse=True)
def one_thread():
    before = ln.get_num_threads()
    ln.set_num_threads(1)
    yield
    ln.set_num_threads(before)


def session(proto):
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    return ort.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])


def randomised(model, seed):
    """Every parameter drawn from U(-0.5, 0.5): LayerNorm gains, biases and all (not the
    initial ones and zeros), so each weight's place in the graph is checked."""
    rng = np.random.default_rng(seed)
    for p in model.parameters():
        p.data[...] = rng.uniform(-0.5, 0.5, p.data.shape)
    return model.eval()


# name -> (builder, features (None: int64 ids), shortest sequence the model takes)
ZOO = {
    "lstm_stack_last_linear": (lambda: ln.Sequential(ln.LSTM(3, 8, num_layers=2, **BF), ln.LastTimestep(),
                                                     ln.Linear(8, 2)), 3, 1),
    "bilstm_stack_sequence": (lambda: ln.Sequential(ln.LSTM(3, 6, num_layers=2, bidirectional=True, **BF)), 3, 1),
    "gru_sequence_linear": (lambda: ln.Sequential(ln.GRU(3, 8, **BF), ln.Linear(8, 2)), 3, 1),
    "bigru_stack_last": (lambda: ln.Sequential(ln.GRU(3, 5, num_layers=2, bidirectional=True, **BF),
                                               ln.LastTimestep(), ln.Linear(10, 1)), 3, 1),
    "no_bias_recurrent": (lambda: ln.Sequential(ln.LSTM(3, 6, bias=False, **BF), ln.GRU(6, 4, bias=False, **BF)),
                          3, 1),
    "feed_forward_activations_layernorm_dropout": (
        lambda: ln.Sequential(ln.Linear(3, 8), ln.ReLU(), ln.Dropout(0.3), ln.Tanh(), ln.LayerNorm(8),
                              ln.Sigmoid(), ln.Linear(8, 2), ln.LayerNorm(2, elementwise_affine=False)), 3, 1),
    "embedding_lstm": (lambda: ln.Sequential(ln.Embedding(20, 6, padding_idx=0), ln.LSTM(6, 8, **BF),
                                             ln.LastTimestep(), ln.Linear(8, 3)), None, 1),
    "conv_relu_pool_lstm": (lambda: ln.Sequential(ln.Conv1d(3, 6, 3, padding=1), ln.ReLU(), ln.MaxPool1d(2),
                                                  ln.LSTM(6, 8, **BF), ln.LastTimestep(), ln.Linear(8, 2)), 3, 2),
    "conv_strided_dilated_pool_padded_gru": (
        lambda: ln.Sequential(ln.Conv1d(3, 4, 3, stride=2, dilation=2), ln.MaxPool1d(3, stride=1, padding=1),
                              ln.GRU(4, 5, **BF)), 3, 5),
    "time_distributed": (lambda: ln.Sequential(ln.LSTM(3, 8, **BF), ln.TimeDistributed(ln.Linear(8, 4)),
                                               ln.TimeDistributed(ln.Sequential(ln.Linear(4, 4), ln.Tanh()))), 3, 1),
    "residual": (lambda: ln.Sequential(ln.Linear(3, 8), ln.Residual(ln.LSTM(8, 8, **BF)),
                                       ln.Residual(ln.Sequential(ln.GRU(8, 8, **BF), ln.LayerNorm(8))),
                                       ln.LastTimestep()), 3, 1),
    "bilstm_attention": (lambda: ln.Sequential(ln.LSTM(3, 4, bidirectional=True, **BF),
                                               ln.Attention(8, attention_size=5), ln.Linear(8, 2)), 3, 1),
    "multihead_attention": (lambda: ln.Sequential(ln.Linear(3, 8), ln.MultiheadAttention(8, 2),
                                                  ln.MultiheadAttention(8, 4), ln.LastTimestep()), 3, 1),
    "nested_sequential": (lambda: ln.Sequential(ln.Sequential(ln.LSTM(3, 8, **BF),
                                                              ln.Sequential(ln.Dropout(0.1), ln.Tanh())),
                                                ln.LastTimestep(), ln.Sequential(ln.Linear(8, 2))), 3, 1),
    "float64_model": (lambda: ln.Sequential(ln.LSTM(3, 6, dtype=np.float64, **BF), ln.LastTimestep(),
                                            ln.Linear(6, 2, dtype=np.float64)), 3, 1),
    "rnn_tanh_relu": (lambda: ln.Sequential(ln.RNN(3, 6, num_layers=2, bidirectional=True, **BF),
                                            ln.RNN(12, 5, nonlinearity="relu", **BF)), 3, 1),
    "textbook_gru": (lambda: ln.Sequential(ln.GRU(3, 6, num_layers=2, bidirectional=True, reset_after=False, **BF),
                                           ln.LastTimestep(), ln.Linear(12, 2)), 3, 1),
    "lstm_proj_bidirectional_stack": (lambda: ln.Sequential(ln.LSTM(3, 8, num_layers=2, bidirectional=True,
                                                                   proj_size=3, **BF),
                                                           ln.LastTimestep(), ln.Linear(6, 2)), 3, 1),
    "training_only_options": (lambda: ln.Sequential(ln.LSTM(3, 6, recurrent_dropout=0.3, forget_bias=1.0, **BF),
                                                    ln.GRU(6, 4, recurrent_dropout=0.2, **BF)), 3, 1),
}


def inputs(features, batch, steps, rng):
    if features is None:
        return rng.integers(0, 20, (batch, steps))
    return rng.standard_normal((batch, steps, features)).astype(np.float32)


def check_against_predict(model, features, shortest, seed=0, tol=1e-5, shapes=None):
    """onnxruntime vs model.predict over the batch and time grid, without and with lengths;
    returns the largest relative error."""
    rng = np.random.default_rng(seed)
    plain, with_lengths = session(ln.onnx.build(model)), session(ln.onnx.build(model, lengths=True))
    worst = 0.0
    for batch, steps in shapes or [(b, t) for b in BATCHES for t in STEPS]:
        if steps < shortest:
            continue
        x = inputs(features, batch, steps, rng)
        feed = x.astype(np.float32) if features is not None else x.astype(np.int64)
        err = rel_err(plain.run(["output"], {"input": feed})[0], model.predict(x))
        assert err < tol, (batch, steps, err)
        lengths = np.maximum(random_lengths(rng, batch, steps), shortest)
        got = with_lengths.run(["output"], {"input": feed, "lengths": lengths.astype(np.int64)})[0]
        err2 = rel_err(got, model.predict(x, lengths=lengths))
        assert err2 < tol, (batch, steps, "lengths", err2)
        worst = max(worst, err, err2)
    return worst


@pytest.mark.parametrize("name", list(ZOO))
def test_onnxruntime_equals_predict(name):
    build, features, shortest = ZOO[name]
    model = randomised(build(), seed=len(name))
    check_against_predict(model, features, shortest)


def test_graph_interface_and_full_check(tmp_path):
    model = randomised(ZOO["embedding_lstm"][0](), 1)
    path = ln.onnx.export(model, tmp_path / "m.onnx", lengths=True)
    proto = onnx.load(path)
    onnx.checker.check_model(proto, full_check=True)
    g = proto.graph
    assert [i.name for i in g.input] == ["input", "lengths"] and [o.name for o in g.output] == ["output"]
    dims = lambda v: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]   # noqa: E731
    assert g.input[0].type.tensor_type.elem_type == onnx.TensorProto.INT64 and dims(g.input[0]) == ["batch", "time"]
    assert g.input[1].type.tensor_type.elem_type == onnx.TensorProto.INT64 and dims(g.input[1]) == ["batch"]
    assert dims(g.output[0]) == ["batch", 3]
    lstm = [n for n in g.node if n.op_type == "LSTM"]
    assert len(lstm) == 1 and lstm[0].input[4]                     # sequence_lens comes from "lengths"
    assert {a.name: a.i for a in lstm[0].attribute}["layout"] == 0
    float_model = ln.onnx.build(randomised(ZOO["lstm_stack_last_linear"][0](), 1))
    assert float_model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert dims(float_model.graph.input[0]) == ["batch", "time", 3]


@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_lstm_with_proj_size_equals_predict(num_layers, bidirectional):
    # ONNX's LSTM node has no projection: the steps run in a Scan of standard ops, h and the
    # output proj_size wide, c hidden_size
    model = randomised(ln.Sequential(ln.LSTM(3, 7, num_layers=num_layers, bidirectional=bidirectional,
                                             proj_size=4, **BF)), 11 + num_layers + 2 * bidirectional)
    assert check_against_predict(model, 3, 1, shapes=[(b, t) for b in (1, 7) for t in (1, 13)]) < 1e-5
    proto = ln.onnx.build(model, lengths=True)
    assert "Scan" in {n.op_type for n in proto.graph.node} and "LSTM" not in {n.op_type for n in proto.graph.node}
    dims = [d.dim_param or d.dim_value for d in proto.graph.output[0].type.tensor_type.shape.dim]
    assert dims == ["batch", "time", 4 * (1 + bidirectional)]


def test_lstm_with_proj_size_inside_an_int8_model():
    # quantize_dynamic keeps a proj_size LSTM in float; the exported graph holds its Scan beside
    # the int8 products of the other layers
    model = randomised(ln.Sequential(ln.LSTM(3, 8, proj_size=4, **BF), ln.GRU(4, 5, **BF), ln.LastTimestep(),
                                     ln.Linear(5, 2)), 12)
    q = ln.quantize_dynamic(model)
    assert type(q[0]) is ln.LSTM and type(q[1]) is not ln.GRU
    proto = ln.onnx.build(q, lengths=True)
    assert {"Scan", "MatMulInteger"} <= {n.op_type for n in proto.graph.node}
    sess = session(proto)
    rng = np.random.default_rng(13)
    for batch, steps in ((1, 1), (7, 13)):
        x = inputs(3, batch, steps, rng)
        lengths = random_lengths(rng, batch, steps)
        exact, ours = model.predict(x, lengths=lengths), q.predict(x, lengths=lengths)
        theirs = sess.run(["output"], {"input": x, "lengths": lengths.astype(np.int64)})[0]
        assert rel_err(theirs, exact) <= 1.5 * rel_err(ours, exact)
        assert rel_err(theirs, ours) < 1e-3


def test_gate_blocks_are_permuted_once_at_export():
    lstm = ln.LSTM(2, 3, **BF)
    gru = ln.GRU(2, 3, **BF)
    for layer, order in ((lstm, [0, 3, 1, 2]), (gru, [1, 0, 2])):    # ONNX: LSTM i, o, f, c; GRU z, r, h
        proto = ln.onnx.build(ln.Sequential(layer))
        W = next(onnx.numpy_helper.to_array(i) for i in proto.graph.initializer if i.name.endswith("W_l0"))
        torch_order = layer.weight_ih_l0.data.reshape(len(order), 3, 2)
        np.testing.assert_array_equal(W[0].reshape(len(order), 3, 2), torch_order[order])
    gru_node = next(n for n in ln.onnx.build(ln.Sequential(gru)).graph.node if n.op_type == "GRU")
    assert {a.name: a.i for a in gru_node.attribute}["linear_before_reset"] == 1


def test_exporting_twice_gives_identical_files(tmp_path):
    for name in ("conv_relu_pool_lstm", "multihead_attention", "lstm_proj_bidirectional_stack"):
        model = randomised(ZOO[name][0](), 3)
        a = ln.onnx.export(model, tmp_path / "a.onnx", lengths=True)
        b = ln.onnx.export(model, tmp_path / "b.onnx", lengths=True)
        assert open(a, "rb").read() == open(b, "rb").read()
    q = ln.quantize_dynamic(randomised(ZOO["lstm_stack_last_linear"][0](), 3))
    a, b = ln.onnx.export(q, tmp_path / "qa.onnx"), ln.onnx.export(q, tmp_path / "qb.onnx")
    assert open(a, "rb").read() == open(b, "rb").read()


@pytest.mark.parametrize("opset", [18, 21])
def test_newer_opsets(opset):
    model = randomised(ZOO["residual"][0](), 4)
    assert check_against_predict(model, 3, 1, shapes=[(7, 13)]) < 1e-5
    q = ln.quantize_dynamic(model)     # the int8 path writes ReduceMin/ReduceMax axes as an input from opset 18
    x = np.random.default_rng(0).standard_normal((7, 13, 3)).astype(np.float32)
    got = session(ln.onnx.build(q, opset=opset)).run(["output"], {"input": x})[0]
    assert rel_err(got, q.predict(x)) < 1e-3


# -- one step at a time ----------------------------------------------------------------------------
def run_steps(model, xs):
    """100 steps through onnxruntime (states fed back) against model.stream().step; worst error."""
    sess = session(ln.onnx.build(model, step=True))
    batch = xs.shape[1]
    states = {i.name: np.zeros([batch if d == "batch" else d for d in i.shape], np.float32)
              for i in sess.get_inputs() if i.name.startswith("state_in_")}
    names = [o.name for o in sess.get_outputs()]
    stream, worst = model.stream(), 0.0
    for x_t in xs:
        out = dict(zip(names, sess.run(None, {"input": x_t, **states})))
        states = {k.replace("state_out_", "state_in_"): v for k, v in out.items() if k.startswith("state_out_")}
        worst = max(worst, rel_err(out["output"], stream.step(x_t)))
    return worst, sess


STEP_MODELS = {
    "lstm_stack": (lambda: ln.Sequential(ln.LSTM(3, 8, num_layers=2, **BF), ln.LastTimestep(), ln.Linear(8, 2)), 3),
    "residual_gru_layernorm": (lambda: ln.Sequential(ln.Linear(3, 8), ln.Residual(ln.GRU(8, 8, **BF)), ln.LayerNorm(8),
                                                     ln.Dropout(0.2), ln.TimeDistributed(ln.Linear(8, 2))), 3),
    "embedding_lstm_gru": (lambda: ln.Sequential(ln.Embedding(20, 6), ln.LSTM(6, 8, **BF), ln.GRU(8, 4, **BF),
                                                 ln.Sigmoid()), None),
    "rnn_textbook_gru": (lambda: ln.Sequential(ln.RNN(3, 6, num_layers=2, nonlinearity="relu", **BF),
                                               ln.GRU(6, 5, reset_after=False, **BF)), 3),
    "lstm_proj_stack_gru": (lambda: ln.Sequential(ln.LSTM(3, 8, num_layers=2, proj_size=3, **BF), ln.GRU(3, 4, **BF),
                                                  ln.Linear(4, 2)), 3),
}


@pytest.mark.parametrize("name", list(STEP_MODELS))
def test_step_graph_follows_the_stream_for_100_steps(name):
    build, features = STEP_MODELS[name]
    model = randomised(build(), 5)
    rng = np.random.default_rng(1)
    xs = rng.integers(0, 20, (100, 4)) if features is None else rng.standard_normal((100, 4, features)).astype(np.float32)
    worst, sess = run_steps(model, xs)
    assert worst < 1e-5
    ins = [i.name for i in sess.get_inputs()]
    assert ins[0] == "input" and ins[1:] == [f"state_in_{k}" for k in range(len(ins) - 1)]
    assert [o.name for o in sess.get_outputs()] == ["output"] + [f"state_out_{k}" for k in range(len(ins) - 1)]
    if name == "lstm_proj_stack_gru":              # h proj_size wide, c hidden_size, then the GRU's h
        assert [i.shape for i in sess.get_inputs()[1:]] == [[2, "batch", 3], [2, "batch", 8], [1, "batch", 4]]


def test_step_graph_of_an_int8_model():
    q = ln.quantize_dynamic(randomised(STEP_MODELS["lstm_stack"][0](), 6))
    xs = np.random.default_rng(2).standard_normal((100, 4, 3)).astype(np.float32)
    worst, _ = run_steps(q, xs)
    assert worst < 1e-3       # the same integers as our int8 stream (measured 2e-7); a float ulp may move one


# -- int8 ---------------------------------------------------------------------------------------------------
INT8_MODELS = ["lstm_stack_last_linear", "bigru_stack_last", "no_bias_recurrent", "conv_relu_pool_lstm", "residual", "time_distributed",
               "multihead_attention", "rnn_tanh_relu"]


@pytest.mark.parametrize("name", INT8_MODELS)
def test_int8_export_error_matches_ours(name):
    build, features, shortest = ZOO[name]
    model = randomised(build(), 7)
    q = ln.quantize_dynamic(model)
    proto = ln.onnx.build(q, lengths=True)
    ops = {n.op_type for n in proto.graph.node}
    assert "MatMulInteger" in ops and not ops & {"LSTM", "GRU"}       # int8 products, standard ops only
    assert all(o.domain in ("", "ai.onnx") for o in proto.opset_import)
    sess = session(proto)
    rng = np.random.default_rng(8)
    for batch, steps in ((7, 13), (32, 50)):
        x = inputs(features, batch, steps, rng)
        lengths = np.maximum(random_lengths(rng, batch, steps), shortest)
        exact = model.predict(x, lengths=lengths)
        ours = q.predict(x, lengths=lengths)
        theirs = sess.run(["output"], {"input": x, "lengths": lengths.astype(np.int64)})[0]
        assert rel_err(theirs, exact) <= 1.5 * rel_err(ours, exact)           # the bar; measured 1.00x
        assert rel_err(theirs, ours) < 1e-3                                   # measured <= 3e-7


def test_int8_file_is_three_times_smaller(tmp_path):
    model = randomised(ln.Sequential(ln.LSTM(8, 128, num_layers=2, **BF), ln.LastTimestep(), ln.Linear(128, 1)), 9)
    f = os.path.getsize(ln.onnx.export(model, tmp_path / "f.onnx"))
    q = os.path.getsize(ln.onnx.export(ln.quantize_dynamic(model), tmp_path / "q.onnx"))
    assert f >= 3 * q, (f, q)                  # measured 3.5x here (H64: 3.0x; grows toward 4x with size)


# -- errors ---------------------------------------------------------------------------------------------------
class Custom(ln.Module):
    def forward(self, x):
        return x


def assert_no_file(folder):
    assert os.listdir(folder) == []


def test_unsupported_layer_names_it_and_writes_nothing(tmp_path):
    model = ln.Sequential(ln.LSTM(3, 4, **BF), ln.Sequential(ln.Tanh(), Custom()))
    with pytest.raises(TypeError, match=r"layer 1\.1 is a Custom, which has no ONNX export"):
        ln.onnx.export(model, tmp_path / "m.onnx")
    assert_no_file(tmp_path)


@pytest.mark.parametrize("model, error, match", [
    (ln.Sequential(ln.LSTM(3, 4)), ValueError, r"layer 0 \(LSTM\) has batch_first=False"),
    (ln.Sequential(ln.LSTM(3, 4, **BF), ln.Attention(4, query_size=2)), ValueError, r"layer 1 \(Attention\).*query"),
    (ln.Sequential(ln.LSTM(3, 4, **BF), ln.Embedding(5, 2)), TypeError, r"layer 1 \(Embedding\) takes integer ids"),
    (ln.Sequential(ln.LSTM(3, 4, **BF), ln.Linear(5, 2)), ValueError, r"layer 1 \(Linear\) expects 5 features"),
])
def test_models_the_graph_cannot_hold(tmp_path, model, error, match):
    with pytest.raises(error, match=match):
        ln.onnx.export(model, tmp_path / "m.onnx")
    assert_no_file(tmp_path)


def test_training_only_option_is_refused(tmp_path):
    # An option the exporter does not write (zoneout changes eval outputs) must not be dropped silently.
    model = ln.Sequential(ln.Linear(3, 3), ln.GRU(3, 4, **BF))
    gru = model[1]
    config = gru.get_config()
    gru.get_config = lambda: dict(config, zoneout=0.1)
    with pytest.raises(ValueError, match=r"layer 1 \(GRU\) has zoneout=0\.1"):
        ln.onnx.export(model, tmp_path / "m.onnx")
    gru.get_config = lambda: dict(config, zoneout=0.0)          # at its default it changes nothing
    ln.onnx.export(model, tmp_path / "m.onnx")


@pytest.mark.parametrize("layer, error, match", [
    (lambda: ln.RNN(3, 6, zoneout=0.2, **BF), ValueError, r"\(RNN\) has zoneout=0\.2"),
    (lambda: ln.LayerNormLSTM(3, 6, **BF), TypeError, "LayerNormLSTM, which has no ONNX export"),
])
def test_cells_without_an_onnx_node_are_refused(tmp_path, layer, error, match):
    with pytest.raises(error, match=match):
        ln.onnx.export(ln.Sequential(layer()), tmp_path / "m.onnx")
    assert_no_file(tmp_path)


def test_step_export_refuses_what_cannot_stream(tmp_path):
    with pytest.raises(TypeError, match="bidirectional"):
        ln.onnx.export(ln.Sequential(ln.LSTM(3, 4, bidirectional=True, **BF)), tmp_path / "m.onnx", step=True)
    with pytest.raises(TypeError, match="Conv1d needs the whole sequence"):
        ln.onnx.export(ln.Sequential(ln.Conv1d(3, 4, 2), ln.LSTM(4, 4, **BF)), tmp_path / "m.onnx", step=True)
    with pytest.raises(ValueError, match="lengths=True needs whole sequences"):
        ln.onnx.export(ln.Sequential(ln.LSTM(3, 4, **BF)), tmp_path / "m.onnx", step=True, lengths=True)
    with pytest.raises(ValueError, match="opset must be an integer"):
        ln.onnx.export(ln.Sequential(ln.LSTM(3, 4, **BF)), tmp_path / "m.onnx", opset=11)
    with pytest.raises(TypeError, match="takes an lstm_native model"):
        ln.onnx.export("model.npz", tmp_path / "m.onnx")
    assert_no_file(tmp_path)


def test_unwritable_path_names_it_and_leaves_nothing(tmp_path):
    model = ln.Sequential(ln.LSTM(3, 4, **BF))
    missing = tmp_path / "no" / "such" / "m.onnx"
    with pytest.raises(OSError, match="cannot write the ONNX file .*m.onnx"):
        ln.onnx.export(model, missing)
    folder = tmp_path / "a_folder"
    folder.mkdir()
    with pytest.raises(OSError, match="cannot write the ONNX file .*a_folder"):
        ln.onnx.export(model, folder)                             # a folder where the file should go
    assert os.listdir(tmp_path) == ["a_folder"] and os.listdir(folder) == []


# -- packaging and the command line ---------------------------------------------------------------------------
def test_import_does_not_load_onnx_and_ln_onnx_is_there():
    code = ("import sys, lstm_native as ln; assert 'onnx' not in sys.modules, 'onnx imported'; "
            "assert callable(ln.onnx.export); assert 'onnx' not in sys.modules, 'ln.onnx imported onnx'")
    env = child_env()
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_without_onnx_the_error_names_the_extra(tmp_path):
    code = ("import sys; sys.modules['onnx'] = None; import lstm_native as ln\n"
            "try:\n    ln.onnx.export(ln.Linear(2, 2), sys.argv[1])\n"
            "except ImportError as e:\n    assert \"lstm_native[onnx]\" in str(e), e\nelse:\n    raise SystemExit('no error')")
    env = child_env()
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path / "m.onnx")], env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert_no_file(tmp_path)


def test_cli_export(tmp_path):
    from lstm_native import cli
    model = randomised(ZOO["gru_sequence_linear"][0](), 10)
    model.save(tmp_path / "m.npz")
    assert cli.main(["export", str(tmp_path / "m.npz"), str(tmp_path / "m.onnx"), "--lengths"]) == 0
    x = np.random.default_rng(0).standard_normal((4, 9, 3)).astype(np.float32)
    lengths = np.array([9, 1, 4, 7])
    got = session(onnx.load(tmp_path / "m.onnx")).run(["output"], {"input": x, "lengths": lengths})[0]
    assert rel_err(got, model.predict(x, lengths=lengths)) < 1e-5
    assert cli.main(["export", str(tmp_path / "m.npz"), str(tmp_path / "s.onnx"), "--step"]) == 0
    assert [i.name for i in onnx.load(tmp_path / "s.onnx").graph.input] == ["input", "state_in_0"]
    assert cli.main(["export", str(tmp_path / "none.npz"), str(tmp_path / "x.onnx")]) == 2
    assert not (tmp_path / "x.onnx").exists()
