"""SSD and Faster R-CNN: training lowers the loss and the model then finds the boxes of a
few tiny canvases; anchor labelling, hard negative mining and the input errors."""
import time

import numpy as np
import pytest

import shendu as sd
from shendu.metrics import MeanAveragePrecision
from shendu.vision.datasets import CanvasDetection, detection_collate
from shendu.vision.detection import (
    SSD,
    AnchorGenerator,
    BackboneWithFPN,
    CanvasBackbone,
    FasterRCNN,
    FastRCNNPredictor,
    RegionProposalNetwork,
    RoIHeads,
    RPNHead,
    SSDHead,
    TwoMLPHead,
    fasterrcnn_canvas,
    ssd_canvas,
)


def tiny_batch(n=2):
    ds = CanvasDetection("train", num_images=n, sources=("digits",), canvas_size=48,
                         objects=(1, 2), scale=(16, 24), clutter=0, seed=3)
    return ds, detection_collate([ds[i] for i in range(n)])


def overfit(model, steps, lr):
    _, (images, targets) = tiny_batch()
    opt = sd.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        model.train()
        loss = sum(model(images, targets).values())
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss))
    model.eval()
    with sd.no_grad():
        preds = model(images)
    m = MeanAveragePrecision(iou_thresholds=[0.5])
    m.update(preds, targets)
    return losses, m.compute()["map"]


@pytest.mark.parametrize("arch", ["ssd", "fasterrcnn"])
def test_training_lowers_the_loss_and_finds_the_boxes(arch):
    sd.manual_seed(0)
    t0 = time.perf_counter()
    if arch == "ssd":
        model = ssd_canvas(11, widths=(8, 16, 32, 32, 32))
        losses, map50 = overfit(model, 60, 5e-3)
    else:
        model = fasterrcnn_canvas(11, widths=(8, 16, 32), representation_size=64)
        losses, map50 = overfit(model, 60, 3e-3)
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:3]), losses
    assert map50 >= 0.75, (map50, losses[-5:])
    assert time.perf_counter() - t0 < 120  # seconds on a quiet CPU; generous when shared


def test_ssd_matching_keeps_each_truth_and_mines_negatives():
    model = SSD(CanvasBackbone(1, (8, 8), return_stages=(1,)),
                AnchorGenerator(((8,),), ((1.0,),)), num_classes=3)
    anchors = np.array([[0, 0, 8, 8], [8, 0, 16, 8], [0, 8, 8, 16], [20, 20, 28, 28]], float)
    gt = np.array([[0, 0, 8, 7], [7, 7, 12, 12]], float)  # the 2nd overlaps nothing > 0.5
    matches = model.match(gt, anchors)
    assert matches[0] == 0 and matches[3] == -1
    assert (matches == 1).sum() == 1  # its best anchor, forced
    # hard negatives: 3 per positive, chosen by loss
    n_anchors = 4 * 4  # a 4x4 map from a 16x16 image, one anchor per cell
    head = {"bbox_regression": sd.zeros(1, n_anchors, 4),
            "cls_logits": sd.tensor(np.random.default_rng(0).normal(size=(1, n_anchors, 3)),
                                    dtype=sd.float32, requires_grad=True)}
    grid = np.asarray(model.anchor_generator(sd.zeros(1, 1, 16, 16),
                                             [sd.zeros(1, 8, 4, 4)])[0])
    truths = [(grid[[5]] + 0.0, np.array([2]))]
    loss = model.compute_loss(truths, head, grid)
    loss["classification"].backward()
    used = np.flatnonzero(np.abs(head["cls_logits"].grad.numpy()).sum(-1)[0] > 0)
    assert len(used) == 4 and 5 in used  # the positive and its 3 hardest negatives


