"""Classic single-layer models from the course notes: the perceptron and its learning rule,
linear regression (closed form and gradient descent), logistic and softmax regression.

>>> from shendu.models import Perceptron
>>> from shendu.data.datasets import make_xor
>>> X, y = make_xor(4, noise=0.0)
>>> Perceptron(2).fit(X, y, epochs=50).converged_   # XOR is not linearly separable
False
"""
from .autoencoder import Autoencoder, pretrain_layerwise, stacked_autoencoders
from .linear import LinearRegression, LogisticRegression, SoftmaxRegression
from .multitask import MultiTask, MultiTaskLoss
from .perceptron import Perceptron
from .siamese import Siamese, few_shot_accuracy, verify

__all__ = ["Perceptron", "LinearRegression", "LogisticRegression", "SoftmaxRegression",
           "MultiTask", "MultiTaskLoss",
           "Autoencoder", "stacked_autoencoders", "pretrain_layerwise", "Siamese", "verify",
           "few_shot_accuracy"]
