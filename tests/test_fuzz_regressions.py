"""The bugs the property-based tests (test_fuzz.py) found, one plain test each, so that they
stay fixed whatever the fuzzer draws next time. tests/FUZZ.md lists them."""
import numpy as np
import pytest

import lstm_native as ln


def test_a_scalar_is_not_taken_for_a_one_feature_vector():
    # float_array used np.ascontiguousarray, which makes a 0-d array 1-d: a scalar x_t passed
    # step's (batch, I) or (I,) check as one series of one feature, and Linear(1, k) took a scalar.
    lstm = ln.LSTM(1, 3)
    with pytest.raises(ValueError, match=r"x_t must have shape"):
        lstm.step(np.float32(0.5))
    with pytest.raises(ValueError, match=r"x must have 1 features"):
        ln.Linear(1, 2)(np.float64(0.5))
    with pytest.raises(ValueError, match="X"):
        ln.Sequential(ln.Linear(1, 1)).predict(np.float32(1.0))


def test_linear_backward_takes_only_the_forward_output_shape():
    # backward compared only the number of rows: a (3, 2, out) gradient for a (2, 3, in) input
    # (or a flattened one) was taken silently, rows paired with the wrong inputs.
    layer = ln.Linear(4, 5)
    layer(np.zeros((2, 3, 4), np.float32))
    with pytest.raises(ValueError, match=r"grad must have the forward output's shape \(2, 3, 5\), got \(3, 2, 5\)"):
        layer.backward(np.zeros((3, 2, 5), np.float32))
    layer(np.zeros((0, 4), np.float32))
    with pytest.raises(ValueError, match=r"grad must have .* \(0, 5\), got \(0,\)"):
        layer.backward(np.zeros(0, np.float32))


def test_embedding_backward_checks_the_gradient():
    # backward reshaped any gradient of the right size (and cast ints) without a word.
    emb = ln.Embedding(5, 2)
    emb(np.array([[1, 2, 3]]))
    with pytest.raises(ValueError, match=r"grad must have the forward output's shape \(1, 3, 2\), got \(3, 2\)"):
        emb.backward(np.ones((3, 2), np.float32))
    emb(np.array([[1, 2, 3]]))
    with pytest.raises(TypeError, match="grad must be a floating-point array"):
        emb.backward(np.ones((1, 3, 2), np.int64))


def test_dropout_takes_floats_and_checks_its_gradient():
    # int input made a mask of int(1 / (1 - p)) = 0 -> inf/NaN; a wrong-shaped gradient was
    # broadcast against the mask; big-endian input came back big-endian.
    drop = ln.Dropout(0.3, seed=0)
    with pytest.raises(TypeError, match="x must be a floating-point array"):
        drop(np.ones((2, 3), np.int64))
    y = drop(np.ones((2, 3), ">f4"))
    assert y.dtype == np.float32 and y.dtype.isnative
    with pytest.raises(ValueError, match=r"grad must have the forward output's shape \(2, 3\), got \(3,\)"):
        drop.backward(np.ones(3, np.float32))
    drop.eval()
    drop(np.ones((2, 3), np.float32))
    with pytest.raises(ValueError, match=r"grad must have the forward output's shape \(2, 3\)"):
        drop.backward(np.ones((1, 3), np.float32))


@pytest.mark.parametrize("cls", [ln.ReLU, ln.Tanh, ln.Sigmoid])
def test_activations_take_floats_and_check_their_gradient(cls):
    # ints, bools and objects went through NumPy as they were (Sigmoid of an object array raised
    # an AttributeError/TypeError naming nothing, ReLU of ints returned ints); a wrong-shaped or
    # float64 gradient was broadcast against a float32 output.
    act = cls()
    for bad in (np.ones(3, np.int32), np.ones(3, bool), np.ones(3, object)):
        with pytest.raises(TypeError, match="x must be a floating-point array"):
            act(bad)
    y = act(np.ones((2, 3), np.float32))
    with pytest.raises(ValueError, match=r"grad must have the forward output's shape \(2, 3\), got \(1, 3\)"):
        act.backward(np.ones((1, 3), np.float32))
    assert act.backward(np.ones((2, 3), np.float64)).dtype == np.float32 == y.dtype


