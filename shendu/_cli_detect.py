"""``shendu detect``: train a detector on the canvas dataset and report its mAP.

``shendu detect train --arch ssd`` trains an SSD (``--arch fasterrcnn``: a Faster R-CNN) on
``CanvasDetection`` canvases, then evaluates on the test split (COCO mAP, mAP@0.5) and
writes ``results.json`` (metrics, training time, inference images/s, commit, machine),
``model.sd`` and ``detections.png`` to ``--out``.

``--nproc N`` trains data-parallel on N processes (``shendu run``, MPI): each rank takes
``batch-size / N`` canvases of every global batch and ``DistributedDataParallel`` averages
the gradients, so each step sees the canvases one process would see (each rank normalises
its losses by its own anchors and proposals, so the gradient is close to, not exactly, one
process's); rank 0 decides when the time is up, then evaluates and writes the files alone.

>>> build_parser().parse_args(["train", "--arch", "fasterrcnn"]).arch
'fasterrcnn'
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

from ._bench_report import _git_commit

__all__ = ["main", "build_parser"]


_EXAMPLES = """examples:
  shendu detect train --arch fasterrcnn --train-images 200000 --epochs 1 --time-limit 29 \\
      --nproc 2                   29 minutes on 2 processes x 1 thread (mAP@0.5 0.91)
  shendu detect evaluate runs/detect-<time>/model.sd --threads 2
                                  score saved weights again: AP per class, images/s
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="shendu detect", description="Train and evaluate "
                                "object detectors on the canvas dataset (real Fashion-MNIST "
                                "items and digits on 128x128 canvases).")
    sub = p.add_subparsers(dest="command", metavar="command")
    t = sub.add_parser("train", help="train a detector, then report test mAP",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog=_EXAMPLES)
    t.add_argument("--arch", choices=["ssd", "fasterrcnn"], default="ssd")
    t.add_argument("--sources", default="fashion-mnist,digits",
                   help="object sources, comma-separated (default: fashion-mnist,digits)")
    t.add_argument("--canvas-size", type=int, default=128)
    t.add_argument("--train-images", type=int, default=4000)
    t.add_argument("--test-images", type=int, default=500)
    t.add_argument("--epochs", type=int, default=6)
    t.add_argument("--batch-size", type=int, default=16)
    t.add_argument("--lr", type=float, default=None, help="Adam learning rate, decayed to "
                   "zero along a cosine (default: 4e-3 for ssd, 2e-3 for fasterrcnn)")
    t.add_argument("--time-limit", type=float, default=None, metavar="MIN",
                   help="stop training after this many minutes (the learning-rate schedule "
                   "follows the time then, so it still ends at zero)")
    t.add_argument("--threads", type=int, default=1, help="BLAS threads; 0 keeps the "
                   "library's default (default: 1: the products are small and the cores "
                   "are often shared)")
    t.add_argument("--nproc", type=int, default=1, metavar="N", help="train on N "
                   "processes with DistributedDataParallel through 'shendu run' (mpiexec); "
                   "--batch-size stays the global batch and --threads is per process. On "
                   "2 cores, 2 x 1 thread took 1.23-1.28x the steps of 1 x 2 threads in the same "
                   "time")
    t.add_argument("--rank-of-job", action="store_true", help=argparse.SUPPRESS)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--data-dir", default=None, help="folder with the Fashion-MNIST files")
    t.add_argument("--out", default=None, help="output folder (default: runs/detect-<time>)")
    t.add_argument("--quiet", action="store_true")
    e = sub.add_parser("evaluate", help="evaluate saved weights (a model.sd) again: mAP, AP "
                       "per class, inference images/s at a chosen thread count")
    e.add_argument("model", help="model.sd written by 'shendu detect train'; --arch, "
                   "--sources, --canvas-size and --seed default to the training run's "
                   "(read from the results.json beside it)")
    e.add_argument("--arch", choices=["ssd", "fasterrcnn"], default=None)
    e.add_argument("--sources", default=None)
    e.add_argument("--canvas-size", type=int, default=None)
    e.add_argument("--split", choices=["test", "val"], default="test",
                   help="'val' (from the sources' training images) for choosing settings, "
                   "'test' for the number to report (default: test)")
    e.add_argument("--test-images", type=int, default=500)
    e.add_argument("--threads", type=int, default=1, help="BLAS threads (0: the library's "
                   "default)")
    e.add_argument("--seed", type=int, default=None)
    e.add_argument("--data-dir", default=None, help="folder with the Fashion-MNIST files")
    e.add_argument("--out", default=None, help="also write the results to this JSON file")
    return p


