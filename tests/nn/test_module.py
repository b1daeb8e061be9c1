"""Module: registration, traversal, modes, dtype moves, state dicts, hooks and repr."""
import copy

import numpy as np
import pytest
from tolerance import assert_matmul_close

import shendu as sd
from shendu.nn.containers import Sequential
from shendu.nn.module import Module
from shendu.nn.parameter import Parameter


class Lin(Module):
    """A Linear-like layer built only on Module + Parameter."""

    def __init__(self, i, o, bias=True):
        super().__init__()
        self.weight = Parameter(sd.randn(o, i))
        if bias:
            self.bias = Parameter(sd.zeros(o))
        else:
            self.register_parameter("bias", None)  # a placeholder, as torch's Linear does

    def forward(self, x):
        y = x @ self.weight.T
        return y if self.bias is None else y + self.bias

    def extra_repr(self):
        return f"in_features={self.weight.shape[1]}, out_features={self.weight.shape[0]}"


class Act(Module):
    def forward(self, x):
        return x.relu()


class Net(Module):
    def __init__(self):
        super().__init__()
        self.fc = Lin(4, 5)
        self.body = Sequential(Lin(5, 6), Act(), Lin(6, 3))
        self.register_buffer("steps", sd.zeros(1))
        self.register_buffer("scratch", sd.zeros(2), persistent=False)

    def forward(self, x):
        return self.body(self.fc(x))


NET_KEYS = ["steps", "fc.weight", "fc.bias", "body.0.weight", "body.0.bias",
            "body.2.weight", "body.2.bias"]


# ---------------------------------------------------------------------- registration
def test_attributes_register_in_order():
    n = Net()
    assert list(n._modules) == ["fc", "body"]
    assert [k for k, _ in n.named_parameters()] == NET_KEYS[1:]
    assert [k for k, _ in n.named_buffers()] == ["steps", "scratch"]
    assert [k for k, _ in n.named_parameters(recurse=False)] == []
    assert [k for k, _ in n.fc.named_parameters(prefix="fc")] == ["fc.weight", "fc.bias"]
    n.plain = sd.ones(2)  # a plain tensor is an ordinary attribute, not state
    assert "plain" not in n.state_dict() and "plain" in n.__dict__


def test_reassigning_moves_between_registries_and_delattr():
    m = Module()
    m.x = Parameter(sd.ones(1))
    m.register_buffer("b", sd.ones(1))
    m.b = sd.zeros(3)  # a plain tensor assigned to a buffer name updates the buffer
    assert m._buffers["b"].shape == (3,)
    m.x = Lin(1, 1)  # a module replaces the parameter under the same name
    assert "x" not in m._parameters and isinstance(m.x, Lin)
    del m.x
    assert "x" not in m._modules
    with pytest.raises(AttributeError, match="'Module' object has no attribute 'x'"):
        _ = m.x
    m.w = Parameter(sd.ones(1))
    m.w = None
    assert m._parameters["w"] is None and list(m.parameters()) == []


def test_registration_errors():
    m = Lin(2, 2)
    with pytest.raises(TypeError, match="cannot assign Tensor as parameter 'weight' of Lin"):
        m.weight = sd.ones(2, 2)
    with pytest.raises(KeyError, match="contain '.'"):
        m.register_buffer("a.b", sd.ones(1))
    with pytest.raises(KeyError, match="already has an attribute 'forward'"):
        m.register_parameter("forward", Parameter(sd.ones(1)))
    with pytest.raises(TypeError, match="shendu.Tensor or None expected"):
        m.register_buffer("arr", np.ones(2))
    with pytest.raises(TypeError, match="int is not a Module subclass"):
        m.add_module("sub", 3)

    class NoInit(Module):
        def __init__(self):
            self.w = Parameter(sd.ones(1))

    with pytest.raises(AttributeError, match="before Module.__init__"):
        NoInit()

    class NoInitCall(Module):
        def __init__(self):
            pass

    with pytest.raises(AttributeError, match=r"NoInitCall: Module.__init__\(\) was not called"):
        NoInitCall()(1)


