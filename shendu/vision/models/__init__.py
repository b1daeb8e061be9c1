"""Ready-made vision networks: ``LeNet5``, a plain ``MLP`` classifier, and the classic
CNN families with torchvision's constructors and module names (``alexnet``, ``vgg11`` ...
``vgg19_bn``, ``googlenet``, ``resnet18/34/50/101``) plus d2l's ``nin``, so torchvision's
state dicts load as they are. ``list_models()`` names them; ``get_model(name)`` builds one.

>>> from shendu.vision.models import MLP
>>> MLP(784, (32,), num_classes=10)
MLP(
  (net): Sequential(
    (0): Flatten(start_dim=1, end_dim=-1)
    (1): Linear(in_features=784, out_features=32, bias=True)
    (2): ReLU()
    (3): Linear(in_features=32, out_features=10, bias=True)
  )
)
"""
from .alexnet import AlexNet, alexnet
from .googlenet import GoogLeNet, GoogLeNetOutputs, googlenet
from .lenet import LeNet5
from .mlp import MLP
from .nin import NiN, nin
from .resnet import BasicBlock, Bottleneck, ResNet, resnet18, resnet34, resnet50, resnet101
from .vgg import (
    VGG,
    vgg11,
    vgg11_bn,
    vgg13,
    vgg13_bn,
    vgg16,
    vgg16_bn,
    vgg19,
    vgg19_bn,
)
from .zoo import get_model, list_models

__all__ = ["LeNet5", "MLP", "AlexNet", "alexnet", "GoogLeNet", "GoogLeNetOutputs",
           "googlenet", "NiN", "nin", "ResNet", "BasicBlock", "Bottleneck", "resnet18",
           "resnet34", "resnet50", "resnet101", "VGG", "vgg11", "vgg11_bn", "vgg13",
           "vgg13_bn", "vgg16", "vgg16_bn", "vgg19", "vgg19_bn", "get_model", "list_models"]
