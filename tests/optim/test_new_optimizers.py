"""NAdam, RAdam and LBFGS: trajectories against the published update rules written out in
NumPy and against PyTorch (float64, rtol 1e-5), state-dict round trips, hyperparameter
checks; LBFGS minimizes Rosenbrock and fits a logistic regression (checked against
scikit-learn's solution)."""
import math

import numpy as np
import pytest

import shendu as sd
import shendu.optim as optim


def _torch():
    return pytest.importorskip("torch", reason="PyTorch is the oracle for this test")


# ----------------------------------------------------------------------------- references
def ref_nadam(p, g, st, hp, t):
    lr, (b1, b2) = hp.get("lr", 2e-3), hp.get("betas", (0.9, 0.999))
    eps, wd, psi = hp.get("eps", 1e-8), hp.get("weight_decay", 0), hp.get("momentum_decay", 4e-3)
    g = -g if hp.get("maximize") else g
    if hp.get("decoupled_weight_decay"):
        p = p * (1 - lr * wd)
    else:
        g = g + wd * p
    mu = b1 * (1 - 0.5 * 0.96 ** (t * psi))
    mu_next = b1 * (1 - 0.5 * 0.96 ** ((t + 1) * psi))
    st["prod"] = st.get("prod", 1.0) * mu
    st["m"] = b1 * st.get("m", 0 * p) + (1 - b1) * g
    st["v"] = b2 * st.get("v", 0 * p) + (1 - b2) * g * g
    denom = np.sqrt(st["v"] / (1 - b2 ** t)) + eps
    return (p - lr * (1 - mu) / (1 - st["prod"]) * g / denom
            - lr * mu_next / (1 - st["prod"] * mu_next) * st["m"] / denom)


def ref_radam(p, g, st, hp, t):
    lr, (b1, b2) = hp.get("lr", 1e-3), hp.get("betas", (0.9, 0.999))
    eps, wd = hp.get("eps", 1e-8), hp.get("weight_decay", 0)
    g = -g if hp.get("maximize") else g
    if hp.get("decoupled_weight_decay"):
        p = p * (1 - lr * wd)
    else:
        g = g + wd * p
    st["m"] = b1 * st.get("m", 0 * p) + (1 - b1) * g
    st["v"] = b2 * st.get("v", 0 * p) + (1 - b2) * g * g
    m_hat = st["m"] / (1 - b1 ** t)
    rho_inf = 2 / (1 - b2) - 1
    rho = rho_inf - 2 * t * b2 ** t / (1 - b2 ** t)
    if rho <= 5:
        return p - lr * m_hat
    r = math.sqrt((rho - 4) * (rho - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho))
    # eps is added to sqrt(v) before the bias correction (as PyTorch does)
    return p - lr * m_hat * r * math.sqrt(1 - b2 ** t) / (np.sqrt(st["v"]) + eps)


REFS = {"NAdam": ref_nadam, "RAdam": ref_radam}
STEPS = 12  # RAdam's rectified branch starts at step 6 with beta2 = 0.999

CONFIGS = [
    ("NAdam", {}),
    ("NAdam", {"lr": 0.05, "weight_decay": 0.1}),
    ("NAdam", {"lr": 0.05, "weight_decay": 0.1, "decoupled_weight_decay": True}),
    ("NAdam", {"lr": 0.02, "betas": (0.8, 0.95), "momentum_decay": 0.05, "maximize": True}),
    ("RAdam", {}),
    ("RAdam", {"lr": 0.05, "weight_decay": 0.1}),
    ("RAdam", {"lr": 0.05, "weight_decay": 0.1, "decoupled_weight_decay": True}),
    ("RAdam", {"lr": 0.02, "betas": (0.8, 0.9), "eps": 1e-3, "maximize": True}),
]


def _init():
    r = np.random.default_rng(3)
    return [r.standard_normal((3, 4)), r.standard_normal(5), r.standard_normal((2, 2))]


def _grad(i, k, p):
    """A gradient that depends on the parameter non-linearly, so every state path matters."""
    return np.sin(p * (i + 1)) + 0.3 * p ** 3 + 0.1 * (k + 1)


def run_reference(name, hp):
    ps = _init()
    states = [{} for _ in ps]
    out = []
    for t in range(1, STEPS + 1):
        ps = [REFS[name](p, _grad(i, t - 1, p), states[i], hp, t) for i, p in enumerate(ps)]
        out.append([p.copy() for p in ps])
    return out


