"""The cold-start helper (shendu/backend/warm_start.py): its kernel list is the main job's,
it fills numba's disk cache, and the main job then loads those kernels instead of
compiling them."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from shendu.backend import runtime, warm_start

ROOT = Path(__file__).resolve().parents[2]

needs_kernels = pytest.mark.skipif(
    not (runtime.kernels_on() and runtime.mkl_loaded()),
    reason="compiled kernels or MKL off (the list is recorded with both on)")


def _run(code: str, cwd: Path) -> str:
    out = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


@needs_kernels
def test_the_shipped_list_is_what_the_main_job_compiles(tmp_path):
    """Recorded afresh in a new process, the list equals the one in the package (after a
    change to the kernels the main job runs: python -m shendu.backend.warm_start train
    --record)."""
    out = tmp_path / "list.json"
    _run(f"import sys; sys.argv = ['x', 'train', '--record', '--out', {str(out)!r}]; "
         "from shendu.backend.warm_start import main; main()", ROOT)
    fresh = json.loads(out.read_text())
    shipped = json.loads((ROOT / "shendu/backend/warm_start_train.json").read_text())
    assert fresh == shipped
    assert len(shipped["kernels"]) >= 5   # the convolution, pooling, products, Adam


@needs_kernels
def test_the_helper_fills_the_cache_and_the_job_loads_from_it(tmp_path):
    """In a copy of the package without numba's cache, the helper compiles every listed
    kernel; a job started afterwards loads each of them from disk (no compilation)."""
    shutil.copytree(ROOT / "shendu", tmp_path / "shendu",
                    ignore=shutil.ignore_patterns("__pycache__"))
    probe = ("import sys; sys.path.insert(0, '.'); from shendu.backend import warm_start; "
             "print(len(warm_start.pending('train')))")
    listed = len(json.loads((ROOT / "shendu/backend/warm_start_train.json").read_text())
                 ["kernels"])
    assert int(_run(probe, tmp_path)) == listed
    _run("import sys; sys.path.insert(0, '.'); from shendu.backend.warm_start import main; "
         "main(['train'])", tmp_path)
    assert int(_run(probe, tmp_path)) == 0
    job = """
import sys, json; sys.path.insert(0, '.')
from shendu.backend import warm_start
from shendu.train import recipe
cfg = recipe.resolve_config({"epochs": 1, "limit": 64})
recipe.run_training(cfg, None, evaluate_test=False, save=False, progress=False,
                    log=lambda s: None)
