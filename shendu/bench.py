"""Benchmarks written like tests: register a workload, time it, compare it with PyTorch.

A benchmark is a *setup* function, run outside the timed region, that builds everything and
returns a zero-argument ``step`` doing one iteration (one training step, one epoch...). An
optional *twin* builds the same workload in PyTorch (or, with another ``label``, any other
baseline). Files named ``benchmarks/bench_*.py`` are discovered the way pytest discovers
tests; ``shendu bench`` (or ``python -m shendu.bench``) runs them.

How it measures (see ``benchmarks/README.md``):

* warm-up until ``warmup_s`` has passed (at least one call), which also sizes a *block*:
  the number of iterations that takes about ``min_time`` seconds;
* ``blocks`` timed blocks per side, shendu's and the twin's alternating so that a change in
  the machine's load hits both alike; ``gc.collect()`` before each block (garbage
  collection stays enabled inside, because real training pays for it); the result is the
  median over the blocks with its quartiles and range;
* peak memory of one extra iteration: the highest value of (bytes allocated - bytes freed)
  counted from the start of the iteration, ignoring frees of memory allocated before it.
  NumPy reports its buffers to ``tracemalloc``; PyTorch reports its CPU allocator to the
  profiler (``profile_memory=True``), which ignores such earlier frees in the same way.

>>> now = [0.0]
>>> def step():                     # on this fake clock every step takes half a second
...     now[0] += 0.5
>>> stats = measure(step, items_per_iter=10, blocks=3, min_time=1.0, warmup_s=0,
...                 clock=lambda: now[0], memory=None)
>>> stats.median, stats.iters_per_block     # 2 steps of 10 samples per 1-second block
(20.0, 2)
"""
from __future__ import annotations

import contextlib
import gc
import hashlib
import importlib.util
import math
import os
import statistics
import sys
import time
import traceback
import tracemalloc
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

Step = Callable[[], object]
Setup = Callable[[], Step]
SCHEMA = "shendu-bench/1"
GROUP_ORDER = ("train", "inference", "micro", "data", "autodiff")
_TIME_UNITS = {"s/": 1.0, "ms/": 1e3, "µs/": 1e6, "us/": 1e6, "ns/": 1e9}


@dataclass
class Benchmark:
    """One registered workload: ``setup()`` returns the step to time; ``twin`` a baseline."""

    name: str
    group: str
    setup: Setup
    items_per_iter: float = 1.0
    unit: str = "samples/s"
    doc: str = ""
    source: str = ""
    twin_setup: Setup | None = None
    twin_label: str = "torch"

    def twin(self, fn: Setup | None = None, *, label: str = "torch"):
        """Decorator registering the baseline (PyTorch twin by default) of this benchmark."""
        def register(setup: Setup) -> Setup:
            self.twin_setup, self.twin_label = setup, label
            return setup
        return register(fn) if fn is not None else register


REGISTRY: dict[str, Benchmark] = {}


def benchmark(name: str, group: str = "misc", *, items_per_iter: float = 1.0,
              unit: str = "samples/s") -> Callable[[Setup], Benchmark]:
    """Register ``setup`` as benchmark ``name``; ``unit`` like ``samples/s`` or ``µs/op``.

    ``items_per_iter`` is how many samples (ops, sequences...) one step processes.
    """
    def register(setup: Setup) -> Benchmark:
        old = REGISTRY.get(name)
        src = getattr(setup, "__module__", "")
        if old is not None and old.source != src:
            raise ValueError(f"benchmark {name!r} is already registered by {old.source}")
        doc = (setup.__doc__ or "").strip().splitlines()
        REGISTRY[name] = Benchmark(name, group, setup, float(items_per_iter), unit,
                                   doc[0] if doc else "", src)
        return REGISTRY[name]
    return register


def default_dir() -> Path:
    """``$SHENDU_BENCH_DIR``, else the repository's ``benchmarks/``, else ``./benchmarks``."""
    if os.environ.get("SHENDU_BENCH_DIR"):
        return Path(os.environ["SHENDU_BENCH_DIR"])
    repo = Path(__file__).resolve().parents[1] / "benchmarks"
    return repo if repo.is_dir() else Path.cwd() / "benchmarks"


