"""Classification metrics against scikit-learn on random data and hand-worked cases."""
import warnings

import numpy as np
import pytest

import shendu as sd
from shendu import metrics as M

skm = pytest.importorskip("sklearn.metrics")


def _random_labels(seed, n=200, c=5, drop_pred=None):
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, c, n)
    y_pred = np.where(rng.random(n) < 0.6, y_true, rng.integers(0, c, n))
    if drop_pred is not None:  # a class never predicted
        y_pred[y_pred == drop_pred] = (drop_pred + 1) % c
    return y_true, y_pred


def _sk(fn, *args, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, zero_division=0, **kw)


def test_accuracy_labels_logits_and_tensors():
    assert M.accuracy([1, 2, 3, 4], [1, 2, 0, 4]) == 0.75
    logits = np.array([[2.0, 1.0, 0.1], [0.1, 0.2, 3.0], [0.5, 0.4, 0.3], [0.0, 1.0, 0.0]])
    target = np.array([0, 2, 1, 1])
    assert M.accuracy(logits, target) == 0.75  # row 2 predicts 0, wrong
    assert M.accuracy(sd.tensor(logits, requires_grad=True), sd.tensor(target)) == 0.75
    assert M.accuracy_score(target, [0, 2, 0, 1]) == 0.75
    # dense predictions: (N, C, H) scores with (N, H) targets
    rng = np.random.default_rng(0)
    dense = rng.normal(size=(2, 3, 4))
    tgt = rng.integers(0, 3, (2, 4))
    assert M.accuracy(dense, tgt) == np.mean(dense.argmax(1) == tgt)


def test_accuracy_errors_name_function_and_shapes():
    with pytest.raises(ValueError, match=r"accuracy: .*3 predictions.*2 labels"):
        M.accuracy([0, 1, 1], [0, 1])
    with pytest.raises(ValueError, match=r"accuracy: .*integer class labels.*0\.7"):
        M.accuracy([0.7, 0.2], [1, 0])
    with pytest.raises(ValueError, match="negative label -1"):
        M.accuracy([0, 1], [-1, 1])
    with pytest.raises(TypeError, match="accuracy: input must hold numbers"):
        M.accuracy(["a", "b"], [0, 1])


@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_top_k_accuracy_matches_sklearn(k):
    rng = np.random.default_rng(k)
    scores = rng.normal(size=(300, 5))
    y = rng.integers(0, 5, 300)
    expected = skm.top_k_accuracy_score(y, scores, k=k, labels=range(5))
    assert M.top_k_accuracy(scores, y, k=k) == pytest.approx(expected)


def test_top_k_ties_follow_argmax_and_errors():
    scores = np.zeros((4, 3))  # every class tied: argmax picks class 0
    y = np.array([0, 1, 2, 0])
    assert M.top_k_accuracy(scores, y, k=1) == M.accuracy(scores, y) == 0.5
    assert M.top_k_accuracy(scores, y, k=2) == 0.75
    with pytest.raises(ValueError, match=r"k must be in \[1, 3\]"):
        M.top_k_accuracy(scores, y, k=4)
    with pytest.raises(ValueError, match="out of range for num_classes=3"):
        M.top_k_accuracy(scores, [0, 1, 3, 0], k=1)
    with pytest.raises(ValueError, match=r"shape \(N, C\)"):
        M.top_k_accuracy(np.zeros(4), y, k=1)


@pytest.mark.parametrize("normalize", [None, "true", "pred", "all"])
def test_confusion_matrix_matches_sklearn(normalize):
    y_true, y_pred = _random_labels(1, drop_pred=3)
    y_true[:5] = 5  # a class only in y_true (row of a never-predicted class)
    ours = M.confusion_matrix(y_true, y_pred, num_classes=7, normalize=normalize)
    ref = skm.confusion_matrix(y_true, y_pred, labels=range(7), normalize=normalize)
    np.testing.assert_allclose(ours, ref)
    assert ours.shape == (7, 7)


def test_confusion_matrix_by_hand_and_errors():
    cm = M.confusion_matrix(sd.tensor([0, 0, 1, 2]), np.array([0, 1, 1, 1]))
    assert cm.tolist() == [[1, 1, 0], [0, 1, 0], [0, 1, 0]]
    with pytest.raises(ValueError, match=r"confusion_matrix: y_pred holds the label 3.*num_cl"):
        M.confusion_matrix([0, 1], [0, 3], num_classes=3)
    with pytest.raises(ValueError, match=r"same number of samples.*\(3,\) and \(2,\)"):
        M.confusion_matrix([0, 1, 1], [0, 1])
    with pytest.raises(ValueError, match="1-D array of class labels"):
        M.confusion_matrix([[0, 1]], [[0, 1]])
    with pytest.raises(ValueError, match="normalize must be"):
        M.confusion_matrix([0], [0], normalize="rows")


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("average", ["micro", "macro", "weighted", None])
def test_precision_recall_f1_match_sklearn(seed, average):
    y_true, y_pred = _random_labels(seed, n=60 + seed * 40, drop_pred=seed % 5)
    for ours, ref in [(M.precision, skm.precision_score), (M.recall, skm.recall_score),
                      (M.f1_score, skm.f1_score)]:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # ours must not warn on zero division
            got = ours(y_true, y_pred, average=average)
        np.testing.assert_allclose(got, _sk(ref, y_true, y_pred, average=average))


