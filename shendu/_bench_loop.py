"""The user-loop benchmark of ``shendu bench``: a plain training loop, each library in its
own process, optionally beside one busy process per core (``--contend``).

The in-process benchmarks (``shendu.bench``) time one step of a fixed batch with the model
built for speed. This one times what a user's own script does: LeNet-5 as a plain
``nn.Sequential``, Adam, batch 128, ``F.cross_entropy(model(sd.tensor(x[idx])),
sd.tensor(y[idx]))`` on fresh batches of Fashion-MNIST, from process start to the last
step (``_loop_child.py`` is the script). Each library runs in a process of its own, with
its default threading unless ``threads`` is given, as its users run it; shendu and
PyTorch alternate when there are several rounds.

Reported per library: import time, the first step (which pays compilation and first-use
costs, reported apart from the rest) and the median, quartiles and range of the later
step times. Under ``contend`` the loop runs while one busy process per core spins beside
it, which is how a laptop, a notebook server or CI runs it: what matters there is the
median and the spread.

>>> s = step_stats([9.0] + [0.5] * 5 + [0.02] * 10 + [0.04] * 10)  # seconds
>>> s["first_step_s"], s["median_ms"], s["max_ms"], s["steps"]  # first and warm-up apart
(9.0, 30.0, 40.0, 26)
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np

__all__ = ["prepare_data", "run_one", "run_loop", "busy_cores", "step_stats",
           "format_loop"]

CHILD = Path(__file__).with_name("_loop_child.py")
WARMUP_STEPS = 5  # steps after the first that still settle (caches, allocator)


def prepare_data(folder: str | Path) -> str:
    """Write ``x.npy`` (N, 1, 28, 28) float32 in [0, 1] and ``y.npy`` into ``folder``;
    returns which data it is: Fashion-MNIST, else the shipped digits, else random
    images (the note says so in the report)."""
    folder = Path(folder)
    try:
        from .data.datasets import FashionMNIST

        images, labels = FashionMNIST(train=True).arrays()
        source = "Fashion-MNIST (60,000 training images)"
    except Exception as exc:  # noqa: BLE001 - any failure to read it means: fall back
        try:
            from .data.datasets import Digits

            images, labels = Digits("train").arrays()
            source = (f"the shipped digits ({len(labels)} images): Fashion-MNIST not "
                      f"found ({type(exc).__name__})")
        except Exception:  # noqa: BLE001
            rng = np.random.default_rng(0)
            images = rng.integers(0, 256, (6000, 1, 28, 28), dtype=np.uint8)
            labels = rng.integers(0, 10, 6000)
            source = "random images: neither Fashion-MNIST nor the shipped digits loaded"
    np.save(folder / "x.npy", (images.reshape(-1, 1, 28, 28) / np.float32(255))
            .astype(np.float32))
    np.save(folder / "y.npy", np.asarray(labels, np.int64))
    return source


def step_stats(step_s: list[float]) -> dict:
    """First step apart; median, quartiles and range of the steps after the warm-up, in
    milliseconds; ``spread`` is the interquartile range over the median."""
    first, rest = step_s[0], step_s[1:]
    settled = rest[WARMUP_STEPS:] if len(rest) > 2 * WARMUP_STEPS else rest
    ms = sorted(1e3 * t for t in settled)
    if len(ms) > 1:
        q1, med, q3 = statistics.quantiles(ms, n=4, method="inclusive")
    else:
        q1 = med = q3 = ms[0] if ms else float("nan")
    return {"steps": len(step_s), "first_step_s": first, "median_ms": med, "q1_ms": q1,
            "q3_ms": q3, "min_ms": ms[0] if ms else None, "max_ms": ms[-1] if ms else None,
            "spread": (q3 - q1) / med if med else None,
            "samples_per_s": 128e3 / med if med else None}


def run_one(lib: str, data: str | Path, steps: int, threads: int = 0,
            timeout: float = 1800, source: str | None = None) -> dict:
    """One child process training with ``lib`` (``'shendu'`` or ``'torch'``); ``source``:
    the folder holding the ``shendu`` package to time (default: this one)."""
    root = source or str(Path(__file__).resolve().parents[1])  # this shendu, first
    proc = subprocess.run([sys.executable, "-c", CHILD.read_text(), lib, str(data),
                           str(steps), str(threads), root], capture_output=True, text=True,
                          cwd=tempfile.gettempdir(), timeout=timeout)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
    if proc.returncode != 0 or line is None:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        return {"lib": lib, "error": f"exit {proc.returncode}: {tail[0]}"}
    raw = json.loads(line[len("RESULT "):])
    out = {k: raw[k] for k in ("lib", "version", "threads", "import_s", "total_s", "losses")}
    for key in ("threads_follow_load", "thread_trials"):  # shendu's tuner, when on
        if raw.get(key):
            out[key] = raw[key]
    out.update(step_stats(raw["step_s"]))
    return out


@contextmanager
def busy_cores(n: int | None = None, code: str = "while True: pass"):
    """``n`` processes (default: one per core) running Python ``code`` (default: a spin)
    until the block ends; yields them (``subprocess.Popen`` objects)."""
    n = (os.cpu_count() or 1) if n is None else n
    procs = [subprocess.Popen([sys.executable, "-c", code]) for _ in range(n)]
    try:
        yield procs
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait()


def _torch_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("torch") is not None


def run_loop(steps: int = 300, *, threads: list[int] | None = None, contend: bool = False,
             torch: bool = True, rounds: int = 1, busy_per_core: int = 1, log=print) -> dict:
    """The user loop for shendu (and PyTorch when installed), each run in its own process.

    ``threads``: thread counts to run (0 = the library's default); ``contend``: beside
    ``busy_per_core`` busy processes per core. Returns the runs and the data used.
    """
    libs = ["shendu"] + (["torch"] if torch and _torch_installed() else [])
    threads = threads or [0]
    runs = []
    with tempfile.TemporaryDirectory(prefix="shendu-loop-") as tmp:
        source = prepare_data(tmp)
        busy = busy_per_core * (os.cpu_count() or 1) if contend else 0
        log(f"user loop: {steps} steps of LeNet-5/Adam/batch 128 on {source}"
            + (f"; {_busy_label(busy_per_core)} beside it" if contend else ""))
        with busy_cores(busy) if contend else _nothing():
            for r in range(rounds):
                # alternate who goes first, and which thread count: a load that drifts
                # during the job then weighs on every side alike
                order = libs if r % 2 == 0 else libs[::-1]
                for n in (threads if r % 2 == 0 else threads[::-1]):
                    for lib in order:
                        res = run_one(lib, tmp, steps, n)
                        res.update(requested_threads=n, round=r, contended=contend)
                        runs.append(res)
                        log("  " + _line(res))
    return {"data": source, "steps": steps, "contended": contend, "runs": runs,
            "busy_processes": busy, "busy_per_core": busy_per_core if contend else 0,
            "torch": "torch" in libs}


def _busy_label(per_core: int) -> str:
    return ("one busy process per core" if per_core == 1
            else f"{per_core} busy processes per core")


@contextmanager
def _nothing():
    yield []


def _threads_label(r: dict) -> str:
    n = r.get("requested_threads") or 0
    return f"{n} thread{'s' if n != 1 else ''}" if n else f"default ({r.get('threads')})"


def _line(r: dict) -> str:
    if "error" in r:
        return f"{r['lib']:7} {_threads_label(r):12} ERROR {r['error']}"
    return (f"{r['lib']:7} {_threads_label(r):12} first step {r['first_step_s']:6.2f} s  "
            f"step median {r['median_ms']:7.1f} ms  IQR {r['q1_ms']:.1f}-{r['q3_ms']:.1f}  "
            f"range {r['min_ms']:.1f}-{r['max_ms']:.1f}  ({r['spread'] * 100:.0f}%)")


def format_loop(res: dict) -> str:
    """The user-loop runs as a table, with shendu / PyTorch speed ratios per thread count."""
    out = [f"user loop ({res['steps']} steps, data: {res['data']}"
           + (", beside " + _busy_label(res.get("busy_per_core", 1)) if res["contended"]
              else "") + ")",
           "  lib     threads      import  first step  median ms  IQR ms        range ms"
           "        spread"]
    for r in res["runs"]:
        if "error" in r:
            out.append(f"  {r['lib']:7} {_threads_label(r):12} ERROR {r['error']}")
            continue
        out.append(f"  {r['lib']:7} {_threads_label(r):12} {r['import_s']:5.2f} s "
                   f"{r['first_step_s']:8.2f} s {r['median_ms']:9.1f}  "
                   f"{r['q1_ms']:5.1f}-{r['q3_ms']:<7.1f} {r['min_ms']:6.1f}-{r['max_ms']:<7.1f}"
                   f" {100 * r['spread']:4.0f}%")
    for n, ratio in loop_ratios(res).items():
        out.append(f"  ratio shendu / torch speed at {n}: {ratio:.2f}x")
    for lib, rounds in default_vs_one(res).items():
        faster = sum(d <= o for d, o in rounds)
        out.append(f"  {lib} default against 1 thread, round by round: "
                   + ", ".join(f"{d:.1f}/{o:.1f}" for d, o in rounds)
                   + f" ms; the default as fast or faster in {faster} of {len(rounds)}")
    return "\n".join(out)


def default_vs_one(res: dict) -> dict[str, list[tuple[float, float]]]:
    """Per library, the (default, one thread) median step of each round that ran both:
    the pairs a drifting load weighs on least, since a round runs them back to back.

    >>> run = lambda n, ms, r: {"lib": "shendu", "requested_threads": n, "median_ms": ms,
    ...                         "round": r}
    >>> default_vs_one({"runs": [run(0, 20.0, 0), run(1, 30.0, 0), run(1, 25.0, 1),
    ...                          run(0, 26.0, 1)]})
    {'shendu': [(20.0, 30.0), (26.0, 25.0)]}
    """
    out = {}
    for lib in ("shendu", "torch"):
        pairs = []
        for r in sorted({x.get("round", 0) for x in res["runs"]}):
            med = {x.get("requested_threads", 0): x["median_ms"] for x in res["runs"]
                   if x["lib"] == lib and x.get("round", 0) == r and "error" not in x}
            if 0 in med and 1 in med:
                pairs.append((med[0], med[1]))
        if pairs:
            out[lib] = pairs
    return out


def loop_ratios(res: dict) -> dict[str, float]:
    """PyTorch's median step over shendu's (above 1: shendu faster), per thread setting,
    from the medians of all rounds."""
    out = {}
    for n in dict.fromkeys(r.get("requested_threads", 0) for r in res["runs"]):
        med = {}
        for lib in ("shendu", "torch"):
            vals = [r["median_ms"] for r in res["runs"]
                    if r["lib"] == lib and r.get("requested_threads", 0) == n and "error" not in r]
            if vals:
                med[lib] = statistics.median(vals)
        if len(med) == 2:
            out[_threads_label({"requested_threads": n, "threads": "default"})] = \
                med["torch"] / med["shendu"]
    return out
