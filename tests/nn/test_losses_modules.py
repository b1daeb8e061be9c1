"""Loss modules against PyTorch's: same constructor arguments, same values and gradients."""
import numpy as np
import pytest

import shendu as sd
from shendu.nn import losses

rng = np.random.default_rng(0)
X = rng.standard_normal((6, 4))
X2 = rng.standard_normal((6, 4))
X3 = rng.standard_normal((6, 4))
CLS = np.array([0, 3, 1, 1, 2, 0])
PROB = rng.uniform(0.05, 0.95, (6, 4))
SIGN = np.where(rng.random(6) > 0.5, 1.0, -1.0)
SIGN4 = np.where(rng.random((6, 4)) > 0.5, 1.0, -1.0)
W = np.array([1.0, 2.0, 0.5, 1.5])


def _log_softmax(x):
    return x - np.log(np.exp(x).sum(1, keepdims=True))


# (class name, constructor kwargs, inputs: ("x", array) is differentiable, ("c", array) not)
CASES = [
    ("CrossEntropyLoss", {}, [("x", X), ("c", CLS)]),
    ("CrossEntropyLoss", {"weight": W, "ignore_index": 1}, [("x", X), ("c", CLS)]),
    ("CrossEntropyLoss", {"label_smoothing": 0.2, "reduction": "sum"}, [("x", X), ("c", CLS)]),
    ("CrossEntropyLoss", {"reduction": "none"},
     [("x", X), ("c", PROB / PROB.sum(1, keepdims=True))]),
    ("CrossEntropyLoss", {}, [("x", rng.standard_normal((2, 3, 4, 2))),
                              ("c", rng.integers(0, 3, (2, 4, 2)))]),
    ("NLLLoss", {"weight": W}, [("x", _log_softmax(X)), ("c", CLS)]),
    ("NLLLoss", {"reduction": "none", "ignore_index": 0}, [("x", _log_softmax(X)), ("c", CLS)]),
    ("MSELoss", {}, [("x", X), ("c", X2)]),
    ("MSELoss", {"reduction": "sum"}, [("x", X), ("x", X2)]),
    ("L1Loss", {"reduction": "none"}, [("x", X), ("c", X2)]),
    ("SmoothL1Loss", {"beta": 0.5}, [("x", X), ("c", X2)]),
    ("HuberLoss", {"delta": 0.7}, [("x", X), ("c", X2)]),
    ("BCELoss", {}, [("x", PROB), ("c", (X2 > 0).astype(float))]),
    ("BCELoss", {"weight": W, "reduction": "sum"}, [("x", PROB), ("c", PROB[::-1].copy())]),
    ("BCEWithLogitsLoss", {}, [("x", X), ("c", (X2 > 0).astype(float))]),
    ("BCEWithLogitsLoss", {"weight": W, "pos_weight": W[::-1].copy()},
     [("x", X), ("c", PROB)]),
    ("HingeEmbeddingLoss", {"margin": 0.5}, [("x", X), ("c", SIGN4)]),
    ("MultiMarginLoss", {}, [("x", X), ("c", CLS)]),
    ("MultiMarginLoss", {"p": 2, "margin": 0.7, "weight": W}, [("x", X), ("c", CLS)]),
    ("SoftMarginLoss", {}, [("x", X), ("c", SIGN4)]),
    ("MarginRankingLoss", {"margin": 0.3}, [("x", X[:, 0]), ("x", X2[:, 0]), ("c", SIGN)]),
    ("KLDivLoss", {"reduction": "batchmean"}, [("x", _log_softmax(X)), ("c", PROB)]),
    ("KLDivLoss", {"reduction": "sum", "log_target": True},
     [("x", _log_softmax(X)), ("x", _log_softmax(X2))]),
    ("CosineEmbeddingLoss", {"margin": 0.2}, [("x", X), ("x", X2), ("c", SIGN)]),
    ("TripletMarginLoss", {"margin": 2.0}, [("x", X), ("x", X2), ("x", X3)]),
    ("TripletMarginLoss", {"p": 1.0, "swap": True}, [("x", X), ("x", X2), ("x", X3)]),
    ("GaussianNLLLoss", {}, [("x", X), ("c", X2), ("x", PROB)]),
    ("GaussianNLLLoss", {"full": True, "reduction": "sum"}, [("x", X), ("x", X2), ("x", PROB)]),
]


