"""Optimizer plumbing: groups, errors, zero_grad, state dicts, closures, real convergence."""
import numpy as np
import pytest

import shendu as sd
import shendu.optim as optim

ALL = ["SGD", "Adagrad", "RMSprop", "Adadelta", "Adam", "AdamW"]
RICH = {"SGD": {"momentum": 0.9, "nesterov": True}, "Adagrad": {"lr_decay": 0.01},
        "RMSprop": {"momentum": 0.5, "centered": True}, "Adadelta": {"weight_decay": 0.01},
        "Adam": {"amsgrad": True}, "AdamW": {"amsgrad": True}}


def _params(seed=0):
    rng = np.random.default_rng(seed)
    return [sd.nn.Parameter(sd.tensor(rng.standard_normal(s))) for s in [(4, 3), (3,), (2,)]]


def _fill_grads(ps, k):
    for i, p in enumerate(ps):
        p.grad = sd.tensor(np.sin(p.detach().numpy() * (k + 1) + i))


@pytest.mark.parametrize("name", ALL)
def test_state_dict_round_trip_resumes_identically(name):
    a = _params()
    opt_a = getattr(optim, name)([{"params": a[:2]}, {"params": a[2:], "lr": 0.05}], lr=0.1,
                                 **RICH[name])
    for k in range(3):
        _fill_grads(a, k)
        opt_a.step()
    saved = opt_a.state_dict()
    assert sorted(saved["state"]) == [0, 1, 2]
    assert [g["params"] for g in saved["param_groups"]] == [[0, 1], [2]]
    b = [sd.nn.Parameter(sd.tensor(p.detach().numpy().copy())) for p in a]
    opt_b = getattr(optim, name)([{"params": b[:2]}, {"params": b[2:]}], lr=1.0)
    opt_b.load_state_dict(saved)
    assert opt_b.param_groups[1]["lr"] == 0.05 and opt_b.param_groups[0]["lr"] == 0.1
    for k in range(3, 6):
        _fill_grads(a, k)
        _fill_grads(b, k)
        opt_a.step()
        opt_b.step()
    for pa, pb in zip(a, b):
        np.testing.assert_array_equal(pa.detach().numpy(), pb.detach().numpy())
    # the saved dict was a snapshot, not a view of the live state
    again = getattr(optim, name)([{"params": b[:2]}, {"params": b[2:]}], lr=1.0)
    again.load_state_dict(saved)
    assert again.state[b[0]].keys() == opt_a.state[a[0]].keys()


def test_state_dict_survives_serialization(tmp_path):
    ser = pytest.importorskip("shendu.serialization")
    ps = _params()
    opt = optim.Adam(ps, lr=0.1, amsgrad=True)
    _fill_grads(ps, 0)
    opt.step()
    ser.save(opt.state_dict(), tmp_path / "opt.sd")
    loaded = ser.load(tmp_path / "opt.sd")
    opt2 = optim.Adam(ps, lr=0.5)
    opt2.load_state_dict(loaded)
    assert opt2.param_groups[0]["betas"] == (0.9, 0.999)
    np.testing.assert_array_equal(opt2.state[ps[0]]["exp_avg"].numpy(),
                                  opt.state[ps[0]]["exp_avg"].numpy())
    assert opt2.state[ps[0]]["step"] == 1


def test_load_state_dict_casts_to_parameter_dtype_and_copies():
    p = sd.nn.Parameter(sd.zeros(3))  # float32
    opt = optim.SGD([p], lr=0.1, momentum=0.9)
    buf = np.ones(3)  # float64 from elsewhere
    opt.load_state_dict({"state": {0: {"momentum_buffer": buf}},
                         "param_groups": [{**opt.state_dict()["param_groups"][0]}]})
    restored = opt.state[p]["momentum_buffer"]
    assert restored.dtype == np.float32
    buf[:] = 5
    assert restored.numpy().tolist() == [1.0, 1.0, 1.0]


def test_load_state_dict_rejects_mismatched_layout():
    opt = optim.SGD(_params(), lr=0.1)
    other = optim.SGD([{"params": _params()[:1]}, {"params": _params()[1:]}], lr=0.1)
    with pytest.raises(ValueError, match="parameter groups"):
        opt.load_state_dict(other.state_dict())
    small = optim.SGD(_params()[:2], lr=0.1)
    with pytest.raises(ValueError, match="has 2 parameters in the state dict but 3"):
        opt.load_state_dict(small.state_dict())


