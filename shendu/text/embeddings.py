"""Word embeddings: skip-gram with negative sampling (word2vec) and GloVe, trained with
sparse updates (only the rows an example touches change; compiled loops in
``backend/jit/embeddings.py``, NumPy mini-batches when the kernels are off), and
``KeyedVectors`` for similarity queries, analogies and the word2vec text format. Names
follow gensim.

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

from ..backend import embeddings

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


def _noise_table(weights: np.ndarray, size: int) -> np.ndarray:
    """word2vec's table for drawing noise words: word ``i`` fills a share of ``size`` slots
    proportional to ``weights[i]`` (at least one), so a uniform slot is a draw from the
    weights."""
    edges = np.rint(np.cumsum(weights / weights.sum()) * size).astype(np.int64)
    slots = np.maximum(np.diff(edges, prepend=0), 1)
    return np.repeat(np.arange(weights.size, dtype=np.int32), slots)


def _sentence_chunks(lengths: np.ndarray, chunk: int) -> list[tuple[int, int]]:
    """``(start, stop)`` token ranges of about ``chunk`` tokens that end at sentence ends."""
    ends = np.cumsum(lengths)
    total = int(ends[-1]) if ends.size else 0
    stops = ends[np.unique(np.searchsorted(ends, np.arange(chunk, total, chunk)))]
    bounds = [0, *(int(x) for x in stops if 0 < x < total), total]
    return [(a, b) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]


class Word2Vec:
    """Skip-gram with negative sampling.

    Args (gensim's names): sentences: token lists (trains at once when given);
        vector_size; window: largest context distance (each centre draws its own window
        1..window, as word2vec does); min_count; negative: noise words per pair, drawn
        from unigram counts ^ ``ns_exponent`` (0.75); sample: frequent-word subsampling
        threshold (0 disables); epochs; alpha / min_alpha: learning rate, decayed
        linearly with the position in the corpus over all epochs; batch_size: pairs per
        sparse update on the NumPy path (the compiled kernel, on when numba is, steps after
        every pair as word2vec does); seed.

    Training walks the token stream in order, a chunk of sentences at a time: drops
    frequent words (keep probability ``(sqrt(f / sample) + 1) sample / f``), lists each
    kept centre's (centre, context) pairs left to right, draws ``negative`` noise words per
    pair from a precomputed unigram^0.75 table, and hands the pairs to
    ``backend.embeddings.skipgram_steps``. The random draws do not depend on the path, so
    a seed gives the same pairs with or without the kernel (the NumPy path shuffles them
    into mini-batches with a second generator; at ``batch_size=1`` it keeps the order and
    makes the kernel's steps).

    After ``fit``, ``wv`` holds the input vectors as ``KeyedVectors`` and ``losses`` the
    mean loss of each epoch.
    """

    # Tokens per chunk of the stream: bounds the memory of the pairs and noise words
    # (about 5 pairs per token and ``negative`` noise words per pair).
    CHUNK_TOKENS = 1 << 16
    # Slots of the noise table (word2vec uses 1e8): enough that a word of probability
    # 1e-6 still gets its share to within a quarter.
    NOISE_TABLE_SIZE = 1 << 22

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

    def _stream_pairs(self, tokens: np.ndarray, sentence: np.ndarray, keep_p: np.ndarray,
                      rng) -> tuple[np.ndarray, np.ndarray]:
        """The (centre, context) word pairs of a stretch of the stream, centre by centre
        and each centre's contexts left to right, and each pair's centre position in
        ``tokens`` (before subsampling). ``sentence``: each token's sentence number."""
        kept = np.flatnonzero(rng.random(tokens.size) < keep_p[tokens])
        words, sent = tokens[kept], sentence[kept]
        if words.size == 0:
            return np.zeros((0, 2), np.int64), kept
        reach = rng.integers(1, self.window + 1, words.size)  # each centre's window
        offsets = np.r_[-self.window:0, 1:self.window + 1]
        ctx = np.arange(words.size)[:, None] + offsets          # (n, 2 window)
        inside = (ctx >= 0) & (ctx < words.size) & (np.abs(offsets) <= reach[:, None])
        ctx = np.where(inside, ctx, 0)
        inside &= sent[ctx] == sent[:, None]
        centre, j = np.nonzero(inside)
        return np.stack([words[centre], words[ctx[centre, j]]], 1), kept[centre]

    def _pairs(self, ids: list[np.ndarray], keep_p: np.ndarray, rng) -> np.ndarray:
        """The (centre, context) pairs of sentences of word ids, in stream order."""
        lengths = [s.size for s in ids]
        sentence = np.repeat(np.arange(len(ids)), lengths)
        tokens = np.concatenate(ids) if ids else np.zeros(0, np.int64)
        return self._stream_pairs(tokens, sentence, keep_p, rng)[0]

    def fit(self, sentences) -> Word2Vec:
        """Train on ``sentences`` (an iterable of token lists)."""
        sentences = [list(s) for s in sentences]
        words, counts = _check_vocab(sentences, self.min_count, "Word2Vec")
        index = {w: i for i, w in enumerate(words)}
        ids = [np.array([index[w] for w in s if w in index], dtype=np.int64) for s in sentences]
        lengths = np.array([s.size for s in ids], dtype=np.int64)
        tokens = np.concatenate(ids)
        sentence = np.repeat(np.arange(len(ids)), lengths)
        V, D, K = len(words), self.vector_size, self.negative
        rng = np.random.default_rng(self.seed)
        w_in = ((rng.random((V, D)) - 0.5) / D).astype(np.float32)
        w_out = np.zeros((V, D), dtype=np.float32)
        freq = counts / counts.sum()
        if self.sample > 0:  # word2vec's keep probability
            keep_p = np.minimum(1.0, (np.sqrt(freq / self.sample) + 1) * self.sample / freq)
        else:
            keep_p = np.ones(V)
        table = _noise_table(counts ** self.ns_exponent, self.NOISE_TABLE_SIZE)
        chunks = _sentence_chunks(lengths, self.CHUNK_TOKENS)
        batch_rng = np.random.default_rng([self.seed, 1])  # the NumPy path's batch order
        course = max(1, self.epochs * tokens.size)  # tokens over which the rate decays
        self.losses = []
        for epoch in range(self.epochs):
            tot, n = 0.0, 0
            for start, stop in chunks:
                pairs, pos = self._stream_pairs(tokens[start:stop], sentence[start:stop],
                                                keep_p, rng)
                neg = table[rng.integers(0, table.size, (len(pairs), K))]
                done = (epoch * tokens.size + start + pos) / course
                lrs = np.maximum(self.min_alpha, self.alpha * (1 - done))
                tot += embeddings.skipgram_steps(w_in, w_out, np.ascontiguousarray(pairs[:, 0]),
                                                 np.ascontiguousarray(pairs[:, 1]), neg, lrs,
                                                 self.batch_size, batch_rng)
                n += len(pairs)
            self.losses.append(tot / max(n, 1))
        self.wv = KeyedVectors(words, w_in)
        self.output_vectors = w_out
        return self

    _update = staticmethod(embeddings.skipgram_update)  # the NumPy step, kept under its name


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
    (x / x_max) ^ alpha)``, trained by AdaGrad over the non-zero cells in a new random
    order each epoch (``backend.embeddings.glove_steps``: one step per cell compiled, as
    GloVe's C code does, or mini-batches of cells on the NumPy path); the word vectors
    are ``w + w~``.

    Args: sentences, vector_size, window, min_count, x_max (100), alpha (0.75), epochs,
        learning_rate (0.05), batch_size (cells per step on the NumPy path), seed.
        ``losses``: mean weighted loss per epoch.
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
        params, accumulators = (W, Wc, b, bc), (gW, gWc, gb, gbc)
        self.losses = []
        for _ in range(self.epochs):
            tot = embeddings.glove_steps(params, accumulators, r, c, logx, fx,
                                         rng.permutation(x.size), self.learning_rate,
                                         self.batch_size)
            self.losses.append(tot / x.size)
        self.wv = KeyedVectors(words, (W + Wc).astype(np.float32))
        return self
