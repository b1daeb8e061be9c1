"""Which ops named in issue 2 are run through ``check_op`` by the tests in ``tests/ops``.

Run ``python tests/ops/op_coverage.py`` for the list; ``test_op_coverage.py`` fails when an
op has no ``check_op`` coverage. An op counts as covered when its pattern matches the
*function under test* of some ``check_op`` call: the call's first argument, or, when that
argument is a ``pytest.mark.parametrize`` parameter, the matching column of the table.
(The NumPy and PyTorch references are deliberately not searched.)
"""
from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

HERE = Path(__file__).parent

# name in the issue -> regex over the source of a function under test
NAMED_OPS = {
    # arithmetic, broadcasting
    "+": r"\+", "-": r"\w \- \w", "*": r"\w \* \w", "/": r"\w / \w", "**": r"\*\*",
    "neg": r"lambda \w+: -\w", "abs": r"\babs\b", "matmul": r"\bmatmul\b| @ ",
    "exp": r"\bexp\b", "log": r"\blog\b", "log1p": r"\blog1p\b", "sqrt": r"\bsqrt\b",
    "rsqrt": r"\brsqrt\b", "sin": r"\bsin\b", "cos": r"\bcos\b", "tanh": r"\btanh\b",
    "sigmoid": r"\bsigmoid\b", "relu": r"\brelu\b", "leaky_relu": r"\bleaky_relu\b",
    "elu": r"\belu\b", "gelu": r"\bgelu\b", "softplus": r"\bsoftplus\b", "clamp": r"\bclamp\b",
    "maximum": r"\bmaximum\b", "minimum": r"\bminimum\b", "where": r"\bwhere\b",
    # reductions
    "sum": r"\bsum\b", "mean": r"\bmean\b", "var": r"\bvar\b", "std": r"\bstd\b",
    "var(unbiased=False)": r"\bvar\(.*unbiased=False", "std(unbiased=False)":
        r"\bstd\(.*unbiased=False", "max": r"\bmax\b", "min": r"\bmin\b",
    "max(dim) values+indices": r"\bmax\(.*\)\s*(?:\[\s*\d\s*\]|\.values|\.indices)|"
                               r"lambda x: x.max\(\w+\)$",
    "min(dim) values+indices": r"\bmin\(.*\)\s*(?:\[\s*\d\s*\]|\.values|\.indices)",
    "argmax": r"\bargmax\b", "argmin": r"\bargmin\b", "prod": r"\bprod\b",
    "logsumexp": r"\blogsumexp\b", "norm": r"\bnorm\b", "cumsum": r"\bcumsum\b",
    # shape and indexing
    "reshape": r"\breshape\b", "view": r"\bview\b", "flatten": r"\bflatten\b",
    "squeeze": r"\bsqueeze\b", "unsqueeze": r"\bunsqueeze\b", "transpose": r"\btranspose\b",
    "permute": r"\bpermute\b", ".T": r"\.T\b", "expand": r"\bexpand\b",
    "broadcast_to": r"\bbroadcast_to\b", "repeat": r"\brepeat\b",
    "getitem int/slice/None/...": r"\[[^\]]*(?:None|\.\.\.|:)[^\]]*\]",
    "getitem integer array": r"\w\[(?:sd\.tensor\(|on\(\w+, )?(?:idx|index|np\.array|\[)",
    "getitem bool mask": r"\w\[(?:sd\.tensor\(|on\(\w+, )?(?:mask|m\b|\w+ > )",
    "cat": r"\bcat\b", "stack": r"\bstack\b", "split": r"\bsplit\b", "chunk": r"\bchunk\b",
    "pad": r"\bpad\b", "flip": r"\bflip\b", "gather": r"\bgather\b", "scatter": r"\bscatter\b",
    "index_select": r"\bindex_select\b", "masked_fill": r"\bmasked_fill\b",
    "one_hot": r"\bone_hot\b",
    # nn.functional
    "linear": r"\blinear\b", "conv1d": r"\bconv1d\b", "conv2d": r"\bconv2d\b",
    "conv_transpose2d": r"\bconv_transpose2d\b", "max_pool2d": r"\bmax_pool2d\b",
    "avg_pool2d": r"\bavg_pool2d\b", "adaptive_avg_pool2d": r"\badaptive_avg_pool2d\b",
    "dropout": r"dropout", "batch_norm": r"\bbatch_norm\b", "layer_norm": r"\blayer_norm\b",
    "embedding": r"\bembedding\b", "softmax": r"\bsoftmax\b", "log_softmax": r"\blog_softmax\b",
    "cross_entropy": r"\bcross_entropy\b",
    "cross_entropy(probabilities)": r"\bcross_entropy\(\w+, (?:sd\.tensor\(|on\(\w+, )p",
    "cross_entropy(ignore_index)": r"\bcross_entropy\b.*(?:ignore_index|\*\*)",
    "cross_entropy(label_smoothing)": r"\bcross_entropy\b.*(?:label_smoothing|\*\*)",
    "nll_loss": r"\bnll_loss\b", "mse_loss": r"\bmse_loss\b", "l1_loss": r"\bl1_loss\b",
    "smooth_l1_loss": r"\bsmooth_l1_loss\b", "binary_cross_entropy":
        r"\bbinary_cross_entropy\b(?!_)", "binary_cross_entropy_with_logits":
        r"\bbinary_cross_entropy_with_logits\b", "hinge_embedding_loss":
        r"\bhinge_embedding_loss\b", "multi_margin_loss": r"\bmulti_margin_loss\b",
    "reduction='mean'/'sum'/'none'": r"reduction",
}


