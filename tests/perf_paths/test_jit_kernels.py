"""The numba kernels (``shendu.backend.jit``) against the plain NumPy paths they replace
(``jit.use(False)``), through the public ops and optimizers, and against definitions and
PyTorch: ReLU, tiled max pooling, and every optimizer's update."""
import numpy as np
import pytest
from op_helper import has_oracle, torch

import shendu as sd
import shendu.nn.functional as F
import shendu.optim as optim
from shendu.backend import jit

pytest.importorskip("numba")

rng = np.random.default_rng(11)


def channel_major(a):
    """The same (N, C, H, W) values stored as a C-contiguous (C, N, H, W) array, the layout
    conv layers output."""
    return np.ascontiguousarray(a.transpose(1, 0, 2, 3)).transpose(1, 0, 2, 3)


def bits(a):
    """The raw bit patterns, so that a NaN's payload, its sign and -0.0 must agree too."""
    a = np.ascontiguousarray(a)
    return a.view(np.int32 if a.dtype == np.float32 else np.int64)


@pytest.fixture(autouse=True)
def _kernels_on():
    with jit.use(True):
        assert jit.enabled()
        yield


# ---------------------------------------------------------------------- ReLU
SPECIAL = [np.nan, -np.nan, np.inf, -np.inf, -0.0, 0.0, 1e-40, -1e-40, 3.5, -2.0]


def relu_input(shape, dtype):
    x = rng.standard_normal(shape).astype(dtype)
    flat = x.reshape(-1)
    flat[:len(SPECIAL)] = SPECIAL
    flat[rng.choice(flat.size, 7, replace=False)] = np.nan  # NaNs away from the front too
    return x


def relu_run(x, g):
    t = sd.from_numpy(x).requires_grad_(True)
    y = F.relu(t)
    y.backward(sd.from_numpy(g))
    return y.detach().numpy(), t.grad.numpy()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("layout", ["nchw", "channel_major", "1d"])
def test_relu_kernel_matches_numpy_path(dtype, layout, kernel_spy):
    shape = (3, 5, 7, 9) if layout != "1d" else (1001,)
    x = relu_input(shape, dtype)
    g = relu_input(shape, dtype)  # NaN and inf gradients, at units both on and off
    if layout == "channel_major":
        x, g = channel_major(x), channel_major(g)  # the gradient arrives in x's layout
    calls = kernel_spy("relu_forward", "relu_backward")
    y, gx = relu_run(x, g)
    assert calls == ["relu_forward", "relu_backward"]
    with jit.use(False):
        y_np, gx_np = relu_run(x, g)
    np.testing.assert_array_equal(bits(y), bits(y_np))
    np.testing.assert_array_equal(bits(gx), bits(gx_np))
    if layout == "channel_major":
        assert y.transpose(1, 0, 2, 3).flags.c_contiguous  # stays channel-major
    # the rule itself: NaN stays NaN forward, the gradient flows only where y > 0 (a NaN
    # gradient at an off unit is dropped, and a NaN input passes none)
    assert np.array_equal(np.isnan(y), np.isnan(x))
    np.testing.assert_array_equal(y[~np.isnan(x)], np.maximum(x, 0)[~np.isnan(x)])
    np.testing.assert_array_equal(gx, np.where(x > 0, g, 0))


def test_relu_gradient_in_another_layout_than_the_output():
    # A C-contiguous gradient for a channel-major ReLU cannot use the flat kernel; the
    # result must not depend on that.
    x = channel_major(relu_input((2, 3, 4, 5), np.float32))
    g = relu_input((2, 3, 4, 5), np.float32)
    _, gx = relu_run(x, g)
    with jit.use(False):
        _, gx_np = relu_run(x, g)
    np.testing.assert_array_equal(bits(gx), bits(gx_np))
    np.testing.assert_array_equal(gx, np.where(x > 0, g, 0))