def test_missing_forward_names_the_class():
    class Empty(Module):
        pass

    with pytest.raises(NotImplementedError, match=r"Module \[Empty\] is missing .*forward"):
        Empty()(sd.ones(1))


def test_dir_and_get_submodule():
    n = Net()
    names = dir(n)
    assert {"fc", "body", "steps", "state_dict"} <= set(names)
    assert n.get_submodule("body.2") is n.body[2]
    assert n.get_submodule("") is n
    with pytest.raises(AttributeError, match="Sequential has no submodule '7'"):
        n.get_submodule("body.7")


# ---------------------------------------------------------------------- traversal
def test_children_and_modules_order():
    n = Net()
    assert [k for k, _ in n.named_children()] == ["fc", "body"]
    assert [k for k, _ in n.named_modules()] == ["", "fc", "body", "body.0", "body.1",
                                                 "body.2"]
    assert list(n.modules())[3] is n.body[0]
    visited = []
    assert n.apply(lambda m: visited.append(type(m).__name__)) is n
    assert visited == ["Lin", "Lin", "Act", "Lin", "Sequential", "Net"]  # children first


def test_shared_parameters_and_modules_counted_once():
    shared = Lin(3, 3)
    m = Module()
    m.a, m.b = shared, shared
    m.c = Lin(3, 3, bias=False)
    m.c.weight = shared.weight  # tied weight
    assert [k for k, _ in m.named_parameters()] == ["a.weight", "a.bias"]
    assert len(list(m.parameters())) == 2
    assert m.num_parameters() == 12
    assert [k for k, _ in m.named_modules()] == ["", "a", "c"]
    every = [k for k, _ in m.named_parameters(remove_duplicate=False)]
    assert every == ["a.weight", "a.bias", "b.weight", "b.bias", "c.weight"]
    # state_dict names every path, as PyTorch does; loading fills all of them
    assert list(m.state_dict()) == every


def test_num_parameters_trainable():
    n = Net()
    total = 4 * 5 + 5 + 5 * 6 + 6 + 6 * 3 + 3
    assert n.num_parameters() == total
    n.fc.requires_grad_(False)
    assert n.num_parameters(only_trainable=True) == total - 25


# ---------------------------------------------------------------------- modes and grads
def test_train_eval_propagate():
    n = Net()
    assert all(m.training for m in n.modules())
    assert n.eval() is n
    assert not any(m.training for m in n.modules())
    n.body.train()
    assert n.body[1].training and not n.training and not n.fc.training
    with pytest.raises(ValueError, match="mode must be a bool"):
        n.train("yes")


def test_requires_grad_and_zero_grad():
    n = Net()
    n(sd.randn(2, 4)).sum().backward()
    assert all(p.grad is not None for p in n.parameters())
    n.zero_grad(set_to_none=False)
    assert all(p.grad is not None and not p.grad.detach().numpy().any() for p in n.parameters())
    n.zero_grad()
    assert all(p.grad is None for p in n.parameters())
    n.requires_grad_(False)
    assert not any(p.requires_grad for p in n.parameters())


# ---------------------------------------------------------------------- dtype / device
def test_to_float64_keeps_identity_and_converts_buffers():
    n = Net()
    n.register_buffer("count", sd.zeros(1, dtype=sd.int64))
    params = list(n.parameters())
    steps = n.steps
    n(sd.randn(2, 4)).sum().backward()
    assert n.to(sd.float64) is n
    assert [p is q for p, q in zip(params, n.parameters())] == [True] * len(params)
    assert all(p.dtype == np.float64 and p.grad.dtype == np.float64 for p in params)
    assert n.steps is steps and steps.dtype == np.float64 and n.scratch.dtype == np.float64
    assert n.count.dtype == np.int64  # integer buffers keep their dtype
    out = n(sd.randn(2, 4, dtype=sd.float64))
    assert out.dtype == np.float64
    out.sum().backward()
    n.float()
    assert params[0].dtype == np.float32
    n.half()
    assert params[0].dtype == np.float16
    n.double().to(sd.zeros(1, dtype=sd.float32))
    assert params[0].dtype == np.float32
    assert n.cpu() is n and n.to("cpu", dtype=sd.float64).fc.weight.dtype == np.float64
    with pytest.raises(TypeError, match="only floating-point dtypes"):
        n.to(sd.int64)
    with pytest.raises(TypeError, match=r"Net.to: expected a dtype, a device .* got 'tpu'"):
        n.to("tpu")


