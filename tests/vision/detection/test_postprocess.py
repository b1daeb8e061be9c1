"""Detection post-processing against a loop written from its definition and, when
installed, torchvision's ``RoIHeads.postprocess_detections``."""
import numpy as np
import pytest

import shendu as sd
from shendu.vision.detection import BoxCoder, filter_detections, postprocess_detections

rng = np.random.default_rng(1401)


def _iou(a, b):
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def ref_filter(boxes, scores, shape, thresh, nms_thresh, k):
    h, w = shape
    cands = []
    for i in range(boxes.shape[0]):
        for c in range(boxes.shape[1]):
            b = boxes[i, c].copy()
            b[[0, 2]] = b[[0, 2]].clip(0, w)
            b[[1, 3]] = b[[1, 3]].clip(0, h)
            if scores[i, c] > thresh and b[2] - b[0] >= 1e-2 and b[3] - b[1] >= 1e-2:
                cands.append((scores[i, c], i * boxes.shape[1] + c, c + 1, b))
    cands.sort(key=lambda t: (-t[0], t[1]))
    kept = []
    for s, _, c, b in cands:
        if all(kc != c or _iou(kb, b) <= nms_thresh for _, _, kc, kb in kept):
            kept.append((s, 0, c, b))
    kept = kept[:k]
    return (np.array([t[3] for t in kept]).reshape(-1, 4), np.array([t[0] for t in kept]),
            np.array([t[2] for t in kept], np.int64))


def _random_case(k=40, c=3, size=32.0):
    xy = rng.uniform(-4, size, (k, c, 2))
    wh = rng.uniform(0.0, 12, (k, c, 2))
    return np.concatenate([xy, xy + wh], -1), rng.uniform(0, 1, (k, c))


@pytest.mark.parametrize("k", [100, 5])
def test_filter_detections_matches_the_loop(k):
    boxes, scores = _random_case()
    out = filter_detections(sd.tensor(boxes), sd.tensor(scores), (30, 28), 0.3, 0.4, k)
    rb, rs, rl = ref_filter(boxes, scores, (30, 28), 0.3, 0.4, k)
    np.testing.assert_allclose(out["boxes"].numpy(), rb, atol=1e-12)
    np.testing.assert_allclose(out["scores"].numpy(), rs)
    np.testing.assert_array_equal(out["labels"].numpy(), rl)
    assert out["labels"].dtype == sd.int64


def test_filter_detections_nothing_above_threshold_and_bad_input():
    boxes, scores = _random_case(4, 2)
    out = filter_detections(sd.tensor(boxes), sd.tensor(scores), (30, 30), score_thresh=1.0)
    assert tuple(out["boxes"].shape) == (0, 4) and len(out["labels"]) == 0
    scores[2, 1] = np.nan
    with pytest.raises(ValueError, match="NaN score for candidate 2, class 1"):
        filter_detections(sd.tensor(boxes), sd.tensor(scores), (30, 30))
    with pytest.raises(ValueError, match=r"\(K, C, 4\)"):
        filter_detections(sd.tensor(boxes[:, 0]), sd.tensor(scores), (30, 30))


def _head_outputs(counts=(7, 5), classes=4):
    k = sum(counts)
    props = [rng.uniform(0, 20, (n, 2)) for n in counts]
    props = [np.concatenate([p, p + rng.uniform(2, 10, p.shape)], 1) for p in props]
    return rng.normal(0, 2, (k, classes)), rng.normal(0, 0.3, (k, 4 * classes)), props


def test_postprocess_detections_per_image_matches_decode_then_filter():
    logits, reg, props = _head_outputs()
    coder = BoxCoder((10., 10., 5., 5.))
    out = postprocess_detections(sd.tensor(logits), sd.tensor(reg),
                                 [sd.tensor(p) for p in props], [(24, 26), (30, 30)], coder,
                                 0.1, 0.5, 100)
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    start = 0
    for p, shape, det in zip(props, [(24, 26), (30, 30)], out):
        n = len(p)
        dec = coder.decode_single(sd.tensor(reg[start:start + n]), sd.tensor(p)).numpy()
        rb, rs, rl = ref_filter(dec.reshape(n, 4, 4)[:, 1:], probs[start:start + n, 1:],
                                shape, 0.1, 0.5, 100)
        np.testing.assert_allclose(det["boxes"].numpy(), rb, atol=1e-9)
        np.testing.assert_allclose(det["scores"].numpy(), rs, rtol=1e-12)
        np.testing.assert_array_equal(det["labels"].numpy(), rl)
        start += n
    with pytest.raises(ValueError, match="2 proposal sets but 1 image shapes"):
        postprocess_detections(sd.tensor(logits), sd.tensor(reg),
                               [sd.tensor(p) for p in props], [(24, 26)], coder)


@pytest.mark.torchvision
def test_postprocess_detections_matches_torchvision():
    pytest.importorskip("torchvision", reason="torchvision is not installed: post-processing "
                        "was checked against the loop reference only")
    import torch
    from torchvision.models.detection._utils import BoxCoder as TvCoder
    from torchvision.models.detection.roi_heads import RoIHeads

    logits, reg, props = _head_outputs((30, 20), 5)
    heads = RoIHeads(None, None, None, 0.5, 0.5, 512, 0.25, (10., 10., 5., 5.),
                     0.2, 0.45, 10)
    heads.box_coder = TvCoder((10., 10., 5., 5.))
    shapes = [(24, 26), (30, 30)]
    tb, ts, tl = heads.postprocess_detections(torch.tensor(logits), torch.tensor(reg),
                                              [torch.tensor(p) for p in props], shapes)
    out = postprocess_detections(sd.tensor(logits), sd.tensor(reg),
                                 [sd.tensor(p) for p in props], shapes,
                                 BoxCoder((10., 10., 5., 5.)), 0.2, 0.45, 10)
    for det, b, s, lab in zip(out, tb, ts, tl):
        np.testing.assert_allclose(det["boxes"].numpy(), b.numpy(), atol=1e-9)
        np.testing.assert_allclose(det["scores"].numpy(), s.numpy(), rtol=1e-12)
        np.testing.assert_array_equal(det["labels"].numpy(), lab.numpy())


def test_topk_candidates_per_class_before_nms():
    boxes, scores = _random_case(30, 3)
    out = filter_detections(sd.tensor(boxes), sd.tensor(scores), (40, 40), 0.1, 1.0, 100,
                            topk_candidates=4)
    # nms_thresh 1.0 suppresses nothing: exactly the 4 best of each class remain
    for c in range(3):
        sel = out["labels"].numpy() == c + 1
        best = np.sort(scores[:, c][scores[:, c] > 0.1])[::-1][:4]
        np.testing.assert_allclose(np.sort(out["scores"].numpy()[sel])[::-1], best)
