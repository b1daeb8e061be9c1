"""The Tensor API that issue 2 lists, checked attribute by attribute against PyTorch's
semantics (against torch itself when it is importable)."""
import contextlib
import io
import os
import subprocess
import sys

import numpy as np
import pytest

import shendu as sd
from shendu.creation import randint_like

try:
    import torch
except ImportError:  # pragma: no cover
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="needs PyTorch as the oracle")


def _name(dtype):
    return str(dtype).replace("torch.", "").replace("shendu.", "")


DTYPES = ["float16", "float32", "float64", "int32", "int64", "bool"]


@pytest.mark.parametrize("name", DTYPES)
def test_dtypes_exist_and_round_trip(name):
    dt = getattr(sd, name)
    x = sd.tensor([1, 0, 1], dtype=dt)
    assert x.dtype == dt and _name(x.dtype) == name
    assert x.to(sd.float64).to(dt).dtype == dt
    assert np.asarray(x).dtype == np.dtype(name)


@needs_torch
def test_default_dtypes_follow_torch():
    for data in ([1.0, 2.0], [1, 2], [True, False], 3.5, 7, [[1, 2.5]]):
        assert _name(sd.tensor(data).dtype) == _name(torch.tensor(data).dtype), data
    assert sd.get_default_dtype() == sd.float32


@needs_torch
def test_attributes_match_torch():
    a = np.arange(6.0).reshape(2, 3)
    s, t = sd.tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)
    assert s.shape == tuple(t.shape) and s.ndim == t.ndim and s.dim() == t.dim()
    assert s.size() == tuple(t.size()) and s.size(-1) == t.size(-1) and s.numel() == t.numel()
    assert str(s.device) == str(t.device) == "cpu"
    assert s.requires_grad and s.is_leaf and s.grad is None
    y, ty = s * 2, t * 2
    assert y.is_leaf == ty.is_leaf is False and y.requires_grad == ty.requires_grad
    y.sum().backward()
    ty.sum().backward()
    np.testing.assert_array_equal(s.grad.numpy(), t.grad.numpy())
    assert not s.detach().requires_grad and s.detach().is_leaf
    assert s.detach().numpy().tolist() == t.detach().numpy().tolist()
    assert s[1, 2].item() == t[1, 2].item() and isinstance(s[1, 2].item(), float)
    assert sd.tensor([3]).item() == 3 and isinstance(sd.tensor([3]).item(), int)
    assert s.tolist() == t.tolist() and sd.tensor(2.5).tolist() == 2.5
    assert np.asarray(s.detach()).tolist() == np.asarray(t.detach()).tolist()


def test_detach_shares_memory_and_numpy_refuses_grad_tensors():
    x = sd.tensor([1.0, 2.0], requires_grad=True)
    d = x.detach()
    with sd.no_grad():
        d[0] = 5.0
    assert x[0].item() == 5.0 and d._version is x._version
    with pytest.raises(RuntimeError, match=r"numpy\(\): the tensor requires grad; call "
                                           r"\.detach\(\)\.numpy\(\)"):
        x.numpy()
    a = np.zeros(2, np.float32)
    t = sd.from_numpy(a)
    t.numpy()[1] = 3.0
    assert a[1] == 3.0  # numpy() shares memory on the CPU, as torch


@needs_torch
def test_conversions_match_torch():
    a = np.array([1.7, -2.2, 3.0])
    s, t = sd.tensor(a, dtype=sd.float64), torch.tensor(a)
    for conv in ("float", "long", "double", "int", "half", "bool"):
        sv, tv = getattr(s, conv)(), getattr(t, conv)()
        assert _name(sv.dtype) == _name(tv.dtype), conv
        np.testing.assert_array_equal(sv.numpy(), tv.numpy())
    assert _name(s.to(sd.int32).dtype) == "int32" and s.to("cpu").dtype == sd.float64
    assert s.to("cpu", sd.float32).dtype == sd.float32 and s.to(sd.ones(1)).dtype == sd.float32
    assert s.to(dtype=sd.int64).tolist() == t.to(dtype=torch.int64).tolist()
    x = sd.tensor([1.0, 2.0], requires_grad=True)
    x.to(sd.float64).sum().backward()  # dtype casts are differentiable
    assert x.grad.dtype == sd.float32 and x.grad.tolist() == [1.0, 1.0]