def discover(directory: str | Path | None = None) -> list[Benchmark]:
    """Import every ``bench_*.py`` in ``directory`` and return the benchmarks they define.

    Files are executed afresh on every call, so their benchmarks land in the current
    ``REGISTRY`` even if it was replaced (as the tests do).
    """
    directory = Path(directory or default_dir()).resolve()
    loaded = set()
    sys.path.insert(0, str(directory))  # so bench files can import their ``_helpers``
    try:
        for path in sorted(directory.glob("bench_*.py")):
            key = hashlib.sha1(str(path).encode()).hexdigest()[:8]
            modname = f"_shendu_bench_{key}_{path.stem}"  # unique even for same-named files
            spec = importlib.util.spec_from_file_location(modname, path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[modname] = module
            try:
                spec.loader.exec_module(module)
            except BaseException:
                del sys.modules[modname]
                raise
            loaded.add(modname)
    finally:
        sys.path.remove(str(directory))
    found = [b for b in REGISTRY.values() if b.source in loaded]
    order = {g: i for i, g in enumerate(GROUP_ORDER)}
    # known groups in reading order, then others by name; within a group, file order
    return sorted(found, key=lambda b: (order.get(b.group, len(order)), b.group))


# ---------------------------------------------------------------------------- measuring
@dataclass
class Stats:
    """Per-block values in the benchmark's unit, summarised by median, quartiles and range."""

    median: float
    q1: float
    q3: float
    min: float
    max: float
    values: list[float]
    iters_per_block: int
    peak_bytes: int | None = None

    @property
    def spread(self) -> float:
        """Interquartile range relative to the median (0.02 = 2%)."""
        return (self.q3 - self.q1) / self.median if self.median else math.nan


def summarize(values: Sequence[float], iters_per_block: int = 1) -> Stats:
    """Median, quartiles (inclusive method) and range of per-block values."""
    v = sorted(values)
    q1, med, q3 = statistics.quantiles(v, n=4, method="inclusive") if len(v) > 1 else v * 3
    return Stats(med, q1, q3, v[0], v[-1], list(values), iters_per_block)


def _to_unit(seconds: float, iters: int, items: float, unit: str) -> float:
    """Convert one block's duration to the unit: items/s, or time per item for ``µs/op``."""
    for prefix, scale in _TIME_UNITS.items():
        if unit.startswith(prefix):
            return seconds / (iters * items) * scale
    return iters * items / seconds


def is_time_unit(unit: str) -> bool:
    """True for units where smaller is faster (``µs/op``), False for rates (``samples/s``)."""
    return unit.startswith(tuple(_TIME_UNITS))


def calibrate(step: Step, min_time: float = 0.3, warmup_s: float = 0.2,
              clock: Callable[[], float] = time.perf_counter) -> int:
    """Warm ``step`` up for ``warmup_s`` (one call at least); return iterations per block."""
    start = clock()
    step()  # the first call pays one-off costs (imports, caches, first allocations)
    n, t = 0, clock()
    first = t - start
    while n == 0 or t - start < warmup_s:
        step()
        n, t = n + 1, clock()
    per_iter = max((t - start - first) / n, 1e-9)
    return max(1, math.ceil(min_time / per_iter))


def measure_all(steps: Sequence[Step], items_per_iter: float = 1.0, unit: str = "samples/s",
                *, blocks: int = 7, min_time: float = 0.3, warmup_s: float = 0.2,
                clock: Callable[[], float] = time.perf_counter,
                memory: Sequence[str | None] | None = None) -> list[Stats | Exception]:
    """Time several steps in alternating blocks (A B A B ...), so that a change in the
    machine's load hits all of them alike; a step that raises gets its exception back.

    ``memory[i]`` is ``"tracemalloc"``, ``"torch"`` or None (no peak-memory iteration).
    """
    out: list[Stats | Exception | None] = [None] * len(steps)
    iters: dict[int, int] = {}
    for i, step in enumerate(steps):
        try:
            iters[i] = calibrate(step, min_time, warmup_s, clock)
        except Exception as exc:  # noqa: BLE001 - reported, the other steps go on
            out[i] = exc
    values: dict[int, list[float]] = {i: [] for i in iters}
    for _ in range(blocks):
        for i in list(values):
            gc.collect()  # start every block from the same clean heap
            try:
                t0 = clock()
                for _ in range(iters[i]):
                    steps[i]()
                seconds = max(clock() - t0, 1e-12)
            except Exception as exc:  # noqa: BLE001
                out[i] = exc
                del values[i]
                continue
            values[i].append(_to_unit(seconds, iters[i], items_per_iter, unit))
    for i, v in values.items():
        out[i] = stats = summarize(v, iters[i])
        how = memory[i] if memory else None
        if how:
            try:
                stats.peak_bytes = peak_memory(steps[i], how)
            except Exception:  # noqa: BLE001 - a missing memory figure is not a failure
                stats.peak_bytes = None
    return out


def measure(step: Step, items_per_iter: float = 1.0, unit: str = "samples/s", *,
            blocks: int = 7, min_time: float = 0.3, warmup_s: float = 0.2,
            clock: Callable[[], float] = time.perf_counter,
            memory: str | None = "tracemalloc") -> Stats:
    """Warm up, calibrate iterations per block to ``min_time``, time ``blocks`` blocks."""
    result = measure_all([step], items_per_iter, unit, blocks=blocks, min_time=min_time,
                         warmup_s=warmup_s, clock=clock, memory=[memory])[0]
    if isinstance(result, Exception):
        raise result
    return result


@contextlib.contextmanager
def _quiet_stderr():
    """Silence file descriptor 2: the profiler's C++ side logs every start and stop there."""
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def peak_memory(step: Step, how: str = "tracemalloc") -> int | None:
    """Peak of (allocated - freed) bytes during one ``step()``; None if it can't be measured."""
    gc.collect()
    if how == "torch":
        from torch.profiler import ProfilerActivity, profile

        with _quiet_stderr(), profile(activities=[ProfilerActivity.CPU],
                                      profile_memory=True) as prof:
            step()
        events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
        running = peak = 0
        for e in sorted(events, key=lambda e: e.start_ns()):
            running += e.nbytes()
            peak = max(peak, running)
        return peak
    was_tracing = tracemalloc.is_tracing()
    if not was_tracing:
        tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    try:
        step()
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        if not was_tracing:
            tracemalloc.stop()


# ---------------------------------------------------------------------------- running
@dataclass
class Result:
    """One table row: the shendu side, the baseline side, and their speed ratio."""

    name: str
    group: str
    unit: str
    items_per_iter: float
    doc: str = ""
    shendu: Stats | None = None
    reference: Stats | None = None
    reference_label: str = "torch"
    error: str | None = None
    reference_error: str | None = None

    @property
    def ratio(self) -> float | None:
        """shendu speed / baseline speed (>1: shendu is faster), whatever the unit."""
        if self.shendu is None or self.reference is None:
            return None
        a, b = self.shendu.median, self.reference.median
        return (b / a if is_time_unit(self.unit) else a / b) if a and b else None


@dataclass
class Config:
    """How the runner times: blocks, seconds per block, warm-up, memory, threads."""

    blocks: int = 7
    min_time: float = 0.3
    warmup_s: float = 0.2
    memory: bool = True
    torch: bool = True
    threads: int = 2

    @classmethod
    def quick(cls, **kw) -> Config:
        """A smoke-test configuration: 3 short blocks, no memory pass."""
        return cls(**{"blocks": 3, "min_time": 0.02, "warmup_s": 0.0, "memory": False, **kw})


def _error(exc: BaseException) -> str:
    return traceback.format_exception_only(type(exc), exc)[-1].strip()


def run_benchmark(b: Benchmark, cfg: Config | None = None) -> Result:
    """Time both sides of ``b``, blocks interleaved; exceptions become error strings."""
    cfg = cfg or Config()
    r = Result(b.name, b.group, b.unit, b.items_per_iter, b.doc, reference_label=b.twin_label)
    is_torch = b.twin_label == "torch"
    if b.twin_setup is None:
        r.reference_error = "no twin"
    elif is_torch and (not cfg.torch or _torch() is None):
        r.reference_error = "torch not available" if cfg.torch else "disabled"
    sides = [("shendu", b.setup, "tracemalloc")]
    if r.reference_error is None:
        sides.append(("reference", b.twin_setup, "torch" if is_torch else "tracemalloc"))
    steps, kept = [], []
    for side, setup, how in sides:
        try:
            steps.append(setup())  # outside the timed region
            kept.append((side, how))
        except Exception as exc:  # noqa: BLE001 - an error row, not a crash
            setattr(r, "error" if side == "shendu" else "reference_error", _error(exc))
    results = measure_all(steps, b.items_per_iter, b.unit, blocks=cfg.blocks,
                          min_time=cfg.min_time, warmup_s=cfg.warmup_s,
                          memory=[how if cfg.memory else None for _, how in kept])
    for (side, _), res in zip(kept, results):
        if isinstance(res, Exception):
            setattr(r, "error" if side == "shendu" else "reference_error", _error(res))
        else:
            setattr(r, side, res)
    del steps, results
    gc.collect()  # free this workload's buffers before the next one allocates
    return r


def _torch():
    """The torch module if it imports (configured for the run's threads), else None."""
    try:
        import torch
    except Exception:  # noqa: BLE001 - any import failure means "no oracle"
        return None
    return torch


if __name__ == "__main__":  # ``python -m shendu.bench``: run main from the imported module,
    from shendu.bench import main  # whose registry the bench files register into

    sys.exit(main())
else:  # the table, the JSON file and the command line live beside this module
    from ._bench_report import format_table, machine_info, main, set_threads, write_json  # noqa: F401
