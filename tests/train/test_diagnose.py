"""Bias/variance diagnosis (the course's worked examples), curve checks and error analysis."""
import json
import math

import numpy as np
import pytest

import shendu as sd
from shendu.train.diagnose import (
    ADVICE,
    diagnose,
    diagnose_history,
    highest_loss_examples,
    most_confused_pairs,
    per_class_error,
)


# ------------------------------------------------------------------ diagnose
@pytest.mark.parametrize("errors, problem, gaps", [
    # human 1%, train 8%, dev 10%: 7 points of avoidable bias beat 2 of variance
    (dict(human_error=0.01, train_error=0.08, dev_error=0.10), "avoidable_bias",
     {"avoidable_bias": 0.07, "variance": 0.02}),
    # same errors but humans get 7.5%: now variance dominates
    (dict(human_error=0.075, train_error=0.08, dev_error=0.10), "variance",
     {"avoidable_bias": 0.005, "variance": 0.02}),
    # train-dev set separates variance from data mismatch
    (dict(human_error=0.0, train_error=0.01, train_dev_error=0.09, dev_error=0.10), "variance",
     {"avoidable_bias": 0.01, "variance": 0.08, "data_mismatch": 0.01}),
    (dict(human_error=0.0, train_error=0.01, train_dev_error=0.015, dev_error=0.10),
     "data_mismatch", {"avoidable_bias": 0.01, "variance": 0.005, "data_mismatch": 0.085}),
    (dict(train_error=0.02, dev_error=0.03, test_error=0.12, human_error=0.01),
     "dev_overfitting", {"avoidable_bias": 0.01, "variance": 0.01, "dev_overfitting": 0.09}),
])
def test_diagnose_course_examples(errors, problem, gaps):
    d = diagnose(**errors)
    assert d.problem == problem
    assert d.gaps.keys() == gaps.keys()
    for k, v in gaps.items():
        assert d.gaps[k] == pytest.approx(v)
    assert d.recommendations == list(ADVICE[problem])
    text = str(d)
    assert d.report() == text and "Dominant problem" in text
    assert all(r in text for r in d.recommendations)
    restored = json.loads(json.dumps(d.to_dict()))
    assert restored["problem"] == problem and restored["problems"][0] == problem


def test_diagnose_advice_matches_the_notes():
    assert "bigger network" in ADVICE["avoidable_bias"][0]
    assert any("optimizer" in a for a in ADVICE["avoidable_bias"])
    assert "more training data" in ADVICE["variance"][0]
    assert any("dropout" in a and "L2" in a for a in ADVICE["variance"])
    assert any("synthesis" in a for a in ADVICE["data_mismatch"])
    assert "bigger dev set" in ADVICE["dev_overfitting"][0]


def test_diagnose_units_thresholds_and_notes():
    pct = diagnose(8, 10, human_error=1)  # percentages
    assert pct.percent and pct.gaps["avoidable_bias"] == 7 and pct.problem == "avoidable_bias"
    assert "7.00%" in str(pct)
    d = diagnose(0.08, 0.10)  # no human level: bias measured from 0, noted
    assert d.gaps["avoidable_bias"] == pytest.approx(0.08)
    assert any("human-level error unknown" in n for n in d.notes)
    calm = diagnose(0.020, 0.025, human_error=0.015)
    assert calm.problem is None and calm.recommendations == [] and calm.problems == []
    assert "no dominant problem" in str(calm)
    assert diagnose(0.020, 0.025, human_error=0.015, min_gap=0.004).problem == "avoidable_bias"
    both = diagnose(0.10, 0.15, human_error=0.0)
    assert both.problems == ["avoidable_bias", "variance"]


def test_diagnose_refuses_mixed_units_and_takes_a_named_one():
    with pytest.raises(ValueError, match=r"mix units \(train 8, dev 0.1\).*--unit percent"):
        diagnose(8, 0.10)
    d = diagnose(8, 0.10, unit="percent")  # dev 0.1 %: the network does better on dev
    assert d.percent and d.gaps["variance"] == pytest.approx(-7.9)
    f = diagnose(0.08, 0.10, unit="fraction")
    assert not f.percent and f.gaps["variance"] == pytest.approx(0.02)
    assert diagnose(0.5, 8, human_error=0, unit="percent").gaps["variance"] == 7.5
    with pytest.raises(ValueError, match=r"unit 'fraction' must lie in \[0, 1\], got train 8"):
        diagnose(8, 10, unit="fraction")
    with pytest.raises(ValueError, match="unit must be"):
        diagnose(0.1, 0.2, unit="%")


@pytest.mark.parametrize("bad", [dict(train_error=-0.1, dev_error=0.1),
                                 dict(train_error=math.nan, dev_error=0.1),
                                 dict(train_error=5.0, dev_error=150.0)])
def test_diagnose_rejects_bad_errors(bad):
    with pytest.raises(ValueError, match="diagnose: "):
        diagnose(**bad)


# ------------------------------------------------------------------ diagnose_history
def test_history_overfitting_points_at_best_epoch():
    h = {"train_loss": [1.0, 0.6, 0.4, 0.3, 0.25, 0.2],
         "val_loss": [1.0, 0.7, 0.6, 0.65, 0.7, 0.8], "train_acc": [0.5] * 6}
    found = diagnose_history(h)
    assert found.kinds == ["overfitting"]
    assert found[0].epoch == 3 and "0.6" in found[0].message
    assert any("stop early" in a for a in found[0].advice)
    assert "[overfitting]" in str(found)
    assert json.loads(json.dumps(found.to_dict()))[0]["epoch"] == 3


