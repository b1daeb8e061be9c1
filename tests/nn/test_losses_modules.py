"""Loss modules against PyTorch's: same constructor arguments, same values and gradients."""
import numpy as np
import pytest

import shendu as sd
import shendu.nn.functional as F
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


def _reductions(name):
    return ("none", "mean", "sum") + (("batchmean",) if name == "KLDivLoss" else ())


@pytest.mark.filterwarnings("ignore:reduction. 'mean' divides:UserWarning")  # torch, KLDiv
@pytest.mark.parametrize("name, kwargs, inputs", CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_loss_module_matches_torch(name, kwargs, inputs):
    """Values and gradients of every differentiable input, under every reduction."""
    torch = pytest.importorskip("torch")
    for reduction in _reductions(name):
        kw = {**kwargs, "reduction": reduction}
        ours = getattr(losses, name)(**{k: sd.tensor(v) if isinstance(v, np.ndarray) else v
                                        for k, v in kw.items()})
        theirs = getattr(torch.nn, name)(**{k: torch.tensor(v) if isinstance(v, np.ndarray)
                                            else v for k, v in kw.items()})
        assert repr(ours) == repr(theirs)
        assert list(ours.state_dict()) == list(theirs.state_dict())  # weight buffers
        sx = [sd.tensor(v, requires_grad=kind == "x") for kind, v in inputs]
        tx = [torch.tensor(v, requires_grad=kind == "x") for kind, v in inputs]
        so, to = ours(*sx), theirs(*tx)
        assert so.shape == tuple(to.shape), reduction
        np.testing.assert_allclose(_np(so), _np(to), atol=1e-7, rtol=1e-6, err_msg=reduction)
        g = np.random.default_rng(1).standard_normal(so.shape)
        so.backward(sd.tensor(g))
        to.backward(torch.tensor(g))
        for i, (a, b) in enumerate(zip(sx, tx)):
            if b.requires_grad:
                np.testing.assert_allclose(_np(a.grad), _np(b.grad), atol=1e-7, rtol=1e-6,
                                           err_msg=f"{reduction}: gradient of input {i}")


@pytest.mark.parametrize("name", sorted({c[0] for c in CASES}))
def test_constructor_arguments_are_torchs(name):
    torch = pytest.importorskip("torch")
    import inspect

    def args(cls):
        return [(p.name, p.default) for p in inspect.signature(cls.__init__).parameters.values()]
    assert args(getattr(losses, name)) == args(getattr(torch.nn, name))


def test_every_functional_loss_has_a_module():
    import shendu.nn.functional.loss as FL

    # every public function defined in functional/loss.py, less the two distances
    names = {n for n, f in vars(FL).items() if callable(f) and not n.startswith("_")
             and getattr(f, "__module__", "") == FL.__name__}
    names -= {"cosine_similarity", "pairwise_distance"}
    covered = {"cross_entropy": "CrossEntropyLoss", "nll_loss": "NLLLoss",
               "mse_loss": "MSELoss", "l1_loss": "L1Loss", "smooth_l1_loss": "SmoothL1Loss",
               "huber_loss": "HuberLoss", "binary_cross_entropy": "BCELoss",
               "binary_cross_entropy_with_logits": "BCEWithLogitsLoss",
               "hinge_embedding_loss": "HingeEmbeddingLoss",
               "multi_margin_loss": "MultiMarginLoss", "soft_margin_loss": "SoftMarginLoss",
               "margin_ranking_loss": "MarginRankingLoss", "kl_div": "KLDivLoss",
               "cosine_embedding_loss": "CosineEmbeddingLoss",
               "triplet_margin_loss": "TripletMarginLoss",
               "gaussian_nll_loss": "GaussianNLLLoss"}
    assert names <= set(covered), f"loss functions without a module: {names - set(covered)}"
    tested = {c[0] for c in CASES}
    for cls in covered.values():
        assert cls in losses.__all__ and cls in tested and hasattr(sd.nn, cls), cls


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


def test_cosine_functions_on_tiny_vectors_match_torch_formula():
    # Each norm is floored separately (cosine_similarity) and 1e-12 is added to each
    # squared norm (cosine_embedding_loss): tiny parallel vectors are still similar.
    x = sd.tensor([[1e-5, 2e-5, 0.0]], dtype=sd.float64)
    assert abs(F.cosine_similarity(x, x).item() - 1.0) < 1e-9
    sq = 5e-10 + 1e-12
    expected = 1 - 5e-10 / sq
    got = F.cosine_embedding_loss(x, x, sd.tensor([1])).item()
    assert abs(got - expected) < 1e-12
    # targets other than +-1 contribute nothing, as in PyTorch
    assert F.cosine_embedding_loss(x, x, sd.tensor([0])).item() == 0.0
