"""``backend.cpu.matmul`` against a float64 NumPy product, on each route a product can take
(MKL through ctypes, MKL from compiled code, NumPy), for every operand and ``out`` layout;
and a ``fork()`` child after a multi-threaded product."""
import os
import select
import signal
import time
import warnings

import numpy as np
import pytest

import shendu as sd
import shendu.nn.functional as F
from shendu.backend import blas, cpu, jit, runtime

rng = np.random.default_rng(3)
M, K, N = 37, 45, 29  # odd sizes whose product is above the MKL threshold
assert M * K * N >= cpu.MKL_MIN_WORK


def check(got, a, b, base=None):
    """``got`` is ``base + a @ b`` to within GEMM's rounding: ``k`` roundings of the
    products' magnitudes, measured against the product done in float64."""
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    want = a64 @ b64 if base is None else base.astype(np.float64) + a64 @ b64
    scale = np.abs(a64) @ np.abs(b64)
    if base is not None:
        scale = scale + np.abs(base)
    eps = np.finfo(got.dtype).eps
    k = a.shape[-1]
    assert got.shape == want.shape and got.dtype == a.dtype
    err = np.abs(got.astype(np.float64) - want)
    bound = (k + 2) * eps * scale + np.finfo(got.dtype).tiny
    assert (err <= bound).all(), f"max error {err.max()} over a bound of {bound.min()}"


@pytest.fixture(params=["numpy", "mkl", "mkl_jit"])
def route(request):
    """Which path the products take: NumPy (as without MKL: runs anywhere), MKL called
    through ctypes, or MKL called from compiled code. Returns the route's name and the
    ``trace_paths`` log, so that a test can tell which path the products took."""
    if request.param != "numpy" and not blas.mkl_loaded():
        pytest.skip("MKL is not installed")
    if request.param == "mkl_jit" and not jit.available():
        pytest.skip("numba is not installed")
    with runtime.use(mkl=request.param != "numpy", kernels=request.param == "mkl_jit"), \
            runtime.trace_paths() as log:
        yield request.param, log


def went_to_numpy(route) -> bool:
    return ("matmul", "numpy") in route[1]


def expect_route(route):
    """MKL products must not have gone to NumPy; NumPy ones must have."""
    assert went_to_numpy(route) == (route[0] == "numpy")


def as_layout(x, kind):
    """The values of matrix ``x`` in storage of the given kind."""
    m, k = x.shape
    if kind == "C":
        return np.ascontiguousarray(x)
    if kind == "F":  # also what a transposed C-contiguous matrix looks like
        return np.asfortranarray(x)
    if kind == "block":  # rows longer than the matrix: a leading dimension above k
        big = rng.standard_normal((m + 5, k + 7)).astype(x.dtype)
        big[2:2 + m, 3:3 + k] = x
        return big[2:2 + m, 3:3 + k]
    if kind == "T_block":  # the transpose of a sub-block
        big = rng.standard_normal((k + 6, m + 4)).astype(x.dtype)
        big[1:1 + k, 2:2 + m] = x.T
        return big[1:1 + k, 2:2 + m].T
    if kind == "step":  # neither it nor its transpose has unit-stride rows: a copy
        big = rng.standard_normal((2 * m, 3 * k)).astype(x.dtype)
        big[::2, ::3] = x
        return big[::2, ::3]
    if kind == "reversed":  # a negative row stride: a copy
        return np.ascontiguousarray(x[::-1])[::-1]
    raise ValueError(kind)


LAYOUTS = ["C", "F", "block", "T_block", "step", "reversed"]
DTYPES = [np.float32, np.float64]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("b_kind", LAYOUTS)
@pytest.mark.parametrize("a_kind", LAYOUTS)
def test_operand_layouts(a_kind, b_kind, dtype, route):
    a0 = rng.standard_normal((M, K)).astype(dtype)
    b0 = rng.standard_normal((K, N)).astype(dtype)
    a, b = as_layout(a0, a_kind), as_layout(b0, b_kind)
    assert np.array_equal(a, a0) and np.array_equal(b, b0)
    got = cpu.matmul(a, b)
    check(got, a0, b0)
    expect_route(route)
    assert np.array_equal(a, a0) and np.array_equal(b, b0)  # operands untouched


