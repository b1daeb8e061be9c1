"""Metrics for generated and labelled sequences: corpus BLEU and span-level F1.

>>> from shendu.metrics import bleu_score
>>> cand = [["the", "cat", "sat", "on", "the", "mat"]]
>>> refs = [[["the", "cat", "sat", "on", "the", "mat"], ["a", "cat", "sat"]]]
>>> bleu_score(cand, refs)
1.0
"""
from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

__all__ = ["bleu_score", "bleu_stats", "get_entities", "span_f1_score"]

_SMOOTH = {"none": None, "floor": 0.1, "add-k": 1, "exp": None}


def _ngrams(tokens: Sequence[str], n: int) -> Counter:
    return Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))


def _closest(hyp_len: int, ref_lens: list[int]) -> int:
    # closest reference length; on a tie the shorter one (sacrebleu's and NLTK's rule)
    return min(ref_lens, key=lambda r: (abs(r - hyp_len), r))


def bleu_stats(candidate_corpus, references_corpus, max_n: int = 4):
    """Sufficient statistics of corpus BLEU: per-order clipped matches and totals, the
    candidate length and the effective reference length, summed over the corpus."""
    if len(candidate_corpus) != len(references_corpus):
        raise ValueError(f"bleu_score: {len(candidate_corpus)} candidates but "
                         f"{len(references_corpus)} reference lists; expected one list of "
                         "references per candidate")
    correct, total = [0] * max_n, [0] * max_n
    c_len = r_len = 0
    for i, (cand, refs) in enumerate(zip(candidate_corpus, references_corpus)):
        if isinstance(cand, str) or (refs and isinstance(refs[0], str)):
            raise TypeError(f"bleu_score: candidate {i} must be a list of tokens and its "
                            "references a list of token lists (split strings first)")
        if not refs:
            raise ValueError(f"bleu_score: candidate {i} has no reference")
        c_len += len(cand)
        r_len += _closest(len(cand), [len(r) for r in refs])
        for n in range(1, max_n + 1):
            c = _ngrams(cand, n)
            best: Counter = Counter()
            for r in refs:
                best |= _ngrams(r, n)  # max count of each n-gram over the references
            correct[n - 1] += sum(min(k, best[g]) for g, k in c.items())
            total[n - 1] += max(0, len(cand) - n + 1)
    return correct, total, c_len, r_len


def bleu_score(candidate_corpus, references_corpus, max_n: int = 4,
               weights: Sequence[float] | None = None, smooth: str = "none",
               smooth_value: float | None = None) -> float:
    """Corpus BLEU in [0, 1] (torchtext's signature; sacrebleu's value divided by 100).

    Clipped n-gram counts and lengths are summed over the whole corpus before the
    precisions are formed; the brevity penalty uses, for each candidate, the reference
    length closest to it (the shorter one on a tie).

    Args:
        candidate_corpus: list of candidate token lists.
        references_corpus: for each candidate, a list of reference token lists.
        max_n: highest n-gram order.
        weights: weight of each order's log precision (default uniform ``1/max_n``).
        smooth: ``'none'`` (a zero precision gives 0), ``'floor'`` (zero counts become
            ``smooth_value``, default 0.1), ``'add-k'`` (add ``smooth_value``, default 1, to
            the counts of orders 2 and up), ``'exp'`` (NIST: halve each successive zero
            precision's ``1/total``) — sacrebleu's four methods.

    >>> from shendu.metrics import bleu_score
    >>> round(bleu_score([["a", "b", "c", "d"]], [[["a", "b", "c", "e"]]], max_n=2), 4)
    0.7071
    """
    if isinstance(max_n, bool) or not isinstance(max_n, int) or max_n < 1:
        raise ValueError(f"bleu_score: max_n must be a positive integer, got {max_n!r}")
    if smooth not in _SMOOTH:
        raise ValueError(f"bleu_score: smooth must be one of {sorted(_SMOOTH)}, got {smooth!r}")
    w = [1.0 / max_n] * max_n if weights is None else [float(x) for x in weights]
    if len(w) != max_n:
        raise ValueError(f"bleu_score: {len(w)} weights for max_n={max_n}")
    k = _SMOOTH[smooth] if smooth_value is None else smooth_value
    correct, total, c_len, r_len = bleu_stats(candidate_corpus, references_corpus, max_n)
    if c_len == 0 or not any(correct):
        return 0.0
    bp = 1.0 if c_len >= r_len else math.exp(1 - r_len / c_len)
    log_p, mteval = 0.0, 1.0
    for n in range(max_n):
        m, t = float(correct[n]), float(total[n])
        if smooth == "add-k" and n > 0:
            m, t = m + k, t + k
        if t == 0:
            return 0.0  # no candidate is long enough for this order
        if m == 0:
            if smooth == "exp":
                mteval *= 2
                p = 1.0 / (mteval * t)
            elif smooth == "floor":
                p = k / t
            else:
                return 0.0
        else:
            p = m / t
        log_p += w[n] * math.log(p)
    return bp * math.exp(log_p)


def get_entities(tags: Sequence[str]) -> list[tuple[str, int, int]]:
    """Spans ``(type, start, end)`` (end inclusive) in a BIO/IOB2 tag sequence, read as
    seqeval does in its default mode: an ``I-X`` that follows ``O`` or another type starts
    a new span.

    >>> from shendu.metrics import get_entities
    >>> get_entities(["B-PER", "I-PER", "O", "I-LOC", "B-DATE", "B-DATE"])
    [('PER', 0, 1), ('LOC', 3, 3), ('DATE', 4, 4), ('DATE', 5, 5)]
    """
    spans, cur = [], None  # cur: [type, start]
    for i, tag in enumerate(list(tags) + ["O"]):
        prefix, _, typ = tag.partition("-") if tag != "O" else ("O", "", "")
        if prefix not in ("B", "I", "O"):
            raise ValueError(f"get_entities: tag {tag!r} at position {i} is not O, B-X or I-X")
        if cur is not None and (prefix != "I" or typ != cur[0]):
            spans.append((cur[0], cur[1], i - 1))
            cur = None
        if prefix == "B" or (prefix == "I" and cur is None):
            cur = [typ, i]
    return spans


def span_f1_score(y_true: Sequence[Sequence[str]], y_pred: Sequence[Sequence[str]]):
    """Micro span-level ``(precision, recall, f1)`` over sentences of BIO tags: a predicted
    entity counts only when its type and both boundaries match (seqeval's definition).

    >>> from shendu.metrics import span_f1_score
    >>> span_f1_score([["B-PER", "I-PER", "O"]], [["B-PER", "O", "O"]])
    (0.0, 0.0, 0.0)
    """
    if len(y_true) != len(y_pred):
        raise ValueError(f"span_f1_score: {len(y_true)} true sentences but {len(y_pred)} "
                         "predicted")
    tp = n_true = n_pred = 0
    for i, (t, p) in enumerate(zip(y_true, y_pred)):
        if len(t) != len(p):
            raise ValueError(f"span_f1_score: sentence {i} has {len(t)} true tags but "
                             f"{len(p)} predicted")
        st, sp = set(get_entities(t)), set(get_entities(p))
        tp += len(st & sp)
        n_true += len(st)
        n_pred += len(sp)
    prec = tp / n_pred if n_pred else 0.0
    rec = tp / n_true if n_true else 0.0
    f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
    return prec, rec, f1