INVALID = [
    ("SGD", {"lr": -1}, ValueError, "SGD: lr must be >= 0, got -1"),
    ("SGD", {"lr": 0.1, "momentum": -0.5}, ValueError, "SGD: momentum must be >= 0, got -0.5"),
    ("SGD", {"lr": 0.1, "nesterov": True}, ValueError, "nesterov=True requires momentum > 0"),
    ("SGD", {"lr": 0.1, "momentum": 0.9, "nesterov": True, "dampening": 0.1}, ValueError,
     "dampening = 0"),
    ("SGD", {"lr": 0.1, "weight_decay": -1e-4}, ValueError, "weight_decay must be >= 0"),
    ("SGD", {"lr": "fast"}, TypeError, "SGD: lr must be a number, got 'fast'"),
    ("Adam", {"betas": (1.0, 0.999)}, ValueError, r"Adam: betas\[0\] must be in \[0, 1\)"),
    ("Adam", {"betas": (0.9, -0.1)}, ValueError, r"betas\[1\] must be in \[0, 1\), got -0.1"),
    ("Adam", {"betas": 0.9}, ValueError, "betas must be a pair"),
    ("Adam", {"eps": -1e-8}, ValueError, "Adam: eps must be >= 0"),
    ("AdamW", {"weight_decay": -0.1}, ValueError, "AdamW: weight_decay must be >= 0"),
    ("Adagrad", {"lr_decay": -1}, ValueError, "Adagrad: lr_decay must be >= 0"),
    ("Adagrad", {"initial_accumulator_value": -1}, ValueError, "initial_accumulator_value"),
    ("RMSprop", {"alpha": -0.1}, ValueError, r"RMSprop: alpha must be in \[0, 1\]"),
    ("RMSprop", {"momentum": -1}, ValueError, "RMSprop: momentum must be >= 0"),
    ("Adadelta", {"rho": 1.5}, ValueError, r"Adadelta: rho must be in \[0, 1\], got 1.5"),
    ("Adadelta", {"lr": float("nan")}, ValueError, "Adadelta: lr must be >= 0, got nan"),
]


@pytest.mark.parametrize("name,kwargs,exc,msg", INVALID)
def test_invalid_hyperparameters_raise(name, kwargs, exc, msg):
    with pytest.raises(exc, match=msg):
        getattr(optim, name)(_params(), **kwargs)


def test_invalid_group_hyperparameter_raises():
    ps = _params()
    with pytest.raises(ValueError, match="SGD: lr must be >= 0, got -0.1"):
        optim.SGD([{"params": ps[:1]}, {"params": ps[1:], "lr": -0.1}], lr=0.1)


def test_bad_parameter_lists():
    ps = _params()
    with pytest.raises(ValueError, match="empty parameter list"):
        optim.SGD([], lr=0.1)
    with pytest.raises(ValueError, match="more than once"):
        optim.SGD([ps[0], ps[0]], lr=0.1)
    with pytest.raises(ValueError, match="more than one parameter group"):
        optim.SGD([{"params": ps[:2]}, {"params": ps[1:]}], lr=0.1)
    with pytest.raises(TypeError, match="single Tensor"):
        optim.Adam(ps[0])
    with pytest.raises(TypeError, match="got a set"):
        optim.Adam(set(ps))
    with pytest.raises(TypeError, match="parameter 1 of the group is a float"):
        optim.Adam([ps[0], 1.0])
    with pytest.raises(ValueError, match="non-leaf"):
        optim.Adam([ps[0] * 2])
    opt = optim.SGD(ps[:2], lr=0.1)
    with pytest.raises(ValueError, match="more than one parameter group"):
        opt.add_param_group({"params": ps[1:]})


def test_add_param_group_and_named_params():
    ps = _params()
    opt = optim.SGD([("w", ps[0]), ("b", ps[1])], lr=0.1, momentum=0.9)
    assert opt.param_groups[0]["param_names"] == ["w", "b"]
    opt.add_param_group({"params": ps[2], "lr": 0.01})
    assert opt.param_groups[1]["lr"] == 0.01 and opt.param_groups[1]["momentum"] == 0.9
    assert "Parameter Group 1" in repr(opt) and "momentum: 0.9" in repr(opt)


def test_skips_parameters_without_grad_and_bumps_version():
    ps = _params()
    opt = optim.Adam(ps, lr=0.1)
    before = [p.detach().numpy().copy() for p in ps]
    versions = [p._version[0] for p in ps]
    ps[0].grad = sd.ones(4, 3, dtype=sd.float64)
    opt.step()
    assert not np.array_equal(ps[0].detach().numpy(), before[0])
    np.testing.assert_array_equal(ps[1].detach().numpy(), before[1])
    assert ps[1] not in opt.state and ps[0]._version[0] == versions[0] + 1
    assert ps[1]._version[0] == versions[1]


def test_backward_through_graph_from_before_the_step_is_refused():
    w = sd.nn.Parameter(sd.tensor([1.0, 2.0]))
    opt = optim.SGD([w], lr=0.1)
    (w * w).sum().backward()
    stale = (w * w).sum()  # saves w for its backward
    opt.step()
    with pytest.raises(RuntimeError):
        stale.backward()


def test_gradient_of_the_wrong_shape_is_refused():
    w = sd.nn.Parameter(sd.zeros(3))
    w.grad = sd.ones(1)
    with pytest.raises(RuntimeError, match=r"shape \(3,\) has a gradient of shape \(1,\)"):
        optim.Adam([w]).step()


