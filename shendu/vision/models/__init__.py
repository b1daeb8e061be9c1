"""Ready-made vision networks: ``LeNet5`` and a plain ``MLP`` classifier.

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
from .lenet import LeNet5
from .mlp import MLP

__all__ = ["LeNet5", "MLP"]
