"""Ensembles of LeNet-5 on Fashion-MNIST: five networks from different random starts,
averaged and voting; five trained on bootstrap samples (bagging); and a snapshot ensemble
collected from one run with a cyclic cosine learning rate.

    python examples/ensemble_fashion.py --out examples/results/ensemble_fashion.json

Training uses a random ``--train-size`` subset of the 60,000 training images (to stay
affordable on two shared cores); accuracy is on all 10,000 test images.
"""
import argparse
import json
import time

import numpy as np

import shendu as sd
import shendu.nn.functional as F
from shendu.data import DataLoader, TensorDataset
from shendu.data.datasets import FashionMNIST
from shendu.train import BootstrapSampler, Ensemble, SnapshotEnsemble, blas_threads, fit
from shendu.vision.models import LeNet5


def accuracy(model, x, y):
    model.eval()
    with sd.no_grad():
        pred = np.concatenate([model(sd.as_tensor(x[i:i + 1000])).argmax(1).numpy()
                               for i in range(0, len(x), 1000)])
    return round(float((pred == y).mean()), 4)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--members", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--train-size", type=int, default=20000)
    ap.add_argument("--limit-test", type=int, default=None)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    start = time.perf_counter()
    train_set, test_set = FashionMNIST(train=True), FashionMNIST(train=False)
    rng = np.random.default_rng(0)
    pick = np.sort(rng.permutation(len(train_set))[:args.train_size])
    x = train_set.data[pick].astype(np.float32) / 255
    y = np.asarray(train_set.targets)[pick]
    xt = test_set.data.astype(np.float32) / 255
    yt = np.asarray(test_set.targets)
    if args.limit_test:
        xt, yt = xt[:args.limit_test], yt[:args.limit_test]
    mean, std = x.mean(), x.std()
    x, xt = ((x - mean) / std)[:, None], ((xt - mean) / std)[:, None]
    data = TensorDataset(x, y)
    res = {}

    def train(seed, sampler=None, epochs=args.epochs, callbacks=()):
        sd.manual_seed(seed)
        net = LeNet5()
        loader = DataLoader(data, batch_size=64, shuffle=sampler is None, sampler=sampler)
        fit(net, F.cross_entropy, sd.optim.Adam(net.parameters(), lr=2e-3), loader, epochs,
            callbacks=callbacks, progress=False)
        return net

    with blas_threads(1):
        singles = [train(seed) for seed in range(args.members)]
        res["single"] = [accuracy(m, xt, yt) for m in singles]
        res["average"] = accuracy(Ensemble(singles), xt, yt)
        res["vote"] = accuracy(Ensemble(singles, mode="vote"), xt, yt)
        print(f"single models {res['single']} (mean {np.mean(res['single']):.4f}); "
              f"averaged {res['average']}, voting {res['vote']}", flush=True)

        bagged = [train(100 + seed, BootstrapSampler(data, seed=seed))
                  for seed in range(args.members)]
        res["bagged_single"] = [accuracy(m, xt, yt) for m in bagged]
        res["bagging"] = accuracy(Ensemble(bagged), xt, yt)
        print(f"bagged models {res['bagged_single']}; bagging ensemble {res['bagging']}",
              flush=True)

        snap = SnapshotEnsemble(cycles=args.members, epochs=args.members)
        train(200, epochs=args.members, callbacks=[snap])
        res["snapshot_last"] = accuracy(snap.snapshots[-1], xt, yt)
        res["snapshot"] = accuracy(snap.ensemble(), xt, yt)
        print(f"snapshot ensemble ({args.members} cycles of 1 epoch): last snapshot "
              f"{res['snapshot_last']}, ensemble {res['snapshot']}", flush=True)
    seconds = time.perf_counter() - start
    print(f"done in {seconds:.0f} s")
    if args.out:
        from shendu._bench_report import machine_info, measured_at
        with open(args.out, "w") as f:
            json.dump({"command": "python examples/ensemble_fashion.py", "args": vars(args),
                       "results": res, "seconds": round(seconds), "commit": measured_at(),
                       "cpu": machine_info()["cpu_model"]}, f, indent=1)


if __name__ == "__main__":
    main()
