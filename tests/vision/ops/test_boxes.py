"""Box arithmetic and IoU losses against loop references written from the definitions
(torchvision's formulas: no +1 in areas, eps only where torchvision adds it)."""
import math

import numpy as np
import pytest
from op_helper import check_op

import shendu as sd
from shendu.vision import ops

rng = np.random.default_rng(14)


def rand_boxes(n, lo=0.0, hi=10.0):
    xy = rng.uniform(lo, hi, (n, 2))
    wh = rng.uniform(0.5, 5.0, (n, 2))
    return np.concatenate([xy, xy + wh], 1)


# -------------------------------------------------------------- loop references
def ref_area(b):
    return (b[2] - b[0]) * (b[3] - b[1])


def ref_inter(a, b):
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    return max(w, 0.0) * max(h, 0.0)


def ref_hull(a, b):
    return min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])


def ref_pairwise(kind, b1, b2, eps=1e-7):
    out = np.zeros((len(b1), len(b2)))
    for i, a in enumerate(b1):
        for j, b in enumerate(b2):
            inter = ref_inter(a, b)
            union = ref_area(a) + ref_area(b) - inter
            iou = inter / union
            hx1, hy1, hx2, hy2 = ref_hull(a, b)
            if kind == "iou":
                out[i, j] = iou
            elif kind == "giou":
                c = (hx2 - hx1) * (hy2 - hy1)
                out[i, j] = iou - (c - union) / c
            else:
                d2 = ((a[0] + a[2]) / 2 - (b[0] + b[2]) / 2) ** 2 + \
                     ((a[1] + a[3]) / 2 - (b[1] + b[3]) / 2) ** 2
                c2 = (hx2 - hx1) ** 2 + (hy2 - hy1) ** 2 + eps
                out[i, j] = iou - d2 / c2
                if kind == "ciou":
                    v = 4 / math.pi ** 2 * (math.atan((a[2] - a[0]) / (a[3] - a[1]))
                                            - math.atan((b[2] - b[0]) / (b[3] - b[1]))) ** 2
                    out[i, j] -= v / (1 - iou + v + eps) * v
    return out


PAIRWISE = {"iou": ops.box_iou, "giou": ops.generalized_box_iou,
            "diou": ops.distance_box_iou, "ciou": ops.complete_box_iou}


@pytest.mark.parametrize("kind", list(PAIRWISE))
def test_pairwise_iou_family_matches_the_definition(kind):
    b1, b2 = rand_boxes(5), rand_boxes(4)
    b1[0] = b2[0]  # identical boxes: IoU 1
    b1[1] = [20, 20, 21, 21]  # disjoint from everything
    got = PAIRWISE[kind](sd.tensor(b1), sd.tensor(b2)).numpy()
    np.testing.assert_allclose(got, ref_pairwise(kind, b1, b2), rtol=1e-12, atol=1e-12)
    assert got.shape == (5, 4)


@pytest.mark.parametrize("kind", ["iou", "giou", "diou"])
def test_pairwise_iou_gradients(kind):
    b1, b2 = rand_boxes(3), rand_boxes(2)
    check_op(PAIRWISE[kind], [b1, b2], lambda a, b: ref_pairwise(kind, a, b))


