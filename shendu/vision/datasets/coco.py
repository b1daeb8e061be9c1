"""COCO-format detection annotations: a reader for the JSON file and a dataset over an
image folder (torchvision's ``CocoDetection``, with targets as the detectors take them).

>>> import json, os, tempfile
>>> from shendu.vision.datasets import load_coco_annotations
>>> d = tempfile.mkdtemp()
>>> ann = {"images": [{"id": 7, "file_name": "a.png", "width": 9, "height": 8}],
...        "annotations": [{"id": 1, "image_id": 7, "category_id": 3,
...                         "bbox": [1, 2, 4, 3], "area": 12, "iscrowd": 0}],
...        "categories": [{"id": 3, "name": "cat"}]}
>>> with open(os.path.join(d, "ann.json"), "w") as f:
...     json.dump(ann, f)
>>> images, targets, cats = load_coco_annotations(os.path.join(d, "ann.json"))
>>> targets[0]["boxes"], cats
(array([[1., 2., 5., 5.]], dtype=float32), {3: 'cat'})
"""
from __future__ import annotations

import json
import os

import numpy as np

import shendu as sd

__all__ = ["CocoDetection", "load_coco_annotations"]


def load_coco_annotations(ann_file) -> tuple[list, list, dict]:
    """Read a COCO instances JSON file.

    Returns ``(images, targets, categories)``: the ``images`` records in file order, one
    target dict per image (``boxes`` xyxy float32, ``labels`` = category ids int64,
    ``area``, ``iscrowd``, ``image_id``) and ``{category id: name}``.
    """
    with open(ann_file, encoding="utf-8") as f:
        data = json.load(f)
    for key in ("images", "annotations"):
        if key not in data:
            raise ValueError(f"load_coco_annotations: {ann_file} has no {key!r} list "
                             f"(is it a COCO instances file?)")
    cats = {int(c["id"]): c.get("name", str(c["id"])) for c in data.get("categories", [])}
    by_image = {int(im["id"]): [] for im in data["images"]}
    for a in data["annotations"]:
        img_id = int(a["image_id"])
        if img_id not in by_image:
            raise ValueError(f"load_coco_annotations: annotation {a.get('id')} refers to "
                             f"image {img_id}, which is not in 'images'")
        x, y, w, h = (float(v) for v in a["bbox"])
        if w < 0 or h < 0:
            raise ValueError(f"load_coco_annotations: annotation {a.get('id')} of image "
                             f"{img_id} has a negative size: bbox {a['bbox']}")
        if cats and int(a["category_id"]) not in cats:
            raise ValueError(f"load_coco_annotations: annotation {a.get('id')} of image "
                             f"{img_id} has category {a['category_id']}, not among "
                             f"{sorted(cats)}")
        by_image[img_id].append(a)
    targets = []
    for im in data["images"]:
        anns = by_image[int(im["id"])]
        boxes = np.array([[a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2],
                           a["bbox"][1] + a["bbox"][3]] for a in anns], np.float32)
        targets.append({
            "boxes": boxes.reshape(-1, 4),
            "labels": np.array([a["category_id"] for a in anns], np.int64),
            "area": np.array([a.get("area", a["bbox"][2] * a["bbox"][3]) for a in anns],
                             np.float32),
            "iscrowd": np.array([a.get("iscrowd", 0) for a in anns], np.int64),
            "image_id": int(im["id"])})
    return list(data["images"]), targets, cats


def _read_image(path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        arr = np.asarray(im.convert("RGB") if im.mode not in ("L", "RGB") else im)
    arr = arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)
    return arr.astype(np.float32) / 255


class CocoDetection:
    """Images of a folder with their COCO annotations.

    Args:
        root: the image folder (``file_name`` is relative to it).
        annFile: the instances JSON file.
        transform: applied to ``(image, target)``.

    A sample is ``(image, target)``: a float32 ``(C, H, W)`` tensor in [0, 1] (read with
    Pillow) and a dict of tensors as ``load_coco_annotations`` gives (torchvision's
    ``CocoDetection`` returns the raw annotation list; its ``wrap_dataset_for_transforms_v2``
    gives this form).
    """

    def __init__(self, root, annFile, transform=None):
        self.root, self.transform = root, transform
        self.images, self.targets, self.categories = load_coco_annotations(annFile)
        self.ids = [int(im["id"]) for im in self.images]

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int):
        image = sd.tensor(_read_image(os.path.join(self.root, self.images[index]["file_name"])))
        target = {k: (v if k == "image_id" else sd.tensor(v))
                  for k, v in self.targets[index].items()}
        if self.transform is not None:
            return self.transform(image, target)
        return image, target
