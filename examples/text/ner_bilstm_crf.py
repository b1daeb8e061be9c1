"""BiLSTM-CRF tagger on the Shakespeare entity task (names, dates, numbers inserted as BIO
spans into real lines; training and held-out lines come from disjoint parts of the plays).

    python examples/text/ner_bilstm_crf.py --out runs/ner

Reports span-level precision / recall / F1 (seqeval's definition) on the held-out lines.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import time

import numpy as np

import shendu as sd
from shendu.metrics import span_f1_score
from shendu.text import Vocab
from shendu.text.tagging import BiLSTMCRF, word_shapes
from shendu.text.tasks import entity_lines

TAGS = ["O", "B-PER", "I-PER", "B-DATE", "I-DATE", "B-NUM", "I-NUM"]


def batch(rows, vocab):
    T = max(len(w) for w, _ in rows)
    B = len(rows)
    words = np.zeros((B, T), np.int64)
    shapes = np.full((B, T), 6, np.int64)
    tags = np.zeros((B, T), np.int64)
    mask = np.zeros((B, T), bool)
    for i, (w, t) in enumerate(rows):
        n = len(w)
        words[i, :n] = vocab([x.lower() for x in w])
        shapes[i, :n] = word_shapes(w)
        tags[i, :n] = [TAGS.index(x) for x in t]
        mask[i, :n] = True
    return tuple(sd.tensor(a) for a in (words, shapes, tags, mask))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--train", type=int, default=6000)
    ap.add_argument("--test", type=int, default=1000)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--out", default="runs/ner")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    sd.manual_seed(0)
    # the first 80% of the speech lines for training, the rest held out
    train = entity_lines(a.train, seed=0, lines=slice(0, 16000))
    test = entity_lines(a.test, seed=1, lines=slice(16000, None))
    vocab = Vocab.build(([w.lower() for w in ws] for ws, _ in train), min_freq=2,
                        specials=("<pad>", "<unk>"))
    model = BiLSTMCRF(len(vocab), len(TAGS), embed_dim=64, hidden_size=64)
    opt = sd.optim.Adam(model.parameters(), lr=3e-3)
    rng = np.random.default_rng(0)
    t0, c0 = time.perf_counter(), time.process_time()
    for ep in range(a.epochs):
        order = rng.permutation(len(train))
        tot = 0.0
        for s in range(0, len(order), a.batch_size):
            w, sh, tg, m = batch([train[i] for i in order[s:s + a.batch_size]], vocab)
            loss = model.loss(w, sh, tg, m)
            opt.zero_grad()
            loss.backward()
            sd.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
            tot += loss.item()
        print(f"epoch {ep + 1}: loss {tot / (len(order) / a.batch_size):.4f}  "
              f"{time.perf_counter() - t0:.0f}s", flush=True)
    model.eval()
    pred = []
    with sd.no_grad():
        for s in range(0, len(test), 200):
            rows = test[s:s + 200]
            w, sh, _, m = batch(rows, vocab)
            pred += [[TAGS[i] for i in p] for p in model.decode(w, sh, m)]
    p, r, f1 = span_f1_score([t for _, t in test], pred)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, cwd=os.path.dirname(os.path.abspath(__file__))
                            ).stdout.strip()
    res = {"precision": p, "recall": r, "f1": f1, "train_lines": len(train),
           "test_lines": len(test), "epochs": a.epochs, "train_s": time.perf_counter() - t0,
           "train_cpu_s": time.process_time() - c0, "commit": commit,
           "example": list(zip(test[0][0], pred[0]))}
    with open(os.path.join(a.out, "ner.json"), "w") as f:
        json.dump(res, f, indent=1)
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
