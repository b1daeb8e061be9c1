"""``sd.Tensor(...)``: PyTorch's legacy constructor (sizes, or data made float), while
``isinstance``, subclasses, ``Parameter`` and the typed constructors keep working."""
import numpy as np
import pytest
from op_helper import has_oracle, torch

import shendu as sd

CALLS = [
    ("sizes", lambda m: m.Tensor(2, 3).shape),
    ("one size", lambda m: m.Tensor(4).shape),
    ("int list", lambda m: m.Tensor([1, 2])),
    ("nested", lambda m: m.Tensor([[1, 2], [3, 4]])),
    ("bools", lambda m: m.Tensor([True, False])),
    ("float64 array", lambda m: m.Tensor(np.arange(3.0))),
    ("int array", lambda m: m.Tensor(np.arange(3))),
    ("empty", lambda m: m.Tensor()),
    ("tensor keeps dtype", lambda m: m.Tensor(m.tensor([1, 2]))),
]


def _np(v):
    if isinstance(v, tuple):
        return tuple(v)
    return np.asarray(v.numpy()), str(v.dtype).split(".")[-1]


@pytest.mark.parametrize("name,call", CALLS, ids=[c[0] for c in CALLS])
def test_like_pytorch(name, call):
    got = call(sd)
    if isinstance(got, tuple):
        assert got == {"sizes": (2, 3), "one size": (4,)}[name]
    else:
        want_dtype = "int64" if name == "tensor keeps dtype" else "float32"  # NumPy reference
        assert got.dtype == getattr(sd, want_dtype)
        assert np.asarray(got.numpy()).dtype == np.dtype(want_dtype)
    if has_oracle(torch):
        g, w = _np(got), _np(call(torch))
        if isinstance(g, tuple) and isinstance(g[0], np.ndarray):
            np.testing.assert_array_equal(g[0], w[0])
            assert g[1] == w[1]
        else:
            assert g == w


def test_sizes_are_zeros_and_dtype_kwarg():
    np.testing.assert_array_equal(sd.Tensor(2, 3).numpy(), np.zeros((2, 3), np.float32))
    assert sd.Tensor([1, 2], dtype=sd.int64).dtype == sd.int64  # shendu's own keyword
    assert sd.Tensor(2, dtype=sd.float64).dtype == sd.float64
    old = sd.get_default_dtype()
    sd.set_default_dtype(sd.float64)
    try:
        assert sd.Tensor([1, 2]).dtype == sd.float64  # the default dtype, as PyTorch
    finally:
        sd.set_default_dtype(old)


def test_bad_arguments_name_the_constructor():
    with pytest.raises(TypeError, match="Tensor: expected one piece of data"):
        sd.Tensor([1], [2])
    with pytest.raises(RuntimeError, match="Tensor: sizes must be non-negative"):
        sd.Tensor(2, -1)


def test_isinstance_subclass_parameter_and_typed_constructors():
    assert isinstance(sd.tensor([1]), sd.Tensor)
    assert isinstance(sd.nn.Parameter(sd.zeros(2)), sd.Tensor)

    class Mine(sd.Tensor):
        __slots__ = ()

    m = Mine([1, 2], requires_grad=True)
    assert type(m) is Mine and isinstance(m, sd.Tensor) and m.dtype == sd.float32
    (m * 2).sum().backward()
    np.testing.assert_array_equal(m.grad.numpy(), [2.0, 2.0])
    # a Parameter keeps its data's dtype (only the legacy constructor casts)
    assert sd.nn.Parameter(np.zeros(2)).dtype == sd.float64
    assert sd.nn.Parameter(sd.arange(3), requires_grad=False).dtype == sd.int64
    assert sd.LongTensor(2, 3).dtype == sd.int64 and sd.LongTensor(2, 3).shape == (2, 3)
    assert sd.LongTensor().shape == (0,) and sd.DoubleTensor([1]).dtype == sd.float64
