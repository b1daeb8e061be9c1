"""Transfer learning helpers: freeze and unfreeze parts of a network, replace its head, and
give each part its own learning rate (discriminative fine-tuning, Howard & Ruder 2018).

>>> import shendu as sd
>>> from shendu.vision.models import LeNet5
>>> net = LeNet5(num_classes=5)
>>> _ = freeze(net.features)
>>> head = replace_head(net, 3)
>>> net(sd.zeros(2, 1, 28, 28)).shape, net.num_parameters(only_trainable=True)
((2, 3), 58539)
"""
from __future__ import annotations

from collections.abc import Sequence

from ..module import Module

__all__ = ["freeze", "unfreeze", "is_frozen", "replace_head", "discriminative_lr"]


def freeze(module: Module, train_bn: bool = False) -> Module:
    """Stop gradients for every parameter of ``module`` (``requires_grad_(False)``).

    Args:
        module: the part to freeze (a backbone, a block, the whole net).
        train_bn: keep batch-norm affine parameters trainable (fastai's habit: they are few
            and let the frozen features re-centre on the new data).

    Running statistics of batch-norm layers still update in train mode; call ``.eval()``
    on the frozen part to keep them fixed too.

    >>> from shendu.nn import Linear
    >>> freeze(Linear(2, 2)).weight.requires_grad
    False
    """
    module.requires_grad_(False)
    if train_bn:
        for m in module.modules():
            if "BatchNorm" in type(m).__name__:
                m.requires_grad_(True)
    return module


def unfreeze(module: Module) -> Module:
    """Let every parameter of ``module`` train again (``requires_grad_(True)``).

    >>> from shendu.nn import Linear
    >>> unfreeze(freeze(Linear(2, 2))).weight.requires_grad
    True
    """
    return module.requires_grad_(True)


def is_frozen(module: Module) -> bool:
    """True when ``module`` has parameters and none of them requires a gradient.

    >>> from shendu.nn import Linear
    >>> is_frozen(freeze(Linear(2, 2))), is_frozen(Linear(2, 2))
    (True, False)
    """
    params = list(module.parameters())
    return bool(params) and not any(p.requires_grad for p in params)


def _last_linear(model: Module) -> str:
    name = None
    for n, m in model.named_modules():
        if type(m).__name__ == "Linear":
            name = n
    if name is None:
        raise ValueError(f"replace_head: {type(model).__name__} has no Linear layer; "
                         f"name the head with name=")
    return name


def replace_head(model: Module, num_outputs: int, name: str | None = None,
                 head: Module | None = None) -> Module:
    """Swap the final classifier layer of ``model`` for a fresh one and return it.

    Args:
        model: the pretrained network (changed in place).
        num_outputs: outputs of the new layer (classes of the new task).
        name: dotted path of the layer to replace (``'fc'``, ``'classifier.6'``); default:
            the last ``Linear`` in ``model.named_modules()`` order.
        head: the module to put there instead of a new ``Linear(in_features, num_outputs)``.

    The new layer is trainable even when the rest of the model is frozen.

    >>> import shendu as sd
    >>> net = sd.nn.Sequential(sd.nn.Linear(4, 8), sd.nn.ReLU(), sd.nn.Linear(8, 10))
    >>> replace_head(net, 2)
    Linear(in_features=8, out_features=2, bias=True)
    """
    from ..layers.linear import Linear

    name = _last_linear(model) if name is None else name
    parent_name, _, leaf = name.rpartition(".")
    parent = model.get_submodule(parent_name)
    old = parent.get_submodule(leaf)
    if head is None:
        if not hasattr(old, "in_features"):
            raise ValueError(f"replace_head: {name!r} is a {type(old).__name__}, not a "
                             f"Linear; pass head= to say what replaces it")
        head = Linear(old.in_features, num_outputs, bias=old.bias is not None)
    setattr(parent, leaf, head)
    head.requires_grad_(True)
    return head


def discriminative_lr(groups: Sequence[Module], lr: float, factor: float = 2.6,
                      **options) -> list[dict]:
    """Optimizer parameter groups with learning rates falling from the head to the input.

    Args:
        groups: modules ordered from the input side to the head; the last gets ``lr``,
            the one before ``lr / factor``, then ``lr / factor**2`` and so on (ULMFiT's 2.6).
        lr: learning rate of the head.
        factor: ratio between neighbouring groups (1 gives them all ``lr``).
        options: other hyperparameters copied into every group (``weight_decay``...).

    Frozen parameters are included, so a later ``unfreeze`` needs no new optimizer (the
    optimizer skips parameters without a gradient).

    >>> import shendu as sd
    >>> net = sd.nn.Sequential(sd.nn.Linear(4, 8), sd.nn.Linear(8, 2))
    >>> [g["lr"] for g in discriminative_lr([net[0], net[1]], 0.01, factor=10)]
    [0.001, 0.01]
    >>> opt = sd.optim.Adam(discriminative_lr([net[0], net[1]], 0.01))
    """
    if not groups:
        raise ValueError("discriminative_lr: needs at least one module")
    if not factor > 0:
        raise ValueError(f"discriminative_lr: factor must be > 0, got {factor!r}")
    n = len(groups)
    seen: set[int] = set()
    out = []
    for i, m in enumerate(groups):
        params = [p for p in m.parameters() if id(p) not in seen]
        seen.update(id(p) for p in params)
        out.append({"params": params, "lr": lr / factor ** (n - 1 - i), **options})
    return out
