"""DataLoader worker processes: an epoch with 0 vs 2 workers on slow ``__getitem__``.

Loaders over 512 samples, batch 32: one that sleeps 1 ms per sample (I/O-bound: a file
read), one that does CPU-bound per-sample augmentation in NumPy (Python-heavy: crops,
flips and noise on a 3x32x32 image, about a millisecond). Then two that return batches
at once, to price the way back to the main process: 128x3x32x32 float32 (1.5 MiB) and
256x3x64x64 (12 MiB) batches. Each configuration runs 3 epochs; the median epoch time is
reported. Workers start per epoch (the default, start-up included) or once
(``persistent_workers=True``).

    nice -n 10 python benchmarks/bench_dataloader.py [--out FILE.json]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from shendu.bench import machine_info  # noqa: E402
from shendu.data import DataLoader, Dataset  # noqa: E402


class Sleepy(Dataset):
    def __len__(self):
        return 512

    def __getitem__(self, i):
        time.sleep(0.001)
        return np.full((3, 32, 32), i, np.float32), i


class Augmenting(Dataset):
    def __init__(self):
        self.images = np.random.default_rng(0).random((512, 3, 40, 40), dtype=np.float32)

    def __len__(self):
        return 512

    def __getitem__(self, i):
        rng = np.random.default_rng(i)
        img = self.images[i]
        out = np.zeros((3, 32, 32), np.float32)
        for _ in range(12):  # several augmented views averaged: Python + small NumPy work
            y, x = rng.integers(0, 9, 2)
            crop = img[:, y:y + 32, x:x + 32]
            if rng.random() < 0.5:
                crop = crop[:, :, ::-1]
            out += crop * rng.uniform(0.8, 1.2) + rng.normal(0, 0.01, crop.shape)
        return out / 12, i


class Large(Dataset):
    def __init__(self, n=256, size=64, batches=8):
        self.block = np.random.default_rng(0).random((n, 3, size, size), dtype=np.float32)
        self.n, self.batches = n, batches

    def __len__(self):
        return self.n * self.batches

    def __getitems__(self, keys):
        return [(self.block[k % self.n], k) for k in keys]

    def __getitem__(self, k):
        return self.block[k % self.n], k


def epoch_time(ds, batch_size, workers, persistent=False, epochs=3) -> float:
    times = []
    loader = DataLoader(ds, batch_size=batch_size, num_workers=workers,
                        persistent_workers=persistent)
    for _ in range(epochs):
        t = time.perf_counter()
        for _batch in loader:
            pass
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def _commit() -> str | None:
    """HEAD of the checkout this file is in, '+dirty' when files differ from it (git
    worktrees keep ``.git`` as a file, which ``machine_info`` does not follow)."""
    import subprocess
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True,
                              text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=here, capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return (head + ("+dirty" if dirty.strip() else "")) or None


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="benchmarks/results/dataloader-workers.json")
    args = ap.parse_args(argv)
    cases = {"sleep 1 ms per sample": (Sleepy(), 32),
             "numpy augmentation per sample": (Augmenting(), 32),
             "instant 1.5 MiB batches (128x3x32x32)": (Large(128, 32, 16), 128),
             "instant 12 MiB batches (256x3x64x64)": (Large(256, 64, 8), 256)}
    results = []
    for name, (ds, bs) in cases.items():
        row = {"case": name, "batch_size": bs}
        for w in (0, 2):
            row[f"epoch_s_workers_{w}"] = round(epoch_time(ds, bs, w), 4)
        row["epoch_s_workers_2_persistent"] = round(epoch_time(ds, bs, 2, True), 4)
        base = row["epoch_s_workers_0"]
        row["speedup_2_workers"] = round(base / row["epoch_s_workers_2"], 2)
        row["speedup_2_persistent"] = round(base / row["epoch_s_workers_2_persistent"], 2)
        results.append(row)
        print(f"{name:40s} 0 workers {base:.3f} s   2 workers "
              f"{row['epoch_s_workers_2']:.3f} s ({row['speedup_2_workers']:.2f}x)   "
              f"2 persistent {row['epoch_s_workers_2_persistent']:.3f} s "
              f"({row['speedup_2_persistent']:.2f}x)")
    machine = machine_info()
    machine["git_commit"] = machine.get("git_commit") or _commit()
    report = {"schema": "shendu-bench-dataloader/1",
              "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "machine": machine,
              "command": "nice -n 10 python benchmarks/bench_dataloader.py",
              "note": "median of 3 epochs; 'workers_2' starts the workers every epoch (included); "
                      "machine shared with other jobs: load average at start "
                      f"{os.getloadavg()[0]:.1f}",
              "results": results}
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(report, f, indent=1)
    print("written", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
