"""Synchronous DDP against an asynchronous parameter server, training the same MLP on the
digits shipped with shendu (4,000 MNIST training images, 1,000 test images).

    python examples/async_vs_sync_digits.py --out examples/results/async_vs_sync_digits.json

- ``ddp``: 2 ranks (``shendu run --nproc 2``); each step every rank takes 32 images, the
  gradients are averaged, one SGD step per 64 images.
- ``ps``: 3 processes (``shendu run --nproc 3``), a server and 2 workers; each worker pulls,
  takes 32 images, pushes; the server applies every gradient on arrival, one SGD step per
  32 images (``--max-staleness`` bounds how stale a gradient may be; default none);
- ``ps_k0``: the same with ``max_staleness=0``: one worker computes at a time, so every
  gradient is fresh (sequential SGD) and the second worker only takes turns.

Both see the same images per epoch (a shared permutation, halved between the two
ranks/workers) for ``--epochs`` epochs, with the same learning rate. Rank 0 (DDP) and the
server record the weights every ``--every`` updates with the time since training started;
afterwards this driver evaluates every record (loss on the training set, accuracy on the
test set) and plots them per wall-clock second, per update and per image processed. On 2
cores the server is a third process: it sleeps while it waits, so the workers keep the cores.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BATCH = 32          # images per rank or worker per gradient


def build():
    import shendu as sd
    from shendu import nn
    sd.manual_seed(0)
    return nn.Sequential(nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(),
                         nn.Linear(64, 10))


def batches(x, y, epochs, share, shares):
    """This rank's/worker's batches: each epoch a permutation shared by everyone, halved."""
    import shendu as sd
    for epoch in range(epochs):
        mine = np.random.default_rng(epoch).permutation(len(x))[share::shares]
        for lo in range(0, len(mine) - BATCH + 1, BATCH):
            idx = mine[lo:lo + BATCH]
            yield sd.as_tensor(x[idx]), sd.as_tensor(y[idx])


def warm_up(model, x, y):
    """One forward and backward outside the clock: the first call of each kernel compiles or
    loads it (numba), which would otherwise be charged to the first recorded seconds."""
    import shendu as sd
    sd.nn.functional.cross_entropy(model(sd.as_tensor(x[:BATCH])),
                                   sd.as_tensor(y[:BATCH])).backward()
    model.zero_grad()


class Recorder:
    """Copies of the weights with the time since the start and the update count."""

    def __init__(self, model):
        self.model, self.start = model, time.perf_counter()
        self.t, self.updates, self.weights = [], [], []

    def __call__(self, updates):
        self.t.append(time.perf_counter() - self.start)
        self.updates.append(updates)
        self.weights.append([p.detach().numpy().copy() for p in self.model.parameters()])

    def save(self, path, **extra):
        arrays = {f"w{k}": np.stack([w[k] for w in self.weights])
                  for k in range(len(self.weights[0]))}
        np.savez(path, t=np.array(self.t), updates=np.array(self.updates), **arrays,
                 **{k: np.array(v) for k, v in extra.items()})


def run_ddp(args):
    import shendu as sd
    import shendu.distributed as dist
    from shendu.data.datasets import load_digits
    from shendu.nn.parallel import DistributedDataParallel as DDP
    dist.init_process_group("mpi")
    rank = dist.get_rank()
    x, y = load_digits("train", flatten=True, normalize=True)
    model = DDP(build())
    opt = sd.optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum)
    warm_up(model.module, x, y)   # the plain module: no gradient exchange
    dist.barrier()
    rec = Recorder(model.module)
    rec(0)
    step = 0
    for xb, yb in batches(x, y, args.epochs, rank, 2):
        opt.zero_grad()
        sd.nn.functional.cross_entropy(model(xb), yb).backward()
        opt.step()
        step += 1
        if rank == 0 and step % args.every == 0:
            rec(step)
    if rank == 0:
        if rec.updates[-1] != step:
            rec(step)
        rec.save(args.record, images_per_update=2 * BATCH)
    dist.destroy_process_group()


def run_ps(args):
    import shendu as sd
    import shendu.distributed as dist
    from shendu.data.datasets import load_digits
    dist.init_process_group("mpi")
    x, y = load_digits("train", flatten=True, normalize=True)
    model = build()
    opt = sd.optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum)
    ps = dist.ParameterServer(model, opt, max_staleness=args.max_staleness)
    warm_up(model, x, y)
    dist.barrier()
    if ps.is_server:
        rec = Recorder(model)
        rec(0)
        stats = ps.serve(on_update=lambda v: rec(v) if v % args.every == 0 else None)
        if rec.updates[-1] != stats["version"]:
            rec(stats["version"])
        stale = np.array([s for *_, s in ps.log])
        rec.save(args.record, images_per_update=BATCH, staleness=stale,
                 waited_pulls=stats["waited_pulls"])
        print(f"server: {stats['version']} updates, staleness mean {stale.mean():.2f} "
              f"max {stale.max()}, pushes {stats['pushes']}")
    else:
        spent = {"pull": 0.0, "compute": 0.0, "push": 0.0}
        for xb, yb in batches(x, y, args.epochs, dist.get_rank() - 1, 2):
            t0 = time.perf_counter()
            ps.pull()
            t1 = time.perf_counter()
            model.zero_grad()
            sd.nn.functional.cross_entropy(model(xb), yb).backward()
            t2 = time.perf_counter()
            ps.push()
            spent["pull"] += t1 - t0
            spent["compute"] += t2 - t1
            spent["push"] += time.perf_counter() - t2
        ps.close()
        Path(f"{args.record}.worker{dist.get_rank()}.json").write_text(json.dumps(spent))
    dist.destroy_process_group()


def evaluate(record):
    """Training loss and test accuracy of every recorded set of weights."""
    import shendu as sd
    from shendu.data.datasets import load_digits
    x, y = load_digits("train", flatten=True, normalize=True)
    xt, yt = load_digits("test", flatten=True, normalize=True)
    model = build()
    params = list(model.parameters())
    losses, accs = [], []
    with sd.no_grad():
        for i in range(len(record["t"])):
            for k, p in enumerate(params):
                p._data[...] = record[f"w{k}"][i]
            losses.append(float(sd.nn.functional.cross_entropy(model(sd.as_tensor(x)),
                                                               sd.as_tensor(y)).item()))
            accs.append(float((model(sd.as_tensor(xt)).argmax(1).numpy() == yt).mean()))
    return losses, accs


def plot(curves, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(2, 3, figsize=(13, 7))
    for c in curves.values():
        for col, (xkey, xlabel) in enumerate([("seconds", "wall-clock seconds"),
                                              ("updates", "updates (optimizer steps)"),
                                              ("images", "training images processed")]):
            axes[0, col].plot(c[xkey], c["train_loss"], marker=".", label=c["label"])
            axes[1, col].plot(c[xkey], c["test_accuracy"], marker=".", label=c["label"])
            axes[1, col].set_xlabel(xlabel)
    axes[0, 0].set_ylabel("training loss")
    axes[1, 0].set_ylabel("test accuracy")
    for ax in axes.flat:
        ax.grid(alpha=0.3)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), frameon=False)
    fig.suptitle("MLP 784-128-64-10 on shendu's digits: synchronous DDP vs parameter server")
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    fig.savefig(path, dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--momentum", type=float, default=0.9)
    ap.add_argument("--max-staleness", type=int, default=None)
    ap.add_argument("--every", type=int, default=25, help="record the weights every N updates")
    ap.add_argument("--out", help="results JSON (the plot goes beside it as .png)")
    ap.add_argument("--mode", choices=["ddp", "ps"], help=argparse.SUPPRESS)  # as a rank
    ap.add_argument("--record", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.mode:
        (run_ddp if args.mode == "ddp" else run_ps)(args)
        return
    from shendu._bench_report import machine_info, measured_at
    load_before = os.getloadavg()
    curves = {}
    flags = ["--epochs", str(args.epochs), "--lr", str(args.lr), "--momentum",
             str(args.momentum), "--every", str(args.every)]
    bound = "no staleness bound" if args.max_staleness is None else \
        f"max_staleness={args.max_staleness}"
    runs = [("ddp", "ddp", 2, [], "DDP, 2 ranks"),
            ("ps", "ps", 3, [] if args.max_staleness is None else
             ["--max-staleness", str(args.max_staleness)],
             f"parameter server, 1 server + 2 workers, {bound}"),
            ("ps_k0", "ps", 3, ["--max-staleness", "0"],
             "parameter server, max_staleness=0 (one worker at a time)")]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p))
    with tempfile.TemporaryDirectory(prefix="shendu-async-") as tmp:
        for key, mode, nproc, extra, label in runs:
            rec_path = Path(tmp) / f"{key}.npz"
            wall = time.perf_counter()
            subprocess.run([sys.executable, "-m", "shendu.cli", "run", "--nproc", str(nproc),
                            "--timeout", "600", __file__, "--mode", mode, "--record",
                            str(rec_path), *flags, *extra], check=True, env=env)
            wall = time.perf_counter() - wall
            with np.load(rec_path, allow_pickle=False) as f:
                record = {k: f[k] for k in f.files}
            losses, accs = evaluate(record)
            per = int(record["images_per_update"])
            c = {"label": label, "processes": nproc, "images_per_update": per,
                 "seconds": [round(float(t), 3) for t in record["t"]],
                 "updates": record["updates"].tolist(),
                 "images": (record["updates"] * per).tolist(),
                 "train_loss": [round(v, 4) for v in losses],
                 "test_accuracy": [round(v, 4) for v in accs],
                 "job_seconds_with_startup": round(wall, 1)}
            workers = sorted(Path(tmp).glob(f"{key}.npz.worker*.json"))
            if workers:   # where a worker's time went: waiting for parameters, computing
                c["worker_seconds"] = [{k: round(v, 2) for k, v in
                                        json.loads(w.read_text()).items()} for w in workers]
            if "staleness" in record:
                s = record["staleness"]
                c["staleness"] = {"mean": round(float(s.mean()), 3), "max": int(s.max()),
                                  "histogram": np.bincount(s).tolist(),
                                  "waited_pulls": int(record["waited_pulls"])}
            curves[key] = c
            print(f"{label}: {c['updates'][-1]} updates in {c['seconds'][-1]:.1f} s, "
                  f"final loss {losses[-1]:.4f}, test accuracy {accs[-1]:.4f}")
    if args.out:
        out = Path(args.out)
        png = out.with_suffix(".png")
        plot(curves, png)
        cmd = "python examples/async_vs_sync_digits.py " + " ".join(sys.argv[1:])
        doc = {"command": cmd, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
               "commit": measured_at(), "machine": machine_info(),
               "load_average_before": load_before, "load_average_after": os.getloadavg(),
               "args": {k: v for k, v in vars(args).items() if k not in ("mode", "record")},
               "plot": str(png.name), "curves": curves}
        out.write_text(json.dumps(doc, indent=1) + "\n")
        print(f"wrote {out} and {png}")


if __name__ == "__main__":
    main()
