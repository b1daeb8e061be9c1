"""Flatten parameters into one vector and back (for second-order methods, evolution
strategies, or inspecting a model as a single point in weight space)."""
from __future__ import annotations

from collections.abc import Iterable

from ...autograd.grad_mode import no_grad
from ...tensor import Tensor

__all__ = ["parameters_to_vector", "vector_to_parameters"]


def _check_devices(fn: str, tensors: list[Tensor]) -> None:
    devices = {str(t.device) for t in tensors}
    if len(devices) > 1:
        raise RuntimeError(f"{fn}: all parameters must be on one device, found "
                           f"{sorted(devices)}")


def parameters_to_vector(parameters: Iterable[Tensor]) -> Tensor:
    """All parameters flattened and concatenated into one 1-D tensor (differentiable).

    >>> import shendu as sd
    >>> from shendu.nn.utils import parameters_to_vector
    >>> parameters_to_vector([sd.ones(2, 2), sd.zeros(3)])
    tensor([1., 1., 1., 1., 0., 0., 0.])
    """
    from ...ops.movement import cat

    params = [parameters] if isinstance(parameters, Tensor) else list(parameters)
    if not params:
        raise ValueError("parameters_to_vector: got an empty list of parameters")
    _check_devices("parameters_to_vector", params)
    return cat([p.reshape(-1) for p in params])


def vector_to_parameters(vec: Tensor, parameters: Iterable[Tensor]) -> None:
    """Copy consecutive slices of the 1-D ``vec`` into the parameters, in place.

    Unlike PyTorch (which makes each parameter a view of ``vec``) the values are copied, so
    the parameters keep their own memory and later changes to ``vec`` do not leak in.

    >>> import shendu as sd
    >>> from shendu.nn.utils import vector_to_parameters
    >>> a, b = sd.zeros(2), sd.zeros(1)
    >>> vector_to_parameters(sd.tensor([1.0, 2.0, 3.0]), [a, b])
    >>> a, b
    (tensor([1., 2.]), tensor([3.]))
    """
    if not isinstance(vec, Tensor):
        raise TypeError(f"vector_to_parameters: expected vec to be a Tensor, got "
                        f"{type(vec).__name__}")
    if vec.ndim != 1:
        raise ValueError(f"vector_to_parameters: vec must be 1-D, got shape {vec.shape}")
    params = [parameters] if isinstance(parameters, Tensor) else list(parameters)
    total = sum(p.numel() for p in params)
    if vec.numel() != total:
        raise ValueError(f"vector_to_parameters: vec has {vec.numel()} elements but the "
                         f"parameters hold {total}")
    _check_devices("vector_to_parameters", params + [vec])
    start = 0
    with no_grad():
        for p in params:
            n = p.numel()
            p.copy_(Tensor._wrap(vec._data[start:start + n].reshape(p.shape)))
            start += n
