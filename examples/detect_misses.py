"""Which objects a trained canvas detector misses: for every test object, whether some
detection (score above ``--score``) overlaps it by IoU >= 0.5, and whether one of those
has its class; broken down by the object's shorter side, by overlap with another object,
and by class.

    shendu detect train --arch fasterrcnn ... --out runs/frcnn
    python examples/detect_misses.py fasterrcnn runs/frcnn/model.sd
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import shendu as sd  # noqa: E402
from shendu._cli_detect import build_model  # noqa: E402
from shendu.vision.datasets import CanvasDetection, detection_collate  # noqa: E402
from shendu.vision.ops import box_iou  # noqa: E402


def object_table(model, dataset, score: float, batch: int = 50) -> np.ndarray:
    """One row per test object: shorter side, found, found with its class, the largest IoU
    with another object of its canvas, label."""
    rows = []
    model.eval()
    with sd.no_grad():
        for start in range(0, len(dataset), batch):
            images, targets = detection_collate(
                [dataset[i] for i in range(start, min(start + batch, len(dataset)))])
            for det, truth in zip(model(images), targets):
                gt, labels = np.asarray(truth["boxes"]), np.asarray(truth["labels"])
                keep = np.asarray(det["scores"]) > score
                boxes, classes = np.asarray(det["boxes"])[keep], np.asarray(det["labels"])[keep]
                hit = np.asarray(box_iou(sd.tensor(gt), sd.tensor(boxes))) >= 0.5 \
                    if len(boxes) else np.zeros((len(gt), 0), bool)
                crowd = np.asarray(box_iou(sd.tensor(gt), sd.tensor(gt)))
                np.fill_diagonal(crowd, 0)
                for j in range(len(gt)):
                    side = min(gt[j, 2] - gt[j, 0], gt[j, 3] - gt[j, 1])
                    rows.append((side, hit[j].any(), (hit[j] & (classes == labels[j])).any(),
                                 crowd[j].max(), labels[j]))
    return np.array(rows, dtype=np.float64)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("arch", choices=["ssd", "fasterrcnn"])
    p.add_argument("model", help="a model.sd written by shendu detect train")
    p.add_argument("--canvas-size", type=int, default=64)
    p.add_argument("--test-images", type=int, default=500)
    p.add_argument("--score", type=float, default=0.2)
    args = p.parse_args(argv)
    test = CanvasDetection("test", args.test_images, canvas_size=args.canvas_size, seed=0)
    model = build_model(args.arch, test.num_classes, args.canvas_size)
    model.load_state_dict(sd.load(args.model))
    t = object_table(model, test, args.score)
    side, found, right, crowd, label = t.T
    print(f"{len(t)} objects: found {found.mean():.3f}, found with the right class "
          f"{right.mean():.3f}")
    groups = [(f"shorter side {lo}-{hi} px", (side >= lo) & (side < hi))
              for lo, hi in [(0, 4), (4, 6), (6, 9), (9, 14)]]
    groups += [("shorter side 14+ px", side >= 14),
               ("overlapping another (IoU > 0.1)", crowd > 0.1)]
    groups += [(test.classes[c], label == c) for c in range(1, test.num_classes)]
    for name, s in groups:
        if s.any():
            print(f"  {name:32s} {s.sum():4d} objects, found {found[s].mean():.3f}, "
                  f"right class {right[s].mean():.3f}")


if __name__ == "__main__":
    main()