def test_layer_norm_eps_must_be_positive_and_grad_checked():
    # eps = 0 (or negative, or NaN) turned a constant row into NaN output without an error.
    for eps in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="eps must be a positive number"):
            ln.LayerNorm(3, eps=eps)
    norm = ln.LayerNorm(3)
    norm(np.ones((2, 3), np.float32))
    with pytest.raises(ValueError, match=r"grad must have the forward output's shape \(2, 3\), got \(3,\)"):
        norm.backward(np.ones(3, np.float32))


def test_last_timestep_checks_x_lengths_and_grad():
    # T = 0 raised an IndexError; float lengths were truncated (2.7 -> step 1); an empty batch
    # with lengths raised NumPy's "zero-size array to reduction"; ints were taken as they were.
    last = ln.LastTimestep()
    with pytest.raises(ValueError, match="x: the sequences have no time steps"):
        last(np.zeros((2, 0, 3), np.float32))
    x = np.arange(12, dtype=np.float32).reshape(2, 3, 2)
    with pytest.raises(TypeError, match="lengths must hold integers"):
        last(x, lengths=[2.7, 3.0])
    with pytest.raises(ValueError, match=r"lengths\[1\] = 4 is outside \[0, 3\]"):
        last(x, lengths=[1, 4])
    with pytest.raises(ValueError, match=r"lengths must be >= 1"):
        last(x, lengths=[0, 3])
    assert last(np.zeros((0, 3, 2), np.float32), lengths=np.zeros(0, np.int64)).shape == (0, 2)
    with pytest.raises(TypeError, match="x must be a floating-point array"):
        last(np.zeros((2, 3, 2), np.int64))
    np.testing.assert_array_equal(last(x, lengths=np.array([1, 3], np.uint8)), x[[0, 1], [0, 2]])
    with pytest.raises(ValueError, match=r"grad must have the forward output's shape \(2, 2\), got \(2,\)"):
        last.backward(np.ones(2, np.float32))


def test_time_distributed_backward_checks_the_gradient_shape():
    # a (T, B, F) gradient for a (B, T, ...) input has the inner layer's row count, so it was
    # taken silently with rows paired to the wrong steps.
    td = ln.TimeDistributed(ln.Linear(3, 2))
    td(np.zeros((2, 4, 3), np.float32))
    with pytest.raises(ValueError, match=r"grad must have the forward output's shape \(2, 4, 2\), got \(4, 2, 2\)"):
        td.backward(np.zeros((4, 2, 2), np.float32))


def test_residual_keeps_the_layer_dtype_and_checks_the_gradient():
    # float64 input to a float32 layer gave a float64 output (x + y promoted); a gradient of
    # another shape was broadcast in x's gradient.
    res = ln.Residual(ln.Linear(3, 3))
    x = np.random.default_rng(0).standard_normal((2, 3))
    y = res(x)
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y, ln.Residual(res.layer)(x.astype(np.float32)))
    with pytest.raises(ValueError, match=r"grad must have the forward output's shape \(2, 3\), got \(1, 3\)"):
        res.backward(np.ones((1, 3), np.float32))


def test_attention_checks_h_lengths_and_grad():
    # an empty batch or no time steps gave NumPy's reshape or reduction errors; lengths were not
    # checked (floats, out of range, negative all taken); a query set of 0 steps failed to reshape.
    att = ln.Attention(2, query_size=3)
    q = np.zeros((2, 3), np.float32)
    with pytest.raises(ValueError, match="h: the sequences have no time steps"):
        att(np.zeros((2, 0, 2), np.float32), q)
    with pytest.raises(ValueError, match="h: the batch is empty"):
        att(np.zeros((0, 4, 2), np.float32), np.zeros((0, 3), np.float32))
    h = np.ones((2, 4, 2), np.float32)
    for lengths, error in (([5, 1], ValueError), ([-1, 2], ValueError), ([1.5, 2.0], TypeError)):
        with pytest.raises(error, match="lengths"):
            att(h, q, lengths=lengths)
    assert att(h, np.zeros((2, 0, 3), np.float32)).shape == (2, 0, 2)
    att(h, q)
    with pytest.raises(ValueError, match=r"grad must have the forward output's shape \(2, 2\), got \(1, 2\)"):
        att.backward(np.ones((1, 2), np.float32))


