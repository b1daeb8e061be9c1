"""Time a canvas Faster R-CNN training step (64-pixel canvases, batch 16, Adam), as an A/B
of two checkouts: run it once per checkout with ``PYTHONPATH`` pointing at each, and
alternate the two to see the noise.

    git worktree add /tmp/before <commit>
    for i in 1 2; do for tree in /tmp/before .; do
        PYTHONPATH=$tree python benchmarks/detect_step.py --threads 1; done; done

Prints one JSON line: the package it imported, the commit, and ms per step (the mean of
``--steps`` steps after five warm-up steps, fresh canvases each step).
"""
from __future__ import annotations

import argparse
import json
import time


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--steps", type=int, default=40)
    args = p.parse_args()
    import shendu as sd
    from shendu._bench_report import _git_commit
    from shendu._cli_detect import build_model
    from shendu.vision.datasets import CanvasDetection, detection_collate

    sd.set_num_threads(args.threads)
    sd.manual_seed(0)
    data = CanvasDetection("train", 16 * (args.steps + 5), canvas_size=64)
    model = build_model("fasterrcnn", data.num_classes, 64)
    opt = sd.optim.Adam(model.parameters(), lr=2e-3)

    def step(first):
        images, targets = detection_collate([data[i] for i in range(first, first + 16)])
        loss = sum(model(images, targets).values())
        opt.zero_grad()
        loss.backward()
        opt.step()

    for s in range(5):
        step(16 * s)
    start = time.perf_counter()
    for s in range(5, 5 + args.steps):
        step(16 * s)
    print(json.dumps({"package": sd.__file__, "commit": _git_commit(),
                      "threads": args.threads,
                      "ms_per_step": round((time.perf_counter() - start) / args.steps * 1e3,
                                           1)}))


if __name__ == "__main__":
    main()
