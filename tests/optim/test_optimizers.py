"""Optimizers: five steps against update rules written out in NumPy and against PyTorch."""
import numpy as np
import pytest

import shendu as sd
import shendu.optim as optim

# ----------------------------------------------------------------------------- references
# Each reference is the published update rule in plain (out-of-place) NumPy, one step for
# one parameter; ``st`` is that parameter's state dict and ``t`` the 1-based step number.


def _dir(p, g, hp):
    d = -g if hp.get("maximize") else g
    return d + hp.get("weight_decay", 0) * p


def ref_sgd(p, g, st, hp, t):
    d = _dir(p, g, hp)
    mom = hp.get("momentum", 0)
    if mom:
        b = st.get("b")
        b = d.copy() if b is None else mom * b + (1 - hp.get("dampening", 0)) * d
        st["b"] = b
        d = d + mom * b if hp.get("nesterov") else b
    return p - hp.get("lr", 1e-3) * d


def ref_adagrad(p, g, st, hp, t):
    d = _dir(p, g, hp)
    st["s"] = st.get("s", hp.get("initial_accumulator_value", 0) + 0 * p) + d * d
    clr = hp.get("lr", 1e-2) / (1 + (t - 1) * hp.get("lr_decay", 0))
    return p - clr * d / (np.sqrt(st["s"]) + hp.get("eps", 1e-10))


def ref_rmsprop(p, g, st, hp, t):
    a, eps, mom = hp.get("alpha", 0.99), hp.get("eps", 1e-8), hp.get("momentum", 0)
    d = _dir(p, g, hp)
    st["sq"] = a * st.get("sq", 0 * p) + (1 - a) * d * d
    if hp.get("centered"):
        st["ga"] = a * st.get("ga", 0 * p) + (1 - a) * d
        den = np.sqrt(st["sq"] - st["ga"] ** 2) + eps
    else:
        den = np.sqrt(st["sq"]) + eps
    lr = hp.get("lr", 1e-2)
    if mom:
        st["b"] = mom * st.get("b", 0 * p) + d / den
        return p - lr * st["b"]
    return p - lr * d / den


def ref_adadelta(p, g, st, hp, t):
    rho, eps = hp.get("rho", 0.9), hp.get("eps", 1e-6)
    d = _dir(p, g, hp)
    st["sq"] = rho * st.get("sq", 0 * p) + (1 - rho) * d * d
    acc = st.get("acc", 0 * p)
    delta = np.sqrt(acc + eps) / np.sqrt(st["sq"] + eps) * d
    st["acc"] = rho * acc + (1 - rho) * delta * delta
    return p - hp.get("lr", 1.0) * delta


def ref_adam(p, g, st, hp, t, decoupled=False):
    lr, (b1, b2), eps = hp.get("lr", 1e-3), hp.get("betas", (0.9, 0.999)), hp.get("eps", 1e-8)
    wd = hp.get("weight_decay", 1e-2 if decoupled else 0)
    if decoupled:
        p = p * (1 - lr * wd)
        d = -g if hp.get("maximize") else g
    else:
        d = _dir(p, g, hp)
    st["m"] = b1 * st.get("m", 0 * p) + (1 - b1) * d
    st["v"] = b2 * st.get("v", 0 * p) + (1 - b2) * d * d
    v = st["v"]
    if hp.get("amsgrad"):
        v = st["vmax"] = np.maximum(st.get("vmax", 0 * p), v)
    m_hat = st["m"] / (1 - b1 ** t)
    v_hat = v / (1 - b2 ** t)
    return p - lr * m_hat / (np.sqrt(v_hat) + eps)


def ref_adamw(p, g, st, hp, t):
    return ref_adam(p, g, st, hp, t, decoupled=True)


REFS = {"SGD": ref_sgd, "Adagrad": ref_adagrad, "RMSprop": ref_rmsprop,
        "Adadelta": ref_adadelta, "Adam": ref_adam, "AdamW": ref_adamw}