def test_multihead_attention_needs_a_non_empty_batch():
    # an empty batch or no time steps gave NumPy's "zero-size array to reduction operation maximum"
    mha = ln.MultiheadAttention(4, 2)
    with pytest.raises(ValueError, match="x: the sequences have no time steps"):
        mha(np.zeros((2, 0, 4), np.float32))
    with pytest.raises(ValueError, match="x: the batch is empty"):
        mha(np.zeros((0, 3, 4), np.float32))


def test_max_pool_returns_native_floats_and_checks_the_gradient_dtype():
    # big-endian input came back big-endian (the padded buffer took x's dtype); an integer
    # gradient was cast without a word.
    pool = ln.MaxPool1d(2)
    y = pool(np.arange(8, dtype=">f4").reshape(1, 4, 2))
    assert y.dtype == np.float32 and y.dtype.isnative
    with pytest.raises(TypeError, match="grad must be a floating-point array"):
        pool.backward(np.ones((1, 2, 2), np.int32))


def test_predict_batch_size_must_be_a_positive_integer():
    # predict ran int(batch_size): 2.5 became 2, "3" became 3 and True became 1, where fit refuses them.
    model = ln.Sequential(ln.Linear(2, 1))
    X = np.ones((4, 2), np.float32)
    for bad in (2.5, "3", True, 0):
        with pytest.raises(ValueError, match="batch_size must be a positive integer"):
            model.predict(X, batch_size=bad)
    assert model.predict(X, batch_size=np.int64(3)).shape == (4, 1)


def test_fit_checks_clipping_limits_and_scalar_targets_up_front():
    # clip_grad_norm=0 failed at the first batch with "max_norm must be > 0" (naming no fit
    # argument); a scalar y raised "len() of unsized object".
    model = ln.Sequential(ln.Linear(2, 1))
    X, y = np.ones((4, 2), np.float32), np.ones((4, 1), np.float32)
    for name in ("clip_grad_norm", "clip_grad_value"):
        for bad in (0.0, -1, float("nan"), "1", True):
            with pytest.raises(ValueError, match=f"{name} must be a positive number or None"):
                model.fit(X, y, verbose=0, **{name: bad})
    with pytest.raises(ValueError, match="y must hold one target per sample"):
        model.fit(X, np.float32(1.0), verbose=0)
    with pytest.raises(ValueError, match="y must hold one target per sample"):
        model.evaluate(X, 1.0)


@pytest.mark.parametrize("cls", [ln.LSTM, ln.GRU])
def test_step_and_stream_refuse_a_non_finite_state(cls):
    # step copied a given state into its buffers unchecked (the core checks x_t only): c0 with
    # -inf gave an output of -0 and a cell state of -inf without an error. A stream's initial
    # state goes the same way.
    layer = cls(4, 4, seed=0)
    h = np.zeros((1, 1, 4), np.float32)
    bad = h.copy()
    bad[0, 0, 2] = -np.inf
    x = np.ones((1, 4), np.float32)
    with pytest.raises(ValueError, match="c0 contains NaN or infinity" if cls is ln.LSTM else "h0 contains NaN"):
        layer.step(x, (h, bad) if cls is ln.LSTM else bad)
    with pytest.raises(ValueError, match="h0 contains NaN or infinity"):
        layer.step(x, (bad, h) if cls is ln.LSTM else bad)
    model = ln.Sequential(cls(4, 4, batch_first=True, seed=0))
    state = [(h, bad) if cls is ln.LSTM else bad]
    with pytest.raises(ValueError, match="initial_state contains NaN or infinity"):
        model.stream(state)


