"""``blas.pack``/``blas.gemm_packed``: MKL's packed right operand gives the product of the
plain GEMM to within GEMM's rounding, for any number of rows, operand layout and dtype."""
import numpy as np
import pytest
from tolerance import assert_matmul_close

from shendu.backend import blas

pytestmark = pytest.mark.skipif(not blas.mkl_loaded(), reason="MKL is not installed")
rng = np.random.default_rng(5)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("b_layout", ["rows", "transposed"])
@pytest.mark.parametrize("m", [1, 7, 64, 300])
def test_packed_product_matches_float64(dtype, b_layout, m):
    k, n = 45, 70
    b = rng.standard_normal((k, n)).astype(dtype)
    if b_layout == "transposed":  # a weight (n, k) used as w.T, as Linear does
        b = np.ascontiguousarray(b.T).T
    packed = blas.pack(b)
    a = rng.standard_normal((m, k)).astype(dtype)
    out = np.empty((m, n), dtype)
    blas.gemm_packed(a, packed, out, 0.0)
    assert_matmul_close(out, a, b)
    base = rng.standard_normal((m, n)).astype(dtype)
    acc = base.copy()
    blas.gemm_packed(a, packed, acc, 1.0)  # out += a @ b
    assert_matmul_close(acc, a, b, bias=base)


def test_packed_operand_is_independent_of_the_source():
    b = rng.standard_normal((20, 30)).astype(np.float32)
    packed = blas.pack(b)
    want = b.copy()
    b[...] = 0  # the packed copy keeps the values it was packed with
    a = rng.standard_normal((5, 20)).astype(np.float32)
    out = np.empty((5, 30), np.float32)
    blas.gemm_packed(a, packed, out, 0.0)
    assert_matmul_close(out, a, want)


def test_mismatched_operands_raise_naming_the_shapes():
    packed = blas.pack(np.ones((8, 4), np.float32))
    with pytest.raises(ValueError, match=r"gemm_packed: a \(3, 5\) float32.*8x4"):
        blas.gemm_packed(np.ones((3, 5), np.float32), packed, np.empty((3, 4), np.float32), 0)
    with pytest.raises(ValueError, match="gemm_packed"):
        blas.gemm_packed(np.ones((3, 8), np.float64), packed, np.empty((3, 4), np.float32), 0)
    assert blas.pack(np.ones((2, 2), np.int64)) is None
