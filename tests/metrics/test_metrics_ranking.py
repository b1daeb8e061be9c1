"""PR/ROC curves, average precision and AUC against scikit-learn, with tied scores."""
import warnings

import numpy as np
import pytest

import shendu as sd
from shendu import metrics as M

skm = pytest.importorskip("sklearn.metrics")


def _binary(seed, n=100, ties=False):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    s = rng.random(n) + 0.3 * y
    if ties:  # few distinct values: many samples share a threshold
        s = np.round(s * 4) / 4
    return y, s


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("drop", [False, True])
def test_precision_recall_curve_matches_sklearn(seed, ties, drop):
    y, s = _binary(seed, ties=ties)
    ours = M.precision_recall_curve(y, s, drop_intermediate=drop)
    ref = skm.precision_recall_curve(y, s, drop_intermediate=drop)
    for a, b in zip(ours, ref):
        np.testing.assert_allclose(a, b)


def test_precision_recall_curve_by_hand_with_ties():
    # scores 0.9 (pos), 0.5 (pos), 0.5 (neg), 0.1 (neg): the tie is one threshold
    p, r, t = M.precision_recall_curve([1, 1, 0, 0], sd.tensor([0.9, 0.5, 0.5, 0.1]))
    np.testing.assert_allclose(t, [0.1, 0.5, 0.9])
    np.testing.assert_allclose(p, [0.5, 2 / 3, 1.0, 1.0])
    np.testing.assert_allclose(r, [1.0, 1.0, 0.5, 0.0])
    # AP = 0.5 * 1.0 + 0.5 * (2/3)
    assert M.average_precision([1, 1, 0, 0], [0.9, 0.5, 0.5, 0.1]) == pytest.approx(5 / 6)


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("seed", range(4))
def test_average_precision_and_roc_match_sklearn(seed, ties):
    y, s = _binary(seed, n=50 + 30 * seed, ties=ties)
    assert M.average_precision(y, s) == pytest.approx(skm.average_precision_score(y, s))
    assert M.roc_auc(y, s) == pytest.approx(skm.roc_auc_score(y, s))
    for drop in (True, False):
        for a, b in zip(M.roc_curve(y, s, drop_intermediate=drop),
                        skm.roc_curve(y, s, drop_intermediate=drop)):
            np.testing.assert_allclose(a, b)
    # pos_label=0 flips which class is positive
    assert M.average_precision(y, -s, pos_label=0) == pytest.approx(
        skm.average_precision_score(y, -s, pos_label=0))


@pytest.mark.parametrize("average", ["macro", "weighted", "micro", None])
def test_multiclass_one_vs_rest_matches_sklearn(average):
    rng = np.random.default_rng(11)
    y = rng.integers(0, 4, 200)
    logits = rng.normal(size=(200, 4)) + 1.5 * np.eye(4)[y]
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    np.testing.assert_allclose(M.average_precision(y, probs, average=average),
                               skm.average_precision_score(y, probs, average=average))
    if average != "micro":  # scikit-learn has no micro average for multi-class ROC AUC
        np.testing.assert_allclose(M.roc_auc(y, probs, average=average),
                                   skm.roc_auc_score(y, probs, multi_class="ovr",
                                                     average=average))


def test_perfect_and_no_positive_cases():
    assert M.average_precision([0, 1, 1], [0.1, 0.8, 0.9]) == 1.0
    assert M.roc_auc([0, 1, 1], [0.1, 0.8, 0.9]) == 1.0
    with pytest.warns(UserWarning, match="no positive samples"):
        ap = M.average_precision([0, 0, 0], [0.1, 0.2, 0.3])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert ap == skm.average_precision_score([0, 0, 0], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="roc_curve: y_true has no negative samples"):
        M.roc_curve([1, 1], [0.2, 0.3])


def test_ranking_errors():
    with pytest.raises(ValueError, match=r"precision_recall_curve: .*same number.*\(3,\).*\(2,\)"):
        M.precision_recall_curve([0, 1, 1], [0.2, 0.3])
    with pytest.raises(ValueError, match="two classes"):
        M.precision_recall_curve([0, 1, 2], [0.2, 0.3, 0.4])
    with pytest.raises(ValueError, match="NaN or inf"):
        M.roc_auc([0, 1], [0.2, np.nan])
    with pytest.raises(ValueError, match=r"average_precision: y_true holds the label 3"):
        M.average_precision([0, 3], np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"scores must be 1-D"):
        M.precision_recall_curve([0, 1], np.zeros((2, 2)))
