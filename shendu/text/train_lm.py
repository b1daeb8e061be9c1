"""Train a language model on a text file: the loop behind ``shendu text train-lm``.

Character or word tokens, a held-out tail of the text for validation, AdamW with linear
warm-up then cosine decay, gradient clipping, a checkpoint (model, optimizer, step, random
streams, the vocabulary) written atomically every ``eval_every`` steps, so a killed run
resumes where its last checkpoint stood. Writes to ``out``: ``checkpoint.sd``,
``vocab.json``, ``history.json`` (step, train and validation loss) and ``metrics.json``.

>>> import tempfile
>>> from shendu.text.train_lm import LMConfig, train_lm
>>> cfg = LMConfig(arch="lstm", steps=3, batch_size=2, bptt=8, hidden_size=16,
...                embed_dim=8, eval_every=3, val_fraction=0.2, progress=False)
>>> m = train_lm(cfg, text="to be or not to be, that is the question. " * 20,
...              out=tempfile.mkdtemp(), log=lambda *a: None)
>>> m["steps"], m["val_loss"] < 4.0
(3, True)
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from pathlib import Path

import numpy as np

from .. import creation
from .. import random as sd_random
from ..nn.utils.clip_grad import clip_grad_norm_
from ..optim.adamw import AdamW
from ..train.checkpoint import atomic_write_text, load_checkpoint, save_checkpoint
from .batching import LMBatches, numericalize
from .datasets import load_shakespeare, load_text, split_text
from .lm import GPTLanguageModel, LSTMLanguageModel, evaluate_lm, generate, lm_loss
from .tokenizers import CharTokenizer, WordTokenizer
from .vocab import Vocab

__all__ = ["LMConfig", "train_lm", "build_model", "cosine_lr", "load_lm"]


@dataclasses.dataclass
class LMConfig:
    """Settings of a language-model run (the CLI options of ``shendu text train-lm``)."""
    arch: str = "lstm"              # lstm | transformer
    level: str = "char"             # char | word
    data: str | None = None         # a text file; None: the packaged Shakespeare
    val_fraction: float = 0.1
    steps: int = 2000
    batch_size: int = 32
    bptt: int = 128                 # window length (the Transformer's block_size)
    lr: float = 2e-3
    min_lr_ratio: float = 0.1
    warmup: int = 100
    weight_decay: float = 0.01
    clip: float = 1.0
    embed_dim: int = 64             # lstm
    hidden_size: int = 512          # lstm
    num_layers: int = 1             # lstm layers / transformer blocks (default 4)
    d_model: int = 128              # transformer
    nhead: int = 4                  # transformer
    dropout: float = 0.0
    min_freq: int = 1               # word level: rarer words become <unk>
    eval_every: int = 200
    eval_tokens: int = 100_000      # validation tokens per evaluation (all at the end)
    time_limit: float | None = None  # seconds; stop (and evaluate) when reached
    seed: int = 0
    progress: bool = True

    def __post_init__(self) -> None:
        if self.arch not in ("lstm", "transformer"):
            raise ValueError(f"train-lm: arch must be 'lstm' or 'transformer', got {self.arch!r}")
        if self.level not in ("char", "word"):
            raise ValueError(f"train-lm: level must be 'char' or 'word', got {self.level!r}")
        for name in ("steps", "batch_size", "bptt", "eval_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"train-lm: {name} must be >= 1, got {getattr(self, name)}")


def cosine_lr(step: int, base: float, warmup: int, total: int, min_ratio: float = 0.1) -> float:
    """Learning rate at ``step``: linear warm-up to ``base`` over ``warmup`` steps, then a
    cosine decay to ``base * min_ratio`` at ``total``.

    >>> from shendu.text.train_lm import cosine_lr
    >>> [round(cosine_lr(s, 1.0, 10, 110), 3) for s in (0, 9, 10, 60, 110)]
    [0.1, 1.0, 1.0, 0.55, 0.1]
    """
    if step < warmup:
        return base * (step + 1) / warmup
    frac = min(1.0, (step - warmup) / max(1, total - warmup))
    return base * (min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * frac)))


def _tokenizer(level: str):
    return CharTokenizer() if level == "char" else WordTokenizer(lower=True)


def build_model(cfg: LMConfig, vocab_size: int):
    """The model a config describes."""
    if cfg.arch == "lstm":
        return LSTMLanguageModel(vocab_size, cfg.embed_dim, cfg.hidden_size, cfg.num_layers,
                                 cfg.dropout)
    return GPTLanguageModel(vocab_size, cfg.bptt, cfg.d_model, cfg.nhead,
                            cfg.num_layers if cfg.num_layers > 1 else 4, dropout=cfg.dropout)


def _windows(ids: np.ndarray, cfg: LMConfig, rng: np.random.Generator):
    """Endless training batches: contiguous streams with carried state for the LSTM
    (``reset`` marks a new pass), random windows for the Transformer."""
    if cfg.arch == "lstm":
        while True:
            for i, (x, y) in enumerate(LMBatches(ids, cfg.batch_size, cfg.bptt,
                                                 batch_first=True)):
                yield x, y, i == 0
    while True:
        starts = rng.integers(0, ids.size - cfg.bptt - 1, cfg.batch_size)
        idx = starts[:, None] + np.arange(cfg.bptt + 1)
        w = ids[idx]
        yield creation.tensor(w[:, :-1]), creation.tensor(w[:, 1:]), True


def _detach(state):
    if state is None:
        return None
    return tuple(s.detach() for s in state)


def load_lm(out: str | os.PathLike):
    """Model, vocabulary and config saved by :func:`train_lm` in folder ``out``."""
    out = Path(out)
    cfg = LMConfig(**json.loads((out / "config.json").read_text()))
    vocab = Vocab.load(out / "vocab.json")
    model = build_model(cfg, len(vocab))
    load_checkpoint(out / "checkpoint.sd", model, restore_rng=False)
    return model, vocab, cfg


def train_lm(cfg: LMConfig, out: str | os.PathLike, text: str | None = None,
             resume: bool = False, log=print) -> dict:
    """Train (or, with ``resume``, continue) a language model; returns the metrics dict
    also written to ``out/metrics.json``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if text is None:
        text = load_text(cfg.data) if cfg.data else load_shakespeare()
    train_text, val_text = split_text(text, cfg.val_fraction)
    tok = _tokenizer(cfg.level)
    ckpt_path = out / "checkpoint.sd"
    if resume:
        if not ckpt_path.is_file():
            raise FileNotFoundError(f"train-lm: nothing to resume: {os.fspath(ckpt_path)!r} "
                                    "does not exist")
        vocab = Vocab.load(out / "vocab.json")
    else:
        specials = ("<unk>",) if cfg.level == "char" else ("<unk>", "<eos>")
        vocab = Vocab.build([tok(train_text)], min_freq=cfg.min_freq, specials=specials)
        vocab.save(out / "vocab.json")
        atomic_write_text(out / "config.json", json.dumps(dataclasses.asdict(cfg), indent=1))
    train_ids = numericalize(train_text, vocab, tok).numpy()
    val_ids = numericalize(val_text, vocab, tok).numpy()
    sd_random.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    model = build_model(cfg, len(vocab))
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "embedding" not in n]
    no_decay = [p for n, p in model.named_parameters() if not (p.ndim >= 2
                                                                and "embedding" not in n)]
    opt = AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                 {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr, betas=(0.9, 0.99))
    step, elapsed, cpu = 0, 0.0, 0.0
    history = {"step": [], "train_loss": [], "val_loss": [], "elapsed_s": [], "cpu_s": []}
    if resume:
        ck = load_checkpoint(ckpt_path, model, opt)
        step, history = ck["epoch"], {k: list(v) for k, v in ck["history"].items()}
        elapsed, cpu = float(ck["extra"]["elapsed_s"]), float(ck["extra"]["cpu_s"])
        rng.bit_generator.state = json.loads(ck["extra"]["numpy_rng"])
        log(f"resumed at step {step} (validation loss {history['val_loss'][-1]:.4f})")
    batches = _windows(train_ids, cfg, rng)
    if cfg.arch == "lstm" and step:  # skip to where the stream stood
        for _ in range(step % len(LMBatches(train_ids, cfg.batch_size, cfg.bptt))):
            next(batches)
    n_params = sum(p.numel() for p in model.parameters())
    log(f"{cfg.arch} {cfg.level}-level LM: {n_params:,} parameters, vocabulary "
        f"{len(vocab)}, {train_ids.size:,} training / {val_ids.size:,} validation tokens")
    bar = _bar(cfg, step)
    state, run_loss, t0 = None, None, time.perf_counter() - elapsed
    c0 = time.process_time() - cpu
    val_eval = val_ids[:cfg.eval_tokens] if cfg.eval_tokens else val_ids
    stopped_early = False
    while step < cfg.steps:
        x, y, reset = next(batches)
        if reset:
            state = None
        # with a time limit the schedule follows whichever budget is spent faster
        at = step
        if cfg.time_limit:
            at = max(step, int((time.perf_counter() - t0) / cfg.time_limit * cfg.steps))
        lr = cosine_lr(at, cfg.lr, cfg.warmup, cfg.steps, cfg.min_lr_ratio)
        for g in opt.param_groups:
            g["lr"] = lr
        logits, state = model(x, state)
        state = _detach(state)
        loss = lm_loss(logits, y)
        opt.zero_grad()
        loss.backward()
        clip_grad_norm_(model.parameters(), cfg.clip)
        opt.step()
        step += 1
        li = loss.item()
        run_loss = li if run_loss is None else 0.98 * run_loss + 0.02 * li
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{run_loss:.3f}", lr=f"{lr:.2e}")
        out_of_time = cfg.time_limit is not None and time.perf_counter() - t0 >= cfg.time_limit
        if step % cfg.eval_every == 0 or step == cfg.steps or out_of_time:
            vl = evaluate_lm(model, val_eval, bptt=cfg.bptt)
            history["step"].append(step)
            history["train_loss"].append(run_loss)
            history["val_loss"].append(vl)
            elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
            history["elapsed_s"].append(elapsed)
            history["cpu_s"].append(cpu)
            msg = (f"step {step}/{cfg.steps}  train {run_loss:.4f}  val {vl:.4f} nats "
                   f"({vl / math.log(2):.3f} bits/token, ppl {math.exp(vl):.2f})  "
                   f"{elapsed:.0f}s ({cpu:.0f}s CPU)")
            save_checkpoint(ckpt_path, model, opt, epoch=step, history=history,
                            extra={"elapsed_s": elapsed, "cpu_s": cpu,
                                   "numpy_rng": json.dumps(rng.bit_generator.state)})
            atomic_write_text(out / "history.json", json.dumps(history, indent=1))
            (bar.write if bar is not None else log)(msg)
        if out_of_time:
            stopped_early = True
            break
    if bar is not None:
        bar.close()
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    val = evaluate_lm(model, val_ids, bptt=cfg.bptt)
    prompt = vocab(tok("ROMEO:" if cfg.level == "char" else "romeo :"))
    sample_ids = generate(model, prompt, 300 if cfg.level == "char" else 80,
                          temperature=0.8, top_k=20, generator=np.random.default_rng(cfg.seed))
    sep = "" if cfg.level == "char" else " "
    metrics = {"arch": cfg.arch, "level": cfg.level, "steps": step, "elapsed_s": elapsed,
               "cpu_s": cpu, "config": dataclasses.asdict(cfg),
               "val_loss": val, "perplexity": math.exp(val),
               "bits_per_token": val / math.log(2), "parameters": n_params,
               "vocab_size": len(vocab), "val_tokens": int(val_ids.size),
               "stopped_by_time_limit": stopped_early,
               "sample": sep.join(vocab.lookup_tokens(sample_ids))}
    atomic_write_text(out / "metrics.json", json.dumps(metrics, indent=1))
    log(f"validation: {val:.4f} nats/token, perplexity {math.exp(val):.2f}, "
        f"{val / math.log(2):.3f} bits/token over {val_ids.size:,} tokens")
    return metrics


def _bar(cfg: LMConfig, start: int):
    if not cfg.progress:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:  # optional: the evaluation lines still report progress
        return None
    return tqdm(total=cfg.steps, initial=start, desc="train-lm", unit="step")
