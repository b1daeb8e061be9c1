"""Where shendu used to differ from PyTorch without saying so: ``view`` semantics,
``view(dtype)``, the exception classes user code catches, NumPy's raw messages, and how
dtypes print. Each is checked against PyTorch when it is installed and against a NumPy
or hand-written expectation otherwise."""
from __future__ import annotations

import pickle

import numpy as np
import pytest

import shendu as sd
import shendu.nn.functional as F
from shendu.errors import DTypeError, ReadOnlyError, ShapeError


def _torch():
    return pytest.importorskip("torch", reason="PyTorch is the optional oracle")


# ---------------------------------------------------------------------- view is a view
@pytest.mark.parametrize("shape,new", [((2, 3), (3, 2)), ((2, 3), (6,)), ((4, 1, 3), (2, 6)),
                                       ((2, 3, 4), (6, -1)), ((0, 3), (3, 0))])
def test_writes_through_a_view_reach_the_base(shape, new):
    base = sd.zeros(*shape)
    v = base.view(*new)
    if v.numel():
        v.view(-1)[-1] = 7.0
        v.add_(1.0)
        expect = np.zeros(shape, np.float32).reshape(-1) + 1
        expect[-1] = 8.0
        np.testing.assert_array_equal(base.numpy().reshape(-1), expect)
    assert v._version is base._version  # one version counter: autograd sees the writes


def test_view_of_a_strided_but_compatible_tensor_is_a_view():
    base = sd.zeros(4, 6)
    v = base[:, 2:4].view(4, 2)  # same shape, no copy
    w = base[1:3].view(12)       # rows are contiguous: a true view
    w[0] = 3.0
    assert base[1, 0].item() == 3.0
    v[0, 0] = 5.0
    assert base[0, 2].item() == 5.0


def test_impossible_view_raises_like_pytorch():
    x = sd.arange(12.0).reshape(3, 4)
    assert x[:, ::2].view(6).shape == (6,)  # one uniform stride: a view in both libraries
    for make in (lambda t: t.t().view(12), lambda t: t[:, :2].view(6),
                 lambda t: t.t().view_as(sd.zeros(12))):
        with pytest.raises(RuntimeError, match=r"view: .*cannot be viewed as .* without "
                                               r"copying.*use \.reshape\(\.\.\.\) instead"):
            make(x)
        with pytest.raises(ValueError):  # the class shendu raised before still catches it
            make(x)
    assert x.t().reshape(12).shape == (12,)  # reshape copies where it must


def test_impossible_view_raises_in_pytorch_too():
    torch = _torch()
    x = torch.arange(12.0).reshape(3, 4)
    with pytest.raises(RuntimeError, match="reshape"):
        x.t().view(12)
    with pytest.raises(RuntimeError, match="reshape"):
        x[:, :2].view(6)


def test_view_after_conv_works_and_cannot_be_written_through():
    rng = np.random.default_rng(0)
    xa, wa = rng.standard_normal((2, 3, 6, 6)), rng.standard_normal((4, 3, 3, 3))
    x = sd.tensor(xa, dtype=sd.float32)
    w = sd.tensor(wa, dtype=sd.float32, requires_grad=True)
    y = F.relu(F.conv2d(x, w, padding=1))
    flat = y.view(2, -1)
    assert flat.shape == (2, 4 * 36)
    np.testing.assert_array_equal(flat.detach().numpy(), y.detach().numpy().reshape(2, -1))
    flat.sum().backward()  # differentiable like any view
    assert w.grad is not None and w.grad.shape == w.shape
    with pytest.raises(RuntimeError, match=r"add_: cannot write into this tensor of shape "
                                           r"\(2, 144\): it is read-only: view\(\) .*copy"):
        flat.detach().add_(1.0)
    with pytest.raises(ReadOnlyError, match="setitem"):
        flat.detach()[0, 0] = 1.0
    # merging only the spatial dims of the channel-major layout is a true view
    hw = y.detach().view(2, 4, 36)
    hw[0, 0, 0] = 123.0
    assert y[0, 0, 0, 0].item() == 123.0


