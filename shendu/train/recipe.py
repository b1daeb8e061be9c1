"""The standard image-classification recipe behind ``shendu train`` and ``shendu search``.

Steps, following the course notes' workflow (seed 000 §5 and §9): carve a stratified dev
set out of the training data; fit the input normalisation on the training part only and
reuse it for dev and test; train with a dev evaluation after every epoch; save a
resumable checkpoint each epoch; finally measure train, dev and test error, so the
bias/variance diagnosis can be read off ``metrics.json``.

>>> cfg = resolve_config({"optimizer": "sgd"})
>>> cfg["model"], cfg["dataset"], cfg["lr"]
('lenet5', 'digits', 0.05)
"""
from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

DEFAULTS: dict[str, Any] = {
    "model": "lenet5", "dataset": "digits", "data_dir": None, "download": False,
    "hidden": "512,512", "val_fraction": 0.1, "limit": None, "epochs": 20,
    "batch_size": 32, "lr": None, "optimizer": "adam", "momentum": 0.9,
    "weight_decay": 0.0, "dropout": None, "schedule": "cosine", "augment": True,
    "patience": None, "seed": 0, "device": None, "threads": 1, "width": None,
    "resize": None,
}
# name -> (class name in shendu.optim, default learning rate)
OPTIMIZERS = {"sgd": ("SGD", 0.05), "adam": ("Adam", 2e-3), "adamw": ("AdamW", 2e-3),
              "rmsprop": ("RMSprop", 1e-3), "adagrad": ("Adagrad", 0.02),
              "adadelta": ("Adadelta", 1.0)}
SCHEDULES = ["cosine", "step", "plateau", "none"]

__all__ = ["DEFAULTS", "OPTIMIZERS", "SCHEDULES", "resolve_config", "load_datasets",
           "make_loaders", "build_model", "build_optimizer", "build_scheduler",
           "run_training"]


def resolve_config(overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """``DEFAULTS`` updated with the non-None ``overrides``; ``lr`` filled in per optimizer."""
    cfg = dict(DEFAULTS)
    cfg.update({k: v for k, v in (overrides or {}).items() if v is not None and k in DEFAULTS})
    if cfg["optimizer"] not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {cfg['optimizer']!r}; choose from "
                         f"{sorted(OPTIMIZERS)}")
    if cfg["schedule"] not in SCHEDULES:
        raise ValueError(f"unknown schedule {cfg['schedule']!r}; choose from {SCHEDULES}")
    if cfg["lr"] is None:
        cfg["lr"] = OPTIMIZERS[cfg["optimizer"]][1]
    cfg["dropout"] = _dropout(cfg["model"], cfg["dropout"])
    for key in ("epochs", "batch_size", "seed", "threads"):
        cfg[key] = int(cfg[key])
    if str(cfg["device"] or "").startswith("cuda"):  # fail before loading any data
        from ..backend import cuda
        try:
            cuda.require()
        except RuntimeError as exc:
            raise ValueError(str(exc)) from None
    return cfg


# the dense layers' dropout of shendu's own models unless given (the zoo's models keep
# their constructors' own, see ``zoo.default_dropout``)
OWN_DROPOUT = 0.3


def _dropout(model: str, given):
    """The dropout probability ``model`` trains with: ``given`` if set, else its default
    (None for a zoo model without dropout, which refuses a given one)."""
    from ..vision.models import zoo
    if model in ("lenet5", "lenet5-classic", "mlp") or model not in zoo.list_models():
        return OWN_DROPOUT if given is None else given
    default = zoo.default_dropout(model)
    if given is not None and default is None:
        raise ValueError(f"--dropout: {model} has no dropout layers (leave the option out)")
    return default if given is None else given


