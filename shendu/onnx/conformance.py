"""Which of ONNX's node tests belong to which op family, read from the test data itself.

A node test's family is the op type of its single node; an ``_expanded`` test (the op
written out as its ONNX function body) belongs to the family of the test it expands.
``python -m shendu.onnx.conformance`` lists the families and their test counts; the pass
counts come from ``pytest tests/onnx/test_onnx_backend.py`` (its summary prints them).
"""
from __future__ import annotations

import functools
import os
import re

FAMILIES = (
    "Abs Add Sub Mul Div Neg Pow Sqrt Exp Log Clip Where Equal Less Greater "
    "Relu LeakyRelu Sigmoid Tanh Elu Selu Softplus Gelu Softmax LogSoftmax "
    "MatMul Gemm Einsum Conv ConvTranspose MaxPool AveragePool GlobalAveragePool "
    "BatchNormalization LayerNormalization Dropout "
    "Flatten Reshape Transpose Concat Slice Gather Squeeze Unsqueeze Expand Pad Identity "
    "Constant Shape Cast ReduceSum ReduceMean ReduceMax LSTM GRU RNN").split()

_EXPANDED = re.compile(r"_expanded(_ver\d+)?$")


def node_data_dir() -> str:
    import onnx

    return os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data", "node")


@functools.cache
def node_test_families() -> dict:
    """``{test name: family}`` for every node test of the families above."""
    import onnx

    root = node_data_dir()
    single = {}
    for name in sorted(os.listdir(root)):
        if _EXPANDED.search(name):
            continue
        model = onnx.load(os.path.join(root, name, "model.onnx"), load_external_data=False)
        ops = [n.op_type for n in model.graph.node]
        if len(ops) == 1 and ops[0] in FAMILIES:
            single[name] = ops[0]
    out = dict(single)
    for name in os.listdir(root):
        base = _EXPANDED.sub("", name)
        if base != name and base in single:
            out[name] = single[base]
    return dict(sorted(out.items()))


def family_of(test_name: str) -> str | None:
    """The family of a runner test name (``test_abs_cpu`` -> ``Abs``), or None."""
    return node_test_families().get(re.sub(r"_(cpu|cuda)$", "", test_name))


def main():  # pragma: no cover - a listing for people
    counts = {}
    for fam in node_test_families().values():
        counts[fam] = counts.get(fam, 0) + 1
    for fam in FAMILIES:
        print(f"{fam:20s} {counts.get(fam, 0):4d} node tests")
    print("pass counts: pytest tests/onnx/test_onnx_backend.py -q (summary at the end)")


if __name__ == "__main__":  # pragma: no cover
    main()
