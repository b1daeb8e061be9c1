"""Skip-gram (negative sampling) and GloVe vectors on the packaged Shakespeare, with
nearest neighbours, analogies and a PCA plot; also gensim's skip-gram when installed.

    python examples/text/shakespeare_embeddings.py --out runs/embeddings
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

from shendu.text import WordTokenizer, load_shakespeare
from shendu.text.embeddings import GloVe, Word2Vec

QUERIES = ["king", "love", "night", "sword", "father", "romeo", "rome", "death"]
ANALOGIES = [("king", "queen", "man"), ("father", "mother", "son"), ("he", "she", "his")]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--out", default="runs/embeddings")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    tok = WordTokenizer(lower=True, punctuation="drop")
    sents = [tok(line) for line in load_shakespeare().split("\n") if line.strip()]
    res = {"sentences": len(sents), "tokens": sum(map(len, sents))}
    models = {}
    t = time.perf_counter()
    models["shendu skip-gram"] = Word2Vec(sents, vector_size=100, window=5, min_count=5,
                                          epochs=a.epochs, seed=0).wv
    res["sgns_s"] = time.perf_counter() - t
    t = time.perf_counter()
    models["shendu GloVe"] = GloVe(sents, vector_size=100, window=10, min_count=5,
                                   epochs=25, seed=0).wv
    res["glove_s"] = time.perf_counter() - t
    try:
        import gensim
        t = time.perf_counter()
        g = gensim.models.Word2Vec(sents, vector_size=100, window=5, min_count=5, sg=1,
                                   negative=5, epochs=a.epochs, seed=0, workers=1)
        res["gensim_s"] = time.perf_counter() - t
        res["gensim_version"] = gensim.__version__
        models["gensim skip-gram"] = g.wv
    except ImportError:
        res["gensim"] = "not installed"
    for name, kv in models.items():
        res[name] = {
            "neighbours": {q: [w for w, _ in kv.most_similar(q, topn=6)] for q in QUERIES},
            "analogies": {f"{x}:{y}::{z}:?": [w for w, _ in kv.most_similar(
                positive=[y, z], negative=[x], topn=3)] if not hasattr(kv, "analogy") else
                [w for w, _ in kv.analogy(x, y, z, topn=3)] for x, y, z in ANALOGIES}}
    from shendu._bench_report import machine_info, measured_at

    res["commit"] = measured_at()
    res["command"] = "python " + " ".join(sys.argv)
    res["machine"] = machine_info()
    with open(os.path.join(a.out, "embeddings.json"), "w") as f:
        json.dump(res, f, indent=1)
    print(json.dumps(res, indent=1))
    _plot(models["shendu skip-gram"], os.path.join(a.out, "pca.png"))


def _plot(kv, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    words = [w for q in QUERIES for w in [q] + [x for x, _ in kv.most_similar(q, topn=4)]]
    X = np.stack([kv[w] for w in words]).astype(np.float64)
    X -= X.mean(0)
    _, _, vt = np.linalg.svd(X, full_matrices=False)
    P = X @ vt[:2].T
    fig, ax = plt.subplots(figsize=(8, 7))
    for i, w in enumerate(words):
        grp = i // 5
        ax.scatter(*P[i], color=f"C{grp}", s=12)
        ax.annotate(w, P[i], fontsize=8, color=f"C{grp}")
    ax.set_title("Shakespeare skip-gram vectors: queries and 4 neighbours (PCA)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
