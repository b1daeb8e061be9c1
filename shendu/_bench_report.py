"""The face of ``shendu bench``: the command line, the results table and the JSON file.

The timing itself is in :mod:`shendu.bench`; this module selects benchmarks, reports them
and records the machine they ran on, so that numbers from two runs can be told apart.
"""
from __future__ import annotations

import argparse
import fnmatch
import json
import os
import platform
import sys
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

_EPILOG = """\
examples:
  shendu bench                          run everything (several minutes)
  shendu bench --list                   what is registered
  shendu bench train 'conv_*' --quick   a group and a pattern, short blocks
  shendu bench --json benchmarks/results/latest.json
  shendu bench user_loop --quick        the user loop alone, a minute
  shendu bench --contend                the user loop beside one busy process per core
  shendu bench --contend --busy-per-core 2   ... beside two per core (a heavier load)
  shendu bench --contend --rounds 4          ... four rounds, the order alternating
  shendu bench --check benchmarks/results/latest.json   which targets a results file meets
  shendu bench --check run1.json run2.json run3.json  ... and on the median over the runs

ratio = shendu speed / baseline speed: above 1 shendu is faster. Compare ratios from the
same run; absolute numbers on a shared machine drift from run to run."""


def _fmt(v: float | None) -> str:
    if v is None:
        return "—"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    return f"{v:.1f}" if abs(v) >= 10 else f"{v:.3g}"


def _mb(s: bench.Stats | None) -> str:
    return "—" if s is None or s.peak_bytes is None else f"{s.peak_bytes / 2**20:.1f}"


def _side(s: bench.Stats | None, err: str | None) -> tuple[str, str]:
    if s is None:
        return ("ERROR" if err and err not in ("no twin", "disabled", "torch not available")
                else "—"), ""
    return _fmt(s.median), f"{100 * s.spread:.0f}%"


def format_table(results: Sequence[bench.Result], cfg: bench.Config | None = None,
                 load: float | None = None) -> str:
    """The results as a fixed-width text table, grouped, with errors listed below it.

    ``load`` is the load average when the run started, shown so that a pasted table says
    how busy the machine was.
    """
    cfg = cfg or bench.Config()
    head = ("benchmark", "unit", "shendu", "±", "baseline", "±", "vs", "ratio", "peak MiB")
    rows, notes, group = [], [], None
    for r in results:
        if r.group != group:
            group = r.group
            rows.append((f"[{group}]",) + ("",) * (len(head) - 1))
        sd, sd_sp = _side(r.shendu, r.error)
        ref, ref_sp = _side(r.reference, r.reference_error)
        ratio = "—" if r.ratio is None else f"{r.ratio:.2f}x"
        mem = f"{_mb(r.shendu)} / {_mb(r.reference)}"
        rows.append(("  " + r.name, r.unit, sd, sd_sp, ref, ref_sp, r.reference_label, ratio,
                     mem))
        if r.error:
            notes.append(f"{r.name}: shendu failed: {r.error}")
        if r.reference_error and r.reference_error != "no twin":
            notes.append(f"{r.name}: {r.reference_label} side: {r.reference_error}")
    widths = [max(len(row[i]) for row in rows + [head]) for i in range(len(head))]
    left = {0, 1, 6}  # text columns align left, numbers right

    def line(row):
        return "  ".join(c.ljust(w) if i in left else c.rjust(w)
                         for i, (c, w) in enumerate(zip(row, widths))).rstrip()

    busy = "" if load is None else f"; load average {load:.1f} on {os.cpu_count()} CPUs"
    out = [f"shendu bench: {cfg.threads} threads, median of {cfg.blocks} blocks{busy}",
           "± is the interquartile range / median; ratio is shendu speed / baseline speed; "
           "peak MiB is shendu / baseline",
           line(head), line(tuple("-" * w for w in widths))]
    out += [line(row) for row in rows]
    if notes:
        out += ["", *notes]
    return "\n".join(out)


def set_threads(n: int) -> dict:
    """Give shendu (MKL or OpenBLAS, its compiled kernels and worker threads) and PyTorch
    the same ``n`` threads; returns what was set."""
    import shendu

    info = {"threads": n}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # no threadpoolctl: said below instead
        shendu.set_num_threads(n)
    try:
        from threadpoolctl import threadpool_info

        info["blas"] = [{k: d.get(k) for k in ("internal_api", "version", "num_threads",
                                                "architecture")}
                        for d in threadpool_info() if d["user_api"] == "blas"]
    except ImportError:
        info["blas"] = "threadpoolctl not installed: OpenBLAS uses its default thread count"
    torch = bench._torch()
    if torch is not None:
        torch.set_num_threads(n)
    info["shendu_threads"] = n
    info["shendu_backend"] = backend_info()
    return info