def run_shendu(name, hp, steps=STEPS, opt=None, ps=None):
    if ps is None:
        ps = [sd.nn.Parameter(sd.tensor(a)) for a in _init()]
    if opt is None:
        opt = getattr(optim, name)([{"params": ps[:2]}, {"params": ps[2:]}], **hp)
    out = []
    for k in range(steps):
        for i, p in enumerate(ps):
            p.grad = sd.tensor(_grad(i, k, p.detach().numpy().copy()))
        opt.step()
        out.append([p.detach().numpy().copy() for p in ps])
    return out, opt, ps


def run_torch(name, hp):
    torch = _torch()
    ps = [torch.nn.Parameter(torch.tensor(a)) for a in _init()]
    opt = getattr(torch.optim, name)([{"params": ps[:2]}, {"params": ps[2:]}], **hp)
    out = []
    for k in range(STEPS):
        for i, p in enumerate(ps):
            p.grad = torch.tensor(_grad(i, k, p.detach().numpy().copy()))
        opt.step()
        out.append([p.detach().numpy().copy() for p in ps])
    return out, opt


@pytest.mark.parametrize("name,hp", CONFIGS)
def test_matches_numpy_reference(name, hp):
    want = run_reference(name, hp)
    got, _, _ = run_shendu(name, hp)
    for step, (w, g) in enumerate(zip(want, got)):
        for a, b in zip(w, g):
            np.testing.assert_allclose(b, a, rtol=1e-10, atol=1e-12, err_msg=f"step {step}")


@pytest.mark.parametrize("name,hp", CONFIGS)
def test_matches_torch(name, hp):
    want, topt = run_torch(name, hp)
    got, opt, _ = run_shendu(name, hp)
    for step, (w, g) in enumerate(zip(want, got)):
        for a, b in zip(w, g):
            np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-8, err_msg=f"step {step}")
    # same hyperparameter names and state slots, so state dicts line up
    mine, theirs = opt.state_dict(), topt.state_dict()
    for gm, gt in zip(mine["param_groups"], theirs["param_groups"]):
        assert set(gm) <= set(gt), set(gm) - set(gt)
        assert gm["params"] == gt["params"]
    assert set(mine["state"][0]) == set(theirs["state"][0])


@pytest.mark.parametrize("name,hp", [CONFIGS[2], CONFIGS[6]])
def test_state_dict_round_trip(name, hp):
    straight, _, _ = run_shendu(name, hp, steps=8)
    first, opt, ps = run_shendu(name, hp, steps=4)
    saved = opt.state_dict()
    for _ in range(4):  # saved state is a snapshot, not a view of the live state
        opt.step()
    ps2 = [sd.nn.Parameter(sd.tensor(a)) for a in first[-1]]
    opt2 = getattr(optim, name)([{"params": ps2[:2]}, {"params": ps2[2:]}], **hp)
    opt2.load_state_dict(saved)

    def resumed():
        out = []
        for k in range(4, 8):
            for i, p in enumerate(ps2):
                p.grad = sd.tensor(_grad(i, k, p.detach().numpy().copy()))
            opt2.step()
            out.append([p.detach().numpy().copy() for p in ps2])
        return out

    for a, b in zip(straight[4:], resumed()):
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("name", ["NAdam", "RAdam"])
def test_loads_a_torch_state_dict_and_continues_like_torch(name):
    torch = _torch()
    hp = {"lr": 0.05, "weight_decay": 0.01}
    tps = [torch.nn.Parameter(torch.tensor(a)) for a in _init()]
    topt = getattr(torch.optim, name)(tps, **hp)
    for k in range(7):
        for i, p in enumerate(tps):
            p.grad = torch.tensor(_grad(i, k, p.detach().numpy().copy()))
        topt.step()
    ps = [sd.nn.Parameter(sd.tensor(p.detach().numpy().copy())) for p in tps]
    opt = getattr(optim, name)(ps, **hp)
    opt.load_state_dict(topt.state_dict())
    for k in range(7, 11):
        for i, (p, tp) in enumerate(zip(ps, tps)):
            g = _grad(i, k, tp.detach().numpy().copy())
            p.grad, tp.grad = sd.tensor(g), torch.tensor(g)
        opt.step()
        topt.step()
    for p, tp in zip(ps, tps):
        np.testing.assert_allclose(p.detach().numpy(), tp.detach().numpy(), rtol=1e-5)


