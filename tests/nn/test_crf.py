"""sd.nn.CRF: log-likelihood and Viterbi against brute-force enumeration, gradients."""
import itertools

import numpy as np
import pytest

import shendu as sd
from shendu.nn import CRF


def _brute(crf, em, length):
    """All tag sequences of one (T, K) emission array cut to ``length``: log Z, best path,
    and the score function."""
    tr = crf.transitions.detach().numpy().astype(np.float64)
    st = crf.start_transitions.detach().numpy().astype(np.float64)
    en = crf.end_transitions.detach().numpy().astype(np.float64)

    def score(y):
        s = st[y[0]] + em[0, y[0]] + en[y[-1]]
        for t in range(1, len(y)):
            s += tr[y[t - 1], y[t]] + em[t, y[t]]
        return s

    paths = list(itertools.product(range(crf.num_tags), repeat=length))
    scores = np.array([score(p) for p in paths])
    log_z = np.log(np.exp(scores - scores.max()).sum()) + scores.max()
    return log_z, list(paths[int(scores.argmax())]), score


@pytest.mark.parametrize("batch_first", [False, True])
def test_crf_matches_enumeration(batch_first):
    sd.manual_seed(0)
    K, T, B = 3, 4, 3
    crf = CRF(K, batch_first=batch_first).double()
    with sd.no_grad():
        for p in crf.parameters():
            p.copy_(sd.randn(*p.shape, dtype=sd.float64))
    rng = np.random.default_rng(0)
    em = rng.normal(size=(B, T, K)) * 2
    lengths = [4, 2, 1]
    mask = np.arange(T)[None] < np.array(lengths)[:, None]
    tags = rng.integers(0, K, (B, T))
    if batch_first:
        args = sd.tensor(em), sd.tensor(tags), sd.tensor(mask)
    else:
        args = (sd.tensor(em.transpose(1, 0, 2).copy()), sd.tensor(tags.T.copy()),
                sd.tensor(mask.T.copy()))
    llh = crf(*args, reduction="none").detach().numpy()
    best = crf.decode(args[0], args[2])
    for b in range(B):
        log_z, path, score = _brute(crf, em[b], lengths[b])
        assert llh[b] == pytest.approx(score(list(tags[b, :lengths[b]])) - log_z, rel=1e-10)
        assert best[b] == path
    assert crf(*args, reduction="sum").item() == pytest.approx(llh.sum(), rel=1e-12)
    assert crf(*args, reduction="token_mean").item() == pytest.approx(llh.sum() / 7,
                                                                      rel=1e-12)


def test_crf_probabilities_sum_to_one():
    sd.manual_seed(1)
    crf = CRF(2).double()
    em = sd.randn(3, 1, 2, dtype=sd.float64)
    total = sum(np.exp(crf(em, sd.tensor(np.array(y).reshape(3, 1))).item())
                for y in itertools.product(range(2), repeat=3))
    assert total == pytest.approx(1.0, rel=1e-12)


def test_crf_gradcheck():
    sd.manual_seed(2)
    crf = CRF(3, batch_first=True).double()
    em = sd.randn(2, 4, 3, dtype=sd.float64, requires_grad=True)
    tags = sd.tensor([[0, 2, 1, 1], [1, 0, 0, 0]])
    mask = sd.tensor([[1, 1, 1, 1], [1, 1, 0, 0]])
    params = [em, crf.transitions, crf.start_transitions, crf.end_transitions]

    def f(e, tr, s, en):
        crf.transitions, crf.start_transitions, crf.end_transitions = tr, s, en
        return crf(e, tags, mask)

    # gradcheck over the functional view of the layer
    orig = (crf.transitions, crf.start_transitions, crf.end_transitions)
    try:
        assert sd.autograd.gradcheck(f, params, eps=1e-6, atol=1e-6)
    finally:
        crf.transitions, crf.start_transitions, crf.end_transitions = orig


def test_crf_errors():
    crf = CRF(3, batch_first=True)
    em = sd.randn(1, 3, 3)
    with pytest.raises(ValueError, match="num_tags=3"):
        crf(sd.randn(1, 3, 4), sd.tensor([[0, 1, 2]]))
    with pytest.raises(ValueError, match="contiguous"):
        crf.decode(em, sd.tensor([[1, 0, 1]]))
    with pytest.raises(ValueError, match="first time step"):
        crf.decode(em, sd.tensor([[0, 1, 1]]))
    with pytest.raises(ValueError, match=r"tags must be in \[0, 3\)"):
        crf(em, sd.tensor([[0, 5, 1]]))
    with pytest.raises(ValueError, match="empty"):
        crf.decode(sd.randn(1, 0, 3))
