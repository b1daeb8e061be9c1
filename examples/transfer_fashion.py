"""Transfer learning on Fashion-MNIST: a LeNet-5 backbone learns five classes (T-shirt,
trouser, pullover, dress, coat), then the other five (sandal, shirt, sneaker, bag, ankle
boot) are learnt from 10, 100 or 1000 labels per class, three ways:

- scratch:   a fresh LeNet-5,
- frozen:    the pretrained convolutions frozen, new dense layers trained on top,
- fine-tune: the pretrained network with a new head, discriminative learning rates and
             gradual unfreezing (the head first, then the dense layers, then the
             convolutions).

    python examples/transfer_fashion.py --out examples/results/transfer_fashion.json

Every run gets the same number of optimizer steps; accuracy is on all 5,000 test images
of the five new classes, averaged over ``--seeds`` label draws.
"""
import argparse
import json
import math
import time

import numpy as np

import shendu as sd
import shendu.nn.functional as F
from shendu.data import DataLoader, TensorDataset
from shendu.data.datasets import FashionMNIST
from shendu.nn.utils import discriminative_lr, freeze, replace_head
from shendu.train import GradualUnfreezing, blas_threads, evaluate, fit
from shendu.vision.models import LeNet5

OLD, NEW = [0, 1, 2, 3, 4], [5, 6, 7, 8, 9]


def load(limit_test=None):
    train, test = FashionMNIST(train=True), FashionMNIST(train=False)
    x, y = train.data.astype(np.float32) / 255, np.asarray(train.targets)
    xt, yt = test.data.astype(np.float32) / 255, np.asarray(test.targets)
    mean, std = x.mean(), x.std()
    x, xt = (x - mean) / std, (xt - mean) / std
    if limit_test:
        xt, yt = xt[:limit_test], yt[:limit_test]
    return x[:, None], y, xt[:, None], yt


def subset(x, y, classes, per_class=None, rng=None):
    """Images of ``classes``, labels renumbered 0..k-1, optionally ``per_class`` of each."""
    idx = []
    for c in classes:
        where = np.flatnonzero(y == c)
        idx.append(where if per_class is None else rng.choice(where, per_class, replace=False))
    idx = np.sort(np.concatenate(idx))
    relabel = np.full(10, -1)
    relabel[classes] = np.arange(len(classes))
    return x[idx], relabel[y[idx]].astype(np.int64)


def train_steps(model, opt, x, y, steps, batch, callbacks=()):
    loader = DataLoader(TensorDataset(x, y), batch_size=batch, shuffle=True)
    epochs = max(1, math.ceil(steps / len(loader)))
    fit(model, F.cross_entropy, opt, loader, epochs, callbacks=callbacks, progress=False)
    return epochs


def accuracy(model, x, y):
    return evaluate(model, DataLoader(TensorDataset(x, y), batch_size=1000))["acc"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pretrain-epochs", type=int, default=3)
    ap.add_argument("--steps", type=int, default=300, help="optimizer steps per fine-tune run")
    ap.add_argument("--labels", default="10,100,1000", help="labels per class to try")
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--limit-test", type=int, default=None)
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    args = ap.parse_args()
    start = time.perf_counter()
    sd.manual_seed(0)
    x, y, xt, yt = load(args.limit_test)
    xa, ya = subset(x, y, OLD)
    xb_test, yb_test = subset(xt, yt, NEW)

    backbone = LeNet5(num_classes=5)
    with blas_threads(1):
        fit(backbone, F.cross_entropy, sd.optim.Adam(backbone.parameters(), lr=2e-3),
            DataLoader(TensorDataset(xa, ya), batch_size=64, shuffle=True),
            args.pretrain_epochs, progress=False)
        xa_test, ya_test = subset(xt, yt, OLD)
        base_acc = accuracy(backbone, xa_test, ya_test)
    print(f"backbone: test accuracy {base_acc:.4f} on the five pretraining classes "
          f"({len(xa)} images, {args.pretrain_epochs} epochs)")
    weights = backbone.state_dict()

    def pretrained():
        net = LeNet5(num_classes=5)
        net.load_state_dict(weights)
        replace_head(net, 5)
        return net

    rows = []
    for n in [int(v) for v in args.labels.split(",")]:
        accs = {"scratch": [], "frozen": [], "fine-tune": []}
        for seed in range(args.seeds):
            rng = np.random.default_rng(1000 + seed)
            xb, yb = subset(x, y, NEW, n, rng)
            batch = min(64, len(xb))
            with blas_threads(1):
                sd.manual_seed(seed)
                net = LeNet5(num_classes=5)
                train_steps(net, sd.optim.Adam(net.parameters(), lr=2e-3), xb, yb,
                            args.steps, batch)
                accs["scratch"].append(accuracy(net, xb_test, yb_test))

                sd.manual_seed(seed)
                net = pretrained()
                freeze(net.features)
                train_steps(net, sd.optim.Adam(net.classifier.parameters(), lr=2e-3),
                            xb, yb, args.steps, batch)
                accs["frozen"].append(accuracy(net, xb_test, yb_test))

                sd.manual_seed(seed)
                net = pretrained()
                body, head = net.classifier[:-1], net.classifier[-1]
                freeze(net.features)
                freeze(body)
                opt = sd.optim.Adam(discriminative_lr([net.features, body, head], 2e-3))
                loader_len = math.ceil(len(xb) / batch)
                every = max(1, math.ceil(args.steps / loader_len) // 3)
                train_steps(net, opt, xb, yb, args.steps, batch,
                            callbacks=[GradualUnfreezing([body, net.features], every=every)])
                accs["fine-tune"].append(accuracy(net, xb_test, yb_test))
        row = {"labels_per_class": n, **{k: round(float(np.mean(v)), 4)
                                         for k, v in accs.items()}}
        rows.append(row)
        print(f"{n:5d} labels/class: scratch {row['scratch']:.4f}  frozen {row['frozen']:.4f}"
              f"  fine-tune {row['fine-tune']:.4f}", flush=True)
    seconds = time.perf_counter() - start
    print(f"done in {seconds:.0f} s")
    if args.out:
        from shendu._bench_report import machine_info, measured_at
        info = machine_info()
        with open(args.out, "w") as f:
            json.dump({"command": "python examples/transfer_fashion.py " + " ".join(
                f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items()
                if v is not None and k != "out"),
                "backbone_acc": base_acc, "rows": rows, "seconds": round(seconds),
                "commit": measured_at(), "cpu": info["cpu_model"],
                "cpus": info["cpus_usable"]}, f, indent=1)


if __name__ == "__main__":
    main()