CASES = [
    ("SGD", {"lr": 0.1}),
    ("SGD", {}),
    ("SGD", {"lr": 0.1, "momentum": 0.9}),
    ("SGD", {"lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 0.1}),
    ("SGD", {"lr": 0.1, "momentum": 0.8, "dampening": 0.5, "weight_decay": 0.01,
             "maximize": True}),
    ("SGD", {"lr": 0.05, "weight_decay": 0.1, "maximize": True}),
    ("SGD", {"lr": 0.05, "maximize": True}),
    ("Adagrad", {"lr": 0.1}),
    ("Adagrad", {"lr": 0.1, "lr_decay": 0.1, "weight_decay": 0.1,
                 "initial_accumulator_value": 0.5}),
    ("Adagrad", {"maximize": True}),
    ("RMSprop", {}),
    ("RMSprop", {"lr": 0.01, "momentum": 0.9, "centered": True, "weight_decay": 0.1}),
    ("RMSprop", {"centered": True, "alpha": 0.9}),
    ("RMSprop", {"momentum": 0.5, "maximize": True}),
    ("Adadelta", {}),
    ("Adadelta", {"lr": 0.5, "rho": 0.8, "weight_decay": 0.1}),
    ("Adadelta", {"maximize": True}),
    ("Adam", {"lr": 0.01}),
    ("Adam", {"lr": 0.01, "amsgrad": True, "weight_decay": 0.1}),
    ("Adam", {"betas": (0.8, 0.9), "eps": 1e-6, "maximize": True}),
    ("Adam", {"lr": 0.1, "betas": (0.3, 0.99)}),  # lerp weight >= 0.5 takes the other branch
    ("AdamW", {"lr": 0.01}),
    ("AdamW", {"lr": 0.01, "weight_decay": 0.1, "amsgrad": True, "maximize": True}),
]
IDS = [f"{n}-{'-'.join(f'{k}={v}' for k, v in kw.items()) or 'defaults'}" for n, kw in CASES]

SHAPES = [(3, 4), (5,), (2, 2)]  # the last one sits in a second group (see _groups)
STEPS = 5


def _problem(dtype):
    rng = np.random.default_rng(1)
    init = [rng.standard_normal(s).astype(dtype) for s in SHAPES]
    noise = [[rng.standard_normal(s).astype(dtype) for s in SHAPES] for _ in range(STEPS)]

    def grad(i, k, p):  # a non-quadratic gradient, so every state path matters
        return (p ** 3 - p + noise[k][i]).astype(dtype)
    return init, grad


def _groups(name, kwargs):
    """The second group's own hyperparameters: half the lr, and one more of its own."""
    lr = kwargs.get("lr", None)
    second = {"lr": (lr if lr is not None else 1e-2) * 0.5}
    own = {"SGD": {"weight_decay": 0.05, **({"momentum": 0.5} if kwargs.get("momentum")
                                            else {})},
           "Adagrad": {"lr_decay": 0.05}, "RMSprop": {"alpha": 0.9},
           "Adadelta": {"rho": 0.8}, "Adam": {"betas": (0.8, 0.99)},
           "AdamW": {"weight_decay": 0.05}}
    return {**second, **own[name]}


def run_reference(name, kwargs, dtype):
    init, grad = _problem(np.float64)
    ps = [a.astype(np.float64) for a in init]
    states = [{} for _ in ps]
    hps = [kwargs, kwargs, {**kwargs, **_groups(name, kwargs)}]
    for k in range(STEPS):
        gs = [grad(i, k, p) for i, p in enumerate(ps)]
        ps = [REFS[name](p, g, st, hp, k + 1) for p, g, st, hp in zip(ps, gs, states, hps)]
    return ps


def run_shendu(name, kwargs, dtype):
    init, grad = _problem(dtype)
    ps = [sd.nn.Parameter(sd.tensor(a.copy())) for a in init]
    opt = getattr(optim, name)([{"params": ps[:2]},
                                {"params": ps[2:], **_groups(name, kwargs)}], **kwargs)
    for k in range(STEPS):
        for i, p in enumerate(ps):
            p.grad = sd.tensor(grad(i, k, p.detach().numpy().copy()))
        opt.step()
    return [p.detach().numpy() for p in ps]


def run_torch(name, kwargs, dtype):
    torch = pytest.importorskip("torch")
    init, grad = _problem(dtype)
    ps = [torch.nn.Parameter(torch.tensor(a.copy())) for a in init]
    opt = getattr(torch.optim, name)([{"params": ps[:2]},
                                      {"params": ps[2:], **_groups(name, kwargs)}], **kwargs)
    for k in range(STEPS):
        for i, p in enumerate(ps):
            p.grad = torch.tensor(grad(i, k, p.detach().numpy().copy()))
        opt.step()
    return [p.detach().numpy() for p in ps]


@pytest.mark.parametrize("name,kwargs", CASES, ids=IDS)
def test_matches_numpy_reference(name, kwargs):
    want = run_reference(name, kwargs, np.float64)
    got = run_shendu(name, kwargs, np.float64)
    for w, g in zip(want, got):
        np.testing.assert_allclose(g, w, rtol=1e-6, atol=1e-6)
    got32 = run_shendu(name, kwargs, np.float32)
    assert got32[0].dtype == np.float32
    for w, g in zip(want, got32):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name,kwargs", CASES, ids=IDS)
def test_matches_torch(name, kwargs, dtype):
    want = run_torch(name, kwargs, dtype)
    got = run_shendu(name, kwargs, dtype)
    for w, g in zip(want, got):
        np.testing.assert_allclose(g, w, rtol=1e-6, atol=1e-6)


@pytest.fixture(params=[2, 3])
def threads(request):
    from shendu.backend import pool as _parallel

    before = _parallel.get_num_threads()
    _parallel.set_num_threads(request.param)
    yield request.param
    _parallel.set_num_threads(before)


@pytest.mark.parametrize("name,kwargs", [c for c in CASES if c[1].get("momentum")
                                         or c[0] in ("Adam", "AdamW")][:6])
def test_large_parameters_split_across_threads(name, kwargs, threads):
    """Big, medium and small parameters (odd sizes) updated by several threads at once
    end up exactly as the reference rule says."""
    from shendu.backend import pool as _parallel

    sizes = [_parallel.MIN_PARALLEL * 2 + 77, _parallel.SMALL * 3 + 5, 10, _parallel.SMALL + 1]
    rng = np.random.default_rng(3)
    p0 = [rng.standard_normal(n) for n in sizes]
    ps = [sd.nn.Parameter(sd.tensor(a.copy())) for a in p0]
    opt = getattr(optim, name)(ps, **kwargs)
    want, states = [a.copy() for a in p0], [{} for _ in sizes]
    for k in range(3):
        grads = [rng.standard_normal(n) for n in sizes]
        for p, g in zip(ps, grads):
            p.grad = sd.tensor(g)
        opt.step()
        want = [REFS[name](w, g, st, kwargs, k + 1) for w, g, st in zip(want, grads, states)]
    for p, w in zip(ps, want):
        np.testing.assert_allclose(p.detach().numpy(), w, rtol=1e-9, atol=1e-12)


def test_shares_cover_every_element_once():
    from shendu.backend import pool as _parallel

    arrays = [np.zeros(n) for n in (1000, 70000, 5, 33333)]
    tasks = [(None, [a], 0, ()) for a in arrays]
    for parts in (1, 2, 3, 8):
        shares = _parallel._shares(tasks, parts)
        assert 1 <= len(shares) <= parts
        for a in arrays:
            ranges = sorted((s, e) for share in shares for (t, s, e) in share if t[1][0] is a)
            assert ranges[0][0] == 0 and ranges[-1][1] == a.size
            assert all(e0 == s1 for (_, e0), (s1, _) in zip(ranges, ranges[1:]))


@pytest.mark.parametrize("name", list(REFS))
def test_non_contiguous_param_and_grad(name):
    rng = np.random.default_rng(4)
    p0 = np.asfortranarray(rng.standard_normal((6, 5)))
    p = sd.nn.Parameter(sd.tensor(p0.copy(order="F")))
    opt = getattr(optim, name)([p], lr=0.1)
    want, st = p0.copy(), {}
    for k in range(3):
        g = rng.standard_normal((5, 6)).T  # a transposed view
        p.grad = sd.Tensor._wrap(g)
        opt.step()
        want = REFS[name](want, g, st, {"lr": 0.1}, k + 1)
        assert np.array_equal(p.grad.numpy(), g)  # the gradient is never written
    np.testing.assert_allclose(p.detach().numpy(), want, rtol=1e-9, atol=1e-12)


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs os.fork")
def test_threaded_step_works_in_a_forked_child():
    import os

    from shendu.backend import pool as _parallel

    p = sd.nn.Parameter(sd.zeros(_parallel.MIN_PARALLEL * 2))
    p.grad = sd.ones(_parallel.MIN_PARALLEL * 2)
    opt = optim.SGD([p], lr=1.0)
    opt.step()  # starts the pool in the parent
    pid = os.fork()
    if pid == 0:  # child: a step must not wait on the parent's (absent) threads
        try:
            opt.step()
            os._exit(0 if float(p.detach().numpy().min()) == -2.0 else 1)
        finally:
            os._exit(2)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
