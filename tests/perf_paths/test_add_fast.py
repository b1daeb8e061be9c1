"""The large same-layout add (the residual connections') runs on the kernel, bit for bit
NumPy's sum; anything else stays on NumPy."""
import numpy as np
import pytest

import shendu as sd
from shendu.backend import cpu, jit, runtime


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("layout", ["contiguous", "channel-major"])
def test_large_add_runs_the_kernel_and_equals_numpy(dtype, layout):
    if not jit.enabled():
        pytest.skip("the kernels are off")
    rng = np.random.default_rng(0)
    shape = (4, 64, 16, 16)  # 65536 elements: cpu.KERNEL_MIN
    n, c, h, w = shape
    stored = (n, c, h, w) if layout == "contiguous" else (c, n, h, w)
    leaves = [sd.tensor(rng.standard_normal(stored).astype(dtype), requires_grad=True)
              for _ in range(2)]
    # channel-major: (N, C, H, W) views of (C, N, H, W) storage, as convolutions return
    ta, tb = (t if layout == "contiguous" else t.permute(1, 0, 2, 3) for t in leaves)
    a, b = ta.detach().numpy(), tb.detach().numpy()
    assert a.size >= cpu.KERNEL_MIN and a.flags.c_contiguous == (layout == "contiguous")
    with runtime.trace_paths() as log:
        y = ta + tb
    assert ("add", "numba") in log
    got = y.detach().numpy()
    np.testing.assert_array_equal(got, a + b)  # one rounding each: exact
    assert got.strides == a.strides  # the inputs' layout is kept
    y.sum().backward()
    np.testing.assert_array_equal(leaves[0].grad.numpy(), np.ones(stored, dtype))


def test_small_broadcast_or_mixed_layout_adds_stay_on_numpy():
    rng = np.random.default_rng(1)
    big = sd.tensor(rng.standard_normal((4, 64, 16, 16), dtype=np.float32))
    other = sd.tensor(rng.standard_normal((64, 4, 16, 16), dtype=np.float32))
    cases = [(big[:1, :1], big[:1, :1]),             # small
             (big, big[:, :1]),                      # broadcast
             (big, other.permute(1, 0, 2, 3))]       # contiguous + channel-major
    for a, b in cases:
        with runtime.trace_paths() as log:
            y = a + b
        assert ("add", "numba") not in log and ("add", "numpy") in log
        np.testing.assert_array_equal(y.numpy(), a.numpy() + b.numpy())
