"""Op code computes with the array module of its inputs (NumPy or CuPy), never NumPy
directly: a scan of the op files for ``np.<function>(...)`` calls. Type and dtype helpers
are fine anywhere; a few functions build small index tables on the host, which are then
moved to the input's device, and are listed here by name."""
import ast
from pathlib import Path

import shendu

ROOT = Path(shendu.__file__).parent
FILES = ["ops/elementwise.py", "ops/compare.py", "ops/reduce.py", "ops/movement.py",
         "ops/selection.py", "ops/_util.py",
         "nn/functional/layers.py", "nn/functional/loss.py", "nn/functional/activation.py"]
ANYWHERE = {"dtype", "errstate", "broadcast_shapes", "result_type", "issubdtype"}
HOST_TABLES = {  # (file, enclosing function) -> NumPy functions it may call on the host
    ("ops/movement.py", "backward"): {"argsort"},  # inverse permutation of a dims tuple
    ("ops/movement.py", "forward"): {"cumsum"},  # split points from a list of sizes
    ("ops/movement.py", "repeat_interleave"): {"repeat", "arange"},  # -> index_select
    ("ops/selection.py", "_index_array"): {"asarray"},  # lists; moved to the input's device
    ("nn/functional/layers.py", "_nearest_index"): {"floor", "arange", "minimum"},
    ("nn/functional/layers.py", "_whole_repeat"): {"array_equal", "arange"},  # index table
    ("nn/functional/layers.py", "_linear_weights"): {"arange", "maximum", "minimum"},
}


def _np_calls(path):
    tree = ast.parse(path.read_text())
    found = []

    def visit(node, func):
        for child in ast.iter_child_nodes(node):
            name = child.name if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) \
                else func
            if isinstance(child, ast.Call) and isinstance(child.func, ast.Attribute) and \
                    isinstance(child.func.value, ast.Name) and child.func.value.id == "np":
                found.append((func, child.func.attr, child.lineno))
            visit(child, name)
    visit(tree, "<module>")
    return found


def test_op_code_uses_the_inputs_array_module():
    bad = []
    for rel in FILES:
        for func, attr, line in _np_calls(ROOT / rel):
            if attr in ANYWHERE or attr in HOST_TABLES.get((rel, func), ()):
                continue
            bad.append(f"{rel}:{line} np.{attr}() in {func}")
    assert not bad, "NumPy called directly where the input's array module belongs:\n" + \
        "\n".join(bad)


def test_the_scan_finds_calls():
    calls = _np_calls(ROOT / "ops/movement.py")
    assert any(attr == "argsort" for _, attr, _ in calls)
