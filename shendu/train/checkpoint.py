"""Checkpoints that let a killed run resume to exactly the result of an uninterrupted one.

A checkpoint holds the model, optimizer and scheduler state, the epoch count, the history,
callback state (early-stopping counters), and every random stream training draws from:
shendu's global generator (dropout, initialisation, ``DataLoader`` shuffling and
augmentation), NumPy's legacy global generator, Python's ``random``, and any private
``sd.Generator`` the training loader was given. Files are written by ``shendu.save``
(a temp file, fsync, then ``os.replace``), so a crash mid-save keeps the previous
checkpoint, and loading never unpickles or runs code.

>>> import os, tempfile, shendu as sd
>>> from shendu.nn.layers.linear import Linear
>>> model = Linear(2, 1)
>>> opt = sd.optim.SGD(model.parameters(), lr=0.1)
>>> path = os.path.join(tempfile.mkdtemp(), "ckpt.sd")
>>> save_checkpoint(path, model, opt, epoch=3, history={"train_loss": [1.0, 0.5, 0.4]})
>>> state = load_checkpoint(path, Linear(2, 1), sd.optim.SGD(Linear(2, 1).parameters(), lr=1))
>>> state["epoch"], state["history"]["train_loss"]
(3, [1.0, 0.5, 0.4])
"""
from __future__ import annotations

import os
import random
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from .. import random as sd_random
from ..nn.module import Module
from ..serialization import _atomic_write, load, save

__all__ = ["save_checkpoint", "load_checkpoint", "get_rng_states", "set_rng_states",
           "atomic_write_text", "CHECKPOINT_FORMAT"]

