"""Nearest upsampling by whole factors (``backend/resample.py``): the compiled kernels
against the NumPy reference and PyTorch, in both layouts, and what the trace records."""
import numpy as np
import pytest

import shendu as sd
import shendu.nn.functional as F
from shendu.backend import jit, resample, runtime

pytest.importorskip("numba")
RNG = np.random.default_rng(3)


def _channel_major(a):
    return np.ascontiguousarray(a.transpose(1, 0, 2, 3)).transpose(1, 0, 2, 3)


@pytest.mark.parametrize("factors", [(2, 2), (3, 2), (1, 3)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("layout", ["nchw", "channel_major", "strided"])
def test_kernels_match_the_numpy_reference(factors, dtype, layout):
    x = RNG.standard_normal((3, 4, 5, 6)).astype(dtype)
    x = {"nchw": x, "channel_major": _channel_major(x), "strided": x[:, ::2]}[layout]
    fh, fw = factors
    want = x.repeat(fh, axis=2).repeat(fw, axis=3)   # an independent reference
    g = RNG.standard_normal(want.shape).astype(dtype)
    g = _channel_major(g) if layout == "channel_major" else g
    blocks = g.reshape(*x.shape[:3], fh, x.shape[3], fw).astype(np.float64)
    g_sums = blocks.sum(axis=(3, 5))
    # fh*fw terms a sum, added in any order: within that many roundings of |terms|
    bound = fh * fw * np.finfo(dtype).eps * np.abs(blocks).sum(axis=(3, 5))
    for kernels in (True, False):
        with jit.use(kernels), runtime.trace_paths() as log:
            out = resample.repeat_nearest(x, fh, fw)
            gx = resample.repeat_nearest_backward(g, fh, fw)
        path = "numba" if kernels else "numpy"
        assert log == [("upsample_nearest2d", path), ("upsample_nearest2d_backward", path)]
        np.testing.assert_array_equal(out, want)
        assert gx.shape == x.shape and np.all(np.abs(gx - g_sums) <= bound)
        if layout == "channel_major":  # the layout convolutions hand over stays
            assert out.transpose(1, 0, 2, 3).flags.c_contiguous
            assert gx.transpose(1, 0, 2, 3).flags.c_contiguous


def test_interpolate_takes_the_kernel_and_matches_pytorch():
    torch = pytest.importorskip("torch", reason="PyTorch checks interpolate")
    x = RNG.standard_normal((2, 3, 4, 5)).astype(np.float32)
    tx = sd.from_numpy(x).requires_grad_(True)
    with runtime.trace_paths() as log:
        y = F.interpolate(tx, scale_factor=(2, 3))
        g = RNG.standard_normal(y.shape).astype(np.float32)
        y.backward(sd.from_numpy(g))
    assert ("upsample_nearest2d", "numba" if jit.enabled() else "numpy") in log
    rx = torch.tensor(x, requires_grad=True)
    ry = torch.nn.functional.interpolate(rx, scale_factor=(2, 3))
    ry.backward(torch.tensor(g))
    np.testing.assert_array_equal(y.detach().numpy(), ry.detach().numpy())
    # each gradient a sum of 6 terms, added in another order by each library: each within
    # 5 roundings of the sum of |terms| from the exact sum
    bound = 2 * 5 * np.finfo(np.float32).eps * np.abs(g.reshape(2, 3, 4, 2, 5, 3)).sum(
        axis=(3, 5), dtype=np.float64)
    assert np.all(np.abs(tx.grad.numpy() - rx.grad.numpy()) <= bound)


def test_upsampling_passes_gradcheck_and_double_backward():
    x = sd.randn(2, 2, 3, 3, dtype=sd.float64, requires_grad=True)
    assert sd.autograd.gradcheck(lambda a: F.interpolate(a, scale_factor=2), (x,))
    assert sd.autograd.gradgradcheck(lambda a: F.interpolate(a, scale_factor=2) ** 2, (x,))
