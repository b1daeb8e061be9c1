"""Checking analytic gradients against central finite differences.

``gradcheck`` compares the full Jacobian, element by element; ``gradcheck_random`` compares
one random projection ``v^T J u`` (two function evaluations and one backward), which is
cheap enough for large inputs. Use float64 inputs: float32 finite differences are too noisy.
"""
from __future__ import annotations

import numpy as np

from ..backend import to_device
from .grad_mode import no_grad


class GradcheckError(AssertionError):
    pass


def _outputs(fn, inputs):
    from ..tensor import Tensor

    out = fn(*inputs)
    outs = [out] if isinstance(out, Tensor) else [o for o in out if isinstance(o, Tensor)]
    return [o for o in outs if o.is_floating_point()]


def _flat_out(fn, inputs):
    with no_grad():
        outs = _outputs(fn, inputs)
    return np.concatenate([np.asarray(o, dtype=np.float64).ravel() for o in outs]) if outs \
        else np.zeros(0)


def _check_inputs(inputs):
    from ..tensor import Tensor

    inputs = (inputs,) if isinstance(inputs, Tensor) else tuple(inputs)
    diff = [i for i, t in enumerate(inputs) if isinstance(t, Tensor) and t.requires_grad]
    if not diff:
        raise ValueError("gradcheck: no input has requires_grad=True")
    for i in diff:
        if inputs[i].dtype != np.float64:
            import warnings

            warnings.warn(f"gradcheck: input {i} is {inputs[i].dtype}; finite differences are "
                          "only reliable in float64", stacklevel=3)
    return inputs, diff


def gradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-3, raise_exception=True,
              fast_mode=False, _create_graph=False):
    """True when ``fn``'s backward matches finite differences for every input requiring grad.

    >>> import shendu as sd
    >>> x = sd.randn(3, dtype=sd.float64, requires_grad=True)
    >>> sd.autograd.gradcheck(lambda x: (x.sin() * x).sum(), (x,))
    True
    """
    if fast_mode:
        return gradcheck_random(fn, inputs, eps=eps, atol=atol, rtol=rtol,
                                raise_exception=raise_exception, _create_graph=_create_graph)
    from ..tensor import Tensor

    inputs, diff = _check_inputs(inputs)
    with no_grad():
        out_sizes = [o.numel() for o in _outputs(fn, inputs)]
    n_out = sum(out_sizes)
    for i in diff:
        x = inputs[i]
        arr = x._data
        numerical = np.zeros((arr.size, n_out))
        for j in range(arr.size):
            orig = arr.flat[j]
            arr.flat[j] = orig + eps
            plus = _flat_out(fn, inputs)
            arr.flat[j] = orig - eps
            minus = _flat_out(fn, inputs)
            arr.flat[j] = orig
            numerical[j] = (plus - minus) / (2 * eps)
        analytic = np.zeros((arr.size, n_out))
        from . import grad

        outs = _outputs(fn, inputs)
        k = 0
        for o in outs:
            for m in range(o.numel()):
                if o.requires_grad:
                    seed = np.zeros(o.shape, o.dtype)
                    seed.flat[m] = 1
                    seed = Tensor._wrap(to_device(seed, o.device))
                    (g,) = grad([o], [x], [seed], retain_graph=True,
                                allow_unused=True, create_graph=_create_graph)
                    if g is not None:
                        analytic[:, k] = np.asarray(g, dtype=np.float64).ravel()
                k += 1
        if not np.allclose(analytic, numerical, atol=atol, rtol=rtol):
            err = np.abs(analytic - numerical)
            j, k = np.unravel_index(err.argmax(), err.shape)
            msg = (f"gradcheck: Jacobian mismatch for input {i} (shape {x.shape}): at input "
                   f"element {j}, output element {k}: analytic {analytic[j, k]:.6g} vs "
                   f"numerical {numerical[j, k]:.6g} (max abs diff {err.max():.3g})")
            if raise_exception:
                raise GradcheckError(msg)
            return False
    return True