# ---------------------------------------------------------------------- max pooling
def pool_reference(x, k):
    """Max of each k x k window (stride k) and where its gradient goes: to the first
    maximum in row-major order, or to the last NaN, as PyTorch does. Rows and columns no
    window covers get nothing."""
    n, c, h, w = x.shape
    oh, ow = h // k, w // k
    out = np.empty((n, c, oh, ow), x.dtype)
    where = {}
    for a, b, i, j in np.ndindex(n, c, oh, ow):
        win = x[a, b, i * k:(i + 1) * k, j * k:(j + 1) * k].reshape(-1)
        best = 0
        for t in range(1, win.size):
            if win[t] > win[best] or np.isnan(win[t]):
                best = t
        out[a, b, i, j] = win[best]
        where[a, b, i, j] = (a, b, i * k + best // k, j * k + best % k)
    return out, where


def pool_input(shape, dtype, k):
    """Values from a small set (many windows hold tied maxima) and special values in
    known windows of the first plane."""
    x = rng.integers(-2, 3, shape).astype(dtype)
    p = x[0, 0]
    p[0, :2] = np.nan                      # two NaNs in one window: the later one wins
    p[k, 0], p[k, 1] = 5.0, np.nan         # a NaN after the maximum still wins
    p[0, k:2 * k] = -np.inf                # a window of -inf rows
    p[k, k:2 * k] = np.inf                 # a tie of infinities: the first wins
    p[2 * k, 0], p[2 * k, 1] = -0.0, 0.0   # -0.0 ties 0.0: the first keeps the gradient
    p[2 * k, k:2 * k] = 3.0
    p[2 * k + 1, k:2 * k] = 3.0            # ties on two rows: the first row wins
    x[-1, -1].reshape(-1)[rng.choice(shape[2] * shape[3], 3, replace=False)] = np.nan
    return x


def pool_run(x, k, g):
    t = sd.from_numpy(x).requires_grad_(True)
    out = F.max_pool2d(t, k)
    out.backward(sd.from_numpy(g))
    return out.detach().numpy(), t.grad.numpy()


POOL_SHAPES = {2: [(2, 3, 6, 8), (3, 2, 7, 9)],      # covered exactly / last row, col left
               3: [(2, 3, 9, 9), (2, 2, 10, 11)]}    # the same for 3x3 windows
POOL_CASES = [(k, s) for k, shapes in POOL_SHAPES.items() for s in shapes]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("k,shape", POOL_CASES, ids=str)
@pytest.mark.parametrize("layout", ["nchw", "channel_major"])
@pytest.mark.parametrize("g_layout", ["nchw", "channel_major"])
def test_max_pool_kernels_match_numpy_path_and_definition(dtype, k, shape, layout, g_layout,
                                                          kernel_spy):
    x = pool_input(shape, dtype, k)
    src = channel_major(x) if layout == "channel_major" else x
    oh, ow = shape[2] // k, shape[3] // k
    g = rng.standard_normal(shape[:2] + (oh, ow)).astype(dtype)
    g_in = channel_major(g) if g_layout == "channel_major" else g
    calls = kernel_spy("max_pool2x2_forward", "max_pool_tiled_forward", "max_pool2x2_backward",
                "max_pool_tiled_backward")
    out, gx = pool_run(src, k, g_in)
    exact = shape[2] == oh * k and shape[3] == ow * k
    if k == 2:
        want_calls = ["max_pool2x2_forward",
                      "max_pool2x2_backward" if exact else "max_pool_tiled_backward"]
    else:
        want_calls = ["max_pool_tiled_forward", "max_pool_tiled_backward"]
    assert calls == want_calls
    with jit.use(False):
        out_np, gx_np = pool_run(src, k, g_in)
    # by value: the NumPy path turns a maximum of -0.0 tied with 0.0 into 0.0 (see
    # test_numpy_pool_path_keeps_the_sign_of_a_zero_maximum)
    np.testing.assert_array_equal(out, out_np)
    np.testing.assert_array_equal(gx, gx_np)  # (zeros' signs differ: g * False is -0.0)
    if layout == "channel_major":
        assert out.transpose(1, 0, 2, 3).flags.c_contiguous  # stays channel-major

    want, where = pool_reference(x, k)
    np.testing.assert_array_equal(bits(out), bits(want))  # the very element, NaN or -0.0
    expect = np.zeros(shape, dtype)           # uncovered rows and columns stay zero
    for idx, at in where.items():
        expect[at] = g[idx]
    np.testing.assert_array_equal(gx, expect)
    if has_oracle(torch):
        tt = torch.from_numpy(x.copy()).requires_grad_(True)
        tout = torch.nn.functional.max_pool2d(tt, k)
        tout.backward(torch.from_numpy(g.copy()))
        np.testing.assert_array_equal(bits(out), bits(tout.detach().numpy()))
        np.testing.assert_array_equal(gx, tt.grad.numpy())


@pytest.mark.parametrize("k", [2, 3])
def test_numpy_pool_path_keeps_the_sign_of_a_zero_maximum(k):
    # PyTorch and the kernels return the first maximum itself: -0.0 here
    x = np.full((1, 1, k, k), -1.0, np.float32)
    x[0, 0, 0, :2] = [-0.0, 0.0]
    want, _ = pool_reference(x, k)
    with jit.use(False):
        out = F.max_pool2d(sd.from_numpy(x), k).numpy()
    np.testing.assert_array_equal(bits(out), bits(want))


def test_max_pool_more_planes_than_threads_and_one_plane():
    # the 2x2 kernels cut the planes into one share per thread: shares of 0 and of
    # several planes must both work
    for shape in [(1, 1, 4, 6), (5, 7, 8, 4)]:
        x = rng.standard_normal(shape).astype(np.float32)
        g = rng.standard_normal(shape[:2] + (shape[2] // 2, shape[3] // 2)).astype(np.float32)
        out, gx = pool_run(x, 2, g)
        with jit.use(False):
            out_np, gx_np = pool_run(x, 2, g)
        np.testing.assert_array_equal(out, out_np)
        np.testing.assert_array_equal(gx, gx_np)


# ---------------------------------------------------------------------- optimizers
# (name, hyperparameters, the kernel expected to run)
OPT_CASES = [
    ("SGD", {"lr": 0.1}, "sgd"),
    ("SGD", {"lr": 0.1, "weight_decay": 0.1}, "sgd"),
    ("SGD", {"lr": 0.1, "maximize": True}, "sgd"),
    ("SGD", {"lr": 0.1, "weight_decay": 0.1, "maximize": True}, "sgd"),
    ("SGD", {"lr": 0.1, "momentum": 0.9}, "sgd_momentum"),
    ("SGD", {"lr": 0.1, "momentum": 0.8, "dampening": 0.3, "weight_decay": 0.01},
     "sgd_momentum"),
    ("SGD", {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 0.1,
             "maximize": True}, "sgd_momentum"),
    ("Adam", {"lr": 0.01}, "adam"),
    ("Adam", {"lr": 0.01, "weight_decay": 0.1}, "adam"),
    ("Adam", {"lr": 0.01, "amsgrad": True}, "adam"),
    ("Adam", {"lr": 0.01, "maximize": True, "weight_decay": 0.05}, "adam"),
    ("Adam", {"lr": 0.05, "betas": (0.3, 0.99), "amsgrad": True}, "adam"),  # lerp weight > .5
    ("AdamW", {"lr": 0.01, "weight_decay": 0.1}, "adam"),
    ("AdamW", {"lr": 0.01, "weight_decay": 0.02, "amsgrad": True, "maximize": True}, "adam"),
    ("RMSprop", {}, "rmsprop"),
    ("RMSprop", {"weight_decay": 0.1, "maximize": True}, "rmsprop"),
    ("RMSprop", {"centered": True}, "rmsprop"),
    ("RMSprop", {"momentum": 0.9}, "rmsprop"),
    ("RMSprop", {"lr": 0.001, "centered": True, "momentum": 0.5, "alpha": 0.3,
                 "weight_decay": 0.05}, "rmsprop"),  # lerp weight > 0.5
    ("Adagrad", {"lr": 0.1}, "adagrad"),
    ("Adagrad", {"lr": 0.1, "lr_decay": 0.1, "weight_decay": 0.1,
                 "initial_accumulator_value": 0.5}, "adagrad"),
    ("Adagrad", {"maximize": True, "eps": 1e-6}, "adagrad"),
    ("Adadelta", {}, "adadelta"),
    ("Adadelta", {"lr": 0.5, "rho": 0.8, "weight_decay": 0.1}, "adadelta"),
    ("Adadelta", {"maximize": True, "eps": 1e-4}, "adadelta"),
]
OPT_IDS = [f"{n}-{'-'.join(f'{k}={v}' for k, v in kw.items()) or 'defaults'}"
           for n, kw, _ in OPT_CASES]
# A matrix, a vector, and one large enough that the NumPy path splits it between threads
SHAPES = [(3, 4), (7,), (300, 260)]
STEPS = 6


def problem(dtype, special=False):
    """Initial parameters and a gradient function of (parameter index, step, values): not
    a quadratic's, so that every state buffer's path matters, yet with bounded curvature,
    so that a step's rounding is not amplified over the steps."""
    init = [rng.standard_normal(s).astype(dtype) for s in SHAPES]
    noise = [[rng.standard_normal(s).astype(dtype) for s in SHAPES] for _ in range(STEPS)]
    if special:  # zero, huge (its square overflows float32), infinite and NaN gradients
        for step in noise:
            step[0].reshape(-1)[:6] = [0.0, 1e30, -1e30, np.inf, -np.inf, np.nan]

    def grad(i, k, p):
        with np.errstate(all="ignore"):
            return (p + 0.5 * np.sin(3 * p) + noise[k][i]).astype(dtype)
    return init, grad


def run_shendu(name, kwargs, init, grad):
    ps = [sd.nn.Parameter(sd.tensor(a.copy())) for a in init]
    opt = getattr(optim, name)(ps, **kwargs)
    with np.errstate(all="ignore"):  # the special values overflow on both paths alike
        for k in range(STEPS):
            for i, p in enumerate(ps):
                p.grad = sd.tensor(grad(i, k, p.detach().numpy().copy()))
            opt.step()
    return [p.detach().numpy().copy() for p in ps], opt


def run_torch(name, kwargs, init, grad):
    ps = [torch.nn.Parameter(torch.tensor(a.copy())) for a in init]
    opt = getattr(torch.optim, name)(ps, **kwargs)
    for k in range(STEPS):
        for i, p in enumerate(ps):
            p.grad = torch.tensor(grad(i, k, p.detach().numpy().copy()))
        opt.step()
    return [p.detach().numpy() for p in ps]


def close(dtype):
    # one rounding apart at most: the kernels do the NumPy path's operations in its order
    return {"rtol": 1e-6 if dtype == np.float32 else 1e-13, "atol": 0, "equal_nan": True}


@pytest.mark.parametrize("special", [False, True], ids=["finite", "special"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name,kwargs,kernel", OPT_CASES, ids=OPT_IDS)
def test_optimizer_kernel_matches_numpy_path(name, kwargs, kernel, dtype, special, kernel_spy):
    init, grad = problem(dtype, special)
    calls = kernel_spy(kernel)
    got, opt = run_shendu(name, kwargs, init, grad)
    assert calls == [kernel] * (STEPS * len(SHAPES))
    with jit.use(False):
        want, opt_np = run_shendu(name, kwargs, init, grad)
    assert len(calls) == STEPS * len(SHAPES)  # the NumPy run called no kernel
    for g, w in zip(got, want):
        assert g.dtype == dtype
        np.testing.assert_allclose(g, w, **close(dtype))
    # the state buffers too: the next steps start from them
    for p, p_np in zip(opt.param_groups[0]["params"], opt_np.param_groups[0]["params"]):
        for key, value in opt.state[p].items():
            other = opt_np.state[p_np][key]
            if key == "step":
                assert value == other
            else:
                np.testing.assert_allclose(value.numpy(), other.numpy(), **close(dtype))


@pytest.mark.skipif(torch is None, reason="PyTorch is not installed")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name,kwargs,kernel", OPT_CASES, ids=OPT_IDS)
def test_optimizer_kernel_matches_torch(name, kwargs, kernel, dtype, kernel_spy):
    init, grad = problem(dtype)
    calls = kernel_spy(kernel)
    got, _ = run_shendu(name, kwargs, init, grad)
    assert calls
    want = run_torch(name, kwargs, init, grad)
    # PyTorch rounds in another order (addcmul, fused foreach ops): a few float32 ulps,
    # more where the centered RMSprop's variance cancels
    rtol, atol = (1e-5, 1e-6) if dtype == np.float32 else (1e-12, 1e-12)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=rtol, atol=atol)


def test_optimizer_takes_numpy_path_for_a_non_contiguous_gradient(kernel_spy):
    # the kernels need flat views; a strided gradient must still give the same step
    init, grad = problem(np.float32)
    calls = kernel_spy("adam")
    p = sd.nn.Parameter(sd.tensor(init[2].copy()))
    q = sd.nn.Parameter(sd.tensor(init[2].copy()))
    opt_p, opt_q = optim.Adam([p], lr=0.01), optim.Adam([q], lr=0.01)
    for k in range(3):
        g = grad(2, k, p.detach().numpy().copy())
        p.grad = sd.from_numpy(np.asfortranarray(g))  # (sd.tensor would copy it)
        assert not p.grad.numpy().flags.c_contiguous
        q.grad = sd.tensor(g)
        opt_p.step()
        opt_q.step()
    assert calls == ["adam"] * 3  # only q's contiguous steps
    np.testing.assert_allclose(p.detach().numpy(), q.detach().numpy(), **close(np.float32))


@pytest.mark.parametrize("name,kwargs", [
    ("RMSprop", {"centered": True, "alpha": 0.50000000001}),
    ("Adam", {"betas": (0.50000000001, 0.999)}),
])
def test_lerp_branch_follows_the_python_weight(name, kwargs):
    # 1 - 0.50000000001 is below 0.5, so the NumPy path lerps from the start; in float32
    # the weight rounds to 0.5 exactly, and a kernel deciding on that would measure from
    # the end instead, one rounding away
    init, grad = problem(np.float32)
    got, _ = run_shendu(name, {"lr": 0.01, **kwargs}, init, grad)
    with jit.use(False):
        want, _ = run_shendu(name, {"lr": 0.01, **kwargs}, init, grad)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(bits(g), bits(w))