def test_losses_check_their_arguments_and_give_native_gradients():
    # mse/mae took object targets (and strings failed in astype with a bare "could not
    # convert"); a big-endian prediction gave a big-endian gradient; cross_entropy with 0 classes
    # hit a reshape error, with string class weights a bare conversion error; bce_with_logits'
    # pos_weight of another shape failed in NumPy broadcasting.
    pred = np.zeros((2, 3), np.float32)
    for fn in (ln.losses.mse, ln.losses.mae):
        with pytest.raises(TypeError, match="target must be numeric"):
            fn(pred, np.zeros((2, 3), object))
        grad = fn(pred.astype(">f4"), np.ones((2, 3)))[1]
        assert grad.dtype == np.float32 and grad.dtype.isnative
    with pytest.raises(ValueError, match="logits must have at least one class"):
        ln.losses.cross_entropy(np.zeros((0, 0), np.float32), np.zeros(0, np.int64))
    with pytest.raises(TypeError, match="weight must be numeric"):
        ln.losses.cross_entropy(pred, np.zeros(2, np.int64), weight=["a", "b", "c"])
    assert ln.losses.cross_entropy(pred.astype(">f4"), np.zeros(2, np.int64))[1].dtype.isnative
    with pytest.raises(ValueError, match=r"pos_weight of shape \(2,\) does not broadcast"):
        ln.losses.bce_with_logits(pred, np.zeros((2, 3)), pos_weight=np.ones(2))
    with pytest.raises(TypeError, match="pos_weight must be numeric"):
        ln.losses.bce_with_logits(pred, np.zeros((2, 3)), pos_weight="2")


def test_optimizer_hyperparameters_are_finite_real_numbers():
    # float() took lr="0.1" and True, None raised a bare float() error; lr, momentum or
    # weight_decay of inf were taken (NaN parameters after one step); betas=0.9 raised "'float'
    # object is not subscriptable"; eps=0 gives 0/0 = NaN where a gradient is zero.
    p = [ln.Parameter(np.zeros(3, np.float32))]
    for bad in ("0.1", True, None):
        with pytest.raises(TypeError, match="lr must be a number"):
            ln.optim.SGD(p, lr=bad)
    for key in ("lr", "momentum", "weight_decay"):
        with pytest.raises(ValueError, match=f"{key} must be finite"):
            ln.optim.SGD(p, **{key: float("inf")})
    with pytest.raises(TypeError, match="betas must be a pair"):
        ln.optim.Adam(p, betas=0.9)
    with pytest.raises(TypeError, match="betas must be a pair"):
        ln.optim.Adam(p, betas=(0.9,))
    for cls in (ln.optim.Adam, ln.optim.RMSprop, ln.optim.Adagrad):
        with pytest.raises(ValueError, match="eps must be > 0"):
            cls(p, eps=0.0)
    opt = ln.optim.Adam(p, lr=np.float32(0.1), betas=[0.5, 0.9])     # NumPy numbers and lists still work
    opt.step()
    assert np.isfinite(p[0].data).all()


def test_schedule_arguments_are_checked():
    # step_size="3" raised "'<' not supported between str and int", None a bare int() error,
    # 2.5 was truncated; gamma=inf or a negative eta_min/total_iters gave infinite or negative
    # rates; ReduceLROnPlateau.step("high") a bare float() error.
    opt = ln.optim.SGD([ln.Parameter(np.zeros(2, np.float32))], lr=0.1)
    for bad, error in (("3", TypeError), (None, TypeError), (2.5, TypeError), (0, ValueError)):
        with pytest.raises(error, match="step_size must be"):
            ln.optim.StepLR(opt, step_size=bad)
    with pytest.raises(ValueError, match="gamma must be finite"):
        ln.optim.ExponentialLR(opt, gamma=float("inf"))
    with pytest.raises(ValueError, match="eta_min must be >= 0"):
        ln.optim.CosineAnnealingLR(opt, T_max=3, eta_min=-1.0)
    with pytest.raises(ValueError, match="total_iters must be >= 0"):
        ln.optim.LinearLR(opt, total_iters=-3)
    with pytest.raises(ValueError, match="warmup_epochs must be >= 0"):     # (not its parent's total_iters)
        ln.optim.LinearWarmup(opt, warmup_epochs=-1)
    with pytest.raises(ValueError, match="patience must be >= 0"):
        ln.optim.ReduceLROnPlateau(opt, patience=-1)
    plateau = ln.optim.ReduceLROnPlateau(opt)
    with pytest.raises(TypeError, match="metric must be a number"):
        plateau.step("high")
    plateau.step(np.array(0.5))


