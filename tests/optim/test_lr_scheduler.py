"""Learning-rate schedules: step by step equal to PyTorch's, and to their formulas."""
import math
import warnings

import numpy as np
import pytest

import shendu as sd
import shendu.optim as optim
from shendu.optim import lr_scheduler as S

EPOCHS = 30


def _sd_opt(name="SGD", **kw):
    ps = [sd.nn.Parameter(sd.zeros(2)), sd.nn.Parameter(sd.zeros(3))]
    return getattr(optim, name)([{"params": ps[:1]}, {"params": ps[1:], "lr": 0.05}],
                                lr=0.1, **kw)


def _torch_opt(torch, name="SGD", **kw):
    ps = [torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(3))]
    return getattr(torch.optim, name)([{"params": ps[:1]}, {"params": ps[1:], "lr": 0.05}],
                                      lr=0.1, **kw)


def _make(mod, opt, spec):
    """Build the scheduler described by ``spec`` from module ``mod`` (shendu's or torch's)."""
    kind, kw = spec
    if kind == "Sequential":
        scheds = [getattr(mod, k)(opt, **a) for k, a in kw["parts"]]
        return mod.SequentialLR(opt, scheds, milestones=kw["milestones"])
    if kind == "Chained":
        return mod.ChainedScheduler([getattr(mod, k)(opt, **a) for k, a in kw["parts"]])
    return getattr(mod, kind)(opt, **kw)