def gradcheck_random(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-3, raise_exception=True,
                     seed=0, _create_graph=False):
    """Compare ``v^T J u`` for random directions ``u`` (inputs) and ``v`` (outputs)."""
    from ..tensor import Tensor
    from . import grad

    inputs, diff = _check_inputs(inputs)
    rng = np.random.default_rng(seed)
    us = {i: rng.standard_normal(inputs[i].shape) for i in diff}
    outs = _outputs(fn, inputs)
    vs = [rng.standard_normal(o.shape) for o in outs]
    v_flat = np.concatenate([v.ravel() for v in vs]) if vs else np.zeros(0)

    originals = {i: inputs[i]._data.copy() for i in diff}
    steps = {i: to_device(eps * us[i], inputs[i].device) for i in diff}  # the inputs' device
    for i in diff:
        inputs[i]._data[...] = originals[i] + steps[i]
    plus = _flat_out(fn, inputs)
    for i in diff:
        inputs[i]._data[...] = originals[i] - steps[i]
    minus = _flat_out(fn, inputs)
    for i in diff:
        inputs[i]._data[...] = originals[i]
    numerical = float((plus - minus) @ v_flat / (2 * eps))

    diffable = [(o, v) for o, v in zip(outs, vs) if o.requires_grad]
    analytic = 0.0
    if diffable:
        grads = grad([o for o, _ in diffable], [inputs[i] for i in diff],
                     [Tensor._wrap(to_device(v.astype(o.dtype), o.device)) for o, v in diffable],
                     allow_unused=True,
                     create_graph=_create_graph)
        analytic = sum(float((np.asarray(g, dtype=np.float64) * us[i]).sum())
                       for g, i in zip(grads, diff) if g is not None)
    if not np.isclose(analytic, numerical, atol=atol, rtol=rtol):
        msg = (f"gradcheck_random: v^T J u mismatch: analytic {analytic:.8g} vs numerical "
               f"{numerical:.8g}")
        if raise_exception:
            raise GradcheckError(msg)
        return False
    return True


def gradgradcheck(fn, inputs, grad_outputs=None, eps=1e-6, atol=1e-5, rtol=1e-3,
                  raise_exception=True, fast_mode=False, seed=0):
    """True when second derivatives (the backward of ``fn``'s backward) match finite
    differences: ``gradcheck`` of ``(inputs, v) -> grad(fn(inputs), inputs, v,
    create_graph=True)``, as PyTorch's ``gradgradcheck``. ``grad_outputs`` (one per
    floating output of ``fn``) default to random float64 tensors that require grad, so
    the check also covers the gradients' dependence on them.

    The recorded backward (``backward_graph`` rules) is a second implementation of each
    op's first derivative, so it is first checked against finite differences itself.

    >>> import shendu as sd
    >>> x = sd.randn(3, dtype=sd.float64, requires_grad=True)
    >>> sd.autograd.gradgradcheck(lambda x: x.tanh() * x, (x,))
    True
    """
    from ..tensor import Tensor
    from . import enable_grad, grad

    inputs, diff = _check_inputs(inputs)
    outs = _outputs(fn, inputs)
    if grad_outputs is None:
        rng = np.random.default_rng(seed)
        grad_outputs = [Tensor._wrap(to_device(rng.standard_normal(o.shape).astype(o.dtype),
                                               o.device))
                        .requires_grad_(True) for o in outs if o.requires_grad]
    else:
        grad_outputs = [grad_outputs] if isinstance(grad_outputs, Tensor) else \
            list(grad_outputs)
    n = len(inputs)
    if not gradcheck(fn, inputs, eps=eps, atol=atol, rtol=rtol,
                     raise_exception=raise_exception, fast_mode=fast_mode, _create_graph=True):
        return False

    def first_derivatives(*args):
        with enable_grad():
            outs = [o for o in _outputs(fn, args[:n]) if o.requires_grad]
            if not outs:
                return ()
            grads = grad(outs, [args[i] for i in diff], list(args[n:]), create_graph=True,
                         allow_unused=True)
        return tuple(g for g in grads if g is not None)

    return gradcheck(first_derivatives, tuple(inputs) + tuple(grad_outputs), eps=eps,
                     atol=atol, rtol=rtol, raise_exception=raise_exception,
                     fast_mode=fast_mode)