@needs_torch
def test_repr_matches_torch_for_common_cases():
    cases = [[1.0, 2.0], [0.5, 1.25], [1, 2], [[1.0, 2.5], [3.0, 4.0]], [True, False], 3.0]
    for c in cases:
        assert repr(sd.tensor(c)) == repr(torch.tensor(c)), c
    assert repr(sd.tensor([1.0], dtype=sd.float64)) == repr(
        torch.tensor([1.0], dtype=torch.float64)).replace("torch.", "shendu.")
    assert repr(sd.tensor([0.5], requires_grad=True)) == repr(torch.tensor([0.5],
                                                                           requires_grad=True))


@needs_torch
def test_creation_functions_match_torch():
    cases = [
        ("zeros", (2, 3), {}), ("ones", ((2, 3),), {}), ("zeros", (4,), {"dtype": "int32"}),
        ("full", ((2, 2), 7), {}), ("full", ((2,), 0.5), {}), ("full", ((2,), True), {}),
        ("arange", (5,), {}), ("arange", (1, 7, 2), {}), ("arange", (0, 1, 0.25), {}),
        ("arange", (1.0, 4), {}), ("linspace", (0, 1, 5), {}), ("linspace", (-1, 1, 1), {}),
        ("eye", (3,), {}), ("eye", (2, 4), {}), ("ones", (0, 2), {"dtype": "float64"}),
    ]
    for name, args, kw in cases:
        skw = {k: getattr(sd, v) for k, v in kw.items()}
        tkw = {k: getattr(torch, v) for k, v in kw.items()}
        s, t = getattr(sd, name)(*args, **skw), getattr(torch, name)(*args, **tkw)
        assert s.shape == tuple(t.shape) and _name(s.dtype) == _name(t.dtype), (name, args)
        np.testing.assert_allclose(s.numpy(), t.numpy(), err_msg=f"{name}{args}")
    e = sd.empty(2, 3, dtype=sd.float64)
    assert e.shape == (2, 3) and e.dtype == sd.float64
    for name in ("rand", "randn"):
        s = getattr(sd, name)(3, 4, dtype=sd.float64, requires_grad=True)
        assert s.shape == (3, 4) and s.dtype == sd.float64 and s.requires_grad and s.is_leaf
    r = sd.randint(2, 9, (1000,))
    assert r.dtype == sd.int64 and r.min().item() >= 2 and r.max().item() <= 8
    assert sd.randint(4, (3,)).max().item() < 4  # randint(high, size), as torch


def test_tensor_as_tensor_from_numpy_memory_semantics():
    a = np.arange(3.0)
    assert not np.shares_memory(sd.tensor(a).numpy(), a)  # tensor() copies
    assert np.shares_memory(sd.as_tensor(a).numpy(), a)  # as_tensor() shares when it can
    assert np.shares_memory(sd.from_numpy(a).numpy(), a)  # from_numpy() always shares
    assert sd.as_tensor(a, dtype=sd.float32).dtype == sd.float32
    t = sd.ones(2)
    assert sd.as_tensor(t) is t
    assert sd.tensor([[1, 2], [3, 4]], dtype=sd.float64, requires_grad=True).requires_grad


def test_like_functions_keep_shape_dtype_device():
    x = sd.ones(2, 3, dtype=sd.float64)
    for fn in (sd.zeros_like, sd.ones_like, sd.empty_like, sd.rand_like, sd.randn_like):
        y = fn(x)
        assert y.shape == (2, 3) and y.dtype == sd.float64 and y.device == x.device, fn
    assert sd.zeros_like(x, dtype=sd.int32).dtype == sd.int32
    assert sd.full_like(x, 4.0).tolist() == [[4.0] * 3] * 2
    r = randint_like(sd.zeros(50, dtype=sd.int64), 3)
    assert r.shape == (50,) and r.dtype == sd.int64 and 0 <= r.min().item() <= r.max().item() < 3
    r = randint_like(x, 5, 7)
    assert r.dtype == sd.float64 and set(np.unique(r.numpy())) <= {5.0, 6.0}


_SEEDED = "import shendu as sd; sd.manual_seed(1234); " \
          "print(sd.randn(4).tolist(), sd.rand(2).tolist(), sd.randint(0, 100, (3,)).tolist(), " \
          "sd.randperm(5).tolist(), sd.nn.functional.dropout(sd.ones(6), 0.5).tolist())"


def test_manual_seed_is_reproducible_across_processes():
    env = dict(os.environ, PYTHONHASHSEED="random")
    runs = [subprocess.run([sys.executable, "-c", _SEEDED], capture_output=True, text=True,
                           env=env, check=True).stdout for _ in range(2)]
    assert runs[0] == runs[1] and runs[0].strip()
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(_SEEDED, {})
    assert out.getvalue() == runs[0]  # and this process draws the same numbers