def _halve_every_3(epoch):
    return 0.5 ** (epoch // 3)


SPECS = [
    ("StepLR", {"step_size": 4, "gamma": 0.5}),
    ("MultiStepLR", {"milestones": [3, 7, 7, 12], "gamma": 0.3}),
    ("ConstantLR", {"factor": 0.25, "total_iters": 6}),
    ("LinearLR", {"start_factor": 0.1, "total_iters": 8}),
    ("LinearLR", {"start_factor": 1.0, "end_factor": 0.2, "total_iters": 10}),
    ("ExponentialLR", {"gamma": 0.9}),
    ("PolynomialLR", {"total_iters": 12, "power": 2.0}),
    ("CosineAnnealingLR", {"T_max": 7}),
    ("CosineAnnealingLR", {"T_max": 10, "eta_min": 0.01}),
    ("LambdaLR", {"lr_lambda": _halve_every_3}),
    ("LambdaLR", {"lr_lambda": [_halve_every_3, lambda e: 1 / (1 + e)]}),
    ("MultiplicativeLR", {"lr_lambda": lambda e: 0.95}),
    ("OneCycleLR", {"max_lr": 1.0, "total_steps": EPOCHS}),
    ("OneCycleLR", {"max_lr": [1.0, 0.5], "total_steps": EPOCHS + 5, "pct_start": 0.2,
                    "anneal_strategy": "linear", "div_factor": 10.0}),
    ("OneCycleLR", {"max_lr": 0.3, "epochs": 6, "steps_per_epoch": 5, "three_phase": True,
                    "final_div_factor": 100.0}),
    ("Sequential", {"parts": [("LinearLR", {"start_factor": 0.1, "total_iters": 5}),
                              ("CosineAnnealingLR", {"T_max": 20})], "milestones": [5]}),
    ("Sequential", {"parts": [("ConstantLR", {"factor": 0.5, "total_iters": 3}),
                              ("ExponentialLR", {"gamma": 0.9}),
                              ("StepLR", {"step_size": 3, "gamma": 0.5})],
                    "milestones": [4, 12]}),
    ("Chained", {"parts": [("ConstantLR", {"factor": 0.5, "total_iters": 4}),
                           ("ExponentialLR", {"gamma": 0.9})]}),
]


def _trace(opt, sched, epochs=EPOCHS):
    """Per epoch: the reported rates, the groups' rates and their momentum (or beta1)."""
    out = []
    for _ in range(epochs):
        groups = opt.param_groups
        out.append(list(sched.get_last_lr()) + [g["lr"] for g in groups]
                   + [g.get("momentum", g.get("betas", (0,))[0]) for g in groups])
        opt.step()
        sched.step()
    return np.array(out, dtype=float)


@pytest.mark.parametrize("optname", ["SGD", "Adam"])
@pytest.mark.parametrize("spec", SPECS, ids=[s[0] for s in SPECS])
def test_matches_torch_step_by_step(spec, optname):
    torch = pytest.importorskip("torch")
    kw = {"momentum": 0.9} if optname == "SGD" else {}
    opt = _sd_opt(optname, **kw)
    topt = _torch_opt(torch, optname, **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch warns about the call order in this loop
        want = _trace(topt, _make(torch.optim.lr_scheduler, topt, spec))
    got = _trace(opt, _make(S, opt, spec))
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)


PLATEAU = [
    {},
    {"mode": "max", "factor": 0.5, "patience": 2, "threshold": 0.1, "threshold_mode": "abs"},
    {"patience": 1, "cooldown": 2, "min_lr": [0.02, 0.001], "factor": 0.3},
    {"patience": 0, "threshold_mode": "abs", "threshold": 0.05, "min_lr": 0.01, "eps": 1e-3},
]


@pytest.mark.parametrize("kwargs", PLATEAU)
def test_reduce_on_plateau_matches_torch(kwargs):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    metrics = np.concatenate([np.linspace(1, 0.5, 8), 0.5 + 0.05 * rng.random(30),
                              np.linspace(0.5, 0.2, 5), np.full(20, 0.2)])
    opt, topt = _sd_opt(), _torch_opt(torch)
    sched = S.ReduceLROnPlateau(opt, **kwargs)
    tsched = torch.optim.lr_scheduler.ReduceLROnPlateau(topt, **kwargs)
    for m in metrics:
        sched.step(sd.tensor(m) if m > 0.6 else m)  # tensors and floats are both accepted
        tsched.step(m)
        assert sched.get_last_lr() == pytest.approx(tsched.get_last_lr(), rel=1e-12)
        assert sched.num_bad_epochs == tsched.num_bad_epochs
    assert sched.get_last_lr()[0] < 0.1  # it did reduce


def test_inverse_time_decay_formula_and_torch_lambda():
    opt = _sd_opt()
    sched = S.InverseTimeDecayLR(opt, decay_rate=0.5)
    for epoch in range(10):
        assert sched.get_last_lr() == pytest.approx([0.1 / (1 + 0.5 * epoch),
                                                     0.05 / (1 + 0.5 * epoch)], rel=1e-15)
        opt.step()
        sched.step()
    torch = pytest.importorskip("torch")
    topt = _torch_opt(torch)
    tsched = torch.optim.lr_scheduler.LambdaLR(topt, lambda e: 1 / (1 + 0.5 * e))
    opt = _sd_opt()
    sched = S.InverseTimeDecayLR(opt, decay_rate=0.5)
    np.testing.assert_allclose(_trace(opt, sched), _trace(topt, tsched), rtol=1e-12)


def test_formulas_without_torch():
    opt = _sd_opt()
    cos = S.CosineAnnealingLR(opt, T_max=10, eta_min=0.001)
    for e in range(1, 25):
        opt.step()
        cos.step()
        want = 0.001 + (0.1 - 0.001) * (1 + math.cos(math.pi * e / 10)) / 2
        assert cos.get_last_lr()[0] == pytest.approx(want, rel=1e-9, abs=1e-12)
    opt = _sd_opt()
    step = S.StepLR(opt, step_size=3, gamma=0.1)
    for e in range(1, 10):
        opt.step()
        step.step()
        assert step.get_last_lr()[0] == pytest.approx(0.1 * 0.1 ** (e // 3), rel=1e-12)


@pytest.mark.parametrize("spec", SPECS, ids=[s[0] for s in SPECS])
def test_state_dict_round_trip(spec):
    opt = _sd_opt("SGD", momentum=0.9)
    sched = _make(S, opt, spec)
    for _ in range(7):
        opt.step()
        sched.step()
    saved, saved_opt = sched.state_dict(), opt.state_dict()
    assert "optimizer" not in saved
    rest = _trace(opt, sched, 10)
    opt2 = _sd_opt("SGD", momentum=0.9)
    sched2 = _make(S, opt2, spec)
    opt2.load_state_dict(saved_opt)
    sched2.load_state_dict(saved)
    np.testing.assert_array_equal(_trace(opt2, sched2, 10), rest)


def test_step_to_epoch_uses_closed_form():
    opt = _sd_opt()
    sched = S.ExponentialLR(opt, gamma=0.5)
    sched.step(3)
    assert sched.get_last_lr() == [0.1 * 0.125, 0.05 * 0.125]


def test_resume_needs_initial_lr():
    opt = _sd_opt()
    with pytest.raises(KeyError, match="initial_lr"):
        S.StepLR(opt, step_size=2, last_epoch=4)
    S.StepLR(opt, step_size=2)
    resumed = S.StepLR(opt, step_size=2, last_epoch=4)
    assert resumed.last_epoch == 5


def test_invalid_arguments():
    opt = _sd_opt()
    with pytest.raises(TypeError, match="expected an Optimizer"):
        S.StepLR(object(), step_size=1)
    with pytest.raises(ValueError, match="StepLR: step_size must be >= 1, got 0"):
        S.StepLR(opt, step_size=0)
    with pytest.raises(ValueError, match=r"LinearLR: start_factor must be in \(0, 1\]"):
        S.LinearLR(opt, start_factor=0)
    with pytest.raises(ValueError, match="factor must be < 1.0"):
        S.ReduceLROnPlateau(opt, factor=1.5)
    with pytest.raises(ValueError, match="mode must be 'min' or 'max'"):
        S.ReduceLROnPlateau(opt, mode="up")
    with pytest.raises(ValueError, match="total_steps"):
        S.OneCycleLR(opt, max_lr=1.0)
    with pytest.raises(ValueError, match="neither momentum nor betas"):
        S.OneCycleLR(optim.Adagrad(opt.param_groups[0]["params"]), max_lr=1, total_steps=5)
    with pytest.raises(ValueError, match="expected 1 milestones"):
        S.SequentialLR(opt, [S.ConstantLR(opt), S.ExponentialLR(opt, 0.9)], milestones=[])
    with pytest.raises(ValueError, match="expected 2 lr_lambdas"):
        S.LambdaLR(opt, [_halve_every_3])
    one = S.OneCycleLR(_sd_opt(momentum=0.9), max_lr=1.0, total_steps=3)
    for _ in range(2):
        one.step()
    with pytest.raises(ValueError, match="total_steps is 3"):
        one.step()
        one.step()


def test_state_dict_survives_serialization(tmp_path):
    ser = pytest.importorskip("shendu.serialization")
    sched = S.MultiStepLR(_sd_opt(), [2, 4, 4], 0.5)
    ser.save(sched.state_dict(), tmp_path / "sched.sd")
    other = S.MultiStepLR(_sd_opt(), [1], 0.1)
    other.load_state_dict(ser.load(tmp_path / "sched.sd"))
    other.step(5)  # the closed form needs the milestones' counts back
    assert other.get_last_lr() == [0.1 * 0.125, 0.05 * 0.125]


def test_reduce_on_plateau_state_dict_round_trip(tmp_path):
    """Saved mid-plateau (best, bad-epoch and cooldown counters), reloaded through a file
    into a fresh scheduler: the continuation reduces at exactly the same epochs."""
    ser = pytest.importorskip("shendu.serialization")
    metrics = [1.0, 0.9, 0.9, 0.9, 0.95, 0.9, 0.85, 0.85, 0.86, 0.9, 0.9, 0.9, 0.9, 0.9]
    kwargs = {"patience": 1, "cooldown": 1, "factor": 0.5, "min_lr": [0.0, 0.01]}
    opt = _sd_opt()
    sched = S.ReduceLROnPlateau(opt, **kwargs)
    for m in metrics[:5]:
        sched.step(m)
    assert sched.get_last_lr()[0] < 0.1  # already reduced once
    ser.save({"opt": opt.state_dict(), "sched": sched.state_dict()}, tmp_path / "ck.sd")
    rest = []
    for m in metrics[5:]:
        sched.step(m)
        rest.append(sched.get_last_lr())
    opt2 = _sd_opt()
    sched2 = S.ReduceLROnPlateau(opt2, patience=7)
    saved = ser.load(tmp_path / "ck.sd")
    opt2.load_state_dict(saved["opt"])
    sched2.load_state_dict(saved["sched"])
    again = []
    for m in metrics[5:]:
        sched2.step(m)
        again.append(sched2.get_last_lr())
    assert again == rest and len({tuple(r) for r in rest}) > 1  # and it did reduce again


def test_linear_warmup_then_cosine_formula():
    """Warm-up as the notes give it: lr rises linearly from lr0/10 to lr0 over 5 epochs,
    then follows a cosine from lr0 down to 0 over the next 20."""
    opt = _sd_opt()
    warm = S.LinearLR(opt, start_factor=0.1, total_iters=5)
    cos = S.CosineAnnealingLR(opt, T_max=20)
    sched = S.SequentialLR(opt, [warm, cos], milestones=[5])
    for epoch in range(25):
        if epoch < 5:
            want = 0.1 * (0.1 + 0.9 * epoch / 5)
        else:
            want = 0.1 * (1 + math.cos(math.pi * (epoch - 5) / 20)) / 2
        assert sched.get_last_lr()[0] == pytest.approx(want, rel=1e-9, abs=1e-15), epoch
        opt.step()
        sched.step()
