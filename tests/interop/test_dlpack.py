"""DLPack: zero-copy in both directions; a write through one side shows on the other."""
import numpy as np
import pytest

import shendu as sd


def test_numpy_both_ways_share_memory():
    a = np.zeros((2, 3), np.float32)
    t = sd.from_dlpack(a)
    a[1, 2] = 7.0
    assert t[1, 2].item() == 7.0
    t[0, 0] = -1.0
    assert a[0, 0] == -1.0
    s = sd.arange(6, dtype=sd.float64)
    b = np.from_dlpack(s)
    b[3] = 100.0
    assert s[3].item() == 100.0 and np.shares_memory(b, s.numpy())
    assert s.__dlpack_device__() == (1, 0)


def test_views_and_dtypes_roundtrip_through_numpy():
    base = sd.arange(12).reshape(3, 4)
    view = base[:, 1::2]  # non-contiguous: strides travel with the capsule
    back = sd.from_dlpack(np.from_dlpack(view))
    assert back.tolist() == view.tolist()
    back[0, 0] = 50
    assert base[0, 1].item() == 50
    for dt in (sd.float16, sd.int8, sd.uint8, sd.int16, sd.int32, sd.int64, sd.bool):
        x = sd.zeros(3, dtype=dt)
        assert sd.from_dlpack(x).dtype == dt


def test_torch_both_ways_share_memory():
    torch = pytest.importorskip("torch", reason="PyTorch is the other side of the exchange")
    t = torch.zeros(4)
    s = sd.from_dlpack(t)
    t[1] = 3.0
    assert s[1].item() == 3.0
    s[2] = 5.0
    assert t[2].item() == 5.0
    x = sd.ones(2, 3)
    y = torch.from_dlpack(x)
    y[0, 0] = 9.0
    assert x[0, 0].item() == 9.0 and y.shape == (2, 3)
    capsule = torch.utils.dlpack.to_dlpack(t)  # the legacy capsule form
    z = sd.from_dlpack(capsule)
    t[0] = -4.0
    assert z[0].item() == -4.0


def test_errors():
    torch = pytest.importorskip("torch", reason="PyTorch makes the unsupported producers")
    with pytest.raises(RuntimeError, match="requires grad.*detach"):
        torch.from_dlpack(sd.ones(2, requires_grad=True))
    with pytest.raises(TypeError, match="not a shendu dtype"):
        sd.from_dlpack(torch.zeros(2, dtype=torch.complex64))
    with pytest.raises(BufferError, match="from_dlpack: cannot share the memory of a Tensor"):
        sd.from_dlpack(torch.zeros(2, dtype=torch.bfloat16))
    with pytest.raises(TypeError, match="expected an object with __dlpack__"):
        sd.from_dlpack([1, 2])


def test_cupy_both_ways_share_memory():
    if not sd.cuda.is_available():
        pytest.skip("needs CuPy and a CUDA GPU")
    import cupy

    c = cupy.zeros(3, cupy.float32)
    s = sd.from_dlpack(c)
    assert s.device.type == "cuda"
    c[0] = 2.0
    assert s[0].item() == 2.0
    g = sd.ones(3, device="cuda")
    back = cupy.from_dlpack(g)
    back[2] = 8.0
    assert g[2].item() == 8.0
    torch = pytest.importorskip("torch", reason="PyTorch on the GPU is the other side")
    if not torch.cuda.is_available():
        pytest.skip("this PyTorch has no CUDA")
    tt = torch.zeros(2, device="cuda")
    sg = sd.from_dlpack(tt)
    tt[1] = 6.0
    assert sg[1].item() == 6.0