def test_clipping_limits_are_numbers_above_zero():
    # float() took "1" and True and gave None a bare float() error; norm_type=0 raised
    # ZeroDivisionError, a negative one a FloatingPointError about a "-1.0-norm".
    p = ln.Parameter(np.zeros(3, np.float32))
    p.grad[...] = 1
    for bad in ("1", None, True):
        with pytest.raises(TypeError, match="max_norm must be a number"):
            ln.clip_grad_norm_([p], bad)
        with pytest.raises(TypeError, match="clip_value must be a number"):
            ln.clip_grad_value_([p], bad)
    for bad in (0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="norm_type must be > 0"):
            ln.clip_grad_norm_([p], 1.0, norm_type=bad)
    assert ln.clip_grad_norm_([p], float("inf")) == pytest.approx(3 ** 0.5)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_infinity_norm_keeps_nan(dtype):
    # the core's infinity norm took std::max(acc, NaN), which is acc: a NaN gradient gave a
    # finite norm (0 for a lone NaN), so nothing said the gradients were broken.
    p = ln.Parameter(np.zeros(5, dtype))
    p.grad[...] = [0.5, np.nan, 0.1, 0.2, 0.3]
    assert np.isnan(ln.clip_grad_norm_([p], 1.0, norm_type=float("inf")))
    q = ln.Parameter(np.zeros((), dtype))
    q.grad[...] = np.nan
    assert np.isnan(ln.clip_grad_norm_([q], 1.0, norm_type=float("inf")))
    with pytest.raises(FloatingPointError, match="is nan"):
        ln.clip_grad_norm_([p], 1.0, norm_type=float("inf"), error_if_nonfinite=True)


def test_data_tools_check_their_arguments():
    # Each of these raised an error naming nothing (or nothing at all): sliding_windows with
    # dtype="nope" or target="a"; naive_forecast with horizon=-1 ("negative dimensions");
    # a scaler fitted on a scalar (IndexError) or with feature_range=(0, inf) (every value
    # scaled to 0); time_split with val="0.1", a scalar or a string among the arrays;
    # pad_sequences with maxlen=True (taken as 1); Vocabulary.decode of float ids;
    # noisy_sine with period=0 (NaN wave), n=-1 or n=2.5; sample_text(2.5).
    series = np.arange(10.0)
    with pytest.raises(TypeError, match="dtype must be a NumPy dtype"):
        ln.data.sliding_windows(series, 3, dtype="nope")
    with pytest.raises(TypeError, match="target must be a column index or a list of them"):
        ln.data.sliding_windows(series[:, None], 3, target="a")
    with pytest.raises(TypeError, match="target columns must be integers"):
        ln.data.sliding_windows(series[:, None], 3, target=[0.5])
    X, _ = ln.data.sliding_windows(series, 3)
    with pytest.raises(ValueError, match="horizon must be >= 1"):
        ln.data.naive_forecast(X, horizon=-1)
    with pytest.raises(ValueError, match="data must be at least 1-D"):
        ln.data.StandardScaler().fit(np.float32(1.0))
    with pytest.raises(ValueError, match="feature_range must be a finite number"):
        ln.data.MinMaxScaler((0, float("inf")))
    with pytest.raises(TypeError, match="val must be a number"):
        ln.data.time_split(series, val="0.1")
    for bad in (3, "abc"):
        with pytest.raises(TypeError, match="array 1 must be an array"):
            ln.data.time_split(series, bad)
    with pytest.raises(ValueError, match="maxlen must be a positive integer"):
        ln.data.pad_sequences([np.ones(3)], maxlen=True)
    vocab = ln.data.Vocabulary.from_text("a b")
    with pytest.raises(TypeError, match="ids must be integers"):
        vocab.decode(np.array([2.0, 3.0]))
    with pytest.raises(ValueError, match="period must be a finite number > 0"):
        ln.data.noisy_sine(10, period=0)
    for bad, error in ((-1, ValueError), (2.5, TypeError)):
        with pytest.raises(error, match="n must be"):
            ln.data.noisy_sine(bad)
    with pytest.raises(TypeError, match="n_sentences must be an integer"):
        ln.data.sample_text(2.5)


