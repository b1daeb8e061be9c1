"""Each fast op chooses its path in one dispatch function (``backend/cpu.py`` and its
siblings ``maxpool.py``, ``rnn.py``, ``updates.py``), which records the choice in
``sd.backend.trace_paths()``: the kernel while it applies, the NumPy reference (recorded as
such) when the kernels are off or the arrays are ones the kernel does not take."""
import numpy as np
import pytest

import shendu as sd
import shendu.nn.functional as F
from shendu.backend import runtime

kernels = pytest.mark.skipif(not runtime.kernels_on(),
                             reason="numba is not installed (or SHENDU_JIT=0)")

def _paths(log, *ops):
    """The paths recorded for each of ``ops`` (a set per op)."""
    return {op: {path for o, path in log if o == op} for op in ops}


# ---------------------------------------------------------------------- max pooling
def _max_pool(x, every_other_column=False):
    t = sd.tensor(x, requires_grad=True)
    # a strided view: neither C-contiguous nor channel-major, no planes for the kernel
    y = t[:, :, :, ::2] if every_other_column else t
    with sd.backend.trace_paths() as log:
        F.max_pool2d(y, 2).sum().backward()
    return _paths(log, "max_pool2d", "max_pool2d_backward"), t.grad.numpy()


@kernels
def test_max_pool_takes_the_kernel_and_the_numpy_reference_agrees():
    x = np.random.default_rng(0).standard_normal((2, 3, 8, 8)).astype(np.float32)
    paths, gx = _max_pool(x)
    assert paths == {"max_pool2d": {"numba"}, "max_pool2d_backward": {"numba"}}
    with runtime.use(kernels=False):
        paths, gx2 = _max_pool(x)
    assert paths == {"max_pool2d": {"numpy"}, "max_pool2d_backward": {"numpy"}}
    np.testing.assert_array_equal(gx, gx2)


def test_max_pool_takes_numpy_where_the_kernel_does_not_apply():
    x = np.random.default_rng(0).standard_normal((2, 3, 8, 16)).astype(np.float32)
    paths, gx = _max_pool(x, every_other_column=True)
    assert paths["max_pool2d"] == {"numpy"}  # (its gradient and code are contiguous)
    with runtime.use(kernels=False):
        paths, gx2 = _max_pool(x, every_other_column=True)
    assert paths == {"max_pool2d": {"numpy"}, "max_pool2d_backward": {"numpy"}}
    np.testing.assert_array_equal(gx, gx2)


# ---------------------------------------------------------------------- convolution
def _conv(stride, dtype=np.float32):
    rng = np.random.default_rng(0)
    x = sd.tensor(rng.standard_normal((2, 4, 8, 8)).astype(dtype), requires_grad=True)
    w = sd.tensor(rng.standard_normal((6, 4, 3, 3)).astype(dtype) * 0.1, requires_grad=True)
    with sd.backend.trace_paths() as log:
        F.conv2d(x, w, None, stride, 1).sum().backward()
    return _paths(log, "conv2d", "conv2d_backward"), x.grad.numpy(), w.grad.numpy()


