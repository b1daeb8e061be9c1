"""The one helper every op test goes through.

``check_op`` runs an op on float64 inputs and checks, in order:
  1. forward against a NumPy reference (when given);
  2. backward against central finite differences (``sd.autograd.gradcheck``: the full
     Jacobian for small inputs, a random projection for larger ones);
  3. forward mode (``jvp``) against the reverse-mode Jacobian, along a random direction;
  4. forward and backward against PyTorch with the same inputs (when torch is importable);
  5. the same op on non-contiguous copies of the inputs gives the same values and gradients;
  6. in float32 the forward agrees with the float64 result to float32 precision.

A PyTorch comparison never vanishes silently: when a call asks for one (``torch_fn=TF and
...``, which is None without torch) and torch is missing, every other check still runs
and the test is then reported as skipped with the reason (see ``conftest.py``); with
``SHENDU_REQUIRE_ORACLES=1`` (set by ``.ci/run``) a missing oracle fails the run instead.
"""
from __future__ import annotations

import os

import numpy as np
import pytest

import shendu as sd

try:  # PyTorch is an optional oracle
    import torch

    torch.set_num_threads(1)
except ImportError:  # pragma: no cover
    torch = None

REQUIRE_ORACLES = os.environ.get("SHENDU_REQUIRE_ORACLES", "") not in ("", "0")

# Where ``check_op`` runs the op: "cpu", or "cuda" with ``SHENDU_TEST_DEVICE=cuda`` (a GPU)
# or ``SHENDU_TEST_DEVICE=fake`` (the CuPy stand-in, tests/devices/fakecupy.py, which
# conftest.py installs as CUDA). The references stay on the host.
DEVICE = "cpu" if os.environ.get("SHENDU_TEST_DEVICE", "cpu") == "cpu" else "cuda"

# Oracle comparisons that could not run in the current test, filled by ``oracle_missing``
# and read by conftest's report hook, which turns a passing test into a visible skip.
MISSING: list[str] = []

_NOT_ASKED = object()  # check_op called without torch_fn: no PyTorch comparison wanted


def oracle_missing(what: str) -> None:
    """Record that the ``what`` comparison could not run (its oracle is not installed).
    The test goes on with its other checks; it then shows as skipped, or fails when
    ``SHENDU_REQUIRE_ORACLES`` is set."""
    if REQUIRE_ORACLES:
        pytest.fail(f"{what} did not run: its oracle is not installed, and "
                    "SHENDU_REQUIRE_ORACLES=1 requires every oracle", pytrace=False)
    MISSING.append(what)


def has_oracle(module, what: str = "a PyTorch comparison") -> bool:
    """``if has_oracle(torch):`` guards an inline comparison: False (and recorded, so the
    test shows as skipped, or fails under ``SHENDU_REQUIRE_ORACLES``) when it is missing."""
    if module is None:
        oracle_missing(what)
        return False
    return True


def require_oracle(name: str, module) -> None:
    """Skip the test now (or fail under ``SHENDU_REQUIRE_ORACLES``) when ``module`` is None."""
    if module is None:
        if REQUIRE_ORACLES:
            pytest.fail(f"{name} is not installed and SHENDU_REQUIRE_ORACLES=1 requires it",
                        pytrace=False)
        pytest.skip(f"{name} is not installed: this comparison with {name} did not run")


def on(x, data, dtype=None):
    """``data`` as a tensor on ``x``'s device: for the targets, masks and indices an op
    under test takes beside the inputs ``check_op`` placed (see ``DEVICE``)."""
    return sd.tensor(data, dtype=dtype, device=x.device)


class Arg:
    """A non-differentiable argument (indices, masks, targets): passed as-is to all three."""

    def __init__(self, value):
        self.value = value


def _as_list(x):
    if isinstance(x, (tuple, list)):
        return list(x)
    return [x]


def _to_np(x):
    if isinstance(x, sd.Tensor):
        return np.asarray(x.detach(), dtype=np.float64) if x.is_floating_point() else np.asarray(x)
    if torch is not None and isinstance(x, torch.Tensor):
        return x.detach().numpy()
    return np.asarray(x)


def _noncontiguous(a):
    """The same values laid out with gaps in memory (every other element of a larger array),
    on ``a``'s device."""
    if a.ndim == 0 or a.size == 0:
        return a
    big = sd.backend.get_array_module(a).zeros(a.shape[:-1] + (a.shape[-1] * 2,), a.dtype)
    big[..., ::2] = a
    out = big[..., ::2]
    assert not out.flags.c_contiguous or a.shape[-1] <= 1
    return out