def test_conv1d_backward_checks_the_gradient_before_masking_it():
    # with lengths, backward zeroed the gradient past each output length before the core's
    # shape check: a gradient with another batch size raised an IndexError.
    conv = ln.Conv1d(1, 1, 1)
    conv(np.ones((1, 3, 1), np.float32), lengths=[2])
    with pytest.raises(ValueError, match=r"grad must have shape \(1, 3, 1\), got \(0, 3, 1\)"):
        conv.backward(np.zeros((0, 3, 1), np.float32))


@pytest.mark.parametrize("cls", [ln.LSTM, ln.GRU])
def test_quantized_layers_refuse_a_non_finite_state(cls):
    # the int8 step quantises each row of h before its product: a NaN in h0 became finite
    # garbage, and predict(initial_state=...) returned ordinary-looking numbers.
    q = ln.quantize_dynamic(ln.Sequential(cls(2, 3, batch_first=True, seed=0), ln.Linear(3, 1)))
    X = np.ones((2, 4, 2), np.float32)
    _, state = q.predict(X, return_state=True)
    s = state[0]
    h = (s[0] if cls is ln.LSTM else s).copy()
    h[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="h0 contains NaN or infinity"):
        q.predict(X, initial_state=[(h, s[1]) if cls is ln.LSTM else h, None])
    if cls is ln.LSTM:
        c = s[1].copy()
        c[0, 1, 2] = np.inf
        with pytest.raises(ValueError, match="c0 contains NaN or infinity"):
            q.predict(X, initial_state=[(s[0], c), None])


def test_constructors_name_their_bad_arguments():
    # Each of these raised an error naming no argument, or built a layer silently: a negative
    # seed (NumPy's "expected non-negative integer"), dtype="nope" or 0 (NumPy's "Cannot
    # interpret"), dtype=None (np.dtype(None) is float64), dropout=None (a bare float() error),
    # LayerNorm(eps=None), Embedding(padding_idx=nan) ("cannot convert float NaN to integer")
    # and padding_idx=1.5 (truncated), Attention(attention_size=0) (became hidden_size),
    # TimeDistributed/Residual of a non-Module (failed at the first call).
    with pytest.raises(ValueError, match="seed must be a non-negative integer"):
        ln.Linear(2, 2, seed=-1)
    with pytest.raises(TypeError, match="seed must be a non-negative integer"):
        ln.LSTM(2, 2, seed=2.5)
    for bad in ("nope", 0, None, "float16"):
        with pytest.raises(TypeError, match="dtype must be float32 or float64"):
            ln.GRU(2, 2, dtype=bad)
    with pytest.raises(TypeError, match="dropout must be a number"):
        ln.LSTM(2, 2, dropout=None)
    with pytest.raises(TypeError, match="p must be a number"):
        ln.Dropout("0.5")
    with pytest.raises(TypeError, match="eps must be a number"):
        ln.LayerNorm(3, eps=None)
    for bad in (float("nan"), 1.5, "1"):
        with pytest.raises(TypeError, match="padding_idx must be an integer"):
            ln.Embedding(4, 2, padding_idx=bad)
    with pytest.raises(ValueError, match="attention_size must be a positive integer"):
        ln.Attention(3, attention_size=0)
    for wrapper in (ln.TimeDistributed, ln.Residual):
        with pytest.raises(TypeError, match="wraps a layer"):
            wrapper(ln.Linear)


def test_time_distributed_on_empty_axes():
    # x.reshape((-1,) + x.shape[2:]) cannot infer -1 when an axis is 0: NumPy's "cannot reshape
    # array of size 0" instead of the inner layer's own check (or an empty result).
    td = ln.TimeDistributed(ln.Linear(1, 2))
    with pytest.raises(ValueError, match="x must have 1 features"):
        td(np.zeros((0, 0, 0), np.float32))
    y = td(np.zeros((0, 3, 1), np.float32))
    assert y.shape == (0, 3, 2)
    assert td.backward(np.zeros((0, 3, 2), np.float32)).shape == (0, 3, 1)


