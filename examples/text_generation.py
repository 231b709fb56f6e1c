"""Character-level language model: Embedding -> LSTM -> Linear on every step, trained to
predict the next character of lstm_native.data.sample_text(), then used to write new text.

Validation is the last 10% of the text (never trained on), reported in bits per character
(bpc = cross-entropy / ln 2; uniform guessing over the vocabulary would cost log2(V) bits).

Generation runs the trained LSTM one character at a time with LSTM.step(), carrying (h, c)
from step to step, so each new character costs one step (O(1) in the length so far) instead
of re-running the whole growing prefix. The step uses the very weights fit trained.

    python examples/text_generation.py            # full
    python examples/text_generation.py --quick    # a smaller run for CI

Measured on a shared 2-core machine, one kernel thread (--threads 1), validation bpc:
    full  (800 sentences, LSTM 192, 30 epochs, 59 s): 0.334 (seed 0), next-char accuracy 0.90
    quick (250 sentences, LSTM 96, 12 epochs, 3.5 s): 0.37-0.41 (seeds 0-2)
Uniform guessing costs log2(31) = 4.95 bits. The grammar picks one of 10*8*8*8 sentences,
about 12.3 bits per ~52-character sentence, so no model can go below ~0.24 bpc here.
"""
from __future__ import annotations

import argparse
import math
import time

import numpy as np

import lstm_native as ln
from lstm_native import data


def make_windows(ids: np.ndarray, seq_len: int, stride: int):
    """Inputs ids[i : i+L] and targets ids[i+1 : i+L+1] (the next character at every step)."""
    starts = np.arange(0, len(ids) - seq_len - 1, stride)
    idx = starts[:, None] + np.arange(seq_len)[None, :]
    return ids[idx], ids[idx + 1]


def build_model(vocab_size: int, hidden: int, embed: int = 16, seed: int = 0) -> ln.Sequential:
    return ln.Sequential(ln.Embedding(vocab_size, embed, padding_idx=0, seed=seed),
                         ln.LSTM(embed, hidden, batch_first=True, seed=seed + 1),
                         ln.TimeDistributed(ln.Linear(hidden, vocab_size, seed=seed + 2)))


def generate(model: ln.Sequential, vocab: data.Vocabulary, prompt: str, length: int, temperature: float = 1.0,
             rng=None) -> str:
    """prompt + `length` sampled characters. Feeds the prompt through LSTM.step() to build the
    state, then samples each next character from softmax(logits / temperature)."""
    rng = rng if rng is not None else np.random.default_rng()
    emb, lstm, head = model[0], model[1], model[2].layer
    ids = [int(i) for i in vocab.encode(prompt)] or [vocab.stoi.get(" ", 1)]
    out = list(ids)
    hx = None                                            # None: start from zeros
    with ln.no_grad():
        for i in range(len(ids) + length - 1):
            x_t = emb.weight.data[out[i]][None]          # (1, embed): the embedding of the current character
            h_t, hx = lstm.step(x_t, hx)                 # one step; hx are the layer's buffers, carried in place
            if i < len(ids) - 1:
                continue                                 # still reading the prompt
            logits = head.forward(h_t)[0].astype(np.float64) / max(temperature, 1e-6)
            p = np.exp(logits - logits.max())
            p[:2] = 0                                    # never emit <pad> or <unk>
            out.append(int(rng.choice(len(p), p=p / p.sum())))
    return vocab.decode(out)


def run(quick: bool = False, seed: int = 0, hidden: int | None = None, epochs: int | None = None,
        samples: int = 160, verbose: int = 0) -> dict:
    start = time.perf_counter()
    text = data.sample_text(n_sentences=250 if quick else 800, seed=seed)
    vocab = data.Vocabulary.from_text(text)
    ids = vocab.encode(text)
    cut = int(len(ids) * 0.9)                            # the tail of the text is held out
    seq_len = 64
    X, Y = make_windows(ids[:cut], seq_len, stride=seq_len // 2)
    Xv, Yv = make_windows(ids[cut:], seq_len, stride=seq_len)
    hidden = hidden or (96 if quick else 192)
    epochs = epochs or (12 if quick else 30)

    model = build_model(len(vocab), hidden, seed=seed)
    opt = ln.optim.Adam(model.parameters(), lr=1e-2 if quick else 5e-3)
    history = model.fit(X, Y, loss="cross_entropy", epochs=epochs, batch_size=32, optimizer=opt,
                        clip_grad_norm=1.0, validation_data=(Xv, Yv), seed=seed, verbose=verbose)
    val = model.evaluate(Xv, Yv, loss="cross_entropy")
    res = {"chars": len(text), "vocab": len(vocab), "train_windows": len(X), "epochs": epochs,
           "train_bpc": history.history["loss"][-1] / math.log(2), "val_bpc": val["loss"] / math.log(2),
           "val_accuracy": val["accuracy"], "uniform_bpc": math.log2(len(vocab) - 2)}
    gen_start = time.perf_counter()
    rng = np.random.default_rng(seed)
    res["samples"] = {t: generate(model, vocab, "The ", samples, t, rng) for t in (0.5, 1.0)}
    res["chars_per_second"] = 2 * samples / (time.perf_counter() - gen_start)
    res["seconds"] = time.perf_counter() - start
    return res


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="a small, fast run")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--hidden", type=int, default=None, help="LSTM units (default 96 quick, 192 full)")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--samples", type=int, default=160, help="characters to generate per temperature")
    p.add_argument("--threads", type=int, default=0, help="kernel threads (0: the library's default)")
    p.add_argument("--verbose", type=int, default=0)
    a = p.parse_args(argv)
    ln.set_num_threads(a.threads)
    r = run(quick=a.quick, seed=a.seed, hidden=a.hidden, epochs=a.epochs, samples=a.samples, verbose=a.verbose)
    print(f"sample_text: {r['chars']} characters, vocabulary {r['vocab']}, {r['train_windows']} training windows, "
          f"{r['epochs']} epochs")
    print(f"  {'':22s}{'bits/char':>10s}")
    print(f"  {'uniform guess':22s}{r['uniform_bpc']:10.3f}")
    print(f"  {'train (last epoch)':22s}{r['train_bpc']:10.3f}")
    print(f"  {'validation (held out)':22s}{r['val_bpc']:10.3f}   next-char accuracy {r['val_accuracy']:.3f}")
    for t, s in r["samples"].items():
        print(f"\n  temperature {t}:\n  {s!r}")
    print(f"\n  generation with LSTM.step(): {r['chars_per_second']:.0f} chars/s; total {r['seconds']:.1f} s")
    return r


if __name__ == "__main__":
    main()