# ---------------------------------------------------------------------- state dict
def test_state_dict_keys_detached_and_shared_memory():
    n = Net()
    sd_ = n.state_dict()
    assert list(sd_) == NET_KEYS  # own entries first, then children; non-persistent skipped
    w = sd_["fc.weight"]
    assert not w.requires_grad and not isinstance(w, Parameter)
    assert np.shares_memory(w.detach().numpy(), n.fc.weight.detach().numpy())
    assert n.state_dict(keep_vars=True)["fc.weight"] is n.fc.weight
    assert list(n.fc.state_dict(prefix="x.")) == ["x.weight", "x.bias"]


def test_state_dict_round_trip():
    a, b = Net(), Net()
    x = sd.randn(3, 4)
    assert not np.allclose(a(x).detach().numpy(), b(x).detach().numpy())
    version = b.fc.weight._version[0]
    res = b.load_state_dict(a.state_dict())
    assert res.missing_keys == [] and res.unexpected_keys == []
    assert repr(res) == "<All keys matched successfully>"
    np.testing.assert_array_equal(a(x).detach().numpy(), b(x).detach().numpy())
    assert b.fc.weight._version[0] == version + 1
    assert not np.shares_memory(a.fc.weight.detach().numpy(), b.fc.weight.detach().numpy())


def test_load_accepts_numpy_and_casts():
    n = Lin(2, 3)
    w = np.arange(6, dtype=np.float64).reshape(3, 2)
    n.load_state_dict({"weight": w, "bias": np.ones(3)})
    assert n.weight.dtype == np.float32
    np.testing.assert_array_equal(n.weight.detach().numpy(), w)
    with pytest.raises(RuntimeError, match="expected a tensor or array but got str"):
        n.load_state_dict({"weight": "nope", "bias": np.ones(3)})


def test_load_strict_missing_and_unexpected():
    n = Net()
    state = n.state_dict()
    del state["body.2.bias"]
    state["body.2.gamma"] = sd.ones(3)
    state["extra"] = sd.ones(1)
    with pytest.raises(RuntimeError) as err:
        Net().load_state_dict(state)
    assert str(err.value) == (
        "Error(s) in loading state_dict for Net:\n"
        '\tMissing key(s) in state_dict: "body.2.bias".\n'
        '\tUnexpected key(s) in state_dict: "extra", "body.2.gamma".')
    fresh = Net()
    res = fresh.load_state_dict(state, strict=False)
    assert res.missing_keys == ["body.2.bias"]
    assert sorted(res.unexpected_keys) == ["body.2.gamma", "extra"]
    np.testing.assert_array_equal(fresh.fc.weight.detach().numpy(), n.fc.weight.detach().numpy())


def test_load_shape_mismatch_raises_and_writes_nothing():
    class Small(Module):
        def __init__(self, i):
            super().__init__()
            self.fc = Lin(i, 10)

    src, dst = Small(5), Small(4)
    before = dst.fc.bias.detach().numpy().copy()
    src.fc.bias.data = sd.ones(10)
    for strict in (True, False):
        with pytest.raises(RuntimeError) as err:
            dst.load_state_dict(src.state_dict(), strict=strict)
        assert str(err.value) == (
            "Error(s) in loading state_dict for Small:\n\tsize mismatch for fc.weight: copying "
            "a param with shape (10, 5) from checkpoint, the shape in current model is (10, 4).")
    np.testing.assert_array_equal(dst.fc.bias.detach().numpy(), before)  # all or nothing
    with pytest.raises(TypeError, match="expected a mapping"):
        dst.load_state_dict([1, 2])


