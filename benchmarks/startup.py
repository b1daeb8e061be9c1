"""How long ``shendu train`` takes to start training: cold (kernels compiled) and warm.

Each measurement is a fresh Python process running the main job's recipe (LeNet-5 on the
shipped digits, Adam, batch 32, the ``shendu train`` defaults) for one short epoch; the
parent's clock starts before the process is spawned, so interpreter start, imports, data
loading and the compilation of the kernels are all counted. Reported per run:

* ``first_step_s``: until the first training step has finished (what "starts training"
  means here);
* ``epoch_s``: until the short epoch and its dev evaluation are done (the inference
  kernels compiled too);
* ``cpu_s``: the CPU time the process used (on shared cores the wall-clock figures also
  hold the time spent waiting for a core).

*Cold* copies the package into a fresh temporary folder (numba keeps its cache in
``__pycache__`` beside the source, so a fresh copy has none; ``NUMBA_CACHE_DIR`` is
cleared from the environment) and runs there twice: first cold, then warm.

    python benchmarks/startup.py            # cold then warm, twice each
    python benchmarks/startup.py --json benchmarks/results/startup.json
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import sys, time
t_import = time.perf_counter()
import shendu
from shendu.train import recipe
from shendu.train.callbacks import LambdaCallback
marks = {"import": time.perf_counter() - t_import}
def first(trainer, batch, loss):
    marks.setdefault("step", time.perf_counter() - t_import)
# what `shendu train` runs (fused model, the warm-start helper on a cold cache), one epoch
cfg = recipe.resolve_config({"epochs": 1, "limit": int(sys.argv[1])})
recipe.run_training(cfg, None, evaluate_test=False, save=False, progress=False,
                    log=lambda s: None, callbacks=[LambdaCallback(on_batch_end=first)])
marks["epoch"] = time.perf_counter() - t_import
from shendu.backend import warm_start
if warm_start.helper() is not None:   # its CPU time counts too
    warm_start.helper().wait()
print("MARKS", marks["import"], marks["step"], marks["epoch"])
"""


def run_once(package_parent: Path, limit: int) -> dict:
    """One child process; times measured from before it is spawned."""
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    env["PYTHONPATH"] = str(package_parent)
    env["PYTHONDONTWRITEBYTECODE"] = "0"
    cpu0 = _children_cpu()
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", CHILD, str(limit)], env=env,
                         capture_output=True, text=True, cwd=package_parent)
    total = time.perf_counter() - t0
    cpu = _children_cpu() - cpu0
    if out.returncode != 0:
        raise RuntimeError(f"child failed:\n{out.stderr[-3000:]}")
    line = next(ln for ln in out.stdout.splitlines() if ln.startswith("MARKS"))
    imp, step, epoch = map(float, line.split()[1:])
    spawn = total - epoch  # interpreter start-up and exit, outside the child's clock
    return {"import_s": round(imp, 2), "first_step_s": round(step + spawn, 2),
            "epoch_s": round(epoch + spawn, 2), "cpu_s": round(cpu, 2)}


def _children_cpu() -> float:
    """CPU seconds used by finished child processes: on a loaded machine this tells the
    work apart from the waiting."""
    use = resource.getrusage(resource.RUSAGE_CHILDREN)
    return use.ru_utime + use.ru_stime


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repeat", type=int, default=2, help="fresh copies to measure")
    p.add_argument("--limit", type=int, default=600, help="images in the short epoch")
    p.add_argument("--json", help="write the runs here")
    p.add_argument("--source", default=str(ROOT), help="checkout whose shendu/ to time "
                   "(default: this one)")
    args = p.parse_args(argv)
    runs = []
    for i in range(args.repeat):
        with tempfile.TemporaryDirectory(prefix="shendu-startup-") as tmp:
            shutil.copytree(Path(args.source) / "shendu", Path(tmp) / "shendu",
                            ignore=shutil.ignore_patterns("__pycache__"))
            cold = run_once(Path(tmp), args.limit)
            warm = run_once(Path(tmp), args.limit)
        runs.append({"cold": cold, "warm": warm})
        print(f"copy {i + 1}: cold {cold}  warm {warm}", flush=True)
    if args.json:
        sys.path.insert(0, str(ROOT))
        from shendu._bench_report import machine_info

        doc = {"created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "machine": machine_info(),
               "runs": runs}
        Path(args.json).write_text(json.dumps(doc, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