def test_predict_and_fit_need_a_features_axis_for_float_x():
    # a 1-D float X went to the model in slices: with batch_size=1 each (1,) slice passed a
    # Linear(1, k) as one feature vector, while the whole (N,) array failed; ids stay 1-D-able.
    model = ln.Sequential(ln.Linear(1, 1))
    X = np.array([0.5, -0.5], np.float32)
    for call in (lambda: model.predict(X, batch_size=1), lambda: model.fit(X, np.zeros(2), verbose=0)):
        with pytest.raises(ValueError, match=r"X must have a samples axis and a features axis"):
            call()
    ids = ln.Sequential(ln.Embedding(5, 2), ln.Linear(2, 1))
    assert ids.predict(np.array([1, 4]), batch_size=1).shape == (2, 1)


def test_a_quantised_multihead_attention_saves_and_loads(tmp_path):
    # quantize_dynamic swaps MultiheadAttention's out_proj for an int8 layer, but the file kept
    # MultiheadAttention's plain config: ln.load rebuilt a float out_proj and refused its own
    # file ("state_dict mismatch: missing ['0.out_proj.weight', '0.out_proj.bias']").
    model = ln.Sequential(ln.MultiheadAttention(4, 2, seed=0), ln.LastTimestep(), ln.Linear(4, 1, seed=1))
    q = ln.quantize_dynamic(model)
    X = np.random.default_rng(0).standard_normal((3, 5, 4)).astype(np.float32)
    q.save(tmp_path / "q.lnz")
    loaded = ln.load(tmp_path / "q.lnz")
    np.testing.assert_array_equal(loaded.predict(X), q.predict(X))
    assert type(loaded[0].out_proj) is type(q[0].out_proj)
    model.save(tmp_path / "f.lnz")                     # the float model's file is as before
    assert "out_proj" not in str(ln.io.read(tmp_path / "f.lnz")[0]["model"]["layers"][0])



@pytest.mark.parametrize("name", ["mse", "mae", "bce_with_logits"])
def test_a_loss_does_not_depend_on_memory_layout(name):
    # NumPy sums in memory order: these Fortran-ordered logits gave 12.293111322052106 where
    # their C-ordered copy gave 12.293111322052107 (bce_with_logits; mse differed likewise).
    pred = np.array([[[12.573022], [-13.210486], [64.04227]], [[10.490012], [-53.566936], [36.159504]]], np.float32)
    target = (1 / (1 + np.exp(-pred / 100))).astype(np.float32)
    fn = getattr(ln.losses, name)
    value, grad = fn(pred, target)
    for p, t in ((np.asfortranarray(pred), np.asfortranarray(target)), (np.asfortranarray(pred), target),
                 (pred, np.asfortranarray(target))):
        v, g = fn(p, t)
        assert v == value
        np.testing.assert_array_equal(g, grad)


def test_max_pool_needs_a_step_in_every_sequence():
    # a padded window with no step in it has no maximum: T = 0 (or a length of 0 with padding)
    # gave -inf in the output, and backward sent the window's gradient to index -1 (an
    # IndexError for T = 0; the last step of the row otherwise).
    pool = ln.MaxPool1d(2, padding=1)
    with pytest.raises(ValueError, match="x has no time steps"):
        pool(np.zeros((1, 0, 1), np.float32))
    with pytest.raises(ValueError, match=r"lengths\[1\] = 0"):
        pool(np.ones((2, 3, 1), np.float32), lengths=[3, 0])
    assert np.isfinite(pool(np.ones((2, 3, 1), np.float32), lengths=[3, 1])).all()


def test_a_non_finite_last_step_gradient_names_dout():
    # behind LastTimestep a recurrent layer takes the gradient of the last steps alone; the
    # core checked it under its own name, "dout_last contains NaN", naming no argument a user passed.
    model = ln.Sequential(ln.LSTM(2, 3, batch_first=True, seed=0), ln.LastTimestep())
    model(np.ones((2, 4, 2), np.float32))
    with pytest.raises(ValueError, match=r"^dout contains NaN or infinity"):
        model.backward(np.array([[np.nan, 0, 0], [0, 0, 0]], np.float32))


