"""Pascal VOC detection annotations: the XML reader and a dataset over a VOC folder
(``Annotations/``, ``JPEGImages/``, ``ImageSets/Main/<set>.txt``).

VOC boxes are 1-based inclusive pixel indices; they are returned in the 0-based
continuous xyxy convention the ops use (``x1 - 1, y1 - 1, x2, y2``).

>>> import os, tempfile
>>> from shendu.vision.datasets import parse_voc_xml
>>> path = os.path.join(tempfile.mkdtemp(), "a.xml")
>>> with open(path, "w") as f:
...     _ = f.write("<annotation><filename>a.jpg</filename><size><width>20</width>"
...                 "<height>10</height><depth>3</depth></size><object><name>dog</name>"
...                 "<difficult>0</difficult><bndbox><xmin>2</xmin><ymin>3</ymin>"
...                 "<xmax>9</xmax><ymax>8</ymax></bndbox></object></annotation>")
>>> ann = parse_voc_xml(path)
>>> ann["filename"], ann["names"], ann["boxes"].tolist()
('a.jpg', ['dog'], [[1.0, 2.0, 9.0, 8.0]])
"""
from __future__ import annotations

import os
import xml.etree.ElementTree as ET

import numpy as np

import shendu as sd

from .coco import _read_image

__all__ = ["VOCDetection", "parse_voc_xml", "VOC_CLASSES"]

VOC_CLASSES = ["aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat",
               "chair", "cow", "diningtable", "dog", "horse", "motorbike", "person",
               "pottedplant", "sheep", "sofa", "train", "tvmonitor"]


def parse_voc_xml(path) -> dict:
    """Read one VOC annotation file: ``filename``, ``size`` ``(H, W)``, ``names``,
    ``boxes`` ``(n, 4)`` float32 xyxy (0-based) and ``difficult`` ``(n,)`` bool."""
    root = ET.parse(path).getroot()
    size = root.find("size")
    hw = (int(size.findtext("height")), int(size.findtext("width"))) if size is not None \
        else None
    names, boxes, difficult = [], [], []
    for i, obj in enumerate(root.iter("object")):
        bb = obj.find("bndbox")
        if bb is None:
            raise ValueError(f"parse_voc_xml: object {i} in {path} has no <bndbox>")
        x1, y1, x2, y2 = (float(bb.findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax"))
        if x2 < x1 or y2 < y1:
            raise ValueError(f"parse_voc_xml: object {i} in {path} has x2 < x1 or y2 < y1: "
                             f"{[x1, y1, x2, y2]}")
        names.append(obj.findtext("name").strip())
        boxes.append([x1 - 1, y1 - 1, x2, y2])
        difficult.append(obj.findtext("difficult", "0").strip() == "1")
    return {"filename": root.findtext("filename"), "size": hw, "names": names,
            "boxes": np.array(boxes, np.float32).reshape(-1, 4),
            "difficult": np.array(difficult, bool)}


class VOCDetection:
    """A Pascal VOC folder as ``(image, target)`` samples (``boxes``, ``labels`` with 0 the
    background and ``classes[i]`` label ``i + 1``, ``difficult``).

    Args:
        root: the folder holding ``Annotations``, ``JPEGImages`` and ``ImageSets``.
        image_set: the list in ``ImageSets/Main`` (``train``, ``val``, ``trainval``, ``test``).
        classes: class names in label order (default: the 20 VOC classes).
        transform: applied to ``(image, target)``.
    """

    def __init__(self, root, image_set: str = "train", classes=VOC_CLASSES, transform=None):
        self.root, self.classes, self.transform = root, list(classes), transform
        with open(os.path.join(root, "ImageSets", "Main", f"{image_set}.txt")) as f:
            self.ids = [line.split()[0] for line in f if line.strip()]

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int):
        ann = parse_voc_xml(os.path.join(self.root, "Annotations", f"{self.ids[index]}.xml"))
        unknown = [n for n in ann["names"] if n not in self.classes]
        if unknown:
            raise ValueError(f"VOCDetection: image {self.ids[index]} has class {unknown[0]!r}, "
                             f"not among the {len(self.classes)} classes given")
        labels = np.array([self.classes.index(n) + 1 for n in ann["names"]], np.int64)
        image = sd.tensor(_read_image(os.path.join(self.root, "JPEGImages",
                                                   ann["filename"] or f"{self.ids[index]}.jpg")))
        target = {"boxes": sd.tensor(ann["boxes"]), "labels": sd.tensor(labels),
                  "difficult": sd.tensor(ann["difficult"]), "image_id": self.ids[index]}
        if self.transform is not None:
            return self.transform(image, target)
        return image, target
