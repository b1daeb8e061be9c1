"""Drawing utilities: outline pixels and mask blending from their definitions, and the same
pixels as torchvision when it is installed."""
import numpy as np
import pytest

import shendu as sd
from shendu.vision.draw import draw_bounding_boxes, draw_segmentation_masks

rng = np.random.default_rng(1402)


def test_box_outline_pixels_and_fill():
    img = sd.tensor(np.zeros((3, 12, 12), np.uint8))
    out = draw_bounding_boxes(img, sd.tensor([[2., 3., 8.7, 9.]]), colors=[(10, 20, 30)],
                              width=2).numpy()
    ref = np.zeros((12, 12), bool)
    ref[3:10, 2:9] = True
    ref[5:8, 4:7] = False  # a 2-pixel outline inside x 2..8, y 3..9 (coordinates truncated)
    np.testing.assert_array_equal(out[0] == 10, ref)
    assert (out[:, ref].T == [10, 20, 30]).all()
    filled = draw_bounding_boxes(img, sd.tensor([[2., 3., 8., 9.]]), colors="white",
                                 fill=True).numpy()
    assert 0 < filled[0, 6, 5] < 255  # translucent inside


def test_box_drawing_labels_grayscale_float_and_errors():
    gray = sd.tensor(rng.uniform(0, 1, (1, 20, 30)).astype(np.float32))
    out = draw_bounding_boxes(gray, sd.tensor([[1., 1., 25., 15.]]), labels=["cat"])
    assert tuple(out.shape) == (3, 20, 30) and out.dtype == sd.float32
    with pytest.raises(ValueError, match=r"box 1 \[5.0, 5.0, 1.0, 9.0\] has x2 < x1"):
        draw_bounding_boxes(gray, sd.tensor([[0., 0., 1., 1.], [5., 5., 1., 9.]]))
    with pytest.raises(ValueError, match="2 boxes but 1 labels"):
        draw_bounding_boxes(gray, sd.tensor([[0., 0., 1., 1.]] * 2), labels=["a"])
    with pytest.raises(ValueError, match="1 colors for 2 objects"):
        draw_bounding_boxes(gray, sd.tensor([[0., 0., 1., 1.]] * 2), colors=["red"])
    with pytest.warns(UserWarning, match="no boxes"):
        draw_bounding_boxes(gray, sd.zeros(0, 4))


def test_segmentation_masks_blend():
    img = rng.integers(0, 256, (3, 5, 6)).astype(np.uint8)
    masks = rng.uniform(size=(2, 5, 6)) < 0.4
    out = draw_segmentation_masks(sd.tensor(img), sd.tensor(masks), 0.3,
                                  ["red", (0, 0, 255)]).numpy()
    painted = img.astype(np.float64)
    painted[:, masks[0]] = np.array([255, 0, 0])[:, None]
    painted[:, masks[1]] = np.array([0, 0, 255])[:, None]
    painted[:, masks.sum(0) > 1] = 0
    ref = img * 0.7 + painted * 0.3
    assert np.abs(out - ref).max() <= 1  # truncation of float32 sums
    with pytest.raises(ValueError, match="masks must be bool"):
        draw_segmentation_masks(sd.tensor(img), sd.tensor(masks.astype(np.uint8)))
    with pytest.raises(ValueError, match="same|image is"):
        draw_segmentation_masks(sd.tensor(img), sd.tensor(masks[:, :4]))


@pytest.mark.torchvision
def test_same_pixels_as_torchvision():
    pytest.importorskip("torchvision", reason="torchvision is not installed: drawing was "
                        "checked against the definitions only")
    import torch
    from torchvision.utils import draw_bounding_boxes as tv_boxes
    from torchvision.utils import draw_segmentation_masks as tv_masks

    img = rng.integers(0, 256, (3, 40, 50)).astype(np.uint8)
    xy = rng.uniform(0, 30, (5, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(1, 15, (5, 2))], 1)
    labels = [f"c{i}" for i in range(5)]
    for kw in ({}, {"width": 3, "fill": True}, {"labels": labels, "colors": "yellow"}):
        ours = draw_bounding_boxes(sd.tensor(img), sd.tensor(boxes), **kw).numpy()
        theirs = tv_boxes(torch.tensor(img), torch.tensor(boxes), **kw).numpy()
        np.testing.assert_array_equal(ours, theirs)
    masks = rng.uniform(size=(3, 40, 50)) < 0.3
    for image in (img, (img / 255).astype(np.float32)):
        ours = draw_segmentation_masks(sd.tensor(image), sd.tensor(masks), 0.6).numpy()
        theirs = tv_masks(torch.tensor(image), torch.tensor(masks), 0.6).numpy()
        np.testing.assert_allclose(ours, theirs, atol=1e-6)
