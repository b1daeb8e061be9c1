"""Each kernel's serial version (run while the kernels have one thread) computes exactly
what its parallel version computes for the same work split, and one thread picks it."""
import numpy as np
import pytest

import shendu as sd
from shendu.backend import jit, runtime

pytest.importorskip("numba")

rng = np.random.default_rng(5)


def both(kernel, make_args):
    """Run ``kernel.serial`` and ``kernel.parallel`` on fresh copies of the same arguments;
    return the arrays each left behind."""
    outs = []
    for version in (kernel.serial, kernel.parallel):
        args = make_args()
        version(*args)
        outs.append([a.copy() for a in args if isinstance(a, np.ndarray)])
    return outs


def assert_same_bits(serial, parallel):
    for s, p in zip(serial, parallel):
        np.testing.assert_array_equal(s.view(np.uint8), p.view(np.uint8))


def f32(*shape):
    return rng.standard_normal(shape).astype(np.float32)


def test_elementwise_and_optimizer_kernels_agree():
    x, g = f32(1000), f32(1000)
    assert_same_bits(*both(jit.relu_forward, lambda: (x.copy(), np.empty_like(x))))
    assert_same_bits(*both(jit.relu_backward, lambda: (g.copy(), x.copy(), np.empty_like(x))))
    rows, b = f32(37, 20), f32(20)
    assert_same_bits(*both(jit.bias_relu_rows, lambda: (rows.copy(), b.copy())))
    assert_same_bits(*both(jit.column_sums,
                           lambda: (rows.copy(), np.empty((2, 20), np.float32), 2)))
    p, m, v = f32(500), f32(500), np.abs(f32(500))
    f = np.float32
    assert_same_bits(*both(jit.adam, lambda: (
        p.copy(), g[:500].copy(), m.copy(), v.copy(), np.empty(0, np.float32), f(0.1), f(0.9),
        True, f(0.999), f(0.001), f(1e-8), f(0.0), False, False, f(-1e-3), f(0.5), f(1.0))))


def test_pool_kernels_agree():
    x = f32(12, 8, 10)
    out, code = np.empty((12, 4, 5), np.float32), np.empty((12, 4, 5), np.uint8)
    serial, parallel = both(jit.max_pool2x2_forward,
                            lambda: (x.copy(), out.copy(), code.copy(), 2, False))
    assert_same_bits(serial, parallel)
    assert_same_bits(*both(jit.max_pool2x2_forward,
                           lambda: (x.copy(), out.copy(), code.copy(), 2, True)))
    g = f32(12, 4, 5)
    assert_same_bits(*both(jit.max_pool2x2_backward,
                           lambda: (g.copy(), serial[2].copy(), np.empty_like(x), 2)))


def test_upsampling_kernels_agree():
    x, g = f32(12, 5, 7), f32(12, 10, 21)
    assert_same_bits(*both(jit.repeat_nearest_forward,
                           lambda: (x.copy(), 2, 3, 2, np.empty((12, 10, 21), np.float32))))
    assert_same_bits(*both(jit.repeat_nearest_backward,
                           lambda: (g.copy(), 2, 3, 2, np.empty((12, 5, 7), np.float32))))


@pytest.mark.skipif(not jit.mkl_gemm_available(), reason="the convolution kernels need MKL")
@pytest.mark.parametrize("rows", [12, 5], ids=["whole-images", "row-blocks"])
def test_convolution_kernels_agree(rows):
    n, c, o, hw, k = 9, 2, 3, 12, 3
    x = f32(c, n, hw, hw)  # channel-major storage
    w2, bias = f32(o, c * k * k), f32(o)
    oh = hw  # padding 1
    chunk, threads = (2 if rows == oh else 1), 2
    size = jit.scratch_size(c, o, c * k * k, chunk, rows, hw + 2, hw + 2, threads, True)
    fwd = both(jit.conv2d_forward, lambda: (
        x.copy(), True, w2.copy(), bias.copy(), True, k, k, 1, 1, 1, 1, oh, oh, chunk, rows,
        threads, np.zeros(size, np.float32), np.empty((o, n * oh * oh), np.float32)))
    np.testing.assert_array_equal(fwd[0][-1], fwd[1][-1])
    g = f32(o, n * oh * oh)
    bwd = both(jit.conv2d_backward, lambda: (
        x.copy(), True, w2.copy(), g.copy(), fwd[0][-1].copy(), k, k, 1, 1, 1, 1, oh, oh,
        chunk, rows, np.zeros(size, np.float32), np.empty((threads, o, c * k * k), np.float32),
        np.empty((threads, o), np.float32), True, np.empty_like(x)))
    assert_same_bits([a for a in bwd[0] if a.ndim != 1], [a for a in bwd[1] if a.ndim != 1])