def _np(t):
    return np.asarray(t.detach())


@pytest.mark.parametrize("name, kwargs, inputs", CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_loss_module_matches_torch(name, kwargs, inputs):
    torch = pytest.importorskip("torch")
    ours = getattr(losses, name)(**{k: sd.tensor(v) if isinstance(v, np.ndarray) else v
                                    for k, v in kwargs.items()})
    theirs = getattr(torch.nn, name)(**{k: torch.tensor(v) if isinstance(v, np.ndarray) else v
                                        for k, v in kwargs.items()})
    assert repr(ours) == repr(theirs)
    assert list(ours.state_dict()) == list(theirs.state_dict())  # weight buffers
    sx = [sd.tensor(v, requires_grad=kind == "x") for kind, v in inputs]
    tx = [torch.tensor(v, requires_grad=kind == "x") for kind, v in inputs]
    so, to = ours(*sx), theirs(*tx)
    np.testing.assert_allclose(_np(so), _np(to), atol=1e-7, rtol=1e-6)
    g = np.random.default_rng(1).standard_normal(so.shape)
    so.backward(sd.tensor(g))
    to.backward(torch.tensor(g))
    for i, (a, b) in enumerate(zip(sx, tx)):
        if b.requires_grad:
            np.testing.assert_allclose(_np(a.grad), _np(b.grad), atol=1e-7, rtol=1e-6,
                                       err_msg=f"gradient of input {i}")


def test_gradcheck_through_modules():
    x = sd.tensor(X, requires_grad=True)
    for loss, other in [(losses.CrossEntropyLoss(weight=sd.tensor(W), label_smoothing=0.1),
                         sd.tensor(CLS)),
                        (losses.SmoothL1Loss(beta=0.5), sd.tensor(X2)),
                        (losses.MultiMarginLoss(p=2), sd.tensor(CLS))]:
        assert sd.autograd.gradcheck(lambda x, f=loss, t=other: f(x, t), [x])


def test_legacy_flags_buffers_and_errors():
    assert losses.MSELoss(size_average=False).reduction == "sum"
    assert losses.MSELoss(reduce=False).reduction == "none"
    assert losses.L1Loss(size_average=True, reduce=True).reduction == "mean"
    with pytest.raises(ValueError, match="MSELoss: reduction must be one of"):
        losses.MSELoss(reduction="avg")
    with pytest.raises(ValueError, match="batchmean"):
        losses.MSELoss(reduction="batchmean")  # only KLDivLoss has it
    with pytest.raises(ValueError, match="p == 1 and p == 2"):
        losses.MultiMarginLoss(p=3)
    ce = losses.CrossEntropyLoss(weight=[1.0, 2.0])
    assert isinstance(ce.weight, sd.Tensor) and list(ce.state_dict()) == ["weight"]
    ce.to(sd.float64)
    assert ce.weight.dtype == sd.float64 and list(dict(ce.named_buffers())) == ["weight"]
    assert list(losses.CrossEntropyLoss().state_dict()) == []
    bce = losses.BCEWithLogitsLoss(pos_weight=sd.tensor([3.0]))
    assert list(bce.state_dict()) == ["pos_weight"]
    # pos_weight > 1 raises the cost of missing positives
    x, t = sd.zeros(1, 1), sd.ones(1, 1)
    assert float(bce(x, t)) == pytest.approx(3 * float(losses.BCEWithLogitsLoss()(x, t)))
    with pytest.raises(ValueError, match="input shape"):
        losses.MSELoss()(sd.zeros(3), sd.zeros(4))
    with pytest.raises(ValueError, match="class-index target must have shape"):
        losses.CrossEntropyLoss()(sd.zeros(3, 4), sd.tensor([0, 1]))