def test_load_into_shared_parameter_and_deepcopy():
    shared = Lin(2, 2)
    m = Module()
    m.a, m.b = shared, shared
    m.load_state_dict({k: sd.ones(v.shape) for k, v in m.state_dict().items()})
    assert shared.weight.detach().numpy().tolist() == [[1, 1], [1, 1]]
    c = copy.deepcopy(m)
    assert c.a is c.b and c.a is not shared
    assert c.a.weight is not shared.weight
    np.testing.assert_array_equal(c.a.weight.detach().numpy(), shared.weight.detach().numpy())


# ---------------------------------------------------------------------- hooks
def test_forward_hooks_order_replacement_and_removal():
    m = Lin(2, 2)
    calls = []
    h1 = m.register_forward_pre_hook(lambda mod, args: calls.append("pre1"))
    m.register_forward_pre_hook(lambda mod, args: calls.append("pre0"), prepend=True)
    h3 = m.register_forward_pre_hook(lambda mod, args: (args[0] * 0,))  # replaces the input
    h4 = m.register_forward_hook(lambda mod, args, out: calls.append(("fwd", args[0].shape)))
    h5 = m.register_forward_hook(lambda mod, args, out: out + 100)  # replaces the output
    out = m(sd.ones(3, 2))
    assert calls == ["pre0", "pre1", ("fwd", (3, 2))]
    bias = m.bias.detach().numpy()
    np.testing.assert_allclose(out.detach().numpy(), 100 + bias[None].repeat(3, 0))
    for h in (h1, h3, h4, h5):
        h.remove()
    h1.remove()  # removing twice is harmless
    calls.clear()
    assert_matmul_close(m(sd.ones(1, 2)).detach().numpy(), np.ones((1, 2)),
                        m.weight.detach().numpy().T, bias=bias)
    assert calls == ["pre0"]


def test_hooks_with_kwargs_and_context_manager():
    class Scale(Module):
        def forward(self, x, factor=1.0):
            return x * factor

    m = Scale()
    seen = []
    pre = m.register_forward_pre_hook(lambda mod, args, kw: (args, {"factor": 3.0}),
                                      with_kwargs=True)
    with m.register_forward_hook(lambda mod, a, kw, out: seen.append(kw), with_kwargs=True):
        assert m(sd.ones(1), factor=2.0).item() == 3.0
    assert seen == [{"factor": 3.0}] and not m._forward_hooks
    pre.remove()
    assert m(sd.ones(1), factor=2.0).item() == 2.0 and not m._hooks_with_kwargs
    bad = m.register_forward_pre_hook(lambda mod, a, kw: 5, with_kwargs=True)
    with pytest.raises(RuntimeError, match=r"must return None or \(args, kwargs\)"):
        m(sd.ones(1))
    bad.remove()


def test_full_backward_hook_sees_and_replaces_grads():
    class Mul(Module):
        def __init__(self):
            super().__init__()
            self.w = Parameter(sd.tensor([2.0, 3.0]))

        def forward(self, x, y):
            return x * self.w + y

    m = Mul()
    got = []

    def hook(mod, grad_input, grad_output):
        got.append((grad_input, grad_output))
        if grad_input[0] is not None:
            return (grad_input[0] * 10, grad_input[1])

    h = m.register_full_backward_hook(hook)
    x = sd.tensor([1.0, 1.0], requires_grad=True)
    y = sd.tensor([5.0, 5.0])  # no grad: its slot in grad_input is None
    (m(x, y) * sd.tensor([1.0, 2.0])).sum().backward()
    (gi, go), = got
    assert gi[1] is None
    np.testing.assert_allclose(gi[0].detach().numpy(), [2.0, 6.0])
    np.testing.assert_allclose(go[0].detach().numpy(), [1.0, 2.0])
    np.testing.assert_allclose(x.grad.detach().numpy(), [20.0, 60.0])  # replaced by the hook
    np.testing.assert_allclose(m.w.grad.detach().numpy(), [1.0, 2.0])
    # with no input needing grad the hook still runs (grad_input all None)
    got.clear()
    m(sd.ones(2), y).sum().backward()
    assert got[0][0] == (None, None)
    h.remove()
    with sd.no_grad():
        m(x, y)
    assert len(got) == 1


