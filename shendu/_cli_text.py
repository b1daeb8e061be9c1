"""``shendu text``: train a language model and sample from it.

>>> main(["--help"])  # doctest: +ELLIPSIS
usage: shendu text ...
0
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Sequence

__all__ = ["main", "build_parser"]

_EPILOG = """examples:
  shendu text train-lm --steps 3000 --out runs/char-lstm
  shendu text train-lm --arch transformer --num-layers 4 --d-model 128 --out runs/gpt
  shendu text train-lm --out runs/char-lstm --resume --steps 5000   continue a run
  shendu text sample runs/char-lstm --prompt "ROMEO:" --temperature 0.8 --top-k 20
"""


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``shendu text``."""
    from .text.train_lm import LMConfig

    p = argparse.ArgumentParser(prog="shendu text", usage="shendu text ...",
                                description="Language models on Shakespeare or a text file.",
                                epilog=_EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="action", metavar="action")
    t = sub.add_parser("train-lm", help="train a character/word language model",
                       description="Train an LSTM or GPT-style language model; report "
                       "validation loss, perplexity and bits per token; checkpoint every "
                       "--eval-every steps (resumable with --resume).")
    d = LMConfig()
    for f in dataclasses.fields(LMConfig):
        if f.name == "progress":
            continue
        flag = "--" + f.name.replace("_", "-")
        default = getattr(d, f.name)
        kind = {"arch": str, "level": str, "data": str}.get(f.name)
        if kind is None:
            kind = float if isinstance(default, float) or f.name == "time_limit" else int
        choices = {"arch": ["lstm", "transformer"], "level": ["char", "word"]}.get(f.name)
        t.add_argument(flag, type=kind, default=None, choices=choices,
                       help=f"(default: {default})")
    t.add_argument("--out", required=True, help="output folder")
    t.add_argument("--resume", action="store_true", help="continue the run saved in --out "
                   "(its settings are reused; --steps and --time-limit may be given anew)")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    s = sub.add_parser("sample", help="sample text from a trained model")
    s.add_argument("run", help="folder written by train-lm")
    s.add_argument("--prompt", default="\n")
    s.add_argument("--length", type=int, default=400)
    s.add_argument("--temperature", type=float, default=0.8)
    s.add_argument("--top-k", type=int)
    s.add_argument("--top-p", type=float)
    s.add_argument("--seed", type=int, default=0)
    return p


def _train(args) -> int:
    import json
    from pathlib import Path

    from .text.train_lm import LMConfig, train_lm

    given = {f.name: getattr(args, f.name) for f in dataclasses.fields(LMConfig)
             if f.name != "progress" and getattr(args, f.name) is not None}
    if args.resume:
        saved = json.loads((Path(args.out) / "config.json").read_text())
        changed = set(given) - {"steps", "time_limit"}
        if any(saved.get(k) != given[k] for k in changed):
            raise ValueError("--resume reuses the saved settings; only --steps and "
                             f"--time-limit may change (got {sorted(changed)})")
        saved.update(given)
        given = saved
    given["progress"] = not args.no_progress
    cfg = LMConfig(**given)
    train_lm(cfg, args.out, resume=args.resume)
    return 0


def _sample(args) -> int:
    import numpy as np

    from .text.lm import generate
    from .text.train_lm import _tokenizer, load_lm

    model, vocab, cfg = load_lm(args.run)
    prompt = vocab(_tokenizer(cfg.level)(args.prompt))
    ids = generate(model, prompt, args.length, args.temperature, args.top_k, args.top_p,
                   generator=np.random.default_rng(args.seed))
    print(("" if cfg.level == "char" else " ").join(vocab.lookup_tokens(ids)))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``shendu text`` with ``argv``."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:
        return int(e.code or 0)
    if args.action is None:
        parser.print_help()
        return 0
    try:
        return _train(args) if args.action == "train-lm" else _sample(args)
    except (FileNotFoundError, ValueError) as exc:
        print(f"shendu text {args.action}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
