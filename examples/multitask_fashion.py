"""Multi-task learning on Fashion-MNIST: one LeNet-5 trunk, two heads on the same images:
the ten classes, and a coarse four-way grouping (tops, bottoms and dresses, footwear,
bags). The loss is ``1.0 * fine + weight * coarse``; single-task networks of the same
shape are the baseline.

    python examples/multitask_fashion.py --out examples/results/multitask_fashion.json
"""
import argparse
import json
import time

import numpy as np

import shendu as sd
import shendu.nn.functional as F
from shendu.data.datasets import FashionMNIST
from shendu.models import MultiTask, MultiTaskLoss
from shendu.train import blas_threads
from shendu.vision.models import LeNet5

# T-shirt, pullover, coat, shirt -> tops; trouser, dress -> bottoms and dresses;
# sandal, sneaker, ankle boot -> footwear; bag -> bags
COARSE = np.array([0, 1, 0, 1, 0, 2, 0, 2, 3, 2])


def network(heads):
    base = LeNet5()
    trunk = sd.nn.Sequential(base.features, base.classifier[:-1])  # up to the 84 features
    return MultiTask(trunk, {name: sd.nn.Linear(84, n) for name, n in heads.items()})


def run(heads, weights, x, y, xt, yt, epochs, seed):
    sd.manual_seed(seed)
    net = network(heads)
    crit = MultiTaskLoss({n: F.cross_entropy for n in heads}, weights)
    opt = sd.optim.Adam(net.parameters(), lr=2e-3)
    rng = np.random.default_rng(seed)
    for _ in range(epochs):
        order = rng.permutation(len(x))
        for i in range(0, len(x), 64):
            idx = order[i:i + 64]
            out = net(sd.as_tensor(x[idx]))
            loss = crit(out, {n: sd.as_tensor(y[n][idx]) for n in heads})
            opt.zero_grad()
            loss.backward()
            opt.step()
    net.eval()
    with sd.no_grad():
        outs = [net(sd.as_tensor(xt[i:i + 1000])) for i in range(0, len(xt), 1000)]
    return {n: round(float((np.concatenate([o[n].argmax(1).numpy() for o in outs])
                            == yt[n]).mean()), 4) for n in heads}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--train-size", type=int, default=5000)
    ap.add_argument("--coarse-weight", type=float, default=0.5)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    start = time.perf_counter()
    tr, te = FashionMNIST(train=True), FashionMNIST(train=False)
    pick = np.random.default_rng(0).permutation(len(tr))[:args.train_size]
    x = ((tr.data[pick].astype(np.float32) / 255 - 0.286) / 0.353)[:, None]
    xt = ((te.data.astype(np.float32) / 255 - 0.286) / 0.353)[:, None]
    fine, fine_t = np.asarray(tr.targets)[pick], np.asarray(te.targets)
    y = {"fine": fine, "coarse": COARSE[fine]}
    yt = {"fine": fine_t, "coarse": COARSE[fine_t]}
    res = {}
    with blas_threads(1):
        res["multi-task"] = run({"fine": 10, "coarse": 4}, {"coarse": args.coarse_weight},
                                x, y, xt, yt, args.epochs, 0)
        res["fine only"] = run({"fine": 10}, {}, x, y, xt, yt, args.epochs, 0)
        res["coarse only"] = run({"coarse": 4}, {}, x, y, xt, yt, args.epochs, 0)
    for k, v in res.items():
        print(f"{k:12s} {v}", flush=True)
    seconds = time.perf_counter() - start
    print(f"done in {seconds:.0f} s")
    if args.out:
        from shendu._bench_report import machine_info, measured_at
        with open(args.out, "w") as f:
            json.dump({"command": "python examples/multitask_fashion.py", "args": vars(args),
                       "results": res, "seconds": round(seconds), "commit": measured_at(),
                       "cpu": machine_info()["cpu_model"]}, f, indent=1)


if __name__ == "__main__":
    main()