def test_predict_and_evaluate_take_one_length_per_sample():
    # predict sliced lengths batch by batch, so one sample with lengths [1, 1] passed (the batch
    # saw [1]); evaluate only when its batch covered all the lengths.
    model = ln.Sequential(ln.LSTM(1, 2, batch_first=True, seed=0), ln.LastTimestep(), ln.Linear(2, 1))
    X = np.ones((1, 1, 1), np.float32)
    with pytest.raises(ValueError, match=r"lengths must have shape \(1,\), one per sample, got \(2,\)"):
        model.predict(X, lengths=np.array([1, 1]))
    X3 = np.ones((3, 2, 1), np.float32)
    with pytest.raises(ValueError, match=r"lengths must have shape \(3,\)"):
        model.evaluate(X3, np.zeros((3, 1)), lengths=[2, 2, 2, 2], batch_size=1)
    assert model.predict(X3, lengths=[1, 2, 2], batch_size=2).shape == (3, 1)


def test_mse_gives_the_same_bits_on_both_paths():
    # mse's fast path (two ndarrays) scaled by 2/n, the general one (a list, a mask) took
    # 2d/n: float64 gradients 1 ulp apart for a list and the same values as an array.
    pred = [[0.1257302165031433], [-0.13210485875606537], [0.6404226422309875]]
    target = np.array([[0.1257], [-0.1321], [0.6406]], np.float16)
    fast = ln.losses.mse(np.array(pred), target)
    general = ln.losses.mse(pred, target)
    assert fast[0] == general[0]
    np.testing.assert_array_equal(fast[1], general[1])



@pytest.mark.parametrize("alpha", [0.5, 0.9])
def test_centered_rmsprop_never_takes_the_root_of_a_negative_variance(alpha):
    # the centred variance sq - ga * ga of a steady gradient came out a few ulp below 0 in
    # float32: sqrt gave NaN, and 1269 (alpha 0.5) or 1441 (alpha 0.9) of these 4096 parameters
    # became NaN within 200 steps. alpha = 0 (a variance of g*g - g*g, always 0) is refused.
    rng = np.random.default_rng(0)
    p = ln.Parameter(rng.standard_normal(4096).astype(np.float32))
    opt = ln.optim.RMSprop([p], lr=1e-3, alpha=alpha, centered=True)
    g = rng.standard_normal(4096).astype(np.float32) * 100
    for _ in range(200):
        p.grad[...] = g
        opt.step()
    assert np.isfinite(p.data).all()
    with pytest.raises(ValueError, match="alpha must be > 0 for a centered RMSprop"):
        ln.optim.RMSprop([p], alpha=0.0, centered=True)


def test_cross_entropy_masks_positions_not_classes():
    # a mask of the logits' full shape (N, C) passed the leading-axes check and cross_entropy
    # silently used its first class's column as the per-sample mask.
    logits = np.zeros((2, 3), np.float32)
    with pytest.raises(ValueError, match="mask must cover the leading axes of target"):
        ln.losses.cross_entropy(logits, np.array([0, 1]), mask=np.ones((2, 3), bool))
    assert ln.losses.cross_entropy(logits, np.array([0, 1]), mask=np.array([True, False]))[0] > 0


@pytest.mark.parametrize("name", ["mse", "mae"])
def test_a_gradient_past_the_predictions_dtype_is_refused(name):
    # mse of a float16 prediction against the int32 target -2**31: the gradient 4.3e9 became inf
    # in float16 (an inf gradient, then NaN parameters) with no error; found by the long fuzz run.
    # mae's gradient (a sign over the count) cannot overflow and still goes through.
    pred, target = np.array(0.1257, np.float16), np.array(-2**31, np.int32)
    if name == "mse":
        with pytest.raises(ValueError, match="mse: the gradient overflows pred's dtype float16"):
            ln.losses.mse(pred, target)
        with pytest.raises(ValueError, match="overflows pred's dtype float32"):
            ln.losses.mse(np.zeros(3, np.float32), np.full(3, 1e300))
    else:
        value, grad = ln.losses.mae(pred, target)
        assert value == pytest.approx(2**31) and grad == 1
    value, grad = getattr(ln.losses, name)(pred.astype(np.float32), target)     # float32 holds it
    assert np.isfinite(grad).all() and value > 0
    value, grad = getattr(ln.losses, name)(np.array(np.nan, np.float16), target)   # NaN stays NaN, as before
    assert np.isnan(value)