def test_tensor_learning_rate_is_read_as_a_number():
    w = sd.nn.Parameter(sd.ones(2))
    w.grad = sd.ones(2)
    optim.SGD([w], lr=sd.tensor(0.5)).step()
    assert w.detach().numpy().tolist() == [0.5, 0.5]


def test_zero_grad():
    ps = _params()
    opt = optim.SGD(ps, lr=0.1)
    _fill_grads(ps, 0)
    grad0 = ps[0].grad
    opt.zero_grad(set_to_none=False)
    assert ps[0].grad is grad0 and not ps[0].grad.numpy().any()
    opt.zero_grad()
    assert all(p.grad is None for p in ps)


def test_step_with_closure_returns_loss():
    w = sd.nn.Parameter(sd.tensor([3.0]))
    opt = optim.SGD([w], lr=0.25)
    calls = []

    def closure():
        opt.zero_grad()
        loss = (w * w).sum()
        loss.backward()
        calls.append(1)
        return loss

    with sd.no_grad():  # the closure still records its graph
        loss = opt.step(closure)
    assert loss.item() == 9.0 and calls == [1]
    assert w.item() == pytest.approx(1.5)


def _rosenbrock(xy):
    x, y = xy[0], xy[1]
    return (1 - x) ** 2 + 100 * (y - x * x) ** 2


@pytest.mark.parametrize("name,kwargs,steps", [
    ("Adam", {"lr": 0.02}, 3000),
    ("SGD", {"lr": 1e-3, "momentum": 0.9}, 3000),
])
def test_minimises_rosenbrock(name, kwargs, steps):
    xy = sd.nn.Parameter(sd.tensor([-1.5, 2.0], dtype=sd.float64))
    opt = getattr(optim, name)([xy], **kwargs)
    start = _rosenbrock(xy).item()
    for _ in range(steps):
        opt.zero_grad()
        _rosenbrock(xy).backward()
        opt.step()
    assert _rosenbrock(xy).item() < 1e-3 * start
    np.testing.assert_allclose(xy.detach().numpy(), [1.0, 1.0], atol=0.05)


@pytest.mark.parametrize("name,kwargs,steps", [
    ("SGD", {"lr": 0.1, "momentum": 0.9}, 300),
    ("SGD", {"lr": 0.1, "momentum": 0.9, "nesterov": True}, 300),
    ("Adam", {"lr": 0.05}, 300), ("AdamW", {"lr": 0.05, "weight_decay": 1e-4}, 300),
    ("RMSprop", {"lr": 0.01, "momentum": 0.9}, 300), ("RMSprop", {"lr": 0.01}, 600),
    ("Adagrad", {"lr": 0.5}, 300), ("Adadelta", {}, 1000),
])
def test_fits_linear_regression(name, kwargs, steps):
    rng = np.random.default_rng(0)
    X = sd.tensor(rng.standard_normal((200, 3)).astype(np.float32))
    true_w = np.array([[2.0], [-3.0], [0.5]], np.float32)
    y = sd.tensor(X.numpy() @ true_w + 1.0)
    w = sd.nn.Parameter(sd.zeros(3, 1))
    b = sd.nn.Parameter(sd.zeros(1))
    opt = getattr(optim, name)([w, b], **kwargs)
    for _ in range(steps):
        opt.zero_grad()
        loss = ((X @ w + b - y) ** 2).mean()
        loss.backward()
        opt.step()
    assert loss.item() < 1e-3
    np.testing.assert_allclose(w.detach().numpy(), true_w, atol=0.05)


@pytest.mark.parametrize("name", ALL)
def test_torch_optimizer_state_dict_loads_and_continues_identically(name):
    """Same state names as PyTorch's (momentum_buffer, exp_avg, square_avg, ...): a torch
    optimizer's state dict, tensors and all, loads, and the next steps match torch's."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    tps = [torch.nn.Parameter(torch.tensor(rng.standard_normal(s))) for s in [(4, 3), (2,)]]
    topt = getattr(torch.optim, name)([{"params": tps[:1]}, {"params": tps[1:], "lr": 0.05}],
                                      lr=0.1, **RICH[name])
    for _ in range(2):
        for p in tps:
            p.grad = torch.tensor(rng.standard_normal(tuple(p.shape)))
        topt.step()
    ps = [sd.nn.Parameter(sd.tensor(p.detach().numpy().copy())) for p in tps]
    opt = getattr(optim, name)([{"params": ps[:1]}, {"params": ps[1:]}], lr=1.0)
    opt.load_state_dict(topt.state_dict())
    for _ in range(3):
        for p, tp in zip(ps, tps):
            g = rng.standard_normal(tuple(tp.shape))
            p.grad, tp.grad = sd.tensor(g), torch.tensor(g)
        opt.step()
        topt.step()
    for p, tp in zip(ps, tps):
        np.testing.assert_allclose(p.detach().numpy(), tp.detach().numpy(), rtol=1e-12,
                                   atol=1e-14)
