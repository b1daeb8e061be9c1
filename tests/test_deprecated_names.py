"""PyTorch's old and switch names that portable code still uses: ``autograd.Variable``,
``backends.mps``/``backends.cudnn``, ``cuda.manual_seed_all``, and the deprecated
underscore-less ``nn.init``/``nn.utils`` aliases (which warn, as in PyTorch)."""
import warnings

import numpy as np
import pytest
from op_helper import has_oracle, torch

import shendu as sd
from shendu.autograd import Variable


def test_variable_is_a_tensor():
    x = sd.tensor([1.0, 2.0])
    v = Variable(x)
    assert type(v) is sd.Tensor and not v.requires_grad
    v.add_(1.0)  # shares x's memory, as in PyTorch
    np.testing.assert_array_equal(x.numpy(), [2.0, 3.0])
    w = Variable(x, requires_grad=True)
    assert w.requires_grad and w.is_leaf and not x.requires_grad
    (w * w).sum().backward()
    np.testing.assert_array_equal(w.grad.numpy(), 2 * x.numpy())
    assert isinstance(x, Variable) and isinstance(w, sd.autograd.Variable)
    assert not isinstance(np.zeros(1), Variable)
    assert Variable([1.0, 2.0]).shape == (2,)
    with pytest.raises(RuntimeError, match="floating-point"):
        Variable(sd.arange(3), requires_grad=True)
    if has_oracle(torch):
        tx = torch.tensor([2.0, 3.0])
        tw = torch.autograd.Variable(tx, requires_grad=True)
        (tw * tw).sum().backward()
        np.testing.assert_array_equal(w.grad.numpy(), tw.grad.numpy())
        assert isinstance(tx, torch.autograd.Variable)
        with pytest.raises(RuntimeError):
            torch.autograd.Variable(torch.arange(3), requires_grad=True)


def test_backend_switches():
    assert sd.backends.mps.is_available() is False and sd.backends.mps.is_built() is False
    old = sd.backends.cudnn.benchmark
    try:
        sd.backends.cudnn.benchmark = True  # settable, as in PyTorch; it changes nothing
        sd.backends.cudnn.deterministic = True
        assert sd.backends.cudnn.benchmark is True
    finally:
        sd.backends.cudnn.benchmark, sd.backends.cudnn.deterministic = old, False
    assert sd.backends.cudnn.enabled is True and sd.backends.cudnn.is_available() is False
    if has_oracle(torch):
        assert torch.backends.mps.is_available() is False  # the oracle machine is not a Mac
        assert type(torch.backends.cudnn.benchmark) is type(sd.backends.cudnn.benchmark)


def test_cuda_manual_seed_all_seeds_the_generator():
    sd.cuda.manual_seed_all(7)
    a = sd.rand(3)
    sd.manual_seed(7)
    np.testing.assert_array_equal(a.numpy(), sd.rand(3).numpy())


@pytest.mark.parametrize("old", ["uniform", "normal", "constant", "xavier_uniform",
                                 "xavier_normal", "kaiming_uniform", "kaiming_normal",
                                 "orthogonal", "sparse"])
def test_init_aliases_warn_and_match(old):
    extra = {"constant": (0.5,), "sparse": (0.5,)}.get(old, ())
    sd.manual_seed(3)
    want = getattr(sd.nn.init, old + "_")(sd.empty(4, 6), *extra).numpy()
    sd.manual_seed(3)
    with pytest.warns(FutureWarning, match=f"nn.init.{old}` is now deprecated in favor of "
                                           f"`nn.init.{old}_"):
        got = getattr(sd.nn.init, old)(sd.empty(4, 6), *extra).numpy()
    np.testing.assert_array_equal(got, want)
    if has_oracle(torch):
        with pytest.warns(FutureWarning, match=f"{old}_"):
            getattr(torch.nn.init, old)(torch.empty(4, 6), *extra)


def test_clip_grad_norm_alias():
    def params():
        p = sd.nn.Parameter(sd.tensor([3.0, 4.0]))
        p.grad = sd.tensor([3.0, 4.0])
        return [p]
    ps = params()
    with pytest.warns(FutureWarning, match="clip_grad_norm_"):
        total = sd.nn.utils.clip_grad_norm(ps, 1.0)
    assert total.item() == pytest.approx(5.0)
    np.testing.assert_allclose(ps[0].grad.numpy(), [0.6, 0.8], rtol=1e-5)
    if has_oracle(torch):
        tp = torch.nn.Parameter(torch.tensor([3.0, 4.0]))
        tp.grad = torch.tensor([3.0, 4.0])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            tt = torch.nn.utils.clip_grad_norm([tp], 1.0)
        assert tt.item() == pytest.approx(total.item())
        np.testing.assert_allclose(ps[0].grad.numpy(), tp.grad.numpy(), rtol=1e-6)