def odd_stride_view(x, axis, stride):
    """``x`` (with ``x.shape[axis] == 1``) with that axis' stride set to ``stride`` bytes,
    which NumPy allows for a dimension of one element since it is never stepped along."""
    strides = list(x.strides)
    strides[axis] = stride
    return np.lib.stride_tricks.as_strided(x, x.shape, strides)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("stride", [0, 3, -7, 1 << 20], ids=lambda s: f"stride{s}")
@pytest.mark.parametrize("shape", [(1, 300, 200), (300, 1, 200), (300, 200, 1)], ids=str)
def test_size_one_dims_with_odd_strides(shape, stride, dtype, route):
    m, k, n = shape
    a0 = rng.standard_normal((m, k)).astype(dtype)
    b0 = rng.standard_normal((k, n)).astype(dtype)
    a, b = a0, b0
    # give every size-1 dimension of the operands (and of out) the odd stride
    for axis in (0, 1):
        if a.shape[axis] == 1:
            a = odd_stride_view(a, axis, stride)
        if b.shape[axis] == 1:
            b = odd_stride_view(b, axis, stride)
    base = rng.standard_normal((m, n)).astype(dtype)
    out = base.copy()
    for axis in (0, 1):
        if out.shape[axis] == 1:
            out = odd_stride_view(out, axis, stride)
    check(cpu.matmul(a, b), a0, b0)
    assert cpu.matmul(a, b, out, accumulate=True) is out
    check(out, a0, b0, base)
    expect_route(route)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("accumulate", [False, True])
@pytest.mark.parametrize("out_kind", ["block", "rows_step", "F", "step"])
def test_out_views(out_kind, accumulate, dtype, route):
    """``out`` inside a bigger array: the product lands in it, nothing around it changes.
    The first two have unit-stride rows and are written in place; the others go through
    a temporary."""
    a = rng.standard_normal((M, K)).astype(dtype)
    b = rng.standard_normal((K, N)).astype(dtype)
    big = rng.standard_normal((2 * M + 3, 2 * N + 9)).astype(dtype)
    if out_kind == "block":  # a column block, as the fused linear layers write
        region = (slice(2, 2 + M), slice(4, 4 + N))
    elif out_kind == "rows_step":
        region = (slice(1, 1 + 2 * M, 2), slice(0, N))
    elif out_kind == "F":
        region = None
    else:
        region = (slice(0, 2 * M, 2), slice(1, 1 + 2 * N, 2))
    if region is None:
        out = np.asfortranarray(big[:M, :N])
        big = out  # nothing around it
    else:
        out = big[region]
    before_big = big.copy()
    base = out.copy()
    assert cpu.matmul(a, b, out, accumulate=accumulate) is out
    check(out, a, b, base if accumulate else None)
    if region is not None:
        outside = np.ones(big.shape, bool)
        outside[region] = False
        np.testing.assert_array_equal(big[outside], before_big[outside])
    expect_route(route)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("accumulate", [False, True])
@pytest.mark.parametrize("which", ["a", "b"])
def test_out_overlapping_an_operand(which, accumulate, dtype, route):
    # as np.matmul(a, b, out=a): gemm must not read what it has already overwritten
    n = 64
    a = rng.standard_normal((n, n)).astype(dtype)
    b = rng.standard_normal((n, n)).astype(dtype)
    a0, b0 = a.copy(), b.copy()
    out = a if which == "a" else b
    base = out.copy()
    assert cpu.matmul(a, b, out, accumulate=accumulate) is out
    check(out, a0, b0, base if accumulate else None)
    expect_route(route)


