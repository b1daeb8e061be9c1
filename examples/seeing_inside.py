"""Seeing inside a LeNet-5 trained on Fashion-MNIST: its first-layer filters, the feature
maps one image produces, activation statistics per layer, and Grad-CAM heat maps showing
where the network looked for the class it predicted.

    python examples/seeing_inside.py --out examples/results/seeing_inside

writes ``filters.png``, ``feature_maps.png``, ``gradcam.png`` (top row: test images;
bottom row: Grad-CAM on the last convolution, red = most evidence) and ``stats.json``.
"""
import argparse
import json
import os
import time

import numpy as np

import shendu as sd
import shendu.nn.functional as F
from shendu.data import DataLoader, TensorDataset
from shendu.data.datasets import FashionMNIST
from shendu.train import blas_threads, evaluate, fit
from shendu.vision.models import LeNet5
from shendu.vision.utils import (
    GradCAM,
    activation_stats,
    feature_maps,
    filter_grid,
    make_grid,
    overlay_heatmap,
    save_image,
)

CLASSES = ["T-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker",
           "bag", "ankle boot"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--train-size", type=int, default=20000)
    ap.add_argument("--out", default="seeing_inside")
    args = ap.parse_args()
    start = time.perf_counter()
    os.makedirs(args.out, exist_ok=True)
    sd.manual_seed(0)
    train_set, test_set = FashionMNIST(train=True), FashionMNIST(train=False)
    pick = np.random.default_rng(0).permutation(len(train_set))[:args.train_size]
    x = (train_set.data[pick].astype(np.float32) / 255)[:, None]
    y = np.asarray(train_set.targets)[pick]
    xt = (test_set.data.astype(np.float32) / 255)[:, None]
    yt = np.asarray(test_set.targets)
    net = LeNet5()
    with blas_threads(1):
        fit(net, F.cross_entropy, sd.optim.Adam(net.parameters(), lr=2e-3),
            DataLoader(TensorDataset(x, y), batch_size=64, shuffle=True), args.epochs,
            progress=False)
        acc = evaluate(net, DataLoader(TensorDataset(xt, yt), batch_size=1000))["acc"]
    print(f"LeNet-5: test accuracy {acc:.4f} after {args.epochs} epochs on "
          f"{args.train_size} images")

    save_image(filter_grid(net.features[0]), os.path.join(args.out, "filters.png"))
    sample = sd.as_tensor(xt[:1])
    maps1 = feature_maps(net, sample, "features.1")     # after the first ReLU: 6 x 28 x 28
    maps2 = feature_maps(net, sample, "features.4")     # after the second ReLU: 16 x 10 x 10
    up = F.interpolate(maps2.unsqueeze(1), size=(28, 28), mode="nearest")
    tiles = sd.cat([sample, maps1.unsqueeze(1), up], dim=0)
    save_image(tiles, os.path.join(args.out, "feature_maps.png"), nrow=8, normalize=True,
               scale_each=True, pad_value=1.0)

    stats = activation_stats(net, sd.as_tensor(xt[:500]))
    print(f"{'layer':14s} {'mean':>8s} {'std':>8s} {'zeros':>6s} {'dead':>5s}")
    for name, s in stats.items():
        print(f"{name:14s} {s['mean']:8.3f} {s['std']:8.3f} {s['zeros']:6.2f} {s['dead']:5.2f}")

    images = sd.as_tensor(xt[:8])
    heat = GradCAM(net, "features.3")(images)
    pred = net.eval()(images).argmax(1).numpy()
    overlays = [overlay_heatmap(images[i], heat[i]) for i in range(8)]
    grey = [images[i].repeat(3, 1, 1) for i in range(8)]
    save_image(make_grid(grey + overlays, nrow=8, pad_value=1.0),
               os.path.join(args.out, "gradcam.png"))
    labels = [f"{CLASSES[p]}{'' if p == t else ' (true: ' + CLASSES[t] + ')'}"
              for p, t in zip(pred, yt[:8])]
    print("Grad-CAM images, predicted:", "; ".join(labels))
    from shendu._bench_report import machine_info, measured_at
    with open(os.path.join(args.out, "stats.json"), "w") as f:
        json.dump({"command": "python examples/seeing_inside.py", "args": vars(args),
                   "test_acc": acc, "activation_stats": stats, "gradcam_predicted": labels,
                   "seconds": round(time.perf_counter() - start), "commit": measured_at(),
                   "cpu": machine_info()["cpu_model"]}, f, indent=1)


if __name__ == "__main__":
    main()