def test_history_divergence_nan_and_rising():
    nan = diagnose_history({"train_loss": [2.0, 1.5, math.nan, math.nan]})
    assert nan.kinds == ["diverging"] and nan[0].epoch == 3
    assert "learning rate" in nan[0].message
    inf = diagnose_history({"val_loss": [1.0, math.inf]})
    assert inf.kinds == ["diverging"] and inf[0].epoch == 2
    rising = diagnose_history({"train_loss": [2.3, 1.9, 1.7, 2.0, 2.6, 3.9, 6.1]})
    assert rising.kinds == ["diverging"] and rising[0].epoch == 3
    assert any("lower the learning rate" in a for a in rising[0].advice)


def test_history_plateau_and_healthy_run():
    flat = [2.0, 1.2, 0.9, 0.85] + [0.849, 0.8485, 0.849, 0.8488, 0.8487]
    found = diagnose_history({"train_loss": flat}, window=5)
    assert found.kinds == ["plateau"] and found[0].epoch == 5
    assert any("learning rate" in a for a in found[0].advice)
    # still improving by more than 1% in the window: no plateau
    steady = list(2.0 * 0.9 ** np.arange(12))
    assert diagnose_history({"train_loss": steady, "val_loss": steady}).kinds == []
    assert diagnose_history({"train_loss": steady}, window=5, tol=0.5).kinds == ["plateau"]
    assert str(diagnose_history({})).startswith("Training curves: no divergence")
    assert diagnose_history({"train_loss": [1.0]}).kinds == []  # too short to judge


def test_history_overfitting_from_accuracy_only():
    h = {"train_acc": [0.6, 0.7, 0.8, 0.9, 0.95], "val_acc": [0.55, 0.65, 0.7, 0.66, 0.6]}
    found = diagnose_history(h)
    assert found.kinds == ["overfitting"] and found[0].epoch == 3
    with pytest.raises(TypeError, match="diagnose_history: history must be a dict"):
        diagnose_history([1.0, 2.0])


# ------------------------------------------------------------------ error analysis
def test_per_class_error_matches_sklearn_recall():
    skm = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 300)
    p = np.where(rng.random(300) < 0.7, y, rng.integers(0, 4, 300))
    rows = per_class_error(sd.tensor(y), p, class_names=["a", "b", "c", "d"])
    recall = skm.recall_score(y, p, average=None)
    np.testing.assert_allclose([r.error_rate for r in rows], 1 - recall)
    assert [r.support for r in rows] == np.bincount(y).tolist()
    assert [r.name for r in rows] == ["a", "b", "c", "d"]
    text = str(rows).splitlines()
    worst = max(rows, key=lambda r: r.error_rate)
    assert text[0].startswith("Per-class error") and worst.name in text[2]


def test_most_confused_pairs_by_hand():
    y_true = [0, 0, 0, 0, 1, 1, 2, 2, 2]
    y_pred = [1, 1, 1, 0, 0, 1, 1, 0, 2]
    pairs = most_confused_pairs(y_true, y_pred, k=3, class_names=["cat", "dog", "fox"])
    # cat->dog 3 of 4, then dog->cat, fox->dog, fox->cat once each (ties keep matrix order)
    assert [(q.true, q.predicted, q.count) for q in pairs] == [
        ("cat", "dog", 3), ("dog", "cat", 1), ("fox", "cat", 1)]
    assert pairs[0].fraction_of_true == 0.75
    assert "cat" in str(pairs) and "Most confused" in str(pairs)
    assert most_confused_pairs([0, 1], [0, 1]) == []
    with pytest.raises(ValueError, match="out of range for num_classes=2"):
        most_confused_pairs([0, 2], [0, 1], class_names=["a", "b"])


def test_highest_loss_examples_from_logits_and_losses():
    special = pytest.importorskip("scipy.special")
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(50, 3)) * 3
    y = rng.integers(0, 3, 50)
    expected = -special.log_softmax(logits, axis=1)[np.arange(50), y]
    top = highest_loss_examples(logits, y, k=5)
    assert [e.index for e in top] == np.argsort(-expected)[:5].tolist()
    np.testing.assert_allclose([e.loss for e in top], np.sort(expected)[::-1][:5])
    for e in top:
        probs = special.softmax(logits[e.index])
        assert e.predicted == probs.argmax() and e.confidence == pytest.approx(probs.max())
        assert e.suspect_label == (e.predicted != e.label and e.confidence >= 0.9)
    probs = special.softmax(logits, axis=1)  # probabilities give the same ranking
    assert [e.index for e in highest_loss_examples(probs, y, k=5)] == [e.index for e in top]
    losses = highest_loss_examples(sd.tensor(expected), y, k=2)
    assert [e.index for e in losses] == [e.index for e in top[:2]]
    assert losses[0].predicted is None and not losses[0].suspect_label
    assert "suspect_label" in str(top)
    with pytest.raises(ValueError, match=r"highest_loss_examples: .*50 labels.*\(3, 3\)"):
        highest_loss_examples(logits[:3], y)
