"""Word embeddings: exact sparse SGNS gradients, cluster recovery, analogies, file format."""
import numpy as np
import pytest

from shendu.backend import jit, runtime
from shendu.text.embeddings import GloVe, KeyedVectors, Word2Vec, cooccurrence

needs_numba = pytest.mark.skipif(not jit.available(), reason="the kernel needs numba")


def _clustered(n=600, K=4, per=6, seed=0):
    rng = np.random.default_rng(seed)
    words = [[f"c{k}w{i}" for i in range(per)] for k in range(K)]
    return [list(rng.choice(words[rng.integers(K)], 8)) for _ in range(n)]


def _purity(kv, n=5):
    same = [np.mean([x.split("w")[0] == w.split("w")[0] for x, _ in kv.most_similar(w, n)])
            for w in kv.index_to_key]
    return float(np.mean(same))


def test_sgns_update_is_a_gradient_step_on_the_summed_loss():
    rng = np.random.default_rng(0)
    V, D = 6, 3
    w_in, w_out = rng.normal(size=(V, D)), rng.normal(size=(V, D))
    c, o = np.array([0, 1, 0]), np.array([2, 3, 2])    # repeated rows accumulate
    neg = np.array([[4, 5], [2, 4], [5, 5]])

    def loss(a, b):
        s = lambda x: 1 / (1 + np.exp(-x))  # noqa: E731
        pos = np.log(s(np.sum(a[c] * b[o], 1))).sum()
        return -(pos + np.log(s(-np.einsum("bd,bkd->bk", a[c], b[neg]))).sum())

    def num_grad(which):
        g = np.zeros((V, D))
        for i in range(V):
            for j in range(D):
                for sgn in (1, -1):
                    a, b = w_in.copy(), w_out.copy()
                    (a if which == 0 else b)[i, j] += sgn * 1e-6
                    g[i, j] += sgn * loss(a, b) / 2e-6
        return g

    gi, go = num_grad(0), num_grad(1)
    a, b, lr = w_in.copy(), w_out.copy(), 0.1
    Word2Vec._update(a, b, c, o, neg, lr)
    np.testing.assert_allclose((w_in - a) / lr, gi, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose((w_out - b) / lr, go, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("kernels", [True, False], ids=["kernel", "numpy"])
def test_word2vec_recovers_word_clusters_on_either_path(kernels):
    if kernels and not jit.available():
        pytest.skip("the kernel needs numba")
    with jit.use(kernels), runtime.trace_paths() as log:
        w2v = Word2Vec(_clustered(), vector_size=16, window=3, min_count=1, epochs=3,
                       sample=0, seed=0)
    assert {path for op, path in log if op == "skipgram"} == {"numba" if kernels else "numpy"}
    assert _purity(w2v.wv) >= 0.9
    assert w2v.losses[-1] < w2v.losses[0]


@needs_numba
def test_word2vec_kernel_matches_numpy_steps_of_one_pair():
    # Same seed, same pairs and noise words; the NumPy path at batch_size=1 makes the
    # kernel's per-pair steps one np.add.at call at a time. float32 rounding differs
    # (summation order of the dot products), so the vectors agree closely, not bitwise.
    sents = _clustered(n=40)
    kw = dict(vector_size=8, window=2, min_count=1, epochs=2, sample=1e-2, seed=3,
              batch_size=1)
    with jit.use(True):
        fast = Word2Vec(sents, **kw)
        again = Word2Vec(sents, **kw)
    np.testing.assert_array_equal(fast.wv.vectors, again.wv.vectors)  # seeded: repeats
    with jit.use(False):
        ref = Word2Vec(sents, **kw)
    scale = np.abs(ref.wv.vectors).max()
    np.testing.assert_allclose(fast.wv.vectors, ref.wv.vectors, rtol=0, atol=1e-4 * scale)
    np.testing.assert_allclose(fast.output_vectors, ref.output_vectors, rtol=0,
                               atol=1e-4 * np.abs(ref.output_vectors).max())
    np.testing.assert_allclose(fast.losses, ref.losses, rtol=1e-5)


@needs_numba
def test_sgns_kernel_step_in_float64_equals_the_reference_update():
    from shendu.backend.embeddings import skipgram_steps
    rng = np.random.default_rng(1)
    w_in, w_out = rng.normal(size=(5, 4)), rng.normal(size=(5, 4))
    c, o = np.array([0, 2]), np.array([1, 2])
    neg = np.array([[3, 3, 1], [4, 0, 2]])   # a repeated noise word; one equal to the context
    lrs = np.array([0.2, 0.1])
    a, b = w_in.copy(), w_out.copy()
    with jit.use(True):
        loss = skipgram_steps(a, b, c, o, neg, lrs, batch_size=1)
    ra, rb = w_in.copy(), w_out.copy()
    want = sum(Word2Vec._update(ra, rb, c[i:i + 1], o[i:i + 1], neg[i:i + 1], lrs[i])
               for i in range(2))
    np.testing.assert_allclose(a, ra, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(b, rb, rtol=1e-12, atol=1e-14)
    assert loss == pytest.approx(want, rel=1e-12)


def test_stream_pairs_follow_each_centres_window_inside_its_sentence():
    w2v = Word2Vec(vector_size=4, window=2)
    ids = [np.array([0, 1, 2, 3]), np.array([4]), np.array([5, 6, 7])]
    keep_p = np.array([1, 1, 0.5, 1, 1, 1, 1, 1.0])
    pairs = w2v._pairs(ids, keep_p, np.random.default_rng(7))
    # the same draws, replayed by a plain loop over each sentence's kept words
    rng = np.random.default_rng(7)
    tokens = np.concatenate(ids)
    kept_mask = rng.random(tokens.size) < keep_p[tokens]
    reach = iter(rng.integers(1, 3, kept_mask.sum()).tolist())
    want, start = [], 0
    for s in ids:
        kept = s[kept_mask[start:start + s.size]].tolist()
        start += s.size
        for i, w in enumerate(kept):
            r = next(reach)
            want += [(w, kept[j]) for j in range(max(0, i - r), min(len(kept), i + r + 1))
                     if j != i]
    assert [tuple(p) for p in pairs.tolist()] == want
    assert want  # the corpus has pairs at all


def test_chunks_of_the_stream_end_at_sentence_ends():
    from shendu.text.embeddings import _sentence_chunks
    lengths = np.array([3, 0, 4, 9, 2, 1])            # ends at 3, 3, 7, 16, 18, 19
    assert _sentence_chunks(lengths, 5) == [(0, 7), (7, 16), (16, 19)]
    assert _sentence_chunks(lengths, 100) == [(0, 19)]


def test_sparse_steps_refuse_ids_outside_the_vocabulary():
    from shendu.backend.embeddings import skipgram_steps
    w = np.zeros((3, 2), np.float32)
    ok = dict(centres=np.array([0]), contexts=np.array([1]), negatives=np.array([[2]]),
              lrs=np.array([0.1]))
    for kernels in (True, False):
        with jit.use(kernels):
            with pytest.raises(IndexError, match=r"negatives must lie in \[0, 3\), got "
                                                 r"values from 3 to 3"):
                skipgram_steps(w, w.copy(), **{**ok, "negatives": np.array([[3]])},
                               batch_size=1)
            with pytest.raises(ValueError, match="one entry per example"):
                skipgram_steps(w, w.copy(), **{**ok, "lrs": np.array([0.1, 0.2])},
                               batch_size=1)


@pytest.mark.parametrize("kernels", [True, False], ids=["kernel", "numpy"])
def test_glove_recovers_word_clusters_on_either_path(kernels):
    if kernels and not jit.available():
        pytest.skip("the kernel needs numba")
    with jit.use(kernels), runtime.trace_paths() as log:
        glove = GloVe(_clustered(), vector_size=16, window=3, min_count=1, epochs=15, seed=0)
    assert {path for op, path in log if op == "glove"} == {"numba" if kernels else "numpy"}
    assert _purity(glove.wv) >= 0.9
    assert glove.losses[-1] < glove.losses[0]


@needs_numba
def test_glove_kernel_matches_numpy_steps_of_one_cell():
    # float64 throughout: the per-cell kernel and the NumPy path at batch_size=1 make the
    # same AdaGrad steps in the same order; only the dot products' summation order differs.
    sents = _clustered(n=30)
    kw = dict(vector_size=8, window=2, min_count=1, epochs=2, seed=1, batch_size=1)
    with jit.use(True):
        fast = GloVe(sents, **kw)
    with jit.use(False):
        ref = GloVe(sents, **kw)
    np.testing.assert_allclose(fast.wv.vectors, ref.wv.vectors, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(fast.losses, ref.losses, rtol=1e-10)


def test_word2vec_without_enough_words_says_so():
    sents = _clustered()
    with pytest.raises(ValueError, match="min_count=1000000"):
        Word2Vec(sents, min_count=10**6)


def test_subsampling_drops_frequent_words():
    w2v = Word2Vec(vector_size=4, window=1, sample=1e-3)
    counts = np.array([1000.0, 1.0])
    freq = counts / counts.sum()
    keep = np.minimum(1.0, (np.sqrt(freq / 1e-3) + 1) * 1e-3 / freq)
    rng = np.random.default_rng(0)
    pairs = w2v._pairs([np.array([0, 1] * 500)], keep, rng)
    assert (pairs == 1).mean() > 0.3  # the rare word survives, the frequent one mostly not


def test_cooccurrence_weights_by_distance():
    r, c, x = cooccurrence([np.array([0, 1, 0])], 2, window=2)
    got = {(int(a), int(b)): float(v) for a, b, v in zip(r, c, x)}
    assert got == {(0, 1): 2.0, (1, 0): 2.0, (0, 0): 1.0}


def test_analogy_methods_and_similarity():
    vecs = np.array([[1, 0, 0], [1, 1, 0], [0, 0, 1], [0, 1, 1], [0.2, 0.1, 0.9]], float)
    kv = KeyedVectors(["man", "king", "woman", "queen", "other"], vecs)
    assert kv.analogy("man", "king", "woman")[0][0] == "queen"
    assert kv.analogy("man", "king", "woman", method="3cosmul")[0][0] == "queen"
    u = vecs / np.linalg.norm(vecs, axis=1, keepdims=True)
    want = u[3] @ u[1] - u[3] @ u[0] + u[3] @ u[2]
    assert kv.analogy("man", "king", "woman")[0][1] == pytest.approx(want, rel=1e-6)
    assert kv.similarity("man", "king") == pytest.approx(1 / np.sqrt(2), rel=1e-6)
    with pytest.raises(KeyError, match="'prince' is not in the vocabulary"):
        kv.most_similar("prince")
    with pytest.raises(ValueError, match="3cosadd"):
        kv.analogy("man", "king", "woman", method="x")


def test_word2vec_text_format_round_trip(tmp_path):
    kv = KeyedVectors(["a", "b"], np.array([[0.5, -1.25], [3.0, 1e-3]]))
    path = tmp_path / "v.txt"
    kv.save_word2vec_format(path)
    assert path.read_text().splitlines()[0] == "2 2"
    back = KeyedVectors.load_word2vec_format(path)
    assert back.index_to_key == ["a", "b"]
    np.testing.assert_allclose(back.vectors, kv.vectors, rtol=1e-6)
    (tmp_path / "bad.txt").write_text("oops\n")
    with pytest.raises(ValueError, match="header"):
        KeyedVectors.load_word2vec_format(tmp_path / "bad.txt")
