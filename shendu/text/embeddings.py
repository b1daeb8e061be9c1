"""Word embeddings: skip-gram with negative sampling (word2vec) and GloVe, trained with
sparse NumPy updates (only the rows a mini-batch touches change), and ``KeyedVectors`` for
similarity queries, analogies and the word2vec text format. Names follow gensim.

>>> from shendu.text.embeddings import Word2Vec
>>> sents = [["king", "queen", "royal"], ["apple", "pear", "fruit"]] * 200
>>> w2v = Word2Vec(sents, vector_size=16, window=2, min_count=1, epochs=3, sample=0, seed=0)
>>> w2v.wv.most_similar("king", topn=2)[0][0] in ("queen", "royal")
True
"""
from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np

__all__ = ["KeyedVectors", "Word2Vec", "GloVe", "cooccurrence"]


def _check_vocab(sentences, min_count: int, op: str):
    counts = Counter(w for s in sentences for w in s)
    words = sorted((w for w, c in counts.items() if c >= min_count),
                   key=lambda w: (-counts[w], w))
    if not words:
        raise ValueError(f"{op}: no word occurs at least min_count={min_count} times")
    return words, np.array([counts[w] for w in words], dtype=np.float64)


class KeyedVectors:
    """Word vectors with lookups by word.

    >>> import numpy as np
    >>> from shendu.text.embeddings import KeyedVectors
    >>> kv = KeyedVectors(["a", "b", "c"], np.array([[1., 0], [0.9, 0.1], [0, 1]]))
    >>> [w for w, _ in kv.most_similar("a", topn=1)]
    ['b']
    """

    def __init__(self, words: Sequence[str], vectors: np.ndarray) -> None:
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[0] != len(words):
            raise ValueError(f"KeyedVectors: {len(words)} words but vectors of shape "
                             f"{vectors.shape}")
        self.index_to_key = list(words)
        self.key_to_index = {w: i for i, w in enumerate(self.index_to_key)}
        self.vectors = vectors
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        self._unit = vectors / np.maximum(norms, 1e-12)

    @property
    def vector_size(self) -> int:
        return self.vectors.shape[1]

    def __len__(self) -> int:
        return len(self.index_to_key)

    def __contains__(self, word: str) -> bool:
        return word in self.key_to_index

    def _index(self, word: str) -> int:
        try:
            return self.key_to_index[word]
        except KeyError:
            raise KeyError(f"KeyedVectors: word {word!r} is not in the vocabulary "
                           f"({len(self)} words)") from None

    def __getitem__(self, word: str) -> np.ndarray:
        return self.vectors[self._index(word)]

    def similarity(self, a: str, b: str) -> float:
        """Cosine similarity of two words."""
        return float(self._unit[self._index(a)] @ self._unit[self._index(b)])

    def _top(self, scores: np.ndarray, exclude: Iterable[int], topn: int):
        scores = scores.astype(np.float64)
        scores[list(exclude)] = -np.inf
        best = np.argsort(-scores, kind="stable")[:topn]
        return [(self.index_to_key[i], float(scores[i])) for i in best]

    def most_similar(self, word: str, topn: int = 10) -> list[tuple[str, float]]:
        """The ``topn`` words of highest cosine similarity to ``word`` (itself excluded)."""
        i = self._index(word)
        return self._top(self._unit @ self._unit[i], [i], topn)

    def analogy(self, a: str, b: str, c: str, topn: int = 1,
                method: str = "3cosadd") -> list[tuple[str, float]]:
        """``a`` is to ``b`` as ``c`` is to ?: by 3CosAdd (``cos(x, b) - cos(x, a) +
        cos(x, c)``) or 3CosMul (Levy and Goldberg: cosines shifted to [0, 1],
        ``cos(x, b) cos(x, c) / (cos(x, a) + 1e-3)``); the three query words are excluded.
        """
        ia, ib, ic = (self._index(w) for w in (a, b, c))
        sims = self._unit @ self._unit[[ia, ib, ic]].T  # (V, 3)
        if method == "3cosadd":
            scores = sims[:, 1] - sims[:, 0] + sims[:, 2]
        elif method == "3cosmul":
            s = (sims + 1) / 2
            scores = s[:, 1] * s[:, 2] / (s[:, 0] + 1e-3)
        else:
            raise ValueError(f"analogy: method must be '3cosadd' or '3cosmul', got {method!r}")
        return self._top(scores, [ia, ib, ic], topn)

    def save_word2vec_format(self, path: str | os.PathLike) -> None:
        """Write the word2vec text format: a ``count dim`` header, then ``word v1 v2 ...``."""
        tmp = f"{os.fspath(path)}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(f"{len(self)} {self.vector_size}\n")
            for w, v in zip(self.index_to_key, self.vectors):
                f.write(w + " " + " ".join(f"{x:.6g}" for x in v) + "\n")
        os.replace(tmp, path)

    @classmethod
    def load_word2vec_format(cls, path: str | os.PathLike) -> KeyedVectors:
        """Read the word2vec text format."""
        with open(path, encoding="utf-8") as f:
            head = f.readline().split()
            if len(head) != 2:
                raise ValueError(f"load_word2vec_format: {os.fspath(path)!r} does not start "
                                 "with a 'count dim' header")
            n, d = int(head[0]), int(head[1])
            words, vecs = [], np.zeros((n, d), dtype=np.float32)
            for i in range(n):
                parts = f.readline().rstrip("\n").split(" ")
                if len(parts) != d + 1:
                    raise ValueError(f"load_word2vec_format: line {i + 2} has {len(parts) - 1}"
                                     f" values, expected {d}")
                words.append(parts[0])
                vecs[i] = np.asarray(parts[1:], dtype=np.float32)
        return cls(words, vecs)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1 + np.tanh(0.5 * x))  # stable for large |x|


