"""Seconds per epoch of shendu's skip-gram (and GloVe) on the packaged Shakespeare, with
the settings of docs/text.md's table, beside gensim's skip-gram on the same tokens when
it is importable.

    python examples/text/word2vec_speed.py --json examples/text/results/word2vec_speed.json
    python examples/text/word2vec_speed.py --epochs 1 --no-glove   # a quick look

Each model is timed over its whole ``fit`` (vocabulary, pairs, updates) and the time is
divided by the epochs. ``--numpy`` also times the NumPy path (``SHENDU_JIT=0``'s).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time


def _sentences():
    from shendu.text import WordTokenizer, load_shakespeare

    tok = WordTokenizer(lower=True, punctuation="drop")
    return [tok(line) for line in load_shakespeare().split("\n") if line.strip()]


def _timed(make, epochs: int) -> dict:
    load = os.getloadavg()[0]
    t0, c0 = time.perf_counter(), time.process_time()
    model = make()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    out = {"epochs": epochs, "wall_s": round(wall, 3), "cpu_s": round(cpu, 3),
           "s_per_epoch": round(wall / epochs, 3), "load_average_before": load,
           "load_average_after": os.getloadavg()[0]}
    losses = getattr(model, "losses", None)
    if losses:
        out["losses"] = [round(x, 4) for x in losses]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--glove-epochs", type=int, default=25)
    ap.add_argument("--no-glove", action="store_true")
    ap.add_argument("--numpy", action="store_true", help="also time the NumPy path")
    ap.add_argument("--numpy-epochs", type=int, default=1)
    ap.add_argument("--json", default=None)
    a = ap.parse_args()

    import numpy as np  # noqa: F401 - imported before timing

    from shendu.backend import jit
    from shendu.text.embeddings import GloVe, Word2Vec

    sents = _sentences()
    res: dict = {"sentences": len(sents), "tokens": sum(map(len, sents)),
                 "settings": "vector_size=100, window=5, min_count=5, negative=5, "
                             "sample=1e-3, seed=0"}

    def sgns(epochs):
        return Word2Vec(sents, vector_size=100, window=5, min_count=5, negative=5,
                        epochs=epochs, seed=0)

    res["shendu_sgns"] = _timed(lambda: sgns(a.epochs), a.epochs)
    res["shendu_sgns"]["kernels"] = jit.enabled()
    print("shendu skip-gram:", res["shendu_sgns"], flush=True)
    if a.numpy:
        with jit.use(False):
            res["shendu_sgns_numpy"] = _timed(lambda: sgns(a.numpy_epochs), a.numpy_epochs)
        print("shendu skip-gram, NumPy path:", res["shendu_sgns_numpy"], flush=True)
    if not a.no_glove:
        res["shendu_glove"] = _timed(lambda: GloVe(sents, vector_size=100, window=10,
                                                   min_count=5, epochs=a.glove_epochs,
                                                   seed=0), a.glove_epochs)
        res["shendu_glove"]["kernels"] = jit.enabled()
        print("shendu GloVe:", res["shendu_glove"], flush=True)
    try:
        import gensim
    except ImportError:
        res["gensim"] = "not installed"
    else:
        res["gensim_version"] = gensim.__version__
        res["gensim_sgns"] = _timed(lambda: gensim.models.Word2Vec(
            sents, vector_size=100, window=5, min_count=5, sg=1, negative=5,
            epochs=a.epochs, seed=0, workers=1), a.epochs)
        print("gensim skip-gram (1 worker):", res["gensim_sgns"], flush=True)

    from shendu._bench_report import machine_info, measured_at

    res["commit"] = measured_at()
    res["command"] = "python " + " ".join(sys.argv)
    res["machine"] = machine_info()
    if a.json:
        tmp = a.json + ".tmp"
        with open(tmp, "w") as f:
            json.dump(res, f, indent=1)
            f.write("\n")
        os.replace(tmp, a.json)


if __name__ == "__main__":
    main()