def build_model(arch: str, num_classes: int, canvas_size: int = 128):
    from .vision.detection import fasterrcnn_canvas, ssd_canvas

    build = ssd_canvas if arch == "ssd" else fasterrcnn_canvas
    return build(num_classes, canvas_size=canvas_size)


def evaluate(model, dataset, batch_size: int = 32) -> tuple[dict, float]:
    """COCO metrics of ``model`` on ``dataset`` and inference images per second."""
    import shendu as sd
    from shendu.metrics import MeanAveragePrecision
    from shendu.vision.datasets import detection_collate

    model.eval()
    metric, seconds = MeanAveragePrecision(), 0.0
    with sd.no_grad():
        if len(dataset):  # untimed: a fresh process loads the inference kernels first
            model(detection_collate([dataset[0]])[0])
        for start in range(0, len(dataset), batch_size):
            images, targets = detection_collate(
                [dataset[i] for i in range(start, min(start + batch_size, len(dataset)))])
            t0 = time.perf_counter()
            preds = model(images)
            seconds += time.perf_counter() - t0
            metric.update(preds, targets)
    result = metric.compute()
    out = {k: float(v) for k, v in result.items() if k != "classes"}
    # AP per class, over IoU 0.5:0.95 and at 0.5 (-1: a class without ground truth)
    at_50 = list(np.isclose(metric.iou_thresholds, 0.5)).index(True)
    out["per_class"] = {dataset.classes[int(c)]: {
        "ap": _valid_mean(metric.precision[:, :, k, 0, -1]),
        "ap50": _valid_mean(metric.precision[at_50, :, k, 0, -1])}
        for k, c in enumerate(metric.classes)}
    return out, len(dataset) / seconds


def _valid_mean(x: np.ndarray) -> float:
    x = x[x > -1]
    return round(float(x.mean()), 4) if x.size else -1.0


def _time_used(t_start: float, deadline: float | None, ranks) -> float:
    """The share of the time limit used so far (0 without one). In a data-parallel job
    rank 0's clock decides for every rank, so all take the same steps at the same rates."""
    if not deadline:  # every rank has the same deadline: nothing to agree on
        return 0.0
    return ranks.agreed((time.perf_counter() - t_start) / (deadline - t_start))


