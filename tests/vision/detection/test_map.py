"""COCO mAP against pycocotools' COCOeval on random detections (crowds, several areas,
more than 100 detections per image), plus VOC AP and the error messages."""
import contextlib
import io

import numpy as np
import pytest

import shendu as sd
from shendu.metrics import MeanAveragePrecision, voc_ap

rng = np.random.default_rng(1403)


def random_case(n_images=12, n_classes=4, size=200):
    preds, targets = [], []
    for i in range(n_images):
        g = rng.integers(0, 9)
        xy = rng.uniform(0, size, (g, 2))
        wh = rng.uniform(4, 120, (g, 2))
        gt = np.concatenate([xy, xy + wh], 1)
        glab = rng.integers(1, n_classes + 1, g)
        crowd = (rng.uniform(size=g) < 0.1).astype(np.int64)
        # detections: jittered truths (good and bad) plus random boxes
        d_good = gt[rng.integers(0, max(g, 1), g * 2)] if g else np.zeros((0, 4))
        d_good = d_good + rng.normal(0, rng.choice([1.0, 8.0]), d_good.shape)
        d_good[:, 2:] = np.maximum(d_good[:, 2:], d_good[:, :2] + 1)
        n_rand = rng.integers(0, 130 if i == 0 else 8)
        xy = rng.uniform(0, size, (n_rand, 2))
        d = np.concatenate([d_good, np.concatenate([xy, xy + rng.uniform(2, 90, (n_rand, 2))],
                                                   1)])
        dlab = np.concatenate([glab[rng.integers(0, max(g, 1), len(d_good))] if g else
                               np.zeros(0, int), rng.integers(1, n_classes + 1, n_rand)])
        if g:
            dlab[rng.uniform(size=len(dlab)) < 0.15] = rng.integers(1, n_classes + 1)
        scores = np.round(rng.uniform(0, 1, len(d)), 2)  # ties happen
        preds.append({"boxes": d, "scores": scores, "labels": dlab})
        targets.append({"boxes": gt, "labels": glab, "iscrowd": crowd})
    return preds, targets


def coco_eval(preds, targets, n_classes):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval
    gt = {"images": [{"id": i + 1} for i in range(len(targets))],
          "categories": [{"id": c} for c in range(1, n_classes + 1)], "annotations": []}
    for i, t in enumerate(targets):
        for b, lab, cr in zip(t["boxes"], t["labels"], t["iscrowd"]):
            w, h = b[2] - b[0], b[3] - b[1]
            gt["annotations"].append({"id": len(gt["annotations"]) + 1, "image_id": i + 1,
                                      "category_id": int(lab), "bbox": [*b[:2], w, h],
                                      "area": w * h, "iscrowd": int(cr)})
    dets = [{"image_id": i + 1, "category_id": int(lab), "score": float(s),
             "bbox": [b[0], b[1], b[2] - b[0], b[3] - b[1]]}
            for i, p in enumerate(preds)
            for b, s, lab in zip(p["boxes"], p["scores"], p["labels"])]
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = gt
        coco.createIndex()
        ev = COCOeval(coco, coco.loadRes(dets), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev


def test_map_equals_pycocotools():
    pytest.importorskip("pycocotools", reason="pycocotools is not installed: mAP was "
                        "checked against hand-made cases only")
    preds, targets = random_case()
    ev = coco_eval(preds, targets, 4)
    m = MeanAveragePrecision(class_metrics=True)
    to_sd = lambda d: {k: sd.tensor(v) for k, v in d.items()}  # noqa: E731
    m.update([to_sd(p) for p in preds[:5]], [to_sd(t) for t in targets[:5]])
    m.update(preds[5:], targets[5:])  # NumPy arrays work too
    r = m.compute()
    names = ["map", "map_50", "map_75", "map_small", "map_medium", "map_large", "mar_1",
             "mar_10", "mar_100", "mar_small", "mar_medium", "mar_large"]
    np.testing.assert_allclose([r[n] for n in names], ev.stats, rtol=0, atol=1e-12)
    np.testing.assert_allclose(m.precision, ev.eval["precision"], atol=1e-12)
    per_class = ev.eval["precision"][:, :, :, 0, -1]
    np.testing.assert_allclose(r["map_per_class"],
                               [per_class[:, :, k][per_class[:, :, k] > -1].mean()
                                for k in range(4)], atol=1e-12)
    assert r["classes"].tolist() == [1, 2, 3, 4] and len(r["mar_100_per_class"]) == 4


def test_hand_made_cases():
    m = MeanAveragePrecision(iou_thresholds=[0.5])
    gt = {"boxes": [[0, 0, 10, 10], [20, 20, 30, 30]], "labels": [1, 1]}
    # one hit (score 0.9), one false positive ranked first (0.95), one miss
    m.update([{"boxes": [[0, 0, 10, 10], [50, 50, 60, 60]], "scores": [0.9, 0.95],
               "labels": [1, 1]}], [gt])
    r = m.compute()
    # precision 0, 0.5 at recall 0.5; envelope 0.5 for recall <= 0.5 (51 points of 101)
    assert r["map"] == pytest.approx(0.5 * 51 / 101)
    assert r["mar_100"] == 0.5 and r["mar_1"] == 0.0
    m.reset()
    m.update([{"boxes": np.zeros((0, 4)), "scores": [], "labels": []}],
             [{"boxes": np.zeros((0, 4)), "labels": []}])
    assert m.compute()["map"] == -1.0  # no ground truth: COCO's -1


def test_voc_ap_definitions():
    rec, prec = np.array([0.2, 0.4, 0.4, 0.8]), np.array([1.0, 1.0, 0.67, 0.8])
    assert voc_ap(rec, prec) == pytest.approx(0.4 * 1.0 + 0.4 * 0.8)
    pts = [1.0] * 5 + [0.8] * 4 + [0.0] * 2  # max precision at recall >= 0, 0.1, ..., 1
    assert voc_ap(rec, prec, use_07_metric=True) == pytest.approx(np.mean(pts))


def test_errors_name_the_image():
    m = MeanAveragePrecision()
    good = {"boxes": [[0, 0, 1, 1]], "scores": [0.5], "labels": [1]}
    tgt = {"boxes": [[0, 0, 1, 1]], "labels": [1]}
    with pytest.raises(ValueError, match="2 predictions but 1 targets"):
        m.update([good, good], [tgt])
    with pytest.raises(ValueError, match=r"image 1 target, box 0 \[5.0, 0.0, 1.0, 1.0\]"):
        m.update([good, good], [tgt, {"boxes": [[5, 0, 1, 1]], "labels": [1]}])
    with pytest.raises(ValueError, match="image 0 has a NaN score at index 1"):
        m.update([{"boxes": [[0, 0, 1, 1]] * 2, "scores": [0.5, np.nan], "labels": [1, 1]}],
                 [tgt])
    with pytest.raises(ValueError, match="image 0 has 1 boxes, 2 scores"):
        m.update([{"boxes": [[0, 0, 1, 1]], "scores": [0.5, 0.1], "labels": [1]}], [tgt])


def test_pr_curve_plot(tmp_path):
    pytest.importorskip("matplotlib", reason="matplotlib is not installed")
    preds, targets = random_case(4)
    m = MeanAveragePrecision()
    m.update(preds, targets)
    m.compute()
    m.plot_pr_curves(tmp_path / "pr.png")
    assert (tmp_path / "pr.png").stat().st_size > 1000
