"""Checkpoints for data-parallel jobs: rank 0 writes, every rank loads, and a job killed
mid-epoch resumes to exactly the parameters of an uninterrupted run.

A checkpoint holds the model (unwrapped from ``DistributedDataParallel``, so it also
loads into a plain model), the optimizer (and scheduler), the ``DistributedSampler``'s
epoch and position, and every rank's random streams (shendu's global generator, NumPy's
and Python's): dropout and augmentation differ per rank, so each rank gets its own back.
``save`` is collective: the ranks gather their states to rank 0, which writes the file with
``shendu.save`` (temp file, fsync, ``os.replace``: a crash mid-write keeps the previous
checkpoint); no rank returns before the file is complete, and an error on rank 0 is raised
on every rank. ``load`` is called by every rank and communicates nothing.

>>> import os, tempfile, shendu as sd
>>> from shendu.distributed import checkpoint
>>> model = sd.nn.Linear(2, 1)
>>> opt = sd.optim.SGD(model.parameters(), lr=0.1)
>>> path = os.path.join(tempfile.mkdtemp(), "ckpt.sd")
>>> checkpoint.save(path, model, opt, extra={"step": 7})
>>> checkpoint.load(path, sd.nn.Linear(2, 1), opt)["extra"]
{'step': 7}
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from ..nn.module import Module
from ..serialization import load as _load
from ..serialization import save as _save
from ..train.checkpoint import get_rng_states, set_rng_states
from . import process_group as pg
from ._heartbeat import _waiting

__all__ = ["save", "load", "FORMAT"]

FORMAT = "shendu.distributed.checkpoint/1"


def _unwrap(model):
    if not isinstance(model, Module):
        raise TypeError(f"checkpoint: model must be a shendu.nn.Module, got "
                        f"{type(model).__name__}")
    from .ddp import DistributedDataParallel
    return model.module if isinstance(model, DistributedDataParallel) else model


def _sampler_state(sampler, position):
    if sampler is None:
        return None
    if not hasattr(sampler, "state_dict") or not hasattr(sampler, "load_state_dict"):
        raise TypeError(f"checkpoint: sampler {type(sampler).__name__} has no state_dict / "
                        "load_state_dict; pass a DistributedSampler")
    try:
        return sampler.state_dict(position=position)
    except TypeError:   # a sampler that keeps its own position
        return sampler.state_dict()


def _loader_state(loader, position):
    if loader is None:
        return None
    if not loader.batch_size or position % loader.batch_size:
        raise ValueError(f"checkpoint.save: position {position} is not a whole number of "
                         f"batches of the loader (batch_size={loader.batch_size})")
    return {"base_seed": loader._base_seed, "batch": position // loader.batch_size}


def save(path: str | os.PathLike, model: Module, optimizer=None, sampler=None, *,
         position: int = 0, loader=None, scheduler=None,
         extra: Mapping | None = None) -> None:
    """Write a resumable checkpoint of a (data-parallel) job; every rank must call it.

    Args:
        path: the file rank 0 writes (its directory must exist).
        model: the model, plain or wrapped in ``DistributedDataParallel``.
        optimizer, scheduler: saved with their ``state_dict`` when given.
        sampler: the ``DistributedSampler``; its epoch is saved with ``position``.
        position: how many of this rank's samples of the sampler's current epoch training
            has consumed (batches done times the per-rank batch size); the resumed epoch
            continues after them. Must be the same on every rank.
        loader: the training ``DataLoader`` (its sampler is saved when ``sampler`` is None):
            the epoch's base seed and batch index are kept, so a resumed epoch gives each
            remaining batch the random stream it had and draws no new seed, and its
            private generator (if any) is saved with the other random streams.
        extra: anything else (step counters, hyperparameters): nested dicts/lists of
            numbers, strings and tensors.

    Example: see the module docstring.
    """
    inner = _unwrap(model)
    if sampler is None and loader is not None and hasattr(loader.sampler, "state_dict"):
        sampler = loader.sampler
    world = pg._WORLD
    mine = {"rng": get_rng_states(loader), "sampler": _sampler_state(sampler, position),
            "loader": _loader_state(loader, position)}
    everyone = world.comm.allgather(mine) if world is not None and world.size > 1 else [mine]
    rank = world.rank if world is not None else 0
    samplers = [e["sampler"] for e in everyone]
    if any(s != samplers[0] for s in samplers):
        raise RuntimeError(f"checkpoint.save: the ranks' sampler states differ ({samplers}); "
                           "every rank must save at the same epoch and position")
    error = None
    if rank == 0:
        ckpt = {"format": FORMAT, "world_size": len(everyone),
                "model": inner.state_dict(),
                "optimizer": optimizer.state_dict() if optimizer is not None else None,
                "scheduler": scheduler.state_dict() if scheduler is not None else None,
                "sampler": samplers[0],
                "rng": [e["rng"] for e in everyone],
                "loader": [e["loader"] for e in everyone],
                "extra": dict(extra or {})}
        try:
            _save(ckpt, path)
        except Exception as exc:   # tell the other ranks instead of leaving them waiting
            error = f"{type(exc).__name__}: {exc}"
    if world is not None and world.size > 1:
        with _waiting():   # rank 0 may take long to write: the others wait for it
            error = world.comm.bcast(error, root=0)   # also: nobody returns before the write
    if error is not None:
        raise RuntimeError(f"checkpoint.save: rank 0 could not write {os.fspath(path)!r} "
                           f"({error})")


def load(path: str | os.PathLike, model: Module, optimizer=None, sampler=None, *,
         loader=None, scheduler=None, restore_rng: bool = True,
         map_location=None) -> dict[str, Any]:
    """Restore a checkpoint written by :func:`save` on every rank.

    Loads the model (plain or DDP-wrapped), optimizer, scheduler, sampler and loader state
    (pass the same arguments as to ``save``), and this rank's random streams
    (``restore_rng=False`` keeps the current ones; restoring needs the world size the
    checkpoint was written with). Resume the training loop at the returned epoch, calling
    ``sampler.set_epoch(epoch)`` as usual: that epoch continues from the saved position.

    Returns:
        ``{"epoch", "position", "world_size", "extra"}``: the sampler's epoch and position
        (None without a sampler), the saving job's world size and the ``extra`` dict.

    Example: see the module docstring.
    """
    inner = _unwrap(model)
    ckpt = _load(path, map_location=map_location)
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise ValueError(f"checkpoint.load: {os.fspath(path)!r} is not a distributed "
                         f"checkpoint (format {FORMAT!r}); was it written by "
                         "shendu.distributed.checkpoint.save?")
    world = pg._WORLD
    size, rank = (world.size, world.rank) if world is not None else (1, 0)
    if restore_rng and ckpt["world_size"] != size:
        raise ValueError(f"checkpoint.load: {os.fspath(path)!r} holds the random streams of "
                         f"{ckpt['world_size']} rank(s) but this job has {size}; resume with "
                         f"the same --nproc or pass restore_rng=False")
    inner.load_state_dict(ckpt["model"])
    for name, obj in (("optimizer", optimizer), ("scheduler", scheduler)):
        if obj is not None:
            if ckpt[name] is None:
                raise ValueError(f"checkpoint.load: {os.fspath(path)!r} has no {name} state")
            obj.load_state_dict(ckpt[name])
    state = ckpt["sampler"]
    if sampler is None and loader is not None and hasattr(loader.sampler, "load_state_dict"):
        sampler = loader.sampler
    if sampler is not None:
        if state is None:
            raise ValueError(f"checkpoint.load: {os.fspath(path)!r} has no sampler state")
        sampler.load_state_dict(state)
    if loader is not None:
        saved = ckpt["loader"][rank] if ckpt["world_size"] == size else ckpt["loader"][0]
        if saved is None:
            raise ValueError(f"checkpoint.load: {os.fspath(path)!r} has no loader state")
        if saved["base_seed"] is not None:
            loader._resume = (saved["base_seed"], saved["batch"])
    if restore_rng:
        set_rng_states(ckpt["rng"][rank], loader)
    return {"epoch": state["epoch"] if state else None,
            "position": state["position"] if state else None,
            "world_size": ckpt["world_size"], "extra": ckpt["extra"]}
