"""FCN and U-Net: shapes, the bilinear initialisation of the transposed convolutions,
training on tiny canvases; IoU / pixel-accuracy metrics against scikit-learn."""
import numpy as np
import pytest

import shendu as sd
from shendu.metrics import JaccardIndex, mean_iou, pixel_accuracy
from shendu.nn import functional as F
from shendu.vision.datasets import CanvasSegmentation
from shendu.vision.segmentation import FCN, UNet, bilinear_kernel, bilinear_upsampler

rng = np.random.default_rng(1404)


def bilinear_x2(img):
    """Bilinear 2x upsampling with half-pixel centres, edges clamped (the textbook
    definition; PyTorch's ``interpolate(..., align_corners=False)``)."""
    h, w = img.shape
    def coords(n):
        src = (np.arange(2 * n) + 0.5) / 2 - 0.5
        lo = np.floor(src).astype(int)
        f = src - lo
        return lo.clip(0, n - 1), (lo + 1).clip(0, n - 1), f
    y0, y1, fy = coords(h)
    x0, x1, fx = coords(w)
    rows = img[y0] * (1 - fy)[:, None] + img[y1] * fy[:, None]
    return rows[:, x0] * (1 - fx) + rows[:, x1] * fx


def test_transposed_conv_starts_as_bilinear_upsampling():
    x = rng.normal(size=(1, 3, 6, 7))
    up = bilinear_upsampler(3, 2).to(sd.float64)
    out = up(sd.tensor(x)).detach().numpy()
    assert out.shape == (1, 3, 12, 14)
    for c in range(3):  # interior: away from the zero padding at the border
        np.testing.assert_allclose(out[0, c, 1:-1, 1:-1], bilinear_x2(x[0, c])[1:-1, 1:-1],
                                   atol=1e-12)
    w = bilinear_kernel(2, 3, 4)
    assert w.shape == (2, 3, 4, 4) and w[0, 1].sum() == 0 and w[1, 1].sum() == 4.0


def test_models_shapes_and_errors():
    x = sd.zeros(2, 1, 32, 32)
    assert tuple(FCN(5, widths=(4, 4, 8, 8, 8))(x).shape) == (2, 5, 32, 32)
    assert tuple(UNet(1, 5, widths=(4, 8, 8))(x).shape) == (2, 5, 32, 32)
    with pytest.raises(ValueError, match=r"UNet: input size \(30, 30\) must be divisible by 4"):
        UNet(1, 5, widths=(4, 8, 8))(sd.zeros(2, 1, 30, 30))


def test_unet_deep_scores_add_the_upsampled_coarse_scores():
    sd.manual_seed(3)
    deep = UNet(1, 3, widths=(4, 8, 16), deep_scores=True).to(sd.float64).eval()
    plain = UNet(1, 3, widths=(4, 8, 16)).to(sd.float64).eval()
    plain.load_state_dict({k: v for k, v in deep.state_dict().items()
                           if not k.startswith("coarse_heads")})
    bottom_head, middle_head = deep.coarse_heads
    assert (bottom_head.in_channels, middle_head.in_channels) == (16, 8)
    x = sd.tensor(rng.normal(size=(2, 1, 16, 16)))
    bottom = []
    deep.down[-1].register_forward_hook(lambda m, i, out: bottom.append(out.detach().numpy()))
    with sd.no_grad():
        middle_head.weight.zero_()
        middle_head.bias.copy_(sd.tensor([1.0, -2.0, 0.5], dtype=sd.float64))
        out, ref = deep(x).numpy(), plain(x).numpy()
    # the bottom level's 1x1 scores, repeated 4x4 (nearest, twice), plus the middle's bias
    w, b = bottom_head.weight.detach().numpy()[:, :, 0, 0], bottom_head.bias.detach().numpy()
    coarse = np.einsum("oc,nchw->nohw", w, bottom[0]) + b[:, None, None]
    coarse = coarse.repeat(4, 2).repeat(4, 3) + np.array([1.0, -2.0, 0.5])[:, None, None]
    np.testing.assert_allclose(out - ref, coarse, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("arch", ["fcn", "unet"])
def test_training_on_tiny_canvases(arch):
    sd.manual_seed(0)
    ds = CanvasSegmentation("train", num_images=4, sources=("digits",), canvas_size=32,
                            objects=(1, 2), scale=(12, 18), clutter=0, seed=5)
    x, y = ds.arrays()
    # two classes: background and ink, so that a few steps suffice
    y = (y > 0).astype(np.int64)
    model = FCN(2, widths=(8, 16, 16, 16, 16)) if arch == "fcn" else UNet(1, 2, (8, 16))
    opt = sd.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(60):
        loss = F.cross_entropy(model(sd.tensor(x)), sd.tensor(y))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss))
    assert np.mean(losses[-3:]) < 0.5 * losses[0]
    model.eval()
    with sd.no_grad():
        pred = model(sd.tensor(x)).numpy().argmax(1)
    assert mean_iou(pred, y, 2) > 0.6


def test_iou_metrics_match_scikit_learn():
    skm = pytest.importorskip("sklearn.metrics", reason="scikit-learn is not installed")
    pred = rng.integers(0, 4, (3, 9, 9))
    target = rng.integers(0, 4, (3, 9, 9))
    target[target == 3] = 2  # class 3 only predicted, never true
    m = JaccardIndex(num_classes=5)
    m.update(pred[:2], target[:2])
    m.update(sd.tensor(pred[2:]), sd.tensor(target[2:]))
    per = skm.jaccard_score(target.ravel(), pred.ravel(), labels=[0, 1, 2, 3], average=None)
    np.testing.assert_allclose(m.per_class()[:4], per)
    assert np.isnan(m.per_class()[4])  # absent everywhere: left out of the mean
    assert m.compute() == pytest.approx(per.mean())
    assert m.pixel_accuracy() == pytest.approx(skm.accuracy_score(target.ravel(),
                                                                  pred.ravel()))
    assert pixel_accuracy(pred, target) == pytest.approx(m.pixel_accuracy())
    scores = rng.normal(size=(3, 5, 9, 9))
    assert mean_iou(sd.tensor(scores), target, 5) == pytest.approx(
        mean_iou(scores.argmax(1), target, 5))
    ignored = target.copy()
    ignored[0] = 255
    m = JaccardIndex(5, ignore_index=255)
    m.update(pred, ignored)
    assert m.confmat.sum() == 2 * 81
    with pytest.raises(ValueError, match="target has class 7, outside"):
        JaccardIndex(5).update(pred, np.full_like(target, 7))
    with pytest.raises(ValueError, match="same shape"):
        JaccardIndex(5).update(pred[:, :3], target)
