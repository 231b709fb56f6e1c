"""Seq2Seq: an encoder-decoder for sequences of token ids, trained by ``fit`` with teacher
forcing and decoded by greedy or beam search.

    enc = ln.Sequential(ln.Embedding(V_src, 32, padding_idx=0), ln.LSTM(32, 64, batch_first=True))
    dec = ln.Sequential(ln.Embedding(V_tgt, 32, padding_idx=0), ln.LSTM(32, 64, batch_first=True),
                        ln.Linear(64 + 64, V_tgt))          # + 64: the attention context
    model = ln.Seq2Seq(enc, dec, attention="luong", bos_id=bos, eos_id=eos)
    model.fit(src, tgt, loss="cross_entropy", lengths=src_len, epochs=10)
    ids, lengths = model.generate(src, max_len=12, lengths=src_len, beam_size=4)

Data: ``src`` (N, S) and ``tgt`` (N, T) integer ids padded with pad_id (0, as
``data.pad_sequences`` and ``data.Vocabulary`` do); each target ends with eos_id. ``lengths``
are the sources' (counted from the padding when not given); the decoder reads <bos> + the
target shifted right, and the loss counts the target's non-pad positions only.

The model. The encoder (a Sequential, or one layer) runs over the source; the final state of
each of its recurrent layers starts the matching recurrent layer of the decoder (same cell,
sizes and depth; unidirectional). The decoder's layers up to its last recurrent layer run over
the decoder input; with attention, every decoder output queries the encoder outputs, and the
layers after it (the head) read [context, decoder output]; without, they read the decoder
output. attention: None, "bahdanau" (additive score), "luong" (dot score; equal hidden sizes),
"general" (Luong's bilinear score) or an ``ln.Attention``. Attention sits after the decoder's
recurrent layers (Luong's placement) for every score, so training stays one call per layer
over the whole sequence; Bahdanau's feeding of the context into the next step is not done.

Gradients: every one comes from the layers' own backward passes (the head, the attention,
the decoder, whose initial-state gradient becomes the encoder's final-state gradient, the
encoder, the embeddings); this module only routes them.

Teacher forcing: ``teacher_forcing`` (1.0 by default) is the share of decoder inputs taken from
the target; below 1, each other input is the model's own prediction for that position, from
a first pass without gradients (scheduled sampling done in parallel over the sequence). A
schedule over epochs: ``callbacks=[ln.callbacks.TeacherForcingSchedule(lambda epoch: ...)]``.
"""
from __future__ import annotations

import numpy as np

from . import ops, seeding
from ._checks import to_numpy
from ._grad_mode import is_grad_enabled, no_grad
from .attention import Attention
from .module import Module
from .recurrent import RecurrentBase
from .sequential import Sequential

_ATTENTION = {"bahdanau": "additive", "additive": "additive", "luong": "dot", "dot": "dot", "general": "general"}


def _layers(m):
    return list(m) if isinstance(m, Sequential) else [m]


def _recurrent_backward(layer, dout, dstate, need_input_grad):
    """(dx, d initial state) of a recurrent layer given d output and d final state."""
    if layer.has_cell_state:
        dh, dc = (None, None) if dstate is None else dstate
        return layer.backward(dout, dh, dc, need_input_grad=need_input_grad)
    return layer.backward(dout, dstate, need_input_grad=need_input_grad)


