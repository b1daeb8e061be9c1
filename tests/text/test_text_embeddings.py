"""Word embeddings: exact sparse SGNS gradients, cluster recovery, analogies, file format."""
import numpy as np
import pytest

from shendu.text.embeddings import GloVe, KeyedVectors, Word2Vec, cooccurrence


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


def test_word2vec_and_glove_recover_word_clusters():
    sents = _clustered()
    w2v = Word2Vec(sents, vector_size=16, window=3, min_count=1, epochs=3, sample=0, seed=0)
    assert _purity(w2v.wv) >= 0.9
    assert w2v.losses[-1] < w2v.losses[0]
    glove = GloVe(sents, vector_size=16, window=3, min_count=1, epochs=15, seed=0)
    assert _purity(glove.wv) >= 0.9
    assert glove.losses[-1] < glove.losses[0]
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