def test_components_shapes():
    feats = [sd.zeros(2, 8, 6, 6), sd.zeros(2, 16, 3, 3)]
    out = SSDHead([8, 16], [2, 3], 5)(feats)
    assert tuple(out["cls_logits"].shape) == (2, 6 * 6 * 2 + 3 * 3 * 3, 5)
    assert tuple(out["bbox_regression"].shape) == (2, 6 * 6 * 2 + 3 * 3 * 3, 4)
    logits, deltas = RPNHead(8, 3)([feats[0]])
    assert tuple(logits[0].shape) == (2, 3, 6, 6) and tuple(deltas[0].shape) == (2, 12, 6, 6)
    rpn = RegionProposalNetwork(AnchorGenerator(((8,),), ((1.0,),)), RPNHead(8, 1),
                                post_nms_top_n={"training": 5, "testing": 4}).eval()
    props, losses = rpn(sd.zeros(2, 1, 48, 48), [feats[0]])
    assert len(props) == 2 and props[0].shape[0] <= 4 and losses == {}
    heads = RoIHeads(TwoMLPHead(8 * 49, 16), FastRCNNPredictor(16, 4), spatial_scale=1 / 8)
    assert tuple(heads.box_head(sd.zeros(3, 8, 7, 7)).shape) == (3, 16)
    assert isinstance(fasterrcnn_canvas(4), FasterRCNN)
    trunk = BackboneWithFPN(CanvasBackbone(1, (4, 8, 16), return_stages=(1, 2)), 6)
    assert [tuple(f.shape) for f in trunk(sd.zeros(2, 1, 32, 32))] == [(2, 6, 8, 8), (2, 6, 4, 4)]
    assert trunk.out_channels == [6, 6]
    with pytest.raises(ValueError, match=r"BackboneWithFPN: return_levels \(2,\) must name "
                                         r"levels 0\.\.1"):
        BackboneWithFPN(CanvasBackbone(1, (4, 8, 16), return_stages=(1, 2)), 6, (2,))


@pytest.mark.parametrize("build", [lambda: ssd_canvas(4), lambda: fasterrcnn_canvas(4)])
def test_bad_targets_are_named(build):
    model = build().train()
    images = sd.zeros(2, 1, 64, 64)
    ok = {"boxes": sd.tensor([[1., 1., 20., 20.]]), "labels": sd.tensor([1])}
    with pytest.raises(ValueError, match="2 images but 1 targets"):
        model(images, [ok])
    bad = {"boxes": sd.tensor([[30., 1., 20., 20.]]), "labels": sd.tensor([1])}
    with pytest.raises(ValueError, match=r"image 1, box 0 \[30.0, 1.0, 20.0, 20.0\]"):
        model(images, [ok, bad])
    bad = {"boxes": sd.tensor([[1., 1., 20., 20.]]), "labels": sd.tensor([4])}
    with pytest.raises(ValueError, match="image 1 has label 4, outside the classes 1..3"):
        model(images, [ok, bad])
    with pytest.raises(ValueError, match="targets are needed"):
        model(images)
    with pytest.raises(ValueError, match=r"images must be \(N, C, H, W\)"):
        model(sd.zeros(1, 64, 64), [ok])


@pytest.mark.torchvision
def test_ssd_matching_and_loss_match_torchvision():
    pytest.importorskip("torchvision", reason="torchvision is not installed: the SSD loss "
                        "was checked on hand-made cases only")
    import types

    import torch
    from torchvision.models.detection import _utils as tv_utils
    from torchvision.models.detection.ssd import SSD as TvSSD
    from torchvision.ops import box_iou as tv_box_iou

    rng = np.random.default_rng(1405)
    model = ssd_canvas(5, canvas_size=64)
    images = sd.zeros(2, 1, 64, 64)
    feats = model.backbone(images)
    anchors = np.asarray(model.anchor_generator(images, feats)[0], np.float64)
    truths, tv_targets, matched = [], [], []
    for _ in range(2):
        xy = rng.uniform(0, 40, (3, 2))
        gt = np.concatenate([xy, xy + rng.uniform(6, 24, (3, 2))], 1)
        lab = rng.integers(1, 5, 3)
        truths.append((gt, lab))
        tv_targets.append({"boxes": torch.tensor(gt), "labels": torch.tensor(lab)})
        ours = model.match(gt, anchors)
        theirs = tv_utils.SSDMatcher(model.iou_thresh)(  # 0.4 in the canvas SSD
            tv_box_iou(torch.tensor(gt), torch.tensor(anchors)))
        np.testing.assert_array_equal(ours, theirs.numpy())
        matched.append(theirs)
    a = len(anchors)
    reg, logits = rng.normal(size=(2, a, 4)), rng.normal(size=(2, a, 5))
    ours = model.compute_loss(truths, {"bbox_regression": sd.tensor(reg),
                                       "cls_logits": sd.tensor(logits)}, anchors)
    fake = types.SimpleNamespace(box_coder=tv_utils.BoxCoder((10.0, 10.0, 5.0, 5.0)),
                                 neg_to_pos_ratio=3)
    theirs = TvSSD.compute_loss(fake, tv_targets, {"bbox_regression": torch.tensor(reg),
                                                   "cls_logits": torch.tensor(logits)},
                                [torch.tensor(anchors)] * 2, matched)
    np.testing.assert_allclose(float(ours["bbox_regression"]),
                               float(theirs["bbox_regression"]), rtol=1e-10)
    np.testing.assert_allclose(float(ours["classification"]),
                               float(theirs["classification"]), rtol=1e-10)