def _make_sd(args, dtype=np.float64, layout=lambda a: a):
    out = []
    for a in args:
        if isinstance(a, Arg):
            v = a.value
            if isinstance(v, np.ndarray):
                v = sd.tensor(v.astype(dtype) if v.dtype.kind == "f" else v, device=DEVICE)
            elif isinstance(v, sd.Tensor):
                v = v.to(DEVICE)
            out.append(v)
        else:
            arr = sd.backend.to_device(np.asarray(a, dtype=dtype), DEVICE)
            t = sd.Tensor._wrap(layout(arr))
            t.requires_grad_(True)
            out.append(t)
    return out


def check_op(fn, args, np_fn=None, torch_fn=_NOT_ASKED, atol=1e-6, rtol=1e-5, grad=True,
             check_jvp=True, check_noncontig=True, check_f32=True, grad_atol=1e-5,
             grad_rtol=1e-3, full_jacobian_max=60):
    """Run all checks on ``fn(*args)`` (see the module docstring).

    ``args`` holds float arrays (differentiable inputs) and ``Arg`` wrappers; ``np_fn`` and
    ``torch_fn`` take the same positional arguments (NumPy arrays / torch tensors).
    """
    rng = np.random.default_rng(1)
    xs = _make_sd(args)
    outs = _as_list(fn(*xs))
    float_idx = [i for i, o in enumerate(outs)
                 if isinstance(o, sd.Tensor) and o.is_floating_point()]
    for i, o in enumerate(outs):
        assert not xs or not isinstance(o, sd.Tensor) or o.device.type == DEVICE, \
            f"output {i} is on {o.device} for inputs on {DEVICE}"

    # 1. forward against NumPy
    if np_fn is not None:
        ref = _as_list(np_fn(*[a.value if isinstance(a, Arg) else np.asarray(a, np.float64)
                               for a in args]))
        assert len(ref) == len(outs), f"{len(outs)} outputs but the reference has {len(ref)}"
        for o, r in zip(outs, ref):
            np.testing.assert_allclose(_to_np(o), np.asarray(r), atol=atol, rtol=rtol,
                                       err_msg="forward differs from the NumPy reference")

    diff_inputs = [x for x, a in zip(xs, args) if not isinstance(a, Arg)]
    if grad and diff_inputs and float_idx:
        def scalar_fn(*inp):
            res = _as_list(fn(*inp))
            return tuple(res[i] for i in float_idx)

        # 2. backward against finite differences
        n_in = sum(x.numel() for x in diff_inputs)
        n_out = sum(outs[i].numel() for i in float_idx)
        if n_in * max(n_out, 1) <= full_jacobian_max * 40 and n_in <= full_jacobian_max:
            assert sd.autograd.gradcheck(scalar_fn, xs, atol=grad_atol, rtol=grad_rtol)
        for seed in range(2):
            assert sd.autograd.gradcheck_random(scalar_fn, xs, atol=grad_atol, rtol=grad_rtol,
                                                seed=seed)

        # 3. forward mode against reverse mode along a random direction
        if check_jvp:
            _check_jvp(fn, args, xs, float_idx, rng)

    # 4. PyTorch
    if torch is not None and torch_fn is not _NOT_ASKED and torch_fn is not None:
        _check_torch(fn, torch_fn, args, xs, outs, float_idx, grad, rng, atol, rtol)
    elif torch is None and torch_fn is not _NOT_ASKED:
        oracle_missing(f"the PyTorch comparison of {getattr(fn, '__name__', fn)}")

    # 5. non-contiguous inputs
    if check_noncontig and any(not isinstance(a, Arg) and np.ndim(a) > 0 for a in args):
        _check_noncontiguous(fn, args, outs, float_idx, grad, rng)

    # 6. float32 forward
    if check_f32 and float_idx:
        x32 = _make_sd(args, np.float32)
        o32 = _as_list(fn(*x32))
        for i in float_idx:
            assert o32[i].dtype == sd.float32, f"output {i} is {o32[i].dtype} for float32 inputs"
            np.testing.assert_allclose(_to_np(o32[i]), _to_np(outs[i]), rtol=2e-3, atol=2e-3,
                                       err_msg="float32 forward differs from float64")
    return outs


