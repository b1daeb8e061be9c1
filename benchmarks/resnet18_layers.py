"""ResNet-18's (small input, batch 64) layer kinds, shendu vs PyTorch in one process: the
whole network's training step and eval-mode inference (``shendu bench``'s resnet18_train
and resnet18_infer), each layer's training (forward + backward) and eval-mode forward,
best of ``--repeat`` runs, and the sum over the layers (each layer times how often
ResNet-18 has it).

Run: ``python benchmarks/resnet18_layers.py [--threads N] [--json PATH]``. At one thread
the times are process CPU time (less disturbed by other work on a shared machine), at more
threads wall time. Results: ``benchmarks/results/resnet18-layers-*.json``.
"""
import argparse
import time

import numpy as np
import torch

import shendu as sd
from shendu._threads import blas_threads

# (C_in, C_out, HxW, k, stride, how many ResNet-18 has)
CONVS = [(3, 64, 32, 3, 1, 1), (64, 64, 32, 3, 1, 4),
         (64, 128, 32, 3, 2, 1), (64, 128, 32, 1, 2, 1), (128, 128, 16, 3, 1, 3),
         (128, 256, 16, 3, 2, 1), (128, 256, 16, 1, 2, 1), (256, 256, 8, 3, 1, 3),
         (256, 512, 8, 3, 2, 1), (256, 512, 8, 1, 2, 1), (512, 512, 4, 3, 1, 3)]
# (C, HxW, how many): batch norms, residual add + ReLU
NORMS = [(64, 32, 5), (128, 16, 5), (256, 8, 5), (512, 4, 5)]
ADDS = [(64, 32, 2), (128, 16, 2), (256, 8, 2), (512, 4, 2)]
BATCH = 64


def best_time(f, repeat, clock):
    f()
    best = float("inf")
    for _ in range(repeat):
        t = clock()
        f()
        best = min(best, clock() - t)
    return best


def _pair(x, grad=True):
    return (sd.tensor(x, requires_grad=grad), torch.tensor(x, requires_grad=grad))