# ---------------------------------------------------------------------- repr
def test_repr_nested():
    n = Net()
    n.register_parameter("unused", None)
    assert repr(n) == (
        "Net(\n"
        "  (fc): Lin(in_features=4, out_features=5)\n"
        "  (body): Sequential(\n"
        "    (0): Lin(in_features=5, out_features=6)\n"
        "    (1): Act()\n"
        "    (2): Lin(in_features=6, out_features=3)\n"
        "  )\n"
        ")")

    class Multi(Module):
        def __init__(self):
            super().__init__()
            self.inner = Act()

        def extra_repr(self):
            return "a=1,\nb=2"

    assert repr(Multi()) == "Multi(\n  a=1,\n  b=2\n  (inner): Act()\n)"
    assert repr(Module()) == "Module()"


# ---------------------------------------------------------------------- torch naming
def test_state_dict_naming_matches_torch():
    torch = pytest.importorskip("torch")

    class TLin(torch.nn.Module):
        def __init__(self, i, o):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.randn(o, i))
            self.bias = torch.nn.Parameter(torch.zeros(o))

    class TNet(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = TLin(4, 5)
            self.body = torch.nn.Sequential(TLin(5, 6), torch.nn.ReLU(), TLin(6, 3))
            self.register_buffer("steps", torch.zeros(1))
            self.register_buffer("scratch", torch.zeros(2), persistent=False)

    ours, theirs = Net().state_dict(), TNet().state_dict()
    assert list(ours) == list(theirs)
    assert [tuple(v.shape) for v in ours.values()] == [tuple(v.shape) for v in theirs.values()]
    # and a torch checkpoint (as numpy arrays) loads straight into the shendu model
    n = Net()
    n.load_state_dict({k: v.detach().numpy() for k, v in theirs.items()})
    np.testing.assert_array_equal(n.body[2].weight.detach().numpy(),
                                  theirs["body.2.weight"].numpy())
    # ... and so do torch's tensors themselves, even ones that require grad
    live = TNet()
    n.load_state_dict(live.state_dict(keep_vars=True))
    np.testing.assert_array_equal(n.fc.weight.detach().numpy(), live.fc.weight.detach().numpy())


@pytest.mark.skipif(not sd.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_round_trip_keeps_identity():
    n = Net()
    w = n.fc.weight
    n.cuda()
    assert n.fc.weight is w and w.device.type == "cuda" and n.steps.device.type == "cuda"
    assert n(sd.randn(2, 4, device="cuda")).device.type == "cuda"
    n.load_state_dict({k: v.detach().numpy() for k, v in Net().state_dict().items()})
    assert w.device.type == "cuda"
    n.cpu()
    assert w.device.type == "cpu"


def test_full_backward_hook_two_inputs_two_outputs():
    class Two(Module):
        def forward(self, x, y):
            return x * 2, x * y

    m = Two()
    got = []
    m.register_full_backward_hook(lambda mod, gi, go: got.append((gi, go)))
    x, y = sd.ones(3, requires_grad=True), sd.full((3,), 4.0, requires_grad=True)
    a, b = m(x, y)
    (a.sum() + (b * 2).sum()).backward()
    (gi, go), = got
    np.testing.assert_allclose(go[1].detach().numpy(), [2, 2, 2])
    np.testing.assert_allclose(gi[0].detach().numpy(), [10, 10, 10])
    np.testing.assert_allclose(gi[1].detach().numpy(), [2, 2, 2])
    np.testing.assert_allclose(x.grad.detach().numpy(), [10, 10, 10])
