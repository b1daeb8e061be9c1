"""Semantic segmentation of the canvas dataset with FCN-8s or U-Net; reports test mIoU and
pixel accuracy and writes a results file (command, commit, machine, CPU time).

    python examples/segment_canvas.py --arch unet --time-limit 40 \
        --out examples/results/segment_unet.json

``--nproc 2`` trains on two processes of one thread each (MPI, DistributedDataParallel),
which on two cores takes more steps a minute than one process with two threads;
``--load W --epochs 0 --scales 0.75,1,1.25`` scores saved weights with multi-scale inference.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import shendu as sd  # noqa: E402
import shendu.distributed as dist  # noqa: E402
from shendu._bench_report import (
    _git_commit,  # noqa: E402
    machine_info,  # noqa: E402
)
from shendu.metrics import JaccardIndex  # noqa: E402
from shendu.nn import functional as F  # noqa: E402
from shendu.train.data_parallel import Ranks  # noqa: E402
from shendu.vision.datasets import CanvasDetection, CanvasSegmentation  # noqa: E402
from shendu.vision.segmentation import FCN, UNet, predict_multiscale  # noqa: E402


def dice_loss(logits, target):
    """``1 -`` the soft Dice coefficient averaged over the classes present in the batch
    (target or prediction): probabilities ``p`` against one-hot ``y``, per class
    ``2 sum(p y) / (sum p + sum y)``."""
    c = logits.shape[1]
    probs = sd.softmax(logits, 1)
    onehot = np.eye(c, dtype=np.float32)[np.asarray(target)].transpose(0, 3, 1, 2)
    y = sd.tensor(onehot, dtype=probs.dtype)
    inter = (probs * y).sum((0, 2, 3))
    denom = probs.sum((0, 2, 3)) + y.sum((0, 2, 3))
    present = sd.tensor((onehot.sum((0, 2, 3)) > 0).astype(np.float32), dtype=probs.dtype)
    dice = (2 * inter + 1) / (denom + 1)
    return 1 - (dice * present).sum() / present.sum()


def init_head_to_prior(model, dataset, images: int = 200):
    """Start the last layer's biases at the log class frequencies (of the first ``images``
    training canvases), so that the first steps need not spend themselves learning that
    ~90% of the pixels are background (the focal-loss paper's prior initialisation)."""
    head = model.head if hasattr(model, "head") else None
    if head is None or getattr(head, "bias", None) is None:
        return
    counts = np.ones(dataset.num_classes)
    for i in range(min(images, len(dataset))):
        counts += np.bincount(np.asarray(dataset[i][1]).ravel(),
                              minlength=dataset.num_classes)
    with sd.no_grad():
        head.bias.copy_(sd.tensor(np.log(counts / counts.sum()).astype(np.float32)))


class EncoderClassifier(sd.nn.Module):
    """A U-Net's encoder, global average pooling and a linear layer: the classifier whose
    training starts the segmenter's encoder (the FCN recipe: begin from a classification
    network, then fine-tune it fully convolutional)."""

    def __init__(self, unet: UNet, num_classes: int):
        super().__init__()
        # only the encoder's layers are registered: the decoder takes no part, and
        # DistributedDataParallel expects a gradient for every parameter of what it wraps
        self.down, self.fc = unet.down, sd.nn.Linear(unet.widths[-1], num_classes)
        self._unet = (unet,)

    def forward(self, x):
        _, bottom = self._unet[0].encode(x)
        return self.fc(bottom.mean((2, 3)))


@contextlib.contextmanager
def running_stats_kept(model: sd.nn.Module):
    """Batch norm normalises with the batch's statistics but leaves its running ones as
    they are (momentum 0): the auxiliary single-object batches must not pull the
    statistics that evaluation on whole canvases uses."""
    kinds = (sd.nn.BatchNorm1d, sd.nn.BatchNorm2d, sd.nn.BatchNorm3d)
    norms = [m for m in model.modules() if isinstance(m, kinds)]
    saved = [m.momentum for m in norms]
    for m in norms:
        m.momentum = 0.0
    try:
        yield
    finally:
        for m, momentum in zip(norms, saved):
            m.momentum = momentum


def object_canvases(seg_set: CanvasSegmentation, split: str, n: int) -> CanvasDetection:
    """Single objects drawn as on ``seg_set``'s canvases (the same sources and range of
    sizes, with clutter) on canvases just large enough for the largest, for pre-training."""
    side = max(16, -(-seg_set.scale[1] // 16) * 16)   # a multiple of 2 ** 4 poolings
    return CanvasDetection(split, n, canvas_size=side, sources=seg_set.sources,
                           objects=(1, 1), scale=seg_set.scale, seed=seg_set.seed)


def object_batch(data: CanvasDetection, indices):
    """Images ``(N, 1, S, S)`` and class labels ``(N,)`` of single-object canvases."""
    pairs = [data.generate(int(i)) for i in indices]
    labels = [int(t["labels"][0]) if len(t["labels"]) else 0 for _, t in pairs]
    return sd.tensor(np.stack([c for c, _ in pairs])[:, None]), sd.tensor(labels)


def pretrain_encoder(unet: UNet, seg_set: CanvasSegmentation, minutes: float,
                     batch_size: int = 64, lr: float = 2e-3, seed: int = 0,
                     ranks: Ranks | None = None) -> dict:
    """Train ``unet``'s encoder as a classifier of single objects for ``minutes`` (Adam,
    cosine decay over the time); returns steps, seconds and the accuracy on 1000
    validation objects. In a data-parallel job each rank takes its share of every batch."""
    ranks = ranks or Ranks()
    train = object_canvases(seg_set, "train", 10 ** 7)
    val = object_canvases(seg_set, "val", 1000)
    net = EncoderClassifier(unet, seg_set.num_classes)
    opt = sd.optim.Adam(net.parameters(), lr=lr)
    net = ranks.wrap(net)
    rng, t0, step = np.random.default_rng(seed), time.perf_counter(), 0
    net.train()
    while (used := ranks.agreed((time.perf_counter() - t0) / (60 * minutes))) < 1:
        for g in opt.param_groups:
            g["lr"] = lr * 0.5 * (1 + np.cos(np.pi * used))
        x, y = object_batch(train, ranks.share(rng.integers(0, len(train), batch_size)))
        loss = F.cross_entropy(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        step += 1
    net.eval()
    correct = 0
    with sd.no_grad():
        for s in range(0, len(val), 250):
            x, y = object_batch(val, range(s, min(s + 250, len(val))))
            correct += int((net(x).argmax(1) == y).sum())
    unet.train()
    seconds = round(time.perf_counter() - t0, 1)
    return {"steps": step, "batch_size": batch_size, "seconds": seconds,
            "val_accuracy": correct / len(val)}


def connected_components(mask: np.ndarray) -> np.ndarray:
    """Label the 4-connected components of a boolean ``(H, W)`` mask: each foreground pixel
    gets the smallest flat index in its component, background ``-1``. Labels spread to
    neighbours by minimum, and each pass also jumps every label to its own pixel's label
    (a pointer jump), so a long component takes few passes."""
    h, w = mask.shape
    none = h * w   # larger than every index: background never wins a minimum
    lab = np.where(mask, np.arange(h * w).reshape(h, w), none)
    down, right = mask[1:] & mask[:-1], mask[:, 1:] & mask[:, :-1]
    while True:
        new = lab.copy()
        new[1:] = np.where(down, np.minimum(new[1:], lab[:-1]), new[1:])
        new[:-1] = np.where(down, np.minimum(new[:-1], lab[1:]), new[:-1])
        new[:, 1:] = np.where(right, np.minimum(new[:, 1:], new[:, :-1]), new[:, 1:])
        new[:, :-1] = np.where(right, np.minimum(new[:, :-1], new[:, 1:]), new[:, :-1])
        new[mask] = new.reshape(-1)[new[mask]]
        if np.array_equal(new, lab):
            return np.where(mask, lab, -1)
        lab = new


def component_vote(logits: np.ndarray, min_share: float) -> np.ndarray:
    """Class map ``(H, W)`` from one image's scores ``(C, H, W)``: the per-pixel argmax,
    then each connected object region (non-background pixels) takes the class with the
    most probability summed over the region, when that class already holds at least
    ``min_share`` of the region's pixels (so two touching objects of different classes,
    each about half the region, keep their own pixels)."""
    pred = logits.argmax(0)
    z = np.exp(logits - logits.max(0))
    probs = z / z.sum(0)
    lab = connected_components(pred > 0)
    out = pred.copy()
    for comp in np.unique(lab[lab >= 0]):
        region = lab == comp
        top = 1 + int(probs[1:, region].sum(1).argmax())
        if (pred[region] == top).mean() >= min_share:
            out[region] = top
    return out


def error_breakdown(confmat: np.ndarray) -> dict:
    """Where the object pixels go wrong, from the test confusion matrix (rows: truth): an
    object pixel called background (``missed``), a background pixel called an object
    (``spilled``, per object pixel), an object pixel given another object's class
    (``confused``); and ``object_iou``, the IoU of objects against background with the
    classes ignored (what mIoU would approach if no class were confused)."""
    obj = confmat[1:].sum()
    missed, spilled = confmat[1:, 0].sum(), confmat[0, 1:].sum()
    confused = obj - missed - np.trace(confmat[1:, 1:])
    return {"missed": float(missed / obj), "spilled": float(spilled / obj),
            "confused": float(confused / obj),
            "object_iou": float((obj - missed) / (obj + spilled))}


def scores(metric: JaccardIndex) -> dict:
    """What a results file keeps of one way of predicting: mIoU, pixel accuracy, IoU per
    class, the error breakdown and the confusion matrix (rows: truth, columns: prediction)."""
    return {"test_miou": metric.compute(), "test_pixel_accuracy": metric.pixel_accuracy(),
            "per_class_iou": [None if np.isnan(v) else float(v) for v in metric.per_class()],
            "pixel_errors": error_breakdown(metric.confmat),
            "confusion_matrix": metric.confmat.tolist()}


def save_picture(model, test_set, path: str, count: int = 4) -> None:
    """The first ``count`` canvases of ``test_set`` with their true masks (top row) and the
    model's (bottom row), drawn by ``draw_segmentation_masks`` in one color per class,
    with a legend naming the classes shown."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import hsv_to_rgb
    from matplotlib.patches import Patch

    from shendu.vision.draw import draw_segmentation_masks

    names = test_set.classes
    # one hue per class, neighbouring classes far apart on the circle (8 shares no factor
    # with 21 or 11 classes); no grays, since the canvases are gray
    hues = [(8 * k % len(names)) / len(names) for k in range(len(names))]
    colors = [tuple(int(255 * v) for v in hsv_to_rgb((h, 0.75, 1.0))) for h in hues]
    count = min(count, len(test_set))
    drawn = [test_set.generate(i) for i in range(count)]
    model.eval()
    with sd.no_grad():
        predicted = model(sd.tensor(np.stack([c[None] for c, _ in drawn]))).numpy().argmax(1)
    fig, axes = plt.subplots(2, count, figsize=(2.4 * count, 5.2), squeeze=False)
    shown = set()
    for col, ((canvas, target), guess) in enumerate(zip(drawn, predicted)):
        image = sd.tensor(np.repeat(np.round(canvas * 255).astype(np.uint8)[None], 3, 0))
        for row, labels in enumerate((test_set.semantic_mask(target), guess)):
            present = [int(k) for k in np.unique(labels) if k > 0]
            shown.update(present)
            if present:
                image_row = draw_segmentation_masks(
                    image, sd.tensor(np.stack([labels == k for k in present])), alpha=0.6,
                    colors=[colors[k] for k in present])
            else:
                image_row = image
            axes[row, col].imshow(image_row.numpy().transpose(1, 2, 0))
            axes[row, col].set_xticks([])
            axes[row, col].set_yticks([])
    axes[0, 0].set_ylabel("true masks")
    axes[1, 0].set_ylabel("predicted")
    fig.legend(handles=[Patch(color=np.array(colors[k]) / 255, label=names[k])
                        for k in sorted(shown)], loc="lower center", ncol=5, fontsize=8,
               bbox_to_anchor=(0.5, -0.06))
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--arch", choices=["fcn", "unet"], default="unet")
    p.add_argument("--sources", default="fashion-mnist,digits")
    p.add_argument("--canvas-size", type=int, default=128)
    p.add_argument("--train-images", type=int, default=2000)
    p.add_argument("--test-images", type=int, default=300)
    p.add_argument("--eval-split", choices=["test", "val"], default="test",
                   help="where to measure: 'val' (from the sources' training images) for "
                   "choosing settings, 'test' for the number to report (default: test)")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=1e-2)
    p.add_argument("--time-limit", type=float, default=None, metavar="MIN")
    p.add_argument("--loss", choices=["ce", "ce+dice"], default="ce+dice",
                   help="cross-entropy alone, or plus a soft Dice loss over the classes "
                   "(which weighs every class equally, not by its pixel count: the "
                   "background is ~90%% of the pixels) (default: ce+dice)")
    p.add_argument("--widths", default="16,32,64,128",
                   help="U-Net channels per level, finest first (default: 16,32,64,128)")
    p.add_argument("--deep-scores", action="store_true",
                   help="U-Net: score the classes at every decoder level and sum them "
                   "upsampled (FCN-8s's skips), not only at the finest level")
    p.add_argument("--pretrain", type=float, default=0, metavar="MIN",
                   help="U-Net: first train its encoder for MIN minutes as a classifier of "
                   "single objects drawn as on the canvases (FCN's start from a "
                   "classification network); the minutes count in --time-limit")
    p.add_argument("--aux-classify", type=float, default=0, metavar="WEIGHT",
                   help="U-Net: at every segmentation step also classify --aux-batch "
                   "single objects from the encoder (global average pooling and a linear "
                   "layer, as in --pretrain) and add WEIGHT x that cross-entropy to the "
                   "loss, so the encoder keeps telling the objects apart while it learns "
                   "to segment (default: 0, off)")
    p.add_argument("--aux-batch", type=int, default=16,
                   help="single objects per step for --aux-classify (default: 16)")
    p.add_argument("--threads", type=int, default=1,
                   help="BLAS threads (per process with --nproc) (default: 1)")
    p.add_argument("--nproc", type=int, default=1, metavar="N",
                   help="train on N processes of --threads threads each, data-parallel "
                   "(DistributedDataParallel through 'shendu run', MPI): each takes "
                   "--batch-size / N canvases of every batch, so the training is the one "
                   "process's; rank 0 evaluates and writes the files (default: 1)")
    p.add_argument("--rank-of-job", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--save", default=None, metavar="PATH",
                   help="also write the trained weights (sd.save of the state dict)")
    p.add_argument("--load", default=None, metavar="PATH",
                   help="start from these weights (written by --save, same --arch, "
                   "--widths, --deep-scores); with --epochs 0, only evaluate them")
    p.add_argument("--vote", type=float, default=None, metavar="SHARE",
                   help="also score a region vote: each connected object region of the "
                   "prediction takes its most probable class when that class holds at "
                   "least SHARE of the region's pixels (e.g. 0.5)")
    p.add_argument("--scales", default=None, metavar="S1,S2,...",
                   help="also score multi-scale inference: the class probabilities "
                   "averaged over the test images resized by each factor (e.g. "
                   "0.75,1,1.25; predict_multiscale)")
    p.add_argument("--flip", action="store_true",
                   help="with --scales: also average over left-right mirror images")
    p.add_argument("--seed", type=int, default=0,
                   help="seeds the canvases (train and test) and the model (default: 0)")
    p.add_argument("--order-seed", type=int, default=None,
                   help="seeds the order the training canvases are drawn in (default: "
                   "--seed); give a new one when continuing from --load, so that the run "
                   "sees canvases the earlier runs did not, on the same test canvases")
    p.add_argument("--picture", default=None, metavar="PNG",
                   help="also draw the first four evaluated canvases with their true and "
                   "predicted masks into this PNG")
    p.add_argument("--out", default="examples/results/segment_canvas.json")
    return p


def parse_args(argv=None):
    p = build_parser()
    args = p.parse_args(argv)
    for flag in ("pretrain", "aux_classify"):  # before any data is loaded
        if getattr(args, flag) and args.arch != "unet":
            p.error(f"--{flag.replace('_', '-')} needs --arch unet")
    if args.flip and args.scales is None:
        p.error("--flip needs --scales (e.g. --scales 1 --flip)")
    if args.nproc < 1 or args.batch_size % args.nproc:
        p.error(f"--nproc must be at least 1 and split --batch-size {args.batch_size} (the "
                f"global batch) evenly; got --nproc {args.nproc}")
    if args.nproc > 1 and args.aux_classify:
        p.error("--aux-classify runs in one process only (drop --nproc)")
    args.scales = None if args.scales is None else tuple(float(v)
                                                         for v in args.scales.split(","))
    return args


def launch_ranks(args, argv) -> int:
    """``--nproc N``: this script again on N ranks through ``shendu run`` (its mpiexec,
    rank-prefixed output and clean-up), each told it is one rank of the job."""
    from shendu.cli import _without
    from shendu.distributed import launcher

    rest = _without(list(argv), ("--nproc", "--threads", "--out"))
    return launcher.main(["--nproc", str(args.nproc), "--threads", str(args.threads),
                          os.path.abspath(__file__), *rest, "--threads", str(args.threads),
                          "--out", os.path.abspath(args.out), "--nproc", str(args.nproc),
                          "--rank-of-job"])


def build_model(args, num_classes: int):
    if args.arch == "fcn":
        return FCN(num_classes)
    return UNet(1, num_classes, widths=tuple(int(w) for w in args.widths.split(",")),
                deep_scores=args.deep_scores)


def train(args, model, train_set, ranks: Ranks) -> dict:
    """Pre-training (``--pretrain``), then Adam on the masks, the learning rate decayed to
    zero along a cosine over the steps or the time left, whichever ends first."""
    t0, cpu0 = time.perf_counter(), time.process_time()
    deadline = t0 + 60 * args.time_limit if args.time_limit else None
    pretrained = None
    if args.pretrain:
        pretrained = pretrain_encoder(model, train_set, args.pretrain, seed=args.seed,
                                      ranks=ranks)
        if ranks.rank == 0:
            print(f"pre-trained the encoder: {pretrained}", flush=True)
    aux = None
    params = list(model.parameters())
    if args.aux_classify:
        aux = EncoderClassifier(model, train_set.num_classes)   # shares the encoder
        params += list(aux.fc.parameters())
        aux_train = object_canvases(train_set, "train", 10 ** 7)
        aux_rng = np.random.default_rng(args.seed + 1)   # the canvases' order stays as without
    opt = sd.optim.Adam(params, lr=args.lr)
    net = ranks.wrap(model)
    order_seed = args.seed if args.order_seed is None else args.order_seed
    rng = np.random.default_rng(order_seed)     # the same order on every rank
    steps_per_epoch = len(train_set) // args.batch_size
    total, step = steps_per_epoch * args.epochs, 0
    t_seg = time.perf_counter()   # the segmentation's own cosine starts after pre-training
    next_report = t_seg + 60
    history = []

    def time_used() -> float:
        if not deadline:
            return 0.0
        return ranks.agreed((time.perf_counter() - t_seg) / (deadline - t_seg))

    for epoch in range(args.epochs):
        model.train()
        order, losses = rng.permutation(len(train_set)), []
        for b in range(steps_per_epoch):
            used = time_used()
            if used >= 1:
                break
            progress = max(step / total, used)
            for g in opt.param_groups:
                g["lr"] = args.lr * 0.5 * (1 + np.cos(np.pi * min(progress, 1.0)))
            batch = ranks.share(order[b * args.batch_size:(b + 1) * args.batch_size])
            pairs = [train_set[int(i)] for i in batch]
            x = sd.stack([im for im, _ in pairs])
            y = sd.stack([m for _, m in pairs])
            logits = net(x)
            loss = F.cross_entropy(logits, y)
            if args.loss == "ce+dice":
                loss = loss + dice_loss(logits, y)
            if aux is not None:
                xo, yo = object_batch(aux_train, aux_rng.integers(0, len(aux_train),
                                                                  args.aux_batch))
                with running_stats_kept(model):
                    loss = loss + args.aux_classify * F.cross_entropy(aux(xo), yo)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(float(loss))
            step += 1
            if ranks.rank == 0 and time.perf_counter() > next_report:   # a line a minute
                next_report += 60
                print(f"step {step}: loss {np.mean(losses[-100:]):.4f} (last 100"
                      f"{', rank 0' * (ranks.size > 1)}), {time.perf_counter() - t0:.0f} s",
                      flush=True)
        history.append({"epoch": epoch + 1, "loss": ranks.mean(losses),
                        "seconds": round(time.perf_counter() - t0, 1)})
        if ranks.rank == 0:
            print(history[-1], flush=True)
        if time_used() >= 1:
            break
    return {"steps": step, "train_seconds": round(time.perf_counter() - t0, 1),
            "train_cpu_seconds": round(ranks.total(time.process_time() - cpu0), 1),
            "pretrain": pretrained, "history": history,
            "aux_classify": {"weight": args.aux_classify, "batch": args.aux_batch}
            if aux is not None else None}


def box_covered(boxes: np.ndarray) -> np.ndarray:
    """For each box ``(x1, y1, x2, y2)``, the largest share of its area that another box
    covers (0 for a box that overlaps none)."""
    lt = np.maximum(boxes[:, None, :2], boxes[None, :, :2])
    rb = np.minimum(boxes[:, None, 2:], boxes[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    np.fill_diagonal(inter, 0)
    area = np.prod(boxes[:, 2:] - boxes[:, :2], axis=1)
    return (inter / area[:, None]).max(1) if len(boxes) else np.zeros(0)


def object_votes(logits: np.ndarray, target: dict) -> tuple[list, np.ndarray]:
    """Per ground-truth object of one canvas: ``(label, voted, covered)``, ``voted`` the
    object class with the most probability summed over the object's visible pixels (the
    background left out: this asks how well the objects are *classified*), ``covered``
    the share of its box under another object's box; and the class map in which every
    pixel that the argmax gives to some object takes its true object's vote (what the
    mIoU would be if each object were given one class, which needs the true objects)."""
    z = np.exp(logits - logits.max(0))
    probs = z / z.sum(0)
    pred = logits.argmax(0)
    voted_map, out = pred.copy(), []
    covered = box_covered(np.asarray(target["boxes"], np.float64))
    for mask, label, cover in zip(target["masks"].astype(bool), target["labels"], covered):
        if not mask.any():   # hidden under later objects
            continue
        voted = 1 + int(probs[1:, mask].sum(1).argmax())
        out.append((int(label), voted, float(cover)))
        voted_map[mask & (pred > 0)] = voted
    return out, voted_map


def object_accuracy(objects: list, sources: list[str]) -> dict:
    """How often ``object_votes`` is right, per source (labels 1-10 the first source's,
    11-20 the second's) and by how much of the object's box another box covers."""
    buckets = {"box_apart": (0.0, 0.0), "box_covered_up_to_0.2": (1e-9, 0.2),
               "box_covered_over_0.2": (0.2 + 1e-9, 1.0)}
    out = {}
    for k, name in enumerate(sources):
        mine = [(voted == label, cover) for label, voted, cover in objects
                if (label - 1) // 10 == k]
        entry = {"count": len(mine),
                 "classified_right": float(np.mean([r for r, _ in mine])) if mine else None}
        for bucket, (lo, hi) in buckets.items():
            right = [r for r, cover in mine if lo <= cover <= hi]
            entry[bucket] = {"count": len(right),
                             "classified_right": float(np.mean(right)) if right else None}
        out[name] = entry
    return out


def evaluate(args, model, test_set) -> dict:
    """The test metrics of the per-pixel argmax, of one class per true object (a
    diagnosis, ``object_votes``), and of ``--vote`` and ``--scales``."""
    c = test_set.num_classes
    model.eval()
    metric, voted, multi, per_object = (JaccardIndex(c), JaccardIndex(c), JaccardIndex(c),
                                        JaccardIndex(c))
    multiple = 32 if args.arch == "fcn" else 2 ** model.depth   # sides that pool evenly
    objects = []
    with sd.no_grad():
        for s in range(0, len(test_set), 32):
            drawn = [test_set.generate(i) for i in range(s, min(s + 32, len(test_set)))]
            images = sd.tensor(np.stack([canvas[None] for canvas, _ in drawn]))
            masks = sd.tensor(np.stack([test_set.semantic_mask(t) for _, t in drawn]))
            logits = model(images)
            metric.update(logits, masks)
            scores_np = logits.numpy()
            maps = []
            for lg, (_, target) in zip(scores_np, drawn):
                votes, voted_map = object_votes(lg, target)
                objects += votes
                maps.append(voted_map)
            per_object.update(np.stack(maps), masks)
            if args.vote is not None:
                voted.update(np.stack([component_vote(lg, args.vote) for lg in scores_np]),
                             masks)
            if args.scales is not None:
                multi.update(predict_multiscale(model, images, args.scales, flip=args.flip,
                                                size_multiple=multiple), masks)
    result = scores(metric)
    sources = args.sources.split(",")
    result["objects"] = object_accuracy(objects, sources)
    result["objects"]["one_class_per_true_object"] = {
        "test_miou": per_object.compute(), "pixel_errors": error_breakdown(per_object.confmat)}
    if args.vote is not None:
        result["vote"] = {"min_share": args.vote, **scores(voted)}
    if args.scales is not None:
        result["multiscale"] = {"scales": list(args.scales), "flip": args.flip,
                                **scores(multi)}
    return result


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    if args.nproc > 1 and not args.rank_of_job:
        return launch_ranks(args, argv)
    ranks = Ranks()
    if args.rank_of_job:
        dist.init_process_group("mpi")
        ranks = Ranks.of_process_group()
    sd.manual_seed(args.seed)
    threads_before = sd.get_num_threads()
    sd.set_num_threads(args.threads)
    kw = {"sources": tuple(args.sources.split(",")), "canvas_size": args.canvas_size,
          "seed": args.seed}
    train_set = CanvasSegmentation("train", args.train_images, **kw)
    test_set = CanvasSegmentation(args.eval_split, args.test_images, **kw)
    model = build_model(args, train_set.num_classes)
    if args.load:
        model.load_state_dict(sd.load(args.load))
    else:
        init_head_to_prior(model, train_set)
    commit = _git_commit()   # of the code that trains, even if the checkout moves on
    trained = train(args, model, train_set, ranks)
    if args.rank_of_job:   # rank 0 evaluates and writes alone; the others leave
        dist.destroy_process_group()
    if ranks.rank != 0:
        sd.set_num_threads(threads_before)
        return 0
    result = {"arch": args.arch, "command": "python examples/segment_canvas.py " +
              " ".join(a for a in argv if a != "--rank-of-job"),
              "train_images": len(train_set), "test_images": len(test_set),
              "eval_split": args.eval_split, "nproc": args.nproc, "threads": args.threads,
              **{k: trained[k] for k in ("steps", "train_seconds", "train_cpu_seconds")},
              **evaluate(args, model, test_set), "load": args.load,
              **{k: trained[k] for k in ("pretrain", "aux_classify", "history")},
              "commit": commit, "machine": machine_info()}
    sd.set_num_threads(threads_before)  # leave the process as found (tests call main)
    if args.save:
        sd.save(model.state_dict(), args.save)
    if args.picture:
        save_picture(model, test_set, args.picture)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
    print(f"{args.arch}: test mIoU {result['test_miou']:.3f}, pixel accuracy "
          f"{result['test_pixel_accuracy']:.3f} after {result['steps']} steps "
          f"({result['train_seconds']:.0f}s, {result['train_cpu_seconds']:.0f} CPU-s); "
          f"wrote {args.out}")
    print("object pixels: " + ", ".join(f"{k} {v:.3f}" for k, v in
                                        result["pixel_errors"].items()))
    objects = result["objects"]
    print("objects classified right (most probability over their pixels): " + ", ".join(
        f"{k} {v['classified_right'] or 0:.3f} of {v['count']}" for k, v in objects.items()
        if "count" in v) + f"; one class per true object would give mIoU "
        f"{objects['one_class_per_true_object']['test_miou']:.3f}")
    for key, what in (("vote", f"the region vote (share {args.vote})"),
                      ("multiscale", f"scales {args.scales}{' and mirrors' * args.flip}")):
        if key in result:
            print(f"with {what}: mIoU {result[key]['test_miou']:.3f}, object pixels: " +
                  ", ".join(f"{k} {v:.3f}" for k, v in result[key]["pixel_errors"].items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
