"""Tensor basics: creation, dtypes, conversion, repr, devices, errors."""
import numpy as np
import pytest

import shendu as sd


def test_creation_functions_and_default_dtype():
    assert sd.tensor([1.0, 2.0]).dtype == sd.float32
    assert sd.tensor([1, 2]).dtype == sd.int64
    assert sd.tensor([True]).dtype == sd.bool
    assert sd.zeros(2, 3).shape == (2, 3) and sd.ones((2, 3)).tolist() == [[1.0] * 3] * 2
    assert sd.full((2,), 7).dtype == sd.int64 and sd.full((2,), 0.5).tolist() == [0.5, 0.5]
    assert sd.arange(5).tolist() == [0, 1, 2, 3, 4] and sd.arange(0, 1, 0.5).dtype == sd.float32
    assert sd.linspace(0, 1, 3).tolist() == [0.0, 0.5, 1.0]
    assert sd.eye(2).tolist() == [[1.0, 0.0], [0.0, 1.0]]
    assert sd.empty(3).shape == (3,)
    x = sd.randn(2, 3, dtype=sd.float64)
    assert sd.zeros_like(x).dtype == sd.float64 and sd.ones_like(x).shape == (2, 3)
    assert sd.full_like(x, 2.0).tolist() == [[2.0] * 3] * 2
    assert sd.randint(0, 5, (100,)).max().item() < 5 and sd.randint(3, (4,)).shape == (4,)
    assert sorted(sd.randperm(5).tolist()) == [0, 1, 2, 3, 4]
    assert sd.rand(1000).min().item() >= 0 and sd.rand(1000).max().item() < 1


def test_tensor_copies_but_from_numpy_shares():
    a = np.zeros(3, np.float32)
    t, s = sd.tensor(a), sd.from_numpy(a)
    a[0] = 5
    assert t[0].item() == 0 and s[0].item() == 5
    assert np.asarray(s) is not None and np.shares_memory(np.asarray(s), a)


def test_manual_seed_is_reproducible():
    sd.manual_seed(42)
    a = sd.randn(5).tolist()
    sd.manual_seed(42)
    assert sd.randn(5).tolist() == a
    g = sd.Generator().manual_seed(3)
    b = sd.rand(3, generator=g).tolist()
    assert sd.rand(3, generator=sd.Generator().manual_seed(3)).tolist() == b
    state = sd.get_rng_state()
    c = sd.randn(4).tolist()
    sd.set_rng_state(state)
    assert sd.randn(4).tolist() == c


def test_properties_and_conversion():
    x = sd.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    assert x.shape == (2, 2) and x.ndim == 2 and x.size() == (2, 2) and x.size(1) == 2
    assert x.numel() == 4 and x.dim() == 2 and x.is_leaf and x.device == "cpu"
    assert x.detach().numpy().tolist() == [[1.0, 2.0], [3.0, 4.0]]
    with pytest.raises(RuntimeError, match="detach"):
        x.numpy()
    assert x[0, 1].item() == 2.0 and float(x[1, 1]) == 4.0
    with pytest.raises(ValueError, match="only one-element tensors"):
        x.item()
    assert x.to(sd.float64).dtype == sd.float64 and x.double().dtype == sd.float64
    assert x.long().dtype == sd.int64 and x.half().dtype == sd.float16
    assert x.to("cpu") is x
    assert sd.tensor([1, 2]).float().dtype == sd.float32
    assert len(x) == 2 and [r.tolist() for r in x.detach()] == [[1.0, 2.0], [3.0, 4.0]]


def test_repr_is_readable():
    assert repr(sd.tensor([1.0, 2.0])) == "tensor([1., 2.])"
    assert repr(sd.tensor([0.5, 1.25], requires_grad=True)) == \
        "tensor([0.5000, 1.2500], requires_grad=True)"
    assert "grad_fn=<MulBackward>" in repr(sd.ones(2, requires_grad=True) * sd.ones(2))
    assert repr(sd.tensor([1, 2])) == "tensor([1, 2])"
    assert "dtype=shendu.float64" in repr(sd.tensor([1.0], dtype=sd.float64))


def test_requires_grad_only_for_floats():
    with pytest.raises(RuntimeError, match="only floating-point"):
        sd.tensor([1, 2], requires_grad=True)


def test_bad_data_is_a_clear_error():
    with pytest.raises(TypeError, match="cannot make a tensor"):
        sd.tensor(["a", "b"])


def test_device_handling_without_gpu():
    if sd.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(RuntimeError, match="needs CuPy and a CUDA GPU"):
        sd.ones(2).to("cuda")
    assert str(sd.device("cuda:1")) == "cuda:1" and sd.device("cpu") == "cpu"


def test_dlpack_and_array_protocol():
    x = sd.arange(6).reshape(2, 3)
    assert np.array_equal(np.asarray(x), np.arange(6).reshape(2, 3))
    y = sd.from_dlpack(np.arange(3.0))
    assert y.tolist() == [0.0, 1.0, 2.0]
    assert np.from_dlpack(sd.tensor([1.0, 2.0])).tolist() == [1.0, 2.0]


def test_inplace_fill_and_copy():
    x = sd.zeros(3)
    x.fill_(2.0)
    x.copy_(sd.tensor([1.0, 2.0, 3.0]))
    x[0] = 9.0
    x.zero_()
    assert x.tolist() == [0.0, 0.0, 0.0] and x._version[0] == 4