def load_datasets(cfg: dict) -> tuple:
    """``(train_dataset, test_dataset)`` for ``cfg['dataset']``."""
    from ..data.datasets import CIFAR10, MNIST, Digits, FashionMNIST

    name, root = cfg["dataset"], cfg["data_dir"]
    if name == "digits":
        return Digits("train"), Digits("test")
    cls = {"mnist": MNIST, "fashion-mnist": FashionMNIST, "cifar10": CIFAR10}.get(name)
    if cls is None:
        raise ValueError(f"unknown dataset {name!r}; choose digits, mnist, fashion-mnist "
                         "or cifar10")
    download = bool(cfg.get("download"))
    return cls(root, train=True, download=download), cls(root, train=False, download=download)


def _augmentations(dataset: str, size: int) -> list:
    from ..data import transforms as T

    if dataset in ("digits", "mnist"):  # shifts only: a mirrored 2 is not a 2
        return [T.RandomCrop(size, padding=2)]
    return [T.RandomCrop(size, padding=4 if size >= 32 else 2), T.RandomHorizontalFlip()]


def _resize(size: int):
    """Bilinear resize of image batches to ``size`` x ``size`` (d2l enlarges Fashion-MNIST
    so that AlexNet, VGG and NiN, built for 224 px, keep a pixel after their pools)."""
    from ..data.transforms import Transform

    class Resize(Transform):
        def apply(self, x, generator=None):
            from .. import no_grad, tensor
            from ..nn.functional import interpolate
            x4 = x if x.ndim == 4 else x[None]
            with no_grad():
                out = interpolate(tensor(x4), size=(size, size), mode="bilinear",
                                  align_corners=False).numpy()
            return out if x.ndim == 4 else out[0]

    return Resize()


def make_loaders(cfg: dict, train_full, test,
                 world: tuple[int, int] | None = None) -> dict[str, Any]:
    """Stratified train/dev split, normalisation fit on train, and the three loaders.

    ``world=(rank, world_size)``: this rank's loaders for data-parallel training (see
    :mod:`shendu.train.data_parallel`): the training loader draws ``batch_size /
    world_size`` samples per step from a ``DistributedSampler`` (seeded with
    ``cfg['seed']``), the evaluation loaders hold every ``world_size``-th sample. Split,
    normalisation and ``sizes`` are the whole job's, the same on every rank."""
    from ..data import DataLoader, DistributedSampler, Subset, stratified_split
    from ..data import transforms as T

    images, labels = train_full.arrays()
    pool = np.arange(len(labels))
    test_idx = np.arange(len(test))
    if cfg["limit"]:
        rng = np.random.default_rng(cfg["seed"])
        pool = np.sort(rng.permutation(len(labels))[:cfg["limit"]])
        test_idx = np.sort(rng.permutation(len(test))[:cfg["limit"]])
    f = float(cfg["val_fraction"])
    tr, dev = stratified_split(labels[pool], (1 - f, f), seed=cfg["seed"])
    tr, dev = pool[tr], pool[dev]
    norm = T.Normalize.fit(images[tr], scale=1 / 255)
    size = images.shape[-1]
    aug = _augmentations(cfg["dataset"], size) if cfg["augment"] else []
    resize = [_resize(int(cfg["resize"]))] if cfg.get("resize") else []
    train_tf = T.Compose([T.ToTensor(), *aug, *resize, norm])
    eval_tf = T.Compose([T.ToTensor(), *resize, norm])
    shape = tuple(images.shape[1:])
    if resize:
        shape = (shape[0], int(cfg["resize"]), int(cfg["resize"]))
    dev_ = cfg["device"]
    sizes = (len(tr), len(dev), len(test_idx))
    train_eval_idx = tr[:5000]   # training images without augmentation: the final error
    if world is None:
        train = DataLoader(Subset(train_full, tr), batch_size=cfg["batch_size"],
                           shuffle=True, transform=train_tf, device=dev_)
    else:
        from .data_parallel import _split_batch, shard
        rank, size = world
        part = Subset(train_full, tr)
        sampler = DistributedSampler(part, size, rank, shuffle=True, seed=cfg["seed"])
        train = DataLoader(part, batch_size=_split_batch(cfg["batch_size"], size),
                           sampler=sampler, transform=train_tf, device=dev_)
        dev, train_eval_idx, test_idx = (shard(i, rank, size)
                                         for i in (dev, train_eval_idx, test_idx))
    return {
        "train": train,
        "dev": DataLoader(Subset(train_full, dev), batch_size=500, transform=eval_tf,
                          device=dev_),
        "train_eval": DataLoader(Subset(train_full, train_eval_idx), batch_size=500,
                                 transform=eval_tf, device=dev_),
        "test": DataLoader(Subset(test, test_idx), batch_size=500, transform=eval_tf,
                           device=dev_),
        "shape": shape, "num_classes": int(labels.max()) + 1,
        "sizes": sizes,
        "normalize": {"mean": norm.mean.tolist(), "std": norm.std.tolist()},
    }