def test_conv_then_view_matches_pytorch():
    torch = _torch()
    rng = np.random.default_rng(1)
    xa, wa = rng.standard_normal((2, 3, 5, 5)), rng.standard_normal((4, 3, 3, 3))
    ours = F.conv2d(sd.tensor(xa), sd.tensor(wa)).view(2, -1)
    theirs = torch.nn.functional.conv2d(torch.tensor(xa), torch.tensor(wa)).view(2, -1)
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------------- view(dtype)
VIEW_DTYPE_CASES = [
    ("float32", (3, 4), None, "int32"), ("float32", (3, 4), None, "int8"),
    ("float32", (3, 4), None, "float16"), ("float32", (3, 4), None, "float64"),
    ("float32", (3, 4), None, "bool"), ("int64", (6,), None, "float64"),
    ("int16", (2, 8), None, "float64"), ("uint8", (2, 4), None, "int32"),
    ("float32", (3, 4, 1), None, "float16"), ("float32", (), None, "int32"),
    ("float32", (3, 4), "t", "int32"),
    # errors
    ("float32", (4, 3), None, "float64"), ("float32", (3, 4), "t", "float16"),
    ("float32", (3, 4), "every_other", "float16"), ("float32", (), None, "float16"),
    ("float32", (12,), "offset1", "float64"), ("float32", (1, 3), "t", "float16"),
    ("int16", (3, 4), "first_two", "float64"),
]


def _layout(t, how):
    if how == "t":
        return t.t()
    if how == "every_other":
        return t[:, ::2]
    if how == "offset1":
        return t[1:5]
    if how == "first_two":
        return t[:, :2]
    return t


@pytest.mark.parametrize("src,shape,how,dst", VIEW_DTYPE_CASES)
def test_view_dtype_matches_pytorch(src, shape, how, dst):
    torch = _torch()
    a = (np.arange(int(np.prod(shape))) * 1.37 - 3).astype(src).reshape(shape)
    t = _layout(torch.tensor(a), how)
    s = _layout(sd.tensor(a), how)
    try:
        expected = t.view(getattr(torch, dst))
    except RuntimeError:
        with pytest.raises(RuntimeError, match=r"view: .*shendu\." + src):
            s.view(getattr(sd, dst))
        return
    got = s.view(getattr(sd, dst))
    assert got.shape == tuple(expected.shape)
    assert got.dtype == getattr(sd, dst)
    assert np.asarray(got).tobytes() == expected.numpy().tobytes()


def test_view_dtype_reinterprets_bits_and_shares_memory():
    x = sd.tensor([1.0, -2.0])
    bits = x.view(sd.int32)
    np.testing.assert_array_equal(bits.numpy(), np.array([1.0, -2.0], np.float32).view(np.int32))
    bits[0] = 0  # the same memory: the float becomes +0.0
    assert x[0].item() == 0.0 and bits._version is x._version
    halves = sd.ones(2, 4).view(sd.float16)
    assert halves.shape == (2, 8)
    assert x.view(sd.float32) is x


# ---------------------------------------------------------------------- exception classes
def test_error_classes_are_runtime_errors_and_their_old_types():
    assert issubclass(ShapeError, ValueError) and issubclass(ShapeError, RuntimeError)
    assert issubclass(DTypeError, TypeError) and issubclass(DTypeError, RuntimeError)
    assert issubclass(ReadOnlyError, ValueError) and issubclass(ReadOnlyError, RuntimeError)


OP_ERRORS = [
    ("add", lambda L: L.ones(3) + L.ones(4), ShapeError, r"add: shapes \(3,\) and \(4,\)"),
    ("matmul", lambda L: L.ones(2, 3) @ L.ones(4, 5), ShapeError, r"matmul: shapes"),
    ("reshape", lambda L: L.ones(2, 3).reshape(4, 2), ShapeError, r"reshape: cannot reshape"),
    ("expand", lambda L: L.ones(2, 3).expand(4, 3), ShapeError, r"expand: the tensor of shape"),
    ("cat", lambda L: L.cat([L.ones(2, 3), L.ones(2, 4)]), ShapeError, r"cat: tensor 1"),
    ("stack", lambda L: L.stack([L.ones(2), L.ones(3)]), ShapeError, r"stack: tensor 1"),
    ("linear", lambda L: L.nn.functional.linear(L.ones(2, 3), L.ones(4, 5)), ShapeError,
     r"linear: input of shape"),
    ("conv2d", lambda L: L.nn.functional.conv2d(L.ones(1, 3, 5, 5), L.ones(2, 1, 3, 3)),
     ShapeError, r"conv2d: input has 3 channels"),
    ("matmul_dtype", lambda L: L.ones(2, 3) @ L.ones(3, 2, dtype=L.float64), DTypeError,
     r"matmul: both operands must have the same dtype"),
    ("mean_int", lambda L: L.ones(3, dtype=L.int64).mean(), DTypeError,
     r"mean: expected a floating-point tensor"),
]


