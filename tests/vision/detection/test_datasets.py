"""Detection datasets: the generated canvases (boxes tight around the ink, masks inside
their boxes, reproducible, disjoint sources per split) and the COCO / VOC readers on small
files the tests write."""
import json

import numpy as np
import pytest

import shendu as sd
from shendu.data.datasets import load_digits
from shendu.vision.datasets import (
    CanvasDetection,
    CanvasSegmentation,
    CocoDetection,
    VOCDetection,
    detection_collate,
    load_coco_annotations,
    parse_voc_xml,
)


def small(split="train", **kw):
    kw = {"num_images": 6, "sources": ("digits",), "canvas_size": 64, **kw}
    return CanvasDetection(split, **kw)


def test_canvas_targets_are_consistent_and_reproducible():
    ds = small(objects=(2, 4))
    assert ds.num_classes == 11 and len(ds) == 6
    for i in range(len(ds)):
        image, t = ds[i]
        assert tuple(image.shape) == (1, 64, 64) and image.dtype == sd.float32
        boxes, labels, masks = t["boxes"].numpy(), t["labels"].numpy(), t["masks"].numpy()
        assert 1 <= len(boxes) <= 4 and labels.min() >= 1 and labels.max() <= 10
        assert (boxes[:, 2] > boxes[:, 0]).all() and (boxes[:, 3] > boxes[:, 1]).all()
        assert boxes.min() >= 0 and boxes.max() <= 64
        for b, m in zip(boxes.astype(int), masks):
            ys, xs = np.nonzero(m)
            assert len(ys) and xs.min() >= b[0] and xs.max() < b[2] and ys.min() >= b[1]
            assert ys.max() < b[3]
            assert (image.numpy()[0][m.astype(bool)] > 0.2).all()  # masks cover ink only
        np.testing.assert_allclose(t["area"].numpy(), (boxes[:, 2] - boxes[:, 0]) *
                                   (boxes[:, 3] - boxes[:, 1]))
    again = small(objects=(2, 4))[3]
    np.testing.assert_array_equal(again[0].numpy(), ds[3][0].numpy())
    other = small(objects=(2, 4), seed=1)[3][0].numpy()
    assert not np.array_equal(other, ds[3][0].numpy())


def test_splits_use_disjoint_images():
    train, val, test = (small(s) for s in ("train", "val", "test"))
    digits_train, _ = load_digits("train")
    digits_test, _ = load_digits("test")
    assert len(train._pools[0][0]) == 3600 and len(val._pools[0][0]) == 400
    np.testing.assert_array_equal(val._pools[0][0], digits_train[3600:])
    np.testing.assert_array_equal(test._pools[0][0], digits_test)
    assert not np.array_equal(train[0][0].numpy(), test[0][0].numpy())


def test_fashion_and_digits_share_a_label_space():
    ds = CanvasDetection("test", num_images=4, objects=(4, 4), canvas_size=96)
    assert ds.num_classes == 21 and ds.classes[1] == "T-shirt/top" and ds.classes[11] == \
        "digit 0"
    labels = np.concatenate([ds[i][1]["labels"].numpy() for i in range(4)])
    assert labels.min() >= 1 and labels.max() <= 20


def test_segmentation_masks_and_collate():
    seg = CanvasSegmentation("train", num_images=3, sources=("digits",), canvas_size=64)
    image, mask = seg[1]
    _, target = small()[1]
    np.testing.assert_array_equal(mask.numpy(), seg.semantic_mask(
        {k: np.asarray(v) for k, v in target.items() if k != "image_id"}))
    assert set(np.unique(mask.numpy())) <= set(range(11))
    x, y = seg.arrays()
    assert x.shape == (3, 1, 64, 64) and y.shape == (3, 64, 64)
    images, targets = detection_collate([small()[i] for i in range(3)])
    assert tuple(images.shape) == (3, 1, 64, 64) and len(targets) == 3
    with pytest.raises(ValueError, match="different shapes"):
        detection_collate([small()[0], small(canvas_size=32)[0]])


def test_canvas_argument_errors():
    with pytest.raises(ValueError, match="split must be one of"):
        CanvasDetection("dev")
    with pytest.raises(ValueError, match="unknown source 'mnist'"):
        CanvasDetection(sources=("mnist",))
    with pytest.raises(IndexError, match="index 6 out of range"):
        small()[6]


def _write_coco(tmp_path, bad=None):
    from PIL import Image
    for name, shape in (("a.png", (8, 10)), ("b.png", (6, 6))):
        Image.fromarray(np.full(shape, 128, np.uint8)).save(tmp_path / name)
    anns = [{"id": 1, "image_id": 1, "category_id": 2, "bbox": [1, 1, 3, 4], "area": 12,
             "iscrowd": 0},
            {"id": 2, "image_id": 1, "category_id": 5, "bbox": [0, 2, 5, 2], "iscrowd": 1}]
    if bad:
        anns.append(bad)
    data = {"images": [{"id": 1, "file_name": "a.png", "width": 10, "height": 8},
                       {"id": 2, "file_name": "b.png", "width": 6, "height": 6}],
            "annotations": anns,
            "categories": [{"id": 2, "name": "two"}, {"id": 5, "name": "five"}]}
    (tmp_path / "ann.json").write_text(json.dumps(data))
    return tmp_path / "ann.json"