@pytest.mark.parametrize("name,kw,match", [
    ("NAdam", {"lr": -1}, "NAdam: lr must be >= 0"),
    ("NAdam", {"momentum_decay": -0.1}, "NAdam: momentum_decay must be >= 0"),
    ("NAdam", {"betas": (1.0, 0.9)}, r"NAdam: betas\[0\] must be in \[0, 1\)"),
    ("RAdam", {"eps": -1e-8}, "RAdam: eps must be >= 0"),
    ("RAdam", {"weight_decay": -1}, "RAdam: weight_decay must be >= 0"),
    ("RAdam", {"betas": (0.9,)}, "RAdam: betas must be a pair"),
])
def test_hyperparameter_checks(name, kw, match):
    with pytest.raises(ValueError, match=match):
        getattr(optim, name)([sd.nn.Parameter(sd.ones(2))], **kw)


def test_defaults_match_torch():
    torch = _torch()
    for name in ("NAdam", "RAdam", "LBFGS"):
        mine = getattr(optim, name)([sd.nn.Parameter(sd.ones(2))]).defaults
        theirs = getattr(torch.optim, name)([torch.nn.Parameter(torch.ones(2))]).defaults
        for k, v in mine.items():
            assert theirs[k] == v, (name, k, v, theirs[k])


# ----------------------------------------------------------------------------- LBFGS
def rosenbrock_sd(w):
    x, y = w[0], w[1]
    return (1 - x) ** 2 + 100 * (y - x * x) ** 2


def _lbfgs_run_sd(problem, steps, **kw):
    w = sd.nn.Parameter(sd.tensor(problem["init"]))
    opt = optim.LBFGS([w], **kw)

    def closure():
        opt.zero_grad()
        loss = problem["sd"](w)
        loss.backward()
        return loss

    traj, losses = [], []
    for _ in range(steps):
        losses.append(float(opt.step(closure)))
        traj.append(w.detach().numpy().copy())
    return traj, losses, opt


def _lbfgs_run_torch(problem, steps, **kw):
    torch = _torch()
    w = torch.nn.Parameter(torch.tensor(problem["init"]))
    opt = torch.optim.LBFGS([w], **kw)

    def closure():
        opt.zero_grad()
        loss = problem["torch"](w)
        loss.backward()
        return loss

    traj, losses = [], []
    for _ in range(steps):
        losses.append(opt.step(closure).item())
        traj.append(w.detach().numpy().copy())
    return traj, losses, opt


def _logistic_data():
    r = np.random.default_rng(7)
    x = r.standard_normal((80, 3))
    logits = x @ np.array([1.5, -2.0, 0.5]) + 0.3
    y = (r.random(80) < 1 / (1 + np.exp(-logits))).astype(np.float64)
    return x, y


def _logistic_problem(lib):
    x, y = _logistic_data()
    n = len(y)

    def loss(w):  # w = (coef..., intercept); sklearn's objective divided by C * n
        X, Y = lib.tensor(x), lib.tensor(y)
        z = X @ w[:3] + w[3]
        nll = (lib.nn.functional.softplus(z) - Y * z).mean()
        return nll + (w[:3] ** 2).sum() / (2 * n)

    return loss


PROBLEMS = {
    "rosenbrock": {"init": np.array([-1.5, 2.0]), "sd": rosenbrock_sd},
    "logistic": {"init": np.zeros(4), "sd": _logistic_problem(sd)},
}
LBFGS_CONFIGS = [
    {},
    {"line_search_fn": "strong_wolfe"},
    {"lr": 0.5, "history_size": 3, "max_iter": 7},
    {"line_search_fn": "strong_wolfe", "history_size": 2, "max_iter": 5, "max_eval": 6},
    {"line_search_fn": "strong_wolfe", "tolerance_grad": 1e-3, "tolerance_change": 1e-4},
]


