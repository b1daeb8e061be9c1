"""Streaming metrics: batch-by-batch accumulation equals the metric on the whole epoch."""
import math
import warnings

import numpy as np
import pytest

import shendu as sd
from shendu.metrics import MetricTracker, RunningMean

skm = pytest.importorskip("sklearn.metrics")


def test_running_mean_weights_by_batch_size():
    m = RunningMean()
    assert math.isnan(m.compute())
    m.update(sd.tensor(1.0), n=4)
    m.update(np.array([3.0]), n=2)  # one-element arrays and tensors are accepted
    m.update(10.0, n=0)  # an empty batch changes nothing
    assert m.compute() == pytest.approx((4 * 1 + 2 * 3) / 6)
    assert m.count == 6 and m.last == 10.0
    m.reset()
    assert m.count == 0 and math.isnan(m.mean)
    with pytest.raises(ValueError, match="single number"):
        m.update([1.0, 2.0])


def test_tracker_equals_whole_epoch_metrics():
    rng = np.random.default_rng(0)
    n, c = 203, 4
    logits = rng.normal(size=(n, c))
    y = rng.integers(0, c, n)
    logits[:, 3] -= 10  # class 3 is never predicted
    losses = rng.random(n)
    tracker = MetricTracker()
    for start in range(0, n, 32):  # last batch is short
        sl = slice(start, start + 32)
        tracker.update(sd.tensor(logits[sl]), sd.tensor(y[sl]), loss=losses[sl].mean(),
                       grad_norm=1.0)
    out = tracker.compute()
    pred = logits.argmax(1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert out["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
        assert out["precision"] == pytest.approx(skm.precision_score(y, pred, average="macro"))
        assert out["recall"] == pytest.approx(skm.recall_score(y, pred, average="macro"))
        assert out["f1"] == pytest.approx(skm.f1_score(y, pred, average="macro"))
    assert out["loss"] == pytest.approx(losses.mean())
    assert out["grad_norm"] == 1.0
    tracker.reset()
    after = tracker.compute()
    assert math.isnan(after["accuracy"]) and "loss" not in after


def test_tracker_label_inputs_and_fixed_num_classes():
    t = MetricTracker(num_classes=3)
    t.update([0, 1, 2], [0, 1, 1])
    t.update([2], [2])
    assert t.confusion.tolist() == [[1, 0, 0], [0, 1, 1], [0, 0, 1]]
    assert t.compute()["accuracy"] == 0.75
    with pytest.raises(ValueError, match="out of range for num_classes=3"):
        t.update([0], [3])
    with pytest.raises(ValueError, match="output has 2 samples but target has 1"):
        t.update([0, 1], [1])