@kernels
def test_conv_takes_the_fused_kernel_and_the_numpy_reference_agrees():
    if not runtime.mkl_loaded():
        pytest.skip("the fused convolution needs MKL")
    paths, gx, gw = _conv(1)
    assert paths == {"conv2d": {"numba"}, "conv2d_backward": {"numba"}}
    with runtime.use(kernels=False):
        paths, gx2, gw2 = _conv(1)
    assert paths == {"conv2d": {"numpy"}, "conv2d_backward": {"numpy"}}
    # two summation orders (chunked wide patches vs im2col): on an Intel Xeon dW differed
    # by 1.9e-6 at |dW| up to 15 (about 2 ulp), 50x inside these bounds
    np.testing.assert_allclose(gx, gx2, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(gw, gw2, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_conv_takes_numpy_where_the_kernel_does_not_apply(dtype):
    # stride 2: the compact kernel when numba and MKL are on, else NumPy; the backward
    # follows the forward
    paths, _, _ = _conv(2, dtype)
    want = "numba" if runtime.kernels_on() and runtime.mkl_loaded() else "numpy"
    assert paths == {"conv2d": {want}, "conv2d_backward": {want}}
    with runtime.use(mkl=False):  # the kernels call MKL's GEMM
        paths, _, _ = _conv(2, dtype)
    assert paths == {"conv2d": {"numpy"}, "conv2d_backward": {"numpy"}}


# ---------------------------------------------------------------------- LSTM and GRU
def _recurrent(cls, dtype=np.float32):
    sd.manual_seed(0)
    rng = np.random.default_rng(0)
    m = cls(3, 5, dtype=sd.float32 if dtype == np.float32 else sd.float64)
    x = sd.tensor(rng.standard_normal((4, 2, 3)).astype(dtype), requires_grad=True)
    with sd.backend.trace_paths() as log:
        m(x)[0].sum().backward()
    name = cls.__name__.lower()
    return (_paths(log, f"{name}_forward_step", f"{name}_backward_step"), x.grad.numpy(),
            name)


@kernels
@pytest.mark.parametrize("cls", [sd.nn.LSTM, sd.nn.GRU])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_recurrent_steps_take_the_kernel_and_the_numpy_reference_agrees(cls, dtype):
    paths, gx, name = _recurrent(cls, dtype)
    assert paths == {f"{name}_forward_step": {"numba"}, f"{name}_backward_step": {"numba"}}
    with runtime.use(kernels=False):
        paths, gx2, _ = _recurrent(cls, dtype)
    assert paths == {f"{name}_forward_step": {"numpy"}, f"{name}_backward_step": {"numpy"}}
    # two implementations of tanh and sigmoid (a few ulp apart) through four steps
    rtol, atol = (1e-5, 1e-6) if dtype == np.float32 else (1e-12, 1e-13)
    np.testing.assert_allclose(gx, gx2, rtol=rtol, atol=atol)


@pytest.mark.parametrize("cls", [sd.nn.LSTM, sd.nn.GRU])
def test_recurrent_steps_take_numpy_with_the_kernels_off(cls):
    with runtime.use(kernels=False):
        paths, _, name = _recurrent(cls)
    assert paths == {f"{name}_forward_step": {"numpy"}, f"{name}_backward_step": {"numpy"}}


# ---------------------------------------------------------------------- optimizers
OPTIMIZERS = [
    ("sgd", lambda ps: sd.optim.SGD(ps, lr=0.1)),
    ("sgd_momentum", lambda ps: sd.optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True)),
    ("adam", lambda ps: sd.optim.Adam(ps, lr=0.1, amsgrad=True)),
    ("adam", lambda ps: sd.optim.AdamW(ps, lr=0.1)),
    ("rmsprop", lambda ps: sd.optim.RMSprop(ps, lr=0.1, momentum=0.5, centered=True)),
    ("adagrad", lambda ps: sd.optim.Adagrad(ps, lr=0.1, weight_decay=0.1)),
    ("adadelta", lambda ps: sd.optim.Adadelta(ps, maximize=True)),
]


def _steps(make, dtype=np.float32):
    p0 = np.random.default_rng(1).standard_normal((4, 3)).astype(dtype)
    w = sd.nn.Parameter(sd.tensor(p0.copy()))
    opt = make([w])
    with sd.backend.trace_paths() as log:
        for i in range(3):
            w.grad = sd.tensor(np.cos(p0 * (i + 1)).astype(dtype))
            opt.step()
    return {path for _, path in log}, {op for op, _ in log}, w.detach().numpy()


@kernels
@pytest.mark.parametrize("name,make", OPTIMIZERS)
def test_optimizer_update_takes_the_kernel_and_the_numpy_reference_agrees(name, make):
    paths, ops, p = _steps(make)
    assert ops == {name} and paths == {"numba"}
    with runtime.use(kernels=False):
        paths, ops, p2 = _steps(make)
    assert ops == {name} and paths == {"numpy"}
    np.testing.assert_allclose(p, p2, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name,make", OPTIMIZERS)
def test_optimizer_update_takes_numpy_with_the_kernels_off(name, make):
    with runtime.use(kernels=False):
        paths, ops, _ = _steps(make, np.float64)
    assert ops == {name} and paths == {"numpy"}
