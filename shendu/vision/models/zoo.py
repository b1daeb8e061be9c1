"""The model registry: ``list_models()``, ``get_model(name, **kwargs)`` (torchvision's
names) and ``for_images`` (a zoo model set up for a data set's image shape, as
``shendu train --model NAME`` builds it).

>>> "resnet18" in list_models(), get_model("resnet18", num_classes=3).fc.out_features
(True, 3)
"""
from __future__ import annotations

from collections.abc import Callable

from . import vgg as _vgg
from .alexnet import alexnet
from .googlenet import googlenet
from .nin import nin
from .resnet import resnet18, resnet34, resnet50, resnet101

_BUILDERS: dict[str, Callable] = {
    "alexnet": alexnet, "googlenet": googlenet, "nin": nin,
    "resnet18": resnet18, "resnet34": resnet34, "resnet50": resnet50, "resnet101": resnet101,
    **{name: getattr(_vgg, name) for name in _vgg.__all__ if name.startswith("vgg")},
}

__all__ = ["list_models", "get_model", "for_images", "default_dropout"]


def list_models() -> list[str]:
    """Names of the zoo's constructors, sorted (torchvision's ``list_models``)."""
    return sorted(_BUILDERS)


def get_model(name: str, **kwargs):
    """Build the zoo model ``name`` (``weights=PATH``, ``num_classes``, ... as its
    constructor takes them)."""
    if name not in _BUILDERS:
        raise ValueError(f"get_model: unknown model {name!r}; choose from {list_models()}")
    return _BUILDERS[name](**kwargs)


def default_dropout(name: str) -> float | None:
    """The dropout probability zoo model ``name`` uses unless told otherwise (its
    constructor's ``dropout``: 0.5 for AlexNet, VGG and NiN, 0.2 for GoogLeNet), or None
    for a model without a ``dropout`` setting (the ResNets).

    >>> default_dropout("alexnet"), default_dropout("googlenet"), default_dropout("resnet18")
    (0.5, 0.2, None)
    """
    import inspect

    from .alexnet import AlexNet
    from .googlenet import GoogLeNet
    from .nin import NiN
    from .vgg import VGG
    if name not in _BUILDERS:
        raise ValueError(f"default_dropout: unknown model {name!r}; choose from "
                         f"{list_models()}")
    cls = {"alexnet": AlexNet, "googlenet": GoogLeNet, "nin": NiN}.get(
        name, VGG if name.startswith("vgg") else None)
    if cls is None:
        return None
    return inspect.signature(cls.__init__).parameters["dropout"].default


def for_images(name: str, shape: tuple[int, int, int], num_classes: int, **kwargs):
    """The zoo model ``name`` for images of ``shape`` (C, H, W): ``in_channels`` from C,
    for ResNets below 64 px the small-input stem (3x3 conv, no max-pool), for GoogLeNet no
    auxiliary classifiers. Raises a
    ValueError naming the smallest size when the images are too small for the model."""
    c, h, w = shape
    if name.startswith("resnet") and min(h, w) < 64:
        kwargs.setdefault("small_input", True)
    if name == "googlenet":  # the training loop wants plain logits
        kwargs.setdefault("aux_logits", False)
    model = get_model(name, num_classes=num_classes, in_channels=c, **kwargs)
    need = model.min_input_size
    if min(h, w) < need:
        raise ValueError(f"{name}: the images are {h}x{w} pixels but this model needs at "
                         f"least {need}x{need}; enlarge them (shendu train --resize {need}) or "
                         "choose a ResNet (small-input stem), googlenet or lenet5")
    return model
