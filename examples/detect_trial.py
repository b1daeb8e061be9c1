"""A short detector trial for comparing settings at equal steps (not time): train a canvas
SSD or Faster R-CNN for a fixed number of steps on 64-pixel canvases with the learning rate
decayed to zero along a cosine, then print test mAP on 300 canvases as one JSON line.

    python examples/detect_trial.py ssd 1500 '{"iou_thresh": 0.4, "lr": 0.004}'
    python examples/detect_trial.py fasterrcnn 1000 '{"fpn_channels": null}'

The third argument is passed to ``ssd_canvas`` / ``fasterrcnn_canvas`` (``lr`` and ``bs``
are taken out first). One thread; the CPU seconds are printed but several trials at once
share the cores, so compare time per step only between trials run alone.
"""
from __future__ import annotations

import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import shendu as sd  # noqa: E402
from shendu._cli_detect import evaluate, fit  # noqa: E402
from shendu.vision.datasets import CanvasDetection  # noqa: E402
from shendu.vision.detection import fasterrcnn_canvas, ssd_canvas  # noqa: E402


def main(argv, test_images: int = 300) -> dict:
    arch, steps = argv[0], int(argv[1])
    kw = json.loads(argv[2]) if len(argv) > 2 else {}
    lr, batch = kw.pop("lr", 2e-3), kw.pop("bs", 16)
    sd.manual_seed(0)
    sd.set_num_threads(1)
    train = CanvasDetection("train", 20000, canvas_size=64, seed=0)
    test = CanvasDetection("test", test_images, canvas_size=64, seed=0)
    build = ssd_canvas if arch == "ssd" else fasterrcnn_canvas
    model = build(train.num_classes, canvas_size=64, **kw)
    cpu = time.process_time()
    # enough passes over the 20,000 canvases for ``steps``; the cosine ends at ``steps``
    _, history = fit(model, train, lr, batch, epochs=-(-steps * batch // len(train)),
                     max_steps=steps)
    cpu = time.process_time() - cpu
    metrics, _ = evaluate(model, test)
    return {"arch": arch, "settings": argv[2] if len(argv) > 2 else "{}", "steps": steps,
            "cpu_s": round(cpu), "ms_per_step": round(1e3 * cpu / steps, 1),
            "last_loss": round(history[-1]["loss"], 4),  # mean over the last epoch
            "map_50": round(metrics["map_50"], 4), "map": round(metrics["map"], 4)}


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1:])), flush=True)