@pytest.mark.parametrize("name,make,cls,msg", OP_ERRORS, ids=[e[0] for e in OP_ERRORS])
def test_op_errors_are_caught_as_runtime_error(name, make, cls, msg):
    with pytest.raises(RuntimeError, match=msg) as info:
        make(sd)
    assert isinstance(info.value, cls)


@pytest.mark.parametrize("name,make,cls,msg", OP_ERRORS, ids=[e[0] for e in OP_ERRORS])
def test_pytorch_raises_runtime_error_for_the_same_mistakes(name, make, cls, msg):
    torch = _torch()
    with pytest.raises(RuntimeError):
        make(torch)


# ---------------------------------------------------------------------- no raw NumPy message
def _iadd_grow():
    a = sd.ones(3)
    a += sd.ones(2, 3)


def _setitem_expanded():
    sd.ones(1, 3).expand(2, 3)[0] = 1.0


def _setitem_shape():
    x = sd.zeros(2, 3)
    x[0] = sd.ones(4)


def _setitem_index():
    x = sd.zeros(2, 3)
    x[5] = 1.0


INPLACE_ERRORS = [
    ("iadd_grows", _iadd_grow, ShapeError,
     r"^add_: the result has shape \(2, 3\) but the tensor written into has shape \(3,\); an "
     r"in-place op cannot change a tensor's shape"),
    ("mul_bad_broadcast", lambda: sd.ones(3).mul_(sd.ones(4)), ShapeError,
     r"^mul_: shapes \(3,\) and \(4,\) cannot be broadcast together"),
    ("add_expanded", lambda: sd.ones(1, 3).expand(2, 3).add_(1.0), ReadOnlyError,
     r"^add_: cannot write into this tensor of shape \(2, 3\): it is an expand\(\)ed "
     r"\(broadcast\) tensor"),
    ("fill_expanded", lambda: sd.ones(1, 3).expand(2, 3).fill_(0.0), ReadOnlyError,
     r"^fill_: cannot write .* expand\(\)ed"),
    ("zero_expanded", lambda: sd.ones(3, 1).expand(3, 4).zero_(), ReadOnlyError,
     r"^fill_: cannot write into this tensor of shape \(3, 4\)"),
    ("copy_expanded", lambda: sd.ones(1, 3).expand(2, 3).copy_(sd.zeros(2, 3)), ReadOnlyError,
     r"^copy_: cannot write .* expand\(\)ed"),
    ("exp_expanded", lambda: sd.ones(1, 3).expand(2, 3).exp_(), ReadOnlyError,
     r"^exp_: cannot write"),
    ("setitem_expanded", _setitem_expanded, ReadOnlyError, r"^setitem: cannot write"),
    ("setitem_shape", _setitem_shape, ShapeError,
     r"^setitem: value of shape \(4,\) cannot be broadcast to the indexed region of shape "
     r"\(3,\) \(tensor of shape \(2, 3\)\)"),
    ("copy_shape", lambda: sd.zeros(3).copy_(sd.ones(4)), ShapeError,
     r"^copy_: shapes \(3,\) and \(4,\) cannot be broadcast together"),
    ("int_plus_float", lambda: sd.ones(3, dtype=sd.int64).add_(sd.ones(3) * 0.5), DTypeError,
     r"^add_: the result has dtype shendu.float64 but the tensor written into is shendu.int64"),
]


@pytest.mark.parametrize("name,make,cls,msg", INPLACE_ERRORS, ids=[e[0] for e in INPLACE_ERRORS])
def test_inplace_errors_name_the_op_and_shapes(name, make, cls, msg):
    with pytest.raises(cls, match=msg) as info:
        make()
    assert isinstance(info.value, RuntimeError)
    text = str(info.value)
    for numpy_phrase in ("non-broadcastable output operand", "could not broadcast input array",
                         "assignment destination is read-only", "output array is read-only",
                         "Cannot cast ufunc"):
        assert numpy_phrase not in text


def test_inplace_errors_while_recording_are_reworded_too():
    x = sd.ones(3, requires_grad=True).clone()
    with pytest.raises(ShapeError, match=r"^add_: the result has shape \(2, 3\)"):
        x.add_(sd.ones(2, 3))
    y = sd.ones(1, 3, requires_grad=True).expand(2, 3)
    with pytest.raises(ReadOnlyError, match=r"^mul_: cannot write"):
        y.mul_(2.0)
    z = sd.zeros(2, 3, requires_grad=True).clone()
    with pytest.raises(ShapeError, match=r"^setitem: value of shape \(4,\) cannot be broadcast "
                                         r"to the indexed region of shape \(3,\)"):
        z[0] = sd.ones(4)
    with pytest.raises(IndexError, match=r"^setitem: index 5 is out of bounds"):
        z[5] = 1.0