def conv_case(cin, cout, hw, k, s):
    x = np.random.randn(BATCH, cin, hw, hw).astype(np.float32)
    w = np.random.randn(cout, cin, k, k).astype(np.float32) * 0.05
    (xs, xt), (ws, wt) = _pair(x), _pair(w)
    train = (lambda: sd.nn.functional.conv2d(xs, ws, None, s, k // 2).sum().backward(),
             lambda: torch.nn.functional.conv2d(xt, wt, None, s, k // 2).sum().backward())
    infer = (lambda: sd.nn.functional.conv2d(xs.detach(), ws.detach(), None, s, k // 2),
             lambda: torch.nn.functional.conv2d(xt.detach(), wt.detach(), None, s, k // 2))
    return train, infer


def norm_case(c, hw):
    x = np.random.randn(BATCH, c, hw, hw).astype(np.float32)
    ms, mt = sd.nn.BatchNorm2d(c), torch.nn.BatchNorm2d(c)
    xs, xt = _pair(x)
    es, et = sd.nn.BatchNorm2d(c).eval(), torch.nn.BatchNorm2d(c).eval()
    train = (lambda: ms(xs).sum().backward(), lambda: mt(xt).sum().backward())
    infer = (lambda: es(xs.detach()), lambda: et(xt.detach()))
    return train, infer


def add_relu_case(c, hw):
    a, b = (np.random.randn(BATCH, c, hw, hw).astype(np.float32) for _ in range(2))
    (as_, at), (bs, bt) = _pair(a), _pair(b)
    train = (lambda: (as_ + bs).relu().sum().backward(),
             lambda: (at + bt).relu().sum().backward())
    infer = (lambda: (as_.detach() + bs.detach()).relu(),
             lambda: (at.detach() + bt.detach()).relu())
    return train, infer


def whole_network():
    """The training step and eval-mode inference of ``shendu bench``'s resnet18_train and
    resnet18_infer (``bench_resnet.py``), built for each library."""
    import os
    import sys

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import _bench_util as u
    from bench_resnet import resnet18_small

    steps = {}
    for fw in (u.shendu_fw(), u.torch_fw()):
        fw.seed(0)
        x, y = u.rand(fw, BATCH, 3, 32, 32), u.labels(fw, BATCH, classes=10)
        steps[fw.name] = (u.train_step(fw, resnet18_small(fw.nn), x, y),
                          u.infer_step(fw, resnet18_small(fw.nn), x))
    return ((steps["shendu"][0], steps["torch"][0]), (steps["shendu"][1], steps["torch"][1]))


def run(threads, repeat):
    clock = time.process_time if threads == 1 else time.perf_counter
    rows = []
    train, infer = whole_network()
    row = {"kind": "network", "case": "resnet18 step", "count": 0}
    for mode, (mine, theirs) in (("train", train), ("infer", infer)):
        a = b = float("inf")
        for _ in range(repeat):  # interleaved, so that both see the same machine
            a = min(a, best_time(mine, 1, clock))
            b = min(b, best_time(theirs, 1, clock))
        row[mode] = {"shendu_ms": a * 1e3, "torch_ms": b * 1e3, "ratio": b / a}
    rows.append(row)
    print(f"network  resnet18 step  train {row['train']['shendu_ms']:7.1f} / "
          f"{row['train']['torch_ms']:7.1f} ms ({row['train']['ratio']:.2f})   infer "
          f"{row['infer']['shendu_ms']:6.1f} / {row['infer']['torch_ms']:6.1f} ms "
          f"({row['infer']['ratio']:.2f})", flush=True)
    for kind, cases, fn in (("conv", CONVS, conv_case), ("bn", NORMS, norm_case),
                            ("add_relu", ADDS, add_relu_case)):
        for case in cases:
            *args, count = case
            train, infer = fn(*args)
            row = {"kind": kind, "case": list(args), "count": count}
            for mode, (mine, theirs) in (("train", train), ("infer", infer)):
                with sd.no_grad() if mode == "infer" else _nothing(), \
                        torch.no_grad() if mode == "infer" else _nothing():
                    a = best_time(mine, repeat, clock)
                    b = best_time(theirs, repeat, clock)
                row[mode] = {"shendu_ms": a * 1e3, "torch_ms": b * 1e3, "ratio": b / a}
            rows.append(row)
            tr, inf = row["train"], row["infer"]
            print(f"{kind:8s} {str(tuple(args)):22s} x{count}  train {tr['shendu_ms']:7.1f} "
                  f"/ {tr['torch_ms']:7.1f} ms ({tr['ratio']:.2f})   "
                  f"infer {inf['shendu_ms']:6.1f} / {inf['torch_ms']:6.1f} ms "
                  f"({inf['ratio']:.2f})", flush=True)
    totals = {}
    for mode in ("train", "infer"):
        for kind in ("conv", "bn", "add_relu", "all"):
            sel = [r for r in rows if kind in ("all", r["kind"]) and r["count"]]
            a = sum(r[mode]["shendu_ms"] * r["count"] for r in sel)
            b = sum(r[mode]["torch_ms"] * r["count"] for r in sel)
            totals[f"{mode}/{kind}"] = {"shendu_ms": a, "torch_ms": b, "ratio": b / a}
            print(f"total {mode:5s} {kind:8s} shendu {a:7.1f} ms, torch {b:7.1f} ms, "
                  f"ratio {b / a:.2f}")
    return rows, totals


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--json", help="write the rows, totals, commit and machine here")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    sd.backend.keep_freed_memory(True)  # as `shendu bench` runs (both libraries gain)
    with blas_threads(args.threads):
        rows, totals = run(args.threads, args.repeat)
    if args.json:
        import json
        import sys
        from pathlib import Path

        from shendu._bench_report import machine_info
        machine = machine_info({"blas": args.threads, "torch": args.threads})
        doc = {"created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
               "command": "python benchmarks/resnet18_layers.py " + " ".join(sys.argv[1:]),
               "commit": machine["git_commit"], "machine": machine, "batch": BATCH,
               "clock": "process CPU" if args.threads == 1 else "wall",
               "rows": rows, "totals": totals}
        Path(args.json).write_text(json.dumps(doc, indent=1) + "\n")
