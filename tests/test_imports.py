"""Every module imports on its own (no import cycles), and the public namespaces are the
curated ``__all__`` lists, without module names leaking in."""
import json
import pkgutil
import subprocess
import sys
import types
from pathlib import Path

import pytest

import shendu as sd
import shendu.nn as nn
import shendu.nn.functional as F

ROOT = Path(sd.__file__).parent


def _all_modules() -> list[str]:
    names = ["shendu"]
    for info in pkgutil.walk_packages([str(ROOT)], prefix="shendu."):
        if not info.name.endswith("__main__"):  # runs the command line
            names.append(info.name)
    return sorted(names)


# Runs in a fresh interpreter: each module imported with no shendu module loaded before
# it (NumPy and the optional libraries stay loaded: only shendu's own order matters).
# Importing any ``shendu.x`` runs ``shendu/__init__`` first, so for every module that
# ``import shendu`` itself loads, importing it alone happens exactly as ``import shendu``
# does: that one import proves all of them, and only the modules it leaves out (the CLI,
# kernels loaded on first use, optional extras) need a fresh import each.
_EACH_ALONE = """
import importlib, json, sys, traceback
failed, loaded_by_package = {}, set()
for name in json.loads(sys.argv[1]):
    if name in loaded_by_package:
        continue
    for key in [k for k in sys.modules if k == "shendu" or k.startswith("shendu.")]:
        del sys.modules[key]
    try:
        importlib.import_module(name)
    except ModuleNotFoundError as e:
        if (e.name or "").split(".")[0] == "shendu":
            failed[name] = traceback.format_exc(limit=-3)
    except Exception:
        failed[name] = traceback.format_exc(limit=-3)
    if name == "shendu" and not failed:
        loaded_by_package = {k for k in sys.modules if k.startswith("shendu.")}
print(json.dumps({"failed": failed, "alone": len(loaded_by_package)}))
"""


def test_every_module_imports_alone():
    names = _all_modules()
    assert len(names) > 100 and "shendu.backend.runtime" in names
    # two interpreters at once, each importing shendu first and then every other module
    # (pytest itself keeps only one core busy)
    rest = [n for n in names if n != "shendu"]
    jobs = [subprocess.Popen([sys.executable, "-c", _EACH_ALONE,
                              json.dumps(["shendu", *rest[k::2]])],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for k in range(2)]
    failed = {}
    for job in jobs:
        out, err = job.communicate(timeout=600)
        assert job.returncode == 0, err[-2000:]
        report = json.loads(out.strip().splitlines()[-1])
        assert report["alone"] > 100   # shendu/__init__ loads most modules
        failed.update(report["failed"])
    assert not failed, "\n\n".join(f"{k}:\n{v}" for k, v in failed.items())


@pytest.mark.parametrize("name", ["shendu._bench_report", "shendu.bench", "shendu.backend.blas",
                                  "shendu.backend.jit", "shendu.backend.cpu",
                                  "shendu.backend.convolution", "shendu._threads",
                                  "shendu.optim", "shendu.ops.rnn_ops", "shendu.ops.nn_ops"])
def test_once_circular_modules_import_first_in_a_fresh_process(name):
    subprocess.run([sys.executable, "-c", f"import {name}"], check=True, timeout=120)


def test_backend_layers_import_one_way():
    """runtime imports nothing of shendu (but the thread tuner's logic, a leaf); blas and
    jit only runtime; ops reach the kernels through backend.cpu alone."""
    def imports(path: Path) -> str:
        return "\n".join(line for line in path.read_text().splitlines()
                         if line.lstrip().startswith(("from ", "import ")))

    backend = ROOT / "backend"
    # the thread tuner's logic is a leaf (nothing of shendu) that runtime may import
    assert "from ." not in imports(backend / "thread_tuner.py")
    assert "from ." not in imports(backend / "runtime.py").replace(
        "from .thread_tuner import", "")
    assert "from .. import runtime" in imports(backend / "jit" / "__init__.py")
    assert "blas" not in imports(backend / "jit" / "__init__.py")
    assert "jit" not in imports(backend / "blas.py")
    for path in sorted((ROOT / "ops").glob("*.py")) + sorted((ROOT / "optim").glob("*.py")):
        text = imports(path)
        assert "jit" not in text and "blas" not in text, path.name
        assert "optim" not in text or path.parent.name == "optim", path.name


@pytest.mark.parametrize("module", [sd, nn, F], ids=lambda m: m.__name__)
def test_all_is_complete_and_names_no_module_but_subpackages(module):
    assert len(set(module.__all__)) == len(module.__all__)
    allowed = {"functional", "init", "utils"} if module is nn else set()
    for name in module.__all__:
        value = getattr(module, name)
        assert not isinstance(value, types.ModuleType) or name in allowed, name


def test_op_module_names_do_not_leak():
    for name in ("conv", "pool", "nn_ops", "linalg", "elementwise", "compare", "movement",
                 "selection", "reduce", "rnn_ops", "getitem", "type_"):
        assert not hasattr(sd, name), name
    ns: dict = {}
    exec("from shendu import *", ns)
    assert not [k for k, v in ns.items() if isinstance(v, types.ModuleType)]
    assert {"tensor", "relu", "matmul", "cat", "sum", "no_grad", "Tensor"} <= set(ns)
    for name in ("activation", "conv", "layers", "loss"):
        assert name not in F.__all__
