"""Shared pieces of the benchmark files: framework adapters, models, steps, fixed batches.

Every model is written *once*, against a namespace ``nn`` that is either ``torch.nn`` or
shendu's, so the shendu workload and its PyTorch twin are the same code by construction.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from shendu.bench import Benchmark, Step, benchmark


def shendu_fw() -> SimpleNamespace:
    """shendu behind the names a workload uses: nn, F, optim, no_grad, tensor, seed, and
    ``fuse`` (``nn.utils.fuse``: Linear/Conv2d + ReLU pairs as single ops)."""
    import shendu as sd

    return SimpleNamespace(name="shendu", nn=sd.nn, F=sd.nn.functional, optim=sd.optim,
                           no_grad=sd.no_grad, tensor=sd.from_numpy, seed=sd.manual_seed,
                           lib=sd, fuse=sd.nn.utils.fuse)


def torch_fw() -> SimpleNamespace:
    """PyTorch behind the same names (threads are already set by the runner; ``fuse`` leaves
    the model as it is: eager PyTorch runs each module)."""
    import torch

    return SimpleNamespace(name="torch", nn=torch.nn, F=torch.nn.functional, optim=torch.optim,
                           no_grad=torch.no_grad, tensor=torch.from_numpy,
                           seed=torch.manual_seed, lib=torch, fuse=lambda model: model)


def twin_benchmark(name: str, group: str, *, items_per_iter: float, unit: str = "samples/s"
                   ) -> Callable[[Callable[[SimpleNamespace], Step]], Benchmark]:
    """Register ``build(fw)`` twice: with shendu as the benchmark, with torch as its twin."""
    def register(build: Callable[[SimpleNamespace], Step]) -> Benchmark:
        def shendu_setup() -> Step:
            return build(shendu_fw())

        def torch_setup() -> Step:
            return build(torch_fw())

        shendu_setup.__doc__ = build.__doc__
        shendu_setup.__module__ = build.__module__
        b = benchmark(name, group, items_per_iter=items_per_iter, unit=unit)(shendu_setup)
        b.twin(torch_setup)
        return b
    return register


def run_ranks(script: str | Path, job_args: list[str], nproc: int = 2,
              timeout_s: int = 600) -> dict:
    """Run ``script --job JOB_ARGS --result FILE`` on ``nproc`` ranks of one thread each
    through ``shendu run`` (the repository first on the path) and return the JSON that
    rank 0 wrote to FILE; the ranks' output tails if the job fails."""
    root = Path(__file__).resolve().parent.parent
    with tempfile.TemporaryDirectory(prefix="shendu-ranks-") as tmp:
        result = Path(tmp) / "result.json"
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(
            p for p in (str(root), os.environ.get("PYTHONPATH")) if p))
        proc = subprocess.run(
            [sys.executable, "-m", "shendu.cli", "run", "--nproc", str(nproc), "--threads",
             "1", "--timeout", str(timeout_s), str(Path(script).resolve()), "--job",
             *job_args, "--result", str(result)], capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            raise RuntimeError(proc.stdout[-2000:] + proc.stderr[-2000:])
        return json.loads(result.read_text())


# ---------------------------------------------------------------------------- data
def rand(fw, *shape: int, requires_grad: bool = False, seed: int = 0):
    """A fixed float32 normal tensor (the same numbers in both frameworks)."""
    a = np.random.default_rng(seed).standard_normal(shape, dtype=np.float32)
    t = fw.tensor(a)
    return t.requires_grad_(True) if requires_grad else t


def labels(fw, *shape: int, classes: int, seed: int = 1):
    """Fixed int64 class labels in ``[0, classes)``."""
    return fw.tensor(np.random.default_rng(seed).integers(0, classes, shape, dtype=np.int64))


# ---------------------------------------------------------------------------- models
def mlp(nn):
    """784-512-512-10 with ReLU."""
    return nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(),
                         nn.Linear(512, 10))


def lenet5(nn):
    """LeNet-5 on 1x28x28: conv6 5x5 pad 2, pool, conv16 5x5, pool, 120, 84, 10 (ReLU)."""
    return nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(16 * 5 * 5, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10))


def cifar_cnn(nn):
    """3x32x32: conv32, conv32, pool, conv64, conv64, pool, fc512, fc10; 3x3 pad 1, ReLU."""
    def conv(cin, cout):
        return [nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU()]

    return nn.Sequential(*conv(3, 32), *conv(32, 32), nn.MaxPool2d(2),
                         *conv(32, 64), *conv(64, 64), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(64 * 8 * 8, 512), nn.ReLU(), nn.Linear(512, 10))


def lstm_lm(nn, vocab: int = 10_000, embed: int = 128, hidden: int = 256):
    """Embedding -> one-layer LSTM -> linear to the vocabulary (logits per token)."""
    class LanguageModel(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(vocab, embed)
            self.lstm = nn.LSTM(embed, hidden)
            self.out = nn.Linear(hidden, vocab)

        def forward(self, tokens):  # tokens: (seq, batch), sequence-first like nn.LSTM
            h, _ = self.lstm(self.embed(tokens))
            return self.out(h.reshape(-1, hidden))

    return LanguageModel()


# ---------------------------------------------------------------------------- steps
def train_step(fw, model, x, y, lr: float = 0.01, optimizer: str = "SGD") -> Step:
    """One training step on a fixed batch: forward, cross-entropy, backward, update (by
    ``fw.optim.<optimizer>``)."""
    opt = getattr(fw.optim, optimizer)(model.parameters(), lr=lr)
    model.train()

    def step():
        opt.zero_grad()
        loss = fw.F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss
    return step


def infer_step(fw, model, x) -> Step:
    """One forward pass without the graph, the model in eval mode."""
    model.eval()

    def step():
        with fw.no_grad():
            return model(x)
    return step
