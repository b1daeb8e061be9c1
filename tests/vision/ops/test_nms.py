"""Non-maximum suppression against a plain loop written from the definition (torchvision's
CPU kernel: stable descending score order, suppress only IoU strictly above the threshold,
int64 indices in score order, per-category for batched_nms), on the compiled loop and on
the NumPy reference."""
import numpy as np
import pytest

import shendu as sd
from shendu.backend import jit, runtime
from shendu.backend import vision as vision_backend
from shendu.vision import ops

PATHS = ["numba", "numpy"] if jit.available() else ["numpy"]

rng = np.random.default_rng(140)


def ref_iou(a, b):
    w = max(min(a[2], b[2]) - max(a[0], b[0]), 0.0)
    h = max(min(a[3], b[3]) - max(a[1], b[1]), 0.0)
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def ref_nms(boxes, scores, thr):
    # selection sort by (score descending, index ascending): no library sort involved
    remaining = list(range(len(boxes)))
    keep = []
    while remaining:
        best = remaining[0]
        for i in remaining:
            if scores[i] > scores[best]:
                best = i
        keep.append(best)
        remaining = [i for i in remaining
                     if i != best and not ref_iou(boxes[best], boxes[i]) > thr]
    return keep


def ref_batched(boxes, scores, idxs, thr):
    kept = []
    for c in sorted(set(idxs.tolist())):
        members = [i for i in range(len(boxes)) if idxs[i] == c]
        kept += [members[j] for j in ref_nms(boxes[members], scores[members], thr)]
    return sorted(kept, key=lambda i: (-scores[i], i))


def clustered_boxes(n):
    centres = rng.uniform(0, 20, (3, 2))[rng.integers(0, 3, n)] + rng.normal(0, 1.0, (n, 2))
    wh = rng.uniform(2, 5, (n, 2))
    return np.concatenate([centres - wh / 2, centres + wh / 2], 1)


@pytest.fixture(params=PATHS)
def path(request):
    """Run the test on the compiled loop, then on the NumPy reference, and check that
    each NMS call took that path."""
    with jit.use(request.param == "numba"), runtime.trace_paths() as log:
        yield request.param
    assert {p for op, p in log if op == "nms"} == {request.param}


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("thr", [0.0, 0.3, 0.5, 0.9])
def test_nms_matches_the_loop_reference(dtype, thr, path):
    for trial in range(8):
        boxes = clustered_boxes(40).astype(dtype)
        scores = rng.integers(0, 6, 40).astype(dtype) / 5 if trial % 2 else \
            rng.random(40).astype(dtype)  # odd trials: many tied scores
        got = ops.nms(sd.tensor(boxes), sd.tensor(scores), thr)
        assert got.dtype == sd.int64
        assert got.numpy().tolist() == ref_nms(boxes, scores, thr)


def test_nms_degenerate_boxes_and_thresholds_on_both_paths():
    # zero-area boxes (0/0 IoU: never above), duplicates, a negative threshold (every
    # finite IoU is above it), and IoUs landing exactly on float32 thresholds
    base = clustered_boxes(30).astype(np.float32)
    boxes = np.concatenate([base, base[:5], np.repeat(base[5:8, :2], 2, 1),
                            [[0, 0, 2, 2], [0, 0, 2, 1], [0, 0, 4, 1]]]).astype(np.float32)
    scores = rng.random(len(boxes)).astype(np.float32)
    for thr in (-1.0, 0.0, 0.25, 0.5, 0.1, 0.7):
        with jit.use(False):
            want = ops.nms(sd.tensor(boxes), sd.tensor(scores), thr).tolist()
        assert want == ref_nms(boxes, scores, thr)
        if jit.available():
            assert ops.nms(sd.tensor(boxes), sd.tensor(scores), thr).tolist() == want


def test_nms_many_boxes_uses_the_rowwise_pass(monkeypatch):
    # above _PAIRWISE_MAX boxes the NumPy reference stops building the IoU matrix; both of
    # its passes must agree with the loop (a small limit keeps the loop fast)
    boxes, scores = clustered_boxes(60), rng.random(60)
    want = ref_nms(boxes, scores, 0.4)
    monkeypatch.setattr(vision_backend, "_PAIRWISE_MAX", 10)
    with jit.use(False):
        assert ops.nms(sd.tensor(boxes), sd.tensor(scores), 0.4).numpy().tolist() == want


