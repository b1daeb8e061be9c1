"""The reassociation tolerance used wherever two paths sum the same terms in other orders:
wide enough for any order, narrow enough to catch a real mistake."""
import numpy as np
import pytest
from tolerance import assert_matmul_close, assert_sums_close, sum_bound

rng = np.random.default_rng(0)


def test_any_summation_order_passes():
    terms = (rng.standard_normal((200, 1000)) * 10.0 ** rng.integers(-3, 4, (200, 1000)))
    terms = terms.astype(np.float32)
    forward = np.zeros(200, np.float32)
    for k in range(1000):  # left to right, rounding to float32 at each step
        forward += terms[:, k]
    backward = np.zeros(200, np.float32)
    for k in range(999, -1, -1):
        backward += terms[:, k]
    pairwise = terms.sum(1)  # NumPy's pairwise order
    scale = np.abs(terms.astype(np.float64)).sum(1)
    exact = terms.astype(np.float64).sum(1)
    for got in (forward, backward, pairwise):
        assert_sums_close(got, exact, 1000, scale)
    assert_sums_close(forward, backward, 1000, scale)


def test_a_wrong_result_fails():
    a = rng.standard_normal((30, 16)).astype(np.float32)
    b = rng.standard_normal((16, 20)).astype(np.float32)
    bias = rng.standard_normal(20).astype(np.float32)
    assert_matmul_close(a @ b + bias, a, b, bias=bias)
    wrong = a @ b + bias
    wrong[3, 4] += 1e-3  # far below any plain tolerance a test would pick by eye
    with pytest.raises(AssertionError, match="reassociation"):
        assert_matmul_close(wrong, a, b, bias=bias)
    with pytest.raises(AssertionError):
        assert_matmul_close(a @ b, a, b, bias=bias)  # the bias left out


def test_bound_grows_with_terms_and_scale():
    assert sum_bound(10, 1.0, np.float32) < sum_bound(100, 1.0, np.float32)
    assert sum_bound(10, 1.0, np.float64) < sum_bound(10, 1.0, np.float32)
    assert sum_bound(10, 0.0, np.float32) > 0  # never a zero-width bound