def test_accumulate_without_out_is_a_plain_product(route):
    a = rng.standard_normal((M, K))
    b = rng.standard_normal((K, N))
    check(cpu.matmul(a, b, accumulate=True), a, b)


@pytest.mark.parametrize("size", ["small", "large"])
def test_bad_out_raises(size, route):
    """A bad ``out`` fails alike whether the product is tiny (NumPy's) or not (MKL's):
    NumPy alone would cast it to float32, or broadcast a column into every column."""
    m, k, n = (M, K, N) if size == "large" else (3, 4, 5)
    a = rng.standard_normal((m, k))
    b = rng.standard_normal((k, n))
    bad = [np.zeros((m, n + 1)), np.zeros((n, m)), np.zeros((m, 1)), np.zeros(m * n),
           np.zeros((m, n), np.float32)]
    readonly = np.zeros((m, n))
    readonly.flags.writeable = False
    for out in bad + [readonly]:
        for accumulate in (False, True):
            before = out.copy()
            with pytest.raises(ValueError):
                cpu.matmul(a, b, out, accumulate=accumulate)
            np.testing.assert_array_equal(out, before)
    with pytest.raises(ValueError):  # inner dimensions that differ
        cpu.matmul(a, rng.standard_normal((k + 1, n)))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(0, K, N), (M, 0, N), (M, K, 0), (0, 0, 0)], ids=str)
def test_zero_size_dims(shape, dtype, route):
    m, k, n = shape
    a = rng.standard_normal((m, k)).astype(dtype)
    b = rng.standard_normal((k, n)).astype(dtype)
    got = cpu.matmul(a, b)
    assert got.shape == (m, n) and got.dtype == dtype
    assert not got.any()  # a sum of no products is zero
    out = rng.standard_normal((m, n)).astype(dtype)
    base = out.copy()
    assert cpu.matmul(a, b, out, accumulate=True) is out
    np.testing.assert_array_equal(out, base)
    cpu.matmul(a, b, out)
    assert not out.any()


@pytest.mark.parametrize("dtypes", [(np.int64, np.int64), (np.int32, np.int32),
                                    (np.float16, np.float16), (np.complex128, np.complex128),
                                    (np.float32, np.float64), (np.int64, np.float32),
                                    (np.bool_, np.bool_)], ids=str)
def test_other_dtypes_fall_back_to_numpy(dtypes, route):
    da, db = dtypes
    a = rng.integers(-3, 4, (M, K)).astype(da)
    b = rng.integers(-3, 4, (K, N)).astype(db)
    want = np.matmul(a, b)  # exact: small integers in every dtype
    got = cpu.matmul(a, b)
    assert got.dtype == want.dtype
    np.testing.assert_array_equal(got, want)
    out = np.ones_like(want)
    assert cpu.matmul(a, b, out, accumulate=True) is out
    if want.dtype != np.bool_:
        np.testing.assert_array_equal(out, want + 1)
    assert went_to_numpy(route)  # through NumPy on every route


@pytest.mark.parametrize("dtype", DTYPES)
def test_stacks_of_matrices_fall_back_to_numpy(dtype, route):
    a = rng.standard_normal((3, M, K)).astype(dtype)
    b = rng.standard_normal((3, K, N)).astype(dtype)
    b2 = rng.standard_normal((K, N)).astype(dtype)
    for x, y in ((a, b), (a, b2), (a[0], b)):
        want = np.matmul(x, y)
        np.testing.assert_array_equal(cpu.matmul(x, y), want)
        out = rng.standard_normal(want.shape).astype(dtype)
        base = out.copy()
        assert cpu.matmul(x, y, out, accumulate=True) is out
        np.testing.assert_array_equal(out, base + want)
        assert cpu.matmul(x, y, out) is out
        np.testing.assert_array_equal(out, want)
    with pytest.raises(ValueError):  # a stack's out that the product would broadcast into
        cpu.matmul(a[:, :, :1], b[:, :1], np.zeros((3, M, N + 1)), accumulate=True)
    assert went_to_numpy(route)