def test_nms_hand_cases(path):
    b = sd.tensor([[0.0, 0.0, 2.0, 2.0], [0.0, 0.0, 2.0, 1.0], [0.0, 0.0, 2.0, 2.0]])
    # IoU exactly 0.5 is not "above" 0.5: both kept
    assert ops.nms(b[:2], sd.tensor([0.9, 0.8]), 0.5).tolist() == [0, 1]
    assert ops.nms(b[:2], sd.tensor([0.9, 0.8]), 0.49).tolist() == [0]
    # equal scores: the lower index wins and suppresses the other
    assert ops.nms(b, sd.tensor([0.7, 0.1, 0.7]), 0.5).tolist() == [0, 1]
    assert ops.nms(b, sd.tensor([0.1, 0.2, 0.7]), 0.5).tolist() == [2, 1]
    empty = ops.nms(sd.zeros(0, 4), sd.zeros(0), 0.5)
    assert empty.shape == (0,) and empty.dtype == sd.int64


def test_batched_nms_matches_the_loop_reference(path):
    for trial in range(8):
        boxes = clustered_boxes(50)
        scores = rng.integers(0, 4, 50) / 3 if trial % 2 else rng.random(50)
        idxs = rng.integers(0, 3, 50)
        got = ops.batched_nms(sd.tensor(boxes), sd.tensor(scores), sd.tensor(idxs), 0.4)
        assert got.dtype == sd.int64
        assert got.numpy().tolist() == ref_batched(boxes, scores, idxs, 0.4)


def test_batched_nms_hand_cases():
    b = sd.tensor([[0.0, 0.0, 2.0, 2.0]] * 4)
    got = ops.batched_nms(b, sd.tensor([0.5, 0.9, 0.7, 0.9]), sd.tensor([0, 0, 1, 1]), 0.5)
    assert got.tolist() == [1, 3]  # one per category
    # merged by score across categories, a tie going to the lower index (not category order)
    got = ops.batched_nms(b, sd.tensor([0.5, 0.9, 0.9, 0.3]), sd.tensor([1, 1, 0, 0]), 0.5)
    assert got.tolist() == [1, 2]
    assert ops.batched_nms(sd.zeros(0, 4), sd.zeros(0), sd.zeros(0, dtype=sd.int64),
                           0.5).tolist() == []


def test_nms_errors():
    with pytest.raises(ValueError, match=r"nms: boxes must be a Tensor of shape \(N, 4\), "
                                         r"got \(3, 5\)"):
        ops.nms(sd.zeros(3, 5), sd.zeros(3), 0.5)
    with pytest.raises(ValueError, match=r"nms: scores must be a Tensor of shape \(3,\).*\(2,\)"):
        ops.nms(sd.zeros(3, 4), sd.zeros(2), 0.5)
    with pytest.raises(ValueError, match="nms: scores contain NaN at index 1"):
        ops.nms(sd.zeros(3, 4), sd.tensor([0.1, float("nan"), 0.2]), 0.5)
    with pytest.raises(ValueError, match=r"batched_nms: idxs must be .*\(3,\), got \(2,\)"):
        ops.batched_nms(sd.zeros(3, 4), sd.zeros(3), sd.zeros(2), 0.5)


@pytest.mark.torchvision
def test_torchvision_agreement():
    tv = pytest.importorskip("torchvision", reason="torchvision is not installed: nms was "
                             "checked against the loop reference only")
    import torch
    for dtype in (np.float32, np.float64):
        boxes = clustered_boxes(60).astype(dtype)
        scores = (rng.integers(0, 5, 60) / 4).astype(dtype)
        idxs = rng.integers(0, 3, 60)
        assert ops.nms(sd.tensor(boxes), sd.tensor(scores), 0.5).tolist() == \
            tv.ops.nms(torch.tensor(boxes), torch.tensor(scores), 0.5).tolist()
        assert ops.batched_nms(sd.tensor(boxes), sd.tensor(scores), sd.tensor(idxs),
                               0.5).tolist() == \
            tv.ops.batched_nms(torch.tensor(boxes), torch.tensor(scores),
                               torch.tensor(idxs), 0.5).tolist()