def test_complete_iou_gradient_treats_alpha_as_constant():
    b1, b2 = rand_boxes(3), rand_boxes(2)
    # the gradient of diou - stop_grad(alpha) * v, alpha frozen at its value
    iou = ref_pairwise("iou", b1, b2)
    w1 = (b1[:, 2] - b1[:, 0])[:, None]
    h1 = (b1[:, 3] - b1[:, 1])[:, None]
    v = 4 / math.pi ** 2 * (np.arctan(w1 / h1) - np.arctan((b2[:, 2] - b2[:, 0])
                                                           / (b2[:, 3] - b2[:, 1]))) ** 2
    alpha = sd.tensor(v / (1 - iou + v + 1e-7))

    def frozen(a, b):
        va = ops.distance_box_iou(a, b) - ops.complete_box_iou(a, b)  # alpha * v
        return va

    x1, x2 = sd.tensor(b1, requires_grad=True), sd.tensor(b2, requires_grad=True)
    frozen(x1, x2).sum().backward()
    y1, y2 = sd.tensor(b1, requires_grad=True), sd.tensor(b2, requires_grad=True)
    wa, ha = y1[:, None, 2] - y1[:, None, 0], y1[:, None, 3] - y1[:, None, 1]
    wb, hb = y2[:, 2] - y2[:, 0], y2[:, 3] - y2[:, 1]
    (alpha * (4 / math.pi ** 2) * (sd.atan(wa / ha) - sd.atan(wb / hb)) ** 2).sum().backward()
    np.testing.assert_allclose(x1.grad.numpy(), y1.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(x2.grad.numpy(), y2.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_hand_computed_iou_values():
    a = sd.tensor([[0.0, 0.0, 2.0, 2.0]])
    b = sd.tensor([[1.0, 1.0, 3.0, 3.0], [2.0, 0.0, 4.0, 2.0], [0.0, 0.0, 1.0, 1.0]])
    np.testing.assert_allclose(ops.box_iou(a, b).numpy(), [[1 / 7, 0.0, 0.25]])
    # touching boxes: no overlap, hull 4x2 = 8, union 8 -> GIoU 0
    np.testing.assert_allclose(ops.generalized_box_iou(a, b).numpy(), [[1 / 7 - 2 / 9, 0.0, 0.25]])
    assert ops.box_area(sd.tensor([[1.0, 1.0, 2.0, 2.0]])).item() == 1.0  # no +1


def test_empty_and_integer_boxes():
    e = sd.zeros(0, 4)
    assert ops.box_iou(e, sd.tensor(rand_boxes(3))).shape == (0, 3)
    assert ops.generalized_box_iou(sd.tensor(rand_boxes(2)), e).shape == (2, 0)
    assert ops.box_area(e).shape == (0,)
    got = ops.box_iou(sd.tensor([[0, 0, 2, 2]]), sd.tensor([[0, 0, 2, 1]]))
    assert got.is_floating_point() and got.item() == 0.5


@pytest.mark.parametrize("src", ["xyxy", "xywh", "cxcywh"])
@pytest.mark.parametrize("dst", ["xyxy", "xywh", "cxcywh"])
def test_box_convert_against_the_definitions(src, dst):
    xyxy = rand_boxes(6)

    def from_xyxy(b, fmt):
        x1, y1, x2, y2 = b.T
        return {"xyxy": b, "xywh": np.stack([x1, y1, x2 - x1, y2 - y1], 1),
                "cxcywh": np.stack([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1], 1)}[fmt]

    check_op(lambda b: ops.box_convert(b, src, dst), [from_xyxy(xyxy, src)],
             lambda b: from_xyxy(xyxy, dst), atol=1e-12, rtol=1e-12)


def test_box_convert_hand_values_and_errors():
    b = sd.tensor([[1.0, 2.0, 3.0, 6.0]])
    np.testing.assert_array_equal(ops.box_convert(b, "xyxy", "xywh").numpy(), [[1, 2, 2, 4]])
    np.testing.assert_array_equal(ops.box_convert(b, "cxcywh", "xyxy").numpy(),
                                  [[-0.5, -1, 2.5, 5]])
    same = ops.box_convert(b, "xyxy", "xyxy")
    assert same is not b and np.array_equal(same.numpy(), b.numpy())
    with pytest.raises(ValueError, match="box_convert.*'xyxy'.*'yxyx'"):
        ops.box_convert(b, "xyxy", "yxyx")
    with pytest.raises(ValueError, match=r"box_convert.*\(\.\.\., 4\).*\(2, 3\)"):
        ops.box_convert(sd.zeros(2, 3), "xyxy", "xywh")


def test_clip_boxes_to_image():
    b = np.array([[-1.0, 2.0, 9.0, 12.0], [3.0, -4.0, 5.0, 5.0]])
    want = b.copy()
    want[:, 0::2] = np.clip(b[:, 0::2], 0, 8)
    want[:, 1::2] = np.clip(b[:, 1::2], 0, 10)
    got = ops.clip_boxes_to_image(sd.tensor(b), (10, 8))
    np.testing.assert_array_equal(got.numpy(), want)
    batched = ops.clip_boxes_to_image(sd.tensor(np.stack([b, b])), (10, 8))
    assert batched.shape == (2, 2, 4)
    np.testing.assert_array_equal(batched.numpy()[1], want)
    with pytest.raises(ValueError, match="clip_boxes_to_image.*height, width"):
        ops.clip_boxes_to_image(sd.tensor(b), (10,))


def test_remove_small_boxes():
    b = sd.tensor([[0.0, 0.0, 1.0, 5.0], [0.0, 0.0, 3.0, 3.0], [0.0, 0.0, 2.0, 2.0],
                   [1.0, 1.0, 0.5, 4.0]])
    keep = ops.remove_small_boxes(b, 2.0)
    assert keep.dtype == sd.int64
    np.testing.assert_array_equal(keep.numpy(), [1, 2])  # >= min_size is kept
    assert ops.remove_small_boxes(sd.zeros(0, 4), 1.0).shape == (0,)


def test_pairwise_errors_name_the_op_and_shape():
    with pytest.raises(ValueError, match=r"box_iou: boxes2 must have shape \(N, 4\), got \(3,\)"):
        ops.box_iou(sd.zeros(2, 4), sd.zeros(3))
    with pytest.raises(ValueError, match=r"box_area.*\(2, 5\)"):
        ops.box_area(sd.zeros(2, 5))


# -------------------------------------------------------------- losses
def ref_loss(kind, b1, b2, eps=1e-7):
    out = np.zeros(len(b1))
    for i, (a, b) in enumerate(zip(b1, b2)):
        inter = ref_inter(a, b)
        union = ref_area(a) + ref_area(b) - inter
        iou = inter / (union + eps)
        hx1, hy1, hx2, hy2 = ref_hull(a, b)
        if kind == "giou":
            c = (hx2 - hx1) * (hy2 - hy1)
            out[i] = 1 - iou + (c - union) / (c + eps)
            continue
        d2 = ((a[0] + a[2]) / 2 - (b[0] + b[2]) / 2) ** 2 + \
             ((a[1] + a[3]) / 2 - (b[1] + b[3]) / 2) ** 2
        out[i] = 1 - iou + d2 / ((hx2 - hx1) ** 2 + (hy2 - hy1) ** 2 + eps)
        if kind == "ciou":
            v = 4 / math.pi ** 2 * (math.atan((b[2] - b[0]) / (b[3] - b[1]))
                                    - math.atan((a[2] - a[0]) / (a[3] - a[1]))) ** 2
            out[i] += v / (1 - iou + v + eps) * v
    return out


LOSSES = {"giou": ops.generalized_box_iou_loss, "diou": ops.distance_box_iou_loss,
          "ciou": ops.complete_box_iou_loss}


@pytest.mark.parametrize("kind", list(LOSSES))
def test_iou_losses_match_the_definition(kind):
    b1, b2 = rand_boxes(6), rand_boxes(6)
    b2[0] = b1[0]
    b2[1] = b1[1] + 20  # disjoint
    fn = LOSSES[kind]
    want = ref_loss(kind, b1, b2)
    np.testing.assert_allclose(fn(sd.tensor(b1), sd.tensor(b2)).numpy(), want, rtol=1e-12)
    assert abs(fn(sd.tensor(b1), sd.tensor(b2), reduction="mean").item() - want.mean()) < 1e-12
    assert abs(fn(sd.tensor(b1), sd.tensor(b2), reduction="sum").item() - want.sum()) < 1e-12
    empty = fn(sd.zeros(0, 4), sd.zeros(0, 4), reduction="mean")
    assert empty.shape == () and empty.item() == 0.0
    with pytest.raises(ValueError, match="invalid reduction 'avg'"):
        fn(sd.tensor(b1), sd.tensor(b2), reduction="avg")
    with pytest.raises(ValueError, match=r"\(6, 4\) and boxes2 \(5, 4\) must have the same shape"):
        fn(sd.tensor(b1), sd.tensor(b2[:5]))


@pytest.mark.parametrize("kind", ["giou", "diou"])
def test_iou_loss_gradients(kind):
    b1, b2 = rand_boxes(3), rand_boxes(3)
    b2 = (b1 + b2) / 2 + 0.3  # overlapping pairs, so the intersection term is live
    check_op(LOSSES[kind], [b1, b2], lambda a, b: ref_loss(kind, a, b))


@pytest.mark.torchvision
def test_torchvision_agreement():
    tv = pytest.importorskip("torchvision", reason="torchvision is not installed: the "
                             "box ops were checked against loop references only")
    import torch
    b1, b2 = rand_boxes(7), rand_boxes(7)
    for name in ("box_iou", "generalized_box_iou", "distance_box_iou", "complete_box_iou",
                 "generalized_box_iou_loss", "distance_box_iou_loss", "complete_box_iou_loss"):
        got = getattr(ops, name)(sd.tensor(b1), sd.tensor(b2)).numpy()
        want = getattr(tv.ops, name)(torch.tensor(b1), torch.tensor(b2)).numpy()
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6, err_msg=name)
    for src in ("xywh", "cxcywh"):
        np.testing.assert_allclose(ops.box_convert(sd.tensor(b1), src, "xyxy").numpy(),
                                   tv.ops.box_convert(torch.tensor(b1), src, "xyxy").numpy())


def test_complete_iou_loss_gradient_freezes_alpha():
    b1, b2 = rand_boxes(4), rand_boxes(4)
    b2 = (b1 + b2) / 2 + 0.2
    iou = np.array([ref_inter(a, b) / (ref_area(a) + ref_area(b) - ref_inter(a, b) + 1e-7)
                    for a, b in zip(b1, b2)])
    x1, x2 = sd.tensor(b1, requires_grad=True), sd.tensor(b2, requires_grad=True)
    ops.complete_box_iou_loss(x1, x2, reduction="sum").backward()
    y1, y2 = sd.tensor(b1, requires_grad=True), sd.tensor(b2, requires_grad=True)
    v = (4 / math.pi ** 2) * (sd.atan((y2[:, 2] - y2[:, 0]) / (y2[:, 3] - y2[:, 1]))
                              - sd.atan((y1[:, 2] - y1[:, 0]) / (y1[:, 3] - y1[:, 1]))) ** 2
    alpha = sd.tensor(v.detach().numpy() / (1 - iou + v.detach().numpy() + 1e-7))
    (ops.distance_box_iou_loss(y1, y2, reduction="sum") + (alpha * v).sum()).backward()
    np.testing.assert_allclose(x1.grad.numpy(), y1.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(x2.grad.numpy(), y2.grad.numpy(), rtol=1e-10, atol=1e-12)
    check_op(lambda a, b: ops.complete_box_iou_loss(a, b), [b1, b2],
             lambda a, b: ref_loss("ciou", a, b), grad=False)