@pytest.mark.parametrize("problem", ["rosenbrock", "logistic"])
@pytest.mark.parametrize("kw", LBFGS_CONFIGS)
def test_lbfgs_matches_torch(problem, kw):
    torch = _torch()
    prob = dict(PROBLEMS[problem])
    prob["torch"] = rosenbrock_sd if problem == "rosenbrock" else _logistic_problem(torch)
    if problem == "rosenbrock" and "lr" not in kw and "line_search_fn" not in kw:
        kw = {**kw, "lr": 0.002}  # a fixed unit step diverges on Rosenbrock
    want, want_losses, topt = _lbfgs_run_torch(prob, 4, **kw)
    got, got_losses, opt = _lbfgs_run_sd(prob, 4, **kw)
    for step, (a, b) in enumerate(zip(want, got)):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-9, err_msg=f"step {step}")
    np.testing.assert_allclose(got_losses, want_losses, rtol=1e-5, atol=1e-12)
    mine = opt.state[opt.param_groups[0]["params"][0]]
    theirs = topt.state[topt.param_groups[0]["params"][0]]
    assert (mine["func_evals"], mine["n_iter"]) == (theirs["func_evals"], theirs["n_iter"])
    assert len(mine["old_dirs"]) == len(theirs["old_dirs"])


def test_lbfgs_minimizes_rosenbrock():
    traj, losses, opt = _lbfgs_run_sd(PROBLEMS["rosenbrock"], 5,
                                      line_search_fn="strong_wolfe", tolerance_grad=1e-10,
                                      tolerance_change=1e-14)
    np.testing.assert_allclose(traj[-1], [1.0, 1.0], atol=1e-6)
    assert float(rosenbrock_sd(sd.tensor(traj[-1]))) < 1e-12
    assert losses[0] > 1.0


def test_lbfgs_fits_logistic_regression_like_sklearn():
    lm = pytest.importorskip("sklearn.linear_model",
                             reason="scikit-learn is the oracle for this test")
    x, y = _logistic_data()
    clf = lm.LogisticRegression(C=1.0, tol=1e-12, max_iter=10_000).fit(x, y)
    traj, _, _ = _lbfgs_run_sd(PROBLEMS["logistic"], 3, line_search_fn="strong_wolfe",
                               tolerance_grad=1e-12, tolerance_change=1e-14)
    np.testing.assert_allclose(traj[-1], np.r_[clf.coef_.ravel(), clf.intercept_],
                               rtol=1e-5, atol=1e-6)


def test_lbfgs_state_dict_round_trip():
    prob = PROBLEMS["rosenbrock"]
    kw = {"line_search_fn": "strong_wolfe", "max_iter": 3, "history_size": 4}
    straight, _, _ = _lbfgs_run_sd(prob, 4, **kw)
    first, _, opt = _lbfgs_run_sd(prob, 2, **kw)
    saved = opt.state_dict()
    w = sd.nn.Parameter(sd.tensor(first[-1]))
    opt2 = optim.LBFGS([w], **kw)
    opt2.load_state_dict(saved)

    def closure():
        opt2.zero_grad()
        loss = rosenbrock_sd(w)
        loss.backward()
        return loss

    for k in range(2, 4):
        opt2.step(closure)
        np.testing.assert_array_equal(w.detach().numpy(), straight[k])


def test_lbfgs_errors():
    w = sd.nn.Parameter(sd.ones(2))
    with pytest.raises(TypeError, match="LBFGS.step: a closure is required"):
        optim.LBFGS([w]).step()
    with pytest.raises(ValueError, match="LBFGS: per-parameter options"):
        optim.LBFGS([{"params": [w]}, {"params": [sd.nn.Parameter(sd.ones(1))]}])
    with pytest.raises(ValueError, match="line_search_fn must be None or 'strong_wolfe'"):
        optim.LBFGS([w], line_search_fn="armijo")
    with pytest.raises(ValueError, match="LBFGS: history_size must be a positive int"):
        optim.LBFGS([w], history_size=0)
    with pytest.raises(ValueError, match="LBFGS: lr must be >= 0"):
        optim.LBFGS([w], lr=-1.0)


def test_lbfgs_stops_at_once_when_already_optimal():
    w = sd.nn.Parameter(sd.tensor([1.0, 1.0], dtype=sd.float64))
    opt = optim.LBFGS([w])
    calls = []

    def closure():
        calls.append(1)
        opt.zero_grad()
        loss = rosenbrock_sd(w)
        loss.backward()
        return loss

    assert float(opt.step(closure)) == 0.0 and len(calls) == 1
    np.testing.assert_array_equal(w.detach().numpy(), [1.0, 1.0])
