"""ONNX's own node conformance tests, run against shendu's ONNX backend.

onnx is pinned to 1.22 (the `test` extra): its wheel ships the node-test data on disk
(onnx/backend/test/data/node); 1.23 builds the data in memory instead. Only node tests of
the families in shendu.onnx.conformance.FAMILIES run (the "real model" tests download).
Every other test of the runner is dropped, not skipped; each test excluded here says why.
The summary at the end of `pytest tests/onnx/test_onnx_backend.py` prints pass counts per
family (see tests/onnx/conftest.py).
"""
import re

import pytest

pytest.importorskip("onnx", reason="the onnx extra is not installed")
from onnx.backend.test import BackendTest  # noqa: E402

import shendu.onnx.backend as shendu_backend  # noqa: E402
from shendu.onnx.conformance import node_test_families  # noqa: E402

_UNSIGNED = "shendu's ops are defined for uint8 but not for {}: no such shendu dtype"

# test name (without _cpu) -> the one-line reason it is not run
EXCLUDED = {
    "test_equal_string": "string tensors: shendu has no string dtype",
    "test_equal_string_broadcast": "string tensors: shendu has no string dtype",
    "test_identity_opt": "optional-typed value: shendu graphs carry tensors only",
    "test_identity_sequence": "sequence-typed value: shendu graphs carry tensors only",
    "test_training_dropout": "training-mode Dropout with a ratio: the mask is random, not "
                             "reproducible by spec",
    "test_training_dropout_default": "training-mode Dropout with a ratio: random mask",
    "test_training_dropout_default_mask": "training-mode Dropout with a ratio: random mask",
    "test_training_dropout_mask": "training-mode Dropout with a ratio: random mask",
    "test_convtranspose_3d": "3-D transposed convolution: shendu has 1-D and 2-D only",
}
# Cast to or from element types shendu has no dtype for
_EXOTIC = ("BFLOAT16", "FLOAT8", "FLOAT4", "INT4", "UINT4", "INT2", "UINT2", "STRING",
           "e8m0")
for _name in node_test_families():
    if _name.startswith("test_cast_") and any(t in _name for t in _EXOTIC):
        EXCLUDED[_name] = "cast to/from an element type shendu has no dtype for " \
                          "(bfloat16, float8/4, int4/2, string)"

backend_test = BackendTest(shendu_backend, __name__)
for _name in node_test_families():
    if _name not in EXCLUDED:
        backend_test.include(f"^{re.escape(_name)}_cpu$")

_cases = backend_test.test_cases
OnnxBackendNodeModelTest = _cases["OnnxBackendNodeModelTest"]
# Keep only the included CPU node tests (the runner marks the thousands of others skipped)
for _attr in list(vars(OnnxBackendNodeModelTest)):
    if _attr.startswith("test_") and getattr(getattr(OnnxBackendNodeModelTest, _attr),
                                             "__unittest_skip__", False):
        delattr(OnnxBackendNodeModelTest, _attr)


def test_backend_reports_cpu_only():
    assert shendu_backend.supports_device("CPU")
    assert not shendu_backend.supports_device("CUDA")


def test_every_family_has_tests_and_every_exclusion_exists():
    fams = node_test_families()
    assert set(EXCLUDED) <= set(fams)
    from shendu.onnx.conformance import FAMILIES

    assert set(fams.values()) == set(FAMILIES)


def test_family_of_names_expanded_tests_by_the_op_they_expand():
    from shendu.onnx.conformance import family_of

    assert family_of("test_abs_cpu") == "Abs"
    assert family_of("test_softmax_axis_0_expanded_ver18_cpu") == "Softmax"
    assert family_of("test_castlike_FLOAT_to_DOUBLE_expanded_cpu") is None  # CastLike
    assert family_of("test_gather_elements_0_cpu") is None  # GatherElements, not Gather