def test_compiled_route_is_taken_for_plain_layouts(route):
    a = rng.standard_normal((M, K)).astype(np.float32)
    b = rng.standard_normal((K, N)).astype(np.float32)
    check(cpu.matmul(a, b), a, b)
    want = {"numpy": "numpy", "mkl": "mkl", "mkl_jit": "mkl-compiled"}[route[0]]
    assert route[1] == [("matmul", want)]


def test_without_mkl_is_plain_numpy():
    # the NumPy route gives NumPy's own product, bit for bit
    a = rng.standard_normal((M, K)).astype(np.float32)
    b = np.asfortranarray(rng.standard_normal((K, N)).astype(np.float32))
    with runtime.use(mkl=False):
        np.testing.assert_array_equal(cpu.matmul(a, b), np.matmul(a, b))


@pytest.mark.skipif(not blas.mkl_loaded(), reason="MKL is not installed")
def test_mkl_library_state():
    assert blas.takes(np.ones((2, 2), np.float32), np.ones((2, 2), np.float32))
    assert not blas.takes(np.ones((2, 2), np.float32), np.ones((2, 2)))
    assert not blas.takes(np.ones((2, 2, 2)), np.ones((2, 2, 2)))
    assert blas.get_num_threads() >= 1


# ---------------------------------------------------------------------- fork()
def _child_work(a, b, x, report):
    """Runs in the forked child: a product and a ReLU must work and be right."""
    problems = []
    if jit.enabled():
        problems.append("compiled kernels still on in the child")
    if blas.mkl_loaded() and blas.get_num_threads() != 1:
        problems.append(f"MKL runs {blas.get_num_threads()} threads in the child")
    try:
        check(cpu.matmul(a, b), a, b)
    except AssertionError as e:
        problems.append(f"product: {e}")
    y = F.relu(sd.from_numpy(x)).numpy()
    if not np.array_equal(y, np.maximum(x, 0)):
        problems.append("relu differs")
    os.write(report, ("; ".join(problems) or "ok").encode())
    return not problems


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork() here")
def test_fork_child_after_multithreaded_product():
    a = rng.standard_normal((384, 384)).astype(np.float32)
    b = rng.standard_normal((384, 384)).astype(np.float32)
    x = rng.standard_normal((8, 16, 32, 32)).astype(np.float32)
    mkl_before = blas.get_num_threads()
    jit_before = jit.num_threads() if jit.available() else None
    blas.set_num_threads(2)  # the test session runs BLAS on one thread
    if jit_before is not None:
        jit.set_num_threads(2)
    read_end, write_end = os.pipe()
    try:
        check(cpu.matmul(a, b), a, b)  # MKL's OpenMP threads are up now
        F.relu(sd.from_numpy(x))        # and numba's, on the same pool
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # "multi-threaded fork"
            pid = os.fork()
        if pid == 0:  # the child: never return into pytest
            ok = False
            try:
                os.close(read_end)
                signal.alarm(60)  # a hang (MKL waiting on threads it lost) kills it
                ok = _child_work(a, b, x, write_end)
            except BaseException as e:
                os.write(write_end, repr(e).encode())
            finally:
                os._exit(0 if ok else 1)
        os.close(write_end)
        write_end = None
        deadline = time.monotonic() + 90
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                pytest.fail("the forked child hung")
            time.sleep(0.05)
        message = os.read(read_end, 4096).decode() if select.select([read_end], [], [], 0)[0] \
            else ""
        assert os.WIFEXITED(status), f"the child was killed by signal {os.WTERMSIG(status)}"
        assert os.WEXITSTATUS(status) == 0, message
        assert message == "ok"
    finally:
        os.close(read_end)
        if write_end is not None:
            os.close(write_end)
        if mkl_before is not None:
            blas.set_num_threads(mkl_before)
        if jit_before is not None:
            jit.set_num_threads(jit_before)
    check(cpu.matmul(a, b), a, b)  # and the parent's threads still work