def build_model(cfg: dict, shape: tuple, num_classes: int):
    """The network named by ``cfg['model']`` for inputs of ``shape`` (C, H, W)."""
    from ..vision.models import MLP, LeNet5

    c, h, _ = shape
    if cfg["model"] in ("lenet5", "lenet5-classic"):
        return LeNet5(num_classes, in_channels=c, classic=cfg["model"] == "lenet5-classic",
                      dropout=cfg["dropout"], input_size=h)
    if cfg["model"] == "mlp":
        hidden = tuple(int(x) for x in str(cfg["hidden"]).split(",") if x.strip())
        return MLP(int(np.prod(shape)), hidden, num_classes, dropout=cfg["dropout"])
    from ..vision.models import zoo
    if cfg["model"] in zoo.list_models():
        extra = {"width": int(cfg["width"])} if cfg.get("width") else {}
        if cfg.get("dropout") is not None and zoo.default_dropout(cfg["model"]) is not None:
            extra["dropout"] = float(cfg["dropout"])
        return zoo.for_images(cfg["model"], shape, num_classes, **extra)
    raise ValueError(f"unknown model {cfg['model']!r}; choose lenet5, lenet5-classic, mlp or "
                     f"one of {zoo.list_models()}")


def build_optimizer(cfg: dict, model):
    """The ``shendu.optim`` optimizer named by ``cfg['optimizer']`` (SGD gets Nesterov)."""
    from .. import optim

    name = cfg["optimizer"]
    kwargs = {"lr": cfg["lr"], "weight_decay": cfg["weight_decay"]}
    if name in ("sgd", "rmsprop"):
        kwargs["momentum"] = cfg["momentum"]
    if name == "sgd" and cfg["momentum"]:
        kwargs["nesterov"] = True
    return getattr(optim, OPTIMIZERS[name][0])(model.parameters(), **kwargs)