def fit(model, train_set, lr: float, batch_size: int, epochs: int, seed: int = 0,
        deadline: float | None = None, max_steps: int | None = None, log=None,
        ranks=None):
    """Train ``model`` (a detector returning its losses) with Adam, the learning rate
    decayed to zero along a cosine over the steps or until ``deadline`` (a
    ``time.perf_counter()`` value), whichever ends first; each epoch a new permutation of
    ``train_set`` from ``seed``, at most ``max_steps`` steps. Returns the steps taken and
    one ``{epoch, loss, seconds}`` per epoch; ``log`` (e.g. ``print``) gets a line each.

    ``ranks`` (a :class:`shendu.train.data_parallel.Ranks` of a job of several): this rank
    takes its ``batch_size / size`` share of each batch of ``model`` (wrapped in
    ``DistributedDataParallel`` by the caller) and the loss logged is the mean over the
    ranks. The model is left in training mode; ``evaluate`` switches it to eval."""
    import shendu as sd
    from shendu.train.data_parallel import Ranks
    from shendu.vision.datasets import detection_collate

    ranks = ranks or Ranks()
    opt = sd.optim.Adam(model.parameters(), lr=lr)
    steps_per_epoch = max(1, len(train_set) // batch_size)
    total = steps_per_epoch * epochs if max_steps is None else \
        min(steps_per_epoch * epochs, max_steps)
    rng = np.random.default_rng(seed)  # the same order on every rank
    history, step, t_start = [], 0, time.perf_counter()
    for epoch in range(epochs):
        model.train()
        order, running = rng.permutation(len(train_set)), []
        for b in range(steps_per_epoch):
            used = _time_used(t_start, deadline, ranks)
            if used >= 1.0 or step >= total:
                break
            # cosine decay over the steps or the time, whichever ends first
            progress = max(step / total, used)
            for group in opt.param_groups:
                group["lr"] = lr * 0.5 * (1 + np.cos(np.pi * min(progress, 1.0)))
            idx = ranks.share(order[b * batch_size:(b + 1) * batch_size])
            images, targets = detection_collate([train_set[int(i)] for i in idx])
            loss = sum(model(images, targets).values())
            opt.zero_grad()
            loss.backward()
            opt.step()
            running.append(float(loss))
            step += 1
        history.append({"epoch": epoch + 1, "loss": ranks.mean(running),
                        "seconds": time.perf_counter() - t_start})
        if log is not None:
            log(f"epoch {epoch + 1}/{epochs}  loss {history[-1]['loss']:.4f}  "
                f"{history[-1]['seconds']:.0f}s")
        if step >= total or _time_used(t_start, deadline, ranks) >= 1.0:
            break
    return step, history


def train(args) -> dict:
    import shendu as sd
    from shendu.train.data_parallel import Ranks
    from shendu.vision.datasets import CanvasDetection

    ranks = Ranks()
    if args.rank_of_job:
        from .distributed import process_group as pg
        pg.init_process_group("mpi")
        ranks = Ranks.of_process_group()
    sd.manual_seed(args.seed)
    if args.threads:
        sd.set_num_threads(args.threads)
    kw = {"sources": tuple(args.sources.split(",")), "canvas_size": args.canvas_size,
          "seed": args.seed, "root": args.data_dir}
    train_set = CanvasDetection("train", args.train_images, **kw)
    test_set = CanvasDetection("test", args.test_images, **kw)
    model = build_model(args.arch, train_set.num_classes, args.canvas_size)
    if ranks.size > 1:
        from .train.data_parallel import rank_seed
        model = ranks.wrap(model)  # rank 0's initial weights everywhere
        sd.manual_seed(rank_seed(args.seed, ranks.rank))  # each rank samples its own anchors
    if args.lr is None:  # short trials (64-pixel canvases): the SSD learnt faster at 4e-3
        # than at 2e-3 (8e-3 no better), Faster R-CNN slower at 4e-3 than at 2e-3
        args.lr = 4e-3 if args.arch == "ssd" else 2e-3
    commit = _git_commit()  # of the code that trains, even if the checkout moves on meanwhile
    t_start, cpu_start = time.perf_counter(), time.process_time()
    step, history = fit(model, train_set, lr=args.lr, batch_size=args.batch_size,
                        epochs=args.epochs, seed=args.seed,
                        deadline=t_start + 60 * args.time_limit if args.time_limit else None,
                        log=None if args.quiet or ranks.rank else
                        lambda line: print(line, flush=True), ranks=ranks)
    train_seconds = time.perf_counter() - t_start
    train_cpu_seconds = time.process_time() - cpu_start  # what the run got of a shared CPU
    if args.rank_of_job:  # rank 0 evaluates alone; the others leave
        train_cpu_seconds = ranks.total(train_cpu_seconds)
        model = getattr(model, "module", model)
        pg.destroy_process_group()
        if ranks.rank != 0:
            return None, None
    metrics, ips = evaluate(model, test_set)
    from shendu._bench_report import machine_info

    return {"arch": args.arch, "command": "shendu detect " + " ".join(
                a for a in args.argv if a != "--rank-of-job"),
            "train_images": len(train_set), "test_images": len(test_set),
            "steps": step, "batch_size": args.batch_size, "lr": args.lr,
            "nproc": args.nproc, "threads": args.threads,
            "canvas_size": args.canvas_size, "train_seconds": round(train_seconds, 3),
            "train_cpu_seconds": round(train_cpu_seconds, 3),  # a short run takes < 0.05 s
            "inference_images_per_s": round(ips, 1), "metrics": metrics,
            "history": history, "commit": commit, "machine": machine_info()}, model


def _save_picture(model, dataset, path) -> None:
    import shendu as sd
    from shendu.vision.draw import draw_bounding_boxes

    model.eval()
    tiles = []
    with sd.no_grad():
        for i in range(4):
            image, _ = dataset[i]
            det = model(image[None])[0]
            keep = np.flatnonzero(np.asarray(det["scores"]) > 0.3)
            names = [dataset.classes[int(c)] for c in np.asarray(det["labels"])[keep]]
            rgb = (image * 255).to(sd.uint8).expand(3, *image.shape[1:])
            tiles.append(draw_bounding_boxes(rgb, det["boxes"][keep], names).numpy()
                         if len(keep) else rgb.numpy())
    from PIL import Image

    Image.fromarray(np.concatenate(tiles, 2).transpose(1, 2, 0)).save(path)


def main(argv=None) -> int:
    argv = list(argv or [])
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    if args.command == "evaluate":
        return _evaluate_saved(args)
    args.argv = argv
    out = args.out or os.path.join("runs", time.strftime("detect-%Y%m%d-%H%M%S"))
    if args.nproc != 1 and not args.rank_of_job:
        return _launch_ranks(args, argv, os.path.abspath(out))
    os.makedirs(out, exist_ok=True)
    import shendu as sd

    before = sd.get_num_threads()
    try:
        result, model = train(args)
    finally:  # the thread count is the process's: leave it as found (tests share one)
        sd.set_num_threads(before)
    if result is None:  # a rank other than 0 of a data-parallel job
        return 0
    from shendu.vision.datasets import CanvasDetection

    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(result, f, indent=1)
    sd.save(model.state_dict(), os.path.join(out, "model.sd"))
    test_set = CanvasDetection("test", 4, sources=tuple(args.sources.split(",")),
                               canvas_size=args.canvas_size, seed=args.seed,
                               root=args.data_dir)
    _save_picture(model, test_set, os.path.join(out, "detections.png"))
    m = result["metrics"]
    print(f"{args.arch}: test mAP@0.5 {m['map_50']:.3f}, COCO mAP {m['map']:.3f} "
          f"({result['test_images']} images); trained {result['train_seconds']:.0f}s, "
          f"inference {result['inference_images_per_s']:.1f} images/s; wrote {out}")
    return 0


def _launch_ranks(args, argv: list[str], out: str) -> int:
    """``--nproc N``: run this command on N ranks through ``shendu run`` (its mpiexec,
    rank prefixes and clean-up), each rank marked as one of the job."""
    from .cli import _without
    from .distributed import launcher

    if args.nproc < 1 or args.batch_size % args.nproc:
        print(f"shendu detect train: error: --nproc must be at least 1 and split "
              f"--batch-size {args.batch_size} (the global batch) evenly; got --nproc "
              f"{args.nproc}", file=sys.stderr)
        return 2
    threads = str(args.threads or 1)
    entry = os.path.join(os.path.dirname(os.path.abspath(__file__)), "train",
                         "_rank_entry.py")
    rest = _without(argv, ("--nproc", "--out", "--threads"))
    return launcher.main(["--nproc", str(args.nproc), "--threads", threads, entry,
                          "detect", *rest, "--out", out, "--threads", threads,
                          "--nproc", str(args.nproc), "--rank-of-job"])


def _evaluate_saved(args) -> int:
    """``shendu detect evaluate model.sd``: the saved detector on the test (or val) split."""
    import shendu as sd
    from shendu.vision.datasets import CanvasDetection

    trained = os.path.join(os.path.dirname(os.path.abspath(args.model)), "results.json")
    saved = {}
    if os.path.exists(trained):
        with open(trained) as f:
            saved = json.load(f)
    arch = args.arch or saved.get("arch")
    if arch is None:
        print(f"shendu detect evaluate: error: no --arch given and no results.json beside "
              f"{args.model} to read it from", file=sys.stderr)
        return 2
    canvas = args.canvas_size or saved.get("canvas_size", 128)
    sources = args.sources or _option(saved.get("command", ""), "--sources",
                                      "fashion-mnist,digits")
    seed = args.seed if args.seed is not None else int(_option(saved.get("command", ""),
                                                               "--seed", "0"))
    data = CanvasDetection(args.split, args.test_images, canvas_size=canvas, seed=seed,
                           sources=tuple(sources.split(",")), root=args.data_dir)
    model = build_model(arch, data.num_classes, canvas)
    model.load_state_dict(sd.load(args.model))
    before = sd.get_num_threads()
    try:
        if args.threads:
            sd.set_num_threads(args.threads)
        metrics, ips = evaluate(model, data)
    finally:
        sd.set_num_threads(before)
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"model": args.model, "arch": arch, "split": args.split,
                       "images": len(data), "canvas_size": canvas, "threads": args.threads,
                       "inference_images_per_s": round(ips, 1), "metrics": metrics,
                       "commit": _git_commit()}, f, indent=1)
    print(f"{arch} on {len(data)} {args.split} canvases: mAP@0.5 {metrics['map_50']:.3f}, "
          f"COCO mAP {metrics['map']:.3f}, inference {ips:.1f} images/s "
          f"({args.threads or before} threads)")
    print(f"{'class':<14} {'AP@0.5':>7} {'AP':>7}")
    for name, ap in metrics["per_class"].items():
        print(f"{name:<14} {ap['ap50']:>7.3f} {ap['ap']:>7.3f}")
    return 0


def _option(command: str, name: str, default: str) -> str:
    """The value of ``name`` in a recorded command line, else ``default``.

    >>> _option("shendu detect train --seed 3 --arch ssd", "--seed", "0")
    '3'
    """
    words = command.split()
    return words[words.index(name) + 1] if name in words[:-1] else default