def _upstream(outs, float_idx, rng):
    return [rng.standard_normal(outs[i].shape) for i in float_idx]


def _grads(fn, xs, float_idx, gs):
    for x in xs:
        if isinstance(x, sd.Tensor):
            x.grad = None
    outs = _as_list(fn(*xs))
    diff = [(outs[i], g) for i, g in zip(float_idx, gs) if outs[i].requires_grad]
    if diff:
        sd.autograd.backward([o for o, _ in diff], [sd.tensor(g, device=o.device)
                                                    for o, g in diff])
    return [None if not isinstance(x, sd.Tensor) or x.grad is None else x.grad.numpy()
            for x in xs]


def _check_jvp(fn, args, xs, float_idx, rng):
    diff_pos = [i for i, a in enumerate(args) if not isinstance(a, Arg)]
    tangents = {i: rng.standard_normal(np.shape(args[i])) for i in diff_pos}

    def f(*diff_vals):
        full = list(xs)
        for i, v in zip(diff_pos, diff_vals):
            full[i] = v
        res = _as_list(fn(*full))
        return tuple(res[i] for i in float_idx)

    primals = [xs[i].detach() for i in diff_pos]
    _, tans = sd.autograd.jvp(f, primals, [sd.tensor(tangents[i], device=DEVICE)
                                           for i in diff_pos])
    # reverse mode: <v, J u> = <J^T v, u> for random v
    outs = _as_list(fn(*xs))
    vs = _upstream(outs, float_idx, rng)
    grads = _grads(fn, xs, float_idx, vs)
    lhs = sum(float((np.asarray(t.numpy()) * v).sum()) for t, v in zip(tans, vs))
    rhs = sum(float((grads[i] * tangents[i]).sum()) for i in diff_pos if grads[i] is not None)
    np.testing.assert_allclose(lhs, rhs, rtol=1e-6, atol=1e-8,
                               err_msg="forward-mode jvp disagrees with reverse mode")


def _check_torch(fn, torch_fn, args, xs, outs, float_idx, grad, rng, atol, rtol):
    ts = []
    for a in args:
        if isinstance(a, Arg):
            v = a.value
            ts.append(torch.from_numpy(np.array(v)) if isinstance(v, np.ndarray) else v)
        else:
            ts.append(torch.tensor(np.asarray(a, np.float64), requires_grad=True))
    touts = _as_list(torch_fn(*ts))
    for i, (o, t) in enumerate(zip(outs, touts)):
        np.testing.assert_allclose(_to_np(o), _to_np(t), atol=atol, rtol=rtol,
                                   err_msg=f"forward output {i} differs from PyTorch")
    if not grad:
        return
    gs = _upstream(outs, float_idx, rng)
    ours = _grads(fn, xs, float_idx, gs)
    t_diff = [(touts[i], g) for i, g in zip(float_idx, gs) if touts[i].requires_grad]
    if not t_diff:
        return
    torch.autograd.backward([t for t, _ in t_diff], [torch.from_numpy(g) for _, g in t_diff])
    for k, (a, t) in enumerate(zip(args, ts)):
        if isinstance(a, Arg):
            continue
        tg = None if t.grad is None else t.grad.numpy()
        if tg is None:
            assert ours[k] is None or np.allclose(ours[k], 0), f"input {k}: torch has no grad"
            continue
        np.testing.assert_allclose(ours[k], tg, atol=1e-6, rtol=1e-5,
                                   err_msg=f"gradient of input {k} differs from PyTorch")


def _check_noncontiguous(fn, args, outs, float_idx, grad, rng):
    xs = _make_sd(args, layout=_noncontiguous)
    outs_nc = _as_list(fn(*xs))
    for i in float_idx:
        np.testing.assert_allclose(_to_np(outs_nc[i]), _to_np(outs[i]), atol=1e-12, rtol=1e-12,
                                   err_msg="non-contiguous inputs change the forward result")
    if grad and float_idx:
        gs = _upstream(outs, float_idx, rng)
        g_nc = _grads(fn, xs, float_idx, gs)
        g_c = _grads(fn, _make_sd(args), float_idx, gs)
        for a, b in zip(g_nc, g_c):
            if a is not None and b is not None:
                np.testing.assert_allclose(a, b, atol=1e-12, rtol=1e-12,
                                           err_msg="non-contiguous inputs change the gradient")