def build_scheduler(cfg: dict, optimizer):
    """The learning-rate schedule named by ``cfg['schedule']`` (None for ``'none'``)."""
    from ..optim import lr_scheduler as S

    kind, epochs = cfg["schedule"], cfg["epochs"]
    if kind == "cosine":
        return S.CosineAnnealingLR(optimizer, T_max=max(1, epochs))
    if kind == "step":
        return S.StepLR(optimizer, step_size=max(1, epochs // 3), gamma=0.1)
    if kind == "plateau":
        return S.ReduceLROnPlateau(optimizer, factor=0.5, patience=2)
    return None


def run_training(cfg: dict, out: str | os.PathLike | None = None, *,
                 resume: str | os.PathLike | None = None, evaluate_test: bool = True,
                 save: bool = True, progress: bool | str = True,
                 log: Callable[[str], None] = print,
                 data_parallel: bool = False, callbacks: Sequence = ()) -> dict[str, Any]:
    """Train per ``cfg`` (see :func:`resolve_config`); returns metrics and file paths.

    Args:
        cfg: a resolved configuration.
        out: folder for ``checkpoint.sd``, ``metrics.json``, ``history.csv`` and
            ``learning_curves.png`` (nothing is written when None).
        resume: checkpoint to continue from (same configuration).
        evaluate_test: also measure the test set (hyperparameter search leaves it alone).
        save: write the checkpoint and plot (``metrics.json`` is always written to out).
        progress: as for :func:`shendu.train.fit`.
        log: where the one-line summaries go.
        data_parallel: train as one rank of a ``shendu.distributed`` job (``shendu train
            --nproc N`` runs every rank with it): DDP, a ``DistributedSampler``, the global
            ``batch_size`` split over the ranks, metrics all-reduced, and only rank 0
            logging and writing files (see :mod:`shendu.train.data_parallel`). The MPI
            process group is started here unless one is; a world of one also works.
        callbacks: more :mod:`shendu.train.callbacks` for the trainer, after the recipe's
            own (loggers, checkpoint, early stopping).

    BLAS runs on ``cfg['threads']`` threads meanwhile (0: the library's default); see
    :mod:`shendu._threads` for why one thread is the default.
    """
    from .._threads import blas_threads

    with blas_threads(cfg.get("threads")):
        if not data_parallel:
            return _run_training(cfg, out, resume=resume, evaluate_test=evaluate_test,
                                 save=save, progress=progress, log=log,
                                 callbacks=callbacks)
        from ..distributed import process_group as pg
        started = not pg.is_initialized()
        if started:
            pg.init_process_group("mpi")
        try:
            rank, size = pg.get_rank(), pg.get_world_size()
            if rank != 0:   # rank 0 speaks and writes for the job
                progress, log = False, (lambda s: None)
            return _run_training(cfg, out, resume=resume, evaluate_test=evaluate_test,
                                 save=save, progress=progress, log=log,
                                 world=(rank, size), callbacks=callbacks)
        finally:
            if started:
                pg.destroy_process_group()


def _run_training(cfg: dict, out, *, resume, evaluate_test: bool, save: bool,
                  progress: bool | str, log: Callable[[str], None],
                  world: tuple[int, int] | None = None,
                  callbacks: Sequence = ()) -> dict[str, Any]:
    from .. import random as sd_random
    from ..nn import functional as F
    from ..nn.utils import fuse
    from . import callbacks as C
    from .trainer import Trainer

    start = time.perf_counter()
    if world is None:   # on a cold kernel cache, a second process compiles half of them
        from ..backend import warm_start
        warm_start.start("train", cfg)
    sd_random.manual_seed(cfg["seed"])
    train_full, test = load_datasets(cfg)
    data = make_loaders(cfg, train_full, test, world)
    # Linear/Conv2d + ReLU pairs run as single ops (shared parameters, the same state-dict
    # names, so checkpoints load into the unfused model too)
    model = fuse(build_model(cfg, data["shape"], data["num_classes"]))
    rank = world[0] if world is not None else 0
    writes = out is not None and rank == 0
    if world is not None:
        from ..nn.parallel import DistributedDataParallel
        from . import data_parallel as DP
        if cfg["device"] is not None:
            model.to(cfg["device"])
        model = DistributedDataParallel(model)   # rank 0's initial weights everywhere
        sd_random.manual_seed(DP.rank_seed(cfg["seed"], rank))  # own dropout, augmentation
    optimizer = build_optimizer(cfg, model)
    scheduler = build_scheduler(cfg, optimizer)
    timing = {"setup_s": time.perf_counter() - start}
    paths: dict[str, str] = {}
    cbs: list = []
    if writes:
        os.makedirs(out, exist_ok=True)
        paths["metrics"] = os.path.join(out, "metrics.json")
        cbs += [C.CSVLogger(os.path.join(out, "history.csv")), C.JSONLogger(paths["metrics"])]
        if save and world is None:
            paths["checkpoint"] = os.path.join(out, "checkpoint.sd")
            cbs.append(C.ModelCheckpoint(paths["checkpoint"], extra={"config": cfg}))
    if world is not None:
        # every rank has the same stateful callbacks in the same order (the loggers, rank
        # 0's alone, are stateless), so a checkpoint's callback states load on every rank
        cbs += DP.sampler_callbacks(data["train"].sampler)
        if save:
            path = os.path.join(out, "checkpoint.sd") if writes else None
            if path is not None:
                paths["checkpoint"] = path
            cbs.append(DP.DataParallelCheckpoint(path, extra={"config": cfg}))
    if cfg["patience"]:
        cbs.append(C.EarlyStopping("val_loss", patience=cfg["patience"]))
    cbs += list(callbacks)
    n_tr, n_dev, n_te = data["sizes"]
    epochs = f"{cfg['epochs']} epoch" + ("s" if cfg["epochs"] != 1 else "")
    batch = f"batch {cfg['batch_size']}"
    if world is not None:
        batch += f" ({world[1]} rank(s) x {data['train'].batch_size})"
    log(f"Training {cfg['model']} on {cfg['dataset']}: {n_tr} train / {n_dev} dev / {n_te} "
        f"test images; {cfg['optimizer']} lr={cfg['lr']:g}, {batch}, "
        f"{epochs}, {'augmented, ' if cfg['augment'] else ''}seed {cfg['seed']}"
        + (f" -> {out}" if out is not None else ""))
    if world is None:
        trainer = Trainer(model, F.cross_entropy, optimizer, scheduler=scheduler,
                          callbacks=cbs, device=cfg["device"], progress=progress)
        history = trainer.fit(data["train"], cfg["epochs"], data["dev"], resume=resume)
    else:
        trainer = DP.DataParallelTrainer(model, F.cross_entropy, optimizer,
                                         scheduler=scheduler, callbacks=cbs,
                                         device=cfg["device"], progress=progress)
        start_epoch, past = 0, None
        if resume is not None:   # the unwrapped model's checkpoint, then this rank's streams
            from .checkpoint import load_checkpoint
            state = load_checkpoint(resume, model.module, optimizer, scheduler,
                                    callbacks=trainer.callbacks)
            start_epoch, past = state["epoch"], state["history"]
            DP.restore_rank_streams(state.get("extra"), cfg["seed"], start_epoch, log)
        history = trainer.fit(data["train"], cfg["epochs"], data["dev"],
                              start_epoch=start_epoch, history=past)
    timing["train_s"] = time.perf_counter() - start - timing["setup_s"]
    result: dict[str, Any] = {"history": dict(history), "config": cfg,
                              "data": {"sizes": dict(zip(("train", "dev", "test"),
                                                         data["sizes"])),
                                       "normalize": data["normalize"]}}
    final = {"train_error": 1 - trainer.evaluate(data["train_eval"])["acc"],
             "dev_error": 1 - trainer.evaluate(data["dev"])["acc"]}
    if evaluate_test:
        test_metrics = trainer.evaluate(data["test"])
        result["test"] = test_metrics
        final["test_error"] = 1 - test_metrics["acc"]
    result["final"] = final
    if world is not None:
        result["data_parallel"] = DP.summary(data["train"].batch_size,
                                             DP.gather_digests(model.module))
    timing["evaluate_s"] = time.perf_counter() - start - sum(timing.values())
    result["time_s"] = round(time.perf_counter() - start, 2)
    result["timing"] = timing
    if writes:
        if save:
            try:
                from .plots import plot_learning_curves
                paths["plot"] = os.path.join(out, "learning_curves.png")
                plot_learning_curves(history, paths["plot"],
                                     title=f"{cfg['model']} on {cfg['dataset']}")
            except ImportError as exc:  # matplotlib is optional
                log(f"(no learning-curve plot: {exc})")
                paths.pop("plot", None)
        timing["save_s"] = time.perf_counter() - start - sum(timing.values())
        result["time_s"] = round(time.perf_counter() - start, 2)
        result["timing"] = {k: round(v, 3) for k, v in timing.items()}
        from .checkpoint import atomic_write_text
        atomic_write_text(paths["metrics"], json.dumps(result, indent=1))
    result["timing"] = {k: round(v, 3) for k, v in timing.items()}
    result["paths"] = paths
    return result