def test_batch_norm_kernels_agree():
    x, g = f32(3, 5, 40), f32(3, 5, 40)
    mean, var, shift = f32(5), np.abs(f32(5)) + 0.5, f32(5)
    assert_same_bits(*both(jit.batch_norm_stats, lambda: (
        x.copy(), np.empty(5, np.float32), np.empty(5, np.float32))))
    assert_same_bits(*both(jit.channel_affine, lambda: (
        x.copy(), mean.copy(), var.copy(), shift.copy(), np.empty_like(x))))
    for training in (True, False):
        assert_same_bits(*both(jit.batch_norm_backward, lambda training=training: (
            g.copy(), x.copy(), mean.copy(), var.copy(), var * 2, training, np.empty_like(x),
            np.empty(5, np.float32), np.empty(5, np.float32))))


@pytest.mark.skipif(not jit.mkl_gemm_available(), reason="the convolution kernels need MKL")
def test_compact_and_taps_convolution_kernels_agree():
    n, c, o, hw, k = 9, 64, 3, 8, 3
    x = f32(c, n, hw, hw)  # channel-major storage
    oh = hw // 2  # stride 2, padding 1
    chunk, threads = 2, 2
    size = jit.compact_scratch_size(c * k * k, o, chunk, oh * oh, threads, True)
    w2 = f32(o, c * k * k)
    fwd = both(jit.conv2d_forward_compact, lambda: (
        x.copy(), True, w2.copy(), f32(o) * 0, True, k, k, 2, 2, 1, 1, 1, 1, oh, oh, chunk,
        threads, np.zeros(size, np.float32), np.empty((o, n * oh * oh), np.float32)))
    np.testing.assert_array_equal(fwd[0][-1], fwd[1][-1])
    g = f32(o, n * oh * oh)
    bwd = both(jit.conv2d_backward_compact, lambda: (
        x.copy(), True, w2.copy(), g.copy(), fwd[0][-1].copy(), k, k, 2, 2, 1, 1, 1, 1, oh,
        oh, chunk, np.zeros(size, np.float32), np.empty((threads, o, c * k * k), np.float32),
        np.empty((threads, o), np.float32), True, np.empty_like(x)))
    assert_same_bits([a for a in bwd[0] if a.ndim != 1], [a for a in bwd[1] if a.ndim != 1])
    wt = f32(k * k, o, c)
    size = jit.taps_scratch_size(c, o, hw + 2, hw + 2, hw, k, 1, threads, True)
    fwd = both(jit.conv2d_forward_taps, lambda: (
        x.copy(), True, wt.copy(), f32(o) * 0, False, k, k, 1, 1, 1, 1, hw, hw, threads,
        np.zeros(size, np.float32), np.empty((o, n * hw * hw), np.float32)))
    np.testing.assert_array_equal(fwd[0][-1], fwd[1][-1])
    g = f32(o, n * hw * hw)
    bwd = both(jit.conv2d_backward_taps, lambda: (
        x.copy(), True, wt.copy(), g.copy(), np.empty((0, 0), np.float32), k, k, 1, 1, 1, 1,
        hw, hw, np.zeros(size, np.float32), np.empty((threads, k * k, o, c), np.float32),
        np.empty((threads, o), np.float32), True, np.empty_like(x)))
    assert_same_bits([a for a in bwd[0] if a.ndim != 1], [a for a in bwd[1] if a.ndim != 1])


def test_roi_align_kernels_agree():
    from shendu.vision.ops.roi import _align_plan

    xy = rng.uniform(-2, 20, (30, 2))
    rois = np.concatenate([rng.integers(0, 2, (30, 1)), xy, xy + rng.uniform(1, 12, (30, 2))],
                          1).astype(np.float32)
    images, wy, wx, spans = _align_plan(rois, (7, 7), 0.5, -1, True, (10, 12),
                                        np.dtype(np.float32), np.zeros(1))
    x, g = f32(2, 10, 12, 24), f32(30, 7, 7, 24)
    assert_same_bits(*both(jit.roi_align_forward, lambda: (
        x, images, wy, wx, *spans, np.empty((30, 7, 7, 24), np.float32))))
    assert_same_bits(*both(jit.roi_align_backward, lambda: (
        g, images, wy, wx, *spans, np.zeros((2, 10, 12, 24), np.float32), 8)))


def test_one_thread_runs_the_serial_versions():
    before = sd.get_num_threads()
    try:
        sd.set_num_threads(1)
        assert runtime.kernels_serial
        x = f32(64)
        sd.relu(sd.from_numpy(x))
        assert jit.relu_forward.serial.signatures  # compiled (or loaded) and called
    finally:
        sd.set_num_threads(before)
    assert runtime.kernels_serial == (jit.num_threads() == 1)