def test_other_numpy_messages_are_reworded():
    with pytest.raises(ValueError, match=r"^tensor: nested sequences of unequal lengths at "
                                         r"depth 1 \(length 1, length 2\)"):
        sd.tensor([[1.0, 2.0], [3.0]])
    with pytest.raises(ValueError, match=r"depth 1 \(a number, length 2\)"):
        sd.tensor([[1.0, 2.0], 3.0])
    with pytest.raises(IndexError, match=r"^gather: index 5 is out of range for dimension 1 "
                                         r"of size 3 \(input of shape \(2, 3\)"):
        sd.ones(2, 3).gather(1, sd.tensor([[5]]))
    with pytest.raises(IndexError, match=r"^index_select: index 7 is out of range for "
                                         r"dimension 0 of size 2"):
        sd.ones(2, 3).index_select(0, sd.tensor([7]))
    for make in (lambda: sd.zeros(-1), lambda: sd.ones(3).item(), lambda: sd.ones(2).topk(5),
                 lambda: sd.ones(4).view(-1, -1), lambda: sd.ones(2, 2).flatten(1, 0)):
        with pytest.raises(RuntimeError):
            make()
        with pytest.raises(ValueError):
            make()


def test_setitem_index_error_names_the_tensor():
    with pytest.raises(IndexError, match=r"setitem: index 5 is out of bounds .*\(tensor of "
                                         r"shape \(2, 3\)\)"):
        _setitem_index()


def test_pytorch_raises_runtime_error_for_these_writes():
    torch = _torch()
    a = torch.ones(3)
    with pytest.raises(RuntimeError):
        a += torch.ones(2, 3)
    with pytest.raises(RuntimeError):
        torch.ones(1, 3).expand(2, 3).add_(1.0)
    with pytest.raises(RuntimeError):
        torch.ones(3, dtype=torch.int64).add_(torch.ones(3) * 0.5)


# ---------------------------------------------------------------------- dtype printing
def test_dtypes_print_one_way():
    assert repr(sd.float32) == str(sd.float32) == "shendu.float32"
    assert repr(sd.int64) == "shendu.int64" and repr(sd.bool) == "shendu.bool"
    assert repr(sd.ones(2, dtype=sd.float64)) == "tensor([1., 1.], dtype=shendu.float64)"
    assert str(sd.ones(2).dtype) == "shendu.float32"
    assert f"{sd.ones(2, dtype=sd.int32).dtype}" == "shendu.int32"
    with pytest.raises(TypeError, match=r"got shendu.float32 and shendu.float64"):
        sd.ones(2, 3) @ sd.ones(3, 2, dtype=sd.float64)
    with pytest.raises(TypeError, match=r"unsupported dtype shendu.complex128"):
        sd.ones(2, dtype=np.complex128)


def test_dtype_prints_like_pytorch_with_the_library_name():
    torch = _torch()
    for name in ("float16", "float32", "float64", "int8", "uint8", "int16", "int32", "int64",
                 "bool"):
        assert repr(getattr(sd, name)).replace("shendu.", "torch.") == \
            repr(getattr(torch, name))


def test_dtype_still_works_as_a_numpy_dtype():
    assert sd.float32 == np.float32 and np.float32 == sd.float32
    assert sd.float32 == np.dtype("float32") and np.dtype("float32") == sd.float32
    assert sd.float32 != sd.float64 and sd.float64 != None  # noqa: E711
    assert hash(sd.float32) == hash(np.dtype("float32"))
    assert np.dtype("float32") in {sd.float32} and sd.float32 in {np.dtype("float32")}
    assert np.zeros(2, sd.int64).dtype == np.int64
    assert np.arange(3).astype(sd.float16).dtype == np.float16
    assert sd.float32.itemsize == 4 and sd.float32.kind == "f"
    assert sd.float32.is_floating_point and not sd.int32.is_floating_point
    assert isinstance(sd.ones(2).dtype, sd.dtype)
    assert sd.ones(2).dtype is sd.float32
    assert pickle.loads(pickle.dumps(sd.float64)) is sd.float64
    assert sd.tensor([1, 2], dtype=np.int16).dtype is sd.int16
