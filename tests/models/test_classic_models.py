"""Perceptron, linear/logistic/softmax regression: the classic single-layer models."""
import numpy as np
import pytest

import shendu as sd
import shendu.nn.functional as F
from shendu.data.datasets import make_blobs, make_regression, make_xor, two_blobs
from shendu.models import LinearRegression, LogisticRegression, Perceptron, SoftmaxRegression
from shendu.models.linear import softmax_cross_entropy


def test_perceptron_converges_on_separable_data():
    X, y = two_blobs(200, distance=6.0, std=1.0, seed=0)
    p = Perceptron(2).fit(X, y, epochs=100)
    assert p.converged_ and p.errors_[-1] == 0 and p.n_epochs_ < 100
    assert (p.predict(X) == y).all()
    out = p(sd.tensor(X))  # the module view: step(x @ w + b)
    np.testing.assert_array_equal(out.numpy(), p.predict(X))


def test_perceptron_fails_on_xor():
    X, y = make_xor(4, noise=0.0)
    p = Perceptron(2).fit(X, y, epochs=200)
    assert not p.converged_ and min(p.errors_) > 0
    assert (p.predict(X) == y).mean() <= 0.75  # no line separates XOR


def test_perceptron_accepts_pm1_labels_and_checks_inputs():
    X = np.array([[2.0, 1.0], [-1.0, -2.0], [1.5, 2.0], [-2.0, -0.5]])
    p = Perceptron(2).fit(X, np.array([1, -1, 1, -1]))
    assert p.converged_ and p.predict(X).tolist() == [1, 0, 1, 0]
    with pytest.raises(ValueError, match="labels"):
        Perceptron(2).fit(X, np.array([0, 1, 2, 1]))
    with pytest.raises(ValueError, match="features"):
        Perceptron(3).fit(X, np.array([0, 1, 1, 0]))


def test_linear_regression_closed_form_equals_gradient_descent():
    X, y = make_regression(200, n_features=3, noise=0.1, seed=0)
    closed = LinearRegression(3).fit(X, y)
    gd = LinearRegression(3).fit(X, y, method="gd", lr=0.1, epochs=400)
    np.testing.assert_allclose(gd.weight.detach().numpy(), closed.weight.detach().numpy(),
                               atol=2e-3)
    np.testing.assert_allclose(gd.bias.item(), closed.bias.item(), atol=2e-3)
    ref = np.linalg.lstsq(np.hstack([X, np.ones((200, 1))]), y, rcond=None)[0]
    np.testing.assert_allclose(closed.weight.detach().numpy()[0], ref[:3], rtol=1e-4)
    assert gd.history_["train_loss"][-1] < gd.history_["train_loss"][0]
    pred = closed.predict(X)
    assert pred.shape == (200,) and np.mean((pred - y) ** 2) < 0.02
    ridge = LinearRegression(3).fit(X, y, l2=10.0)
    assert np.abs(ridge.weight.detach().numpy()).sum() < np.abs(
        closed.weight.detach().numpy()).sum()
    with pytest.raises(ValueError, match="method"):
        LinearRegression(3).fit(X, y, method="newton")


def test_logistic_regression_on_two_blobs():
    X, y = two_blobs(300, distance=3.0, seed=1)
    clf = LogisticRegression(2)
    hist = clf.fit(X, y, epochs=60, lr=0.5, batch_size=32)
    assert hist["train_acc"][-1] >= 0.9 and (clf.predict(X) == y).mean() >= 0.9
    p = clf.predict_proba(X)
    assert p.shape == (300,) and ((p > 0) & (p < 1)).all()
    with pytest.raises(ValueError, match="optimizer"):
        clf.fit(X, y, optimizer="lbfgs")


def test_softmax_regression_on_blobs_and_one_hot_loss():
    X, y = make_blobs(300, centers=4, cluster_std=1.0, seed=2)
    clf = SoftmaxRegression(2, 4)
    hist = clf.fit(X, y, epochs=60, lr=0.05, batch_size=32, optimizer="adam")
    assert hist["train_acc"][-1] >= 0.95
    assert (clf.predict(X) == y).mean() >= 0.95
    np.testing.assert_allclose(clf.predict_proba(X).sum(1), 1.0, rtol=1e-5)
    z, t = sd.randn(5, 4), sd.tensor([0, 3, 1, 2, 3])
    assert softmax_cross_entropy(z, t).item() == pytest.approx(F.cross_entropy(z, t).item(),
                                                               rel=1e-5)
