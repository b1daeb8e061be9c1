"""Train an attention seq2seq model on the date-normalisation task or digits -> words.

    python examples/text/seq2seq_tasks.py --task dates --time-limit 600 --out runs/dates
    python examples/text/seq2seq_tasks.py --task numbers --time-limit 600 --out runs/numbers

Dates are characters in and out ("Tuesday 3 May 1979" -> "1979-05-03"); numbers are
characters in, words out ("342" -> "three hundred and forty two"). Reports exact match
(greedy and beam search) on 2,000 held-out inputs, corpus BLEU for the words task, and
plots attention heat maps; writes metrics.json and attention.png to --out.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import time

import numpy as np

import shendu as sd
from shendu.metrics import bleu_score
from shendu.text import Vocab
from shendu.text.decoding import beam_search, greedy_search
from shendu.text.seq2seq import Seq2Seq, TransformerSeq2Seq
from shendu.text.tasks import date_pairs, number_pairs, pad_batch


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--task", choices=["dates", "numbers"], default="dates")
    ap.add_argument("--model", choices=["bahdanau", "luong", "transformer"],
                    default="bahdanau")
    ap.add_argument("--train-size", type=int, default=50_000)
    ap.add_argument("--test-size", type=int, default=2000)
    ap.add_argument("--hidden", type=int, default=96)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--steps", type=int, default=20_000)
    ap.add_argument("--time-limit", type=float, default=600)
    ap.add_argument("--beam-test", type=int, default=200, help="held-out inputs also "
                    "decoded with beam search (width 5)")
    ap.add_argument("--out", default="runs/seq2seq")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    sd.manual_seed(a.seed)
    make = date_pairs if a.task == "dates" else number_pairs
    pairs = make(a.train_size + a.test_size, seed=a.seed)
    train, test = pairs[:a.train_size], pairs[a.train_size:]
    seen = {s for s, _ in train}
    test = [(s, t) for s, t in test if s not in seen] or test  # held-out inputs only
    src_tok = list
    tgt_tok = list if a.task == "dates" else str.split
    src_v = Vocab.build(src_tok(s) for s, _ in pairs)
    tgt_v = Vocab.build(tgt_tok(t) for _, t in pairs)
    bos, eos = tgt_v["<bos>"], tgt_v["<eos>"]
    enc = [(src_v(src_tok(s)), tgt_v(tgt_tok(t))) for s, t in train]
    if a.model == "transformer":
        model = TransformerSeq2Seq(len(src_v), len(tgt_v), d_model=a.hidden, nhead=4,
                                   num_layers=2, dim_feedforward=2 * a.hidden, max_len=64)
    else:
        model = Seq2Seq(len(src_v), len(tgt_v), embed_dim=32, hidden_size=a.hidden,
                        attention=a.model)
    opt = sd.optim.Adam(model.parameters(), lr=a.lr)
    rng = np.random.default_rng(a.seed)
    t0, c0, step, run = time.perf_counter(), time.process_time(), 0, None
    while step < a.steps and time.perf_counter() - t0 < a.time_limit:
        idx = rng.integers(0, len(enc), a.batch_size)
        src = pad_batch([enc[i][0] for i in idx])
        x, y = pad_batch([enc[i][1] for i in idx], bos=bos, eos=eos)
        logits = model(src, x)
        loss = sd.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                              y.reshape(-1), ignore_index=0)
        opt.zero_grad()
        loss.backward()
        sd.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        run = loss.item() if run is None else 0.98 * run + 0.02 * loss.item()
        if step % 100 == 0:
            print(f"step {step}  loss {run:.4f}  {time.perf_counter() - t0:.0f}s", flush=True)
    train_s, train_cpu = time.perf_counter() - t0, time.process_time() - c0

    def decode(ids):
        toks = tgt_v.lookup_tokens([i for i in ids if i != eos])
        return "".join(toks) if a.task == "dates" else " ".join(toks)

    preds = []
    for i in range(0, len(test), 200):
        chunk = test[i:i + 200]
        preds += greedy_search(model, pad_batch([src_v(src_tok(s)) for s, _ in chunk]), bos,
                               eos, max_len=40)
    hyp = [decode(p) for p in preds]
    exact = float(np.mean([h == t for h, (_, t) in zip(hyp, test)]))
    bsub = test[:a.beam_test]
    beams = beam_search(model, pad_batch([src_v(src_tok(s)) for s, _ in bsub]), bos, eos,
                        beam_size=5, max_len=40)
    beam_exact = float(np.mean([decode(b[0][0]) == t for b, (_, t) in zip(beams, bsub)]))
    greedy_sub = float(np.mean([h == t for h, (_, t) in zip(hyp[:a.beam_test], bsub)]))
    bleu = bleu_score([tgt_tok(h) for h in hyp], [[tgt_tok(t)] for _, t in test])
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, cwd=os.path.dirname(os.path.abspath(__file__))
                            ).stdout.strip()
    metrics = {"task": a.task, "model": a.model, "steps": step, "train_s": train_s,
               "train_cpu_s": train_cpu, "final_train_loss": run, "test_inputs": len(test),
               "exact_match_greedy": exact, "bleu_greedy": bleu,
               f"exact_match_beam5_first{len(bsub)}": beam_exact,
               f"exact_match_greedy_first{len(bsub)}": greedy_sub,
               "examples": [[s, h] for (s, _), h in zip(test[:8], hyp[:8])],
               "commit": commit, "machine": f"{_cpu()}, {os.cpu_count()} cores",
               "args": vars(a)}
    with open(os.path.join(a.out, "metrics.json"), "w") as f:
        json.dump(metrics, f, indent=1)
    print(json.dumps({k: v for k, v in metrics.items() if k != "args"}, indent=1))
    if a.model != "transformer":
        _plot(model, test[:4], src_v, tgt_v, src_tok, decode, bos, eos, a.out)


def _cpu() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()


def _plot(model, rows, src_v, tgt_v, src_tok, decode, bos, eos, out):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, axes = plt.subplots(1, len(rows), figsize=(4 * len(rows), 4))
    for ax, (s, _) in zip(np.atleast_1d(axes), rows):
        ids = src_v(src_tok(s))
        seqs, att = greedy_search(model, pad_batch([ids]), bos, eos, 40, return_attention=True)
        ax.imshow(att[0], cmap="viridis", aspect="auto")
        ax.set_xticks(range(len(ids)), list(src_tok(s)), fontsize=7)
        outs = tgt_v.lookup_tokens(seqs[0])
        ax.set_yticks(range(len(outs)), outs, fontsize=7)
        ax.set_title(f"{s} -> {decode(seqs[0])}", fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "attention.png"), dpi=110)


if __name__ == "__main__":
    main()