def _tables(tree):
    """Module-level ``NAME = [...]`` assignments."""
    out = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and \
                isinstance(node.targets[0], ast.Name) and isinstance(node.value, ast.List):
            out[node.targets[0].id] = node.value
    return out


def _column(table, col):
    for row in table.elts:
        if isinstance(row, (ast.Tuple, ast.List)) and col < len(row.elts):
            yield row.elts[col]
        elif col == 0 and not isinstance(row, (ast.Tuple, ast.List)):
            yield row


def functions_under_test(path: Path):
    """Source text of every function passed to ``check_op`` in one test file."""
    text = path.read_text()
    tree = ast.parse(text)
    tables = _tables(tree)
    found = []
    for fn in ast.walk(tree):
        if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        params = {}
        for dec in fn.decorator_list:
            if isinstance(dec, ast.Call) and getattr(dec.func, "attr", "") == "parametrize" \
                    and len(dec.args) >= 2 and isinstance(dec.args[0], ast.Constant):
                names = [n.strip() for n in str(dec.args[0].value).split(",")]
                table = dec.args[1]
                if isinstance(table, ast.Name):
                    table = tables.get(table.id)
                if isinstance(table, ast.List):
                    for col, name in enumerate(names):
                        params[name] = (table, col if len(names) > 1 else 0)
        for call in ast.walk(fn):
            if not (isinstance(call, ast.Call) and getattr(call.func, "id", "") == "check_op"
                    and call.args):
                continue
            target = call.args[0]
            if isinstance(target, ast.Name) and target.id in params:
                table, col = params[target.id]
                found += [ast.get_source_segment(text, e) for e in _column(table, col)]
            else:
                found.append(ast.get_source_segment(text, target))
    return [f for f in found if f]


def coverage(test_dir: Path = HERE):
    sources = []
    for path in sorted(test_dir.glob("test_*.py")):
        sources += functions_under_test(path)
    return {op: [s for s in sources if re.search(pat, s)] for op, pat in NAMED_OPS.items()}


def missing(test_dir: Path = HERE):
    return [op for op, hits in coverage(test_dir).items() if not hits]


if __name__ == "__main__":
    cov = coverage()
    for op, hits in cov.items():
        print(f"{'ok ' if hits else 'MISSING'} {op:34s} {len(hits)} check_op call(s)")
    gaps = [op for op, hits in cov.items() if not hits]
    print(f"\n{len(cov) - len(gaps)}/{len(cov)} named ops covered")
    sys.exit(1 if gaps else 0)
