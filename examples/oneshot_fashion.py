"""One-shot recognition on Fashion-MNIST: an embedding network learns five classes
(T-shirt, trouser, coat, sandal, bag) and must recognise the five it never saw
(pullover, dress, shirt, sneaker, ankle boot) from one or five examples each. (Each unseen
class has a relative among the seen ones, as an unseen alphabet shares strokes with the
known ones in Omniglot; with all footwear unseen, nothing learnt on tops and trousers
helped, and raw pixels won.)

The network is a small convolutional trunk (3 conv/pool stages, 576 features) and a
linear projection to a 128-d embedding on the unit sphere, trained on balanced batches
(5 classes x 16 images) in two ways:

- triplet:     ``TripletMarginLoss`` on semi-hard triplets (``SemiHardMiner``),
- contrastive: a Siamese network with ``ContrastiveLoss`` over all pairs of the batch.

Evaluation: 5-way 1-shot and 5-shot episodes on the test images of the unseen classes,
queries labelled by the nearest class prototype, on the embedding and on the trunk's
features before the projection (which, as in SimCLR, transfer better to new classes);
the baseline is nearest neighbour (and nearest prototype) on raw pixels over the same
episodes.

    python examples/oneshot_fashion.py --out examples/results/oneshot_fashion.json
"""
import argparse
import json
import time

import numpy as np

import shendu as sd
from shendu.data.datasets import FashionMNIST
from shendu.models import Siamese, few_shot_accuracy
from shendu.nn.metric_learning import BalancedBatchSampler, ContrastiveLoss, SemiHardMiner
from shendu.train import blas_threads

SEEN, UNSEEN = [0, 1, 4, 5, 8], [2, 3, 6, 7, 9]


def embedding_net(dim=128):
    trunk = sd.nn.Sequential(
        sd.nn.Conv2d(1, 32, 3, padding=1), sd.nn.ReLU(), sd.nn.MaxPool2d(2),
        sd.nn.Conv2d(32, 64, 3, padding=1), sd.nn.ReLU(), sd.nn.MaxPool2d(2),
        sd.nn.Conv2d(64, 64, 3, padding=1), sd.nn.ReLU(), sd.nn.MaxPool2d(2),
        sd.nn.Flatten())
    return sd.nn.Sequential(trunk, sd.nn.Linear(576, dim))


def train(kind, x, y, steps, margin, seed=0):
    sd.manual_seed(seed)
    net = Siamese(embedding_net())
    opt = sd.optim.Adam(net.parameters(), lr=1e-3)
    sampler = BalancedBatchSampler(y, 5, 16, num_batches=steps, seed=seed)
    triplet, miner = sd.nn.TripletMarginLoss(margin=margin), SemiHardMiner()
    contrastive = ContrastiveLoss(margin=margin)
    net.train()
    for step, idx in enumerate(sampler):
        z = net.embed(sd.as_tensor(x[idx]))
        labels = y[idx]
        if kind == "triplet":
            a, p, n = miner(z, labels)
            loss = triplet(z[a], z[p], z[n])
        else:  # every pair of the batch, similar (1) or not (0)
            i, j = np.triu_indices(len(idx), 1)
            loss = contrastive(z[i], z[j], sd.as_tensor((labels[i] == labels[j]).astype(np.int64)))
        opt.zero_grad()
        loss.backward()
        opt.step()
        if (step + 1) % 200 == 0:
            print(f"  {kind} step {step + 1}: loss {loss.item():.4f}", flush=True)
    return net


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--margin", type=float, default=0.2)
    ap.add_argument("--episodes", type=int, default=400)
    ap.add_argument("--kinds", default="triplet,contrastive")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    start = time.perf_counter()
    train_set, test_set = FashionMNIST(train=True), FashionMNIST(train=False)
    x, y = train_set.data.astype(np.float32) / 255, np.asarray(train_set.targets)
    xt, yt = test_set.data.astype(np.float32) / 255, np.asarray(test_set.targets)
    mean, std = x.mean(), x.std()
    x, xt = ((x - mean) / std)[:, None], ((xt - mean) / std)[:, None]
    seen = np.isin(y, SEEN)
    unseen = np.isin(yt, UNSEEN)
    xs, ys, xu, yu = x[seen], y[seen], xt[unseen], yt[unseen]
    results = {}
    episodes = dict(n_way=5, queries=15, episodes=args.episodes, seed=1)
    for k in (1, 5):
        results[f"pixels_nn_{k}shot"] = few_shot_accuracy(None, xu, yu, k_shot=k,
                                                          rule="nearest", **episodes)
        results[f"pixels_proto_{k}shot"] = few_shot_accuracy(None, xu, yu, k_shot=k,
                                                             **episodes)
    for key, val in results.items():
        print(f"{key:32s} {val}", flush=True)

    def embed_all(fn):
        with sd.no_grad():
            return np.concatenate([fn(sd.as_tensor(xu[i:i + 500])).numpy()
                                   for i in range(0, len(xu), 500)])

    with blas_threads(1):
        for kind in args.kinds.split(","):
            net = train(kind, xs, ys, args.steps, args.margin).eval()
            z_embed, z_trunk = embed_all(net.embed), embed_all(net.embedding[0])
            for k in (1, 5):
                results[f"{kind}_{k}shot"] = few_shot_accuracy(None, z_embed, yu, k_shot=k,
                                                               **episodes)
                results[f"{kind}_trunk_{k}shot"] = few_shot_accuracy(None, z_trunk, yu,
                                                                     k_shot=k, **episodes)
            # a Siamese verification check on unseen classes: same vs different pairs
            rng = np.random.default_rng(2)
            i, j = rng.integers(0, len(xu), (2, 2000))
            same = yu[i] == yu[j]
            d = np.sqrt(((z_embed[i] - z_embed[j]) ** 2).sum(1))
            thr = float(np.median(d))
            decided = net.verify(sd.as_tensor(xu[i]), sd.as_tensor(xu[j]), thr).numpy()
            results[f"{kind}_verify_acc_at_median"] = round(float((decided == same).mean()), 4)
            for key in [k for k in results if k.startswith(kind)]:
                print(f"{key:32s} {results[key]}", flush=True)
            if args.out:  # after each kind, so a long run leaves what it has
                write(args, results, start)
    print(f"done in {time.perf_counter() - start:.0f} s")


def write(args, results, start):
    from shendu._bench_report import machine_info, measured_at
    with open(args.out, "w") as f:
        json.dump({"command": "python examples/oneshot_fashion.py", "args": vars(args),
                   "results": results, "seconds": round(time.perf_counter() - start),
                   "commit": measured_at(), "cpu": machine_info()["cpu_model"]}, f, indent=1)


if __name__ == "__main__":
    main()
