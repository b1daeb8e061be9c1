"""Which convolutions each kernel takes: stride 1 where the wide-column waste is small,
the taps kernel with 64 channels or more, else the wide-patch kernel (also wherever its
patches are short); long patches on small maps (ResNet's deep 3x3 layers) and strided
convolutions go to the compact kernel, whose GEMM does no wasted columns. All give the
numbers of the NumPy path."""
import numpy as np
import pytest

import shendu as sd
from shendu.backend import blas, jit, runtime


@pytest.mark.parametrize("c,hw,stride,kind", [(16, 8, 1, "wide"),     # short: 144 < 1024
                                              (32, 16, 1, "wide"),     # too few channels
                                              (128, 16, 1, "taps"),    # waste 18/16
                                              (128, 8, 1, "compact"),  # waste 10/8, long
                                              (256, 4, 1, "compact"),
                                              (16, 8, 2, "compact")])  # strided
def test_each_kernel_takes_the_convolutions_where_it_pays(c, hw, stride, kind, kernel_spy):
    if not (jit.available() and blas.mkl_loaded()):
        pytest.skip("the fused kernel needs numba and MKL")
    rng = np.random.default_rng(0)
    x = sd.tensor(rng.standard_normal((2, c, hw, hw), dtype=np.float32), requires_grad=True)
    w = sd.tensor(rng.standard_normal((8, c, 3, 3), dtype=np.float32) * 0.05,
                  requires_grad=True)
    calls = kernel_spy("conv2d_forward", "conv2d_backward", "conv2d_forward_compact",
                       "conv2d_backward_compact", "conv2d_forward_taps", "conv2d_backward_taps")
    with runtime.trace_paths() as log:
        y = sd.nn.functional.conv2d(x, w, None, stride, 1)
        y.sum().backward()
    assert ("conv2d", "numba") in log and ("conv2d_backward", "numba") in log
    suffix = "" if kind == "wide" else "_" + kind
    assert calls == ["conv2d_forward" + suffix, "conv2d_backward" + suffix]
    with runtime.use(kernels=False):
        x2 = sd.tensor(x.detach().numpy(), requires_grad=True)
        y2 = sd.nn.functional.conv2d(x2, w.detach(), None, stride, 1)
        y2.sum().backward()
    scale = float(np.abs(y2.detach().numpy()).max())
    np.testing.assert_allclose(y.detach().numpy(), y2.detach().numpy(), rtol=0,
                               atol=1e-5 * scale)
    np.testing.assert_allclose(x.grad.numpy(), x2.grad.numpy(), rtol=0,
                               atol=1e-5 * float(np.abs(x2.grad.numpy()).max()))


def test_conv_pool_backward_follows_its_wide_forward(kernel_spy):
    """Conv2dPool pools inside the wide kernel; its backward must take that kernel too,
    although a plain convolution of 64 channels would run on the taps kernel."""
    if not (jit.available() and blas.mkl_loaded()):
        pytest.skip("the fused kernels need numba and MKL")
    from shendu.ops.conv import Conv2dPool

    rng = np.random.default_rng(0)
    ts = [sd.tensor(rng.standard_normal(s, dtype=np.float32), requires_grad=True)
          for s in ((2, 64, 8, 8), (4, 64, 3, 3), (4,))]
    calls = kernel_spy("conv2d_pool_forward", "conv2d_backward", "conv2d_backward_taps")
    y = Conv2dPool.apply(*ts, pool_hw=(4, 4), stride=(1, 1), pads=((1, 1), (1, 1)),
                         dilation=(1, 1), groups=1)
    y.sum().backward()
    assert calls == ["conv2d_pool_forward", "conv2d_backward"]