def test_binary_and_pos_label_match_sklearn():
    rng = np.random.default_rng(7)
    y_true, y_pred = rng.integers(0, 2, 50), rng.integers(0, 2, 50)
    for pos in (0, 1):
        for ours, ref in [(M.precision, skm.precision_score), (M.recall, skm.recall_score),
                          (M.f1_score, skm.f1_score)]:
            assert ours(y_true, y_pred, pos_label=pos) == pytest.approx(
                _sk(ref, y_true, y_pred, pos_label=pos))
    # by hand: tp=1, fp=2, fn=1
    assert M.precision([1, 1, 0, 0], [1, 0, 1, 1]) == pytest.approx(1 / 3)
    assert M.recall([1, 1, 0, 0], [1, 0, 1, 1]) == 0.5
    assert M.f1_score([1, 1, 0, 0], [1, 0, 1, 1]) == pytest.approx(2 / (2 + 2 + 1))


def test_zero_division_and_labels_argument():
    # class 1 is never predicted and class 2 never occurs
    y_true, y_pred = [0, 0, 1, 1], [0, 0, 0, 2]
    p, r, f, s = M.precision_recall_fscore_support(y_true, y_pred)
    np.testing.assert_allclose(p, [2 / 3, 0, 0])
    np.testing.assert_allclose(r, [1, 0, 0])
    assert s.tolist() == [2, 2, 0]
    assert M.precision(y_true, y_pred, average="macro", zero_division=1) == pytest.approx(
        skm.precision_score(y_true, y_pred, average="macro", zero_division=1))
    got = M.precision(y_true, y_pred, average="macro", zero_division=np.nan)
    assert got == pytest.approx(skm.precision_score(y_true, y_pred, average="macro",
                                                    zero_division=np.nan))
    # labels 2 and 3 have no support: weighted averages fall back to the plain mean
    for labels in ([0, 1], [2, 0], [0, 1, 2, 3], [2], [2, 3]):
        for avg in ("macro", "weighted", "micro", None):
            for zd in (0, 1, np.nan):
                for ours, ref in [(M.precision, skm.precision_score), (M.f1_score, skm.f1_score)]:
                    np.testing.assert_allclose(
                        ours(y_true, y_pred, average=avg, labels=labels, zero_division=zd),
                        ref(y_true, y_pred, average=avg, labels=labels, zero_division=zd))
    with pytest.raises(ValueError, match=r"precision: average='binary' needs at most two cl"):
        M.precision(y_true, y_pred)
    for beta in (0.5, 2.0):
        for avg in ("macro", "weighted", None):
            np.testing.assert_allclose(
                M.fbeta_score(y_true, y_pred, beta=beta, average=avg),
                _sk(skm.fbeta_score, y_true, y_pred, beta=beta, average=avg))
    with pytest.raises(ValueError, match="recall: pos_label=3 is not one of the labels"):
        M.recall([0, 1], [1, 1], pos_label=3)
    with pytest.raises(ValueError, match="average must be one of"):
        M.f1_score([0, 1], [1, 1], average="samples")


def test_classification_report_matches_sklearn():
    y_true, y_pred = _random_labels(3, n=120, c=4, drop_pred=2)
    names = ["ant", "bee", "cat", "dog"]
    ours = M.classification_report(y_true, y_pred, target_names=names, output_dict=True)
    ref = _sk(skm.classification_report, y_true, y_pred, target_names=names, output_dict=True)
    assert ours.keys() == ref.keys()
    for key, row in ref.items():
        if isinstance(row, dict):
            for metric, value in row.items():
                assert ours[key][metric] == pytest.approx(value), (key, metric)
        else:
            assert ours[key] == pytest.approx(row)
    text = M.classification_report(y_true, y_pred, target_names=names, digits=3)
    assert "cat" in text and f"{ref['macro avg']['f1-score']:.3f}" in text
    # a subset of labels reports micro avg instead of accuracy, like scikit-learn
    sub = M.classification_report(y_true, y_pred, labels=[0, 1], output_dict=True)
    ref_sub = _sk(skm.classification_report, y_true, y_pred, labels=[0, 1], output_dict=True)
    assert sub.keys() == ref_sub.keys()
    assert sub["micro avg"]["f1-score"] == pytest.approx(ref_sub["micro avg"]["f1-score"])
    with pytest.raises(ValueError, match="2 target_names for 4 classes"):
        M.classification_report(y_true, y_pred, target_names=["a", "b"])