class Word2Vec:
    """Skip-gram with negative sampling.

    Args (gensim's names): sentences: token lists (trains at once when given);
        vector_size; window: largest context distance (each centre draws its own window
        1..window, as word2vec does); min_count; negative: noise words per pair, drawn
        from unigram counts ^ ``ns_exponent`` (0.75); sample: frequent-word subsampling
        threshold (0 disables); epochs; alpha / min_alpha: learning rate decayed linearly;
        batch_size: pairs per sparse update; seed.

    After ``fit``, ``wv`` holds the input vectors as ``KeyedVectors`` and ``losses`` the
    mean loss of each epoch.
    """

    def __init__(self, sentences=None, vector_size: int = 100, window: int = 5,
                 min_count: int = 5, negative: int = 5, ns_exponent: float = 0.75,
                 sample: float = 1e-3, epochs: int = 5, alpha: float = 0.025,
                 min_alpha: float = 1e-4, batch_size: int = 1024, seed: int = 0) -> None:
        self.vector_size, self.window, self.min_count = vector_size, window, min_count
        self.negative, self.ns_exponent, self.sample = negative, ns_exponent, sample
        self.epochs, self.alpha, self.min_alpha = epochs, alpha, min_alpha
        self.batch_size, self.seed = batch_size, seed
        self.wv: KeyedVectors | None = None
        self.losses: list[float] = []
        if sentences is not None:
            self.fit(sentences)

    def _pairs(self, ids: list[np.ndarray], keep_p: np.ndarray, rng) -> np.ndarray:
        out = []
        for s in ids:
            s = s[rng.random(s.size) < keep_p[s]]
            if s.size < 2:
                continue
            reach = rng.integers(1, self.window + 1, s.size)  # each centre's window
            for d in range(1, self.window + 1):
                if d >= s.size:
                    break
                i = np.arange(s.size - d)
                fwd = reach[i] >= d          # centre i sees i + d
                bwd = reach[i + d] >= d      # centre i + d sees i
                out.append(np.stack([s[i][fwd], s[i + d][fwd]], 1))
                out.append(np.stack([s[i + d][bwd], s[i][bwd]], 1))
        return np.concatenate(out) if out else np.zeros((0, 2), dtype=np.int64)

    def fit(self, sentences) -> Word2Vec:
        """Train on ``sentences`` (an iterable of token lists)."""
        sentences = [list(s) for s in sentences]
        words, counts = _check_vocab(sentences, self.min_count, "Word2Vec")
        index = {w: i for i, w in enumerate(words)}
        ids = [np.array([index[w] for w in s if w in index], dtype=np.int64) for s in sentences]
        V, D, K = len(words), self.vector_size, self.negative
        rng = np.random.default_rng(self.seed)
        w_in = ((rng.random((V, D)) - 0.5) / D).astype(np.float32)
        w_out = np.zeros((V, D), dtype=np.float32)
        freq = counts / counts.sum()
        if self.sample > 0:  # word2vec's keep probability
            keep_p = np.minimum(1.0, (np.sqrt(freq / self.sample) + 1) * self.sample / freq)
        else:
            keep_p = np.ones(V)
        noise = counts ** self.ns_exponent
        noise_cdf = np.cumsum(noise / noise.sum())
        self.losses = []
        est_total = None
        done = 0
        for _ in range(self.epochs):
            pairs = self._pairs(ids, keep_p, rng)
            rng.shuffle(pairs)
            if est_total is None:
                est_total = max(1, pairs.shape[0] * self.epochs)
            tot, n = 0.0, 0
            for b in range(0, pairs.shape[0], self.batch_size):
                c, o = pairs[b:b + self.batch_size, 0], pairs[b:b + self.batch_size, 1]
                neg = np.minimum(np.searchsorted(noise_cdf, rng.random((c.size, K))), V - 1)
                lr = max(self.min_alpha, self.alpha * (1 - done / est_total))
                tot += self._update(w_in, w_out, c, o, neg, lr) * c.size
                n += c.size
                done += c.size
            self.losses.append(tot / max(n, 1))
        self.wv = KeyedVectors(words, w_in)
        self.output_vectors = w_out
        return self

    @staticmethod
    def _update(w_in, w_out, c, o, neg, lr) -> float:
        """One sparse SGD step on -log s(u.v_o) - sum log s(-u.v_neg); returns the mean
        loss before the step."""
        u, vo, vn = w_in[c], w_out[o], w_out[neg]            # (B,D) (B,D) (B,K,D)
        sp = _sigmoid(np.einsum("bd,bd->b", u, vo))
        sn = _sigmoid(np.einsum("bd,bkd->bk", u, vn))
        gp, gn = sp - 1, sn                                   # d loss / d score
        grad_u = gp[:, None] * vo + np.einsum("bk,bkd->bd", gn, vn)
        np.add.at(w_out, o, -lr * gp[:, None] * u)
        np.add.at(w_out, neg.ravel(), (-lr * gn[..., None] * u[:, None]).reshape(-1, u.shape[1]))
        np.add.at(w_in, c, -lr * grad_u)
        eps = 1e-7
        return float(-(np.log(sp + eps).mean() + np.log(1 - sn + eps).sum(1).mean()))