doc = warm_start._load("train")
hits = [sum(warm_start._dispatcher(e)._cache_hits.values()) for e in doc["kernels"]]
misses = [sum(warm_start._dispatcher(e)._cache_misses.values()) for e in doc["kernels"]]
print(json.dumps({"hits": hits, "misses": misses, "helper": warm_start.helper() is not None}))
"""
    res = json.loads(_run(job, tmp_path).strip().splitlines()[-1])
    assert res["misses"] == [0] * listed and all(h >= 1 for h in res["hits"])
    assert not res["helper"]   # everything was cached: no helper started


def test_types_travel_as_json():
    from numba import typeof
    from numba.core import types
    for value in (np.zeros((2, 3), np.float32), np.zeros((2, 3), np.float64)[:, ::2],
                  np.zeros(4, np.uint8), np.zeros((2, 2, 2), np.float32).T):
        t = typeof(value)
        assert warm_start._type_from_json(warm_start._type_to_json(t)) == t
    ro = np.zeros(3, np.float32)
    ro.flags.writeable = False
    assert warm_start._type_from_json(warm_start._type_to_json(typeof(ro))) == typeof(ro)
    for t in (types.boolean, types.int64, types.float32, types.float64):
        assert warm_start._type_from_json(warm_start._type_to_json(t)) == t
    assert warm_start._type_to_json(types.UniTuple(types.int64, 2)) is None


def test_kernels_are_located_by_module_name_and_build():
    from shendu.backend.jit import elementwise, mkl
    kernel = elementwise.relu_forward
    assert warm_start._locate(kernel.serial) == (elementwise.__name__, "relu_forward",
                                                 "serial")
    assert warm_start._locate(kernel.parallel) == (elementwise.__name__, "relu_forward",
                                                   "parallel")
    assert warm_start._locate(mkl._gemm_any) == (mkl.__name__, "_gemm_any", "")
    entry = [elementwise.__name__, "relu_forward", "serial", []]
    assert warm_start._dispatcher(entry) is kernel.serial


def test_compile_backwards_starts_at_the_end_and_stops_at_a_cached_one(monkeypatch):
    cached = {"b"}
    compiled = []

    class Fake:
        def __init__(self, name):
            self.name = name

        def compile(self, sig):
            compiled.append((self.name, sig))

    monkeypatch.setattr(warm_start, "_cached", lambda e: e[0] in cached)
    monkeypatch.setattr(warm_start, "_dispatcher", lambda e: Fake(e[0]))
    entries = [[name, "f", "serial", ["int64"]] for name in "abcd"]
    assert warm_start.compile_backwards(entries) == 2
    assert [n for n, _ in compiled] == ["d", "c"]


def test_each_function_compiles_at_the_level_of_its_own_first_call(monkeypatch):
    """A kernel wrapped by at_kernel_level compiles at KERNEL_OPT_LEVEL, as its first call
    in the job would; a plain numba function (``_gemm_any``) at numba's own level: the job
    then loads from the cache exactly the code it would have compiled."""
    from numba.core import config

    from shendu.backend.jit import elementwise
    levels = []

    class Fake:
        def __init__(self, wrapped):
            if wrapped:
                self._compile_for_args = None   # what at_kernel_level sets

        def compile(self, sig):
            levels.append(int(config.OPT))

    monkeypatch.setattr(config, "OPT", type(config.OPT)(3))
    for wrapped in (True, False):
        monkeypatch.setattr(warm_start, "_dispatcher", lambda e, w=wrapped: Fake(w))
        warm_start.compile_entry(["m", "f", "", ["int64"]])
    assert levels == [elementwise.KERNEL_OPT_LEVEL, 3]
    assert elementwise.KERNEL_OPT_LEVEL < 3   # (so the two cases differ)
    assert "_compile_for_args" in vars(elementwise.relu_forward.serial)


def test_no_helper_unless_it_can_help(monkeypatch):
    doc = warm_start._load("train")
    started = []
    monkeypatch.setattr(warm_start.subprocess, "Popen", lambda *a, **k: started.append(a))
    monkeypatch.setattr(warm_start, "_cached", lambda e: False)
    monkeypatch.setattr(warm_start.runtime, "kernels_on", lambda: True)
    monkeypatch.setattr(warm_start.runtime, "mkl_loaded", lambda: doc["mkl"])
    other = dict(doc["config"], model="mlp")
    assert warm_start.start("train", other) is None            # another model
    monkeypatch.setattr(warm_start.runtime, "mkl_loaded", lambda: not doc["mkl"])
    assert warm_start.start("train", doc["config"]) is None    # other products
    monkeypatch.setattr(warm_start.runtime, "mkl_loaded", lambda: doc["mkl"])
    monkeypatch.setenv("SHENDU_WARM_START", "0")
    assert warm_start.start("train", doc["config"]) is None    # turned off
    monkeypatch.delenv("SHENDU_WARM_START")
    monkeypatch.setattr(warm_start, "_cached", lambda e: True)
    assert warm_start.start("train", doc["config"]) is None    # all cached
    assert not started
    monkeypatch.setattr(warm_start, "_cached", lambda e: False)
    monkeypatch.setattr(warm_start, "atexit", type("A", (), {"register": staticmethod(
        lambda f: None)}))
    monkeypatch.setattr(warm_start, "_helper", None)
    warm_start.start("train", doc["config"])
    assert len(started) == 1 and "main(['train'])" in started[0][0][-1]
    busy = type("Running", (), {"poll": lambda self: None})()
    monkeypatch.setattr(warm_start, "_helper", busy)
    assert warm_start.start("train", doc["config"]) is None    # one is still at work
    assert len(started) == 1
