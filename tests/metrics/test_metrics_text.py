"""Corpus BLEU against sacrebleu and by hand; span F1 against seqeval's definition."""
import math
import random

import pytest

from shendu.metrics import bleu_score, bleu_stats, get_entities, span_f1_score


def test_bleu_by_hand():
    # candidate 4 tokens, reference 4: p1 = 3/4, p2 = 2/3; BLEU-2 = sqrt(p1 p2)
    cand, refs = [["a", "b", "c", "d"]], [[["a", "b", "c", "e"]]]
    assert bleu_score(cand, refs, max_n=2) == pytest.approx(math.sqrt(0.75 * 2 / 3), rel=1e-12)
    # clipping: "the the the" against "the cat" matches "the" once
    assert bleu_stats([["the"] * 3], [[["the", "cat"]]], 1)[0] == [1]
    # brevity penalty: candidate 2, references 3 and 5 -> closest 3
    got = bleu_score([["a", "b"]], [[["a", "b", "c"], ["a", "b", "c", "d", "e"]]], max_n=2)
    assert got == pytest.approx(math.exp(1 - 3 / 2), rel=1e-12)
    # tie of distances (3 and 5 around 4): the shorter, 3, is used -> no penalty
    _, _, c, r = bleu_stats([list("abcd")], [[list("abc"), list("abcde")]])
    assert (c, r) == (4, 3)
    assert bleu_score([["x", "y"]], [[["a", "b"]]]) == 0.0


def test_bleu_errors():
    with pytest.raises(ValueError, match="one list of references per candidate"):
        bleu_score([["a"]], [])
    with pytest.raises(TypeError, match="list of tokens"):
        bleu_score(["a b"], [[["a", "b"]]])
    with pytest.raises(ValueError, match="smooth"):
        bleu_score([["a"]], [[["a"]]], smooth="magic")


def _corpus(rng, n=40):
    words = "the a cat dog sat on mat rug and ran".split()
    cands, refs = [], []
    for _ in range(n):
        ref = [rng.choice(words) for _ in range(rng.randint(1, 12))]
        cand = [w if rng.random() < 0.7 else rng.choice(words) for w in ref]
        cand = cand[:rng.randint(1, len(cand))] + [rng.choice(words)] * rng.randint(0, 2)
        extra = [[rng.choice(words) for _ in range(rng.randint(1, 12))]
                 for _ in range(rng.randint(0, 2))]
        cands.append(cand)
        refs.append([ref] + extra)
    return cands, refs


@pytest.mark.parametrize("smooth", ["none", "floor", "add-k", "exp"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_bleu_matches_sacrebleu(seed, smooth):
    sacrebleu = pytest.importorskip("sacrebleu", reason="sacrebleu is the BLEU oracle "
                                    "(pip install sacrebleu)")
    rng = random.Random(seed)
    cands, refs = _corpus(rng, n=3 if smooth != "none" else 40)
    k = max(len(r) for r in refs)
    # sacrebleu takes reference *streams*: pad missing references with None
    streams = [[" ".join(r[j]) if j < len(r) else None for r in refs] for j in range(k)]
    want = sacrebleu.corpus_bleu([" ".join(c) for c in cands], streams, tokenize="none",
                                 smooth_method=smooth, force=True).score / 100
    assert bleu_score(cands, refs, smooth=smooth) == pytest.approx(want, rel=1e-9, abs=1e-12)


def test_entities_and_span_f1():
    tags = ["B-PER", "I-PER", "O", "I-LOC", "I-LOC", "B-LOC", "I-PER"]
    assert get_entities(tags) == [("PER", 0, 1), ("LOC", 3, 4), ("LOC", 5, 5), ("PER", 6, 6)]
    t = [["B-PER", "I-PER", "O", "B-DATE"], ["O", "B-NUM"]]
    p = [["B-PER", "I-PER", "O", "B-NUM"], ["O", "B-NUM"]]
    prec, rec, f1 = span_f1_score(t, p)
    assert (prec, rec) == (2 / 3, 2 / 3) and f1 == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="not O, B-X or I-X"):
        get_entities(["X-PER"])


def test_span_f1_matches_seqeval():
    seqeval = pytest.importorskip("seqeval.metrics", reason="seqeval is the span-F1 oracle")
    rng = random.Random(0)
    tags = ["O", "O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    t = [[rng.choice(tags) for _ in range(rng.randint(1, 9))] for _ in range(60)]
    p = [[x if rng.random() < 0.8 else rng.choice(tags) for x in s] for s in t]
    prec, rec, f1 = span_f1_score(t, p)
    assert prec == pytest.approx(seqeval.precision_score(t, p), rel=1e-12)
    assert rec == pytest.approx(seqeval.recall_score(t, p), rel=1e-12)
    assert f1 == pytest.approx(seqeval.f1_score(t, p), rel=1e-12)