class Seq2Seq(Module):
    """``ln.Seq2Seq(encoder, decoder, attention=None, bos_id=..., eos_id=..., pad_id=0,
    teacher_forcing=1.0)``; see the module docstring. ``forward(src, target, lengths=None)``
    gives teacher-forced logits (B, T, V) and ``backward(grad)`` their gradients;
    ``generate(src, max_len, beam_size=1, lengths=None)`` decodes."""

    takes_targets = True     # fit hands it the targets (teacher forcing) and takes its loss mask

    def __init__(self, encoder: Module, decoder: Module, attention=None, *, bos_id: int, eos_id: int,
                 pad_id: int = 0, teacher_forcing: float = 1.0, seed=None):
        super().__init__()
        if not isinstance(encoder, Module) or not isinstance(decoder, Module):
            raise TypeError("encoder and decoder must be Modules (a Sequential or one layer)")
        self.encoder, self.decoder = encoder, decoder
        self.bos_id, self.eos_id, self.pad_id = int(bos_id), int(eos_id), int(pad_id)
        self.teacher_forcing = float(teacher_forcing)
        if not 0.0 <= self.teacher_forcing <= 1.0:
            raise ValueError(f"teacher_forcing must be in [0, 1], got {teacher_forcing!r}")
        enc_rec, dec_rec = self._check_parts()
        H_enc = enc_rec[-1].hidden_size * enc_rec[-1].num_directions
        if isinstance(attention, str):
            if attention not in _ATTENTION:
                raise ValueError(f"attention must be None, one of {sorted(_ATTENTION)} or an ln.Attention, got {attention!r}")
            attention = Attention(H_enc, query_size=dec_rec[-1].hidden_size, seed=seed, dtype=dec_rec[-1].dtype,
                                  score=_ATTENTION[attention])
        if attention is not None:
            if not isinstance(attention, Attention):
                raise TypeError(f"attention must be None, a name or an ln.Attention, got {type(attention).__name__}")
            self.attention = attention
        self._rng = seeding.generator(seed)
        self._ctx = None

    def _check_parts(self):
        enc = [m for m in _layers(self.encoder) if isinstance(m, RecurrentBase)]
        body, head = self._decoder_parts()
        dec = [m for m in body if isinstance(m, RecurrentBase)]
        if not enc or not dec:
            raise ValueError("Seq2Seq needs a recurrent layer in the encoder and in the decoder")
        if not head:
            raise ValueError("the decoder needs layers after its last recurrent layer (a Linear to the vocabulary)")
        if len(enc) != len(dec):
            raise ValueError(f"the encoder has {len(enc)} recurrent layers and the decoder {len(dec)}: each "
                             "encoder layer's final state starts the matching decoder layer")
        for i, (e, d) in enumerate(zip(enc, dec)):
            if type(e) is not type(d) or e.hidden_size != d.hidden_size or e.num_layers != d.num_layers \
                    or e.bidirectional or d.bidirectional:
                raise ValueError(f"recurrent layer {i}: the encoder's {type(e).__name__}({e.hidden_size}, num_layers="
                                 f"{e.num_layers}) must match the decoder's {type(d).__name__}({d.hidden_size}, "
                                 f"num_layers={d.num_layers}), both unidirectional")
            if not (e.batch_first and d.batch_first):
                raise ValueError("Seq2Seq takes batch-first data: build its recurrent layers with batch_first=True")
        return enc, dec

    def _decoder_parts(self):
        layers = _layers(self.decoder)
        last = max((i for i, m in enumerate(layers) if isinstance(m, RecurrentBase)), default=-1)
        return layers[:last + 1], layers[last + 1:]

    # -- data ---------------------------------------------------------------------------
    def _ids(self, a, name):
        a = to_numpy(a, name)
        if a.ndim != 2 or a.dtype.kind not in "iu":
            raise TypeError(f"{name} must be integer token ids (batch, time), got {a.dtype} {a.shape}")
        return a

    def _lengths(self, src, lengths):
        if lengths is None:
            lengths = (src != self.pad_id).sum(axis=1)
        lengths = np.asarray(lengths, np.int64)
        if lengths.shape != (len(src),) or lengths.min() < 1 or lengths.max() > src.shape[1]:
            raise ValueError(f"lengths must be {len(src)} values in [1, {src.shape[1]}]")
        return lengths

    def decoder_inputs(self, target):
        """<bos> + the target shifted right by one step."""
        dec_in = np.empty_like(target)
        dec_in[:, 0] = self.bos_id
        dec_in[:, 1:] = target[:, :-1]
        return dec_in

    # -- teacher-forced training --------------------------------------------------------
    def forward_with_targets(self, src, target, lengths=None):
        """(logits (B, T, V), mask (B, T) of the target's non-pad steps): what fit trains on."""
        src, target = self._ids(src, "X (source ids)"), self._ids(target, "y (target ids)")
        if len(target) != len(src):
            raise ValueError(f"source and target batches differ: {len(src)} and {len(target)}")
        src_len = self._lengths(src, lengths)
        tgt_len = (target != self.pad_id).sum(axis=1)
        if tgt_len.min() < 1:
            raise ValueError("every target needs at least one token (its eos_id)")
        dec_in = self.decoder_inputs(target)
        if self.training and self.teacher_forcing < 1.0 and is_grad_enabled():
            dec_in = self._sampled_inputs(src, src_len, dec_in, tgt_len)
        logits = self._teacher_forced(src, src_len, dec_in, tgt_len)
        return logits, ops.length_mask(tgt_len, *target.shape)

    def forward(self, src, target, lengths=None):
        """Teacher-forced logits (B, T, V) for target (B, T) (ending in eos, padded)."""
        return self.forward_with_targets(src, target, lengths)[0]

    def _sampled_inputs(self, src, src_len, dec_in, tgt_len):
        """Scheduled sampling: each decoder input after <bos> is, with probability
        1 - teacher_forcing, the model's own prediction for that position."""
        with no_grad():
            pred = self._teacher_forced(src, src_len, dec_in, tgt_len).argmax(axis=-1)
        own = self._rng.random(dec_in.shape) >= self.teacher_forcing
        own[:, 0] = False
        return np.where(own, np.concatenate([dec_in[:, :1], pred[:, :-1]], axis=1), dec_in)

    def _encode(self, src, lengths):
        """Encoder outputs and the final state of each of its recurrent layers."""
        x, finals = src, []
        for layer in _layers(self.encoder):
            if isinstance(layer, RecurrentBase):
                x, state = layer.forward(x, lengths=lengths)
                finals.append(state)
            else:
                x = layer.seq_forward(x, lengths)
            lengths = layer.output_lengths(lengths)
        return x, finals

    def _teacher_forced(self, src, src_len, dec_in, tgt_len):
        enc_out, states = self._encode(src, src_len)
        body, head = self._decoder_parts()
        x, states, lengths = dec_in, list(states), tgt_len
        for layer in body:
            x = layer.forward(x, hx=states.pop(0), lengths=lengths)[0] if isinstance(layer, RecurrentBase) \
                else layer.seq_forward(x, lengths)
            lengths = layer.output_lengths(lengths)
        dec_out = x
        if hasattr(self, "attention"):
            x = np.concatenate([self.attention(enc_out, dec_out, lengths=src_len), dec_out], axis=-1)
        for layer in head:
            x = layer.seq_forward(x, lengths)
        self._ctx = (enc_out.shape, enc_out.dtype) if is_grad_enabled() else None
        return x

    def backward(self, grad, need_input_grad: bool = False):
        """Gradients of the teacher-forced logits into every parameter; returns None (ids)."""
        if self._ctx is None:
            raise ValueError("Seq2Seq.backward needs a forward first (outside no_grad)")
        enc_shape, enc_dtype = self._ctx
        self._ctx = None
        body, head = self._decoder_parts()
        g = grad
        for layer in reversed(head):
            g = layer.seq_backward(g, need_input_grad=True)
        g = np.asarray(g)
        if hasattr(self, "attention"):
            H = enc_shape[-1]
            d_enc, d_query = self.attention.backward(np.ascontiguousarray(g[..., :H]))
            g = g[..., H:] + d_query
        else:
            d_enc = np.zeros(enc_shape, enc_dtype)          # the encoder's outputs were not used
        d_states = []
        for i in reversed(range(len(body))):
            layer = body[i]
            if isinstance(layer, RecurrentBase):
                g, d_state = _recurrent_backward(layer, g, None, i > 0)
                d_states.insert(0, d_state)                 # d loss / d (the encoder's final state)
            else:
                g = layer.seq_backward(g, need_input_grad=i > 0)
        enc = _layers(self.encoder)
        for i in reversed(range(len(enc))):
            if isinstance(enc[i], RecurrentBase):
                d_enc, _ = _recurrent_backward(enc[i], d_enc, d_states.pop(), i > 0)
            else:
                d_enc = enc[i].seq_backward(d_enc, need_input_grad=i > 0)
        return None

    def seq_forward(self, x, lengths=None):
        raise TypeError("Seq2Seq needs the targets for teacher forcing: train it with fit(src, target) or "
                        "forward(src, target); generate(src, max_len) translates")

    def seq_backward(self, grad, need_input_grad: bool = False):
        return self.backward(grad)

    def stream_check(self):
        raise TypeError("Seq2Seq decodes with generate(), not a stream")

    # -- decoding ------------------------------------------------------------------------
    def generate(self, src, max_len: int, beam_size: int = 1, lengths=None, length_penalty: float = 1.0):
        """Decodes each source: greedy (beam_size=1) or beam search keeping beam_size
        hypotheses, finished ones (ended by eos_id) kept at their score. The best hypothesis by
        log-probability / length ** length_penalty wins. Returns (ids (B, max_len) padded with
        pad_id after the eos, lengths (B,) counting the eos; max_len where none came)."""
        src = self._ids(src, "src")
        if not isinstance(max_len, (int, np.integer)) or max_len < 1:
            raise ValueError(f"max_len must be a positive integer, got {max_len!r}")
        if not isinstance(beam_size, (int, np.integer)) or beam_size < 1:
            raise ValueError(f"beam_size must be a positive integer, got {beam_size!r}")
        was_training = self.training
        self.eval()
        try:
            with no_grad():
                return self._beam_search(src, self._lengths(src, lengths), int(max_len), int(beam_size),
                                         float(length_penalty))
        finally:
            self.train(was_training)

    def _beam_search(self, src, src_len, max_len, k, length_penalty):
        B = len(src)
        enc_out, finals = self._encode(src, src_len)
        rows = np.repeat(np.arange(B), k)                   # row b * k + j: source b, hypothesis j
        enc_out, src_len = enc_out[rows], src_len[rows]
        body, head = self._decoder_parts()
        finals = iter(finals)
        states = [_take(next(finals), rows) if isinstance(m, RecurrentBase) else None for m in body]
        scores = np.full((B, k), -np.inf)
        scores[:, 0] = 0.0                                  # at first only one hypothesis per source
        tokens = np.full((B, k, max_len), self.pad_id, np.int64)
        length = np.zeros((B, k), np.int64)
        done = np.zeros((B, k), bool)
        prev = np.full(B * k, self.bos_id, np.int64)
        for t in range(max_len):
            x = prev
            for i, layer in enumerate(body):
                x, states[i] = layer.stream_step(x, states[i])
            if hasattr(self, "attention"):
                x = np.concatenate([self.attention(enc_out, x, lengths=src_len), x], axis=-1)
            for layer in head:
                x, _ = layer.stream_step(x, None)
            logp = ops.log_softmax(np.asarray(x, np.float64)).reshape(B, k, -1)
            logp[..., self.pad_id] = -np.inf                # padding is never generated
            logp[done] = -np.inf                            # a finished hypothesis only pads, at no cost
            logp[done, self.pad_id] = 0.0
            V = logp.shape[-1]
            total = (scores[:, :, None] + logp).reshape(B, k * V)
            best = np.argsort(-total, axis=1, kind="stable")[:, :k]
            beam, tok = best // V, best % V
            scores = np.take_along_axis(total, best, axis=1)
            tokens = np.take_along_axis(tokens, beam[:, :, None], axis=1)
            was_done = np.take_along_axis(done, beam, axis=1)
            length = np.take_along_axis(length, beam, axis=1) + ~was_done
            tokens[:, :, t] = np.where(was_done, self.pad_id, tok)
            done = was_done | (tok == self.eos_id)
            order = (np.arange(B)[:, None] * k + beam).reshape(-1)
            states = [_take(s, order) for s in states]
            prev = tokens[:, :, t].reshape(-1)
            if done.all():
                break
        ranked = scores / np.maximum(length, 1) ** length_penalty
        pick = np.argmax(np.where(np.isfinite(ranked), ranked, -np.inf), axis=1)
        return tokens[np.arange(B), pick], length[np.arange(B), pick]

    # -- persistence -----------------------------------------------------------------------
    def get_config(self):
        return dict(bos_id=self.bos_id, eos_id=self.eos_id, pad_id=self.pad_id, teacher_forcing=self.teacher_forcing)

    def to_config(self):
        return {"class": "Seq2Seq", "config": self.get_config(), "encoder": self.encoder.to_config(),
                "decoder": self.decoder.to_config(),
                "attention": self.attention.to_config() if hasattr(self, "attention") else None}

    @classmethod
    def from_config(cls, config):
        att = config.get("attention")
        return cls(Module.build(config["encoder"]), Module.build(config["decoder"]),
                   None if att is None else Module.build(att), **config["config"])

    def get_extra_state(self):
        return {"rng": self._rng.bit_generator.state}

    def set_extra_state(self, state) -> None:
        self._rng.bit_generator.state = state["rng"]


def _take(state, rows):
    """The batch rows `rows` of a recurrent state ((h, c) or h, each (layers, batch, hidden))."""
    if state is None:
        return None
    if isinstance(state, (tuple, list)):
        return type(state)(np.ascontiguousarray(s[:, rows]) for s in state)
    return np.ascontiguousarray(state[:, rows])
