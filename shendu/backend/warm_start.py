"""A cold start in two processes: while ``shendu train`` compiles the kernels its first
step needs, a helper process compiles the ones it will need last into numba's disk cache.

numba compiles one function at a time per process (a global compiler lock), and the main
job's first step compiles its kernels one after another, the convolution's forward and
backward the longest (``benchmarks/README.md``, "First-use compile time", has the times).
A second process can compile the others at the same time on the other core: it walks the
job's kernels from the last used to the first, compiles each into the disk cache, and stops
at the first one already cached (the main process got there first). When the main process
reaches a kernel the helper has cached, numba loads it instead of compiling it. The machine
code is the same either way (one numba, one CPU, and each function at the optimisation
level its own first call would use), so results do not depend on which process compiled
what; only the wall-clock time to the first step does.

Which kernels, with which argument types, in which order: recorded from a run of the job
(``python -m shendu.backend.warm_start train --record``) into ``warm_start_train.json``
beside this file; ``tests/perf_paths/test_warm_start.py`` fails when the job's kernels
change and the file was not recorded again. The helper starts only when the kernels are
on, the run's configuration is the recorded one in everything that decides the kernels,
and some of the kernels are not in the disk cache yet; ``SHENDU_WARM_START=0`` turns it
off.
"""
from __future__ import annotations

import atexit
import contextlib
import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

from . import runtime

__all__ = ["record", "recording", "compile_entry", "start", "helper", "end", "compile_backwards",
           "pending"]

HERE = Path(__file__).resolve().parent
_recording = False   # record() is running the job: no helper
_helper = None   # the helper process started by start()
# The configuration keys that decide which kernels a ``shendu train`` run compiles: a run
# that differs from the recorded one in any of them gets no helper
KERNEL_KEYS = ("model", "dataset", "optimizer", "dropout", "augment", "threads", "device",
               "width", "resize", "hidden")


def _list_path(job: str) -> Path:
    return HERE / f"warm_start_{job}.json"


def _type_to_json(t):
    """A kernel argument's numba type as JSON (arrays and NumPy scalars only), or None."""
    from numba.core import types
    if isinstance(t, types.Array):
        return {"dtype": str(t.dtype), "ndim": t.ndim, "layout": t.layout,
                "readonly": not t.mutable}
    if isinstance(t, (types.Number, types.Boolean)):
        return str(t)
    return None


def _type_from_json(spec):
    import numpy as np
    from numba import from_dtype
    from numba.core import types
    if isinstance(spec, dict):
        return types.Array(from_dtype(np.dtype(spec["dtype"])), spec["ndim"], spec["layout"],
                           readonly=spec["readonly"])
    return from_dtype(np.dtype(spec))


def _dispatcher(entry):
    module, name, variant, _ = entry
    obj = getattr(importlib.import_module(module), name)
    return getattr(obj, variant) if variant else obj


def _locate(disp):
    """``(module, name, variant)`` under which ``disp`` is reachable: a module-level
    function (variant ``""``) or one build of a :class:`~.jit.elementwise.Kernel`."""
    module = importlib.import_module(disp.py_func.__module__)
    for name, variant in ((disp.py_func.__name__, ""),
                          (disp.py_func.__name__.removesuffix("_serial"), "serial"),
                          (disp.py_func.__name__, "parallel")):
        obj = getattr(module, name, None)
        if obj is not None and (getattr(obj, variant, None) if variant else obj) is disp:
            return disp.py_func.__module__, name, variant
    return None


def record(run) -> list:
    """Run ``run()`` and return the compiled functions it called from Python (kernels and
    shendu's other numba functions, compiled or loaded from the disk cache), in order of
    first use, as ``[module, name, variant, [argument types]]``."""
    with recording() as order:
        run()
    return order


@contextlib.contextmanager
def recording(no_helper: bool = True):
    """Inside: record (as :func:`record` does) into the list this yields; with
    ``no_helper``, :func:`start` starts none meanwhile (the recording must see every
    compilation)."""
    from numba.core.dispatcher import Dispatcher
    seen, order, depth = set(), [], [0]
    compile_ = Dispatcher.compile

    def recording_compile(self, sig):
        depth[0] += 1
        try:
            return compile_(self, sig)
        finally:
            depth[0] -= 1
            ours = depth[0] == 0 and (self.py_func.__module__ or "").startswith("shendu.")
            where = _locate(self) if ours else None
            spec = [_type_to_json(t) for t in sig] if where else None
            if where and all(t is not None for t in spec) and (where, str(spec)) not in seen:
                seen.add((where, str(spec)))
                order.append([*where, spec])

    global _recording
    Dispatcher.compile, _recording = recording_compile, no_helper
    try:
        yield order
    finally:
        Dispatcher.compile, _recording = compile_, False