CHECKPOINT_FORMAT = "shendu.train.checkpoint/1"


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` through a temp file and ``os.replace``."""
    _atomic_write(path, lambda f: f.write(text.encode("utf-8")))


# ---------------------------------------------------------------------- random streams
def _loader_generators(loader) -> list:
    """The private ``sd.Generator`` objects a loader (and its samplers) draw from."""
    found, seen = [], {id(sd_random.default_generator)}
    if loader is None:
        return found
    sampler = getattr(loader, "sampler", None)
    batch_sampler = getattr(loader, "batch_sampler", None)
    for obj in (loader, sampler, getattr(batch_sampler, "sampler", None)):
        gen = getattr(obj, "generator", None)
        if isinstance(gen, sd_random.Generator) and id(gen) not in seen:
            seen.add(id(gen))
            found.append(gen)
    return found


def get_rng_states(loader=None) -> dict[str, Any]:
    """Every random stream's state as plain data (lists and ints, no arrays needed).

    >>> s = get_rng_states()
    >>> sorted(s)
    ['loader', 'numpy', 'python', 'shendu']
    """
    np_state = np.random.get_state(legacy=False)
    np_state["state"] = {"key": np_state["state"]["key"].tolist(),
                         "pos": int(np_state["state"]["pos"])}
    version, internal, gauss = random.getstate()
    return {"shendu": sd_random.get_rng_state(),
            "numpy": np_state,
            "python": [version, list(internal), gauss],
            "loader": [g.get_state() for g in _loader_generators(loader)]}


def set_rng_states(states: Mapping[str, Any], loader=None) -> None:
    """Restore the streams saved by :func:`get_rng_states` (missing entries are skipped).

    >>> import shendu as sd
    >>> s = get_rng_states(); a = sd.rand(3)
    >>> set_rng_states(s); bool((sd.rand(3) == a).all())
    True
    """
    if states.get("shendu") is not None:
        sd_random.set_rng_state(states["shendu"])
    if states.get("numpy") is not None:
        st = dict(states["numpy"])
        st["state"] = {"key": np.asarray(st["state"]["key"], dtype=np.uint32),
                       "pos": int(st["state"]["pos"])}
        np.random.set_state(st)
    if states.get("python") is not None:
        version, internal, gauss = states["python"]
        random.setstate((int(version), tuple(int(x) for x in internal), gauss))
    saved = list(states.get("loader") or [])
    gens = _loader_generators(loader)
    if saved and len(saved) != len(gens):
        raise ValueError(f"load_checkpoint: the checkpoint has {len(saved)} data-loader "
                         f"generator state(s) but the loader given has {len(gens)}; pass the "
                         "same kind of loader used when saving")
    for gen, st in zip(gens, saved):
        gen.set_state(st)


# ---------------------------------------------------------------------- save / load
def save_checkpoint(path: str | os.PathLike, model: Module, optimizer=None, scheduler=None,
                    epoch: int = 0, history: Mapping | None = None,
                    extra: Mapping | None = None, *, loader=None,
                    callbacks: Iterable = ()) -> None:
    """Write a resumable checkpoint to ``path`` atomically.

    Args:
        path: file to write (its directory must exist).
        model: the model (its ``state_dict``).
        optimizer, scheduler: saved with their ``state_dict`` when given.
        epoch: epochs completed so far (training resumes at this epoch).
        history: the per-epoch history (``History`` or a dict of lists).
        extra: anything else to keep (hyperparameters, the CLI arguments, ...): nested
            dicts/lists of numbers, strings and tensors.
        loader: the training ``DataLoader``, whose private generator (if any) is saved.
        callbacks: callbacks whose ``state_dict()`` is saved (early-stopping counters).

    Example: see the module docstring.
    """
    if not isinstance(model, Module):
        raise TypeError(f"save_checkpoint: model must be a shendu.nn.Module, got "
                        f"{type(model).__name__}")
    ckpt = {"format": CHECKPOINT_FORMAT,
            "epoch": int(epoch),
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict() if optimizer is not None else None,
            "scheduler": scheduler.state_dict() if scheduler is not None else None,
            "history": {k: list(v) for k, v in (history or {}).items()},
            "rng": get_rng_states(loader),
            "callbacks": _callback_states(callbacks),
            "extra": dict(extra or {})}
    save(ckpt, path)


def _callback_states(callbacks: Iterable) -> dict:
    out = {}
    for i, cb in enumerate(callbacks):
        fn = getattr(cb, "state_dict", None)
        if fn is not None:
            out[f"{i}:{type(cb).__name__}"] = fn()
    return out


def load_checkpoint(path: str | os.PathLike, model: Module | None = None, optimizer=None,
                    scheduler=None, *, loader=None, callbacks: Iterable = (),
                    restore_rng: bool = True, map_location=None,
                    strict: bool = True) -> dict[str, Any]:
    """Read a checkpoint; load it into the objects given and restore the random streams.

    Args:
        path: a file written by :func:`save_checkpoint` (or ``ModelCheckpoint``).
        model, optimizer, scheduler: loaded in place when given.
        loader: the training loader, to restore its private generator.
        callbacks: the same callbacks, in the same order, as when saving.
        restore_rng: set the global random streams back to their saved state.
        map_location: forwarded to ``shendu.load`` (``'cpu'`` to load GPU checkpoints).
        strict: require the model's keys to match exactly.

    Returns:
        The checkpoint dict: ``epoch``, ``history``, ``extra``, ``model`` (state dict), ...
    """
    ckpt = load(path, map_location=map_location)
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"load_checkpoint: {os.fspath(path)!r} is not a training checkpoint "
                         "(no 'format': 'shendu.train.checkpoint/1' entry); for bare weights "
                         "use model.load_state_dict(shendu.load(path))")
    if model is not None:
        model.load_state_dict(ckpt["model"], strict=strict)
    for name, obj in (("optimizer", optimizer), ("scheduler", scheduler)):
        if obj is None:
            continue
        if ckpt.get(name) is None:
            raise ValueError(f"load_checkpoint: {os.fspath(path)!r} has no {name} state, "
                             f"but a {name} was given to restore")
        obj.load_state_dict(ckpt[name])
    saved_cbs = ckpt.get("callbacks") or {}
    for i, cb in enumerate(callbacks):
        key = f"{i}:{type(cb).__name__}"
        if key in saved_cbs and hasattr(cb, "load_state_dict"):
            cb.load_state_dict(saved_cbs[key])
    if restore_rng:
        set_rng_states(ckpt.get("rng") or {}, loader)
    return ckpt