def backend_info() -> dict:
    """What shendu's CPU work runs on in this process (see ``shendu.backend``)."""
    from shendu.backend import runtime

    kernels = "off"
    if runtime.kernels_on():
        import numba

        kernels = {"numba": numba.__version__, "threads": runtime.kernel_threads(),
                   "layer": (numba.config.THREADING_LAYER if runtime.kernels_parallel()
                             else "one thread")}
    return {"matmul": runtime.blas_name(), "kernels": kernels,
            "keep_freed_memory": runtime.keep_freed_memory()}


def backend_line(info: dict) -> str:
    k = info["kernels"]
    kern = "kernels off" if k == "off" else f"numba {k['numba']} kernels ({k['layer']})"
    return f"shendu backend: products by {info['matmul']}; {kern}"


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def _git_commit() -> str | None:
    """The commit of the checkout this shendu runs from (``+dirty`` when files differ from
    it), or None outside a git checkout."""
    import subprocess

    root = Path(__file__).resolve().parents[1]
    if not (root / ".git").exists():
        return None
    try:
        def git(*args):
            return subprocess.run(["git", "-C", str(root), *args], capture_output=True,
                                  text=True, timeout=10, check=True).stdout.strip()

        head = git("rev-parse", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no", "--", "shendu")
        return head + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def measured_at() -> str:
    """The commit this code runs from, else ``shendu <version>`` (an installed copy)."""
    import shendu

    return _git_commit() or f"shendu {shendu.__version__}"


def machine_info(threads: dict | None = None) -> dict:
    """CPU, memory, library versions and BLAS configuration of this run."""
    import numpy as np

    import shendu

    cpu = next((ln.split(":", 1)[1].strip() for ln in _read("/proc/cpuinfo").splitlines()
                if ln.startswith("model name")), platform.processor())
    mem = next((ln.split()[1] for ln in _read("/proc/meminfo").splitlines()
                if ln.startswith("MemTotal")), None)
    info = {"platform": platform.platform(), "python": platform.python_version(),
            "cpu_model": cpu, "cpu_count": os.cpu_count(),
            "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
            else os.cpu_count(),
            "memory_gib": round(int(mem) / 2**20, 1) if mem else None,
            "shendu": shendu.__version__, "git_commit": _git_commit(),
            "numpy": np.__version__, "threads": threads or {},
            "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None}
    try:
        info["numpy_blas"] = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
    except Exception:  # noqa: BLE001 - older NumPy has no dict mode
        info["numpy_blas"] = None
    torch = bench._torch()
    if torch is not None:
        info["torch"] = {"version": torch.__version__, "num_threads": torch.get_num_threads(),
                         "mkl": torch.backends.mkl.is_available(),
                         "mkldnn": torch.backends.mkldnn.is_available()}
    return info


def _result_dict(r: bench.Result) -> dict:
    d = asdict(r)
    for side in ("shendu", "reference"):
        if d[side] is not None:
            d[side]["spread"] = getattr(r, side).spread
    d["ratio"] = r.ratio
    return d


def write_json(path: str | Path, results: Sequence[bench.Result], cfg: bench.Config,
               machine: dict, loop: dict | None = None, command: str | None = None) -> None:
    """Write every result (and the user-loop runs) with the commit, the command (default:
    this process's arguments), the machine and the configuration; atomic (temp file,
    rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {"schema": bench.SCHEMA, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
           "commit": machine.get("git_commit") or f"shendu {machine.get('shendu')}",
           "command": "shendu bench " + " ".join(sys.argv[1:]) if command is None else command,
           "config": asdict(cfg), "machine": machine,
           "results": [_result_dict(r) for r in results]}
    if loop is not None:
        doc["user_loop"] = loop
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
    os.replace(tmp, path)


def write_script_json(path: str | Path, command: str, load_before, **fields) -> None:
    """A benchmark script's results file: when, its command, the commit and machine, the
    load before and after, then ``fields``; atomic (temp file, rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    machine = machine_info()
    doc = {"created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "command": command,
           "commit": machine.get("git_commit"), "machine": machine,
           "load_before": load_before, "load_after": os.getloadavg(), **fields}
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
    os.replace(tmp, path)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="shendu bench", epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Time shendu workloads against their PyTorch twins (benchmarks/bench_*.py).")
    p.add_argument("names", nargs="*", metavar="NAME",
                   help="benchmark names, group names or glob patterns (default: all)")
    p.add_argument("--json", metavar="PATH", help="also write all results and machine info")
    p.add_argument("--quick", action="store_true",
                   help="smoke test: 3 very short blocks, no memory pass (numbers are rough)")
    p.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    p.add_argument("--blocks", type=int, metavar="N", help="timed blocks per side (default 7)")
    p.add_argument("--min-time", type=float, metavar="S",
                   help="seconds per block; iterations are calibrated to it (default 0.3)")
    p.add_argument("--threads", type=int, metavar="N",
                   help="BLAS and PyTorch threads, the same for both (default 2; the user "
                   "loop runs each library's default unless given)")
    p.add_argument("--no-torch", action="store_true", help="skip the PyTorch twins")
    p.add_argument("--omp-wait", choices=("spin", "short", "passive"), default="spin",
                   help="how GNU OpenMP's idle threads wait in this process, for both "
                   "libraries (they share one libgomp, which reads it once): 'spin' "
                   "(default) is libgomp's and PyTorch's default; 'short' is shendu's own "
                   "default, which PyTorch's side then gets too (it cost PyTorch ~25%% on "
                   "the MLP rows); 'passive' sleeps at once. The user loop runs each "
                   "library in its own process at its own default")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory pass")
    p.add_argument("--dir", metavar="DIR", help="where the bench_*.py files are "
                   "(default: the repository's benchmarks/)")
    g = p.add_argument_group("the user loop (each library in its own process)")
    g.add_argument("--contend", action="store_true",
                   help="run only the user loop, beside one busy process per core, at each "
                   "library's default threading and at 1 thread; median and spread per run")
    g.add_argument("--busy-per-core", type=int, default=1, metavar="K",
                   help="with --contend: K busy processes per core (default 1; 2 is a "
                   "heavier load)")
    g.add_argument("--loop-steps", type=int, metavar="N",
                   help="training steps per user-loop run (default 300; 30 with --quick)")
    g.add_argument("--rounds", type=int, default=1, metavar="R",
                   help="user-loop rounds (default 1); each round runs every library and "
                   "thread count once, the order alternating between rounds, so a load "
                   "that changes during the job weighs on every side alike")
    g.add_argument("--no-loop", action="store_true", help="skip the user loop")
    p.add_argument("--check", metavar="FILE", nargs="+", help="say which speed targets "
                   "the results FILE (written by --json) meets, and exit (times nothing); "
                   "several files: also judge each target on the median of its ratios "
                   "over them")
    return p


def _same_openmp_wait(choice: str) -> str:
    """Load libgomp with the wait ``choice`` (``SHENDU_OMP_WAIT``'s values) for this
    process, unless the environment already chose; returns what OpenMP runs with.

    Both libraries' threads come from the one libgomp of the process, which reads its spin
    setting when it loads: shendu's short spin would also be PyTorch's, and PyTorch's MLP
    inference measured ~25% slower with it on the quiet Xeon. So the in-process rows run
    both at libgomp's default unless asked. Nothing is left in the environment: the user
    loop's processes start with each library's own default."""
    from .backend import runtime
    return runtime.openmp_wait_policy(default=choice)


def _select(found: list[bench.Benchmark], patterns: list[str]) -> list[bench.Benchmark]:
    if not patterns:
        return found
    return [b for b in found
            if any(fnmatch.fnmatchcase(b.name, p) or fnmatch.fnmatchcase(b.group, p)
                   for p in patterns)]


LOOP_NAMES = ("user_loop", "loop")  # what selects the user loop on the command line


def _wants_loop(args) -> bool:
    if args.no_loop:
        return False
    if args.contend or not args.names:
        return True
    return any(fnmatch.fnmatchcase(n, p) for n in LOOP_NAMES for p in args.names)


def _run_user_loop(args, threads_given: bool) -> dict:
    from . import _bench_loop

    steps = args.loop_steps or (30 if args.quick else 300)
    counts = [args.threads if threads_given else 0]
    if args.contend:
        counts = list(dict.fromkeys(counts + [1]))
    res = _bench_loop.run_loop(steps, threads=counts, contend=args.contend,
                               torch=not args.no_torch, busy_per_core=args.busy_per_core,
                               rounds=args.rounds,
                               log=lambda line: print(line, file=sys.stderr, flush=True))
    return res


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``shendu bench``; returns 0, 1 if a benchmark failed (or, with ``--check``, a
    target is not met), 2 on a usage error."""
    args = _parser().parse_args(argv)
    if args.check:
        from . import _bench_check

        return _bench_check.main(args.check)
    if args.blocks is not None and args.blocks < 1:
        print("shendu bench: --blocks must be at least 1", file=sys.stderr)
        return 2
    if args.busy_per_core < 1:
        print("shendu bench: --busy-per-core must be at least 1", file=sys.stderr)
        return 2
    if args.rounds < 1:
        print("shendu bench: --rounds must be at least 1", file=sys.stderr)
        return 2
    if args.loop_steps is not None and args.loop_steps < 2:
        print("shendu bench: --loop-steps must be at least 2", file=sys.stderr)
        return 2
    try:
        found = bench.discover(args.dir)
    except Exception as exc:  # noqa: BLE001 - a broken bench file is the user's to fix
        print(f"shendu bench: could not load the benchmarks: {bench._error(exc)}",
              file=sys.stderr)
        return 2
    loop = _wants_loop(args)
    selected = [] if args.contend else _select(found, args.names)
    if not selected and not loop:
        print(f"shendu bench: no benchmark matches {' '.join(args.names) or '(none found)'}; "
              "try --list", file=sys.stderr)
        return 2
    if args.list:
        for b in selected:
            vs = b.twin_label if b.twin_setup else "—"
            print(f"{b.group + '/' + b.name:34} {b.unit:11} vs {vs:8} {b.doc}")
        if loop:
            print(f"{'loop/user_loop':34} {'ms/step':11} vs {'torch':8} LeNet-5/Adam user loop, "
                  "each library in its own process")
        return 0
    threads_given = args.threads is not None
    cfg = bench.Config.quick() if args.quick else bench.Config()
    if args.blocks is not None:
        cfg.blocks = args.blocks
    if args.min_time is not None:
        cfg.min_time = args.min_time
    cfg.memory = cfg.memory and not args.no_memory
    cfg.torch, cfg.threads = not args.no_torch, args.threads or 2
    wait = _same_openmp_wait(args.omp_wait)
    threads = set_threads(cfg.threads)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    if load > 0.5 * (os.cpu_count() or 1) and not args.contend:
        print(f"shendu bench: the machine is busy (load average {load:.1f} on "
              f"{os.cpu_count()} CPUs): timings will be noisy; compare ratios",
              file=sys.stderr)
    results = []
    for i, b in enumerate(selected, 1):
        print(f"[{i}/{len(selected)}] {b.group}/{b.name} ...", end=" ", file=sys.stderr,
              flush=True)
        r = bench.run_benchmark(b, cfg)
        results.append(r)
        ratio = "" if r.ratio is None else f"  ratio {r.ratio:.2f}x"
        print(f"{_side(r.shendu, r.error)[0]} {b.unit}{ratio}", file=sys.stderr, flush=True)
    machine = {**machine_info(threads), "load_at_start": load, "openmp_wait": wait}
    print(f"measured at {machine.get('git_commit') or 'shendu ' + machine['shendu']} on "
          f"{machine['cpu_model']} ({machine['cpu_count']} CPUs); OpenMP wait for both "
          f"libraries: {wait}")
    if results:
        print(format_table(results, cfg, load))
        print(backend_line(threads["shendu_backend"]))
    loop_res = None
    if loop:
        from ._bench_loop import format_loop

        loop_res = _run_user_loop(args, threads_given)
        print(("\n" if results else "") + format_loop(loop_res))
    if args.json:
        given = list(sys.argv[1:] if argv is None else argv)
        write_json(args.json, results, cfg, machine, loop_res,
                   command="shendu bench " + " ".join(given))
        print(f"\nwrote {args.json}")
    loop_failed = loop_res is not None and any("error" in r for r in loop_res["runs"])
    return 1 if any(r.error for r in results) or loop_failed else 0


# Last: ``bench`` imports this module's functions at its end, so either may be imported first.
from . import bench  # noqa: E402