def compile_entry(entry) -> None:
    """Compile one recorded function for its recorded types into the disk cache (or load
    it from there), at the optimisation level its first call in a job would use: kernels
    wrapped by ``jit.elementwise.at_kernel_level`` at theirs, other functions at numba's."""
    from .jit.elementwise import kernel_opt_level
    disp, sig = _dispatcher(entry), tuple(_type_from_json(s) for s in entry[3])
    if "_compile_for_args" in vars(disp):   # at_kernel_level's wrapper
        with kernel_opt_level():
            disp.compile(sig)
    else:
        disp.compile(sig)


def _cached(entry) -> bool:
    """Whether numba's disk cache has an index for this kernel variant (numba's own
    layout, read through private attributes: on any surprise, say no)."""
    try:
        return os.path.exists(_dispatcher(entry)._cache._cache_file._index_path)
    except Exception:   # noqa: BLE001 - another numba version: no helper, no harm
        return False


def _load(job: str) -> dict | None:
    path = _list_path(job)
    return json.loads(path.read_text()) if path.exists() else None


def pending(job: str = "train") -> list:
    """The recorded kernels of ``job`` that the disk cache does not hold yet."""
    doc = _load(job)
    return [e for e in doc["kernels"] if not _cached(e)] if doc else []


def compile_backwards(kernels: list) -> int:
    """Compile ``kernels`` (recorded order) from the last to the first into the disk cache,
    stopping at the first one already cached; returns how many were compiled."""
    done = 0
    for entry in reversed(kernels):
        if _cached(entry):
            break
        compile_entry(entry)
        done += 1
    return done


def start(job: str, cfg: dict):
    """Start the helper for ``job`` when it can help (see the module docstring); returns
    the ``subprocess.Popen`` or None."""
    global _helper
    if _recording or runtime._env("SHENDU_WARM_START", "1") == "0" \
            or not runtime.kernels_on() or (_helper is not None and _helper.poll() is None):
        return None   # (a helper of this process's is still at work: not a second one)
    doc = _load(job)
    if doc is None or any(cfg.get(k) != doc["config"].get(k) for k in KERNEL_KEYS) \
            or doc["mkl"] != runtime.mkl_loaded() or all(_cached(e) for e in doc["kernels"]):
        return None   # (without MKL the job runs other paths than the recorded ones)
    # the helper imports the same shendu as this process, wherever that came from; its
    # output would interleave with the job's, and it has nothing to say
    code = (f"import sys; sys.path.insert(0, {str(HERE.parents[1])!r}); "
            f"from shendu.backend.warm_start import main; main([{job!r}])")
    _helper = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    atexit.register(_end_helper)
    return _helper


def helper():
    """The helper process this process started (a ``subprocess.Popen``), or None."""
    return _helper


def _end_helper():
    """At exit: a helper still compiling is ended (see :func:`end`)."""
    end(_helper)


def end(process) -> None:
    """End a compiling helper ``process`` (a ``subprocess.Popen`` or None) if it still runs:
    numba writes each cache file under a temporary name and renames it, so nothing
    half-written is left."""
    if process is not None and process.poll() is None:
        process.terminate()
        process.wait()


def _record_train(limit: int = 600) -> dict:
    """Record the main job's kernels: ``shendu train``'s defaults, one short epoch."""
    from ..train import recipe
    cfg = recipe.resolve_config({"epochs": 1, "limit": limit})
    kernels = record(lambda: recipe.run_training(cfg, None, evaluate_test=False,
                                                 save=False, progress=False,
                                                 log=lambda s: None))
    return {"job": "train", "config": {k: cfg.get(k) for k in KERNEL_KEYS},
            "mkl": runtime.mkl_loaded(), "kernels": kernels}


def main(argv=None) -> int:
    import argparse
    p = argparse.ArgumentParser(prog="python -m shendu.backend.warm_start",
                                description=__doc__.split("\n")[0])
    p.add_argument("job", choices=["train"])
    p.add_argument("--record", action="store_true",
                   help="run the job's first epoch and write its kernel list (developers: "
                   "after changing which kernels the job uses)")
    p.add_argument("--out", default=None, help="with --record: write here instead")
    args = p.parse_args(argv)
    if args.record:
        doc, out = _record_train(), Path(args.out or _list_path(args.job))
        out.write_text(json.dumps(doc, indent=1) + "\n")
        print(f"recorded {len(doc['kernels'])} compiled functions into {out}")
        return 0
    compile_backwards(_load(args.job)["kernels"])
    return 0


if __name__ == "__main__":   # run as shendu.backend.warm_start, whose flags the job reads
    from shendu.backend.warm_start import main as _main
    sys.exit(_main())