def test_coco_reader(tmp_path):
    ds = CocoDetection(tmp_path, _write_coco(tmp_path))
    assert len(ds) == 2 and ds.categories == {2: "two", 5: "five"}
    image, t = ds[0]
    assert tuple(image.shape) == (1, 8, 10)
    np.testing.assert_allclose(image.numpy(), 128 / 255)
    np.testing.assert_array_equal(t["boxes"].numpy(), [[1, 1, 4, 5], [0, 2, 5, 4]])
    np.testing.assert_array_equal(t["labels"].numpy(), [2, 5])
    np.testing.assert_array_equal(t["iscrowd"].numpy(), [0, 1])
    np.testing.assert_array_equal(t["area"].numpy(), [12, 10])
    assert tuple(ds[1][1]["boxes"].shape) == (0, 4)
    bad = {"id": 9, "image_id": 2, "category_id": 2, "bbox": [3, 3, -1, 2]}
    with pytest.raises(ValueError, match=r"annotation 9 of image 2 has a negative size"):
        load_coco_annotations(_write_coco(tmp_path, bad))
    bad = {"id": 9, "image_id": 2, "category_id": 7, "bbox": [3, 3, 1, 2]}
    with pytest.raises(ValueError, match=r"annotation 9 of image 2 has category 7"):
        load_coco_annotations(_write_coco(tmp_path, bad))
    bad = {"id": 9, "image_id": 4, "category_id": 2, "bbox": [3, 3, 1, 2]}
    with pytest.raises(ValueError, match=r"refers to image 4"):
        load_coco_annotations(_write_coco(tmp_path, bad))


def _voc_xml(objects):
    objs = "".join(f"<object><name>{n}</name><difficult>{d}</difficult><bndbox>"
                   f"<xmin>{b[0]}</xmin><ymin>{b[1]}</ymin><xmax>{b[2]}</xmax>"
                   f"<ymax>{b[3]}</ymax></bndbox></object>" for n, d, b in objects)
    return (f"<annotation><filename>im1.png</filename><size><width>12</width><height>9"
            f"</height><depth>3</depth></size>{objs}</annotation>")


def test_voc_reader(tmp_path):
    from PIL import Image
    for d in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (tmp_path / d).mkdir(parents=True)
    (tmp_path / "ImageSets/Main/train.txt").write_text("im1\n")
    (tmp_path / "Annotations/im1.xml").write_text(
        _voc_xml([("dog", 0, (2, 3, 8, 9)), ("cat", 1, (1, 1, 4, 4))]))
    Image.fromarray(np.zeros((9, 12, 3), np.uint8)).save(tmp_path / "JPEGImages/im1.png")
    image, t = VOCDetection(tmp_path, "train")[0]
    assert tuple(image.shape) == (3, 9, 12)
    np.testing.assert_array_equal(t["boxes"].numpy(), [[1, 2, 8, 9], [0, 0, 4, 4]])
    np.testing.assert_array_equal(t["labels"].numpy(), [12, 8])  # dog, cat in VOC order
    np.testing.assert_array_equal(t["difficult"].numpy(), [False, True])
    with pytest.raises(ValueError, match="class 'dog', not among the 1 classes"):
        VOCDetection(tmp_path, "train", classes=["cat"])[0]
    (tmp_path / "bad.xml").write_text(_voc_xml([("dog", 0, (8, 3, 2, 9))]))
    with pytest.raises(ValueError, match="object 0 .* x2 < x1"):
        parse_voc_xml(tmp_path / "bad.xml")


def test_overlapping_objects_pixels_belong_to_the_brighter_ink(monkeypatch):
    """Objects are drawn with np.maximum, so where two overlap the canvas shows the brighter
    one: that object owns the pixel, whichever was drawn first. Uniform squares of a
    brightness given by their label make the owner checkable from the canvas alone."""
    ds = CanvasDetection("train", num_images=40, sources=("digits",), canvas_size=48,
                         objects=(4, 4), scale=(14, 24), max_overlap=0.9, clutter=0)
    brightness = np.linspace(0.3, 1.0, 10, dtype=np.float32)

    def uniform_square(rng):
        label = int(rng.integers(10))
        return np.full((28, 28), brightness[label], np.float32), label + 1

    monkeypatch.setattr(ds, "_pick", uniform_square)
    overlaps = 0
    for i in range(len(ds)):
        canvas, t = ds.generate(i)
        shown = brightness[t["labels"] - 1]
        covering = np.zeros((len(shown),) + canvas.shape, bool)
        for k, b in enumerate(t["boxes"].astype(int)):
            covering[k, b[1]:b[3], b[0]:b[2]] = True
        overlaps += int((covering.sum(0) > 1).sum())
        for k, m in enumerate(t["masks"].astype(bool)):
            np.testing.assert_allclose(canvas[m], shown[k], rtol=1e-6)
            # no other object brighter than the owner covers its pixels
            assert (shown[:, None] * covering[:, m]).max(0).max() <= shown[k] + 1e-6
        assert (t["masks"].sum(0) == covering.any(0)).all()  # each object pixel, one owner
    assert overlaps > 200  # the squares did overlap