def cooccurrence(ids: list[np.ndarray], vocab_size: int, window: int = 10):
    """Symmetric co-occurrence counts, each pair at distance d weighted 1/d (GloVe's
    scheme): ``(rows, cols, values)`` with no duplicate (row, col).

    >>> import numpy as np
    >>> from shendu.text.embeddings import cooccurrence
    >>> r, c, x = cooccurrence([np.array([0, 1, 2])], 3, window=2)
    >>> sorted(zip(r.tolist(), c.tolist(), x.tolist()))[:3]
    [(0, 1, 1.0), (0, 2, 0.5), (1, 0, 1.0)]
    """
    keys, vals = [], []
    for s in ids:
        for d in range(1, window + 1):
            if d >= s.size:
                break
            a, b = s[:-d], s[d:]
            w = np.full(a.size, 1.0 / d)
            keys += [a * vocab_size + b, b * vocab_size + a]
            vals += [w, w]
    if not keys:
        raise ValueError("cooccurrence: no pair of words within the window")
    k = np.concatenate(keys)
    uniq, inv = np.unique(k, return_inverse=True)
    x = np.bincount(inv, weights=np.concatenate(vals))
    return uniq // vocab_size, uniq % vocab_size, x


class GloVe:
    """GloVe: weighted least squares on log co-occurrences,
    ``sum f(X_ij) (w_i . w~_j + b_i + b~_j - log X_ij)^2`` with ``f(x) = min(1,
    (x / x_max) ^ alpha)``, trained by AdaGrad on mini-batches of non-zero cells; the
    word vectors are ``w + w~``.

    Args: sentences, vector_size, window, min_count, x_max (100), alpha (0.75), epochs,
        learning_rate (0.05), batch_size, seed. ``losses``: mean weighted loss per epoch.
    """

    def __init__(self, sentences=None, vector_size: int = 50, window: int = 10,
                 min_count: int = 5, x_max: float = 100.0, alpha: float = 0.75,
                 epochs: int = 25, learning_rate: float = 0.05, batch_size: int = 4096,
                 seed: int = 0) -> None:
        self.vector_size, self.window, self.min_count = vector_size, window, min_count
        self.x_max, self.alpha, self.epochs = x_max, alpha, epochs
        self.learning_rate, self.batch_size, self.seed = learning_rate, batch_size, seed
        self.wv: KeyedVectors | None = None
        self.losses: list[float] = []
        if sentences is not None:
            self.fit(sentences)

    def fit(self, sentences) -> GloVe:
        sentences = [list(s) for s in sentences]
        words, _ = _check_vocab(sentences, self.min_count, "GloVe")
        index = {w: i for i, w in enumerate(words)}
        ids = [np.array([index[w] for w in s if w in index], dtype=np.int64) for s in sentences]
        V, D = len(words), self.vector_size
        r, c, x = cooccurrence(ids, V, self.window)
        logx = np.log(x)
        fx = np.minimum(1.0, (x / self.x_max) ** self.alpha)
        rng = np.random.default_rng(self.seed)
        W = (rng.random((V, D)) - 0.5) / D
        Wc = (rng.random((V, D)) - 0.5) / D
        b, bc = np.zeros(V), np.zeros(V)
        gW, gWc, gb, gbc = (np.ones_like(W), np.ones_like(Wc), np.ones(V), np.ones(V))
        lr = self.learning_rate
        self.losses = []
        for _ in range(self.epochs):
            order = rng.permutation(x.size)
            tot = 0.0
            for s in range(0, x.size, self.batch_size):
                j = order[s:s + self.batch_size]
                i_, k_ = r[j], c[j]
                diff = np.einsum("bd,bd->b", W[i_], Wc[k_]) + b[i_] + bc[k_] - logx[j]
                tot += float((fx[j] * diff ** 2).sum())
                g = fx[j] * diff                                   # half the gradient
                dW, dWc = g[:, None] * Wc[k_], g[:, None] * W[i_]
                for P, G, idx, grad in ((W, gW, i_, dW), (Wc, gWc, k_, dWc)):
                    np.add.at(G, idx, grad ** 2)
                    np.add.at(P, idx, -lr * grad / np.sqrt(G[idx]))
                for P, G, idx in ((b, gb, i_), (bc, gbc, k_)):
                    np.add.at(G, idx, g ** 2)
                    np.add.at(P, idx, -lr * g / np.sqrt(G[idx]))
            self.losses.append(tot / x.size)
        self.wv = KeyedVectors(words, (W + Wc).astype(np.float32))
        return self
